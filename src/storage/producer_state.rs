//! Producer state: what a partition remembers of each idempotent or transactional producer so a
//! retried batch is not appended twice, a gap in sequences is refused, a fenced producer is kept
//! out, and open transactions hold back the last stable offset (Kafka's
//! `ProducerStateManager`).
//!
//! Per producer id: the epoch, the last [`PRODUCER_BATCHES_KEPT`] batches' sequence and offset
//! ranges, the coordinator epoch of its last marker, and the first offset of its open
//! transaction. The table lives in the log ([`super::PartitionLog`]) because it is rebuilt from
//! the log: [`ProducerStateTable::replay`] applies a batch without checks, which is what both an
//! append (after [`ProducerAppend::admit`] checked it) and recovery do.
//!
//! Persistence: a snapshot file `<offset>.snapshot` describes the state after every batch below
//! `offset`; one is written when a segment rolls and when the log closes cleanly. Recovery loads
//! the newest snapshot not beyond the recovered log end and replays the batches after it. The
//! file keeps Kafka's v1 layout (version i16, CRC-32C u32 of the rest, then i32 count and
//! entries of producer id i64, epoch i16, last sequence i32, last offset i64, offset delta i32,
//! timestamp i64, coordinator epoch i32, current transaction first offset i64), with one entry
//! per remembered batch, oldest first, where Kafka keeps only the last.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::limits::{PRODUCER_BATCHES_KEPT, PRODUCER_SNAPSHOT_ENTRIES_MAX, PRODUCER_SNAPSHOTS_KEPT};
use crate::model::{BatchSummary, ControlType, Offset, ProducerId, Timestamp, increment_sequence};

/// File extension of producer-state snapshots.
pub(crate) const SNAPSHOT_EXTENSION: &str = "snapshot";
const SNAPSHOT_VERSION: i16 = 1;
const SNAPSHOT_HEADER_BYTES: usize = 2 + 4 + 4;
const SNAPSHOT_ENTRY_BYTES: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;

/// Why a producer's batch or marker was refused; each is one of Kafka's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// A gap (or a sequence that does not follow) in the producer's sequence numbers.
    #[error("out of order sequence number for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence that would follow the last batch.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
    },
    /// A batch from an epoch older than the producer's current one (a zombie).
    #[error("producer {producer_id} epoch {got} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        got: i16,
        /// The partition's epoch for the producer.
        current: i16,
    },
    /// The partition has no state for the producer and the batch does not start a sequence
    /// (its state expired or was never here): the producer bumps its epoch (KIP-360).
    #[error("unknown producer id {producer_id}: no state here and sequence {sequence} is not 0")]
    UnknownProducerId {
        /// The producer.
        producer_id: i64,
        /// The batch's first sequence.
        sequence: i32,
    },
    /// A transactional write outside a transaction, or the reverse.
    #[error("{0}")]
    InvalidTxnState(String),
    /// A marker from a transaction coordinator older than the last one seen.
    #[error("coordinator epoch {got} is older than {current}")]
    CoordinatorFenced {
        /// The marker's coordinator epoch.
        got: i32,
        /// The last seen.
        current: i32,
    },
}

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry {
    /// Sequence of its first record.
    pub first_sequence: i32,
    /// Sequence of its last record.
    pub last_sequence: i32,
    /// Offset of its first record.
    pub first_offset: Offset,
    /// Offset of its last record.
    pub last_offset: Offset,
}

impl BatchEntry {
    fn offset_delta(&self) -> i32 {
        i32::try_from(self.last_offset.0 - self.first_offset.0).unwrap_or(0)
    }
}

/// What a partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer's current epoch here.
    pub epoch: i16,
    /// Its last batches, oldest first, at most [`PRODUCER_BATCHES_KEPT`].
    pub batches: VecDeque<BatchEntry>,
    /// When it last appended (broker time), for expiry.
    pub last_timestamp: Timestamp,
    /// The coordinator epoch of its last transaction marker, or -1.
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction here.
    pub txn_first_offset: Option<Offset>,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            last_timestamp: Timestamp::NONE,
            coordinator_epoch: -1,
            txn_first_offset: None,
        }
    }

    /// The last sequence appended, if any batch is remembered.
    pub fn last_sequence(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_sequence)
    }

    /// Moves to `epoch`; a new epoch starts its sequences afresh.
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// A transaction that a marker ended in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    /// The producer.
    pub producer_id: ProducerId,
    /// Its first offset here (the marker's own offset if it wrote nothing here).
    pub first_offset: Offset,
    /// The marker's offset.
    pub last_offset: Offset,
    /// Aborted (its records are hidden from read_committed consumers) or committed.
    pub aborted: bool,
}

