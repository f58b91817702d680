//! A stand-in for `model::filter` (the batch filter the lead writes, with the same API) until
//! it lands on main: rewrites one batch keeping the records `decide` keeps. Removed once the
//! real one is merged.

use bytes::{BufMut, BytesMut};

use crate::limits::{BATCH_HEADER_BYTES, DECOMPRESSED_BATCH_BYTES_MAX, LOG_OVERHEAD_BYTES};
use crate::model::{BatchError, CompressionType, Record, RecordBatch, RecordIter, Timestamp, compress, put_varint};

/// Attribute bit 6: the batch's base timestamp is its delete horizon (KIP-534).
const DELETE_HORIZON_FLAG: i16 = 0x40;

/// What to do with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// Keep it.
    Keep,
    /// Remove it.
    Drop,
}

/// How to rewrite.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FilterOptions {
    /// Set bit 6 and this horizon when the batch has none and a tombstone is kept.
    pub(super) delete_horizon: Option<Timestamp>,
    /// Emit a header-only batch if nothing is kept.
    pub(super) keep_empty_header: bool,
}

/// The outcome.
#[derive(Debug)]
pub(super) enum Filtered {
    /// Every record kept and nothing to stamp: the original bytes stand.
    Unchanged,
    /// The batch rewritten.
    Rewritten(BytesMut),
    /// Nothing kept.
    Removed,
}

/// The batch's delete horizon, if bit 6 is set.
pub(super) fn delete_horizon(batch: &RecordBatch<'_>) -> Option<Timestamp> {
    (batch.header().attributes.get() & DELETE_HORIZON_FLAG != 0).then(|| batch.base_timestamp())
}

/// Rewrites `batch` keeping the records `decide` keeps.
pub(super) fn filter_batch(
    batch: &RecordBatch<'_>,
    options: &FilterOptions,
    mut decide: impl FnMut(&Record<'_>) -> Keep,
) -> Result<Filtered, BatchError> {
    let area = batch.decompressed_records(DECOMPRESSED_BATCH_BYTES_MAX)?;
    let header = batch.header();
    let malformed = || BatchError::CountMismatch {
        records_count: header.records_count.get(),
        last_offset_delta: header.last_offset_delta.get(),
    };
    let mut kept = Vec::new();
    let mut total = 0usize;
    for record in RecordIter::with_records(batch, &area) {
        let record = record.map_err(|_| malformed())?;
        total += 1;
        if decide(&record) == Keep::Keep {
            kept.push(record);
        }
    }
    let has_horizon = delete_horizon(batch).is_some();
    let stamp = options.delete_horizon.filter(|_| !has_horizon && kept.iter().any(|r| r.value.is_none()));
    if kept.len() == total && stamp.is_none() {
        return Ok(Filtered::Unchanged);
    }
    if kept.is_empty() && !options.keep_empty_header {
        return Ok(Filtered::Removed);
    }
    let base_offset = batch.base_offset();
    let base_timestamp = stamp.unwrap_or(batch.base_timestamp());
    let mut records = BytesMut::new();
    for record in &kept {
        encode_record(&mut records, record, base_offset.0, base_timestamp.0);
    }
    let codec = batch.compression()?;
    let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + records.len());
    out.put_slice(&batch.as_bytes()[..BATCH_HEADER_BYTES]);
    match codec {
        CompressionType::None => out.put_slice(&records),
        codec => compress(codec, &records, &mut out)?,
    }
    let attributes = header.attributes.get() | if stamp.is_some() { DELETE_HORIZON_FLAG } else { 0 };
    let last_delta = kept.last().map_or(header.last_offset_delta.get(), |r| (r.offset.0 - base_offset.0) as i32);
    let max_timestamp = kept.iter().map(|r| r.timestamp).max().unwrap_or(batch.max_timestamp());
    let length = (out.len() - LOG_OVERHEAD_BYTES) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[23..27].copy_from_slice(&last_delta.to_be_bytes());
    out[27..35].copy_from_slice(&base_timestamp.0.to_be_bytes());
    out[35..43].copy_from_slice(&max_timestamp.0.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Filtered::Rewritten(out))
}

fn encode_record(out: &mut BytesMut, record: &Record<'_>, base_offset: i64, base_timestamp: i64) {
    let mut body = BytesMut::new();
    body.put_u8(0);
    crate::model::put_varlong(&mut body, record.timestamp.0 - base_timestamp);
    put_varint(&mut body, (record.offset.0 - base_offset) as i32);
    put_nullable(&mut body, record.key);
    put_nullable(&mut body, record.value);
    put_varint(&mut body, record.headers.len() as i32);
    for (key, value) in &record.headers {
        put_nullable(&mut body, Some(key));
        put_nullable(&mut body, *value);
    }
    put_varint(out, body.len() as i32);
    out.put_slice(&body);
}

fn put_nullable(out: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.put_slice(b);
        }
    }
}
