//! Offsets, epochs and timestamps as distinct types, so that a log end offset can never be passed
//! where a leader epoch is expected.
//!
//! Kafka's meanings, which Sluice keeps exactly:
//! - an [`Offset`] names one record in a partition; offsets are dense within a batch and increase
//!   strictly along the log;
//! - the *log start offset* is the earliest offset a client may read;
//! - the *log end offset* (LEO) is the offset the next appended record will get;
//! - the *high watermark* (HW) is the offset below which records are committed (replicated to the
//!   ISR and, under `flush-mode sync`, on disk) and so visible to consumers. HW ≤ LEO always.

use std::fmt;

/// A record's position in its partition's log. Never negative once assigned; Kafka's wire
/// protocol uses -1 for "none", which is kept at the protocol edge and not in this type's values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub i64);

impl Offset {
    /// The first offset of every new partition.
    pub const ZERO: Offset = Offset(0);

    /// `self + delta`, as Kafka computes a record's offset from its batch base offset.
    #[must_use]
    pub fn plus(self, delta: i64) -> Offset {
        Offset(self.0 + delta)
    }

    /// The distance from `base` to `self`, which must fit a segment's u32 relative offset.
    pub fn relative_to(self, base: Offset) -> Option<u32> {
        u32::try_from(self.0.checked_sub(base.0)?).ok()
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The epoch of the partition leader that appended a batch; stamped into the batch header
/// (`partitionLeaderEpoch`) so that followers can find where their log diverged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// Kafka's "no epoch" value, which clients that predate KIP-101 send.
    pub const UNKNOWN: LeaderEpoch = LeaderEpoch(-1);
}

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Milliseconds since the Unix epoch, as every Kafka timestamp is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Kafka's "no timestamp" value.
    pub const NONE: Timestamp = Timestamp(-1);

    /// The wall clock now.
    pub fn now() -> Timestamp {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An idempotent or transactional producer's id; -1 when the producer is neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerId(pub i64);

impl ProducerId {
    /// The id a plain (non-idempotent) producer sends.
    pub const NONE: ProducerId = ProducerId(-1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_offsets_fit_u32_or_are_refused() {
        assert_eq!(Offset(10).relative_to(Offset(4)), Some(6));
        assert_eq!(Offset(3).relative_to(Offset(4)), None);
        assert_eq!(Offset(1 << 40).relative_to(Offset(0)), None);
    }
}
