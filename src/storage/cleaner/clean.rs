//! One clean of one partition log (Kafka's `Cleaner.doClean`), as [`PartitionLog`] methods.
//!
//! 1. **Map.** The dirty section (from the first dirty offset to the first uncleanable one) is
//!    read in offset order, and each key of a record that is not in an aborted transaction is
//!    mapped to its offset, until the map is full (then the clean covers only the batches
//!    mapped whole: the map's latest offset).
//! 2. **Rewrite.** Every segment from the log's first one up to the one holding the map's
//!    latest offset is rewritten, in groups of consecutive segments whose sizes add up to at
//!    most `segment.bytes` (and whose offsets stay within one segment's u32 range), each group
//!    into one segment named after its first. A record stays if it is its key's latest (or lies
//!    past the map's latest offset) and is not a tombstone past its batch's delete horizon; a
//!    record without a key goes; an aborted transaction's records go; markers go as `txn.rs`
//!    says. The batch filter does the bytes.
//! 3. **Swap**, group by group, as `files.rs` says, then the checkpoint of the first dirty
//!    offset.
//!
//! Concurrency: the log keeps taking appends and serving reads. The clean reads the old
//! segment files through their own descriptors and touches the log's state only in short
//! borrows. After every await it checks that the log was not truncated, reset, closed or
//! failed meanwhile (and gives up if it was); the swap of a group is one borrow with no await,
//! which also checks that retention left the group's segments in place.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, warn};

use super::dedupe_map::DedupeMap;
use super::files::{self, cleaned_file};
use super::io_budget::IoBudget;
use super::report::{CleanReport, Cleanable};
use super::txn::TxnTracker;
use crate::limits::{
    BATCH_BYTES_MAX, CLEANER_READ_BYTES, CLEANER_WRITE_BYTES, DECOMPRESSED_BATCH_BYTES_MAX, OFFSET_INDEX_ENTRY_BYTES,
    PREALLOCATE_BYTES, TIME_INDEX_ENTRY_BYTES,
};
use crate::model::filter::{FilterOptions, Filtered, Keep, delete_horizon, filter_batch};
use crate::model::{
    BatchError, ControlType, Offset, ProducerId, Record, RecordBatch, RecordIter, Timestamp, batch_size_from_prefix,
    parse_marker,
};
use crate::storage::appender::{self, Extent, SegmentAppender, Target};
use crate::storage::error::Error;
use crate::storage::file_cache::{Create, DirectFile, FileKind, SegmentFiles};
use crate::storage::io as sio;
use crate::storage::log::{LogState, PartitionLog, mark_sparse};
use crate::storage::segment::{BatchMeta, Segment, segment_file};

/// A segment as the clean found it: enough to read it without the log's state.
#[derive(Clone)]
struct OldSegment {
    base: Offset,
    /// Opened when the clean reads it (see `BatchReader`).
    files: Rc<SegmentFiles>,
    size: u64,
    next_offset: Offset,
    /// Entries in its offset and time indexes (the most the cleaned part can need).
    index_entries: usize,
    time_entries: usize,
}

/// What a clean takes from the log's state when it starts.
struct Plan {
    cleanable: Cleanable,
    /// Every sealed segment below the first uncleanable offset, from the log's first.
    segments: Vec<OldSegment>,
    /// The base of the first segment after `segments` (the first uncleanable offset, unless a
    /// segment could not be read).
    segments_end: Offset,
    truncations: u64,
    tp: crate::model::TopicPartition,
    dir: std::path::PathBuf,
    segment_bytes: u64,
    /// `segment.index.bytes` as entries of the offset index and of the time index.
    index_entries_max: (usize, usize),
    index_interval_bytes: u32,
    delete_retention_ms: u64,
    /// The aborted transactions the cleanable section overlaps.
    aborted: Vec<crate::storage::txn_index::AbortedTxn>,
    /// Each producer's last data offset (if it has one) and epoch: its last batch stays (as an
    /// empty header if need be), so a rebuild of the producer state from the log keeps them.
    producers: HashMap<ProducerId, (Option<Offset>, i16)>,
}

