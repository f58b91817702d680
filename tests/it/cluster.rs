//! A Sluice cluster on loopback: three voters (and brokers only past them), seen through
//! other people's clients (kcat's metadata, confluent-kafka and kafka-python through
//! tests/clients/compat.py) and raw requests. The faults are real: SIGKILL of the controller, of a
//! broker, of two voters at once, a wiped data dir, a duplicate node id, a voter list that
//! disagrees with the quorum's.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Cluster, FAST_CLUSTER, compat_scenario, free_port, sluice_bin};
use crate::raw::{batch, produce_to};

/// How long a cluster may take to notice a failure and recover: the fast session timeout (1.5 s)
/// and election timeout (0.5-1 s) with room for a loaded two-core machine.
const RECOVERY: Duration = Duration::from_secs(20);

fn sluice(args: &[&str]) -> Output {
    Command::new(sluice_bin()).args(args).output().expect("run sluice")
}

fn create_topic(addr: &str, name: &str, partitions: u32, replication_factor: u32) -> Output {
    sluice(&[
        "topic",
        "create",
        name,
        "--partitions",
        &partitions.to_string(),
        "--replication-factor",
        &replication_factor.to_string(),
        "--bootstrap",
        addr,
    ])
}

fn topic<'a>(metadata: &'a Value, name: &str) -> Option<&'a Value> {
    metadata["topics"].as_array()?.iter().find(|t| t["topic"] == name)
}