/// What to do with a produced batch that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Append it.
    Append,
    /// It is a retry of this remembered batch: answer with its offsets, append nothing.
    Duplicate(BatchEntry),
}

/// Who wrote a batch, which decides the producer checks it gets (Kafka's `AppendOrigin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client's produce: epoch, sequence (duplicates, gaps, KIP-360) and transaction checks.
    Client,
    /// A coordinator writing on a producer's behalf: the group coordinator's transactional
    /// offset commits. Kafka writes those with no sequence (NO_SEQUENCE, -1) because the
    /// coordinator, not the producer, decides what is written and retries nothing itself, so
    /// the sequence checks do not apply; the epoch (a fenced producer stays out) and the
    /// transaction checks do, and a transactional batch still opens the producer's transaction
    /// here, so that its marker completes it.
    Coordinator,
}

/// Every producer of one partition. See the module docs.
#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset → producer id. The smallest key bounds the last stable
    /// offset.
    ongoing: BTreeMap<Offset, i64>,
}

impl ProducerStateTable {
    /// The state of one producer.
    pub fn get(&self, producer_id: ProducerId) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id.0)
    }

    /// Every producer, for DescribeProducers.
    pub fn producers(&self) -> impl Iterator<Item = (ProducerId, &ProducerEntry)> {
        self.producers.iter().map(|(&id, entry)| (ProducerId(id), entry))
    }

    /// Number of producers remembered.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True when no producer is remembered.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The first offset of the oldest open transaction: read_committed consumers stop before it.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        self.ongoing.keys().next().copied()
    }

    /// Open transactions, oldest first: (first offset, producer id).
    pub fn ongoing(&self) -> impl Iterator<Item = (Offset, ProducerId)> + '_ {
        self.ongoing.iter().map(|(&offset, &id)| (offset, ProducerId(id)))
    }

    /// Applies a data batch appended at `first_offset`, without checks (they were made, or the
    /// batch is being replayed from the log). `now` is when it was appended.
    pub fn replay(&mut self, batch: &BatchSummary, first_offset: Offset, now: Timestamp) {
        let id = batch.producer_id.0;
        if id < 0 || batch.control {
            return;
        }
        let entry = self.producers.entry(id).or_insert_with(|| ProducerEntry::new(batch.producer_epoch));
        entry.set_epoch(batch.producer_epoch);
        let last_offset = first_offset.plus(i64::from(batch.last_offset_delta));
        if batch.base_sequence >= 0 {
            if entry.batches.len() == PRODUCER_BATCHES_KEPT {
                entry.batches.pop_front();
            }
            entry.batches.push_back(BatchEntry {
                first_sequence: batch.base_sequence,
                last_sequence: batch.last_sequence(),
                first_offset,
                last_offset,
            });
        }
        entry.last_timestamp = now;
        if batch.transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(first_offset);
            self.ongoing.insert(first_offset, id);
        }
    }

    /// Checks a transaction marker for `producer_id` at `epoch` from a coordinator at
    /// `coordinator_epoch` (Kafka's rules: no older epoch, no older coordinator).
    pub fn check_marker(
        &self,
        producer_id: ProducerId,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ProducerError> {
        let Some(entry) = self.producers.get(&producer_id.0) else { return Ok(()) };
        if epoch < entry.epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id: producer_id.0,
                got: epoch,
                current: entry.epoch,
            });
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(ProducerError::CoordinatorFenced { got: coordinator_epoch, current: entry.coordinator_epoch });
        }
        Ok(())
    }

    /// Applies a transaction marker appended at `offset`: the producer's open transaction here
    /// (if any) ends.
    pub fn replay_marker(
        &mut self,
        producer_id: ProducerId,
        epoch: i16,
        coordinator_epoch: i32,
        kind: ControlType,
        offset: Offset,
        now: Timestamp,
    ) -> CompletedTxn {
        let entry = self.producers.entry(producer_id.0).or_insert_with(|| ProducerEntry::new(epoch));
        entry.set_epoch(epoch);
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = now;
        let first_offset = match entry.txn_first_offset.take() {
            Some(first) => {
                self.ongoing.remove(&first);
                first
            }
            None => offset,
        };
        CompletedTxn { producer_id, first_offset, last_offset: offset, aborted: kind == ControlType::Abort }
    }

    /// Forgets producers idle since before `deadline` with no open transaction
    /// (`producer.id.expiration.ms`). Returns how many were forgotten.
    pub fn expire(&mut self, deadline: Timestamp) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, entry| entry.txn_first_offset.is_some() || entry.last_timestamp >= deadline);
        before - self.producers.len()
    }

    /// The snapshot file's contents for this state.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut entries = Vec::new();
        let mut count = 0i32;
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let entry = &self.producers[id];
            let mut put = |last_sequence: i32, last_offset: i64, offset_delta: i32| {
                entries.extend_from_slice(&id.to_be_bytes());
                entries.extend_from_slice(&entry.epoch.to_be_bytes());
                entries.extend_from_slice(&last_sequence.to_be_bytes());
                entries.extend_from_slice(&last_offset.to_be_bytes());
                entries.extend_from_slice(&offset_delta.to_be_bytes());
                entries.extend_from_slice(&entry.last_timestamp.0.to_be_bytes());
                entries.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
                entries.extend_from_slice(&entry.txn_first_offset.map_or(-1, |o| o.0).to_be_bytes());
                count += 1;
            };
            if entry.batches.is_empty() {
                put(-1, -1, 0);
            }
            for batch in &entry.batches {
                put(batch.last_sequence, batch.last_offset.0, batch.offset_delta());
            }
        }
        let mut body = Vec::with_capacity(4 + entries.len());
        body.extend_from_slice(&count.to_be_bytes());
        body.extend_from_slice(&entries);
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + entries.len());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crate::model::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// The state a snapshot file describes; `None` if it is damaged or of another version (the
    /// caller then falls back to an older snapshot or a longer replay).
    pub fn decode_snapshot(bytes: &[u8]) -> Option<ProducerStateTable> {
        let version = i16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
        let crc = u32::from_be_bytes(bytes.get(2..6)?.try_into().ok()?);
        let body = bytes.get(6..)?;
        if version != SNAPSHOT_VERSION || crate::model::crc32c(body) != crc {
            return None;
        }
        let count = usize::try_from(i32::from_be_bytes(body.get(0..4)?.try_into().ok()?)).ok()?;
        if count > PRODUCER_SNAPSHOT_ENTRIES_MAX || body.len() != 4 + count * SNAPSHOT_ENTRY_BYTES {
            return None;
        }
        let mut table = ProducerStateTable::default();
        for raw in body[4..].chunks_exact(SNAPSHOT_ENTRY_BYTES) {
            let i64_at = |at: usize| raw.get(at..at + 8).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes);
            let i32_at = |at: usize| raw.get(at..at + 4).and_then(|b| b.try_into().ok()).map(i32::from_be_bytes);
            let id = i64_at(0)?;
            let epoch = i16::from_be_bytes(raw.get(8..10)?.try_into().ok()?);
            let (last_sequence, last_offset, offset_delta) = (i32_at(10)?, i64_at(14)?, i32_at(22)?);
            let (timestamp, coordinator_epoch, txn_first) = (i64_at(26)?, i32_at(34)?, i64_at(38)?);
            let entry = table.producers.entry(id).or_insert_with(|| ProducerEntry::new(epoch));
            entry.epoch = epoch;
            entry.last_timestamp = Timestamp(timestamp);
            entry.coordinator_epoch = coordinator_epoch;
            entry.txn_first_offset = (txn_first >= 0).then_some(Offset(txn_first));
            if last_offset >= 0 && last_sequence >= 0 && offset_delta >= 0 {
                if entry.batches.len() == PRODUCER_BATCHES_KEPT {
                    entry.batches.pop_front();
                }
                entry.batches.push_back(BatchEntry {
                    first_sequence: decrement_sequence(last_sequence, offset_delta),
                    last_sequence,
                    first_offset: Offset(last_offset - i64::from(offset_delta)),
                    last_offset: Offset(last_offset),
                });
            }
        }
        for (&id, entry) in &table.producers {
            if let Some(first) = entry.txn_first_offset {
                table.ongoing.insert(first, id);
            }
        }
        Some(table)
    }
}

