//! The consumer group coordinator's logic, without I/O: each group's state machine
//! ([`state::Group`]), its offsets, committed and pending in transactions ([`offsets`]), the
//! records it keeps in `__consumer_offsets` ([`records`]), and which partition of that topic
//! (hence which shard) coordinates a group ([`partition_for`]).
//!
//! The broker (`broker/groups/`) owns the groups of the partitions its shard owns, feeds them
//! requests and the clock, persists what they ask, and delivers their replies.

pub mod offsets;
pub mod records;
pub mod state;

#[cfg(test)]
mod tests;

pub use offsets::{CommittedOffset, GroupOffsets, OffsetKey};
pub use records::{GroupValue, OffsetValue, RecordKey};
pub use state::{
    Effect, Group, GroupConfig, GroupDescription, GroupState, JoinRequest, JoinResult, SyncRequest, SyncResult, Waiter,
};

/// The internal topic that holds committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// `offset.metadata.max.bytes`: the longest metadata string kept with an offset (Kafka's default).
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;

pub use crate::model::java_string_hash;

/// The partition of `__consumer_offsets` that holds `group_id` (Kafka's placement of a group:
/// see [`crate::model::partition_for_key`]).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    crate::model::partition_for_key(group_id, partitions)
}
