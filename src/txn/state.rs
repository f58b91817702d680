//! One transactional id's metadata and Kafka's rules for changing it (its
//! `TransactionMetadata` and the checks of `TransactionCoordinator`), as pure functions: the
//! broker asks what a request may do, persists the next metadata, writes markers, and answers.
//!
//! States (Kafka's, with their stored status codes): Empty (0) → Ongoing (1) when partitions are
//! added; Ongoing → PrepareCommit (2) / PrepareAbort (3) at EndTxn or a timeout; then, once every
//! partition has its marker, CompleteCommit (4) / CompleteAbort (5). Dead (6) is an expired id;
//! PrepareEpochFence (7) is a transaction being aborted because a new producer with the same id
//! fenced the old one.

use std::collections::BTreeSet;

use crate::model::ProducerId;
use crate::protocol::ErrorCode;

/// The largest epoch handed out; past it the producer gets a new id (Kafka: `Short.MAX_VALUE - 1`,
/// so the epoch a fence bumps to still fits).
pub const PRODUCER_EPOCH_MAX: i16 = i16::MAX - 1;

/// A transaction's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// No transaction open.
    Empty,
    /// Partitions were added; records may be written.
    Ongoing,
    /// Committing: markers being written.
    PrepareCommit,
    /// Aborting: markers being written.
    PrepareAbort,
    /// Committed; the next transaction may begin.
    CompleteCommit,
    /// Aborted; the next transaction may begin.
    CompleteAbort,
    /// Expired and forgotten.
    Dead,
    /// Being aborted because a newer producer fenced this one.
    PrepareEpochFence,
}

impl TxnState {
    /// The status byte stored in `__transaction_state`.
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state a stored status byte names.
    pub fn from_code(code: i8) -> Option<TxnState> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's name (DescribeTransactions, ListTransactions, the CLI).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Markers are being written: requests other than a retry must wait.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence)
    }

    /// No transaction open or ending: a new one may begin.
    pub fn is_idle(self) -> bool {
        matches!(self, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
    }
}

/// What a request asks of a transactional id's coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// InitProducerId with this id.
    InitProducerId {
        /// `transaction.timeout.ms`.
        timeout_ms: i32,
        /// The producer's current id and epoch (v3+), when it has them.
        expected: Option<(ProducerId, i16)>,
    },
    /// AddPartitionsToTxn / AddOffsetsToTxn (the group's offsets partition).
    AddPartitions {
        /// The producer.
        producer_id: ProducerId,
        /// Its epoch.
        producer_epoch: i16,
        /// Topic partitions.
        partitions: Vec<(String, i32)>,
    },
    /// KIP-890: a partition leader asks whether these partitions are in the producer's open
    /// transaction before taking its first write to them.
    Verify {
        /// The producer.
        producer_id: ProducerId,
        /// Its epoch.
        producer_epoch: i16,
        /// Topic partitions.
        partitions: Vec<(String, i32)>,
    },
    /// EndTxn.
    EndTxn {
        /// The producer.
        producer_id: ProducerId,
        /// Its epoch.
        producer_epoch: i16,
        /// Commit (else abort).
        commit: bool,
        /// KIP-890 part 2 (EndTxn v5+): bump the epoch with the markers and answer it.
        bump_epoch: bool,
    },
}

/// One transactional id's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id it is bound to.
    pub producer_id: ProducerId,
    /// Its epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// The partitions of the open (or ending) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the open transaction began, or -1.
    pub start_ms: i64,
    /// The last change.
    pub last_update_ms: i64,
}

