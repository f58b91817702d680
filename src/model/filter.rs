//! Rewriting one stored batch keeping only some of its records: the byte-level half of log
//! compaction (Kafka's `MemoryRecords.filterTo` for v2 batches). The cleaner decides record by
//! record; this module rebuilds the batch so that a consumer cannot tell it from one the
//! producer could have sent, except for the records that are gone:
//!
//! - the base offset, `lastOffsetDelta`, leader epoch, producer id, epoch and base sequence stay,
//!   so a batch's offset span never changes (the log's gaps fall between and inside batches,
//!   never across a batch boundary) and the producer's last sequence survives a rebuild of
//!   producer state from the log, as Kafka keeps it;
//! - kept records are copied byte for byte (their offset and timestamp deltas are relative to the
//!   unchanged base), except when the delete horizon moves the base timestamp: then only each
//!   record's timestamp delta is re-encoded;
//! - the codec stays: a compressed batch's kept records are compressed again with it;
//! - `maxTimestamp` becomes the largest kept timestamp (create time), or stays (log-append time).

use bytes::{BufMut, BytesMut};

use super::Timestamp;
use super::batch::{BatchError, DELETE_HORIZON_FLAG, MAGIC_V2, RecordBatch, TimestampType};
use super::compression::{CompressionType, compress};
use super::records::{
    Record, parse_record_body, put_varint, put_varlong, seal, split_timestamp_delta, take_record_body, varlong_len,
};
use crate::limits::{BATCH_HEADER_BYTES, DECOMPRESSED_BATCH_BYTES_MAX};

/// What the cleaner wants done with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The record stays.
    Keep,
    /// The record goes.
    Drop,
}

/// How a batch is rewritten.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterOptions {
    /// The delete horizon to stamp (KIP-534) when the batch has none yet and keeps a tombstone,
    /// or is a control batch whose marker is kept: from then on the cleaner may remove those
    /// once the horizon has passed.
    pub delete_horizon: Option<Timestamp>,
    /// When every record goes, keep the batch as a header with no records (Kafka keeps a
    /// producer's last batch this way so its sequence and epoch survive in the log).
    pub keep_empty_header: bool,
}

/// The outcome of [`filter_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Every record stays and no horizon is to be stamped: the stored bytes are the result.
    Unchanged,
    /// The rebuilt batch.
    Rewritten(BytesMut),
    /// No record stays and no empty header was asked for.
    Removed,
}

/// The batch's delete horizon, if a clean stamped one (attribute bit 6; the base timestamp).
pub fn delete_horizon(batch: &RecordBatch<'_>) -> Option<Timestamp> {
    let header = batch.header();
    (header.attributes.get() & DELETE_HORIZON_FLAG != 0).then(|| Timestamp(header.base_timestamp.get()))
}

