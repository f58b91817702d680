//! [`Producer`]: per-partition batching, acks 0/1/all, the Java client's key partitioner,
//! retries with metadata refresh, and a delivery future per record.
//!
//! Lifecycle: [`Producer::send`] picks the partition (explicit, by key hash, or round-robin
//! for keyless records), appends the record to that partition's open batch and returns a
//! [`Delivery`] future. A batch closes when it reaches `batch_size` bytes or `linger` after its
//! first record, whichever comes first; [`Producer::flush`] closes all of them and waits for
//! every record sent so far.
//!
//! Ordering: each partition sends its closed batches one at a time, in order, retrying a batch
//! before the next goes out, so records of a partition keep their order even across retries.
//! Partitions send concurrently; each connection keeps at most
//! [`super::ConnectionConfig::max_in_flight`] requests in flight and answers them in order.
//!
//! Compression: a batch is compressed once, when it closes, with [`ProducerConfig::compression`].
//!
//! Not yet: several partitions per Produce request, idempotence.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_channel::oneshot;
use glommio::timer::Timer;

use super::error::ClientError;
use super::metadata::Client;
use super::partitioner::partition_for_key;
use crate::model::{BatchBuilder, CompressionType, Timestamp};
use crate::protocol::RecordSet;
use crate::protocol::messages::{ProduceRequest, ProduceRequestPartition, ProduceRequestTopic};

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
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            batch_size: 16 * 1024,
            linger: Duration::from_millis(5),
            ack_timeout: Duration::from_secs(30),
            compression: CompressionType::None,
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

type DeliveryResult = Result<RecordMetadata, ClientError>;

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

/// An open or closed batch for one partition.
struct Batch {
    builder: BatchBuilder,
    /// Per record: its timestamp and where to report.
    waiters: Vec<(i64, oneshot::Sender<DeliveryResult>)>,
    /// Tells a linger timer whether the batch it was started for is still the open one.
    generation: u64,
}

#[derive(Default)]
struct PartitionState {
    open: Option<Batch>,
    closed: VecDeque<Batch>,
    /// A sender task is draining `closed`.
    sending: bool,
}

type Key = (String, i32);

struct ProducerInner {
    client: Client,
    config: ProducerConfig,
    partitions: RefCell<HashMap<Key, PartitionState>>,
    next_generation: Cell<u64>,
    round_robin: Cell<u32>,
    /// Batches closed but not yet acknowledged (or failed).
    outstanding: Cell<usize>,
    idle_waiters: RefCell<Vec<oneshot::Sender<()>>>,
}

/// A producer over a [`Client`]. See the module docs.
#[derive(Clone)]
pub struct Producer {
    inner: Rc<ProducerInner>,
}

impl Producer {
    /// A producer over `client`.
    pub fn new(client: Client, config: ProducerConfig) -> Producer {
        let inner = ProducerInner {
            client,
            config,
            partitions: RefCell::new(HashMap::new()),
            next_generation: Cell::new(0),
            round_robin: Cell::new(0),
            outstanding: Cell::new(0),
            idle_waiters: RefCell::new(Vec::new()),
        };
        Producer { inner: Rc::new(inner) }
    }

