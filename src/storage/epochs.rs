//! The leader-epoch cache of a partition: for each leader epoch, the first offset appended under
//! it. Followers use it (OffsetForLeaderEpoch) to find where their log diverged from the leader's.
//! Persisted as `leader-epoch-checkpoint` in Kafka's text format: a version line (0), a count
//! line, then `epoch start_offset` per line.
//!
//! When: every change is made in memory first and marked unwritten; the partition's flusher
//! writes the file before it writes any batch to a segment file (in one directory change with
//! the segment's own, `io::DirChange`), so no batch reaches a segment under an epoch the
//! checkpoint lacks (recovery would cut it as damage). If that write fails, the flusher fails
//! and takes the log offline, as a failed segment write does: the batches that needed the epoch
//! are never written. Written in the append instead, the file cost its own directory fsync on
//! top of the flusher's for a new segment's name, with every first write of a partition.
//! Epochs noted with no batch after them (a leadership that appended nothing) are lost in a
//! crash, which is harmless: such an epoch answers divergence checks as its absence does (the
//! epoch before it ends where the next one begins). A cut writes the file at once, with the
//! flusher stopped (`cut_files`); so do open, close and a failed flush.

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
    /// Bumped at every change of `entries`.
    version: u64,
    /// The `version` the file holds.
    written: u64,
}

/// The checkpoint's contents at one version, to be written by the flusher (see the module docs).
pub(crate) struct Unwritten {
    pub(crate) path: PathBuf,
    pub(crate) contents: Vec<u8>,
    version: u64,
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
        Self { path, entries, version: 0, written: 0 }
    }

    /// Notes that `epoch` began at `start` (a leadership, or the first batch of the epoch about
    /// to be appended), if it is newer than the latest.
    pub(crate) fn note(&mut self, epoch: LeaderEpoch, start: Offset) {
        if epoch.0 < 0 || self.entries.last().is_some_and(|&(e, _)| e >= epoch) {
            return;
        }
        self.entries.push((epoch, start));
        self.version += 1;
    }

    /// A follower's [`Self::note`] of the epoch its leader stamped on a batch at `start` (the
    /// log end): epochs begun at or after `start` with no batch yet (a leadership that appended
    /// nothing) give way to an older epoch the leader's batches carry, as in Kafka's cache; any
    /// other older epoch is no news. The caller checked [`Self::latest_below`] first.
    pub(crate) fn note_replicated(&mut self, epoch: LeaderEpoch, start: Offset) {
        if epoch.0 < 0 {
            return;
        }
        let before = self.entries.len();
        self.entries.retain(|&(e, s)| s < start || e <= epoch);
        if self.entries.len() != before {
            self.version += 1;
        }
        self.note(epoch, start);
    }

    /// The latest epoch that began below `offset`: the epoch of the batches just below it (a
    /// batch at `offset` must not carry an older one, or recovery's epoch check would cut it).
    pub(crate) fn latest_below(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.entries.iter().rev().find(|&&(_, start)| start < offset).map(|&(e, _)| e)
    }

    /// Forgets epochs that start at or after `end` (the log was cut there), in memory: the file
    /// follows at the next [`Self::unwritten`] or [`Self::write_now`].
    pub(crate) fn truncate_from(&mut self, end: Offset) {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end);
        if self.entries.len() != before {
            self.version += 1;
        }
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

    /// What the file lacks, if anything: the flusher writes it and then calls
    /// [`Self::written`].
    pub(crate) fn unwritten(&self) -> Option<Unwritten> {
        (self.version != self.written).then(|| Unwritten {
            path: self.path.clone(),
            contents: self.encode(),
            version: self.version,
        })
    }

    /// `unwritten` is on disk (and its directory synced).
    pub(crate) fn written(&mut self, unwritten: &Unwritten) {
        self.written = self.written.max(unwritten.version);
    }

    /// Writes the file now, blocking the shard, if it lacks anything: only where no flusher
    /// runs (open, a cut, close, a failed flush).
    pub(crate) fn write_now(&mut self) -> std::io::Result<()> {
        if let Some(unwritten) = self.unwritten() {
            write_atomically(&unwritten.path, &unwritten.contents)?;
            self.written(&unwritten);
        }
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{} {}\n", epoch.0, start.0));
        }
        text.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_written_when_asked_and_answer_end_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path());
        assert!(cache.unwritten().is_none(), "nothing to write");
        cache.note(LeaderEpoch(0), Offset(0));
        cache.note(LeaderEpoch(0), Offset(5));
        cache.note(LeaderEpoch(3), Offset(10));
        cache.write_now().unwrap();
        cache.note(LeaderEpoch(5), Offset(20));
        assert_eq!(EpochCache::load(dir.path()).latest(), Some(LeaderEpoch(3)), "a noted epoch waits");
        cache.write_now().unwrap();
        assert!(cache.unwritten().is_none());
        let reloaded = EpochCache::load(dir.path());
        assert_eq!(reloaded.entries, cache.entries);
        assert_eq!(cache.end_offset_for(LeaderEpoch(0), Offset(30)), Some((LeaderEpoch(0), Offset(10))));
        assert_eq!(cache.end_offset_for(LeaderEpoch(4), Offset(30)), Some((LeaderEpoch(3), Offset(20))));
        assert_eq!(cache.end_offset_for(LeaderEpoch(9), Offset(30)), Some((LeaderEpoch(5), Offset(30))));
        cache.truncate_from(Offset(15));
        assert_eq!(cache.latest(), Some(LeaderEpoch(3)));
        cache.write_now().unwrap();
        assert_eq!(EpochCache::load(dir.path()).latest(), Some(LeaderEpoch(3)));
    }

    /// The flusher takes what is unwritten, writes it while appends may note more, then says
    /// what it wrote: a change made meanwhile stays unwritten.
    #[test]
    fn a_change_made_while_the_file_is_written_stays_unwritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path());
        cache.note(LeaderEpoch(1), Offset(0));
        let first = cache.unwritten().unwrap();
        cache.note(LeaderEpoch(2), Offset(10));
        write_atomically(&first.path, &first.contents).unwrap();
        cache.written(&first);
        let second = cache.unwritten().expect("epoch 2 is not on disk yet");
        assert_eq!(EpochCache::load(dir.path()).entries, [(LeaderEpoch(1), Offset(0))]);
        write_atomically(&second.path, &second.contents).unwrap();
        cache.written(&second);
        cache.written(&first); // late news of an older write changes nothing
        assert!(cache.unwritten().is_none());
        assert_eq!(EpochCache::load(dir.path()).entries, cache.entries);
    }

    #[test]
    fn a_replicated_older_epoch_replaces_only_an_epoch_with_no_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path());
        cache.note(LeaderEpoch(2), Offset(0));
        cache.note(LeaderEpoch(5), Offset(10)); // begun at the log end, nothing appended
        assert_eq!(cache.latest_below(Offset(10)), Some(LeaderEpoch(2)));
        cache.note_replicated(LeaderEpoch(4), Offset(10));
        assert_eq!(cache.entries, [(LeaderEpoch(2), Offset(0)), (LeaderEpoch(4), Offset(10))]);
        cache.note_replicated(LeaderEpoch(4), Offset(12));
        cache.note_replicated(LeaderEpoch(6), Offset(20));
        cache.write_now().unwrap();
        assert_eq!(EpochCache::load(dir.path()).entries, cache.entries);
        assert_eq!(cache.latest_below(Offset(20)), Some(LeaderEpoch(4)));
    }
}
