//! Topic administration as decisions over the metadata image: create and delete topics, add
//! partitions, change topic configs, allocate producer ids, elect preferred or unclean leaders,
//! and change a partition's ISR at its leader's request (AlterPartition). [`decide`]
//! is pure. Whichever broker receives a request sends it to the metadata quorum's leader (the
//! controller), which decides it on its committed image, one request at a time, and commits the
//! records that make the new image (`cluster::node`); every broker then installs that image on
//! its shards in two phases (open the new partitions, then swap the image and close what was
//! removed), so no shard advertises a partition whose log is not open.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracing::{info, warn};

use serde::{Deserialize, Serialize};

use super::image::{MetadataImage, NO_LEADER, NodeId, PartitionMeta, TopicMeta};
use crate::broker::config::BrokerConfig;
use crate::broker::topic_config::{
    ConfigType, TopicConfig, dynamic_broker_config, topic_config_def, validate_dynamic_broker_configs,
};
use crate::cluster::brokers::{IsrChangeError, alter_isr};
use crate::limits::{PARTITIONS_PER_TOPIC_MAX, PRODUCER_ID_BLOCK_SIZE};
use crate::model::{TopicId, validate_topic_name};
use crate::protocol::ErrorCode;

/// Why a topic operation failed; each maps to Kafka's error code for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
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
    /// A broker's configured limit (`--max-partitions`) would be passed.
    #[error("{0}")]
    PolicyViolation(String),
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
    /// A request that contradicts itself.
    #[error("{0}")]
    InvalidRequest(String),
    /// ElectLeaders: the preferred replica leads already.
    #[error("the preferred replica leads already")]
    ElectionNotNeeded,
    /// ElectLeaders: the preferred replica is not live and in sync.
    #[error("{0}")]
    PreferredLeaderNotAvailable(String),
    /// ElectLeaders: no replica may take over a leaderless partition (none is live).
    #[error("{0}")]
    EligibleLeadersNotAvailable(String),
    /// AlterPartition: the sender is not the leader, or leads an older epoch.
    #[error("{0}")]
    FencedLeaderEpoch(String),
    /// AlterPartition: the sender's partition epoch is not the current one.
    #[error("{0}")]
    InvalidUpdateVersion(String),
    /// AlterPartition: the new ISR adds a fenced broker.
    #[error("{0}")]
    IneligibleReplica(String),
    /// Topics whose names start with `__` are the broker's own.
    #[error("topic '{0}' is internal")]
    Internal(String),
    /// The metadata quorum has no controller, or the change did not commit in time.
    #[error("{0}")]
    NoController(String),
}

/// A topic to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewTopic {
    /// Its name.
    pub name: String,
    /// Partitions, or -1 for the broker default.
    pub partitions: i32,
    /// Replication factor, or -1 for the broker default (`--default-replication-factor`).
    pub replication_factor: i16,
    /// Replicas assigned by hand: (partition, brokers), the preferred leader first.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
}

/// A created topic's facts, for the CreateTopics response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedTopic {
    /// Its id.
    pub id: TopicId,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Its config overrides (the receiving broker resolves them over its defaults).
    pub configs: BTreeMap<String, String>,
}

/// Requests for the controller (forwarded to the metadata quorum's leader).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// AlterConfigs for topics: each topic's whole new set of overrides.
    ReplaceTopicConfigs {
        /// (topic, all its overrides).
        topics: Vec<(String, BTreeMap<String, String>)>,
        /// Only check, change nothing.
        validate_only: bool,
    },
    /// AlterConfigs and IncrementalAlterConfigs for brokers: dynamic broker configs of a
    /// resource (`""`: every broker's default, `"<id>"`: one broker's).
    AlterBrokerConfigs {
        /// (resource name, its update).
        resources: Vec<(String, BrokerConfigUpdate)>,
        /// Only check, change nothing.
        validate_only: bool,
    },
    /// A block of [`PRODUCER_ID_BLOCK_SIZE`] producer ids for one shard.
    AllocateProducerIds,
    /// ElectLeaders (preferred): the partitions asked, or all.
    ElectPreferred(Option<Vec<(String, i32)>>),
    /// ElectLeaders (unclean): a leader for each leaderless partition asked (or all), an
    /// out-of-sync replica if no in-sync one is live, whatever the topic's
    /// `unclean.leader.election.enable` (as `kafka-leader-election --election-type unclean`).
    ElectUnclean(Option<Vec<(String, i32)>>),
    /// AlterPartition: a partition's leader sets its ISR (shrinking it when followers lag,
    /// expanding it when they catch up).
    AlterPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The sender, which must lead the partition.
        leader: NodeId,
        /// The sender's leader epoch, which must be the current one.
        leader_epoch: i32,
        /// The partition epoch the sender knows, which must be the current one.
        partition_epoch: i32,
        /// The new ISR.
        isr: Vec<NodeId>,
        /// For replicas the new ISR adds: the broker epoch under which the leader saw each catch
        /// up. One that has registered since is refused (Kafka's KIP-903: a restarted replica,
        /// maybe on an empty disk, must catch up again).
        #[serde(default)]
        broker_epochs: Vec<(NodeId, u64)>,
    },
}

/// The partition's state after an accepted AlterPartition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlteredPartition {
    /// The ISR now.
    pub isr: Vec<NodeId>,
    /// The leader epoch (unchanged).
    pub leader_epoch: i32,
    /// The partition epoch now: the leader's next AlterPartition names it.
    pub partition_epoch: i32,
}

