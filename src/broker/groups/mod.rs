//! The consumer group coordinator's per-shard glue: [`Coordinator`] runs the pure state machines
//! of `crate::group` for the groups whose `__consumer_offsets` partition this shard owns, with
//! their timers, persistence and reload; [`GroupRequest`]s route group operations from any
//! shard to the coordinating one. A transaction coordinator (`txn/`) will follow the same shape.

mod coordinator;
mod messages;

#[cfg(test)]
mod tests;

pub use coordinator::{Coordinator, GroupPeers, coordinator_error, fresh_suffix};
pub use messages::{FetchedOffset, GroupOp, GroupRequest, GroupResponse, LeavingMember, MemberRef, TxnCommit};
