//! The Kafka record batch, format v2 (magic 2), as it lies on the wire and on disk.
//!
//! ```text
//! offset  size  field                 covered by CRC
//!  0      8     baseOffset            no   (rewritten by the broker on append)
//!  8      4     batchLength           no   (bytes after this field)
//! 12      4     partitionLeaderEpoch  no   (rewritten by the broker on append)
//! 16      1     magic (= 2)           no
//! 17      4     crc (CRC-32C)         no
//! 21      2     attributes            yes
//! 23      4     lastOffsetDelta       yes
//! 27      8     baseTimestamp         yes
//! 35      8     maxTimestamp          yes
//! 43      8     producerId            yes
//! 51      2     producerEpoch         yes
//! 53      4     baseSequence          yes
//! 57      4     recordsCount          yes
//! 61      ...   records (possibly compressed)
//! ```
//!
//! Because `baseOffset` and `partitionLeaderEpoch` lie outside the CRC, the broker assigns offsets
//! by patching them in place and stores the rest byte for byte as the producer sent it.

use std::borrow::Cow;

use zerocopy::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::compression::{self, CompressionError, CompressionType};
use super::{LeaderEpoch, Offset, ProducerId, Timestamp};
use crate::limits::{BATCH_HEADER_BYTES, BATCH_LENGTH_OFFSET, LOG_OVERHEAD_BYTES};

/// The fixed 61-byte header of a v2 record batch, overlaid on the bytes with `zerocopy` so no
/// field is parsed by hand-counted offsets.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RecordBatchHeader {
    /// Offset of the first record; assigned by the leader.
    pub base_offset: I64,
    /// Bytes in the batch after this field.
    pub batch_length: I32,
    /// Epoch of the leader that appended the batch; assigned by the leader.
    pub partition_leader_epoch: I32,
    /// Format version; 2 is the only one Sluice stores.
    pub magic: u8,
    /// CRC-32C (Castagnoli) of every byte from `attributes` to the end of the batch.
    pub crc: U32,
    /// Compression (bits 0-2), timestamp type (bit 3), transactional (4), control (5), ...
    pub attributes: I16,
    /// `last offset - base offset`; Kafka requires `records_count - 1` for produced batches.
    pub last_offset_delta: I32,
    /// Timestamp of the first record.
    pub base_timestamp: I64,
    /// Largest timestamp in the batch (or the log-append time).
    pub max_timestamp: I64,
    /// Idempotent producer id, or -1.
    pub producer_id: I64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: I16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: I32,
    /// Records in the batch.
    pub records_count: I32,
}

const _: () = assert!(size_of::<RecordBatchHeader>() == BATCH_HEADER_BYTES);

/// The smallest encoded record: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count, one byte each.
const RECORD_BYTES_MIN: usize = 7;
/// Where the `crc` field sits.
pub(super) const CRC_OFFSET: usize = 17;
/// Where the CRC coverage starts (the `attributes` field, right after `crc`).
pub(super) const CRC_START: usize = CRC_OFFSET + 4;
/// The only record batch format Sluice stores.
pub const MAGIC_V2: u8 = 2;

/// How the batch's timestamps were set, from attribute bit 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appended the batch.
    LogAppendTime,
}

/// Why a batch is refused. Each maps to a Kafka error code at the broker's edge
/// (`CORRUPT_MESSAGE`, `INVALID_RECORD`, `MESSAGE_TOO_LARGE`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than a batch header, or than the batch's own length field says.
    #[error("batch truncated: {have} bytes, need {need}")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes the header promises.
        need: usize,
    },
    /// `batchLength` is too small to hold the header, or negative.
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    /// The batch is larger than the limit in force.
    #[error("batch of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Batch size in bytes.
        size: usize,
        /// The limit (`max.message.bytes` or the hard cap).
        limit: usize,
    },
    /// Not a v2 batch.
    #[error("unsupported record batch magic {0} (only v2 is stored)")]
    UnsupportedMagic(u8),
    /// The CRC does not match the bytes.
    #[error("batch CRC mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// `recordsCount` is not positive or disagrees with `lastOffsetDelta + 1`.
    #[error("batch record count {records_count} disagrees with last offset delta {last_offset_delta}")]
    CountMismatch {
        /// `recordsCount` field.
        records_count: i32,
        /// `lastOffsetDelta` field.
        last_offset_delta: i32,
    },
    /// Compression codec bits name no codec.
    #[error("unknown compression codec {0}")]
    UnknownCompression(i16),
    /// The records section does not decompress (or decompresses to more than allowed).
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// A record inside the batch is malformed (found when the records are read, which the
    /// broker does only where it must: the log cleaner, keyed-topic checks).
    #[error("malformed record in batch: {0}")]
    Records(#[from] RecordError),
}

