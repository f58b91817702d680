//! Topic administration as decisions over the metadata image: create and delete topics, add
//! partitions, change topic configs. [`decide`] is pure; `Metadata::control` runs it on shard 0
//! alone (so changes are serialised), persists the new image and installs it on every shard in
//! two phases (open the new partitions everywhere, then swap the image and close what was
//! removed), so no shard advertises a partition whose log is not open.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::info;

use super::image::{MetadataImage, PartitionMeta, TopicMeta};
use crate::broker::config::BrokerConfig;
use crate::broker::topic_config::{TopicConfig, topic_config_names};
use crate::limits::{PARTITIONS_PER_TOPIC_MAX, PRODUCER_ID_BLOCK_SIZE};
use crate::model::{TopicId, validate_topic_name};
use crate::protocol::ErrorCode;

/// Why a topic operation failed; each maps to Kafka's error code for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The name breaks Kafka's rules.
    #[error("invalid topic name: {0}")]
    InvalidName(String),
    /// A topic with this name exists.
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    /// No such topic.
    #[error("unknown topic")]
    Unknown,
    /// A bad partition count.
    #[error("{0}")]
    InvalidPartitions(String),
    /// A replication factor this cluster cannot provide.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// A bad config name or value.
    #[error("{0}")]
    InvalidConfig(String),
    /// Manual replica assignment names a broker or layout this cluster does not have.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// The metadata could not be persisted or installed.
    #[error("{0}")]
    Storage(String),
    /// Topics whose names start with `__` are the broker's own.
    #[error("topic '{0}' is internal")]
    Internal(String),
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Its name.
    pub name: String,
    /// Partitions, or -1 for the broker default.
    pub partitions: i32,
    /// Replication factor, or -1 for the broker default (1 on a single broker).
    pub replication_factor: i16,
    /// Whether replicas were assigned by hand (only this broker is accepted).
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
}

/// A created topic's facts, for the CreateTopics response.
#[derive(Debug, Clone)]
pub struct CreatedTopic {
    /// Its id.
    pub id: TopicId,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Effective configs with sources.
    pub config: TopicConfig,
}

/// Requests for the controller (shard 0).
#[derive(Debug)]
pub enum ControllerRequest {
    /// CreateTopics.
    CreateTopics {
        /// The topics.
        topics: Vec<NewTopic>,
        /// Only check, change nothing.
        validate_only: bool,
    },
    /// DeleteTopics, by name.
    DeleteTopics(Vec<String>),
    /// CreatePartitions: grow each topic to a new total.
    CreatePartitions {
        /// (topic, new total count).
        topics: Vec<(String, i32)>,
        /// Only check, change nothing.
        validate_only: bool,
    },
    /// IncrementalAlterConfigs for topics: each topic's changes, applied in order.
    AlterTopicConfigs {
        /// (topic, its changes).
        topics: Vec<(String, Vec<ConfigChange>)>,
        /// Only check, change nothing.
        validate_only: bool,
    },
    /// A block of [`PRODUCER_ID_BLOCK_SIZE`] producer ids for one shard.
    AllocateProducerIds,
}

/// One change of IncrementalAlterConfigs to a topic's config overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Set the override.
    Set(String, String),
    /// Remove the override: the broker's value or Kafka's default applies again.
    Delete(String),
    /// Add a value to a list config (`cleanup.policy`) unless it is there.
    Append(String, String),
    /// Remove a value from a list config.
    Subtract(String, String),
}

impl ConfigChange {
    /// The config name the change is about.
    pub fn name(&self) -> &str {
        match self {
            ConfigChange::Set(name, _)
            | ConfigChange::Delete(name)
            | ConfigChange::Append(name, _)
            | ConfigChange::Subtract(name, _) => name,
        }
    }
}

/// Answers from the controller.
#[derive(Debug)]
pub enum ControllerResponse {
    /// Per topic.
    CreateTopics(Vec<(String, Result<CreatedTopic, TopicError>)>),
    /// Per topic.
    DeleteTopics(Vec<(String, Result<TopicId, TopicError>)>),
    /// Per topic.
    CreatePartitions(Vec<(String, Result<(), TopicError>)>),
    /// Per topic.
    AlterTopicConfigs(Vec<(String, Result<(), TopicError>)>),
    /// The ids `start..end`, the block's own.
    ProducerIds(Result<std::ops::Range<i64>, TopicError>),
}

