//! The broker's validated configuration, built once from the command line (`cli/broker.rs`) and
//! shared read-only by every shard.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::topic_config::{BrokerLayers, ConfigSource, DynamicLayers, TopicDefaults};
use crate::cluster::image::MetadataImage;
use crate::cluster::node::NodeConfig;
use crate::group::GroupConfig;
use crate::server::ServerLimits;
use crate::storage::{FileCacheConfig, LogConfig};

/// Everything a broker needs to start, validated.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// This broker's id in the cluster (`node.id`).
    pub node_id: i32,
    /// Where to accept connections (every shard binds it with SO_REUSEPORT).
    pub listen: SocketAddr,
    /// The host and port clients are told to connect to.
    pub advertised_host: String,
    /// See `advertised_host`.
    pub advertised_port: u16,
    /// Root of all partition directories and metadata.
    pub data_dir: PathBuf,
    /// Number of shards (one per core).
    pub shards: usize,
    /// Topic config defaults (Kafka's broker-level `log.*` settings).
    pub log_defaults: LogConfig,
    /// Per-shard budget of the batch cache.
    pub batch_cache_bytes: u64,
    /// Largest request frame accepted; checked before allocating.
    pub max_request_bytes: u32,
    /// Create unknown topics on Metadata and Produce requests.
    pub auto_create_topics: bool,
    /// Partitions of a topic created without a count (auto-creation, or -1 at CreateTopics).
    pub default_partitions: i32,
    /// Connections accepted at once per shard; past it new ones are closed.
    pub max_connections_per_shard: u32,
    /// Whether a client connection moves to the shard its requests work on
    /// (`--move-connections`, see `server::placement`).
    pub move_connections: bool,
    /// The most partition replicas this broker accepts (`--max-partitions`), advertised at
    /// registration; the controller refuses what would place more on it.
    pub max_partitions: u64,
    /// Requests a connection may have in flight before the broker stops reading from it.
    pub max_in_flight_per_connection: usize,
    /// `queued.max.request.bytes`, for the whole broker: request memory, split evenly over the
    /// shards (each listener of a shard has that share).
    pub queued_max_request_bytes: u64,
    /// `connections.max.idle.ms`; negative: never close idle connections.
    pub connections_max_idle_ms: i64,
    /// How long a request may take to arrive once its first bytes have.
    pub request_receive_timeout_ms: u64,
    /// How long an idle fetch session is kept (KIP-227).
    pub fetch_session_idle_ms: u64,
    /// Fetch sessions kept per shard.
    pub fetch_sessions_max: usize,
    /// How long a shard spins before parking its thread when idle, in microseconds.
    pub spin_before_park_us: u64,
    /// The CPUs the shards are pinned to (`--cpuset`); `None`: any online CPU.
    pub cpuset: Option<Vec<usize>>,
    /// How often retention runs on each shard, in milliseconds.
    pub retention_check_interval_ms: u64,
    /// Partitions of `__consumer_offsets` when the broker creates it.
    pub offsets_topic_partitions: i32,
    /// Session timeout bounds and the initial rebalance delay of consumer groups.
    pub group: GroupConfig,
    /// `offsets.retention.minutes`, in milliseconds: offsets of empty groups older than this expire.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: u64,
    /// Idempotent producers and transactions.
    pub txn: TxnConfig,
    /// `default.replication.factor`: replicas of a topic created without a count.
    pub default_replication_factor: i16,
    /// `offsets.topic.replication.factor` (and the transaction log's): replicas of the internal
    /// topics, at most the live brokers when they are created.
    pub internal_replication_factor: i16,
    /// This node's part in the metadata quorum.
    pub cluster: NodeConfig,
    /// Partition replication: the ISR, follower fetching, leader elections.
    pub replication: ReplicationConfig,
    /// The log cleaner (compaction of `cleanup.policy=compact` topics).
    pub cleaner: CleanerConfig,
    /// Per shard: the descriptors its segment files may hold (`--max-open-files` split over
    /// the shards) and the disk preallocated ahead of its appends (`--preallocate-budget-bytes`).
    pub segment_files: FileCacheConfig,
}

