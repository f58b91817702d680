//! [`Consumer`]: assigned partitions (no group membership yet), seeks, pipelined long-poll
//! fetches, and record decoding for all four compression codecs.
//!
//! Lifecycle: [`Consumer::assign`] sets the partitions; each starts at the earliest offset
//! unless [`Consumer::seek`] says otherwise. [`Consumer::poll`] keeps one Fetch in flight to
//! every leader of the assigned partitions at once (each waiting up to `max_wait` for
//! `min_bytes`), waits until at least one answers, decodes what has arrived, advances the
//! positions and, before returning, sends the next Fetch to every leader that answered. The
//! broker thus works on the next records of a partition while the caller processes the last
//! ones: one request ahead per leader, never more, so the memory held is one response per
//! leader beyond what the caller holds.
//!
//! Decoding skips records before the position (a batch may start before it), stops at a
//! trailing partial batch (the next fetch starts there), and decompresses compressed batches
//! into one buffer per batch, at most [`DECOMPRESSED_BATCH_BYTES_MAX`] bytes.
//!
//! A prefetched answer is used only if it still fits: each partition's part of it is applied
//! only while the partition is assigned and its position is the offset the request asked for.
//! A seek or assign thus invalidates in-flight prefetches for the partitions it moved; their
//! answers are dropped when they arrive, and the other partitions of the same request keep
//! theirs.
//!
//! Concurrency: the consumer is owned by one task (`&mut self`); each Fetch runs in a task of
//! its own on the same executor and reports through a channel, so answers from several leaders
//! arrive in whatever order the brokers send them.
//!
//! Not yet: fetch sessions (KIP-227: every Fetch is a full one), transactional filtering.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::mpsc;
use futures_lite::StreamExt;

use super::admin::{OffsetSpec, list_offsets_on};
use super::error::ClientError;
use super::metadata::Client;
use crate::limits::DECOMPRESSED_BATCH_BYTES_MAX;
use crate::model::{BatchIter, ControlType, RecordBatch, RecordIter, TimestampType, parse_marker};
use crate::protocol::RecordSet;
use crate::protocol::messages::{
    FetchRequest, FetchRequestPartition, FetchRequestTopic, FetchResponse, FetchResponsePartition,
};

/// Where [`Consumer::seek`] moves a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The log start offset.
    Earliest,
    /// The log end offset: only records produced from now on.
    Latest,
    /// An exact offset.
    Offset(i64),
    /// The first record with a timestamp at or after this one (ms since the epoch); the log
    /// end if there is none.
    Timestamp(i64),
}

/// How a [`Consumer`] fetches.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// How long the broker may hold a fetch waiting for `min_bytes` (Kafka's
    /// `fetch.max.wait.ms`).
    pub max_wait: Duration,
    /// Bytes a fetch waits for (Kafka's `fetch.min.bytes`).
    pub min_bytes: i32,
    /// Bytes a fetch response may hold (Kafka's `fetch.max.bytes`).
    pub max_bytes: i32,
    /// Bytes per partition in a fetch response (Kafka's `max.partition.fetch.bytes`).
    pub partition_max_bytes: i32,
    /// Which records to see (Kafka's `isolation.level`, read_uncommitted by default as in Java).
    pub isolation: IsolationLevel,
}

/// Kafka's `isolation.level`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Every record, including those of open and aborted transactions.
    #[default]
    ReadUncommitted,
    /// Records up to the last stable offset, without those of aborted transactions.
    ReadCommitted,
}

impl IsolationLevel {
    fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            isolation: IsolationLevel::ReadUncommitted,
        }
    }
}

/// One consumed record. Key, value and headers share the memory of the fetch response (or, for
/// a compressed batch, of the batch's decompressed records); the topic name is shared by every
/// record of the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: Rc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The timestamp (create or log-append time, as the batch says).
    pub timestamp: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value; `None` for a tombstone.
    pub value: Option<Bytes>,
    /// Header keys and values.
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// Per topic, per partition: an offset. Keyed by `Rc<str>` so lookups take a `&str` and
/// records share the name.
type ByPartition<T> = BTreeMap<Rc<str>, BTreeMap<i32, T>>;

