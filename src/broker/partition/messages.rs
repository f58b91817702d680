//! [`PartitionRequest`]: what one shard asks of the partitions another shard owns (served in
//! `serve.rs`). Every request carries the partitions of one owning shard, so a Kafka
//! request costs one message per shard it touches.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_channel::{mpsc, oneshot};

use super::replica::{
    Acks, DeleteTo, Fetched, IsolationLevel, LogDirDescription, OffsetSpec, PartitionError, ProducerDescription,
};
use crate::model::{ControlType, Offset, ProducerId, Timestamp, TopicPartition};
use crate::storage::CompletedTxn;

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
    /// The leader epoch the reader knows (KIP-320), or -1.
    pub current_leader_epoch: i32,
    /// A follower's: the epoch of the last batch in its log, or -1.
    pub last_fetched_epoch: i32,
}

/// A shard's running count of the bytes a fetch found there: (the shard's index in the fetch,
/// bytes).
#[derive(Debug, Clone)]
pub struct Progress {
    /// This shard's index among the fetch's shards.
    pub index: usize,
    /// The caller's end.
    pub to: mpsc::UnboundedSender<(usize, u64)>,
}

impl Progress {
    /// Reports `bytes` found so far (the caller may have gone: then nobody listens).
    pub fn report(&self, bytes: u64) {
        let _ = self.to.unbounded_send((self.index, bytes));
    }
}

/// The reads of one fetch on one owning shard, and how long they may wait for data.
#[derive(Debug)]
pub struct FetchOrder {
    /// The partitions to read.
    pub work: Vec<FetchWork>,
    /// What the consumer may read: below the high watermark or the last stable offset. The
    /// wait watches whichever bounds the reads.
    pub isolation: IsolationLevel,
    /// A follower's fetch (its broker id): it reads up to the log end, and the wait watches
    /// the log end.
    pub replica: Option<i32>,
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
    /// Where this shard reports how many bytes it has found, after each read, so the caller
    /// can add up the shards of a fetch against `min_bytes` without extra round trips.
    pub progress: Progress,
    /// Fires when the caller has enough over all shards: read once more and answer. Dropped
    /// with the caller, which ends the wait too, so no wait outlives the fetch that asked.
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
        /// Verification guards for transactional first writes (KIP-890), by partition; empty
        /// for all but a produce retried after its transaction coordinator confirmed it.
        guards: Vec<(TopicPartition, u64)>,
    },
    /// Transaction markers ending one producer's transaction in partitions (WriteTxnMarkers);
    /// answered once each marker is committed.
    WriteMarkers {
        /// The producer.
        producer_id: ProducerId,
        /// Its epoch (the marker's).
        producer_epoch: i16,
        /// The transaction coordinator's epoch.
        coordinator_epoch: i32,
        /// Commit or abort.
        kind: ControlType,
        /// Where.
        partitions: Vec<TopicPartition>,
    },
    /// Read from partitions, waiting for data as the order says.
    Fetch(FetchOrder),
    /// ListOffsets.
    ListOffsets {
        /// Read committed: latest is the last stable offset, lookups stop below it.
        isolation: IsolationLevel,
        /// What to look up, per partition.
        partitions: Vec<(TopicPartition, OffsetSpec)>,
    },
    /// DeleteRecords.
    DeleteRecords(Vec<(TopicPartition, DeleteTo)>),
    /// DescribeProducers: the producers each partition remembers.
    DescribeProducers(Vec<(TopicPartition, ())>),
    /// DescribeLogDirs: the size and lag of each partition's log.
    DescribeLogDirs(Vec<(TopicPartition, ())>),
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
    /// WriteMarkers results: the transaction each marker completed.
    WriteMarkers(PartitionResults<CompletedTxn>),
    /// DescribeProducers results.
    DescribeProducers(PartitionResults<Vec<ProducerDescription>>),
    /// DescribeLogDirs results.
    DescribeLogDirs(PartitionResults<LogDirDescription>),
}
