//! [`GroupRequest`]: what a handler on any shard asks of the shard that coordinates a group.

use crate::group::{CommittedOffset, GroupDescription, JoinRequest, JoinResult, OffsetKey, SyncRequest, SyncResult};
use crate::model::{ControlType, ProducerId};
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
    /// A transaction ends in one `__consumer_offsets` partition: write its marker there, then
    /// commit or drop the producer's pending offsets in the partition's groups.
    TxnMarker {
        /// The partition of `__consumer_offsets`.
        partition: i32,
        /// The producer whose transaction ends.
        producer_id: ProducerId,
        /// Its epoch.
        producer_epoch: i16,
        /// The transaction coordinator's epoch.
        coordinator_epoch: i32,
        /// Commit or abort.
        kind: ControlType,
    },
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
    /// TxnOffsetCommit.
    TxnCommit(TxnCommit),
    /// OffsetFetch.
    FetchOffsets {
        /// The partitions, or `None` for all.
        partitions: Option<Vec<OffsetKey>>,
        /// Answer UNSTABLE_OFFSET_COMMIT for partitions with offsets pending in a transaction
        /// (KIP-447), rather than the offset committed before it.
        require_stable: bool,
    },
    /// DescribeGroups.
    Describe,
    /// DeleteGroups.
    Delete,
    /// OffsetDelete.
    OffsetDelete(Vec<(String, i32)>),
}

/// Offsets committed inside a transaction (TxnOffsetCommit): pending until it ends.
#[derive(Debug)]
pub struct TxnCommit {
    /// The transactional producer.
    pub producer_id: ProducerId,
    /// Its epoch.
    pub producer_epoch: i16,
    /// The group member it commits for (KIP-447), or generation -1 and no member.
    pub member: MemberRef,
    /// The offsets by (topic, partition).
    pub offsets: Vec<(OffsetKey, CommittedOffset)>,
}

/// One partition's answer to OffsetFetch: its committed offset if any, or the error it gets.
pub type FetchedOffset = Result<Option<CommittedOffset>, ErrorCode>;

/// The answer to a [`GroupRequest`].
#[derive(Debug)]
pub enum GroupResponse {
    /// JoinGroup.
    Join(JoinResult),
    /// SyncGroup.
    Sync(SyncResult),
    /// One error code (Heartbeat, DeleteGroups, a commit, a transaction marker).
    Code(ErrorCode),
    /// LeaveGroup: a top-level error, or one per member.
    Leave(Result<Vec<ErrorCode>, ErrorCode>),
    /// OffsetFetch: (topic, partition, its answer).
    Offsets(Result<Vec<(String, i32, FetchedOffset)>, ErrorCode>),
    /// ListGroups: (group id, protocol type, state).
    List(Vec<(String, String, &'static str)>),
    /// DescribeGroups.
    Describe(Result<GroupDescription, ErrorCode>),
    /// OffsetDelete: a top-level error, or one per partition.
    OffsetDelete(Result<Vec<ErrorCode>, ErrorCode>),
}
