//! The records a coordinator keeps in `__consumer_offsets`, in Apache Kafka's own formats so that
//! Kafka's tools could read them:
//!
//! - offset commit: key version 1 `(group, topic, partition)`, value version 3 `(offset,
//!   leader_epoch, metadata, commit_timestamp)`;
//! - group metadata: key version 2 `(group)`, value version 3 `(protocol_type, generation,
//!   protocol, leader, current_state_timestamp, members[])`.
//!
//! A record with a null value is a tombstone: compaction and replay drop the key. Every integer is
//! big-endian and strings are i16-length prefixed (the non-flexible encodings of these versions).

use bytes::{BufMut, Bytes, BytesMut};

/// Key version of an offset commit (Kafka's `OffsetCommitKey` v1).
const OFFSET_KEY_VERSION: i16 = 1;
/// Key version of group metadata (Kafka's `GroupMetadataKey` v2).
const GROUP_KEY_VERSION: i16 = 2;
/// Value version of an offset commit written here (Kafka's `OffsetCommitValue` v3).
const OFFSET_VALUE_VERSION: i16 = 3;
/// Value version of group metadata written here (Kafka's `GroupMetadataValue` v3).
const GROUP_VALUE_VERSION: i16 = 3;

/// Why a stored record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordFormatError {
    /// The bytes ended inside a field.
    #[error("record truncated")]
    Truncated,
    /// A version or length this reader does not know.
    #[error("unsupported record: {0}")]
    Unsupported(&'static str),
}

/// The key of a record in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKey {
    /// A committed offset of `(group, topic, partition)`.
    Offset {
        /// The group id.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The metadata of a group.
    Group(String),
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The next offset to consume.
    pub offset: i64,
    /// The leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// The metadata string the client gave (empty for null).
    pub metadata: String,
    /// When it was committed, in ms since the epoch.
    pub commit_timestamp_ms: i64,
}

/// One member in stored group metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    /// Member id.
    pub member_id: String,
    /// Static id, if any.
    pub instance_id: Option<String>,
    /// Client id of its last join.
    pub client_id: String,
    /// Host it joined from.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Its metadata for the chosen protocol (for consumers, the subscription).
    pub subscription: Bytes,
    /// Its assignment.
    pub assignment: Bytes,
}

/// Group metadata as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// Protocol type (`consumer`), empty for a group only used to store offsets.
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// The chosen protocol.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// When the group entered its current state, ms since the epoch.
    pub current_state_timestamp_ms: i64,
    /// The members.
    pub members: Vec<StoredMember>,
}

impl RecordKey {
    /// The key's bytes.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            RecordKey::Offset { group, topic, partition } => {
                out.put_i16(OFFSET_KEY_VERSION);
                put_string(&mut out, group);
                put_string(&mut out, topic);
                out.put_i32(*partition);
            }
            RecordKey::Group(group) => {
                out.put_i16(GROUP_KEY_VERSION);
                put_string(&mut out, group);
            }
        }
        out.freeze()
    }

    /// Reads a key (offset key versions 0 and 1, group key version 2).
    pub fn decode(mut buf: &[u8]) -> Result<RecordKey, RecordFormatError> {
        let buf = &mut buf;
        match get_i16(buf)? {
            0 | 1 => {
                Ok(RecordKey::Offset { group: get_string(buf)?, topic: get_string(buf)?, partition: get_i32(buf)? })
            }
            2 => Ok(RecordKey::Group(get_string(buf)?)),
            _ => Err(RecordFormatError::Unsupported("key version")),
        }
    }
}

impl OffsetValue {
    /// The value's bytes (version 3).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(OFFSET_VALUE_VERSION);
        out.put_i64(self.offset);
        out.put_i32(self.leader_epoch);
        put_string(&mut out, &self.metadata);
        out.put_i64(self.commit_timestamp_ms);
        out.freeze()
    }

    /// Reads a value of versions 0 to 3 (the ones Kafka writes without tagged fields).
    pub fn decode(mut buf: &[u8]) -> Result<OffsetValue, RecordFormatError> {
        let buf = &mut buf;
        let version = get_i16(buf)?;
        if !(0..=3).contains(&version) {
            return Err(RecordFormatError::Unsupported("offset value version"));
        }
        let offset = get_i64(buf)?;
        let leader_epoch = if version >= 3 { get_i32(buf)? } else { -1 };
        let metadata = get_string(buf)?;
        let commit_timestamp_ms = get_i64(buf)?;
        Ok(OffsetValue { offset, leader_epoch, metadata, commit_timestamp_ms })
    }
}