/// Why a record inside a batch cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The records area ended inside a record.
    #[error("record truncated")]
    Truncated,
    /// A varint was longer than its type allows, or a length was negative where it cannot be.
    #[error("malformed record field")]
    Malformed,
}

/// A view of one complete record batch in a byte slice. Construction checks only that the header
/// is there and the length is coherent; [`RecordBatch::validate`] checks the rest.
#[derive(Debug, Clone, Copy)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
}

impl<'a> RecordBatch<'a> {
    /// Views the first batch in `bytes` (which may hold more after it). The batch's size is
    /// checked against `size_max` before anything else is read.
    pub fn parse_prefix(bytes: &'a [u8], size_max: usize) -> Result<RecordBatch<'a>, BatchError> {
        let size = batch_size_from_prefix(bytes)?;
        if size > size_max {
            return Err(BatchError::TooLarge { size, limit: size_max });
        }
        if bytes.len() < size {
            return Err(BatchError::Truncated { have: bytes.len(), need: size });
        }
        Ok(RecordBatch { bytes: &bytes[..size] })
    }

    /// The header fields.
    pub fn header(&self) -> &'a RecordBatchHeader {
        // The prefix is at least BATCH_HEADER_BYTES long (checked in parse_prefix) and the header
        // type is Unaligned with no invalid bit patterns, so this cannot fail.
        match RecordBatchHeader::ref_from_prefix(self.bytes) {
            Ok((header, _)) => header,
            Err(_) => unreachable!("batch view shorter than its header"),
        }
    }

    /// The whole batch.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Total size in bytes (`batchLength + 12`).
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The records area, after the header (compressed if the batch is).
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[BATCH_HEADER_BYTES..]
    }

    /// The records area decompressed, at most `limit` bytes: borrowed as is for an
    /// uncompressed batch (the limit applies only to decompression), one new buffer otherwise.
    pub fn decompressed_records(&self, limit: usize) -> Result<Cow<'a, [u8]>, BatchError> {
        match self.compression()? {
            CompressionType::None => Ok(Cow::Borrowed(self.records_bytes())),
            codec => Ok(Cow::Owned(compression::decompress(codec, self.records_bytes(), limit)?)),
        }
    }

    /// First offset of the batch.
    pub fn base_offset(&self) -> Offset {
        Offset(self.header().base_offset.get())
    }

    /// Last offset of the batch (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> Offset {
        self.base_offset().plus(i64::from(self.header().last_offset_delta.get()))
    }

    /// Offset after the batch.
    pub fn next_offset(&self) -> Offset {
        self.last_offset().plus(1)
    }

    /// The epoch stamped by the leader that appended the batch.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(self.header().partition_leader_epoch.get())
    }

    /// Largest timestamp in the batch.
    pub fn max_timestamp(&self) -> Timestamp {
        Timestamp(self.header().max_timestamp.get())
    }

    /// Timestamp of the first record.
    pub fn base_timestamp(&self) -> Timestamp {
        Timestamp(self.header().base_timestamp.get())
    }

    /// Records in the batch.
    pub fn records_count(&self) -> i32 {
        self.header().records_count.get()
    }

    /// The producer id (-1 for a plain producer).
    pub fn producer_id(&self) -> ProducerId {
        ProducerId(self.header().producer_id.get())
    }

    /// Compression codec.
    pub fn compression(&self) -> Result<CompressionType, BatchError> {
        let attributes = self.header().attributes.get();
        match attributes & 0x07 {
            0 => Ok(CompressionType::None),
            1 => Ok(CompressionType::Gzip),
            2 => Ok(CompressionType::Snappy),
            3 => Ok(CompressionType::Lz4),
            4 => Ok(CompressionType::Zstd),
            _ => Err(BatchError::UnknownCompression(attributes & 0x07)),
        }
    }

    /// Timestamp type.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.header().attributes.get() & 0x08 != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.header().attributes.get() & 0x10 != 0
    }

    /// A control batch (transaction marker).
    pub fn is_control(&self) -> bool {
        self.header().attributes.get() & 0x20 != 0
    }

    /// The CRC-32C of the covered bytes, computed now.
    pub fn compute_crc(&self) -> u32 {
        super::crc32c(&self.bytes[CRC_START..])
    }

    /// Checks everything a stored batch must satisfy: magic 2, the CRC, a known codec, and a
    /// positive record count that agrees with `lastOffsetDelta` (Kafka's rule for produced
    /// batches; compacted batches from a leader are checked with [`Self::validate_stored`]).
    pub fn validate(&self) -> Result<(), BatchError> {
        self.validate_stored()?;
        let records_count = self.records_count();
        let last_offset_delta = self.header().last_offset_delta.get();
        if records_count <= 0 || i64::from(last_offset_delta) + 1 != i64::from(records_count) {
            return Err(BatchError::CountMismatch { records_count, last_offset_delta });
        }
        // An uncompressed batch cannot hold more records than its bytes allow, so a count that
        // would make the log jump by billions of offsets is refused (compressed batches are
        // stored as they come and checked by their consumers).
        let uncompressed = matches!(self.compression(), Ok(CompressionType::None));
        if uncompressed && records_count as usize > self.records_bytes().len() / RECORD_BYTES_MIN {
            return Err(BatchError::CountMismatch { records_count, last_offset_delta });
        }
        Ok(())
    }

    /// The checks that hold for every batch already in a log, including compacted ones whose
    /// record count may be smaller than their offset span: magic, CRC, codec, a non-negative
    /// offset span.
    pub fn validate_stored(&self) -> Result<(), BatchError> {
        let header = self.header();
        if header.magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(header.magic));
        }
        let stored = header.crc.get();
        let computed = self.compute_crc();
        if stored != computed {
            return Err(BatchError::CrcMismatch { stored, computed });
        }
        self.compression()?;
        let records_count = header.records_count.get();
        let last_offset_delta = header.last_offset_delta.get();
        if records_count < 0 || last_offset_delta < 0 {
            return Err(BatchError::CountMismatch { records_count, last_offset_delta });
        }
        Ok(())
    }
}

