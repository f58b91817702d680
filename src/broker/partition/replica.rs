//! [`Partition`]: one partition on the shard that owns it (Kafka's word for this broker's copy
//! is a replica), with every piece of its state, and the only door to its log; plus the types
//! its operations speak: [`Acks`], [`IsolationLevel`], [`OffsetSpec`], [`DeleteTo`], [`Fetched`],
//! [`ProducerDescription`], [`PartitionError`].

use std::cell::{Cell, Ref, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::leadership::{LeaderState, Leadership, NodeId, Role};
use crate::broker::topic_config::TopicConfig;
use crate::limits::{PRODUCER_BATCHES_KEPT, VERIFICATION_GUARDS_MAX};
use crate::model::recompress::recompress_all;
use crate::model::{
    BatchError, BatchIter, Chunk, ControlType, LeaderEpoch, Offset, ProducerId, RecordBatch, Timestamp, TimestampType,
    TopicId, TopicPartition, ValidBatches,
};
use crate::protocol::ErrorCode;
use crate::storage::{
    self, AbortedTxn, AppendInfo, CompletedTxn, Origin, PartitionLog, PendingAppend, ProducerError, ProducerStateTable,
    ReadLimits, ReadSlice,
};

/// Bytes a replay reads at a time.
const REPLAY_READ_BYTES: u64 = 1024 * 1024;

/// Kafka's LogValidator timestamp rule for CreateTime topics: a record whose timestamp is more
/// than `before_max_ms` behind `now` or `after_max_ms` ahead of it is refused (INVALID_TIMESTAMP);
/// records without a timestamp (-1) pass. Checked on each batch's first and largest timestamps,
/// the ones its header carries, so no batch is decompressed for it.
fn check_timestamps(
    batches: &ValidBatches,
    (before_max_ms, after_max_ms): (i64, i64),
    now: Timestamp,
) -> Result<(), PartitionError> {
    let (earliest, latest) = (now.0.saturating_sub(before_max_ms), now.0.saturating_add(after_max_ms));
    for batch in batches.batches() {
        for timestamp in [batch.base_timestamp, batch.max_timestamp] {
            if timestamp != Timestamp::NONE && !(earliest..=latest).contains(&timestamp.0) {
                return Err(PartitionError::InvalidTimestamp(format!(
                    "Timestamp {} of message is out of range. The timestamp should be within [{earliest}, {latest}]",
                    timestamp.0
                )));
            }
        }
    }
    Ok(())
}

/// Why a partition operation failed; mapped to a Kafka error code at the handler's edge.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PartitionError {
    /// No such topic or partition on this broker.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The partition exists but is not open yet (a topic being created), or has no leader.
    #[error("partition not available yet")]
    NotAvailable,
    /// Another broker leads the partition: the client re-routes after refreshing its metadata.
    #[error("this broker does not lead the partition")]
    NotLeader,
    /// The request's leader epoch is older than this leader's (KIP-320): the client refreshes
    /// its metadata.
    #[error("fenced leader epoch")]
    FencedLeaderEpoch,
    /// The request's leader epoch is newer than this broker knows: it has not learnt of the
    /// leadership yet.
    #[error("unknown leader epoch")]
    UnknownLeaderEpoch,
    /// acks=all with fewer in-sync replicas than `min.insync.replicas`: nothing was appended.
    #[error("the ISR has fewer than min.insync.replicas members")]
    NotEnoughReplicas,
    /// The ISR fell below `min.insync.replicas` after the append: it is in the leader's log but
    /// not committed.
    #[error("the ISR fell below min.insync.replicas after the append")]
    NotEnoughReplicasAfterAppend,
    /// The storage layer refused or failed.
    #[error(transparent)]
    Storage(#[from] storage::Error),
    /// acks other than -1, 0 or 1.
    #[error("invalid required acks {0}")]
    InvalidRequiredAcks(i16),
    /// The append was not acknowledged within the request's timeout.
    #[error("timed out waiting for the append to be acknowledged")]
    Timeout,
    /// Records are missing from a produce request.
    #[error("no records")]
    NoRecords,
    /// A batch the broker refuses for what it is, not for its bytes.
    #[error("{0}")]
    InvalidRecord(String),
    /// A CreateTime record outside `message.timestamp.before.max.ms`/`after.max.ms` of now.
    #[error("{0}")]
    InvalidTimestamp(String),
    /// A request field Kafka does not define (an isolation level other than 0 or 1).
    #[error("{0}")]
    InvalidRequest(String),
    /// A client's produce to an internal topic (`__consumer_offsets`, `__transaction_state`):
    /// only the coordinators write there.
    #[error("cannot append to internal topic {0}")]
    InternalTopic(String),
    /// The transaction coordinator refused a transactional write (KIP-890 verification).
    #[error("transactional write refused by the coordinator: {0:?}")]
    Transaction(ErrorCode),
    /// A transactional producer's first batch to this partition in a transaction: the
    /// transaction coordinator must confirm the partition was added (KIP-890) and the produce
    /// come back with `guard`. Never reaches a client.
    #[error("transactional write awaits verification")]
    NeedsVerification {
        /// The guard to produce with once verified; a marker for the producer drops it.
        guard: u64,
        /// The producer.
        producer_id: ProducerId,
        /// Its epoch.
        producer_epoch: i16,
    },
}

impl From<BatchError> for PartitionError {
    fn from(e: BatchError) -> Self {
        PartitionError::Storage(storage::Error::InvalidBatch(e))
    }
}

/// Which acknowledgement a producer waits for (Kafka's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: no answer at all.
    None,
    /// `acks=1`: the leader has the records under its flush mode.
    Leader,
    /// `acks=all` (-1): the records are committed — below the high watermark. On one node that
    /// is the leader's own flush; with replication, every in-sync replica has them.
    All,
}

impl TryFrom<i16> for Acks {
    type Error = PartitionError;

    fn try_from(acks: i16) -> Result<Self, PartitionError> {
        match acks {
            0 => Ok(Acks::None),
            1 => Ok(Acks::Leader),
            -1 => Ok(Acks::All),
            other => Err(PartitionError::InvalidRequiredAcks(other)),
        }
    }
}

/// What a consumer may read (Kafka's `isolation_level` in Fetch and ListOffsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// 0: everything below the high watermark, open and aborted transactions included.
    #[default]
    ReadUncommitted,
    /// 1: only below the last stable offset, with the aborted transactions in that range
    /// named so the consumer can drop their records.
    ReadCommitted,
}

