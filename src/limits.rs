//! Every bound in Sluice, named, with the relationships between them checked at compile time.
//! A limit that a user may change is a flag whose default comes from here, and whose accepted
//! range is checked against the `*_MIN`/`*_MAX` here when the configuration is validated.

/// Bytes of a v2 record batch header, up to and including `recordsCount`.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before a batch's `batchLength` counts (`baseOffset` + `batchLength`), Kafka's
/// `LOG_OVERHEAD`.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Where `batchLength` sits in the batch header.
pub const BATCH_LENGTH_OFFSET: usize = 8;

/// Longest topic name Kafka accepts (so that `<topic>-<partition>` fits a file name).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// The block size of direct I/O: buffers, file positions and write lengths are multiples of it.
pub const BLOCK_BYTES: u64 = 4096;

/// Default `segment.bytes`, as in Kafka.
pub const SEGMENT_BYTES_DEFAULT: u32 = 1024 * 1024 * 1024;
/// Smallest `segment.bytes` accepted (Kafka allows 14 bytes; one block is the useful floor for
/// direct I/O, tests use it to roll often).
pub const SEGMENT_BYTES_MIN: u32 = BLOCK_BYTES as u32;
/// Largest `segment.bytes`: positions in the offset index are u32.
pub const SEGMENT_BYTES_MAX: u32 = i32::MAX as u32;
/// Default `segment.ms` (7 days, as in Kafka).
pub const SEGMENT_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Default `segment.index.bytes` (Kafka's `log.index.size.max.bytes`, 10 MiB): a segment rolls
/// when its offset index would pass it.
pub const SEGMENT_INDEX_BYTES_DEFAULT: u32 = 10 * 1024 * 1024;
/// Smallest `segment.index.bytes`: one offset index entry (Kafka's `atLeast(4)` allows less
/// than one 8-byte entry, which would roll at every batch).
pub const SEGMENT_INDEX_BYTES_MIN: u32 = OFFSET_INDEX_ENTRY_BYTES as u32;

/// Default `index.interval.bytes`: an offset index entry every this many log bytes.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;
/// Bytes of one offset index entry: relative offset u32 + position u32.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
/// Bytes of one time index entry: timestamp i64 + relative offset u32.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

/// Default `max.message.bytes` (Kafka's 1 MiB plus the batch overhead).
pub const MAX_MESSAGE_BYTES_DEFAULT: u32 = 1024 * 1024 + 12;
/// The hard cap on one batch, whatever `max.message.bytes` says: a batch must fit one segment's
/// u32 positions and one flush buffer.
pub const BATCH_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// The most bytes the records of one compressed batch may decompress to in the client. Equal
/// to the hard cap on any batch, so a compressed batch costs a consumer at most the memory the
/// largest uncompressed batch already may, and a decompression bomb no more. Kafka producers
/// build a batch uncompressed first and bound it by its uncompressed size (`batch.size`,
/// librdkafka's `message.max.bytes`, 1 MiB by default), far below this.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = BATCH_BYTES_MAX as usize;

/// Log files grow by preallocated extents of this size, so a flush rarely changes the file size
/// (which would make fdatasync write metadata too).
pub const PREALLOCATE_BYTES: u64 = 32 * 1024 * 1024;
/// The most bytes one direct write carries; a flush of more goes out in several, in flight
/// together. Bounds each DMA buffer a flush allocates.
pub const WRITE_CHUNK_BYTES: usize = 1024 * 1024;
/// Direct writes one segment has in flight at once (disjoint block ranges of one flush).
pub const WRITES_IN_FLIGHT_MAX: usize = 8;

/// Default `--flush-interval-ms` for `flush-mode interval`.
pub const FLUSH_INTERVAL_MS_DEFAULT: u64 = 1000;

/// Default per-shard budget for the in-memory cache of recently appended batches.
pub const BATCH_CACHE_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;

/// How many bytes a read walks per direct read when it scans batch headers in a segment.
pub const SCAN_READ_BYTES: usize = 64 * 1024;

/// Default `delete.retention.ms` (one day, as in Kafka).
pub const DELETE_RETENTION_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;

/// Default `log.cleaner.dedupe.buffer.size` per core: the cleaner's key → offset map. Kafka's
/// 128 MiB is shared by its cleaner threads; a shard cleans one log at a time, and 64 MiB holds
/// the latest offsets of about 2.8 million keys (24-byte entries), enough for one clean of a
/// typical `__consumer_offsets` or changelog partition.
pub const LOG_CLEANER_DEDUPE_BUFFER_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// The smallest `log.cleaner.dedupe.buffer.size` accepted (Kafka's floor of 1 MiB per thread):
/// a smaller map would make every clean cover only a sliver of the dirty section.
pub const LOG_CLEANER_DEDUPE_BUFFER_BYTES_MIN: u64 = 1024 * 1024;

/// Default `log.cleaner.backoff.ms` (Kafka's 15 s): how long a shard's cleaner sleeps when no log
/// needs cleaning.
pub const LOG_CLEANER_BACKOFF_MS_DEFAULT: u64 = 15_000;

/// Default `offsets.topic.segment.bytes` and `transaction.state.log.segment.bytes` (Kafka's
/// 100 MiB): internal topics roll sooner than data topics so the cleaner, which never touches the
/// active segment, keeps them small.
pub const INTERNAL_TOPIC_SEGMENT_BYTES_DEFAULT: u32 = 100 * 1024 * 1024;

/// Default `min.cleanable.dirty.ratio` (Kafka's 0.5): a compacted log is cleaned once half of
/// its cleanable bytes are dirty (written since the last clean).
pub const MIN_CLEANABLE_DIRTY_RATIO_DEFAULT: f64 = 0.5;

const _: () = assert!((SEGMENT_BYTES_MIN as u64).is_multiple_of(BLOCK_BYTES));
const _: () = assert!(PREALLOCATE_BYTES.is_multiple_of(BLOCK_BYTES));
const _: () = assert!((WRITE_CHUNK_BYTES as u64).is_multiple_of(BLOCK_BYTES));

const _: () = assert!(MAX_MESSAGE_BYTES_DEFAULT <= BATCH_BYTES_MAX);
const _: () = assert!(BATCH_BYTES_MAX <= SEGMENT_BYTES_MAX);
const _: () = assert!(SCAN_READ_BYTES >= BATCH_HEADER_BYTES);
const _: () = assert!(BATCH_HEADER_BYTES > LOG_OVERHEAD_BYTES);

/// Logs a shard closes at once at shutdown: enough to overlap their seals' fdatasyncs on the
/// disk, few enough that the tasks and buffers of a close stay a small burst.
pub const LOG_CLOSES_IN_FLIGHT: usize = 64;

/// Default `--preallocate-budget-bytes`: disk space per shard preallocated ahead of the appends
/// of all its active segments together. Each active segment's extent is this divided by the
/// shard's partitions, at most [`PREALLOCATE_BYTES`] and at least one block: 64 partitions per
/// shard keep the full 32 MiB extents (a flush seldom changes a file's size, so fdatasync seldom
/// writes metadata), and 50,000 per shard get 40 KiB each (2 GiB in all, not 1.6 TB).
pub const PREALLOCATE_BUDGET_BYTES_DEFAULT: u64 = 2 * 1024 * 1024 * 1024;

const _: () = assert!(PREALLOCATE_BUDGET_BYTES_DEFAULT >= PREALLOCATE_BYTES);

/// Descriptors one client connection holds: its socket, and the `dup` its writer task sends on
/// (`server/connection.rs`).
pub const DESCRIPTORS_PER_CONNECTION: u64 = 2;
/// Descriptors kept out of both the segment-file cache and the connections, per broker: stdio,
/// the data-dir lock, the metadata quorum's log and transport, transient writes (checkpoints,
/// snapshots), recovery's index reads.
pub const OPEN_FILES_RESERVE: u64 = 128;
/// And per shard: glommio's three rings and their eventfds, the listener and replication
/// listener, the inter-broker pool, the cleaner's new segment and its indexes.
pub const OPEN_FILES_RESERVE_PER_SHARD: u64 = 32;
/// The least share of what the reserve leaves that the default `--max-open-files` gives the
/// segment files, in percent, when `--max-connections-per-core` would take more: past it the
/// connections' share is cut (a connection that finds no descriptor waits in the listener's
/// backlog, which backs off and logs; a partition that found none would fail its request).
pub const OPEN_FILES_SHARE_MIN_PERCENT: u64 = 25;
/// The fewest segment-file descriptors a shard's cache may be given: an active segment's two,
/// a read's, the indexes written at a seal, recovery's.
pub const OPEN_FILES_PER_SHARD_MIN: usize = 8;
/// The segment-file descriptors of tools and tests that open a few logs on one shard.
pub const OPEN_FILES_PER_SHARD_DEFAULT: usize = 1024;

/// Default `--max-request-bytes` (Kafka's `socket.request.max.bytes`): frames are refused above
/// it before anything is allocated.
pub const REQUEST_BYTES_MAX_DEFAULT: u32 = 100 * 1024 * 1024;
/// Smallest request frame a client can send (api key, version, correlation id, client id len).
pub const REQUEST_BYTES_MIN: u32 = 10;
/// Default connections per shard.
pub const CONNECTIONS_PER_SHARD_MAX_DEFAULT: u32 = 10_000;

/// Default request memory per shard (`--queued-max-request-bytes` is this times the shards;
/// Kafka's `queued.max.request.bytes` is unbounded by default). Every request frame being
/// received or waiting to be handled is charged to it; past it connections are not read. One
/// largest request (`REQUEST_BYTES_MAX_DEFAULT`) fits it alone, and the worst case — the budget
/// spent and one frame past it on the pass — is 200 MiB per shard, a small share of the memory
/// of a machine that runs a broker per core.
pub const QUEUED_MAX_REQUEST_BYTES_PER_SHARD_DEFAULT: u64 = 100 * 1024 * 1024;
/// The least request memory per shard: below a few frame buffers, every large request would
/// wait for the pass, one at a time.
pub const QUEUED_MAX_REQUEST_BYTES_PER_SHARD_MIN: u64 = 1024 * 1024;
/// Bytes a connection reads ahead, into a buffer it holds only while bytes are buffered (an
/// idle connection holds none). A request at most this large that arrives whole is copied out
/// into an exactly sized buffer and admitted without waiting for the budget: one per connection
/// at a time, so heartbeats and metadata requests flow while produce frames fill the budget.
/// 4 KiB holds the usual Heartbeat, Metadata, Fetch and small Produce requests.
pub const CONNECTION_READ_AHEAD_BYTES: usize = 4096;
/// The first buffer of a request frame that does not arrive whole with its length: small, so
/// a connection that declares 100 MB and sends 1 KB holds 16 KiB; it then doubles with the
/// bytes that arrive.
pub const REQUEST_BUFFER_MIN_BYTES: usize = 16 * 1024;
/// A request frame at most this large is given its whole buffer as soon as its first bytes
/// arrive, while the shard's request memory is at most half charged by it (`server::reader`):
/// grown from [`REQUEST_BUFFER_MIN_BYTES`] by doubling, a 1 MiB produce frame was copied once
/// more in its growth steps (15 % of the broker's CPU producing 4 MiB requests). 8 MiB holds
/// twice the requests of Sluice's producer (`request_max_bytes`, 4 MiB) and eight of Kafka's
/// default `max.request.size`. Kafka allocates every frame whole; the half-budget rule keeps
/// connections that declare large frames and send little from holding more than half the
/// budget between them.
pub const REQUEST_BUFFER_WHOLE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// The most one read of a client's or an inter-broker connection asks the socket for. These
/// reads once zero-filled what they asked for (safe Rust reads only into initialised memory), and
/// asking for a large frame's whole room at once zero-filled megabytes to receive a few hundred
/// KiB: 31 % of a fan-out consumer's CPU. They now receive into spare capacity
/// (`crate::socket::read_more`); the controller transport's reads, generic over any
/// `AsyncRead`, still zero-fill this much.
pub const SOCKET_READ_BYTES_MAX: usize = 256 * 1024;
/// Default `connections.max.idle.ms` (Kafka's, 10 minutes): a connection with no request for
/// this long is closed.
pub const CONNECTIONS_MAX_IDLE_MS_DEFAULT: i64 = 600_000;
/// Default `--request-receive-timeout-ms`: how long a request may take to arrive once its first
/// bytes have. Kafka's clients give up on a request after `request.timeout.ms` (30 s), sending
/// included, so a request still arriving after that has no one waiting for its answer. At the
/// largest request (100 MiB) it asks for 3.5 MB/s from the client.
pub const REQUEST_RECEIVE_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Requests in flight per connection before the broker stops reading from it (clients keep at
/// most 5; the rest is headroom).
pub const REQUESTS_IN_FLIGHT_PER_CONNECTION: usize = 64;
/// Default idle time before a fetch session is evicted (Kafka: `min.incremental.fetch.session.
/// eviction.ms`-like).
pub const FETCH_SESSION_IDLE_MS_DEFAULT: u64 = 120_000;
/// Fetch sessions kept per shard (Kafka's `max.incremental.fetch.session.cache.slots`).
pub const FETCH_SESSIONS_PER_SHARD_MAX: usize = 1000;
/// Default interval between retention passes.
pub const RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 5 * 60 * 1000;
/// Partitions of `__consumer_offsets` (Kafka's default is 50, but each partition here
/// preallocates a segment extent on disk).
pub const OFFSETS_TOPIC_PARTITIONS_DEFAULT: i32 = 16;
/// `offsets.retention.minutes` (Kafka's default: 7 days).
pub const OFFSETS_RETENTION_MINUTES_DEFAULT: i64 = 10_080;
/// `offsets.retention.check.interval.ms` (Kafka's default).
pub const OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 600_000;
/// Largest partition count of one topic, checked before the controller places (allocates)
/// them. Kafka has no such cap; one broker holds 10^4-10^5 partitions, and one topic of 100,000
/// must fit. A million placements are about 100 MB of metadata image, the most a request may
/// make the controller build.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 1_000_000;
/// What one partition replica costs a broker in memory while it holds little data: its log's
/// state, the in-memory offset and time indexes of its active segment, its replica and cache
/// bookkeeping. An estimate, kept on the high side; `--max-partitions` derives from it by
/// default (see [`default_max_partitions`]).
pub const PARTITION_MEMORY_BYTES_ESTIMATE: u64 = 40 * 1024;
/// The share of the machine's memory that partitions' fixed costs may take by default; the rest
/// is for the batch cache, requests and the allocator.
pub const PARTITION_MEMORY_SHARE: u64 = 4;
/// `--max-partitions` when the machine's memory cannot be read.
pub const MAX_PARTITIONS_FALLBACK: u64 = 10_000;

/// The default of `--max-partitions`: a quarter of `memory_bytes` (the machine's) over
/// [`PARTITION_MEMORY_BYTES_ESTIMATE`], so the partitions a broker accepts fit its memory.
pub fn default_max_partitions(memory_bytes: Option<u64>) -> u64 {
    match memory_bytes {
        Some(bytes) => (bytes / PARTITION_MEMORY_SHARE / PARTITION_MEMORY_BYTES_ESTIMATE).max(1),
        None => MAX_PARTITIONS_FALLBACK,
    }
}
/// Largest `max_wait_ms` honoured in a Fetch long poll.
pub const FETCH_MAX_WAIT_MS_MAX: u64 = 60_000;
/// A file range larger than this is sent by sendfile in several calls.
pub const SENDFILE_CHUNK_BYTES: usize = 1024 * 1024;

const _: () = assert!(REQUEST_BYTES_MIN < REQUEST_BYTES_MAX_DEFAULT);
const _: () = assert!(REQUEST_BYTES_MAX_DEFAULT as u64 <= QUEUED_MAX_REQUEST_BYTES_PER_SHARD_DEFAULT);
const _: () = assert!((REQUEST_BUFFER_MIN_BYTES as u64) < QUEUED_MAX_REQUEST_BYTES_PER_SHARD_MIN);
const _: () = assert!(REQUEST_BUFFER_MIN_BYTES < REQUEST_BUFFER_WHOLE_BYTES_MAX);
const _: () = assert!(BATCH_BYTES_MAX < REQUEST_BYTES_MAX_DEFAULT);

/// Batches remembered per producer per partition for deduplication (Kafka's
/// `NUM_BATCHES_TO_RETAIN`): the most a producer may have in flight to one partition.
pub const PRODUCER_BATCHES_KEPT: usize = 5;
/// `producer.id.expiration.ms`: how long a producer's state outlives its last append (Kafka's
/// default, one day).
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;
/// Producer-state snapshots kept per partition (the newest; older ones only slow nothing down).
pub const PRODUCER_SNAPSHOTS_KEPT: usize = 2;
/// Producers a snapshot file may describe; a larger count is damage, refused before allocating.
pub const PRODUCER_SNAPSHOT_ENTRIES_MAX: usize = 10_000_000;
/// `transaction.max.timeout.ms` default (Kafka's, 15 minutes).
pub const TRANSACTION_MAX_TIMEOUT_MS_DEFAULT: i32 = 900_000;
/// `transactional.id.expiration.ms` default (Kafka's, 7 days).
pub const TRANSACTIONAL_ID_EXPIRATION_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Partitions of `__transaction_state` (Kafka's default is 50; each partition here
/// preallocates a segment extent, as `__consumer_offsets` does).
pub const TRANSACTION_STATE_PARTITIONS_DEFAULT: i32 = 16;
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms` default (Kafka's, 10 s).
pub const TRANSACTION_ABORT_CHECK_INTERVAL_MS_DEFAULT: u64 = 10_000;
/// Producer ids a shard takes from the controller at a time (Kafka's brokers take blocks of
/// 1000 from the quorum).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// KIP-890 verification guards a partition keeps (one per transactional producer between its
/// verification and its write); past it they are dropped, which costs only re-verification.
pub const VERIFICATION_GUARDS_MAX: usize = 10_000;

/// Default `offsets.topic.replication.factor` (Kafka's 3), capped by the live brokers when the
/// internal topics are created.
pub const INTERNAL_REPLICATION_FACTOR_DEFAULT: i16 = 3;
/// Default `replica.lag.time.max.ms` (Kafka's 30 s): how long a follower may go without catching
/// up before it leaves the ISR.
pub const REPLICA_LAG_TIME_MAX_MS_DEFAULT: u64 = 30_000;
/// Default `replica.fetch.max.bytes` (Kafka's 1 MiB) per partition of a follower fetch.
pub const REPLICA_FETCH_MAX_BYTES_DEFAULT: i32 = 1024 * 1024;
/// Default `replica.fetch.response.max.bytes` (Kafka's 10 MiB). It stays below the inter-broker
/// pool's largest accepted answer, so a full answer is never refused.
pub const REPLICA_FETCH_RESPONSE_MAX_BYTES_DEFAULT: i32 = 10 * 1024 * 1024;
/// The most fetchers per leader listener and shard (`--num-replica-fetchers`): each is a task
/// with a fetch in flight, and the pool's connection carries at most `IN_FLIGHT_MAX` requests.
pub const REPLICA_FETCHERS_MAX: usize = 16;
/// Default `replica.fetch.wait.max.ms` (Kafka's 500 ms).
pub const REPLICA_FETCH_WAIT_MAX_MS_DEFAULT: i32 = 500;
/// Default `replica.fetch.backoff.ms` (Kafka's 1 s).
pub const REPLICA_FETCH_BACKOFF_MS_DEFAULT: u64 = 1000;
/// Default `leader.imbalance.check.interval.seconds` (Kafka's 300 s), in milliseconds.
pub const LEADER_IMBALANCE_CHECK_INTERVAL_MS_DEFAULT: u64 = 300_000;
/// The metadata quorum's Raft tick.
pub const RAFT_TICK: std::time::Duration = std::time::Duration::from_millis(100);
/// Ticks without hearing from a leader before a voter campaigns (raft randomises in [n, 2n)):
/// 1-2 s, Kafka's `controller.quorum.election.timeout.ms` is 1 s.
pub const RAFT_ELECTION_TICKS_DEFAULT: usize = 10;
/// Default `broker.heartbeat.interval.ms`: 500 ms (Kafka's is 2 s). A broker whose connections
/// to the controller close is fenced after two missed heartbeats, so this bounds how long a
/// crashed broker's partitions stay without a leader; a heartbeat is one small call.
pub const BROKER_HEARTBEAT_INTERVAL_DEFAULT: std::time::Duration = std::time::Duration::from_millis(500);
/// Default `broker.session.timeout.ms` (Kafka's 9 s).
pub const BROKER_SESSION_TIMEOUT_DEFAULT: std::time::Duration = std::time::Duration::from_millis(9000);
/// Metadata log entries kept before they are compacted into a snapshot of the image.
pub const METADATA_SNAPSHOT_AFTER_ENTRIES: u64 = 1000;
/// The largest metadata snapshot a node decompresses (see `cluster/records.rs`): about 50 times
/// the JSON of 100,000 partitions, so only a damaged or hostile snapshot reaches it.
pub const METADATA_SNAPSHOT_BYTES_MAX: usize = 512 * 1024 * 1024;

/// One entry of the cleaner's key → offset map: a 16-byte hash of the key (collisions must be
/// negligible, since two keys sharing a hash would make the cleaner drop one key's latest
/// record; Kafka uses 16-byte MD5 for the same reason) and the 8-byte offset. The map holds
/// `bytes / DEDUPE_ENTRY_BYTES` slots.
pub const DEDUPE_ENTRY_BYTES: usize = 24;
/// The share of the map's slots filled before it counts as full (Kafka's
/// `log.cleaner.io.buffer.load.factor`, 0.9): open addressing slows sharply past it.
pub const DEDUPE_LOAD_FACTOR: f64 = 0.9;
/// The fewest slots a map gets, whatever it is given: a few keys' worth, so that a map of a
/// tiny budget still makes progress one batch at a time.
pub const DEDUPE_SLOTS_MIN: usize = 64;
/// How many bytes of a segment the cleaner reads at once (Kafka's `log.cleaner.io.buffer.size`
/// is 512 KiB per buffer): large enough that the disk streams, small enough per partition.
pub const CLEANER_READ_BYTES: usize = 1024 * 1024;
/// Cleaned bytes buffered before one write to the `.cleaned` segment.
pub const CLEANER_WRITE_BYTES: usize = 1024 * 1024;
/// The cleaner's I/O budget may run ahead of its rate by at most this long's worth of bytes
/// (a token bucket's depth): an idle cleaner cannot save up a burst that would then hit the
/// disk all at once.
pub const CLEANER_IO_BURST_MS: u64 = 100;

const _: () = assert!(DEDUPE_ENTRY_BYTES == 16 + 8);
const _: () = assert!(CLEANER_READ_BYTES >= BATCH_HEADER_BYTES);
const _: () = assert!(CLEANER_WRITE_BYTES as u64 >= BLOCK_BYTES);

/// The largest HTTP request head the metrics endpoint reads (request line and headers; a scrape
/// sends a few hundred bytes): a client sending more gets 431 and is closed, so a stream of
/// bytes without an end of headers holds at most this much.
pub const METRICS_REQUEST_BYTES_MAX: usize = 8 * 1024;
/// How long one metrics connection may take from accept to the last byte of its answer (read,
/// scrape, write): a client that trickles or stops reading is closed then. Prometheus' own
/// scrape timeout defaults to 10 s.
pub const METRICS_CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a scrape waits for the other shards' samples before it answers with what it has
/// (a shard stalled on a long task must not hold the scrape past Prometheus' timeout).
pub const METRICS_SCRAPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Metrics connections served at once; more are answered 503 and closed. Scrapers are a
/// handful of Prometheus servers and `sluice broker-stats`; the endpoint shares its shard with
/// Kafka clients.
pub const METRICS_CONNECTIONS_MAX: usize = 16;
/// Consumer groups whose lag a scrape reports (the ones lagging most): each adds two series,
/// and a broker may coordinate many thousands of groups.
pub const METRICS_GROUPS_MAX: usize = 1000;

const _: () = assert!(METRICS_SCRAPE_TIMEOUT.as_millis() < METRICS_CONNECTION_TIMEOUT.as_millis());

/// The most often one kind of repeated condition is logged (failed accepts, refused or
/// timed-out connections, slow flushes, an exhausted descriptor cache): see [`LogThrottle`].
pub const REPEATED_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A log line for a condition that can repeat at the rate of a flood: at most one per
/// [`REPEATED_LOG_INTERVAL`], saying how many events it stood for. One per condition and
/// thread (interior `Cell`s: shards keep theirs in their own state).
#[derive(Debug, Default)]
pub struct LogThrottle {
    last: std::cell::Cell<Option<std::time::Instant>>,
    suppressed: std::cell::Cell<u64>,
}

impl LogThrottle {
    /// Nothing logged yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Some(events suppressed since the last line)` if a line may be logged now.
    pub fn allow(&self) -> Option<u64> {
        let now = std::time::Instant::now();
        if self.last.get().is_some_and(|last| now.duration_since(last) < REPEATED_LOG_INTERVAL) {
            self.suppressed.set(self.suppressed.get() + 1);
            return None;
        }
        self.last.set(Some(now));
        Some(self.suppressed.replace(0))
    }
}

#[cfg(test)]
mod log_throttle_tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counts_the_rest() {
        let log = LogThrottle::new();
        assert_eq!(log.allow(), Some(0));
        assert_eq!(log.allow(), None);
        assert_eq!(log.allow(), None);
        log.last.set(std::time::Instant::now().checked_sub(REPEATED_LOG_INTERVAL));
        assert_eq!(log.allow(), Some(2));
    }
}
