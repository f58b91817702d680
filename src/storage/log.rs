//! [`PartitionLog`]: one partition's log on one shard.
//!
//! Lifecycle: [`PartitionLog::open`] recovers the directory and starts the log's flusher task;
//! [`PartitionLog::close`] drains it, seals the files and leaves the clean-shutdown marker.
//! Dropping without closing is a crash as far as the files know; the next open recovers.
//!
//! Descriptors: every segment file is opened through the shard's [`FileCache`], on demand. An
//! open leaves the files it recovered closed (or idle in the cache); a new partition creates no
//! file until its first append. The clean-shutdown marker stays until the first change to a
//! segment file (the flusher's first write, a truncation), and a log closed with nothing changed
//! since its clean open writes nothing, so restarting a broker of many idle partitions costs no
//! fsync per partition.
//!
//! Cores: lives on the shard that owns the partition and is never sent elsewhere (`Rc` inside).
//! Other shards reach it by message.
//!
//! Appends are synchronous up to the point of durability: [`PartitionLog::append`] takes batches
//! already validated (a [`ValidBatches`]), assigns offsets, stamps the leader epoch, puts them in
//! the batch cache and the write queue, and returns a [`PendingAppend`] whose `durable()`
//! resolves under the flush mode. The flusher takes everything queued while the previous flush
//! was in flight and writes it with one write and one fdatasync (group commit). Offsets are
//! assigned in call order, so callers that must keep order (pipelined produce requests) need only
//! call `append` in order.
//!
//! Offsets: `log_start ≤ high_watermark ≤ ack_end ≤ log_end`, where `ack_end` is how far appends
//! are acknowledged (fdatasync'd under `sync`, written under `interval`/`none`). The high
//! watermark rises to `min(ack_end, bound)`, the bound set by whoever decides what is committed
//! (see [`PartitionLog::set_high_watermark_bound`]).
//!
//! Followers: a follower's log takes its leader's batches as they are with
//! [`PartitionLog::append_replicated`], and is cut back where it diverged with
//! [`PartitionLog::truncate_to`] (or emptied with [`PartitionLog::reset_to`]). A truncation stops
//! the flusher once it has written what was queued, cuts the files (in an order a crash cannot
//! break, see `cut_files`), rebuilds the state from the directory with the code `open` runs, and
//! starts a new flusher; meanwhile the log takes no appends (`Truncated`).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, error, info, warn};

use super::appender::{self, Extent, SegmentAppender, Target};
use super::batch_cache::{BatchCache, CachedBatch, PartitionCache};
use super::cleaner::CleanReport;
use super::cleaner::files as cleaner_files;
use super::config::{FlushMode, LogConfig};
use super::epochs::EpochCache;
use super::error::Error;
use super::file_cache::{Access, Create, FileCache, FileKind, LogSlot, SegmentFiles};
use super::io::{self as sio, DirChange, Source};
use super::notify::Notify;
use super::producer_state::{self, Admission, CompletedTxn, Origin, ProducerAppend, ProducerStateTable};
use super::segment::{self, BatchMeta, RecoveryRules, Segment, parse_segment_name, segment_file};
use super::txn_index::{AbortedTxn, AbortedTxnIndex};
use crate::model::{
    BatchError, ControlType, LeaderEpoch, Offset, ProducerId, RecordBatch, Timestamp, TopicPartition, ValidBatches,
    assign_offset_and_epoch, marker_batch, parse_marker,
};

/// Name of the marker left by a clean close.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
/// Name of the log start offset checkpoint.
pub(crate) const LOG_START_FILE: &str = "log-start-offset";

/// What [`PartitionLog::open`] needs.
pub struct OpenOptions<'a> {
    /// The partition directory (`<data-dir>/<topic>-<partition>`).
    pub dir: PathBuf,
    /// Which partition this is (for logs and errors).
    pub topic_partition: TopicPartition,
    /// The log's configuration.
    pub config: LogConfig,
    /// The shard's batch cache.
    pub cache: &'a BatchCache,
    /// The shard's descriptor cache, through which the log opens its files.
    pub files: &'a FileCache,
    /// Who moves the high watermark.
    pub high_watermark: HighWatermark,
}

/// Who moves a log's high watermark at open; [`PartitionLog::set_high_watermark_bound`] changes
/// it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HighWatermark {
    /// The log itself, to the acknowledged end after every flush: a partition with no other
    /// replicas, where acknowledged means committed (a bound of `Offset(i64::MAX)`).
    FollowsAcks,
    /// The replication layer, with [`PartitionLog::set_high_watermark_bound`] (or
    /// [`PartitionLog::set_high_watermark`]): the bound starts at the high watermark at open.
    SetByReplication,
}

/// The high watermark bound that lets the high watermark follow the acknowledged end.
const BOUND_FOLLOWS_ACKS: Offset = Offset(i64::MAX);

/// How many truncations a log remembers the cut of, so that an append made before them learns
/// whether they cut it. Truncations come once per leader change; an append older than this many
/// of them is answered as cut (conservatively: an idempotent producer's retry finds it anyway).
const TRUNCATIONS_REMEMBERED: usize = 16;

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: Offset,
    /// Offset of the last record appended.
    pub last_offset: Offset,
    /// The log start offset at the time of the append (Kafka returns it in Produce responses).
    pub log_start_offset: Offset,
}

/// An append whose offsets are assigned; `durable()` resolves when the flush mode is satisfied.
#[must_use = "an append is acknowledged only when durable() resolves"]
pub struct PendingAppend {
    state: Rc<RefCell<LogState>>,
    info: AppendInfo,
    /// The log's truncation count when the append was made.
    truncations: u64,
}

impl PendingAppend {
    /// Offsets assigned (not yet durable).
    pub fn info(&self) -> AppendInfo {
        self.info
    }

    /// Resolves once the batches are acknowledged under the flush mode, or fails if the flush
    /// that carried them failed or a truncation cut them (`Truncated`).
    pub async fn durable(self) -> Result<AppendInfo, Error> {
        let next = self.info.last_offset.plus(1);
        let acks = self.state.borrow().acks.clone();
        acks.wait_until(|| {
            let state = self.state.borrow();
            state.ack_end() >= next || state.failed.is_some() || state.cut_since(self.truncations, next)
        })
        .await;
        let state = self.state.borrow();
        if state.cut_since(self.truncations, next) {
            return Err(Error::Truncated);
        }
        match &state.failed {
            Some(reason) if state.ack_end() < next => Err(Error::Offline(reason.clone())),
            _ => Ok(self.info),
        }
    }
}

/// A batch waiting for the flusher.
pub(crate) struct PendingWrite {
    segment_base: Offset,
    bytes: Bytes,
    next_offset: Offset,
}

pub(crate) struct LogState {
    pub(crate) topic_partition: TopicPartition,
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) segments: BTreeMap<Offset, Segment>,
    pub(crate) log_start: Offset,
    pub(crate) log_end: Offset,
    /// Offset after the last batch written to its file.
    pub(crate) flushed_end: Offset,
    /// Offset after the last batch fdatasync'd.
    pub(crate) durable_end: Offset,
    pub(crate) high_watermark: Offset,
    /// The high watermark moves to `min(ack_end, bound)` when that is higher (see
    /// [`PartitionLog::set_high_watermark_bound`]).
    high_watermark_bound: Offset,
    pending: VecDeque<PendingWrite>,
    /// Set when a flush failed: the log takes no more appends.
    pub(crate) failed: Option<String>,
    pub(crate) closing: bool,
    /// A truncation is under way: its flusher drains and stops, and the log takes no appends
    /// (nor retention runs) until the files are cut and the state rebuilt.
    pub(crate) truncating: bool,
    /// Truncations so far, and the log end each left (the newest last, at most
    /// [`TRUNCATIONS_REMEMBERED`]): a pending append learns from them whether it was cut.
    pub(crate) truncations: u64,
    cuts: VecDeque<(u64, Offset)>,
    pub(crate) cache: PartitionCache,
    epochs: EpochCache,
    /// Idempotent and transactional producers' state (see `producer_state`).
    pub(crate) producers: ProducerStateTable,
    /// Aborted transactions, for read_committed fetches (see `txn_index`).
    pub(crate) aborted: AbortedTxnIndex,
    /// Transactions a marker ended whose marker is not yet below the high watermark, in marker
    /// order. They keep the last stable offset at their first offset until it is (Kafka's
    /// unreplicated transactions), so a read_committed consumer never reads a transaction whose
    /// outcome is not committed yet. Recovery starts with none: the HW is then the log end.
    unreplicated: VecDeque<CompletedTxn>,
    pub(crate) acks: Rc<Notify>,
    pub(crate) work: Rc<Notify>,
    /// Notified when the log end moves (appends, truncations), or the log fails or closes.
    log_end_moved: Rc<Notify>,
    pub(crate) stats: LogStats,
    /// The first dirty offset the last clean left (`cleaner-offset-checkpoint`); its file also
    /// marks the log as possibly sparse (see `cleaner/files.rs`).
    pub(crate) cleaner_checkpoint: Option<Offset>,
    /// The last clean since open: when it ended and what it did.
    pub(crate) last_clean: Option<(Timestamp, CleanReport)>,
    /// A clean is under way (two at once would write the same `.cleaned` files).
    pub(crate) cleaning: bool,
    /// The shard's descriptor cache (new segments take their files from it).
    pub(crate) files: FileCache,
    /// Counts the log on its shard, for the size of preallocated extents.
    _slot: LogSlot,
    /// The clean-shutdown marker is on disk: nothing changed the segment files since the clean
    /// close that left it. Removed (and this cleared) before the first change.
    clean_marker: bool,
    /// The log's files changed since open (appends, truncations, deletions, a clean), so a close
    /// must write the producer-state snapshot and the marker; an open of a clean log (or of an
    /// empty directory) that changed nothing leaves the directory as it found it.
    changed: bool,
    /// The directory held no segment file at open (a new partition).
    fresh: bool,
}

