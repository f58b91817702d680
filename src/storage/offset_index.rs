//! The sparse offset index of a segment: `(relative offset u32, position u32)` entries, big-endian,
//! 8 bytes each, one every `index.interval.bytes` of log, strictly increasing in both fields.
//!
//! Position 0 (the segment's first batch) is never stored: it is implied. That also makes an
//! all-zero entry, which is what a preallocated but unwritten index file holds, an end marker.
//!
//! The entries live in memory (a 1 GiB segment with 4 KiB interval needs 2 MiB); the file is a
//! persisted prefix of them that recovery may trust after checking it (see `recovery.rs`).

use crate::limits::OFFSET_INDEX_ENTRY_BYTES;
use crate::model::Offset;

/// One index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Offset of the indexed batch minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of that batch in the segment file.
    pub position: u32,
}

/// The in-memory offset index of one segment.
#[derive(Debug, Clone, Default)]
pub struct OffsetIndex {
    entries: Vec<IndexEntry>,
    /// How many entries (a prefix) have been written to the index file.
    persisted: usize,
}

impl OffsetIndex {
    /// Parses an index file's bytes, keeping the longest valid prefix: entries strictly
    /// increasing in offset and position, with positions below `log_size`. Returns the index and
    /// whether the whole file was valid (a partial or torn tail is normal after a crash).
    pub fn parse(bytes: &[u8], log_size: u64) -> (OffsetIndex, bool) {
        let mut entries = Vec::with_capacity(bytes.len() / OFFSET_INDEX_ENTRY_BYTES);
        let mut chunks = bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES);
        let mut clean = chunks.remainder().is_empty();
        for chunk in &mut chunks {
            let relative_offset = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let position = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            let entry = IndexEntry { relative_offset, position };
            let increasing = entries.last().is_none_or(|last: &IndexEntry| {
                entry.relative_offset > last.relative_offset && entry.position > last.position
            });
            if !increasing || entry.position == 0 || u64::from(entry.position) >= log_size {
                clean = false;
                break;
            }
            entries.push(entry);
        }
        let persisted = entries.len();
        (OffsetIndex { entries, persisted }, clean)
    }

    /// The entries.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Adds an entry; must be past the last one.
    pub fn push(&mut self, entry: IndexEntry) {
        assert!(entry.position > 0);
        if let Some(last) = self.entries.last() {
            assert!(entry.relative_offset > last.relative_offset);
            assert!(entry.position > last.position);
        }
        self.entries.push(entry);
    }

    /// The position to start scanning from for `target`: the entry with the largest offset
    /// ≤ target, or the segment start.
    pub fn lookup(&self, base: Offset, target: Offset) -> IndexEntry {
        let Some(relative) = target.relative_to(base) else {
            return IndexEntry { relative_offset: 0, position: 0 };
        };
        let after = self.entries.partition_point(|e| e.relative_offset <= relative);
        match after {
            0 => IndexEntry { relative_offset: 0, position: 0 },
            n => self.entries[n - 1],
        }
    }

    /// The offset of the first indexed batch at or after byte `position`, if any: every record
    /// before that position lies below it.
    pub fn offset_at_or_after(&self, base: Offset, position: u64) -> Option<Offset> {
        let at = self.entries.partition_point(|e| u64::from(e.position) < position);
        self.entries.get(at).map(|e| base.plus(i64::from(e.relative_offset)))
    }

    /// Drops entries at or past `position` (the log is being cut there).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self.entries.partition_point(|e| u64::from(e.position) < position);
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(keep);
    }

    /// Entries not yet in the file whose position is below `flushed_position` (an entry may only
    /// be persisted once the log bytes it points at are), encoded; marks them persisted.
    pub fn take_unpersisted(&mut self, flushed_position: u64) -> Vec<u8> {
        let end = self.entries.partition_point(|e| u64::from(e.position) < flushed_position);
        let mut out = Vec::new();
        for entry in self.entries.get(self.persisted..end).unwrap_or_default() {
            out.extend_from_slice(&entry.relative_offset.to_be_bytes());
            out.extend_from_slice(&entry.position.to_be_bytes());
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

    fn index_from(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::default();
        for &(relative_offset, position) in entries {
            index.push(IndexEntry { relative_offset, position });
        }
        index
    }

    #[test]
    fn a_preallocated_zero_tail_ends_the_index() {
        let mut index = index_from(&[(3, 4096), (9, 8200)]);
        let mut bytes = index.encode_all();
        bytes.extend_from_slice(&[0u8; 64]);
        let (parsed, clean) = OffsetIndex::parse(&bytes, 10_000);
        assert_eq!(parsed.entries(), index.entries());
        assert!(!clean);
        let (parsed, _) = OffsetIndex::parse(&bytes, 8000);
        assert_eq!(parsed.entries().len(), 1, "entries past the log end are dropped");
    }

    proptest! {
        /// `lookup` returns the entry a linear scan would: the last with offset ≤ target.
        #[test]
        fn lookup_agrees_with_a_linear_scan(
            deltas in proptest::collection::vec((1u32..1000, 1u32..100_000), 0..200),
            targets in proptest::collection::vec(0i64..300_000, 1..50),
            base in 0i64..1_000_000,
        ) {
            let mut entries = Vec::new();
            let (mut offset, mut position) = (0u32, 0u32);
            for (d_off, d_pos) in deltas {
                offset += d_off;
                position += d_pos;
                entries.push((offset, position));
            }
            let index = index_from(&entries);
            for t in targets {
                let target = Offset(base + t - 1000);
                let expected = entries.iter().rev()
                    .find(|(o, _)| target.relative_to(Offset(base)).is_some_and(|r| *o <= r))
                    .map_or(IndexEntry { relative_offset: 0, position: 0 }, |&(relative_offset, position)| {
                        IndexEntry { relative_offset, position }
                    });
                prop_assert_eq!(index.lookup(Offset(base), target), expected);
            }
            // The encoding round-trips.
            let mut copy = index.clone();
            let bytes = copy.encode_all();
            let (parsed, clean) = OffsetIndex::parse(&bytes, u64::MAX);
            prop_assert!(clean);
            prop_assert_eq!(parsed.entries(), index.entries());
        }

        /// Parsing arbitrary bytes never panics and yields a valid index.
        #[test]
        fn parse_survives_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..400), size in 0u64..u64::MAX) {
            let (parsed, _) = OffsetIndex::parse(&bytes, size);
            for pair in parsed.entries().windows(2) {
                prop_assert!(pair[0].relative_offset < pair[1].relative_offset);
                prop_assert!(pair[0].position < pair[1].position);
            }
        }
    }
}
