//! The group state machine driven with a fake clock: join/sync/heartbeat sequences, timeouts,
//! static membership and Kafka's error codes.

use bytes::Bytes;

use super::*;
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
    group.commit([(("t".to_string(), 0), offset)]);
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
