//! `sluice broker`: runs a broker on embedded defaults. Every knob is a flag (and an environment
//! variable); `--help` lists each with its default.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tracing::info;

use crate::broker::dispatch::ReplicationListener;
use crate::broker::metadata::CONTROLLER_SHARD;
use crate::broker::metadata::image::{MetadataImage, legacy_image_path, load_legacy_image};
use crate::broker::{BrokerConfig, BrokerMesh, ShardBroker, broker_meshes};
use crate::cluster::node::{NodeConfig, quorum_dir};
use crate::limits;
use crate::shard::{ShardContext, ShardPool, ShardsConfig, Shutdown};
use crate::storage::{FlushMode, LogConfig};

#[derive(Debug, Args)]
pub(super) struct BrokerArgs {
    /// Address to accept Kafka clients on (every core listens, SO_REUSEPORT). Port 0 picks a free
    /// port; the chosen address is printed.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:9092")]
    listen: String,
    /// host:port clients are told to connect to (default: the listen address).
    #[arg(long, env = "SLUICE_ADVERTISED_LISTENER")]
    advertised_listener: Option<String>,
    /// Directory for partition logs and metadata.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    data_dir: PathBuf,
    /// Shards (one per core, pinned). Default: all online CPUs (all of --cpuset's).
    #[arg(long, env = "SLUICE_CORES")]
    cores: Option<usize>,
    /// The CPUs the shards are pinned to, as a list like `0-3,6` (Linux's cpuset format).
    /// Default: any online CPU. For several brokers on one machine: without it, each one's
    /// shards start at the same first CPUs.
    #[arg(long, env = "SLUICE_CPUSET")]
    cpuset: Option<String>,
    /// This broker's node id.
    #[arg(long, env = "SLUICE_NODE_ID", default_value_t = 0)]
    node_id: i32,
    /// The metadata quorum's voters, `id@host:port,...` (their --controller-listen addresses).
    /// Without it the broker is a cluster of one, its own single voter. A node whose id is not
    /// listed joins as a broker only.
    #[arg(long, env = "SLUICE_CONTROLLER_VOTERS")]
    controller_voters: Option<String>,
    /// Where this node listens for the other nodes of the cluster (Raft and controller calls).
    /// A voter must listen at its address in --controller-voters; other brokers need not.
    #[arg(long, env = "SLUICE_CONTROLLER_LISTEN")]
    controller_listen: Option<String>,
    /// broker.session.timeout.ms: a broker the controller has not heard from for this long is
    /// fenced and its partitions' leadership moves.
    #[arg(long, default_value_t = limits::BROKER_SESSION_TIMEOUT_DEFAULT.as_millis() as u64)]
    broker_session_timeout_ms: u64,
    /// broker.heartbeat.interval.ms: how often a broker tells the controller it is alive.
    #[arg(long, default_value_t = limits::BROKER_HEARTBEAT_INTERVAL_DEFAULT.as_millis() as u64)]
    broker_heartbeat_interval_ms: u64,
    /// controller.quorum.election.timeout.ms: how long voters go without a leader before one
    /// campaigns (Raft randomises between this and twice this).
    #[arg(long, default_value_t = limits::RAFT_TICK.as_millis() as u64 * limits::RAFT_ELECTION_TICKS_DEFAULT as u64)]
    controller_election_timeout_ms: u64,
    /// Metadata log entries kept before the quorum compacts them into a snapshot of the image
    /// (a new or lagging node then catches up from the snapshot).
    #[arg(long, default_value_t = limits::METADATA_SNAPSHOT_AFTER_ENTRIES)]
    metadata_snapshot_after_entries: u64,
    /// default.replication.factor: replicas of topics created without a count.
    #[arg(long, default_value_t = 1)]
    default_replication_factor: i16,
    /// offsets.topic.replication.factor: replicas of __consumer_offsets and __transaction_state,
    /// at most the brokers alive when they are created.
    #[arg(long, default_value_t = limits::INTERNAL_REPLICATION_FACTOR_DEFAULT)]
    offsets_topic_replication_factor: i16,
    /// segment.bytes default: roll segments at this size.
    #[arg(long, default_value_t = limits::SEGMENT_BYTES_DEFAULT)]
    segment_bytes: u32,
    /// segment.ms default: roll segments this old.
    #[arg(long, default_value_t = limits::SEGMENT_MS_DEFAULT)]
    segment_ms: u64,
    /// index.interval.bytes default.
    #[arg(long, default_value_t = limits::INDEX_INTERVAL_BYTES_DEFAULT)]
    index_interval_bytes: u32,
    /// retention.ms default (-1: keep forever).
    #[arg(long, default_value_t = 7 * 24 * 60 * 60 * 1000, allow_negative_numbers = true)]
    retention_ms: i64,
    /// retention.bytes default per partition (-1: unbounded).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    retention_bytes: i64,
    /// max.message.bytes default: the largest batch accepted.
    #[arg(long, default_value_t = limits::MAX_MESSAGE_BYTES_DEFAULT)]
    max_message_bytes: u32,
    /// When an append is acknowledged: sync (fdatasync'd), interval (written; fdatasync every
    /// --flush-interval-ms), none (written).
    #[arg(long, env = "SLUICE_FLUSH_MODE", default_value = "sync")]
    flush_mode: String,
    /// fdatasync period for --flush-mode interval.
    #[arg(long, default_value_t = limits::FLUSH_INTERVAL_MS_DEFAULT)]
    flush_interval_ms: u64,
    /// Memory per core for recently appended batches served to consumers without disk reads.
    #[arg(long, default_value_t = limits::BATCH_CACHE_BYTES_DEFAULT)]
    batch_cache_bytes: u64,
    /// Largest request frame accepted (checked before allocating).
    #[arg(long, default_value_t = limits::REQUEST_BYTES_MAX_DEFAULT)]
    max_request_bytes: u32,
    /// Create unknown topics on Metadata and Produce requests.
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS", default_value_t = false)]
    auto_create_topics: bool,
    /// Partitions of topics created without a count.
    #[arg(long, default_value_t = 1)]
    default_partitions: i32,
    /// Connections per core.
    #[arg(long, default_value_t = limits::CONNECTIONS_PER_SHARD_MAX_DEFAULT)]
    max_connections_per_core: u32,
    /// Move a client connection to the core that leads the partitions its produce and fetch
    /// requests keep working on, so they are served without a hop between cores.
    #[arg(long, env = "SLUICE_MOVE_CONNECTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    move_connections: bool,
    /// Descriptors the broker's segment files may hold open, split evenly over the cores: past
    /// it, idle files are closed and reopened when next used (a file being read or written is
    /// never closed). Default: the open files limit less a reserve and the descriptors of
    /// --max-connections-per-core connections on every core, but at least a quarter of what the
    /// reserve leaves (the split is logged at start).
    #[arg(long, env = "SLUICE_MAX_OPEN_FILES")]
    max_open_files: Option<u64>,
    /// Disk space per core preallocated ahead of its active segments' appends: each segment's
    /// file grows by this divided by the core's partitions (at most 32 MiB, at least 4 KiB).
    #[arg(long, default_value_t = limits::PREALLOCATE_BUDGET_BYTES_DEFAULT)]
    preallocate_budget_bytes: u64,
    /// The most partition replicas this broker accepts; CreateTopics and CreatePartitions that
    /// would place more on it are refused with POLICY_VIOLATION. 0: derived from the machine's
    /// memory (a quarter of it over an estimated 40 KiB per partition).
    #[arg(long, default_value_t = 0)]
    max_partitions: u64,
    /// Requests one connection may have in flight.
    #[arg(long, default_value_t = limits::REQUESTS_IN_FLIGHT_PER_CONNECTION)]
    max_in_flight_per_connection: usize,
    /// queued.max.request.bytes: memory for requests being received or handled, per broker,
    /// split evenly over the cores (default: 100 MiB per core). Past it connections are not read
    /// until requests finish; one request may go past it at a time.
    #[arg(long)]
    queued_max_request_bytes: Option<u64>,
    /// connections.max.idle.ms: close a connection with no request for this long (-1: never).
    #[arg(long, default_value_t = limits::CONNECTIONS_MAX_IDLE_MS_DEFAULT, allow_negative_numbers = true)]
    connections_max_idle_ms: i64,
    /// Close a connection whose request has not arrived whole this long after its first bytes
    /// (time spent waiting for request memory does not count).
    #[arg(long, default_value_t = limits::REQUEST_RECEIVE_TIMEOUT_MS_DEFAULT)]
    request_receive_timeout_ms: u64,
    /// Idle fetch sessions are dropped after this long.
    #[arg(long, default_value_t = limits::FETCH_SESSION_IDLE_MS_DEFAULT)]
    fetch_session_idle_ms: u64,
    /// Fetch sessions per core.
    #[arg(long, default_value_t = limits::FETCH_SESSIONS_PER_SHARD_MAX)]
    fetch_sessions_per_core: usize,
    /// How long an idle core spins before parking (lower cross-core latency, more CPU).
    #[arg(long, default_value_t = 0)]
    spin_before_park_us: u64,
    /// How often retention runs.
    #[arg(long, default_value_t = limits::RETENTION_CHECK_INTERVAL_MS_DEFAULT)]
    retention_check_interval_ms: u64,
    /// Partitions of the internal __consumer_offsets topic, fixed when the broker first creates it.
    /// Kafka's default is 50; each partition here preallocates a 32 MiB segment extent on disk.
    #[arg(long, default_value_t = limits::OFFSETS_TOPIC_PARTITIONS_DEFAULT)]
    offsets_topic_partitions: i32,
    /// log.cleaner.enable: compact the logs of cleanup.policy=compact topics (one cleaner per
    /// core, for the core's own partitions).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    log_cleaner_enable: bool,
    /// log.cleaner.io.max.bytes.per.second, in MB/s per core (read plus written); 0 = unlimited.
    #[arg(long, default_value_t = 0.0)]
    log_cleaner_io_mb_per_sec: f64,
    /// log.cleaner.dedupe.buffer.size per core: the cleaner's key map (24 bytes per key).
    #[arg(long, default_value_t = limits::LOG_CLEANER_DEDUPE_BUFFER_BYTES_DEFAULT)]
    log_cleaner_dedupe_buffer_bytes: u64,
    /// log.cleaner.backoff.ms: how long a core's cleaner sleeps when no log needs cleaning.
    #[arg(long, default_value_t = limits::LOG_CLEANER_BACKOFF_MS_DEFAULT)]
    log_cleaner_backoff_ms: u64,
    /// offsets.topic.segment.bytes (and transaction.state.log.segment.bytes): segment size of the
    /// internal topics when they are created.
    #[arg(long, default_value_t = limits::INTERNAL_TOPIC_SEGMENT_BYTES_DEFAULT)]
    offsets_topic_segment_bytes: u32,
    /// group.initial.rebalance.delay.ms: how long the first rebalance of an empty group waits for
    /// more members to join.
    #[arg(long, default_value_t = 3000)]
    group_initial_rebalance_delay_ms: i64,
    /// group.min.session.timeout.ms: the shortest session timeout a member may ask for.
    #[arg(long, default_value_t = 6000)]
    group_min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms: the longest session timeout a member may ask for.
    #[arg(long, default_value_t = 1_800_000)]
    group_max_session_timeout_ms: i32,
    /// offsets.retention.minutes: committed offsets of an empty group expire this long after the
    /// later of their commit and the group becoming empty.
    #[arg(long, default_value_t = limits::OFFSETS_RETENTION_MINUTES_DEFAULT)]
    offsets_retention_minutes: i64,
    /// offsets.retention.check.interval.ms: how often offsets are checked for expiry.
    #[arg(long, default_value_t = limits::OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT)]
    offsets_retention_check_interval_ms: u64,
    /// producer.id.expiration.ms: a partition forgets an idempotent producer idle this long.
    #[arg(long, default_value_t = limits::PRODUCER_ID_EXPIRATION_MS_DEFAULT)]
    producer_id_expiration_ms: u64,
    /// transaction.max.timeout.ms: the longest transaction timeout a producer may ask for.
    #[arg(long, default_value_t = limits::TRANSACTION_MAX_TIMEOUT_MS_DEFAULT)]
    transaction_max_timeout_ms: i32,
    /// transactional.id.expiration.ms: a transactional id idle this long is forgotten.
    #[arg(long, default_value_t = limits::TRANSACTIONAL_ID_EXPIRATION_MS_DEFAULT)]
    transactional_id_expiration_ms: u64,
    /// transaction.state.log.num.partitions: partitions of __transaction_state, fixed when the
    /// broker first creates it.
    #[arg(long, default_value_t = limits::TRANSACTION_STATE_PARTITIONS_DEFAULT)]
    transaction_state_partitions: i32,
    /// How often transactions past their timeout are looked for and aborted.
    #[arg(long, default_value_t = limits::TRANSACTION_ABORT_CHECK_INTERVAL_MS_DEFAULT)]
    transaction_abort_check_interval_ms: u64,
    /// min.insync.replicas (topic default): in-sync replicas an acks=all produce needs; the high
    /// watermark does not move with fewer.
    #[arg(long, default_value_t = 1)]
    min_insync_replicas: i32,
    /// unclean.leader.election.enable (topic default): with no live in-sync replica, elect an
    /// out-of-sync one, losing the records only the others had.
    #[arg(long, default_value_t = false)]
    unclean_leader_election_enable: bool,
    /// replica.lag.time.max.ms: a follower not caught up with its leader for this long leaves
    /// the ISR.
    #[arg(long, default_value_t = limits::REPLICA_LAG_TIME_MAX_MS_DEFAULT)]
    replica_lag_time_max_ms: u64,
    /// replica.fetch.max.bytes: bytes per partition in one follower fetch.
    #[arg(long, default_value_t = limits::REPLICA_FETCH_MAX_BYTES_DEFAULT)]
    replica_fetch_max_bytes: i32,
    /// replica.fetch.response.max.bytes: bytes in one follower fetch answer.
    #[arg(long, default_value_t = limits::REPLICA_FETCH_RESPONSE_MAX_BYTES_DEFAULT)]
    replica_fetch_response_max_bytes: i32,
    /// replica.fetch.wait.max.ms: how long a follower fetch waits on the leader for new records.
    #[arg(long, default_value_t = limits::REPLICA_FETCH_WAIT_MAX_MS_DEFAULT)]
    replica_fetch_wait_max_ms: i32,
    /// replica.fetch.backoff.ms: how long a follower waits after a failed fetch.
    #[arg(long, default_value_t = limits::REPLICA_FETCH_BACKOFF_MS_DEFAULT)]
    replica_fetch_backoff_ms: u64,
    /// num.replica.fetchers: fetchers per leader on each core, each with its own fetch in flight.
    #[arg(long, default_value_t = 1)]
    num_replica_fetchers: usize,
    /// First port of the per-core replication listeners (core i listens on port + i, on the
    /// --listen address); 0 picks free ports. Other brokers learn them at registration.
    #[arg(long, default_value_t = 0)]
    replication_port: u16,
    /// auto.leader.rebalance.enable: move leaderships back to preferred replicas periodically.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    auto_leader_rebalance_enable: bool,
    /// leader.imbalance.check.interval.seconds: how often the controller looks for leaderships
    /// to move back.
    #[arg(long, default_value_t = limits::LEADER_IMBALANCE_CHECK_INTERVAL_MS_DEFAULT / 1000)]
    leader_imbalance_check_interval_seconds: u64,
    /// Serve Prometheus metrics over HTTP on this address (`GET /metrics`), e.g. 127.0.0.1:9644.
    /// Off when unset. `sluice broker-stats` reads it.
    #[arg(long, env = "SLUICE_METRICS_LISTEN")]
    metrics_listen: Option<String>,
}