/// The size of the batch starting at `bytes`, from its length field, without reading further.
pub fn batch_size_from_prefix(bytes: &[u8]) -> Result<usize, BatchError> {
    if bytes.len() < BATCH_HEADER_BYTES {
        return Err(BatchError::Truncated { have: bytes.len(), need: BATCH_HEADER_BYTES });
    }
    let mut length = [0u8; 4];
    length.copy_from_slice(&bytes[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4]);
    let batch_length = i32::from_be_bytes(length);
    let size = usize::try_from(batch_length)
        .ok()
        .and_then(|l| l.checked_add(LOG_OVERHEAD_BYTES))
        .filter(|&size| size >= BATCH_HEADER_BYTES)
        .ok_or(BatchError::InvalidLength(batch_length))?;
    Ok(size)
}

/// Rewrites the two fields the leader owns, both outside the CRC, in place.
pub fn assign_offset_and_epoch(batch: &mut [u8], base_offset: Offset, epoch: LeaderEpoch) {
    if let Ok((header, _)) = RecordBatchHeader::mut_from_prefix(batch) {
        header.base_offset = I64::new(base_offset.0);
        header.partition_leader_epoch = I32::new(epoch.0);
    }
}

/// Stamps a batch with the broker's append time (topics with `message.timestamp.type =
/// LogAppendTime`): sets the timestamp-type attribute and `maxTimestamp`, and recomputes the CRC,
/// which covers both. The caller has validated the batch first, so a bad CRC is never made good.
pub fn set_log_append_time(batch: &mut [u8], now: Timestamp) {
    let Ok((header, _)) = RecordBatchHeader::mut_from_prefix(batch) else { return };
    header.attributes = I16::new(header.attributes.get() | 0x08);
    header.max_timestamp = I64::new(now.0);
    let crc = super::crc32c(&batch[CRC_START..]);
    if let Ok((header, _)) = RecordBatchHeader::mut_from_prefix(batch) {
        header.crc = U32::new(crc);
    }
}

/// Attribute bit of a transactional batch.
pub const TRANSACTIONAL_FLAG: i16 = 0x10;
/// Attribute bit of a control batch (a transaction marker).
pub const CONTROL_FLAG: i16 = 0x20;
/// Attribute bit saying the base timestamp is the batch's delete horizon (KIP-534): the log
/// cleaner sets it on a batch holding a tombstone or a marker the first time it keeps one, and
/// removes those after the horizon. Consumers still get each record's own timestamp, because
/// record timestamps are deltas from the base, re-encoded when the base moves.
pub const DELETE_HORIZON_FLAG: i16 = 0x40;
/// The base sequence of a batch that has none (Kafka's `RecordBatch.NO_SEQUENCE`): a plain
/// producer's, a marker's, a coordinator's written for a producer.
pub const NO_SEQUENCE: i32 = -1;