impl TryFrom<i8> for IsolationLevel {
    type Error = PartitionError;

    fn try_from(level: i8) -> Result<Self, PartitionError> {
        match level {
            0 => Ok(IsolationLevel::ReadUncommitted),
            1 => Ok(IsolationLevel::ReadCommitted),
            other => Err(PartitionError::InvalidRequest(format!("unknown isolation level {other}"))),
        }
    }
}

/// An append whose offsets are assigned; [`Appended::acknowledged`] resolves once it is
/// acknowledged as `acks` asks.
#[must_use = "an append is acknowledged only when acknowledged() resolves"]
pub struct Appended {
    pending: PendingAppend,
    /// The append time stamped on LogAppendTime topics, else `Timestamp::NONE`.
    pub log_append_time: Timestamp,
}

impl Appended {
    /// Offsets assigned (not acknowledged yet).
    pub fn info(&self) -> AppendInfo {
        self.pending.info()
    }

    /// Waits for the acknowledgement `acks` asks for: nothing for [`Acks::None`], the leader's
    /// flush for [`Acks::Leader`], the high watermark passing the records for [`Acks::All`].
    pub async fn acknowledged(self, acks: Acks, partition: &Partition) -> Result<AppendInfo, PartitionError> {
        let info = self.pending.info();
        match acks {
            Acks::None => Ok(info),
            Acks::Leader => Ok(self.pending.durable().await?),
            Acks::All => {
                // The flush first: it reports a failed write, after which the high watermark
                // would never move.
                let epoch = partition.leader_epoch();
                self.pending.durable().await?;
                partition.committed(info.last_offset, epoch).await?;
                Ok(info)
            }
        }
    }
}

/// What a fetch of one partition found.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// High watermark.
    pub high_watermark: Offset,
    /// Last stable offset.
    pub last_stable_offset: Offset,
    /// Log start offset.
    pub log_start_offset: Offset,
    /// The record batches, as they go to the socket.
    pub chunks: Vec<Chunk>,
    /// Their total size.
    pub bytes: u64,
    /// Read committed: the aborted transactions overlapping the records returned (empty when
    /// none are). Read uncommitted: `None`.
    pub aborted_transactions: Option<Vec<AbortedTxn>>,
    /// The offset the read was bounded by: the high watermark, the last stable offset, or for a
    /// follower the log end. A long poll waits for it to move.
    pub bound: Offset,
    /// For a follower whose log diverged from this leader's: the largest epoch both hold at or
    /// below the follower's last one, and where it ends here (KIP-595's diverging epoch).
    pub diverging_epoch: Option<(LeaderEpoch, Offset)>,
}

/// One producer a partition remembers (DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerDescription {
    /// The producer.
    pub producer_id: ProducerId,
    /// Its current epoch here.
    pub producer_epoch: i16,
    /// The sequence of its last record, or -1.
    pub last_sequence: i32,
    /// When it last wrote here (broker time), or -1.
    pub last_timestamp: Timestamp,
    /// The coordinator epoch of its last transaction marker, or -1.
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction here, if one is open.
    pub current_txn_start_offset: Option<Offset>,
}

/// A led partition's replication, as a metrics scrape reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderHealth {
    /// Its ISR is smaller than its replica set (Kafka's under-replicated partition).
    pub under_replicated: bool,
    /// The largest gap, in records, between its log end and a follower's last fetch offset.
    pub follower_lag_max: i64,
}

/// What DescribeLogDirs reports of one partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDirDescription {
    /// The bytes of its segment files.
    pub size_bytes: u64,
    /// How far the log end offset is behind the high watermark, as Kafka counts it for a
    /// partition's current log (never below 0; a follower's log may trail its leader's high
    /// watermark, a leader's never does, so on one node it is always 0).
    pub offset_lag: i64,
    /// The cleaner's view of a compacted log.
    pub cleaning: Option<CleaningState>,
}

/// Where a compacted log's cleaning stands (for `sluice topic describe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleaningState {
    /// Bytes written since the last clean (the dirty part of the cleanable range).
    pub dirty_bytes: u64,
    /// Bytes of the cleanable range, clean and dirty.
    pub cleanable_bytes: u64,
    /// When and how far the last clean since the log opened went, if there was one.
    pub last_clean: Option<(Timestamp, Offset)>,
}

/// Where ListOffsets looks (the wire's -1…-5 sentinels, named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// -2: the log start offset.
    Earliest,
    /// -4: the earliest offset kept locally (the log start, without tiered storage).
    EarliestLocal,
    /// -1: the high watermark.
    Latest,
    /// -3: the record with the largest timestamp.
    MaxTimestamp,
    /// -5: the last offset in tiered storage; with none, Kafka answers no offset (-1).
    LatestTiered,
    /// The first record with a timestamp at or after this one.
    Timestamp(Timestamp),
    /// A negative value Kafka does not define: no record qualifies.
    Unknown,
}

impl OffsetSpec {
    /// The spec a ListOffsets request's `timestamp` field asks for.
    pub fn from_wire(timestamp: i64) -> OffsetSpec {
        match timestamp {
            -2 => OffsetSpec::Earliest,
            -4 => OffsetSpec::EarliestLocal,
            -1 => OffsetSpec::Latest,
            -3 => OffsetSpec::MaxTimestamp,
            -5 => OffsetSpec::LatestTiered,
            t if t >= 0 => OffsetSpec::Timestamp(Timestamp(t)),
            _ => OffsetSpec::Unknown,
        }
    }
}

/// Where DeleteRecords moves the log start offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteTo {
    /// -1 on the wire: the high watermark.
    HighWatermark,
    /// Before this offset.
    Offset(Offset),
}

impl DeleteTo {
    /// The target a DeleteRecords request's `offset` field asks for.
    pub fn from_wire(offset: i64) -> DeleteTo {
        if offset == -1 { DeleteTo::HighWatermark } else { DeleteTo::Offset(Offset(offset)) }
    }
}

/// A producer's KIP-890 verification on a partition, from its first write of a transaction
/// there until every write sent to verification has landed.
#[derive(Debug, Clone)]
struct Verification {
    /// What its verified writes carry; `None` once one of them opened the transaction here.
    guard: Option<u64>,
    /// The producer epoch it was given for.
    epoch: i16,
    /// First sequences of the writes answered `NeedsVerification` that have not landed yet (at
    /// most [`PRODUCER_BATCHES_KEPT`], the producer's requests in flight): a write of the
    /// producer refused for a gap that one of them fills waits for it.
    awaiting: Vec<i32>,
}

