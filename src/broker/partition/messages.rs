//! [`PartitionRequest`]: what one shard asks of the partitions another shard owns (served in
//! `serve.rs`). Every request carries the partitions of one owning shard, so a Kafka
//! request costs one message per shard it touches.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_channel::oneshot;

use super::replica::{Acks, DeleteTo, Fetched, OffsetSpec, PartitionError};
use crate::model::{Offset, Timestamp, TopicPartition};

/// Per-partition results, in request order.
pub type PartitionResults<T> = Vec<(TopicPartition, Result<T, PartitionError>)>;

/// What one partition's append came to.
#[derive(Debug, Clone, Copy)]
pub struct ProduceOutcome {
    /// Offset of the first record appended.
    pub base_offset: Offset,
    /// The append time stamped on LogAppendTime topics, else `Timestamp::NONE`.
    pub log_append_time: Timestamp,
    /// The log start offset.
    pub log_start_offset: Offset,
}

/// One partition's part of a fetch.
#[derive(Debug, Clone)]
pub struct FetchWork {
    /// Which partition.
    pub topic_partition: TopicPartition,
    /// From which offset.
    pub offset: Offset,
    /// At most this many bytes (the first batch is whole regardless).
    pub max_bytes: u64,
}

/// The reads of one fetch on one owning shard, and how long they may wait for data.
#[derive(Debug)]
pub struct FetchOrder {
    /// The partitions to read.
    pub work: Vec<FetchWork>,
    /// `None`: answer at once with what there is.
    pub wait: Option<FetchWait>,
}

/// The long-poll part of a fetch (Kafka's `min_bytes` and `max_wait_ms`).
#[derive(Debug)]
pub struct FetchWait {
    /// Answer by then whatever was found.
    pub until: Instant,
    /// Answer as soon as this many bytes are found.
    pub min_bytes: u64,
    /// Whether this shard holds every partition of the fetch: then it alone decides when
    /// `min_bytes` is reached, and keeps waiting while new data stays below it. Otherwise it
    /// answers at the first new data, and the caller adds up the shards.
    pub alone: bool,
    /// Fires when the caller has enough from other shards; dropped with the caller, which
    /// ends the wait too, so no wait outlives the fetch that asked for it.
    pub hurry: oneshot::Receiver<()>,
}

/// Work one shard asks of the partitions another shard owns.
#[derive(Debug)]
pub enum PartitionRequest {
    /// Append to partitions.
    Produce {
        /// The acknowledgement to wait for.
        acks: Acks,
        /// How long to wait for it.
        timeout: Duration,
        /// Records per partition (`None`: the request had null records).
        partitions: Vec<(TopicPartition, Option<BytesMut>)>,
    },
    /// Read from partitions, waiting for data as the order says.
    Fetch(FetchOrder),
    /// ListOffsets.
    ListOffsets(Vec<(TopicPartition, OffsetSpec)>),
    /// DeleteRecords.
    DeleteRecords(Vec<(TopicPartition, DeleteTo)>),
}

/// The answer to a [`PartitionRequest`], variant for variant.
#[derive(Debug)]
pub enum PartitionResponse {
    /// Produce results.
    Produce(PartitionResults<ProduceOutcome>),
    /// Fetch results.
    Fetch(PartitionResults<Fetched>),
    /// ListOffsets results: (timestamp, offset).
    ListOffsets(PartitionResults<(Timestamp, Offset)>),
    /// DeleteRecords results: the new low watermark.
    DeleteRecords(PartitionResults<Offset>),
}
