//! The leader-epoch cache of a partition: for each leader epoch, the first offset appended under
//! it. Followers use it (OffsetForLeaderEpoch) to find where their log diverged from the leader's.
//! Persisted as `leader-epoch-checkpoint` in Kafka's text format: a version line (0), a count
//! line, then `epoch start_offset` per line.
//!
//! When: an append under a new epoch writes the file first ([`EpochCache::assign`]; if that
//! fails, the append fails and the epoch is not kept, so no batch reaches a segment file under
//! an epoch the checkpoint lacks, which recovery would cut as damage). The epoch a new leader
//! begins before any append ([`EpochCache::note`]) is only noted: the first append under it, or
//! the flusher before it writes, or the close, writes it. An epoch with no batch lost in a crash
//! answers divergence checks as its absence does (the epoch before it ends where the next one
//! begins), and two fsyncs per partition at every leadership change (all of a broker's
//! partitions at once when it registers) would make a broker of many partitions slow to start.
//! A follower's epochs and cuts are written at once.

use std::path::{Path, PathBuf};

use super::io::write_atomically;
use crate::model::{LeaderEpoch, Offset};

/// File name of the checkpoint inside the partition directory.
pub(crate) const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// `(epoch, start offset)` pairs, both strictly increasing.
#[derive(Debug)]
pub(crate) struct EpochCache {
    path: PathBuf,
    entries: Vec<(LeaderEpoch, Offset)>,
    /// `entries` has an epoch the file does not have yet.
    pending: bool,
}

