//! The group state machine driven with a fake clock: join/sync/heartbeat sequences, timeouts,
//! static membership and Kafka's error codes.

use bytes::Bytes;

use super::*;
use crate::model::{Offset, ProducerId};
use crate::protocol::ErrorCode;

const CONFIG: GroupConfig =
    GroupConfig { initial_rebalance_delay_ms: 0, session_timeout_min_ms: 10, session_timeout_max_ms: 100_000 };

fn join_request(member_id: &str, suffix: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 1000,
        rebalance_timeout_ms: 5000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: true,
        fresh_suffix: suffix.into(),
        supports_skip_assignment: true,
    }
}

fn joins(out: &[Effect]) -> Vec<(Waiter, JoinResult)> {
    out.iter().filter_map(|e| if let Effect::Join(w, r) = e { Some((*w, r.clone())) } else { None }).collect()
}

fn syncs(out: &[Effect]) -> Vec<(Waiter, SyncResult)> {
    out.iter().filter_map(|e| if let Effect::Sync(w, r) = e { Some((*w, r.clone())) } else { None }).collect()
}

/// Joins a member through the MEMBER_ID_REQUIRED handshake; returns its id (the join itself may
/// still be waiting).
fn handshake(group: &mut Group, now: i64, suffix: &str, waiter: Waiter, out: &mut Vec<Effect>) -> String {
    let mut first = Vec::new();
    group.join(now, join_request("", suffix), waiter, &mut first);
    let (w, result) = joins(&first).remove(0);
    assert_eq!((w, result.error), (waiter, ErrorCode::MemberIdRequired));
    let id = result.member_id;
    assert_eq!(id, format!("c-{suffix}"));
    group.join(now, join_request(&id, suffix), waiter, out);
    id
}

/// A Stable group of two members (leader first) at generation 1.
fn stable_pair() -> (Group, String, String) {
    let mut group = Group::new("g", CONFIG, 0);
    let mut out = Vec::new();
    let a = handshake(&mut group, 0, "a", 1, &mut out);
    // One member, everyone joined, no delay: generation 1 at once.
    assert_eq!(joins(&out)[0].1.generation, 1);
    out.clear();
    let b = handshake(&mut group, 1, "b", 2, &mut out);
    assert_eq!(group.state(), GroupState::PreparingRebalance, "the leader must rejoin");
    group.join(1, join_request(&a, "a"), 3, &mut out);
    let replies = joins(&out);
    assert_eq!(replies.len(), 2);
    for (_, r) in &replies {
        assert_eq!((r.error, r.generation, r.leader.as_str()), (ErrorCode::None, 2, a.as_str()));
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
    }
    let leader_reply = replies.iter().find(|(w, _)| *w == 3).map(|(_, r)| r.clone()).unwrap();
    assert_eq!(leader_reply.members.len(), 2, "the leader sees every member");
    assert!(replies.iter().find(|(w, _)| *w == 2).unwrap().1.members.is_empty());
    out.clear();
    let follower = SyncRequest { generation: 2, member_id: b.clone(), ..Default::default() };
    group.sync(2, follower, 4, &mut out);
    assert!(out.is_empty(), "a follower waits for the leader");
    let assignments = vec![(a.clone(), Bytes::from_static(b"A")), (b.clone(), Bytes::from_static(b"B"))];
    group.sync(2, SyncRequest { generation: 2, member_id: a.clone(), assignments, ..Default::default() }, 5, &mut out);
    assert_eq!(out[0], Effect::StoreGroup, "the assignment is persisted before anyone hears of it");
    let replies = syncs(&out);
    assert_eq!(replies.len(), 2);
    for (w, r) in replies {
        assert_eq!(r.error, ErrorCode::None);
        assert_eq!(&r.assignment[..], if w == 4 { b"B" } else { b"A" });
    }
    assert_eq!(group.state(), GroupState::Stable);
    (group, a, b)
}

#[test]
fn java_hash_and_placement_match_kafka() {
    assert_eq!(java_string_hash(""), 0);
    assert_eq!(java_string_hash("a"), 97);
    assert_eq!(java_string_hash("hello"), 99_162_322);
    // "polygenelubricants" hashes to i32::MIN, which Kafka's Utils.abs maps to 0.
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    assert_eq!(partition_for("polygenelubricants", 50), 0);
    assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
    // A negative hash: abs first, then modulo.
    let h = java_string_hash("consumer-group-1");
    assert_eq!(partition_for("consumer-group-1", 16), h.abs() % 16);
}

