//! Consumer groups end to end: real clients (confluent-kafka, kafka-python) through the group
//! scenarios of tests/clients/compat.py, a SIGKILL that must not lose committed offsets, and
//! hand-encoded requests for the error codes and session expiry.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{Broker, compat_scenario};
use crate::raw::{Reader, connect, create_topic, read_frame, request, string};

/// Flags that keep group tests fast: no initial rebalance delay, short sessions allowed, few
/// `__consumer_offsets` partitions (each preallocates a segment extent).
const FAST: &[&str] = &[
    "--group-initial-rebalance-delay-ms",
    "0",
    "--group-min-session-timeout-ms",
    "100",
    "--offsets-topic-partitions",
    "4",
];

fn flags(cores: &str) -> Vec<&str> {
    let mut out = vec!["--cores", cores];
    out.extend_from_slice(FAST);
    out
}

#[test]
fn group_two_consumers_split_six_partitions_exactly_once() {
    compat_scenario(&Broker::start(&flags("2")), "group_split", &[]);
}

#[test]
fn group_two_groups_each_see_every_record() {
    compat_scenario(&Broker::start(&flags("2")), "group_two_groups", &[]);
}

#[test]
fn group_consumer_resumes_from_its_committed_offset() {
    compat_scenario(&Broker::start(&flags("1")), "group_resume", &[]);
}

#[test]
fn group_committed_offsets_and_metadata_survive_sigkill() {
    let mut broker = Broker::start(&flags("2"));
    compat_scenario(&broker, "group_commit_before_crash", &["crash-topic", "crash-group"]);
    broker.kill9();
    broker.restart();
    compat_scenario(&broker, "group_check_after_crash", &["crash-topic", "crash-group"]);
}

#[test]
fn group_members_joining_and_leaving_lose_nothing() {
    compat_scenario(&Broker::start(&flags("2")), "group_rebalance_at_least_once", &[]);
}

#[test]
fn group_cooperative_sticky_with_confluent() {
    compat_scenario(&Broker::start(&flags("2")), "group_cooperative_sticky", &[]);
}

#[test]
fn group_admin_list_describe_offsets_agree_with_consumers() {
    compat_scenario(&Broker::start(&flags("2")), "group_admin", &[]);
}

// --- hand-encoded requests ------------------------------------------------------------------

fn call(stream: &mut TcpStream, api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    stream.write_all(&request(api_key, version, 7, body)).expect("send");
    let frame = read_frame(stream).expect("a response");
    assert_eq!(&frame[..4], &7i32.to_be_bytes(), "correlation id");
    frame[4..].to_vec()
}

fn i32s(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// JoinGroup v0 (no MEMBER_ID_REQUIRED round): (error, generation, leader, member id).
fn join(stream: &mut TcpStream, group: &str, member: &str, session_ms: i32) -> (i16, i32, String, String) {
    let mut body = Vec::new();
    string(&mut body, group);
    i32s(&mut body, session_ms);
    string(&mut body, member);
    string(&mut body, "consumer");
    i32s(&mut body, 1);
    string(&mut body, "range");
    i32s(&mut body, 0);
    let response = call(stream, 11, 0, &body);
    let mut r = Reader(&response);
    let error = r.i16();
    let generation = r.i32();
    let _protocol = r.string();
    let leader = r.string();
    let member_id = r.string();
    (error, generation, leader, member_id)
}

fn sync(stream: &mut TcpStream, group: &str, generation: i32, member: &str) -> i16 {
    let mut body = Vec::new();
    string(&mut body, group);
    i32s(&mut body, generation);
    string(&mut body, member);
    i32s(&mut body, 1);
    string(&mut body, member);
    i32s(&mut body, 2);
    body.extend_from_slice(b"as");
    Reader(&call(stream, 14, 0, &body)).i16()
}

fn heartbeat(stream: &mut TcpStream, group: &str, generation: i32, member: &str) -> i16 {
    let mut body = Vec::new();
    string(&mut body, group);
    i32s(&mut body, generation);
    string(&mut body, member);
    Reader(&call(stream, 12, 0, &body)).i16()
}

/// OffsetCommit v2 of one partition: its error code.
fn commit(stream: &mut TcpStream, group: &str, generation: i32, member: &str, topic: &str) -> i16 {
    let mut body = Vec::new();
    string(&mut body, group);
    i32s(&mut body, generation);
    string(&mut body, member);
    body.extend_from_slice(&(-1i64).to_be_bytes());
    i32s(&mut body, 1);
    string(&mut body, topic);
    i32s(&mut body, 1);
    i32s(&mut body, 0);
    body.extend_from_slice(&5i64.to_be_bytes());
    string(&mut body, "m");
    let response = call(stream, 8, 2, &body);
    let mut r = Reader(&response);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), topic);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.i32(), 0);
    r.i16()
}

