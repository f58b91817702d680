//! Replication on a three-node cluster, judged through librdkafka (tests/clients/replicate.py)
//! and kcat's metadata: acks=all records survive their leader's SIGKILL, a restarted replica
//! catches up and rejoins the ISR, every replica ends byte-for-byte equal, committed offsets
//! survive their coordinator, and acks=all is refused when the ISR is too small.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Cluster, client_script, python, sluice_bin};
use crate::raw::{batch, produce_to};

/// Time for the cluster to notice a failure and recover (fast session and election timeouts
/// on a loaded two-core machine), or for a follower to catch up.
const RECOVERY: Duration = Duration::from_secs(30);

/// The flags of these clusters: a follower lagging for 3 s leaves the ISR, few internal
/// partitions.
const FLAGS: &[&str] = &["--replica-lag-time-max-ms", "3000", "--offsets-topic-partitions", "3"];

fn replicate(addr: &str, args: &[&str]) -> Value {
    let output =
        Command::new(python()).arg(client_script("replicate.py")).args(["--bootstrap", addr]).args(args).output();
    let output = output.expect("run replicate.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "replicate.py {args:?} failed\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line")
}

fn create(addr: &str, name: &str, partitions: u32, rf: u32, configs: &[&str]) {
    let mut args: Vec<String> = ["topic", "create", name, "--bootstrap", addr]
        .iter()
        .map(|s| s.to_string())
        .chain(["--partitions".into(), partitions.to_string(), "--replication-factor".into(), rf.to_string()])
        .collect();
    for config in configs {
        args.extend(["--config".to_string(), config.to_string()]);
    }
    let output = Command::new(sluice_bin()).args(&args).output().expect("run sluice");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// (partition, leader, replicas, isr) of `name` in kcat's metadata.
fn partitions(metadata: &Value, name: &str) -> Vec<(i64, i64, Vec<i64>, Vec<i64>)> {
    let ids = |v: &Value| v.as_array().map(|a| a.iter().filter_map(|r| r["id"].as_i64()).collect()).unwrap_or_default();
    let Some(topic) = metadata["topics"].as_array().and_then(|ts| ts.iter().find(|t| t["topic"] == name)) else {
        return Vec::new();
    };
    topic["partitions"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let id = p["partition"].as_i64().unwrap_or(-1);
                    (id, p["leader"].as_i64().unwrap_or(-1), ids(&p["replicas"]), ids(&p["isrs"]))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until every partition of `name` has a leader and `isr` in-sync replicas.
fn wait_isr(cluster: &Cluster, via: usize, name: &str, count: usize, isr: usize) -> Value {
    let metadata = cluster.wait_metadata(via, RECOVERY, |m| {
        let ps = partitions(m, name);
        ps.len() == count && ps.iter().all(|p| p.1 >= 0 && p.3.len() == isr)
    });
    let ps = partitions(&metadata, name);
    assert!(ps.len() == count && ps.iter().all(|p| p.1 >= 0 && p.3.len() == isr), "ISR of {isr} expected: {ps:?}");
    metadata
}

/// (partition, offset) → value of every acked record in a produce answer.
fn acked(answer: &Value) -> BTreeMap<(i64, i64), String> {
    assert_eq!(answer["failed"], 0, "every record acknowledged: {answer}");
    answer["acked"]
        .as_array()
        .expect("acked")
        .iter()
        .map(|r| ((r[0].as_i64().unwrap(), r[1].as_i64().unwrap()), r[2].as_str().unwrap().to_string()))
        .collect()
}

/// Reads all of `topic` through `addr` and checks that every acked record is there, at its
/// offset, and nothing is there twice.
fn check_all_there(addr: &str, topic: &str, acked: &BTreeMap<(i64, i64), String>) {
    let read = replicate(addr, &["read", topic]);
    assert_eq!(read["complete"], true, "{read}");
    let records: BTreeMap<(i64, i64), String> = read["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| ((r[0].as_i64().unwrap(), r[1].as_i64().unwrap()), r[2].as_str().unwrap().to_string()))
        .collect();
    for (at, value) in acked {
        assert_eq!(records.get(at), Some(value), "acked record {value} at {at:?} lost");
    }
    let values: BTreeSet<&String> = records.values().collect();
    assert_eq!(values.len(), records.len(), "a value appears twice");
}

/// The bytes of every segment of each partition directory of `topic` under `data_dir`.
fn segment_bytes(data_dir: &Path, topic: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(data_dir).expect("data dir").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with(&format!("{topic}-")) {
            continue;
        }
        let mut logs: Vec<_> = std::fs::read_dir(entry.path())
            .expect("partition dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        let bytes = logs.iter().flat_map(|p| std::fs::read(p).expect("segment")).collect();
        out.insert(name, bytes);
    }
    out
}

#[test]
fn acked_records_survive_the_leaders_sigkill_and_every_replica_ends_the_same() {
    let mut cluster = Cluster::start(3, FLAGS);
    let addr = cluster.nodes[0].addr.clone();
    create(&addr, "rep", 3, 3, &["min.insync.replicas=2"]);
    let metadata = wait_isr(&cluster, 1, "rep", 3, 3);
    let mut expected = acked(&replicate(&addr, &["produce", "rep", "300", "a"]));
    assert_eq!(expected.len(), 300);

    // SIGKILL the leader of partition 0: a follower takes over with every acked record.
    let leader = partitions(&metadata, "rep")[0].1 as usize;
    cluster.node(leader).kill9();
    let survivor = if leader == 1 { 2 } else { 1 };
    let survivor_addr = cluster.nodes[survivor - 1].addr.clone();
    cluster.wait_metadata(survivor, RECOVERY, |m| {
        partitions(m, "rep").iter().all(|p| p.1 >= 0 && p.1 as usize != leader && p.3.len() == 2)
    });
    expected.extend(acked(&replicate(&survivor_addr, &["produce", "rep", "300", "b"])));
    check_all_there(&survivor_addr, "rep", &expected);

    // The killed broker comes back, catches up (its unacknowledged tail, if any, truncated) and
    // rejoins every ISR.
    cluster.node(leader).restart();
    wait_isr(&cluster, survivor, "rep", 3, 3);
    expected.extend(acked(&replicate(&survivor_addr, &["produce", "rep", "100", "c"])));
    check_all_there(&cluster.nodes[leader - 1].addr.clone(), "rep", &expected);

    // Every replica holds the same bytes once stopped cleanly (after the ISR holds all).
    wait_isr(&cluster, survivor, "rep", 3, 3);
    let deadline = Instant::now() + RECOVERY;
    let copies = loop {
        std::thread::sleep(Duration::from_millis(500));
        let copies: Vec<BTreeMap<String, Vec<u8>>> =
            cluster.nodes.iter().map(|n| segment_bytes(&n.data_dir, "rep")).collect();
        let same = copies.windows(2).all(|w| w[0] == w[1]);
        if same || Instant::now() > deadline {
            break copies;
        }
    };
    for node in &mut cluster.nodes {
        assert!(node.stop(), "a clean stop");
    }
    let stopped: Vec<BTreeMap<String, Vec<u8>>> =
        cluster.nodes.iter().map(|n| segment_bytes(&n.data_dir, "rep")).collect();
    assert_eq!(stopped[0].len(), 3, "three partition directories on each node");
    for (i, copy) in stopped.iter().enumerate().skip(1) {
        for (dir, bytes) in copy {
            assert!(
                stopped[0].get(dir) == Some(bytes),
                "node {} differs from node 1 in {dir} ({} vs {} bytes; before the stop: equal = {})",
                i + 1,
                bytes.len(),
                stopped[0].get(dir).map_or(0, Vec::len),
                copies[0].get(dir) == copies[i].get(dir)
            );
        }
    }
}

#[test]
fn committed_offsets_survive_losing_their_coordinator() {
    let mut cluster = Cluster::start(3, FLAGS);
    let addr = cluster.nodes[0].addr.clone();
    create(&addr, "offsets", 2, 3, &[]);
    wait_isr(&cluster, 1, "offsets", 2, 3);
    replicate(&addr, &["commit", "g1", "offsets", "42"]);
    let metadata = wait_isr(&cluster, 1, "__consumer_offsets", 3, 3);
    // SIGKILL the leader of the group's __consumer_offsets partition, its coordinator.
    let partition = sluice::group::partition_for("g1", 3);
    let coordinator = partitions(&metadata, "__consumer_offsets")[partition as usize].1 as usize;
    cluster.node(coordinator).kill9();
    let survivor = if coordinator == 1 { 2 } else { 1 };
    let deadline = Instant::now() + RECOVERY;
    loop {
        let output = Command::new(python())
            .arg(client_script("replicate.py"))
            .args(["--bootstrap", &cluster.nodes[survivor - 1].addr, "committed", "g1", "offsets"])
            .output()
            .expect("run replicate.py");
        let stdout = String::from_utf8_lossy(&output.stdout);
        if output.status.success()
            && let Ok(answer) = serde_json::from_str::<Value>(stdout.lines().last().unwrap_or(""))
        {
            assert_eq!(answer["committed"]["0"], 42, "{answer}");
            assert_eq!(answer["committed"]["1"], 42, "{answer}");
            break;
        }
        assert!(Instant::now() < deadline, "committed offsets unreadable: {stdout}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn acks_all_needs_min_insync_replicas_and_acks_one_does_not() {
    let mut cluster = Cluster::start(3, FLAGS);
    let addr = cluster.nodes[0].addr.clone();
    create(&addr, "strict", 1, 3, &["min.insync.replicas=3"]);
    let metadata = wait_isr(&cluster, 1, "strict", 1, 3);
    let (code, _) = produce_to(&addr_of_leader(&cluster, &metadata, "strict"), "strict", 0, &batch(3, 10));
    assert_eq!(code, 0, "three in sync: acks=all succeeds");

    // One follower dies: fenced, it leaves the ISR, and acks=all is refused before appending.
    let leader = partitions(&metadata, "strict")[0].1 as usize;
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    cluster.node(follower).kill9();
    let metadata = cluster.wait_metadata(leader, RECOVERY, |m| partitions(m, "strict")[0].3.len() == 2);
    assert_eq!(partitions(&metadata, "strict")[0].3.len(), 2, "{metadata}");
    let (code, _) = produce_to(&cluster.nodes[leader - 1].addr, "strict", 0, &batch(3, 10));
    assert_eq!(code, 19, "NOT_ENOUGH_REPLICAS");

    // It comes back, catches up, rejoins: acks=all works again.
    cluster.node(follower).restart();
    wait_isr(&cluster, leader, "strict", 1, 3);
    let (code, _) = produce_to(&cluster.nodes[leader - 1].addr, "strict", 0, &batch(3, 10));
    assert_eq!(code, 0, "back in sync");

    // DeleteRecords on the leader: every follower's log start follows it.
    let deleted = replicate(&cluster.nodes[leader - 1].addr, &["delete-records", "strict", "4"]);
    assert_eq!(deleted["low_watermarks"]["0"], 4, "{deleted}");
    let deadline = Instant::now() + RECOVERY;
    for node in cluster.nodes.iter().filter(|n| n.addr != cluster.nodes[leader - 1].addr) {
        let checkpoint = node.data_dir.join("strict-0").join("log-start-offset");
        while std::fs::read_to_string(&checkpoint).map(|t| t.trim().to_string()).ok().as_deref() != Some("4") {
            assert!(Instant::now() < deadline, "a follower's log start did not follow the leader's");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn addr_of_leader(cluster: &Cluster, metadata: &Value, topic: &str) -> String {
    let leader = partitions(metadata, topic)[0].1 as usize;
    cluster.nodes[leader - 1].addr.clone()
}

#[test]
fn replication_traffic_stays_on_the_shard_that_owns_the_partition() {
    // Two cores per node: every follower fetch is answered on the leader's shard that owns the
    // partition, reached through that shard's own replication listener.
    // Two fetchers per leader on each core: their fetches are in flight together.
    let flags: Vec<&str> = FLAGS.iter().copied().chain(["--num-replica-fetchers", "2"]).collect();
    let mut cluster = Cluster::start_with(2, &flags, 2, true);
    let addr = cluster.nodes[0].addr.clone();
    create(&addr, "shards", 4, 2, &[]);
    wait_isr(&cluster, 1, "shards", 4, 2);
    let expected = acked(&replicate(&addr, &["produce", "shards", "200", "s"]));
    check_all_there(&addr, "shards", &expected);
    for node in &mut cluster.nodes {
        assert!(node.stop(), "a clean stop");
    }
    for (i, node) in cluster.nodes.iter().enumerate() {
        let log = node.log_text();
        let counts: Vec<&str> = log.lines().filter(|l| l.contains("replication_hops=")).collect();
        assert_eq!(counts.len(), 2, "one count per shard of node {}:\n{log}", i + 1);
        assert!(counts.iter().all(|l| l.contains("replication_hops=0")), "node {}: {counts:?}", i + 1);
    }
}

/// Fetch v4 of partition 0 of `topic` from offset 0 as broker `replica_id` (-1: a consumer);
/// returns the partition's error code and high watermark.
fn fetch_as(addr: &str, topic: &str, replica_id: i32) -> (i16, i64) {
    use std::io::Write;
    let mut body = replica_id.to_be_bytes().to_vec();
    body.extend_from_slice(&0i32.to_be_bytes()); // max_wait_ms
    body.extend_from_slice(&0i32.to_be_bytes()); // min_bytes
    body.extend_from_slice(&(1i32 << 20).to_be_bytes()); // max_bytes
    body.push(0); // isolation level
    body.extend_from_slice(&1i32.to_be_bytes());
    crate::raw::string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes()); // partition
    body.extend_from_slice(&0i64.to_be_bytes()); // fetch offset
    body.extend_from_slice(&(1i32 << 20).to_be_bytes());
    let mut stream = crate::raw::connect_to(addr);
    stream.write_all(&crate::raw::request(1, 4, 5, &body)).expect("send");
    let frame = crate::raw::read_frame(&mut stream).expect("a Fetch response");
    let mut r = crate::raw::Reader(&frame);
    assert_eq!(r.i32(), 5, "correlation id");
    r.i32(); // throttle
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), topic);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.i32(), 0);
    (r.i16(), r.i64())
}

#[test]
fn a_follower_fetch_is_served_only_on_a_replication_listener() {
    let cluster = Cluster::start(1, FLAGS);
    let addr = cluster.nodes[0].addr.clone();
    create(&addr, "guarded", 1, 1, &[]);
    cluster.wait_metadata(1, RECOVERY, |m| partitions(m, "guarded").len() == 1);
    // A client claiming to be a follower on the client listener would read past the high
    // watermark and move the leader's view of the ISR: refused.
    assert_eq!(fetch_as(&addr, "guarded", 7), (31, -1), "CLUSTER_AUTHORIZATION_FAILED");
    assert_eq!(fetch_as(&addr, "guarded", -1).0, 0, "consumers are served");
}

#[test]
fn a_crashed_leader_is_replaced_before_its_session_expires() {
    // A 60 s session: only the closed connections of the killed process can explain a fence
    // within 30 s.
    let flags: Vec<&str> = FLAGS
        .iter()
        .copied()
        .chain(["--broker-session-timeout-ms", "60000", "--broker-heartbeat-interval-ms", "250"])
        .collect();
    let mut cluster = Cluster::start(3, &flags);
    let addr = cluster.nodes[0].addr.clone();
    create(&addr, "crash", 1, 3, &["min.insync.replicas=2"]);
    let metadata = wait_isr(&cluster, 1, "crash", 1, 3);
    let leader = partitions(&metadata, "crash")[0].1 as usize;
    cluster.node(leader).kill9();
    let survivor = if leader == 1 { 2 } else { 1 };
    let metadata = cluster.wait_metadata(survivor, RECOVERY, |m| {
        partitions(m, "crash").first().is_some_and(|p| p.1 >= 0 && p.1 as usize != leader)
    });
    let moved = partitions(&metadata, "crash");
    assert!(moved[0].1 >= 0 && moved[0].1 as usize != leader, "leadership moved off node {leader}: {moved:?}");
    assert!(!moved[0].3.contains(&(leader as i64)), "the crashed node left the ISR: {moved:?}");
}

#[test]
fn a_last_in_sync_replica_back_with_an_empty_data_dir_does_not_lead_from_it() {
    // Three voters and a broker-only node 4, so two replicas can be down with a quorum left.
    let mut cluster = Cluster::start(4, FLAGS);
    let addr = cluster.nodes[0].addr.clone();
    create(&addr, "lone", 6, 2, &["min.insync.replicas=1"]);
    let metadata = wait_isr(&cluster, 1, "lone", 6, 2);
    // A partition with a replica on node 4: of it and the other replica, at most one is a voter.
    let (partition, leader, replicas, _) =
        partitions(&metadata, "lone").into_iter().find(|p| p.2.contains(&4)).expect("a partition on node 4");
    let (leader, follower) = (leader as usize, replicas.iter().copied().find(|&r| r != leader).unwrap() as usize);
    let witness = (1..=3).find(|&n| n != leader && n != follower).unwrap();
    let part = |m: &Value| partitions(m, "lone").into_iter().find(|p| p.0 == partition);

    // The follower dies and leaves the ISR: the leader alone holds what it acknowledges next.
    cluster.node(follower).kill9();
    let alone = cluster.wait_metadata(witness, RECOVERY, |m| part(m).is_some_and(|p| p.3 == [leader as i64]));
    assert_eq!(part(&alone).unwrap().3, [leader as i64], "{alone}");
    let (code, _) = produce_to(&cluster.nodes[leader - 1].addr, "lone", partition as i32, &batch(3, 10));
    assert_eq!(code, 0, "acknowledged by the last in-sync replica");

    // It loses its whole data dir and comes back: it must not lead the partition from nothing.
    cluster.node(leader).kill9();
    std::fs::remove_dir_all(&cluster.nodes[leader - 1].data_dir).expect("wipe the data dir");
    cluster.node(leader).restart();
    let offline = cluster.wait_metadata(witness, RECOVERY, |m| {
        let back = m["brokers"].as_array().is_some_and(|bs| bs.iter().any(|b| b["id"] == leader as i64));
        back && part(m).is_some_and(|p| p.3.is_empty())
    });
    let p = part(&offline).unwrap();
    assert_eq!((p.1, p.3.clone()), (-1, vec![]), "offline, with no in-sync replica: {offline}");
    // Partitions not on both of them stay led, and in sync.
    let pair = |p: &(i64, i64, Vec<i64>, Vec<i64>)| p.2.contains(&(leader as i64)) && p.2.contains(&(follower as i64));
    let healed = cluster.wait_metadata(witness, RECOVERY, |m| {
        partitions(m, "lone").iter().all(|p| if pair(p) { p.1 == -1 } else { p.1 >= 0 && p.3.len() == 2 })
    });
    for p in partitions(&healed, "lone") {
        assert!(if pair(&p) { p.1 == -1 } else { p.1 >= 0 && p.3.len() == 2 }, "{p:?}: {healed}");
    }
    let (code, _) = produce_to(&cluster.nodes[leader - 1].addr, "lone", partition as i32, &batch(1, 5));
    assert_ne!(code, 0, "the wiped replica leads nothing");
    // The old follower returns, out of sync: still offline (unclean election is off).
    cluster.node(follower).restart();
    std::thread::sleep(Duration::from_secs(3));
    let still = cluster.metadata(witness);
    assert_eq!(part(&still).map(|p| p.1), Some(-1), "{still}");
}
