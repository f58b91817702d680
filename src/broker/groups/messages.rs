//! [`GroupRequest`]: what a handler on any shard asks of the shard that coordinates a group.

use crate::group::{CommittedOffset, GroupDescription, JoinRequest, JoinResult, SyncRequest, SyncResult};
use crate::protocol::ErrorCode;

/// A group operation, for the shard that coordinates the group (or, for `List`, every shard).
#[derive(Debug)]
pub enum GroupRequest {
    /// An operation on one group.
    ForGroup {
        /// The group id.
        group: String,
        /// Its partition of `__consumer_offsets`, which decides the coordinating shard.
        partition: i32,
        /// What to do (boxed: a join carries its members' protocols, far larger than `List`).
        op: Box<GroupOp>,
    },
    /// ListGroups (this shard's groups).
    List,
}

/// A member as a request names it.
#[derive(Debug, Clone)]
pub struct MemberRef {
    /// The generation the member believes in (-1 outside group management).
    pub generation: i32,
    /// Member id.
    pub member_id: String,
    /// Static id (`group.instance.id`).
    pub instance_id: Option<String>,
}

/// A member leaving (LeaveGroup names members without generations).
#[derive(Debug, Clone)]
pub struct LeavingMember {
    /// Member id.
    pub member_id: String,
    /// Static id.
    pub instance_id: Option<String>,
}

/// What to do to one group.
#[derive(Debug)]
pub enum GroupOp {
    /// JoinGroup.
    Join(JoinRequest),
    /// SyncGroup.
    Sync(SyncRequest),
    /// Heartbeat.
    Heartbeat(MemberRef),
    /// LeaveGroup.
    Leave(Vec<LeavingMember>),
    /// OffsetCommit: who commits, and the offsets by (topic, partition).
    Commit(MemberRef, Vec<((String, i32), CommittedOffset)>),
    /// OffsetFetch: the partitions, or `None` for all.
    FetchOffsets(Option<Vec<(String, i32)>>),
    /// DescribeGroups.
    Describe,
    /// DeleteGroups.
    Delete,
    /// OffsetDelete.
    OffsetDelete(Vec<(String, i32)>),
}

/// The answer to a [`GroupRequest`].
#[derive(Debug)]
pub enum GroupResponse {
    /// JoinGroup.
    Join(JoinResult),
    /// SyncGroup.
    Sync(SyncResult),
    /// One error code (Heartbeat, DeleteGroups, a commit).
    Code(ErrorCode),
    /// LeaveGroup: a top-level error, or one per member.
    Leave(Result<Vec<ErrorCode>, ErrorCode>),
    /// OffsetFetch: (topic, partition, offset if committed).
    Offsets(Result<Vec<(String, i32, Option<CommittedOffset>)>, ErrorCode>),
    /// ListGroups: (group id, protocol type, state).
    List(Vec<(String, String, &'static str)>),
    /// DescribeGroups.
    Describe(Result<GroupDescription, ErrorCode>),
    /// OffsetDelete: a top-level error, or one per partition.
    OffsetDelete(Result<Vec<ErrorCode>, ErrorCode>),
}