/// (partition, leader, replicas, isr) of each partition of `name`.
fn partitions(metadata: &Value, name: &str) -> Vec<(i64, i64, Vec<i64>, Vec<i64>)> {
    let ids = |v: &Value| v.as_array().map(|a| a.iter().filter_map(|r| r["id"].as_i64()).collect()).unwrap_or_default();
    topic(metadata, name)
        .and_then(|t| t["partitions"].as_array())
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["partition"].as_i64().unwrap_or(-1),
                        p["leader"].as_i64().unwrap_or(-1),
                        ids(&p["replicas"]),
                        ids(&p["isrs"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn brokers(metadata: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> =
        metadata["brokers"].as_array().map(|a| a.iter().filter_map(|b| b["id"].as_i64()).collect()).unwrap_or_default();
    ids.sort_unstable();
    ids
}

fn controller(metadata: &Value) -> i64 {
    metadata["controllerid"].as_i64().unwrap_or(-1)
}

fn ok(output: &Output) -> bool {
    output.status.success()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Creates a topic through node `via`, retrying while the quorum is electing.
fn create_until(cluster: &Cluster, via: usize, name: &str, partitions: u32, rf: u32, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let output = create_topic(&cluster.nodes[via - 1].addr, name, partitions, rf);
        if ok(&output) {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "creating {name} through node {via}: {}", text(&output));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn partitions_spread_over_the_brokers_and_clients_use_one_bootstrap() {
    let cluster = Cluster::start(3, &[]);
    let created = create_topic(&cluster.nodes[1].addr, "spread", 6, 1);
    assert!(ok(&created), "{}", text(&created));
    let metadata = cluster.wait_metadata(1, RECOVERY, |m| partitions(m, "spread").len() == 6);
    assert_eq!(brokers(&metadata), vec![1, 2, 3], "{metadata}");
    assert!((1..=3).contains(&controller(&metadata)), "{metadata}");
    let spread = partitions(&metadata, "spread");
    for broker in 1..=3 {
        assert_eq!(spread.iter().filter(|p| p.1 == broker).count(), 2, "leaders balanced: {spread:?}");
    }
    assert!(spread.iter().all(|p| p.2 == vec![p.1] && p.3 == vec![p.1]), "{spread:?}");

    // Three replicas each, the preferred (first) one leading, leaders balanced.
    assert!(ok(&create_topic(&cluster.nodes[2].addr, "r3", 3, 3)));
    let metadata = cluster.wait_metadata(1, RECOVERY, |m| partitions(m, "r3").len() == 3);
    let r3 = partitions(&metadata, "r3");
    assert!(r3.iter().all(|p| p.2.len() == 3 && p.2[0] == p.1), "{r3:?}");
    assert!(r3.iter().all(|p| p.3 == p.2), "a new partition's replicas are all in sync: {r3:?}");
    let mut leaders: Vec<i64> = r3.iter().map(|p| p.1).collect();
    leaders.sort_unstable();
    assert_eq!(leaders, vec![1, 2, 3]);
    let refused = create_topic(&cluster.nodes[0].addr, "r4", 1, 4);
    assert!(!ok(&refused) && text(&refused).contains("InvalidReplicationFactor"), "{}", text(&refused));

    // A broker that does not lead a partition says so, and the leader takes the write.
    let (leader, other) = {
        let p0 = &spread[0];
        (p0.1 as usize, (p0.1 as usize % 3) + 1)
    };
    let (code, _) = produce_to(&cluster.nodes[other - 1].addr, "spread", 0, &batch(1, 10));
    assert_eq!(code, 6, "NOT_LEADER_OR_FOLLOWER from broker {other}");
    let (code, _) = produce_to(&cluster.nodes[leader - 1].addr, "spread", 0, &batch(1, 10));
    assert_eq!(code, 0);
}

/// The client compatibility scenarios (tests/clients/compat.py: confluent-kafka, kafka-python,
/// kcat), bootstrapped from node 1 of a three-node cluster: topics spread over all three brokers,
/// groups coordinated by whichever broker leads their `__consumer_offsets` partition.
#[test]
fn client_scenarios_pass_with_the_bootstrap_on_one_node_of_a_cluster() {
    let cluster = Cluster::start(
        3,
        &[
            "--group-initial-rebalance-delay-ms",
            "0",
            "--group-min-session-timeout-ms",
            "100",
            "--offsets-topic-partitions",
            "6",
        ],
    );
    for scenario in [
        "roundtrip_confluent",
        "cross_client",
        "kcat",
        "compression",
        "acks",
        "list_offsets",
        "topic_admin_errors",
        "configs",
        "incremental_alter_configs",
        "unknown_topic_produce",
        "large_batches",
        "group_split",
        "group_two_groups",
        "group_resume",
        "group_rebalance_at_least_once",
        "group_cooperative_sticky",
        "group_admin",
        "replica_assignment",
    ] {
        compat_scenario(&cluster.nodes[0], scenario, &[]);
    }
}

/// Dynamic broker configs are metadata records: the cluster-wide ones reach every broker, a
/// broker's own stay its own.
#[test]
fn dynamic_broker_configs_reach_every_broker() {
    let cluster = Cluster::start(3, &[]);
    compat_scenario(&cluster.nodes[0], "cluster_broker_configs", &[]);
}

#[test]
fn a_killed_controller_is_replaced_and_its_partitions_return_with_it() {
    let mut cluster = Cluster::start(3, &[]);
    create_until(&cluster, 1, "before", 3, 1, RECOVERY);
    let metadata = cluster.wait_metadata(1, RECOVERY, |m| partitions(m, "before").len() == 3);
    let old = controller(&metadata) as usize;
    let on_old: Vec<i64> = partitions(&metadata, "before").iter().filter(|p| p.1 == old as i64).map(|p| p.0).collect();
    for p in &on_old {
        let (code, _) = produce_to(&cluster.nodes[old - 1].addr, "before", *p as i32, &batch(5, 10));
        assert_eq!(code, 0);
    }
    cluster.node(old).kill9();
    let survivor = (old % 3) + 1;
    let took = create_until(&cluster, survivor, "after", 3, 1, RECOVERY);
    eprintln!("topic creation worked again {took:?} after the controller was killed");
    let metadata = cluster.wait_metadata(survivor, RECOVERY, |m| {
        controller(m) != old as i64 && partitions(m, "before").iter().all(|p| p.1 != old as i64)
    });
    assert_ne!(controller(&metadata), old as i64, "{metadata}");
    // Its partitions are offline (one replica, fenced), not led by anyone else.
    for p in partitions(&metadata, "before").iter().filter(|p| on_old.contains(&p.0)) {
        assert_eq!(p.1, -1, "{p:?}");
    }
    assert!(!brokers(&metadata).contains(&(old as i64)));

    // Back with the same data dir: unfenced, leading its partitions again, every record there.
    cluster.node(old).restart();
    let metadata = cluster.wait_metadata(survivor, RECOVERY, |m| {
        partitions(m, "before").iter().all(|p| p.1 != -1) && brokers(m).len() == 3
    });
    assert!(partitions(&metadata, "before").iter().all(|p| p.1 != -1), "{metadata}");
    for p in &on_old {
        let (code, offset) = produce_to(&cluster.nodes[old - 1].addr, "before", *p as i32, &batch(1, 10));
        assert_eq!((code, offset), (0, 5), "partition {p} kept its five records");
    }
}

/// A broker stopped with SIGTERM is fenced before it exits: by the time its process is gone,
/// the partitions it led are led by another in-sync replica and it left their ISRs, not a
/// session timeout (1.5 s) later.
#[test]
fn a_stopped_broker_hands_its_leaderships_to_in_sync_replicas_before_it_exits() {
    let mut cluster = Cluster::start(3, &[]);
    create_until(&cluster, 1, "handover", 3, 3, RECOVERY);
    let metadata = cluster.wait_metadata(1, RECOVERY, |m| {
        let ps = partitions(m, "handover");
        ps.len() == 3 && ps.iter().all(|p| p.1 != -1) && controller(m) != -1
    });
    let boss = controller(&metadata) as usize;
    let gone = (boss % 3) + 1;
    assert!(partitions(&metadata, "handover").iter().any(|p| p.1 == gone as i64), "{metadata}");
    let started = Instant::now();
    assert!(cluster.node(gone).stop(), "a clean stop");
    eprintln!("node {gone} stopped in {:?}", started.elapsed());
    let metadata = cluster.metadata(boss);
    for (partition, leader, _, isr) in partitions(&metadata, "handover") {
        assert!(leader != -1 && leader != gone as i64, "partition {partition}: {metadata}");
        assert!(!isr.contains(&(gone as i64)) && isr.contains(&leader), "partition {partition}: {metadata}");
    }
}

#[test]
fn with_two_voters_down_changes_fail_clearly_and_live_leaders_keep_serving() {
    let mut cluster = Cluster::start(3, &[]);
    create_until(&cluster, 1, "t", 3, 1, RECOVERY);
    let metadata = cluster.wait_metadata(1, RECOVERY, |m| partitions(m, "t").len() == 3);
    let on_1: Vec<i64> = partitions(&metadata, "t").iter().filter(|p| p.1 == 1).map(|p| p.0).collect();
    assert!(!on_1.is_empty());
    cluster.node(2).kill9();
    cluster.node(3).kill9();
    // No quorum: a change fails with a clear error instead of hanging.
    let refused = create_topic(&cluster.nodes[0].addr, "no-quorum", 1, 1);
    assert!(!ok(&refused), "{}", text(&refused));
    let why = text(&refused);
    assert!(why.contains("RequestTimedOut") || why.contains("quorum"), "{why}");
    // Node 1 still leads its partitions and takes writes.
    for p in &on_1 {
        let (code, _) = produce_to(&cluster.nodes[0].addr, "t", *p as i32, &batch(1, 10));
        assert_eq!(code, 0, "partition {p} on the live leader");
    }
    // The voters return; the quorum works again and every node agrees. (The refused change may
    // still commit now: a timed-out change is undecided, as in Kafka; what matters is that every
    // node ends with the same metadata.)
    cluster.node(2).restart();
    cluster.node(3).restart();
    create_until(&cluster, 3, "after", 1, 1, RECOVERY);
    let names = |m: &Value| -> Vec<String> {
        let mut names: Vec<String> = m["topics"]
            .as_array()
            .map(|ts| ts.iter().filter_map(|t| t["topic"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    let reference = cluster.wait_metadata(3, RECOVERY, |m| topic(m, "after").is_some());
    for id in 1..=3 {
        let metadata = cluster.wait_metadata(id, RECOVERY, |m| names(m) == names(&reference) && brokers(m).len() == 3);
        assert_eq!(names(&metadata), names(&reference), "node {id}: {metadata}");
        assert_eq!(partitions(&metadata, "t"), partitions(&reference, "t"), "node {id}");
    }
}

#[test]
fn a_wiped_voter_rejoins_and_a_broker_only_node_follows_the_log() {
    // Snapshots every few entries, so the wiped voter and a lagging observer catch up from one.
    let mut cluster = Cluster::start(4, &["--metadata-snapshot-after-entries", "5"]);
    create_until(&cluster, 4, "from-observer", 4, 1, RECOVERY);
    let metadata = cluster.wait_metadata(4, RECOVERY, |m| partitions(m, "from-observer").len() == 4);
    assert_eq!(brokers(&metadata), vec![1, 2, 3, 4]);
    // A voter loses its whole data dir and comes back as a new incarnation.
    let victim = if controller(&metadata) == 3 { 2 } else { 3 };
    cluster.node(victim).kill9();
    std::fs::remove_dir_all(&cluster.nodes[victim - 1].data_dir).expect("wipe the data dir");
    cluster.node(victim).restart();
    create_until(&cluster, victim, "after-wipe", 2, 1, RECOVERY);
    // The broker-only node keeps no log: restarted, it starts from the controller's snapshot
    // (the log was compacted long since).
    cluster.node(4).restart();
    for id in 1..=4 {
        let metadata = cluster.wait_metadata(id, RECOVERY, |m| {
            partitions(m, "after-wipe").len() == 2 && partitions(m, "from-observer").len() == 4 && brokers(m).len() == 4
        });
        assert_eq!(brokers(&metadata), vec![1, 2, 3, 4], "node {id}: {metadata}");
        assert_eq!(partitions(&metadata, "from-observer").len(), 4, "node {id}: {metadata}");
    }
}

#[test]
fn a_duplicate_node_id_or_a_disagreeing_voter_list_exits_with_one_clear_line() {
    let mut cluster = Cluster::start(3, &[]);
    // Node 2's quorum log names voters 1, 2, 3; started with another list it refuses to run.
    cluster.node(2).stop();
    let data_dir = cluster.nodes[1].data_dir.clone();
    let mut wrong = Command::new(sluice_bin());
    wrong
        .args(["broker", "--node-id", "2", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .args(["--controller-voters", &format!("2@127.0.0.1:{},5@127.0.0.1:{}", free_port(), free_port())])
        .args(FAST_CLUSTER)
        .args(["--cores", "1"]);
    let output = crate::harness::output_within(wrong, Duration::from_secs(30));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("voters"), "{stderr}");

    // A second live process claiming node 3's id is refused once node 3's session is known live.
    let dir = crate::harness::temp_dir();
    let voters = cluster.voters.clone();
    let mut duplicate = Command::new(sluice_bin());
    duplicate
        .args(["broker", "--node-id", "4", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("a"))
        .args(["--controller-voters", &voters])
        .args(FAST_CLUSTER)
        .args(["--cores", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut first = duplicate.spawn().expect("spawn node 4");
    let mut second = Command::new(sluice_bin());
    second
        .args(["broker", "--node-id", "4", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("b"))
        .args(["--controller-voters", &voters])
        .args(FAST_CLUSTER)
        .args(["--cores", "2"]);
    // Let the first register and heartbeat.
    std::thread::sleep(Duration::from_secs(2));
    let output = crate::harness::output_within(second, Duration::from_secs(60));
    let _ = first.kill();
    let _ = first.wait();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already registered by a live broker"), "{stderr}");
}

#[test]
fn a_data_dir_from_before_the_cluster_opens_with_its_topics_and_records() {
    use crate::harness::Broker;
    let mut broker = Broker::start(&["--cores", "1"]);
    let created = create_topic(&broker.addr, "old", 2, 1);
    assert!(ok(&created), "{}", text(&created));
    for p in 0..2 {
        assert_eq!(produce_to(&broker.addr, "old", p, &batch(5, 10)), (0, 0));
    }
    assert!(broker.stop());
    // What the single-node release kept: a JSON image, and no metadata log.
    let metadata = broker.data_dir.join("__metadata");
    std::fs::remove_dir_all(metadata.join("quorum")).expect("remove the quorum's log");
    let legacy = r#"{"cluster_id":"legacy-cluster","version":3,"topics":{"old":{"name":"old",
        "id":"0123456789abcdef0123456789abcdef","partitions":[{"shard":0,"leader_epoch":0},
        {"shard":0,"leader_epoch":0}],"configs":{"retention.ms":"3600000"}}},"next_producer_id":4000}"#;
    std::fs::write(metadata.join("image.json"), legacy).expect("write the old image");
    broker.restart();
    for p in 0..2 {
        assert_eq!(produce_to(&broker.addr, "old", p, &batch(1, 10)), (0, 5), "partition {p} kept its records");
    }
    let described = sluice(&["topic", "describe", "old", "--bootstrap", &broker.addr]);
    assert!(text(&described).contains("3600000"), "{}", text(&described));
    // From now on the metadata log is the truth: a restart does not read the old image again.
    broker.restart();
    assert_eq!(produce_to(&broker.addr, "old", 0, &batch(1, 10)), (0, 6));
}

#[test]
fn garbage_on_the_controller_port_closes_only_that_connection() {
    use std::io::{Read, Write};
    let cluster = Cluster::start(3, &[]);
    let port = cluster.voters.split(',').next().and_then(|v| v.rsplit(':').next()).expect("a voter port");
    let mut garbage = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect to a voter");
    garbage.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send garbage");
    let mut buf = [0u8; 16];
    assert!(matches!(garbage.read(&mut buf), Ok(0) | Err(_)), "the voter closes a connection that is not a node's");
    create_until(&cluster, 1, "still-works", 1, 1, RECOVERY);
}

/// Apache Kafka's Java client at its defaults (tests/java ClientScenarios), bootstrapped from node
/// 1 of a three-node cluster.
#[test]
fn java_client_scenarios_pass_with_the_bootstrap_on_one_node_of_a_cluster() {
    let cluster = Cluster::start(3, &["--auto-create-topics", "--group-initial-rebalance-delay-ms", "0"]);
    for scenario in [
        "producer_defaults",
        "group_rebalance",
        "group_commits",
        "manual_assign",
        "seek",
        "offsets_for_times",
        "pause_resume",
        "transactions",
        "consumer_protocol",
        "compression",
        "group_cooperative",
        "group_static",
        "large_records",
        "consume_transform_produce",
    ] {
        crate::harness::java_scenario(&cluster.nodes[0], "ClientScenarios", scenario, &[]);
    }
}

/// Apache Kafka's AdminClient (tests/java AdminScenarios), and the kafka-python and KafkaJS
/// transactional producers (tests/clients), bootstrapped from node 1 of a three-node cluster.
#[test]
fn admin_and_other_transactional_clients_pass_with_the_bootstrap_on_one_node_of_a_cluster() {
    use crate::transactions::{passed, transactions_py};
    let cluster = Cluster::start(3, &["--group-initial-rebalance-delay-ms", "0"]);
    // Written for a fresh broker each: topics lists every topic and transactions every
    // transactional id, so they go first.
    for scenario in ["topics", "transactions", "configs", "cluster", "groups", "list_offsets", "delete_records"] {
        crate::harness::java_scenario(&cluster.nodes[0], "AdminScenarios", scenario, &[]);
    }
    let addr = &cluster.nodes[0].addr;
    transactions_py(addr, "kafka-python", &["kafka-python", "kafka-python-group"]);
    transactions_py(addr, "expect", &["kafka-python", "c1,c2,c3", "c1,c2,a1,c3"]);
    let output = Command::new("node")
        .arg(crate::harness::node_script("transactions.js"))
        .args([addr.as_str(), "kafkajs", "kafkajs-group"])
        .output()
        .expect("run transactions.js");
    passed(&output, "kafkajs", "transactions.js");
    transactions_py(addr, "expect", &["kafkajs", "c1,c2,c3", "c1,c2,a1,c3"]);
}
