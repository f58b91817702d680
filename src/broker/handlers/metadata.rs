//! Metadata: the live brokers, the controller, and topics with their partitions (leader, leader
//! epoch, replicas, ISR, offline replicas), from this broker's image. Creates unknown topics when
//! `--auto-create-topics` is on and the client allows it.

use std::rc::Rc;
use std::sync::Arc;

use crate::broker::ShardBroker;
use crate::broker::metadata::controller::{ControllerRequest, ControllerResponse, NewTopic};
use crate::broker::metadata::image::{MetadataImage, NO_LEADER, TopicMeta};
use crate::broker::metadata::is_internal_topic;
use crate::model::{TopicId, validate_topic_name};
use crate::protocol::messages::{
    MetadataRequest, MetadataRequestTopic, MetadataResponse, MetadataResponseBroker, MetadataResponsePartition,
    MetadataResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader, Uuid};
use crate::protocol::{Reply, respond};

/// With no authorizer every operation is allowed; Kafka then reports these bit fields (bit n =
/// ACL operation n) when a client asks: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS on topics.
pub(crate) const TOPIC_AUTHORIZED_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE on the
/// cluster.
pub(crate) const CLUSTER_AUTHORIZED_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

/// The live brokers (id, host, port) as clients see them: this one alone while its image has no
/// registration yet.
pub(crate) fn live_brokers(broker: &ShardBroker, image: &MetadataImage) -> Vec<(i32, String, i32)> {
    let live: Vec<(i32, String, i32)> =
        image.live_brokers().map(|b| (b.id, b.host.clone(), i32::from(b.port))).collect();
    if live.is_empty() {
        let config = &broker.config;
        return vec![(config.node_id, config.advertised_host.clone(), i32::from(config.advertised_port))];
    }
    live
}

/// The controller clients are told of: the metadata quorum's leader when it is a live broker,
/// else this broker (any broker forwards what it receives to the quorum, as in KRaft).
pub(crate) fn controller_id(broker: &ShardBroker, image: &MetadataImage) -> i32 {
    broker.metadata.controller().filter(|id| image.is_live(*id)).unwrap_or(broker.config.node_id)
}

/// Creates `names` with the broker's defaults (auto-creation), returning which failed.
pub(crate) async fn auto_create(broker: &Rc<ShardBroker>, names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    let topics = names
        .into_iter()
        .map(|name| NewTopic {
            name,
            partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Default::default(),
        })
        .collect();
    let request = ControllerRequest::CreateTopics { topics, validate_only: false };
    if let Ok(ControllerResponse::CreateTopics(results)) = broker.metadata.control(request).await {
        for (name, result) in results {
            if let Err(e) = result {
                tracing::info!(topic = %name, error = %e, "auto-creation failed");
            }
        }
    }
}

fn describe(image: &MetadataImage, topic: &TopicMeta) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: 0,
        name: Some(topic.name.clone()),
        topic_id: Uuid(topic.id.0),
        is_internal: is_internal_topic(&topic.name),
        partitions: topic
            .partitions
            .iter()
            .enumerate()
            .map(|(index, p)| MetadataResponsePartition {
                // Kafka: a partition without a leader is listed with LEADER_NOT_AVAILABLE.
                error_code: if p.leader == NO_LEADER { ErrorCode::LeaderNotAvailable.code() } else { 0 },
                partition_index: i32::try_from(index).unwrap_or(i32::MAX),
                leader_id: p.leader,
                leader_epoch: p.leader_epoch,
                replica_nodes: p.replicas.clone(),
                isr_nodes: p.isr.clone(),
                offline_replicas: image.offline_replicas(p),
            })
            .collect(),
        ..Default::default()
    }
}

/// The topic a request entry names, or its error. A non-zero id wins over the name, as in
/// Kafka: the Java admin asks by id with the name left empty (not null), which is no topic name.
fn lookup<'a>(image: &'a MetadataImage, topic: &MetadataRequestTopic) -> Result<&'a Arc<TopicMeta>, ErrorCode> {
    let name = match topic.name.as_deref() {
        Some(name) if topic.topic_id == Uuid::default() => name,
        _ => return image.topic_by_id(TopicId(topic.topic_id.0)).ok_or(ErrorCode::UnknownTopicId),
    };
    match image.topics.get(name) {
        Some(meta) => Ok(meta),
        None if validate_topic_name(name).is_err() => Err(ErrorCode::InvalidTopicException),
        None => Err(ErrorCode::UnknownTopicOrPartition),
    }
}

