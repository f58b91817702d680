//! Request and response headers.
//!
//! A request header is v1 (`api_key`, `api_version`, `correlation_id`, nullable `client_id`) or,
//! for flexible versions of the API, v2 (the same plus a tagged-field section). `client_id`
//! keeps the old `int16` length even in v2, so that any broker can read the header of an
//! ApiVersions request of any version. (v0, without `client_id`, only served ControlledShutdown
//! v0 and is not supported.) A response header is v0 (`correlation_id`) or, for flexible
//! versions, v1 (plus tagged fields), except that ApiVersions responses always use v0: a client
//! that does not yet know the broker's versions must be able to read the answer.

use bytes::BytesMut;

pub use super::api_key::{ApiKey, UnknownApiKey};
use super::codec::{self, DecodeError, EncodeError, Encoder};
use super::messages::supported;

/// The request header version for a version of an API (1, or 2 when the API version is
/// flexible); `None` if this codec does not implement that API version.
pub fn request_header_version(api_key: ApiKey, api_version: i16) -> Option<i16> {
    let support = supported(api_key, api_version)?;
    Some(if support.is_flexible(api_version) { 2 } else { 1 })
}

/// The response header version for a version of an API (0, or 1 when the API version is
/// flexible, but always 0 for ApiVersions); `None` if this codec does not implement that API
/// version.
pub fn response_header_version(api_key: ApiKey, api_version: i16) -> Option<i16> {
    let support = supported(api_key, api_version)?;
    // KIP-511: a client reads the ApiVersions response before it knows what the broker speaks,
    // so its header never grows.
    Some(if support.is_flexible(api_version) && api_key != ApiKey::ApiVersions { 1 } else { 0 })
}

/// Why a request header could not be decoded. Both cases carry what the server needs to answer
/// (or to log) whenever the bytes got that far.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The API key is unknown, or that version of it is not implemented. The server should
    /// answer ApiVersions with an ApiVersions v0 response carrying `UNSUPPORTED_VERSION` and
    /// [`super::SUPPORTED`] (KIP-511), so that the client can downgrade, and may close the
    /// connection for anything else (as Kafka does).
    #[error("unsupported API key {api_key} version {api_version} (correlation id {correlation_id})")]
    Unsupported {
        /// The API key as read from the wire.
        api_key: i16,
        /// The API version as read from the wire.
        api_version: i16,
        /// The correlation id, to answer with.
        correlation_id: i32,
    },
    /// The header is malformed. `correlation_id` is known if the first 8 bytes were there.
    #[error("malformed request header: {source}")]
    Malformed {
        /// The correlation id, if the header got that far.
        correlation_id: Option<i32>,
        /// What was wrong.
        source: DecodeError,
    },
}

impl HeaderError {
    /// The correlation id of the request, if the header got that far.
    pub fn correlation_id(&self) -> Option<i32> {
        match self {
            HeaderError::Unsupported { correlation_id, .. } => Some(*correlation_id),
            HeaderError::Malformed { correlation_id, .. } => *correlation_id,
        }
    }
}

/// The header of a request (v1 or v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// Which API the body is.
    pub api_key: ApiKey,
    /// Which version of it.
    pub api_version: i16,
    /// Chosen by the client, echoed in the response so it can match them up.
    pub correlation_id: i32,
    /// The client's self-chosen name, for logs and quotas; may be null.
    pub client_id: Option<String>,
}

impl RequestHeader {
    /// Decodes a request header from the front of a frame, leaving the body in `buf`. Fails
    /// with [`HeaderError::Unsupported`] for any API key and version outside
    /// [`super::SUPPORTED`], after reading only the first 8 bytes.
    pub fn decode(buf: &mut BytesMut) -> Result<RequestHeader, HeaderError> {
        let malformed = |correlation_id, source| HeaderError::Malformed { correlation_id, source };
        // api_key, api_version and correlation_id sit at the same place in every header version.
        let api_key = codec::get_i16(buf).map_err(|e| malformed(None, e))?;
        let api_version = codec::get_i16(buf).map_err(|e| malformed(None, e))?;
        let correlation_id = codec::get_i32(buf).map_err(|e| malformed(None, e))?;
        let unsupported = HeaderError::Unsupported { api_key, api_version, correlation_id };
        let Some(key) = ApiKey::from_i16(api_key) else { return Err(unsupported) };
        let Some(header_version) = request_header_version(key, api_version) else { return Err(unsupported) };
        let client_id = codec::get_string(buf, false).map_err(|e| malformed(Some(correlation_id), e))?;
        if header_version >= 2 {
            codec::skip_tagged_fields(buf).map_err(|e| malformed(Some(correlation_id), e))?;
        }
        Ok(RequestHeader { api_key: key, api_version, correlation_id, client_id })
    }

    /// Encodes this header, in the version its API version calls for.
    pub fn encode(&self, enc: &mut Encoder) -> Result<(), EncodeError> {
        let Some(header_version) = request_header_version(self.api_key, self.api_version) else {
            return Err(EncodeError::UnsupportedVersion { api_key: self.api_key.code(), version: self.api_version });
        };
        enc.put_i16(self.api_key.code());
        enc.put_i16(self.api_version);
        enc.put_i32(self.correlation_id);
        enc.put_string(self.client_id.as_deref(), false, true, "RequestHeader.client_id", header_version)?;
        if header_version >= 2 {
            enc.put_unsigned_varint(0);
        }
        Ok(())
    }
}

