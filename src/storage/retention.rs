//! Retention: deleting whole sealed segments by age (`retention.ms`, judged by each segment's
//! largest timestamp) and by size (`retention.bytes`), and DeleteRecords (moving the log start
//! offset forward on request). The active segment is never deleted.

use tracing::info;

use super::error::Error;
use super::file_cache::FileKind;
use super::log::{PartitionLog, remove_segment_files, write_log_start};
use super::segment::Segment;
use crate::model::{Offset, Timestamp};

/// What one retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes freed.
    pub bytes_deleted: u64,
    /// The log start offset afterwards.
    pub log_start_offset: Offset,
}

/// The time a sealed segment's age counts from: its largest record timestamp, or, when no
/// record carries one (every timestamp -1, as old or minimal producers send), its file's last
/// modification, as Kafka's `LogSegment.largestTimestamp` does; without either it never expires.
fn segment_age_from(segment: &Segment) -> Option<Timestamp> {
    if segment.max_timestamp != Timestamp::NONE {
        return Some(segment.max_timestamp);
    }
    // stat(2) of a file whose inode is cached: no disk I/O, so fine on the shard's thread (and
    // no descriptor needed).
    let path = segment.files.path(FileKind::Log);
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let ms = modified.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    Some(Timestamp(i64::try_from(ms).ok()?))
}

impl PartitionLog {
    /// Deletes sealed segments that are past `retention.ms` at `now`, beyond `retention.bytes`,
    /// or wholly below the log start offset, oldest first; stops at the first one that stays.
    pub fn enforce_retention(&self, now: Timestamp) -> Result<RetentionReport, Error> {
        let mut state = self.state.borrow_mut();
        if state.truncating {
            // The truncation owns the files until it has rebuilt the state; the next run retains.
            return Ok(RetentionReport { log_start_offset: state.log_start, ..RetentionReport::default() });
        }
        let delete_policy = state.config.cleanup_policy.delete;
        let retention_ms = state.config.retention_ms.filter(|_| delete_policy);
        let retention_bytes = state.config.retention_bytes.filter(|_| delete_policy);
        let mut total: u64 = state.segments.values().map(|s| s.size).sum();
        let mut doomed = Vec::new();
        let bases: Vec<Offset> = state.segments.keys().copied().collect();
        for (i, base) in bases.iter().enumerate() {
            let Some(next_base) = bases.get(i + 1) else { break };
            let Some(segment) = state.segments.get(base) else { break };
            if !segment.sealed {
                break;
            }
            let below_start = *next_base <= state.log_start;
            let expired = retention_ms.is_some_and(|ms| {
                segment_age_from(segment)
                    .is_some_and(|t| now.0.saturating_sub(t.0) > i64::try_from(ms).unwrap_or(i64::MAX))
            });
            let oversize = retention_bytes.is_some_and(|limit| total.saturating_sub(segment.size) >= limit);
            if !(below_start || expired || oversize) {
                break;
            }
            total -= segment.size;
            doomed.push((*base, *next_base, segment.size, expired, oversize));
        }
        let mut report = RetentionReport { log_start_offset: state.log_start, ..RetentionReport::default() };
        let Some(&(_, new_start, ..)) = doomed.last() else { return Ok(report) };
        state.note_changed();
        for &(base, _, size, expired, oversize) in &doomed {
            state.segments.remove(&base);
            remove_segment_files(&state.dir, base);
            report.segments_deleted += 1;
            report.bytes_deleted += size;
            info!(tp = %state.topic_partition, segment = %base, size, expired, oversize, "retention deleted segment");
        }
        if new_start > state.log_start {
            state.log_start = new_start;
            state.high_watermark = state.high_watermark.max(new_start);
            state.forget_replicated_txns();
            write_log_start(&state.dir, new_start).map_err(Error::io("writing the log start offset"))?;
        }
        state.cache.drop_before(state.log_start);
        let log_start = state.log_start;
        state.aborted.drop_below(log_start);
        report.log_start_offset = state.log_start;
        Ok(report)
    }

    /// Kafka's DeleteRecords: makes `offset` the log start offset (records before it are gone
    /// for readers at once; whole segments below it are deleted now). `offset` must not pass
    /// the high watermark. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: Offset) -> Result<Offset, Error> {
        {
            let mut state = self.state.borrow_mut();
            if state.truncating {
                return Err(Error::Truncated);
            }
            if offset > state.high_watermark || offset.0 < 0 {
                return Err(Error::OffsetOutOfRange {
                    requested: offset,
                    log_start: state.log_start,
                    log_end: state.high_watermark,
                });
            }
            if offset <= state.log_start {
                return Ok(state.log_start);
            }
            state.note_changed();
            write_log_start(&state.dir, offset).map_err(Error::io("writing the log start offset"))?;
            state.log_start = offset;
            state.cache.drop_before(offset);
            state.aborted.drop_below(offset);
            // The last stable offset never falls below the log start, so it may have moved.
            state.acks.notify_all();
            info!(tp = %state.topic_partition, log_start = %offset, "log start offset moved by DeleteRecords");
        }
        self.enforce_segment_deletion_below_start()
    }

    fn enforce_segment_deletion_below_start(&self) -> Result<Offset, Error> {
        let mut state = self.state.borrow_mut();
        let bases: Vec<Offset> = state.segments.keys().copied().collect();
        for pair in bases.windows(2) {
            let (base, next) = (pair[0], pair[1]);
            let sealed = state.segments.get(&base).is_some_and(|s| s.sealed);
            if next > state.log_start || !sealed {
                break;
            }
            state.note_changed();
            state.segments.remove(&base);
            remove_segment_files(&state.dir, base);
        }
        Ok(state.log_start)
    }
}
