//! Records inside a v2 batch, a builder for batches (compressed or not), and iteration over a
//! run of batches. The broker never needs to look inside a batch to store it; these serve
//! timestamp lookups, tools, tests and the client.
//!
//! A record (all integers zig-zag varints):
//! `length, attributes: i8, timestampDelta, offsetDelta, keyLength, key, valueLength, value,
//! headerCount, [headerKeyLength, headerKey, headerValueLength, headerValue]*`; a length of -1
//! means null.

use bytes::{BufMut, BytesMut};

pub use super::batch::RecordError;
use super::batch::{
    BatchError, CRC_OFFSET, CRC_START, MAGIC_V2, RecordBatch, TRANSACTIONAL_FLAG, batch_size_from_prefix, set_producer,
};
use super::compression::{CompressionError, compress};
use super::{CompressionType, Offset, ProducerId, Timestamp};
use crate::limits::{BATCH_HEADER_BYTES, BATCH_LENGTH_OFFSET, LOG_OVERHEAD_BYTES};

/// One record, borrowing from its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// `base offset + offset delta`.
    pub offset: Offset,
    /// `base timestamp + timestamp delta` (or the batch's log-append time).
    pub timestamp: Timestamp,
    /// The key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, or `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// Header keys (UTF-8 on the wire, not checked here) and values.
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Iterates the records of a batch: of an uncompressed one in place ([`RecordIter::new`]), of a
/// compressed one in its decompressed records area ([`RecordIter::with_records`]). Yields an
/// error once and then stops if the records area is malformed; never reads past it.
pub struct RecordIter<'a> {
    rest: &'a [u8],
    remaining: i32,
    base_offset: Offset,
    base_timestamp: Timestamp,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    /// Records of `batch`, which must be uncompressed (a compressed batch yields nothing here).
    pub fn new(batch: &RecordBatch<'a>) -> Self {
        let uncompressed = matches!(batch.compression(), Ok(super::CompressionType::None));
        Self {
            rest: batch.records_bytes(),
            remaining: if uncompressed { batch.records_count() } else { 0 },
            base_offset: batch.base_offset(),
            base_timestamp: batch.base_timestamp(),
            failed: false,
        }
    }

    /// Records of `batch` read from `records`, its records area as
    /// [`RecordBatch::decompressed_records`] returns it. Offsets and timestamps come from the
    /// batch header, which is never compressed.
    pub fn with_records(batch: &RecordBatch<'_>, records: &'a [u8]) -> Self {
        Self {
            rest: records,
            remaining: batch.records_count(),
            base_offset: batch.base_offset(),
            base_timestamp: batch.base_timestamp(),
            failed: false,
        }
    }

    fn next_record(&mut self) -> Result<Record<'a>, RecordError> {
        let body = take_record_body(&mut self.rest)?;
        parse_record_body(body, self.base_offset, self.base_timestamp)
    }
}

/// Takes one record's body (what follows its length prefix) off the front of a records area.
pub(crate) fn take_record_body<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], RecordError> {
    let length = usize::try_from(read_varint(rest)?).map_err(|_| RecordError::Malformed)?;
    take(rest, length)
}

/// Parses a record body (see the module docs), offsets and timestamps made absolute.
pub(crate) fn parse_record_body(
    mut body: &[u8],
    base_offset: Offset,
    base_timestamp: Timestamp,
) -> Result<Record<'_>, RecordError> {
    let _attributes = take(&mut body, 1)?;
    let timestamp_delta = read_varlong(&mut body)?;
    let offset_delta = read_varint(&mut body)?;
    let key = read_nullable(&mut body)?;
    let value = read_nullable(&mut body)?;
    let header_count = usize::try_from(read_varint(&mut body)?).map_err(|_| RecordError::Malformed)?;
    // Each header needs at least two bytes, so a count beyond that is a lie; check before
    // allocating.
    if header_count > body.len() / 2 {
        return Err(RecordError::Malformed);
    }
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        let key = read_nullable(&mut body)?.ok_or(RecordError::Malformed)?;
        let value = read_nullable(&mut body)?;
        headers.push((key, value));
    }
    Ok(Record {
        offset: base_offset.plus(i64::from(offset_delta)),
        timestamp: Timestamp(base_timestamp.0.wrapping_add(timestamp_delta)),
        key,
        value,
        headers,
    })
}