impl PartitionLog {
    /// How cleanable the log is at `now`; `None` unless `cleanup.policy` has `compact`.
    pub fn cleanable(&self, now: Timestamp) -> Option<Cleanable> {
        let state = self.state.borrow();
        state.config.cleanup_policy.compact.then(|| cleanable_in(&state, now))
    }

    /// The last clean's report and when it ended, if the log was cleaned since it opened.
    pub fn last_clean(&self) -> Option<(Timestamp, CleanReport)> {
        self.state.borrow().last_clean.clone()
    }

    /// One clean (see the module docs), yielding to other tasks between batches and spending
    /// `budget` for every byte read and written. `Ok(None)` if there was nothing to clean (the
    /// log is not compacted, has no dirty sealed segment, is being truncated, or is being
    /// cleaned already); `Err(Truncated | Closed | Offline)` if the log changed under it, which
    /// leaves the log as it was; `Err(InvalidBatch | Io)` for a batch that does not parse (the
    /// log stays as it was).
    pub async fn clean(
        &self,
        map: &mut DedupeMap,
        budget: &IoBudget,
        now: Timestamp,
    ) -> Result<Option<CleanReport>, Error> {
        let started = Instant::now();
        let Some(_running) = Running::start(&self.state) else { return Ok(None) };
        let Some(plan) = self.plan(now) else { return Ok(None) };
        let mut report = CleanReport {
            start: plan.segments.first().map_or(plan.cleanable.first_dirty, |s| s.base),
            end: plan.cleanable.first_dirty,
            segments_before: 0,
            segments_after: 0,
            bytes_read: 0,
            bytes_before: 0,
            bytes_after: 0,
            records_read: 0,
            records_kept: 0,
            tombstones_removed: 0,
            aborted_removed: 0,
            took: started.elapsed(),
        };
        let built = self.build_map(&plan, map, budget, &mut report).await;
        if let Err(e) = &built
            && self.retention_raced(&plan, e)
        {
            return Ok(None);
        }
        let Some(end) = built? else {
            warn!(tp = %self.state.borrow().topic_partition, capacity = map.capacity(),
                "the cleaner's map cannot hold the keys of one batch; not cleaning");
            return Ok(None);
        };
        report.end = end;
        let mut cleaning = Cleaning {
            map,
            now,
            horizon: Timestamp(now.0.saturating_add(i64::try_from(plan.delete_retention_ms).unwrap_or(i64::MAX))),
            txns: TxnTracker::new(plan.aborted.clone()),
            producers: &plan.producers,
            upper: plan.segments_end,
            emptied_aborts: Vec::new(),
        };
        let to_clean: Vec<OldSegment> = plan.segments.iter().filter(|s| s.base < end).cloned().collect();
        // Before the first gap: a crash before the checkpoint must not leave gaps that a
        // reopen under another policy would take for damage.
        mark_sparse(&mut self.state.borrow_mut())?;
        let mut rest = &to_clean[..];
        while !rest.is_empty() {
            let cleaned = self.clean_group(&plan, rest, &mut cleaning, budget, &mut report).await;
            if let Err(e) = &cleaned
                && self.retention_raced(&plan, e)
            {
                return Ok(None);
            }
            let (segment, taken) = cleaned?;
            let (group, later) = rest.split_at(taken);
            if !self.swap(&plan, group, segment)? {
                debug!(tp = %plan.tp, "retention deleted segments under the clean; it stops here");
                return Ok(None);
            }
            report.segments_before += group.len();
            report.segments_after += 1;
            rest = later;
        }
        files::crash_point(7)?;
        files::write_checkpoint(&plan.dir, end)?;
        report.took = started.elapsed();
        let mut state = self.state.borrow_mut();
        state.cleaner_checkpoint = Some(end);
        for &(producer_id, marker) in &cleaning.emptied_aborts {
            state.aborted.remove(producer_id, marker);
        }
        state.last_clean = Some((Timestamp::now(), report.clone()));
        // The scheduler logs each clean at info; this is the storage view, for debugging.
        debug!(tp = %state.topic_partition, start = %report.start, end = %report.end,
            segments_before = report.segments_before, segments_after = report.segments_after,
            bytes_before = report.bytes_before, bytes_after = report.bytes_after,
            records_read = report.records_read, records_kept = report.records_kept,
            tombstones_removed = report.tombstones_removed, aborted_removed = report.aborted_removed,
            took = ?report.took, "log cleaned (storage)");
        Ok(Some(report))
    }