/// Kafka's log cleaner settings. Each shard cleans the compacted logs it owns, one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.io.max.bytes.per.second`, per shard (bytes read plus bytes written); `None`
    /// is unlimited, Kafka's default.
    pub io_bytes_per_sec: Option<u64>,
    /// `log.cleaner.dedupe.buffer.size`, per shard.
    pub dedupe_buffer_bytes: u64,
    /// `log.cleaner.backoff.ms`: the sleep when no log needs cleaning.
    pub backoff_ms: u64,
    /// `offsets.topic.segment.bytes` and `transaction.state.log.segment.bytes`, set on the
    /// internal topics when they are created.
    pub internal_segment_bytes: u32,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enable: true,
            io_bytes_per_sec: None,
            dedupe_buffer_bytes: crate::limits::LOG_CLEANER_DEDUPE_BUFFER_BYTES_DEFAULT,
            backoff_ms: crate::limits::LOG_CLEANER_BACKOFF_MS_DEFAULT,
            internal_segment_bytes: crate::limits::INTERNAL_TOPIC_SEGMENT_BYTES_DEFAULT,
        }
    }
}

/// Java's `Double.MAX_VALUE` as Java prints it: Kafka's default `log.cleaner.io.max.bytes.per.second`.
const JAVA_DOUBLE_MAX: &str = "1.7976931348623157E308";

impl CleanerConfig {
    /// The dynamic ones of these settings under Kafka's names, as DescribeConfigs prints them.
    pub fn named(&self) -> Vec<(&'static str, String)> {
        let io = match self.io_bytes_per_sec {
            None => JAVA_DOUBLE_MAX.to_string(),
            // Java prints a whole double with ".0".
            Some(v) => format!("{:?}", v as f64),
        };
        vec![
            ("log.cleaner.backoff.ms", self.backoff_ms.to_string()),
            ("log.cleaner.dedupe.buffer.size", self.dedupe_buffer_bytes.to_string()),
            ("log.cleaner.io.max.bytes.per.second", io),
        ]
    }

    /// These settings with every value the dynamic layers set replacing the flag's (values were
    /// validated when they were stored). An I/O budget of `Double.MAX_VALUE` (Kafka's default) is
    /// unlimited; below one byte per second it is one.
    fn layered(&self, layers: &BrokerLayers) -> CleanerConfig {
        let mut out = self.clone();
        let dynamic = |name: &str| match layers.value(name, None) {
            (Some(v), ConfigSource::DynamicBroker | ConfigSource::DynamicDefaultBroker) => Some(v.trim().to_string()),
            _ => None,
        };
        if let Some(v) = dynamic("log.cleaner.io.max.bytes.per.second").and_then(|v| v.parse::<f64>().ok()) {
            out.io_bytes_per_sec = (v < u64::MAX as f64).then(|| v.max(1.0) as u64);
        }
        if let Some(v) = dynamic("log.cleaner.dedupe.buffer.size").and_then(|v| v.parse().ok()) {
            out.dedupe_buffer_bytes = v;
        }
        if let Some(v) = dynamic("log.cleaner.backoff.ms").and_then(|v| v.parse().ok()) {
            out.backoff_ms = v;
        }
        out
    }
}

/// Kafka's replication settings (broker level; `min.insync.replicas` and
/// `unclean.leader.election.enable` are topic configs too, and these are their defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `min.insync.replicas`, the topic default.
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable`, the topic default.
    pub unclean_leader_election: bool,
    /// `replica.lag.time.max.ms`: a follower that has not caught up with the leader's log end for
    /// this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.max.bytes`: bytes per partition in one follower fetch.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: bytes in one follower fetch answer.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms`: how long a follower fetch waits on the leader for new data.
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.backoff.ms`: how long a follower waits after a failed fetch.
    pub replica_fetch_backoff_ms: u64,
    /// `num.replica.fetchers`: fetchers per leader listener on each shard, each with its own
    /// fetch in flight.
    pub num_replica_fetchers: usize,
    /// The first port of the per-shard replication listeners (shard i listens on port + i);
    /// 0 picks free ports. Advertised at registration either way.
    pub replication_port: u16,
    /// `auto.leader.rebalance.enable`: the controller moves leaderships back to preferred
    /// replicas.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in milliseconds.
    pub leader_imbalance_check_interval_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            min_insync_replicas: 1,
            unclean_leader_election: false,
            replica_lag_time_max_ms: crate::limits::REPLICA_LAG_TIME_MAX_MS_DEFAULT,
            replica_fetch_max_bytes: crate::limits::REPLICA_FETCH_MAX_BYTES_DEFAULT,
            replica_fetch_response_max_bytes: crate::limits::REPLICA_FETCH_RESPONSE_MAX_BYTES_DEFAULT,
            replica_fetch_wait_max_ms: crate::limits::REPLICA_FETCH_WAIT_MAX_MS_DEFAULT,
            replica_fetch_backoff_ms: crate::limits::REPLICA_FETCH_BACKOFF_MS_DEFAULT,
            num_replica_fetchers: 1,
            replication_port: 0,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: crate::limits::LEADER_IMBALANCE_CHECK_INTERVAL_MS_DEFAULT,
        }
    }
}