/// Metadata.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: MetadataRequest) -> Reply {
    // v0: an empty list means every topic; v1+: null means every topic.
    let requested = match request.topics {
        Some(topics) if !(header.api_version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    let allow_create = request.allow_auto_topic_creation || header.api_version < 4;
    let mut topics = Vec::new();
    match requested {
        None => {
            let image = broker.metadata.image();
            topics.extend(image.topics.values().map(|t| describe(&image, t)));
        }
        Some(wanted) => {
            if broker.config.auto_create_topics && allow_create {
                let image = broker.metadata.image();
                let missing: Vec<String> = wanted
                    .iter()
                    .filter(|t| t.topic_id == Uuid::default())
                    .filter_map(|t| t.name.clone())
                    .filter(|n| !image.topics.contains_key(n) && validate_topic_name(n).is_ok())
                    .collect();
                auto_create(broker, missing).await;
            }
            let image = broker.metadata.image();
            for topic in wanted {
                topics.push(match lookup(&image, &topic) {
                    Ok(meta) => describe(&image, meta),
                    Err(error) => MetadataResponseTopic {
                        error_code: error.code(),
                        // Asked by id: Kafka answers an unknown id without a name.
                        name: if error == ErrorCode::UnknownTopicId { None } else { topic.name.clone() },
                        topic_id: topic.topic_id,
                        ..Default::default()
                    },
                });
            }
        }
    }
    if request.include_topic_authorized_operations {
        for topic in &mut topics {
            if topic.error_code == 0 {
                topic.topic_authorized_operations = TOPIC_AUTHORIZED_OPERATIONS;
            }
        }
    }
    let image = broker.metadata.image();
    let response = MetadataResponse {
        brokers: live_brokers(broker, &image)
            .into_iter()
            .map(|(node_id, host, port)| MetadataResponseBroker { node_id, host, port, rack: None })
            .collect(),
        cluster_id: Some(image.cluster_id.clone()),
        controller_id: controller_id(broker, &image),
        topics,
        cluster_authorized_operations: if request.include_cluster_authorized_operations {
            CLUSTER_AUTHORIZED_OPERATIONS
        } else {
            i32::MIN
        },
        ..Default::default()
    };
    respond(header, &response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> MetadataImage {
        let topic =
            TopicMeta { name: "t".into(), id: TopicId([7; 16]), partitions: Vec::new(), configs: Default::default() };
        MetadataImage { topics: [("t".to_string(), Arc::new(topic))].into(), ..Default::default() }
    }

    fn ask(name: Option<&str>, id: [u8; 16]) -> MetadataRequestTopic {
        MetadataRequestTopic { name: name.map(str::to_string), topic_id: Uuid(id) }
    }

    #[test]
    fn an_id_wins_over_the_name() {
        let image = image();
        // The Java admin's describeTopics(ofTopicIds): the id, and an empty name.
        assert_eq!(lookup(&image, &ask(Some(""), [7; 16])).map(|t| t.name.as_str()), Ok("t"));
        assert_eq!(lookup(&image, &ask(None, [7; 16])).map(|t| t.name.as_str()), Ok("t"));
        assert_eq!(lookup(&image, &ask(Some("t"), [8; 16])).err(), Some(ErrorCode::UnknownTopicId));
        assert_eq!(lookup(&image, &ask(Some("t"), [0; 16])).map(|t| t.name.as_str()), Ok("t"));
        assert_eq!(lookup(&image, &ask(Some("u"), [0; 16])).err(), Some(ErrorCode::UnknownTopicOrPartition));
        assert_eq!(lookup(&image, &ask(Some("bad/name"), [0; 16])).err(), Some(ErrorCode::InvalidTopicException));
        assert_eq!(lookup(&image, &ask(None, [0; 16])).err(), Some(ErrorCode::UnknownTopicId));
    }
}
