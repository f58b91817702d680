//! AlterConfigs (the non-incremental one, still sent by `kafka-configs`, kafka-python and
//! librdkafka's `alter_configs`): each resource's configs are replaced by the set given. For a
//! topic that is its whole override set; for a broker (`""`: every broker's cluster-wide
//! default, `"<id>"`: the receiving broker) its dynamic configs. Decided by the controller, as
//! IncrementalAlterConfigs is, whose handler shares [`check_broker_resource`] and [`submit`].

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::metadata::controller::{BrokerConfigUpdate, ControllerRequest, ControllerResponse, TopicError};
use crate::protocol::messages::{
    AlterConfigsRequest, AlterConfigsRequestResource, AlterConfigsResponse, AlterConfigsResponseResult,
    IncrementalAlterConfigsResponseResult,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// Kafka's `ConfigResource.Type` ids.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
/// See [`RESOURCE_TOPIC`].
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// A resource's refusal: Kafka's code and message.
pub(crate) type Refusal = (ErrorCode, String);

/// Kafka's check of a BROKER resource a broker receives (`ConfigAdminManager.
/// validateResourceNameIsCurrentNodeId`): `""` (the cluster-wide default, forwarded to the
/// controller) or this broker's own id.
pub(crate) fn check_broker_resource(broker: &ShardBroker, name: &str) -> Result<(), Refusal> {
    if name.is_empty() {
        return Ok(());
    }
    let me = broker.config.node_id;
    match name.parse::<i32>() {
        Ok(id) if id == me => Ok(()),
        Ok(_) => Err((ErrorCode::InvalidRequest, format!("Unexpected broker id, expected {me}, but received {name}"))),
        Err(_) => Err((ErrorCode::InvalidRequest, format!("Node id must be an integer, but it is: {name}"))),
    }
}

/// Sends `request` (an alteration of topic or broker configs) to the controller and answers
/// each resource's refusal, if any, by name.
pub(crate) async fn submit(broker: &Rc<ShardBroker>, request: ControllerRequest) -> Vec<(String, Option<Refusal>)> {
    let unavailable = request.fail_all(&TopicError::NoController("controller unavailable".into()));
    let response = broker.metadata.control(request).await.unwrap_or(unavailable);
    let results = match response {
        ControllerResponse::AlterTopicConfigs(results) | ControllerResponse::AlterBrokerConfigs(results) => results,
        _ => Vec::new(),
    };
    results
        .into_iter()
        .map(|(name, result)| (name, result.err().map(|e| (ErrorCode::from(&e), e.to_string()))))
        .collect()
}

/// A per-resource result of AlterConfigs or IncrementalAlterConfigs.
pub(crate) trait ResourceResult {
    /// (resource type, resource name), and whether it is refused already.
    fn key(&self) -> (i8, &str, bool);
    /// Refuses it.
    fn refuse(&mut self, refusal: Refusal);
}

impl ResourceResult for AlterConfigsResponseResult {
    fn key(&self) -> (i8, &str, bool) {
        (self.resource_type, &self.resource_name, self.error_code != 0)
    }

    fn refuse(&mut self, (code, message): Refusal) {
        self.error_code = code.code();
        self.error_message = Some(message);
    }
}

impl ResourceResult for IncrementalAlterConfigsResponseResult {
    fn key(&self) -> (i8, &str, bool) {
        (self.resource_type, &self.resource_name, self.error_code != 0)
    }

    fn refuse(&mut self, (code, message): Refusal) {
        self.error_code = code.code();
        self.error_message = Some(message);
    }
}

/// Sets each outcome's refusal on the (not yet refused) result of the resource of
/// `resource_type` it names.
pub(crate) fn settle(results: &mut [impl ResourceResult], outcomes: Vec<(String, Option<Refusal>)>, resource_type: i8) {
    for (name, outcome) in outcomes {
        let Some(refusal) = outcome else { continue };
        if let Some(result) = results.iter_mut().find(|r| r.key() == (resource_type, name.as_str(), false)) {
            result.refuse(refusal);
        }
    }
}

/// A resource's new configs, or Kafka's INVALID_REQUEST for a malformed one.
fn configs(resource: &AlterConfigsRequestResource) -> Result<BTreeMap<String, String>, Refusal> {
    let mut out = BTreeMap::new();
    let mut nulls = Vec::new();
    for config in &resource.configs {
        let value = match &config.value {
            Some(value) => value.clone(),
            None => {
                nulls.push(config.name.as_str());
                String::new()
            }
        };
        if out.insert(config.name.clone(), value).is_some() {
            return Err((ErrorCode::InvalidRequest, "Error due to duplicate config keys".into()));
        }
    }
    if !nulls.is_empty() {
        return Err((ErrorCode::InvalidRequest, format!("Null value not supported for : {}", nulls.join(", "))));
    }
    Ok(out)
}

/// AlterConfigs.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: AlterConfigsRequest) -> Reply {
    let mut seen = BTreeSet::new();
    let repeated: BTreeSet<(i8, &str)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.as_str()))
        .filter(|key| !seen.insert(*key))
        .collect();
    let mut responses = Vec::with_capacity(request.resources.len());
    let (mut topics, mut brokers) = (Vec::new(), Vec::new());
    for resource in &request.resources {
        let name = resource.resource_name.clone();
        let checked = if repeated.contains(&(resource.resource_type, resource.resource_name.as_str())) {
            Err((ErrorCode::InvalidRequest, "Each resource must appear at most once.".to_string()))
        } else {
            configs(resource).and_then(|configs| match resource.resource_type {
                RESOURCE_TOPIC if name.is_empty() => {
                    Err((ErrorCode::InvalidRequest, "Default topic resources are not allowed.".into()))
                }
                RESOURCE_TOPIC => {
                    topics.push((name.clone(), configs));
                    Ok(())
                }
                RESOURCE_BROKER => check_broker_resource(broker, &name).map(|()| {
                    brokers.push((name.clone(), BrokerConfigUpdate::Replace(configs)));
                }),
                other => Err((ErrorCode::InvalidRequest, format!("Unknown resource type {other}"))),
            })
        };
        let (error_code, error_message) = match checked {
            Ok(()) => (0, None),
            Err((code, message)) => (code.code(), Some(message)),
        };
        responses.push(AlterConfigsResponseResult {
            error_code,
            error_message,
            resource_type: resource.resource_type,
            resource_name: name,
        });
    }
    let validate_only = request.validate_only;
    if !topics.is_empty() {
        let outcomes = submit(broker, ControllerRequest::ReplaceTopicConfigs { topics, validate_only }).await;
        settle(&mut responses, outcomes, RESOURCE_TOPIC);
    }
    if !brokers.is_empty() {
        let outcomes =
            submit(broker, ControllerRequest::AlterBrokerConfigs { resources: brokers, validate_only }).await;
        settle(&mut responses, outcomes, RESOURCE_BROKER);
    }
    respond(header, &AlterConfigsResponse { responses, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::AlterConfigsRequestConfig;

    fn resource(configs: &[(&str, Option<&str>)]) -> AlterConfigsRequestResource {
        AlterConfigsRequestResource {
            resource_type: RESOURCE_TOPIC,
            resource_name: "t".into(),
            configs: configs
                .iter()
                .map(|(name, value)| AlterConfigsRequestConfig {
                    name: name.to_string(),
                    value: value.map(str::to_string),
                })
                .collect(),
        }
    }

    #[test]
    fn a_resource_is_a_whole_set_without_nulls_or_repeats() {
        let set = configs(&resource(&[("retention.ms", Some("1")), ("segment.bytes", Some("1048576"))])).unwrap();
        assert_eq!(set.len(), 2);
        assert!(configs(&resource(&[])).unwrap().is_empty());
        let repeated = configs(&resource(&[("a", Some("1")), ("a", Some("2"))])).unwrap_err();
        assert_eq!(repeated, (ErrorCode::InvalidRequest, "Error due to duplicate config keys".into()));
        let null = configs(&resource(&[("a", None), ("b", Some("1"))])).unwrap_err();
        assert_eq!(null, (ErrorCode::InvalidRequest, "Null value not supported for : a".into()));
    }
}
