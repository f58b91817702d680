//! IncrementalAlterConfigs (KIP-339): set, delete, append to or subtract from a topic's config
//! overrides or a broker's dynamic configs (`""`: every broker's cluster-wide default, `"<id>"`:
//! the receiving broker), on the controller.

use std::collections::BTreeSet;
use std::rc::Rc;

use super::alter_configs::{RESOURCE_BROKER, RESOURCE_TOPIC, check_broker_resource, settle, submit};
use crate::broker::ShardBroker;
use crate::broker::metadata::controller::{BrokerConfigUpdate, ConfigChange, ControllerRequest};
use crate::protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsRequestResource, IncrementalAlterConfigsResponse,
    IncrementalAlterConfigsResponseResult,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

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
    let (mut topics, mut brokers) = (Vec::new(), Vec::new());
    // Kafka refuses every copy of a resource named more than once.
    let mut seen = BTreeSet::new();
    let repeated: BTreeSet<(i8, &str)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.as_str()))
        .filter(|key| !seen.insert(*key))
        .collect();
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
        let name = resource.resource_name.clone();
        match resource.resource_type {
            kind if repeated.contains(&(kind, name.as_str())) => {
                refuse(ErrorCode::InvalidRequest, "Each resource must appear at most once.".to_string())
            }
            RESOURCE_TOPIC if name.is_empty() => {
                refuse(ErrorCode::InvalidRequest, "Default topic resources are not allowed.".to_string())
            }
            RESOURCE_TOPIC => match changes(resource) {
                Ok(changes) => topics.push((name, changes)),
                Err(message) => refuse(ErrorCode::InvalidRequest, message),
            },
            RESOURCE_BROKER => match check_broker_resource(broker, &name)
                .and_then(|()| changes(resource).map_err(|message| (ErrorCode::InvalidRequest, message)))
            {
                Ok(changes) => brokers.push((name, BrokerConfigUpdate::Changes(changes))),
                Err((code, message)) => refuse(code, message),
            },
            other => refuse(ErrorCode::InvalidRequest, format!("Unknown resource type {other}")),
        }
        responses.push(result);
    }
    let validate_only = request.validate_only;
    if !topics.is_empty() {
        let outcomes = submit(broker, ControllerRequest::AlterTopicConfigs { topics, validate_only }).await;
        settle(&mut responses, outcomes, RESOURCE_TOPIC);
    }
    if !brokers.is_empty() {
        let outcomes =
            submit(broker, ControllerRequest::AlterBrokerConfigs { resources: brokers, validate_only }).await;
        settle(&mut responses, outcomes, RESOURCE_BROKER);
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
