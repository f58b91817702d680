//! The request and response bodies of every API this codec implements, generated at build time
//! from `src/protocol/schema/*.msg` by `src/protocol/schema/codegen.rs` (see there for the
//! definition format).
//!
//! Each message is a plain struct with public fields, named after Kafka's fields in snake_case;
//! nested structures are named `<Message><Thing>` (`ProduceRequestTopic`,
//! `ProduceRequestPartition`, …). Fields a version does not have are skipped when encoding and
//! take their default when decoding, so one struct serves every version; build values with
//! `..Default::default()` to get Kafka's defaults (-1 for unknown offsets and epochs, and so on).
//! Unknown tagged fields are skipped; known ones are written only when they differ from their
//! default, as Apache Kafka does (Debian's kcat misreads flexible responses otherwise).

use bytes::{Bytes, BytesMut};

use super::api_key::ApiKey;
use super::codec::{self, DecodeError, EncodeError, Encoder, RecordSet, Uuid};
use crate::model::Chunk;

/// A request or response body: its API, its versions, and its codec.
pub trait Message: Sized + Default + Clone + std::fmt::Debug + PartialEq {
    /// The API this message belongs to.
    const API_KEY: ApiKey;
    /// The oldest version implemented.
    const VERSION_MIN: i16;
    /// The newest version implemented.
    const VERSION_MAX: i16;
    /// The first flexible version (compact encodings, tagged fields), if any.
    const FLEXIBLE_MIN: Option<i16>;

    /// Decodes the message at `version` from the front of `buf`; any bytes after it are left in
    /// `buf`. Strings are copied; `bytes` and `records` fields share `buf`'s memory.
    fn decode(buf: &mut BytesMut, version: i16) -> Result<Self, DecodeError>;

    /// Encodes the message at `version`.
    fn encode_into(&self, enc: &mut Encoder, version: i16) -> Result<(), EncodeError>;

    /// Encodes the message at `version`, appending to `buf`. Record sets are copied in, so this
    /// is for messages without file ranges in their record sets ([`RecordSet::Chunks`]; an error
    /// otherwise). On error `buf`
    /// holds a partial encoding.
    fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> {
        let mut enc = Encoder::contiguous(std::mem::take(buf));
        let result = self.encode_into(&mut enc, version);
        *buf = enc.into_bytes()?;
        result
    }

    /// Encodes the message at `version` as chunks: shared record sets and the chunks of
    /// [`RecordSet::Chunks`] are chunks of their own, never copied.
    fn encode_pieces(&self, version: i16) -> Result<Vec<Chunk>, EncodeError> {
        let mut enc = Encoder::pieces();
        self.encode_into(&mut enc, version)?;
        Ok(enc.into_pieces())
    }
}

/// A request body, tied to the type of its response.
pub trait Request: Message {
    /// The body of the response to this request.
    type Response: Message;
}

/// One entry of [`SUPPORTED`]: an API and the versions of it this codec implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    /// The API.
    pub api_key: ApiKey,
    /// The oldest version implemented.
    pub version_min: i16,
    /// The newest version implemented.
    pub version_max: i16,
    /// The first flexible version, if any.
    pub flexible_min: Option<i16>,
}

impl ApiSupport {
    /// Whether `version` is implemented.
    pub const fn contains(&self, version: i16) -> bool {
        self.version_min <= version && version <= self.version_max
    }

    /// Whether `version` is a flexible version.
    pub const fn is_flexible(&self, version: i16) -> bool {
        match self.flexible_min {
            Some(from) => version >= from,
            None => false,
        }
    }
}

/// The entry of [`SUPPORTED`] for `api_key`, if this codec implements its `version`.
pub fn supported(api_key: ApiKey, version: i16) -> Option<&'static ApiSupport> {
    SUPPORTED.iter().find(|support| support.api_key == api_key && support.contains(version))
}

/// How a structure (a message or one of its nested types) reads and writes itself at a version,
/// without checking that the version is implemented ([`Message`] does that once, at the top).
pub(crate) trait Struct: Sized {
    fn read(buf: &mut BytesMut, version: i16) -> Result<Self, DecodeError>;
    fn write(&self, enc: &mut Encoder, version: i16) -> Result<(), EncodeError>;
    /// The smallest encoding at `version`, which bounds how many elements an array of this
    /// struct can claim.
    fn size_min(version: i16) -> usize;
}

include!(concat!(env!("OUT_DIR"), "/messages.rs"));
