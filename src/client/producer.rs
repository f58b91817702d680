//! [`Producer`]: per-partition batching, acks 0/1/all, the Java client's key partitioner,
//! Produce requests that carry one batch for each of many partitions, pipelining, retries with
//! metadata refresh, and a delivery future (or callback) per record.
//!
//! Lifecycle: [`Producer::send`] waits for room in the producer's buffer (Kafka's
//! `buffer.memory`), picks the partition (explicit, by key hash, or for keyless records the
//! topic's sticky partition, which moves on whenever its batch closes), appends the record to
//! that partition's open batch and returns a [`Delivery`] future. A batch closes when it reaches
//! `batch_size` bytes or `linger` after its first record, whichever comes first;
//! [`Producer::flush`] closes all of them and waits for every record sent so far.
//!
//! Sending: one sender task per producer takes the oldest closed batch of every partition whose
//! leader has room for another request, groups them by leader into Produce requests of at most
//! `request_max_bytes` (one batch per partition per request, as Kafka brokers require), and
//! starts them; each leader has at most [`super::ConnectionConfig::max_in_flight`] requests in
//! flight. The task obtains the connection itself before starting a request, so requests go out
//! on each connection in the order their batches closed, and the broker appends them in that
//! order.
//!
//! Retries: a batch that fails with a retriable error (leader moved, timeout, connection lost)
//! goes back to its place at the front of its partition's queue (batches keep the order they
//! closed in), the partition pauses for `retry_backoff`, the metadata is refreshed, and sending
//! resumes.
//!
//! Idempotence ([`ProducerConfig::idempotence`], the default): before its first batch the
//! producer asks any broker for a producer id and epoch (InitProducerId), and every batch
//! carries them and the sequence number of its first record in its partition. A retry keeps its
//! numbers, so a broker that already has the batch answers DUPLICATE_SEQUENCE_NUMBER (a
//! success) instead of appending it twice, and one that missed an earlier batch refuses the
//! later ones until it comes: records land exactly once and in order, with up to
//! [`IDEMPOTENT_IN_FLIGHT_MAX`] requests in flight. The numbering rules, and what the producer
//! does when the broker reports a gap (a new producer id or epoch, then the refused batches
//! again), are in
//! [`super::sequencing`]. A batch that has exhausted its retries fails to its caller, and may
//! or may not be in the log, as in Kafka. Without idempotence, as with Kafka's producer, records
//! keep their order across a retry only with one request in flight per connection, and a
//! retry after a lost answer may write a batch twice.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::sync::Semaphore;
use glommio::timer::Timer;

use super::connection::Connection;
use super::error::ClientError;
use super::metadata::{Client, ClientConfig, FastMap};
use super::partitioner::partition_for_key;
use super::sequencing::{self, INIT_TRANSACTION_TIMEOUT_MS, Next, PartitionSequences, Stamp, Verdict};
pub use super::sequencing::{IDEMPOTENT_IN_FLIGHT_MAX, ProducerIdentity};
use super::txn_requests;
use crate::model::{BatchBuilder, CompressionType, ProducerId, Timestamp};
use crate::protocol::RecordSet;
use crate::protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProduceRequestPartition, ProduceRequestTopic, ProduceResponse,
};

/// Bytes a record costs in a batch beyond its key, value and headers (length, attributes,
/// deltas, lengths: at most ~25), rounded up: what [`Producer::send`] reserves of the buffer.
const RECORD_OVERHEAD_BYTES: usize = 32;

/// How many acknowledgements a produce waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// None: the broker sends no response, offsets are unknown (acks=0).
    None,
    /// The leader's (acks=1).
    Leader,
    /// Every in-sync replica's (acks=all, -1).
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// How a [`Producer`] behaves.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Acknowledgements to wait for.
    pub acks: Acks,
    /// A batch closes once it holds this many bytes (Kafka's `batch.size`).
    pub batch_size: usize,
    /// A batch closes this long after its first record at the latest (Kafka's `linger.ms`).
    pub linger: Duration,
    /// How long the broker may wait for acknowledgements (Produce's `timeout_ms`).
    pub ack_timeout: Duration,
    /// The codec batches are compressed with (Kafka's `compression.type`). `batch_size`
    /// counts uncompressed bytes.
    pub compression: CompressionType,
    /// Bytes of records the producer holds before [`Producer::send`] waits for
    /// acknowledgements to free room (Kafka's `buffer.memory`).
    pub buffer_memory: usize,
    /// The most batch bytes one Produce request carries; a larger batch goes alone.
    pub request_max_bytes: usize,
    /// Exactly once, in order, per partition (Kafka's `enable.idempotence`, on by default as
    /// in Kafka 3.0 on): see the module docs. Needs `acks: Acks::All` and at most
    /// [`IDEMPOTENT_IN_FLIGHT_MAX`] requests in flight per connection, and a broker that
    /// serves InitProducerId. [`Producer::new`] refuses other settings with
    /// [`ClientError::Config`]: unlike Kafka's Java client, which quietly turns idempotence off
    /// when it was not asked for explicitly and acks is not all, a producer with acks 0 or 1
    /// says `idempotence: false`, so no producer loses the guarantee without its author
    /// having written so.
    pub idempotence: bool,
    /// Kafka's `transactional.id`: a transactional producer ([`Producer::init_transactions`],
    /// then transactions of sends); needs `idempotence`.
    pub transactional_id: Option<String>,
    /// Kafka's `transaction.timeout.ms`: the coordinator aborts a transaction open longer.
    pub transaction_timeout: Duration,
}

impl ProducerConfig {
    /// Checks that the settings agree with each other and with those of `client`, the client
    /// the producer will use. [`Producer::new`] calls it.
    pub fn validate(&self, client: &ClientConfig) -> Result<(), ClientError> {
        if self.transactional_id.is_some() && !self.idempotence {
            return Err(ClientError::Config("a transactional producer is idempotent: set idempotence".into()));
        }
        if self.transactional_id.as_deref() == Some("") {
            return Err(ClientError::Config("the transactional id is empty".into()));
        }
        if !self.idempotence {
            return Ok(());
        }
        if self.acks != Acks::All {
            return Err(ClientError::Config(format!(
                "idempotence needs acks=all, not acks={}; set idempotence to false to produce with acks 0 or 1",
                self.acks.wire()
            )));
        }
        let in_flight = client.connection.max_in_flight;
        if in_flight > IDEMPOTENT_IN_FLIGHT_MAX {
            return Err(ClientError::Config(format!(
                "idempotence allows at most {IDEMPOTENT_IN_FLIGHT_MAX} requests in flight per connection, not \
                 {in_flight}; lower max_in_flight or set idempotence to false"
            )));
        }
        Ok(())
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            batch_size: 16 * 1024,
            linger: Duration::from_millis(5),
            ack_timeout: Duration::from_secs(30),
            compression: CompressionType::None,
            buffer_memory: 32 * 1024 * 1024,
            request_max_bytes: 4 * 1024 * 1024,
            idempotence: true,
            transactional_id: None,
            transaction_timeout: Duration::from_millis(INIT_TRANSACTION_TIMEOUT_MS.unsigned_abs().into()),
        }
    }
}

/// A record to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The partition; `None` to choose by key hash (or round-robin without a key).
    pub partition: Option<i32>,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// The create time; `None` for now.
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ProducerRecord {
    /// A record of `topic` with `key` and `value`.
    pub fn new(topic: impl Into<String>, key: Option<Vec<u8>>, value: Option<Vec<u8>>) -> ProducerRecord {
        ProducerRecord { topic: topic.into(), key, value, ..Default::default() }
    }

    /// Bytes the record reserves of the producer's buffer.
    fn reserve_bytes(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len() + 10).sum();
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + headers
            + RECORD_OVERHEAD_BYTES
    }
}

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition.
    pub partition: i32,
    /// The record's offset; `None` with acks=0, and for a retry the broker recognised as a
    /// duplicate without saying where the first copy went.
    pub offset: Option<i64>,
    /// The record's timestamp: its create time, or the broker's append time for topics with
    /// `message.timestamp.type=LogAppendTime`.
    pub timestamp: i64,
    /// When the producer had the broker's answer for the record's batch: with the record's own
    /// send time it gives the record's produce latency (as librdkafka's
    /// `rd_kafka_message_latency`). One clock read per batch, so a load generator measuring
    /// every record does not read the clock again for each.
    pub acknowledged_at: Instant,
}

/// The outcome of one record.
pub type DeliveryResult = Result<RecordMetadata, ClientError>;

/// Called once with a record's outcome (Kafka's send callback); runs on the producer's executor.
pub type DeliveryCallback = Box<dyn FnOnce(DeliveryResult)>;

