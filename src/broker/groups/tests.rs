//! The coordinator over a real `__consumer_offsets` partition on one shard, wired as
//! `ShardBroker::start` wires it but with loopback peers instead of a mesh: transactional
//! offsets pending until [`Coordinator::write_txn_marker`] ends them, their order against plain
//! commits, and the same state rebuilt by replaying the partition after a restart.

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use super::{Coordinator, FetchedOffset, GroupOp, GroupResponse, MemberRef, TxnCommit};
use crate::broker::config::BrokerConfig;
use crate::broker::metadata::Metadata;
use crate::broker::partition::ShardPartitions;
use crate::group::CommittedOffset;
use crate::model::{ControlType, ProducerId};
use crate::protocol::ErrorCode;
use crate::shard::{Peers, ShardError};
use crate::testing::run_on_shard;

const TOPIC: &str = "t";
const P1: ProducerId = ProducerId(1);
const P2: ProducerId = ProducerId(2);

/// One shard's metadata, partitions and group coordinator.
struct Node {
    partitions: Rc<ShardPartitions>,
    groups: Rc<Coordinator>,
}

/// Starts a one-shard node on `dir` with a one-partition `__consumer_offsets`, so every group
/// shares the partition (and each marker).
async fn start(dir: &Path) -> Node {
    let mut config = BrokerConfig::for_data_dir(dir.to_path_buf(), "127.0.0.1:0".parse().expect("an address"));
    config.offsets_topic_partitions = 1;
    let config = Arc::new(config);
    let partitions = Rc::new(ShardPartitions::new(config.clone()));
    let metadata = Rc::new(Metadata::new(config.clone(), Arc::default(), partitions.clone()));
    let groups = Rc::new(Coordinator::new(config, metadata.clone(), partitions.clone()));
    let weak = Rc::downgrade(&metadata);
    metadata.set_peers(Peers::new(
        0,
        1,
        Rc::new(move |to, request| {
            let metadata = weak.upgrade();
            Box::pin(async move { Ok(metadata.ok_or(ShardError::Unreachable(to))?.serve(request).await) })
        }),
    ));
    let weak = Rc::downgrade(&partitions);
    partitions.set_peers(Peers::new(
        0,
        1,
        Rc::new(move |to, request| {
            let partitions = weak.upgrade();
            Box::pin(async move { Ok(partitions.ok_or(ShardError::Unreachable(to))?.serve(request).await) })
        }),
    ));
    let weak = Rc::downgrade(&groups);
    groups.set_peers(Peers::new(
        0,
        1,
        Rc::new(move |to, request| {
            let groups = weak.upgrade();
            Box::pin(async move { Ok(groups.ok_or(ShardError::Unreachable(to))?.serve(request).await) })
        }),
    ));
    let weak = Rc::downgrade(&groups);
    metadata.on_installed(Rc::new(move || {
        let groups = weak.upgrade();
        Box::pin(async move {
            if let Some(groups) = groups {
                groups.load().await;
            }
        })
    }));
    metadata.start_node(Default::default(), Vec::new()).await.expect("a one-node control plane");
    Node { partitions, groups }
}

fn offsets(partitions: &[(i32, i64)]) -> Vec<((String, i32), CommittedOffset)> {
    partitions
        .iter()
        .map(|&(p, offset)| {
            let committed = CommittedOffset { offset, leader_epoch: -1, metadata: None, commit_timestamp_ms: 1 };
            ((TOPIC.to_string(), p), committed)
        })
        .collect()
}

fn no_member() -> MemberRef {
    MemberRef { generation: -1, member_id: String::new(), instance_id: None }
}