impl TxnMetadata {
    /// A new id bound to `producer_id` at epoch 0.
    pub fn new(transactional_id: &str, producer_id: ProducerId, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// Checks a request's producer id and epoch: a different id is INVALID_PRODUCER_ID_MAPPING,
    /// an older or newer epoch PRODUCER_FENCED (a zombie, or a producer from the future).
    pub fn check_producer(&self, producer_id: ProducerId, producer_epoch: i16) -> Result<(), ErrorCode> {
        if producer_id != self.producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if producer_epoch != self.producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        Ok(())
    }

    /// The next epoch, or `None` when the epoch is exhausted and a new producer id is needed.
    pub fn next_epoch(&self) -> Option<i16> {
        (self.producer_epoch < PRODUCER_EPOCH_MAX).then(|| self.producer_epoch + 1)
    }

    /// The metadata after InitProducerId bumped the epoch (or moved to `new_id` at epoch 0 when
    /// the epoch is exhausted): Empty, no partitions.
    pub fn reinitialised(&self, timeout_ms: i32, new_id: Option<ProducerId>, now_ms: i64) -> TxnMetadata {
        let (producer_id, producer_epoch) = match (new_id, self.next_epoch()) {
            (Some(id), _) => (id, 0),
            (None, Some(epoch)) => (self.producer_id, epoch),
            (None, None) => (self.producer_id, self.producer_epoch),
        };
        TxnMetadata {
            transactional_id: self.transactional_id.clone(),
            producer_id,
            producer_epoch,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// The metadata after adding `partitions`, or `None` if the transaction already has them all
    /// (nothing to write).
    pub fn with_partitions(&self, partitions: &[(String, i32)], now_ms: i64) -> Option<TxnMetadata> {
        if self.state == TxnState::Ongoing && partitions.iter().all(|p| self.partitions.contains(p)) {
            return None;
        }
        let mut next = self.clone();
        if !next.state.is_preparing() && next.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        Some(next)
    }

    /// The metadata while the markers of an ending transaction are written.
    pub fn preparing(&self, commit: bool, epoch: i16, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        next.producer_epoch = epoch;
        next.last_update_ms = now_ms;
        next
    }

    /// The metadata once every marker is written.
    pub fn completed(&self, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state =
            if self.state == TxnState::PrepareCommit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = now_ms;
        next
    }

    /// Whether an open transaction has outlived its timeout at `now_ms`.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }

    /// Whether an idle id has outlived `transactional.id.expiration.ms` at `now_ms`.
    pub fn expired(&self, now_ms: i64, expiration_ms: u64) -> bool {
        self.state.is_idle() && u64::try_from(now_ms.saturating_sub(self.last_update_ms)).unwrap_or(0) > expiration_ms
    }
}

/// What EndTxn does, given the metadata (Kafka's rules, TV1 and TV2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndPlan {
    /// Prepare, write markers at this epoch, complete.
    Markers {
        /// The markers' (and the producer's next) epoch.
        epoch: i16,
    },
    /// A retry of an EndTxn already done: answer success.
    AlreadyDone,
}

/// Decides EndTxn.
pub fn plan_end(
    meta: &TxnMetadata,
    producer_id: ProducerId,
    epoch: i16,
    commit: bool,
    bump: bool,
) -> Result<EndPlan, ErrorCode> {
    if producer_id != meta.producer_id {
        return Err(ErrorCode::InvalidProducerIdMapping);
    }
    // A TV2 retry comes with the epoch before the bump.
    let retry_of_bumped = bump && epoch.checked_add(1) == Some(meta.producer_epoch);
    if epoch != meta.producer_epoch && !retry_of_bumped {
        return Err(ErrorCode::ProducerFenced);
    }
    match meta.state {
        TxnState::Ongoing if !retry_of_bumped => {
            let epoch = if bump { meta.next_epoch().ok_or(ErrorCode::ProducerFenced)? } else { meta.producer_epoch };
            Ok(EndPlan::Markers { epoch })
        }
        TxnState::CompleteCommit if commit => Ok(EndPlan::AlreadyDone),
        TxnState::CompleteAbort if !commit => Ok(EndPlan::AlreadyDone),
        // TV2 lets a producer abort with nothing added.
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort if bump && !commit => {
            Ok(EndPlan::AlreadyDone)
        }
        s if s.is_preparing() => Err(ErrorCode::ConcurrentTransactions),
        _ => Err(ErrorCode::InvalidTxnState),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnMetadata {
        let meta = TxnMetadata::new("t", ProducerId(5), 60_000, 0);
        meta.with_partitions(&[("a".into(), 0)], 10).unwrap()
    }

    #[test]
    fn adding_partitions_opens_a_transaction_once() {
        let meta = ongoing();
        assert_eq!((meta.state, meta.start_ms), (TxnState::Ongoing, 10));
        assert!(meta.with_partitions(&[("a".into(), 0)], 20).is_none(), "nothing new to write");
        let more = meta.with_partitions(&[("b".into(), 1)], 20).unwrap();
        assert_eq!((more.partitions.len(), more.start_ms), (2, 10));
        assert!(meta.timed_out(60_011) && !meta.timed_out(60_010));
    }

    #[test]
    fn end_txn_follows_kafka() {
        let meta = ongoing();
        assert_eq!(plan_end(&meta, ProducerId(6), 0, true, false), Err(ErrorCode::InvalidProducerIdMapping));
        assert_eq!(plan_end(&meta, ProducerId(5), 1, true, false), Err(ErrorCode::ProducerFenced));
        assert_eq!(plan_end(&meta, ProducerId(5), 0, true, false), Ok(EndPlan::Markers { epoch: 0 }));
        assert_eq!(plan_end(&meta, ProducerId(5), 0, false, true), Ok(EndPlan::Markers { epoch: 1 }));
        let preparing = meta.preparing(true, 0, 11);
        assert_eq!(plan_end(&preparing, ProducerId(5), 0, true, false), Err(ErrorCode::ConcurrentTransactions));
        let done = preparing.completed(12);
        assert_eq!((done.state, done.partitions.len()), (TxnState::CompleteCommit, 0));
        assert_eq!(plan_end(&done, ProducerId(5), 0, true, false), Ok(EndPlan::AlreadyDone));
        assert_eq!(plan_end(&done, ProducerId(5), 0, false, false), Err(ErrorCode::InvalidTxnState));
        let fresh = TxnMetadata::new("t", ProducerId(5), 1, 0);
        assert_eq!(plan_end(&fresh, ProducerId(5), 0, true, false), Err(ErrorCode::InvalidTxnState));
    }

    #[test]
    fn epochs_bump_until_exhausted_then_the_id_changes() {
        let mut meta = TxnMetadata::new("t", ProducerId(5), 1, 0);
        meta = meta.reinitialised(1, None, 1);
        assert_eq!((meta.producer_id, meta.producer_epoch), (ProducerId(5), 1));
        meta.producer_epoch = PRODUCER_EPOCH_MAX;
        assert_eq!(meta.next_epoch(), None);
        let moved = meta.reinitialised(1, Some(ProducerId(9)), 2);
        assert_eq!((moved.producer_id, moved.producer_epoch), (ProducerId(9), 0));
        for code in 0..8 {
            assert_eq!(TxnState::from_code(code).map(TxnState::code), Some(code));
        }
        assert!(TxnState::from_code(8).is_none());
    }
}
