//! The time index of a segment: `(timestamp i64, relative offset u32)` entries, big-endian, 12
//! bytes each. An entry is added beside an offset index entry when the segment's largest
//! timestamp so far has grown, and once more when the segment is sealed, so the last entry holds
//! the segment's largest timestamp. Both fields are non-decreasing / increasing along the file;
//! an all-zero entry (an unwritten, preallocated tail) ends it.

use crate::limits::TIME_INDEX_ENTRY_BYTES;
use crate::model::{Offset, Timestamp};

/// One time index entry: by `relative_offset`, the segment held records up to `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// The largest timestamp seen up to this point of the segment.
    pub timestamp: Timestamp,
    /// Relative offset of the batch that carried it.
    pub relative_offset: u32,
}

/// The in-memory time index of one segment.
#[derive(Debug, Clone, Default)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
    persisted: usize,
}

impl TimeIndex {
    /// Parses a time index file, keeping the longest valid prefix whose offsets are below
    /// `next_relative_offset`. Returns whether the whole file was valid.
    pub fn parse(bytes: &[u8], next_relative_offset: u64) -> (TimeIndex, bool) {
        let mut entries: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / TIME_INDEX_ENTRY_BYTES);
        let mut chunks = bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES);
        let mut clean = chunks.remainder().is_empty();
        for chunk in &mut chunks {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let entry = TimeEntry {
                timestamp: Timestamp(i64::from_be_bytes(ts)),
                relative_offset: u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]),
            };
            let ordered = entries
                .last()
                .is_none_or(|last| entry.timestamp > last.timestamp && entry.relative_offset >= last.relative_offset);
            let zero = entry.timestamp.0 == 0 && entry.relative_offset == 0;
            if !ordered || zero || u64::from(entry.relative_offset) >= next_relative_offset {
                clean = false;
                break;
            }
            entries.push(entry);
        }
        let persisted = entries.len();
        (TimeIndex { entries, persisted }, clean)
    }

    /// The entries.
    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    /// Adds an entry if its timestamp is larger than the last one's.
    pub fn maybe_push(&mut self, entry: TimeEntry) {
        if self
            .entries
            .last()
            .is_none_or(|last| entry.timestamp > last.timestamp && entry.relative_offset >= last.relative_offset)
        {
            self.entries.push(entry);
        }
    }

    /// The largest timestamp recorded.
    pub fn max_timestamp(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// The offset to start scanning from to find the first record with timestamp ≥ `target`:
    /// the offset of the last entry whose timestamp is still below it, or the segment start.
    pub fn lookup(&self, base: Offset, target: Timestamp) -> Offset {
        let below = self.entries.partition_point(|e| e.timestamp < target);
        match below {
            0 => base,
            n => base.plus(i64::from(self.entries[n - 1].relative_offset)),
        }
    }

    /// Drops entries at or past `relative_offset`.
    pub fn truncate_to(&mut self, relative_offset: u32) {
        let keep = self.entries.partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(keep);
    }

    /// Entries with offsets below `flushed_relative` not yet in the file, encoded; marks them
    /// persisted.
    pub fn take_unpersisted(&mut self, flushed_relative: u64) -> Vec<u8> {
        let end = self.entries.partition_point(|e| u64::from(e.relative_offset) < flushed_relative);
        let mut out = Vec::new();
        for entry in self.entries.get(self.persisted..end).unwrap_or_default() {
            out.extend_from_slice(&entry.timestamp.0.to_be_bytes());
            out.extend_from_slice(&entry.relative_offset.to_be_bytes());
        }
        self.persisted = self.persisted.max(end);
        out
    }

    /// Every entry, encoded, for rewriting the file whole.
    pub fn encode_all(&mut self) -> Vec<u8> {
        self.persisted = 0;
        self.take_unpersisted(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The lookup never starts after the first record with timestamp ≥ target.
        #[test]
        fn lookup_starts_at_or_before_the_answer(
            steps in proptest::collection::vec((1i64..50, 1u32..20), 0..100),
            target in 0i64..3000,
        ) {
            let mut index = TimeIndex::default();
            let (mut ts, mut rel) = (0i64, 0u32);
            for (d_ts, d_rel) in &steps {
                ts += d_ts;
                rel += d_rel;
                index.maybe_push(TimeEntry { timestamp: Timestamp(ts), relative_offset: rel });
            }
            let start = index.lookup(Offset(100), Timestamp(target));
            // The first entry with timestamp >= target has offset >= start.
            if let Some(first) = index.entries().iter().find(|e| e.timestamp.0 >= target) {
                prop_assert!(Offset(100).plus(i64::from(first.relative_offset)) >= start);
            }
            let mut copy = index.clone();
            let bytes = copy.encode_all();
            let (parsed, clean) = TimeIndex::parse(&bytes, u64::MAX);
            prop_assert!(clean);
            prop_assert_eq!(parsed.entries(), index.entries());
        }
    }
}