impl ControllerResponse {
    /// Fails every topic that succeeded with `error` (the new image could not be installed).
    pub(crate) fn fail_successes(&mut self, error: &TopicError) {
        fn fail<T>(results: &mut [(String, Result<T, TopicError>)], error: &TopicError) {
            for (_, result) in results.iter_mut() {
                if result.is_ok() {
                    *result = Err(error.clone());
                }
            }
        }
        match self {
            ControllerResponse::CreateTopics(r) => fail(r, error),
            ControllerResponse::DeleteTopics(r) => fail(r, error),
            ControllerResponse::CreatePartitions(r) => fail(r, error),
            ControllerResponse::AlterTopicConfigs(r) => fail(r, error),
            ControllerResponse::ProducerIds(r) => {
                if r.is_ok() {
                    *r = Err(error.clone());
                }
            }
        }
    }

    /// Logs what changed, once the new image is installed.
    pub(crate) fn log_changes(&self) {
        match self {
            ControllerResponse::CreateTopics(results) => {
                for (name, created) in results.iter().filter_map(|(n, r)| r.as_ref().ok().map(|c| (n, c))) {
                    info!(topic = %name, partitions = created.partitions, "topic created");
                }
            }
            ControllerResponse::DeleteTopics(results) => {
                for (name, _) in results.iter().filter(|(_, r)| r.is_ok()) {
                    info!(topic = %name, "topic deleted");
                }
            }
            ControllerResponse::CreatePartitions(_) => {}
            ControllerResponse::ProducerIds(Ok(ids)) => {
                info!(start = ids.start, end = ids.end, "producer id block allocated");
            }
            ControllerResponse::ProducerIds(Err(_)) => {}
            ControllerResponse::AlterTopicConfigs(results) => {
                for (name, _) in results.iter().filter(|(_, r)| r.is_ok()) {
                    info!(topic = %name, "topic configs altered");
                }
            }
        }
    }

    /// Whether any topic succeeded (only then is there a new image to install).
    fn any_succeeded(&self) -> bool {
        match self {
            ControllerResponse::CreateTopics(r) => r.iter().any(|(_, r)| r.is_ok()),
            ControllerResponse::DeleteTopics(r) => r.iter().any(|(_, r)| r.is_ok()),
            ControllerResponse::CreatePartitions(r) => r.iter().any(|(_, r)| r.is_ok()),
            ControllerResponse::AlterTopicConfigs(r) => r.iter().any(|(_, r)| r.is_ok()),
            ControllerResponse::ProducerIds(r) => r.is_ok(),
        }
    }
}

/// What the controller decided: the answer, and the image to persist and install first if
/// anything changed.
pub struct Decision {
    /// The next image, if the request changes the metadata.
    pub image: Option<MetadataImage>,
    /// The answer (each success stands only once `image` is installed).
    pub response: ControllerResponse,
}

/// Decides a controller request against the current image. Pure: the caller persists and
/// installs the new image (see `Metadata::control` on shard 0), one request at a time.
pub fn decide(current: &MetadataImage, config: &BrokerConfig, request: ControllerRequest) -> Decision {
    let mut image = current.clone();
    let (validate_only, response) = match request {
        ControllerRequest::CreateTopics { topics, validate_only } => {
            (validate_only, ControllerResponse::CreateTopics(create_topics(&mut image, config, topics, validate_only)))
        }
        ControllerRequest::DeleteTopics(names) => {
            (false, ControllerResponse::DeleteTopics(delete_topics(&mut image, names)))
        }
        ControllerRequest::CreatePartitions { topics, validate_only } => (
            validate_only,
            ControllerResponse::CreatePartitions(create_partitions(&mut image, config, topics, validate_only)),
        ),
        ControllerRequest::AlterTopicConfigs { topics, validate_only } => (
            validate_only,
            ControllerResponse::AlterTopicConfigs(alter_topic_configs(&mut image, config, topics, validate_only)),
        ),
        ControllerRequest::AllocateProducerIds => {
            let start = image.next_producer_id.max(0);
            let ids = match start.checked_add(PRODUCER_ID_BLOCK_SIZE) {
                Some(end) => {
                    image.next_producer_id = end;
                    Ok(start..end)
                }
                None => Err(TopicError::Storage("producer ids are exhausted".into())),
            };
            (false, ControllerResponse::ProducerIds(ids))
        }
    };
    let changed = !validate_only && response.any_succeeded();
    Decision { image: changed.then_some(image), response }
}