#[test]
fn two_members_join_sync_and_heartbeat() {
    let (mut group, a, b) = stable_pair();
    assert_eq!(group.heartbeat(3, 2, &a, None), ErrorCode::None);
    assert_eq!(group.heartbeat(3, 1, &a, None), ErrorCode::IllegalGeneration);
    assert_eq!(group.heartbeat(3, 2, "nobody", None), ErrorCode::UnknownMemberId);
    // A third member makes everyone rejoin.
    let mut out = Vec::new();
    let _c = handshake(&mut group, 4, "c", 9, &mut out);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(group.heartbeat(5, 2, &b, None), ErrorCode::RebalanceInProgress);
    let mut sync_out = Vec::new();
    group.sync(5, SyncRequest { generation: 2, member_id: b.clone(), ..Default::default() }, 10, &mut sync_out);
    assert_eq!(syncs(&sync_out)[0].1.error, ErrorCode::RebalanceInProgress);
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let (mut group, a, b) = stable_pair();
    let mut out = Vec::new();
    group.join(10, join_request(&a, "a"), 20, &mut out);
    assert!(joins(&out).is_empty(), "waits for b");
    // b keeps heartbeating but never rejoins; the rebalance timeout (5 s) ends the wait.
    assert_eq!(group.heartbeat(2000, 2, &b, None), ErrorCode::RebalanceInProgress);
    assert_eq!(group.heartbeat(2900, 2, &b, None), ErrorCode::RebalanceInProgress);
    group.tick(3500, &mut out);
    assert!(joins(&out).is_empty());
    assert_eq!(group.heartbeat(4400, 2, &b, None), ErrorCode::RebalanceInProgress);
    group.tick(5010, &mut out);
    let replies = joins(&out);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].1.generation, 3);
    assert_eq!(group.member_ids(), vec![a]);
}

#[test]
fn a_silent_member_is_evicted_after_its_session_timeout() {
    let (mut group, a, b) = stable_pair();
    let mut out = Vec::new();
    assert_eq!(group.heartbeat(900, 2, &a, None), ErrorCode::None);
    group.tick(1500, &mut out);
    // b's session (1 s from its sync at t=2) ran out; a heartbeated at 900.
    assert_eq!(group.member_ids(), vec![a.clone()]);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(group.heartbeat(1600, 2, &b, None), ErrorCode::UnknownMemberId);
    group.join(1600, join_request(&a, "a"), 30, &mut out);
    assert_eq!(joins(&out).last().unwrap().1.generation, 3);
    group.tick(10_000, &mut out);
    assert_eq!(group.state(), GroupState::Empty, "a stopped heartbeating too");
    assert!(out.contains(&Effect::StoreGroup));
}

#[test]
fn leave_rebalances_and_the_last_leave_empties_the_group() {
    let (mut group, a, b) = stable_pair();
    let mut out = Vec::new();
    assert_eq!(group.leave(5, &b, None, &mut out), ErrorCode::None);
    assert_eq!(group.leave(5, &b, None, &mut out), ErrorCode::UnknownMemberId);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(group.leave(6, &a, None, &mut out), ErrorCode::None);
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(group.generation(), 3);
}

#[test]
fn first_join_waits_for_the_initial_delay() {
    let config = GroupConfig { initial_rebalance_delay_ms: 3000, ..CONFIG };
    let mut group = Group::new("g", config, 0);
    let mut out = Vec::new();
    let _a = handshake(&mut group, 0, "a", 1, &mut out);
    assert!(joins(&out).is_empty());
    group.tick(2999, &mut out);
    assert!(joins(&out).is_empty());
    group.tick(3000, &mut out);
    assert_eq!(joins(&out)[0].1.generation, 1);
}