/// Stamps a built batch with an idempotent or transactional producer's id, epoch and first
/// sequence (and the transactional attribute bit), and recomputes the CRC, which covers them.
pub fn set_producer(batch: &mut [u8], producer_id: ProducerId, epoch: i16, base_sequence: i32, transactional: bool) {
    let Ok((header, _)) = RecordBatchHeader::mut_from_prefix(batch) else { return };
    let attributes = header.attributes.get() & !TRANSACTIONAL_FLAG;
    header.attributes = I16::new(if transactional { attributes | TRANSACTIONAL_FLAG } else { attributes });
    header.producer_id = I64::new(producer_id.0);
    header.producer_epoch = I16::new(epoch);
    header.base_sequence = I32::new(base_sequence);
    let crc = super::crc32c(&batch[CRC_START..]);
    if let Ok((header, _)) = RecordBatchHeader::mut_from_prefix(batch) {
        header.crc = U32::new(crc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::records::BatchBuilder;

    fn sample() -> Vec<u8> {
        let mut builder = BatchBuilder::new(Timestamp(1_000));
        builder.push(Some(b"k1"), Some(b"v1"), Timestamp(1_000), &[]);
        builder.push(None, Some(b"v2"), Timestamp(1_005), &[("h", b"x")]);
        builder.build().to_vec()
    }

    #[test]
    fn header_overlay_reads_the_fields() {
        let bytes = sample();
        let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
        batch.validate().unwrap();
        assert_eq!(batch.records_count(), 2);
        assert_eq!(batch.last_offset(), Offset(1));
        assert_eq!(batch.max_timestamp(), Timestamp(1_005));
        assert_eq!(batch.compression().unwrap(), CompressionType::None);
        assert_eq!(batch.size(), bytes.len());
    }

    #[test]
    fn offset_and_epoch_are_patched_outside_the_crc() {
        let mut bytes = sample();
        assign_offset_and_epoch(&mut bytes, Offset(42), LeaderEpoch(7));
        let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
        batch.validate().unwrap();
        assert_eq!(batch.base_offset(), Offset(42));
        assert_eq!(batch.last_offset(), Offset(43));
        assert_eq!(batch.leader_epoch(), LeaderEpoch(7));
    }

    #[test]
    fn every_kind_of_damage_is_refused() {
        let bytes = sample();
        let truncated = RecordBatch::parse_prefix(&bytes[..bytes.len() - 1], usize::MAX);
        assert!(matches!(truncated, Err(BatchError::Truncated { .. })));
        assert!(matches!(RecordBatch::parse_prefix(&bytes[..10], usize::MAX), Err(BatchError::Truncated { .. })));
        assert!(matches!(RecordBatch::parse_prefix(&bytes, 20), Err(BatchError::TooLarge { .. })));

        let mut bad_magic = bytes.clone();
        bad_magic[16] = 1;
        let batch = RecordBatch::parse_prefix(&bad_magic, usize::MAX).unwrap();
        assert_eq!(batch.validate(), Err(BatchError::UnsupportedMagic(1)));

        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let batch = RecordBatch::parse_prefix(&flipped, usize::MAX).unwrap();
        assert!(matches!(batch.validate(), Err(BatchError::CrcMismatch { .. })));

        let mut negative = bytes.clone();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(RecordBatch::parse_prefix(&negative, usize::MAX).err(), Some(BatchError::InvalidLength(-5)));

        // A count that disagrees with lastOffsetDelta, with the CRC fixed up so only that is wrong.
        let mut miscounted = bytes.clone();
        miscounted[57..61].copy_from_slice(&3i32.to_be_bytes());
        let crc = crate::model::crc32c(&miscounted[CRC_START..]);
        miscounted[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = RecordBatch::parse_prefix(&miscounted, usize::MAX).unwrap();
        assert!(matches!(batch.validate(), Err(BatchError::CountMismatch { .. })));
        assert!(batch.validate_stored().is_ok());

        // A count and delta that agree but that the bytes cannot hold.
        let mut inflated = bytes.clone();
        inflated[23..27].copy_from_slice(&999_999i32.to_be_bytes());
        inflated[57..61].copy_from_slice(&1_000_000i32.to_be_bytes());
        let crc = crate::model::crc32c(&inflated[CRC_START..]);
        inflated[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = RecordBatch::parse_prefix(&inflated, usize::MAX).unwrap();
        assert!(matches!(batch.validate(), Err(BatchError::CountMismatch { .. })));
    }
}
