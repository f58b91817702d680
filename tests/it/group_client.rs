//! The native group consumer (`sluice::client::GroupConsumer`) against the real broker's
//! coordinator: partitions split between members, a second group sees everything, commits
//! survive a restart of the member, cooperative-sticky moves only what must move, and
//! `sluice bench group` reports its figures.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sluice::client::{
    Admin, Assignor, Client, ClientConfig, GroupConfig, GroupConsumer, NewTopic, Producer, ProducerConfig,
    ProducerRecord, RebalanceListener, SeekTo, Subscribe,
};
use sluice::testing::run_on_shard;

use crate::harness::{Broker, sluice_bin};

/// Brokers here start rebalances at once instead of waiting for more members.
const BROKER_FLAGS: &[&str] = &["--cores", "2", "--group-initial-rebalance-delay-ms", "0"];

async fn member(addr: &str, group: &str, assignor: Assignor, topic: &str) -> GroupConsumer {
    member_with(addr, group, assignor, topic, true).await
}

async fn member_with(addr: &str, group: &str, assignor: Assignor, topic: &str, auto_commit: bool) -> GroupConsumer {
    let mut config = GroupConfig::new(group);
    config.assignors = vec![assignor];
    config.heartbeat_interval = Duration::from_millis(200);
    config.session_timeout = Duration::from_secs(6);
    config.rebalance_timeout = Duration::from_secs(6);
    config.auto_commit = auto_commit.then_some(Duration::from_millis(200));
    config.reset = SeekTo::Earliest;
    config.consumer.max_wait = Duration::from_millis(100);
    let client = Client::connect(ClientConfig::new([addr.to_string()])).await.unwrap();
    let mut consumer = GroupConsumer::new(client, config);
    consumer.subscribe(Subscribe::Topics(vec![topic.to_string()]));
    consumer
}

/// Creates `topic` with `partitions` and writes `per_partition` records to each; values are
/// "partition-index".
async fn fill(addr: &str, topic: &str, partitions: i32, per_partition: usize) {
    let client = Client::connect(ClientConfig::new([addr.to_string()])).await.unwrap();
    Admin::new(client.clone()).create_topic(NewTopic::new(topic, partitions)).await.unwrap();
    let producer = Producer::new(client, ProducerConfig::default()).unwrap();
    for p in 0..partitions {
        for i in 0..per_partition {
            let mut record = ProducerRecord::new(topic, None, Some(format!("{p}-{i}").into_bytes()));
            record.partition = Some(p);
            producer.send(record).await.unwrap();
        }
    }
    producer.flush().await;
}

type Seen = Rc<RefCell<Vec<(i32, i64)>>>;

/// Polls `consumer` into `seen` until `total` records were seen over all members sharing it.
async fn consume_into(mut consumer: GroupConsumer, seen: Seen, total: usize) -> GroupConsumer {
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.borrow().len() < total {
        assert!(Instant::now() < deadline, "only {} of {total} records", seen.borrow().len());
        for r in consumer.poll().await.unwrap() {
            seen.borrow_mut().push((r.partition, r.offset));
        }
    }
    consumer
}

/// Each member's latest (generation, number of partitions assigned), by slot.
type Views = Rc<RefCell<Vec<(i32, usize)>>>;

/// Polls `consumer`, member `slot` of `views`, into `seen` until `total` records were seen over
/// all members and the group has settled: every member holds partitions in one generation.
///
/// Stopping at `total` alone is not enough. Brokers here start the first rebalance at once, so
/// one member may form generation 1 alone, own every partition and read every record in its
/// first poll. A member that then stops polling never rejoins: it neither commits its
/// positions on the eager revoke nor learns that the partitions moved, and once the rebalance
/// timeout drops it the other member gets every partition from the committed offsets (none:
/// the earliest) and reads everything again. A Kafka consumer behaves the same; a member takes
/// part in a rebalance only by polling.
async fn consume_until_settled(
    mut consumer: GroupConsumer,
    slot: usize,
    views: Views,
    seen: Seen,
    total: usize,
) -> GroupConsumer {
    let settled = |views: &[(i32, usize)]| {
        let generation = views[0].0;
        generation >= 0 && views.iter().all(|&(g, assigned)| g == generation && assigned > 0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.borrow().len() < total || !settled(&views.borrow()) {
        assert!(
            Instant::now() < deadline,
            "{} of {total} records; members (generation, partitions): {:?}",
            seen.borrow().len(),
            views.borrow()
        );
        for r in consumer.poll().await.unwrap() {
            seen.borrow_mut().push((r.partition, r.offset));
        }
        views.borrow_mut()[slot] = (consumer.generation(), consumer.assignment().len());
    }
    consumer
}

#[test]
fn two_members_split_six_partitions_each_record_once_and_another_group_sees_all() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        fill(&addr, "six", 6, 50).await;
        let seen: Seen = Rc::default();
        let a = member(&addr, "split", Assignor::Range, "six").await;
        let b = member(&addr, "split", Assignor::Range, "six").await;
        let views: Views = Rc::new(RefCell::new(vec![(-1, 0); 2]));
        let ta = glommio::spawn_local(consume_until_settled(a, 0, views.clone(), seen.clone(), 300));
        let tb = glommio::spawn_local(consume_until_settled(b, 1, views.clone(), seen.clone(), 300));
        let (a, b) = (ta.await, tb.await);
        let all: BTreeSet<(i32, i64)> = seen.borrow().iter().copied().collect();
        assert_eq!(all.len(), 300, "every record");
        assert_eq!(seen.borrow().len(), 300, "each record once");
        // Both members hold partitions, and they do not overlap.
        let (pa, pb): (BTreeSet<_>, BTreeSet<_>) =
            (a.assignment().into_iter().collect(), b.assignment().into_iter().collect());
        assert!(!pa.is_empty() && !pb.is_empty(), "{pa:?} {pb:?}");
        assert!(pa.is_disjoint(&pb));
        assert_eq!(pa.len() + pb.len(), 6);
        a.close().await.unwrap();
        b.close().await.unwrap();

        let other: Seen = Rc::default();
        let c = member(&addr, "other-group", Assignor::RoundRobin, "six").await;
        let c = consume_into(c, other.clone(), 300).await;
        assert_eq!(other.borrow().len(), 300, "a second group sees every record");
        c.close().await.unwrap();
    });
}

