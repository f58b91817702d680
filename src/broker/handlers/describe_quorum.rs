//! DescribeQuorum (KIP-595): the metadata quorum's state, as Kafka describes its KRaft metadata
//! log (`__cluster_metadata` partition 0). The leader epoch is the Raft term, the high watermark
//! the commit index, and a voter's log end offset the index the leader knows it has replicated
//! (Raft's match index). Observers are the registered brokers that are not voters, at the image
//! index their last heartbeat reported. What `kafka-metadata-quorum.sh describe` shows.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::broker::ShardBroker;
use crate::cluster::rpc::QuorumStatus;
use crate::protocol::messages::{
    DescribeQuorumRequest, DescribeQuorumResponse, DescribeQuorumResponseListener, DescribeQuorumResponseNode,
    DescribeQuorumResponsePartition, DescribeQuorumResponseReplica, DescribeQuorumResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// Kafka's name for the metadata log's topic; the quorum has one partition, 0.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The listener name the voters' quorum addresses are described under (Kafka's default name for
/// the controller listener).
const CONTROLLER_LISTENER: &str = "CONTROLLER";
/// A timestamp or offset that is not known.
const UNKNOWN: i64 = -1;

/// DescribeQuorum.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DescribeQuorumRequest) -> Reply {
    // Kafka's raft client answers a request for anything but its one partition with
    // UNKNOWN_TOPIC_OR_PARTITION for the whole request.
    let asks_metadata_log = matches!(request.topics.as_slice(), [topic]
        if topic.topic_name == METADATA_TOPIC
            && matches!(topic.partitions.as_slice(), [partition] if partition.partition_index == 0));
    if !asks_metadata_log {
        let response = DescribeQuorumResponse {
            error_code: ErrorCode::UnknownTopicOrPartition.code(),
            error_message: Some("DescribeQuorum describes only __cluster_metadata partition 0".into()),
            ..Default::default()
        };
        return respond(header, &response);
    }
    let partition = match broker.metadata.quorum_status().await {
        Ok(status) => describe(&status, now_ms()),
        // No controller answered: what a quorum member that is not the leader says, which the
        // Java admin client retries.
        Err(why) => DescribeQuorumResponsePartition {
            error_code: ErrorCode::NotLeaderOrFollower.code(),
            error_message: Some(why),
            leader_id: -1,
            leader_epoch: -1,
            high_watermark: UNKNOWN,
            ..Default::default()
        },
    };
    let nodes = broker
        .config
        .cluster
        .voters
        .iter()
        .map(|(id, addr)| DescribeQuorumResponseNode {
            node_id: *id,
            // A single node has no quorum transport (port 0): it has no address to describe.
            listeners: (addr.port() != 0)
                .then(|| DescribeQuorumResponseListener {
                    name: CONTROLLER_LISTENER.into(),
                    host: addr.ip().to_string(),
                    port: addr.port(),
                })
                .into_iter()
                .collect(),
        })
        .collect();
    let response = DescribeQuorumResponse {
        error_code: 0,
        error_message: None,
        topics: vec![DescribeQuorumResponseTopic { topic_name: METADATA_TOPIC.into(), partitions: vec![partition] }],
        nodes,
    };
    respond(header, &response)
}

/// The metadata log's partition as `status` describes it, at wall-clock time `now_ms`.
fn describe(status: &QuorumStatus, now_ms: i64) -> DescribeQuorumResponsePartition {
    let leader = status.leader.unwrap_or(-1);
    let high_watermark = offset(status.commit_index);
    let mut voters: Vec<DescribeQuorumResponseReplica> = status
        .voters
        .iter()
        .map(|&(id, matched)| DescribeQuorumResponseReplica {
            replica_id: id,
            log_end_offset: offset(matched),
            // The leader is caught up with itself now and never fetches (Kafka's convention);
            // Raft's progress keeps no times for the others.
            last_caught_up_timestamp: if id == leader { now_ms } else { UNKNOWN },
            ..Default::default()
        })
        .collect();
    // Kafka's tools look the leader up among the voters; make sure it is there.
    if status.leader.is_some() && !voters.iter().any(|v| v.replica_id == leader) {
        voters.push(DescribeQuorumResponseReplica {
            replica_id: leader,
            log_end_offset: high_watermark,
            last_caught_up_timestamp: now_ms,
            ..Default::default()
        });
    }
    let observers = status
        .observers
        .iter()
        .map(|&(id, applied)| DescribeQuorumResponseReplica {
            replica_id: id,
            log_end_offset: applied.map_or(UNKNOWN, offset),
            ..Default::default()
        })
        .collect();
    DescribeQuorumResponsePartition {
        partition_index: 0,
        error_code: 0,
        error_message: None,
        leader_id: leader,
        leader_epoch: i32::try_from(status.term).unwrap_or(i32::MAX),
        high_watermark,
        current_voters: voters,
        observers,
    }
}

/// A Raft index as a Kafka offset (the index of the next entry: Raft's indexes start at 1, so
/// the index of the last entry is the offset after it).
fn offset(index: u64) -> i64 {
    i64::try_from(index).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_a_voter_caught_up_now_and_observers_show_their_applied_index() {
        let status = QuorumStatus {
            leader: Some(2),
            term: 7,
            commit_index: 40,
            voters: vec![(1, 38), (2, 40), (3, 40)],
            observers: vec![(4, Some(39)), (5, None)],
        };
        let partition = describe(&status, 1_000);
        assert_eq!((partition.leader_id, partition.leader_epoch, partition.high_watermark), (2, 7, 40));
        let voters: Vec<_> = partition
            .current_voters
            .iter()
            .map(|v| (v.replica_id, v.log_end_offset, v.last_fetch_timestamp, v.last_caught_up_timestamp))
            .collect();
        assert_eq!(voters, vec![(1, 38, -1, -1), (2, 40, -1, 1_000), (3, 40, -1, -1)]);
        let observers: Vec<_> = partition.observers.iter().map(|o| (o.replica_id, o.log_end_offset)).collect();
        assert_eq!(observers, vec![(4, 39), (5, -1)]);
    }

    #[test]
    fn a_leader_missing_from_the_progress_is_added() {
        let status = QuorumStatus { leader: Some(1), term: 1, commit_index: 3, voters: vec![], observers: vec![] };
        let partition = describe(&status, 5);
        assert_eq!(partition.current_voters.len(), 1);
        assert_eq!(partition.current_voters[0].replica_id, 1);
        assert_eq!(partition.current_voters[0].log_end_offset, 3);
    }
}