/// Shows every record of `batch` to `decide` in offset order and rebuilds the batch with those
/// it keeps (see the module docs). A record area that does not parse (or decompresses past the
/// limit) is an error, and nothing is rewritten.
pub fn filter_batch(
    batch: &RecordBatch<'_>,
    options: &FilterOptions,
    mut decide: impl FnMut(&Record<'_>) -> Keep,
) -> Result<Filtered, BatchError> {
    let codec = batch.compression()?;
    let records = batch.decompressed_records(DECOMPRESSED_BATCH_BYTES_MAX)?;
    let base_offset = batch.base_offset();
    let base_timestamp = batch.base_timestamp();
    let mut rest: &[u8] = &records;
    // Kept record bodies with their timestamps; sized by what is read, never by the header's
    // claimed count.
    let mut kept: Vec<(&[u8], Timestamp)> = Vec::new();
    let mut dropped = false;
    let mut kept_tombstone = false;
    for _ in 0..batch.records_count() {
        let body = take_record_body(&mut rest)?;
        let record = parse_record_body(body, base_offset, base_timestamp)?;
        match decide(&record) {
            Keep::Keep => {
                kept_tombstone |= record.value.is_none();
                kept.push((body, record.timestamp));
            }
            Keep::Drop => dropped = true,
        }
    }
    let stamp = options
        .delete_horizon
        .filter(|_| delete_horizon(batch).is_none() && (kept_tombstone || (batch.is_control() && !kept.is_empty())));
    if !dropped && stamp.is_none() {
        return Ok(Filtered::Unchanged);
    }
    if kept.is_empty() {
        return Ok(if options.keep_empty_header {
            Filtered::Rewritten(empty_header(batch))
        } else {
            Filtered::Removed
        });
    }

    let new_base = stamp.unwrap_or(base_timestamp);
    let mut area = BytesMut::with_capacity(records.len());
    for &(body, timestamp) in &kept {
        if new_base == base_timestamp {
            put_varint(&mut area, len_i32(body.len()));
            area.put_slice(body);
        } else {
            let (attributes, _, tail) = split_timestamp_delta(body)?;
            let delta = timestamp.0.wrapping_sub(new_base.0);
            put_varint(&mut area, len_i32(1 + varlong_len(delta) + tail.len()));
            area.put_u8(attributes);
            put_varlong(&mut area, delta);
            area.put_slice(tail);
        }
    }
    let header = batch.header();
    let max_timestamp = match batch.timestamp_type() {
        TimestampType::LogAppendTime => batch.max_timestamp(),
        TimestampType::CreateTime => kept.iter().map(|&(_, t)| t).max().unwrap_or(batch.max_timestamp()),
    };
    let attributes = header.attributes.get() | if stamp.is_some() { DELETE_HORIZON_FLAG } else { 0 };
    let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + area.len());
    put_header(
        &mut out,
        batch,
        HeaderFields { attributes, base_timestamp: new_base, max_timestamp, records_count: len_i32(kept.len()) },
    );
    if codec == CompressionType::None {
        out.put_slice(&area);
    } else {
        compress(codec, &area, &mut out)?;
    }
    seal(&mut out);
    Ok(Filtered::Rewritten(out))
}

/// The header fields a rewrite changes.
struct HeaderFields {
    attributes: i16,
    base_timestamp: Timestamp,
    max_timestamp: Timestamp,
    records_count: i32,
}

/// Writes `batch`'s header with `fields` changed, batch length and CRC left for [`seal`].
fn put_header(out: &mut BytesMut, batch: &RecordBatch<'_>, fields: HeaderFields) {
    let header = batch.header();
    out.put_i64(header.base_offset.get());
    out.put_i32(0); // batchLength, by seal
    out.put_i32(header.partition_leader_epoch.get());
    out.put_u8(MAGIC_V2);
    out.put_u32(0); // crc, by seal
    out.put_i16(fields.attributes);
    out.put_i32(header.last_offset_delta.get());
    out.put_i64(fields.base_timestamp.0);
    out.put_i64(fields.max_timestamp.0);
    out.put_i64(header.producer_id.get());
    out.put_i16(header.producer_epoch.get());
    out.put_i32(header.base_sequence.get());
    out.put_i32(fields.records_count);
}

/// A header with no records that keeps the batch's offsets, producer fields and epoch (Kafka's
/// `writeEmptyHeader`): uncompressed, both timestamps the batch's largest.
fn empty_header(batch: &RecordBatch<'_>) -> BytesMut {
    const CODEC_BITS: i16 = 0x07;
    let attributes = batch.header().attributes.get() & !CODEC_BITS & !DELETE_HORIZON_FLAG;
    let max_timestamp = batch.max_timestamp();
    let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES);
    put_header(
        &mut out,
        batch,
        HeaderFields { attributes, base_timestamp: max_timestamp, max_timestamp, records_count: 0 },
    );
    seal(&mut out);
    out
}

