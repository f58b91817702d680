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
//! goes back to the front of its partition's queue, the partition pauses for `retry_backoff`,
//! the metadata is refreshed, and sending resumes. As with Kafka's producer without idempotence,
//! records keep their order across a retry only with one request in flight per connection;
//! with more, a later batch already in flight may land before the retried one.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::sync::Semaphore;
use glommio::timer::Timer;

use super::connection::Connection;
use super::error::ClientError;
use super::metadata::Client;
use super::partitioner::partition_for_key;
use crate::model::{BatchBuilder, CompressionType, Timestamp};
use crate::protocol::RecordSet;
use crate::protocol::messages::{ProduceRequest, ProduceRequestPartition, ProduceRequestTopic, ProduceResponse};

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
    /// The record's offset; `None` with acks=0.
    pub offset: Option<i64>,
    /// The record's timestamp: its create time, or the broker's append time for topics with
    /// `message.timestamp.type=LogAppendTime`.
    pub timestamp: i64,
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
}

/// A batch ready to go (or going, or waiting to be retried).
struct ClosedBatch {
    records: Bytes,
    waiters: Vec<(i64, Waiter)>,
    reserved: usize,
    attempts: u32,
}

#[derive(Default)]
struct PartitionState {
    open: Option<OpenBatch>,
    /// Closed batches not yet sent, oldest first.
    closed: VecDeque<ClosedBatch>,
    /// Waiting out a retry backoff: nothing is sent for the partition.
    paused: bool,
    /// Batches put back at the front during this pause, so the next goes after them.
    requeued: usize,
    /// Records in the last batch closed: the next one's capacity.
    last_count: usize,
}

type Key = (String, i32);

struct ProducerInner {
    client: Client,
    config: ProducerConfig,
    partitions: RefCell<HashMap<Key, PartitionState>>,
    next_generation: Cell<u64>,
    /// For keyless records without a partition: the partition each topic sticks to until its
    /// batch closes (Kafka's sticky partitioner, KIP-480), so records fill a few large batches
    /// instead of spreading over every partition's tiny ones.
    sticky: RefCell<HashMap<String, i32>>,
    /// Rotates the sticky partitions.
    round_robin: Cell<u32>,
    /// Batches closed but not yet acknowledged (or failed).
    outstanding: Cell<usize>,
    idle_waiters: RefCell<Vec<oneshot::Sender<()>>>,
    /// Buffer bytes free for records ([`ProducerConfig::buffer_memory`]).
    buffer: Semaphore,
    /// Produce requests in flight per leader.
    in_flight: RefCell<HashMap<i32, usize>>,
    /// Wakes the sender task; one pending wake-up is enough.
    wake: LocalSender<()>,
}

/// A producer over a [`Client`]. See the module docs.
#[derive(Clone)]
pub struct Producer {
    inner: Rc<ProducerInner>,
}