    fn plan(&self, now: Timestamp) -> Option<Plan> {
        let state = self.state.borrow();
        if !state.config.cleanup_policy.compact || self.interrupted(&state, state.truncations).is_some() {
            return None;
        }
        let cleanable = cleanable_in(&state, now);
        if cleanable.first_dirty >= cleanable.first_uncleanable {
            return None;
        }
        let segments: Vec<OldSegment> = state
            .segments
            .range(..cleanable.first_uncleanable)
            // Consecutive segments only: a group never spans one it cannot read (all below the
            // first uncleanable offset are sealed, so in their files).
            .map_while(|(&base, s)| {
                s.sealed.then_some(())?;
                Some(OldSegment {
                    base,
                    files: s.files.clone(),
                    size: s.flushed_size,
                    next_offset: s.flushed_next_offset,
                    index_entries: s.index.entries().len(),
                    time_entries: s.time_index.entries().len(),
                })
            })
            .collect();
        let first = segments.first().map_or(cleanable.first_dirty, |s| s.base);
        let segments_end = match segments.last() {
            Some(last) => state.segments.range(last.base.plus(1)..).next().map_or(state.log_end, |(&b, _)| b),
            None => first,
        }
        .min(cleanable.first_uncleanable);
        let producers = state
            .producers
            .producers()
            .map(|(id, entry)| (id, (entry.batches.back().map(|b| b.last_offset), entry.epoch)))
            .collect();
        Some(Plan {
            cleanable,
            segments,
            segments_end,
            truncations: state.truncations,
            tp: state.topic_partition.clone(),
            dir: state.dir.clone(),
            segment_bytes: u64::from(state.config.segment_bytes),
            index_entries_max: (
                state.config.index_entries_max(OFFSET_INDEX_ENTRY_BYTES),
                state.config.index_entries_max(TIME_INDEX_ENTRY_BYTES),
            ),
            index_interval_bytes: state.config.index_interval_bytes,
            delete_retention_ms: state.config.delete_retention_ms,
            aborted: state.aborted.overlapping(first, cleanable.first_uncleanable),
            producers,
        })
    }

    /// Why the clean must stop: the log failed, is closing, or was (or is being) truncated
    /// since the clean began.
    fn interrupted(&self, state: &LogState, truncations: u64) -> Option<Error> {
        if let Some(reason) = &state.failed {
            return Some(Error::Offline(reason.clone()));
        }
        if state.closing {
            return Some(Error::Closed);
        }
        (state.truncating || state.truncations != truncations).then_some(Error::Truncated)
    }