/// Counters of what the flusher did, for tests, tools and (later) metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Batches appended.
    pub batches_appended: u64,
    /// Segment writes issued (one per flush per segment).
    pub writes: u64,
    /// fdatasync calls on segment files.
    pub syncs: u64,
}

impl LogState {
    /// Notes a change the marker does not vouch for (segments deleted, the log start moved), so
    /// the close writes its snapshot and marker.
    pub(crate) fn note_changed(&mut self) {
        self.changed = true;
    }

    /// The acknowledged end (or the high watermark bound) moved: raise the high watermark to
    /// `min(ack_end, bound)` if that is higher, and wake waiters.
    fn acknowledged(&mut self) {
        let target = self.ack_end().min(self.high_watermark_bound).max(self.log_start);
        if target > self.high_watermark {
            self.high_watermark = target;
        }
        self.forget_replicated_txns();
        self.acks.notify_all();
    }

    /// Whether a truncation after the `truncations`-th cut the log below `next` (or happened so
    /// long ago that the log no longer knows where it cut).
    fn cut_since(&self, truncations: u64, next: Offset) -> bool {
        if truncations == self.truncations {
            return false;
        }
        let remembered = self.cuts.front().is_some_and(|&(n, _)| n <= truncations + 1);
        !remembered || self.cuts.iter().any(|&(n, end)| n > truncations && end < next)
    }

    /// Wakes the flusher and whoever waits for the log end to move.
    fn appended(&self) {
        self.work.notify_all();
        self.log_end_moved.notify_all();
    }

    /// Drops the completed transactions whose marker the high watermark has passed.
    pub(crate) fn forget_replicated_txns(&mut self) {
        while self.unreplicated.front().is_some_and(|t| t.last_offset < self.high_watermark) {
            self.unreplicated.pop_front();
        }
    }

    /// The last stable offset: read_committed consumers read below it. It stops at the first
    /// offset of the oldest transaction not decided yet (open, or whose marker is above the high
    /// watermark), and never passes the high watermark nor falls below the log start.
    pub(crate) fn last_stable_offset(&self) -> Offset {
        let open = self.producers.first_unstable_offset();
        let unreplicated = self.unreplicated.iter().map(|t| t.first_offset).min();
        let first_unstable = open.into_iter().chain(unreplicated).min();
        first_unstable.map_or(self.high_watermark, |f| f.min(self.high_watermark)).max(self.log_start)
    }

    /// How far appends are acknowledged under the flush mode.
    pub(crate) fn ack_end(&self) -> Offset {
        match self.config.flush_mode {
            FlushMode::Sync => self.durable_end,
            FlushMode::Interval(_) | FlushMode::None => self.flushed_end,
        }
    }

    fn check_invariants(&self) {
        assert!(self.log_start <= self.high_watermark, "log start {} > HW {}", self.log_start, self.high_watermark);
        assert!(self.high_watermark <= self.log_end, "HW {} > LEO {}", self.high_watermark, self.log_end);
        assert!(self.durable_end <= self.flushed_end);
        assert!(self.flushed_end <= self.log_end);
    }

    fn active(&mut self) -> &mut Segment {
        match self.segments.last_entry() {
            Some(entry) => entry.into_mut(),
            None => unreachable!("a log always has an active segment"),
        }
    }

    /// Places one offset-assigned, validated batch at the end of the log; `batch` describes it.
    fn enqueue(&mut self, bytes: Bytes, batch: &BatchMeta, now_ms: i64) {
        let size = batch.size;
        let (segment_bytes, interval) = (u64::from(self.config.segment_bytes), self.config.index_interval_bytes);
        let (offsets_max, times_max) = (
            self.config.index_entries_max(crate::limits::OFFSET_INDEX_ENTRY_BYTES),
            self.config.index_entries_max(crate::limits::TIME_INDEX_ENTRY_BYTES),
        );
        let log_end = self.log_end;
        // `segment.ms` less this segment's `segment.jitter.ms` share; `segment.index.bytes` as
        // Kafka's `isFull` of either index.
        let active_base = self.segments.keys().next_back().map_or(0, |base| base.0);
        let segment_ms = self.config.segment_ms.saturating_sub(self.config.roll_jitter_ms(active_base));
        let active = self.active();
        let full = active.size + size > segment_bytes
            || active.index.entries().len() >= offsets_max
            || active.time_index.entries().len() >= times_max;
        let old = now_ms.saturating_sub(active.rolled_at_ms) >= i64::try_from(segment_ms).unwrap_or(i64::MAX);
        if active.size > 0 && (full || old || active.cannot_hold(batch.next_offset.plus(-1), size)) {
            debug!(tp = %self.topic_partition, base = %log_end, full, old, "rolling segment");
            self.snapshot_producers();
            let files = self.files.segment(segment_file(&self.dir, log_end, "log"));
            self.segments.insert(log_end, Segment::new(log_end, now_ms, files));
        }
        let active = self.active();
        if active.size == 0 {
            active.rolled_at_ms = now_ms;
        }
        let position = active.size;
        let segment_base = active.base_offset;
        active.track_batch(position, batch, interval);
        let next_offset = batch.next_offset;
        self.cache.push(CachedBatch {
            base_offset: batch.base_offset,
            next_offset,
            segment_base,
            position,
            bytes: bytes.clone(),
            appended: 0,
        });
        self.pending.push_back(PendingWrite { segment_base, bytes, next_offset });
        self.log_end = next_offset;
        self.stats.batches_appended += 1;
    }

    /// Writes the producer-state snapshot for the log end (at a roll and a clean close), so that
    /// recovery replays at most the active segment. A failure costs only a longer replay. The
    /// aborted-transaction index goes to disk first: recovery re-derives only the entries of
    /// markers after the snapshot it loads, so without the index no snapshot may be written.
    fn snapshot_producers(&mut self) {
        if let Err(e) = self.aborted.persist(&self.dir) {
            warn!(tp = %self.topic_partition, error = %e,
                "could not write the aborted-transaction index; no producer-state snapshot either");
            return;
        }
        let contents = self.producers.encode_snapshot();
        if let Err(e) = producer_state::write_snapshot(&self.dir, self.log_end, &contents) {
            warn!(tp = %self.topic_partition, error = %e, "could not write the producer-state snapshot");
        }
    }

    /// After a failed flush: forget everything past the acknowledged end, take no more appends.
    fn fail(&mut self, err: &Error) {
        let ack = self.flushed_end;
        error!(tp = %self.topic_partition, error = %err, acknowledged_end = %ack, dropped_end = %self.log_end,
            "log write failed; partition offline for appends, readable up to the acknowledged end");
        self.failed = Some(err.to_string());
        self.pending.clear();
        self.segments.retain(|&base, _| base <= ack);
        let active = self.active();
        active.size = active.flushed_size;
        active.next_offset = active.flushed_next_offset;
        active.index.truncate_to_position(active.size);
        if let Some(relative) = active.next_offset.relative_to(active.base_offset) {
            active.time_index.truncate_to(relative);
        }
        self.log_end = ack;
        self.durable_end = self.durable_end.min(ack);
        self.high_watermark = self.high_watermark.min(ack);
        self.aborted.truncate_from(ack);
        self.unreplicated.retain(|t| t.last_offset < ack);
        self.cache.truncate_from(ack);
        self.epochs.truncate_from(ack);
        if let Err(e) = self.epochs.write_now() {
            warn!(tp = %self.topic_partition, error = %e, "could not rewrite the leader epoch checkpoint");
        }
        self.acks.notify_all();
        self.log_end_moved.notify_all();
    }
}

/// The file of the segment being appended to, driven only by the flusher task. Its descriptor
/// is taken from the shard's cache at each write and may be closed in between.
pub(crate) struct ActiveFiles {
    base: Offset,
    log: SegmentAppender,
    /// The file is new and its name not yet durable: the directory is fsynced before its first
    /// write is acknowledged (by the epoch checkpoint's or the marker's fsync, if one comes).
    name_unsynced: bool,
}

impl ActiveFiles {
    /// Opens (creating it if it is new) the `.log` file of segment `base`, at its flushed size.
    /// A new file's name is made durable by the caller, before its first write.
    async fn open(state: &RefCell<LogState>, base: Offset) -> Result<ActiveFiles, Error> {
        let (files, written, cache) = {
            let state = state.borrow();
            let Some(segment) = state.segments.get(&base) else {
                return Err(Error::Offline(format!("segment {base} to append to is not in the log")));
            };
            (segment.files.clone(), segment.flushed_size, state.files.clone())
        };
        let path = files.path(FileKind::Log);
        files
            .direct(FileKind::Log, Create::IfMissing)
            .await
            .map_err(Error::io(format!("opening {}", path.display())))?;
        let log = SegmentAppender::resume(Target::Segment(files), written, Extent::Shard(cache))
            .await
            .map_err(Error::io(format!("resuming {}", path.display())))?;
        Ok(ActiveFiles { base, log, name_unsynced: written == 0 })
    }