/// The largest base offset a fetched batch may carry: any record offset (base plus an `i32`
/// delta) and the offset after the batch then fit an `i64`.
const BASE_OFFSET_MAX: i64 = i64::MAX - (1 << 32);

/// A Fetch sent and not yet decoded.
struct InFlight {
    /// Its leader: one Fetch per leader at a time.
    leader: i32,
    /// The offset asked for, per partition.
    asked: ByPartition<i64>,
}

/// What a fetch task reports.
struct Answer {
    id: u64,
    result: Result<FetchResponse, ClientError>,
}

/// A consumer of assigned partitions. Owned by one task (`&mut self`). See the module docs.
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    /// Next offset to return per assigned partition; `None` until resolved (earliest by
    /// default).
    positions: ByPartition<Option<i64>>,
    /// Fetches in flight, by id.
    in_flight: HashMap<u64, InFlight>,
    next_fetch_id: u64,
    /// Where fetch tasks report; the consumer keeps a sender, so the channel never closes.
    answers_sender: mpsc::UnboundedSender<Answer>,
    answers: mpsc::UnboundedReceiver<Answer>,
    /// An error met after records of the same poll were taken (and their positions advanced):
    /// the next poll returns it, so that no record is lost to it.
    pending_error: Option<ClientError>,
}