    /// Whether `error` is a read of a segment file retention deleted since the plan (the clean
    /// opens each segment when it comes to it): then the clean stops, as a swap that finds its
    /// group gone does.
    fn retention_raced(&self, plan: &Plan, error: &Error) -> bool {
        let missing = matches!(error, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
        let state = self.state.borrow();
        let gone = missing && plan.segments.iter().any(|s| !state.segments.contains_key(&s.base));
        if gone {
            debug!(tp = %plan.tp, "retention deleted a segment under the clean; it stops here");
        }
        gone
    }

    fn check(&self, truncations: u64) -> Result<(), Error> {
        match self.interrupted(&self.state.borrow(), truncations) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Step 1: maps the dirty section's keys; returns the offset after the last batch mapped
    /// whole, `None` if not even the first batch fit.
    async fn build_map(
        &self,
        plan: &Plan,
        map: &mut DedupeMap,
        budget: &IoBudget,
        report: &mut CleanReport,
    ) -> Result<Option<Offset>, Error> {
        let mut pacer = Pacer::new();
        while !map.clear_some(MAP_CLEAR_SLOTS) {
            pacer.pace().await;
        }
        let first_dirty = plan.cleanable.first_dirty;
        // Transactions aborted before the dirty section would stay "under way" for the whole
        // walk, their markers being skipped with the clean segments.
        let mut txns = TxnTracker::new(plan.aborted.iter().filter(|t| t.last_offset >= first_dirty).copied().collect());
        let dirty: Vec<&OldSegment> = plan.segments.iter().filter(|s| s.next_offset > first_dirty).collect();
        for (i, segment) in dirty.iter().enumerate() {
            let mut reader = BatchReader::new(segment);
            let mut full = false;
            'batches: while let Some((_, bytes)) = reader.next(budget).await? {
                self.check(plan.truncations)?;
                let batch = parse(&bytes)?;
                // A marker only moves the tracker on; its own fate is decided when rewriting.
                let aborted = if batch.is_control() {
                    txns.on_control(&batch);
                    false
                } else {
                    txns.on_batch(&batch)
                };
                if batch.last_offset() < first_dirty {
                    continue;
                }
                if !batch.is_control() && !aborted {
                    let area = batch.decompressed_records(DECOMPRESSED_BATCH_BYTES_MAX)?;
                    for record in RecordIter::with_records(&batch, &area) {
                        let record = record.map_err(|_| malformed(&batch))?;
                        if let Some(key) = record.key
                            && record.offset >= first_dirty
                            && !map.put(key, record.offset)
                        {
                            full = true;
                            break 'batches;
                        }
                    }
                }
                map.set_latest_offset(batch.last_offset());
                pacer.pace().await;
            }
            report.bytes_read += reader.read;
            if full {
                break;
            }
            // A segment mapped whole covers its offsets up to the next one's base, gaps included
            // (Kafka's fast-forward), so the next clean does not start inside a gap.
            let next_start = dirty.get(i + 1).map_or(plan.segments_end, |next| next.base);
            map.set_latest_offset(next_start.plus(-1));
        }
        Ok(map.latest_offset().map(|latest| latest.plus(1)))
    }

    /// Step 2 for one group: cleans the first of `segments` and as many of the next as still
    /// fit (see [`fits`]) into one segment, written as `.cleaned` files (synced). Returns its
    /// in-memory description and how many old segments it replaces.
    async fn clean_group(
        &self,
        plan: &Plan,
        segments: &[OldSegment],
        cleaning: &mut Cleaning<'_>,
        budget: &IoBudget,
        report: &mut CleanReport,
    ) -> Result<(Segment, usize), Error> {
        let Some(base) = segments.first().map(|s| s.base) else { unreachable!("a group has a segment") };
        let dir = &plan.dir;
        let result = async {
            let path = cleaned_file(dir, base, "log");
            let context = || format!("writing {}", path.display());
            let file = std::rc::Rc::new(sio::open_rw(&path, true).await.map_err(Error::io(context()))?);
            sio::truncate(&file, 0).await.map_err(Error::io(context()))?;
            let mut appender = SegmentAppender::resume(Target::File(file), 0, Extent::Fixed(PREALLOCATE_BYTES))
                .await
                .map_err(Error::io(context()))?;
            // Its files by the name they take at the swap (nothing opens them before).
            let files = self.state.borrow().files.segment(segment_file(dir, base, "log"));
            let mut segment = Segment::new(base, cleaning.now.0, files);
            let mut pending: Vec<Bytes> = Vec::new();
            let mut pending_bytes = 0usize;
            let mut first_timestamp = None;
            let mut taken = 0usize;
            let mut pacer = Pacer::new();
            for old in segments {
                if taken > 0 && !fits(&segment, old, plan) {
                    break;
                }
                taken += 1;
                report.bytes_before += old.size;
                let mut reader = BatchReader::new(old);
                while let Some((_, bytes)) = reader.next(budget).await? {
                    self.check(plan.truncations)?;
                    let batch = parse(&bytes)?;
                    let kept = match cleaning.filter(&batch, report)? {
                        Filtered::Unchanged => bytes.clone(),
                        Filtered::Rewritten(rewritten) => rewritten.freeze(),
                        Filtered::Removed => continue,
                    };
                    let meta = BatchMeta::from_batch(&parse(&kept)?);
                    // The base offset lies outside the CRC: a damaged one must not reach the
                    // segment's ordering asserts.
                    let in_order = meta.base_offset >= segment.next_offset
                        && meta.next_offset.plus(-1).relative_to(base).is_some_and(|r| r < u32::MAX);
                    if !in_order {
                        let what = format!("batch at {} out of order in segment {}", meta.base_offset, old.base);
                        let damage = std::io::Error::new(std::io::ErrorKind::InvalidData, what);
                        return Err(Error::io(format!("cleaning {}", path.display()))(damage));
                    }
                    first_timestamp.get_or_insert(meta.base_timestamp);
                    segment.track_batch(segment.size, &meta, plan.index_interval_bytes);
                    pending_bytes += kept.len();
                    pending.push(kept);
                    if pending_bytes >= CLEANER_WRITE_BYTES {
                        appender.write(&pending).await.map_err(Error::io(context()))?;
                        budget.spend(pending_bytes as u64).await;
                        (pending, pending_bytes) = (Vec::new(), 0);
                    }
                    pacer.pace().await;
                }
                report.bytes_read += reader.read;
            }
            appender.write(&pending).await.map_err(Error::io(context()))?;
            budget.spend(pending_bytes as u64).await;
            appender.seal().await.map_err(Error::io(context()))?;
            segment.push_time_entry();
            for (extension, bytes) in
                [("index", segment.index.encode_all()), ("timeindex", segment.time_index.encode_all())]
            {
                write_index(&cleaned_file(dir, base, extension), bytes).await?;
            }
            // The old group's last modification carries over (retention ages a segment without
            // record timestamps by it).
            if let Some(last) = segments.get(taken.saturating_sub(1)) {
                keep_modified(&segment_file(dir, last.base, "log"), &path);
            }
            segment.flushed_size = segment.size;
            segment.flushed_next_offset = segment.next_offset;
            segment.sealed = true;
            if let Some(ts) = first_timestamp.filter(|ts| ts.0 > 0) {
                segment.rolled_at_ms = ts.0;
            }
            report.bytes_after += segment.size;
            files::crash_point(1)?;
            Ok((segment, taken))
        }
        .await;
        if let Err(e) = &result
            && !is_simulated_crash(e)
        {
            files::remove_cleaned(dir, base);
        }
        result
    }

    /// Step 3 for one group, in one borrow of the state: the files (see `files.rs`), then the
    /// segments in memory, and the batch cache forgets the old segments' batches.
    /// Returns false, swapping nothing, if retention deleted a segment of the group meanwhile.
    fn swap(&self, plan: &Plan, group: &[OldSegment], segment: Segment) -> Result<bool, Error> {
        let base = segment.base_offset;
        let mut state = self.state.borrow_mut();
        let interrupted = self.interrupted(&state, plan.truncations);
        let retained = group.iter().all(|old| state.segments.get(&old.base).is_some_and(|s| s.sealed));
        if interrupted.is_some() || !retained {
            drop(state);
            files::remove_cleaned(&plan.dir, base);
            return interrupted.map_or(Ok(false), Err);
        }
        let old_bases: Vec<Offset> = group.iter().map(|s| s.base).collect();
        // On an error the log goes on with the segments it has in memory (their descriptors
        // stay readable even if their files went); the next open, or a truncation's reload,
        // finishes a swap decided on disk or forgets one that was not.
        files::swap_in(&plan.dir, base, &old_bases)?;
        for old in &old_bases {
            state.segments.remove(old);
        }
        let end = state.segments.range(base.plus(1)..).next().map_or(segment.next_offset, |(&b, _)| b);
        state.segments.insert(base, segment);
        // Cached batches of the old segments would be served with their old positions.
        state.cache.drop_before(end);
        Ok(true)
    }
}

/// The longest the cleaner computes before it steps aside (see [`Pacer`]).
const CLEANER_SLICE: Duration = Duration::from_micros(500);
/// Map slots emptied between two checks of the pacer (about 1.5 MiB, well under a slice).
const MAP_CLEAR_SLOTS: usize = 64 * 1024;
/// How long it steps aside: any wait at all takes it off the run queue.
const CLEANER_STEP_ASIDE: Duration = Duration::from_micros(1);

/// Keeps the cleaner's CPU-bound stretches (hashing keys, filtering batches) under
/// [`CLEANER_SLICE`]. `yield_if_needed` is not enough: glommio preempts a task queue only when
/// its preempt timer (100 ms) fires, and until the shard's task queues are all idle it does not
/// poll for I/O, so a clean held new requests for up to 100 ms at a time. A short timer sleep
/// takes the cleaner off the run queue: the executor goes round its loop, polls the rings and
/// runs whatever requests arrived, then the cleaner again. (A shorter preempt timer for the
/// whole shard would do the same, but glommio 0.9's run loop can then spin without running any
/// task when a poll outlasts the timer; seen under load.)
struct Pacer {
    since: Instant,
}

impl Pacer {
    fn new() -> Self {
        Pacer { since: Instant::now() }
    }

