//! The records of `__transaction_state`, in Kafka's formats, so Kafka's tools can read a
//! Sluice log: key = version i16 (0), transactional id (string); value version 0 = producer id
//! i64, producer epoch i16, transaction timeout i32, status i8, partitions (nullable array of
//! topic string + array of i32 partition ids), last update time i64, start time i64. A null
//! value (tombstone) forgets an expired id. Strings are i16-length-prefixed; arrays
//! i32-count-prefixed.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState};
use crate::model::ProducerId;

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;
/// The most partitions one stored transaction may name; more is damage, refused before
/// allocating.
const STORED_PARTITIONS_MAX: usize = 1_000_000;

/// Why a stored record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnRecordError {
    /// It ended early.
    #[error("truncated transaction record")]
    Truncated,
    /// A version this broker does not know.
    #[error("unknown transaction record version {0}")]
    UnknownVersion(i16),
    /// A status byte outside Kafka's states.
    #[error("unknown transaction status {0}")]
    UnknownStatus(i8),
    /// A string that is not UTF-8, or a negative length.
    #[error("malformed transaction record")]
    Malformed,
}

/// The key of a `__transaction_state` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnKey(pub String);

impl TxnKey {
    /// The record key.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(4 + self.0.len());
        out.put_i16(KEY_VERSION);
        put_string(&mut out, &self.0);
        out.freeze()
    }

    /// Reads a record key.
    pub fn decode(mut buf: &[u8]) -> Result<TxnKey, TxnRecordError> {
        let version = get_i16(&mut buf)?;
        if version != KEY_VERSION {
            return Err(TxnRecordError::UnknownVersion(version));
        }
        Ok(TxnKey(get_string(&mut buf)?))
    }
}

/// The value of a `__transaction_state` record: one id's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    /// Producer id.
    pub producer_id: ProducerId,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// The partitions in the transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Last change.
    pub last_update_ms: i64,
    /// When the transaction began (-1 when none is open).
    pub start_ms: i64,
}

impl TxnValue {
    /// What to store for `meta`.
    pub fn of(meta: &TxnMetadata) -> TxnValue {
        TxnValue {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            timeout_ms: meta.timeout_ms,
            state: meta.state,
            partitions: meta.partitions.clone(),
            last_update_ms: meta.last_update_ms,
            start_ms: meta.start_ms,
        }
    }

    /// The record value.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        out.put_i16(VALUE_VERSION);
        out.put_i64(self.producer_id.0);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.timeout_ms);
        out.put_i8(self.state.code());
        // Grouped by topic, as Kafka stores them.
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (topic, partition) in &self.partitions {
            match topics.last_mut() {
                Some((t, ids)) if *t == topic.as_str() => ids.push(*partition),
                _ => topics.push((topic, vec![*partition])),
            }
        }
        out.put_i32(i32::try_from(topics.len()).unwrap_or(i32::MAX));
        for (topic, ids) in topics {
            put_string(&mut out, topic);
            out.put_i32(i32::try_from(ids.len()).unwrap_or(i32::MAX));
            for id in ids {
                out.put_i32(id);
            }
        }
        out.put_i64(self.last_update_ms);
        out.put_i64(self.start_ms);
        out.freeze()
    }

    /// Reads a record value.
    pub fn decode(mut buf: &[u8]) -> Result<TxnValue, TxnRecordError> {
        let version = get_i16(&mut buf)?;
        if version != VALUE_VERSION {
            return Err(TxnRecordError::UnknownVersion(version));
        }
        let producer_id = ProducerId(get_i64(&mut buf)?);
        let producer_epoch = get_i16(&mut buf)?;
        let timeout_ms = get_i32(&mut buf)?;
        let status = get_i8(&mut buf)?;
        let state = TxnState::from_code(status).ok_or(TxnRecordError::UnknownStatus(status))?;
        let mut partitions = BTreeSet::new();
        let topics = get_i32(&mut buf)?;
        if topics > 0 {
            let topics = usize::try_from(topics).map_err(|_| TxnRecordError::Malformed)?;
            for _ in 0..topics.min(STORED_PARTITIONS_MAX) {
                let topic = get_string(&mut buf)?;
                let count = usize::try_from(get_i32(&mut buf)?).map_err(|_| TxnRecordError::Malformed)?;
                if count > STORED_PARTITIONS_MAX || count * 4 > buf.len() {
                    return Err(TxnRecordError::Truncated);
                }
                for _ in 0..count {
                    partitions.insert((topic.clone(), get_i32(&mut buf)?));
                }
            }
        }
        let last_update_ms = get_i64(&mut buf)?;
        let start_ms = get_i64(&mut buf)?;
        Ok(TxnValue { producer_id, producer_epoch, timeout_ms, state, partitions, last_update_ms, start_ms })
    }
}

fn put_string(out: &mut BytesMut, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.put_i16(i16::try_from(bytes.len()).unwrap_or(i16::MAX));
    out.put_slice(bytes);
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], TxnRecordError> {
    if buf.len() < n {
        return Err(TxnRecordError::Truncated);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn get_i8(buf: &mut &[u8]) -> Result<i8, TxnRecordError> {
    Ok(i8::from_be_bytes(take(buf, 1)?.try_into().map_err(|_| TxnRecordError::Truncated)?))
}

fn get_i16(buf: &mut &[u8]) -> Result<i16, TxnRecordError> {
    Ok(i16::from_be_bytes(take(buf, 2)?.try_into().map_err(|_| TxnRecordError::Truncated)?))
}

fn get_i32(buf: &mut &[u8]) -> Result<i32, TxnRecordError> {
    Ok(i32::from_be_bytes(take(buf, 4)?.try_into().map_err(|_| TxnRecordError::Truncated)?))
}

fn get_i64(buf: &mut &[u8]) -> Result<i64, TxnRecordError> {
    Ok(i64::from_be_bytes(take(buf, 8)?.try_into().map_err(|_| TxnRecordError::Truncated)?))
}

fn get_string(buf: &mut &[u8]) -> Result<String, TxnRecordError> {
    let len = usize::try_from(get_i16(buf)?).map_err(|_| TxnRecordError::Malformed)?;
    String::from_utf8(take(buf, len)?.to_vec()).map_err(|_| TxnRecordError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let key = TxnKey("app-1".into());
        assert_eq!(TxnKey::decode(&key.encode()), Ok(key));
        let value = TxnValue {
            producer_id: ProducerId(4000),
            producer_epoch: 7,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [("a".to_string(), 0), ("a".to_string(), 3), ("b".to_string(), 1)].into_iter().collect(),
            last_update_ms: 11,
            start_ms: 10,
        };
        let bytes = value.encode();
        assert_eq!(TxnValue::decode(&bytes), Ok(value));
        for cut in 0..bytes.len() {
            assert!(TxnValue::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.to_vec();
        bad[16] = 42; // the status byte
        assert_eq!(TxnValue::decode(&bad), Err(TxnRecordError::UnknownStatus(42)));
    }
}