/// One change of IncrementalAlterConfigs to a topic's config overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// A change of a broker resource's dynamic configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrokerConfigUpdate {
    /// IncrementalAlterConfigs: these changes, in order.
    Changes(Vec<ConfigChange>),
    /// AlterConfigs: exactly these configs, the others removed.
    Replace(BTreeMap<String, String>),
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
#[derive(Debug, Serialize, Deserialize)]
pub enum ControllerResponse {
    /// Per topic.
    CreateTopics(Vec<(String, Result<CreatedTopic, TopicError>)>),
    /// Per topic.
    DeleteTopics(Vec<(String, Result<TopicId, TopicError>)>),
    /// Per topic.
    CreatePartitions(Vec<(String, Result<(), TopicError>)>),
    /// Per topic.
    AlterTopicConfigs(Vec<(String, Result<(), TopicError>)>),
    /// Per broker resource.
    AlterBrokerConfigs(Vec<(String, Result<(), TopicError>)>),
    /// The ids `start..end`, the block's own.
    ProducerIds(Result<std::ops::Range<i64>, TopicError>),
    /// Per partition asked: whether it is now led by its preferred replica.
    ElectPreferred(Vec<Elected>),
    /// Per partition asked: whether it has a leader now that it had none.
    ElectUnclean(Vec<Elected>),
    /// The partition's new state, or why the change was refused.
    AlterPartition(Result<AlteredPartition, TopicError>),
}

impl ControllerRequest {
    /// The answer that fails everything this request asked with `error`.
    pub fn fail_all(&self, error: &TopicError) -> ControllerResponse {
        fn each<T>(names: Vec<String>, error: &TopicError) -> Vec<(String, Result<T, TopicError>)> {
            names.into_iter().map(|n| (n, Err(error.clone()))).collect()
        }
        match self {
            ControllerRequest::CreateTopics { topics, .. } => {
                ControllerResponse::CreateTopics(each(topics.iter().map(|t| t.name.clone()).collect(), error))
            }
            ControllerRequest::DeleteTopics(names) => ControllerResponse::DeleteTopics(each(names.clone(), error)),
            ControllerRequest::CreatePartitions { topics, .. } => {
                ControllerResponse::CreatePartitions(each(topics.iter().map(|t| t.0.clone()).collect(), error))
            }
            ControllerRequest::AlterTopicConfigs { topics, .. } => {
                ControllerResponse::AlterTopicConfigs(each(topics.iter().map(|t| t.0.clone()).collect(), error))
            }
            ControllerRequest::ReplaceTopicConfigs { topics, .. } => {
                ControllerResponse::AlterTopicConfigs(each(topics.iter().map(|t| t.0.clone()).collect(), error))
            }
            ControllerRequest::AlterBrokerConfigs { resources, .. } => {
                ControllerResponse::AlterBrokerConfigs(each(resources.iter().map(|r| r.0.clone()).collect(), error))
            }
            ControllerRequest::AllocateProducerIds => ControllerResponse::ProducerIds(Err(error.clone())),
            ControllerRequest::ElectPreferred(asked) => ControllerResponse::ElectPreferred(
                asked.iter().flatten().map(|tp| (tp.clone(), Err(error.clone()))).collect(),
            ),
            ControllerRequest::ElectUnclean(asked) => ControllerResponse::ElectUnclean(
                asked.iter().flatten().map(|tp| (tp.clone(), Err(error.clone()))).collect(),
            ),
            ControllerRequest::AlterPartition { .. } => ControllerResponse::AlterPartition(Err(error.clone())),
        }
    }
}

