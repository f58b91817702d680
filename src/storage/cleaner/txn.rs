//! What the cleaner tracks of transactions while it walks a log in offset order (Kafka's
//! `CleanedTransactionMetadata`): which batches belong to aborted transactions (removed), and
//! whether a transaction marker may go.
//!
//! - A data batch of an aborted transaction may be discarded.
//! - An abort marker may go once this walk met no batch of its transaction (an earlier clean
//!   removed them all); a commit marker likewise once it met none (they were cleaned away).
//!   Either goes only after its delete horizon, which the first clean that finds it removable
//!   sets (the caller's rule).

use std::collections::{HashMap, HashSet, VecDeque};

use crate::model::{ControlType, ProducerId, RecordBatch, parse_marker};
use crate::storage::txn_index::AbortedTxn;

/// See the module docs.
pub(crate) struct TxnTracker {
    /// Aborted transactions not reached yet, by first offset.
    aborted: VecDeque<AbortedTxn>,
    /// Aborted transactions under way, by producer: whether a batch of it was met.
    ongoing_aborted: HashMap<ProducerId, bool>,
    /// Producers with a committed (or not aborted) transaction under way whose batch was met.
    ongoing_committed: HashSet<ProducerId>,
}

impl TxnTracker {
    /// A tracker for a walk over the offsets the `aborted` transactions (in marker order)
    /// overlap.
    pub(crate) fn new(aborted: Vec<AbortedTxn>) -> TxnTracker {
        let mut aborted = aborted;
        aborted.sort_by_key(|t| t.first_offset);
        TxnTracker { aborted: aborted.into(), ongoing_aborted: HashMap::new(), ongoing_committed: HashSet::new() }
    }

    fn reach(&mut self, last_offset: crate::model::Offset) {
        while self.aborted.front().is_some_and(|t| t.first_offset <= last_offset) {
            if let Some(txn) = self.aborted.pop_front() {
                self.ongoing_aborted.entry(txn.producer_id).or_insert(false);
            }
        }
    }

    /// A data batch met: true if it belongs to an aborted transaction (so it may go).
    pub(crate) fn on_batch(&mut self, batch: &RecordBatch<'_>) -> bool {
        self.reach(batch.last_offset());
        if !batch.is_transactional() {
            return false;
        }
        match self.ongoing_aborted.get_mut(&batch.producer_id()) {
            Some(seen) => {
                *seen = true;
                true
            }
            None => {
                self.ongoing_committed.insert(batch.producer_id());
                false
            }
        }
    }

    /// A control batch met: true if it may go (once its horizon passed).
    pub(crate) fn on_control(&mut self, batch: &RecordBatch<'_>) -> bool {
        self.reach(batch.last_offset());
        let producer_id = batch.producer_id();
        match parse_marker(batch) {
            Some((ControlType::Abort, _)) => !self.ongoing_aborted.remove(&producer_id).unwrap_or(false),
            Some((ControlType::Commit, _)) => !self.ongoing_committed.remove(&producer_id),
            // A control batch emptied by an earlier clean: nothing depends on it any more.
            None => batch.records_count() == 0,
        }
    }
}
