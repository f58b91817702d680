//! The bookkeeping of the idempotent producer (KIP-98, KIP-360), as plain data and pure
//! functions, so it is tested without a broker: the producer's identity, each partition's run
//! of sequence numbers, what an answer to a stamped batch means, and when a partition's next
//! batch may go. [`super::producer`] does the I/O around it.
//!
//! A *run* is the sequence numbers one partition's batches get under one identity (producer id
//! and epoch). They count records from 0 and wrap from `i32::MAX` to 0. A broker appends a
//! batch only if its first sequence follows the last one it appended for that producer on that
//! partition; it answers DUPLICATE_SEQUENCE_NUMBER for a batch among the last five it appended
//! (a retry of one whose answer was lost), and OUT_OF_ORDER_SEQUENCE_NUMBER for one that skips
//! ahead. The rules, after Kafka's Java client (`TransactionManager`, `RecordAccumulator`):
//!
//! - A batch keeps its sequence numbers across retries, so the broker can tell a retry from new
//!   records. A retried batch goes out alone (nothing else of its partition in flight), so the
//!   broker sees the run in order again; batches never sent may follow it.
//! - At most [`IDEMPOTENT_IN_FLIGHT_MAX`] batches of a partition are in flight: the broker only
//!   remembers that many for spotting duplicates.
//! - OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID for the batch right after everything
//!   the run has settled is a real gap (records the broker lost, or a batch that failed for
//!   good): nothing of the run from that batch on is in the log. The partition asks for a new
//!   identity and, once its in-flight batches are back, gives every queued batch new sequence
//!   numbers under it and retries them, in order; no duplicate can come of it, since none of
//!   them was appended. For a later batch the same error only means an earlier one is being
//!   retried: it is retried too, with the same numbers.
//! - A new identity (from a gap here or on another partition) starts new runs. A partition
//!   moves to it once none of its batches is in flight and none of its retries is waiting; its
//!   unsent batches are then numbered from 0 under it. Until then its retries keep their old
//!   stamp: the broker has not seen the new epoch on that partition, so it still takes them.
//! - INVALID_PRODUCER_EPOCH fails the batch (the broker fenced that epoch on the partition) and
//!   asks for a new identity; PRODUCER_FENCED and authorization failures end the producer.

use super::error::ClientError;
use crate::limits::PRODUCER_BATCHES_KEPT;
use crate::model::{ProducerId, ProducerStamp};
use crate::protocol::ErrorCode;

/// The most batches of one partition in flight at once. Brokers (Kafka's, and Sluice's:
/// [`PRODUCER_BATCHES_KEPT`]) remember the last five batches of each producer per partition to
/// recognise a retry; a sixth in flight could be a retry of one already forgotten, and be
/// appended twice. Also the most requests in flight per connection an idempotent producer
/// accepts (Kafka's `max.in.flight.requests.per.connection` ≤ 5).
pub const IDEMPOTENT_IN_FLIGHT_MAX: usize = PRODUCER_BATCHES_KEPT;

/// Sequence numbers wrap from `i32::MAX` to 0, so they cycle through 2^31 values.
const SEQUENCE_CYCLE: u64 = 1 << 31;

/// The `transaction_timeout_ms` of an InitProducerId without a transactional id. Brokers only
/// use it for transactions; 60 s is Kafka's default `transaction.timeout.ms`, inside every
/// broker's `transaction.max.timeout.ms`, so no broker refuses it.
pub(super) const INIT_TRANSACTION_TIMEOUT_MS: i32 = 60_000;

/// Who the producer is to the brokers: InitProducerId's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerIdentity {
    /// The producer id.
    pub producer_id: ProducerId,
    /// The epoch; a new one starts every partition's sequence numbers over.
    pub epoch: i16,
    /// Given to a transactional producer: its batches carry the transactional bit.
    pub transactional: bool,
}

/// Where a batch sits in its partition's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    /// The identity of the run.
    pub(super) identity: ProducerIdentity,
    /// Records of the run before this batch; its base sequence, unwrapped.
    pub(super) start: u64,
    /// Records in the batch.
    pub(super) records: u32,
}

impl Stamp {
    /// The batch's first sequence number, wrapped to the wire's range.
    pub(super) fn base_sequence(&self) -> i32 {
        // Below 2^31, so it fits.
        i32::try_from(self.start % SEQUENCE_CYCLE).unwrap_or(0)
    }

