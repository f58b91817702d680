//! [`Metrics`]: the broker's one registry and its metric families, and [`ShardMetrics`], one
//! shard's own series in them, resolved once so that counting costs no lookup.
//!
//! Why one registry with a `shard` label rather than a registry per shard merged at scrape:
//! prometheus-client's metrics are atomics behind `Arc`s (`Send + Sync`, as its `Registry`
//! requires), so each shard can own its series outright: the series of shard N are created on
//! shard N's thread (from that thread's malloc arena), and only that shard writes them, so no
//! cache line is written by two cores. A scrape then encodes the one registry, reading every
//! shard's atomics; merging per-shard registries would instead mean rendering each over the
//! mesh and merging text whose families must each appear once.
//!
//! Lifecycle: [`Metrics::new`] before the shards start, one `Arc` shared by all; each shard
//! makes its [`ShardMetrics`] when it starts (see `probe.rs`). The set of families is fixed at
//! construction; series appear when first used (an API never called has none).

use std::cell::OnceCell;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::process;
use crate::limits::METRICS_GROUPS_MAX;

/// Upper bounds of the request duration buckets, in seconds: from 100 µs (an answer from
/// memory) through the fdatasync of a produce (about 1–10 ms) to long polls (Fetch waits up to
/// `max_wait_ms`, 500 ms by default, at most 60 s) and slow acks=all produces.
const REQUEST_DURATION_BUCKETS: [f64; 18] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Upper bounds of the fdatasync duration buckets, in seconds: 50 µs (a write cache that
/// acknowledges at once) to 5 s (a disk in trouble).
const LOG_FLUSH_DURATION_BUCKETS: [f64; 16] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The slots of [`ShardMetrics`]' per-request series: one per Kafka API key (0 to 87 in Kafka
/// 3.9's list; room to grow), and one more for follower fetches.
pub(super) const REQUEST_SLOTS: usize = 128;
/// The slot of follower fetches (Kafka's `request="FetchFollower"`).
pub(super) const FETCH_FOLLOWER_SLOT: usize = REQUEST_SLOTS - 1;

/// A series of one shard.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    shard: u32,
}

/// A series of one shard and one kind of request (Kafka's API name, `FetchConsumer` or
/// `FetchFollower` for fetches, as Kafka's `RequestMetrics` names them).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    shard: u32,
    request: String,
}

/// A series of one shard's memory budget line (see [`ShardSample`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemoryLabels {
    shard: u32,
    line: &'static str,
}

/// A series of one consumer group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_duration_histogram() -> Histogram {
    Histogram::new(REQUEST_DURATION_BUCKETS)
}

fn log_flush_histogram() -> Histogram {
    Histogram::new(LOG_FLUSH_DURATION_BUCKETS)
}

/// Every family, as registered.
#[derive(Debug)]
pub(super) struct Families {
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RequestLabels>,
    request_bytes: Family<RequestLabels, Counter>,
    response_bytes: Family<RequestLabels, Counter>,
    log_flush_duration: HistogramFamily<ShardLabels>,
    batch_cache_hits: Family<ShardLabels, Counter>,
    batch_cache_misses: Family<ShardLabels, Counter>,
    batch_cache_bytes: Family<ShardLabels, Gauge>,
    batch_cache_budget_bytes: Family<ShardLabels, Gauge>,
    memory_bytes: Family<MemoryLabels, Gauge>,
    memory_budget_bytes: Family<MemoryLabels, Gauge>,
    open_segment_files: Family<ShardLabels, Gauge>,
    open_segment_files_max: Family<ShardLabels, Gauge>,
    partitions: Family<ShardLabels, Gauge>,
    leaders: Family<ShardLabels, Gauge>,
    under_replicated: Family<ShardLabels, Gauge>,
    replica_lag_max: Family<ShardLabels, Gauge>,
    isr_shrinks: Family<ShardLabels, Counter>,
    isr_expands: Family<ShardLabels, Counter>,
    connections: Family<ShardLabels, Gauge>,
    connections_accepted: Family<ShardLabels, Counter>,
    connections_refused: Family<ShardLabels, Counter>,
    connections_moved_in: Family<ShardLabels, Counter>,
    accept_errors: Family<ShardLabels, Counter>,
    group_lag: Family<GroupLabels, Gauge>,
    group_lag_max: Family<GroupLabels, Gauge>,
    open_fds: Gauge,
    max_fds: Gauge,
    resident_memory_bytes: Gauge,
}

/// The broker's metrics: one registry, encoded at each scrape. `Send + Sync`; shared as an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Arc<Families>,
}