impl Producer {
    /// A producer over `client`; starts its sender task on the current executor.
    pub fn new(client: Client, config: ProducerConfig) -> Producer {
        let (wake, wakes) = local_channel::new_bounded(1);
        let inner = ProducerInner {
            client,
            buffer: Semaphore::new(config.buffer_memory.max(1) as u64),
            config,
            partitions: RefCell::new(HashMap::new()),
            next_generation: Cell::new(0),
            sticky: RefCell::new(HashMap::new()),
            round_robin: Cell::new(0),
            outstanding: Cell::new(0),
            idle_waiters: RefCell::new(Vec::new()),
            in_flight: RefCell::new(HashMap::new()),
            wake,
        };
        let inner = Rc::new(inner);
        glommio::spawn_local(sender_loop(Rc::downgrade(&inner), wakes)).detach();
        Producer { inner }
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
        let key = (record.topic, partition);
        let headers: Vec<(&str, &[u8])> = record.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        // Like Kafka's producer, a record that would take the open batch past `batch_size`
        // starts a new one (so batches stay under the broker's max.message.bytes); only a
        // record larger than that on its own makes a larger batch.
        let overflows = self
            .inner
            .partitions
            .borrow()
            .get(&key)
            .and_then(|s| s.open.as_ref())
            .is_some_and(|b| !b.builder.is_empty() && b.builder.size() + reserve > self.inner.config.batch_size);
        if overflows {
            self.close(&key, None);
        }
        let (full, new_generation) = {
            let mut partitions = self.inner.partitions.borrow_mut();
            let state = partitions.entry(key.clone()).or_default();
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
                producer.close(&key, Some(generation));
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
        let batch = {
            let mut partitions = self.inner.partitions.borrow_mut();
            let Some(state) = partitions.get_mut(key) else { return };
            match (&state.open, generation) {
                (Some(batch), Some(g)) if batch.generation != g => return,
                (None, _) => return,
                _ => {}
            }
            let Some(batch) = state.open.take() else { return };
            state.last_count = batch.waiters.len();
            batch
        };
        self.inner.outstanding.set(self.inner.outstanding.get() + 1);
        self.unstick(key);
        let OpenBatch { builder, waiters, reserved, .. } = batch;
        let batch = match build(builder, self.inner.config.compression) {
            Ok(records) => ClosedBatch { records, waiters, reserved, attempts: 0 },
            Err(e) => {
                self.finish(ClosedBatch { records: Bytes::new(), waiters, reserved, attempts: 0 }, key.1, Err(e));
                return;
            }
        };
        if let Some(state) = self.inner.partitions.borrow_mut().get_mut(key) {
            state.closed.push_back(batch);
        }
        self.wake();
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
        loop {
            let picks = self.pick();
            if picks.is_empty() {
                return;
            }
            for (leader, batches) in picks {
                let connection = match self.inner.client.broker_connection(leader).await {
                    Ok(connection) => connection,
                    Err(e) => {
                        for (key, batch) in batches {
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
        let metadata = self.inner.client.metadata();
        let max_in_flight = self.inner.client.config().connection.max_in_flight.max(1);
        let mut picks: BTreeMap<i32, Vec<(Key, ClosedBatch)>> = BTreeMap::new();
        let mut bytes: BTreeMap<i32, usize> = BTreeMap::new();
        let mut leaderless = Vec::new();
        {
            let in_flight = self.inner.in_flight.borrow();
            let mut partitions = self.inner.partitions.borrow_mut();
            for (key, state) in partitions.iter_mut() {
                if state.paused || state.closed.is_empty() {
                    continue;
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
                if let Some(batch) = state.closed.pop_front() {
                    *taken += next;
                    picks.entry(leader).or_default().push((key.clone(), batch));
                }
            }
        }
        for (key, batch) in leaderless {
            let error = ClientError::NoLeader { topic: key.0.clone(), partition: key.1 };
            self.retry_or_fail(key, batch, error);
        }
        picks
    }

    /// Sends one Produce request to `leader` and settles its batches.
    async fn produce(&self, leader: i32, connection: Connection, batches: Vec<(Key, ClosedBatch)>) {
        let mut topics: BTreeMap<&str, Vec<ProduceRequestPartition>> = BTreeMap::new();
        for ((topic, partition), batch) in &batches {
            topics.entry(topic.as_str()).or_default().push(ProduceRequestPartition {
                index: *partition,
                records: Some(RecordSet::Shared(batch.records.clone())),
            });
        }
        let request = ProduceRequest {
            transactional_id: None,
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
        match result {
            Err(e) => {
                for (key, batch) in batches {
                    self.retry_or_fail(key, batch, e.clone());
                }
            }
            Ok(None) => {
                for ((_, partition), batch) in batches {
                    self.finish(batch, partition, Ok((None, None)));
                }
            }
            Ok(Some(response)) => self.settle(&connection, batches, &response),
        }
        self.wake();
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
                self.finish(batch, partition, Err(error));
                continue;
            };
            let error = ClientError::from_code(
                answer.error_code,
                || format!("{topic}-{partition}"),
                answer.error_message.as_deref(),
            );
            match error {
                Some(error) => self.retry_or_fail(key, batch, error),
                None => {
                    let append_time = (answer.log_append_time_ms >= 0).then_some(answer.log_append_time_ms);
                    self.finish(batch, partition, Ok((Some(answer.base_offset), append_time)));
                }
            }
        }
    }

    /// Puts `batch` back at the front of its partition and pauses the partition for a backoff
    /// and a metadata refresh, or fails it for good.
    fn retry_or_fail(&self, key: Key, mut batch: ClosedBatch, error: ClientError) {
        let config = self.inner.client.config();
        if !error.is_retriable() || batch.attempts >= config.retries {
            self.finish(batch, key.1, Err(error));
            return;
        }
        batch.attempts += 1;
        let start_backoff = {
            let mut partitions = self.inner.partitions.borrow_mut();
            let state = partitions.entry(key.clone()).or_default();
            // Several batches of a partition fail in the order they were sent: keep that order.
            let at = state.requeued.min(state.closed.len());
            state.closed.insert(at, batch);
            state.requeued += 1;
            !std::mem::replace(&mut state.paused, true)
        };
        if start_backoff {
            let producer = self.clone();
            let backoff = config.retry_backoff;
            glommio::spawn_local(async move {
                Timer::new(backoff).await;
                // A failed refresh is retried along with the produce.
                let _ = producer.inner.client.refresh_metadata(Some(std::slice::from_ref(&key.0))).await;
                if let Some(state) = producer.inner.partitions.borrow_mut().get_mut(&key) {
                    state.paused = false;
                    state.requeued = 0;
                }
                producer.wake();
            })
            .detach();
        }
    }

    /// Reports the outcome of every record of `batch` and frees its buffer bytes. `Ok` carries
    /// the base offset (unknown with acks=0) and the log-append time, if the topic uses it.
    fn finish(&self, batch: ClosedBatch, partition: i32, result: Result<(Option<i64>, Option<i64>), ClientError>) {
        let ClosedBatch { waiters, reserved, .. } = batch;
        for (i, (timestamp, waiter)) in waiters.into_iter().enumerate() {
            let report = result.clone().map(|(base_offset, append_time)| RecordMetadata {
                partition,
                offset: base_offset.map(|base| base.saturating_add(i as i64)),
                timestamp: append_time.unwrap_or(timestamp),
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