/// How often a shard looks whether shard 0 has let it serve, at startup.
const SERVING_POLL: Duration = Duration::from_millis(10);

/// Room kept in an inter-broker answer beyond a follower fetch's record bytes (headers, topic
/// names, per-partition fields), so a full answer always fits the pool's limit.
const REPLICA_FETCH_RESPONSE_OVERHEAD: i64 = 1024 * 1024;

/// How long the check for another listener on `--listen` waits for a connection.
const LISTEN_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("cannot resolve {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to nothing"))
}

impl BrokerArgs {
    fn into_config(self) -> anyhow::Result<BrokerConfig> {
        let mut listen = resolve(&self.listen)?;
        if listen.port() == 0 {
            // Pick the port here, so that every shard binds the same one.
            let probe = std::net::TcpListener::bind(listen).with_context(|| format!("cannot bind {listen}"))?;
            listen = probe.local_addr()?;
        } else if std::net::TcpStream::connect_timeout(&listen, LISTEN_PROBE_TIMEOUT).is_ok() {
            // The shards' listeners set SO_REUSEPORT, so their binds would succeed beside
            // another listener and the kernel would split the connections between two brokers.
            // A connect, not a bind, tells: the accepted sockets a crashed broker leaves in
            // FIN_WAIT make a plain bind fail although nobody listens.
            bail!("cannot listen on {listen}: another process is listening there");
        }
        let (advertised_host, advertised_port) = match &self.advertised_listener {
            Some(text) => {
                let (host, port) = text.rsplit_once(':').context("--advertised-listener must be host:port")?;
                (host.to_string(), port.parse().context("--advertised-listener port")?)
            }
            None => (listen.ip().to_string(), listen.port()),
        };
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpuset = match self.cpuset.as_deref() {
            None => None,
            Some(text) => {
                // The shards are placed among the machine's online CPUs (glommio's view), which
                // need not be numbered 0..online.
                let mut online_cpus: Vec<usize> = glommio::CpuSet::online()
                    .map_err(|e| anyhow::anyhow!("reading the CPU topology: {e}"))?
                    .iter()
                    .map(|l| l.cpu)
                    .collect();
                online_cpus.sort_unstable();
                Some(parse_cpuset(text, &online_cpus)?)
            }
        };
        let usable = cpuset.as_ref().map_or(online, Vec::len);
        let shards = self.cores.unwrap_or(usable);
        if shards == 0 || shards > usable {
            bail!(
                "--cores must be in 1..={usable} (one shard per core{})",
                if cpuset.is_some() { " of --cpuset" } else { "" }
            );
        }
        let mut log = LogConfig {
            flush_mode: FlushMode::parse(&self.flush_mode, self.flush_interval_ms)?,
            ..LogConfig::default()
        };
        log.set("segment.bytes", &self.segment_bytes.to_string())?;
        log.set("segment.ms", &self.segment_ms.to_string())?;
        log.set("index.interval.bytes", &self.index_interval_bytes.to_string())?;
        log.set("retention.ms", &self.retention_ms.to_string())?;
        log.set("retention.bytes", &self.retention_bytes.to_string())?;
        log.set("max.message.bytes", &self.max_message_bytes.to_string())?;
        if self.max_request_bytes < limits::REQUEST_BYTES_MIN {
            bail!("--max-request-bytes must be at least {}", limits::REQUEST_BYTES_MIN);
        }
        let queued_max_request_bytes = self
            .queued_max_request_bytes
            .unwrap_or(limits::QUEUED_MAX_REQUEST_BYTES_PER_SHARD_DEFAULT.saturating_mul(shards as u64));
        if queued_max_request_bytes / (shards as u64) < limits::QUEUED_MAX_REQUEST_BYTES_PER_SHARD_MIN {
            bail!(
                "--queued-max-request-bytes must be at least {} per core ({shards} cores)",
                limits::QUEUED_MAX_REQUEST_BYTES_PER_SHARD_MIN
            );
        }
        if self.connections_max_idle_ms == 0 || self.request_receive_timeout_ms == 0 {
            bail!("--connections-max-idle-ms and --request-receive-timeout-ms must be positive (idle: -1 for never)");
        }
        if self.default_partitions < 1 || self.default_partitions > limits::PARTITIONS_PER_TOPIC_MAX {
            bail!("--default-partitions must be in 1..={}", limits::PARTITIONS_PER_TOPIC_MAX);
        }
        if self.offsets_topic_partitions < 1 || self.offsets_topic_partitions > limits::PARTITIONS_PER_TOPIC_MAX {
            bail!("--offsets-topic-partitions must be in 1..={}", limits::PARTITIONS_PER_TOPIC_MAX);
        }
        if self.transaction_state_partitions < 1 || self.transaction_state_partitions > limits::PARTITIONS_PER_TOPIC_MAX
        {
            bail!("--transaction-state-partitions must be in 1..={}", limits::PARTITIONS_PER_TOPIC_MAX);
        }
        if self.transaction_max_timeout_ms < 1 {
            bail!("--transaction-max-timeout-ms must be positive");
        }
        if self.group_initial_rebalance_delay_ms < 0
            || self.group_min_session_timeout_ms < 1
            || self.group_max_session_timeout_ms < self.group_min_session_timeout_ms
            || self.offsets_retention_minutes < 1
        {
            bail!("group timeouts must be positive, min <= max session timeout, retention >= 1 minute");
        }
        let cluster = self.cluster_config()?;
        let segment_files = self.segment_files(shards)?;
        if self.default_replication_factor < 1 || self.offsets_topic_replication_factor < 1 {
            bail!("--default-replication-factor and --offsets-topic-replication-factor must be at least 1");
        }
        if self.min_insync_replicas < 1 {
            bail!("--min-insync-replicas must be at least 1");
        }
        let response_max = i64::from(crate::broker::inter_broker::RESPONSE_BYTES_MAX) - REPLICA_FETCH_RESPONSE_OVERHEAD;
        if self.replica_fetch_max_bytes < 1
            || self.replica_fetch_response_max_bytes < 1
            || i64::from(self.replica_fetch_response_max_bytes) > response_max
        {
            bail!(
                "--replica-fetch-max-bytes and --replica-fetch-response-max-bytes must be positive, \
                the latter at most {response_max}"
            );
        }
        if self.replica_lag_time_max_ms == 0 || self.replica_fetch_wait_max_ms < 0 {
            bail!("--replica-lag-time-max-ms must be positive and --replica-fetch-wait-max-ms not negative");
        }
        if self.replication_port != 0 && usize::from(u16::MAX - self.replication_port) < shards {
            bail!("--replication-port leaves no room for one port per core");
        }
        if !(self.log_cleaner_io_mb_per_sec >= 0.0 && self.log_cleaner_io_mb_per_sec.is_finite()) {
            bail!("--log-cleaner-io-mb-per-sec must be a number >= 0 (0 = unlimited)");
        }
        if self.log_cleaner_dedupe_buffer_bytes < limits::LOG_CLEANER_DEDUPE_BUFFER_BYTES_MIN {
            bail!("--log-cleaner-dedupe-buffer-bytes must be at least {}", limits::LOG_CLEANER_DEDUPE_BUFFER_BYTES_MIN);
        }
        if self.offsets_topic_segment_bytes < limits::SEGMENT_BYTES_MIN
            || self.offsets_topic_segment_bytes > limits::SEGMENT_BYTES_MAX
        {
            bail!(
                "--offsets-topic-segment-bytes must be in {}..={}",
                limits::SEGMENT_BYTES_MIN,
                limits::SEGMENT_BYTES_MAX
            );
        }
        let cleaner = crate::broker::CleanerConfig {
            enable: self.log_cleaner_enable,
            io_bytes_per_sec: (self.log_cleaner_io_mb_per_sec > 0.0)
                .then(|| (self.log_cleaner_io_mb_per_sec * 1_000_000.0).max(1.0) as u64),
            dedupe_buffer_bytes: self.log_cleaner_dedupe_buffer_bytes,
            backoff_ms: self.log_cleaner_backoff_ms.max(1),
            internal_segment_bytes: self.offsets_topic_segment_bytes,
        };
        let replication = crate::broker::ReplicationConfig {
            min_insync_replicas: self.min_insync_replicas,
            unclean_leader_election: self.unclean_leader_election_enable,
            replica_lag_time_max_ms: self.replica_lag_time_max_ms,
            replica_fetch_max_bytes: self.replica_fetch_max_bytes,
            replica_fetch_response_max_bytes: self.replica_fetch_response_max_bytes,
            replica_fetch_wait_max_ms: self.replica_fetch_wait_max_ms,
            replica_fetch_backoff_ms: self.replica_fetch_backoff_ms,
            num_replica_fetchers: self.num_replica_fetchers.clamp(1, limits::REPLICA_FETCHERS_MAX),
            replication_port: self.replication_port,
            auto_leader_rebalance: self.auto_leader_rebalance_enable,
            leader_imbalance_check_interval_ms: self
                .leader_imbalance_check_interval_seconds
                .max(1)
                .saturating_mul(1000),
        };
        Ok(BrokerConfig {
            cleaner,
            replication,
            segment_files,
            default_replication_factor: self.default_replication_factor,
            internal_replication_factor: self.offsets_topic_replication_factor,
            cluster,
            node_id: self.node_id,
            listen,
            advertised_host,
            advertised_port,
            data_dir: self.data_dir,
            shards,
            log_defaults: log,
            batch_cache_bytes: self.batch_cache_bytes,
            max_request_bytes: self.max_request_bytes,
            auto_create_topics: self.auto_create_topics,
            default_partitions: self.default_partitions,
            max_connections_per_shard: self.max_connections_per_core,
            move_connections: self.move_connections,
            max_partitions: match self.max_partitions {
                0 => limits::default_max_partitions(physical_memory_bytes()),
                n => n,
            },
            max_in_flight_per_connection: self.max_in_flight_per_connection.max(1),
            queued_max_request_bytes,
            connections_max_idle_ms: self.connections_max_idle_ms,
            request_receive_timeout_ms: self.request_receive_timeout_ms,
            fetch_session_idle_ms: self.fetch_session_idle_ms,
            fetch_sessions_max: self.fetch_sessions_per_core,
            spin_before_park_us: self.spin_before_park_us,
            cpuset,
            retention_check_interval_ms: self.retention_check_interval_ms,
            offsets_topic_partitions: self.offsets_topic_partitions,
            group: crate::group::GroupConfig {
                initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
                session_timeout_min_ms: self.group_min_session_timeout_ms,
                session_timeout_max_ms: self.group_max_session_timeout_ms,
            },
            offsets_retention_ms: self.offsets_retention_minutes.saturating_mul(60_000),
            offsets_retention_check_interval_ms: self.offsets_retention_check_interval_ms.max(1),
            txn: crate::broker::TxnConfig {
                producer_id_expiration_ms: self.producer_id_expiration_ms,
                max_timeout_ms: self.transaction_max_timeout_ms,
                transactional_id_expiration_ms: self.transactional_id_expiration_ms,
                state_log_partitions: self.transaction_state_partitions,
                abort_check_interval_ms: self.transaction_abort_check_interval_ms.max(1),
            },
        })
    }
}