/// Which text format a scrape asked for (by its `Accept` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`), the default.
    Prometheus,
    /// OpenMetrics 1.0 text, which Prometheus asks for first.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// One consumer group's lag, computed at a scrape: committed offset against high watermark
/// over the partitions it has offsets for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    /// The group id.
    pub group: String,
    /// The sum of its partitions' lags, in records (offsets).
    pub lag_records: i64,
    /// The largest lag of one of its partitions.
    pub lag_max_records: i64,
}

/// What a shard reports of itself at a scrape (counted then, not kept up to date).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardSample {
    /// Partitions this shard holds a replica of.
    pub partitions: i64,
    /// Of those, the ones this broker leads.
    pub leaders: i64,
    /// Led partitions whose ISR is smaller than their replica set (Kafka's
    /// `UnderReplicatedPartitions`).
    pub under_replicated: i64,
    /// The largest gap, in records, between a led partition's log end and where one of its
    /// followers last fetched from.
    pub replica_lag_max_records: i64,
    /// Bytes of batches in the shard's batch cache.
    pub batch_cache_bytes: i64,
    /// The batch cache's budget (`--batch-cache-bytes`).
    pub batch_cache_budget_bytes: i64,
    /// Bytes of request frames charged to the client listener's budget now.
    pub request_memory_bytes: i64,
    /// That budget (`--queued-max-request-bytes` over the shards).
    pub request_memory_budget_bytes: i64,
    /// Bytes of request frames charged to the replication listener's budget now.
    pub replication_request_memory_bytes: i64,
    /// That budget (the same size as the client listener's).
    pub replication_request_memory_budget_bytes: i64,
    /// Bytes of the shard's cleaner key map (0 until its first clean).
    pub cleaner_buffer_bytes: i64,
    /// Its size as configured (`--log-cleaner-dedupe-buffer-bytes`).
    pub cleaner_buffer_budget_bytes: i64,
    /// Segment file descriptors the shard's descriptor cache holds.
    pub open_segment_files: i64,
    /// Its bound (`--max-open-files` over the shards).
    pub open_segment_files_max: i64,
}

impl Metrics {
    /// The registry with every family and no series yet.
    pub fn new() -> Self {
        let families = Families {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(request_duration_histogram),
            request_bytes: Family::default(),
            response_bytes: Family::default(),
            log_flush_duration: Family::new_with_constructor(log_flush_histogram),
            batch_cache_hits: Family::default(),
            batch_cache_misses: Family::default(),
            batch_cache_bytes: Family::default(),
            batch_cache_budget_bytes: Family::default(),
            memory_bytes: Family::default(),
            memory_budget_bytes: Family::default(),
            open_segment_files: Family::default(),
            open_segment_files_max: Family::default(),
            partitions: Family::default(),
            leaders: Family::default(),
            under_replicated: Family::default(),
            replica_lag_max: Family::default(),
            isr_shrinks: Family::default(),
            isr_expands: Family::default(),
            connections: Family::default(),
            connections_accepted: Family::default(),
            connections_refused: Family::default(),
            connections_moved_in: Family::default(),
            accept_errors: Family::default(),
            group_lag: Family::default(),
            group_lag_max: Family::default(),
            open_fds: Gauge::default(),
            max_fds: Gauge::default(),
            resident_memory_bytes: Gauge::default(),
        };
        let mut registry = Registry::default();
        register(&mut registry, &families);
        Metrics { registry, families: Arc::new(families) }
    }

    pub(super) fn families(&self) -> &Arc<Families> {
        &self.families
    }