impl Consumer {
    /// A consumer over `client`, with no partitions yet.
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        let (answers_sender, answers) = mpsc::unbounded();
        Consumer {
            client,
            config,
            positions: BTreeMap::new(),
            in_flight: HashMap::new(),
            next_fetch_id: 0,
            answers_sender,
            answers,
            pending_error: None,
        }
    }

    /// Replaces the assignment with `partitions`; each starts at the earliest offset. Answers
    /// in flight for the old assignment are dropped when they arrive.
    pub fn assign(&mut self, partitions: &[(&str, i32)]) {
        let mut positions: ByPartition<Option<i64>> = BTreeMap::new();
        for (topic, partition) in partitions {
            match positions.get_mut(*topic) {
                Some(topic) => {
                    topic.insert(*partition, None);
                }
                None => {
                    positions.insert(Rc::from(*topic), BTreeMap::from([(*partition, None)]));
                }
            }
        }
        self.positions = positions;
        self.pending_error = None;
    }

    /// The next offset `topic`-`partition` will return, if resolved.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(topic).and_then(|p| p.get(&partition)).copied().flatten()
    }

    /// Moves an assigned partition. An answer already in flight for it is dropped when it
    /// arrives (unless it asked for the very offset the partition is moved to).
    pub async fn seek(&mut self, topic: &str, partition: i32, to: SeekTo) -> Result<(), ClientError> {
        if !self.positions.get(topic).is_some_and(|p| p.contains_key(&partition)) {
            return Err(ClientError::InvalidArgument(format!("{topic}-{partition} is not assigned")));
        }
        let offset = match to {
            SeekTo::Offset(offset) if offset >= 0 => offset,
            SeekTo::Offset(offset) => return Err(ClientError::InvalidArgument(format!("negative offset {offset}"))),
            SeekTo::Earliest => self.list(topic, partition, OffsetSpec::Earliest).await?,
            SeekTo::Latest => self.list(topic, partition, OffsetSpec::Latest).await?,
            SeekTo::Timestamp(ms) => match self.list_optional(topic, partition, OffsetSpec::Timestamp(ms)).await? {
                Some(offset) => offset,
                None => self.list(topic, partition, OffsetSpec::Latest).await?,
            },
        };
        self.set_position(topic, partition, offset);
        Ok(())
    }

    fn set_position(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(position) = self.positions.get_mut(topic).and_then(|p| p.get_mut(&partition)) {
            *position = Some(offset);
        }
    }

    /// ListOffsets on the partition's leader, retried (up to the client's retries) after a
    /// retriable error with fresh metadata: a topic just created may not have its leader yet
    /// (Apache Kafka answers NOT_LEADER_OR_FOLLOWER until the leader has learned it leads).
    async fn list_optional(&self, topic: &str, partition: i32, spec: OffsetSpec) -> Result<Option<i64>, ClientError> {
        let config = self.client.config();
        let mut attempt = 0;
        loop {
            let found = match self.client.leader_connection(topic, partition).await {
                Ok(connection) => list_offsets_on(&connection, topic, &[partition], spec).await,
                Err(e) => Err(e),
            };
            match found {
                Ok(found) => return Ok(found.get(&partition).and_then(|o| o.offset)),
                Err(e) if e.is_retriable() && attempt < config.retries => {
                    attempt += 1;
                    glommio::timer::sleep(config.retry_backoff).await;
                    let _ = self.client.refresh_metadata(Some(&[topic.to_string()])).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn list(&self, topic: &str, partition: i32, spec: OffsetSpec) -> Result<i64, ClientError> {
        self.list_optional(topic, partition, spec).await?.ok_or_else(|| ClientError::Protocol {
            addr: String::new(),
            reason: format!("no offset for {topic}-{partition} ({spec:?})"),
        })
    }

    /// Returns the records that have arrived from any leader, in offset order per partition,
    /// waiting (long-poll) until at least one leader answers for the partitions' current
    /// positions; the answer may hold no records when `max_wait` passed without data. Sends
    /// the next Fetch to each leader that answered before returning. See the module docs.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>, ClientError> {
        if let Some(error) = self.pending_error.take() {
            return Err(error);
        }
        self.resolve_positions().await?;
        self.send_fetches().await?;
        let mut out = Vec::new();
        loop {
            if self.in_flight.is_empty() {
                return Ok(out); // nothing assigned
            }
            // The consumer holds a sender, so the stream never ends; `None` would only mean
            // that no answer can come.
            let Some(first) = self.answers.next().await else { return Ok(out) };
            let mut answers = vec![first];
            while let Ok(answer) = self.answers.try_recv() {
                answers.push(answer);
            }
            // Every answer frees its leader, whether it is applied or not.
            let arrived: Vec<_> =
                answers.into_iter().filter_map(|a| self.in_flight.remove(&a.id).map(|f| (f, a.result))).collect();
            let mut current = false;
            for (fetch, result) in arrived {
                match self.apply(fetch, result, &mut out).await {
                    Ok(applied) => current |= applied,
                    // Answers not applied leave their positions as they were: fetched again.
                    Err(error) => return self.defer(error, out),
                }
            }
            if let Err(error) = self.send_fetches().await {
                return self.defer(error, out);
            }
            // Only stale answers (moved by a seek meanwhile): wait for the fresh fetches rather
            // than return an empty poll that no long-poll stood behind.
            if current || !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Returns `error` if there are no records to hand back; otherwise hands them back (their
    /// positions have advanced already) and keeps `error` for the next poll.
    fn defer(&mut self, error: ClientError, out: Vec<ConsumerRecord>) -> Result<Vec<ConsumerRecord>, ClientError> {
        if out.is_empty() {
            return Err(error);
        }
        self.pending_error = Some(error);
        Ok(out)
    }

    /// Starts the partitions with no position at the earliest offset.
    async fn resolve_positions(&mut self) -> Result<(), ClientError> {
        let unresolved: Vec<(Rc<str>, i32)> = self
            .positions
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions.iter().filter(|(_, p)| p.is_none()).map(|(partition, _)| (topic.clone(), *partition))
            })
            .collect();
        for (topic, partition) in unresolved {
            self.seek(&topic, partition, SeekTo::Earliest).await?;
        }
        Ok(())
    }

    /// Sends a Fetch to every leader of assigned partitions that has none in flight, for its
    /// partitions that are in no Fetch in flight.
    async fn send_fetches(&mut self) -> Result<(), ClientError> {
        let busy_leaders: BTreeSet<i32> = self.in_flight.values().map(|f| f.leader).collect();
        let mut by_leader: BTreeMap<i32, ByPartition<i64>> = BTreeMap::new();
        let mut refreshed: BTreeSet<&str> = BTreeSet::new();
        for (topic, partitions) in &self.positions {
            for (&partition, &position) in partitions {
                let Some(position) = position else { continue };
                let in_flight =
                    self.in_flight.values().any(|f| f.asked.get(topic).is_some_and(|p| p.contains_key(&partition)));
                if in_flight {
                    continue;
                }
                let mut leader = self.client.metadata().leader(topic, partition);
                // Once per topic: one refresh answers for all its partitions.
                if leader.is_none() && refreshed.insert(topic) {
                    self.client.refresh_metadata(Some(&[topic.to_string()])).await?;
                    leader = self.client.metadata().leader(topic, partition);
                }
                let Some(leader) = leader else {
                    return Err(ClientError::NoLeader { topic: topic.to_string(), partition });
                };
                if busy_leaders.contains(&leader) {
                    continue;
                }
                by_leader.entry(leader).or_default().entry(topic.clone()).or_default().insert(partition, position);
            }
        }
        for (leader, asked) in by_leader {
            self.send_fetch(leader, asked);
        }
        Ok(())
    }

    /// Spawns one Fetch to `leader`; it reports on the answer channel.
    fn send_fetch(&mut self, leader: i32, asked: ByPartition<i64>) {
        let request = FetchRequest {
            replica_id: -1,
            max_wait_ms: i32::try_from(self.config.max_wait.as_millis()).unwrap_or(i32::MAX),
            min_bytes: self.config.min_bytes,
            max_bytes: self.config.max_bytes,
            isolation_level: self.config.isolation.wire(),
            session_id: 0,
            session_epoch: -1,
            topics: asked
                .iter()
                .map(|(topic, partitions)| FetchRequestTopic {
                    topic: topic.to_string(),
                    partitions: partitions
                        .iter()
                        .map(|(&partition, &fetch_offset)| FetchRequestPartition {
                            partition,
                            current_leader_epoch: -1,
                            fetch_offset,
                            last_fetched_epoch: -1,
                            log_start_offset: -1,
                            partition_max_bytes: self.config.partition_max_bytes,
                        })
                        .collect(),
                })
                .collect(),
            ..Default::default()
        };
        let id = self.next_fetch_id;
        self.next_fetch_id += 1;
        self.in_flight.insert(id, InFlight { leader, asked });
        let client = self.client.clone();
        let answers = self.answers_sender.clone();
        glommio::spawn_local(async move {
            let result = match client.broker_connection(leader).await {
                Ok(connection) => connection.send(&request).await,
                Err(e) => {
                    // The broker may be gone: learn where the partitions are now.
                    let _ = client.refresh_metadata(None).await;
                    Err(e)
                }
            };
            // The consumer may be gone; then nobody wants the answer.
            let _ = answers.unbounded_send(Answer { id, result });
        })
        .detach();
    }

    /// Decodes one answer into `out` for the partitions it still fits (see the module docs);
    /// returns whether any did.
    async fn apply(
        &mut self,
        fetch: InFlight,
        result: Result<FetchResponse, ClientError>,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<bool, ClientError> {
        let response = result?;
        if let Some(error) = ClientError::from_code(response.error_code, || "Fetch".to_string(), None) {
            return Err(error);
        }
        let mut current = false;
        for topic in response.responses {
            for partition in topic.partitions {
                let index = partition.partition_index;
                let Some((name, asked)) = fetch.asked.get_key_value(topic.topic.as_str()) else { continue };
                let Some(&fetch_offset) = asked.get(&index) else { continue };
                if self.position(&topic.topic, index) != Some(fetch_offset) {
                    continue; // moved (or unassigned) while the Fetch was in flight
                }
                current = true;
                let next = self.decode_partition(name, index, fetch_offset, partition, out).await?;
                self.set_position(&topic.topic, index, next);
            }
        }
        Ok(current)
    }

    /// Appends the records of one partition's answer at or after `position` to `out`; returns
    /// the next position.
    async fn decode_partition(
        &self,
        topic: &Rc<str>,
        index: i32,
        position: i64,
        partition: FetchResponsePartition,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<i64, ClientError> {
        let code = partition.error_code;
        if code != 0 {
            let error = ClientError::from_code(code, || format!("fetching {topic}-{index}"), None);
            if error.as_ref().is_some_and(ClientError::is_retriable) {
                // Leadership moved: learn the new leader and try again on the next poll.
                let _ = self.client.refresh_metadata(Some(&[topic.to_string()])).await;
                return Ok(position);
            }
            return Err(error.unwrap_or_else(|| ClientError::InvalidArgument("error code 0".into())));
        }
        let aborted: Vec<(i64, i64)> = match self.config.isolation {
            IsolationLevel::ReadCommitted => {
                partition.aborted_transactions.iter().flatten().map(|a| (a.producer_id, a.first_offset)).collect()
            }
            IsolationLevel::ReadUncommitted => Vec::new(),
        };
        let bytes = match partition.records {
            Some(RecordSet::Owned(bytes)) => bytes.freeze(),
            Some(RecordSet::Shared(bytes)) => bytes,
            Some(RecordSet::Chunks(_)) | None => return Ok(position),
        };
        decode_records(topic, index, position, &bytes, &aborted, out)
    }
}

/// Decodes the complete batches of `bytes` into `out` (records at or after `position`),
/// decompressing compressed ones; returns the next position. A trailing partial batch is left
/// for the next fetch. `aborted` is the fetch's aborted transactions, (producer id, first
/// offset), for a read_committed consumer: their batches are skipped, as Kafka's consumer does
/// (a producer's batches are skipped from its aborted transaction's first offset until its
/// abort marker).
pub fn decode_records(
    topic: &Rc<str>,
    partition: i32,
    mut position: i64,
    bytes: &Bytes,
    aborted: &[(i64, i64)],
    out: &mut Vec<ConsumerRecord>,
) -> Result<i64, ClientError> {
    let bad = |reason: String| ClientError::Protocol { addr: String::new(), reason };
    let mut pending: Vec<(i64, i64)> = aborted.to_vec();
    pending.sort_by_key(|&(_, first)| std::cmp::Reverse(first));
    let mut aborting: HashSet<i64> = HashSet::new();
    // No size limit: the bytes are already in memory, and a batch longer than what is left is a
    // partial one a broker may end a partition's records with (Apache Kafka cuts the log slice
    // at the fetch's byte limits): it ends the iteration and the next fetch starts there.
    for batch in BatchIter::new(bytes, usize::MAX) {
        let batch: RecordBatch<'_> = batch.map_err(|e| bad(format!("{topic}-{partition}: {e}")))?;
        // `Offset::plus` adds without checking, and record offsets add up to an i32 delta to the
        // base: refuse a base offset from the broker that could overflow.
        if !(0..=BASE_OFFSET_MAX).contains(&batch.base_offset().0) {
            return Err(bad(format!("{topic}-{partition}: batch base offset {} out of range", batch.base_offset())));
        }
        if batch.next_offset().0 <= position {
            continue;
        }
        let at =
            |e: crate::model::BatchError| bad(format!("{topic}-{partition} at offset {}: {e}", batch.base_offset()));
        // Magic, CRC, counts: Kafka clients check them too (`check.crcs`).
        batch.validate_stored().map_err(at)?;
        while pending.last().is_some_and(|&(_, first)| first <= batch.last_offset().0) {
            if let Some((producer, _)) = pending.pop() {
                aborting.insert(producer);
            }
        }
        let producer = batch.producer_id().0;
        if batch.is_control() {
            if parse_marker(&batch).is_some_and(|(kind, _)| kind == ControlType::Abort) {
                aborting.remove(&producer);
            }
        } else if batch.is_transactional() && aborting.contains(&producer) {
            // A batch of an aborted transaction: read_committed never shows it.
        } else {
            // An uncompressed batch is read in place; a compressed one is decompressed into one
            // buffer that its records' keys, values and headers then share.
            let records = match batch.decompressed_records(DECOMPRESSED_BATCH_BYTES_MAX).map_err(at)? {
                Cow::Borrowed(area) => bytes.slice_ref(area),
                Cow::Owned(area) => Bytes::from(area),
            };
            let log_append_time = batch.timestamp_type() == TimestampType::LogAppendTime;
            for record in RecordIter::with_records(&batch, &records) {
                let record = record.map_err(|e| bad(format!("{topic}-{partition}: {e}")))?;
                if record.offset.0 < position {
                    continue;
                }
                out.push(ConsumerRecord {
                    topic: topic.clone(),
                    partition,
                    offset: record.offset.0,
                    timestamp: if log_append_time { batch.max_timestamp().0 } else { record.timestamp.0 },
                    key: record.key.map(|k| records.slice_ref(k)),
                    value: record.value.map(|v| records.slice_ref(v)),
                    headers: record
                        .headers
                        .iter()
                        .map(|(k, v)| (records.slice_ref(k), v.map(|v| records.slice_ref(v))))
                        .collect(),
                });
            }
        }
        position = batch.next_offset().0;
    }
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LeaderEpoch;
    use crate::model::{BatchBuilder, CompressionType, Offset, Timestamp, assign_offset_and_epoch};

    fn batch(base: i64, values: &[&[u8]]) -> Vec<u8> {
        let mut builder = BatchBuilder::new(Timestamp(1000));
        for v in values {
            builder.push(Some(b"k"), Some(v), Timestamp(1000), &[("h", b"x")]);
        }
        let mut bytes = builder.build().to_vec();
        assign_offset_and_epoch(&mut bytes, Offset(base), LeaderEpoch(0));
        bytes
    }

    #[test]
    fn read_committed_skips_aborted_transactions_until_their_marker() {
        use crate::model::{ControlType, ProducerId, marker_batch, set_producer};
        let txn = |base: i64, producer: i64, values: &[&[u8]]| {
            let mut bytes = batch(base, values);
            set_producer(&mut bytes, ProducerId(producer), 0, 0, true);
            bytes
        };
        let marker = |base: i64, producer: i64, kind: ControlType| {
            let mut bytes = marker_batch(ProducerId(producer), 0, 0, kind, Timestamp(1000)).to_vec();
            assign_offset_and_epoch(&mut bytes, Offset(base), LeaderEpoch(0));
            bytes
        };
        let mut run = txn(0, 5, &[b"aborted-0", b"aborted-1"]);
        run.extend(txn(2, 6, &[b"committed-2"]));
        run.extend(marker(3, 5, ControlType::Abort));
        run.extend(txn(4, 5, &[b"committed-4"]));
        run.extend(marker(5, 5, ControlType::Commit));
        run.extend(marker(6, 6, ControlType::Commit));
        let run = Bytes::from(run);
        let values = |aborted: &[(i64, i64)]| {
            let mut out = Vec::new();
            let next = decode_records(&Rc::from("t"), 0, 0, &run, aborted, &mut out).unwrap();
            assert_eq!(next, 7, "control batches move the position too");
            out.iter().map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(values(&[(5, 0)]), ["committed-2", "committed-4"]);
        assert_eq!(values(&[]), ["aborted-0", "aborted-1", "committed-2", "committed-4"]);
    }

    #[test]
    fn decoding_skips_records_before_the_position_and_a_trailing_partial_batch() {
        let mut run = batch(10, &[b"a", b"b", b"c"]);
        run.extend(batch(13, &[b"d"]));
        let partial = batch(14, &[b"e"]);
        run.extend(&partial[..partial.len() - 3]);
        let bytes = Bytes::from(run);
        let mut out = Vec::new();
        let next = decode_records(&Rc::from("t"), 0, 11, &bytes, &[], &mut out).unwrap();
        assert_eq!(next, 14);
        let values: Vec<_> = out.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(values, [Bytes::from_static(b"b"), Bytes::from_static(b"c"), Bytes::from_static(b"d")]);
        assert_eq!(out[0].offset, 11);
        assert_eq!(out[0].headers, [(Bytes::from_static(b"h"), Some(Bytes::from_static(b"x")))]);
    }

    /// Apache Kafka may end a partition's records with the first bytes of a batch larger than all
    /// the bytes it sent: that is a partial batch to fetch again, not an oversized one.
    #[test]
    fn a_trailing_partial_batch_larger_than_the_whole_answer_is_left_for_the_next_fetch() {
        let mut run = batch(0, &[b"a", b"b"]);
        let big = batch(2, &[&[7u8; 4096]]);
        run.extend(&big[..100]);
        let mut out = Vec::new();
        let next = decode_records(&Rc::from("t"), 0, 0, &Bytes::from(run), &[], &mut out).unwrap();
        assert_eq!(next, 2);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn compressed_batches_decode_into_shared_buffers() {
        let codecs = [CompressionType::Gzip, CompressionType::Snappy, CompressionType::Lz4, CompressionType::Zstd];
        let topic: Rc<str> = Rc::from("t");
        for codec in codecs {
            let mut run = Vec::new();
            for (base, values) in [(0, [&b"a"[..], b"b", b"c"]), (3, [&b"d"[..], b"e", b"f"])] {
                let mut builder = BatchBuilder::new(Timestamp(1000));
                for v in values {
                    builder.push(Some(b"k"), Some(v), Timestamp(1000), &[("h", b"x")]);
                }
                let mut bytes = builder.build_compressed(codec).unwrap().to_vec();
                assign_offset_and_epoch(&mut bytes, Offset(base), LeaderEpoch(0));
                run.extend(bytes);
            }
            let mut out = Vec::new();
            let next = decode_records(&topic, 0, 1, &Bytes::from(run), &[], &mut out).unwrap();
            assert_eq!(next, 6, "{codec:?}");
            let values: Vec<_> = out.iter().map(|r| r.value.clone().unwrap()).collect();
            assert_eq!(values, [&b"b"[..], b"c", b"d", b"e", b"f"], "{codec:?}");
            assert_eq!(out.iter().map(|r| r.offset).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
            assert!(out.iter().all(|r| Rc::ptr_eq(&r.topic, &topic)), "one topic name for all records");
            assert_eq!(out[0].headers, [(Bytes::from_static(b"h"), Some(Bytes::from_static(b"x")))]);
        }
    }

    #[test]
    fn a_corrupt_compressed_batch_is_an_error() {
        let mut builder = BatchBuilder::new(Timestamp(1000));
        builder.push(None, Some(&[1; 100]), Timestamp(1000), &[]);
        let mut bytes = builder.build_compressed(CompressionType::Zstd).unwrap().to_vec();
        // Damage the compressed payload and fix the CRC up, so only decompression can notice.
        let last = bytes.len() - 3;
        bytes[last] ^= 0x5a;
        let crc = crate::model::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut out = Vec::new();
        let result = decode_records(&Rc::from("t"), 0, 0, &Bytes::from(bytes), &[], &mut out);
        assert!(result.is_err(), "{result:?}");
        assert!(out.is_empty());
    }

    #[test]
    fn corrupt_batches_are_errors_not_panics() {
        let mut bytes = batch(0, &[b"a"]);
        bytes[16] = 7; // magic
        let mut out = Vec::new();
        assert!(decode_records(&Rc::from("t"), 0, 0, &Bytes::from(bytes), &[], &mut out).is_err());
        let bytes = batch(i64::MAX - 1, &[b"a"]);
        assert!(decode_records(&Rc::from("t"), 0, 0, &Bytes::from(bytes), &[], &mut out).is_err());
        assert!(out.is_empty());
    }
}