    /// Records of the run up to the end of this batch.
    pub(super) fn end(&self) -> u64 {
        self.start + u64::from(self.records)
    }

    /// The header fields to write.
    pub(super) fn producer_stamp(&self) -> ProducerStamp {
        ProducerStamp {
            producer_id: self.identity.producer_id,
            epoch: self.identity.epoch,
            base_sequence: self.base_sequence(),
            transactional: self.identity.transactional,
        }
    }
}

/// A partition's sequence numbers under one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    identity: ProducerIdentity,
    /// Records stamped so far: where the next batch starts.
    next: u64,
    /// Every batch before this is settled (acknowledged, or failed for good): the sequence
    /// the broker expects next, as far as the producer can know.
    settled: u64,
    /// Batches settled while an earlier one was not, as `start..end`. At most the batches in
    /// flight, so a few; empty (and unallocated) almost always.
    settled_ahead: Vec<(u64, u64)>,
}

impl Run {
    fn new(identity: ProducerIdentity) -> Run {
        Run { identity, next: 0, settled: 0, settled_ahead: Vec::new() }
    }

    /// The numbers of the next batch, of `records` records.
    fn assign(&mut self, records: u32) -> Stamp {
        let stamp = Stamp { identity: self.identity, start: self.next, records };
        self.next = stamp.end();
        stamp
    }

    fn settle(&mut self, stamp: &Stamp) {
        if stamp.identity != self.identity || stamp.start < self.settled {
            return;
        }
        if stamp.start > self.settled {
            if !self.settled_ahead.contains(&(stamp.start, stamp.end())) {
                self.settled_ahead.push((stamp.start, stamp.end()));
            }
            return;
        }
        self.settled = stamp.end();
        while let Some(at) = self.settled_ahead.iter().position(|&(start, _)| start == self.settled) {
            self.settled = self.settled_ahead.swap_remove(at).1;
        }
        self.settled_ahead.retain(|&(start, _)| start > self.settled);
    }
}

/// What a partition's oldest queued batch may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Go, as it is stamped.
    Send,
    /// Not yet: batches in flight must come back first, or the identity must change.
    Wait,
    /// Stamp the queued batches that have no numbers yet, after the run's last, then go.
    Continue,
    /// Start a new run under the current identity ([`PartitionSequences::restart`]), stamp
    /// every queued batch anew in order, then go.
    Restart,
}

/// A partition's idempotence state.
#[derive(Debug, Default)]
pub(super) struct PartitionSequences {
    run: Option<Run>,
    /// Batches of the partition in flight.
    pub(super) in_flight: usize,
    /// A real gap showed that no queued batch of the run is in the log: the next identity
    /// numbers them all anew, retries included.
    rewrite: bool,
}

impl PartitionSequences {
    /// The stamp of a batch of `records` records closing now, or `None` to stamp it when it is
    /// first sent: when the producer has no identity yet, the partition is still on an older
    /// one, or the queue's last batch (`back`: `None` for an empty queue) has no numbers, so
    /// that stamped batches always come before unstamped ones.
    pub(super) fn stamp_at_close(
        &mut self,
        current: Option<ProducerIdentity>,
        back: Option<Option<Stamp>>,
        records: u32,
    ) -> Option<Stamp> {
        let current = current?;
        if self.rewrite {
            return None;
        }
        if self.run.is_none() && self.in_flight == 0 && back.is_none() {
            self.run = Some(Run::new(current));
        }
        let run = self.run.as_mut().filter(|run| run.identity == current)?;
        match back {
            None => Some(run.assign(records)),
            Some(Some(stamp)) if stamp.identity == current => Some(run.assign(records)),
            Some(_) => None,
        }
    }

    /// Takes back `stamp`, the last one given, whose batch could not be built.
    pub(super) fn unassign(&mut self, stamp: &Stamp) {
        if let Some(run) = self.run.as_mut()
            && run.identity == stamp.identity
            && run.next == stamp.end()
        {
            run.next = stamp.start;
        }
    }