    /// Cuts the log file to its logical size and syncs it, then writes both index files whole
    /// (an active segment's indexes live in memory only: after a crash, recovery rebuilds them
    /// by validating the whole tail segment anyway, so writing them during appends would cost
    /// descriptors and writes and buy nothing).
    async fn seal(self, state: &RefCell<LogState>) -> Result<(), Error> {
        self.log.seal().await.map_err(Error::io("sealing segment"))?;
        let (files, index_bytes, time_bytes) = {
            let mut state = state.borrow_mut();
            let Some(segment) = state.segments.get_mut(&self.base) else { return Ok(()) };
            segment.push_time_entry();
            (segment.files.clone(), segment.index.encode_all(), segment.time_index.encode_all())
        };
        write_indexes(&files, index_bytes, time_bytes).await?;
        // A sealed segment is read through its buffered descriptor only.
        files.release(Access::Direct(FileKind::Log));
        Ok(())
    }
}

/// Writes a segment's `.index` and `.timeindex` whole, each opened through the shard's cache and
/// closed right after.
async fn write_indexes(files: &SegmentFiles, index_bytes: Vec<u8>, time_bytes: Vec<u8>) -> Result<(), Error> {
    for (kind, bytes) in [(FileKind::OffsetIndex, index_bytes), (FileKind::TimeIndex, time_bytes)] {
        let path = files.path(kind);
        let context = || format!("writing {}", path.display());
        let file = files.direct(kind, Create::IfMissing).await.map_err(Error::io(context()))?;
        appender::write_whole(file.shared().clone(), bytes).await.map_err(Error::io(context()))?;
        drop(file);
        files.release(Access::Direct(kind));
    }
    Ok(())
}

/// The longest a shard opens logs in a row before it steps aside (see [`step_aside_between_opens`]).
const OPENING_SLICE: Duration = Duration::from_millis(5);
/// How long it steps aside: any wait at all takes it off the run queue.
const OPENING_STEP_ASIDE: Duration = Duration::from_micros(1);