impl ControllerResponse {
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
            ControllerResponse::AlterBrokerConfigs(results) => {
                for (name, _) in results.iter().filter(|(_, r)| r.is_ok()) {
                    let resource = if name.is_empty() { "every broker (cluster default)" } else { name.as_str() };
                    info!(%resource, "dynamic broker configs altered");
                }
            }
            ControllerResponse::ElectPreferred(results) => {
                let moved = results.iter().filter(|(_, r)| r.is_ok()).count();
                info!(partitions = moved, "preferred leaders elected");
            }
            ControllerResponse::ElectUnclean(results) => {
                for ((topic, partition), _) in results.iter().filter(|(_, r)| r.is_ok()) {
                    warn!(%topic, partition, "leader elected on request, perhaps uncleanly (records may be lost)");
                }
            }
            // The leader logs its own ISR changes.
            ControllerResponse::AlterPartition(_) => {}
        }
    }

    /// Whether any topic succeeded (only then is there a new image to install).
    fn any_succeeded(&self) -> bool {
        match self {
            ControllerResponse::CreateTopics(r) => r.iter().any(|(_, r)| r.is_ok()),
            ControllerResponse::DeleteTopics(r) => r.iter().any(|(_, r)| r.is_ok()),
            ControllerResponse::CreatePartitions(r) => r.iter().any(|(_, r)| r.is_ok()),
            ControllerResponse::AlterTopicConfigs(r) => r.iter().any(|(_, r)| r.is_ok()),
            ControllerResponse::AlterBrokerConfigs(r) => r.iter().any(|(_, r)| r.is_ok()),
            ControllerResponse::ProducerIds(r) => r.is_ok(),
            ControllerResponse::ElectPreferred(r) | ControllerResponse::ElectUnclean(r) => {
                r.iter().any(|(_, r)| r.is_ok())
            }
            ControllerResponse::AlterPartition(r) => r.is_ok(),
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
        ControllerRequest::CreatePartitions { topics, validate_only } => {
            (validate_only, ControllerResponse::CreatePartitions(create_partitions(&mut image, topics, validate_only)))
        }
        ControllerRequest::AlterTopicConfigs { topics, validate_only } => (
            validate_only,
            ControllerResponse::AlterTopicConfigs(alter_topic_configs(&mut image, config, topics, validate_only)),
        ),
        ControllerRequest::ReplaceTopicConfigs { topics, validate_only } => (
            validate_only,
            ControllerResponse::AlterTopicConfigs(replace_topic_configs(&mut image, config, topics, validate_only)),
        ),
        ControllerRequest::AlterBrokerConfigs { resources, validate_only } => (
            validate_only,
            ControllerResponse::AlterBrokerConfigs(alter_broker_configs(&mut image, resources, validate_only)),
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
        ControllerRequest::ElectPreferred(asked) => {
            let (next, results) = elect_preferred(&image, asked);
            image = next;
            (false, ControllerResponse::ElectPreferred(results))
        }
        ControllerRequest::ElectUnclean(asked) => {
            let (next, results) = elect_unclean(&image, asked);
            image = next;
            (false, ControllerResponse::ElectUnclean(results))
        }
        ControllerRequest::AlterPartition {
            topic,
            partition,
            leader,
            leader_epoch,
            partition_epoch,
            isr,
            broker_epochs,
        } => {
            let change =
                IsrChangeRequest { leader, leader_epoch, partition_epoch, isr: &isr, broker_epochs: &broker_epochs };
            let altered = alter_partition(&image, &topic, partition, change);
            let response = altered.map(|(next, altered)| {
                image = next;
                altered
            });
            (false, ControllerResponse::AlterPartition(response))
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
        let result = check_new_topic(image, config, &topic).and_then(|(placement, replication_factor)| {
            check_partition_limits(image, &placement)?;
            let id = TopicId::random().map_err(|e| TopicError::Storage(e.to_string()))?;
            let partitions = i32::try_from(placement.len()).unwrap_or(i32::MAX);
            if !validate_only {
                let meta =
                    TopicMeta { name: topic.name.clone(), id, partitions: placement, configs: topic.configs.clone() };
                image.topics.insert(topic.name.clone(), Arc::new(meta));
            }
            Ok(CreatedTopic { id, partitions, replication_factor, configs: topic.configs.clone() })
        });
        results.push((topic.name, result));
    }
    results
}

/// Checks a new topic and places its partitions: by hand (`assignments`, each broker
/// registered, no broker twice, one replication factor for all) or over the live brokers.
fn check_new_topic(
    image: &MetadataImage,
    config: &BrokerConfig,
    topic: &NewTopic,
) -> Result<(Vec<PartitionMeta>, i16), TopicError> {
    validate_topic_name(&topic.name).map_err(|e| TopicError::InvalidName(e.to_string()))?;
    if image.topics.contains_key(&topic.name) {
        return Err(TopicError::AlreadyExists(topic.name.clone()));
    }
    TopicConfig::resolve(&config.topic_defaults(), &topic.configs)
        .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
    if !topic.assignments.is_empty() {
        if topic.partitions != -1 || topic.replication_factor != -1 {
            return Err(TopicError::InvalidRequest(
                "both assignments and the number of partitions or replication factor were given".into(),
            ));
        }
        return assigned(image, &topic.assignments);
    }
    let partitions = if topic.partitions == -1 { config.default_partitions } else { topic.partitions };
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return Err(TopicError::InvalidPartitions(format!(
            "number of partitions must be in 1..={PARTITIONS_PER_TOPIC_MAX}, got {partitions}"
        )));
    }
    let factor =
        if topic.replication_factor == -1 { config.default_replication_factor } else { topic.replication_factor };
    let live = image.live_brokers().count();
    let placed = usize::try_from(factor)
        .ok()
        .filter(|f| *f >= 1)
        .and_then(|f| image.place_partitions(partitions as usize, f))
        .ok_or_else(|| {
            TopicError::InvalidReplicationFactor(format!(
                "Replication factor: {factor} larger than available brokers: {live}."
            ))
        })?;
    Ok((placed, factor))
}

/// Partitions placed by hand, all replicas of one on the same shard index (`place_on`).
fn assigned(image: &MetadataImage, assignments: &[(i32, Vec<i32>)]) -> Result<(Vec<PartitionMeta>, i16), TopicError> {
    let mut sorted: Vec<&(i32, Vec<i32>)> = assignments.iter().collect();
    sorted.sort_by_key(|(p, _)| *p);
    let factor = sorted.first().map_or(0, |(_, r)| r.len());
    let mut out = Vec::with_capacity(sorted.len());
    for (expected, (index, replicas)) in sorted.into_iter().enumerate() {
        if usize::try_from(*index).ok() != Some(expected) {
            return Err(TopicError::InvalidReplicaAssignment(
                "partitions must be numbered consecutively from 0".into(),
            ));
        }
        if replicas.is_empty() || replicas.len() != factor {
            return Err(TopicError::InvalidReplicaAssignment(
                "every partition needs the same, non-zero number of replicas".into(),
            ));
        }
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return Err(TopicError::InvalidReplicaAssignment(format!("partition {index} names a broker twice")));
        }
        if let Some(unknown) = replicas.iter().find(|r| !image.brokers.contains_key(r)) {
            return Err(TopicError::InvalidReplicaAssignment(format!("broker {unknown} is not registered")));
        }
        let mut placed = image.place_on(replicas);
        // As in KRaft, the ISR is the live replicas (all empty, so all in sync) and the first
        // of them leads. With none live the partition starts offline with every replica in
        // its ISR: whichever comes back first may lead, none having any data.
        placed.leader = replicas.iter().copied().find(|r| image.is_live(*r)).unwrap_or(NO_LEADER);
        if placed.leader != NO_LEADER {
            placed.isr.retain(|r| image.is_live(*r));
        }
        out.push(placed);
    }
    if out.len() > PARTITIONS_PER_TOPIC_MAX as usize {
        return Err(TopicError::InvalidPartitions(format!("at most {PARTITIONS_PER_TOPIC_MAX} partitions")));
    }
    Ok((out, i16::try_from(factor).unwrap_or(i16::MAX)))
}

