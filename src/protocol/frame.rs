//! Framing: every request and response is an `int32` length followed by that many bytes (the
//! header, then the body).
//!
//! The length comes from the peer, so it is checked against the caller's limit
//! (`--max-request-bytes`) before a single byte is allocated for the frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::codec::{DecodeError, EncodeError, Encoder};
use super::header::{RequestHeader, ResponseHeader, response_header_version};
use super::messages::Message;
use crate::limits::REQUEST_BYTES_MIN;
use crate::model::Chunk;

/// Bytes of the length prefix of a frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// The lengths a reader accepts: a length prefix outside them is refused before anything is
/// allocated for the frame. Every reader checks a length with [`frame_length`]: the client and
/// the fuzz target through [`split_frame`], the server's reader directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// The smallest frame that can be well formed.
    pub min_bytes: u32,
    /// The largest frame accepted (`--max-request-bytes` on the server).
    pub max_bytes: u32,
}

impl FrameLimits {
    /// Request frames up to `max_bytes`: at least a request header's fixed part.
    pub const fn requests(max_bytes: u32) -> FrameLimits {
        FrameLimits { min_bytes: REQUEST_BYTES_MIN, max_bytes }
    }

    /// Response frames up to `max_bytes`: at least a correlation id.
    pub const fn responses(max_bytes: u32) -> FrameLimits {
        FrameLimits { min_bytes: RESPONSE_BYTES_MIN, max_bytes }
    }
}

/// Smallest response frame: the correlation id.
const RESPONSE_BYTES_MIN: u32 = 4;

/// Why a frame length was refused. The connection cannot continue after either: the stream is
/// no longer aligned on frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is negative.
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    /// The frame is too short to hold a header.
    #[error("frame of {len} bytes is shorter than the {min_bytes} bytes of a header")]
    TooSmall {
        /// The length the prefix claims.
        len: u32,
        /// The least a frame must have.
        min_bytes: u32,
    },
    /// The frame is larger than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max_bytes} bytes")]
    TooLarge {
        /// The length the prefix claims.
        len: u32,
        /// The limit.
        max_bytes: u32,
    },
}

/// The length of the frame that follows a length prefix, checked against `limits`.
pub fn frame_length(prefix: [u8; LENGTH_PREFIX_BYTES], limits: FrameLimits) -> Result<u32, FrameError> {
    let len = i32::from_be_bytes(prefix);
    let Ok(len) = u32::try_from(len) else { return Err(FrameError::NegativeLength(len)) };
    if len < limits.min_bytes {
        return Err(FrameError::TooSmall { len, min_bytes: limits.min_bytes });
    }
    if len > limits.max_bytes {
        return Err(FrameError::TooLarge { len, max_bytes: limits.max_bytes });
    }
    Ok(len)
}

/// Splits the first complete frame (without its length prefix) off the front of `buf`, or
/// returns `None` if `buf` does not hold one yet. In that case, once the length is known and
/// accepted, `buf` has reserved room for the rest of the frame.
pub fn split_frame(buf: &mut BytesMut, limits: FrameLimits) -> Result<Option<BytesMut>, FrameError> {
    let Some(prefix) = buf.get(..LENGTH_PREFIX_BYTES) else { return Ok(None) };
    let mut raw = [0u8; LENGTH_PREFIX_BYTES];
    raw.copy_from_slice(prefix);
    let len = frame_length(raw, limits)? as usize;
    let total = LENGTH_PREFIX_BYTES + len;
    if buf.len() < total {
        buf.reserve((total - buf.len()).min(FRAME_GROWTH_STEP_BYTES));
        return Ok(None);
    }
    buf.advance(LENGTH_PREFIX_BYTES);
    Ok(Some(buf.split_to(len)))
}

/// The most a frame's buffer grows by ahead of the bytes that fill it in [`split_frame`]'s
/// callers (the client, the inter-broker pool): a declared length is not a reservation, so a
/// peer holds memory in proportion to what it sent (plus this), not to what it announced. The
/// broker reads requests with `server::reader`, which sizes each frame's buffer by the same rule
/// and charges it to the shard's request memory.
pub const FRAME_GROWTH_STEP_BYTES: usize = 1024 * 1024;