    /// Reads the process's descriptors and memory, then encodes every series in `format`.
    pub fn render(&self, format: Format) -> Result<String, std::fmt::Error> {
        let f = &self.families;
        let process = process::sample();
        f.open_fds.set(process.open_fds);
        f.max_fds.set(process.max_fds);
        f.resident_memory_bytes.set(process.resident_memory_bytes);
        let mut out = String::new();
        match format {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?,
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &self.registry)?,
        }
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers every family under Prometheus' naming rules: `sluice_` first, the unit last
/// (`register_with_unit` appends it), `_total` added to counters by the encoder.
fn register(root: &mut Registry, f: &Families) {
    root.register("process_open_fds", "Open file descriptors", f.open_fds.clone());
    root.register("process_max_fds", "The soft limit on open file descriptors (RLIMIT_NOFILE)", f.max_fds.clone());
    root.register_with_unit(
        "process_resident_memory",
        "Resident memory size",
        Unit::Bytes,
        f.resident_memory_bytes.clone(),
    );
    let r = root.sub_registry_with_prefix("sluice");
    r.register("requests", "Requests handled, by shard and Kafka API", f.requests.clone());
    r.register_with_unit(
        "request_duration",
        "From a request's arrival to its response being ready, by shard and Kafka API",
        Unit::Seconds,
        f.request_duration.clone(),
    );
    r.register_with_unit("request", "Request bytes received, frames whole", Unit::Bytes, f.request_bytes.clone());
    r.register_with_unit("response", "Response bytes sent, frames whole", Unit::Bytes, f.response_bytes.clone());
    r.register_with_unit(
        "log_flush_duration",
        "fdatasync of a partition's segment files (the flusher's group commit, seals)",
        Unit::Seconds,
        f.log_flush_duration.clone(),
    );
    r.register("batch_cache_hits", "Log reads answered from the batch cache", f.batch_cache_hits.clone());
    r.register("batch_cache_misses", "Log reads that went to the segment files", f.batch_cache_misses.clone());
    r.register_with_unit("batch_cache", "Batches held in the batch cache", Unit::Bytes, f.batch_cache_bytes.clone());
    r.register_with_unit(
        "batch_cache_budget",
        "The batch cache's budget (--batch-cache-bytes)",
        Unit::Bytes,
        f.batch_cache_budget_bytes.clone(),
    );
    r.register_with_unit(
        "memory",
        "Memory held by each budgeted line of a shard: batch_cache, requests (the client listener's frames), \
         replication_requests, cleaner (the compaction key map)",
        Unit::Bytes,
        f.memory_bytes.clone(),
    );
    r.register_with_unit(
        "memory_budget",
        "The budget of each line of sluice_memory_bytes",
        Unit::Bytes,
        f.memory_budget_bytes.clone(),
    );
    r.register("open_segment_files", "Segment file descriptors the shard's cache holds", f.open_segment_files.clone());
    r.register(
        "open_segment_files_max",
        "The bound on a shard's segment file descriptors (--max-open-files over the shards)",
        f.open_segment_files_max.clone(),
    );
    r.register("partitions", "Partition replicas held, by shard", f.partitions.clone());
    r.register("partition_leaders", "Partitions this broker leads, by shard", f.leaders.clone());
    r.register(
        "under_replicated_partitions",
        "Led partitions whose ISR is smaller than their replica set",
        f.under_replicated.clone(),
    );
    r.register(
        "replica_lag_max_records",
        "The largest gap between a led partition's log end and a follower's fetch offset",
        f.replica_lag_max.clone(),
    );
    r.register("isr_shrinks", "Committed ISR changes of led partitions that removed a replica", f.isr_shrinks.clone());
    r.register("isr_expands", "Committed ISR changes of led partitions that added a replica", f.isr_expands.clone());
    r.register("connections", "Open client and replication connections, by shard", f.connections.clone());
    r.register("connections_accepted", "Connections accepted", f.connections_accepted.clone());
    r.register(
        "connections_refused",
        "Connections closed at once: --max-connections-per-core reached",
        f.connections_refused.clone(),
    );
    r.register(
        "connections_moved_in",
        "Client connections moved here from another shard, the one their requests' partitions are on",
        f.connections_moved_in.clone(),
    );
    r.register("accept_errors", "Failed accepts (out of descriptors or memory)", f.accept_errors.clone());
    r.register(
        "consumer_group_lag_records",
        "High watermark minus committed offset, summed over the group's partitions",
        f.group_lag.clone(),
    );
    r.register(
        "consumer_group_lag_max_records",
        "High watermark minus committed offset of the group's most lagging partition",
        f.group_lag_max.clone(),
    );
}

/// The series of one kind of request on one shard.
#[derive(Debug)]
pub(super) struct RequestSeries {
    pub(super) count: Counter,
    pub(super) duration: Histogram,
    pub(super) request_bytes: Counter,
    pub(super) response_bytes: Counter,
}

/// One shard's series, resolved once: the hooks on the request and storage paths touch these
/// directly (an atomic add, a histogram's uncontended lock), never the families' maps.
/// Lifecycle: made on the shard's thread when it starts and kept until it stops; used only there.
#[derive(Debug)]
pub(super) struct ShardMetrics {
    shard: u32,
    families: Arc<Families>,
    /// Per-request series by API key (and [`FETCH_FOLLOWER_SLOT`]), made at a kind's first request.
    requests: Box<[OnceCell<RequestSeries>]>,
    pub(super) log_flush_duration: Histogram,
    pub(super) batch_cache_hits: Counter,
    pub(super) batch_cache_misses: Counter,
    pub(super) isr_shrinks: Counter,
    pub(super) isr_expands: Counter,
    pub(super) connections: Gauge,
    pub(super) connections_accepted: Counter,
    pub(super) connections_refused: Counter,
    pub(super) connections_moved_in: Counter,
    pub(super) accept_errors: Counter,
}

impl ShardMetrics {
    /// Shard `shard`'s series (call it on that shard's thread, so they are allocated there).
    pub(super) fn new(families: &Arc<Families>, shard: u32) -> Self {
        let labels = ShardLabels { shard };
        let f = families;
        ShardMetrics {
            shard,
            families: families.clone(),
            requests: (0..REQUEST_SLOTS).map(|_| OnceCell::new()).collect(),
            log_flush_duration: f.log_flush_duration.get_or_create_owned(&labels),
            batch_cache_hits: f.batch_cache_hits.get_or_create_owned(&labels),
            batch_cache_misses: f.batch_cache_misses.get_or_create_owned(&labels),
            isr_shrinks: f.isr_shrinks.get_or_create_owned(&labels),
            isr_expands: f.isr_expands.get_or_create_owned(&labels),
            connections: f.connections.get_or_create_owned(&labels),
            connections_accepted: f.connections_accepted.get_or_create_owned(&labels),
            connections_refused: f.connections_refused.get_or_create_owned(&labels),
            connections_moved_in: f.connections_moved_in.get_or_create_owned(&labels),
            accept_errors: f.accept_errors.get_or_create_owned(&labels),
        }
    }