thread_local! {
    /// When this shard last stepped aside between opens of logs.
    static OPENING_SINCE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// An image install opens thousands of logs one after another, and opening a log with nothing to
/// recover makes only blocking file-system calls, no glommio I/O, so it never returns to the
/// executor: a shard opening 50,000 partitions held its timers and requests for seconds (the
/// broker's heartbeats stopped and the controller fenced it). So every [`OPENING_SLICE`] of
/// opens, the next one first sleeps a microsecond, which lets the executor poll and run the
/// rest (as the cleaner's `Pacer` does).
async fn step_aside_between_opens() {
    let now = Instant::now();
    match OPENING_SINCE.with(std::cell::Cell::get) {
        Some(since) if now.duration_since(since) < OPENING_SLICE => {}
        Some(_) => {
            glommio::timer::sleep(OPENING_STEP_ASIDE).await;
            OPENING_SINCE.with(|s| s.set(Some(Instant::now())));
        }
        None => OPENING_SINCE.with(|s| s.set(Some(now))),
    }
}

/// One partition's log. See the module docs for lifecycle and concurrency.
pub struct PartitionLog {
    pub(crate) state: Rc<RefCell<LogState>>,
    flusher: RefCell<Option<glommio::task::JoinHandle<()>>>,
}

impl PartitionLog {
    /// Opens the log in `options.dir`, creating it if empty, recovering it if it was not closed
    /// cleanly (see `segment::recover`), and starts its flusher on the current shard.
    pub async fn open(options: OpenOptions<'_>) -> Result<PartitionLog, Error> {
        let OpenOptions { dir, topic_partition: tp, config, cache, files, high_watermark } = options;
        step_aside_between_opens().await;
        let loaded = load(&dir, &tp, &config, files).await?;
        let Loaded { segments, log_start, log_end, epochs, producers, aborted, clean, fresh, cleaner_checkpoint } =
            loaded;
        let high_watermark_bound = match high_watermark {
            HighWatermark::FollowsAcks => BOUND_FOLLOWS_ACKS,
            HighWatermark::SetByReplication => log_end,
        };
        let state = Rc::new(RefCell::new(LogState {
            topic_partition: tp.clone(),
            dir,
            config,
            segments,
            log_start,
            log_end,
            flushed_end: log_end,
            durable_end: log_end,
            high_watermark: log_end,
            high_watermark_bound,
            pending: VecDeque::new(),
            failed: None,
            closing: false,
            truncating: false,
            truncations: 0,
            cuts: VecDeque::new(),
            cache: cache.partition(),
            epochs,
            producers,
            aborted,
            unreplicated: VecDeque::new(),
            acks: Rc::new(Notify::default()),
            work: Rc::new(Notify::default()),
            log_end_moved: Rc::new(Notify::default()),
            stats: LogStats::default(),
            cleaner_checkpoint,
            last_clean: None,
            cleaning: false,
            files: files.clone(),
            _slot: files.register_log(),
            clean_marker: clean,
            changed: false,
            fresh,
        }));
        state.borrow().check_invariants();
        info!(tp = %tp, %log_start, %log_end, clean, "log opened");
        let flusher = glommio::spawn_local(run_flusher(state.clone())).detach();
        Ok(PartitionLog { state, flusher: RefCell::new(Some(flusher)) })
    }

    /// Assigns `batches` the next offsets, stamps `epoch`, and queues them for the flusher. The
    /// batches were parsed and checked when the [`ValidBatches`] was built (against the topic's
    /// `max.message.bytes`), so they are not read again here.
    ///
    /// Batches of idempotent or transactional producers are checked against the producer state
    /// first (all of them, before anything is appended): a gap, a fenced epoch or a transaction
    /// rule broken refuses the whole append; a retry of a batch already in the log appends
    /// nothing and answers with that batch's offsets, waiting for it like the original.
    pub fn append(&self, batches: ValidBatches, epoch: LeaderEpoch) -> Result<PendingAppend, Error> {
        self.append_from(batches, epoch, Origin::Client)
    }

    /// [`PartitionLog::append`] of batches written by `origin`, which decides the producer checks
    /// they get (a coordinator's carry no sequence).
    pub fn append_from(
        &self,
        batches: ValidBatches,
        epoch: LeaderEpoch,
        origin: Origin,
    ) -> Result<PendingAppend, Error> {
        self.check_writable()?;
        let mut state = self.state.borrow_mut();
        let base_offset = state.log_end;
        {
            let mut checks = ProducerAppend::with_origin(&state.producers, origin);
            let mut offset = base_offset;
            for batch in batches.batches() {
                if let Admission::Duplicate(original) = checks.admit(batch, offset)? {
                    let info = AppendInfo {
                        base_offset: original.first_offset,
                        last_offset: original.last_offset,
                        log_start_offset: state.log_start,
                    };
                    let truncations = state.truncations;
                    drop(state);
                    return Ok(PendingAppend { state: self.state.clone(), info, truncations });
                }
                offset = offset.plus(i64::from(batch.last_offset_delta) + 1);
            }
        }
        state.epochs.note(epoch, base_offset);
        let now = Timestamp::now();
        for (mut bytes, batch) in batches.into_batches() {
            let offset = state.log_end;
            assign_offset_and_epoch(&mut bytes, offset, epoch);
            state.enqueue(bytes.freeze(), &BatchMeta::appended(offset, &batch), now.0);
            state.producers.replay(&batch, offset, now);
        }
        let info = AppendInfo { base_offset, last_offset: state.log_end.plus(-1), log_start_offset: state.log_start };
        state.appended();
        Ok(PendingAppend { state: self.state.clone(), info, truncations: state.truncations })
    }

    /// Appends a transaction marker ending `producer_id`'s transaction in this partition (the
    /// transaction coordinator's WriteTxnMarkers), after Kafka's checks: no older producer epoch,
    /// no older coordinator epoch. Returns the append and the transaction it completed.
    pub fn append_marker(
        &self,
        producer_id: ProducerId,
        producer_epoch: i16,
        coordinator_epoch: i32,
        kind: ControlType,
        epoch: LeaderEpoch,
    ) -> Result<(PendingAppend, CompletedTxn), Error> {
        self.check_writable()?;
        let mut state = self.state.borrow_mut();
        state.producers.check_marker(producer_id, producer_epoch, coordinator_epoch)?;
        let offset = state.log_end;
        state.epochs.note(epoch, offset);
        let now = Timestamp::now();
        let mut bytes = marker_batch(producer_id, producer_epoch, coordinator_epoch, kind, now);
        let meta = match RecordBatch::parse_prefix(&bytes, usize::MAX) {
            Ok(batch) => {
                BatchMeta::appended(offset, &crate::model::BatchSummary::of_header(batch.header(), batch.size()))
            }
            Err(e) => return Err(Error::InvalidBatch(e)),
        };
        assign_offset_and_epoch(&mut bytes, offset, epoch);
        state.enqueue(bytes.freeze(), &meta, now.0);
        let completed =
            state.producers.replay_marker(producer_id, producer_epoch, coordinator_epoch, kind, offset, now);
        if completed.aborted {
            let aborted = aborted_entry(&completed, &state.producers);
            state.aborted.push(aborted);
        }
        state.unreplicated.push_back(completed);
        let info = AppendInfo { base_offset: offset, last_offset: offset, log_start_offset: state.log_start };
        state.appended();
        Ok((PendingAppend { state: self.state.clone(), info, truncations: state.truncations }, completed))
    }

    /// Appends record batches whose offsets and leader epochs the leader assigned (a follower's
    /// fetch answer; Kafka's AppendOrigin.REPLICATION). Returns None when nothing was new.
    ///
    /// Each batch is checked as recovery checks a stored one (magic 2, CRC, at most
    /// [`BATCH_BYTES_MAX`](crate::limits::BATCH_BYTES_MAX)) and kept byte for byte. A trailing
    /// partial batch (a fetch answer cut at its byte limit) is ignored; batches wholly below the
    /// log end (a resend) are skipped; each batch kept must start at or after the end of the
    /// one before (the log end, for the first), else `NotContiguous` and nothing is appended.
    /// Offsets may jump (a compacted leader's gaps): the log is then marked sparse (see
    /// `mark_sparse`). The producer state replays
    /// them without checks, as recovery does; markers end transactions as `append_marker` does.
    pub fn append_replicated(&self, records: Bytes) -> Result<Option<PendingAppend>, Error> {
        self.check_writable()?;
        let mut state = self.state.borrow_mut();
        let log_end = state.log_end;
        // Gaps only where the leader's log may have them: a compacted log, or one already sparse.
        // Elsewhere a gap means something went wrong, and the follower refuses it as before.
        let gaps = state.config.cleanup_policy.compact || state.cleaner_checkpoint.is_some();
        let kept = parse_replicated(&records, log_end, state.epochs.latest_below(log_end), gaps)?;
        let (Some(first), Some(last)) = (kept.first(), kept.last()) else { return Ok(None) };
        let mut expected = log_end;
        let has_gap = kept.iter().any(|batch| {
            let gap = batch.meta.base_offset > expected;
            expected = batch.meta.next_offset;
            gap
        });
        if has_gap {
            mark_sparse(&mut state)?;
        }
        let info = AppendInfo {
            base_offset: first.meta.base_offset,
            last_offset: last.meta.next_offset.plus(-1),
            log_start_offset: state.log_start,
        };
        // The flusher writes the checkpoint before these batches (see `epochs.rs`).
        for batch in &kept {
            state.epochs.note_replicated(batch.epoch, batch.meta.base_offset);
        }
        let now = Timestamp::now();
        for batch in kept {
            let offset = batch.meta.base_offset;
            let summary = batch.meta.summary;
            state.enqueue(batch.bytes, &batch.meta, now.0);
            match batch.marker {
                Some((kind, coordinator_epoch)) => {
                    let completed = state.producers.replay_marker(
                        summary.producer_id,
                        summary.producer_epoch,
                        coordinator_epoch,
                        kind,
                        offset,
                        now,
                    );
                    if completed.aborted {
                        let aborted = aborted_entry(&completed, &state.producers);
                        state.aborted.push(aborted);
                    }
                    state.unreplicated.push_back(completed);
                }
                // A control batch that is no marker means nothing to the producer state (as in
                // recovery's replay).
                None if summary.control => {}
                None => state.producers.replay(&summary, offset, now),
            }
        }
        state.appended();
        Ok(Some(PendingAppend { state: self.state.clone(), info, truncations: state.truncations }))
    }

    /// Records that leader epoch `epoch` begins at the current log end (a new leader does this at
    /// the start of its leadership, before any append, so followers' divergence checks see it).
    /// An epoch not newer than the latest changes nothing. The checkpoint file takes it with the
    /// first append under it, or at close (see `epochs.rs`).
    pub fn begin_epoch(&self, epoch: LeaderEpoch) -> Result<(), Error> {
        self.check_writable()?;
        let mut state = self.state.borrow_mut();
        let log_end = state.log_end;
        state.epochs.note(epoch, log_end);
        Ok(())
    }

    /// Who moves the high watermark, changeable at any time: with `bound`, the HW is
    /// max(HW, min(ack_end, bound)) — recomputed now and after every flush. Offset(i64::MAX)
    /// (what HighWatermark::FollowsAcks means) makes it follow the acknowledged end; a leader
    /// sets the smallest log end among its in-sync followers; a follower sets its leader's HW; a
    /// leader whose ISR is below min.insync.replicas sets its current HW (frozen). Never moves
    /// it backwards.
    pub fn set_high_watermark_bound(&self, bound: Offset) {
        let mut state = self.state.borrow_mut();
        state.high_watermark_bound = bound;
        state.acknowledged();
        state.check_invariants();
    }

    /// Resolves when the log end passes `offset`, or the log fails or closes (a follower's long
    /// poll on the leader waits for appends, not for the HW).
    pub async fn wait_for_log_end_beyond(&self, offset: Offset) {
        let moved = self.state.borrow().log_end_moved.clone();
        moved
            .wait_until(|| {
                let state = self.state.borrow();
                state.log_end > offset || state.failed.is_some() || state.closing
            })
            .await;
    }

    /// Cuts the log so that it ends at or below `offset`: every batch whose last offset is >=
    /// offset goes (so the new log end is `offset`, or the base of the batch containing it). Also
    /// cuts the leader-epoch cache, producer state, aborted-txn index, unreplicated txns, batch
    /// cache, and lowers the high watermark to at most the new end. Waits for queued writes
    /// first. A no-op if offset >= log end, but for epochs begun at the log end with no batch
    /// (a leadership that appended nothing, as Kafka's truncateTo does). Pending appends of cut
    /// offsets fail with `Truncated`. A cut at or below the first segment's base is a
    /// [`Self::reset_to`]. A failure leaves the log offline (reopening recovers it).
    pub async fn truncate_to(&self, offset: Offset) -> Result<(), Error> {
        let whole_log = {
            let mut state = self.state.borrow_mut();
            if offset >= state.log_end {
                // Only epochs with no batch go, so the file may follow later (see `epochs.rs`).
                let log_end = state.log_end;
                state.epochs.truncate_from(log_end);
                return Ok(());
            }
            state.segments.keys().next().is_some_and(|&first| offset <= first)
        };
        if whole_log { self.reset_to(offset).await } else { self.truncate(Cut::To(offset)).await }
    }

    /// Empties the log and restarts it at `offset` (a follower whose leader's log start is past
    /// its log end: Kafka's truncateFullyAndStartAt). log_start = log_end = HW = offset. Pending
    /// appends fail with `Truncated`; the epoch cache, producer state and aborted transactions
    /// are emptied.
    pub async fn reset_to(&self, offset: Offset) -> Result<(), Error> {
        if offset.0 < 0 {
            let state = self.state.borrow();
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                log_start: state.log_start,
                log_end: state.log_end,
            });
        }
        self.truncate(Cut::Reset(offset)).await
    }

    /// Both truncations: stop the flusher once it has written everything queued, cut the files
    /// (see [`cut_files`] for why a crash at any step is safe), rebuild the state from the
    /// directory as `open` does, and start a new flusher.
    async fn truncate(&self, cut: Cut) -> Result<(), Error> {
        {
            let mut state = self.state.borrow_mut();
            self.check_writable_in(&state)?;
            state.truncating = true;
            state.work.notify_all();
        }
        let result = self.truncate_stopped(cut).await;
        let mut state = self.state.borrow_mut();
        state.truncating = false;
        if let Err(e) = &result
            && state.failed.is_none()
        {
            error!(tp = %state.topic_partition, error = %e, "truncation failed; partition offline until reopened");
            state.failed = Some(e.to_string());
        }
        state.work.notify_all();
        state.acks.notify_all();
        state.log_end_moved.notify_all();
        result
    }

    fn check_writable_in(&self, state: &LogState) -> Result<(), Error> {
        if let Some(reason) = &state.failed {
            return Err(Error::Offline(reason.clone()));
        }
        if state.closing {
            return Err(Error::Closed);
        }
        if state.truncating {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    async fn truncate_stopped(&self, cut: Cut) -> Result<(), Error> {
        let flusher = self.flusher.borrow_mut().take();
        if let Some(flusher) = flusher {
            flusher.await;
        }
        if let Some(reason) = &self.state.borrow().failed {
            return Err(Error::Offline(reason.clone()));
        }
        let new_end = cut_files(&self.state, cut).await?;
        let (dir, tp, config, files) = {
            let state = self.state.borrow();
            (state.dir.clone(), state.topic_partition.clone(), state.config.clone(), state.files.clone())
        };
        let loaded = load(&dir, &tp, &config, &files).await?;
        if loaded.log_end != new_end {
            // A segment file that would not go away, or damage recovery cut: not the log asked for.
            return Err(Error::Offline(format!("truncation to {new_end} left a log ending at {}", loaded.log_end)));
        }
        let mut state = self.state.borrow_mut();
        let old_end = state.log_end;
        let Loaded { segments, log_start, log_end, epochs, producers, aborted, cleaner_checkpoint, .. } = loaded;
        // A checkpoint past the new end would call offsets appended after the cut clean.
        let cleaner_checkpoint = match cleaner_checkpoint {
            Some(checkpoint) if checkpoint > log_end => {
                if let Err(e) = cleaner_files::write_checkpoint(&dir, log_end) {
                    warn!(%tp, error = %e, "could not lower the cleaner checkpoint");
                }
                Some(log_end)
            }
            other => other,
        };
        state.segments = segments;
        state.log_start = log_start;
        state.log_end = log_end;
        state.flushed_end = log_end;
        state.durable_end = log_end;
        state.high_watermark = state.high_watermark.min(log_end).max(log_start);
        state.epochs = epochs;
        state.producers = producers;
        state.aborted = aborted;
        state.cleaner_checkpoint = cleaner_checkpoint;
        match cut {
            Cut::To(_) => state.unreplicated.retain(|t| t.last_offset < log_end),
            Cut::Reset(_) => state.unreplicated.clear(),
        }
        state.cache.truncate_from(log_end);
        state.cache.drop_before(log_start);
        state.cache.set_evictable_end(log_end);
        state.truncations += 1;
        let truncations = state.truncations;
        // What survived: the offsets below the new end, or nothing after a reset.
        let survived_below = match cut {
            Cut::To(_) => new_end,
            Cut::Reset(_) => Offset(i64::MIN),
        };
        state.cuts.push_back((truncations, survived_below));
        while state.cuts.len() > TRUNCATIONS_REMEMBERED {
            state.cuts.pop_front();
        }
        state.acknowledged();
        state.check_invariants();
        info!(tp = %state.topic_partition, ?cut, %old_end, %log_start, %log_end, "log truncated");
        // Before the spawn: a spawned task may run at once, and a flusher that saw the
        // truncation still under way would stop again.
        state.truncating = false;
        drop(state);
        let flusher = glommio::spawn_local(run_flusher(self.state.clone())).detach();
        *self.flusher.borrow_mut() = Some(flusher);
        Ok(())
    }

    /// Forgets producers that have not appended for `expiration` and have no open transaction
    /// (`producer.id.expiration.ms`); returns how many.
    pub fn expire_producers(&self, now: Timestamp, expiration: Duration) -> usize {
        let millis = i64::try_from(expiration.as_millis()).unwrap_or(i64::MAX);
        self.state.borrow_mut().producers.expire(Timestamp(now.0.saturating_sub(millis)))
    }

    /// Runs `f` over the producer state (DescribeProducers, the last stable offset).
    pub fn with_producers<T>(&self, f: impl FnOnce(&ProducerStateTable) -> T) -> T {
        f(&self.state.borrow().producers)
    }

    /// The earliest offset readable.
    pub fn log_start_offset(&self) -> Offset {
        self.state.borrow().log_start
    }

    /// The offset the next record will get.
    pub fn log_end_offset(&self) -> Offset {
        self.state.borrow().log_end
    }

    /// How far appends are acknowledged under the flush mode.
    pub fn ack_end_offset(&self) -> Offset {
        self.state.borrow().ack_end()
    }

    /// Offset after the last fdatasync'd batch (the recovery point).
    pub fn durable_end_offset(&self) -> Offset {
        self.state.borrow().durable_end
    }

    /// The high watermark: records below it are committed and visible to consumers.
    pub fn high_watermark(&self) -> Offset {
        self.state.borrow().high_watermark
    }

    /// Moves the high watermark (the replication layer decides where); it never passes the
    /// acknowledged end nor goes below the log start.
    pub fn set_high_watermark(&self, offset: Offset) {
        let mut state = self.state.borrow_mut();
        let bounded = offset.min(state.ack_end()).max(state.log_start);
        state.high_watermark = bounded;
        state.forget_replicated_txns();
        state.check_invariants();
        state.acks.notify_all();
    }

    /// Whether the log takes appends: `Offline` after a failed flush, `Closed` while closing. The
    /// partition asks before validating a produce, so a broken log answers as a broken log
    /// whatever the batches hold.
    pub fn check_writable(&self) -> Result<(), Error> {
        self.check_writable_in(&self.state.borrow())
    }

    /// Whether the log failed or is closing: no high watermark will move any more.
    pub fn is_stopped(&self) -> bool {
        let state = self.state.borrow();
        state.failed.is_some() || state.closing
    }

    /// Resolves when the high watermark moves past `offset` or the log fails or closes; for
    /// long-poll fetches.
    pub async fn wait_for_high_watermark_beyond(&self, offset: Offset) {
        self.wait_for_high_watermark_beyond_or(offset, || false).await;
    }

    /// [`PartitionLog::wait_for_high_watermark_beyond`], or until `stop` says so (asked at every
    /// change of the high watermark or of its bound: the replication layer moves the bound when
    /// a leadership or the ISR changes, which is what `stop` looks at).
    pub async fn wait_for_high_watermark_beyond_or(&self, offset: Offset, mut stop: impl FnMut() -> bool) {
        let acks = self.state.borrow().acks.clone();
        acks.wait_until(|| {
            let state = self.state.borrow();
            state.high_watermark > offset || state.failed.is_some() || state.closing || stop()
        })
        .await;
    }

    /// The last stable offset: below it every transaction is decided and committed, so
    /// read_committed consumers read up to it. It is the first offset of the oldest transaction
    /// still open (or whose marker the high watermark has not passed), bounded by the high
    /// watermark, and never below the log start.
    pub fn last_stable_offset(&self) -> Offset {
        self.state.borrow().last_stable_offset()
    }

    /// The aborted transactions overlapping `[from, upper)`, in marker order: what a
    /// read_committed fetch returning records in that range tells its consumer to drop.
    pub fn aborted_transactions(&self, from: Offset, upper: Offset) -> Vec<AbortedTxn> {
        self.state.borrow().aborted.overlapping(from, upper)
    }

    /// Resolves when the last stable offset moves past `offset` or the log fails or closes; for
    /// read_committed long polls. The LSO moves only when the high watermark does (a marker
    /// ends a transaction only once the HW passes it), so this waits on the same notification
    /// and re-checks there, without waking its caller for appends inside an open transaction.
    pub async fn wait_for_stable_offset_beyond(&self, offset: Offset) {
        let acks = self.state.borrow().acks.clone();
        acks.wait_until(|| {
            let state = self.state.borrow();
            state.last_stable_offset() > offset || state.failed.is_some() || state.closing
        })
        .await;
    }

    /// The latest leader epoch appended, if any.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.state.borrow().epochs.latest()
    }

    /// For OffsetForLeaderEpoch: the largest epoch ≤ `epoch` and the offset where it ended.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let state = self.state.borrow();
        state.epochs.end_offset_for(epoch, state.log_end)
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().segments.values().map(|s| s.size).sum()
    }

    /// What the flusher has done so far.
    pub fn stats(&self) -> LogStats {
        self.state.borrow().stats
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }

    /// The log's configuration.
    pub fn config(&self) -> LogConfig {
        self.state.borrow().config.clone()
    }

    /// Applies a new configuration (retention, segment size, ...) to future appends and
    /// retention runs. The flush mode is fixed at open.
    pub fn set_config(&self, mut config: LogConfig) {
        let mut state = self.state.borrow_mut();
        config.flush_mode = state.config.flush_mode;
        state.config = config;
    }

    /// The partition this log stores.
    pub fn topic_partition(&self) -> TopicPartition {
        self.state.borrow().topic_partition.clone()
    }

    /// Flushes what is queued, seals the files and leaves the clean-shutdown marker (unless the
    /// log failed, in which case the next open recovers).
    pub async fn close(&self) -> Result<(), Error> {
        // A truncation under way owns the flusher and the files: let it finish first.
        let work = self.state.borrow().work.clone();
        work.wait_until(|| !self.state.borrow().truncating).await;
        {
            let mut state = self.state.borrow_mut();
            state.closing = true;
            state.work.notify_all();
            state.acks.notify_all();
            state.log_end_moved.notify_all();
        }
        let flusher = self.flusher.borrow_mut().take();
        if let Some(flusher) = flusher {
            flusher.await;
        }
        let mut state = self.state.borrow_mut();
        if let Some(reason) = &state.failed {
            return Err(Error::Offline(reason.clone()));
        }
        state.epochs.write_now().map_err(Error::io("writing the leader epoch checkpoint"))?;
        if !state.changed && (state.clean_marker || state.fresh) {
            // The directory is as the open found it: its marker (or its emptiness) still holds.
            info!(tp = %state.topic_partition, log_end = %state.log_end, "log closed cleanly (unchanged)");
            return Ok(());
        }
        state.snapshot_producers();
        // An empty file has nothing to tear: no temporary file and no fsync of its own, only the
        // directory's (which also makes the snapshot renamed just before durable). Every segment
        // file was synced at its seal.
        let marker = state.dir.join(CLEAN_SHUTDOWN_FILE);
        std::fs::File::create(&marker).map_err(Error::io(format!("writing {}", marker.display())))?;
        sio::sync_dir(&state.dir).map_err(Error::io(format!("syncing {}", state.dir.display())))?;
        state.clean_marker = true;
        info!(tp = %state.topic_partition, log_end = %state.log_end, "log closed cleanly");
        Ok(())
    }
}