    async fn pace(&mut self) {
        if self.since.elapsed() >= CLEANER_SLICE {
            glommio::timer::sleep(CLEANER_STEP_ASIDE).await;
            self.since = Instant::now();
        }
    }
}

/// Marks a log as being cleaned while it lives, so that a second clean of it does nothing
/// (dropped with the clean's future, however it ends).
struct Running<'a>(&'a std::cell::RefCell<LogState>);

impl<'a> Running<'a> {
    fn start(state: &'a std::cell::RefCell<LogState>) -> Option<Running<'a>> {
        let mut borrowed = state.borrow_mut();
        if borrowed.cleaning {
            return None;
        }
        borrowed.cleaning = true;
        Some(Running(state))
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().cleaning = false;
    }
}

/// Whether `error` is a simulated crash (tests): the files are left as a crash would.
fn is_simulated_crash(error: &Error) -> bool {
    cfg!(test) && matches!(error, Error::Offline(reason) if reason.starts_with("simulated crash"))
}

/// The per-record and per-batch rules of step 2.
struct Cleaning<'a> {
    map: &'a DedupeMap,
    now: Timestamp,
    /// The delete horizon a batch gets when a clean first keeps a tombstone of it.
    horizon: Timestamp,
    txns: TxnTracker,
    producers: &'a HashMap<ProducerId, (Option<Offset>, i16)>,
    /// The first uncleanable offset.
    upper: Offset,
    /// Abort markers whose transaction has no record left (producer, marker offset): their
    /// aborted-transaction index entries go once the clean is done.
    emptied_aborts: Vec<(ProducerId, Offset)>,
}

