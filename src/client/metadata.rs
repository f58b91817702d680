//! [`Client`]: the bootstrap list, one [`Connection`] per broker, and the cached cluster
//! metadata (brokers, topic → partitions → leader), refreshed with Metadata requests.
//!
//! Lifecycle: [`Client::connect`] reaches the first bootstrap server that answers and reads
//! the broker list. Topics enter the cache when first asked for ([`Client::topic`]) or on
//! [`Client::refresh_metadata`]; the producer and consumer refresh after a leadership error.
//! Connections are opened on first use and replaced once they fail.
//!
//! Concurrency: a `Client` is a cheap `Rc` handle for one executor; clones share connections
//! and metadata. No `RefCell` borrow is held across an `.await`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use super::connection::{Connection, ConnectionConfig};
use super::error::ClientError;
use crate::protocol::messages::{MetadataRequest, MetadataRequestTopic, MetadataResponse};

/// How a [`Client`] behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// host:port of brokers to learn the cluster from; tried in order.
    pub bootstrap: Vec<String>,
    /// Settings of every connection.
    pub connection: ConnectionConfig,
    /// How often an operation is retried after a retriable error (Kafka's `retries`).
    pub retries: u32,
    /// The pause before a retry (Kafka's `retry.backoff.ms`).
    pub retry_backoff: Duration,
}

impl ClientConfig {
    /// Defaults, bootstrapping from `bootstrap` (host:port entries).
    pub fn new<S: Into<String>>(bootstrap: impl IntoIterator<Item = S>) -> ClientConfig {
        ClientConfig {
            bootstrap: bootstrap.into_iter().map(Into::into).collect(),
            connection: ConnectionConfig::default(),
            retries: 5,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// One partition as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// The partition index.
    pub partition: i32,
    /// The leader's broker id, -1 if none.
    pub leader: i32,
    /// The leader epoch, -1 if unknown.
    pub leader_epoch: i32,
    /// Broker ids of the replicas.
    pub replicas: Vec<i32>,
    /// Broker ids of the in-sync replicas.
    pub isr: Vec<i32>,
    /// Broker ids of the replicas on brokers that are not live (v5+; empty before).
    pub offline_replicas: Vec<i32>,
    /// The partition's error code (0 if none).
    pub error_code: i16,
}

/// One topic as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// The topic name.
    pub name: String,
    /// The topic's error code (0 if none; UNKNOWN_TOPIC_OR_PARTITION for a missing topic).
    pub error_code: i16,
    /// Its partitions, sorted by index.
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// The topic's error, if the broker reported one.
    pub fn error(&self) -> Option<ClientError> {
        ClientError::from_code(self.error_code, || format!("topic {}", self.name), None)
    }
}

/// The client's maps looked up once or more per record (partition state, topic metadata), with
/// hashbrown's own fast hasher: their keys are topic names the application and its cluster chose,
/// and SipHash on each lookup was a visible share of a producer's CPU.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What the client knows of the cluster: an immutable snapshot, replaced on each refresh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Broker id → host:port.
    pub brokers: HashMap<i32, String>,
    /// The controller's broker id, -1 if unknown.
    pub controller_id: i32,
    /// Topics known so far, by name.
    pub topics: FastMap<String, TopicMetadata>,
}

impl ClusterMetadata {
    /// The leader's broker id of `topic`-`partition`, if known.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let topic = self.topics.get(topic)?;
        let partition = topic.partitions.iter().find(|p| p.partition == partition)?;
        (partition.leader >= 0).then_some(partition.leader)
    }

    /// Merges a Metadata response: brokers and controller are replaced, topics in the response
    /// replace their cached entry.
    fn merge(&self, response: MetadataResponse) -> ClusterMetadata {
        let brokers = response.brokers.iter().map(|b| (b.node_id, format!("{}:{}", b.host, b.port))).collect();
        let mut topics = self.topics.clone();
        for topic in response.topics {
            let Some(name) = topic.name else { continue };
            let mut partitions: Vec<PartitionMetadata> = topic
                .partitions
                .into_iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: p.leader_id,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes,
                    isr: p.isr_nodes,
                    offline_replicas: p.offline_replicas,
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            topics.insert(name.clone(), TopicMetadata { name, error_code: topic.error_code, partitions });
        }
        ClusterMetadata { brokers, controller_id: response.controller_id, topics }
    }
}

/// A handle to the cluster: connections and metadata. See the module docs.
#[derive(Clone)]
pub struct Client {
    inner: Rc<ClientInner>,
}

struct ClientInner {
    config: ClientConfig,
    connections: RefCell<HashMap<String, Connection>>,
    metadata: RefCell<Rc<ClusterMetadata>>,
}

