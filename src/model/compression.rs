//! The four Kafka compression codecs, applied to the records section of a v2 batch (everything
//! after the 61-byte header; the header itself is never compressed).
//!
//! What real clients write, and so what [`decompress`] accepts and [`compress`] produces:
//!
//! - **gzip**: an RFC 1952 gzip stream (Java's `GZIPOutputStream`; librdkafka's zlib with gzip
//!   headers). Concatenated members are read as one stream, as Java's `GZIPInputStream` does.
//! - **snappy**: two framings exist. The Java client writes snappy-java's `SnappyOutputStream`
//!   format ("xerial"): the magic `\x82SNAPPY\0`, two big-endian `i32`s (version 1, compatible
//!   version 1), then chunks of `[big-endian u32 length][raw snappy block]`, one per 32 KiB of
//!   input (Kafka's default `SnappyOutputStream` block size). librdkafka writes one raw snappy
//!   block with no framing at all. Both readers accept both: librdkafka checks for the magic
//!   and otherwise decodes raw; snappy-java's `SnappyInputStream` falls back to raw when the
//!   magic is absent. So we read both and write xerial, which both readers accept.
//! - **lz4**: the standard LZ4 *frame* format (magic `04 22 4D 18`). Kafka's Java reader
//!   (`Lz4BlockInputStream`) decompresses every block on its own into one block-sized buffer,
//!   so blocks must be independent; librdkafka writes `LZ4F_blockIndependent` "as required by
//!   Kafka". We write independent 64 KiB blocks without block or content checksums and without
//!   a content size, the same frame librdkafka and the Java client produce. (Magic v0/v1
//!   messages had a broken header checksum; v2 batches never do.)
//! - **zstd**: a standard zstd frame (zstd-jni in Java, libzstd in librdkafka).
//!
//! Decompression reads bytes from the network or the disk that anybody may have written:
//! every decoder is bounded by a `limit` on its output, no buffer is sized from a length the
//! input claims before that length is checked against the limit, and malformed input is an
//! error, never a panic.

use std::io::{self, Read, Write};

use bytes::{BufMut, BytesMut};

/// Compression codec, from attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// Records stored as is.
    None,
    /// gzip.
    Gzip,
    /// Snappy (Xerial framing).
    Snappy,
    /// LZ4 frame.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl CompressionType {
    /// The codec's value in attribute bits 0-2.
    pub fn attribute_bits(self) -> i16 {
        match self {
            CompressionType::None => 0,
            CompressionType::Gzip => 1,
            CompressionType::Snappy => 2,
            CompressionType::Lz4 => 3,
            CompressionType::Zstd => 4,
        }
    }
}

/// snappy-java's stream magic, the start of every xerial-framed snappy payload.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, version and compatible version.
const XERIAL_HEADER_BYTES: usize = XERIAL_MAGIC.len() + 8;
/// The version pair snappy-java writes (`SnappyCodec.DEFAULT_VERSION`, `MINIMUM_COMPATIBLE_VERSION`).
const XERIAL_VERSION: i32 = 1;
/// Uncompressed bytes per xerial chunk: Kafka's default `SnappyOutputStream` block size
/// (`CompressionType.SNAPPY` default block, KIP-780).
const XERIAL_CHUNK_BYTES: usize = 32 * 1024;
/// gzip level: zlib's default, which is what Kafka's Java client (`Deflater.DEFAULT_COMPRESSION`)
/// and librdkafka (`compression.level=-1`) use.
const GZIP_LEVEL: u32 = 6;
/// zstd level: libzstd's default, as in Kafka (`compression.zstd.level` default 3).
const ZSTD_LEVEL: i32 = 3;
/// zstd decoders allocate their window from the frame header; Kafka producers compress whole
/// batches at level 3 (windows of at most a few MiB), and libzstd itself refuses more than
/// 2^27 without an explicit opt-in. A window never needs to exceed the output, so the cap is
/// the smaller of this and the output limit.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// libzstd's smallest window (`ZSTD_WINDOWLOG_ABSOLUTEMIN`).
const ZSTD_WINDOW_LOG_MIN: u32 = 10;
/// Output reserved up front per compressed input byte when decompressing (grown as needed,
/// never beyond the limit): a guess at a typical ratio that spares most reallocations.
const EXPECTED_RATIO: usize = 4;