/// A length that fits an i32: record and batch sizes are bounded far below it by
/// `DECOMPRESSED_BATCH_BYTES_MAX`.
fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::records::{BatchBuilder, ProducerStamp, RecordIter};
    use crate::model::{LeaderEpoch, Offset, ProducerId, assign_offset_and_epoch};

    /// A stored batch at offset 100, epoch 3, producer 7/epoch 2/sequence 40, with records
    /// k0..k{n-1}; odd ones are tombstones when `tombstones`.
    fn stored(n: usize, codec: CompressionType, tombstones: bool) -> Vec<u8> {
        let mut builder = BatchBuilder::new(Timestamp(1_000));
        for i in 0..n {
            let key = format!("k{i}");
            let value = format!("value-{i}");
            let value = (!tombstones || i % 2 == 0).then_some(value.as_bytes());
            builder.push(Some(key.as_bytes()), value, Timestamp(1_000 + i as i64 * 10), &[("h", b"x")]);
        }
        builder.set_producer(ProducerStamp {
            producer_id: ProducerId(7),
            epoch: 2,
            base_sequence: 40,
            transactional: false,
        });
        let mut bytes = builder.build_compressed(codec).unwrap().to_vec();
        assign_offset_and_epoch(&mut bytes, Offset(100), LeaderEpoch(3));
        bytes
    }

    /// (offset, timestamp, key, value, headers) of every record.
    type Row = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, usize);

    fn rows(bytes: &[u8]) -> Vec<Row> {
        let batch = RecordBatch::parse_prefix(bytes, usize::MAX).unwrap();
        batch.validate_stored().unwrap();
        let records = batch.decompressed_records(usize::MAX).unwrap();
        RecordIter::with_records(&batch, &records)
            .map(|r| {
                let r = r.unwrap();
                (r.offset.0, r.timestamp.0, r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec), r.headers.len())
            })
            .collect()
    }

    fn filter(bytes: &[u8], options: FilterOptions, keep: impl Fn(&Record<'_>) -> bool) -> Filtered {
        let batch = RecordBatch::parse_prefix(bytes, usize::MAX).unwrap();
        filter_batch(&batch, &options, |r| if keep(r) { Keep::Keep } else { Keep::Drop }).unwrap()
    }

    fn even(r: &Record<'_>) -> bool {
        r.offset.0 % 2 == 0
    }

    #[test]
    fn keeping_everything_changes_nothing() {
        let bytes = stored(5, CompressionType::None, false);
        assert_eq!(filter(&bytes, FilterOptions::default(), |_| true), Filtered::Unchanged);
    }

    #[test]
    fn dropped_records_go_and_the_rest_keep_offsets_timestamps_headers_and_producer_fields() {
        for codec in [
            CompressionType::None,
            CompressionType::Gzip,
            CompressionType::Snappy,
            CompressionType::Lz4,
            CompressionType::Zstd,
        ] {
            let bytes = stored(7, codec, false);
            let Filtered::Rewritten(out) = filter(&bytes, FilterOptions::default(), even) else { panic!("{codec:?}") };
            let expected: Vec<Row> = rows(&bytes).into_iter().filter(|r| r.0 % 2 == 0).collect();
            assert_eq!(rows(&out), expected, "{codec:?}");
            let (before, after) = (
                RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap(),
                RecordBatch::parse_prefix(&out, usize::MAX).unwrap(),
            );
            assert_eq!(after.compression().unwrap(), codec);
            assert_eq!(after.records_count(), 4);
            assert_eq!(after.base_offset(), Offset(100));
            assert_eq!(after.next_offset(), before.next_offset(), "the offset span stays");
            assert_eq!(after.leader_epoch(), LeaderEpoch(3));
            assert_eq!(after.producer_id(), ProducerId(7));
            assert_eq!(after.header().producer_epoch.get(), 2);
            assert_eq!(after.header().base_sequence.get(), 40);
            assert_eq!(after.max_timestamp(), Timestamp(1_060));
            assert_eq!(delete_horizon(&after), None);
        }
    }

    #[test]
    fn a_kept_tombstone_gets_the_delete_horizon_and_records_keep_their_own_timestamps() {
        let bytes = stored(4, CompressionType::Lz4, true);
        let options = FilterOptions { delete_horizon: Some(Timestamp(90_000)), keep_empty_header: false };
        let Filtered::Rewritten(out) = filter(&bytes, options, |_| true) else { panic!() };
        assert_eq!(rows(&out), rows(&bytes), "the same records, timestamps included");
        let batch = RecordBatch::parse_prefix(&out, usize::MAX).unwrap();
        assert_eq!(delete_horizon(&batch), Some(Timestamp(90_000)));
        assert_eq!(batch.base_timestamp(), Timestamp(90_000));
        // Stamped once: a later clean with a later horizon leaves it.
        let later = FilterOptions { delete_horizon: Some(Timestamp(99_000)), keep_empty_header: false };
        assert_eq!(filter(&out, later, |_| true), Filtered::Unchanged);
        // Dropping from a stamped batch keeps its horizon and the records' timestamps.
        let Filtered::Rewritten(again) = filter(&out, later, even) else { panic!() };
        let expected: Vec<Row> = rows(&bytes).into_iter().filter(|r| r.0 % 2 == 0).collect();
        assert_eq!(rows(&again), expected);
        assert_eq!(delete_horizon(&RecordBatch::parse_prefix(&again, usize::MAX).unwrap()), Some(Timestamp(90_000)));
    }

    #[test]
    fn no_horizon_without_a_kept_tombstone() {
        let bytes = stored(4, CompressionType::None, true);
        let options = FilterOptions { delete_horizon: Some(Timestamp(90_000)), keep_empty_header: false };
        let Filtered::Rewritten(out) = filter(&bytes, options, |r| r.value.is_some()) else { panic!() };
        assert_eq!(delete_horizon(&RecordBatch::parse_prefix(&out, usize::MAX).unwrap()), None);
        assert_eq!(rows(&out).len(), 2);
    }

    #[test]
    fn dropping_everything_removes_the_batch_or_leaves_an_empty_header() {
        let bytes = stored(3, CompressionType::Zstd, false);
        assert_eq!(filter(&bytes, FilterOptions::default(), |_| false), Filtered::Removed);
        let options = FilterOptions { delete_horizon: None, keep_empty_header: true };
        let Filtered::Rewritten(out) = filter(&bytes, options, |_| false) else { panic!() };
        let batch = RecordBatch::parse_prefix(&out, usize::MAX).unwrap();
        batch.validate_stored().unwrap();
        assert_eq!(out.len(), BATCH_HEADER_BYTES);
        assert_eq!(batch.records_count(), 0);
        assert_eq!(batch.compression().unwrap(), CompressionType::None);
        assert_eq!((batch.base_offset(), batch.next_offset()), (Offset(100), Offset(103)));
        assert_eq!((batch.producer_id(), batch.header().base_sequence.get()), (ProducerId(7), 40));
    }

    #[test]
    fn malformed_records_are_an_error_not_a_panic() {
        let mut bytes = stored(3, CompressionType::None, false);
        // Claim more records than there are, with a valid CRC: reading runs out.
        let count_at = BATCH_HEADER_BYTES - 4;
        bytes[count_at..BATCH_HEADER_BYTES].copy_from_slice(&9i32.to_be_bytes());
        let crc = crate::model::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
        assert!(matches!(filter_batch(&batch, &FilterOptions::default(), |_| Keep::Keep), Err(BatchError::Records(_))));
    }

    proptest::proptest! {
        #[test]
        fn garbage_records_never_panic(
            garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            count in 0i32..50,
        ) {
            let mut bytes = stored(1, CompressionType::None, false);
            bytes.truncate(BATCH_HEADER_BYTES);
            bytes.extend_from_slice(&garbage);
            let length = i32::try_from(bytes.len() - 12).unwrap();
            bytes[8..12].copy_from_slice(&length.to_be_bytes());
            bytes[BATCH_HEADER_BYTES - 4..BATCH_HEADER_BYTES].copy_from_slice(&count.to_be_bytes());
            let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
            let keyed = |r: &Record<'_>| if r.key.is_some() { Keep::Keep } else { Keep::Drop };
            let _ = filter_batch(&batch, &FilterOptions::default(), keyed);
        }
    }
}