/// The checks of one produce request's batches against the table, staged so that a request
/// with several batches of one producer sees its own earlier batches, and nothing changes until
/// all passed (Kafka's `ProducerAppendInfo`).
pub struct ProducerAppend<'a> {
    table: &'a ProducerStateTable,
    staged: HashMap<i64, ProducerEntry>,
    origin: Origin,
}

impl<'a> ProducerAppend<'a> {
    /// Starts checking a client's produce against `table`.
    pub fn new(table: &'a ProducerStateTable) -> Self {
        ProducerAppend::with_origin(table, Origin::Client)
    }

    /// Starts checking batches written by `origin` against `table`.
    pub fn with_origin(table: &'a ProducerStateTable, origin: Origin) -> Self {
        ProducerAppend { table, staged: HashMap::new(), origin }
    }

    /// Checks a data batch that would be appended at `first_offset`, as its origin asks, and
    /// stages its effect. Batches without a producer id pass unchecked.
    pub fn admit(&mut self, batch: &BatchSummary, first_offset: Offset) -> Result<Admission, ProducerError> {
        let id = batch.producer_id.0;
        if id < 0 {
            if batch.transactional {
                return Err(ProducerError::InvalidTxnState("a transactional batch needs a producer id".into()));
            }
            return Ok(Admission::Append);
        }
        let current = self.staged.get(&id).or_else(|| self.table.producers.get(&id));
        let epoch = batch.producer_epoch;
        let (first, last) = (batch.base_sequence, batch.last_sequence());
        match current {
            None => {
                // KIP-360: a producer with no state here may only start at sequence 0.
                if self.origin == Origin::Client && first != 0 {
                    return Err(ProducerError::UnknownProducerId { producer_id: id, sequence: first });
                }
            }
            Some(entry) => {
                if epoch < entry.epoch {
                    return Err(ProducerError::InvalidProducerEpoch {
                        producer_id: id,
                        got: epoch,
                        current: entry.epoch,
                    });
                }
                // A coordinator's batch carries no sequence (see `Origin::Coordinator`): no gap
                // to find, no retry to detect.
                if self.origin == Origin::Client {
                    if epoch == entry.epoch {
                        if let Some(duplicate) =
                            entry.batches.iter().find(|b| b.first_sequence == first && b.last_sequence == last)
                        {
                            return Ok(Admission::Duplicate(*duplicate));
                        }
                        // With no batch remembered in this epoch (it began with a marker), the
                        // first batch starts at 0.
                        let expected = entry.last_sequence().map_or(0, |s| increment_sequence(s, 1));
                        if first != expected {
                            return Err(ProducerError::OutOfOrderSequence { producer_id: id, expected, got: first });
                        }
                    } else if first != 0 {
                        return Err(ProducerError::OutOfOrderSequence { producer_id: id, expected: 0, got: first });
                    }
                }
                if entry.txn_first_offset.is_some() && !batch.transactional {
                    return Err(ProducerError::InvalidTxnState(format!(
                        "producer {id} has an open transaction and sent a non-transactional batch"
                    )));
                }
            }
        }
        let mut staged = ProducerStateTable::default();
        if let Some(entry) = current {
            staged.producers.insert(id, entry.clone());
        }
        staged.replay(batch, first_offset, Timestamp::NONE);
        if let Some(entry) = staged.producers.remove(&id) {
            self.staged.insert(id, entry);
        }
        Ok(Admission::Append)
    }
}