/// Why a payload cannot be compressed or decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// The compressed bytes are malformed or truncated; `detail` is the decoder's own words,
    /// for logs only.
    #[error("corrupt {codec:?} data: {detail}")]
    Corrupt {
        /// The codec whose data it is.
        codec: CompressionType,
        /// What the decoder reported.
        detail: String,
    },
    /// The output would exceed the caller's limit (a decompression bomb, or a batch larger than
    /// this reader accepts).
    #[error("{codec:?} data decompresses to more than {limit} bytes")]
    TooLarge {
        /// The codec whose data it is.
        codec: CompressionType,
        /// The limit in force.
        limit: usize,
    },
    /// The encoder failed (it writes to memory, so only a bug or an impossible size gets here).
    #[error("{codec:?} compression failed: {detail}")]
    Compress {
        /// The codec.
        codec: CompressionType,
        /// What the encoder reported.
        detail: String,
    },
}

/// Appends `input` compressed with `codec` to `out`. [`CompressionType::None`] appends it as is.
pub fn compress(codec: CompressionType, input: &[u8], out: &mut BytesMut) -> Result<(), CompressionError> {
    let failed = |e: io::Error| CompressionError::Compress { codec, detail: e.to_string() };
    match codec {
        CompressionType::None => out.put_slice(input),
        CompressionType::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out.writer(), flate2::Compression::new(GZIP_LEVEL));
            encoder.write_all(input).map_err(failed)?;
            encoder.finish().map_err(failed)?;
        }
        CompressionType::Snappy => snappy_xerial_compress(input, out)?,
        CompressionType::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, out.writer());
            encoder.write_all(input).map_err(failed)?;
            encoder.finish().map_err(|e| CompressionError::Compress { codec, detail: e.to_string() })?;
        }
        CompressionType::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(out.writer(), ZSTD_LEVEL).map_err(failed)?;
            // The content size in the frame header lets readers (librdkafka) size their output
            // exactly.
            encoder.set_pledged_src_size(Some(input.len() as u64)).map_err(failed)?;
            encoder.include_contentsize(true).map_err(failed)?;
            encoder.write_all(input).map_err(failed)?;
            encoder.finish().map_err(failed)?;
        }
    }
    Ok(())
}

/// Decompresses `input` (the records section of a batch compressed with `codec`); refuses to
/// produce more than `limit` bytes. [`CompressionType::None`] copies `input`, under the same
/// limit.
pub fn decompress(codec: CompressionType, input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    match codec {
        CompressionType::None => {
            if input.len() > limit {
                return Err(CompressionError::TooLarge { codec, limit });
            }
            Ok(input.to_vec())
        }
        CompressionType::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(input), input.len(), limit),
        CompressionType::Snappy => snappy_decompress(input, limit),
        CompressionType::Lz4 => {
            let frame_len = lz4_frame_len(input)?;
            if frame_len != input.len() {
                let detail = format!("{} bytes after the frame", input.len() - frame_len);
                return Err(CompressionError::Corrupt { codec, detail });
            }
            read_bounded(codec, lz4_flex::frame::FrameDecoder::new(input), input.len(), limit)
        }
        CompressionType::Zstd => {
            let corrupt = |e: io::Error| CompressionError::Corrupt { codec, detail: e.to_string() };
            // A frame that states its size (ours and librdkafka's do) is refused before any
            // decoding; for the others the bounded read below decides.
            if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(input)
                && usize::try_from(size).map_or(true, |size| size > limit)
            {
                return Err(CompressionError::TooLarge { codec, limit });
            }
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(corrupt)?;
            decoder.window_log_max(zstd_window_log_max(limit)).map_err(corrupt)?;
            read_bounded(codec, decoder, input.len(), limit)
        }
    }
}

/// The largest zstd window worth accepting for an output of at most `limit` bytes.
fn zstd_window_log_max(limit: usize) -> u32 {
    let bits = usize::BITS - limit.saturating_sub(1).leading_zeros();
    bits.clamp(ZSTD_WINDOW_LOG_MIN, ZSTD_WINDOW_LOG_MAX)
}