    /// The series of request slot `slot`, made (named by `name`) at its first use; `None` for
    /// a slot out of range.
    pub(super) fn request(&self, slot: usize, name: impl FnOnce() -> String) -> Option<&RequestSeries> {
        let cell = self.requests.get(slot)?;
        Some(cell.get_or_init(|| {
            let labels = RequestLabels { shard: self.shard, request: name() };
            let f = &self.families;
            RequestSeries {
                count: f.requests.get_or_create_owned(&labels),
                duration: f.request_duration.get_or_create_owned(&labels),
                request_bytes: f.request_bytes.get_or_create_owned(&labels),
                response_bytes: f.response_bytes.get_or_create_owned(&labels),
            }
        }))
    }

    /// Sets this shard's scrape-time gauges.
    pub(super) fn set_sample(&self, sample: ShardSample) {
        let labels = ShardLabels { shard: self.shard };
        let f = &self.families;
        f.partitions.get_or_create(&labels).set(sample.partitions);
        f.leaders.get_or_create(&labels).set(sample.leaders);
        f.under_replicated.get_or_create(&labels).set(sample.under_replicated);
        f.replica_lag_max.get_or_create(&labels).set(sample.replica_lag_max_records);
        f.batch_cache_bytes.get_or_create(&labels).set(sample.batch_cache_bytes);
        f.batch_cache_budget_bytes.get_or_create(&labels).set(sample.batch_cache_budget_bytes);
        f.open_segment_files.get_or_create(&labels).set(sample.open_segment_files);
        f.open_segment_files_max.get_or_create(&labels).set(sample.open_segment_files_max);
        let lines = [
            ("batch_cache", sample.batch_cache_bytes, sample.batch_cache_budget_bytes),
            ("requests", sample.request_memory_bytes, sample.request_memory_budget_bytes),
            (
                "replication_requests",
                sample.replication_request_memory_bytes,
                sample.replication_request_memory_budget_bytes,
            ),
            ("cleaner", sample.cleaner_buffer_bytes, sample.cleaner_buffer_budget_bytes),
        ];
        for (line, bytes, budget) in lines {
            let labels = MemoryLabels { shard: self.shard, line };
            f.memory_bytes.get_or_create(&labels).set(bytes);
            f.memory_budget_bytes.get_or_create(&labels).set(budget);
        }
    }

    /// Replaces the consumer-group lag series with `lags`: the [`METRICS_GROUPS_MAX`] groups
    /// lagging most (groups gone since the last scrape lose their series).
    pub(super) fn set_group_lags(&self, mut lags: Vec<GroupLag>) {
        lags.sort_by(|a, b| b.lag_records.cmp(&a.lag_records).then_with(|| a.group.cmp(&b.group)));
        lags.truncate(METRICS_GROUPS_MAX);
        let f = &self.families;
        f.group_lag.clear();
        f.group_lag_max.clear();
        for lag in lags {
            let labels = GroupLabels { group: lag.group };
            f.group_lag.get_or_create(&labels).set(lag.lag_records);
            f.group_lag_max.get_or_create(&labels).set(lag.lag_max_records);
        }
    }
}