fn create_topics(
    image: &mut MetadataImage,
    config: &BrokerConfig,
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> Vec<(String, Result<CreatedTopic, TopicError>)> {
    let mut results = Vec::new();
    for topic in topics {
        let result = check_new_topic(image, config, &topic).and_then(|(partitions, topic_config)| {
            let placement = image.place_partitions(config.shards, partitions as usize);
            let id = TopicId::random().map_err(|e| TopicError::Storage(e.to_string()))?;
            if !validate_only {
                let meta =
                    TopicMeta { name: topic.name.clone(), id, partitions: placement, configs: topic.configs.clone() };
                image.topics.insert(topic.name.clone(), Arc::new(meta));
            }
            Ok(CreatedTopic { id, partitions, replication_factor: 1, config: topic_config })
        });
        results.push((topic.name, result));
    }
    results
}

fn check_new_topic(
    image: &MetadataImage,
    config: &BrokerConfig,
    topic: &NewTopic,
) -> Result<(i32, TopicConfig), TopicError> {
    validate_topic_name(&topic.name).map_err(|e| TopicError::InvalidName(e.to_string()))?;
    if image.topics.contains_key(&topic.name) {
        return Err(TopicError::AlreadyExists(topic.name.clone()));
    }
    let partitions = if !topic.assignments.is_empty() {
        for (_, replicas) in &topic.assignments {
            if replicas.iter().any(|&r| r != config.node_id) || replicas.len() != 1 {
                return Err(TopicError::InvalidReplicaAssignment(format!(
                    "replicas must be exactly this broker ({})",
                    config.node_id
                )));
            }
        }
        i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX)
    } else if topic.partitions == -1 {
        config.default_partitions
    } else {
        topic.partitions
    };
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return Err(TopicError::InvalidPartitions(format!(
            "number of partitions must be in 1..={PARTITIONS_PER_TOPIC_MAX}, got {partitions}"
        )));
    }
    if topic.replication_factor != -1 && topic.replication_factor != 1 {
        return Err(TopicError::InvalidReplicationFactor(format!(
            "replication factor {} is larger than the 1 available broker",
            topic.replication_factor
        )));
    }
    let topic_config = TopicConfig::resolve(&config.log_defaults, &topic.configs)
        .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
    Ok((partitions, topic_config))
}

fn delete_topics(image: &mut MetadataImage, names: Vec<String>) -> Vec<(String, Result<TopicId, TopicError>)> {
    let mut results = Vec::new();
    for name in names {
        let result = match image.topics.remove(&name) {
            Some(topic) => Ok(topic.id),
            None => Err(TopicError::Unknown),
        };
        results.push((name, result));
    }
    results
}

fn create_partitions(
    image: &mut MetadataImage,
    config: &BrokerConfig,
    topics: Vec<(String, i32)>,
    validate_only: bool,
) -> Vec<(String, Result<(), TopicError>)> {
    let mut results = Vec::new();
    for (name, count) in topics {
        let result = match image.topics.get(&name) {
            None => Err(TopicError::Unknown),
            Some(topic) => {
                let current = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
                if count <= current {
                    Err(TopicError::InvalidPartitions(format!(
                        "topic currently has {current} partitions, which is not fewer than the requested {count}"
                    )))
                } else if count > PARTITIONS_PER_TOPIC_MAX {
                    Err(TopicError::InvalidPartitions(format!("at most {PARTITIONS_PER_TOPIC_MAX} partitions")))
                } else {
                    let mut grown = (**topic).clone();
                    let added = image.place_partitions(config.shards, (count - current) as usize);
                    grown.partitions.extend::<Vec<PartitionMeta>>(added);
                    if !validate_only {
                        image.topics.insert(name.clone(), Arc::new(grown));
                    }
                    Ok(())
                }
            }
        };
        results.push((name, result));
    }
    results
}

