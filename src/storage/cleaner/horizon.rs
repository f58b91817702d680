//! Stamping a transaction marker's delete horizon (KIP-534): attribute bit 6 set and the base
//! timestamp made the horizon, the record's own timestamp kept (its delta recomputed). The
//! batch filter stamps only batches that keep a tombstone; a marker gets its horizon from the
//! first clean that finds it removable, and goes at a clean after it (Kafka's rule).

use bytes::BytesMut;
use zerocopy::FromBytes;
use zerocopy::big_endian::{I16, I32, I64};

use crate::model::{
    BatchBuilder, CompressionType, RecordBatch, RecordBatchHeader, RecordIter, Timestamp, set_producer,
};

/// Attribute bit 6: the batch's base timestamp is its delete horizon.
const DELETE_HORIZON_FLAG: i16 = 0x40;

/// The control batch `batch` with delete horizon `horizon`; `None` if it cannot be rebuilt
/// as it was (compressed, or records with headers, which no marker has), so it stays as is.
pub(crate) fn stamp_marker_horizon(batch: &RecordBatch<'_>, horizon: Timestamp) -> Option<BytesMut> {
    if !matches!(batch.compression(), Ok(CompressionType::None)) {
        return None;
    }
    let mut builder = BatchBuilder::new(horizon);
    let mut expected_delta = 0;
    for record in RecordIter::new(batch) {
        let record = record.ok()?;
        // The builder numbers records densely from the base offset.
        if !record.headers.is_empty() || record.offset != batch.base_offset().plus(expected_delta) {
            return None;
        }
        builder.push(record.key, record.value, record.timestamp, &[]);
        expected_delta += 1;
    }
    let original = batch.header();
    let mut out = builder.build();
    let (header, _) = RecordBatchHeader::mut_from_prefix(&mut out[..]).ok()?;
    header.base_offset = I64::new(original.base_offset.get());
    header.partition_leader_epoch = I32::new(original.partition_leader_epoch.get());
    header.attributes = I16::new(original.attributes.get() | DELETE_HORIZON_FLAG);
    header.last_offset_delta = I32::new(original.last_offset_delta.get());
    header.max_timestamp = I64::new(original.max_timestamp.get());
    let transactional = batch.is_transactional();
    // Writes the producer fields and computes the CRC over everything above.
    set_producer(
        &mut out,
        batch.producer_id(),
        original.producer_epoch.get(),
        original.base_sequence.get(),
        transactional,
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        ControlType, LeaderEpoch, Offset, ProducerId, assign_offset_and_epoch, marker_batch, parse_marker,
    };

    #[test]
    fn a_stamped_marker_keeps_its_fields_and_gains_the_horizon() {
        let mut marker = marker_batch(ProducerId(9), 2, 7, ControlType::Abort, Timestamp(1000));
        assign_offset_and_epoch(&mut marker, Offset(42), LeaderEpoch(5));
        let original = RecordBatch::parse_prefix(&marker, usize::MAX).unwrap();
        let stamped = stamp_marker_horizon(&original, Timestamp(5000)).unwrap();
        let batch = RecordBatch::parse_prefix(&stamped, usize::MAX).unwrap();
        batch.validate().unwrap();
        assert_eq!(batch.base_offset(), Offset(42));
        assert_eq!(batch.leader_epoch(), LeaderEpoch(5));
        assert_eq!(batch.producer_id(), ProducerId(9));
        assert_eq!(batch.header().producer_epoch.get(), 2);
        assert!(batch.is_control() && batch.is_transactional());
        assert_eq!(batch.header().attributes.get() & DELETE_HORIZON_FLAG, DELETE_HORIZON_FLAG);
        assert_eq!(batch.base_timestamp(), Timestamp(5000));
        assert_eq!(parse_marker(&batch), Some((ControlType::Abort, 7)));
        let record = RecordIter::new(&batch).next().unwrap().unwrap();
        assert_eq!(record.timestamp, Timestamp(1000));
    }
}