/// The length of the LZ4 frame at the start of `input`, walked through its block headers
/// without decompressing anything. lz4_flex takes the end of its input for the end mark, so a
/// frame cut at a block boundary would decode as a shorter, complete one; Kafka's readers (Java's
/// `Lz4BlockInputStream`, librdkafka's `LZ4F_decompress` loop) refuse it, and so does this.
fn lz4_frame_len(input: &[u8]) -> Result<usize, CompressionError> {
    let truncated = || CompressionError::Corrupt { codec: CompressionType::Lz4, detail: "truncated frame".into() };
    // Frame descriptor: magic (4), FLG, BD, content size (8, optional), dictionary id (4,
    // optional), header checksum. The decoder checks the magic, version and checksum.
    let flg = *input.get(4).ok_or_else(truncated)?;
    let has = |bit: u8| flg & bit != 0;
    let mut at = 4 + 2 + if has(0x08) { 8 } else { 0 } + if has(0x01) { 4 } else { 0 } + 1;
    let block_checksum_bytes = if has(0x10) { 4 } else { 0 };
    loop {
        let header = input.get(at..at + 4).and_then(|h| h.first_chunk::<4>()).ok_or_else(truncated)?;
        at += 4;
        // The high bit marks a stored (uncompressed) block; the rest is the size.
        let size = u32::from_le_bytes(*header) & 0x7fff_ffff;
        if size == 0 {
            break; // the end mark
        }
        let size = usize::try_from(size).map_err(|_| truncated())?;
        at = at.checked_add(size + block_checksum_bytes).filter(|&end| end <= input.len()).ok_or_else(truncated)?;
    }
    if has(0x04) {
        at += 4; // content checksum
    }
    if at > input.len() {
        return Err(truncated());
    }
    Ok(at)
}

/// Reads a streaming decoder to its end, failing once it yields more than `limit` bytes.
fn read_bounded(
    codec: CompressionType,
    decoder: impl Read,
    input_len: usize,
    limit: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::with_capacity(input_len.saturating_mul(EXPECTED_RATIO).min(limit));
    // One byte past the limit tells "exactly the limit" from "more than the limit".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    decoder.take(cap).read_to_end(&mut out).map_err(|e| CompressionError::Corrupt { codec, detail: e.to_string() })?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge { codec, limit });
    }
    Ok(out)
}

fn snappy_corrupt(detail: impl ToString) -> CompressionError {
    CompressionError::Corrupt { codec: CompressionType::Snappy, detail: detail.to_string() }
}

/// Writes the xerial framing (see the module docs) around raw snappy blocks of
/// [`XERIAL_CHUNK_BYTES`] input each.
fn snappy_xerial_compress(input: &[u8], out: &mut BytesMut) -> Result<(), CompressionError> {
    out.reserve(XERIAL_HEADER_BYTES + input.len() / 2);
    out.put_slice(&XERIAL_MAGIC);
    out.put_i32(XERIAL_VERSION);
    out.put_i32(XERIAL_VERSION);
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_CHUNK_BYTES) {
        let start = out.len();
        out.resize(start + 4 + snap::raw::max_compress_len(chunk.len()), 0);
        let written = encoder
            .compress(chunk, &mut out[start + 4..])
            .map_err(|e| CompressionError::Compress { codec: CompressionType::Snappy, detail: e.to_string() })?;
        out.truncate(start + 4 + written);
        // A chunk's compressed size is bounded by max_compress_len(32 KiB), far below u32::MAX.
        let length = u32::try_from(written).unwrap_or(u32::MAX);
        out[start..start + 4].copy_from_slice(&length.to_be_bytes());
    }
    Ok(())
}