/// How the open files limit is shared between the segment files and the connections, as the
/// default `--max-open-files` splits it (per broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenFilesSplit {
    /// Descriptors the broker may hold: RLIMIT_NOFILE, whose soft limit the shards raise to
    /// the hard one at start.
    limit: u64,
    /// Kept for everything else: [`limits::OPEN_FILES_RESERVE`] plus
    /// [`limits::OPEN_FILES_RESERVE_PER_SHARD`] per shard.
    reserve: u64,
    /// What `--max-connections-per-core` connections on every shard would hold, at
    /// [`limits::DESCRIPTORS_PER_CONNECTION`] each.
    connections_wanted: u64,
    /// The segment files' share: what the reserve and the connections leave, but at least
    /// [`limits::OPEN_FILES_SHARE_MIN_PERCENT`] of what the reserve leaves (and at least
    /// [`limits::OPEN_FILES_PER_SHARD_MIN`] per shard).
    segment_files: u64,
}

impl OpenFilesSplit {
    fn new(limit: u64, shards: usize, max_connections_per_core: u32) -> Self {
        let shards = u64::try_from(shards).unwrap_or(u64::MAX);
        let reserve =
            limits::OPEN_FILES_RESERVE.saturating_add(limits::OPEN_FILES_RESERVE_PER_SHARD.saturating_mul(shards));
        let room = limit.saturating_sub(reserve);
        let connections_wanted = u64::from(max_connections_per_core)
            .saturating_mul(shards)
            .saturating_mul(limits::DESCRIPTORS_PER_CONNECTION);
        let floor =
            (room / 100 * limits::OPEN_FILES_SHARE_MIN_PERCENT).max(limits::OPEN_FILES_PER_SHARD_MIN as u64 * shards);
        let segment_files = room.saturating_sub(connections_wanted).max(floor);
        OpenFilesSplit { limit, reserve, connections_wanted, segment_files }
    }