impl Client {
    /// Connects to the first reachable bootstrap server and reads the broker list. Fails with
    /// [`ClientError::NoBrokerReachable`] when none answers.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.bootstrap.is_empty() {
            return Err(ClientError::InvalidArgument("the bootstrap list is empty".into()));
        }
        let inner = ClientInner {
            config,
            connections: RefCell::new(HashMap::new()),
            metadata: RefCell::new(Rc::new(ClusterMetadata { controller_id: -1, ..Default::default() })),
        };
        let client = Client { inner: Rc::new(inner) };
        client.refresh_metadata(Some(&[])).await?;
        Ok(client)
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The metadata known now.
    pub fn metadata(&self) -> Rc<ClusterMetadata> {
        self.inner.metadata.borrow().clone()
    }

    /// The connection to `addr`, opened if there is none or the last one failed.
    pub async fn connection(&self, addr: &str) -> Result<Connection, ClientError> {
        let cached = self.inner.connections.borrow().get(addr).cloned();
        if let Some(connection) = cached
            && !connection.is_failed()
        {
            return Ok(connection);
        }
        let connection = Connection::connect(addr, self.inner.config.connection.clone()).await?;
        self.inner.connections.borrow_mut().insert(addr.to_string(), connection.clone());
        Ok(connection)
    }

    /// The connection to broker `node_id`, whose address the metadata gives.
    pub async fn broker_connection(&self, node_id: i32) -> Result<Connection, ClientError> {
        let addr = self.metadata().brokers.get(&node_id).cloned();
        let Some(addr) = addr else {
            return Err(ClientError::InvalidArgument(format!("broker {node_id} is not in the metadata")));
        };
        self.connection(&addr).await
    }

    /// A connection to any broker: known brokers first, then the bootstrap list.
    pub async fn any_connection(&self) -> Result<Connection, ClientError> {
        let mut candidates: Vec<String> = self.metadata().brokers.values().cloned().collect();
        candidates.sort();
        for addr in &self.inner.config.bootstrap {
            if !candidates.contains(addr) {
                candidates.push(addr.clone());
            }
        }
        let mut last = None;
        for addr in &candidates {
            match self.connection(addr).await {
                Ok(connection) => return Ok(connection),
                Err(e) => last = Some(e),
            }
        }
        let last = last.unwrap_or_else(|| ClientError::InvalidArgument("no broker address known".into()));
        Err(ClientError::NoBrokerReachable { tried: candidates.join(","), last: Box::new(last) })
    }

    /// The connection to the controller (for topic creation and deletion), or any broker if
    /// the controller is unknown.
    pub async fn controller_connection(&self) -> Result<Connection, ClientError> {
        let controller = self.metadata().controller_id;
        if controller >= 0
            && let Ok(connection) = self.broker_connection(controller).await
        {
            return Ok(connection);
        }
        self.any_connection().await
    }

    /// The connection to the leader of `topic`-`partition`, refreshing the metadata once if the
    /// leader is unknown.
    pub async fn leader_connection(&self, topic: &str, partition: i32) -> Result<Connection, ClientError> {
        let mut leader = self.metadata().leader(topic, partition);
        if leader.is_none() {
            self.refresh_metadata(Some(&[topic.to_string()])).await?;
            leader = self.metadata().leader(topic, partition);
        }
        let Some(leader) = leader else {
            return Err(ClientError::NoLeader { topic: topic.to_string(), partition });
        };
        self.broker_connection(leader).await
    }

    /// Asks a broker for the metadata of `topics` (all topics when `None`) and merges the
    /// answer into the cache. Never creates topics.
    pub async fn refresh_metadata(&self, topics: Option<&[String]>) -> Result<Rc<ClusterMetadata>, ClientError> {
        let request = MetadataRequest {
            topics: topics.map(|names| {
                names.iter().map(|n| MetadataRequestTopic { name: Some(n.clone()), ..Default::default() }).collect()
            }),
            allow_auto_topic_creation: false,
            ..Default::default()
        };
        let connection = self.any_connection().await?;
        let response = connection.send(&request).await?;
        let merged = Rc::new(self.metadata().merge(response));
        *self.inner.metadata.borrow_mut() = merged.clone();
        Ok(merged)
    }

    /// The metadata of `topic`, fetched if not cached. Fails with [`ClientError::UnknownTopic`]
    /// if the cluster does not have it.
    pub async fn topic(&self, topic: &str) -> Result<TopicMetadata, ClientError> {
        let cached = self.metadata().topics.get(topic).cloned();
        let metadata = match cached {
            Some(known) if known.error_code == 0 && !known.partitions.is_empty() => known,
            _ => {
                let fresh = self.refresh_metadata(Some(&[topic.to_string()])).await?;
                fresh.topics.get(topic).cloned().ok_or_else(|| ClientError::UnknownTopic(topic.to_string()))?
            }
        };
        if metadata.error_code == crate::protocol::ErrorCode::UnknownTopicOrPartition.code() {
            return Err(ClientError::UnknownTopic(topic.to_string()));
        }
        if let Some(error) = metadata.error() {
            return Err(error);
        }
        Ok(metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};

    #[test]
    fn merge_replaces_brokers_and_the_topics_answered() {
        let response = MetadataResponse {
            brokers: vec![MetadataResponseBroker { node_id: 1, host: "h".into(), port: 9, ..Default::default() }],
            controller_id: 1,
            topics: vec![MetadataResponseTopic {
                name: Some("t".into()),
                partitions: vec![
                    MetadataResponsePartition { partition_index: 1, leader_id: 1, ..Default::default() },
                    MetadataResponsePartition { partition_index: 0, leader_id: -1, ..Default::default() },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let merged = ClusterMetadata::default().merge(response);
        assert_eq!(merged.brokers.get(&1).map(String::as_str), Some("h:9"));
        assert_eq!(merged.topics["t"].partitions[0].partition, 0);
        assert_eq!(merged.leader("t", 1), Some(1));
        assert_eq!(merged.leader("t", 0), None);
        assert_eq!(merged.leader("u", 0), None);
    }
}