impl BrokerConfig {
    /// The broker's static defaults for topic configs (its flags, no dynamic config).
    pub fn topic_defaults(&self) -> TopicDefaults {
        TopicDefaults::new(self.log_defaults.clone(), &self.static_extra(), DynamicLayers::default())
    }

    /// The broker's defaults for topic configs under the dynamic broker configs of `image`:
    /// this broker's, then the cluster-wide ones, then its flags.
    pub fn topic_defaults_in(&self, image: &MetadataImage) -> TopicDefaults {
        TopicDefaults::new(self.log_defaults.clone(), &self.static_extra(), self.dynamic_layers(image))
    }

    /// The cleaner's settings under the dynamic broker configs of `image`. The cleaner reads
    /// them through this (via `Metadata::cleaner_config`) each time it schedules, so a change
    /// by AlterConfigs applies from the next clean.
    pub fn cleaner_config(&self, image: &MetadataImage) -> CleanerConfig {
        self.cleaner.layered(&self.topic_defaults_in(image).layers)
    }

    /// The dynamic broker configs of `image` that apply to this broker.
    pub fn dynamic_layers<'a>(&self, image: &'a MetadataImage) -> DynamicLayers<'a> {
        DynamicLayers {
            broker: image.broker_configs.get(&self.node_id.to_string()),
            cluster: image.broker_configs.get(""),
        }
    }

    /// The static settings that default topic configs or are dynamic broker configs, other
    /// than the log's: replication's and the cleaner's, under Kafka's names.
    fn static_extra(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("min.insync.replicas", self.replication.min_insync_replicas.to_string()),
            ("unclean.leader.election.enable", self.replication.unclean_leader_election.to_string()),
        ];
        // Those equal to Kafka's default are dropped there, the others are this broker's static
        // values (Sluice's own defaults included, such as its smaller dedupe buffer per core).
        out.extend(self.cleaner.named());
        out
    }
}