impl Cleaning<'_> {
    /// What becomes of `batch` (Kafka's `checkBatchRetention` and `shouldRetainRecord`).
    fn filter(&mut self, batch: &RecordBatch<'_>, report: &mut CleanReport) -> Result<Filtered, Error> {
        let control = batch.is_control();
        let discardable = if control { self.txns.on_control(batch) } else { self.txns.on_batch(batch) };
        if discardable && matches!(parse_marker(batch), Some((ControlType::Abort, _))) {
            self.emptied_aborts.push((batch.producer_id(), batch.base_offset()));
        }
        let horizon = delete_horizon(batch);
        let discard = if control { discardable && horizon.is_some_and(|h| h <= self.now) } else { discardable };
        // The batch that ends right at the uncleanable section stays too (Kafka's rule), so the
        // cleaned part still says where it ends.
        let keep_empty_header = self.is_last_of_producer(batch) || batch.next_offset() == self.upper;
        let count = u64::try_from(batch.records_count()).unwrap_or(0);
        report.records_read += count;
        if control && !discard {
            report.records_kept += count;
            // The first clean that finds a marker removable starts its delete horizon (and
            // only that one: the horizon counts from when its transaction is gone).
            if !discardable || horizon.is_some() {
                return Ok(Filtered::Unchanged);
            }
            let options = FilterOptions { delete_horizon: Some(self.horizon), keep_empty_header };
            return Ok(filter_batch(batch, &options, |_| Keep::Keep)?);
        }
        let options = FilterOptions { delete_horizon: Some(self.horizon), keep_empty_header };
        let (map, now) = (self.map, self.now);
        let mut tombstones = 0;
        let filtered = filter_batch(batch, &options, |record| {
            let keep = !discard && retain(map, horizon, now, record);
            if !keep && record.value.is_none() && !discard {
                tombstones += 1;
            }
            if keep { Keep::Keep } else { Keep::Drop }
        })?;
        report.tombstones_removed += tombstones;
        let kept = match &filtered {
            Filtered::Unchanged => count,
            Filtered::Rewritten(bytes) => parse(bytes).map_or(0, |b| u64::try_from(b.records_count()).unwrap_or(0)),
            Filtered::Removed => 0,
        };
        report.records_kept += kept;
        if discard && !control {
            report.aborted_removed += count.saturating_sub(kept);
        }
        Ok(filtered)
    }

    /// The batch holding its producer's last data offset, or the marker of its last epoch when
    /// it has no data offset (Kafka's rule, so a producer-state rebuild finds both).
    fn is_last_of_producer(&self, batch: &RecordBatch<'_>) -> bool {
        let id = batch.producer_id();
        id.0 >= 0
            && self.producers.get(&id).is_some_and(|&(last_data, epoch)| match last_data {
                Some(offset) => batch.last_offset() == offset,
                None => batch.is_control() && batch.header().producer_epoch.get() == epoch,
            })
    }
}