/// DescribeGroups v0 of one group: (error, state, member count).
fn describe(stream: &mut TcpStream, group: &str) -> (i16, String, i32) {
    let mut body = Vec::new();
    i32s(&mut body, 1);
    string(&mut body, group);
    let response = call(stream, 15, 0, &body);
    let mut r = Reader(&response);
    assert_eq!(r.i32(), 1);
    let error = r.i16();
    assert_eq!(r.string(), group);
    let state = r.string();
    let _protocol_type = r.string();
    let _protocol = r.string();
    (error, state, r.i32())
}

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;

#[test]
fn group_error_codes_and_a_silent_member_is_evicted() {
    let broker = Broker::start(&flags("2"));
    create_topic(&broker, "raw-group-topic");
    let mut a = connect(&broker);
    let group = "raw-group";
    assert_eq!(join(&mut a, group, "", 10).0, INVALID_SESSION_TIMEOUT);
    assert_eq!(join(&mut a, group, "made-up-id", 1000).0, UNKNOWN_MEMBER_ID);
    let (error, generation, leader, member) = join(&mut a, group, "", 1000);
    assert_eq!((error, generation), (0, 1));
    assert_eq!(leader, member);
    assert!(member.starts_with("raw-"), "member ids are client.id-uuid: {member}");
    assert_eq!(sync(&mut a, group, generation + 1, &member), ILLEGAL_GENERATION);
    assert_eq!(sync(&mut a, group, generation, &member), 0);
    assert_eq!(sync(&mut a, "no-such-group", 1, &member), UNKNOWN_MEMBER_ID);
    assert_eq!(heartbeat(&mut a, group, generation, &member), 0);
    assert_eq!(heartbeat(&mut a, group, generation - 1, &member), ILLEGAL_GENERATION);
    assert_eq!(heartbeat(&mut a, group, generation, "nobody"), UNKNOWN_MEMBER_ID);
    assert_eq!(commit(&mut a, group, generation, &member, "raw-group-topic"), 0);
    assert_eq!(commit(&mut a, group, generation + 5, &member, "raw-group-topic"), ILLEGAL_GENERATION);
    assert_eq!(commit(&mut a, group, generation, "nobody", "raw-group-topic"), UNKNOWN_MEMBER_ID);
    assert_eq!(commit(&mut a, group, generation, &member, "no-such-topic"), UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(commit(&mut a, "fresh-group", 3, "m", "raw-group-topic"), ILLEGAL_GENERATION);
    assert_eq!(commit(&mut a, "simple-group", -1, "", "raw-group-topic"), 0, "a simple commit");
    assert_eq!(describe(&mut a, group), (0, "Stable".to_string(), 1));

    // A second member joins (on its own connection, since the join waits); the first, silent,
    // does not rejoin and is dropped when its session ends.
    let addr = broker.addr.clone();
    let second = std::thread::spawn(move || {
        let mut b = TcpStream::connect(&addr).expect("connect");
        b.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        join(&mut b, "raw-group", "", 1000)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(heartbeat(&mut a, group, generation, &member), REBALANCE_IN_PROGRESS);
    let (error, new_generation, new_leader, new_member) = second.join().expect("second member");
    assert_eq!((error, new_generation), (0, generation + 1));
    assert_eq!(new_leader, new_member, "the silent leader was replaced");
    assert_eq!(heartbeat(&mut a, group, generation, &member), UNKNOWN_MEMBER_ID);
    std::thread::sleep(Duration::from_millis(1500));
    // Nobody heartbeats now: the group empties.
    assert_eq!(describe(&mut a, group), (0, "Empty".to_string(), 0));
    assert_eq!(describe(&mut a, "never-seen"), (0, "Dead".to_string(), 0));
}

// --- offsets committed inside transactions (TxnOffsetCommit) -------------------------------------

mod txn {
    use std::time::{Duration, Instant};

    use sluice::client::{Client, ClientConfig, Connection};
    use sluice::protocol::messages::{
        AddOffsetsToTxnRequest, EndTxnRequest, InitProducerIdRequest, OffsetFetchRequest, OffsetFetchRequestTopic,
        TxnOffsetCommitRequest, TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };

    /// Errors a coordinator answers while it starts or moves: ask again.
    const RETRIABLE: &[i16] = &[14, 15, 16, 51];
    pub(super) const INVALID_TXN_STATE: i16 = 48;
    pub(super) const UNSTABLE_OFFSET_COMMIT: i16 = 88;

    pub(super) async fn connect(addr: &str) -> Connection {
        let client = Client::connect(ClientConfig::new([addr.to_string()])).await.unwrap();
        client.any_connection().await.unwrap()
    }

    /// Runs `call` until it answers something other than a retriable coordinator error.
    async fn retried<F, Fut, T>(mut call: F) -> (i16, T)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = (i16, T)>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (error, out) = call().await;
            if !RETRIABLE.contains(&error) || Instant::now() > deadline {
                return (error, out);
            }
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A transactional producer: (id, epoch).
    pub(super) async fn init(c: &Connection, transactional_id: &str) -> (i64, i16) {
        let request = InitProducerIdRequest {
            transactional_id: Some(transactional_id.to_string()),
            transaction_timeout_ms: 600_000,
            producer_id: -1,
            producer_epoch: -1,
        };
        let (error, producer) = retried(|| async {
            let r = c.send_at(&request, 4).await.unwrap();
            (r.error_code, (r.producer_id, r.producer_epoch))
        })
        .await;
        assert_eq!(error, 0, "InitProducerId {transactional_id}");
        producer
    }

    /// AddOffsetsToTxn: the group's offsets partition joins the transaction.
    pub(super) async fn add_offsets(c: &Connection, transactional_id: &str, producer: (i64, i16), group: &str) {
        let request = AddOffsetsToTxnRequest {
            transactional_id: transactional_id.to_string(),
            producer_id: producer.0,
            producer_epoch: producer.1,
            group_id: group.to_string(),
        };
        let (error, ()) = retried(|| async { (c.send_at(&request, 3).await.unwrap().error_code, ()) }).await;
        assert_eq!(error, 0, "AddOffsetsToTxn {transactional_id} {group}");
    }

    /// TxnOffsetCommit v3 of one partition, with a generation (-1 for none): its error code.
    pub(super) async fn commit(
        c: &Connection,
        transactional_id: &str,
        producer: (i64, i16),
        group: &str,
        generation: i32,
        (topic, partition, offset): (&str, i32, i64),
    ) -> i16 {
        let request = TxnOffsetCommitRequest {
            transactional_id: transactional_id.to_string(),
            group_id: group.to_string(),
            producer_id: producer.0,
            producer_epoch: producer.1,
            generation_id: generation,
            topics: vec![TxnOffsetCommitRequestTopic {
                name: topic.to_string(),
                partitions: vec![TxnOffsetCommitRequestPartition {
                    partition_index: partition,
                    committed_offset: offset,
                    committed_metadata: Some("txn".into()),
                    ..Default::default()
                }],
            }],
            ..Default::default()
        };
        retried(|| async {
            let r = c.send_at(&request, 3).await.unwrap();
            assert_eq!(r.topics.len(), 1);
            assert_eq!(r.topics[0].partitions[0].partition_index, partition);
            (r.topics[0].partitions[0].error_code, ())
        })
        .await
        .0
    }

    pub(super) async fn end(c: &Connection, transactional_id: &str, producer: (i64, i16), commit: bool) {
        let request = EndTxnRequest {
            transactional_id: transactional_id.to_string(),
            producer_id: producer.0,
            producer_epoch: producer.1,
            committed: commit,
        };
        let (error, ()) = retried(|| async { (c.send_at(&request, 3).await.unwrap().error_code, ()) }).await;
        assert_eq!(error, 0, "EndTxn {transactional_id}");
    }

    /// OffsetFetch v7 of one partition: (committed offset, partition error).
    pub(super) async fn fetch(c: &Connection, group: &str, topic: &str, partition: i32, stable: bool) -> (i64, i16) {
        let request = OffsetFetchRequest {
            group_id: group.to_string(),
            topics: Some(vec![OffsetFetchRequestTopic { name: topic.to_string(), partition_indexes: vec![partition] }]),
            require_stable: stable,
            ..Default::default()
        };
        let (error, answer) = retried(|| async {
            let r = c.send_at(&request, 7).await.unwrap();
            let p = &r.topics[0].partitions[0];
            (r.error_code, (p.committed_offset, p.error_code))
        })
        .await;
        assert_eq!(error, 0, "OffsetFetch {group}");
        answer
    }
}

const TXN_TOPIC: &str = "txn-offsets-topic";

#[test]
fn group_txn_offsets_count_only_once_their_transaction_commits() {
    let mut broker = Broker::start(&flags("2"));
    create_topic(&broker, TXN_TOPIC);
    let addr = broker.addr.clone();
    sluice::testing::run_on_shard(move || async move {
        let c = txn::connect(&addr).await;
        // Committed inside a transaction: not an offset yet, and unstable for those who ask.
        let committer = txn::init(&c, "tx-commit").await;
        txn::add_offsets(&c, "tx-commit", committer, "txg").await;
        assert_eq!(txn::commit(&c, "tx-commit", committer, "txg", -1, (TXN_TOPIC, 0, 42)).await, 0);
        assert_eq!(txn::fetch(&c, "txg", TXN_TOPIC, 0, false).await, (-1, 0));
        assert_eq!(txn::fetch(&c, "txg", TXN_TOPIC, 0, true).await, (-1, txn::UNSTABLE_OFFSET_COMMIT));
        assert_eq!(txn::fetch(&c, "txg", TXN_TOPIC, 1, true).await, (-1, 0), "another partition is stable");

        let aborter = txn::init(&c, "tx-abort").await;
        txn::add_offsets(&c, "tx-abort", aborter, "txg").await;
        assert_eq!(txn::commit(&c, "tx-abort", aborter, "txg", -1, (TXN_TOPIC, 1, 77)).await, 0);

        // The errors: the group's partition not in the transaction (KIP-890), an unknown
        // partition, a generation of a group that does not exist (KIP-447).
        let stranger = txn::init(&c, "tx-unadded").await;
        let unadded = txn::commit(&c, "tx-unadded", stranger, "txg", -1, (TXN_TOPIC, 0, 1)).await;
        assert_eq!(unadded, txn::INVALID_TXN_STATE);
        let opener = txn::init(&c, "tx-open").await;
        txn::add_offsets(&c, "tx-open", opener, "txg-open").await;
        txn::add_offsets(&c, "tx-open", opener, "txg-fresh").await;
        assert_eq!(
            txn::commit(&c, "tx-open", opener, "txg-open", -1, (TXN_TOPIC, 9, 1)).await,
            UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(txn::commit(&c, "tx-open", opener, "txg-fresh", 5, (TXN_TOPIC, 0, 1)).await, ILLEGAL_GENERATION);
        assert_eq!(txn::commit(&c, "tx-open", opener, "txg-open", -1, (TXN_TOPIC, 0, 99)).await, 0);

        txn::end(&c, "tx-commit", committer, true).await;
        txn::end(&c, "tx-abort", aborter, false).await;
    });

    // The markers are in __consumer_offsets: replaying it applies the committed transaction,
    // drops the aborted one and keeps the open one pending. (Checked after a restart, so that
    // it holds whichever path wrote the markers; the live path is covered by the coordinator's
    // tests in src/broker/groups/tests.rs.)
    broker.restart();
    let addr = broker.addr.clone();
    sluice::testing::run_on_shard(move || async move {
        let c = txn::connect(&addr).await;
        assert_eq!(txn::fetch(&c, "txg", TXN_TOPIC, 0, true).await, (42, 0));
        assert_eq!(txn::fetch(&c, "txg", TXN_TOPIC, 1, true).await, (-1, 0));
        assert_eq!(txn::fetch(&c, "txg-open", TXN_TOPIC, 0, false).await, (-1, 0));
        assert_eq!(txn::fetch(&c, "txg-open", TXN_TOPIC, 0, true).await, (-1, txn::UNSTABLE_OFFSET_COMMIT));
    });
}