/// Finishes a frame whose encoder started with a placeholder length prefix.
fn finish(mut enc: Encoder) -> Result<Vec<Chunk>, EncodeError> {
    let len = enc.len() - LENGTH_PREFIX_BYTES;
    let Ok(len) = i32::try_from(len) else { return Err(EncodeError::TooLong { len }) };
    enc.patch_i32_at_start(len);
    Ok(enc.into_pieces())
}

/// Frame pieces at least this large (record sets) are written from their own memory; smaller
/// ones are copied together first, so a request is a few large writes and no tiny ones.
pub const WRITE_IN_PLACE_BYTES: usize = 16 * 1024;

/// A request frame's pieces ([`encode_request_frame`]) as buffers to write in order: large pieces
/// (record sets) as they are, runs of small ones copied together. Both the client and the
/// broker's inter-broker connections write requests this way. A request never holds file
/// ranges: one is refused with [`EncodeError::FileRecords`].
pub fn request_buffers(pieces: Vec<Chunk>) -> Result<Vec<Bytes>, EncodeError> {
    let mut out = Vec::new();
    let mut small = BytesMut::new();
    for piece in pieces {
        match piece {
            Chunk::Bytes(bytes) if bytes.len() >= WRITE_IN_PLACE_BYTES => {
                if !small.is_empty() {
                    out.push(small.split().freeze());
                }
                out.push(bytes);
            }
            Chunk::Bytes(bytes) => small.put_slice(&bytes),
            Chunk::File(_) => return Err(EncodeError::FileRecords),
        }
    }
    if !small.is_empty() {
        out.push(small.freeze());
    }
    Ok(out)
}

/// Encodes a request frame: length, header, body. The header's API key must be the body's.
pub fn encode_request_frame<M: Message>(header: &RequestHeader, body: &M) -> Result<Vec<Chunk>, EncodeError> {
    if header.api_key != M::API_KEY {
        return Err(EncodeError::UnsupportedVersion { api_key: header.api_key.code(), version: header.api_version });
    }
    let mut enc = Encoder::pieces();
    enc.put_i32(0);
    header.encode(&mut enc)?;
    body.encode_into(&mut enc, header.api_version)?;
    finish(enc)
}

/// Encodes a response frame: length, header (in the version `version` calls for), body.
pub fn encode_response_frame<M: Message>(
    header: ResponseHeader,
    version: i16,
    body: &M,
) -> Result<Vec<Chunk>, EncodeError> {
    let Some(header_version) = response_header_version(M::API_KEY, version) else {
        return Err(EncodeError::UnsupportedVersion { api_key: M::API_KEY.code(), version });
    };
    let mut enc = Encoder::pieces();
    enc.put_i32(0);
    header.encode(&mut enc, header_version);
    body.encode_into(&mut enc, version)?;
    finish(enc)
}