/// `sequence - by` (`by` ≥ 0), wrapping below 0 to `i32::MAX` as sequences do.
fn decrement_sequence(sequence: i32, by: i32) -> i32 {
    let wrapped = (i64::from(sequence) - i64::from(by)).rem_euclid(i64::from(i32::MAX) + 1);
    i32::try_from(wrapped).unwrap_or(0)
}

/// The snapshot file for `offset`.
pub(crate) fn snapshot_path(dir: &Path, offset: Offset) -> PathBuf {
    dir.join(format!("{:020}.{SNAPSHOT_EXTENSION}", offset.0))
}

/// The snapshots in `dir`, by offset, oldest first.
pub(crate) fn list_snapshots(dir: &Path) -> Vec<Offset> {
    let mut offsets: Vec<Offset> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name();
                    let name = name.to_str()?;
                    let stem = name.strip_suffix(&format!(".{SNAPSHOT_EXTENSION}"))?;
                    (stem.len() == 20).then(|| stem.parse::<i64>().ok()).flatten().map(Offset)
                })
                .collect()
        })
        .unwrap_or_default();
    offsets.sort();
    offsets
}

/// Writes the snapshot for `offset` (replacing a file of that name through a rename, so a crash
/// leaves the old file or the new one) and deletes all but the newest [`PRODUCER_SNAPSHOTS_KEPT`].
/// Not synced: a lost or torn snapshot only means a longer replay, since the CRC gives it away.
pub(crate) fn write_snapshot(dir: &Path, offset: Offset, contents: &[u8]) -> std::io::Result<()> {
    let path = snapshot_path(dir, offset);
    let tmp = path.with_extension("snapshot.tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, &path)?;
    let all = list_snapshots(dir);
    for old in all.iter().take(all.len().saturating_sub(PRODUCER_SNAPSHOTS_KEPT)) {
        let _ = std::fs::remove_file(snapshot_path(dir, *old));
    }
    Ok(())
}

/// Loads the newest readable snapshot at or below `log_end`, deleting any beyond it (they
/// describe batches recovery cut). Returns the state and the offset replay starts from; with no
/// usable snapshot, an empty state and `None` (replay everything).
pub(crate) fn load_snapshot(dir: &Path, log_end: Offset) -> (ProducerStateTable, Option<Offset>) {
    let mut found = None;
    for offset in list_snapshots(dir).into_iter().rev() {
        let path = snapshot_path(dir, offset);
        if offset > log_end {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if found.is_none() {
            match std::fs::read(&path).ok().and_then(|bytes| ProducerStateTable::decode_snapshot(&bytes)) {
                Some(table) => found = Some((table, offset)),
                None => tracing::warn!(path = %path.display(), "ignoring an unreadable producer-state snapshot"),
            }
        }
    }
    match found {
        Some((table, offset)) => (table, Some(offset)),
        None => (ProducerStateTable::default(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(producer: i64, epoch: i16, first: i32, records: i32) -> BatchSummary {
        BatchSummary {
            size: 100,
            last_offset_delta: records - 1,
            base_timestamp: Timestamp(1),
            max_timestamp: Timestamp(1),
            producer_id: ProducerId(producer),
            producer_epoch: epoch,
            base_sequence: first,
            transactional: false,
            control: false,
        }
    }

    /// Admits and applies one batch at `offset`, as an append does.
    fn append(table: &mut ProducerStateTable, b: &BatchSummary, offset: i64) -> Result<Admission, ProducerError> {
        let admission = ProducerAppend::new(table).admit(b, Offset(offset))?;
        if admission == Admission::Append {
            table.replay(b, Offset(offset), Timestamp(10));
        }
        Ok(admission)
    }

    #[test]
    fn retries_are_duplicates_and_gaps_are_refused() {
        let mut t = ProducerStateTable::default();
        assert_eq!(append(&mut t, &batch(7, 0, 0, 3), 0), Ok(Admission::Append));
        assert_eq!(append(&mut t, &batch(7, 0, 3, 2), 3), Ok(Admission::Append));
        let dup = append(&mut t, &batch(7, 0, 0, 3), 5).unwrap();
        assert_eq!(
            dup,
            Admission::Duplicate(BatchEntry {
                first_sequence: 0,
                last_sequence: 2,
                first_offset: Offset(0),
                last_offset: Offset(2)
            })
        );
        assert!(matches!(
            append(&mut t, &batch(7, 0, 9, 1), 5),
            Err(ProducerError::OutOfOrderSequence { expected: 5, got: 9, .. })
        ));
        assert!(matches!(append(&mut t, &batch(7, 0, 4, 1), 5), Err(ProducerError::OutOfOrderSequence { .. })));
        assert_eq!(append(&mut t, &batch(7, 0, 5, 1), 5), Ok(Admission::Append));
        // Only the last five batches are remembered.
        for (i, seq) in (6..11).enumerate() {
            assert_eq!(append(&mut t, &batch(7, 0, seq, 1), 6 + i as i64), Ok(Admission::Append));
        }
        assert!(matches!(append(&mut t, &batch(7, 0, 0, 3), 11), Err(ProducerError::OutOfOrderSequence { .. })));
        assert_eq!(t.get(ProducerId(7)).unwrap().batches.len(), PRODUCER_BATCHES_KEPT);
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut t = ProducerStateTable::default();
        append(&mut t, &batch(1, 2, 0, 1), 0).unwrap();
        assert!(matches!(append(&mut t, &batch(1, 1, 1, 1), 1), Err(ProducerError::InvalidProducerEpoch { .. })));
        assert!(matches!(append(&mut t, &batch(1, 3, 5, 1), 1), Err(ProducerError::OutOfOrderSequence { .. })));
        assert_eq!(append(&mut t, &batch(1, 3, 0, 1), 1), Ok(Admission::Append));
        assert_eq!(t.get(ProducerId(1)).unwrap().epoch, 3);
        // Unknown producers must start at 0 (KIP-360); plain producers pass.
        assert!(matches!(append(&mut t, &batch(2, 0, 4, 1), 2), Err(ProducerError::UnknownProducerId { .. })));
        assert_eq!(append(&mut t, &batch(-1, -1, -1, 4), 2), Ok(Admission::Append));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut t = ProducerStateTable::default();
        append(&mut t, &batch(1, 0, 0, 1), 0).unwrap();
        let entry = t.producers.get_mut(&1).unwrap();
        entry.batches.back_mut().unwrap().last_sequence = i32::MAX - 1;
        assert_eq!(append(&mut t, &batch(1, 0, i32::MAX, 3), 1), Ok(Admission::Append));
        assert_eq!(t.get(ProducerId(1)).unwrap().last_sequence(), Some(1));
        assert_eq!(append(&mut t, &batch(1, 0, 2, 1), 4), Ok(Admission::Append));
    }

    #[test]
    fn a_request_sees_its_own_earlier_batches() {
        let t = ProducerStateTable::default();
        let mut staged = ProducerAppend::new(&t);
        assert_eq!(staged.admit(&batch(5, 0, 0, 2), Offset(0)), Ok(Admission::Append));
        assert_eq!(staged.admit(&batch(5, 0, 2, 2), Offset(2)), Ok(Admission::Append));
        assert!(staged.admit(&batch(5, 0, 7, 1), Offset(4)).is_err());
        assert!(t.is_empty(), "nothing changes until applied");
    }

    #[test]
    fn transactions_open_and_close() {
        let mut t = ProducerStateTable::default();
        let mut b = batch(9, 0, 0, 2);
        b.transactional = true;
        append(&mut t, &b, 10).unwrap();
        assert_eq!(t.first_unstable_offset(), Some(Offset(10)));
        assert!(matches!(append(&mut t, &batch(9, 0, 2, 1), 12), Err(ProducerError::InvalidTxnState(_))));
        assert!(t.check_marker(ProducerId(9), -1, 0).is_err());
        t.check_marker(ProducerId(9), 0, 3).unwrap();
        let done = t.replay_marker(ProducerId(9), 0, 3, ControlType::Abort, Offset(12), Timestamp(11));
        assert_eq!(
            done,
            CompletedTxn {
                producer_id: ProducerId(9),
                first_offset: Offset(10),
                last_offset: Offset(12),
                aborted: true
            }
        );
        assert_eq!(t.first_unstable_offset(), None);
        assert!(matches!(t.check_marker(ProducerId(9), 0, 2), Err(ProducerError::CoordinatorFenced { .. })));
        // An open transaction keeps its producer from expiring.
        let mut c = batch(4, 0, 0, 1);
        c.transactional = true;
        append(&mut t, &c, 13).unwrap();
        assert_eq!(t.expire(Timestamp(i64::MAX)), 1);
        assert!(t.get(ProducerId(4)).is_some() && t.get(ProducerId(9)).is_none());
    }

    #[test]
    fn coordinator_batches_skip_sequences_but_not_epochs() {
        let mut t = ProducerStateTable::default();
        // The group coordinator's transactional offsets: no sequence, from a producer this
        // partition has never seen (a client's batch would need sequence 0).
        let mut offsets = batch(6, 2, -1, 1);
        offsets.transactional = true;
        assert!(matches!(
            ProducerAppend::new(&t).admit(&offsets, Offset(0)),
            Err(ProducerError::UnknownProducerId { .. })
        ));
        let mut coordinator = ProducerAppend::with_origin(&t, Origin::Coordinator);
        assert_eq!(coordinator.admit(&offsets, Offset(0)), Ok(Admission::Append));
        assert_eq!(coordinator.admit(&offsets, Offset(1)), Ok(Admission::Append), "no duplicate to detect");
        t.replay(&offsets, Offset(0), Timestamp(10));
        assert_eq!(t.first_unstable_offset(), Some(Offset(0)), "it opens the transaction");
        assert!(t.get(ProducerId(6)).unwrap().batches.is_empty(), "no sequence remembered");
        let mut zombie = offsets;
        zombie.producer_epoch = 1;
        assert!(matches!(
            ProducerAppend::with_origin(&t, Origin::Coordinator).admit(&zombie, Offset(1)),
            Err(ProducerError::InvalidProducerEpoch { .. })
        ));
        let done = t.replay_marker(ProducerId(6), 2, 0, ControlType::Commit, Offset(1), Timestamp(11));
        assert_eq!((done.first_offset, t.first_unstable_offset()), (Offset(0), None));
    }

    #[test]
    fn snapshots_round_trip_and_refuse_damage() {
        let mut t = ProducerStateTable::default();
        for seq in 0..7 {
            append(&mut t, &batch(3, 1, seq * 2, 2), i64::from(seq) * 2).unwrap();
        }
        let mut b = batch(8, 0, 0, 1);
        b.transactional = true;
        append(&mut t, &b, 20).unwrap();
        t.replay_marker(ProducerId(11), 4, 2, ControlType::Commit, Offset(21), Timestamp(12));
        let bytes = t.encode_snapshot();
        let back = ProducerStateTable::decode_snapshot(&bytes).unwrap();
        assert_eq!(back.producers, t.producers);
        assert_eq!(back.ongoing, t.ongoing);
        for cut in [0, 5, bytes.len() - 1] {
            assert!(ProducerStateTable::decode_snapshot(&bytes[..cut]).is_none());
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(ProducerStateTable::decode_snapshot(&flipped).is_none());
    }

    #[test]
    fn snapshot_files_newest_usable_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = ProducerStateTable::default();
        append(&mut t, &batch(1, 0, 0, 1), 0).unwrap();
        write_snapshot(dir.path(), Offset(1), &t.encode_snapshot()).unwrap();
        append(&mut t, &batch(1, 0, 1, 1), 1).unwrap();
        write_snapshot(dir.path(), Offset(2), &t.encode_snapshot()).unwrap();
        write_snapshot(dir.path(), Offset(9), &t.encode_snapshot()).unwrap();
        assert_eq!(list_snapshots(dir.path()), [Offset(2), Offset(9)], "only the newest are kept");
        let (loaded, from) = load_snapshot(dir.path(), Offset(5));
        assert_eq!((from, loaded.get(ProducerId(1)).unwrap().last_sequence()), (Some(Offset(2)), Some(1)));
        assert_eq!(list_snapshots(dir.path()), [Offset(2)], "a snapshot past the log end is deleted");
        std::fs::write(snapshot_path(dir.path(), Offset(2)), b"junk").unwrap();
        let (loaded, from) = load_snapshot(dir.path(), Offset(5));
        assert_eq!((from, loaded.len()), (None, 0));
    }
}
