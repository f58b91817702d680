//! CreateTopics: validated and applied by the controller (shard 0).

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::metadata::controller::{ControllerRequest, ControllerResponse, NewTopic, TopicError};
use crate::broker::topic_config::TopicConfig;
use crate::protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, CreateTopicsResponseConfig, CreateTopicsResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader, Uuid};
use crate::protocol::{Reply, respond};

/// CreateTopics.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: CreateTopicsRequest) -> Reply {
    let mut duplicates = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut topics = Vec::new();
    for topic in request.topics {
        if !seen.insert(topic.name.clone()) {
            duplicates.push(topic.name);
            continue;
        }
        let configs: BTreeMap<String, String> =
            topic.configs.into_iter().filter_map(|c| Some((c.name, c.value?))).collect();
        topics.push(NewTopic {
            name: topic.name,
            partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: topic.assignments.into_iter().map(|a| (a.partition_index, a.broker_ids)).collect(),
            configs,
        });
    }
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let request = ControllerRequest::CreateTopics { topics, validate_only: request.validate_only };
    let results = match broker.metadata.control(request).await {
        Ok(ControllerResponse::CreateTopics(results)) => results,
        _ => names.into_iter().map(|n| (n, Err(TopicError::Storage("controller unavailable".into())))).collect(),
    };
    let mut out: Vec<CreateTopicsResponseTopic> = results
        .into_iter()
        .map(|(name, result)| match result {
            Ok(created) => CreateTopicsResponseTopic {
                name,
                topic_id: Uuid(created.id.0),
                num_partitions: created.partitions,
                replication_factor: created.replication_factor,
                configs: Some(
                    TopicConfig::resolve(&broker.metadata.topic_defaults(), &created.configs)
                        .map(|config| config.describe())
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| CreateTopicsResponseConfig {
                            name: c.def.name.to_string(),
                            value: Some(c.value),
                            read_only: false,
                            config_source: c.source.wire(),
                            is_sensitive: false,
                        })
                        .collect(),
                ),
                ..Default::default()
            },
            Err(e) => CreateTopicsResponseTopic {
                name,
                error_code: ErrorCode::from(&e).code(),
                error_message: Some(e.to_string()),
                num_partitions: -1,
                replication_factor: -1,
                ..Default::default()
            },
        })
        .collect();
    for name in duplicates {
        out.push(CreateTopicsResponseTopic {
            name,
            error_code: ErrorCode::InvalidRequest.code(),
            error_message: Some("topic named more than once in the request".into()),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        });
    }
    respond(header, &CreateTopicsResponse { topics: out, ..Default::default() })
}