/// Whether a data record stays: it lies past what the map covers, or it is its key's latest
/// and not a tombstone whose batch's delete horizon has passed. Records without a key go.
fn retain(map: &DedupeMap, horizon: Option<Timestamp>, now: Timestamp, record: &Record<'_>) -> bool {
    if map.latest_offset().is_none_or(|latest| record.offset > latest) {
        return true;
    }
    let Some(key) = record.key else { return false };
    let latest = map.get(key).is_none_or(|offset| record.offset >= offset);
    latest && (record.value.is_some() || horizon.is_none_or(|h| now < h))
}

/// Whether old segment `next` may be cleaned into `cleaned` too: its whole size and index
/// entries (what its cleaned part may reach at most) still fit `segment.bytes`,
/// `segment.index.bytes` and u32 positions, and its offsets one segment's u32 relative range.
/// Kafka groups by the old segments' sizes; the cleaned size so far lets one clean merge many
/// more segments, never past those bounds.
fn fits(cleaned: &Segment, next: &OldSegment, plan: &Plan) -> bool {
    let size = cleaned.size + next.size;
    let span_ok = next.next_offset.plus(-1).relative_to(cleaned.base_offset).is_some_and(|r| r < u32::MAX);
    let (offsets_max, times_max) = plan.index_entries_max;
    let indexes_ok = cleaned.index.entries().len() + next.index_entries <= offsets_max
        && cleaned.time_index.entries().len() + next.time_entries <= times_max;
    span_ok && indexes_ok && size <= plan.segment_bytes && u32::try_from(size).is_ok()
}

/// Where a segment's first uncleanable offset and dirty section lie (Kafka's
/// `LogCleanerManager.cleanableOffsets`), at segment granularity.
pub(crate) fn cleanable_in(state: &LogState, now: Timestamp) -> Cleanable {
    let active_base = state.segments.keys().next_back().copied().unwrap_or(state.log_end);
    let first_dirty =
        state.cleaner_checkpoint.filter(|&c| c >= state.log_start && c <= active_base).unwrap_or(state.log_start);
    let lag_ms = i64::try_from(state.config.min_compaction_lag_ms).unwrap_or(i64::MAX);
    let young = |s: &Segment| lag_ms > 0 && s.max_timestamp.0 > now.0.saturating_sub(lag_ms);
    // The first segment that is not wholly below the high watermark and the last stable offset,
    // not sealed, or too young (from the dirty section on).
    let bound = state.last_stable_offset().min(state.high_watermark);
    let first_uncleanable = state
        .segments
        .iter()
        .find(|&(&base, s)| {
            base >= active_base || !s.sealed || s.next_offset > bound || (s.next_offset > first_dirty && young(s))
        })
        .map_or(active_base, |(&base, _)| base);
    let (mut clean_bytes, mut dirty_bytes, mut oldest_dirty_ms) = (0, 0, None);
    for (_, segment) in state.segments.range(..first_uncleanable) {
        if segment.next_offset <= first_dirty {
            clean_bytes += segment.size;
        } else {
            dirty_bytes += segment.size;
            oldest_dirty_ms.get_or_insert(segment.rolled_at_ms);
        }
    }
    let total = clean_bytes + dirty_bytes;
    let dirty_ratio = if total == 0 { 0.0 } else { dirty_bytes as f64 / total as f64 };
    Cleanable { first_dirty, first_uncleanable, clean_bytes, dirty_bytes, dirty_ratio, oldest_dirty_ms }
}