/// One partition's outcome of ElectLeaders.
pub type Elected = ((String, i32), Result<(), TopicError>);

/// Moves leadership of the asked partitions (all if none) to their preferred replica where it
/// is live and in sync.
fn elect_preferred(image: &MetadataImage, asked: Option<Vec<(String, i32)>>) -> (MetadataImage, Vec<Elected>) {
    let next = crate::cluster::brokers::elect_preferred(image, asked.as_deref());
    let mut results = Vec::new();
    let all: Vec<(String, i32)> = match asked {
        Some(asked) => asked,
        None => image
            .topics
            .values()
            .flat_map(|t| (0..t.partitions.len()).map(|i| (t.name.clone(), i32::try_from(i).unwrap_or(i32::MAX))))
            .collect(),
    };
    for (topic, index) in all {
        let at = |img: &MetadataImage| {
            usize::try_from(index).ok().and_then(|i| img.topics.get(&topic)?.partitions.get(i).cloned())
        };
        let result = match (at(image), at(&next)) {
            (None, _) | (_, None) => Err(TopicError::Unknown),
            (Some(before), Some(after)) => {
                let preferred = after.replicas.first().copied().unwrap_or(NO_LEADER);
                if after.leader == preferred && before.leader != preferred {
                    Ok(())
                } else if after.leader == preferred {
                    Err(TopicError::ElectionNotNeeded)
                } else {
                    Err(TopicError::PreferredLeaderNotAvailable(format!(
                        "preferred replica {preferred} of {topic}-{index} is not live and in sync"
                    )))
                }
            }
        };
        results.push(((topic, index), result));
    }
    (next, results)
}

/// Elects a leader for each leaderless partition asked (all if none): a live ISR member, else
/// the first live replica (unclean). Kafka's per-partition errors: ELECTION_NOT_NEEDED where it
/// has a leader, ELIGIBLE_LEADERS_NOT_AVAILABLE where no replica is live.
fn elect_unclean(image: &MetadataImage, asked: Option<Vec<(String, i32)>>) -> (MetadataImage, Vec<Elected>) {
    let all: Vec<(String, i32)> = match asked {
        Some(asked) => asked,
        None => image
            .topics
            .values()
            .flat_map(|t| (0..t.partitions.len()).filter_map(|i| Some((t.name.clone(), i32::try_from(i).ok()?))))
            .collect(),
    };
    let wanted: BTreeSet<(&str, i32)> = all.iter().map(|(t, i)| (t.as_str(), *i)).collect();
    let (next, _) = crate::cluster::brokers::elect_unclean(image, |topic, index| {
        i32::try_from(index).is_ok_and(|i| wanted.contains(&(topic.name.as_str(), i)))
    });
    let mut results = Vec::with_capacity(all.len());
    for (topic, index) in all {
        let at = |img: &MetadataImage| partition_at(img, &topic, index).map(|p| p.leader);
        let result = match (at(image), at(&next)) {
            (None, _) | (_, None) => Err(TopicError::Unknown),
            (Some(before), _) if before != NO_LEADER => Err(TopicError::ElectionNotNeeded),
            (_, Some(after)) if after != NO_LEADER => Ok(()),
            _ => Err(TopicError::EligibleLeadersNotAvailable(format!("no replica of {topic}-{index} is live"))),
        };
        results.push(((topic, index), result));
    }
    (next, results)
}

/// Partition `index` of `topic` in `image`.
fn partition_at<'a>(image: &'a MetadataImage, topic: &str, index: i32) -> Option<&'a PartitionMeta> {
    image.topics.get(topic)?.partitions.get(usize::try_from(index).ok()?)
}

/// AlterPartition, decided by [`crate::cluster::brokers::alter_isr`]: the new image and the
/// partition's state in it.
/// What a leader's AlterPartition asks (see [`ControllerRequest::AlterPartition`]).
struct IsrChangeRequest<'a> {
    leader: NodeId,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: &'a [NodeId],
    broker_epochs: &'a [(NodeId, u64)],
}

