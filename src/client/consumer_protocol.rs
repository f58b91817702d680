//! The consumer protocol's embedded formats: what a member puts in JoinGroup's protocol metadata
//! (its subscription) and what the leader puts in SyncGroup (each member's assignment). They
//! travel as opaque bytes through the coordinator, so every client of the group must agree on
//! them: these are Kafka's `ConsumerProtocolSubscription` (v0–v3) and
//! `ConsumerProtocolAssignment` (v0–v3), in the classic (non-flexible) encoding with an `i16`
//! version first.
//!
//! Decoding reads bytes other members wrote: every length is checked against what is left
//! before allocating, and a newer version's extra fields are ignored, as Kafka does.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

/// The subscription version this client writes: owned partitions (v1), generation (v2), rack
/// (v3) included.
const SUBSCRIPTION_VERSION: i16 = 3;

/// The assignment version this client writes (v1+ has no new fields; v0 would do).
const ASSIGNMENT_VERSION: i16 = 3;

/// A member's subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Topics the member wants.
    pub topics: Vec<String>,
    /// Opaque assignor data.
    pub user_data: Option<Bytes>,
    /// Partitions the member owned in the generation it last joined (cooperative rebalancing).
    pub owned_partitions: BTreeMap<String, Vec<i32>>,
    /// That generation, or -1.
    pub generation: i32,
    /// The member's rack, if configured.
    pub rack: Option<String>,
}

/// A member's assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Partitions by topic.
    pub partitions: BTreeMap<String, Vec<i32>>,
    /// Opaque assignor data.
    pub user_data: Option<Bytes>,
}

/// Bytes from another member that do not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad consumer protocol {what}: {reason}")]
pub struct ProtocolError {
    what: &'static str,
    reason: String,
}

impl Subscription {
    /// The bytes for JoinGroup's protocol metadata.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(SUBSCRIPTION_VERSION);
        put_array_len(&mut out, self.topics.len());
        for topic in &self.topics {
            put_string(&mut out, topic);
        }
        put_bytes(&mut out, self.user_data.as_deref());
        put_topic_partitions(&mut out, &self.owned_partitions);
        out.put_i32(self.generation);
        match &self.rack {
            Some(rack) => put_string(&mut out, rack),
            None => out.put_i16(-1),
        }
        out.freeze()
    }

    /// Parses a member's subscription.
    pub fn decode(bytes: &[u8]) -> Result<Subscription, ProtocolError> {
        let mut r = Reader { buf: bytes, what: "subscription" };
        let version = r.i16()?;
        if version < 0 {
            return Err(r.error(format!("negative version {version}")));
        }
        let count = r.array_len()?;
        let mut topics = Vec::with_capacity(count.min(r.buf.len() / 2));
        for _ in 0..count {
            topics.push(r.string()?);
        }
        let user_data = r.nullable_bytes()?;
        let mut subscription = Subscription { topics, user_data, generation: -1, ..Default::default() };
        // Fields of later versions; an older member's bytes simply end earlier.
        if version >= 1 && !r.buf.is_empty() {
            subscription.owned_partitions = r.topic_partitions()?;
        }
        if version >= 2 && !r.buf.is_empty() {
            subscription.generation = r.i32()?;
        }
        if version >= 3 && !r.buf.is_empty() {
            subscription.rack = r.nullable_string()?;
        }
        Ok(subscription)
    }
}

impl Assignment {
    /// The bytes for SyncGroup.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(ASSIGNMENT_VERSION);
        put_topic_partitions(&mut out, &self.partitions);
        put_bytes(&mut out, self.user_data.as_deref());
        out.freeze()
    }

    /// Parses an assignment; empty bytes (a member the leader gave nothing) is no partitions.
    pub fn decode(bytes: &[u8]) -> Result<Assignment, ProtocolError> {
        if bytes.is_empty() {
            return Ok(Assignment::default());
        }
        let mut r = Reader { buf: bytes, what: "assignment" };
        let version = r.i16()?;
        if version < 0 {
            return Err(r.error(format!("negative version {version}")));
        }
        let partitions = r.topic_partitions()?;
        let user_data = if r.buf.is_empty() { None } else { r.nullable_bytes()? };
        Ok(Assignment { partitions, user_data })
    }
}