/// Kafka's producer-state and transaction settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `producer.id.expiration.ms`: a partition forgets a producer idle this long.
    pub producer_id_expiration_ms: u64,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: a transactional id idle this long is forgotten.
    pub transactional_id_expiration_ms: u64,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`.
    pub state_log_partitions: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often coordinators
    /// look for transactions past their timeout.
    pub abort_check_interval_ms: u64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            producer_id_expiration_ms: crate::limits::PRODUCER_ID_EXPIRATION_MS_DEFAULT,
            max_timeout_ms: crate::limits::TRANSACTION_MAX_TIMEOUT_MS_DEFAULT,
            transactional_id_expiration_ms: crate::limits::TRANSACTIONAL_ID_EXPIRATION_MS_DEFAULT,
            state_log_partitions: crate::limits::TRANSACTION_STATE_PARTITIONS_DEFAULT,
            abort_check_interval_ms: crate::limits::TRANSACTION_ABORT_CHECK_INTERVAL_MS_DEFAULT,
        }
    }
}

impl BrokerConfig {
    /// The request memory of one listener on one shard: the broker's budget split evenly.
    pub fn queued_max_request_bytes_per_shard(&self) -> u64 {
        self.queued_max_request_bytes / (self.shards.max(1) as u64)
    }

    /// The limits each shard's listeners serve connections with.
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            connections_per_shard: self.max_connections_per_shard,
            in_flight_per_connection: self.max_in_flight_per_connection,
            request_bytes_max: self.max_request_bytes,
            connections_max_idle: u64::try_from(self.connections_max_idle_ms).ok().map(Duration::from_millis),
            request_receive_timeout: Duration::from_millis(self.request_receive_timeout_ms),
        }
    }

    /// A configuration for tests and tools: one shard, everything else at its default.
    pub fn for_data_dir(data_dir: PathBuf, listen: SocketAddr) -> Self {
        let data_dir_for_quorum = data_dir.clone();
        BrokerConfig {
            node_id: 0,
            listen,
            advertised_host: listen.ip().to_string(),
            advertised_port: listen.port(),
            data_dir,
            shards: 1,
            log_defaults: LogConfig::default(),
            batch_cache_bytes: crate::limits::BATCH_CACHE_BYTES_DEFAULT,
            max_request_bytes: crate::limits::REQUEST_BYTES_MAX_DEFAULT,
            auto_create_topics: false,
            default_partitions: 1,
            max_connections_per_shard: crate::limits::CONNECTIONS_PER_SHARD_MAX_DEFAULT,
            move_connections: true,
            max_partitions: crate::limits::MAX_PARTITIONS_FALLBACK,
            max_in_flight_per_connection: crate::limits::REQUESTS_IN_FLIGHT_PER_CONNECTION,
            queued_max_request_bytes: crate::limits::QUEUED_MAX_REQUEST_BYTES_PER_SHARD_DEFAULT,
            connections_max_idle_ms: crate::limits::CONNECTIONS_MAX_IDLE_MS_DEFAULT,
            request_receive_timeout_ms: crate::limits::REQUEST_RECEIVE_TIMEOUT_MS_DEFAULT,
            fetch_session_idle_ms: crate::limits::FETCH_SESSION_IDLE_MS_DEFAULT,
            fetch_sessions_max: crate::limits::FETCH_SESSIONS_PER_SHARD_MAX,
            spin_before_park_us: 0,
            cpuset: None,
            retention_check_interval_ms: crate::limits::RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            offsets_topic_partitions: crate::limits::OFFSETS_TOPIC_PARTITIONS_DEFAULT,
            group: GroupConfig::default(),
            offsets_retention_ms: crate::limits::OFFSETS_RETENTION_MINUTES_DEFAULT * 60 * 1000,
            txn: TxnConfig::default(),
            offsets_retention_check_interval_ms: crate::limits::OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            default_replication_factor: 1,
            internal_replication_factor: crate::limits::INTERNAL_REPLICATION_FACTOR_DEFAULT,
            cluster: NodeConfig::single(0, &data_dir_for_quorum),
            replication: ReplicationConfig::default(),
            cleaner: CleanerConfig::default(),
            segment_files: FileCacheConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::broker::topic_config::dynamic_broker_config;

    #[test]
    fn the_cleaner_reads_its_flags_under_the_dynamic_configs() {
        let dir = std::path::PathBuf::from("/nonexistent");
        let mut config = BrokerConfig::for_data_dir(dir, "127.0.0.1:0".parse().unwrap());
        config.cleaner.backoff_ms = 500;
        let mut image = MetadataImage::default();
        assert_eq!(config.cleaner_config(&image), config.cleaner);
        image.broker_configs.insert(
            String::new(),
            BTreeMap::from([
                ("log.cleaner.backoff.ms".to_string(), "100".to_string()),
                ("log.cleaner.io.max.bytes.per.second".to_string(), "1048576".to_string()),
            ]),
        );
        image.broker_configs.insert("0".into(), BTreeMap::from([("log.cleaner.backoff.ms".into(), "50".into())]));
        let cleaner = config.cleaner_config(&image);
        assert_eq!((cleaner.backoff_ms, cleaner.io_bytes_per_sec), (50, Some(1048576)));
        assert_eq!(cleaner.dedupe_buffer_bytes, crate::limits::LOG_CLEANER_DEDUPE_BUFFER_BYTES_DEFAULT);
        image.broker_configs.insert(
            "0".into(),
            BTreeMap::from([("log.cleaner.io.max.bytes.per.second".into(), JAVA_DOUBLE_MAX.into())]),
        );
        assert_eq!(config.cleaner_config(&image).io_bytes_per_sec, None, "Kafka's default: unlimited");
        // Kafka's defaults print as Kafka prints them.
        let named: BTreeMap<&str, String> = CleanerConfig::default().named().into_iter().collect();
        for name in ["log.cleaner.backoff.ms", "log.cleaner.io.max.bytes.per.second"] {
            assert_eq!(
                dynamic_broker_config(name).and_then(|c| c.kafka_default()),
                named.get(name).map(String::as_str)
            );
        }
    }
}