/// Decodes a response frame (without its length prefix) to a request of `version`: header, then
/// body.
pub fn decode_response_frame<M: Message>(
    frame: &mut BytesMut,
    version: i16,
) -> Result<(ResponseHeader, M), DecodeError> {
    let Some(header_version) = response_header_version(M::API_KEY, version) else {
        return Err(DecodeError::UnsupportedVersion { api_key: M::API_KEY.code(), version });
    };
    let header = ResponseHeader::decode(frame, header_version)?;
    Ok((header, M::decode(frame, version)?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::FileRange;
    use crate::protocol::header::ApiKey;
    use crate::protocol::messages::{
        ApiVersionsResponse, FetchResponse, FetchResponsePartition, FetchResponseTopic, MetadataRequest,
    };
    use crate::protocol::{RecordSet, decode_request_body};

    const MAX: u32 = 100 * 1024 * 1024;

    #[test]
    fn frame_lengths_are_checked_before_anything_else() {
        assert_eq!(frame_length([0, 0, 0, 10], FrameLimits::requests(MAX)), Ok(10));
        assert_eq!(
            frame_length([0, 0, 0, 9], FrameLimits::requests(MAX)),
            Err(FrameError::TooSmall { len: 9, min_bytes: REQUEST_BYTES_MIN })
        );
        assert_eq!(frame_length([0, 0, 0, 4], FrameLimits::responses(MAX)), Ok(4));
        assert_eq!(
            frame_length([0xff, 0xff, 0xff, 0xff], FrameLimits::requests(MAX)),
            Err(FrameError::NegativeLength(-1))
        );
        assert_eq!(
            frame_length([0x7f, 0xff, 0xff, 0xff], FrameLimits::requests(MAX)),
            Err(FrameError::TooLarge { len: i32::MAX as u32, max_bytes: MAX })
        );
    }

    #[test]
    fn split_frame_waits_for_complete_frames() {
        let mut buf = BytesMut::new();
        assert_eq!(split_frame(&mut buf, FrameLimits { min_bytes: 0, max_bytes: MAX }), Ok(None));
        buf.put_slice(&[0, 0, 0, 3, b'a']);
        assert_eq!(split_frame(&mut buf, FrameLimits { min_bytes: 0, max_bytes: MAX }), Ok(None));
        buf.put_slice(b"bc");
        buf.put_slice(&[0, 0]);
        assert_eq!(split_frame(&mut buf, FrameLimits { min_bytes: 0, max_bytes: MAX }).unwrap().unwrap(), &b"abc"[..]);
        assert_eq!(&buf[..], &[0, 0]);
        let mut huge = BytesMut::from(&[0x40, 0, 0, 0][..]);
        assert!(split_frame(&mut huge, FrameLimits::requests(MAX)).is_err());
        // Nothing was reserved for the refused frame.
        assert!(huge.capacity() < 1024);
    }

    fn concat(pieces: &[Chunk]) -> BytesMut {
        let mut out = BytesMut::new();
        for piece in pieces {
            match piece {
                Chunk::Bytes(bytes) => out.put_slice(bytes),
                Chunk::File(_) => panic!("file chunk"),
            }
        }
        out
    }

    #[test]
    fn request_frames_decode_back() {
        let header = RequestHeader {
            api_key: ApiKey::Metadata,
            api_version: 12,
            correlation_id: 77,
            client_id: Some("sluice".into()),
        };
        let body = MetadataRequest { topics: None, ..MetadataRequest::default() };
        let mut frame = concat(&encode_request_frame(&header, &body).unwrap());
        let mut frame = split_frame(&mut frame, FrameLimits::requests(MAX)).unwrap().unwrap();
        let decoded = RequestHeader::decode(&mut frame).unwrap();
        assert_eq!(decoded, header);
        let decoded = decode_request_body(decoded.api_key, decoded.api_version, &mut frame).unwrap();
        assert_eq!(decoded, crate::protocol::RequestBody::Metadata(body));
        assert!(frame.is_empty());
    }

    #[test]
    fn api_versions_responses_use_header_v0_even_when_flexible() {
        let body = ApiVersionsResponse::default();
        let frame = concat(&encode_response_frame(ResponseHeader { correlation_id: 5 }, 3, &body).unwrap());
        // length, correlation id, then the body's error code: no tagged fields in the header.
        assert_eq!(&frame[4..10], &[0, 0, 0, 5, 0, 0]);
        let mut rest = frame.clone().split_off(4);
        let (header, decoded) = decode_response_frame::<ApiVersionsResponse>(&mut rest, 3).unwrap();
        assert_eq!((header.correlation_id, decoded), (5, body));
    }

    #[test]
    fn chunks_and_shared_record_sets_become_their_own_chunks() {
        let shared = Bytes::from_static(b"shared-batches");
        let cached = Bytes::from_static(b"cached");
        let file = Chunk::File(FileRange { file: Arc::new(tempfile::tempfile().unwrap()), position: 10, len: 1000 });
        let partition = |partition_index, records| FetchResponsePartition {
            partition_index,
            records: Some(records),
            ..FetchResponsePartition::default()
        };
        let body = FetchResponse {
            responses: vec![FetchResponseTopic {
                topic: "t".into(),
                partitions: vec![
                    partition(0, RecordSet::Chunks(vec![Chunk::Bytes(cached.clone()), file.clone()])),
                    partition(1, RecordSet::Shared(shared.clone())),
                ],
            }],
            ..FetchResponse::default()
        };
        for version in [4, 12] {
            let pieces = encode_response_frame(ResponseHeader { correlation_id: 1 }, version, &body).unwrap();
            // head, the record set's two chunks, the next partition's fields, shared, and the
            // tagged fields after it (flexible versions only).
            assert_eq!(pieces.len(), if version >= 12 { 6 } else { 5 }, "{pieces:?}");
            assert_eq!(pieces[1], Chunk::Bytes(cached.clone()));
            assert_eq!(pieces[2], file);
            assert_eq!(pieces[4], Chunk::Bytes(shared.clone()));
            // Handed over, not copied.
            let Chunk::Bytes(out) = &pieces[1] else { panic!() };
            assert_eq!(out.as_ptr(), cached.as_ptr());
            let Chunk::Bytes(first) = &pieces[0] else { panic!() };
            let total: u64 = pieces.iter().map(Chunk::len).sum();
            assert_eq!(i32::from_be_bytes(first[..4].try_into().unwrap()) as u64, total - 4);
            // The length prefix of the chunks record set (6 + 1000 bytes) precedes it.
            let prefix: &[u8] = if version >= 12 { &[0xef, 0x07] } else { &[0, 0, 0x03, 0xee] };
            assert!(first.ends_with(prefix), "{first:?}");
        }
        // A contiguous encoding cannot carry a file range, but copies bytes chunks.
        assert_eq!(body.encode(&mut BytesMut::new(), 12), Err(EncodeError::FileRecords));
        let in_memory = FetchResponse {
            responses: vec![FetchResponseTopic {
                topic: "t".into(),
                partitions: vec![partition(0, RecordSet::Chunks(vec![Chunk::Bytes(cached.clone()); 2]))],
            }],
            ..FetchResponse::default()
        };
        let mut contiguous = BytesMut::new();
        in_memory.encode(&mut contiguous, 12).unwrap();
        let pieces = concat(&encode_response_frame(ResponseHeader { correlation_id: 1 }, 12, &in_memory).unwrap());
        // Length prefix, correlation id and the header's tagged fields, then the same body.
        assert_eq!(&pieces[9..], &contiguous[..]);
        let decoded = FetchResponse::decode(&mut contiguous, 12).unwrap();
        let records = decoded.responses[0].partitions[0].records.as_ref().and_then(RecordSet::as_slice);
        assert_eq!(records, Some(&b"cachedcached"[..]));
    }

    #[test]
    fn decode_error_for_unsupported_body_version() {
        assert_eq!(
            decode_request_body(ApiKey::Produce, 2, &mut BytesMut::new()),
            Err(DecodeError::UnsupportedVersion { api_key: 0, version: 2 })
        );
        assert_eq!(
            decode_request_body(ApiKey::SaslHandshake, 1, &mut BytesMut::new()),
            Err(DecodeError::UnsupportedVersion { api_key: 17, version: 1 })
        );
    }

    #[test]
    fn request_buffers_join_small_pieces_and_keep_large_ones_in_place() {
        let large = Bytes::from(vec![7u8; WRITE_IN_PLACE_BYTES]);
        let pieces = vec![
            Chunk::Bytes(Bytes::from_static(b"ab")),
            Chunk::Bytes(Bytes::from_static(b"cd")),
            Chunk::Bytes(large.clone()),
            Chunk::Bytes(Bytes::from_static(b"ef")),
        ];
        let out = request_buffers(pieces).unwrap();
        assert_eq!(out, [Bytes::from_static(b"abcd"), large.clone(), Bytes::from_static(b"ef")]);
        assert_eq!(out[1].as_ptr(), large.as_ptr(), "the record set was copied");
        let file = Arc::new(tempfile::tempfile().unwrap());
        let range = Chunk::File(FileRange { file, position: 0, len: 2 });
        assert_eq!(request_buffers(vec![range]), Err(EncodeError::FileRecords));
    }
}
