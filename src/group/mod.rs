//! The consumer group coordinator's logic, without I/O: each group's state machine
//! ([`state::Group`]), the records it keeps in `__consumer_offsets` ([`records`]), and which
//! partition of that topic (hence which shard) coordinates a group ([`partition_for`]).
//!
//! The broker (`broker/groups/`) owns the groups of the partitions its shard owns, feeds them
//! requests and the clock, persists what they ask, and delivers their replies.

pub mod records;
pub mod state;

#[cfg(test)]
mod tests;

pub use records::{GroupValue, OffsetValue, RecordKey};
pub use state::{
    CommittedOffset, Effect, Group, GroupConfig, GroupDescription, GroupState, JoinRequest, JoinResult, SyncRequest,
    SyncResult, Waiter,
};

/// The internal topic that holds committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// `offset.metadata.max.bytes`: the longest metadata string kept with an offset (Kafka's default).
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;

/// Java's `String.hashCode` of `s` (over UTF-16 code units, wrapping), which Kafka uses to place
/// groups.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// The partition of `__consumer_offsets` that holds `group_id`: Kafka's
/// `Utils.abs(groupId.hashCode) % groupMetadataTopicPartitionCount`, where `Utils.abs` maps
/// `i32::MIN` to 0.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = java_string_hash(group_id);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    if partitions <= 0 { 0 } else { abs % partitions }
}