#[test]
fn join_errors() {
    let mut group = Group::new("g", CONFIG, 0);
    let mut out = Vec::new();
    group.join(0, JoinRequest { session_timeout_ms: 5, ..join_request("", "x") }, 1, &mut out);
    group.join(0, join_request("made-up", "x"), 2, &mut out);
    group.join(0, JoinRequest { protocols: Vec::new(), ..join_request("", "x") }, 3, &mut out);
    let codes: Vec<ErrorCode> = joins(&out).into_iter().map(|(_, r)| r.error).collect();
    assert_eq!(
        codes,
        vec![ErrorCode::InvalidSessionTimeout, ErrorCode::UnknownMemberId, ErrorCode::InconsistentGroupProtocol]
    );
    // A member with no protocol in common with the group is refused.
    let (mut group, _, _) = stable_pair();
    let mut out = Vec::new();
    let other = JoinRequest { protocols: vec![("roundrobin".into(), Bytes::new())], ..join_request("", "z") };
    group.join(9, JoinRequest { require_known_member_id: false, ..other }, 7, &mut out);
    assert_eq!(joins(&out)[0].1.error, ErrorCode::InconsistentGroupProtocol);
}

#[test]
fn a_static_member_rejoining_fences_its_old_id() {
    let mut group = Group::new("g", CONFIG, 0);
    let request = JoinRequest { instance_id: Some("i1".into()), ..join_request("", "one") };
    let mut out = Vec::new();
    group.join(0, request.clone(), 1, &mut out);
    let first = joins(&out)[0].1.clone();
    assert_eq!((first.error, first.member_id.as_str()), (ErrorCode::None, "i1-one"), "no MEMBER_ID_REQUIRED");
    out.clear();
    group.sync(0, SyncRequest { generation: 1, member_id: "i1-one".into(), ..Default::default() }, 2, &mut out);
    assert_eq!(group.state(), GroupState::Stable);
    // The same instance restarts: a new id replaces the old one.
    out.clear();
    group.join(10, JoinRequest { fresh_suffix: "two".into(), ..request }, 3, &mut out);
    assert_eq!(joins(&out)[0].1.member_id, "i1-two");
    assert_eq!(group.member_ids(), vec!["i1-two".to_string()]);
    assert_eq!(group.heartbeat(11, 2, "i1-one", Some("i1")), ErrorCode::FencedInstanceId);
    assert_eq!(group.check_commit(2, "i1-one", Some("i1")), Err(ErrorCode::FencedInstanceId));
    assert_eq!(group.leave(11, "i1-one", Some("i1"), &mut out), ErrorCode::FencedInstanceId);
    // Removal by static id alone (an admin's LeaveGroup v3+).
    assert_eq!(group.leave(12, "", Some("i1"), &mut out), ErrorCode::None);
    assert!(group.has_no_members());
}

/// Two static members, Stable at generation 2 (the leader "i1" first).
fn stable_static_pair() -> Group {
    let mut group = Group::new("g", CONFIG, 0);
    let mut out = Vec::new();
    let static_join =
        |instance: &str, suffix: &str| JoinRequest { instance_id: Some(instance.into()), ..join_request("", suffix) };
    group.join(0, static_join("i1", "one"), 1, &mut out);
    group.join(1, static_join("i2", "one"), 2, &mut out);
    group.join(1, JoinRequest { instance_id: Some("i1".into()), ..join_request("i1-one", "one") }, 3, &mut out);
    assert_eq!(joins(&out).last().map(|(_, r)| r.generation), Some(2));
    let assignments =
        vec![("i1-one".to_string(), Bytes::from_static(b"p0")), ("i2-one".into(), Bytes::from_static(b"p1"))];
    let leader_sync = SyncRequest { generation: 2, member_id: "i1-one".into(), assignments, ..Default::default() };
    group.sync(1, leader_sync, 4, &mut out);
    group.sync(1, SyncRequest { generation: 2, member_id: "i2-one".into(), ..Default::default() }, 5, &mut out);
    assert_eq!(group.state(), GroupState::Stable);
    group
}