fn alter_partition(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    change: IsrChangeRequest<'_>,
) -> Result<(MetadataImage, AlteredPartition), TopicError> {
    let IsrChangeRequest { leader, leader_epoch, partition_epoch, isr, broker_epochs } = change;
    let next = alter_isr(image, topic, partition, leader, leader_epoch, partition_epoch, isr).map_err(|e| match e {
        IsrChangeError::UnknownPartition => TopicError::Unknown,
        IsrChangeError::FencedLeaderEpoch(why) => TopicError::FencedLeaderEpoch(why),
        IsrChangeError::InvalidUpdateVersion(why) => TopicError::InvalidUpdateVersion(why),
        IsrChangeError::InvalidIsr(why) => TopicError::InvalidRequest(why),
        IsrChangeError::IneligibleReplica(why) => TopicError::IneligibleReplica(why),
    })?;
    // KIP-903: a replica added on the strength of fetches its broker made before it registered
    // again (a restart, maybe on an empty disk) has not caught up; it must do so anew.
    let before = partition_at(image, topic, partition).map(|p| p.isr.clone()).unwrap_or_default();
    for &(replica, seen) in broker_epochs.iter().filter(|(r, _)| !before.contains(r)) {
        let current = image.brokers.get(&replica).map(|b| b.epoch);
        if current != Some(seen) {
            return Err(TopicError::IneligibleReplica(format!(
                "broker {replica} caught up on {topic}-{partition} at broker epoch {seen}, but it is at {current:?} now"
            )));
        }
    }
    let now = partition_at(&next, topic, partition).ok_or(TopicError::Unknown)?;
    let altered =
        AlteredPartition { isr: now.isr.clone(), leader_epoch: now.leader_epoch, partition_epoch: now.partition_epoch };
    Ok((next, altered))
}

/// Refuses `added` partitions if they would place more replicas on a broker than it accepts
/// (its `--max-partitions`, advertised at registration), naming the broker and the limit.
fn check_partition_limits(image: &MetadataImage, added: &[PartitionMeta]) -> Result<(), TopicError> {
    let mut adding: BTreeMap<i32, u64> = BTreeMap::new();
    for partition in added {
        for &replica in &partition.replicas {
            *adding.entry(replica).or_default() += 1;
        }
    }
    let limited: Vec<(i32, u64, u64)> =
        adding.iter().filter_map(|(&id, &n)| Some((id, n, image.brokers.get(&id)?.max_partitions?))).collect();
    if limited.is_empty() {
        return Ok(());
    }
    let mut held: BTreeMap<i32, u64> = BTreeMap::new();
    for topic in image.topics.values() {
        for partition in &topic.partitions {
            for &replica in &partition.replicas {
                *held.entry(replica).or_default() += 1;
            }
        }
    }
    for (id, n, max) in limited {
        let now = held.get(&id).copied().unwrap_or(0);
        if now + n > max {
            return Err(TopicError::PolicyViolation(format!(
                "broker {id} would hold {} partition replicas, over its limit of {max} (--max-partitions; it \
                 holds {now})",
                now + n
            )));
        }
    }
    Ok(())
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
                    let factor = topic.partitions.first().map_or(1, |p| p.replicas.len());
                    match image.place_partitions((count - current) as usize, factor) {
                        Some(added) => check_partition_limits(image, &added).map(|()| {
                            grown.partitions.extend(added);
                            if !validate_only {
                                image.topics.insert(name.clone(), Arc::new(grown));
                            }
                        }),
                        None => Err(TopicError::InvalidReplicationFactor(format!(
                            "Replication factor: {factor} larger than available brokers: {}.",
                            image.live_brokers().count()
                        ))),
                    }
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
                TopicConfig::resolve(&config.topic_defaults(), &configs)
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

/// AlterConfigs on topics: each topic's overrides replaced by the given set, validated as
/// CreateTopics validates configs.
fn replace_topic_configs(
    image: &mut MetadataImage,
    config: &BrokerConfig,
    topics: Vec<(String, BTreeMap<String, String>)>,
    validate_only: bool,
) -> Vec<(String, Result<(), TopicError>)> {
    let mut results = Vec::new();
    for (name, configs) in topics {
        let result = match image.topics.get(&name).cloned() {
            None => Err(TopicError::Unknown),
            Some(topic) => TopicConfig::resolve(&config.topic_defaults(), &configs)
                .map_err(|e| TopicError::InvalidConfig(e.to_string()))
                .map(|_| {
                    if !validate_only {
                        let mut altered = (*topic).clone();
                        altered.configs = configs;
                        image.topics.insert(name.clone(), Arc::new(altered));
                    }
                }),
        };
        results.push((name, result));
    }
    results
}

/// Dynamic broker configs: each resource's new set, checked as Kafka checks it (a broker id or
/// `""`, dynamic names only, valid values; all INVALID_REQUEST, as Kafka answers them), then
/// stored in the image, from which every broker layers it under topic overrides.
fn alter_broker_configs(
    image: &mut MetadataImage,
    resources: Vec<(String, BrokerConfigUpdate)>,
    validate_only: bool,
) -> Vec<(String, Result<(), TopicError>)> {
    let mut results = Vec::new();
    for (resource, update) in resources {
        let result = check_broker_resource(&resource).and_then(|()| {
            let current = image.broker_configs.get(&resource).cloned().unwrap_or_default();
            let configs = match update {
                BrokerConfigUpdate::Replace(configs) => configs,
                BrokerConfigUpdate::Changes(changes) => apply_changes(&current, &changes, ConfigKind::Broker)?,
            };
            validate_dynamic_broker_configs(&configs).map_err(|e| TopicError::InvalidRequest(e.to_string()))?;
            if !validate_only {
                if configs.is_empty() {
                    image.broker_configs.remove(&resource);
                } else {
                    image.broker_configs.insert(resource.clone(), configs);
                }
            }
            Ok(())
        });
        results.push((resource, result));
    }
    results
}

/// A broker resource name as Kafka's controller accepts it: `""` or a non-negative node id.
fn check_broker_resource(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Ok(());
    }
    match name.parse::<i32>() {
        Ok(id) if id >= 0 => Ok(()),
        Ok(_) => Err(TopicError::InvalidRequest("Invalid negative broker ID.".into())),
        Err(_) => Err(TopicError::InvalidRequest("Unable to parse broker name as a base 10 number.".into())),
    }
}