    /// Descriptors left for connections.
    #[cfg(test)]
    fn connections(&self) -> u64 {
        self.limit.saturating_sub(self.reserve).saturating_sub(self.segment_files)
    }
}

/// The open files limit the shards will run with: they raise the soft limit to the hard one
/// (`shard::runtime`), unless the hard one is unlimited (then the soft one stays).
fn open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit with a valid struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_max == libc::RLIM_INFINITY { limit.rlim_cur } else { limit.rlim_max }
}

impl BrokerArgs {
    /// The descriptor cache of each shard: `--max-open-files` (or its default, see
    /// [`OpenFilesSplit`]) split over the shards, and `--preallocate-budget-bytes`. Logs the split.
    fn segment_files(&self, shards: usize) -> anyhow::Result<crate::storage::FileCacheConfig> {
        let limit = open_files_limit();
        let split = OpenFilesSplit::new(limit, shards, self.max_connections_per_core);
        let least = limits::OPEN_FILES_PER_SHARD_MIN as u64 * shards as u64;
        let open_files = match self.max_open_files {
            Some(n) if n < least || n > limit => {
                bail!("--max-open-files must be in {least}..={limit} (the open files limit) with {shards} cores")
            }
            Some(n) => n,
            None => split.segment_files,
        };
        // The connections get what is left: the listener backs off (and says so) when accept
        // runs out of descriptors, so a --max-connections-per-core the limit cannot hold is no
        // error, but the operator sees here how many fit.
        let connections_descriptors = limit.saturating_sub(split.reserve).saturating_sub(open_files);
        info!(
            open_files_limit = limit,
            reserve = split.reserve,
            segment_files = open_files,
            segment_files_per_core = open_files / shards as u64,
            connections_max = connections_descriptors / limits::DESCRIPTORS_PER_CONNECTION,
            connections_wanted = split.connections_wanted / limits::DESCRIPTORS_PER_CONNECTION,
            explicit = self.max_open_files.is_some(),
            "open files split"
        );
        if self.preallocate_budget_bytes < limits::BLOCK_BYTES {
            bail!("--preallocate-budget-bytes must be at least {}", limits::BLOCK_BYTES);
        }
        Ok(crate::storage::FileCacheConfig {
            open_files_max: usize::try_from(open_files / shards as u64).unwrap_or(usize::MAX),
            preallocate_budget_bytes: self.preallocate_budget_bytes,
        })
    }

