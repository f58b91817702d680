//! The shared vocabulary of Sluice as types, with no I/O: offsets, epochs, topic-partitions and the
//! Kafka record batch v2 view. Every other module speaks in these terms; Kafka's names are kept so
//! that a reader of Kafka's source finds the same concept here under the same name.

mod batch;
mod chunk;
mod compression;
mod control;
mod crc;
pub mod filter;
mod offset;
pub mod recompress;
pub(crate) mod records;
mod topic_id;
mod topic_partition;
mod validated;

pub use batch::{
    BatchError, CONTROL_FLAG, DELETE_HORIZON_FLAG, MAGIC_V2, NO_SEQUENCE, RecordBatch, RecordBatchHeader,
    TRANSACTIONAL_FLAG, TimestampType, assign_offset_and_epoch, batch_size_from_prefix, set_log_append_time,
    set_producer,
};
pub use chunk::{Chunk, FileRange};
pub use compression::{CompressionError, CompressionType, compress, decompress};
pub use control::{ControlType, marker_batch, parse_marker};
pub use crc::{crc32c, crc32c_of_parts};
pub use offset::{LeaderEpoch, Offset, ProducerId, Timestamp};
pub use records::{
    BatchBuilder, BatchIter, ProducerStamp, Record, RecordError, RecordIter, put_varint, put_varlong, read_varint,
    read_varlong, seeded_batch,
};
pub use topic_id::TopicId;
pub use topic_partition::{TopicNameError, TopicPartition, java_string_hash, partition_for_key, validate_topic_name};
pub use validated::{BatchSummary, IntoBatches, ValidBatches, increment_sequence};