/// Resolves once the record is acknowledged (or has failed for good).
pub struct Delivery {
    receiver: oneshot::Receiver<DeliveryResult>,
}

impl Future for Delivery {
    type Output = DeliveryResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DeliveryResult> {
        match Pin::new(&mut self.receiver).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_)) => Poll::Ready(Err(ClientError::InvalidArgument("the producer was dropped".into()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Who hears about a record's outcome.
enum Waiter {
    Future(oneshot::Sender<DeliveryResult>),
    Callback(DeliveryCallback),
}

impl Waiter {
    fn complete(self, result: DeliveryResult) {
        match self {
            Waiter::Future(sender) => {
                let _ = sender.send(result);
            }
            Waiter::Callback(callback) => callback(result),
        }
    }
}

/// The batch of a partition that records are being added to.
struct OpenBatch {
    builder: BatchBuilder,
    /// Per record: its timestamp and who to tell.
    waiters: Vec<(i64, Waiter)>,
    /// Buffer bytes the records reserved.
    reserved: usize,
    /// Tells a linger timer whether the batch it was started for is still the open one.
    generation: u64,
    /// Its linger ran out while it could not go (see [`Producer::linger_over`]): it closes as
    /// soon as it can, and takes records until then.
    lingered: bool,
}

/// A batch ready to go (or going, or waiting to be retried).
struct ClosedBatch {
    records: Bytes,
    waiters: Vec<(i64, Waiter)>,
    reserved: usize,
    attempts: u32,
    /// Its place among its partition's batches, in the order they closed: a retry goes back
    /// to this place.
    ordinal: u64,
    /// Its sequence numbers (idempotent producer), once it has them; its header says the same.
    stamp: Option<Stamp>,
    /// Sent at least once under its stamp, so it may be in the log.
    sent: bool,
}

impl ClosedBatch {
    /// A batch that never closed (its records were not built), to fail its waiters.
    fn unbuilt(batch: OpenBatch) -> ClosedBatch {
        let OpenBatch { waiters, reserved, .. } = batch;
        ClosedBatch { records: Bytes::new(), waiters, reserved, attempts: 0, ordinal: 0, stamp: None, sent: false }
    }

    /// Records in the batch, which its sequence numbers count.
    fn records_count(&self) -> u32 {
        u32::try_from(self.waiters.len()).unwrap_or(u32::MAX)
    }

    /// Writes `stamp` into the batch's header. The bytes are unique by now unless a request
    /// that failed still holds them, so this patches them in place, and copies them only then.
    fn restamp(&mut self, stamp: Stamp) -> Result<(), ClientError> {
        let mut bytes = BytesMut::from(std::mem::take(&mut self.records));
        let stamped = stamp.producer_stamp().write(&mut bytes);
        self.records = bytes.freeze();
        stamped.map_err(|e| ClientError::InvalidArgument(format!("cannot number a batch: {e}")))?;
        self.stamp = Some(stamp);
        self.sent = false;
        Ok(())
    }
}

/// What became of a batch that failed ([`PartitionState::refuse`]).
enum Refusal {
    /// Back in its place in the queue; `pause` when the partition was not already waiting out
    /// a backoff, so the caller starts one.
    Retry { pause: bool },
    /// Failed for good.
    Fail(ClosedBatch, ClientError),
}

/// [`Refusal`], and what the producer as a whole must do about it.
struct Refused {
    outcome: Refusal,
    /// Get a new identity to replace this one.
    bump: Option<ProducerIdentity>,
    /// Stop: fail everything, now and later.
    fatal: Option<ClientError>,
}

#[derive(Default)]
struct PartitionState {
    open: Option<OpenBatch>,
    /// Closed batches not yet sent or waiting to be retried, by `ordinal`.
    closed: VecDeque<ClosedBatch>,
    /// Waiting out a retry backoff: nothing is sent for the partition.
    paused: bool,
    /// Records in the last batch closed: the next one's capacity.
    last_count: usize,
    /// The next batch's [`ClosedBatch::ordinal`].
    next_ordinal: u64,
    /// Sequence numbers, and the batches in flight.
    sequences: PartitionSequences,
}

impl PartitionState {
    /// Puts `batch` back in its place: batches that fail together (say, all those in flight
    /// on a connection that broke) go back in the order they first closed.
    fn requeue(&mut self, batch: ClosedBatch) {
        let at = self.closed.partition_point(|queued| queued.ordinal < batch.ordinal);
        self.closed.insert(at, batch);
    }

    /// Idempotent producer with identity `current`: whether the oldest queued batch may go
    /// now. Numbers the queued batches first when the partition continues its run with
    /// batches that closed unnumbered, or starts a new run. A batch whose bytes cannot take
    /// its numbers goes to `broken`, to fail.
    fn ready(&mut self, current: ProducerIdentity, broken: &mut Vec<(ClosedBatch, ClientError)>) -> bool {
        let Some(front) = self.closed.front() else { return false };
        let renumber_all = match self.sequences.next(front.stamp, front.sent, current) {
            Next::Wait => return false,
            Next::Send => return true,
            Next::Continue => false,
            Next::Restart => {
                self.sequences.restart(current);
                true
            }
        };
        for mut batch in std::mem::take(&mut self.closed) {
            if renumber_all || batch.stamp.is_none() {
                let stamped = match self.sequences.assign(batch.records_count()) {
                    // The numbers stay with the batch even if they cannot be written, so that
                    // failing it settles them and leaves no hole in the run.
                    Some(stamp) => batch.restamp(stamp).inspect_err(|_| batch.stamp = Some(stamp)),
                    None => Err(ClientError::InvalidArgument("no sequence run to number a batch in".into())),
                };
                if let Err(e) = stamped {
                    broken.push((batch, e));
                    continue;
                }
            }
            self.closed.push_back(batch);
        }
        !self.closed.is_empty()
    }

    /// Takes the oldest queued batch to send; it counts as in flight until
    /// [`PartitionState::landed`].
    fn take_front(&mut self) -> Option<ClosedBatch> {
        let batch = self.closed.pop_front()?;
        self.sequences.in_flight += 1;
        Some(batch)
    }

    /// A batch taken by [`PartitionState::take_front`] is back: answered, failed, or never sent.
    fn landed(&mut self) {
        self.sequences.in_flight = self.sequences.in_flight.saturating_sub(1);
    }

    /// Decides what becomes of `batch`, which failed with `error`: retried (at most `retries`
    /// times in all) or failed, and for a numbered batch, what the error means for the
    /// producer ([`sequencing::verdict`]). A duplicate is a success and never comes here.
    fn refuse(&mut self, mut batch: ClosedBatch, error: ClientError, retries: u32) -> Refused {
        let verdict = if batch.stamp.is_some() { sequencing::verdict(&error) } else { Verdict::Other };
        let mut bump = None;
        let retriable = match verdict {
            Verdict::Sequence => {
                if let Some(stamp) = batch.stamp
                    && self.sequences.sequence_error(&stamp)
                {
                    bump = Some(stamp.identity);
                }
                true
            }
            Verdict::StaleEpoch => {
                bump = batch.stamp.map(|stamp| stamp.identity);
                false
            }
            Verdict::Fatal => {
                return Refused { outcome: Refusal::Fail(batch, error.clone()), bump: None, fatal: Some(error) };
            }
            Verdict::Duplicate | Verdict::Other => error.is_retriable(),
        };
        if !retriable || batch.attempts >= retries {
            return Refused { outcome: Refusal::Fail(batch, error), bump, fatal: None };
        }
        batch.attempts += 1;
        self.requeue(batch);
        let pause = !std::mem::replace(&mut self.paused, true);
        Refused { outcome: Refusal::Retry { pause }, bump, fatal: None }
    }
}

type Key = (String, i32);

struct ProducerInner {
    client: Client,
    config: ProducerConfig,
    partitions: RefCell<FastMap<Key, PartitionState>>,
    next_generation: Cell<u64>,
    /// For keyless records without a partition: the partition each topic sticks to until its
    /// batch closes (Kafka's sticky partitioner, KIP-480), so records fill a few large batches
    /// instead of spreading over every partition's tiny ones.
    sticky: RefCell<FastMap<String, i32>>,
    /// Rotates the sticky partitions.
    round_robin: Cell<u32>,
    /// Batches closed but not yet acknowledged (or failed).
    outstanding: Cell<usize>,
    idle_waiters: RefCell<Vec<oneshot::Sender<()>>>,
    /// Buffer bytes free for records ([`ProducerConfig::buffer_memory`]).
    buffer: Semaphore,
    /// Produce requests in flight per leader.
    in_flight: RefCell<FastMap<i32, usize>>,
    /// Partitions whose open batch lingered (see [`Producer::linger_over`]).
    lingered: RefCell<Vec<Key>>,
    /// Wakes the sender task; one pending wake-up is enough.
    wake: LocalSender<()>,
    /// The idempotent producer's id and epoch; `None` before the first InitProducerId answers
    /// and while one runs to replace `leaving`. Nothing is sent without it.
    identity: Cell<Option<ProducerIdentity>>,
    /// The identity an InitProducerId under way (or to be retried) replaces.
    leaving: Cell<Option<ProducerIdentity>>,
    /// An InitProducerId is under way.
    initializing: Cell<bool>,
    /// Why the producer stopped for good: every send fails with it.
    fatal: RefCell<Option<ClientError>>,
    /// A transactional producer's transaction.
    txn: RefCell<Transaction>,
}

/// Where a transactional producer is in its transaction.
#[derive(Default)]
struct Transaction {
    /// `begin_transaction` was called and the transaction has not ended.
    open: bool,
    /// Partitions the coordinator has in the transaction (AddPartitionsToTxn answered).
    added: std::collections::HashSet<Key>,
    /// Partitions an AddPartitionsToTxn is under way for.
    adding: std::collections::HashSet<Key>,
    /// Offsets were sent to the transaction (it has something to end even without records).
    has_offsets: bool,
    /// The first failure of a batch (or of adding a partition) in the transaction: it can only
    /// abort now (Kafka's abortable error), and the epoch is bumped after the abort.
    failed: Option<ClientError>,
}

/// A producer over a [`Client`]. See the module docs.
#[derive(Clone)]
pub struct Producer {
    inner: Rc<ProducerInner>,
}

impl Producer {
    /// A producer over `client`; starts its sender task on the current executor, and an
    /// idempotent producer's first InitProducerId. Fails with [`ClientError::Config`] if
    /// `config` contradicts itself or the client's settings ([`ProducerConfig::validate`]).
    pub fn new(client: Client, config: ProducerConfig) -> Result<Producer, ClientError> {
        config.validate(client.config())?;
        let (wake, wakes) = local_channel::new_bounded(1);
        let inner = ProducerInner {
            client,
            buffer: Semaphore::new(config.buffer_memory.max(1) as u64),
            config,
            partitions: RefCell::default(),
            next_generation: Cell::new(0),
            sticky: RefCell::default(),
            round_robin: Cell::new(0),
            outstanding: Cell::new(0),
            idle_waiters: RefCell::new(Vec::new()),
            in_flight: RefCell::default(),
            lingered: RefCell::new(Vec::new()),
            wake,
            identity: Cell::new(None),
            leaving: Cell::new(None),
            initializing: Cell::new(false),
            fatal: RefCell::new(None),
            txn: RefCell::new(Transaction::default()),
        };
        let inner = Rc::new(inner);
        glommio::spawn_local(sender_loop(Rc::downgrade(&inner), wakes)).detach();
        let producer = Producer { inner };
        if producer.inner.config.idempotence && producer.inner.config.transactional_id.is_none() {
            // Asked now rather than at the first batch, so that batch does not wait for it. A
            // transactional producer asks in `init_transactions`.
            producer.start_init();
        }
        Ok(producer)
    }

    /// The idempotent producer's id and epoch, once a broker gave them.
    pub fn identity(&self) -> Option<ProducerIdentity> {
        self.inner.identity.get()
    }

    /// Queues `record`; the returned future resolves when it is acknowledged. Waits while the
    /// buffer is full; fails at once for an unknown topic or partition.
    pub async fn send(&self, record: ProducerRecord) -> Result<Delivery, ClientError> {
        let (sender, receiver) = oneshot::channel();
        self.enqueue(record, Waiter::Future(sender)).await?;
        Ok(Delivery { receiver })
    }

    /// Queues `record`; `callback` runs with its outcome. Cheaper than [`Producer::send`] when
    /// records are many: no future to poll per record.
    pub async fn send_with(&self, record: ProducerRecord, callback: DeliveryCallback) -> Result<(), ClientError> {
        self.enqueue(record, Waiter::Callback(callback)).await
    }

    async fn enqueue(&self, record: ProducerRecord, waiter: Waiter) -> Result<(), ClientError> {
        if let Some(error) = self.inner.fatal.borrow().as_ref() {
            return Err(error.clone());
        }
        if self.inner.config.transactional_id.is_some() && !self.inner.txn.borrow().open {
            return Err(ClientError::InvalidArgument("a transactional producer sends inside a transaction".into()));
        }
        let reserve = record.reserve_bytes();
        if reserve > self.inner.config.buffer_memory {
            let reason = format!(
                "a record of {reserve} bytes is larger than the buffer ({} bytes)",
                self.inner.config.buffer_memory
            );
            return Err(ClientError::InvalidArgument(reason));
        }
        let partition = self.partition_for(&record).await?;
        // The semaphore is never closed, so acquiring fails only if it were.
        self.inner
            .buffer
            .acquire(reserve as u64)
            .await
            .map_err(|_| ClientError::InvalidArgument("the producer was closed".into()))?;
        let timestamp = record.timestamp.unwrap_or_else(|| Timestamp::now().0);
        // Keyless records without a partition go where the sticky partitioner put them.
        let sticky = record.partition.is_none() && record.key.is_none();
        let mut key = (record.topic, partition);
        let headers: Vec<(&str, &[u8])> = record.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        // Like Kafka's producer, a record that would take the open batch past `batch_size`
        // starts a new one (so batches stay under the broker's max.message.bytes); only a
        // record larger than that on its own makes a larger batch. A sticky record that does
        // not fit moves with the sticky partition, which the closing batch moved on, as in
        // Kafka's producer (KIP-794): it would otherwise open a batch of one record on the old
        // partition, to linger there alone, and every full batch would be followed by one.
        let mut known = self.close_if_overflowing(&key, reserve);
        if known == Some(true)
            && sticky
            && let Some(next) = self.inner.sticky.borrow().get(&key.0).copied()
            && next != key.1
        {
            key.1 = next;
            known = self.close_if_overflowing(&key, reserve);
        }
        if known.is_none() {
            // The key is cloned only for a partition's first record (`entry` would clone the
            // topic name for every record).
            self.inner.partitions.borrow_mut().insert(key.clone(), PartitionState::default());
        }
        let (full, new_generation) = {
            let mut partitions = self.inner.partitions.borrow_mut();
            // Entries are never removed, and one was found or inserted above.
            let Some(state) = partitions.get_mut(&key) else { unreachable!("a partition's state was inserted above") };
            let mut new_generation = None;
            let batch = state.open.get_or_insert_with(|| {
                let generation = self.inner.next_generation.get();
                self.inner.next_generation.set(generation + 1);
                new_generation = Some(generation);
                OpenBatch {
                    builder: BatchBuilder::new(Timestamp(timestamp)),
                    waiters: Vec::with_capacity(state.last_count),
                    reserved: 0,
                    generation,
                    lingered: false,
                }
            });
            batch.builder.push(record.key.as_deref(), record.value.as_deref(), Timestamp(timestamp), &headers);
            batch.waiters.push((timestamp, waiter));
            batch.reserved += reserve;
            (batch.builder.size() >= self.inner.config.batch_size, new_generation)
        };
        if full {
            self.close(&key, None);
        } else if let Some(generation) = new_generation {
            let producer = self.clone();
            let linger = self.inner.config.linger;
            glommio::spawn_local(async move {
                Timer::new(linger).await;
                producer.linger_over(&key, generation);
            })
            .detach();
        }
        Ok(())
    }

    /// The partition `record` goes to.
    async fn partition_for(&self, record: &ProducerRecord) -> Result<i32, ClientError> {
        // Fast path: the cached metadata, without cloning it; a fetch only for a new topic.
        let cached = self
            .inner
            .client
            .metadata()
            .topics
            .get(&record.topic)
            .and_then(|t| (t.error_code == 0 && !t.partitions.is_empty()).then_some(t.partitions.len()));
        let partitions = match cached {
            Some(n) => n,
            None => self.inner.client.topic(&record.topic).await?.partitions.len(),
        };
        let count = i32::try_from(partitions).unwrap_or(i32::MAX);
        if count == 0 {
            return Err(ClientError::UnknownTopic(record.topic.clone()));
        }
        match (record.partition, &record.key) {
            (Some(p), _) if (0..count).contains(&p) => Ok(p),
            (Some(p), _) => {
                let reason = format!("partition {p} out of range: topic {} has {count} partitions", record.topic);
                Err(ClientError::InvalidArgument(reason))
            }
            (None, Some(key)) => Ok(partition_for_key(key, count)),
            (None, None) => {
                if let Some(&p) = self.inner.sticky.borrow().get(&record.topic)
                    && p < count
                {
                    return Ok(p);
                }
                let p = self.next_sticky(count);
                self.inner.sticky.borrow_mut().insert(record.topic.clone(), p);
                Ok(p)
            }
        }
    }

    /// The next partition to stick to, of `count`.
    fn next_sticky(&self, count: i32) -> i32 {
        let next = self.inner.round_robin.get();
        self.inner.round_robin.set(next.wrapping_add(1));
        i32::try_from(next % count.unsigned_abs()).unwrap_or(0)
    }

    /// A transactional producer's first step (Kafka's `initTransactions`): takes its producer id
    /// and epoch from the transaction coordinator, which fences every earlier producer with the
    /// same transactional id and aborts its open transaction.
    pub async fn init_transactions(&self) -> Result<(), ClientError> {
        let id = self.transactional_id()?;
        let timeout = i32::try_from(self.inner.config.transaction_timeout.as_millis()).unwrap_or(i32::MAX);
        let identity = txn_requests::init(&self.inner.client, &id, timeout, None).await?;
        self.inner.identity.set(Some(identity));
        *self.inner.txn.borrow_mut() = Transaction::default();
        Ok(())
    }

    /// Opens a transaction: the records sent until it ends commit or abort together.
    pub fn begin_transaction(&self) -> Result<(), ClientError> {
        self.transactional_id()?;
        if self.inner.identity.get().is_none() {
            return Err(ClientError::InvalidArgument("call init_transactions first".into()));
        }
        let mut txn = self.inner.txn.borrow_mut();
        if txn.open {
            return Err(ClientError::InvalidArgument("a transaction is already open".into()));
        }
        *txn = Transaction { open: true, ..Transaction::default() };
        Ok(())
    }

    /// Commits `offsets` (topic, partition, next offset to consume) of consumer group `group`
    /// with the open transaction (Kafka's `sendOffsetsToTransaction`): the consume-transform-
    /// produce loop's input position moves exactly when its output commits.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(String, i32, i64)],
        group: &str,
    ) -> Result<(), ClientError> {
        let (id, identity) = self.open_transaction()?;
        self.inner.txn.borrow_mut().has_offsets = true;
        let sent = txn_requests::send_offsets(&self.inner.client, &id, identity, group, offsets).await;
        if let Err(error) = &sent {
            self.inner.txn.borrow_mut().failed.get_or_insert(error.clone());
        }
        sent
    }

    /// Commits the open transaction: sends what is queued, waits for every record, then asks the
    /// coordinator to commit. If any record of the transaction failed, nothing is committed and
    /// the error comes back: the transaction can then only be aborted.
    pub async fn commit_transaction(&self) -> Result<(), ClientError> {
        let (id, identity) = self.open_transaction()?;
        self.flush().await;
        let (failed, touched) = {
            let txn = self.inner.txn.borrow();
            (txn.failed.clone(), !txn.added.is_empty() || txn.has_offsets)
        };
        if let Some(error) = failed {
            return Err(error);
        }
        if touched {
            txn_requests::end(&self.inner.client, &id, identity, true).await?;
        }
        *self.inner.txn.borrow_mut() = Transaction::default();
        Ok(())
    }

    /// Aborts the open transaction: what was written of it is never seen by read_committed
    /// consumers. After a failed record, the producer takes a new epoch so its sequence numbers
    /// start again.
    pub async fn abort_transaction(&self) -> Result<(), ClientError> {
        let (id, identity) = self.open_transaction()?;
        self.flush().await;
        let (failed, touched) = {
            let txn = self.inner.txn.borrow();
            (txn.failed.is_some(), !txn.added.is_empty() || txn.has_offsets)
        };
        if touched {
            txn_requests::end(&self.inner.client, &id, identity, false).await?;
        }
        if failed {
            let timeout = i32::try_from(self.inner.config.transaction_timeout.as_millis()).unwrap_or(i32::MAX);
            let bumped = txn_requests::init(&self.inner.client, &id, timeout, Some(identity)).await?;
            self.inner.identity.set(Some(bumped));
        }
        *self.inner.txn.borrow_mut() = Transaction::default();
        Ok(())
    }

    fn transactional_id(&self) -> Result<String, ClientError> {
        self.inner
            .config
            .transactional_id
            .clone()
            .ok_or_else(|| ClientError::InvalidArgument("the producer has no transactional id".into()))
    }

    /// The transactional id and identity of a producer with an open transaction.
    fn open_transaction(&self) -> Result<(String, ProducerIdentity), ClientError> {
        let id = self.transactional_id()?;
        if !self.inner.txn.borrow().open {
            return Err(ClientError::InvalidArgument("no transaction is open".into()));
        }
        let identity = self
            .inner
            .identity
            .get()
            .ok_or_else(|| ClientError::InvalidArgument("call init_transactions first".into()))?;
        Ok((id, identity))
    }

    /// Adds the partitions that have batches waiting and are not in the transaction yet, in one
    /// AddPartitionsToTxn; their batches go out once it answers.
    fn add_partitions_to_txn(&self) {
        let Some(id) = self.inner.config.transactional_id.clone() else { return };
        let Some(identity) = self.inner.identity.get() else { return };
        let new: Vec<Key> = {
            let txn = self.inner.txn.borrow();
            self.inner
                .partitions
                .borrow()
                .iter()
                .filter(|(key, state)| {
                    !state.closed.is_empty() && !txn.added.contains(*key) && !txn.adding.contains(*key)
                })
                .map(|(key, _)| key.clone())
                .collect()
        };
        if new.is_empty() {
            return;
        }
        self.inner.txn.borrow_mut().adding.extend(new.iter().cloned());
        let producer = self.clone();
        glommio::spawn_local(async move {
            let added = txn_requests::add_partitions(&producer.inner.client, &id, identity, &new).await;
            let mut txn = producer.inner.txn.borrow_mut();
            for key in &new {
                txn.adding.remove(key);
            }
            match added {
                Ok(()) => {
                    txn.added.extend(new);
                    drop(txn);
                    producer.wake();
                }
                Err(error) => {
                    txn.failed.get_or_insert(error.clone());
                    drop(txn);
                    let mut failed = Vec::new();
                    for key in &new {
                        if let Some(state) = producer.inner.partitions.borrow_mut().get_mut(key) {
                            failed.extend(state.closed.drain(..).map(|batch| (key.clone(), batch)));
                        }
                    }
                    for (key, batch) in failed {
                        producer.finish(&key, batch, Err(error.clone()));
                    }
                }
            }
        })
        .detach();
    }

    /// Closes every open batch and waits until every record sent so far is acknowledged or has
    /// failed.
    pub async fn flush(&self) {
        let keys: Vec<Key> = self.inner.partitions.borrow().keys().cloned().collect();
        for key in &keys {
            self.close(key, None);
        }
        if self.inner.outstanding.get() == 0 {
            return;
        }
        let (sender, receiver) = oneshot::channel();
        self.inner.idle_waiters.borrow_mut().push(sender);
        let _ = receiver.await;
    }

    /// Closes the open batch of `key` (only if it is still `generation`, when given) and wakes
    /// the sender.
    fn close(&self, key: &Key, generation: Option<u64>) {
        let (batch, ordinal, stamp) = {
            let mut partitions = self.inner.partitions.borrow_mut();
            let Some(state) = partitions.get_mut(key) else { return };
            match (&state.open, generation) {
                (Some(batch), Some(g)) if batch.generation != g => return,
                (None, _) => return,
                _ => {}
            }
            let Some(batch) = state.open.take() else { return };
            state.last_count = batch.waiters.len();
            let ordinal = state.next_ordinal;
            state.next_ordinal += 1;
            // Numbered now when it can be, so the CRC is computed once, at build.
            let stamp = if self.inner.config.idempotence {
                let back = state.closed.back().map(|queued| queued.stamp);
                let records = u32::try_from(batch.waiters.len()).unwrap_or(u32::MAX);
                state.sequences.stamp_at_close(self.inner.identity.get(), back, records)
            } else {
                None
            };
            (batch, ordinal, stamp)
        };
        self.inner.outstanding.set(self.inner.outstanding.get() + 1);
        self.unstick(key);
        let OpenBatch { mut builder, waiters, reserved, .. } = batch;
        if let Some(stamp) = stamp {
            builder.set_producer(stamp.producer_stamp());
        }
        let batch = match build(builder, self.inner.config.compression) {
            Ok(records) => ClosedBatch { records, waiters, reserved, attempts: 0, ordinal, stamp, sent: false },
            Err(e) => {
                if let Some(stamp) = stamp
                    && let Some(state) = self.inner.partitions.borrow_mut().get_mut(key)
                {
                    state.sequences.unassign(&stamp);
                }
                let failed = ClosedBatch {
                    records: Bytes::new(),
                    waiters,
                    reserved,
                    attempts: 0,
                    ordinal,
                    stamp: None,
                    sent: false,
                };
                self.finish(key, failed, Err(e));
                return;
            }
        };
        if let Some(state) = self.inner.partitions.borrow_mut().get_mut(key) {
            state.closed.push_back(batch);
        }
        self.wake();
    }

    /// The linger of `key`'s open batch `generation` ran out. It closes now if it could go now.
    /// If batches of its partition are still queued, or its leader has every request slot in
    /// use, it stays open and takes more records until the sender has room for it
    /// ([`Self::close_lingered`]), as a batch in Kafka's producer stays appendable until the
    /// sender drains it. So with `linger = 0`, records that come while requests are in flight
    /// go out together in the next request, instead of one request (and one round trip in five
    /// slots) each.
    fn linger_over(&self, key: &Key, generation: u64) {
        let busy = self.cannot_go(key);
        if busy == Some(true) {
            if let Some(batch) = self.inner.partitions.borrow_mut().get_mut(key).and_then(|s| s.open.as_mut())
                && batch.generation == generation
            {
                batch.lingered = true;
                self.inner.lingered.borrow_mut().push(key.clone());
            }
            return;
        }
        self.close(key, Some(generation));
    }

    /// Closes the lingered batches that can go now (called by the sender before it picks).
    fn close_lingered(&self) {
        let keys = std::mem::take(&mut *self.inner.lingered.borrow_mut());
        let mut still = Vec::new();
        for key in keys {
            let lingered =
                self.inner.partitions.borrow().get(&key).and_then(|s| s.open.as_ref()).is_some_and(|b| b.lingered);
            if !lingered {
                continue; // closed meanwhile: it filled, or a flush closed it
            }
            match self.cannot_go(&key) {
                Some(true) => still.push(key),
                _ => self.close(&key, None),
            }
        }
        self.inner.lingered.borrow_mut().extend(still);
    }

    /// Whether a batch of `key` closed now would have to wait: batches of the partition are
    /// queued before it, or its leader has every request slot in use. `None` for a partition
    /// without state or a known leader (closing sends it down the usual paths).
    fn cannot_go(&self, key: &Key) -> Option<bool> {
        if !self.inner.partitions.borrow().get(key)?.closed.is_empty() {
            return Some(true);
        }
        let leader = self.inner.client.metadata().leader(&key.0, key.1)?;
        let max_in_flight = self.inner.client.config().connection.max_in_flight.max(1);
        Some(self.inner.in_flight.borrow().get(&leader).copied().unwrap_or(0) >= max_in_flight)
    }

    /// Moves the topic's sticky partition on if it was `key`'s, whose batch just closed.
    fn unstick(&self, key: &Key) {
        let mut sticky = self.inner.sticky.borrow_mut();
        let Some(current) = sticky.get_mut(&key.0) else { return };
        if *current != key.1 {
            return;
        }
        let count = self.inner.client.metadata().topics.get(&key.0).map_or(0, |t| t.partitions.len());
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        if count > 1 {
            let mut next = self.next_sticky(count);
            if next == *current {
                next = self.next_sticky(count);
            }
            *current = next;
        }
    }

    fn wake(&self) {
        // Full means a wake-up is already pending; closed means the producer is going away.
        let _ = self.inner.wake.try_send(());
    }

    /// Starts every request the leaders have room for.
    async fn dispatch(&self) {
        let fatal = self.inner.fatal.borrow().clone();
        if let Some(error) = fatal {
            // Records added while the producer was stopping.
            self.fail_fatally(error);
            return;
        }
        self.maybe_init();
        self.add_partitions_to_txn();
        loop {
            self.close_lingered();
            let picks = self.pick();
            if picks.is_empty() {
                return;
            }
            for (leader, batches) in picks {
                let connection = match self.inner.client.broker_connection(leader).await {
                    Ok(connection) => connection,
                    Err(e) => {
                        for (key, batch) in batches {
                            self.landed(&key);
                            self.retry_or_fail(key, batch, e.clone());
                        }
                        continue;
                    }
                };
                *self.inner.in_flight.borrow_mut().entry(leader).or_default() += 1;
                let producer = self.clone();
                glommio::spawn_local(async move { producer.produce(leader, connection, batches).await }).detach();
            }
        }
    }

    /// Takes the oldest closed batch of each partition whose leader has room for a request,
    /// grouped by leader, within the request size. Partitions without a known leader go down
    /// the retry path.
    fn pick(&self) -> BTreeMap<i32, Vec<(Key, ClosedBatch)>> {
        let identity = self.inner.identity.get();
        if self.inner.config.idempotence && identity.is_none() {
            // Nothing goes out without a producer id: it waits for InitProducerId.
            return BTreeMap::new();
        }
        let metadata = self.inner.client.metadata();
        let max_in_flight = self.inner.client.config().connection.max_in_flight.max(1);
        let mut picks: BTreeMap<i32, Vec<(Key, ClosedBatch)>> = BTreeMap::new();
        let mut bytes: BTreeMap<i32, usize> = BTreeMap::new();
        let mut leaderless = Vec::new();
        let mut broken = Vec::new();
        {
            let in_flight = self.inner.in_flight.borrow();
            let mut partitions = self.inner.partitions.borrow_mut();
            let txn = self.inner.txn.borrow();
            let transactional = self.inner.config.transactional_id.is_some();
            for (key, state) in partitions.iter_mut() {
                if state.paused || state.closed.is_empty() {
                    continue;
                }
                if transactional && !txn.added.contains(key) {
                    continue; // not in the coordinator's transaction yet
                }
                let Some(leader) = metadata.leader(&key.0, key.1) else {
                    if let Some(batch) = state.closed.pop_front() {
                        leaderless.push((key.clone(), batch));
                    }
                    continue;
                };
                if in_flight.get(&leader).copied().unwrap_or(0) >= max_in_flight {
                    continue;
                }
                let taken = bytes.entry(leader).or_default();
                let next = state.closed.front().map_or(0, |b| b.records.len());
                if *taken > 0 && *taken + next > self.inner.config.request_max_bytes {
                    continue;
                }
                if let Some(current) = identity {
                    let mut unstampable = Vec::new();
                    let ready = state.ready(current, &mut unstampable);
                    broken.extend(unstampable.into_iter().map(|(batch, e)| (key.clone(), batch, e)));
                    if !ready {
                        continue;
                    }
                }
                if let Some(batch) = state.take_front() {
                    *taken += batch.records.len();
                    picks.entry(leader).or_default().push((key.clone(), batch));
                }
            }
        }
        for (key, batch) in leaderless {
            let error = ClientError::NoLeader { topic: key.0.clone(), partition: key.1 };
            self.retry_or_fail(key, batch, error);
        }
        for (key, batch, error) in broken {
            self.finish(&key, batch, Err(error));
        }
        picks
    }

    /// Sends one Produce request to `leader` and settles its batches.
    async fn produce(&self, leader: i32, connection: Connection, mut batches: Vec<(Key, ClosedBatch)>) {
        let mut topics: BTreeMap<&str, Vec<ProduceRequestPartition>> = BTreeMap::new();
        for (_, batch) in &mut batches {
            // From here on it may reach the log, whatever comes back.
            batch.sent = true;
        }
        for ((topic, partition), batch) in &batches {
            topics.entry(topic.as_str()).or_default().push(ProduceRequestPartition {
                index: *partition,
                records: Some(RecordSet::Shared(batch.records.clone())),
            });
        }
        let request = ProduceRequest {
            transactional_id: self.inner.config.transactional_id.clone(),
            acks: self.inner.config.acks.wire(),
            timeout_ms: i32::try_from(self.inner.config.ack_timeout.as_millis()).unwrap_or(i32::MAX),
            topic_data: topics
                .into_iter()
                .map(|(name, partition_data)| ProduceRequestTopic { name: name.to_string(), partition_data })
                .collect(),
        };
        let result = if self.inner.config.acks == Acks::None {
            connection.send_no_response(&request).await.map(|()| None)
        } else {
            connection.send(&request).await.map(Some)
        };
        if let Some(count) = self.inner.in_flight.borrow_mut().get_mut(&leader) {
            *count = count.saturating_sub(1);
        }
        for (key, _) in &batches {
            self.landed(key);
        }
        match result {
            Err(e) => {
                for (key, batch) in batches {
                    self.retry_or_fail(key, batch, e.clone());
                }
            }
            Ok(None) => {
                for (key, batch) in batches {
                    self.finish(&key, batch, Ok((None, None)));
                }
            }
            Ok(Some(response)) => self.settle(&connection, batches, &response),
        }
        self.wake();
    }

    /// A batch of `key` taken to send is back (or was never sent).
    fn landed(&self, key: &Key) {
        if let Some(state) = self.inner.partitions.borrow_mut().get_mut(key) {
            state.landed();
        }
    }

    /// Settles each batch of a request by its partition's answer.
    fn settle(&self, connection: &Connection, batches: Vec<(Key, ClosedBatch)>, response: &ProduceResponse) {
        for (key, batch) in batches {
            let (topic, partition) = (key.0.as_str(), key.1);
            let found = response
                .responses
                .iter()
                .filter(|t| t.name == topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == partition);
            let Some(answer) = found else {
                let error = ClientError::Protocol {
                    addr: connection.addr().to_string(),
                    reason: format!("no Produce result for {topic}-{partition}"),
                };
                self.finish(&key, batch, Err(error));
                continue;
            };
            let error = ClientError::from_code(
                answer.error_code,
                || format!("{topic}-{partition}"),
                answer.error_message.as_deref(),
            );
            let append_time = (answer.log_append_time_ms >= 0).then_some(answer.log_append_time_ms);
            match error {
                // The broker has this batch from an earlier try whose answer was lost: a
                // success, though it may not say where it put it.
                Some(error) if batch.stamp.is_some() && sequencing::verdict(&error) == Verdict::Duplicate => {
                    let base_offset = (answer.base_offset >= 0).then_some(answer.base_offset);
                    self.finish(&key, batch, Ok((base_offset, append_time)));
                }
                Some(error) => self.retry_or_fail(key, batch, error),
                None => self.finish(&key, batch, Ok((Some(answer.base_offset), append_time))),
            }
        }
    }

    /// Puts `batch` back in its place in its partition's queue and pauses the partition for a
    /// backoff and a metadata refresh, or fails it for good ([`PartitionState::refuse`]); asks
    /// for a new identity or stops the producer when the error says so.
    fn retry_or_fail(&self, key: Key, batch: ClosedBatch, error: ClientError) {
        let config = self.inner.client.config();
        let refused =
            self.inner.partitions.borrow_mut().entry(key.clone()).or_default().refuse(batch, error, config.retries);
        if let Some(leaving) = refused.bump {
            self.request_bump(leaving);
        }
        match refused.outcome {
            Refusal::Fail(batch, error) => self.finish(&key, batch, Err(error)),
            Refusal::Retry { pause: false } => {}
            Refusal::Retry { pause: true } => {
                let producer = self.clone();
                let backoff = config.retry_backoff;
                glommio::spawn_local(async move {
                    Timer::new(backoff).await;
                    // A failed refresh is retried along with the produce.
                    let _ = producer.inner.client.refresh_metadata(Some(std::slice::from_ref(&key.0))).await;
                    if let Some(state) = producer.inner.partitions.borrow_mut().get_mut(&key) {
                        state.paused = false;
                    }
                    producer.wake();
                })
                .detach();
            }
        }
        if let Some(error) = refused.fatal {
            self.fail_fatally(error);
        }
    }

    /// Starts an InitProducerId if the producer needs an identity and has batches waiting for
    /// one. After one that failed, the next batch to close tries again.
    fn maybe_init(&self) {
        let inner = &self.inner;
        if !inner.config.idempotence
            || inner.config.transactional_id.is_some()
            || inner.identity.get().is_some()
            || inner.initializing.get()
        {
            return;
        }
        if inner.partitions.borrow().values().any(|state| !state.closed.is_empty()) {
            self.start_init();
        }
    }

    fn start_init(&self) {
        self.inner.initializing.set(true);
        let producer = self.clone();
        glommio::spawn_local(async move {
            let leaving = producer.inner.leaving.get();
            let result = request_identity(&producer.inner.client, leaving).await;
            producer.inner.initializing.set(false);
            match result {
                Ok(identity) => {
                    producer.inner.identity.set(Some(identity));
                    producer.inner.leaving.set(None);
                    producer.wake();
                }
                // Out of retries: what waits for an identity fails; new batches try again.
                Err(error) if sequencing::init_retriable(&error) => producer.fail_queued(&error, false),
                Err(error) => producer.fail_fatally(error),
            }
        })
        .detach();
    }

    /// Replaces the identity `leaving` (a batch under it met a sequence gap or a fenced epoch)
    /// with a new one from InitProducerId, unless that is already done or under way. Nothing
    /// is sent until it comes.
    fn request_bump(&self, leaving: ProducerIdentity) {
        if self.inner.identity.get() != Some(leaving) {
            return;
        }
        if self.inner.config.transactional_id.is_some() {
            // In a transaction a gap cannot be healed by renumbering: the transaction can only
            // abort, after which `abort_transaction` takes a new epoch.
            let error = ClientError::InvalidArgument("a batch of the transaction was refused; abort it".into());
            self.inner.txn.borrow_mut().failed.get_or_insert(error.clone());
            self.fail_queued(&error, false);
            return;
        }
        self.inner.identity.set(None);
        self.inner.leaving.set(Some(leaving));
        self.wake();
    }

    /// Stops the producer for good with `error`: fails every batch not in flight, open ones
    /// included, and every later send. Batches in flight fail as their answers come.
    fn fail_fatally(&self, error: ClientError) {
        if self.inner.fatal.borrow().is_none() {
            *self.inner.fatal.borrow_mut() = Some(error.clone());
        }
        self.fail_queued(&error, true);
    }

    /// Fails with `error` every closed batch not in flight, and with `open` the open ones.
    fn fail_queued(&self, error: &ClientError, open: bool) {
        let mut failed = Vec::new();
        let mut unbuilt = Vec::new();
        for (key, state) in self.inner.partitions.borrow_mut().iter_mut() {
            failed.extend(state.closed.drain(..).map(|batch| (key.clone(), batch)));
            if open && let Some(batch) = state.open.take() {
                unbuilt.push((key.clone(), ClosedBatch::unbuilt(batch)));
            }
        }
        // An open batch is not outstanding yet; `finish` counts it out.
        self.inner.outstanding.set(self.inner.outstanding.get() + unbuilt.len());
        for (key, batch) in failed.into_iter().chain(unbuilt) {
            self.finish(&key, batch, Err(error.clone()));
        }
    }

    /// Reports the outcome of every record of `batch` and frees its buffer bytes. `Ok` carries
    /// the base offset (unknown with acks=0) and the log-append time, if the topic uses it. A
    /// numbered batch settles its place in its partition's run, whatever the outcome.
    fn finish(&self, key: &Key, batch: ClosedBatch, result: Result<(Option<i64>, Option<i64>), ClientError>) {
        if let Err(error) = &result
            && self.inner.config.transactional_id.is_some()
        {
            self.inner.txn.borrow_mut().failed.get_or_insert(error.clone());
        }
        if let Some(stamp) = batch.stamp
            && let Some(state) = self.inner.partitions.borrow_mut().get_mut(key)
        {
            state.sequences.settle(&stamp);
        }
        let partition = key.1;
        let ClosedBatch { waiters, reserved, .. } = batch;
        let acknowledged_at = Instant::now();
        for (i, (timestamp, waiter)) in waiters.into_iter().enumerate() {
            let report = result.clone().map(|(base_offset, append_time)| RecordMetadata {
                partition,
                offset: base_offset.map(|base| base.saturating_add(i as i64)),
                timestamp: append_time.unwrap_or(timestamp),
                acknowledged_at,
            });
            waiter.complete(report);
        }
        self.inner.buffer.signal(reserved as u64);
        let left = self.inner.outstanding.get().saturating_sub(1);
        self.inner.outstanding.set(left);
        if left == 0 {
            for waiter in self.inner.idle_waiters.borrow_mut().drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// Closes `key`'s open batch if a record of `reserve` bytes would take it past the batch
    /// size: `Some(true)` if it did, `Some(false)` if not, `None` if the partition has no state
    /// yet.
    fn close_if_overflowing(&self, key: &Key, reserve: usize) -> Option<bool> {
        let batch_size = self.inner.config.batch_size;
        let overflows = self.inner.partitions.borrow().get(key).map(|state| {
            state.open.as_ref().is_some_and(|b| !b.builder.is_empty() && b.builder.size() + reserve > batch_size)
        })?;
        if overflows {
            self.close(key, None);
        }
        Some(overflows)
    }
}

/// Runs [`Producer::dispatch`] on every wake-up until the producer is dropped.
async fn sender_loop(producer: Weak<ProducerInner>, wakes: LocalReceiver<()>) {
    while wakes.recv().await.is_some() {
        let Some(inner) = producer.upgrade() else { return };
        Producer { inner }.dispatch().await;
    }
}

/// The finished batch, compressed with `compression` (once: retries resend the same bytes).
fn build(builder: BatchBuilder, compression: CompressionType) -> Result<Bytes, ClientError> {
    Ok(builder.build_compressed(compression)?.freeze())
}

/// Asks any broker for a producer id and epoch to replace `leaving` (`None` the first time;
/// with v3+, a broker may keep the id and bump the epoch), retrying what
/// [`sequencing::init_retriable`] allows, as often as the client's `retries`.
async fn request_identity(client: &Client, leaving: Option<ProducerIdentity>) -> Result<ProducerIdentity, ClientError> {
    let request = InitProducerIdRequest {
        transactional_id: None,
        transaction_timeout_ms: INIT_TRANSACTION_TIMEOUT_MS,
        producer_id: leaving.map_or(ProducerId::NONE, |identity| identity.producer_id).0,
        producer_epoch: leaving.map_or(-1, |identity| identity.epoch),
    };
    let config = client.config();
    let mut attempts = 0;
    loop {
        let result = match client.any_connection().await {
            Ok(connection) => match connection.send(&request).await {
                Ok(response) => sequencing::identity_from(
                    connection.addr(),
                    response.error_code,
                    response.producer_id,
                    response.producer_epoch,
                    leaving,
                ),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match result {
            Err(error) if sequencing::init_retriable(&error) && attempts < config.retries => {
                attempts += 1;
                Timer::new(config.retry_backoff).await;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The per-partition logic of the idempotent producer ([`PartitionState`] with
    //! [`PartitionSequences`]) driven the way [`Producer`] drives it, against a fake broker
    //! that keeps Kafka's producer state: records must land exactly once and in order through
    //! lost answers, refusals and gaps.

    use std::collections::{HashMap, VecDeque};

    use super::*;
    use crate::model::{RecordBatch, RecordIter};
    use crate::protocol::ErrorCode;

    /// Batches a Kafka broker remembers per producer for spotting duplicates.
    const REMEMBERED: usize = 5;
    /// The fake network's cycle of fates for each round of requests (deterministic).
    const FATES: [Fate; 7] = [
        Fate::Answered,
        Fate::LostAnswers,
        Fate::Answered,
        Fate::Refused,
        Fate::Undelivered,
        Fate::Answered,
        Fate::LostAnswers,
    ];

    #[derive(Clone, Copy)]
    enum Fate {
        /// Every request is appended (or refused by the rules) and answered.
        Answered,
        /// The connection breaks after the first request is answered: the second reaches the
        /// broker but its answer is lost; the rest never leave.
        LostAnswers,
        /// The broker answers NOT_LEADER_OR_FOLLOWER to the first request, appending nothing.
        Refused,
        /// The connection breaks before anything leaves.
        Undelivered,
    }

    /// A producer's state on the fake broker: its epoch and its last few batches.
    struct Remembered {
        epoch: i16,
        /// (first sequence, last sequence, base offset), newest last.
        batches: VecDeque<(i32, i32, i64)>,
    }

    #[derive(Default)]
    struct FakeBroker {
        producers: HashMap<i64, Remembered>,
        /// The keys of the records appended, in offset order.
        log: Vec<u64>,
    }

    impl FakeBroker {
        /// Appends `bytes` by Kafka's idempotence rules: Ok(base offset) or the error code.
        fn produce(&mut self, bytes: &[u8]) -> Result<i64, ErrorCode> {
            let batch = RecordBatch::parse_prefix(bytes, usize::MAX).unwrap();
            batch.validate().unwrap();
            let header = batch.header();
            let (id, epoch, first) = (batch.producer_id().0, header.producer_epoch.get(), header.base_sequence.get());
            assert!(id >= 0 && first >= 0, "an idempotent batch carries its numbers");
            let count = batch.records_count();
            let last = i32::try_from((i64::from(first) + i64::from(count) - 1) % (1 << 31)).unwrap();
            let offset = i64::try_from(self.log.len()).unwrap();
            match self.producers.get_mut(&id) {
                // Strict: a producer the broker does not know must start at 0.
                None if first != 0 => return Err(ErrorCode::UnknownProducerId),
                None => {}
                Some(known) if epoch < known.epoch => return Err(ErrorCode::InvalidProducerEpoch),
                Some(known) if epoch > known.epoch && first != 0 => return Err(ErrorCode::OutOfOrderSequenceNumber),
                Some(known) if epoch == known.epoch => {
                    if let Some(&(_, _, at)) = known.batches.iter().find(|&&(f, l, _)| (f, l) == (first, last)) {
                        let _ = at;
                        return Err(ErrorCode::DuplicateSequenceNumber);
                    }
                    let expected = known.batches.back().map_or(0, |&(_, l, _)| if l == i32::MAX { 0 } else { l + 1 });
                    if first != expected {
                        return Err(ErrorCode::OutOfOrderSequenceNumber);
                    }
                }
                Some(_) => {}
            }
            let known = self.producers.entry(id).or_insert(Remembered { epoch, batches: VecDeque::new() });
            if known.epoch != epoch {
                *known = Remembered { epoch, batches: VecDeque::new() };
            }
            known.batches.push_back((first, last, offset));
            if known.batches.len() > REMEMBERED {
                known.batches.pop_front();
            }
            for record in RecordIter::new(&batch) {
                let key = record.unwrap().key.unwrap();
                self.log.push(u64::from_be_bytes(key.try_into().unwrap()));
            }
            Ok(offset)
        }
    }

    type Outcomes = Rc<RefCell<Vec<(u64, DeliveryResult)>>>;

    /// One partition of an idempotent producer, driven as [`Producer`] drives it.
    struct Driver {
        state: PartitionState,
        identity: Option<ProducerIdentity>,
        outcomes: Outcomes,
        next_key: u64,
        retries: u32,
        bumps: usize,
    }

    impl Driver {
        fn new() -> Driver {
            let identity = ProducerIdentity { producer_id: ProducerId(1000), epoch: 0, transactional: false };
            let outcomes = Rc::new(RefCell::new(Vec::new()));
            Driver {
                state: PartitionState::default(),
                identity: Some(identity),
                outcomes,
                next_key: 0,
                retries: 20,
                bumps: 0,
            }
        }

        /// Closes a batch of `records` new records, as [`Producer::close`] does.
        fn close(&mut self, records: u64) {
            let mut builder = BatchBuilder::new(Timestamp(0));
            let mut waiters = Vec::new();
            for _ in 0..records {
                let key = self.next_key;
                self.next_key += 1;
                builder.push(Some(&key.to_be_bytes()), Some(b"v"), Timestamp(0), &[]);
                let outcomes = self.outcomes.clone();
                waiters.push((0, Waiter::Callback(Box::new(move |result| outcomes.borrow_mut().push((key, result))))));
            }
            let back = self.state.closed.back().map(|queued| queued.stamp);
            let count = u32::try_from(records).unwrap();
            let stamp = self.state.sequences.stamp_at_close(self.identity, back, count);
            if let Some(stamp) = stamp {
                builder.set_producer(stamp.producer_stamp());
            }
            let ordinal = self.state.next_ordinal;
            self.state.next_ordinal += 1;
            let records = builder.build().freeze();
            let batch = ClosedBatch { records, waiters, reserved: 0, attempts: 0, ordinal, stamp, sent: false };
            self.state.closed.push_back(batch);
        }

        /// The batches that may go now, as [`Producer::pick`] takes them (one per request).
        fn pick(&mut self) -> Vec<ClosedBatch> {
            let mut picked = Vec::new();
            let Some(current) = self.identity else { return picked };
            loop {
                let mut broken = Vec::new();
                let ready = self.state.ready(current, &mut broken);
                assert!(broken.is_empty());
                if !ready {
                    return picked;
                }
                let mut batch = self.state.take_front().unwrap();
                batch.sent = true;
                picked.push(batch);
            }
        }

        fn finish(&mut self, batch: ClosedBatch, result: Result<i64, ClientError>) {
            if let Some(stamp) = batch.stamp {
                self.state.sequences.settle(&stamp);
            }
            for (i, (_, waiter)) in batch.waiters.into_iter().enumerate() {
                let offset = result.as_ref().ok().map(|base| base + i as i64);
                waiter.complete(result.clone().map(|_| RecordMetadata {
                    partition: 0,
                    offset,
                    timestamp: 0,
                    acknowledged_at: Instant::now(),
                }));
            }
        }

        /// A batch came back with `answer`, as [`Producer::settle`] and
        /// [`Producer::retry_or_fail`] take it.
        fn answer(&mut self, batch: ClosedBatch, answer: Result<i64, ClientError>) {
            self.state.landed();
            let error = match answer {
                Ok(offset) => return self.finish(batch, Ok(offset)),
                Err(error) if sequencing::verdict(&error) == Verdict::Duplicate => return self.finish(batch, Ok(-1)),
                Err(error) => error,
            };
            let refused = self.state.refuse(batch, error, self.retries);
            assert!(refused.fatal.is_none());
            if let Some(leaving) = refused.bump
                && self.identity == Some(leaving)
            {
                // InitProducerId with the current id and epoch: the broker bumps the epoch.
                self.identity = Some(ProducerIdentity { epoch: leaving.epoch + 1, ..leaving });
                self.bumps += 1;
            }
            match refused.outcome {
                Refusal::Fail(batch, error) => self.finish(batch, Err(error)),
                // The backoff is over at once.
                Refusal::Retry { .. } => self.state.paused = false,
            }
        }

        /// Sends what may go and settles it by `fate`; `refuse` picks batches the broker
        /// refuses for good (by their first key).
        fn round(&mut self, broker: &mut FakeBroker, fate: Fate, refuse: &dyn Fn(u64) -> bool) {
            let picked = self.pick();
            assert!(picked.len() <= IDEMPOTENT_IN_FLIGHT_MAX);
            let broken_at = match fate {
                Fate::LostAnswers => Some(1),
                Fate::Undelivered => Some(0),
                Fate::Answered | Fate::Refused => None,
            };
            let mut answers = Vec::new();
            for (i, batch) in picked.iter().enumerate() {
                let first_key = RecordIter::new(&RecordBatch::parse_prefix(&batch.records, usize::MAX).unwrap())
                    .next()
                    .map(|r| u64::from_be_bytes(r.unwrap().key.unwrap().try_into().unwrap()))
                    .unwrap();
                let network = || ClientError::Network { addr: "fake".into(), reason: "reset".into() };
                let code = |code: ErrorCode| ClientError::from_code(code.code(), || "t-0".into(), None).unwrap();
                let answer = match broken_at {
                    Some(at) if i > at => Err(network()),
                    Some(at) if i == at => {
                        // Delivered (appended or refused by the rules), the answer lost.
                        let _ = broker.produce(&batch.records);
                        Err(network())
                    }
                    _ if matches!(fate, Fate::Refused) && i == 0 => Err(code(ErrorCode::NotLeaderOrFollower)),
                    _ if refuse(first_key) => Err(code(ErrorCode::MessageTooLarge)),
                    _ => broker.produce(&batch.records).map_err(code),
                };
                answers.push(answer);
            }
            // Answers come back in the order the requests went.
            for (batch, answer) in picked.into_iter().zip(answers) {
                self.answer(batch, answer);
            }
        }

        fn outcome(&self, key: u64) -> Option<DeliveryResult> {
            self.outcomes.borrow().iter().find(|(k, _)| *k == key).map(|(_, result)| result.clone())
        }
    }

    /// Closes `batches` batches of `records` records, a few per round, and runs rounds with
    /// the network's fates until everything is settled.
    fn run(driver: &mut Driver, broker: &mut FakeBroker, batches: u64, records: u64, refuse: &dyn Fn(u64) -> bool) {
        for round in 0..10_000 {
            if (round as u64) < batches {
                driver.close(records);
            }
            if (round as u64) >= batches && driver.state.closed.is_empty() && driver.state.sequences.in_flight == 0 {
                return;
            }
            driver.round(broker, FATES[round % FATES.len()], refuse);
        }
        panic!("the batches never settled");
    }

    #[test]
    fn records_land_once_and_in_order_through_lost_answers_and_refusals() {
        let (mut driver, mut broker) = (Driver::new(), FakeBroker::default());
        run(&mut driver, &mut broker, 60, 3, &|_| false);
        let expected: Vec<u64> = (0..180).collect();
        assert_eq!(broker.log, expected, "each record exactly once, in order");
        assert_eq!(driver.outcomes.borrow().len(), 180);
        assert!(driver.outcomes.borrow().iter().all(|(_, result)| result.is_ok()));
        assert_eq!(driver.bumps, 0, "lost answers and refusals need no new epoch");
        // Some batches were retried and answered as duplicates, without an offset.
        assert!(driver.outcomes.borrow().iter().any(|(_, result)| matches!(result, Ok(m) if m.offset == Some(-1))));
    }

    #[test]
    fn a_batch_failed_for_good_makes_a_gap_that_a_new_epoch_closes() {
        let (mut driver, mut broker) = (Driver::new(), FakeBroker::default());
        // The batch starting at key 30 is refused for good; those after it in flight then
        // skip ahead of the broker, which refuses them until the producer starts over.
        run(&mut driver, &mut broker, 40, 3, &|first_key| first_key == 30);
        let expected: Vec<u64> = (0..120).filter(|k| !(30..33).contains(k)).collect();
        assert_eq!(broker.log, expected, "everything else exactly once, in order");
        for key in 30..33 {
            let failed = driver.outcome(key).unwrap().unwrap_err();
            assert_eq!(failed.code(), Some(ErrorCode::MessageTooLarge), "{key}");
        }
        assert!(driver.outcome(33).unwrap().is_ok());
        assert!(driver.bumps >= 1, "the gap took a new epoch");
    }

    #[test]
    fn a_broker_that_forgets_the_producer_gets_the_rest_once_under_a_new_epoch() {
        let (mut driver, mut broker) = (Driver::new(), FakeBroker::default());
        for _ in 0..10 {
            driver.close(2);
        }
        driver.round(&mut broker, Fate::Answered, &|_| false);
        assert_eq!(broker.log.len(), 10);
        // The broker loses its state of the producer (say, retention removed its batches).
        broker.producers.clear();
        for _ in 0..10 {
            driver.close(2);
        }
        run(&mut driver, &mut broker, 0, 0, &|_| false);
        let expected: Vec<u64> = (0..40).collect();
        assert_eq!(broker.log, expected);
        assert_eq!(driver.bumps, 1);
        assert!(driver.outcomes.borrow().iter().all(|(_, result)| result.is_ok()));
    }

    #[test]
    fn retries_go_back_in_the_order_their_batches_closed() {
        let mut driver = Driver::new();
        driver.identity = None;
        for _ in 0..4 {
            driver.close(1);
        }
        let mut taken: Vec<ClosedBatch> = (0..4).map(|_| driver.state.take_front().unwrap()).collect();
        driver.close(1);
        // They fail in any order; the queue keeps the order they closed in.
        for batch in [taken.remove(2), taken.remove(0), taken.remove(1), taken.remove(0)] {
            driver.state.landed();
            let error = ClientError::Network { addr: "a".into(), reason: "reset".into() };
            assert!(matches!(driver.state.refuse(batch, error, 5).outcome, Refusal::Retry { .. }));
        }
        let order: Vec<u64> = driver.state.closed.iter().map(|b| b.ordinal).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
        // None had numbers (no identity yet): the first run numbers them all, in that order.
        driver.identity = Some(ProducerIdentity { producer_id: ProducerId(5), epoch: 0, transactional: false });
        let picked = driver.pick();
        let sequences: Vec<i32> = picked.iter().map(|b| b.stamp.unwrap().base_sequence()).collect();
        assert_eq!(sequences, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn idempotence_needs_acks_all_and_five_in_flight_at_most() {
        let client = ClientConfig::new(["b:9092"]);
        assert!(ProducerConfig::default().validate(&client).is_ok());
        for acks in [Acks::None, Acks::Leader] {
            let error = ProducerConfig { acks, ..Default::default() }.validate(&client).unwrap_err();
            assert!(matches!(&error, ClientError::Config(m) if m.contains("acks=all")), "{error}");
            assert!(ProducerConfig { acks, idempotence: false, ..Default::default() }.validate(&client).is_ok());
        }
        let mut busy = client.clone();
        busy.connection.max_in_flight = IDEMPOTENT_IN_FLIGHT_MAX + 1;
        let error = ProducerConfig::default().validate(&busy).unwrap_err();
        assert!(error.to_string().contains("at most 5 requests in flight"), "{error}");
        assert!(ProducerConfig { idempotence: false, ..Default::default() }.validate(&busy).is_ok());
    }
}
