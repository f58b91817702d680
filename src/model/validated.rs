//! [`ValidBatches`]: the record batches a producer sent for one partition, parsed and checked once
//! on their way from the request to the log.
//!
//! The broker builds one per partition of a produce request; each batch's header is read and its
//! CRC computed here and nowhere else. What the log (and later the producer-state checks) needs of
//! each batch is kept in a [`BatchSummary`], so nothing downstream parses the bytes again. Only
//! this module can make a `ValidBatches`, so holding one is proof that every batch in it passed
//! [`RecordBatch::validate`].

use bytes::BytesMut;

use super::{
    BatchError, CONTROL_FLAG, ProducerId, RecordBatch, RecordBatchHeader, TRANSACTIONAL_FLAG, Timestamp,
    set_log_append_time,
};
use crate::limits::{BATCH_BYTES_MAX, BATCH_HEADER_BYTES};

/// What validation learnt of one batch from its header, kept so that no one reads it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// Bytes in the batch, header included.
    pub size: usize,
    /// `lastOffsetDelta`: the batch takes offsets `base ..= base + last_offset_delta`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: Timestamp,
    /// Largest timestamp in the batch, or the append time once stamped.
    pub max_timestamp: Timestamp,
    /// Idempotent producer id, or -1.
    pub producer_id: ProducerId,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Part of a transaction (attribute bit 4).
    pub transactional: bool,
    /// A control batch: a transaction marker (attribute bit 5). Only the broker writes them.
    pub control: bool,
}

impl BatchSummary {
    fn of(batch: &RecordBatch<'_>) -> BatchSummary {
        BatchSummary::of_header(batch.header(), batch.size())
    }

    /// What a batch header of a `size`-byte batch says (for scans that read only headers).
    pub fn of_header(header: &RecordBatchHeader, size: usize) -> BatchSummary {
        let attributes = header.attributes.get();
        BatchSummary {
            size,
            last_offset_delta: header.last_offset_delta.get(),
            base_timestamp: Timestamp(header.base_timestamp.get()),
            max_timestamp: Timestamp(header.max_timestamp.get()),
            producer_id: ProducerId(header.producer_id.get()),
            producer_epoch: header.producer_epoch.get(),
            base_sequence: header.base_sequence.get(),
            transactional: attributes & TRANSACTIONAL_FLAG != 0,
            control: attributes & CONTROL_FLAG != 0,
        }
    }

    /// Sequence number of the last record (sequences wrap from `i32::MAX` to 0, as Kafka's).
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    /// Records in the batch (validation checked that this agrees with `recordsCount`).
    pub fn records_count(&self) -> i32 {
        self.last_offset_delta + 1
    }
}

/// `sequence + by`, wrapping past `i32::MAX` to 0 as Kafka's producers do.
pub fn increment_sequence(sequence: i32, by: i32) -> i32 {
    if sequence > i32::MAX - by { by - (i32::MAX - sequence) - 1 } else { sequence + by }
}

/// One or more record batches, back to back in one buffer, each of which passed
/// [`RecordBatch::validate`] and is no larger than the limit it was built with.
#[derive(Debug)]
pub struct ValidBatches {
    bytes: BytesMut,
    batches: Vec<BatchSummary>,
}

impl ValidBatches {
    /// Parses and validates every batch in `bytes` (CRC included), each at most `size_max` bytes
    /// (and never more than [`BATCH_BYTES_MAX`], the largest a log recovers). Refuses the whole
    /// buffer if any batch is bad, if the last one is cut short, or if there is none.
    pub fn new(bytes: BytesMut, size_max: usize) -> Result<ValidBatches, BatchError> {
        let size_max = size_max.min(BATCH_BYTES_MAX as usize);
        let mut batches = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let batch = RecordBatch::parse_prefix(&bytes[at..], size_max)?;
            batch.validate()?;
            batches.push(BatchSummary::of(&batch));
            at += batch.size();
        }
        if batches.is_empty() {
            return Err(BatchError::Truncated { have: 0, need: BATCH_HEADER_BYTES });
        }
        Ok(ValidBatches { bytes, batches })
    }

    /// Stamps every batch with the broker's append time (`message.timestamp.type =
    /// LogAppendTime`), fixing each CRC. Safe because the batches were validated first: a
    /// recomputed CRC never makes a bad batch good.
    pub fn stamp_log_append_time(&mut self, now: Timestamp) {
        let mut at = 0;
        for batch in &mut self.batches {
            set_log_append_time(&mut self.bytes[at..at + batch.size], now);
            batch.max_timestamp = now;
            at += batch.size;
        }
    }

    /// What each batch holds, in order.
    pub fn batches(&self) -> &[BatchSummary] {
        &self.batches
    }

    /// All the batches' bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Total size in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Splits the buffer into one buffer per batch (without copying), each with its summary.
    pub fn into_batches(self) -> IntoBatches {
        IntoBatches { bytes: self.bytes, batches: self.batches.into_iter() }
    }
}