    /// Queues `record`; the returned future resolves when it is acknowledged. Fails at once
    /// for an unknown topic or partition.
    pub async fn send(&self, record: ProducerRecord) -> Result<Delivery, ClientError> {
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
            return Err(ClientError::UnknownTopic(record.topic));
        }
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if (0..count).contains(&p) => p,
            (Some(p), _) => {
                let reason = format!("partition {p} out of range: topic {} has {count} partitions", record.topic);
                return Err(ClientError::InvalidArgument(reason));
            }
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => {
                let next = self.inner.round_robin.get();
                self.inner.round_robin.set(next.wrapping_add(1));
                i32::try_from(next % count.unsigned_abs()).unwrap_or(0)
            }
        };
        let timestamp = record.timestamp.unwrap_or_else(|| Timestamp::now().0);
        let (sender, receiver) = oneshot::channel();
        let key = (record.topic.clone(), partition);
        let headers: Vec<(&str, &[u8])> = record.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        let (full, new_generation) = {
            let mut partitions = self.inner.partitions.borrow_mut();
            let state = partitions.entry(key.clone()).or_default();
            let mut new_generation = None;
            let batch = state.open.get_or_insert_with(|| {
                let generation = self.inner.next_generation.get();
                self.inner.next_generation.set(generation + 1);
                new_generation = Some(generation);
                Batch { builder: BatchBuilder::new(Timestamp(timestamp)), waiters: Vec::new(), generation }
            });
            batch.builder.push(record.key.as_deref(), record.value.as_deref(), Timestamp(timestamp), &headers);
            batch.waiters.push((timestamp, sender));
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
        Ok(Delivery { receiver })
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

    /// Closes the open batch of `key` (only if it is still `generation`, when given) and makes
    /// sure a sender task drains the partition.
    fn close(&self, key: &Key, generation: Option<u64>) {
        let start_sender = {
            let mut partitions = self.inner.partitions.borrow_mut();
            let Some(state) = partitions.get_mut(key) else { return };
            let matches = match (&state.open, generation) {
                (Some(batch), Some(g)) => batch.generation == g,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !matches {
                return;
            }
            let Some(batch) = state.open.take() else { return };
            state.closed.push_back(batch);
            self.inner.outstanding.set(self.inner.outstanding.get() + 1);
            let start = !state.sending;
            state.sending = true;
            start
        };
        if start_sender {
            let producer = self.clone();
            let key = key.clone();
            glommio::spawn_local(async move { producer.drain(key).await }).detach();
        }
    }

    /// Sends the closed batches of `key` one at a time, in order.
    async fn drain(&self, key: Key) {
        loop {
            let batch = {
                let mut partitions = self.inner.partitions.borrow_mut();
                let Some(state) = partitions.get_mut(&key) else { return };
                match state.closed.pop_front() {
                    Some(batch) => batch,
                    None => {
                        state.sending = false;
                        return;
                    }
                }
            };
            let Batch { builder, waiters, .. } = batch;
            let result = self.send_batch(&key, builder).await;
            for (i, (timestamp, waiter)) in waiters.into_iter().enumerate() {
                let report = result.clone().map(|(base_offset, append_time)| RecordMetadata {
                    partition: key.1,
                    offset: base_offset.map(|base| base.saturating_add(i as i64)),
                    timestamp: append_time.unwrap_or(timestamp),
                });
                let _ = waiter.send(report);
            }
            let left = self.inner.outstanding.get().saturating_sub(1);
            self.inner.outstanding.set(left);
            if left == 0 {
                for waiter in self.inner.idle_waiters.borrow_mut().drain(..) {
                    let _ = waiter.send(());
                }
            }
        }
    }

    /// Produces one batch, retrying retriable failures after a metadata refresh. Returns the
    /// base offset (unknown with acks=0) and the log-append time, if the topic uses it.
    async fn send_batch(&self, key: &Key, builder: BatchBuilder) -> Result<(Option<i64>, Option<i64>), ClientError> {
        let (topic, partition) = (key.0.as_str(), key.1);
        let records = builder.build_compressed(self.inner.config.compression)?.freeze();
        let config = self.inner.client.config();
        let request = ProduceRequest {
            transactional_id: None,
            acks: self.inner.config.acks.wire(),
            timeout_ms: i32::try_from(self.inner.config.ack_timeout.as_millis()).unwrap_or(i32::MAX),
            topic_data: vec![ProduceRequestTopic {
                name: topic.to_string(),
                partition_data: vec![ProduceRequestPartition {
                    index: partition,
                    records: Some(RecordSet::Shared(records)),
                }],
            }],
        };
        let mut attempt = 0;
        loop {
            let result = self.produce_once(topic, partition, &request).await;
            match result {
                Err(e) if e.is_retriable() && attempt < config.retries => {
                    attempt += 1;
                    Timer::new(config.retry_backoff).await;
                    // A failed refresh is retried along with the produce.
                    let _ = self.inner.client.refresh_metadata(Some(&[topic.to_string()])).await;
                }
                other => return other,
            }
        }
    }

    async fn produce_once(
        &self,
        topic: &str,
        partition: i32,
        request: &ProduceRequest,
    ) -> Result<(Option<i64>, Option<i64>), ClientError> {
        let connection = self.inner.client.leader_connection(topic, partition).await?;
        if self.inner.config.acks == Acks::None {
            connection.send_no_response(request).await?;
            return Ok((None, None));
        }
        let response = connection.send(request).await?;
        let found = response
            .responses
            .iter()
            .filter(|t| t.name == topic)
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == partition);
        let Some(answer) = found else {
            return Err(ClientError::Protocol {
                addr: connection.addr().to_string(),
                reason: format!("no Produce result for {topic}-{partition}"),
            });
        };
        if let Some(error) = ClientError::from_code(
            answer.error_code,
            || format!("{topic}-{partition}"),
            answer.error_message.as_deref(),
        ) {
            return Err(error);
        }
        let append_time = (answer.log_append_time_ms >= 0).then_some(answer.log_append_time_ms);
        Ok((Some(answer.base_offset), append_time))
    }
}
