//! The primitive types of the Kafka wire protocol: how integers, varints, strings, bytes, arrays,
//! record sets and tagged fields are read from a request frame and written to a response.
//!
//! Decoding consumes from the front of a `&mut BytesMut` (the frame). Every length or count read
//! from the wire is checked against the bytes that remain *before* anything is allocated, so a
//! frame can never make the decoder allocate more than a small multiple of its own size: a string
//! of N bytes needs N bytes left, an array of N elements needs N × (the smallest encoding of one
//! element) bytes left. Nothing here panics on any input.
//!
//! Encoding goes into an [`Encoder`], which either keeps everything in one contiguous buffer or
//! produces a list of [`Chunk`]s, so that record sets already in memory ([`RecordSet::Shared`])
//! or still in a file ([`RecordSet::Chunks`]) are never copied into the response.
//!
//! Flexible versions (KIP-482) use compact forms: lengths as unsigned varints of `length + 1`
//! (0 means null), and a tagged-field section after each structure. Every function that has both
//! forms takes `flexible: bool`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::model::Chunk;

/// Why a frame could not be decoded. Decoding stops at the first problem; the frame is then
/// useless (its position is unspecified).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame ended before a value did.
    #[error("truncated: {needed} more bytes needed, {remaining} remain")]
    Truncated {
        /// Bytes the value needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A length or count field holds a value no encoding can produce (e.g. -2, or a string
    /// longer than `i16::MAX`).
    #[error("invalid length {0}")]
    InvalidLength(i64),
    /// An array claims more elements than the rest of the frame could possibly hold.
    #[error("array of {count} elements of at least {element_bytes_min} bytes each cannot fit in {remaining} bytes")]
    ArrayTooLong {
        /// Elements the array claims.
        count: usize,
        /// The smallest encoding of one element at this version.
        element_bytes_min: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A varint runs past its maximal length or overflows its type.
    #[error("malformed varint")]
    InvalidVarint,
    /// A string is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A field that is not nullable at this version was null on the wire.
    #[error("null in non-nullable field {field}")]
    UnexpectedNull {
        /// `Message.field` of the offending field.
        field: &'static str,
    },
    /// The API key is unknown, or this codec does not implement that version of it.
    #[error("unsupported version {version} of API key {api_key}")]
    UnsupportedVersion {
        /// The API key as read from the wire.
        api_key: i16,
        /// The API version as read from the wire.
        version: i16,
    },
}

/// Why a message could not be encoded. These are programming errors on our side (a value the
/// protocol cannot carry at that version), reported instead of silently sending something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A null in a field that is not nullable at this version.
    #[error("null in field {field}, which is not nullable at version {version}")]
    NullNotAllowed {
        /// `Message.field` of the offending field.
        field: &'static str,
        /// The version being encoded.
        version: i16,
    },
    /// A string longer than `i16::MAX` bytes, or bytes/array longer than `i32::MAX`.
    #[error("value of length {len} is too long for the wire")]
    TooLong {
        /// The length that did not fit.
        len: usize,
    },
    /// A record set with a file range ([`RecordSet::Chunks`]) was given to a contiguous encoding
    /// (or inside a tagged field), which has no way to refer to bytes outside itself.
    #[error("record set in a file, in a contiguous encoding")]
    FileRecords,
    /// The message does not exist at this version, or the header names another API.
    #[error("unsupported version {version} of API key {api_key}")]
    UnsupportedVersion {
        /// The API key.
        api_key: i16,
        /// The version asked for.
        version: i16,
    },
}

/// A 16-byte UUID as Kafka sends it (topic ids); all zeros means "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID, Kafka's `Uuid.ZERO_UUID`: no topic id.
    pub const ZERO: Uuid = Uuid([0; 16]);
}

/// The bytes of a `records` field (Produce requests, Fetch responses): one or more record
/// batches, kept opaque by the codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSet {
    /// Bytes split off the request frame without copying. Unique, so the broker can patch each
    /// batch's base offset and leader epoch in place before appending it.
    Owned(BytesMut),
    /// Bytes shared with someone else (the batch cache, a producer's batch); encoded as a
    /// [`Chunk`] of their own, not copied.
    Shared(Bytes),
    /// What a fetch read, as it came from storage: cached batches and segment file ranges, in
    /// order. Encoded as these very chunks, so file ranges go out by sendfile.
    Chunks(Vec<Chunk>),
}