/// Marks a log about to have a gap in its offsets (a replicated one, or a clean's) as sparse,
/// so that recovery accepts the gap whatever its `cleanup.policy` becomes: the cleaner
/// checkpoint file says so (written with the log start, which is where a first clean starts
/// anyway).
pub(crate) fn mark_sparse(state: &mut LogState) -> Result<(), Error> {
    // Even under `compact`: the policy may change before the next open.
    if state.cleaner_checkpoint.is_some() {
        return Ok(());
    }
    cleaner_files::write_checkpoint(&state.dir, state.log_start)?;
    state.cleaner_checkpoint = Some(state.log_start);
    Ok(())
}

/// A replicated batch about to be appended.
struct Replicated {
    bytes: Bytes,
    meta: BatchMeta,
    epoch: LeaderEpoch,
    /// The transaction marker a control batch carries.
    marker: Option<(ControlType, i32)>,
}

/// Parses a fetch answer's batches for a log ending at `log_end` whose latest epoch below it is
/// `epoch_floor`: skips those wholly below the log end, ignores a trailing partial batch, and
/// checks that the rest continue the log with epochs that never go down.
fn parse_replicated(
    records: &Bytes,
    log_end: Offset,
    epoch_floor: Option<LeaderEpoch>,
    gaps: bool,
) -> Result<Vec<Replicated>, Error> {
    let size_max = crate::limits::BATCH_BYTES_MAX as usize;
    let mut kept = Vec::new();
    let mut expected = log_end;
    let mut floor = epoch_floor.unwrap_or(LeaderEpoch::UNKNOWN);
    let mut at = 0usize;
    while let Some(rest) = records.get(at..).filter(|rest| !rest.is_empty()) {
        let batch = match RecordBatch::parse_prefix(rest, size_max) {
            Ok(batch) => batch,
            // A fetch answer cut at its byte limit ends inside a batch; the next fetch has it.
            Err(BatchError::Truncated { .. }) => break,
            Err(e) => return Err(e.into()),
        };
        batch.validate_stored()?;
        let size = batch.size();
        let base = batch.base_offset();
        let delta = i64::from(batch.header().last_offset_delta.get());
        // The base offset comes off the network: check the arithmetic before BatchMeta does it.
        let Some(next) = base.0.checked_add(delta + 1).map(Offset) else {
            return Err(Error::NotContiguous { expected, found: base });
        };
        if kept.is_empty() && next <= log_end {
            at += size;
            continue;
        }
        // Offsets only go up; a compacted leader's log has gaps, which the follower keeps.
        if base < expected || (!gaps && base != expected) {
            return Err(Error::NotContiguous { expected, found: base });
        }
        let epoch = batch.leader_epoch();
        if epoch < floor {
            return Err(Error::StaleEpoch { offset: base, epoch: epoch.0, latest: floor.0 });
        }
        floor = epoch;
        let marker = if batch.is_control() { parse_marker(&batch) } else { None };
        let meta = BatchMeta::from_batch(&batch);
        kept.push(Replicated { bytes: records.slice(at..at + size), meta, epoch, marker });
        expected = next;
        at += size;
    }
    Ok(kept)
}

