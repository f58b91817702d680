//! [`Consumer`]: assigned partitions (no group membership yet), seeks, long-poll fetches and
//! record decoding.
//!
//! Lifecycle: [`Consumer::assign`] sets the partitions; each starts at the earliest offset
//! unless [`Consumer::seek`] says otherwise. [`Consumer::poll`] sends one Fetch to each leader
//! (waiting up to `max_wait` for data), decodes the batches, skips records before the position
//! (a batch may start before it), stops at a trailing partial batch, and advances the positions.
//!
//! Not yet: compressed batches (a poll that meets one fails with [`ClientError::Protocol`]),
//! fetch sessions, pipelining fetches to the same leader, transactional filtering.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use super::admin::{OffsetSpec, list_offsets_on};
use super::error::ClientError;
use super::metadata::Client;
use crate::model::{BatchIter, CompressionType, RecordBatch, RecordIter};
use crate::protocol::RecordSet;
use crate::protocol::messages::{FetchRequest, FetchRequestPartition, FetchRequestTopic, FetchResponsePartition};

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
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        }
    }
}

/// One consumed record. Key and value share the fetch response's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: String,
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

type Key = (String, i32);

/// The largest base offset a fetched batch may carry: any record offset (base plus an `i32`
/// delta) and the offset after the batch then fit an `i64`.
const BASE_OFFSET_MAX: i64 = i64::MAX - (1 << 32);

/// A consumer of assigned partitions. Owned by one task (`&mut self`).
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    /// Next offset to fetch per partition; `None` until resolved (earliest by default).
    positions: BTreeMap<Key, Option<i64>>,
}

