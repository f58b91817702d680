//! One group's offsets: those committed, and those committed inside a transaction that has not
//! ended yet (Kafka's `pendingTransactionalOffsetCommits`), held per producer until its marker
//! says COMMIT (they become committed) or ABORT (they are dropped). Pending offsets are never
//! answered by OffsetFetch; they only make `require_stable` fetches of their partitions answer
//! UNSTABLE_OFFSET_COMMIT.
//!
//! Every offset remembers where its record sits in the group's `__consumer_offsets` partition
//! (the offset of the batch that carried it), and for each partition the record later in the log
//! wins, as Kafka's `CommitRecordMetadataAndOffset.olderThan` decides. So a plain commit appended
//! after a transaction's offsets wins over them even if the transaction commits later, appends
//! acknowledged out of order cannot put an older offset back, and what the coordinator holds in
//! memory is exactly what replaying the partition rebuilds.

use std::collections::{BTreeMap, BTreeSet};

use super::records::OffsetValue;
use crate::model::{Offset, ProducerId};

/// A group's offset key: topic and partition.
pub type OffsetKey = (String, i32);

/// A committed offset in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to consume.
    pub offset: i64,
    /// Leader epoch, or -1.
    pub leader_epoch: i32,
    /// Metadata string (null kept as null for the answer, stored as empty).
    pub metadata: Option<String>,
    /// When it was committed.
    pub commit_timestamp_ms: i64,
}

impl CommittedOffset {
    /// The stored form.
    pub fn value(&self) -> OffsetValue {
        OffsetValue {
            offset: self.offset,
            leader_epoch: self.leader_epoch,
            metadata: self.metadata.clone().unwrap_or_default(),
            commit_timestamp_ms: self.commit_timestamp_ms,
        }
    }

    /// The in-memory form of a stored offset.
    pub fn from_value(value: &OffsetValue) -> CommittedOffset {
        CommittedOffset {
            offset: value.offset,
            leader_epoch: value.leader_epoch,
            metadata: Some(value.metadata.clone()),
            commit_timestamp_ms: value.commit_timestamp_ms,
        }
    }
}

/// An offset and where its record sits in the group's partition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placed {
    offset: CommittedOffset,
    at: Offset,
}

/// The committed and pending offsets of one group. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct GroupOffsets {
    committed: BTreeMap<OffsetKey, Placed>,
    pending: BTreeMap<ProducerId, BTreeMap<OffsetKey, Placed>>,
}

impl GroupOffsets {
    /// Takes offsets whose record was appended at `at`, unless a record later in the log
    /// already set the partition's offset. Records of one batch share `at`; the later in the
    /// batch wins, as replay reads them.
    pub fn commit(&mut self, at: Offset, offsets: impl IntoIterator<Item = (OffsetKey, CommittedOffset)>) {
        for (key, offset) in offsets {
            self.place(key, Placed { offset, at });
        }
    }

    fn place(&mut self, key: OffsetKey, placed: Placed) {
        if self.committed.get(&key).is_none_or(|kept| kept.at <= placed.at) {
            self.committed.insert(key, placed);
        }
    }

    /// Applies tombstones appended at `at`: the committed offsets of `keys` written before
    /// them go, and so do pending transactional ones written before them (as Kafka's
    /// `removeOffsets` drops both, and replay drops both when it reads the tombstones).
    pub fn forget(&mut self, at: Offset, keys: &[OffsetKey]) {
        for key in keys {
            if self.committed.get(key).is_some_and(|kept| kept.at < at) {
                self.committed.remove(key);
            }
            for offsets in self.pending.values_mut() {
                if offsets.get(key).is_some_and(|p| p.at < at) {
                    offsets.remove(key);
                }
            }
        }
        self.pending.retain(|_, offsets| !offsets.is_empty());
    }

    /// Holds offsets that `producer_id` committed in a transaction, appended at `at`, until the
    /// transaction ends ([`GroupOffsets::complete_txn`]). A later commit of the same partition in
    /// the same transaction replaces an earlier one.
    pub fn prepare_txn(
        &mut self,
        producer_id: ProducerId,
        at: Offset,
        offsets: impl IntoIterator<Item = (OffsetKey, CommittedOffset)>,
    ) {
        let pending = self.pending.entry(producer_id).or_default();
        for (key, offset) in offsets {
            if pending.get(&key).is_none_or(|kept| kept.at <= at) {
                pending.insert(key, Placed { offset, at });
            }
        }
    }

    /// Drops what [`GroupOffsets::prepare_txn`] held from the append at `at`, which failed
    /// (Kafka's `failPendingTxnOffsetCommit`).
    pub fn fail_txn(&mut self, producer_id: ProducerId, at: Offset) {
        if let Some(offsets) = self.pending.get_mut(&producer_id) {
            offsets.retain(|_, p| p.at != at);
            if offsets.is_empty() {
                self.pending.remove(&producer_id);
            }
        }
    }

    /// Ends `producer_id`'s transaction, whose marker sits at `marker_at`: its offsets appended
    /// before the marker become committed (`commit`), each unless a record later in the log set
    /// the partition's offset, or are dropped. Offsets appended after the marker belong to the
    /// producer's next transaction and stay pending.
    pub fn complete_txn(&mut self, producer_id: ProducerId, marker_at: Offset, commit: bool) {
        let Some(offsets) = self.pending.remove(&producer_id) else { return };
        let (ended, next): (BTreeMap<_, _>, BTreeMap<_, _>) = offsets.into_iter().partition(|(_, p)| p.at < marker_at);
        if !next.is_empty() {
            self.pending.insert(producer_id, next);
        }
        if commit {
            for (key, placed) in ended {
                self.place(key, placed);
            }
        }
    }

    /// A committed offset.
    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.committed.get(&(topic.to_string(), partition)).map(|p| &p.offset)
    }

    /// Every committed offset.
    pub fn iter(&self) -> impl Iterator<Item = (&OffsetKey, &CommittedOffset)> {
        self.committed.iter().map(|(key, p)| (key, &p.offset))
    }

    /// Whether a transaction that has not ended holds an offset for the partition (OffsetFetch
    /// with `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn is_unstable(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.pending.values().any(|offsets| offsets.contains_key(&key))
    }

    /// Whether `producer_id` has offsets pending here.
    pub fn has_pending(&self, producer_id: ProducerId) -> bool {
        self.pending.contains_key(&producer_id)
    }

    /// Every partition a pending transactional offset names.
    pub fn pending_keys(&self) -> BTreeSet<OffsetKey> {
        self.pending.values().flat_map(|offsets| offsets.keys().cloned()).collect()
    }

    /// The committed offset of `producer_id`'s transaction pending for the partition, if any
    /// (for tests and logs).
    pub fn pending(&self, producer_id: ProducerId, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.pending.get(&producer_id)?.get(&(topic.to_string(), partition)).map(|p| &p.offset)
    }
}
