//! Transaction markers: the control batches that end a transaction in each of its partitions.
//!
//! A marker is a batch with the transactional and control attribute bits set, the producer's id
//! and epoch, no sequence, and one record whose key says COMMIT or ABORT (Kafka's
//! `EndTransactionMarker`: key = version i16, type i16; value = version i16, coordinator epoch
//! i32). Only the broker writes them; consumers skip them.

use bytes::BytesMut;
use zerocopy::FromBytes;
use zerocopy::byteorder::big_endian::I16;

use super::batch::{CONTROL_FLAG, RecordBatchHeader, set_producer};
use super::records::{BatchBuilder, RecordIter};
use super::{ProducerId, RecordBatch, Timestamp};
use crate::limits::BATCH_HEADER_BYTES;

/// How a transaction ended (the control record's type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// The transaction's records are discarded by read_committed consumers.
    Abort,
    /// The transaction's records become visible to read_committed consumers.
    Commit,
}

impl ControlType {
    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// A marker batch ending `producer_id`'s transaction, ready to append (offset and leader epoch
/// are assigned by the log).
pub fn marker_batch(
    producer_id: ProducerId,
    producer_epoch: i16,
    coordinator_epoch: i32,
    kind: ControlType,
    timestamp: Timestamp,
) -> BytesMut {
    let key = [0i16.to_be_bytes(), kind.code().to_be_bytes()].concat();
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut builder = BatchBuilder::new(timestamp);
    builder.push(Some(&key), Some(&value), timestamp, &[]);
    let mut batch = builder.build();
    if let Ok((header, _)) = RecordBatchHeader::mut_from_prefix(&mut batch[..]) {
        header.attributes = I16::new(header.attributes.get() | CONTROL_FLAG);
    }
    set_producer(&mut batch, producer_id, producer_epoch, -1, true);
    batch
}

/// The marker a control batch holds: its type and coordinator epoch; `None` if the batch is not
/// a control batch or its record is not a marker this version knows (Kafka skips those too).
pub fn parse_marker(batch: &RecordBatch<'_>) -> Option<(ControlType, i32)> {
    if !batch.is_control() || batch.as_bytes().len() <= BATCH_HEADER_BYTES {
        return None;
    }
    let record = RecordIter::new(batch).next()?.ok()?;
    let key = record.key?;
    let kind = match key.get(2..4)? {
        [0, 0] => ControlType::Abort,
        [0, 1] => ControlType::Commit,
        _ => return None,
    };
    let coordinator_epoch =
        record.value.and_then(|v| v.get(2..6)).and_then(|b| <[u8; 4]>::try_from(b).ok()).map_or(-1, i32::from_be_bytes);
    Some((kind, coordinator_epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_validate_and_parse_back() {
        for kind in [ControlType::Commit, ControlType::Abort] {
            let bytes = marker_batch(ProducerId(42), 3, 7, kind, Timestamp(1_000));
            let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
            batch.validate().unwrap();
            assert!(batch.is_control() && batch.is_transactional());
            assert_eq!((batch.producer_id(), batch.header().producer_epoch.get()), (ProducerId(42), 3));
            assert_eq!(batch.header().base_sequence.get(), -1);
            assert_eq!(parse_marker(&batch), Some((kind, 7)));
        }
        let plain = crate::model::seeded_batch(1, 8, 1, Timestamp(1));
        assert_eq!(parse_marker(&RecordBatch::parse_prefix(&plain, usize::MAX).unwrap()), None);
    }
}