    /// This node's part in the metadata quorum, from the cluster flags.
    fn cluster_config(&self) -> anyhow::Result<NodeConfig> {
        if self.node_id < 0 {
            bail!("--node-id must not be negative");
        }
        let mut config = NodeConfig::single(self.node_id, &self.data_dir);
        let tick = config.tick.as_millis().max(1) as u64;
        if self.controller_election_timeout_ms < 2 * tick {
            bail!("--controller-election-timeout-ms must be at least {} ms", 2 * tick);
        }
        config.election_ticks = usize::try_from(self.controller_election_timeout_ms / tick).unwrap_or(usize::MAX);
        if self.broker_heartbeat_interval_ms == 0 || self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms
        {
            bail!("--broker-heartbeat-interval-ms must be positive and below --broker-session-timeout-ms");
        }
        config.heartbeat_interval = Duration::from_millis(self.broker_heartbeat_interval_ms);
        if self.metadata_snapshot_after_entries == 0 {
            bail!("--metadata-snapshot-after-entries must be positive");
        }
        config.snapshot_after_entries = self.metadata_snapshot_after_entries;
        config.session_timeout = Duration::from_millis(self.broker_session_timeout_ms);
        config.listen = self.controller_listen.as_deref().map(resolve).transpose()?;
        config.unclean_leader_election = self.unclean_leader_election_enable;
        config.auto_leader_rebalance = self.auto_leader_rebalance_enable;
        config.leader_imbalance_check_interval =
            Duration::from_secs(self.leader_imbalance_check_interval_seconds.max(1));
        if let Some(voters) = &self.controller_voters {
            config.voters = parse_voters(voters)?;
            let mine = config.voters.iter().find(|(id, _)| *id == self.node_id).map(|(_, addr)| *addr);
            match (mine, config.listen) {
                (Some(addr), None) => config.listen = Some(addr),
                (Some(addr), Some(listen)) if addr != listen => {
                    bail!("--controller-listen {listen} differs from this node's address {addr} in --controller-voters")
                }
                _ => {}
            }
        } else if let Some(listen) = config.listen {
            config.voters = vec![(self.node_id, listen)];
        }
        Ok(config)
    }
}