impl EpochCache {
    /// Loads the checkpoint, keeping the valid prefix of a damaged file.
    pub(crate) fn load(dir: &Path) -> Self {
        let path = dir.join(CHECKPOINT_FILE);
        let mut entries: Vec<(LeaderEpoch, Offset)> = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines().skip(2) {
                let mut parts = line.split_whitespace();
                let (Some(Ok(epoch)), Some(Ok(offset))) =
                    (parts.next().map(str::parse::<i32>), parts.next().map(str::parse::<i64>))
                else {
                    break;
                };
                if entries.last().is_some_and(|&(e, o)| e.0 >= epoch || o.0 > offset) {
                    break;
                }
                entries.push((LeaderEpoch(epoch), Offset(offset)));
            }
        }
        Self { path, entries, pending: false }
    }

    /// Notes that `epoch` began at `start` (a leadership, before any append), if it is newer
    /// than the latest; the file follows at the next [`Self::assign`] or
    /// [`Self::persist_pending`] (see the module docs).
    pub(crate) fn note(&mut self, epoch: LeaderEpoch, start: Offset) {
        if epoch.0 < 0 || self.entries.last().is_some_and(|&(e, _)| e >= epoch) {
            return;
        }
        self.entries.push((epoch, start));
        self.pending = true;
    }

    /// Records that `epoch` began at `start` before a batch of it is appended, if it is newer
    /// than the latest, and writes the file (with any epoch only noted so far); if the write
    /// fails, the memory goes back to what the disk has, less a noted epoch, which stays noted.
    pub(crate) fn assign(&mut self, epoch: LeaderEpoch, start: Offset) -> std::io::Result<()> {
        if epoch.0 < 0 || self.entries.last().is_some_and(|&(e, _)| e >= epoch) {
            return self.persist_pending().map(drop);
        }
        self.entries.push((epoch, start));
        self.persist_or_undo(|entries| {
            entries.pop();
        })
    }

    /// Writes the file if [`Self::assign`] noted an epoch since it was last written: before a
    /// batch reaches a segment file. Returns whether it wrote (and so fsynced the directory).
    pub(crate) fn persist_pending(&mut self) -> std::io::Result<bool> {
        if self.pending { self.persist().map(|()| true) } else { Ok(false) }
    }

    /// A follower's [`Self::assign`] of the epoch its leader stamped on a batch at `start` (the
    /// log end): epochs begun at or after `start` with no batch yet (a leadership that appended
    /// nothing) give way to an older epoch the leader's batches carry, as in Kafka's cache; any
    /// other older epoch is no news. The caller checked [`Self::latest_below`] first.
    pub(crate) fn assign_replicated(&mut self, epoch: LeaderEpoch, start: Offset) -> std::io::Result<()> {
        if epoch.0 < 0 {
            return Ok(());
        }
        let before = self.entries.clone();
        self.entries.retain(|&(e, s)| s < start || e <= epoch);
        if self.entries.last().is_some_and(|&(e, _)| e >= epoch) {
            return if self.entries.len() != before.len() {
                self.persist_or_undo(|entries| *entries = before)
            } else {
                Ok(())
            };
        }
        self.entries.push((epoch, start));
        self.persist_or_undo(|entries| *entries = before)
    }

    /// The latest epoch that began below `offset`: the epoch of the batches just below it (a
    /// batch at `offset` must not carry an older one, or recovery's epoch check would cut it).
    pub(crate) fn latest_below(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.entries.iter().rev().find(|&&(_, start)| start < offset).map(|&(e, _)| e)
    }

    /// Forgets epochs that start at or after `end` (the log was cut there).
    pub(crate) fn truncate_from(&mut self, end: Offset) -> std::io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end);
        if self.entries.len() != before { self.persist() } else { Ok(()) }
    }

    /// The latest epoch.
    pub(crate) fn latest(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// Kafka's `endOffsetFor(epoch)`: the largest epoch ≤ `epoch` and the start offset of the
    /// epoch after it (or `log_end` if it is the latest).
    pub(crate) fn end_offset_for(&self, epoch: LeaderEpoch, log_end: Offset) -> Option<(LeaderEpoch, Offset)> {
        let at = self.entries.partition_point(|&(e, _)| e <= epoch);
        if at == 0 {
            return None;
        }
        let found = self.entries[at - 1].0;
        let end = self.entries.get(at).map_or(log_end, |&(_, start)| start);
        Some((found, end))
    }

    /// Persists the entries (a follower's, written at once); if that fails, `undo` puts the
    /// memory back as the disk has it, so a batch is never appended under an epoch the
    /// checkpoint lacks (the next append tries the write again, and fails as the disk does).
    fn persist_or_undo(&mut self, undo: impl FnOnce(&mut Vec<(LeaderEpoch, Offset)>)) -> std::io::Result<()> {
        let result = self.persist();
        if result.is_err() {
            undo(&mut self.entries);
        }
        result
    }

    fn persist(&mut self) -> std::io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{} {}\n", epoch.0, start.0));
        }
        write_atomically(&self.path, text.as_bytes())?;
        self.pending = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_persist_truncate_and_answer_end_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path());
        cache.assign(LeaderEpoch(0), Offset(0)).unwrap();
        cache.assign(LeaderEpoch(0), Offset(5)).unwrap();
        cache.assign(LeaderEpoch(3), Offset(10)).unwrap();
        cache.note(LeaderEpoch(5), Offset(20));
        assert_eq!(EpochCache::load(dir.path()).latest(), Some(LeaderEpoch(3)), "a noted epoch waits");
        cache.assign(LeaderEpoch(5), Offset(20)).unwrap();
        let reloaded = EpochCache::load(dir.path());
        assert_eq!(reloaded.entries, cache.entries);
        assert_eq!(cache.end_offset_for(LeaderEpoch(0), Offset(30)), Some((LeaderEpoch(0), Offset(10))));
        assert_eq!(cache.end_offset_for(LeaderEpoch(4), Offset(30)), Some((LeaderEpoch(3), Offset(20))));
        assert_eq!(cache.end_offset_for(LeaderEpoch(9), Offset(30)), Some((LeaderEpoch(5), Offset(30))));
        cache.truncate_from(Offset(15)).unwrap();
        assert_eq!(cache.latest(), Some(LeaderEpoch(3)));
        assert_eq!(EpochCache::load(dir.path()).latest(), Some(LeaderEpoch(3)));
    }

    #[test]
    fn a_failed_persist_leaves_memory_as_the_disk_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path());
        cache.assign(LeaderEpoch(1), Offset(0)).unwrap();
        // The checkpoint can no longer be written (as on a full disk).
        cache.path = dir.path().join("missing").join(CHECKPOINT_FILE);
        assert!(cache.assign(LeaderEpoch(2), Offset(10)).is_err());
        assert_eq!(cache.latest(), Some(LeaderEpoch(1)), "not noted, so the next append tries again");
        assert!(cache.assign_replicated(LeaderEpoch(3), Offset(10)).is_err());
        assert_eq!(cache.entries, [(LeaderEpoch(1), Offset(0))]);
        // A leadership's epoch is only noted; the append under it fails as its write does.
        cache.note(LeaderEpoch(2), Offset(10));
        assert!(cache.assign(LeaderEpoch(2), Offset(10)).is_err());
        cache.path = dir.path().join(CHECKPOINT_FILE);
        cache.assign(LeaderEpoch(2), Offset(10)).unwrap();
        assert_eq!(EpochCache::load(dir.path()).latest(), Some(LeaderEpoch(2)));
    }

    #[test]
    fn a_replicated_older_epoch_replaces_only_an_epoch_with_no_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path());
        cache.assign(LeaderEpoch(2), Offset(0)).unwrap();
        cache.note(LeaderEpoch(5), Offset(10)); // begun at the log end, nothing appended
        assert_eq!(cache.latest_below(Offset(10)), Some(LeaderEpoch(2)));
        cache.assign_replicated(LeaderEpoch(4), Offset(10)).unwrap();
        assert_eq!(cache.entries, [(LeaderEpoch(2), Offset(0)), (LeaderEpoch(4), Offset(10))]);
        cache.assign_replicated(LeaderEpoch(4), Offset(12)).unwrap();
        cache.assign_replicated(LeaderEpoch(6), Offset(20)).unwrap();
        assert_eq!(EpochCache::load(dir.path()).entries, cache.entries);
        assert_eq!(cache.latest_below(Offset(20)), Some(LeaderEpoch(4)));
    }
}
