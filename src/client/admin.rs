//! [`Admin`]: create, delete and describe topics; list offsets; describe the cluster and its
//! metadata quorum; elect preferred leaders. Topic changes and elections go to the controller;
//! offsets are asked of each partition's leader.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::ClientError;
use super::metadata::{Client, TopicMetadata};
use crate::protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsRequestTopic, CreateTopicsRequest, CreateTopicsRequestConfig,
    CreateTopicsRequestTopic, DeleteTopicsRequest, DeleteTopicsRequestTopic, DescribeConfigsRequest,
    DescribeConfigsRequestResource, IncrementalAlterConfigsRequest, IncrementalAlterConfigsRequestConfig,
    IncrementalAlterConfigsRequestResource, ListOffsetsRequest, ListOffsetsRequestPartition, ListOffsetsRequestTopic,
};
use crate::protocol::messages::{
    DescribeClusterRequest, DescribeQuorumRequest, DescribeQuorumRequestPartition, DescribeQuorumRequestTopic,
    DescribeQuorumResponseReplica, ElectLeadersRequest, ElectLeadersRequestTopic,
};
use crate::protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsRequestTopic};

/// DescribeConfigs' and IncrementalAlterConfigs' resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The name.
    pub name: String,
    /// How many partitions.
    pub partitions: i32,
    /// How many replicas of each (-1: the broker's default).
    pub replication_factor: i16,
    /// Topic configs by Kafka's names (`retention.ms`, `cleanup.policy`, …).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `partitions` partitions, the default replication factor and no configs.
    pub fn new(name: impl Into<String>, partitions: i32) -> NewTopic {
        NewTopic { name: name.into(), partitions, replication_factor: -1, configs: Vec::new() }
    }

    /// Adds a topic config.
    pub fn config(mut self, name: impl Into<String>, value: impl Into<String>) -> NewTopic {
        self.configs.push((name.into(), value.into()));
        self
    }
}

/// Which offset [`Admin::list_offsets`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the next offset to be written).
    Latest,
    /// The first offset whose timestamp is at or after this one (milliseconds since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    /// The wire value of ListOffsets' `timestamp` field.
    pub fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// One answer of [`Admin::list_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset, `None` when no record has a timestamp at or after the one asked for.
    pub offset: Option<i64>,
    /// The timestamp of the record found (-1 for earliest and latest).
    pub timestamp: i64,
}

/// One config of a topic, as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Kafka's name (`retention.ms`, …).
    pub name: String,
    /// The value; `None` when sensitive or unset.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be altered.
    pub read_only: bool,
}

/// Where a config value comes from (Kafka's `ConfigEntry.ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (at creation or by an alter).
    DynamicTopicConfig,
    /// Set dynamically for this broker.
    DynamicBrokerConfig,
    /// Set dynamically for every broker.
    DynamicDefaultBrokerConfig,
    /// Set in the broker's static configuration (its flags).
    StaticBrokerConfig,
    /// Kafka's default.
    DefaultConfig,
    /// Set dynamically for the broker's loggers.
    DynamicBrokerLoggerConfig,
    /// A source this client does not know (or none reported, before DescribeConfigs v1).
    Unknown,
}

impl ConfigSource {
    fn from_wire(source: i8) -> ConfigSource {
        match source {
            1 => ConfigSource::DynamicTopicConfig,
            2 => ConfigSource::DynamicBrokerConfig,
            3 => ConfigSource::DynamicDefaultBrokerConfig,
            4 => ConfigSource::StaticBrokerConfig,
            5 => ConfigSource::DefaultConfig,
            6 => ConfigSource::DynamicBrokerLoggerConfig,
            _ => ConfigSource::Unknown,
        }
    }

    /// Kafka's name of the source, as its tools print it.
    pub fn name(self) -> &'static str {
        match self {
            ConfigSource::DynamicTopicConfig => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBrokerConfig => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBrokerConfig => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBrokerConfig => "STATIC_BROKER_CONFIG",
            ConfigSource::DefaultConfig => "DEFAULT_CONFIG",
            ConfigSource::DynamicBrokerLoggerConfig => "DYNAMIC_BROKER_LOGGER_CONFIG",
            ConfigSource::Unknown => "UNKNOWN",
        }
    }
}

/// One change of [`Admin::alter_topic_configs`] (Kafka's `AlterConfigOp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// Set the config on the topic.
    Set(String, String),
    /// Remove the topic's setting: the broker's value or the default applies again.
    Delete(String),
    /// Add a value to a list config.
    Append(String, String),
    /// Remove a value from a list config.
    Subtract(String, String),
}