impl Verification {
    fn awaits(&mut self, sequence: i32) {
        if !self.awaiting.contains(&sequence) {
            if self.awaiting.len() >= PRODUCER_BATCHES_KEPT {
                self.awaiting.remove(0);
            }
            self.awaiting.push(sequence);
        }
    }
}

/// One partition on its owning shard.
pub struct Partition {
    topic_partition: TopicPartition,
    topic_id: TopicId,
    log: PartitionLog,
    config: RefCell<TopicConfig>,
    leader_epoch: Cell<LeaderEpoch>,
    leadership: RefCell<Leadership>,
    /// Held by the one task that feeds a follower's log (append, truncate), so that a fetch
    /// answer from a leader it no longer follows cannot interleave with the new leader's.
    follower_gate: glommio::sync::Semaphore,
    /// KIP-890 verifications by producer id: the guard its next first transactional write must
    /// carry, and the writes still to land. A marker for the producer removes it, so a write
    /// verified before an abort cannot land after it and open a transaction nobody will end.
    verification: RefCell<HashMap<i64, Verification>>,
    next_guard: Cell<u64>,
}

impl Partition {
    /// A partition over an opened log.
    pub(crate) fn new(
        topic_partition: TopicPartition,
        topic_id: TopicId,
        log: PartitionLog,
        config: TopicConfig,
        leader_epoch: LeaderEpoch,
    ) -> Self {
        Partition {
            topic_partition,
            topic_id,
            log,
            config: RefCell::new(config),
            leader_epoch: Cell::new(leader_epoch),
            leadership: RefCell::new(Leadership::opened(leader_epoch)),
            follower_gate: glommio::sync::Semaphore::new(1),
            verification: RefCell::new(HashMap::new()),
            next_guard: Cell::new(1),
        }
    }

    /// Which partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    /// The topic's id.
    pub fn topic_id(&self) -> TopicId {
        self.topic_id
    }

