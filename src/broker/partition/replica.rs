//! [`Partition`]: one partition on the shard that owns it (Kafka's word for this broker's copy
//! is a replica), with every piece of its state, and the only door to its log; plus the types
//! its operations speak: [`Acks`], [`IsolationLevel`], [`OffsetSpec`], [`DeleteTo`], [`Fetched`],
//! [`ProducerDescription`], [`PartitionError`].

use std::cell::{Cell, Ref, RefCell};
use std::collections::HashMap;

use bytes::BytesMut;

use crate::broker::topic_config::TopicConfig;
use crate::limits::{PRODUCER_BATCHES_KEPT, VERIFICATION_GUARDS_MAX};
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

/// This broker's role for a partition. Only leaders exist until replication: a follower will
/// take appends from its leader's fetch answers, never from producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes produce requests and serves consumers.
    Leader,
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
                self.pending.durable().await?;
                partition.committed(info.last_offset).await?;
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
}

impl Fetched {
    /// The offset the fetch's data is bounded by: a long poll waits for it to move.
    pub fn watermark(&self, isolation: IsolationLevel) -> Offset {
        match isolation {
            IsolationLevel::ReadUncommitted => self.high_watermark,
            IsolationLevel::ReadCommitted => self.last_stable_offset,
        }
    }
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

/// What DescribeLogDirs reports of one partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDirDescription {
    /// The bytes of its segment files.
    pub size_bytes: u64,
    /// How far the log end offset is behind the high watermark, as Kafka counts it for a
    /// partition's current log (never below 0; a follower's log may trail its leader's high
    /// watermark, a leader's never does, so on one node it is always 0).
    pub offset_lag: i64,
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
    role: Cell<Role>,
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
            role: Cell::new(Role::Leader),
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
        self.role.get()
    }

    /// The topic's configuration.
    pub fn config(&self) -> Ref<'_, TopicConfig> {
        self.config.borrow()
    }

    /// Takes the leader epoch of a new leadership (the metadata quorum moved it).
    pub(crate) fn set_leader_epoch(&self, epoch: LeaderEpoch) {
        self.leader_epoch.set(epoch);
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
        self.log.check_writable()?;
        let (limit, timestamp_type) = {
            let config = self.config.borrow();
            (config.log.batch_bytes_max(), config.timestamp_type)
        };
        // The only place a produced batch is parsed and its CRC checked; the log trusts the
        // result, and checks idempotent producers' sequences on the batches' summaries.
        let mut batches = ValidBatches::new(records, limit)?;
        if batches.batches().iter().any(|b| b.control) {
            return Err(PartitionError::InvalidRecord("control batches are written only by the broker".into()));
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
        self.verification.borrow_mut().remove(&producer_id.0);
        let (pending, completed) =
            self.log.append_marker(producer_id, producer_epoch, coordinator_epoch, kind, self.leader_epoch.get())?;
        Ok((Appended { pending, log_append_time: Timestamp::NONE }, completed))
    }

    /// Runs `f` over the partition's producer state (DescribeProducers, transactions).
    pub fn with_producers<T>(&self, f: impl FnOnce(&ProducerStateTable) -> T) -> T {
        self.log.with_producers(f)
    }

    /// Resolves once the high watermark passes `last_offset`; fails if the log fails or closes
    /// first.
    async fn committed(&self, last_offset: Offset) -> Result<(), PartitionError> {
        self.log.wait_for_high_watermark_beyond(last_offset).await;
        if self.log.high_watermark() > last_offset { Ok(()) } else { Err(PartitionError::NotAvailable) }
    }

    /// Reads from `offset` up to `max_bytes`: below the high watermark, or for read_committed
    /// below the last stable offset, with the aborted transactions the records returned overlap.
    pub async fn fetch(
        &self,
        offset: Offset,
        max_bytes: u64,
        isolation: IsolationLevel,
    ) -> Result<Fetched, PartitionError> {
        let high_watermark = self.log.high_watermark();
        let last_stable_offset = self.log.last_stable_offset();
        let mut fetched = Fetched { high_watermark, last_stable_offset, ..Fetched::default() };
        let upper_bound = fetched.watermark(isolation);
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
    /// last stable offset) moves past `offset`, or the log fails or closes (the wait of a
    /// long-poll fetch).
    pub async fn wait_for_data_beyond(&self, offset: Offset, isolation: IsolationLevel) {
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

    /// The high watermark: records below it are committed and visible to consumers.
    pub fn high_watermark(&self) -> Offset {
        self.log.high_watermark()
    }

    /// The last stable offset: read_committed consumers read below it.
    pub fn last_stable_offset(&self) -> Offset {
        self.log.last_stable_offset()
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
        LogDirDescription { size_bytes: self.log.size_bytes(), offset_lag: lag.max(0) }
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
            PartitionError::Storage(e) => e.into(),
            PartitionError::InvalidRequiredAcks(_) => ErrorCode::InvalidRequiredAcks,
            PartitionError::Timeout => ErrorCode::RequestTimedOut,
            PartitionError::NoRecords => ErrorCode::CorruptMessage,
            PartitionError::InvalidRecord(_) => ErrorCode::InvalidRecord,
            PartitionError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            PartitionError::InternalTopic(_) => ErrorCode::InvalidTopicException,
            PartitionError::NeedsVerification { .. } => ErrorCode::InvalidTxnState,
            PartitionError::Transaction(code) => *code,
        }
    }
}