impl RecordSet {
    /// Length of the record set on the wire, in bytes.
    pub fn len(&self) -> usize {
        match self {
            RecordSet::Owned(bytes) => bytes.len(),
            RecordSet::Shared(bytes) => bytes.len(),
            RecordSet::Chunks(chunks) => {
                let len = |chunk: &Chunk| usize::try_from(chunk.len()).unwrap_or(usize::MAX);
                chunks.iter().fold(0, |sum, chunk| sum.saturating_add(len(chunk)))
            }
        }
    }

    /// Whether the record set has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, when they are in one buffer (`None` for [`RecordSet::Chunks`]).
    pub fn as_slice(&self) -> Option<&[u8]> {
        match self {
            RecordSet::Owned(bytes) => Some(bytes),
            RecordSet::Shared(bytes) => Some(bytes),
            RecordSet::Chunks(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding.

fn truncated(needed: usize, remaining: usize) -> DecodeError {
    DecodeError::Truncated { needed, remaining }
}

/// Splits `len` bytes off the front of `buf`, or fails if fewer remain.
fn take(buf: &mut BytesMut, len: usize) -> Result<BytesMut, DecodeError> {
    if len > buf.len() {
        return Err(truncated(len, buf.len()));
    }
    Ok(buf.split_to(len))
}

macro_rules! get_fixed {
    ($(#[$doc:meta] $name:ident -> $ty:ty = $try_get:ident;)*) => {$(
        #[$doc]
        pub fn $name(buf: &mut BytesMut) -> Result<$ty, DecodeError> {
            buf.$try_get().map_err(|e| truncated(e.requested, e.available))
        }
    )*};
}

get_fixed! {
    /// Reads an `int8`.
    get_i8 -> i8 = try_get_i8;
    /// Reads a big-endian `int16`.
    get_i16 -> i16 = try_get_i16;
    /// Reads a big-endian `int32`.
    get_i32 -> i32 = try_get_i32;
    /// Reads a big-endian `int64`.
    get_i64 -> i64 = try_get_i64;
    /// Reads a big-endian `uint16`.
    get_u16 -> u16 = try_get_u16;
    /// Reads a big-endian `uint32`.
    get_u32 -> u32 = try_get_u32;
    /// Reads a big-endian IEEE 754 `float64`.
    get_f64 -> f64 = try_get_f64;
}

/// Reads a `bool` (one byte; anything but 0 is true, as in Kafka).
pub fn get_bool(buf: &mut BytesMut) -> Result<bool, DecodeError> {
    Ok(get_i8(buf)? != 0)
}

/// Reads a 16-byte `uuid`.
pub fn get_uuid(buf: &mut BytesMut) -> Result<Uuid, DecodeError> {
    let mut raw = [0u8; 16];
    buf.try_copy_to_slice(&mut raw).map_err(|e| truncated(e.requested, e.available))?;
    Ok(Uuid(raw))
}

fn get_unsigned_varint_bytes(buf: &mut BytesMut, bytes_max: u32) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for i in 0..bytes_max {
        let byte = buf.try_get_u8().map_err(|_| truncated(1, 0))?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::InvalidVarint)
}

/// Reads an unsigned varint of at most 5 bytes (compact lengths, tags, tagged-field counts).
pub fn get_unsigned_varint(buf: &mut BytesMut) -> Result<u32, DecodeError> {
    u32::try_from(get_unsigned_varint_bytes(buf, 5)?).map_err(|_| DecodeError::InvalidVarint)
}

/// Reads a zig-zag `varint`.
pub fn get_varint(buf: &mut BytesMut) -> Result<i32, DecodeError> {
    let raw = get_unsigned_varint(buf)?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zig-zag `varlong`.
pub fn get_varlong(buf: &mut BytesMut) -> Result<i64, DecodeError> {
    let raw = get_unsigned_varint_bytes(buf, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Reads the length of a string (`int16`, or compact), `None` for null.
fn get_string_len(buf: &mut BytesMut, flexible: bool) -> Result<Option<usize>, DecodeError> {
    let len = if flexible { i64::from(get_unsigned_varint(buf)?) - 1 } else { i64::from(get_i16(buf)?) };
    if len == -1 {
        return Ok(None);
    }
    // Kafka caps strings at i16::MAX bytes in the compact form too.
    if !(0..=i64::from(i16::MAX)).contains(&len) {
        return Err(DecodeError::InvalidLength(len));
    }
    Ok(Some(len as usize))
}

/// Reads the length of bytes, records or an array (`int32`, or compact), `None` for null.
fn get_len(buf: &mut BytesMut, flexible: bool) -> Result<Option<usize>, DecodeError> {
    let len = if flexible { i64::from(get_unsigned_varint(buf)?) - 1 } else { i64::from(get_i32(buf)?) };
    if len == -1 {
        return Ok(None);
    }
    if !(0..=i64::from(i32::MAX)).contains(&len) {
        return Err(DecodeError::InvalidLength(len));
    }
    Ok(Some(len as usize))
}

/// Reads a (nullable) `string` or `compact string`; `None` is null.
pub fn get_string(buf: &mut BytesMut, flexible: bool) -> Result<Option<String>, DecodeError> {
    let Some(len) = get_string_len(buf, flexible)? else { return Ok(None) };
    let raw = take(buf, len)?;
    match std::str::from_utf8(&raw) {
        Ok(text) => Ok(Some(text.to_owned())),
        Err(_) => Err(DecodeError::InvalidUtf8),
    }
}

/// Reads (nullable) `bytes` or `compact bytes` without copying: the result shares the frame's
/// memory. `None` is null.
pub fn get_bytes(buf: &mut BytesMut, flexible: bool) -> Result<Option<Bytes>, DecodeError> {
    let Some(len) = get_len(buf, flexible)? else { return Ok(None) };
    Ok(Some(take(buf, len)?.freeze()))
}

/// Reads a (nullable) `records` field without copying: always [`RecordSet::Owned`], split off
/// the frame. `None` is null.
pub fn get_records(buf: &mut BytesMut, flexible: bool) -> Result<Option<RecordSet>, DecodeError> {
    let Some(len) = get_len(buf, flexible)? else { return Ok(None) };
    Ok(Some(RecordSet::Owned(take(buf, len)?)))
}

/// Reads a (nullable) array whose elements are read by `element`; `None` is null.
///
/// `element_bytes_min` is the smallest encoding of one element at this version: the count is
/// rejected unless `count × element_bytes_min` bytes remain, before the vector is allocated.
pub fn get_array<T>(
    buf: &mut BytesMut,
    flexible: bool,
    element_bytes_min: usize,
    mut element: impl FnMut(&mut BytesMut) -> Result<T, DecodeError>,
) -> Result<Option<Vec<T>>, DecodeError> {
    let Some(count) = get_len(buf, flexible)? else { return Ok(None) };
    let element_bytes_min = element_bytes_min.max(1);
    if count.saturating_mul(element_bytes_min) > buf.len() {
        return Err(DecodeError::ArrayTooLong { count, element_bytes_min, remaining: buf.len() });
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(element(buf)?);
    }
    Ok(Some(items))
}

/// Reads a tagged-field section, handing each field's tag and bytes to `field`. A field it does
/// not know it should ignore: the bytes are skipped either way, which is how unknown tags are
/// tolerated.
pub fn get_tagged_fields(
    buf: &mut BytesMut,
    mut field: impl FnMut(u32, &mut BytesMut) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let count = get_unsigned_varint(buf)?;
    // No allocation depends on `count`; each field consumes at least two bytes, so a lying count
    // ends in `Truncated` after at most half the frame.
    for _ in 0..count {
        let tag = get_unsigned_varint(buf)?;
        let len = get_unsigned_varint(buf)? as usize;
        let mut data = take(buf, len)?;
        field(tag, &mut data)?;
    }
    Ok(())
}

/// Reads and discards a tagged-field section.
pub fn skip_tagged_fields(buf: &mut BytesMut) -> Result<(), DecodeError> {
    get_tagged_fields(buf, |_, _| Ok(()))
}

/// Turns a null into [`DecodeError::UnexpectedNull`] for a field that is never nullable.
pub fn required<T>(value: Option<T>, field: &'static str) -> Result<T, DecodeError> {
    value.ok_or(DecodeError::UnexpectedNull { field })
}

/// Lets a null through only if the field is nullable at this version.
pub fn nullable<T>(value: Option<T>, nullable: bool, field: &'static str) -> Result<Option<T>, DecodeError> {
    if value.is_none() && !nullable {
        return Err(DecodeError::UnexpectedNull { field });
    }
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/// How an [`Encoder`] treats record sets that live outside its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Everything is copied into one buffer; a file range in a [`RecordSet::Chunks`] is an error.
    Contiguous,
    /// Shared bytes and the chunks of a [`RecordSet::Chunks`] become chunks of their own.
    Pieces,
}

/// A piece of an encoding: bytes the encoder wrote (still mutable, for the frame's length
/// prefix), or a chunk of a record set, kept as it is.
#[derive(Debug)]
enum Part {
    Buf(BytesMut),
    Chunk(Chunk),
}

/// Where encoded bytes go: one contiguous buffer, or a list of [`Chunk`]s when record sets are
/// shared or sent from files. Primitive writes cannot fail; writes with a length can
/// (see [`EncodeError`]).
#[derive(Debug)]
pub struct Encoder {
    mode: Mode,
    /// Parts already cut, in order; `buf` comes after them.
    parts: Vec<Part>,
    buf: BytesMut,
}

impl Encoder {
    /// An encoder that copies everything into one buffer, appending to `buf`.
    pub fn contiguous(buf: BytesMut) -> Self {
        Encoder { mode: Mode::Contiguous, parts: Vec::new(), buf }
    }

    /// An encoder that produces [`Chunk`]s, keeping shared and file record sets apart.
    pub fn pieces() -> Self {
        Encoder { mode: Mode::Pieces, parts: Vec::new(), buf: BytesMut::new() }
    }

    /// Bytes encoded so far, file ranges included.
    pub fn len(&self) -> usize {
        let parts = self.parts.iter().fold(0usize, |sum, part| {
            sum.saturating_add(match part {
                Part::Buf(bytes) => bytes.len(),
                Part::Chunk(chunk) => usize::try_from(chunk.len()).unwrap_or(usize::MAX),
            })
        });
        parts.saturating_add(self.buf.len())
    }

    /// Whether nothing was encoded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded chunks, in order. Empty chunks are left out.
    pub fn into_pieces(mut self) -> Vec<Chunk> {
        self.cut();
        self.parts
            .into_iter()
            .map(|part| match part {
                Part::Buf(bytes) => Chunk::Bytes(bytes.freeze()),
                Part::Chunk(chunk) => chunk,
            })
            .filter(|chunk| !chunk.is_empty())
            .collect()
    }

    /// The encoded bytes of a contiguous encoder. For a pieces encoder, chunks in memory are
    /// copied together, and file ranges are an error.
    pub fn into_bytes(mut self) -> Result<BytesMut, EncodeError> {
        if self.parts.is_empty() {
            return Ok(self.buf);
        }
        let mut out = BytesMut::with_capacity(self.len());
        self.cut();
        for part in self.parts {
            match part {
                Part::Buf(bytes) => out.extend_from_slice(&bytes),
                Part::Chunk(Chunk::Bytes(bytes)) => out.extend_from_slice(&bytes),
                Part::Chunk(Chunk::File(_)) => return Err(EncodeError::FileRecords),
            }
        }
        Ok(out)
    }

    /// Moves the bytes written so far into a part of their own (no copy).
    fn cut(&mut self) {
        if !self.buf.is_empty() {
            self.parts.push(Part::Buf(self.buf.split()));
        }
    }

    /// Overwrites four bytes at the very start of the encoding, which must have been written
    /// into the buffer first (a frame's length prefix).
    pub(crate) fn patch_i32_at_start(&mut self, value: i32) {
        let first = match self.parts.first_mut() {
            Some(Part::Buf(bytes)) => bytes,
            _ => &mut self.buf,
        };
        if let Some(prefix) = first.get_mut(..4) {
            prefix.copy_from_slice(&value.to_be_bytes());
        }
    }

    /// Writes an `int8`.
    pub fn put_i8(&mut self, value: i8) {
        self.buf.put_i8(value);
    }

    /// Writes an `int16`.
    pub fn put_i16(&mut self, value: i16) {
        self.buf.put_i16(value);
    }

    /// Writes an `int32`.
    pub fn put_i32(&mut self, value: i32) {
        self.buf.put_i32(value);
    }

    /// Writes an `int64`.
    pub fn put_i64(&mut self, value: i64) {
        self.buf.put_i64(value);
    }

    /// Writes a `uint16`.
    pub fn put_u16(&mut self, value: u16) {
        self.buf.put_u16(value);
    }

    /// Writes a `uint32`.
    pub fn put_u32(&mut self, value: u32) {
        self.buf.put_u32(value);
    }

    /// Writes a `float64`.
    pub fn put_f64(&mut self, value: f64) {
        self.buf.put_f64(value);
    }

    /// Writes a `bool` as one byte, 0 or 1.
    pub fn put_bool(&mut self, value: bool) {
        self.buf.put_u8(u8::from(value));
    }

    /// Writes a `uuid`.
    pub fn put_uuid(&mut self, value: &Uuid) {
        self.buf.put_slice(&value.0);
    }

    /// Writes an unsigned varint.
    pub fn put_unsigned_varint(&mut self, mut value: u32) {
        while value >= 0x80 {
            self.buf.put_u8((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.put_u8(value as u8);
    }

    /// Writes a zig-zag `varint`.
    pub fn put_varint(&mut self, value: i32) {
        self.put_unsigned_varint(((value << 1) ^ (value >> 31)) as u32);
    }

    /// Writes a zig-zag `varlong`.
    pub fn put_varlong(&mut self, value: i64) {
        let mut raw = ((value << 1) ^ (value >> 63)) as u64;
        while raw >= 0x80 {
            self.buf.put_u8((raw as u8) | 0x80);
            raw >>= 7;
        }
        self.buf.put_u8(raw as u8);
    }

    /// Writes the length of bytes, records or an array, or null.
    fn put_len(&mut self, len: Option<usize>, flexible: bool) -> Result<(), EncodeError> {
        match len {
            None if flexible => self.put_unsigned_varint(0),
            None => self.put_i32(-1),
            Some(len) => {
                let Ok(value) = i32::try_from(len) else { return Err(EncodeError::TooLong { len }) };
                if flexible {
                    self.put_unsigned_varint(value as u32 + 1);
                } else {
                    self.put_i32(value);
                }
            }
        }
        Ok(())
    }

    /// Writes a (nullable) `string` or `compact string`. A null is an error unless `nullable`.
    pub fn put_string(
        &mut self,
        value: Option<&str>,
        flexible: bool,
        nullable: bool,
        field: &'static str,
        version: i16,
    ) -> Result<(), EncodeError> {
        let Some(text) = value else {
            if !nullable {
                return Err(EncodeError::NullNotAllowed { field, version });
            }
            if flexible {
                self.put_unsigned_varint(0);
            } else {
                self.put_i16(-1);
            }
            return Ok(());
        };
        let Ok(len) = i16::try_from(text.len()) else { return Err(EncodeError::TooLong { len: text.len() }) };
        if flexible {
            self.put_unsigned_varint(len as u32 + 1);
        } else {
            self.put_i16(len);
        }
        self.buf.put_slice(text.as_bytes());
        Ok(())
    }

    /// Writes (nullable) `bytes` or `compact bytes`. A null is an error unless `nullable`.
    pub fn put_bytes(
        &mut self,
        value: Option<&[u8]>,
        flexible: bool,
        nullable: bool,
        field: &'static str,
        version: i16,
    ) -> Result<(), EncodeError> {
        if value.is_none() && !nullable {
            return Err(EncodeError::NullNotAllowed { field, version });
        }
        self.put_len(value.map(<[u8]>::len), flexible)?;
        if let Some(bytes) = value {
            self.buf.put_slice(bytes);
        }
        Ok(())
    }

    /// Writes a (nullable) `records` field: owned bytes are copied in; shared bytes and the
    /// chunks of a [`RecordSet::Chunks`] become chunks of their own after their length prefix
    /// (cloned handles, never the bytes). A contiguous encoder copies bytes in and refuses file
    /// ranges.
    pub fn put_records(
        &mut self,
        value: Option<&RecordSet>,
        flexible: bool,
        nullable: bool,
        field: &'static str,
        version: i16,
    ) -> Result<(), EncodeError> {
        if value.is_none() && !nullable {
            return Err(EncodeError::NullNotAllowed { field, version });
        }
        self.put_len(value.map(RecordSet::len), flexible)?;
        match value {
            None => {}
            Some(RecordSet::Owned(bytes)) => self.buf.put_slice(bytes),
            Some(RecordSet::Shared(bytes)) => match self.mode {
                Mode::Contiguous => self.buf.put_slice(bytes),
                Mode::Pieces => {
                    self.cut();
                    self.parts.push(Part::Chunk(Chunk::Bytes(bytes.clone())));
                }
            },
            Some(RecordSet::Chunks(chunks)) => match self.mode {
                Mode::Contiguous => {
                    for chunk in chunks {
                        match chunk {
                            Chunk::Bytes(bytes) => self.buf.put_slice(bytes),
                            Chunk::File(_) => return Err(EncodeError::FileRecords),
                        }
                    }
                }
                Mode::Pieces => {
                    self.cut();
                    self.parts.extend(chunks.iter().cloned().map(Part::Chunk));
                }
            },
        }
        Ok(())
    }

    /// Writes a (nullable) array, each element with `element`. A null is an error unless
    /// `nullable`.
    pub fn put_array<T>(
        &mut self,
        items: Option<&[T]>,
        flexible: bool,
        nullable: bool,
        field: &'static str,
        version: i16,
        mut element: impl FnMut(&mut Self, &T) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        if items.is_none() && !nullable {
            return Err(EncodeError::NullNotAllowed { field, version });
        }
        self.put_len(items.map(<[T]>::len), flexible)?;
        for item in items.unwrap_or_default() {
            element(self, item)?;
        }
        Ok(())
    }

    /// Writes one tagged field: its tag, its size, then what `value` writes.
    pub fn put_tagged_field(
        &mut self,
        tag: u32,
        value: impl FnOnce(&mut Self) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        // The size comes first, so the value is encoded aside. Tagged fields are small.
        let mut scratch = Encoder::contiguous(BytesMut::new());
        value(&mut scratch)?;
        let bytes = scratch.into_bytes()?;
        let Ok(len) = u32::try_from(bytes.len()) else { return Err(EncodeError::TooLong { len: bytes.len() }) };
        self.put_unsigned_varint(tag);
        self.put_unsigned_varint(len);
        self.buf.put_slice(&bytes);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Values for tests: every generated message has a `sample(version, variant)` built from these.

#[cfg(test)]
pub(crate) mod sample {
    use bytes::{Bytes, BytesMut};

    use super::RecordSet;

    /// A string that names its field, with a non-ASCII character in one variant.
    pub(crate) fn string(field: &str, variant: u8) -> String {
        match variant {
            2 => format!("{field}-ü-{variant}"),
            _ => format!("{field}-{variant}"),
        }
    }

    pub(crate) fn bytes(variant: u8) -> Bytes {
        Bytes::from(vec![variant, 0, 1, 2, 0xff])
    }

    pub(crate) fn records(variant: u8) -> RecordSet {
        RecordSet::Owned(BytesMut::from(&[b'r', b'e', b'c', variant, 0, 0xfe][..]))
    }

    /// Variant 0 has two elements, 1 none, 2 one; the elements use the other variants, so
    /// nested arrays and nulls show up at every depth.
    pub(crate) fn array<T>(variant: u8, element: impl Fn(u8) -> T) -> Vec<T> {
        let count = match variant {
            0 => 2,
            1 => 0,
            _ => 1,
        };
        (0..count).map(|i| element((variant + 1 + i) % 3)).collect()
    }
}
