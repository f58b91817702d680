//! IncrementalAlterConfigs (KIP-339) for topics: set, delete, append to or subtract from topic
//! config overrides, on the controller. The broker's own settings come from its flags and are
//! not alterable at run time, so broker resources are refused.

use std::collections::BTreeSet;
use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::metadata::controller::{ConfigChange, ControllerRequest, ControllerResponse};
use crate::protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsRequestResource, IncrementalAlterConfigsResponse,
    IncrementalAlterConfigsResponseResult,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Kafka's `AlterConfigOp.OpType` numbering.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The changes of one resource, or why the request for it is malformed (INVALID_REQUEST, as
/// Kafka answers a duplicate key, a null value to set, or an unknown operation).
fn changes(resource: &IncrementalAlterConfigsRequestResource) -> Result<Vec<ConfigChange>, String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(resource.configs.len());
    for config in &resource.configs {
        if !seen.insert(config.name.as_str()) {
            return Err(format!("config '{}' appears more than once", config.name));
        }
        let name = config.name.clone();
        let value = || config.value.clone().ok_or_else(|| format!("config '{}' needs a value", config.name));
        out.push(match config.config_operation {
            OP_SET => ConfigChange::Set(name, value()?),
            OP_DELETE => ConfigChange::Delete(name),
            OP_APPEND => ConfigChange::Append(name, value()?),
            OP_SUBTRACT => ConfigChange::Subtract(name, value()?),
            other => return Err(format!("unknown config operation {other}")),
        });
    }
    Ok(out)
}

/// IncrementalAlterConfigs.
pub async fn handle(
    broker: &Rc<ShardBroker>,
    header: &RequestHeader,
    request: IncrementalAlterConfigsRequest,
) -> Reply {
    let mut responses: Vec<IncrementalAlterConfigsResponseResult> = Vec::with_capacity(request.resources.len());
    let mut topics = Vec::new();
    let mut names = BTreeSet::new();
    for resource in &request.resources {
        let mut result = IncrementalAlterConfigsResponseResult {
            resource_type: resource.resource_type,
            resource_name: resource.resource_name.clone(),
            error_message: None,
            ..Default::default()
        };
        let mut refuse = |code: ErrorCode, message: String| {
            result.error_code = code.code();
            result.error_message = Some(message);
        };
        match resource.resource_type {
            RESOURCE_TOPIC if !names.insert(resource.resource_name.as_str()) => {
                refuse(ErrorCode::InvalidRequest, format!("topic '{}' appears more than once", resource.resource_name))
            }
            RESOURCE_TOPIC => match changes(resource) {
                Ok(changes) => topics.push((resource.resource_name.clone(), changes)),
                Err(message) => refuse(ErrorCode::InvalidRequest, message),
            },
            RESOURCE_BROKER => {
                refuse(ErrorCode::InvalidRequest, "broker configs are set by the broker's flags".to_string())
            }
            other => refuse(ErrorCode::InvalidRequest, format!("resource type {other} is not supported")),
        }
        responses.push(result);
    }
    if !topics.is_empty() {
        let asked: Vec<String> = topics.iter().map(|(name, _)| name.clone()).collect();
        let call = broker
            .metadata
            .control(ControllerRequest::AlterTopicConfigs { topics, validate_only: request.validate_only })
            .await;
        let outcomes: Vec<(String, Option<(ErrorCode, String)>)> = match call {
            Ok(ControllerResponse::AlterTopicConfigs(results)) => results
                .into_iter()
                .map(|(name, result)| (name, result.err().map(|e| (ErrorCode::from(&e), e.to_string()))))
                .collect(),
            _ => asked
                .into_iter()
                .map(|name| (name, Some((ErrorCode::KafkaStorageError, "controller unavailable".to_string()))))
                .collect(),
        };
        for (name, outcome) in outcomes {
            let Some((code, message)) = outcome else { continue };
            if let Some(result) = responses
                .iter_mut()
                .find(|r| r.resource_type == RESOURCE_TOPIC && r.resource_name == name && r.error_code == 0)
            {
                result.error_code = code.code();
                result.error_message = Some(message);
            }
        }
    }
    respond(header, &IncrementalAlterConfigsResponse { responses, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::IncrementalAlterConfigsRequestConfig;

    fn resource(configs: &[(&str, i8, Option<&str>)]) -> IncrementalAlterConfigsRequestResource {
        IncrementalAlterConfigsRequestResource {
            resource_type: RESOURCE_TOPIC,
            resource_name: "t".into(),
            configs: configs
                .iter()
                .map(|(name, op, value)| IncrementalAlterConfigsRequestConfig {
                    name: name.to_string(),
                    config_operation: *op,
                    value: value.map(str::to_string),
                })
                .collect(),
        }
    }

    #[test]
    fn operations_map_to_changes_and_malformed_ones_are_refused() {
        let ok = changes(&resource(&[("a", OP_SET, Some("1")), ("b", OP_DELETE, None), ("c", OP_APPEND, Some("x"))]));
        assert_eq!(
            ok.unwrap(),
            vec![
                ConfigChange::Set("a".into(), "1".into()),
                ConfigChange::Delete("b".into()),
                ConfigChange::Append("c".into(), "x".into())
            ]
        );
        assert!(changes(&resource(&[("a", OP_SET, Some("1")), ("a", OP_DELETE, None)])).is_err());
        assert!(changes(&resource(&[("a", OP_SET, None)])).is_err());
        assert!(changes(&resource(&[("a", OP_SUBTRACT, None)])).is_err());
        assert!(changes(&resource(&[("a", 9, Some("1"))])).is_err());
    }
}