    /// What the oldest queued batch (its stamp, and whether it was sent before) may do, the
    /// producer's identity being `current`.
    pub(super) fn next(&self, front: Option<Stamp>, sent: bool, current: ProducerIdentity) -> Next {
        if self.in_flight >= IDEMPOTENT_IN_FLIGHT_MAX {
            return Next::Wait;
        }
        let run = self.run.as_ref().map(|run| run.identity);
        if !self.rewrite {
            match front {
                Some(stamp) if Some(stamp.identity) == run => {
                    if sent {
                        // A retry goes alone, so the broker sees the run in order again.
                        return if self.in_flight == 0 { Next::Send } else { Next::Wait };
                    }
                    if stamp.identity == current {
                        return Next::Send;
                    }
                }
                None if run == Some(current) => return Next::Continue,
                _ => {}
            }
        } else if run == Some(current) {
            // The new identity has not come yet.
            return Next::Wait;
        }
        // The partition moves to the current identity, once nothing of the old run is out.
        if self.in_flight > 0 { Next::Wait } else { Next::Restart }
    }

    /// Starts a run under `identity`; the caller stamps every queued batch anew with
    /// [`PartitionSequences::assign`], in order.
    pub(super) fn restart(&mut self, identity: ProducerIdentity) {
        self.run = Some(Run::new(identity));
        self.rewrite = false;
    }

    /// The numbers of the next batch of the run, of `records` records (after
    /// [`Next::Continue`] or [`Next::Restart`]). `None` without a run, which the producer never
    /// asks for.
    pub(super) fn assign(&mut self, records: u32) -> Option<Stamp> {
        self.run.as_mut().map(|run| run.assign(records))
    }

    /// The batch of `stamp` is settled: acknowledged (or a duplicate), or failed for good.
    pub(super) fn settle(&mut self, stamp: &Stamp) {
        if let Some(run) = self.run.as_mut() {
            run.settle(stamp);
        }
    }

    /// OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID for the batch of `stamp`. True
    /// when it is a real gap: the batch comes right after everything the run has settled, so
    /// the partition waits for a new identity and then numbers its queue anew. False when an
    /// earlier batch is still unsettled: the batch is retried as it is, after that one.
    pub(super) fn sequence_error(&mut self, stamp: &Stamp) -> bool {
        let Some(run) = self.run.as_ref() else { return false };
        if run.identity != stamp.identity || stamp.start != run.settled {
            return false;
        }
        self.rewrite = true;
        true
    }
}

/// What an error for a stamped batch means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// DUPLICATE_SEQUENCE_NUMBER: the broker has the batch already; a success.
    Duplicate,
    /// OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID: see
    /// [`PartitionSequences::sequence_error`]; retried either way.
    Sequence,
    /// INVALID_PRODUCER_EPOCH: the broker fenced the batch's epoch on the partition. The batch
    /// fails and the producer gets a new identity.
    StaleEpoch,
    /// The producer cannot go on: fenced by a newer instance, not authorized, or a broker that
    /// cannot take idempotent batches. Every batch fails, and every later send.
    Fatal,
    /// Anything else: retried if retriable, else failed.
    Other,
}

/// What `error` means for a stamped batch.
pub(super) fn verdict(error: &ClientError) -> Verdict {
    match error.code() {
        Some(ErrorCode::DuplicateSequenceNumber) => Verdict::Duplicate,
        Some(ErrorCode::OutOfOrderSequenceNumber | ErrorCode::UnknownProducerId) => Verdict::Sequence,
        Some(ErrorCode::InvalidProducerEpoch) => Verdict::StaleEpoch,
        Some(
            ErrorCode::ProducerFenced
            | ErrorCode::ClusterAuthorizationFailed
            | ErrorCode::TransactionalIdAuthorizationFailed
            | ErrorCode::UnsupportedVersion
            | ErrorCode::UnsupportedForMessageFormat,
        ) => Verdict::Fatal,
        _ => Verdict::Other,
    }
}

/// Whether an InitProducerId that failed with `error` is worth asking again: the network,
/// and the coordinator errors Kafka marks retriable.
pub(super) fn init_retriable(error: &ClientError) -> bool {
    error.is_retriable()
        || matches!(error, ClientError::NoBrokerReachable { .. })
        || matches!(
            error.code(),
            Some(
                ErrorCode::CoordinatorLoadInProgress
                    | ErrorCode::NotCoordinator
                    | ErrorCode::CoordinatorNotAvailable
                    | ErrorCode::ConcurrentTransactions
            )
        )
}

