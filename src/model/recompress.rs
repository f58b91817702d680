//! Broker-side recompression: a topic whose `compression.type` names a codec (not `producer`)
//! stores every produced batch with that codec, as Kafka's LogValidator does. Only the records
//! area and the codec bits change: offsets, timestamps, producer fields and the record bytes
//! themselves stay, so a consumer reads the very records the producer sent.

use bytes::{BufMut, BytesMut};

use super::batch::{BatchError, CRC_START, RecordBatch};
use super::compression::{CompressionType, compress};
use super::records::{BatchIter, seal};
use crate::limits::{BATCH_HEADER_BYTES, DECOMPRESSED_BATCH_BYTES_MAX};

/// The codec bits of a batch's attributes.
const CODEC_BITS: i16 = 0x07;

/// `batch` with its records compressed with `codec`, or `None` if it already is (control
/// batches, written by the broker, are left alone).
pub fn recompress(batch: &RecordBatch<'_>, codec: CompressionType) -> Result<Option<BytesMut>, BatchError> {
    if batch.is_control() || batch.compression()? == codec {
        return Ok(None);
    }
    let records = batch.decompressed_records(DECOMPRESSED_BATCH_BYTES_MAX)?;
    let header = batch.as_bytes().get(..BATCH_HEADER_BYTES).ok_or(BatchError::InvalidLength(0))?;
    let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + records.len());
    out.put_slice(header);
    // The attributes are the first field the CRC covers.
    let attributes = (batch.header().attributes.get() & !CODEC_BITS) | codec.attribute_bits();
    out[CRC_START..CRC_START + 2].copy_from_slice(&attributes.to_be_bytes());
    compress(codec, &records, &mut out)?;
    seal(&mut out);
    Ok(Some(out))
}

/// Every batch of `bytes` (validated batches, each at most `size_max`) with its records in
/// `codec`, or `None` if none needed a change.
pub fn recompress_all(bytes: &[u8], codec: CompressionType, size_max: usize) -> Result<Option<BytesMut>, BatchError> {
    let mut out = BytesMut::with_capacity(bytes.len());
    let mut changed = false;
    for batch in BatchIter::new(bytes, size_max) {
        let batch = batch?;
        match recompress(&batch, codec)? {
            Some(rewritten) => {
                changed = true;
                out.put_slice(&rewritten);
            }
            None => out.put_slice(batch.as_bytes()),
        }
    }
    Ok(changed.then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RecordIter, Timestamp, ValidBatches};

    /// A record's key, value and timestamp.
    type Kvt = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

    fn records_of(bytes: &[u8]) -> Vec<Kvt> {
        let mut out = Vec::new();
        for batch in BatchIter::new(bytes, usize::MAX) {
            let batch = batch.unwrap();
            let area = batch.decompressed_records(usize::MAX).unwrap();
            for record in RecordIter::with_records(&batch, &area) {
                let record = record.unwrap();
                out.push((record.key.map(<[u8]>::to_vec), record.value.map(<[u8]>::to_vec), record.timestamp.0));
            }
        }
        out
    }

    #[test]
    fn every_codec_round_trips_and_keeps_the_records() {
        let mut two = crate::testing::batch_of(5, 40, 1, Timestamp(1_700_000_000_000));
        two.extend_from_slice(&crate::testing::batch_of(3, 40, 2, Timestamp(1_700_000_000_100)));
        let original = records_of(&two);
        let mut current = two.clone();
        for codec in [CompressionType::Zstd, CompressionType::Gzip, CompressionType::Lz4, CompressionType::Snappy] {
            let rewritten = recompress_all(&current, codec, usize::MAX).unwrap().unwrap();
            // The CRC and lengths are right: the broker's own validation accepts it.
            let valid = ValidBatches::new(rewritten.clone(), usize::MAX).unwrap();
            assert_eq!(valid.batches().len(), 2);
            for batch in BatchIter::new(&rewritten, usize::MAX) {
                assert_eq!(batch.unwrap().compression().unwrap(), codec);
            }
            assert_eq!(records_of(&rewritten), original, "{codec:?}");
            assert!(recompress_all(&rewritten, codec, usize::MAX).unwrap().is_none(), "already {codec:?}");
            current = rewritten;
        }
        let back = recompress_all(&current, CompressionType::None, usize::MAX).unwrap().unwrap();
        assert_eq!(back, two, "uncompressed again: the producer's bytes");
    }
}
