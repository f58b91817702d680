//! A segment: one `<base offset>.log` file of batches with its `.index` and `.timeindex`, the
//! in-memory state that describes it, and the scan that walks its batches (for lookups and for
//! recovery).
//!
//! Invariants (asserted where they change):
//! - `base_offset ≤` every offset in the segment `< next_offset`;
//! - `flushed_size ≤ size`: bytes past `flushed_size` are not in the file yet and are served
//!   from the batch cache;
//! - a sealed segment takes no appends and its file size is its logical size.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::file_cache::SegmentFiles;
use super::io::{SharedFile, Source};
use super::offset_index::{IndexEntry, OffsetIndex};
use super::time_index::{TimeEntry, TimeIndex};
use crate::limits::{BATCH_HEADER_BYTES, SCAN_READ_BYTES};
use zerocopy::FromBytes;

use crate::model::{
    BatchError, BatchSummary, LeaderEpoch, Offset, RecordBatch, RecordBatchHeader, Timestamp, batch_size_from_prefix,
};

/// File name of a segment's log (`.log`), index (`.index`) or time index (`.timeindex`): the base
/// offset in 20 digits, as Kafka names them.
pub fn segment_file(dir: &Path, base: Offset, extension: &str) -> PathBuf {
    dir.join(format!("{:020}.{extension}", base.0))
}

/// Parses a `.log` file name back to its base offset.
pub fn parse_segment_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(Offset)
}

/// The in-memory description of one segment.
pub(crate) struct Segment {
    pub(crate) base_offset: Offset,
    /// Offset after the last batch appended (flushed or not).
    pub(crate) next_offset: Offset,
    /// Logical size including batches not yet written.
    pub(crate) size: u64,
    /// Bytes in the file, readable from disk.
    pub(crate) flushed_size: u64,
    /// Offset after the last batch in the file.
    pub(crate) flushed_next_offset: Offset,
    /// Its files, opened on demand through the shard's descriptor cache (the `.log` file does
    /// not exist until the flusher first writes to it).
    pub(crate) files: Rc<SegmentFiles>,
    pub(crate) index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    /// Log bytes since the last offset index entry.
    pub(crate) bytes_since_index: u64,
    /// Largest batch timestamp, and the base offset of the batch that carried it.
    pub(crate) max_timestamp: Timestamp,
    pub(crate) offset_of_max_timestamp: Offset,
    /// When the segment began, for `segment.ms` (first batch's timestamp, or creation time).
    pub(crate) rolled_at_ms: i64,
    pub(crate) sealed: bool,
}

impl Segment {
    /// A new, empty segment whose files are `files`.
    pub(crate) fn new(base_offset: Offset, now_ms: i64, files: Rc<SegmentFiles>) -> Self {
        Self {
            base_offset,
            next_offset: base_offset,
            size: 0,
            flushed_size: 0,
            flushed_next_offset: base_offset,
            files,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            max_timestamp: Timestamp::NONE,
            offset_of_max_timestamp: base_offset,
            rolled_at_ms: now_ms,
            sealed: false,
        }
    }

    /// Records a batch placed at `position`: offsets, timestamps and the index rule (an entry
    /// when at least `index.interval.bytes` have gone by since the last one).
    pub(crate) fn track_batch(&mut self, position: u64, batch: &BatchMeta, index_interval_bytes: u32) {
        assert_eq!(position, self.size);
        assert!(batch.base_offset >= self.next_offset);
        let relative = batch.base_offset.relative_to(self.base_offset);
        if self.bytes_since_index >= u64::from(index_interval_bytes)
            && position > 0
            && let (Some(relative_offset), Ok(position)) = (relative, u32::try_from(position))
        {
            self.index.push(IndexEntry { relative_offset, position });
            self.bytes_since_index = 0;
        }
        if batch.max_timestamp > self.max_timestamp {
            self.max_timestamp = batch.max_timestamp;
            self.offset_of_max_timestamp = batch.base_offset;
        }
        if self.bytes_since_index == 0 && position > 0 {
            self.push_time_entry();
        }
        self.bytes_since_index += batch.size;
        self.size += batch.size;
        self.next_offset = batch.next_offset;
    }

    /// Records the segment's largest timestamp so far in the time index.
    pub(crate) fn push_time_entry(&mut self) {
        if let Some(relative_offset) = self.offset_of_max_timestamp.relative_to(self.base_offset)
            && self.max_timestamp != Timestamp::NONE
        {
            self.time_index.maybe_push(TimeEntry { timestamp: self.max_timestamp, relative_offset });
        }
    }