/// `id@host:port,...`.
fn parse_voters(text: &str) -> anyhow::Result<Vec<(i32, SocketAddr)>> {
    let mut voters = Vec::new();
    for voter in text.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let (id, addr) = voter.split_once('@').with_context(|| format!("voter '{voter}' is not id@host:port"))?;
        let id: i32 = id.parse().with_context(|| format!("voter '{voter}': bad node id"))?;
        if id < 0 || voters.iter().any(|(other, _)| *other == id) {
            bail!("voter '{voter}': node ids must be distinct and not negative");
        }
        voters.push((id, resolve(addr)?));
    }
    if voters.is_empty() {
        bail!("--controller-voters names no voter");
    }
    Ok(voters)
}

/// Holds an exclusive `flock` on `<data-dir>/.lock` for the broker's lifetime, so a second broker
/// cannot open the same logs (glommio's listeners set SO_REUSEPORT, so a second broker on the
/// same port would otherwise start silently).
struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    fn acquire(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let path = data_dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!("data dir {} is in use by another broker (pid {})", data_dir.display(), holder.trim());
        }
        file.set_len(0)?;
        std::fs::write(&path, std::process::id().to_string())?;
        Ok(DataDirLock { _file: file })
    }
}

pub(super) fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let metrics_listen = args.metrics_listen.clone();
    let config = Arc::new(args.into_config()?);
    let _lock = DataDirLock::acquire(&config.data_dir)?;
    // Bound here, without SO_REUSEPORT (unlike glommio's own bind), so that a taken port fails
    // the start with this line rather than splitting scrapes between two processes.
    let metrics_listener = match &metrics_listen {
        Some(addr) => {
            let addr = resolve(addr)?;
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen for metrics on {addr} (--metrics-listen)"))?;
            Some(listener)
        }
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().map(std::net::TcpListener::local_addr).transpose()?;
    // A data dir from before the cluster: its image becomes the quorum's first snapshot (read
    // only while the quorum's log does not exist yet).
    let mut initial = MetadataImage::default();
    let legacy = match quorum_dir(&config.data_dir).exists() {
        true => None,
        false => load_legacy_image(&config.data_dir, config.node_id, config.shards).context("loading metadata")?,
    };
    if let Some(legacy) = legacy {
        if config.cluster.voters.len() > 1 {
            bail!(
                "{} holds a single-node broker's metadata; a cluster of several voters starts from empty data dirs",
                legacy_image_path(&config.data_dir).display()
            );
        }
        info!(topics = legacy.topics.len(), "migrating the single-node metadata image into the metadata log");
        initial = legacy;
    }
    let image = Arc::new(initial);
    let pool = ShardPool::new(ShardsConfig {
        shards: config.shards,
        name: "sluice-shard",
        spin_before_park: Duration::from_micros(config.spin_before_park_us),
        cpus: config.cpuset.clone(),
    });
    stop_on_signals(pool.shutdown())?;
    let meshes = broker_meshes(config.shards);
    let shard_config = config.clone();
    let handoff = crate::server::Handoff::new(config.shards);
    let shared = Arc::new(Shared {
        handoff,
        metrics: metrics_listener.as_ref().map(|_| Arc::new(crate::metrics::Metrics::new())),
        metrics_listener: std::sync::Mutex::new(metrics_listener),
        replication_listeners: std::sync::Mutex::new(vec![None; config.shards]),
        left: std::sync::atomic::AtomicBool::new(false),
        failed: std::sync::atomic::AtomicBool::new(false),
    });
    let shards = pool.start(meshes, move |mesh, context| run_shard(shard_config, image, shared, mesh, context))?;
    println!("sluice broker listening on {} (data dir {})", config.listen, config.data_dir.display());
    if let Some(addr) = metrics_addr {
        println!("sluice metrics on http://{addr}/metrics");
    }
    info!(listen = %config.listen, shards = config.shards, "broker started");
    shards.join();
    info!("broker stopped");
    Ok(())
}