/// Applies each topic's config changes to its overrides and validates the result as
/// CreateTopics validates configs; open partitions take the new config when the image is
/// installed, and the image on disk keeps it.
fn alter_topic_configs(
    image: &mut MetadataImage,
    config: &BrokerConfig,
    topics: Vec<(String, Vec<ConfigChange>)>,
    validate_only: bool,
) -> Vec<(String, Result<(), TopicError>)> {
    let mut results = Vec::new();
    for (name, changes) in topics {
        let result = match image.topics.get(&name).cloned() {
            None => Err(TopicError::Unknown),
            Some(topic) => apply_config_changes(&topic.configs, &changes).and_then(|configs| {
                TopicConfig::resolve(&config.log_defaults, &configs)
                    .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
                if !validate_only {
                    let mut altered = (*topic).clone();
                    altered.configs = configs;
                    image.topics.insert(name.clone(), Arc::new(altered));
                }
                Ok(())
            }),
        };
        results.push((name, result));
    }
    results
}

/// `overrides` after `changes`, in order. Names must be topic configs the broker knows (a typo
/// is refused rather than stored); values are checked later, on the whole result.
pub fn apply_config_changes(
    overrides: &BTreeMap<String, String>,
    changes: &[ConfigChange],
) -> Result<BTreeMap<String, String>, TopicError> {
    let known = topic_config_names();
    let mut out = overrides.clone();
    for change in changes {
        let name = change.name();
        if !known.contains(&name) {
            return Err(TopicError::InvalidConfig(format!("unknown topic config '{name}'")));
        }
        match change {
            ConfigChange::Set(name, value) => {
                out.insert(name.clone(), value.clone());
            }
            ConfigChange::Delete(name) => {
                out.remove(name);
            }
            ConfigChange::Append(name, value) | ConfigChange::Subtract(name, value) => {
                if name != LIST_CONFIG {
                    return Err(TopicError::InvalidConfig(format!("'{name}' is not a list config")));
                }
                // The current list: the override, else what the topic has by default.
                let current = match out.get(name) {
                    Some(list) => list.clone(),
                    None => LIST_CONFIG_DEFAULT.to_string(),
                };
                let mut items: Vec<&str> = current.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                if matches!(change, ConfigChange::Append(..)) {
                    if !items.contains(&value.as_str()) {
                        items.push(value);
                    }
                } else {
                    items.retain(|item| item != value);
                }
                out.insert(name.clone(), items.join(","));
            }
        }
    }
    Ok(out)
}

/// The only list-typed topic config the broker has, and its Kafka default.
const LIST_CONFIG: &str = "cleanup.policy";
const LIST_CONFIG_DEFAULT: &str = "delete";

impl From<&TopicError> for ErrorCode {
    fn from(e: &TopicError) -> Self {
        match e {
            TopicError::InvalidName(_) | TopicError::Internal(_) => ErrorCode::InvalidTopicException,
            TopicError::AlreadyExists(_) => ErrorCode::TopicAlreadyExists,
            TopicError::Unknown => ErrorCode::UnknownTopicOrPartition,
            TopicError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
            TopicError::InvalidReplicationFactor(_) => ErrorCode::InvalidReplicationFactor,
            TopicError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            TopicError::InvalidReplicaAssignment(_) => ErrorCode::InvalidReplicaAssignment,
            TopicError::Storage(_) => ErrorCode::KafkaStorageError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_changes_apply_in_order() {
        let start = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let changes = [
            ConfigChange::Set("segment.bytes".into(), "1048576".into()),
            ConfigChange::Delete("retention.ms".into()),
            ConfigChange::Append("cleanup.policy".into(), "compact".into()),
            ConfigChange::Append("cleanup.policy".into(), "compact".into()),
        ];
        let out = apply_config_changes(&start, &changes).unwrap();
        assert_eq!(out.get("segment.bytes").map(String::as_str), Some("1048576"));
        assert!(!out.contains_key("retention.ms"));
        assert_eq!(out.get("cleanup.policy").map(String::as_str), Some("delete,compact"));
        let out = apply_config_changes(&out, &[ConfigChange::Subtract("cleanup.policy".into(), "delete".into())]);
        assert_eq!(out.unwrap().get("cleanup.policy").map(String::as_str), Some("compact"));
        let unknown = apply_config_changes(&start, &[ConfigChange::Set("retention.msx".into(), "1".into())]);
        assert!(matches!(unknown, Err(TopicError::InvalidConfig(_))));
        let not_list = apply_config_changes(&start, &[ConfigChange::Append("retention.ms".into(), "1".into())]);
        assert!(matches!(not_list, Err(TopicError::InvalidConfig(_))));
    }
}