/// Splits a record body into its attributes byte, its timestamp delta and the rest (offset
/// delta, key, value, headers), for re-encoding the record under another base timestamp.
pub(crate) fn split_timestamp_delta(mut body: &[u8]) -> Result<(u8, i64, &[u8]), RecordError> {
    let attributes = take(&mut body, 1)?.first().copied().unwrap_or(0);
    let timestamp_delta = read_varlong(&mut body)?;
    Ok((attributes, timestamp_delta, body))
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.remaining <= 0 {
            return None;
        }
        self.remaining -= 1;
        let record = self.next_record();
        self.failed = record.is_err();
        Some(record)
    }
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], RecordError> {
    if buf.len() < n {
        return Err(RecordError::Truncated);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn read_nullable<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, RecordError> {
    let length = read_varint(buf)?;
    if length == -1 {
        return Ok(None);
    }
    let length = usize::try_from(length).map_err(|_| RecordError::Malformed)?;
    take(buf, length).map(Some)
}

/// Reads a zig-zag varint of at most 5 bytes.
pub fn read_varint(buf: &mut &[u8]) -> Result<i32, RecordError> {
    let raw = read_unsigned_varint(buf, 5)?;
    let raw = u32::try_from(raw).map_err(|_| RecordError::Malformed)?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zig-zag varlong of at most 10 bytes.
pub fn read_varlong(buf: &mut &[u8]) -> Result<i64, RecordError> {
    let raw = read_unsigned_varint(buf, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned_varint(buf: &mut &[u8], bytes_max: usize) -> Result<u64, RecordError> {
    let mut value = 0u64;
    for i in 0..bytes_max {
        let (&byte, rest) = buf.split_first().ok_or(RecordError::Truncated)?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(RecordError::Malformed)
}

/// Appends a zig-zag varint.
pub fn put_varint(buf: &mut impl BufMut, value: i32) {
    put_unsigned_varint(buf, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends a zig-zag varlong.
pub fn put_varlong(buf: &mut impl BufMut, value: i64) {
    put_unsigned_varint(buf, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned_varint(buf: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// The idempotent (or transactional) producer fields of a batch header: who wrote the batch
/// and where its records fall in that producer's sequence for the partition (KIP-98). The
/// broker uses them to drop a retried batch it already has and to refuse one that skips ahead.
/// [`BatchBuilder::set_producer`] writes them as the batch is built; [`ProducerStamp::write`]
/// into a batch already built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    /// The id InitProducerId gave.
    pub producer_id: ProducerId,
    /// The epoch InitProducerId gave; a newer epoch starts the sequences over.
    pub epoch: i16,
    /// The sequence number of the first record; the others follow it, one per record.
    pub base_sequence: i32,
    /// Part of a transaction (attribute bit 4).
    pub transactional: bool,
}

impl ProducerStamp {
    /// Writes the stamp into the header of `batch`, which must hold exactly one whole batch
    /// the caller built, and recomputes the CRC ([`set_producer`]): to give a batch new
    /// sequence numbers under a new epoch. A short buffer is refused and left as it is; a
    /// damaged batch would be made to look good, hence only batches of one's own.
    pub fn write(&self, batch: &mut [u8]) -> Result<(), BatchError> {
        let size = batch_size_from_prefix(batch)?;
        if size != batch.len() {
            return Err(BatchError::Truncated { have: batch.len(), need: size });
        }
        set_producer(batch, self.producer_id, self.epoch, self.base_sequence, self.transactional);
        Ok(())
    }
}

/// Builds a v2 batch with base offset 0, create-time timestamps, no producer id unless
/// [`BatchBuilder::set_producer`] gives one, uncompressed ([`BatchBuilder::build`]) or
/// compressed ([`BatchBuilder::build_compressed`]). Records are encoded as they are pushed;
/// compression happens once, over all of them, when the batch is built. Used by the producer,
/// tools, tests and benchmarks.
pub struct BatchBuilder {
    /// Room for the header (written at build), then the records: an uncompressed batch is
    /// built in place, without copying the records.
    buf: BytesMut,
    count: i32,
    base_timestamp: Timestamp,
    max_timestamp: Timestamp,
    producer: Option<ProducerStamp>,
}

/// An uncompressed batch of `records` records with `value_bytes`-long values (at least 8),
/// timestamped `timestamp`. Record `i`'s key, and the first 8 bytes of its value, are
/// `seed * 1_000_003 + i` (big-endian), so a reader can tell which append a record came from:
/// `sluice log load` writes these and its crash test looks for them by key; tests and benches
/// use them as ready-made valid batches.
pub fn seeded_batch(records: usize, value_bytes: usize, seed: u64, timestamp: Timestamp) -> BytesMut {
    let mut builder = BatchBuilder::new(timestamp);
    let mut value = vec![0u8; value_bytes.max(8)];
    for i in 0..records {
        let tag = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        value[..8].copy_from_slice(&tag.to_be_bytes());
        builder.push(Some(&tag.to_be_bytes()), Some(&value), timestamp, &[]);
    }
    builder.build()
}

impl BatchBuilder {
    /// An empty batch whose record timestamps are deltas from `base_timestamp`.
    pub fn new(base_timestamp: Timestamp) -> Self {
        Self::with_capacity(base_timestamp, 0)
    }

    /// An empty batch with room for `bytes` of records before it reallocates.
    pub fn with_capacity(base_timestamp: Timestamp, bytes: usize) -> Self {
        let mut buf = BytesMut::with_capacity(BATCH_HEADER_BYTES + bytes);
        buf.resize(BATCH_HEADER_BYTES, 0);
        Self { buf, count: 0, base_timestamp, max_timestamp: base_timestamp, producer: None }
    }

    /// Writes `stamp` into the header when the batch is built: the idempotent producer knows
    /// its sequence numbers when it closes a batch, so the CRC is computed once, at build, and
    /// not again by [`ProducerStamp::write`].
    pub fn set_producer(&mut self, stamp: ProducerStamp) {
        self.producer = Some(stamp);
    }

    /// The encoded records.
    fn records(&self) -> &[u8] {
        &self.buf[BATCH_HEADER_BYTES..]
    }

    /// Records added so far.
    pub fn len(&self) -> usize {
        usize::try_from(self.count).unwrap_or(0)
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size the batch would have if built now.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Adds a record at offset delta `len()`.
    pub fn push(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, timestamp: Timestamp, headers: &[(&str, &[u8])]) {
        // The length prefix comes first, so size the body before writing it straight into the
        // batch (no per-record buffer).
        let delta = timestamp.0 - self.base_timestamp.0;
        let header_count = i32::try_from(headers.len()).unwrap_or(i32::MAX);
        let body_len = 1
            + varlong_len(delta)
            + varint_len(self.count)
            + nullable_len(key)
            + nullable_len(value)
            + varint_len(header_count)
            + headers.iter().map(|(k, v)| nullable_len(Some(k.as_bytes())) + nullable_len(Some(v))).sum::<usize>();
        let buf = &mut self.buf;
        buf.reserve(body_len + 5);
        put_varint(buf, i32::try_from(body_len).unwrap_or(i32::MAX));
        buf.put_u8(0);
        put_varlong(buf, delta);
        put_varint(buf, self.count);
        put_nullable(buf, key);
        put_nullable(buf, value);
        put_varint(buf, header_count);
        for (k, v) in headers {
            put_nullable(buf, Some(k.as_bytes()));
            put_nullable(buf, Some(v));
        }
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    /// The finished uncompressed batch, CRC computed.
    pub fn build(mut self) -> BytesMut {
        let mut header = [0u8; BATCH_HEADER_BYTES];
        self.put_header(&mut &mut header[..], CompressionType::None);
        self.buf[..BATCH_HEADER_BYTES].copy_from_slice(&header);
        seal(&mut self.buf);
        self.buf
    }

    /// The finished batch with its records compressed by `codec` and the codec in its
    /// attributes; the CRC covers the compressed bytes, as Kafka's does.
    /// [`CompressionType::None`] is [`BatchBuilder::build`].
    pub fn build_compressed(self, codec: CompressionType) -> Result<BytesMut, CompressionError> {
        if codec == CompressionType::None {
            return Ok(self.build());
        }
        // Room for a 2:1 ratio; the buffer grows if the records compress worse.
        let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + self.records().len() / 2 + 64);
        self.put_header(&mut out, codec);
        compress(codec, self.records(), &mut out)?;
        seal(&mut out);
        Ok(out)
    }

    /// Writes the header with a placeholder length and CRC; [`seal`] fills them in.
    fn put_header(&self, out: &mut impl BufMut, codec: CompressionType) {
        let transactional = match self.producer {
            Some(stamp) if stamp.transactional => TRANSACTIONAL_FLAG,
            _ => 0,
        };
        out.put_i64(0); // baseOffset
        out.put_i32(0); // batchLength, by seal
        out.put_i32(-1); // partitionLeaderEpoch
        out.put_u8(MAGIC_V2);
        out.put_u32(0); // crc, by seal
        out.put_i16(codec.attribute_bits() | transactional); // attributes
        out.put_i32(self.count - 1); // lastOffsetDelta
        out.put_i64(self.base_timestamp.0);
        out.put_i64(self.max_timestamp.0);
        out.put_i64(self.producer.map_or(ProducerId::NONE, |p| p.producer_id).0);
        out.put_i16(self.producer.map_or(-1, |p| p.epoch));
        out.put_i32(self.producer.map_or(-1, |p| p.base_sequence));
        out.put_i32(self.count);
    }
}

/// Sets `batchLength` and the CRC of a complete batch.
pub(crate) fn seal(out: &mut BytesMut) {
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD_BYTES).unwrap_or(i32::MAX);
    out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    let crc = super::crc32c(&out[CRC_START..]);
    out[CRC_OFFSET..CRC_START].copy_from_slice(&crc.to_be_bytes());
}

/// Bytes of a zig-zag varint.
pub(crate) fn varint_len(value: i32) -> usize {
    unsigned_varint_len(((value << 1) ^ (value >> 31)) as u32 as u64)
}

/// Bytes of a zig-zag varlong.
pub(crate) fn varlong_len(value: i64) -> usize {
    unsigned_varint_len(((value << 1) ^ (value >> 63)) as u64)
}

fn unsigned_varint_len(value: u64) -> usize {
    // 7 bits per byte, at least one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes of a nullable varint-length-prefixed field.
fn nullable_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => 1,
        Some(b) => varint_len(i32::try_from(b.len()).unwrap_or(i32::MAX)) + b.len(),
    }
}

fn put_nullable(buf: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, i32::try_from(b.len()).unwrap_or(i32::MAX));
            buf.put_slice(b);
        }
    }
}

/// Iterates the complete batches at the front of a byte run, as a fetch response or a segment
/// holds them. Stops (without error) at a trailing partial batch, as Kafka clients do; yields an
/// error for a batch whose header is incoherent.
pub struct BatchIter<'a> {
    rest: &'a [u8],
    size_max: usize,
}

impl<'a> BatchIter<'a> {
    /// Batches in `bytes`, each at most `size_max` bytes.
    pub fn new(bytes: &'a [u8], size_max: usize) -> Self {
        Self { rest: bytes, size_max }
    }

    /// What remains unread (a trailing partial batch, if any).
    pub fn remainder(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<RecordBatch<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        match RecordBatch::parse_prefix(self.rest, self.size_max) {
            Ok(batch) => {
                self.rest = &self.rest[batch.size()..];
                Some(Ok(batch))
            }
            Err(BatchError::Truncated { .. }) => None,
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn encoded_lengths_match_what_is_written(v32 in proptest::num::i32::ANY, v64 in proptest::num::i64::ANY) {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, v32);
            proptest::prop_assert_eq!(buf.len(), varint_len(v32));
            buf.clear();
            put_varlong(&mut buf, v64);
            proptest::prop_assert_eq!(buf.len(), varlong_len(v64));
        }
    }

    #[test]
    fn encoded_lengths_at_the_edges() {
        for v in [0i64, 1, -1, 63, 64, -64, -65, i64::from(i32::MAX), i64::from(i32::MIN), i64::MAX, i64::MIN] {
            let mut buf = BytesMut::new();
            put_varlong(&mut buf, v);
            assert_eq!(buf.len(), varlong_len(v), "{v}");
        }
    }
    use proptest::prelude::*;

    #[test]
    fn records_round_trip_through_the_builder() {
        let mut builder = BatchBuilder::new(Timestamp(5_000));
        builder.push(Some(b"key"), Some(b"value"), Timestamp(5_000), &[("trace", b"abc")]);
        builder.push(None, None, Timestamp(4_990), &[]);
        let bytes = builder.build();
        let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
        batch.validate().unwrap();
        let records: Vec<_> = RecordIter::new(&batch).collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key, Some(&b"key"[..]));
        assert_eq!(records[0].headers, vec![(&b"trace"[..], Some(&b"abc"[..]))]);
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value, None);
        assert_eq!(records[1].timestamp, Timestamp(4_990));
        assert_eq!(records[1].offset, Offset(1));
    }

    fn stamp(base_sequence: i32, transactional: bool) -> ProducerStamp {
        ProducerStamp { producer_id: ProducerId(4_000_000_007), epoch: 3, base_sequence, transactional }
    }

    fn producer_fields(batch: &RecordBatch<'_>) -> (ProducerId, i16, i32) {
        let header = batch.header();
        (batch.producer_id(), header.producer_epoch.get(), header.base_sequence.get())
    }

    #[test]
    fn a_stamped_batch_validates_and_reads_back() {
        let mut builder = BatchBuilder::new(Timestamp(10));
        builder.push(Some(b"k"), Some(b"v"), Timestamp(10), &[]);
        builder.push(None, Some(b"w"), Timestamp(11), &[]);
        let plain = builder.build();
        let unstamped = RecordBatch::parse_prefix(&plain, usize::MAX).unwrap();
        assert_eq!(producer_fields(&unstamped), (ProducerId::NONE, -1, -1));

        let mut bytes = plain.clone();
        stamp(i32::MAX - 1, false).write(&mut bytes).unwrap();
        let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
        batch.validate().unwrap();
        assert_eq!(producer_fields(&batch), (ProducerId(4_000_000_007), 3, i32::MAX - 1));
        assert!(!batch.is_transactional());
        assert_eq!(RecordIter::new(&batch).count(), 2, "the records are untouched");

        // A new epoch: the same batch again under new numbers, the transactional bit set and
        // then cleared, the codec bits kept.
        stamp(0, true).write(&mut bytes).unwrap();
        let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
        batch.validate().unwrap();
        assert!(batch.is_transactional());
        assert_eq!(producer_fields(&batch).2, 0);
        stamp(5, false).write(&mut bytes).unwrap();
        let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
        batch.validate().unwrap();
        assert!(!batch.is_transactional());
        assert_eq!(batch.compression().unwrap(), CompressionType::None);
    }

    #[test]
    fn a_stamp_given_at_build_equals_one_given_after() {
        for codec in [CompressionType::None, CompressionType::Lz4] {
            let make = || {
                let mut builder = BatchBuilder::new(Timestamp(1));
                builder.push(Some(b"k"), Some(&[9; 300]), Timestamp(2), &[("h", b"x")]);
                builder
            };
            let mut built = make();
            built.set_producer(stamp(17, true));
            let built = built.build_compressed(codec).unwrap();
            let mut after = make().build_compressed(codec).unwrap();
            stamp(17, true).write(&mut after).unwrap();
            assert_eq!(built, after, "{codec:?}");
            let batch = RecordBatch::parse_prefix(&built, usize::MAX).unwrap();
            batch.validate().unwrap();
            assert_eq!(batch.compression().unwrap(), codec);
            assert!(batch.is_transactional());
            assert_eq!(producer_fields(&batch), (ProducerId(4_000_000_007), 3, 17));
        }
    }

    #[test]
    fn stamping_anything_but_one_whole_batch_is_an_error() {
        let mut builder = BatchBuilder::new(Timestamp(0));
        builder.push(Some(b"k"), Some(b"v"), Timestamp(0), &[]);
        let bytes = builder.build();
        let mut short = bytes[..bytes.len() - 1].to_vec();
        assert!(matches!(stamp(0, false).write(&mut short), Err(BatchError::Truncated { .. })));
        assert_eq!(short, bytes[..bytes.len() - 1], "nothing was written");
        let mut header_only = bytes[..20].to_vec();
        assert!(matches!(stamp(0, false).write(&mut header_only), Err(BatchError::Truncated { .. })));
        // A second batch behind the first would be left out of the CRC: refused too.
        let mut two = bytes.to_vec();
        two.extend_from_slice(&bytes);
        assert!(matches!(stamp(0, false).write(&mut two), Err(BatchError::Truncated { .. })));
        assert_eq!(two[..bytes.len()], bytes[..]);
    }

    #[test]
    fn a_lying_record_length_is_refused() {
        let mut builder = BatchBuilder::new(Timestamp(0));
        builder.push(Some(b"k"), Some(b"v"), Timestamp(0), &[]);
        let mut bytes = builder.build();
        bytes[BATCH_HEADER_BYTES] = 0x7e; // record length 63, far past the end
        let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
        let first = RecordIter::new(&batch).next().unwrap();
        assert_eq!(first, Err(RecordError::Truncated));
    }

    #[test]
    fn compressed_batches_round_trip_through_the_builder() {
        let codecs = [CompressionType::Gzip, CompressionType::Snappy, CompressionType::Lz4, CompressionType::Zstd];
        for codec in codecs {
            let mut builder = BatchBuilder::new(Timestamp(7_000));
            for i in 0..500u32 {
                let value = format!("value-{i}-").repeat(20);
                builder.push(
                    Some(&i.to_be_bytes()),
                    Some(value.as_bytes()),
                    Timestamp(7_000 + i64::from(i)),
                    &[("h", b"x")],
                );
            }
            let uncompressed = builder.size();
            let bytes = builder.build_compressed(codec).unwrap();
            assert!(bytes.len() < uncompressed / 4, "{codec:?}: {} of {uncompressed} bytes", bytes.len());
            let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
            batch.validate().unwrap();
            assert_eq!(batch.compression().unwrap(), codec);
            assert_eq!(batch.size(), bytes.len());
            assert_eq!(RecordIter::new(&batch).count(), 0, "the in-place iterator cannot read compressed records");
            let records = batch.decompressed_records(uncompressed).unwrap();
            assert_eq!(records.len(), uncompressed - BATCH_HEADER_BYTES);
            let decoded: Vec<_> = RecordIter::with_records(&batch, &records).collect::<Result<_, _>>().unwrap();
            assert_eq!(decoded.len(), 500);
            for (i, record) in decoded.iter().enumerate() {
                assert_eq!(record.offset, Offset(i as i64));
                assert_eq!(record.timestamp, Timestamp(7_000 + i as i64));
                assert_eq!(record.key, Some(&(i as u32).to_be_bytes()[..]));
                assert_eq!(record.value, Some(format!("value-{i}-").repeat(20).as_bytes()));
            }
            let too_small = batch.decompressed_records(1000);
            assert!(matches!(too_small, Err(BatchError::Compression(CompressionError::TooLarge { .. }))), "{codec:?}");
        }
    }

    #[test]
    fn uncompressed_build_is_unchanged_by_build_compressed_none() {
        let make = || {
            let mut builder = BatchBuilder::new(Timestamp(1));
            builder.push(Some(b"k"), Some(b"v"), Timestamp(2), &[]);
            builder
        };
        assert_eq!(make().build(), make().build_compressed(CompressionType::None).unwrap());
        let bytes = make().build();
        let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
        assert!(matches!(batch.decompressed_records(0).unwrap(), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn a_corrupt_compressed_batch_is_an_error() {
        let mut builder = BatchBuilder::new(Timestamp(0));
        builder.push(Some(b"k"), Some(&[7; 1000]), Timestamp(0), &[]);
        let mut bytes = builder.build_compressed(CompressionType::Lz4).unwrap().to_vec();
        bytes.truncate(bytes.len() - 6);
        let length = i32::try_from(bytes.len() - 12).unwrap();
        bytes[8..12].copy_from_slice(&length.to_be_bytes());
        let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
        let result = batch.decompressed_records(1 << 20);
        assert!(matches!(result, Err(BatchError::Compression(CompressionError::Corrupt { .. }))), "{result:?}");
    }

    proptest! {
        #[test]
        fn varints_round_trip(v in any::<i32>(), l in any::<i64>()) {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, v);
            put_varlong(&mut buf, l);
            let mut slice = &buf[..];
            prop_assert_eq!(read_varint(&mut slice).unwrap(), v);
            prop_assert_eq!(read_varlong(&mut slice).unwrap(), l);
            prop_assert!(slice.is_empty());
        }

        #[test]
        fn record_parsing_never_panics(noise in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut builder = BatchBuilder::new(Timestamp(0));
            builder.push(Some(b"k"), Some(b"v"), Timestamp(0), &[]);
            let mut bytes = builder.build().to_vec();
            bytes.truncate(BATCH_HEADER_BYTES);
            bytes.extend_from_slice(&noise);
            let length = i32::try_from(bytes.len() - 12).unwrap();
            bytes[8..12].copy_from_slice(&length.to_be_bytes());
            bytes[57..61].copy_from_slice(&5i32.to_be_bytes());
            let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
            for record in RecordIter::new(&batch) {
                let _ = record;
            }
        }
    }
}