impl AlterConfigOp {
    fn wire(&self) -> IncrementalAlterConfigsRequestConfig {
        let (name, operation, value) = match self {
            AlterConfigOp::Set(name, value) => (name, 0, Some(value)),
            AlterConfigOp::Delete(name) => (name, 1, None),
            AlterConfigOp::Append(name, value) => (name, 2, Some(value)),
            AlterConfigOp::Subtract(name, value) => (name, 3, Some(value)),
        };
        IncrementalAlterConfigsRequestConfig { name: name.clone(), config_operation: operation, value: value.cloned() }
    }
}

/// Administrative operations over a [`Client`].
#[derive(Clone)]
pub struct Admin {
    client: Client,
    /// How long the broker may take to create or delete topics.
    timeout: Duration,
}

impl Admin {
    /// An admin over `client`.
    pub fn new(client: Client) -> Admin {
        Admin { client, timeout: Duration::from_secs(30) }
    }

    /// The client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX)
    }

    /// Creates `topics`; the outer error is for the request as a whole, the inner ones per
    /// topic (TOPIC_ALREADY_EXISTS, INVALID_CONFIG, …), in the order given.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
    ) -> Result<Vec<(String, Result<(), ClientError>)>, ClientError> {
        let request = CreateTopicsRequest {
            topics: topics
                .iter()
                .map(|t| CreateTopicsRequestTopic {
                    name: t.name.clone(),
                    num_partitions: t.partitions,
                    replication_factor: t.replication_factor,
                    assignments: Vec::new(),
                    configs: t
                        .configs
                        .iter()
                        .map(|(name, value)| CreateTopicsRequestConfig {
                            name: name.clone(),
                            value: Some(value.clone()),
                        })
                        .collect(),
                })
                .collect(),
            timeout_ms: self.timeout_ms(),
            validate_only: false,
        };
        let connection = self.client.controller_connection().await?;
        let response = connection.send(&request).await?;
        let results = topics
            .iter()
            .map(|t| {
                let result = match response.topics.iter().find(|r| r.name == t.name) {
                    Some(r) => match ClientError::from_code(
                        r.error_code,
                        || format!("creating topic {}", t.name),
                        r.error_message.as_deref(),
                    ) {
                        Some(error) => Err(error),
                        None => Ok(()),
                    },
                    None => Err(ClientError::Protocol {
                        addr: connection.addr().to_string(),
                        reason: format!("no CreateTopics result for {}", t.name),
                    }),
                };
                (t.name.clone(), result)
            })
            .collect();
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        // The topics exist whatever the refresh says; a failed refresh is retried on first use.
        let _ = self.client.refresh_metadata(Some(&names)).await;
        Ok(results)
    }

    /// Creates one topic.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<(), ClientError> {
        let results = self.create_topics(std::slice::from_ref(&topic)).await?;
        results.into_iter().next().map(|(_, r)| r).unwrap_or(Ok(()))
    }

    /// Deletes `topics`; per-topic results in the order given.
    pub async fn delete_topics(&self, topics: &[&str]) -> Result<Vec<(String, Result<(), ClientError>)>, ClientError> {
        let request = DeleteTopicsRequest {
            topics: topics
                .iter()
                .map(|name| DeleteTopicsRequestTopic { name: Some(name.to_string()), ..Default::default() })
                .collect(),
            topic_names: topics.iter().map(|name| name.to_string()).collect(),
            timeout_ms: self.timeout_ms(),
        };
        let connection = self.client.controller_connection().await?;
        let response = connection.send(&request).await?;
        let results = topics
            .iter()
            .map(|name| {
                let result = match response.responses.iter().find(|r| r.name.as_deref() == Some(name)) {
                    Some(r) => match ClientError::from_code(
                        r.error_code,
                        || format!("deleting topic {name}"),
                        r.error_message.as_deref(),
                    ) {
                        Some(error) => Err(error),
                        None => Ok(()),
                    },
                    None => Err(ClientError::Protocol {
                        addr: connection.addr().to_string(),
                        reason: format!("no DeleteTopics result for {name}"),
                    }),
                };
                (name.to_string(), result)
            })
            .collect();
        let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let _ = self.client.refresh_metadata(Some(&names)).await;
        Ok(results)
    }

    /// Describes `topics` from fresh metadata; a missing topic comes back with its error code
    /// set (see [`TopicMetadata::error`]).
    pub async fn describe_topics(&self, topics: &[&str]) -> Result<Vec<TopicMetadata>, ClientError> {
        let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let metadata = self.client.refresh_metadata(Some(&names)).await?;
        Ok(names
            .into_iter()
            .map(|name| {
                metadata.topics.get(&name).cloned().unwrap_or(TopicMetadata {
                    name,
                    error_code: crate::protocol::ErrorCode::UnknownTopicOrPartition.code(),
                    partitions: Vec::new(),
                })
            })
            .collect())
    }

    /// Grows `topic` to `partitions` partitions in all (CreatePartitions).
    pub async fn create_partitions(&self, topic: &str, partitions: i32) -> Result<(), ClientError> {
        let request = CreatePartitionsRequest {
            topics: vec![CreatePartitionsRequestTopic {
                name: topic.to_string(),
                count: partitions,
                assignments: None,
            }],
            timeout_ms: self.timeout_ms(),
            validate_only: false,
        };
        let connection = self.client.controller_connection().await?;
        let response = connection.send(&request).await?;
        let result = response.results.iter().find(|r| r.name == topic).ok_or_else(|| ClientError::Protocol {
            addr: connection.addr().to_string(),
            reason: format!("no CreatePartitions result for {topic}"),
        })?;
        if let Some(error) = ClientError::from_code(
            result.error_code,
            || format!("adding partitions to {topic}"),
            result.error_message.as_deref(),
        ) {
            return Err(error);
        }
        let _ = self.client.refresh_metadata(Some(&[topic.to_string()])).await;
        Ok(())
    }

    /// Every config of `topic` with its value and source (DescribeConfigs), sorted by name.
    pub async fn describe_topic_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>, ClientError> {
        let request = DescribeConfigsRequest {
            resources: vec![DescribeConfigsRequestResource {
                resource_type: RESOURCE_TOPIC,
                resource_name: topic.to_string(),
                configuration_keys: None,
            }],
            include_synonyms: false,
            include_documentation: false,
        };
        let connection = self.client.any_connection().await?;
        let response = connection.send(&request).await?;
        let result =
            response.results.into_iter().find(|r| r.resource_name == topic).ok_or_else(|| ClientError::Protocol {
                addr: connection.addr().to_string(),
                reason: format!("no DescribeConfigs result for {topic}"),
            })?;
        if let Some(error) = ClientError::from_code(
            result.error_code,
            || format!("describing the configs of {topic}"),
            result.error_message.as_deref(),
        ) {
            return Err(error);
        }
        let mut configs: Vec<ConfigEntry> = result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name,
                value: c.value,
                source: ConfigSource::from_wire(c.config_source),
                read_only: c.read_only,
            })
            .collect();
        configs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(configs)
    }

    /// Changes some configs of `topic`, leaving the others alone (IncrementalAlterConfigs).
    pub async fn alter_topic_configs(&self, topic: &str, changes: &[AlterConfigOp]) -> Result<(), ClientError> {
        let request = IncrementalAlterConfigsRequest {
            resources: vec![IncrementalAlterConfigsRequestResource {
                resource_type: RESOURCE_TOPIC,
                resource_name: topic.to_string(),
                configs: changes.iter().map(AlterConfigOp::wire).collect(),
            }],
            validate_only: false,
        };
        let connection = self.client.controller_connection().await?;
        let response = connection.send(&request).await?;
        let result =
            response.responses.iter().find(|r| r.resource_name == topic).ok_or_else(|| ClientError::Protocol {
                addr: connection.addr().to_string(),
                reason: format!("no IncrementalAlterConfigs result for {topic}"),
            })?;
        match ClientError::from_code(
            result.error_code,
            || format!("altering the configs of {topic}"),
            result.error_message.as_deref(),
        ) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// The offset `spec` names in every partition of `topic`, by partition.
    pub async fn list_offsets(
        &self,
        topic: &str,
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, ListedOffset>, ClientError> {
        let metadata = self.client.topic(topic).await?;
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for partition in &metadata.partitions {
            if partition.leader < 0 {
                return Err(ClientError::NoLeader { topic: topic.to_string(), partition: partition.partition });
            }
            by_leader.entry(partition.leader).or_default().push(partition.partition);
        }
        let mut out = BTreeMap::new();
        for (leader, partitions) in by_leader {
            let connection = self.client.broker_connection(leader).await?;
            out.extend(list_offsets_on(&connection, topic, &partitions, spec).await?);
        }
        Ok(out)
    }

    /// The offset `spec` names in `topic`-`partition`.
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<ListedOffset, ClientError> {
        let connection = self.client.leader_connection(topic, partition).await?;
        let mut found = list_offsets_on(&connection, topic, &[partition], spec).await?;
        found.remove(&partition).ok_or_else(|| ClientError::Protocol {
            addr: connection.addr().to_string(),
            reason: format!("no ListOffsets result for {topic}-{partition}"),
        })
    }

    /// Each partition's log as its leader describes it (DescribeLogDirs, one request per
    /// partition); a partition its leader does not report is left out.
    pub async fn describe_partition_logs(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, PartitionLogInfo>, ClientError> {
        let mut out = BTreeMap::new();
        for &partition in partitions {
            let connection = self.client.leader_connection(topic, partition).await?;
            let request = DescribeLogDirsRequest {
                topics: Some(vec![DescribeLogDirsRequestTopic {
                    topic: topic.to_string(),
                    partitions: vec![partition],
                }]),
            };
            let response = connection.send(&request).await?;
            let found = response
                .results
                .iter()
                .flat_map(|r| r.topics.iter().filter(|t| t.name == topic))
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == partition);
            if let Some(p) = found {
                let known = |v: i64| (v >= 0).then_some(v);
                out.insert(
                    partition,
                    PartitionLogInfo {
                        size_bytes: p.partition_size,
                        cleaning: known(p.cleaner_dirty_bytes).zip(known(p.cleaner_cleanable_bytes)),
                        last_clean: known(p.last_clean_ms).zip(known(p.last_clean_end)),
                    },
                );
            }
        }
        Ok(out)
    }

    /// The cluster's id, controller and live brokers (DescribeCluster), from any broker.
    pub async fn describe_cluster(&self) -> Result<ClusterInfo, ClientError> {
        let connection = self.client.any_connection().await?;
        let response = connection.send(&DescribeClusterRequest::default()).await?;
        if let Some(error) = ClientError::from_code(
            response.error_code,
            || "describing the cluster".to_string(),
            response.error_message.as_deref(),
        ) {
            return Err(error);
        }
        let mut brokers: Vec<BrokerInfo> = response
            .brokers
            .into_iter()
            .map(|b| BrokerInfo { id: b.broker_id, host: b.host, port: b.port, rack: b.rack })
            .collect();
        brokers.sort_by_key(|b| b.id);
        Ok(ClusterInfo { cluster_id: response.cluster_id, controller_id: response.controller_id, brokers })
    }

    /// The metadata quorum's state (DescribeQuorum of `__cluster_metadata` 0), from any broker.
    pub async fn describe_quorum(&self) -> Result<QuorumInfo, ClientError> {
        let request = DescribeQuorumRequest {
            topics: vec![DescribeQuorumRequestTopic {
                topic_name: METADATA_TOPIC.to_string(),
                partitions: vec![DescribeQuorumRequestPartition { partition_index: 0 }],
            }],
        };
        let connection = self.client.any_connection().await?;
        let response = connection.send(&request).await?;
        let context = || "describing the metadata quorum".to_string();
        if let Some(error) = ClientError::from_code(response.error_code, context, response.error_message.as_deref()) {
            return Err(error);
        }
        let partition =
            response.topics.into_iter().flat_map(|t| t.partitions).next().ok_or_else(|| ClientError::Protocol {
                addr: connection.addr().to_string(),
                reason: "DescribeQuorum answered no partition".to_string(),
            })?;
        if let Some(error) = ClientError::from_code(partition.error_code, context, partition.error_message.as_deref()) {
            return Err(error);
        }
        let replica = |r: DescribeQuorumResponseReplica| QuorumReplica {
            id: r.replica_id,
            log_end_offset: r.log_end_offset,
            last_fetch_timestamp: r.last_fetch_timestamp,
            last_caught_up_timestamp: r.last_caught_up_timestamp,
        };
        Ok(QuorumInfo {
            leader_id: partition.leader_id,
            leader_epoch: partition.leader_epoch,
            high_watermark: partition.high_watermark,
            voters: partition.current_voters.into_iter().map(replica).collect(),
            observers: partition.observers.into_iter().map(replica).collect(),
        })
    }

    /// Elects the preferred replica leader of `partitions` (topic, index), or of every partition
    /// where it is needed if `None` (ElectLeaders, sent to the controller). Per-partition results
    /// come back as the broker gave them; ELECTION_NOT_NEEDED is an error like the others.
    pub async fn elect_preferred_leaders(
        &self,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<((String, i32), Result<(), ClientError>)>, ClientError> {
        let topic_partitions = partitions.map(|partitions| {
            let mut topics: Vec<ElectLeadersRequestTopic> = Vec::new();
            for (topic, partition) in partitions {
                match topics.iter_mut().find(|t| &t.topic == topic) {
                    Some(t) => t.partitions.push(*partition),
                    None => {
                        topics.push(ElectLeadersRequestTopic { topic: topic.clone(), partitions: vec![*partition] })
                    }
                }
            }
            topics
        });
        let request =
            ElectLeadersRequest { election_type: ELECTION_PREFERRED, topic_partitions, timeout_ms: self.timeout_ms() };
        let connection = self.client.controller_connection().await?;
        let response = connection.send(&request).await?;
        if let Some(error) = ClientError::from_code(response.error_code, || "electing leaders".to_string(), None) {
            return Err(error);
        }
        let mut out = Vec::new();
        for topic in response.replica_election_results {
            for p in topic.partition_result {
                let tp = (topic.topic.clone(), p.partition_id);
                let error = ClientError::from_code(
                    p.error_code,
                    || format!("electing a leader for {}-{}", tp.0, tp.1),
                    p.error_message.as_deref(),
                );
                out.push((tp, error.map_or(Ok(()), Err)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// Kafka's name for the metadata log's topic, the one DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";
/// ElectLeaders' election type for the preferred replica (KIP-460).
const ELECTION_PREFERRED: i8 = 0;

/// One broker as DescribeCluster lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker id.
    pub id: i32,
    /// Its advertised host.
    pub host: String,
    /// Its advertised port.
    pub port: i32,
    /// Its rack, if it has one.
    pub rack: Option<String>,
}

/// The cluster as DescribeCluster describes it: only live (unfenced) brokers are listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller's id, -1 if unknown.
    pub controller_id: i32,
    /// The brokers, by id.
    pub brokers: Vec<BrokerInfo>,
}

/// One replica of the metadata log as DescribeQuorum describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    /// The node id.
    pub id: i32,
    /// Its log end offset as the leader knows it, -1 if unknown.
    pub log_end_offset: i64,
    /// When it last fetched from the leader (ms since the epoch), -1 if unknown.
    pub last_fetch_timestamp: i64,
    /// When it was last caught up (ms since the epoch), -1 if unknown.
    pub last_caught_up_timestamp: i64,
}

/// A partition's log as its leader describes it (DescribeLogDirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLogInfo {
    /// Bytes of its segment files.
    pub size_bytes: i64,
    /// A Sluice broker's cleaner state of a compacted log: bytes dirty, bytes cleanable.
    pub cleaning: Option<(i64, i64)>,
    /// A Sluice broker's last clean of the log since it opened: when (epoch ms), up to which
    /// offset.
    pub last_clean: Option<(i64, i64)>,
}

/// The metadata quorum as DescribeQuorum describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    /// The leader (the active controller), -1 if unknown.
    pub leader_id: i32,
    /// The leader's epoch.
    pub leader_epoch: i32,
    /// The high watermark: the end of the committed log.
    pub high_watermark: i64,
    /// The voters.
    pub voters: Vec<QuorumReplica>,
    /// The observers (brokers that are not voters).
    pub observers: Vec<QuorumReplica>,
}

/// ListOffsets for some partitions of one topic on one broker.
pub(crate) async fn list_offsets_on(
    connection: &super::Connection,
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
) -> Result<BTreeMap<i32, ListedOffset>, ClientError> {
    let request = ListOffsetsRequest {
        replica_id: -1,
        isolation_level: 0,
        topics: vec![ListOffsetsRequestTopic {
            name: topic.to_string(),
            partitions: partitions
                .iter()
                .map(|&p| ListOffsetsRequestPartition {
                    partition_index: p,
                    timestamp: spec.wire(),
                    ..Default::default()
                })
                .collect(),
        }],
        // v10: a broker reading from tiered storage may take as long as the request may wait.
        timeout_ms: i32::try_from(connection.request_timeout().as_millis()).unwrap_or(i32::MAX),
    };
    let response = connection.send(&request).await?;
    let mut out = BTreeMap::new();
    for t in response.topics.iter().filter(|t| t.name == topic) {
        for p in &t.partitions {
            if let Some(error) = ClientError::from_code(
                p.error_code,
                || format!("listing offsets of {topic}-{}", p.partition_index),
                None,
            ) {
                return Err(error);
            }
            let offset = (p.offset >= 0).then_some(p.offset);
            out.insert(p.partition_index, ListedOffset { offset, timestamp: p.timestamp });
        }
    }
    Ok(out)
}