#[test]
fn a_restarted_member_resumes_from_its_committed_offset() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        fill(&addr, "resume", 1, 100).await;
        let seen: Seen = Rc::default();
        let manual = member_with(&addr, "g", Assignor::Range, "resume", false).await;
        let mut first = consume_into(manual, seen.clone(), 100).await;
        first.commit_offsets(&[("resume".into(), 0, 60, Some("half way".into()))]).await.unwrap();
        let committed = first.committed(&[("resume".into(), 0)]).await.unwrap();
        assert_eq!(committed.get(&("resume".to_string(), 0)), Some(&(60, Some("half way".to_string()))));
        // Manual commits only, so leaving does not move the committed offset.
        first.close().await.unwrap();
        let mut second = member(&addr, "g", Assignor::Range, "resume").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let records = loop {
            let records = second.poll().await.unwrap();
            if !records.is_empty() {
                break records;
            }
            assert!(Instant::now() < deadline, "no records after the restart");
        };
        assert_eq!(records[0].offset, 60, "resumes at the committed offset");
    });
}

#[derive(Default)]
struct Log {
    revoked: Vec<(String, i32)>,
    assigned: Vec<(String, i32)>,
}

struct Recorder(Rc<RefCell<Log>>);

impl RebalanceListener for Recorder {
    fn on_revoked(&mut self, partitions: &[(String, i32)]) {
        self.0.borrow_mut().revoked.extend_from_slice(partitions);
    }
    fn on_assigned(&mut self, partitions: &[(String, i32)]) {
        self.0.borrow_mut().assigned.extend_from_slice(partitions);
    }
}

#[test]
fn cooperative_sticky_moves_only_what_must_move() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        fill(&addr, "coop", 6, 1).await;
        let log = Rc::new(RefCell::new(Log::default()));
        let mut a = member(&addr, "coop-group", Assignor::CooperativeSticky, "coop").await;
        a.set_listener(Box::new(Recorder(log.clone())));
        let deadline = Instant::now() + Duration::from_secs(30);
        while a.assignment().len() < 6 {
            assert!(Instant::now() < deadline);
            a.poll().await.unwrap();
        }
        // b joins; both keep polling (a member that stops polling misses the follow-up
        // rebalance) until they hold three partitions each in the same generation.
        let b = member(&addr, "coop-group", Assignor::CooperativeSticky, "coop").await;
        let b_state = Rc::new(RefCell::new((0usize, -1i32)));
        let done = Rc::new(std::cell::Cell::new(false));
        let b_task = {
            let (b_state, done) = (b_state.clone(), done.clone());
            glommio::spawn_local(async move {
                let mut member = b;
                while !done.get() {
                    member.poll().await.unwrap();
                    *b_state.borrow_mut() = (member.assignment().len(), member.generation());
                }
                member
            })
        };
        loop {
            assert!(Instant::now() < deadline, "a {:?} b {:?}", a.assignment(), b_state.borrow());
            a.poll().await.unwrap();
            let (b_count, b_generation) = *b_state.borrow();
            if a.assignment().len() == 3 && b_count == 3 && a.generation() == b_generation {
                break;
            }
        }
        done.set(true);
        let b = b_task.await;
        let (pa, pb): (BTreeSet<_>, BTreeSet<_>) =
            (a.assignment().into_iter().collect(), b.assignment().into_iter().collect());
        assert!(
            pa.is_disjoint(&pb),
            "a {pa:?} (gen {}) b {pb:?} (gen {}) log a: revoked {:?} assigned {:?}",
            a.generation(),
            b.generation(),
            log.borrow().revoked,
            log.borrow().assigned
        );
        let revoked: BTreeSet<_> = log.borrow().revoked.iter().cloned().collect();
        assert_eq!(revoked.len(), 3, "only the moved partitions were revoked: {revoked:?}");
        assert!(revoked.is_disjoint(&pa), "a never gave up what it kept");
        a.close().await.unwrap();
        b.close().await.unwrap();
    });
}

#[test]
fn bench_group_reports_formation_rebalance_and_commits() {
    let broker = Broker::start(BROKER_FLAGS);
    let output = Command::new(sluice_bin())
        .args(["bench", "group", "--bootstrap", &broker.addr, "--members", "3", "--partitions", "8"])
        .args(["--heartbeat-ms", "200", "--commit-interval-ms", "50", "--duration", "1", "--json", "-"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["form_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["rebalance_ms"].as_f64().unwrap() > 0.0);
    assert!(report["generation"].as_i64().unwrap() >= 2);
    assert!(report["commits"].as_u64().unwrap() > 10, "{report}");
    assert!(report["commit_latency_ms"]["p99"].is_number());
}
