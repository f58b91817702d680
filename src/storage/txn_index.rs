//! The aborted-transaction index of a partition (Kafka's `.txnindex`): one entry per
//! transaction an abort marker ended, so that a read_committed fetch can tell its consumer which
//! producers' records to drop in the range it returns.
//!
//! In memory: every entry whose transaction is not wholly below the log start, in marker order
//! (so by last offset, strictly increasing). The cost is 32 bytes per aborted transaction still
//! in the log; entries leave with retention and DeleteRecords.
//!
//! On disk: one file per partition, `aborted-transactions`, holding entries in Kafka's
//! `.txnindex` layout (version i16 = 0, producer id i64, first offset i64, last offset i64,
//! last stable offset i64; big-endian), in marker order. It is rewritten whole and atomically
//! (temporary file, fsync, rename) only when a producer-state snapshot is about to be written,
//! and before it, so every snapshot on disk has the entries of all markers below its offset on
//! disk too. The entries of markers after the snapshot recovery loads are re-derived by its
//! replay, so those found in the file at or beyond the replay start are dropped first. A file
//! that is missing or damaged while a snapshot exists makes recovery replay the whole log.

use std::collections::VecDeque;
use std::path::Path;

use super::io as sio;
use crate::model::{Offset, ProducerId};

/// Name of the aborted-transaction index file in a partition directory.
pub(crate) const TXN_INDEX_FILE: &str = "aborted-transactions";
/// The entry version Kafka writes in `.txnindex` files.
const ENTRY_VERSION: i16 = 0;
/// Version, producer id, first offset, last offset, last stable offset.
const ENTRY_BYTES: usize = 2 + 8 + 8 + 8 + 8;

/// One aborted transaction in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: ProducerId,
    /// The transaction's first offset here (its marker's offset when it wrote nothing here).
    pub first_offset: Offset,
    /// The offset of its abort marker.
    pub last_offset: Offset,
    /// The last stable offset once the marker was written (the first offset of the oldest other
    /// open transaction, else the offset after the marker). No transaction aborted later starts
    /// below it, which lets a search stop early.
    pub last_stable_offset: Offset,
}

/// A partition's aborted transactions; see the module docs.
#[derive(Debug)]
pub(crate) struct AbortedTxnIndex {
    entries: VecDeque<AbortedTxn>,
    /// The file does not hold exactly `entries` (or does not exist yet).
    dirty: bool,
}

impl Default for AbortedTxnIndex {
    /// No entries, and no file yet.
    fn default() -> Self {
        AbortedTxnIndex { entries: VecDeque::new(), dirty: true }
    }
}

impl AbortedTxnIndex {
    /// The index in `dir`'s file; `None` if the file is missing or damaged.
    pub(crate) fn load(dir: &Path) -> Option<AbortedTxnIndex> {
        let bytes = std::fs::read(dir.join(TXN_INDEX_FILE)).ok()?;
        let entries = decode(&bytes)?;
        Some(AbortedTxnIndex { entries, dirty: false })
    }

    /// Records a transaction an abort marker just ended (at an append or in recovery's
    /// replay). Markers come in log order; an entry out of order is a bug, not data, and is
    /// left out rather than breaking the order searches rely on.
    pub(crate) fn push(&mut self, txn: AbortedTxn) {
        if self.entries.back().is_some_and(|last| last.last_offset >= txn.last_offset) {
            tracing::warn!(?txn, "aborted transaction recorded out of marker order; ignored");
            return;
        }
        self.entries.push_back(txn);
        self.dirty = true;
    }

    /// The aborted transactions overlapping `[from, upper)`, in marker order.
    pub(crate) fn overlapping(&self, from: Offset, upper: Offset) -> Vec<AbortedTxn> {
        let start = self.entries.partition_point(|t| t.last_offset < from);
        let mut out = Vec::new();
        for txn in self.entries.range(start..) {
            if txn.first_offset < upper {
                out.push(*txn);
            }
            // Every transaction aborted after this one starts at or beyond its last stable
            // offset (it was open then, or began later).
            if txn.last_stable_offset >= upper {
                break;
            }
        }
        out
    }

    /// Forgets the transaction `producer_id` aborted with the marker at `marker_offset`: the
    /// cleaner removed every record of it, so a read_committed reader has nothing of it to
    /// drop. Returns whether it was there.
    pub(crate) fn remove(&mut self, producer_id: ProducerId, marker_offset: Offset) -> bool {
        let at = self.entries.partition_point(|t| t.last_offset < marker_offset);
        let found =
            self.entries.get(at).is_some_and(|t| t.last_offset == marker_offset && t.producer_id == producer_id);
        if found {
            self.entries.remove(at);
            self.dirty = true;
        }
        found
    }

    /// Forgets transactions wholly below the log start offset.
    pub(crate) fn drop_below(&mut self, log_start: Offset) {
        let below = self.entries.partition_point(|t| t.last_offset < log_start);
        if below > 0 {
            self.entries.drain(..below);
            self.dirty = true;
        }
    }