    /// The offset after this batch would be too far from the base for u32 relative offsets, or
    /// the position too large for u32 index positions.
    pub(crate) fn cannot_hold(&self, last_offset: Offset, batch_bytes: u64) -> bool {
        last_offset.relative_to(self.base_offset).is_none_or(|r| r == u32::MAX)
            || u32::try_from(self.size + batch_bytes).is_err()
    }
}

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Reached the end position exactly at a batch boundary.
    End,
    /// The visitor asked to stop (at the returned position, before the batch it was shown).
    Stopped,
    /// The bytes at the returned position are not a valid batch.
    Invalid(BatchError),
    /// A batch's offsets do not continue the log's or leave the segment's range.
    BadOffset(Offset),
    /// A batch's leader epoch goes backwards or is newer than any the log knows.
    BadEpoch(LeaderEpoch),
}

/// How much of each batch a scan checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanCheck {
    /// Headers only (lookups over data already validated on append).
    Headers,
    /// Everything recovery can check, since `baseOffset` and `partitionLeaderEpoch` lie outside
    /// the CRC: magic, CRC and counts of every batch; offsets that continue from `expected`
    /// (exactly, unless the log is compacted and may have gaps) and stay in the segment's u32
    /// range; leader epochs that never go down and never pass `epoch_max`.
    Full {
        /// Base offset of the batch at the scan's start position.
        expected: Offset,
        /// Offsets must be dense (not a compacted log).
        contiguous: bool,
        /// The latest epoch the leader-epoch checkpoint knows, if any.
        epoch_max: Option<LeaderEpoch>,
    },
}

/// The header facts of a batch a scan found; in a header-only scan its records were never read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub(crate) base_offset: Offset,
    pub(crate) next_offset: Offset,
    pub(crate) max_timestamp: Timestamp,
    pub(crate) base_timestamp: Timestamp,
    pub(crate) size: u64,
    /// Everything the header says (producer fields included, for producer-state replay).
    pub(crate) summary: BatchSummary,
}

impl BatchMeta {
    fn of(header: &RecordBatchHeader, size: usize) -> BatchMeta {
        let base_offset = Offset(header.base_offset.get());
        BatchMeta {
            base_offset,
            next_offset: base_offset.plus(i64::from(header.last_offset_delta.get()) + 1),
            max_timestamp: Timestamp(header.max_timestamp.get()),
            base_timestamp: Timestamp(header.base_timestamp.get()),
            size: size as u64,
            summary: BatchSummary::of_header(header, size),
        }
    }

    /// The facts of a whole batch.
    pub(crate) fn from_batch(batch: &RecordBatch<'_>) -> BatchMeta {
        BatchMeta::of(batch.header(), batch.size())
    }

    /// The facts of a validated batch about to be appended at `base_offset`, from what
    /// validation kept (the bytes are not read again).
    pub(crate) fn appended(base_offset: Offset, batch: &BatchSummary) -> BatchMeta {
        BatchMeta {
            base_offset,
            next_offset: base_offset.plus(i64::from(batch.last_offset_delta) + 1),
            max_timestamp: batch.max_timestamp,
            base_timestamp: batch.base_timestamp,
            size: batch.size as u64,
            summary: *batch,
        }
    }
}