/// The batches of a [`ValidBatches`], one buffer each; from [`ValidBatches::into_batches`].
#[derive(Debug)]
pub struct IntoBatches {
    bytes: BytesMut,
    batches: std::vec::IntoIter<BatchSummary>,
}

impl Iterator for IntoBatches {
    type Item = (BytesMut, BatchSummary);

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.batches.next()?;
        Some((self.bytes.split_to(batch.size), batch))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.batches.size_hint()
    }
}

impl ExactSizeIterator for IntoBatches {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::records::BatchBuilder;
    use crate::model::{BatchIter, TimestampType};

    fn batch(values: &[&[u8]], timestamp: i64) -> BytesMut {
        let mut builder = BatchBuilder::new(Timestamp(timestamp));
        for (i, value) in values.iter().enumerate() {
            builder.push(None, Some(*value), Timestamp(timestamp + i as i64), &[]);
        }
        builder.build()
    }

    fn two_batches() -> BytesMut {
        let mut bytes = batch(&[b"a", b"b", b"c"], 1_000);
        bytes.extend_from_slice(&batch(&[b"d"], 2_000));
        bytes
    }

    #[test]
    fn back_to_back_batches_are_summarised_and_split() {
        let bytes = two_batches();
        let first = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap().size();
        let total = bytes.len();
        let valid = ValidBatches::new(bytes, usize::MAX).unwrap();
        assert_eq!(valid.size(), total);
        let summaries = valid.batches();
        assert_eq!(summaries.len(), 2);
        assert_eq!((summaries[0].size, summaries[0].records_count()), (first, 3));
        assert_eq!((summaries[0].base_timestamp, summaries[0].max_timestamp), (Timestamp(1_000), Timestamp(1_002)));
        assert_eq!((summaries[1].size, summaries[1].last_offset_delta), (total - first, 0));
        assert_eq!(
            (summaries[1].producer_id, summaries[1].producer_epoch, summaries[1].base_sequence),
            (ProducerId(-1), -1, -1)
        );
        let split: Vec<_> = valid.into_batches().collect();
        assert_eq!(
            split.iter().map(|(bytes, summary)| (bytes.len(), summary.size)).collect::<Vec<_>>(),
            [(first, first), (total - first, total - first)]
        );
    }

    #[test]
    fn one_bad_batch_refuses_the_buffer() {
        let mut corrupt = two_batches();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(matches!(ValidBatches::new(corrupt, usize::MAX), Err(BatchError::CrcMismatch { .. })));

        let whole = two_batches();
        let cut = BytesMut::from(&whole[..whole.len() - 1]);
        assert!(matches!(ValidBatches::new(cut, usize::MAX), Err(BatchError::Truncated { .. })));
        assert!(matches!(ValidBatches::new(whole, 64), Err(BatchError::TooLarge { limit: 64, .. })));
        assert_eq!(
            ValidBatches::new(BytesMut::new(), usize::MAX).err(),
            Some(BatchError::Truncated { have: 0, need: BATCH_HEADER_BYTES })
        );
    }

    #[test]
    fn log_append_time_is_stamped_with_a_valid_crc() {
        let mut valid = ValidBatches::new(two_batches(), usize::MAX).unwrap();
        valid.stamp_log_append_time(Timestamp(5_000));
        assert!(valid.batches().iter().all(|b| b.max_timestamp == Timestamp(5_000)));
        let mut seen = 0;
        for batch in BatchIter::new(valid.as_bytes(), usize::MAX) {
            let batch = batch.unwrap();
            batch.validate().unwrap();
            assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
            assert_eq!(batch.max_timestamp(), Timestamp(5_000));
            seen += 1;
        }
        assert_eq!(seen, 2);
    }
}