/// Decodes xerial-framed or raw snappy, whichever `input` is.
fn snappy_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let too_large = CompressionError::TooLarge { codec: CompressionType::Snappy, limit };
    let mut decoder = snap::raw::Decoder::new();
    let Some(chunks) = input.strip_prefix(&XERIAL_MAGIC[..]) else {
        // Raw: one block whose header states its decompressed length; check it before
        // allocating.
        let length = snap::raw::decompress_len(input).map_err(snappy_corrupt)?;
        if length > limit {
            return Err(too_large);
        }
        let mut out = vec![0; length];
        let written = decoder.decompress(input, &mut out).map_err(snappy_corrupt)?;
        if written != length {
            return Err(snappy_corrupt(format!("block decoded to {written} bytes, header said {length}")));
        }
        return Ok(out);
    };
    // The version pair is informational: snappy-java has only ever written version 1.
    let chunks =
        chunks.get(XERIAL_HEADER_BYTES - XERIAL_MAGIC.len()..).ok_or_else(|| snappy_corrupt("short header"))?;
    // First pass: the chunk boundaries and the total output, checked against the limit, so the
    // output is allocated once and never from an unchecked length.
    let mut total = 0usize;
    let mut rest = chunks;
    while !rest.is_empty() {
        let (chunk, next) = xerial_chunk(rest)?;
        let length = snap::raw::decompress_len(chunk).map_err(snappy_corrupt)?;
        total = total.checked_add(length).filter(|&t| t <= limit).ok_or(too_large.clone())?;
        rest = next;
    }
    let mut out = vec![0; total];
    let mut at = 0;
    let mut rest = chunks;
    while !rest.is_empty() {
        let (chunk, next) = xerial_chunk(rest)?;
        let length = snap::raw::decompress_len(chunk).map_err(snappy_corrupt)?;
        let written = decoder.decompress(chunk, &mut out[at..at + length]).map_err(snappy_corrupt)?;
        if written != length {
            return Err(snappy_corrupt(format!("chunk decoded to {written} bytes, header said {length}")));
        }
        at += length;
        rest = next;
    }
    Ok(out)
}