/// Whose configs [`apply_changes`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConfigKind {
    /// A topic's overrides.
    Topic,
    /// A broker resource's dynamic configs.
    Broker,
}

/// `overrides` after `changes`, in order. Names must be topic configs the broker knows (a typo
/// is refused rather than stored); values are checked later, on the whole result.
pub fn apply_config_changes(
    overrides: &BTreeMap<String, String>,
    changes: &[ConfigChange],
) -> Result<BTreeMap<String, String>, TopicError> {
    apply_changes(overrides, changes, ConfigKind::Topic)
}

/// `configs` after `changes`, in order, with Kafka's answers: an unknown topic config is
/// INVALID_CONFIG, a broker config that is not dynamic INVALID_REQUEST, APPEND or SUBTRACT on a
/// config that is not a list INVALID_CONFIG.
fn apply_changes(
    configs: &BTreeMap<String, String>,
    changes: &[ConfigChange],
    kind: ConfigKind,
) -> Result<BTreeMap<String, String>, TopicError> {
    let mut out = configs.clone();
    for change in changes {
        let name = change.name();
        // The list default an APPEND or SUBTRACT starts from, if the config is a list.
        let list_default = match kind {
            ConfigKind::Topic => {
                let def = topic_config_def(name)
                    .ok_or_else(|| TopicError::InvalidConfig(format!("Unknown topic config name: {name}")))?;
                (def.config_type == ConfigType::List).then_some(def.default)
            }
            ConfigKind::Broker => {
                let dynamic = dynamic_broker_config(name).ok_or_else(|| {
                    TopicError::InvalidRequest(format!("Cannot update these configs dynamically: Set({name})"))
                })?;
                (dynamic.config_type() == ConfigType::List).then(|| dynamic.kafka_default().unwrap_or_default())
            }
        };
        match change {
            ConfigChange::Set(name, value) => {
                out.insert(name.clone(), value.clone());
            }
            ConfigChange::Delete(name) => {
                out.remove(name);
            }
            ConfigChange::Append(name, value) | ConfigChange::Subtract(name, value) => {
                let appending = matches!(change, ConfigChange::Append(..));
                let Some(default) = list_default else {
                    let op = if appending { "append" } else { "subtract" };
                    return Err(TopicError::InvalidConfig(format!(
                        "Config value {op} is not allowed for config key: {name}"
                    )));
                };
                // The current list: the override, else Kafka's default.
                let current = out.get(name).cloned().unwrap_or_else(|| default.to_string());
                let mut items: Vec<&str> = current.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                if appending {
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

impl From<&TopicError> for ErrorCode {
    fn from(e: &TopicError) -> Self {
        match e {
            TopicError::InvalidName(_) | TopicError::Internal(_) => ErrorCode::InvalidTopicException,
            TopicError::AlreadyExists(_) => ErrorCode::TopicAlreadyExists,
            TopicError::Unknown => ErrorCode::UnknownTopicOrPartition,
            TopicError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
            TopicError::PolicyViolation(_) => ErrorCode::PolicyViolation,
            TopicError::InvalidReplicationFactor(_) => ErrorCode::InvalidReplicationFactor,
            TopicError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            TopicError::InvalidReplicaAssignment(_) => ErrorCode::InvalidReplicaAssignment,
            TopicError::Storage(_) => ErrorCode::KafkaStorageError,
            TopicError::NoController(_) => ErrorCode::RequestTimedOut,
            TopicError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            TopicError::ElectionNotNeeded => ErrorCode::ElectionNotNeeded,
            TopicError::PreferredLeaderNotAvailable(_) => ErrorCode::PreferredLeaderNotAvailable,
            TopicError::EligibleLeadersNotAvailable(_) => ErrorCode::EligibleLeadersNotAvailable,
            TopicError::FencedLeaderEpoch(_) => ErrorCode::FencedLeaderEpoch,
            TopicError::InvalidUpdateVersion(_) => ErrorCode::InvalidUpdateVersion,
            TopicError::IneligibleReplica(_) => ErrorCode::IneligibleReplica,
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
        let throttled = [ConfigChange::Append("leader.replication.throttled.replicas".into(), "0:1".into())];
        let out = apply_config_changes(&start, &throttled).unwrap();
        assert_eq!(out.get("leader.replication.throttled.replicas").map(String::as_str), Some("0:1"));
    }

    #[test]
    fn alter_configs_replaces_overrides_and_broker_configs_are_dynamic_only() {
        let (image, config) = image_with_topic();
        let topic = image.topics.keys().next().unwrap().clone();
        let mut overrides = BTreeMap::from([("min.cleanable.dirty.ratio".to_string(), "0.01".to_string())]);
        let replace = |overrides: &BTreeMap<String, String>, validate_only| ControllerRequest::ReplaceTopicConfigs {
            topics: vec![(topic.clone(), overrides.clone())],
            validate_only,
        };
        let decided = decide(&image, &config, replace(&overrides, false));
        let next = decided.image.unwrap();
        assert_eq!(next.topics[&topic].configs, overrides);
        assert!(decide(&image, &config, replace(&overrides, true)).image.is_none(), "validate_only");
        overrides.insert("min.cleanable.dirty.ratio".into(), "2".into());
        let ControllerResponse::AlterTopicConfigs(results) =
            decide(&next, &config, replace(&overrides, false)).response
        else {
            panic!("wrong response")
        };
        let error = results[0].1.clone().unwrap_err();
        assert_eq!(ErrorCode::from(&error), ErrorCode::InvalidConfig);
        assert!(error.to_string().contains("Value must be no more than 1"), "{error}");

        let alter = |resource: &str, update: BrokerConfigUpdate| ControllerRequest::AlterBrokerConfigs {
            resources: vec![(resource.to_string(), update)],
            validate_only: false,
        };
        let set = BrokerConfigUpdate::Changes(vec![
            ConfigChange::Set("log.retention.ms".into(), "1000".into()),
            ConfigChange::Append("log.cleanup.policy".into(), "compact".into()),
        ]);
        let next = decide(&image, &config, alter("", set)).image.unwrap();
        assert_eq!(next.broker_configs[""]["log.cleanup.policy"], "delete,compact");
        assert_eq!(next.dynamic_default("log.retention.ms"), Some("1000"));
        let cleared = decide(&next, &config, alter("", BrokerConfigUpdate::Replace(BTreeMap::new()))).image.unwrap();
        assert!(cleared.broker_configs.is_empty());
        for (resource, update, code) in [
            ("", BrokerConfigUpdate::Changes(vec![ConfigChange::Set("log.dirs".into(), "/x".into())]), "Set(log.dirs)"),
            ("-1", BrokerConfigUpdate::Replace(BTreeMap::new()), "negative"),
            ("x", BrokerConfigUpdate::Replace(BTreeMap::new()), "base 10"),
            ("1", BrokerConfigUpdate::Replace(BTreeMap::from([("log.retention.ms".into(), "-5".into())])), "at least"),
        ] {
            let ControllerResponse::AlterBrokerConfigs(results) =
                decide(&image, &config, alter(resource, update)).response
            else {
                panic!("wrong response")
            };
            let error = results[0].1.clone().unwrap_err();
            assert_eq!(ErrorCode::from(&error), ErrorCode::InvalidRequest);
            assert!(error.to_string().contains(code), "{error}");
        }
    }
    #[test]
    fn a_broker_s_max_partitions_refuses_topics_and_partitions_that_would_pass_it() {
        let (mut image, config) = image_with_topic();
        // Broker 2 holds 2 replicas of "t" and accepts 5; the others have no limit.
        image.brokers.get_mut(&2).unwrap().max_partitions = Some(5);
        let create = |partitions: i32| ControllerRequest::CreateTopics {
            topics: vec![NewTopic {
                name: "u".into(),
                partitions,
                replication_factor: 3,
                assignments: Vec::new(),
                configs: BTreeMap::new(),
            }],
            validate_only: false,
        };
        let ControllerResponse::CreateTopics(results) = decide(&image, &config, create(4)).response else {
            panic!("wrong response")
        };
        let error = results[0].1.clone().unwrap_err();
        assert_eq!(ErrorCode::from(&error), ErrorCode::PolicyViolation);
        assert!(error.to_string().contains("broker 2 would hold 6 partition replicas, over its limit of 5"), "{error}");
        let next = decide(&image, &config, create(3)).image.expect("3 more fit exactly");
        let grow = ControllerRequest::CreatePartitions { topics: vec![("u".into(), 4)], validate_only: false };
        let ControllerResponse::CreatePartitions(results) = decide(&next, &config, grow).response else {
            panic!("wrong response")
        };
        assert_eq!(ErrorCode::from(&results[0].1.clone().unwrap_err()), ErrorCode::PolicyViolation);
    }

    /// Brokers 1..=3 live; "t" created by hand with partition 0 on [1, 2, 3] and partition 1
    /// on [3, 1, 2].
    fn image_with_topic() -> (MetadataImage, BrokerConfig) {
        let config = BrokerConfig::for_data_dir("/nonexistent".into(), "127.0.0.1:9092".parse().unwrap());
        let mut image = MetadataImage::default();
        for id in 1..=3 {
            image.brokers.insert(id, crate::cluster::image::tests::broker(id, "a", 2));
        }
        let topic = NewTopic {
            name: "t".into(),
            partitions: -1,
            replication_factor: -1,
            assignments: vec![(0, vec![1, 2, 3]), (1, vec![3, 1, 2])],
            configs: BTreeMap::new(),
        };
        let decided =
            decide(&image, &config, ControllerRequest::CreateTopics { topics: vec![topic], validate_only: false });
        (decided.image.unwrap(), config)
    }

    #[test]
    fn assigned_replicas_are_all_in_sync_at_creation_but_fenced_ones() {
        let (image, _) = image_with_topic();
        let p = &image.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
        assert!(p.shards.iter().all(|s| *s == p.shards[0]), "one shard index: {p:?}");
        let mut fenced = image.clone();
        fenced.topics.clear();
        fenced.brokers.get_mut(&1).unwrap().fenced = true;
        let (placed, _) = assigned(&fenced, &[(0, vec![1, 2, 3])]).unwrap();
        assert_eq!((placed[0].leader, placed[0].isr.clone()), (2, vec![2, 3]));
        for b in fenced.brokers.values_mut() {
            b.fenced = true;
        }
        let (placed, _) = assigned(&fenced, &[(0, vec![1, 2, 3])]).unwrap();
        assert_eq!((placed[0].leader, placed[0].isr.clone()), (NO_LEADER, vec![1, 2, 3]));
    }

    #[test]
    fn a_replica_that_registered_again_since_it_caught_up_is_not_added_to_the_isr() {
        let (image, config) = image_with_topic();
        let shrink = ControllerRequest::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: vec![1],
            broker_epochs: Vec::new(),
        };
        let image = decide(&image, &config, shrink).image.unwrap();
        let grow = |image: &MetadataImage, seen: u64| {
            let request = ControllerRequest::AlterPartition {
                topic: "t".into(),
                partition: 0,
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 1,
                isr: vec![1, 2],
                broker_epochs: vec![(2, seen)],
            };
            match decide(image, &config, request).response {
                ControllerResponse::AlterPartition(r) => r.map_err(|e| ErrorCode::from(&e)),
                other => panic!("{other:?}"),
            }
        };
        let current = image.brokers[&2].epoch;
        assert!(grow(&image, current).is_ok());
        // Broker 2 restarted (a new registration, a new broker epoch) after the leader counted
        // its fetches: refused, it must catch up again (KIP-903).
        let mut restarted = image.clone();
        restarted.brokers.get_mut(&2).unwrap().epoch = current + 7;
        assert_eq!(grow(&restarted, current), Err(ErrorCode::IneligibleReplica));
        assert!(grow(&restarted, current + 7).is_ok());
    }

    #[test]
    fn alter_partition_answers_the_new_state_or_kafkas_code() {
        let (image, config) = image_with_topic();
        let alter = |image: &MetadataImage, leader, leader_epoch, partition_epoch, isr: Vec<NodeId>| {
            let request = ControllerRequest::AlterPartition {
                topic: "t".into(),
                partition: 0,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
                broker_epochs: Vec::new(),
            };
            let request: ControllerRequest = serde_json::from_slice(&serde_json::to_vec(&request).unwrap()).unwrap();
            let decided = decide(image, &config, request);
            match decided.response {
                ControllerResponse::AlterPartition(r) => (decided.image, r.map_err(|e| ErrorCode::from(&e))),
                other => panic!("{other:?}"),
            }
        };
        let (next, answer) = alter(&image, 1, 0, 0, vec![1, 2]);
        let altered = AlteredPartition { isr: vec![1, 2], leader_epoch: 0, partition_epoch: 1 };
        assert_eq!(answer, Ok(altered));
        assert_eq!(next.unwrap().topics["t"].partitions[0].isr, vec![1, 2]);
        let codes: Vec<ErrorCode> =
            [alter(&image, 2, 0, 0, vec![1, 2]), alter(&image, 1, 0, 1, vec![1, 2]), alter(&image, 1, 0, 0, vec![2])]
                .into_iter()
                .map(|(image, r)| {
                    assert!(image.is_none());
                    r.unwrap_err()
                })
                .collect();
        assert_eq!(
            codes,
            vec![ErrorCode::FencedLeaderEpoch, ErrorCode::InvalidUpdateVersion, ErrorCode::InvalidRequest]
        );
        let mut fenced = image.clone();
        fenced.brokers.get_mut(&3).unwrap().fenced = true;
        let shrunk = alter(&fenced, 1, 0, 0, vec![1, 2]).0.unwrap();
        assert_eq!(alter(&shrunk, 1, 0, 1, vec![1, 2, 3]).1, Err(ErrorCode::IneligibleReplica));
    }

    #[test]
    fn unclean_election_on_request_whatever_the_config() {
        let (image, config) = image_with_topic();
        // Partition 1 has only 3 in sync, and 3 fails: it goes offline; 1 and 2 are live, out
        // of sync, and the topic does not allow unclean elections.
        let mut topic = (*image.topics["t"]).clone();
        topic.partitions[1].isr = vec![3];
        topic.configs.insert("unclean.leader.election.enable".into(), "false".into());
        let mut offline = image.clone();
        offline.topics.insert("t".into(), Arc::new(topic));
        let offline = crate::cluster::brokers::fence(&offline, 3);
        assert_eq!(offline.topics["t"].partitions[1].leader, NO_LEADER);
        type Codes = Vec<((String, i32), i16)>;
        let codes = |image: &MetadataImage, asked| -> (Option<MetadataImage>, Codes) {
            let decided = decide(image, &config, ControllerRequest::ElectUnclean(asked));
            let ControllerResponse::ElectUnclean(results) = decided.response else { panic!() };
            let codes = results.into_iter().map(|(tp, r)| (tp, r.err().map_or(0, |e| ErrorCode::from(&e).code())));
            (decided.image, codes.collect())
        };
        let not_needed = ErrorCode::ElectionNotNeeded.code();
        let (next, results) = codes(&offline, None);
        assert_eq!(results, vec![(("t".into(), 0), not_needed), (("t".into(), 1), 0)]);
        let p = &next.unwrap().topics["t"].partitions[1];
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));
        // Nobody live: ELIGIBLE_LEADERS_NOT_AVAILABLE; unknown partitions say so.
        let mut dead = offline.clone();
        for b in dead.brokers.values_mut() {
            b.fenced = true;
        }
        let asked = vec![("t".to_string(), 1), ("t".to_string(), 2), ("u".to_string(), 0)];
        let (next, results) = codes(&dead, Some(asked));
        assert!(next.is_none());
        let unknown = ErrorCode::UnknownTopicOrPartition.code();
        let impossible = ErrorCode::EligibleLeadersNotAvailable.code();
        assert_eq!(
            results,
            vec![(("t".into(), 1), impossible), (("t".into(), 2), unknown), (("u".into(), 0), unknown)]
        );
    }
}