/// The header of a response (v0 or v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The correlation id of the request this answers.
    pub correlation_id: i32,
}

impl ResponseHeader {
    /// Decodes a response header of `header_version` (see [`response_header_version`]).
    pub fn decode(buf: &mut BytesMut, header_version: i16) -> Result<ResponseHeader, DecodeError> {
        let correlation_id = codec::get_i32(buf)?;
        if header_version >= 1 {
            codec::skip_tagged_fields(buf)?;
        }
        Ok(ResponseHeader { correlation_id })
    }

    /// Encodes this header in `header_version` (see [`response_header_version`]).
    pub fn encode(&self, enc: &mut Encoder, header_version: i16) {
        enc.put_i32(self.correlation_id);
        if header_version >= 1 {
            enc.put_unsigned_varint(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_versions() {
        assert_eq!(request_header_version(ApiKey::Produce, 8), Some(1));
        assert_eq!(request_header_version(ApiKey::Produce, 9), Some(2));
        assert_eq!(response_header_version(ApiKey::Produce, 9), Some(1));
        assert_eq!(request_header_version(ApiKey::ApiVersions, 3), Some(2));
        assert_eq!(response_header_version(ApiKey::ApiVersions, 3), Some(0));
        assert_eq!(response_header_version(ApiKey::DescribeCluster, 0), Some(1));
        assert_eq!(request_header_version(ApiKey::Produce, 2), None);
        assert_eq!(request_header_version(ApiKey::SaslHandshake, 1), None);
    }

    fn encoded(header: &RequestHeader) -> BytesMut {
        let mut enc = Encoder::contiguous(BytesMut::new());
        header.encode(&mut enc).unwrap();
        enc.into_bytes().unwrap()
    }

    #[test]
    fn request_header_round_trips_in_v1_and_v2() {
        for (api_key, api_version, client_id) in [
            (ApiKey::Metadata, 1, Some("client-1".to_owned())),
            (ApiKey::Metadata, 12, None),
            (ApiKey::ApiVersions, 3, Some(String::new())),
        ] {
            let header = RequestHeader { api_key, api_version, correlation_id: 0x0102_0304, client_id };
            let mut buf = encoded(&header);
            buf.extend_from_slice(b"body");
            assert_eq!(RequestHeader::decode(&mut buf).unwrap(), header);
            assert_eq!(&buf[..], b"body");
        }
    }

    #[test]
    fn v2_header_keeps_the_int16_client_id_and_skips_unknown_tags() {
        // ApiVersions v3: api_key 18, version 3, correlation id 7, client_id "ab" (int16 length),
        // one unknown tagged field (tag 5, 2 bytes).
        let mut buf = BytesMut::from(&[0, 18, 0, 3, 0, 0, 0, 7, 0, 2, b'a', b'b', 1, 5, 2, 9, 9, 0xAA][..]);
        let header = RequestHeader::decode(&mut buf).unwrap();
        assert_eq!(header.client_id.as_deref(), Some("ab"));
        assert_eq!(header.correlation_id, 7);
        assert_eq!(&buf[..], &[0xAA]);
    }

    #[test]
    fn unsupported_version_still_yields_the_correlation_id() {
        // ApiVersions v127 (KIP-511): the body is unknown but the correlation id is there.
        let mut buf = BytesMut::from(&[0, 18, 0, 127, 0, 0, 0, 42, 0xff, 0xff][..]);
        let err = RequestHeader::decode(&mut buf).unwrap_err();
        assert_eq!(err, HeaderError::Unsupported { api_key: 18, api_version: 127, correlation_id: 42 });
        assert_eq!(err.correlation_id(), Some(42));
        // An unknown API key too.
        let mut buf = BytesMut::from(&[0x7f, 0, 0, 0, 0, 0, 0, 43][..]);
        assert_eq!(RequestHeader::decode(&mut buf).unwrap_err().correlation_id(), Some(43));
    }

    #[test]
    fn truncated_headers_are_errors() {
        let full = encoded(&RequestHeader {
            api_key: ApiKey::Fetch,
            api_version: 12,
            correlation_id: 5,
            client_id: Some("c".to_owned()),
        });
        for len in 0..full.len() {
            let err = RequestHeader::decode(&mut BytesMut::from(&full[..len])).unwrap_err();
            assert_eq!(err.correlation_id(), if len >= 8 { Some(5) } else { None }, "prefix {len}");
        }
    }

    #[test]
    fn response_header_round_trips() {
        for header_version in [0, 1] {
            let mut enc = Encoder::contiguous(BytesMut::new());
            ResponseHeader { correlation_id: -9 }.encode(&mut enc, header_version);
            let mut buf = enc.into_bytes().unwrap();
            assert_eq!(buf.len(), 4 + header_version as usize);
            assert_eq!(ResponseHeader::decode(&mut buf, header_version).unwrap().correlation_id, -9);
            assert!(buf.is_empty());
        }
    }
}