/// SIGINT/SIGTERM: tell every shard to stop accepting and close its logs.
fn stop_on_signals(shutdown: Shutdown) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .context("installing signal handlers")?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            info!(signal, "shutting down");
            shutdown.signal();
        }
    });
    Ok(())
}

/// What the shards of one broker tell each other while starting and stopping.
struct Shared {
    /// The client listeners' handoff: connections move to the shard their requests work on.
    handoff: Arc<crate::server::Handoff>,
    /// The metrics every shard counts into, with `--metrics-listen`.
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The metrics endpoint's socket, bound at start; shard 0 takes it and serves it.
    metrics_listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    /// Each shard's replication listener address once bound (`host:port`), for shard 0 to
    /// advertise at registration.
    replication_listeners: std::sync::Mutex<Vec<Option<String>>>,
    /// Set once shard 0 has left the cluster at shutdown (its leaderships moved): the other
    /// shards close their logs only then, so none closes a partition it still leads.
    left: std::sync::atomic::AtomicBool,
    /// Set when a shard could not start: the others stop waiting for it and fail too.
    failed: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn fail(&self) {
        self.failed.store(true, std::sync::atomic::Ordering::Release);
    }

    fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// How long a shard waits at shutdown for shard 0 to have left the cluster: its leave is
/// bounded by `LEAVE_TIMEOUT`; this adds room for shard 0's own listeners to stop.
const LEFT_WAIT: Duration = Duration::from_secs(5);

/// How long shard 0 waits for the other shards to bind their replication listeners.
const REPLICATION_LISTENERS_TIMEOUT: Duration = Duration::from_secs(30);

async fn run_shard(
    config: Arc<BrokerConfig>,
    image: Arc<MetadataImage>,
    shared: Arc<Shared>,
    mesh: BrokerMesh,
    ShardContext { shutdown, ready }: ShardContext,
) {
    let broker = ShardBroker::new(config.clone(), Arc::new(MetadataImage::default()));
    if let Err(e) = broker.start(mesh).await {
        ready.fail(format!("shard failed to join the mesh: {e}"));
        return;
    }
    // This shard's replication listener: followers of the partitions it leads fetch here, so
    // their traffic lands on the shard that owns the partition.
    let shard = broker.metadata.shard_id();
    if let Some(metrics) = &shared.metrics {
        crate::metrics::install(metrics, shard);
    }
    let port = match config.replication.replication_port {
        0 => 0,
        base => base.saturating_add(u16::try_from(shard).unwrap_or(u16::MAX)),
    };
    let replication_addr = SocketAddr::new(config.listen.ip(), port);
    let replication_listener = match glommio::net::TcpListener::bind(replication_addr) {
        Ok(listener) => listener,
        Err(e) => {
            shared.fail();
            ready.fail(format!("cannot listen for replication on {replication_addr}: {e}"));
            broker.close_all().await;
            return;
        }
    };
    let bound = replication_listener.local_addr().map(|a| a.port()).unwrap_or(port);
    if let Ok(mut listeners) = shared.replication_listeners.lock()
        && let Some(slot) = listeners.get_mut(shard)
    {
        *slot = Some(format!("{}:{bound}", config.advertised_host));
    }
    // Shard 0 runs the control plane; every shard serves once it has registered the broker and
    // installed the current image everywhere.
    if shard == CONTROLLER_SHARD {
        let deadline = std::time::Instant::now() + REPLICATION_LISTENERS_TIMEOUT;
        let advertised = loop {
            let all: Option<Vec<String>> =
                shared.replication_listeners.lock().ok().and_then(|listeners| listeners.iter().cloned().collect());
            match all {
                Some(all) => break all,
                None if std::time::Instant::now() >= deadline || shared.failed() => {
                    shared.fail();
                    ready.fail("the shards did not bind their replication listeners".to_string());
                    broker.close_all().await;
                    return;
                }
                None => glommio::timer::sleep(SERVING_POLL).await,
            }
        };
        if let Err(e) = broker.metadata.start_node((*image).clone(), advertised).await {
            shared.fail();
            ready.fail(format!("cannot join the cluster: {e}"));
            broker.close_all().await;
            return;
        }
    } else {
        while !broker.metadata.serving() {
            if shared.failed() {
                ready.fail("shard 0 could not start".to_string());
                broker.close_all().await;
                return;
            }
            glommio::timer::sleep(SERVING_POLL).await;
        }
    }
    let listener = match glommio::net::TcpListener::bind(config.listen) {
        Ok(listener) => listener,
        Err(e) => {
            ready.fail(format!("cannot listen on {}: {e}", config.listen));
            broker.close_all().await;
            return;
        }
    };
    ready.ready();
    let (stop_metrics, metrics_stopped) = flume::bounded(1);
    let metrics_server = match shard == CONTROLLER_SHARD {
        true => serve_metrics(&broker, &shared, metrics_stopped),
        false => None,
    };
    let limits = config.server_limits();
    // The replication listener has a budget of its own: a follower's fetch must never wait for
    // memory held by produce requests that wait for that very fetch (acks=all).
    let request_memory = || crate::server::RequestMemory::new(config.queued_max_request_bytes_per_shard());
    let (client_memory, replication_memory) = (request_memory(), request_memory());
    broker.stats.watch_request_memory(client_memory.clone(), replication_memory.clone());
    let (stop_replication, replication_stopped) = flume::bounded(1);
    let replication = glommio::spawn_local(crate::server::serve(
        Rc::new(ReplicationListener(broker.clone())),
        limits,
        replication_memory,
        replication_listener,
        replication_stopped,
        None,
    ))
    .detach();
    let handoff = config.move_connections.then(|| shared.handoff.end(shard));
    crate::server::serve(broker.clone(), limits, client_memory, listener, shutdown, handoff).await;
    let _ = stop_replication.send(());
    let _ = replication.await;
    let _ = stop_metrics.send(());
    if let Some(metrics_server) = metrics_server {
        let _ = metrics_server.await;
    }
    if let Some(node) = broker.metadata.node() {
        node.leave().await;
        shared.left.store(true, std::sync::atomic::Ordering::Release);
    } else {
        let deadline = std::time::Instant::now() + LEFT_WAIT;
        while !shared.left.load(std::sync::atomic::Ordering::Acquire) && std::time::Instant::now() < deadline {
            glommio::timer::sleep(SERVING_POLL).await;
        }
    }
    broker.close_all().await;
}

/// Serves `/metrics` on this shard (one shard is enough: a scrape every few seconds, and each
/// gathers every shard's figures over the mesh) until `stopped`, if `--metrics-listen` is set.
fn serve_metrics(
    broker: &Rc<ShardBroker>,
    shared: &Shared,
    stopped: flume::Receiver<()>,
) -> Option<glommio::task::JoinHandle<()>> {
    let metrics = shared.metrics.clone()?;
    let listener = shared.metrics_listener.lock().ok()?.take()?;
    let broker = broker.clone();
    let scrape: crate::metrics::Scrape = Rc::new(move |format| {
        let (broker, metrics) = (broker.clone(), metrics.clone());
        Box::pin(async move {
            broker.stats.scrape().await;
            metrics.render(format).map_err(|e| tracing::warn!(error = %e, "cannot render the metrics")).ok()
        })
    });
    let listener = crate::metrics::adopt(listener);
    let limits = crate::metrics::HttpLimits::default();
    let stopped = async move {
        let _ = stopped.recv_async().await;
    };
    Some(glommio::spawn_local(crate::metrics::serve(listener, scrape, limits, stopped)).detach())
}

/// The machine's memory (MemTotal of /proc/meminfo), if it can be read.
fn physical_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `--cpuset`: CPU numbers and ranges, `0-3,6`, each one of the `online` CPUs; sorted, without
/// repeats.
fn parse_cpuset(text: &str, online: &[usize]) -> anyhow::Result<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (first.trim(), last.trim()),
            None => (part, part),
        };
        let number =
            |n: &str| n.parse::<usize>().with_context(|| format!("--cpuset: `{part}` is not a CPU or a range"));
        let (first, last) = (number(first)?, number(last)?);
        if first > last {
            bail!("--cpuset: `{part}` is not a CPU or a range");
        }
        if let Some(offline) = (first..=last).find(|cpu| !online.contains(cpu)) {
            bail!("--cpuset: CPU {offline} is not online (online: {online:?})");
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpuset_is_cpus_and_ranges_of_online_cpus() {
        let online = [0, 1, 2, 3, 6];
        assert_eq!(parse_cpuset("1", &online).unwrap(), vec![1]);
        assert_eq!(parse_cpuset("3, 0-1,1,6", &online).unwrap(), vec![0, 1, 3, 6]);
        for bad in ["4", "5-6", "2-1", "", "a", "0-", "-1", "1,,2"] {
            assert!(parse_cpuset(bad, &online).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_default_max_open_files_leaves_room_for_the_connections_and_a_reserve() {
        // 20,000 descriptors, 2 cores, 2,000 connections per core: 8,000 for connections, 192
        // reserved, the rest for segment files.
        let split = OpenFilesSplit::new(20_000, 2, 2_000);
        assert_eq!(split.reserve, 128 + 2 * 32);
        assert_eq!(split.connections_wanted, 8_000);
        assert_eq!(split.segment_files, 20_000 - 192 - 8_000);
        assert_eq!(split.connections(), 8_000);
    }

    #[test]
    fn connections_that_would_take_every_descriptor_leave_the_segment_files_a_quarter() {
        // The defaults on a 20,000 limit: 10,000 connections per core on 2 cores want 40,000.
        let split = OpenFilesSplit::new(20_000, 2, limits::CONNECTIONS_PER_SHARD_MAX_DEFAULT);
        assert_eq!(split.segment_files, (20_000 - 192) / 100 * 25);
        assert_eq!(split.connections(), 20_000 - 192 - split.segment_files);
        // A tiny limit still gives each shard its minimum.
        let split = OpenFilesSplit::new(100, 4, 10);
        assert_eq!(split.segment_files, limits::OPEN_FILES_PER_SHARD_MIN as u64 * 4);
        assert_eq!(split.connections(), 0);
    }
}