#[test]
fn a_static_member_restarting_in_a_stable_group_causes_no_rebalance() {
    // A follower comes back with a new id (and new subscription bytes): same generation, its
    // assignment on sync, the group stored with the new id; the other member is untouched.
    let mut group = stable_static_pair();
    let mut out = Vec::new();
    let back = JoinRequest {
        instance_id: Some("i2".into()),
        protocols: vec![("range".into(), Bytes::from_static(b"sub, now owning p1"))],
        ..join_request("", "two")
    };
    group.join(10, back, 6, &mut out);
    assert_eq!(group.state(), GroupState::Stable);
    assert!(matches!(out.first(), Some(Effect::StoreGroup)), "stored before the answer: {out:?}");
    let (_, joined) = joins(&out).remove(0);
    assert_eq!((joined.error, joined.generation, joined.member_id.as_str()), (ErrorCode::None, 2, "i2-two"));
    assert_eq!((joined.leader.as_str(), joined.members.len(), joined.skip_assignment), ("i1-one", 0, false));
    out.clear();
    group.sync(10, SyncRequest { generation: 2, member_id: "i2-two".into(), ..Default::default() }, 7, &mut out);
    assert_eq!(syncs(&out)[0].1.assignment, Bytes::from_static(b"p1"));
    assert_eq!(group.heartbeat(11, 2, "i1-one", Some("i1")), ErrorCode::None, "the leader saw no rebalance");

    // The leader comes back at v9: it is told to skip the assignment, with the member list.
    out.clear();
    group.join(12, JoinRequest { instance_id: Some("i1".into()), ..join_request("", "two") }, 8, &mut out);
    let (_, joined) = joins(&out).remove(0);
    assert_eq!((joined.generation, joined.leader.as_str(), joined.skip_assignment), (2, "i1-two", true));
    assert_eq!(joined.members.len(), 2);
    out.clear();
    group.sync(12, SyncRequest { generation: 2, member_id: "i1-two".into(), ..Default::default() }, 9, &mut out);
    assert_eq!(syncs(&out)[0].1.assignment, Bytes::from_static(b"p0"), "kept, though the leader sent none");

    // Before v9 the leader is named by its old id, so the returning leader syncs as a follower.
    out.clear();
    let old_client =
        JoinRequest { instance_id: Some("i1".into()), supports_skip_assignment: false, ..join_request("", "three") };
    group.join(13, old_client, 10, &mut out);
    let (_, joined) = joins(&out).remove(0);
    assert_eq!((joined.leader.as_str(), joined.skip_assignment, joined.members.len()), ("i1-two", false, 0));
    assert_eq!(group.state(), GroupState::Stable);
}

#[test]
fn commit_checks_follow_kafka() {
    let empty = Group::new("g", CONFIG, 0);
    assert_eq!(empty.check_commit(-1, "", None), Ok(()), "a simple commit to an empty group");
    assert_eq!(empty.check_commit(3, "m", None), Err(ErrorCode::UnknownMemberId));
    let (mut group, a, b) = stable_pair();
    assert_eq!(group.check_commit(2, &a, None), Ok(()));
    assert_eq!(group.check_commit(1, &a, None), Err(ErrorCode::IllegalGeneration));
    assert_eq!(group.check_commit(-1, "", None), Err(ErrorCode::UnknownMemberId));
    let mut out = Vec::new();
    handshake(&mut group, 3, "c", 5, &mut out);
    // During the join phase the current generation may still commit (revoked partitions).
    assert_eq!(group.check_commit(2, &b, None), Ok(()));
    group.join(3, join_request(&a, "a"), 6, &mut out);
    group.join(3, join_request(&b, "b"), 7, &mut out);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    assert_eq!(group.check_commit(3, &b, None), Err(ErrorCode::RebalanceInProgress));
}

#[test]
fn offsets_of_empty_groups_expire_and_stored_groups_restore() {
    let (mut group, a, _) = stable_pair();
    let offset = CommittedOffset { offset: 5, leader_epoch: -1, metadata: Some("m".into()), commit_timestamp_ms: 10 };
    group.commit(Offset(0), [(("t".to_string(), 0), offset)]);
    assert!(group.expired_offsets(1_000_000, 100).is_empty(), "not while the group has members");
    let stored = group.stored();
    let restored = Group::restore("g", CONFIG, 50, stored);
    assert_eq!(restored.state(), GroupState::Stable);
    assert_eq!(restored.leader(), Some(a.as_str()));
    assert_eq!(restored.describe().members.len(), 2);
    let mut out = Vec::new();
    let mut group = group;
    group.tick(100_000, &mut out);
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(group.expired_offsets(100_050, 100), Vec::<(String, i32)>::new());
    assert_eq!(group.expired_offsets(100_100, 100), vec![("t".to_string(), 0)]);
}

#[test]
fn subscriptions_decide_offset_delete() {
    let mut group = Group::new("g", CONFIG, 0);
    // ConsumerProtocolSubscription v0 with topics ["t1"].
    let sub = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 2, b't', b'1', 0, 0, 0, 0]);
    let request =
        JoinRequest { protocols: vec![("range".into(), sub)], require_known_member_id: false, ..join_request("", "a") };
    let mut out = Vec::new();
    group.join(0, request, 1, &mut out);
    assert!(group.subscribes_to("t1"));
    assert!(!group.subscribes_to("t2"));
}