/// Splits one `[u32 length][block]` chunk off the front of `rest`.
fn xerial_chunk(rest: &[u8]) -> Result<(&[u8], &[u8]), CompressionError> {
    let (length, rest) = rest.split_first_chunk::<4>().ok_or_else(|| snappy_corrupt("truncated chunk length"))?;
    let length = usize::try_from(u32::from_be_bytes(*length)).map_err(snappy_corrupt)?;
    if length > rest.len() {
        return Err(snappy_corrupt(format!("chunk of {length} bytes, {} left", rest.len())));
    }
    Ok(rest.split_at(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [CompressionType; 4] =
        [CompressionType::Gzip, CompressionType::Snappy, CompressionType::Lz4, CompressionType::Zstd];

    /// Compressible, longer than one xerial chunk and one LZ4 block.
    fn sample() -> Vec<u8> {
        (0..200_000u32).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect()
    }

    fn compressed(codec: CompressionType, input: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        compress(codec, input, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn every_codec_round_trips() {
        for input in [sample(), b"x".to_vec(), Vec::new()] {
            for codec in CODECS {
                let packed = compressed(codec, &input);
                if input.len() > 1000 {
                    assert!(packed.len() < input.len() / 2, "{codec:?} did not compress: {}", packed.len());
                }
                let unpacked = decompress(codec, &packed, input.len()).unwrap();
                assert!(unpacked == input, "{codec:?} round trip of {} bytes", input.len());
            }
        }
    }

    #[test]
    fn compress_appends_after_what_is_there() {
        for codec in CODECS {
            let mut out = BytesMut::from(&b"header"[..]);
            compress(codec, b"payload payload payload", &mut out).unwrap();
            assert_eq!(&out[..6], b"header");
            assert_eq!(decompress(codec, &out[6..], 100).unwrap(), b"payload payload payload");
        }
    }

    #[test]
    fn the_framing_is_what_kafka_clients_expect() {
        let snappy = compressed(CompressionType::Snappy, &sample());
        assert_eq!(&snappy[..8], &XERIAL_MAGIC);
        assert_eq!(&snappy[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        let lz4 = compressed(CompressionType::Lz4, &sample());
        assert_eq!(&lz4[..4], &[0x04, 0x22, 0x4d, 0x18]);
        // FLG: version 01, block independence, no block checksum, no content size, no content
        // checksum, no dictionary. BD: 64 KiB blocks.
        assert_eq!(lz4[4], 0b0110_0000);
        assert_eq!(lz4[5], 4 << 4);
        let gzip = compressed(CompressionType::Gzip, b"x");
        assert_eq!(&gzip[..2], &[0x1f, 0x8b]);
        let zstd = compressed(CompressionType::Zstd, b"x");
        assert_eq!(&zstd[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    }

    #[test]
    fn snappy_reads_raw_and_xerial() {
        let input = sample();
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(decompress(CompressionType::Snappy, &raw, input.len()).unwrap(), input);
        let xerial = compressed(CompressionType::Snappy, &input);
        assert!(xerial.len() > raw.len(), "several chunks plus a header");
        assert_eq!(decompress(CompressionType::Snappy, &xerial, input.len()).unwrap(), input);
        // A header with no chunks is an empty payload (snappy-java reads it so too).
        assert_eq!(decompress(CompressionType::Snappy, &xerial[..16], 0).unwrap(), b"");
    }

    #[test]
    fn corrupt_and_truncated_input_is_an_error() {
        let input = sample();
        for codec in CODECS {
            let packed = compressed(codec, &input);
            // packed.len() - 4 cuts an LZ4 frame exactly before its end mark.
            for cut in [1, 5, 17, packed.len() / 2, packed.len() - 4, packed.len() - 1] {
                let result = decompress(codec, &packed[..cut], input.len());
                assert!(
                    matches!(result, Err(CompressionError::Corrupt { .. })),
                    "{codec:?} cut at {cut}: {:?}",
                    result.map(|v| v.len())
                );
            }
            let mut trailing = packed.clone();
            trailing.extend_from_slice(b"xyz");
            assert!(decompress(codec, &trailing, input.len()).is_err(), "{codec:?} accepted trailing bytes");
            let garbage: Vec<u8> = (0..500u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            assert!(decompress(codec, &garbage, input.len()).is_err(), "{codec:?} accepted garbage");
            // Flipped bits in the middle: an error or different bytes, never a panic.
            let mut flipped = packed.clone();
            let middle = flipped.len() / 2;
            flipped[middle] ^= 0xff;
            if let Ok(out) = decompress(codec, &flipped, input.len()) {
                assert_ne!(out, input, "{codec:?} missed a flipped byte");
            }
        }
    }

    #[test]
    fn output_beyond_the_limit_is_refused() {
        // 8 MiB of zeros compress to a few KiB: a small bomb.
        let zeros = vec![0u8; 8 * 1024 * 1024];
        for codec in CODECS {
            let packed = compressed(codec, &zeros);
            assert!(packed.len() < 512 * 1024, "{codec:?}: {}", packed.len());
            let limit = 1024 * 1024;
            assert_eq!(
                decompress(codec, &packed, limit),
                Err(CompressionError::TooLarge { codec, limit }),
                "{codec:?}"
            );
            assert_eq!(decompress(codec, &packed, zeros.len()).map(|v| v.len()), Ok(zeros.len()), "{codec:?}");
        }
        // A raw snappy header that claims 2 GiB is refused before anything is allocated.
        let mut lying = Vec::new();
        let mut claim = 1u64 << 31;
        while claim >= 0x80 {
            lying.push((claim as u8) | 0x80);
            claim >>= 7;
        }
        lying.push(claim as u8);
        lying.extend_from_slice(&[0; 8]);
        assert!(matches!(decompress(CompressionType::Snappy, &lying, 1024), Err(CompressionError::TooLarge { .. })));
        assert!(matches!(decompress(CompressionType::None, &[0; 10], 9), Err(CompressionError::TooLarge { .. })));
    }

    proptest::proptest! {
        /// Noise, alone and behind each codec's magic so the decoders get past their first check.
        #[test]
        fn decompression_never_panics(noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let lz4: &[u8] = &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40];
            let magics: [&[u8]; 5] = [b"", &XERIAL_MAGIC, lz4, &[0x28, 0xb5, 0x2f, 0xfd], &[0x1f, 0x8b, 8, 0]];
            for magic in magics {
                let input = [magic, &noise].concat();
                for codec in CODECS {
                    if let Ok(out) = decompress(codec, &input, 4096) {
                        proptest::prop_assert!(out.len() <= 4096);
                    }
                }
            }
        }
    }

    #[test]
    fn the_zstd_window_cap_follows_the_limit() {
        assert_eq!(zstd_window_log_max(0), ZSTD_WINDOW_LOG_MIN);
        assert_eq!(zstd_window_log_max(1 << 20), 20);
        assert_eq!(zstd_window_log_max((1 << 20) + 1), 21);
        assert_eq!(zstd_window_log_max(usize::MAX), ZSTD_WINDOW_LOG_MAX);
    }
}