fn put_array_len(out: &mut BytesMut, len: usize) {
    out.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
}

fn put_string(out: &mut BytesMut, s: &str) {
    out.put_i16(i16::try_from(s.len()).unwrap_or(i16::MAX));
    out.put_slice(s.as_bytes());
}

fn put_bytes(out: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            out.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
            out.put_slice(b);
        }
        None => out.put_i32(-1),
    }
}

fn put_topic_partitions(out: &mut BytesMut, partitions: &BTreeMap<String, Vec<i32>>) {
    put_array_len(out, partitions.len());
    for (topic, list) in partitions {
        put_string(out, topic);
        put_array_len(out, list.len());
        for p in list {
            out.put_i32(*p);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: String) -> ProtocolError {
        ProtocolError { what: self.what, reason }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(self.error(format!("needs {n} more bytes, {} left", self.buf.len())));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, ProtocolError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, ProtocolError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An array length, checked against the bytes left (each element takes at least 2).
    fn array_len(&mut self) -> Result<usize, ProtocolError> {
        let len = self.i32()?;
        let len = usize::try_from(len).map_err(|_| self.error(format!("array length {len}")))?;
        if len > self.buf.len() / 2 {
            return Err(self.error(format!("array of {len} in {} bytes", self.buf.len())));
        }
        Ok(len)
    }

    fn string(&mut self) -> Result<String, ProtocolError> {
        self.nullable_string()?.ok_or_else(|| self.error("null string".into()))
    }

    fn nullable_string(&mut self) -> Result<Option<String>, ProtocolError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec()).map(Some).map_err(|_| self.error("string is not UTF-8".into()))
    }

    fn nullable_bytes(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(Bytes::copy_from_slice(self.take(len as usize)?)))
    }

    fn topic_partitions(&mut self) -> Result<BTreeMap<String, Vec<i32>>, ProtocolError> {
        let topics = self.array_len()?;
        let mut out = BTreeMap::new();
        for _ in 0..topics {
            let topic = self.string()?;
            let count = self.array_len()?;
            let mut partitions = Vec::with_capacity(count);
            for _ in 0..count {
                partitions.push(self.i32()?);
            }
            out.entry(topic).or_insert_with(Vec::new).extend(partitions);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_and_assignments_round_trip() {
        let subscription = Subscription {
            topics: vec!["a".into(), "b".into()],
            user_data: Some(Bytes::from_static(b"u")),
            owned_partitions: BTreeMap::from([("a".into(), vec![0, 2])]),
            generation: 7,
            rack: Some("r1".into()),
        };
        assert_eq!(Subscription::decode(&subscription.encode()).unwrap(), subscription);
        let assignment = Assignment {
            partitions: BTreeMap::from([("a".into(), vec![1]), ("b".into(), vec![0, 3])]),
            user_data: None,
        };
        assert_eq!(Assignment::decode(&assignment.encode()).unwrap(), assignment);
        assert_eq!(Assignment::decode(&[]).unwrap(), Assignment::default());
    }

    #[test]
    fn a_v0_subscription_from_an_older_client_decodes() {
        // version 0, one topic "t", null user data.
        let bytes = [0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
        let s = Subscription::decode(&bytes).unwrap();
        assert_eq!(s.topics, ["t"]);
        assert_eq!(s.generation, -1);
        assert!(s.owned_partitions.is_empty());
    }

    #[test]
    fn every_truncation_and_lying_length_is_an_error_not_a_panic() {
        let subscription = Subscription { topics: vec!["topic".into()], generation: 1, ..Default::default() };
        let bytes = subscription.encode();
        // Cuts inside the v0 part must fail; cuts after it decode the fields that are there.
        for cut in 0..9 {
            assert!(Subscription::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let assignment = Assignment { partitions: BTreeMap::from([("t".into(), vec![1, 2])]), user_data: None };
        let bytes = assignment.encode();
        for cut in 1..bytes.len() - 4 {
            assert!(Assignment::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Subscription::decode(&[0, 1, 0x7f, 0xff, 0xff, 0xff]).is_err(), "2^31 topics in 0 bytes");
    }
}