fn parse(bytes: &[u8]) -> Result<RecordBatch<'_>, Error> {
    let batch = RecordBatch::parse_prefix(bytes, BATCH_BYTES_MAX as usize)?;
    batch.validate_stored()?;
    Ok(batch)
}

fn malformed(batch: &RecordBatch<'_>) -> Error {
    Error::InvalidBatch(BatchError::CountMismatch {
        records_count: batch.records_count(),
        last_offset_delta: batch.header().last_offset_delta.get(),
    })
}

/// Gives `to` the modification time of `from`, as far as the filesystem lets it (a failure
/// only makes retention by modification time wait longer).
fn keep_modified(from: &std::path::Path, to: &std::path::Path) {
    let modified = std::fs::metadata(from).and_then(|m| m.modified());
    let set = modified.and_then(|t| std::fs::File::options().write(true).open(to)?.set_modified(t));
    if let Err(e) = set {
        warn!(path = %to.display(), error = %e, "could not carry the modification time over to a cleaned segment");
    }
}

async fn write_index(path: &std::path::Path, bytes: Vec<u8>) -> Result<(), Error> {
    let context = || format!("writing {}", path.display());
    let file = sio::open_rw(path, true).await.map_err(Error::io(context()))?;
    appender::write_whole(Rc::new(file), bytes).await.map_err(Error::io(context()))
}

/// Reads one segment's batches in order, [`CLEANER_READ_BYTES`] at a time (a larger batch in
/// one read of its own), spending the budget for each read. It takes the segment's direct
/// descriptor from the shard's cache at its first read and holds it (in use) until dropped.
struct BatchReader {
    files: Rc<SegmentFiles>,
    file: Option<DirectFile>,
    end: u64,
    window: Bytes,
    window_start: u64,
    at: usize,
    /// Bytes read so far.
    read: u64,
}

impl BatchReader {
    fn new(segment: &OldSegment) -> BatchReader {
        BatchReader {
            files: segment.files.clone(),
            file: None,
            end: segment.size,
            window: Bytes::new(),
            window_start: 0,
            at: 0,
            read: 0,
        }
    }

    /// The next batch and its position, `None` at the end.
    async fn next(&mut self, budget: &IoBudget) -> Result<Option<(u64, Bytes)>, Error> {
        loop {
            let here = self.window_start + self.at as u64;
            if here >= self.end {
                return Ok(None);
            }
            let rest = self.window.get(self.at..).unwrap_or_default();
            let need = match batch_size_from_prefix(rest) {
                Ok(size) if size > BATCH_BYTES_MAX as usize => {
                    return Err(BatchError::TooLarge { size, limit: BATCH_BYTES_MAX as usize }.into());
                }
                Ok(size) if size <= rest.len() => {
                    let batch = self.window.slice(self.at..self.at + size);
                    self.at += size;
                    return Ok(Some((here, batch)));
                }
                Ok(size) => size,
                Err(BatchError::Truncated { .. }) => crate::limits::BATCH_HEADER_BYTES,
                Err(e) => return Err(e.into()),
            };
            if !rest.is_empty() && here + need as u64 > self.end {
                return Err(BatchError::Truncated { have: rest.len(), need }.into());
            }
            let want = usize::try_from((self.end - here).min(need.max(CLEANER_READ_BYTES) as u64)).unwrap_or(need);
            let context =
                || format!("reading segment {} at {here} for the cleaner", self.files.path(FileKind::Log).display());
            if self.file.is_none() {
                self.file = Some(self.files.direct(FileKind::Log, Create::No).await.map_err(Error::io(context()))?);
            }
            let Some(file) = &self.file else { unreachable!("the file was just opened") };
            let read = sio::read_at(file, here, want).await.map_err(Error::io(context()))?;
            budget.spend(read.len() as u64).await;
            self.read += read.len() as u64;
            if read.len() <= rest.len() {
                return Err(BatchError::Truncated { have: read.len(), need }.into());
            }
            self.window = Bytes::copy_from_slice(&read);
            self.window_start = here;
            self.at = 0;
        }
    }
}