// --- offsets committed inside transactions ----------------------------------------------------

fn at(offset: i64) -> CommittedOffset {
    CommittedOffset { offset, leader_epoch: -1, metadata: Some(String::new()), commit_timestamp_ms: 1 }
}

fn key(partition: i32) -> OffsetKey {
    ("t".to_string(), partition)
}

fn committed(offsets: &GroupOffsets, partition: i32) -> Option<i64> {
    offsets.get("t", partition).map(|o| o.offset)
}

const P1: ProducerId = ProducerId(1);
const P2: ProducerId = ProducerId(2);

#[test]
fn transactional_offsets_stay_pending_until_the_marker() {
    let mut offsets = GroupOffsets::default();
    offsets.commit(Offset(0), [(key(0), at(5))]);
    offsets.prepare_txn(P1, Offset(10), [(key(0), at(7)), (key(1), at(3))]);
    assert_eq!(committed(&offsets, 0), Some(5), "the offset from before the transaction still answers");
    assert_eq!(committed(&offsets, 1), None);
    assert!(offsets.is_unstable("t", 0) && offsets.is_unstable("t", 1) && !offsets.is_unstable("t", 2));
    assert_eq!(offsets.iter().count(), 1, "pending offsets are not listed");
    offsets.complete_txn(P1, Offset(12), true);
    assert_eq!((committed(&offsets, 0), committed(&offsets, 1)), (Some(7), Some(3)));
    assert!(!offsets.is_unstable("t", 0) && !offsets.has_pending(P1));
}

#[test]
fn an_abort_drops_only_that_producers_offsets() {
    let mut offsets = GroupOffsets::default();
    offsets.commit(Offset(0), [(key(0), at(5))]);
    offsets.prepare_txn(P1, Offset(10), [(key(0), at(7))]);
    offsets.prepare_txn(P2, Offset(11), [(key(1), at(9))]);
    offsets.complete_txn(P1, Offset(12), false);
    assert_eq!(committed(&offsets, 0), Some(5));
    assert!(!offsets.is_unstable("t", 0) && offsets.is_unstable("t", 1), "P2's transaction goes on");
    offsets.complete_txn(P2, Offset(13), true);
    assert_eq!(committed(&offsets, 1), Some(9));
    // A marker for a producer with nothing pending changes nothing.
    offsets.complete_txn(ProducerId(3), Offset(14), true);
    assert_eq!(offsets.iter().count(), 2);
}

#[test]
fn later_in_the_log_wins_between_plain_and_transactional_commits() {
    // A plain commit appended after the transaction's offsets wins, though the transaction
    // commits after it (Kafka's CommitRecordMetadataAndOffset ordering).
    let mut offsets = GroupOffsets::default();
    offsets.prepare_txn(P1, Offset(10), [(key(0), at(7))]);
    offsets.commit(Offset(11), [(key(0), at(8))]);
    offsets.complete_txn(P1, Offset(12), true);
    assert_eq!(committed(&offsets, 0), Some(8));
    // A plain commit appended before them loses to them.
    offsets.commit(Offset(20), [(key(1), at(1))]);
    offsets.prepare_txn(P1, Offset(21), [(key(1), at(2))]);
    offsets.complete_txn(P1, Offset(22), true);
    assert_eq!(committed(&offsets, 1), Some(2));
    // Appends acknowledged out of order: the earlier record never replaces the later one.
    offsets.commit(Offset(31), [(key(2), at(31))]);
    offsets.commit(Offset(30), [(key(2), at(30))]);
    assert_eq!(committed(&offsets, 2), Some(31));
}

#[test]
fn offsets_appended_after_the_marker_belong_to_the_next_transaction() {
    let mut offsets = GroupOffsets::default();
    offsets.prepare_txn(P1, Offset(10), [(key(0), at(7))]);
    // The marker is appended at 12; before it is committed, the producer's next transaction
    // commits again at 13.
    offsets.prepare_txn(P1, Offset(13), [(key(1), at(4))]);
    offsets.complete_txn(P1, Offset(12), true);
    assert_eq!(committed(&offsets, 0), Some(7));
    assert_eq!(committed(&offsets, 1), None);
    assert_eq!(offsets.pending(P1, "t", 1).map(|o| o.offset), Some(4));
    offsets.complete_txn(P1, Offset(14), false);
    assert!(!offsets.has_pending(P1));
    assert_eq!(committed(&offsets, 1), None);
}

