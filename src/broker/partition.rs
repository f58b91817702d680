//! One partition as the broker sees it on its owning shard: the log plus the topic's config, and
//! the shard-local operations the Kafka APIs need (append, read, list offsets, delete records).
//!
//! Cores: lives only on the shard that owns it (`Rc`); handlers on other shards reach it through
//! a `ShardRequest`.

use bytes::BytesMut;

use super::metadata::TopicId;
use super::topic_config::TopicConfig;
use crate::model::{
    BatchError, Chunk, LeaderEpoch, Offset, RecordBatch, Timestamp, TimestampType, TopicPartition, set_log_append_time,
};
use crate::storage::{self, PartitionLog, PendingAppend, ReadLimits};

/// Why a partition operation failed; mapped to a Kafka error code at the handler's edge.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PartitionError {
    /// No such topic or partition on this broker.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The partition exists but is not open yet (a topic being created).
    #[error("partition not available yet")]
    NotAvailable,
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
}

impl From<BatchError> for PartitionError {
    fn from(e: BatchError) -> Self {
        PartitionError::Storage(storage::Error::InvalidBatch(e))
    }
}

/// What a fetch of one partition found.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// High watermark.
    pub high_watermark: Offset,
    /// Last stable offset (the HW: no transactions yet).
    pub last_stable_offset: Offset,
    /// Log start offset.
    pub log_start_offset: Offset,
    /// The record batches, as storage read them (cached bytes or a file range; they can cross
    /// shards).
    pub chunks: Vec<Chunk>,
    /// Their total size.
    pub bytes: u64,
}

/// One partition on its owning shard.
pub struct Partition {
    /// Which partition.
    pub topic_partition: TopicPartition,
    /// The topic's id (a topic deleted and created again gets a new one).
    pub topic_id: TopicId,
    /// The log.
    pub log: PartitionLog,
    /// The topic's configuration.
    pub config: std::cell::RefCell<TopicConfig>,
    /// The leader epoch stamped into appended batches.
    pub leader_epoch: LeaderEpoch,
}

impl Partition {
    /// Validates and appends the batches in `records`; stamps the append time on
    /// `LogAppendTime` topics. Returns the pending append and the append time used (or
    /// `Timestamp::NONE`).
    pub fn append(&self, mut records: BytesMut) -> Result<(PendingAppend, Timestamp), PartitionError> {
        if records.is_empty() {
            return Err(PartitionError::NoRecords);
        }
        let timestamp_type = self.config.borrow().timestamp_type;
        let mut append_time = Timestamp::NONE;
        if timestamp_type == TimestampType::LogAppendTime {
            // Validate before rewriting: re-computing the CRC must never make a bad batch good.
            let limit = self.config.borrow().log.batch_bytes_max();
            let now = Timestamp::now();
            let mut at = 0;
            while at < records.len() {
                let size = RecordBatch::parse_prefix(&records[at..], limit)?.size();
                RecordBatch::parse_prefix(&records[at..], limit)?.validate()?;
                set_log_append_time(&mut records[at..at + size], now);
                at += size;
            }
            append_time = now;
        }
        let pending = self.log.append(records, self.leader_epoch)?;
        Ok((pending, append_time))
    }

    /// Reads from `offset` up to `max_bytes`, below the high watermark.
    pub async fn fetch(&self, offset: Offset, max_bytes: u64) -> Result<Fetched, PartitionError> {
        let high_watermark = self.log.high_watermark();
        let slice = self.log.read(offset, ReadLimits { max_bytes, upper_bound: high_watermark }).await?;
        Ok(Fetched {
            high_watermark,
            last_stable_offset: high_watermark,
            log_start_offset: self.log.log_start_offset(),
            chunks: slice.chunks,
            bytes: slice.bytes,
        })
    }

    /// ListOffsets for one partition: -2 earliest, -1 latest (the HW), -3 max timestamp, -4
    /// earliest local, else the first offset with a timestamp at or after the given one.
    /// Returns (timestamp, offset); (-1, -1) when no record qualifies.
    pub async fn list_offset(&self, timestamp: i64) -> Result<(Timestamp, Offset), PartitionError> {
        let high_watermark = self.log.high_watermark();
        let none = (Timestamp::NONE, Offset(-1));
        Ok(match timestamp {
            -2 | -4 => (Timestamp::NONE, self.log.log_start_offset()),
            -1 => (Timestamp::NONE, high_watermark),
            -3 => match self.log.max_timestamp() {
                Some((offset, ts)) if offset < high_watermark => (ts, offset),
                _ => none,
            },
            t if t >= 0 => match self.log.offset_for_timestamp(Timestamp(t)).await? {
                Some((offset, ts)) if offset < high_watermark => (ts, offset),
                _ => none,
            },
            _ => none,
        })
    }

    /// DeleteRecords for one partition: `offset` -1 means the high watermark. Returns the new
    /// low watermark (log start offset).
    pub fn delete_records(&self, offset: i64) -> Result<Offset, PartitionError> {
        let target = if offset == -1 { self.log.high_watermark() } else { Offset(offset) };
        Ok(self.log.delete_records_before(target)?)
    }
}
