//! What the cleaner tells its scheduler: how cleanable a log is ([`Cleanable`]) and what one
//! clean did ([`CleanReport`]).

use std::time::Duration;

use crate::model::Offset;

/// How much of a compacted log is cleanable now (Kafka's `LogToClean`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    /// Where the dirty section starts: the records before it were cleaned already (the
    /// cleaner-offset checkpoint, or the log start).
    pub first_dirty: Offset,
    /// Where the cleanable section ends: the base of the first segment that may not be cleaned
    /// yet (the active one, or the one holding the last stable offset, the high watermark, or a
    /// record younger than `min.compaction.lag.ms`).
    pub first_uncleanable: Offset,
    /// Bytes of the segments wholly before `first_dirty`.
    pub clean_bytes: u64,
    /// Bytes of the segments from `first_dirty` to `first_uncleanable`.
    pub dirty_bytes: u64,
    /// `dirty_bytes / (clean_bytes + dirty_bytes)`, 0 for an empty cleanable section: compared
    /// with `min.cleanable.dirty.ratio`.
    pub dirty_ratio: f64,
    /// When the oldest dirty segment began (its first batch's timestamp, else when it was
    /// rolled), for `max.compaction.lag.ms`; `None` if no sealed segment is dirty.
    pub oldest_dirty_ms: Option<i64>,
}

/// What one clean of one log did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanReport {
    /// The first offset cleaned (the log's first segment base).
    pub start: Offset,
    /// The offset after the last one the map covered: the next clean's first dirty offset.
    pub end: Offset,
    /// Segments rewritten.
    pub segments_before: usize,
    /// Segments they became.
    pub segments_after: usize,
    /// Bytes read, building the map and rewriting.
    pub bytes_read: u64,
    /// Bytes of the segments rewritten.
    pub bytes_before: u64,
    /// Bytes of the segments that replaced them.
    pub bytes_after: u64,
    /// Records in the segments rewritten.
    pub records_read: u64,
    /// Records kept.
    pub records_kept: u64,
    /// Tombstones removed (their delete horizon had passed).
    pub tombstones_removed: u64,
    /// Records of aborted transactions removed.
    pub aborted_removed: u64,
    /// How long the clean took.
    pub took: Duration,
}