/// What a truncation cuts.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// Every batch whose last offset is at or after this one.
    To(Offset),
    /// Everything: the log restarts empty at this offset.
    Reset(Offset),
}

/// Cuts the files of a log whose flusher has stopped (every queued batch is in its file and the
/// active segment is sealed), and returns the new log end. The state in memory is left as it
/// was: the caller rebuilds it from the directory.
///
/// Why a crash at any step recovers to a valid log (recovery validates the tail segment whole,
/// and every other segment from its last index entry on):
/// 1. Producer-state snapshots above the new end go first. One left above the cut would describe
///    batches the log no longer holds, and once appends passed its offset again recovery would
///    load it; with fewer snapshots recovery only replays more. (A reset removes them all, and
///    the aborted-transaction index, whose transactions all go.)
/// 2. The log start checkpoint is lowered to the new end if it was above it (a reset sets it),
///    so that it never lies past the log end once appends resume.
/// 3. Segments are deleted newest first, then the one holding the cut is cut at a batch
///    boundary and synced: each step leaves a prefix of the old log. (A reset deletes every
///    segment; a crash then leaves a shorter or empty log, also valid.) The aborted-transaction
///    index needs no change: recovery keeps only its entries below the snapshot it loads, which
///    is at or below the new end, and re-derives the rest from the markers it replays.
/// 4. The leader-epoch checkpoint last. A crash before leaves epochs that begin past the log
///    end, which `load` drops (it cuts the checkpoint at the recovered end), so every step
///    leaves epochs that agree with the batches. Cut first, a crash would leave batches whose
///    epoch the checkpoint no longer knows, and recovery, which checks epochs only past each
///    segment's last index entry, would keep some of them.
async fn cut_files(state: &RefCell<LogState>, cut: Cut) -> Result<Offset, Error> {
    prepare_segment_write(state, false)?;
    let (dir, new_end, keep) = match cut {
        Cut::Reset(offset) => (state.borrow().dir.clone(), offset, None),
        Cut::To(offset) => {
            let (dir, base, end, position) = find_cut(state, offset).await?;
            (dir, end, Some((base, position)))
        }
    };
    // 1. Snapshots.
    for snapshot in producer_state::list_snapshots(&dir) {
        if keep.is_none() || snapshot > new_end {
            remove_file(&producer_state::snapshot_path(&dir, snapshot))?;
        }
    }
    if keep.is_none() {
        remove_file(&dir.join(super::txn_index::TXN_INDEX_FILE))?;
    }
    crash_point(1)?;
    // 2. Log start.
    if keep.is_none() || read_log_start(&dir).is_some_and(|start| start > new_end) {
        write_log_start(&dir, new_end).map_err(Error::io("writing the log start offset"))?;
    }
    crash_point(2)?;
    // 3. Segments, newest first.
    // The flusher is stopped and the cleaner gives up on a truncation, so the kept segment's
    // path names its file throughout.
    let (bases, files) = {
        let state = state.borrow();
        let bases: Vec<Offset> = state.segments.keys().rev().copied().collect();
        let files = keep.and_then(|(base, _)| state.segments.get(&base)).map(|s| s.files.clone());
        (bases, files)
    };
    for base in bases.into_iter().filter(|&b| keep.is_none_or(|(kept, _)| b > kept)) {
        remove_segment_files(&dir, base);
        crash_point(3)?;
    }
    sio::sync_dir(&dir).map_err(Error::io(format!("syncing {}", dir.display())))?;
    if let (Some((base, position)), Some(files)) = (keep, files) {
        let context = || format!("cutting {}", segment_file(&dir, base, "log").display());
        let file = files.direct(FileKind::Log, Create::No).await.map_err(Error::io(context()))?;
        sio::truncate(&file, position).await.map_err(Error::io(context()))?;
        sio::sync(&file).await.map_err(Error::io(context()))?;
    }
    crash_point(4)?;
    // 4. Epochs.
    let epochs_from = if keep.is_some() { new_end } else { Offset(i64::MIN) };
    let mut state = state.borrow_mut();
    state.epochs.truncate_from(epochs_from);
    state.epochs.write_now().map_err(Error::io("rewriting the leader epoch checkpoint"))?;
    Ok(new_end)
}