/// The identity an InitProducerId answer gives, asked to replace `leaving` (`None` for the
/// first). `addr` is the broker's, for errors.
pub(super) fn identity_from(
    addr: &str,
    error_code: i16,
    producer_id: i64,
    epoch: i16,
    leaving: Option<ProducerIdentity>,
) -> Result<ProducerIdentity, ClientError> {
    if let Some(error) = ClientError::from_code(error_code, || "InitProducerId".to_string(), None) {
        return Err(error);
    }
    let protocol = |reason: String| ClientError::Protocol { addr: addr.to_string(), reason };
    if producer_id < 0 || epoch < 0 {
        return Err(protocol(format!("InitProducerId gave producer id {producer_id} epoch {epoch}")));
    }
    let identity = ProducerIdentity { producer_id: ProducerId(producer_id), epoch, transactional: false };
    if Some(identity) == leaving {
        // Sequences restart under a new identity only; the same one again would reuse them.
        return Err(protocol(format!("InitProducerId gave the same producer id {producer_id} and epoch {epoch}")));
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ProducerIdentity = ProducerIdentity { producer_id: ProducerId(7), epoch: 0, transactional: false };
    const B: ProducerIdentity = ProducerIdentity { producer_id: ProducerId(7), epoch: 1, transactional: false };

    fn stamp(identity: ProducerIdentity, start: u64, records: u32) -> Stamp {
        Stamp { identity, start, records }
    }

    #[test]
    fn sequences_count_records_and_wrap_at_i32_max() {
        let mut sequences = PartitionSequences::default();
        let first = sequences.stamp_at_close(Some(A), None, 3).unwrap();
        let second = sequences.stamp_at_close(Some(A), Some(Some(first)), 2).unwrap();
        assert_eq!((first.base_sequence(), second.base_sequence()), (0, 3));
        let near_the_end = stamp(A, i32::MAX as u64 - 1, 5);
        assert_eq!(near_the_end.base_sequence(), i32::MAX - 1);
        let after = stamp(A, near_the_end.end(), 1);
        // i32::MAX - 1, i32::MAX, 0, 1, 2 are the five; the next starts at 3.
        assert_eq!(after.base_sequence(), 3);
        assert_eq!(stamp(A, SEQUENCE_CYCLE, 1).base_sequence(), 0);
        let header = near_the_end.producer_stamp();
        assert_eq!((header.producer_id, header.epoch, header.transactional), (ProducerId(7), 0, false));
    }

    #[test]
    fn stamps_at_close_only_continue_a_current_run() {
        let mut sequences = PartitionSequences::default();
        assert_eq!(sequences.stamp_at_close(None, None, 1), None, "no identity yet");
        // An unstamped batch is queued: later ones wait for it, so numbers stay in queue order.
        assert_eq!(sequences.stamp_at_close(Some(A), Some(None), 1), None);
        let first = sequences.stamp_at_close(Some(A), None, 4).unwrap();
        assert_eq!(first, stamp(A, 0, 4));
        // The producer moved to B while the partition is still on A.
        assert_eq!(sequences.stamp_at_close(Some(B), Some(Some(first)), 1), None);
        // A build failed: its numbers are given back.
        let second = sequences.stamp_at_close(Some(A), Some(Some(first)), 2).unwrap();
        sequences.unassign(&second);
        assert_eq!(sequences.stamp_at_close(Some(A), Some(Some(first)), 2), Some(second));
    }

    #[test]
    fn the_front_batch_goes_waits_or_moves_to_the_new_identity() {
        let mut sequences = PartitionSequences::default();
        // Nothing stamped yet: the first run starts when the first batch goes.
        assert_eq!(sequences.next(None, false, A), Next::Restart);
        sequences.restart(A);
        let first = sequences.assign(1).unwrap();
        assert_eq!(sequences.next(Some(first), false, A), Next::Send);
        assert_eq!(sequences.next(None, false, A), Next::Continue);

        // A retry goes alone.
        sequences.in_flight = 1;
        assert_eq!(sequences.next(Some(first), true, A), Next::Wait);
        assert_eq!(sequences.next(Some(first), false, A), Next::Send, "a fresh batch may follow");
        sequences.in_flight = IDEMPOTENT_IN_FLIGHT_MAX;
        assert_eq!(sequences.next(Some(first), false, A), Next::Wait, "five in flight at most");

        // The producer moved to B: retries of A still go as they are; new batches wait until
        // nothing of A is out, then the partition starts over under B.
        sequences.in_flight = 1;
        assert_eq!(sequences.next(Some(first), false, B), Next::Wait);
        assert_eq!(sequences.next(None, false, B), Next::Wait);
        sequences.in_flight = 0;
        assert_eq!(sequences.next(Some(first), true, B), Next::Send);
        assert_eq!(sequences.next(Some(first), false, B), Next::Restart);
        sequences.restart(B);
        assert_eq!(sequences.assign(3), Some(stamp(B, 0, 3)));
    }

    #[test]
    fn a_gap_right_after_the_settled_batches_renumbers_the_queue() {
        let mut sequences = PartitionSequences::default();
        sequences.restart(A);
        let batches: Vec<Stamp> = (0..3).map(|_| sequences.assign(10).unwrap()).collect();
        sequences.settle(&batches[0]);
        // The third is refused while the second is unsettled: not a gap, retried as it is.
        assert!(!sequences.sequence_error(&batches[2]));
        // The second comes right after the settled first: a real gap.
        assert!(sequences.sequence_error(&batches[1]));
        sequences.in_flight = 1;
        assert_eq!(sequences.next(Some(batches[1]), true, A), Next::Wait, "the new identity has not come");
        assert_eq!(sequences.next(Some(batches[1]), true, B), Next::Wait, "a batch is still out");
        sequences.in_flight = 0;
        // Retries included: none of them is in the log.
        assert_eq!(sequences.next(Some(batches[1]), true, B), Next::Restart);
        sequences.restart(B);
        assert_eq!(sequences.assign(10), Some(stamp(B, 0, 10)));
        assert!(!sequences.sequence_error(&batches[1]), "an answer for the old run changes nothing");
    }

    #[test]
    fn batches_settled_out_of_order_settle_the_run_once_the_hole_fills() {
        let mut sequences = PartitionSequences::default();
        sequences.restart(A);
        let batches: Vec<Stamp> = (0..4).map(|_| sequences.assign(5).unwrap()).collect();
        // The second failed for good while the first was being retried; the third acked.
        sequences.settle(&batches[1]);
        sequences.settle(&batches[2]);
        assert!(!sequences.sequence_error(&batches[3]), "the first is still unsettled");
        sequences.settle(&batches[0]);
        sequences.settle(&batches[0]);
        // Now the fourth comes right after everything settled: a refusal there is a gap.
        assert!(sequences.sequence_error(&batches[3]));
        let run = sequences.run.as_ref().unwrap();
        assert_eq!((run.settled, run.settled_ahead.len()), (15, 0));
    }

    #[test]
    fn errors_are_sorted_by_what_they_mean() {
        let broker = |code: ErrorCode| ClientError::from_code(code.code(), || "t-0".into(), None).unwrap();
        assert_eq!(verdict(&broker(ErrorCode::DuplicateSequenceNumber)), Verdict::Duplicate);
        assert_eq!(verdict(&broker(ErrorCode::OutOfOrderSequenceNumber)), Verdict::Sequence);
        assert_eq!(verdict(&broker(ErrorCode::UnknownProducerId)), Verdict::Sequence);
        assert_eq!(verdict(&broker(ErrorCode::InvalidProducerEpoch)), Verdict::StaleEpoch);
        assert_eq!(verdict(&broker(ErrorCode::ProducerFenced)), Verdict::Fatal);
        assert_eq!(verdict(&broker(ErrorCode::NotLeaderOrFollower)), Verdict::Other);
        let network = ClientError::Network { addr: "a".into(), reason: "reset".into() };
        assert_eq!(verdict(&network), Verdict::Other);

        assert!(init_retriable(&broker(ErrorCode::CoordinatorLoadInProgress)));
        assert!(init_retriable(&broker(ErrorCode::ConcurrentTransactions)));
        assert!(init_retriable(&network));
        assert!(!init_retriable(&broker(ErrorCode::ClusterAuthorizationFailed)));
    }

    #[test]
    fn init_producer_id_answers_are_checked() {
        assert_eq!(identity_from("b", 0, 7, 0, None), Ok(A));
        assert_eq!(identity_from("b", 0, 7, 1, Some(A)), Ok(B));
        let error = identity_from("b", ErrorCode::NotCoordinator.code(), -1, -1, None).unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::NotCoordinator));
        assert!(matches!(identity_from("b", 0, -1, 0, None), Err(ClientError::Protocol { .. })));
        assert!(matches!(identity_from("b", 0, 7, 0, Some(A)), Err(ClientError::Protocol { .. })));
    }
}