impl Consumer {
    /// A consumer over `client`, with no partitions yet.
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer { client, config, positions: BTreeMap::new() }
    }

    /// Replaces the assignment with `partitions`; each starts at the earliest offset.
    pub fn assign(&mut self, partitions: &[(&str, i32)]) {
        self.positions = partitions.iter().map(|(t, p)| ((t.to_string(), *p), None)).collect();
    }

    /// The next offset `topic`-`partition` will return, if resolved.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&(topic.to_string(), partition)).copied().flatten()
    }

    /// Moves an assigned partition.
    pub async fn seek(&mut self, topic: &str, partition: i32, to: SeekTo) -> Result<(), ClientError> {
        let key = (topic.to_string(), partition);
        if !self.positions.contains_key(&key) {
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
        self.positions.insert(key, Some(offset));
        Ok(())
    }

    async fn list_optional(&self, topic: &str, partition: i32, spec: OffsetSpec) -> Result<Option<i64>, ClientError> {
        let connection = self.client.leader_connection(topic, partition).await?;
        let found = list_offsets_on(&connection, topic, &[partition], spec).await?;
        Ok(found.get(&partition).and_then(|o| o.offset))
    }

    async fn list(&self, topic: &str, partition: i32, spec: OffsetSpec) -> Result<i64, ClientError> {
        self.list_optional(topic, partition, spec).await?.ok_or_else(|| ClientError::Protocol {
            addr: String::new(),
            reason: format!("no offset for {topic}-{partition} ({spec:?})"),
        })
    }

    /// Fetches once from every leader of the assigned partitions (long-poll: each fetch waits
    /// up to `max_wait` for data) and returns the records, in offset order per partition.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>, ClientError> {
        let unresolved: Vec<Key> = self.positions.iter().filter(|(_, p)| p.is_none()).map(|(k, _)| k.clone()).collect();
        for (topic, partition) in unresolved {
            self.seek(&topic, partition, SeekTo::Earliest).await?;
        }
        let mut by_leader: BTreeMap<i32, Vec<(Key, i64)>> = BTreeMap::new();
        for ((topic, partition), position) in &self.positions {
            let Some(position) = *position else { continue };
            let mut leader = self.client.metadata().leader(topic, *partition);
            if leader.is_none() {
                self.client.refresh_metadata(Some(std::slice::from_ref(topic))).await?;
                leader = self.client.metadata().leader(topic, *partition);
            }
            let Some(leader) = leader else {
                return Err(ClientError::NoLeader { topic: topic.clone(), partition: *partition });
            };
            by_leader.entry(leader).or_default().push(((topic.clone(), *partition), position));
        }
        let mut records = Vec::new();
        for (leader, partitions) in by_leader {
            self.fetch_from(leader, &partitions, &mut records).await?;
        }
        Ok(records)
    }

    async fn fetch_from(
        &mut self,
        leader: i32,
        partitions: &[(Key, i64)],
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<(), ClientError> {
        let mut topics: BTreeMap<&str, Vec<FetchRequestPartition>> = BTreeMap::new();
        for ((topic, partition), position) in partitions {
            topics.entry(topic.as_str()).or_default().push(FetchRequestPartition {
                partition: *partition,
                current_leader_epoch: -1,
                fetch_offset: *position,
                last_fetched_epoch: -1,
                log_start_offset: -1,
                partition_max_bytes: self.config.partition_max_bytes,
            });
        }
        let request = FetchRequest {
            replica_id: -1,
            max_wait_ms: i32::try_from(self.config.max_wait.as_millis()).unwrap_or(i32::MAX),
            min_bytes: self.config.min_bytes,
            max_bytes: self.config.max_bytes,
            isolation_level: 0,
            session_id: 0,
            session_epoch: -1,
            topics: topics
                .into_iter()
                .map(|(topic, partitions)| FetchRequestTopic { topic: topic.to_string(), partitions })
                .collect(),
            ..Default::default()
        };
        let connection = match self.client.broker_connection(leader).await {
            Ok(connection) => connection,
            Err(e) => {
                let _ = self.client.refresh_metadata(None).await;
                return Err(e);
            }
        };
        let response = connection.send(&request).await?;
        if let Some(error) = ClientError::from_code(response.error_code, || "Fetch".to_string(), None) {
            return Err(error);
        }
        for topic in response.responses {
            for partition in topic.partitions {
                let key = (topic.topic.clone(), partition.partition_index);
                let Some(Some(position)) = self.positions.get(&key).copied() else { continue };
                let next = self.decode_partition(&key, position, partition, out).await?;
                self.positions.insert(key, Some(next));
            }
        }
        Ok(())
    }

    /// Appends the records of one partition's answer at or after `position` to `out`; returns
    /// the next position.
    async fn decode_partition(
        &self,
        key: &Key,
        position: i64,
        partition: FetchResponsePartition,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<i64, ClientError> {
        let (topic, index) = (key.0.as_str(), key.1);
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
        let bytes = match partition.records {
            Some(RecordSet::Owned(bytes)) => bytes.freeze(),
            Some(RecordSet::Shared(bytes)) => bytes,
            Some(RecordSet::External { .. }) | None => return Ok(position),
        };
        decode_records(topic, index, position, &bytes, out)
    }
}

/// Decodes the complete batches of `bytes` into `out` (records at or after `position`); returns
/// the next position. A trailing partial batch is left for the next fetch.
pub fn decode_records(
    topic: &str,
    partition: i32,
    mut position: i64,
    bytes: &Bytes,
    out: &mut Vec<ConsumerRecord>,
) -> Result<i64, ClientError> {
    let bad = |reason: String| ClientError::Protocol { addr: String::new(), reason };
    for batch in BatchIter::new(bytes, bytes.len()) {
        let batch: RecordBatch<'_> = batch.map_err(|e| bad(format!("{topic}-{partition}: {e}")))?;
        // `Offset::plus` adds without checking, and record offsets add up to an i32 delta to the
        // base: refuse a base offset from the broker that could overflow.
        if !(0..=BASE_OFFSET_MAX).contains(&batch.base_offset().0) {
            return Err(bad(format!("{topic}-{partition}: batch base offset {} out of range", batch.base_offset())));
        }
        if batch.next_offset().0 <= position {
            continue;
        }
        // Magic, CRC, counts: Kafka clients check them too (`check.crcs`).
        batch
            .validate_stored()
            .map_err(|e| bad(format!("{topic}-{partition} at offset {}: {e}", batch.base_offset())))?;
        let compression = batch.compression().map_err(|e| bad(format!("{topic}-{partition}: {e}")))?;
        if compression != CompressionType::None {
            return Err(bad(format!(
                "{topic}-{partition}: {compression:?}-compressed batch at offset {}: this consumer reads \
                 uncompressed batches only for now",
                batch.base_offset()
            )));
        }
        if !batch.is_control() {
            for record in RecordIter::new(&batch) {
                let record = record.map_err(|e| bad(format!("{topic}-{partition}: {e}")))?;
                if record.offset.0 < position {
                    continue;
                }
                let timestamp = match batch.timestamp_type() {
                    crate::model::TimestampType::LogAppendTime => batch.max_timestamp().0,
                    crate::model::TimestampType::CreateTime => record.timestamp.0,
                };
                out.push(ConsumerRecord {
                    topic: topic.to_string(),
                    partition,
                    offset: record.offset.0,
                    timestamp,
                    key: record.key.map(|k| bytes.slice_ref(k)),
                    value: record.value.map(|v| bytes.slice_ref(v)),
                    headers: record
                        .headers
                        .iter()
                        .map(|(k, v)| (bytes.slice_ref(k), v.map(|v| bytes.slice_ref(v))))
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
    use crate::model::{BatchBuilder, Offset, Timestamp, assign_offset_and_epoch};

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
    fn decoding_skips_records_before_the_position_and_a_trailing_partial_batch() {
        let mut run = batch(10, &[b"a", b"b", b"c"]);
        run.extend(batch(13, &[b"d"]));
        let partial = batch(14, &[b"e"]);
        run.extend(&partial[..partial.len() - 3]);
        let bytes = Bytes::from(run);
        let mut out = Vec::new();
        let next = decode_records("t", 0, 11, &bytes, &mut out).unwrap();
        assert_eq!(next, 14);
        let values: Vec<_> = out.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(values, [Bytes::from_static(b"b"), Bytes::from_static(b"c"), Bytes::from_static(b"d")]);
        assert_eq!(out[0].offset, 11);
        assert_eq!(out[0].headers, [(Bytes::from_static(b"h"), Some(Bytes::from_static(b"x")))]);
    }

    #[test]
    fn corrupt_batches_are_errors_not_panics() {
        let mut bytes = batch(0, &[b"a"]);
        bytes[16] = 7; // magic
        let mut out = Vec::new();
        assert!(decode_records("t", 0, 0, &Bytes::from(bytes), &mut out).is_err());
        let bytes = batch(i64::MAX - 1, &[b"a"]);
        assert!(decode_records("t", 0, 0, &Bytes::from(bytes), &mut out).is_err());
        assert!(out.is_empty());
    }
}