/// Where `Cut::To(offset)` cuts: the partition directory, the segment holding `offset`, the new
/// log end (the base of the batch holding `offset`) and that batch's position in the segment.
async fn find_cut(state: &RefCell<LogState>, offset: Offset) -> Result<(PathBuf, Offset, Offset, u64), Error> {
    let (dir, base, file, from, size, next_offset) = {
        let state = state.borrow();
        // truncate_to resets a log cut at or below its first segment, so there is one.
        let Some((&base, segment)) = state.segments.range(..=offset).next_back() else {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                log_start: state.log_start,
                log_end: state.log_end,
            });
        };
        let from = u64::from(segment.index.lookup(base, offset).position);
        (state.dir.clone(), base, segment.files.clone(), from, segment.size, segment.next_offset)
    };
    // The flusher is stopped and the cleaner gives up on a truncation: the path is this file's.
    let file =
        file.direct(FileKind::Log, Create::No).await.map_err(Error::io(format!("opening segment {base} to cut it")))?;
    let mut found = None;
    let size_max = crate::limits::BATCH_BYTES_MAX as usize;
    let source = Source::Direct(&file);
    let (_, end) = segment::scan(source, base, from, size, size_max, segment::ScanCheck::Headers, |position, meta| {
        if meta.next_offset > offset {
            found = Some((meta.base_offset, position));
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .await
    .map_err(Error::io(format!("reading segment {base}")))?;
    if let segment::ScanEnd::Invalid(e) = end {
        return Err(Error::InvalidBatch(e));
    }
    // Not found: `offset` lies in a compacted gap at the segment's end, which stays whole.
    let (new_end, position) = found.unwrap_or((next_offset, size));
    Ok((dir, base, new_end, position))
}

fn remove_file(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("removing {}", path.display()))(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
thread_local! {
    /// A test's simulated crash: truncation stops at this step (see `cut_files`).
    pub(crate) static TRUNCATION_CRASH_STEP: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// A simulated crash point of a truncation (tests only; nothing otherwise).
fn crash_point(step: u32) -> Result<(), Error> {
    #[cfg(test)]
    if TRUNCATION_CRASH_STEP.with(std::cell::Cell::get) == Some(step) {
        return Err(Error::Offline(format!("simulated crash at truncation step {step}")));
    }
    let _ = step;
    Ok(())
}

/// A log's state as recovered from its directory: what `open` starts from, and what a
/// truncation rebuilds after cutting the files.
struct Loaded {
    segments: BTreeMap<Offset, Segment>,
    log_start: Offset,
    log_end: Offset,
    epochs: EpochCache,
    producers: ProducerStateTable,
    aborted: AbortedTxnIndex,
    /// The clean-shutdown marker is there (it stays until the first change).
    clean: bool,
    /// The directory held no segment file.
    fresh: bool,
    /// The cleaner's checkpoint, if the log was ever cleaned (or took a replicated gap).
    cleaner_checkpoint: Option<Offset>,
}

/// Recovers the log in `dir` (creating the directory if missing): every segment (the tail one
/// validated whole unless the log was closed cleanly), the log start, the leader epochs, the
/// producer state and aborted transactions. Files are opened through `files` and left idle in
/// it (a sealed segment's direct descriptor closed); an empty directory gets an empty segment
/// whose file the first append creates.
async fn load(dir: &Path, tp: &TopicPartition, config: &LogConfig, files: &FileCache) -> Result<Loaded, Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    // A clean's swap files first: a decided swap is finished, an undecided one forgotten.
    cleaner_files::recover_swaps(dir)?;
    let cleaner_checkpoint = cleaner_files::read_checkpoint(dir);
    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    let clean = marker.exists();
    let mut bases: Vec<Offset> = std::fs::read_dir(dir)
        .map_err(Error::io(format!("listing {}", dir.display())))?
        .filter_map(|entry| entry.ok()?.file_name().to_str().and_then(parse_segment_name))
        .collect();
    bases.sort();
    if !clean && !bases.is_empty() {
        info!(%tp, segments = bases.len(), "no clean-shutdown marker: recovering");
    }
    let size_max = crate::limits::BATCH_BYTES_MAX as usize;
    let mut epochs = EpochCache::load(dir);
    let now_ms = Timestamp::now().0;
    let mut segments = BTreeMap::new();
    let mut cut_after = None;
    for (i, &base) in bases.iter().enumerate() {
        if cut_after.is_some() {
            warn!(%tp, segment = %base, "deleting segment after a damaged one");
            remove_segment_files(dir, base);
            continue;
        }
        let segment_files = files.segment(segment_file(dir, base, "log"));
        let path = segment_files.path(FileKind::Log);
        let file = segment_files
            .direct(FileKind::Log, Create::No)
            .await
            .map_err(Error::io(format!("opening {}", path.display())))?;
        let file_size = sio::file_size(&file).await.map_err(Error::io(format!("sizing {}", path.display())))?;
        let index_bytes = std::fs::read(segment_file(dir, base, "index")).unwrap_or_default();
        let time_bytes = std::fs::read(segment_file(dir, base, "timeindex")).unwrap_or_default();
        let rules = RecoveryRules {
            index_interval_bytes: config.index_interval_bytes,
            // A compacted log has gaps, and so does one that was ever cleaned (its policy may
            // have changed since) or took a leader's gaps (both leave the checkpoint file).
            contiguous: !config.cleanup_policy.compact && cleaner_checkpoint.is_none(),
            epoch_max: epochs.latest(),
            full_scan: !clean && i + 1 == bases.len(),
        };
        let recovered =
            segment::recover(segment_files, file.shared(), base, file_size, &index_bytes, &time_bytes, size_max, rules)
                .await
                .map_err(Error::io(format!("recovering {}", path.display())))?;
        let mut seg = recovered.segment;
        if seg.size == 0 || seg.rolled_at_ms <= 0 {
            seg.rolled_at_ms = now_ms;
        }
        if let Some((position, why)) = &recovered.damage {
            warn!(%tp, segment = %base, position, cut_bytes = file_size - position, reason = ?why,
                    "recovery cut the segment at its first invalid batch");
            if i + 1 < bases.len() {
                cut_after = Some(base);
            }
        }
        if recovered.valid_size < file_size {
            sio::truncate(&file, recovered.valid_size)
                .await
                .map_err(Error::io(format!("cutting {}", path.display())))?;
        }
        drop(file);
        let is_last = i + 1 == bases.len() || cut_after.is_some();
        if !is_last {
            // As the seal wrote them; rewritten only if the files say otherwise (damaged, cut,
            // or from before a crash), so a restart rewrites nothing that is whole.
            seg.push_time_entry();
            let (index, time) = (seg.index.encode_all(), seg.time_index.encode_all());
            if index != index_bytes || time != time_bytes {
                write_indexes(&seg.files, index, time).await?;
            }
            seg.sealed = true;
        }
        // Recovery is done with it: a partition nobody touches after the open holds no
        // descriptor (the flusher reopens the tail segment at its first write).
        seg.files.release(Access::Direct(FileKind::Log));
        segments.insert(base, seg);
    }
    let checkpoint_start = read_log_start(dir);
    let first_base = segments.keys().next().copied();
    let log_start = match first_base {
        Some(base) => checkpoint_start.map_or(base, |c| c.max(base)),
        None => checkpoint_start.unwrap_or(Offset::ZERO),
    };
    let fresh = segments.is_empty();
    if fresh {
        let files = files.segment(segment_file(dir, log_start, "log"));
        segments.insert(log_start, Segment::new(log_start, now_ms, files));
    }
    let (log_end, log_start) = {
        let last = segments.values().next_back().map_or(log_start, |s| s.next_offset);
        (last, log_start.min(last))
    };
    epochs.truncate_from(log_end);
    epochs.write_now().map_err(Error::io("rewriting the leader epoch checkpoint"))?;
    let (producers, aborted) = rebuild_producer_state(dir, tp, &segments, log_start, log_end).await?;
    Ok(Loaded { segments, log_start, log_end, epochs, producers, aborted, clean, fresh, cleaner_checkpoint })
}

pub(crate) fn remove_segment_files(dir: &Path, base: Offset) {
    for extension in ["log", "index", "timeindex"] {
        let path = segment_file(dir, base, extension);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(path = %path.display(), error = %e, "could not remove segment file");
        }
    }
}

/// The aborted-transaction index entry for `completed`, an aborted transaction `table` has
/// just ended (Kafka's rule for its last stable offset: the oldest other open transaction's
/// first offset, else the offset after the marker).
fn aborted_entry(completed: &CompletedTxn, table: &ProducerStateTable) -> AbortedTxn {
    AbortedTxn {
        producer_id: completed.producer_id,
        first_offset: completed.first_offset,
        last_offset: completed.last_offset,
        last_stable_offset: table.first_unstable_offset().unwrap_or(completed.last_offset.plus(1)),
    }
}

/// The producer state and the aborted-transaction index after the whole recovered log: the
/// newest usable snapshot and the index file's entries below it, then every batch after it
/// replayed from the segment files (headers only, plus the record of each marker). Without a
/// snapshot (a log from before producer state existed, or snapshots lost), or without a usable
/// index file beside one (a log from before the index, or the file lost), that is the whole
/// log, once: the result is persisted straight away.
async fn rebuild_producer_state(
    dir: &Path,
    tp: &TopicPartition,
    segments: &BTreeMap<Offset, Segment>,
    log_start: Offset,
    log_end: Offset,
) -> Result<(ProducerStateTable, AbortedTxnIndex), Error> {
    let (mut table, mut from) = producer_state::load_snapshot(dir, log_end);
    let mut aborted = match AbortedTxnIndex::load(dir) {
        Some(index) => index,
        None => {
            if from.is_some() {
                warn!(%tp, "no usable aborted-transaction index beside the producer-state snapshot: \
                    replaying the whole log");
                table = ProducerStateTable::default();
                from = None;
            }
            AbortedTxnIndex::default()
        }
    };
    let start = from.unwrap_or(Offset::ZERO);
    // Replay re-derives the entries of the markers it meets; those from before the log start
    // concern records no reader can reach.
    aborted.truncate_from(start);
    aborted.drop_below(log_start);
    if start >= log_end {
        return Ok((table, aborted));
    }
    let now = Timestamp::now();
    let size_max = crate::limits::BATCH_BYTES_MAX as usize;
    let mut replayed = 0u64;
    for (&base, segment) in segments.range(..log_end) {
        if segment.next_offset <= start {
            continue;
        }
        let path = segment.files.path(FileKind::Log);
        let file = segment
            .files
            .direct(FileKind::Log, Create::No)
            .await
            .map_err(Error::io(format!("opening {}", path.display())))?;
        let from_position = if start > base { u64::from(segment.index.lookup(base, start).position) } else { 0 };
        let mut found = Vec::new();
        let (_, end) = segment::scan(
            Source::Direct(&file),
            base,
            from_position,
            segment.flushed_size,
            size_max,
            segment::ScanCheck::Headers,
            |position, meta| {
                if meta.base_offset >= start && meta.summary.producer_id.0 >= 0 {
                    found.push((position, *meta));
                }
                std::ops::ControlFlow::Continue(())
            },
        )
        .await
        .map_err(Error::io(format!("replaying producer state from {}", path.display())))?;
        if let segment::ScanEnd::Invalid(e) = end {
            warn!(%tp, segment = %base, error = %e, "producer-state replay stopped at a bad batch");
        }
        for (position, meta) in found {
            let summary = meta.summary;
            if summary.control {
                let bytes = sio::read_at(&file, position, summary.size)
                    .await
                    .map_err(Error::io(format!("reading a marker in {}", path.display())))?;
                let marker = RecordBatch::parse_prefix(&bytes, size_max).ok().as_ref().and_then(parse_marker);
                if let Some((kind, coordinator_epoch)) = marker {
                    let completed = table.replay_marker(
                        summary.producer_id,
                        summary.producer_epoch,
                        coordinator_epoch,
                        kind,
                        meta.base_offset,
                        now,
                    );
                    if completed.aborted && completed.last_offset >= log_start {
                        aborted.push(aborted_entry(&completed, &table));
                    }
                }
            } else {
                table.replay(&summary, meta.base_offset, now);
            }
            replayed += 1;
        }
        drop(file);
        segment.files.release(Access::Direct(FileKind::Log));
    }
    info!(%tp, from = %start, to = %log_end, batches = replayed, producers = table.len(), aborted = aborted.len(),
        "producer state rebuilt");
    if from.is_none() {
        // As at a roll: the index before the snapshot.
        let written =
            aborted.persist(dir).and_then(|()| producer_state::write_snapshot(dir, log_end, &table.encode_snapshot()));
        if let Err(e) = written {
            warn!(%tp, error = %e, "could not write the aborted-transaction index or the producer-state snapshot");
        }
    }
    Ok((table, aborted))
}

fn read_log_start(dir: &Path) -> Option<Offset> {
    let text = std::fs::read_to_string(dir.join(LOG_START_FILE)).ok()?;
    text.trim().parse().ok().map(Offset)
}

pub(crate) fn write_log_start(dir: &Path, offset: Offset) -> std::io::Result<()> {
    sio::write_atomically(&dir.join(LOG_START_FILE), format!("{}\n", offset.0).as_bytes())
}

/// The flusher: one task per log, the only writer of its files. It opens the active segment's
/// file at its first write (so a log nobody appends to holds no descriptor).
async fn run_flusher(state: Rc<RefCell<LogState>>) {
    let (work, mode) = {
        let state = state.borrow();
        (state.work.clone(), state.config.flush_mode)
    };
    let mut active: Option<ActiveFiles> = None;
    let mut last_sync = Instant::now();
    let mut unsynced = false;
    loop {
        let has_work = || {
            let state = state.borrow();
            !state.pending.is_empty() || state.closing || state.truncating
        };
        if let (FlushMode::Interval(every), true) = (mode, unsynced) {
            let wait = every.saturating_sub(last_sync.elapsed());
            let woke = futures_lite::future::or(
                async {
                    work.wait_until(has_work).await;
                    true
                },
                async {
                    glommio::timer::sleep(wait).await;
                    false
                },
            )
            .await;
            if !woke {
                if let Err(e) = sync_active(&state, active.as_ref()).await {
                    state.borrow_mut().fail(&e);
                    return;
                }
                unsynced = false;
                last_sync = Instant::now();
                continue;
            }
        } else {
            work.wait_until(has_work).await;
        }
        let batch: Vec<PendingWrite> = state.borrow_mut().pending.drain(..).collect();
        if !batch.is_empty() {
            if let Err(e) = flush(&state, &mut active, batch, mode).await {
                state.borrow_mut().fail(&e);
                return;
            }
            unsynced = mode != FlushMode::Sync;
            if let FlushMode::Interval(every) = mode
                && last_sync.elapsed() >= every
            {
                if let Err(e) = sync_active(&state, active.as_ref()).await {
                    state.borrow_mut().fail(&e);
                    return;
                }
                unsynced = false;
                last_sync = Instant::now();
            }
        }
        let closing = {
            let state = state.borrow();
            (state.closing || state.truncating) && state.pending.is_empty()
        };
        if closing {
            if let Some(files) = active.take() {
                if let Err(e) = files.seal(&state).await {
                    state.borrow_mut().fail(&e);
                    return;
                }
                let mut state = state.borrow_mut();
                state.durable_end = state.flushed_end;
                state.acknowledged();
            }
            return;
        }
    }
}

/// Before a write to a segment file: the leader epochs its batches may carry go to the
/// checkpoint (see `epochs.rs`); before the first write since open (or a cut), the
/// clean-shutdown marker goes, so a crash from now on recovers the tail segment whole; and a
/// segment file created since the directory was last synced (`name_unsynced`) gets a durable
/// name. One directory fsync covers all three (`DirChange`).
fn prepare_segment_write(state: &RefCell<LogState>, name_unsynced: bool) -> Result<(), Error> {
    let mut state = state.borrow_mut();
    state.changed = true;
    let mut epochs = state.epochs.unwritten();
    if epochs.is_none() && !state.clean_marker && !name_unsynced {
        return Ok(());
    }
    let mut change = DirChange::default();
    if let Some(unwritten) = &mut epochs {
        change.replace.push((unwritten.path.clone(), std::mem::take(&mut unwritten.contents)));
    }
    if state.clean_marker {
        change.remove.push(state.dir.join(CLEAN_SHUTDOWN_FILE));
    }
    change.apply(&state.dir).map_err(Error::io(format!("updating {} before a segment write", state.dir.display())))?;
    if let Some(unwritten) = &epochs {
        state.epochs.written(unwritten);
    }
    state.clean_marker = false;
    Ok(())
}

async fn sync_active(state: &RefCell<LogState>, active: Option<&ActiveFiles>) -> Result<(), Error> {
    if let Some(files) = active {
        files.log.sync().await.map_err(Error::io("fdatasync of segment"))?;
    }
    let mut state = state.borrow_mut();
    state.stats.syncs += 1;
    state.durable_end = state.flushed_end;
    state.acknowledged();
    Ok(())
}

/// Writes `batch` (in log order, possibly spanning segments), sealing the previous segment and
/// opening (creating) the next one's file at a roll, or the active one's at the first write.
async fn flush(
    state: &Rc<RefCell<LogState>>,
    active: &mut Option<ActiveFiles>,
    batch: Vec<PendingWrite>,
    mode: FlushMode,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut rest = &batch[..];
    while let Some(first) = rest.first() {
        let segment_base = first.segment_base;
        let run = rest.iter().take_while(|w| w.segment_base == segment_base).count();
        let (now, later) = rest.split_at(run);
        rest = later;
        if active.as_ref().is_none_or(|files| files.base != segment_base) {
            if let Some(files) = active.take() {
                let sealed_base = files.base;
                files.seal(state).await?;
                let mut state = state.borrow_mut();
                state.durable_end = state.flushed_end;
                if let Some(segment) = state.segments.get_mut(&sealed_base) {
                    segment.sealed = true;
                }
            }
            *active = Some(ActiveFiles::open(state, segment_base).await?);
        }
        let Some(files) = active.as_mut() else { unreachable!("active segment files were just set") };
        prepare_segment_write(state, files.name_unsynced)?;
        files.name_unsynced = false;
        let chunks: Vec<Bytes> = now.iter().map(|w| w.bytes.clone()).collect();
        if mode == FlushMode::Sync {
            // One write with its own sync where the group fits one (see `write_synced`).
            files.log.write_synced(&chunks).await.map_err(Error::io("writing and syncing segment"))?;
            state.borrow_mut().stats.syncs += 1;
        } else {
            files.log.write(&chunks).await.map_err(Error::io("writing segment"))?;
        }
        state.borrow_mut().stats.writes += 1;
        let next = now.last().map_or(segment_base, |w| w.next_offset);
        {
            let mut state = state.borrow_mut();
            if let Some(segment) = state.segments.get_mut(&segment_base) {
                segment.flushed_size = files.log.written();
                segment.flushed_next_offset = next;
            }
            state.flushed_end = next;
            if mode == FlushMode::Sync {
                state.durable_end = next;
            }
            state.cache.set_evictable_end(next);
            state.acknowledged();
        }
    }
    let elapsed = started.elapsed();
    if elapsed > SLOW_FLUSH {
        // A slow disk makes every partition's flush slow at once: one line a second per shard.
        SLOW_FLUSH_LOG.with(|log| {
            if let Some(suppressed) = log.allow() {
                let tp = &state.borrow().topic_partition;
                warn!(%tp, batches = batch.len(), ?elapsed, slow_flushes_since_last_line = suppressed, "slow flush");
            }
        });
    }
    Ok(())
}

/// A flush (write and fdatasync) taking longer than this is logged.
const SLOW_FLUSH: Duration = Duration::from_millis(500);

thread_local! {
    /// The shard's slow-flush log line (each shard is a thread).
    static SLOW_FLUSH_LOG: crate::limits::LogThrottle = crate::limits::LogThrottle::new();
}

impl Drop for PartitionLog {
    /// Without `close`, stop the flusher where it is, as a crash would.
    fn drop(&mut self) {
        if let Some(flusher) = self.flusher.borrow_mut().take() {
            flusher.cancel();
        }
    }
}
