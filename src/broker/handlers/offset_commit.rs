//! OffsetCommit: partition checks here (unknown partitions, oversized metadata), the group checks
//! and the durable append on the coordinating shard.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::groups::{GroupOp, GroupResponse, MemberRef};
use crate::group::{CommittedOffset, OFFSET_METADATA_BYTES_MAX};
use crate::model::Timestamp;
use crate::protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// A partition of the request: the offset to commit, or the error it gets regardless of the group.
pub(crate) type Checked = (i32, Result<CommittedOffset, ErrorCode>);

/// OffsetCommit (v0-8).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: OffsetCommitRequest) -> Reply {
    let now = Timestamp::now().0;
    let mut checked: Vec<(String, Vec<Checked>)> = Vec::new();
    for topic in &request.topics {
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let offset = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.clone(),
                    commit_timestamp_ms: if p.commit_timestamp >= 0 { p.commit_timestamp } else { now },
                };
                (p.partition_index, check_offset(broker, &topic.name, p.partition_index, offset))
            })
            .collect();
        checked.push((topic.name.clone(), partitions));
    }
    let offsets = accepted(&checked);
    let group_error = if request.group_id.is_empty() {
        ErrorCode::InvalidGroupId
    } else if offsets.is_empty() {
        ErrorCode::None
    } else {
        let member = MemberRef {
            generation: request.generation_id_or_member_epoch,
            member_id: request.member_id.clone(),
            instance_id: request.group_instance_id.clone(),
        };
        match broker.groups.route(&request.group_id, GroupOp::Commit(member, offsets)).await {
            Ok(GroupResponse::Code(code)) => code,
            Ok(_) => ErrorCode::UnknownServerError,
            Err(e) => e,
        }
    };
    let topics = checked
        .into_iter()
        .map(|(name, partitions)| OffsetCommitResponseTopic {
            name,
            partitions: partitions
                .into_iter()
                .map(|(partition_index, r)| OffsetCommitResponsePartition {
                    partition_index,
                    error_code: r.err().unwrap_or(group_error).code(),
                })
                .collect(),
        })
        .collect();
    respond(header, &OffsetCommitResponse { topics, ..Default::default() })
}

/// A partition's offset to commit, or the error it gets whatever the group says: an unknown
/// partition, or metadata over `offset.metadata.max.bytes` (OffsetCommit and TxnOffsetCommit).
pub(crate) fn check_offset(
    broker: &ShardBroker,
    topic: &str,
    partition: i32,
    offset: CommittedOffset,
) -> Result<CommittedOffset, ErrorCode> {
    // The partition must exist in the cluster, as in Kafka; which broker leads it is no concern
    // of the group coordinator (in a cluster it is usually another one).
    if !broker.metadata.exists(topic, partition) {
        Err(ErrorCode::UnknownTopicOrPartition)
    } else if offset.metadata.as_ref().is_some_and(|m| m.len() > OFFSET_METADATA_BYTES_MAX) {
        Err(ErrorCode::OffsetMetadataTooLarge)
    } else {
        Ok(offset)
    }
}

/// The offsets of `checked` that passed the per-partition checks, to hand to the group.
pub(crate) fn accepted(checked: &[(String, Vec<Checked>)]) -> Vec<((String, i32), CommittedOffset)> {
    checked
        .iter()
        .flat_map(|(t, ps)| ps.iter().filter_map(|(p, r)| r.as_ref().ok().map(|o| ((t.clone(), *p), o.clone()))))
        .collect()
}