/// Walks the batches of `file` from `from` to `to`, showing each to `visit` with its position.
/// Returns where it stopped and why. Reads the file in windows of [`SCAN_READ_BYTES`]. A
/// header-only scan jumps over each batch's records (a fetch's lookup of a 1 MiB batch reads one
/// window, not the batch); a full scan reads every batch whole, one at a time when it is larger
/// than the window (bounded by `size_max`).
pub(crate) async fn scan(
    file: Source<'_>,
    segment_base: Offset,
    from: u64,
    to: u64,
    size_max: usize,
    check: ScanCheck,
    mut visit: impl FnMut(u64, &BatchMeta) -> ControlFlow<()>,
) -> std::io::Result<(u64, ScanEnd)> {
    let mut position = from;
    let mut checker = Checker { segment_base, check, last_epoch: LeaderEpoch::UNKNOWN };
    while position < to {
        let want = usize::try_from((to - position).min(SCAN_READ_BYTES as u64)).unwrap_or(SCAN_READ_BYTES);
        let window = file.read_at(position, want).await?;
        let mut at = 0usize;
        while position + (at as u64) < to {
            let here = position + at as u64;
            let rest = window.get(at..).unwrap_or_default();
            if rest.len() < BATCH_HEADER_BYTES {
                if at == 0 {
                    let have = usize::try_from(to - here).unwrap_or(0);
                    return Ok((here, ScanEnd::Invalid(BatchError::Truncated { have, need: BATCH_HEADER_BYTES })));
                }
                break; // the next header starts in the next window
            }
            let size = match batch_size_from_prefix(rest) {
                Ok(size) if size > size_max => {
                    return Ok((here, ScanEnd::Invalid(BatchError::TooLarge { size, limit: size_max })));
                }
                Ok(size) => size,
                Err(e) => return Ok((here, ScanEnd::Invalid(e))),
            };
            if here + size as u64 > to {
                let have = usize::try_from(to - here).unwrap_or(0);
                return Ok((here, ScanEnd::Invalid(BatchError::Truncated { have, need: size })));
            }
            let end = match check {
                ScanCheck::Headers => match RecordBatchHeader::ref_from_prefix(rest) {
                    Ok((header, _)) => checker.visit(None, &BatchMeta::of(header, size), here, &mut visit),
                    Err(_) => unreachable!("a window of at least a header holds a header"),
                },
                ScanCheck::Full { .. } if rest.len() >= size => {
                    checker.check_and_visit(&rest[..size], size_max, here, &mut visit)
                }
                ScanCheck::Full { .. } if at == 0 => {
                    // A batch larger than the window: read exactly it.
                    let whole = file.read_at(here, size).await?;
                    checker.check_and_visit(&whole, size_max, here, &mut visit)
                }
                ScanCheck::Full { .. } => break, // read it from its start in a fresh window
            };
            if let Some(end) = end {
                return Ok((here, end));
            }
            at += size;
        }
        position += at as u64;
    }
    Ok((position, ScanEnd::End))
}

struct Checker {
    segment_base: Offset,
    check: ScanCheck,
    last_epoch: LeaderEpoch,
}

impl Checker {
    /// Validates a whole batch (full scans) and shows it to the visitor.
    fn check_and_visit(
        &mut self,
        bytes: &[u8],
        size_max: usize,
        position: u64,
        visit: &mut impl FnMut(u64, &BatchMeta) -> ControlFlow<()>,
    ) -> Option<ScanEnd> {
        let batch = match RecordBatch::parse_prefix(bytes, size_max) {
            Ok(batch) => batch,
            Err(e) => return Some(ScanEnd::Invalid(e)),
        };
        self.visit(Some(&batch), &BatchMeta::from_batch(&batch), position, visit)
    }

    fn visit(
        &mut self,
        batch: Option<&RecordBatch<'_>>,
        meta: &BatchMeta,
        position: u64,
        visit: &mut impl FnMut(u64, &BatchMeta) -> ControlFlow<()>,
    ) -> Option<ScanEnd> {
        if let (ScanCheck::Full { expected, contiguous, epoch_max }, Some(batch)) = (&mut self.check, batch) {
            if let Err(e) = batch.validate_stored() {
                return Some(ScanEnd::Invalid(e));
            }
            let base = meta.base_offset;
            let in_range = batch.last_offset().relative_to(self.segment_base).is_some();
            let offset_ok = if *contiguous { base == *expected } else { base >= *expected };
            if !offset_ok || !in_range {
                return Some(ScanEnd::BadOffset(base));
            }
            let epoch = batch.leader_epoch();
            if epoch < self.last_epoch || epoch_max.is_some_and(|max| epoch > max) {
                return Some(ScanEnd::BadEpoch(epoch));
            }
            self.last_epoch = epoch;
            *expected = meta.next_offset;
        }
        match visit(position, meta) {
            ControlFlow::Continue(()) => None,
            ControlFlow::Break(()) => Some(ScanEnd::Stopped),
        }
    }
}

/// What recovery made of one segment's files.
pub(crate) struct Recovered {
    pub(crate) segment: Segment,
    /// Where the valid batches end; the file is cut here.
    pub(crate) valid_size: u64,
    /// Why the scan stopped before the end of the file, if it did at a non-zero header.
    pub(crate) damage: Option<(u64, ScanEnd)>,
}