async fn code(node: &Node, group: &str, op: GroupOp) -> ErrorCode {
    match node.groups.route(group, op).await {
        Ok(GroupResponse::Code(code)) => code,
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn commit(node: &Node, group: &str, partitions: &[(i32, i64)]) -> ErrorCode {
    code(node, group, GroupOp::Commit(no_member(), offsets(partitions))).await
}

async fn txn_commit(node: &Node, group: &str, producer: (ProducerId, i16), partitions: &[(i32, i64)]) -> ErrorCode {
    let commit = TxnCommit {
        producer_id: producer.0,
        producer_epoch: producer.1,
        member: no_member(),
        offsets: offsets(partitions),
    };
    code(node, group, GroupOp::TxnCommit(commit)).await
}

/// OffsetFetch of `partitions`: the committed offset, or the error.
async fn fetch(
    node: &Node,
    group: &str,
    partitions: &[i32],
    require_stable: bool,
) -> Vec<Result<Option<i64>, ErrorCode>> {
    let wanted = partitions.iter().map(|&p| (TOPIC.to_string(), p)).collect();
    match node.groups.route(group, GroupOp::FetchOffsets { partitions: Some(wanted), require_stable }).await {
        Ok(GroupResponse::Offsets(Ok(found))) => {
            found.into_iter().map(|(_, _, o): (String, i32, FetchedOffset)| o.map(|o| o.map(|o| o.offset))).collect()
        }
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn marker(node: &Node, producer: (ProducerId, i16), kind: ControlType) -> Result<(), ErrorCode> {
    node.groups.write_txn_marker(0, producer.0, producer.1, 0, kind).await
}

#[test]
fn txn_offsets_wait_for_their_marker_and_replay_the_same() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let node = start(&path).await;
        assert_eq!(commit(&node, "g", &[(0, 5)]).await, ErrorCode::None);
        assert_eq!(txn_commit(&node, "g", (P1, 0), &[(0, 7), (1, 3)]).await, ErrorCode::None);
        assert_eq!(txn_commit(&node, "h", (P1, 0), &[(0, 11)]).await, ErrorCode::None, "a second group");
        assert_eq!(txn_commit(&node, "g", (P2, 0), &[(2, 9)]).await, ErrorCode::None, "a second producer");
        assert_eq!(fetch(&node, "g", &[0, 1, 2], false).await, [Ok(Some(5)), Ok(None), Ok(None)]);
        let unstable = Err(ErrorCode::UnstableOffsetCommit);
        assert_eq!(fetch(&node, "g", &[0, 1, 2, 3], true).await, [unstable, unstable, unstable, Ok(None)]);

        // COMMIT ends P1's transaction in both groups of the partition; ABORT drops P2's.
        assert_eq!(marker(&node, (P1, 0), ControlType::Commit).await, Ok(()));
        assert_eq!(fetch(&node, "g", &[0, 1, 2], true).await, [Ok(Some(7)), Ok(Some(3)), unstable]);
        assert_eq!(fetch(&node, "h", &[0], true).await, [Ok(Some(11))]);
        assert_eq!(marker(&node, (P2, 0), ControlType::Abort).await, Ok(()));
        assert_eq!(fetch(&node, "g", &[2], true).await, [Ok(None)]);

        // A plain commit appended after a transaction's offsets wins over them.
        assert_eq!(txn_commit(&node, "g", (P1, 0), &[(0, 20)]).await, ErrorCode::None);
        assert_eq!(commit(&node, "g", &[(0, 21)]).await, ErrorCode::None);
        assert_eq!(marker(&node, (P1, 0), ControlType::Commit).await, Ok(()));
        assert_eq!(fetch(&node, "g", &[0], true).await, [Ok(Some(21))]);

        // The partition's producer state fences an older epoch, for offsets and markers alike.
        assert_eq!(txn_commit(&node, "g", (P1, 1), &[(1, 30)]).await, ErrorCode::None);
        assert_eq!(txn_commit(&node, "g", (P1, 0), &[(1, 31)]).await, ErrorCode::InvalidProducerEpoch);
        assert_eq!(marker(&node, (P1, 0), ControlType::Commit).await, Err(ErrorCode::InvalidProducerEpoch));
        assert_eq!(marker(&node, (P1, 1), ControlType::Commit).await, Ok(()));
        assert_eq!(fetch(&node, "g", &[1], true).await, [Ok(Some(30))]);

        // Left open: P2's next transaction, and an aborted one of a third group.
        assert_eq!(txn_commit(&node, "g", (P2, 0), &[(3, 40)]).await, ErrorCode::None);
        assert_eq!(txn_commit(&node, "k", (P1, 1), &[(0, 50)]).await, ErrorCode::None);
        assert_eq!(marker(&node, (P1, 1), ControlType::Abort).await, Ok(()));
        node.partitions.close_all().await;
        drop(node);

        // Replay rebuilds the same offsets, and the open transaction stays pending.
        let node = start(&path).await;
        assert_eq!(fetch(&node, "g", &[0, 1, 2], true).await, [Ok(Some(21)), Ok(Some(30)), Ok(None)]);
        assert_eq!(fetch(&node, "h", &[0], true).await, [Ok(Some(11))]);
        assert_eq!(fetch(&node, "k", &[0], true).await, [Ok(None)]);
        assert_eq!(fetch(&node, "g", &[3], false).await, [Ok(None)]);
        assert_eq!(fetch(&node, "g", &[3], true).await, [Err(ErrorCode::UnstableOffsetCommit)]);
        assert_eq!(marker(&node, (P2, 0), ControlType::Commit).await, Ok(()));
        assert_eq!(fetch(&node, "g", &[3], true).await, [Ok(Some(40))]);
        node.partitions.close_all().await;
    });
}

#[test]
fn markers_for_a_partition_that_does_not_exist_end_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let node = start(&path).await;
        // No __consumer_offsets yet, then a partition it does not have.
        assert_eq!(marker(&node, (P1, 0), ControlType::Commit).await, Err(ErrorCode::UnknownTopicOrPartition));
        assert_eq!(commit(&node, "g", &[(0, 1)]).await, ErrorCode::None);
        let result = node.groups.write_txn_marker(7, P1, 0, 0, ControlType::Commit).await;
        assert_eq!(result, Err(ErrorCode::UnknownTopicOrPartition));
        node.partitions.close_all().await;
    });
}