    /// The leader epoch stamped into appended batches.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch.get()
    }

    /// This broker's role for the partition.
    pub fn role(&self) -> Role {
        self.leadership.borrow().role
    }

    /// The topic's configuration.
    pub fn config(&self) -> Ref<'_, TopicConfig> {
        self.config.borrow()
    }

    /// Takes the leader epoch of a new leadership (the metadata quorum moved it).
    pub(crate) fn set_leader_epoch(&self, epoch: LeaderEpoch) {
        self.leader_epoch.set(epoch);
        self.leadership.borrow_mut().epoch = epoch;
    }

    /// Takes a changed topic configuration (IncrementalAlterConfigs).
    pub(crate) fn set_config(&self, config: TopicConfig) {
        self.log.set_config(config.log.clone());
        *self.config.borrow_mut() = config;
    }

    /// Validates and appends the batches in `records`; stamps the append time on
    /// `LogAppendTime` topics. A transactional producer's first write to this partition in a
    /// transaction needs `guard` from an earlier [`PartitionError::NeedsVerification`], proving
    /// the coordinator was asked since the last marker.
    pub fn append(&self, records: BytesMut, guard: Option<u64>) -> Result<Appended, PartitionError> {
        self.append_from(records, guard, Origin::Client)
    }

    /// Appends batches a coordinator writes on a producer's behalf (the group coordinator's
    /// transactional offset commits; Kafka's `AppendOrigin.COORDINATOR`). They carry the
    /// producer's id and epoch but no sequence, so only the epoch and transaction checks apply
    /// (see `storage::Origin`); a transactional one still opens the producer's transaction here,
    /// which its marker ends. No KIP-890 guard: the guard proves a client's produce was verified
    /// with the transaction coordinator, and the coordinator path does its own checks before
    /// writing.
    pub fn append_for_coordinator(&self, records: BytesMut) -> Result<Appended, PartitionError> {
        self.append_from(records, None, Origin::Coordinator)
    }

    fn append_from(&self, records: BytesMut, guard: Option<u64>, origin: Origin) -> Result<Appended, PartitionError> {
        if records.is_empty() {
            return Err(PartitionError::NoRecords);
        }
        self.check_leader()?;
        self.log.check_writable()?;
        let (limit, timestamp_type, compacted, window, codec) = {
            let config = self.config.borrow();
            let window = (config.timestamp_before_max_ms, config.timestamp_after_max_ms);
            let compacted = config.log.cleanup_policy.compact;
            (config.log.batch_bytes_max(), config.timestamp_type, compacted, window, config.compression)
        };
        // The only place a produced batch is parsed and its CRC checked; the log trusts the
        // result, and checks idempotent producers' sequences on the batches' summaries.
        let mut batches = ValidBatches::new(records, limit)?;
        if origin == Origin::Client && timestamp_type == TimestampType::CreateTime {
            check_timestamps(&batches, window, Timestamp::now())?;
        }
        if batches.batches().iter().any(|b| b.control) {
            return Err(PartitionError::InvalidRecord("control batches are written only by the broker".into()));
        }
        // The cleaner keeps the latest record per key, so a compacted log has no place for a
        // record without one: Kafka's LogValidator refuses it, and so do we.
        if compacted && has_keyless_record(batches.as_bytes(), limit)? {
            return Err(PartitionError::InvalidRecord(format!(
                "Compacted topic cannot accept message without key in topic partition {}.",
                self.topic_partition()
            )));
        }
        // Kafka's rule for Produce v3+: one batch per partition. Kept for producer-id batches,
        // whose deduplication answers for the whole append (plain batches may come several).
        if batches.batches().len() > 1 && batches.batches().iter().any(|b| b.producer_id.0 >= 0) {
            return Err(PartitionError::InvalidRecord(
                "an idempotent or transactional produce carries exactly one batch per partition".into(),
            ));
        }
        // The transactional producer whose verification this append may settle, with the first
        // sequence of its batch and whether the batch opens the transaction here.
        let mut landing = None;
        if origin == Origin::Client
            && let Some(first) = batches.batches().iter().find(|b| b.transactional)
        {
            let (producer_id, producer_epoch, sequence) =
                (first.producer_id, first.producer_epoch, first.base_sequence);
            let open_here =
                self.log.with_producers(|p| p.get(producer_id).is_some_and(|e| e.txn_first_offset.is_some()));
            let mut verifications = self.verification.borrow_mut();
            if !open_here && producer_id.0 >= 0 {
                let pending = verifications
                    .get_mut(&producer_id.0)
                    .filter(|v| v.epoch == producer_epoch)
                    .and_then(|v| v.guard.map(|g| (v, g)));
                match pending {
                    // The guard stays until the append opens the transaction (below): a
                    // producer's concurrent first writes all verify and carry the same guard, and
                    // a later batch's guarded retry that comes first and is refused (its sequence
                    // leaves a gap) must not use up the guard the first batch's retry needs.
                    Some((_, expected)) if guard == Some(expected) => {}
                    Some((pending, guard)) => {
                        pending.awaits(sequence);
                        return Err(PartitionError::NeedsVerification { guard, producer_id, producer_epoch });
                    }
                    None => {
                        // Producer ids come from the network: past the bound, forget them all.
                        // A forgotten guard only costs its producer one more verification.
                        if verifications.len() >= VERIFICATION_GUARDS_MAX {
                            verifications.clear();
                        }
                        let guard = self.next_guard.get();
                        self.next_guard.set(guard.wrapping_add(1));
                        let pending =
                            Verification { guard: Some(guard), epoch: producer_epoch, awaiting: vec![sequence] };
                        verifications.insert(producer_id.0, pending);
                        return Err(PartitionError::NeedsVerification { guard, producer_id, producer_epoch });
                    }
                }
            }
            if verifications.contains_key(&producer_id.0) {
                landing = Some((producer_id, sequence, !open_here));
            }
        }
        // `compression.type` other than `producer`: stored with the topic's codec, as Kafka does.
        if let Some(codec) = codec.filter(|_| origin == Origin::Client)
            && let Some(rewritten) = recompress_all(batches.as_bytes(), codec, limit)?
        {
            batches = ValidBatches::new(rewritten, limit)?;
        }
        let mut log_append_time = Timestamp::NONE;
        if timestamp_type == TimestampType::LogAppendTime {
            log_append_time = Timestamp::now();
            batches.stamp_log_append_time(log_append_time);
        }
        let pending = self.log.append_from(batches, self.leader_epoch.get(), origin)?;
        if let Some((producer_id, sequence, opened)) = landing {
            let mut verifications = self.verification.borrow_mut();
            if let Some(pending) = verifications.get_mut(&producer_id.0) {
                pending.awaiting.retain(|s| *s != sequence);
                if opened {
                    // The transaction is open here now, until its marker; the next one verifies
                    // again.
                    pending.guard = None;
                }
                if pending.guard.is_none() && pending.awaiting.is_empty() {
                    verifications.remove(&producer_id.0);
                }
            }
        }
        Ok(Appended { pending, log_append_time })
    }

    /// Whether the producer of the batch `records` starts with has writes sent to verification
    /// here that have not landed yet (so a write of it may have to wait for them).
    pub fn verifying_writes_of(&self, records: &[u8]) -> bool {
        if self.verification.borrow().is_empty() {
            return false;
        }
        let Ok(batch) = RecordBatch::parse_prefix(records, usize::MAX) else { return false };
        self.verification.borrow().get(&batch.producer_id().0).is_some_and(|pending| !pending.awaiting.is_empty())
    }

    /// Whether `error`, the answer to a transactional write, is a sequence gap that another
    /// write of the same producer, sent to verification and not landed yet, fills.
    /// Verifications run concurrently (a produce request's retry also waits for its other
    /// partitions), so a later batch, verified or sent once the transaction opened, can arrive
    /// first; refused, its gap would reach the producer after the earlier batch's success, and
    /// look real.
    pub fn behind_a_verified_write(&self, error: &PartitionError) -> bool {
        let (producer_id, expected) = match error {
            PartitionError::Storage(storage::Error::Producer(ProducerError::OutOfOrderSequence {
                producer_id,
                expected,
                ..
            })) => (*producer_id, *expected),
            // No state here yet: the write that fills the gap starts the sequence.
            PartitionError::Storage(storage::Error::Producer(ProducerError::UnknownProducerId {
                producer_id, ..
            })) => (*producer_id, 0),
            _ => return false,
        };
        self.verification.borrow().get(&producer_id).is_some_and(|pending| pending.awaiting.contains(&expected))
    }

    /// Writes a transaction marker for `producer_id` (WriteTxnMarkers): its transaction here
    /// ends, committed or aborted. Drops the producer's verification guard.
    pub fn append_marker(
        &self,
        producer_id: ProducerId,
        producer_epoch: i16,
        coordinator_epoch: i32,
        kind: ControlType,
    ) -> Result<(Appended, CompletedTxn), PartitionError> {
        self.check_leader()?;
        self.verification.borrow_mut().remove(&producer_id.0);
        let (pending, completed) =
            self.log.append_marker(producer_id, producer_epoch, coordinator_epoch, kind, self.leader_epoch.get())?;
        Ok((Appended { pending, log_append_time: Timestamp::NONE }, completed))
    }

    /// Runs `f` over the partition's producer state (DescribeProducers, transactions).
    pub fn with_producers<T>(&self, f: impl FnOnce(&ProducerStateTable) -> T) -> T {
        self.log.with_producers(f)
    }

    /// Resolves once the high watermark passes `last_offset`, appended under leader epoch
    /// `epoch`; fails if the log fails or closes first, if the leadership ends (another leader
    /// may not have the records: the producer retries there), or if the ISR falls below
    /// `min.insync.replicas`.
    async fn committed(&self, last_offset: Offset, epoch: LeaderEpoch) -> Result<(), PartitionError> {
        let mut outcome = Ok(());
        self.log
            .wait_for_high_watermark_beyond_or(last_offset, || {
                if self.leader_epoch.get() != epoch || self.role() != Role::Leader {
                    outcome = Err(PartitionError::NotLeader);
                } else if self.leadership.borrow().leader.as_ref().is_some_and(|l| !l.enough_in_sync()) {
                    outcome = Err(PartitionError::NotEnoughReplicasAfterAppend);
                } else {
                    return false;
                }
                true
            })
            .await;
        if self.log.high_watermark() > last_offset {
            Ok(())
        } else if outcome.is_err() {
            outcome
        } else {
            Err(PartitionError::NotAvailable)
        }
    }

    /// Refuses work only a leader does when this broker does not lead the partition.
    fn check_leader(&self) -> Result<(), PartitionError> {
        match self.role() {
            Role::Leader => Ok(()),
            Role::Follower { .. } => Err(PartitionError::NotLeader),
        }
    }

    /// KIP-320: a request's `current_leader_epoch` (-1: none given) against this leadership.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), PartitionError> {
        let mine = self.leader_epoch.get().0;
        match current_leader_epoch {
            e if e < 0 || e == mine => Ok(()),
            e if e < mine => Err(PartitionError::FencedLeaderEpoch),
            _ => Err(PartitionError::UnknownLeaderEpoch),
        }
    }

    /// An acks=all produce needs `min.insync.replicas` in the ISR before anything is appended.
    pub fn check_enough_replicas(&self) -> Result<(), PartitionError> {
        match &self.leadership.borrow().leader {
            Some(leader) if !leader.enough_in_sync() => Err(PartitionError::NotEnoughReplicas),
            _ => Ok(()),
        }
    }

    /// Makes this broker the partition's leader under `epoch` (or takes the image's ISR for the
    /// current leadership). A new leadership starts its epoch at the log end, and counts
    /// followers as unknown until they fetch.
    pub(crate) fn become_leader(
        &self,
        me: NodeId,
        epoch: LeaderEpoch,
        replicas: Vec<NodeId>,
        isr: Vec<NodeId>,
        partition_epoch: i32,
    ) -> Result<(), PartitionError> {
        let min_insync = usize::try_from(self.config.borrow().min_insync_replicas).unwrap_or(1);
        let now = Instant::now();
        {
            let mut leadership = self.leadership.borrow_mut();
            self.lower_opened_high_watermark(&mut leadership, replicas.len());
            let same = leadership.role == Role::Leader && leadership.epoch == epoch;
            match &mut leadership.leader {
                Some(state) if same => {
                    state.update(replicas, isr, partition_epoch, min_insync, now);
                }
                _ => {
                    self.log.begin_epoch(epoch)?;
                    let start = self.log.log_end_offset();
                    leadership.leader =
                        Some(LeaderState::new(me, replicas, isr, partition_epoch, start, min_insync, now));
                    leadership.role = Role::Leader;
                    leadership.epoch = epoch;
                    self.leader_epoch.set(epoch);
                    tracing::info!(tp = %self.topic_partition, epoch = epoch.0, log_end = %start, "leading");
                }
            }
        }
        self.update_high_watermark();
        Ok(())
    }

    /// Makes this broker a follower of `leader` (-1: none now) under `epoch`. Producers waiting
    /// for their records to commit here are told this broker no longer leads.
    pub(crate) fn become_follower(&self, leader: NodeId, epoch: LeaderEpoch, replicas: usize) {
        {
            let mut leadership = self.leadership.borrow_mut();
            self.lower_opened_high_watermark(&mut leadership, replicas);
            let changed = leadership.role != (Role::Follower { leader }) || leadership.epoch != epoch;
            if changed {
                tracing::info!(tp = %self.topic_partition, leader, epoch = epoch.0, "following");
            }
            leadership.role = Role::Follower { leader };
            leadership.epoch = epoch;
            leadership.leader = None;
            self.leader_epoch.set(epoch);
        }
        // The high watermark stays until the leader says where it is; this also wakes the
        // producers waiting on the old leadership.
        self.log.set_high_watermark_bound(self.log.high_watermark());
    }

    /// A replicated partition's log opens with its high watermark at its log end, which may
    /// hold records the other replicas never got: lowered to the log start once, so that only
    /// what the replicas confirm becomes visible again. (A high-watermark checkpoint, as Kafka
    /// keeps, would spare consumers that short wait after a restart.)
    fn lower_opened_high_watermark(&self, leadership: &mut Leadership, replicas: usize) {
        if std::mem::take(&mut leadership.opened) && replicas > 1 {
            self.log.set_high_watermark(self.log.log_start_offset());
        }
    }

    /// Moves the high watermark's bound as the leader's state says.
    fn update_high_watermark(&self) {
        let bound = match &self.leadership.borrow().leader {
            Some(leader) => leader.high_watermark_bound(self.log.high_watermark()),
            None => return,
        };
        self.log.set_high_watermark_bound(bound);
    }

    /// A follower's fetch: checks the leadership and the follower's last epoch against this log
    /// (a diverged follower gets the diverging epoch and no records), notes how far the
    /// follower is, and reads from `offset` up to the log end.
    pub async fn fetch_for_follower(
        &self,
        replica: NodeId,
        offset: Offset,
        max_bytes: u64,
        current_leader_epoch: i32,
        last_fetched_epoch: i32,
    ) -> Result<Fetched, PartitionError> {
        self.check_leader()?;
        self.check_leader_epoch(current_leader_epoch)?;
        let mut fetched = Fetched {
            high_watermark: self.log.high_watermark(),
            last_stable_offset: self.log.last_stable_offset(),
            log_start_offset: self.log.log_start_offset(),
            bound: self.log.log_end_offset(),
            ..Fetched::default()
        };
        if last_fetched_epoch >= 0 {
            let diverged = match self.log.end_offset_for_epoch(LeaderEpoch(last_fetched_epoch)) {
                Some((epoch, end)) => (epoch.0 != last_fetched_epoch || end < offset).then_some((epoch, end)),
                // No epoch this old here: everything the follower has is suspect.
                None => Some((LeaderEpoch(-1), self.log.log_start_offset())),
            };
            if let Some(diverging) = diverged {
                fetched.diverging_epoch = Some(diverging);
                return Ok(fetched);
            }
        }
        let log_end = self.log.log_end_offset();
        if offset > log_end || offset < self.log.log_start_offset() {
            return Err(PartitionError::Storage(storage::Error::OffsetOutOfRange {
                requested: offset,
                log_start: self.log.log_start_offset(),
                log_end,
            }));
        }
        let known = match &mut self.leadership.borrow_mut().leader {
            Some(leader) => leader.on_fetch(replica, offset, log_end, Instant::now()),
            None => false,
        };
        if !known {
            return Err(PartitionError::NotLeader);
        }
        self.update_high_watermark();
        fetched.high_watermark = self.log.high_watermark();
        let slice = self.log.read(offset, ReadLimits { max_bytes, upper_bound: log_end }).await?;
        fetched.chunks = slice.chunks;
        fetched.bytes = slice.bytes;
        Ok(fetched)
    }

    /// The ISR this leader should propose to the controller now, with the leadership's epoch and
    /// partition epoch; marks it pending. `None` if nothing should change (or one is pending).
    pub(crate) fn propose_isr(&self, lag: Duration, eligible: impl Fn(NodeId) -> bool) -> Option<IsrProposal> {
        let high_watermark = self.log.high_watermark();
        let mut leadership = self.leadership.borrow_mut();
        let epoch = leadership.epoch;
        let leader = leadership.leader.as_mut()?;
        let wanted = leader.wanted_isr(high_watermark, lag, Instant::now(), eligible)?;
        let added = leader.added_broker_epochs(&wanted);
        leader.propose(wanted.clone());
        Some(IsrProposal { isr: wanted, epoch, partition_epoch: leader.partition_epoch(), added })
    }

    /// A leader takes its followers' broker epochs from the installed image (see
    /// `LeaderState::follower_incarnations`); nothing for a follower.
    pub(crate) fn follower_incarnations(&self, broker_epoch: impl Fn(NodeId) -> Option<u64>) {
        if let Some(leader) = self.leadership.borrow_mut().leader.as_mut() {
            leader.follower_incarnations(broker_epoch);
        }
    }

    /// The controller's answer to a proposal made under `epoch`.
    pub(crate) fn isr_proposed(&self, epoch: LeaderEpoch, outcome: Option<(Vec<NodeId>, i32)>) {
        {
            let mut leadership = self.leadership.borrow_mut();
            if leadership.epoch != epoch {
                return;
            }
            if let Some(leader) = leadership.leader.as_mut() {
                if let Some((isr, _)) = &outcome {
                    tracing::info!(tp = %self.topic_partition, ?isr, "ISR changed");
                }
                leader.proposed(outcome);
            }
        }
        self.update_high_watermark();
    }

    /// What a follower's next fetch asks for: (leader, leader epoch, fetch offset, last fetched
    /// epoch, log start). `None` unless this broker follows a live leader.
    pub fn follower_position(&self) -> Option<(NodeId, LeaderEpoch, Offset, i32, Offset)> {
        let leadership = self.leadership.borrow();
        match leadership.role {
            Role::Follower { leader } if leader >= 0 => Some((
                leader,
                leadership.epoch,
                self.log.log_end_offset(),
                self.log.latest_epoch().map_or(-1, |e| e.0),
                self.log.log_start_offset(),
            )),
            _ => None,
        }
    }

    /// Takes the feed of this follower's log for the caller (one fetcher at a time).
    pub async fn follower_gate(&self) -> Option<glommio::sync::Permit<'_>> {
        self.follower_gate.acquire_permit(1).await.ok()
    }

    /// Appends what the leader sent (offsets and epochs as the leader assigned them) and waits
    /// until it is acknowledged under the flush mode: with `sync`, fdatasync'd, so the next fetch
    /// (which tells the leader this follower has it) never claims records a crash would lose.
    pub async fn append_replicated(&self, records: Bytes) -> Result<(), PartitionError> {
        if let Role::Leader = self.role() {
            return Err(PartitionError::NotLeader);
        }
        if let Some(pending) = self.log.append_replicated(records)? {
            pending.durable().await?;
        }
        Ok(())
    }

    /// A follower learns its leader's high watermark: its own follows it, up to its own
    /// acknowledged end.
    pub fn follow_high_watermark(&self, leader_high_watermark: Offset) {
        if let Role::Follower { .. } = self.role() {
            self.log.set_high_watermark_bound(leader_high_watermark);
        }
    }

    /// A follower learns its leader's log start (moved by DeleteRecords or retention): its own
    /// moves up to it, as far as its high watermark allows.
    pub fn follow_log_start(&self, leader_log_start: Offset) -> Result<(), PartitionError> {
        let to = leader_log_start.min(self.log.high_watermark());
        if matches!(self.role(), Role::Follower { .. }) && to > self.log.log_start_offset() {
            self.log.delete_records_before(to)?;
        }
        Ok(())
    }

    /// Cuts a diverged follower's log back (KIP-595): to the smaller of the leader's end of
    /// `epoch` and this log's own end of it.
    pub async fn truncate_diverged(&self, epoch: LeaderEpoch, leader_end: Offset) -> Result<(), PartitionError> {
        let own_end = match self.log.end_offset_for_epoch(epoch) {
            Some((_, end)) if epoch.0 >= 0 => end,
            _ => self.log.log_start_offset(),
        };
        let to = leader_end.min(own_end).max(self.log.log_start_offset());
        tracing::info!(tp = %self.topic_partition, epoch = epoch.0, to = %to, log_end = %self.log.log_end_offset(),
            "truncating a diverged follower log");
        Ok(self.log.truncate_to(to).await?)
    }

    /// Restarts a follower's empty or outdated log at the leader's log start (its own end is
    /// below it: the leader deleted what this follower lacks).
    pub async fn reset_follower(&self, leader_log_start: Offset) -> Result<(), PartitionError> {
        tracing::info!(tp = %self.topic_partition, to = %leader_log_start,
            "follower log restarts at the leader's log start");
        Ok(self.log.reset_to(leader_log_start).await?)
    }

    /// Whether the high watermark has reached the start of this leadership (always, for a
    /// partition this broker does not lead).
    pub fn leadership_committed(&self) -> bool {
        self.leadership.borrow().leader.as_ref().is_none_or(|l| self.log.high_watermark() >= l.epoch_start())
    }

    /// Waits until the high watermark reaches the start of this leadership (the records of
    /// earlier leaders this log holds are then committed under this one), or the leadership
    /// ends. A coordinator loading its partition reads only below the high watermark, so it
    /// waits for this first.
    pub async fn wait_leadership_committed(&self) {
        let Some((start, epoch)) =
            self.leadership.borrow().leader.as_ref().map(|l| (l.epoch_start(), self.leader_epoch.get()))
        else {
            return;
        };
        if start.0 == 0 {
            return;
        }
        self.log
            .wait_for_high_watermark_beyond_or(start.plus(-1), || {
                self.leader_epoch.get() != epoch || self.role() != Role::Leader
            })
            .await;
    }

    /// A consumer's read from `offset` up to `max_bytes`: below the high watermark, or for
    /// read_committed below the last stable offset, with the aborted transactions the records
    /// returned overlap. Only the leader answers (no KIP-392 replica selector here): a follower's
    /// log may end below a position its leader served, and a consumer that read there would be
    /// told OFFSET_OUT_OF_RANGE and reset.
    pub async fn fetch(
        &self,
        offset: Offset,
        max_bytes: u64,
        isolation: IsolationLevel,
    ) -> Result<Fetched, PartitionError> {
        self.check_leader()?;
        let high_watermark = self.log.high_watermark();
        let last_stable_offset = self.log.last_stable_offset();
        let upper_bound = match isolation {
            IsolationLevel::ReadUncommitted => high_watermark,
            IsolationLevel::ReadCommitted => last_stable_offset,
        };
        let mut fetched = Fetched { high_watermark, last_stable_offset, bound: upper_bound, ..Fetched::default() };
        let slice = self.log.read(offset, ReadLimits { max_bytes, upper_bound }).await?;
        if isolation == IsolationLevel::ReadCommitted {
            // From the first batch returned (it may start before `offset`) to the end of the
            // data returned, as Kafka bounds its search.
            fetched.aborted_transactions = Some(match slice.first_offset {
                Some(first) if !slice.is_empty() => {
                    self.log.aborted_transactions(first.min(offset), slice.upper_offset.min(upper_bound))
                }
                _ => Vec::new(),
            });
        }
        fetched.log_start_offset = self.log.log_start_offset();
        fetched.chunks = slice.chunks;
        fetched.bytes = slice.bytes;
        Ok(fetched)
    }

    /// Reads committed batches from `offset` up to `max_bytes` as the storage layer has them
    /// (for the broker's own readers, such as the group coordinator's replay).
    pub async fn read(&self, offset: Offset, max_bytes: u64) -> Result<ReadSlice, PartitionError> {
        let upper_bound = self.log.high_watermark();
        Ok(self.log.read(offset, ReadLimits { max_bytes, upper_bound }).await?)
    }

    /// Resolves when the offset that bounds reads at `isolation` (the high watermark, or the
    /// last stable offset; for a follower, the log end) moves past `offset`, or the log fails or
    /// closes (the wait of a long-poll fetch).
    pub async fn wait_for_data_beyond(&self, offset: Offset, isolation: IsolationLevel, follower: bool) {
        if follower {
            return self.log.wait_for_log_end_beyond(offset).await;
        }
        match isolation {
            IsolationLevel::ReadUncommitted => self.log.wait_for_high_watermark_beyond(offset).await,
            IsolationLevel::ReadCommitted => self.log.wait_for_stable_offset_beyond(offset).await,
        }
    }

    /// Reads every committed batch from the log start to the high watermark, in order, and
    /// shows each to `visit` with the topic's batch size limit (a coordinator's replay of its
    /// internal partition at load). Reads [`REPLAY_READ_BYTES`] at a time.
    pub async fn replay(&self, mut visit: impl FnMut(&RecordBatch<'_>, usize)) -> Result<(), PartitionError> {
        let end = self.high_watermark();
        let mut at = self.log_start_offset();
        let limit = self.config().log.batch_bytes_max();
        while at < end {
            let slice = self.read(at, REPLAY_READ_BYTES).await?;
            if slice.is_empty() {
                break;
            }
            let bytes = slice.to_vec().await.map_err(|e| {
                PartitionError::Storage(storage::Error::Io {
                    context: format!("replaying {}", self.topic_partition),
                    source: std::sync::Arc::new(e),
                })
            })?;
            let before = at;
            for batch in BatchIter::new(&bytes, limit) {
                let Ok(batch) = batch else { break };
                at = at.max(batch.next_offset());
                visit(&batch, limit);
            }
            if at <= before {
                break;
            }
        }
        Ok(())
    }

    /// Whether the log failed or is closing, so its high watermark will not move again.
    pub fn is_stopped(&self) -> bool {
        self.log.is_stopped()
    }

    /// Bytes of the partition's log segments.
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    /// How much of the log the cleaner could compact now, unless it is not compacted.
    pub fn cleanable(&self, now: Timestamp) -> Option<storage::Cleanable> {
        self.log.cleanable(now)
    }

    /// One clean of the log (see `storage::PartitionLog::clean`).
    pub async fn clean(
        &self,
        map: &mut storage::DedupeMap,
        budget: &storage::IoBudget,
        now: Timestamp,
    ) -> Result<Option<storage::CleanReport>, PartitionError> {
        Ok(self.log.clean(map, budget, now).await?)
    }

    /// When the log was last cleaned since it opened, and what that clean did.
    pub fn last_clean(&self) -> Option<(Timestamp, storage::CleanReport)> {
        self.log.last_clean()
    }

    /// While this broker leads: how its replication stands, for a metrics scrape.
    pub fn leader_health(&self) -> Option<LeaderHealth> {
        let leadership = self.leadership.borrow();
        let leader = leadership.leader.as_ref().filter(|_| leadership.role == Role::Leader)?;
        Some(LeaderHealth {
            under_replicated: leader.isr().len() < leader.replicas().len(),
            follower_lag_max: leader.follower_lag_max(self.log.log_end_offset()),
        })
    }

    /// The high watermark: records below it are committed and visible to consumers.
    pub fn high_watermark(&self) -> Offset {
        self.log.high_watermark()
    }

    /// The last stable offset: read_committed consumers read below it.
    pub fn last_stable_offset(&self) -> Offset {
        self.log.last_stable_offset()
    }

    /// The offset the next record will get.
    pub fn log_end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// The earliest offset readable.
    pub fn log_start_offset(&self) -> Offset {
        self.log.log_start_offset()
    }

    /// ListOffsets for one partition. Returns (timestamp, offset); (-1, -1) when no record
    /// qualifies. Kafka's rule: only offsets a consumer at `isolation` may read count, so
    /// latest is the last stable offset for read_committed and lookups stop below it.
    pub async fn list_offset(
        &self,
        spec: OffsetSpec,
        isolation: IsolationLevel,
    ) -> Result<(Timestamp, Offset), PartitionError> {
        // A follower's watermarks lag its leader's: only the leader answers, as in Kafka.
        self.check_leader()?;
        let fetchable = match isolation {
            IsolationLevel::ReadUncommitted => self.log.high_watermark(),
            IsolationLevel::ReadCommitted => self.log.last_stable_offset(),
        };
        let none = (Timestamp::NONE, Offset(-1));
        Ok(match spec {
            OffsetSpec::Earliest | OffsetSpec::EarliestLocal => (Timestamp::NONE, self.log.log_start_offset()),
            OffsetSpec::Latest => (Timestamp::NONE, fetchable),
            OffsetSpec::MaxTimestamp => match self.log.max_timestamp() {
                Some((offset, ts)) if offset < fetchable => (ts, offset),
                _ => none,
            },
            OffsetSpec::Timestamp(t) => match self.log.offset_for_timestamp(t).await? {
                Some((offset, ts)) if offset < fetchable => (ts, offset),
                _ => none,
            },
            OffsetSpec::LatestTiered | OffsetSpec::Unknown => none,
        })
    }

    /// The producers this partition remembers, by producer id (DescribeProducers).
    pub fn describe_producers(&self) -> Vec<ProducerDescription> {
        let mut out: Vec<ProducerDescription> = self.log.with_producers(|table| {
            table
                .producers()
                .map(|(producer_id, entry)| ProducerDescription {
                    producer_id,
                    producer_epoch: entry.epoch,
                    last_sequence: entry.last_sequence().unwrap_or(-1),
                    last_timestamp: entry.last_timestamp,
                    coordinator_epoch: entry.coordinator_epoch,
                    current_txn_start_offset: entry.txn_first_offset,
                })
                .collect()
        });
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// The size and lag of this partition's log (DescribeLogDirs).
    pub fn describe_log_dir(&self) -> LogDirDescription {
        let lag = self.log.high_watermark().0.saturating_sub(self.log.log_end_offset().0);
        let now = Timestamp::now();
        let cleaning = self.log.cleanable(now).map(|c| CleaningState {
            dirty_bytes: c.dirty_bytes,
            cleanable_bytes: c.clean_bytes + c.dirty_bytes,
            last_clean: self.log.last_clean().map(|(at, report)| (at, report.end)),
        });
        LogDirDescription { size_bytes: self.log.size_bytes(), offset_lag: lag.max(0), cleaning }
    }

    /// DeleteRecords for one partition. Returns the new low watermark (log start offset).
    pub fn delete_records(&self, to: DeleteTo) -> Result<Offset, PartitionError> {
        let target = match to {
            DeleteTo::HighWatermark => self.log.high_watermark(),
            DeleteTo::Offset(offset) => offset,
        };
        Ok(self.log.delete_records_before(target)?)
    }

    /// Forgets producers idle for `expiration` (`producer.id.expiration.ms`).
    pub(crate) fn expire_producers(&self, now: Timestamp, expiration: std::time::Duration) {
        let expired = self.log.expire_producers(now, expiration);
        if expired > 0 {
            tracing::debug!(tp = %self.topic_partition, expired, "producer ids expired");
        }
    }

    /// Deletes segments past the topic's retention.
    pub(crate) fn enforce_retention(&self, now: Timestamp) -> Result<(), PartitionError> {
        Ok(self.log.enforce_retention(now).map(|_| ())?)
    }

    /// Flushes, seals and closes the log.
    pub(crate) async fn close(&self) -> Result<(), PartitionError> {
        Ok(self.log.close().await?)
    }
}

impl From<&PartitionError> for ErrorCode {
    fn from(e: &PartitionError) -> Self {
        match e {
            PartitionError::UnknownTopicOrPartition => ErrorCode::UnknownTopicOrPartition,
            PartitionError::NotAvailable => ErrorCode::LeaderNotAvailable,
            PartitionError::NotLeader => ErrorCode::NotLeaderOrFollower,
            PartitionError::FencedLeaderEpoch => ErrorCode::FencedLeaderEpoch,
            PartitionError::UnknownLeaderEpoch => ErrorCode::UnknownLeaderEpoch,
            PartitionError::NotEnoughReplicas => ErrorCode::NotEnoughReplicas,
            PartitionError::NotEnoughReplicasAfterAppend => ErrorCode::NotEnoughReplicasAfterAppend,
            PartitionError::Storage(e) => e.into(),
            PartitionError::InvalidRequiredAcks(_) => ErrorCode::InvalidRequiredAcks,
            PartitionError::Timeout => ErrorCode::RequestTimedOut,
            PartitionError::NoRecords => ErrorCode::CorruptMessage,
            PartitionError::InvalidRecord(_) => ErrorCode::InvalidRecord,
            PartitionError::InvalidTimestamp(_) => ErrorCode::InvalidTimestamp,
            PartitionError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            PartitionError::InternalTopic(_) => ErrorCode::InvalidTopicException,
            PartitionError::NeedsVerification { .. } => ErrorCode::InvalidTxnState,
            PartitionError::Transaction(code) => *code,
        }
    }
}
/// Whether any record of these (validated, non-control) batches has a null key. Compressed
/// batches are decompressed for it, bounded by the batch limit, as Kafka does for compacted
/// topics.
fn has_keyless_record(bytes: &[u8], limit: usize) -> Result<bool, BatchError> {
    for batch in BatchIter::new(bytes, limit) {
        let batch = batch?;
        let records = batch.decompressed_records(crate::limits::DECOMPRESSED_BATCH_BYTES_MAX)?;
        for record in crate::model::RecordIter::with_records(&batch, &records) {
            if record?.key.is_none() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod timestamp_tests {
    use super::*;

    #[test]
    fn create_time_records_outside_the_window_are_refused() {
        let now = Timestamp(1_700_000_000_000);
        let at = |t: i64| ValidBatches::new(crate::testing::batch_of(2, 10, 1, Timestamp(t)), 1 << 20).unwrap();
        let window = (3_600_000, 60_000);
        assert!(check_timestamps(&at(now.0), window, now).is_ok());
        assert!(check_timestamps(&at(now.0 - 3_600_000), window, now).is_ok());
        assert!(check_timestamps(&at(-1), window, now).is_ok(), "no timestamp");
        let old = check_timestamps(&at(now.0 - 3_600_001), window, now).unwrap_err();
        assert!(matches!(old, PartitionError::InvalidTimestamp(_)));
        assert_eq!(ErrorCode::from(&old), ErrorCode::InvalidTimestamp);
        assert!(check_timestamps(&at(now.0 + 60_001), window, now).is_err());
        assert!(check_timestamps(&at(0), (i64::MAX, i64::MAX), now).is_ok(), "Kafka's defaults never overflow");
    }
}

/// An ISR change a leader proposes to the controller (see [`Partition::propose_isr`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IsrProposal {
    /// The ISR wanted.
    pub(crate) isr: Vec<NodeId>,
    /// The leadership's epoch.
    pub(crate) epoch: LeaderEpoch,
    /// The partition epoch of the committed ISR it changes.
    pub(crate) partition_epoch: i32,
    /// The broker epochs under which the replicas it adds caught up.
    pub(crate) added: Vec<(NodeId, u64)>,
}