/// What recovery may assume about a log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecoveryRules {
    /// `index.interval.bytes`, to rebuild index entries as appends would have made them.
    pub(crate) index_interval_bytes: u32,
    /// Offsets are dense (the log is not compacted).
    pub(crate) contiguous: bool,
    /// The latest leader epoch in the checkpoint.
    pub(crate) epoch_max: Option<LeaderEpoch>,
    /// Validate every batch from the start of the segment, not just those after the last index
    /// entry. After an unclean shutdown the tail segment gets this, since a torn or damaged
    /// batch anywhere in it (its base offset and epoch lie outside the CRC) must cut the log
    /// there, and the index may point past the damage.
    pub(crate) full_scan: bool,
}

/// Rebuilds the in-memory state of a segment from its files: unless `rules.full_scan`, trusting
/// the offset index up to its last entry that still points at a batch with the right offset,
/// then validating every batch after it (which proves the segment ends at a batch boundary).
/// `file` is the `.log` file of `files` opened for direct I/O, and `file_size` its size on disk
/// (which may include a preallocated tail).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn recover(
    files: Rc<SegmentFiles>,
    file: &SharedFile,
    base: Offset,
    file_size: u64,
    index_bytes: &[u8],
    time_index_bytes: &[u8],
    size_max: usize,
    rules: RecoveryRules,
) -> std::io::Result<Recovered> {
    let index_interval_bytes = rules.index_interval_bytes;
    let full =
        |expected: Offset| ScanCheck::Full { expected, contiguous: rules.contiguous, epoch_max: rules.epoch_max };
    // Whether the files were damaged does not matter here: what recovery rebuilt is the index,
    // and the caller rewrites a sealed segment's files when they differ from it.
    let (mut index, _) = OffsetIndex::parse(index_bytes, file_size);
    let mut start = IndexEntry { relative_offset: 0, position: 0 };
    if rules.full_scan {
        index.truncate_to_position(0);
    }
    // Find the last index entry that really starts a batch with the offset it claims.
    while let Some(&entry) = index.entries().last() {
        let mut found = None;
        let expected = base.plus(i64::from(entry.relative_offset));
        scan(Source::Direct(file), base, u64::from(entry.position), file_size, size_max, full(expected), |_, batch| {
            found = Some(batch.base_offset);
            ControlFlow::Break(())
        })
        .await?;
        if found == Some(base.plus(i64::from(entry.relative_offset))) {
            start = entry;
            break;
        }
        index.truncate_to_position(u64::from(entry.position));
    }
    // Keep the time index only for what lies before the scan's start.
    let start_offset = base.plus(i64::from(start.relative_offset));
    let (mut time_index, _) = TimeIndex::parse(time_index_bytes, u64::from(start.relative_offset) + 1);
    time_index.truncate_to(start.relative_offset);

    let mut segment = Segment::new(base, 0, files);
    segment.index = index;
    segment.time_index = time_index;
    segment.size = u64::from(start.position);
    segment.next_offset = start_offset;
    if let Some(last) = segment.time_index.max_timestamp() {
        segment.max_timestamp = last.timestamp;
        segment.offset_of_max_timestamp = base.plus(i64::from(last.relative_offset));
    }
    // The entry at `start` is re-created by the scan below, so drop it first.
    segment.index.truncate_to_position(u64::from(start.position));
    let interval = index_interval_bytes;
    let mut first_timestamp = None;
    let (valid_size, end) = scan(
        Source::Direct(file),
        base,
        u64::from(start.position),
        file_size,
        size_max,
        full(start_offset),
        |position, batch| {
            if segment.size == 0 {
                first_timestamp = Some(batch.base_timestamp);
            }
            // The scan resumes right at an index entry: count it as just indexed.
            if position == u64::from(start.position) && position > 0 {
                segment.bytes_since_index = u64::from(interval);
            }
            segment.track_batch(position, batch, interval);
            ControlFlow::Continue(())
        },
    )
    .await?;
    segment.flushed_size = segment.size;
    segment.flushed_next_offset = segment.next_offset;
    if let Some(ts) = first_timestamp {
        segment.rolled_at_ms = ts.0;
    }
    assert_eq!(valid_size, segment.size);
    let damage = match end {
        ScanEnd::End => None,
        ScanEnd::Invalid(BatchError::InvalidLength(0)) => None, // preallocated, never written
        other => Some((valid_size, other)),
    };
    Ok(Recovered { segment, valid_size, damage })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_are_twenty_digits() {
        let dir = Path::new("/d");
        assert_eq!(segment_file(dir, Offset(42), "log"), Path::new("/d/00000000000000000042.log"));
        assert_eq!(parse_segment_name("00000000000000000042.log"), Some(Offset(42)));
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.log"), None);
        assert_eq!(parse_segment_name("00000000000000000042.index"), None);
    }
}
