//! TxnOffsetCommit (KIP-98, KIP-447): a transactional producer commits a group's offsets inside
//! its transaction, so that they count only if the transaction commits. Partition checks here
//! (unknown partitions, oversized metadata); then the transaction coordinator confirms that the
//! group's `__consumer_offsets` partition is in the producer's ongoing transaction (KIP-890: an
//! offset commit outside it would leave offsets pending that no marker ever ends); then the
//! group checks and the append happen on the coordinating shard, where the offsets stay pending
//! until the transaction's marker is written there.

use std::rc::Rc;

use super::offset_commit::{Checked, accepted, check_offset};
use crate::broker::ShardBroker;
use crate::broker::groups::{GroupOp, GroupResponse, MemberRef, TxnCommit};
use crate::group::{CommittedOffset, OFFSETS_TOPIC};
use crate::model::{ProducerId, Timestamp};
use crate::protocol::messages::{
    TxnOffsetCommitRequest, TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// TxnOffsetCommit (v0-5).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: TxnOffsetCommitRequest) -> Reply {
    let now = Timestamp::now().0;
    let mut checked: Vec<(String, Vec<Checked>)> = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                // The request carries no commit time: the coordinator's clock stamps it.
                let offset = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.clone(),
                    commit_timestamp_ms: now,
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
        commit(broker, &request, offsets).await
    };
    let topics = checked
        .into_iter()
        .map(|(name, partitions)| TxnOffsetCommitResponseTopic {
            name,
            partitions: partitions
                .into_iter()
                .map(|(partition_index, r)| TxnOffsetCommitResponsePartition {
                    partition_index,
                    error_code: r.err().unwrap_or(group_error).code(),
                })
                .collect(),
        })
        .collect();
    respond(header, &TxnOffsetCommitResponse { topics, ..Default::default() })
}

/// Verifies the transaction, then commits `offsets` pending in it on the group's coordinator.
async fn commit(
    broker: &Rc<ShardBroker>,
    request: &TxnOffsetCommitRequest,
    offsets: Vec<((String, i32), CommittedOffset)>,
) -> ErrorCode {
    let producer_id = ProducerId(request.producer_id);
    let partitions = match broker.groups.ensure_offsets_topic().await {
        Ok(partitions) => partitions,
        Err(e) => return e,
    };
    let partition = crate::group::partition_for(&request.group_id, partitions);
    // The transaction coordinator may be another broker than this group coordinator.
    let partitions = vec![(OFFSETS_TOPIC.to_string(), partition)];
    let verified =
        broker.transactions.verify(&request.transactional_id, producer_id, request.producer_epoch, partitions);
    if let Err(e) = verified.await {
        return verification_error(e);
    }
    let member = MemberRef {
        generation: request.generation_id,
        member_id: request.member_id.clone(),
        instance_id: request.group_instance_id.clone(),
    };
    let op = GroupOp::TxnCommit(TxnCommit { producer_id, producer_epoch: request.producer_epoch, member, offsets });
    match broker.groups.route(&request.group_id, op).await {
        Ok(GroupResponse::Code(code)) => code,
        Ok(_) => ErrorCode::UnknownServerError,
        Err(e) => e,
    }
}

/// What the producer hears when its transaction coordinator refused the verification. Its
/// coordinator's own availability errors would send the client looking for the group's
/// coordinator, so they become the group coordinator's retriable COORDINATOR_NOT_AVAILABLE or
/// COORDINATOR_LOAD_IN_PROGRESS, as Kafka converts them; PRODUCER_FENCED is INVALID_PRODUCER_EPOCH,
/// which every TxnOffsetCommit version knows and clients treat alike.
fn verification_error(e: ErrorCode) -> ErrorCode {
    match e {
        ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::ProducerFenced => ErrorCode::InvalidProducerEpoch,
        other => other,
    }
}