    /// Forgets transactions whose marker is at or beyond `offset` (recovery replays from there,
    /// or a failed flush dropped those markers).
    pub(crate) fn truncate_from(&mut self, offset: Offset) {
        let keep = self.entries.partition_point(|t| t.last_offset < offset);
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.dirty = true;
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Writes the file if it differs from the entries: before every producer-state snapshot,
    /// which must not be written if this fails.
    pub(crate) fn persist(&mut self, dir: &Path) -> std::io::Result<()> {
        if self.dirty {
            write_file(dir, &encode(&self.entries))?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// Writes the index file of `dir` (blocking). An empty index is written in place, with no
/// temporary file or fsync of its own (as most partitions' is, at their first snapshot): a
/// crash before the directory's next fsync leaves no file, which costs a full replay, or the
/// old one, whose entries recovery drops anyway (they are below the log start, or at or past
/// the snapshot it loads).
fn write_file(dir: &Path, contents: &[u8]) -> std::io::Result<()> {
    let path = dir.join(TXN_INDEX_FILE);
    if contents.is_empty() { std::fs::File::create(path).map(drop) } else { sio::write_atomically(&path, contents) }
}

fn encode(entries: &VecDeque<AbortedTxn>) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for txn in entries {
        out.extend_from_slice(&ENTRY_VERSION.to_be_bytes());
        out.extend_from_slice(&txn.producer_id.0.to_be_bytes());
        out.extend_from_slice(&txn.first_offset.0.to_be_bytes());
        out.extend_from_slice(&txn.last_offset.0.to_be_bytes());
        out.extend_from_slice(&txn.last_stable_offset.0.to_be_bytes());
    }
    out
}

/// The entries of a file, or `None` if any is damaged: a partial entry, another version, a
/// negative id or offset, a first offset after the last, or markers out of order. The file is
/// only ever replaced whole, so damage means the disk lost it, not a torn append.
fn decode(bytes: &[u8]) -> Option<VecDeque<AbortedTxn>> {
    if !bytes.len().is_multiple_of(ENTRY_BYTES) {
        return None;
    }
    let mut entries: VecDeque<AbortedTxn> = VecDeque::with_capacity(bytes.len() / ENTRY_BYTES);
    for raw in bytes.chunks_exact(ENTRY_BYTES) {
        let i64_at = |at: usize| raw.get(at..at + 8).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes);
        let version = i16::from_be_bytes(raw.get(0..2)?.try_into().ok()?);
        let txn = AbortedTxn {
            producer_id: ProducerId(i64_at(2)?),
            first_offset: Offset(i64_at(10)?),
            last_offset: Offset(i64_at(18)?),
            last_stable_offset: Offset(i64_at(26)?),
        };
        let sane = version == ENTRY_VERSION
            && txn.producer_id.0 >= 0
            && txn.first_offset.0 >= 0
            && txn.first_offset <= txn.last_offset
            && txn.last_stable_offset.0 >= 0
            && entries.back().is_none_or(|last| last.last_offset < txn.last_offset);
        if !sane {
            return None;
        }
        entries.push_back(txn);
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(producer),
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(lso),
        }
    }

    #[test]
    fn searches_return_overlapping_transactions_and_stop_early() {
        let mut index = AbortedTxnIndex::default();
        // 1 aborts [0, 4] while 2's [3, ...] is open (LSO 3); 2 aborts at 9; 3 aborts [20, 22].
        index.push(txn(1, 0, 4, 3));
        index.push(txn(2, 3, 9, 10));
        index.push(txn(3, 20, 22, 23));
        fn ids(index: &AbortedTxnIndex, from: i64, upper: i64) -> Vec<i64> {
            index.overlapping(Offset(from), Offset(upper)).iter().map(|t| t.producer_id.0).collect()
        }
        assert_eq!(ids(&index, 0, 3), [1]);
        assert_eq!(ids(&index, 0, 4), [1, 2]);
        assert_eq!(ids(&index, 5, 20), [2]);
        assert_eq!(ids(&index, 10, 21), [3]);
        assert_eq!(ids(&index, 23, 100), Vec::<i64>::new());
        index.drop_below(Offset(5));
        assert_eq!(ids(&index, 0, 100), [2, 3]);
        index.truncate_from(Offset(22));
        assert_eq!(ids(&index, 0, 100), [2]);
        index.push(txn(9, 8, 8, 9));
        assert_eq!(index.len(), 1, "out of order: ignored");
    }

    #[test]
    fn files_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(AbortedTxnIndex::load(dir.path()).is_none(), "no file");
        let mut index = AbortedTxnIndex::default();
        index.persist(dir.path()).unwrap();
        assert_eq!(AbortedTxnIndex::load(dir.path()).map(|i| i.len()), Some(0), "an empty file is an empty index");
        index.push(txn(1, 0, 4, 5));
        index.push(txn(7, 2, 9, 10));
        index.persist(dir.path()).unwrap();
        let bytes = std::fs::read(dir.path().join(TXN_INDEX_FILE)).unwrap();
        assert_eq!(bytes.len(), 2 * ENTRY_BYTES);
        let back = AbortedTxnIndex::load(dir.path()).unwrap();
        assert_eq!(back.entries, index.entries);
        assert!(!back.dirty);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none(), "partial entry");
        let mut other_version = bytes.clone();
        other_version[1] = 1;
        assert!(decode(&other_version).is_none());
        let mut swapped = bytes[ENTRY_BYTES..].to_vec();
        swapped.extend_from_slice(&bytes[..ENTRY_BYTES]);
        assert!(decode(&swapped).is_none(), "out of order");
        assert!(decode(&[0u8; ENTRY_BYTES * 2]).is_none(), "zeros are not two entries");
    }
}