#[test]
fn a_failed_append_and_tombstones_drop_pending_offsets() {
    let mut offsets = GroupOffsets::default();
    offsets.prepare_txn(P1, Offset(10), [(key(0), at(7))]);
    offsets.prepare_txn(P1, Offset(11), [(key(1), at(8))]);
    offsets.fail_txn(P1, Offset(11));
    assert!(offsets.is_unstable("t", 0) && !offsets.is_unstable("t", 1));
    // Tombstones at 20 drop the offsets from before them, committed and pending alike, but not
    // a commit appended after them.
    offsets.commit(Offset(5), [(key(2), at(1))]);
    offsets.commit(Offset(21), [(key(3), at(2))]);
    offsets.forget(Offset(20), &[key(0), key(2), key(3)]);
    assert!(!offsets.has_pending(P1));
    assert_eq!((committed(&offsets, 2), committed(&offsets, 3)), (None, Some(2)));
    offsets.complete_txn(P1, Offset(22), true);
    assert_eq!(committed(&offsets, 0), None, "the deleted offset does not come back");
    assert_eq!(offsets.pending_keys().len(), 0);
}

#[test]
fn txn_commit_checks_follow_kip_447() {
    let (mut group, a, _) = stable_pair();
    // Without member information (TxnOffsetCommit v0-2) any group takes the commit.
    assert_eq!(group.check_txn_commit(-1, "", None), Ok(()));
    assert_eq!(group.check_txn_commit(2, &a, None), Ok(()));
    assert_eq!(group.check_txn_commit(1, &a, None), Err(ErrorCode::IllegalGeneration));
    assert_eq!(group.check_txn_commit(-1, &a, None), Err(ErrorCode::IllegalGeneration));
    assert_eq!(group.check_txn_commit(2, "nobody", None), Err(ErrorCode::UnknownMemberId));
    assert_eq!(group.check_txn_commit(2, &a, Some("unknown-instance")), Err(ErrorCode::UnknownMemberId));
    // A rebalance in progress does not refuse it (a plain commit gets REBALANCE_IN_PROGRESS).
    let mut out = Vec::new();
    handshake(&mut group, 3, "c", 5, &mut out);
    assert_eq!(group.check_txn_commit(2, &a, None), Ok(()));
    // An empty group takes a commit without a generation, whoever names itself.
    let empty = Group::new("e", CONFIG, 0);
    assert_eq!(empty.check_txn_commit(-1, "someone", None), Ok(()));
    assert_eq!(empty.check_txn_commit(0, "someone", None), Err(ErrorCode::UnknownMemberId));
    let mut dead = Group::new("d", CONFIG, 0);
    dead.mark_dead(1);
    assert_eq!(dead.check_txn_commit(-1, "", None), Err(ErrorCode::CoordinatorNotAvailable));
    // A static member replaced by a newer instance is fenced.
    let mut statics = Group::new("s", CONFIG, 0);
    let request = JoinRequest { instance_id: Some("i1".into()), ..join_request("", "one") };
    statics.join(0, request.clone(), 1, &mut out);
    statics.sync(0, SyncRequest { generation: 1, member_id: "i1-one".into(), ..Default::default() }, 2, &mut out);
    statics.join(10, JoinRequest { fresh_suffix: "two".into(), ..request }, 3, &mut out);
    // The restart of a static member of a stable group keeps the generation (no rebalance).
    assert_eq!(statics.check_txn_commit(1, "i1-one", Some("i1")), Err(ErrorCode::FencedInstanceId));
    assert_eq!(statics.check_txn_commit(1, "i1-two", Some("i1")), Ok(()));
}

#[test]
fn offsets_a_transaction_may_replace_do_not_expire() {
    let mut group = Group::new("g", CONFIG, 0);
    group.commit(Offset(0), [(key(0), at(1)), (key(1), at(1))]);
    group.prepare_txn_commit(P1, Offset(5), [(key(0), at(2))]);
    assert_eq!(group.expired_offsets(1_000_000, 100), vec![key(1)]);
    group.complete_txn(P1, Offset(6), true);
    assert_eq!(group.offset("t", 0).map(|o| o.offset), Some(2));
}