impl GroupValue {
    /// The value's bytes (version 3).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(GROUP_VALUE_VERSION);
        put_string(&mut out, &self.protocol_type);
        out.put_i32(self.generation);
        put_nullable_string(&mut out, self.protocol.as_deref());
        put_nullable_string(&mut out, self.leader.as_deref());
        out.put_i64(self.current_state_timestamp_ms);
        out.put_i32(i32::try_from(self.members.len()).unwrap_or(i32::MAX));
        for m in &self.members {
            put_string(&mut out, &m.member_id);
            put_nullable_string(&mut out, m.instance_id.as_deref());
            put_string(&mut out, &m.client_id);
            put_string(&mut out, &m.client_host);
            out.put_i32(m.rebalance_timeout_ms);
            out.put_i32(m.session_timeout_ms);
            put_bytes(&mut out, &m.subscription);
            put_bytes(&mut out, &m.assignment);
        }
        out.freeze()
    }

    /// Reads a value of versions 0 to 3.
    pub fn decode(mut buf: &[u8]) -> Result<GroupValue, RecordFormatError> {
        let buf = &mut buf;
        let version = get_i16(buf)?;
        if !(0..=3).contains(&version) {
            return Err(RecordFormatError::Unsupported("group value version"));
        }
        let protocol_type = get_string(buf)?;
        let generation = get_i32(buf)?;
        let protocol = get_nullable_string(buf)?;
        let leader = get_nullable_string(buf)?;
        let current_state_timestamp_ms = if version >= 2 { get_i64(buf)? } else { -1 };
        let count = get_i32(buf)?;
        // Each member takes at least 26 bytes: a lie about the count fails before allocating.
        let count = usize::try_from(count).map_err(|_| RecordFormatError::Unsupported("member count"))?;
        if count > buf.len() / 26 {
            return Err(RecordFormatError::Truncated);
        }
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            let member_id = get_string(buf)?;
            let instance_id = if version >= 3 { get_nullable_string(buf)? } else { None };
            let client_id = get_string(buf)?;
            let client_host = get_string(buf)?;
            let rebalance_timeout_ms = if version >= 1 { get_i32(buf)? } else { -1 };
            let session_timeout_ms = get_i32(buf)?;
            let subscription = get_bytes(buf)?;
            let assignment = get_bytes(buf)?;
            members.push(StoredMember {
                member_id,
                instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms: if rebalance_timeout_ms < 0 { session_timeout_ms } else { rebalance_timeout_ms },
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp_ms, members })
    }
}

fn put_string(out: &mut BytesMut, s: &str) {
    // Group ids, topics and metadata are bounded well below i16::MAX by the request codec
    // (their wire form has the same i16 length); clamp rather than wrap if not.
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.put_i16(bytes.len() as i16);
    out.put_slice(bytes);
}

fn put_nullable_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => out.put_i16(-1),
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
    out.put_slice(b);
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], RecordFormatError> {
    if buf.len() < n {
        return Err(RecordFormatError::Truncated);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn get_i16(buf: &mut &[u8]) -> Result<i16, RecordFormatError> {
    let b = take(buf, 2)?;
    Ok(i16::from_be_bytes([b[0], b[1]]))
}

fn get_i32(buf: &mut &[u8]) -> Result<i32, RecordFormatError> {
    let b = take(buf, 4)?;
    Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn get_i64(buf: &mut &[u8]) -> Result<i64, RecordFormatError> {
    let b = take(buf, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(i64::from_be_bytes(a))
}

fn get_nullable_string(buf: &mut &[u8]) -> Result<Option<String>, RecordFormatError> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Ok(None);
    }
    let bytes = take(buf, len as usize)?;
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

fn get_string(buf: &mut &[u8]) -> Result<String, RecordFormatError> {
    Ok(get_nullable_string(buf)?.unwrap_or_default())
}

fn get_bytes(buf: &mut &[u8]) -> Result<Bytes, RecordFormatError> {
    let len = get_i32(buf)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    Ok(Bytes::copy_from_slice(take(buf, len as usize)?))
}

/// The topics a consumer-protocol member subscribes to, read from its subscription metadata
/// (`ConsumerProtocolSubscription`: version, then the topic array, then fields we ignore).
pub fn subscribed_topics(mut metadata: &[u8]) -> Result<Vec<String>, RecordFormatError> {
    let buf = &mut metadata;
    let _version = get_i16(buf)?;
    let count = get_i32(buf)?;
    let count = usize::try_from(count).map_err(|_| RecordFormatError::Unsupported("topic count"))?;
    if count > buf.len() / 2 {
        return Err(RecordFormatError::Truncated);
    }
    (0..count).map(|_| get_string(buf)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_records_round_trip_in_kafkas_layout() {
        let key = RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 7 };
        let bytes = key.encode();
        assert_eq!(&bytes[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        assert_eq!(RecordKey::decode(&bytes), Ok(key));
        let value = OffsetValue { offset: 42, leader_epoch: 3, metadata: "m".into(), commit_timestamp_ms: 9 };
        let bytes = value.encode();
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(bytes.len(), 2 + 8 + 4 + 3 + 8);
        assert_eq!(OffsetValue::decode(&bytes), Ok(value));
    }

    #[test]
    fn group_records_round_trip() {
        let value = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 77,
            members: vec![StoredMember {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300,
                session_timeout_ms: 100,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupValue::decode(&value.encode()), Ok(value));
        assert_eq!(RecordKey::decode(&RecordKey::Group("g".into()).encode()), Ok(RecordKey::Group("g".into())));
    }

    #[test]
    fn truncated_and_lying_records_are_errors() {
        assert!(RecordKey::decode(&[0, 1, 0, 5, b'a']).is_err());
        assert!(
            GroupValue::decode(&[0, 3, 0, 0, 0, 0, 0, 1, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 0])
                .is_err()
        );
        assert_eq!(subscribed_topics(&[0, 0, 0, 0, 0, 2, 0, 1, b'a', 0, 1, b'b']), Ok(vec!["a".into(), "b".into()]));
        assert!(subscribed_topics(&[0, 0, 0x7f, 0, 0, 0]).is_err());
    }
}
