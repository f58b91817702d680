//! Transactions across the brokers of a cluster, through Kafka's Java client and librdkafka
//! (confluent-kafka), bootstrapped from one node: the transaction coordinator writes markers to partitions other brokers lead
//! (WriteTxnMarkers), partition leaders verify with a coordinator on another broker (KIP-890,
//! AddPartitionsToTxn `verify_only`), and TxnOffsetCommit reaches a group coordinator that is
//! not the transaction coordinator. A marker that never arrives shows as a read_committed
//! consumer stalled behind an open transaction, which the scenarios check.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sluice::model::partition_for_key;

use crate::harness::{Cluster, client_script, fail_line, java_scenario, python, sluice_bin};

/// How long the cluster may take to show a topic in its metadata.
const SETTLE: Duration = Duration::from_secs(20);

/// The leader of each partition of `name`, by index (-1 for none); empty if the topic is absent.
fn leaders(metadata: &Value, name: &str) -> Vec<i64> {
    let Some(topic) = metadata["topics"].as_array().and_then(|ts| ts.iter().find(|t| t["topic"] == name)) else {
        return Vec::new();
    };
    let mut partitions: Vec<(i64, i64)> = topic["partitions"]
        .as_array()
        .map(|ps| {
            ps.iter().map(|p| (p["partition"].as_i64().unwrap_or(-1), p["leader"].as_i64().unwrap_or(-1))).collect()
        })
        .unwrap_or_default();
    partitions.sort_unstable();
    partitions.into_iter().map(|(_, leader)| leader).collect()
}

/// The broker leading the internal topic's partition for `key` (Kafka's hash of the id).
fn coordinator(leaders: &[i64], key: &str) -> i64 {
    let count = i32::try_from(leaders.len()).unwrap();
    leaders[usize::try_from(partition_for_key(key, count)).unwrap()]
}

/// Creates `name` with `partitions` partitions of one replica each through `addr`.
fn create_topic(addr: &str, name: &str, partitions: u32) {
    let output = Command::new(sluice_bin())
        .args(["topic", "create", name, "--partitions", &partitions.to_string(), "--replication-factor", "1"])
        .args(["--bootstrap", addr])
        .output()
        .expect("run sluice topic create");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn transactions_over_partitions_and_coordinators_on_different_brokers() {
    let cluster = Cluster::start(3, &[]);
    let bootstrap = &cluster.nodes[0];

    // One transactional producer, six partitions over three brokers: commits and aborts end on
    // every partition, wherever its leader is.
    java_scenario(
        bootstrap,
        "ClusterTxnScenarios",
        "transactions_spread",
        &["spread", "6", "spread-txn", "spread-group"],
    );
    let metadata = cluster.wait_metadata(1, SETTLE, |m| {
        leaders(m, "spread").len() == 6
            && !leaders(m, "__consumer_offsets").is_empty()
            && !leaders(m, "__transaction_state").is_empty()
    });
    let spread = leaders(&metadata, "spread");
    for broker in 1..=3 {
        assert!(spread.contains(&broker), "every broker leads a partition of the topic: {spread:?}");
    }

    // librdkafka too (confluent-kafka): an aborted, a committed and an open transaction over the
    // six partitions; read_committed sees exactly the committed records on every partition.
    create_topic(&bootstrap.addr, "spread-rdkafka", 6);
    let output = Command::new(python())
        .arg(client_script("read_committed.py"))
        .args(["--bootstrap", &bootstrap.addr, "--topic", "spread-rdkafka", "--partitions", "6"])
        .output()
        .expect("run read_committed.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("PASS read_committed"),
        "{}\nread_committed.py failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        fail_line(&stdout).unwrap_or("no FAIL line"),
        String::from_utf8_lossy(&output.stderr)
    );

    // A consume-transform-produce loop whose group coordinator is not its transaction
    // coordinator: its offsets are verified with, and ended by, another broker.
    let offsets = leaders(&metadata, "__consumer_offsets");
    let states = leaders(&metadata, "__transaction_state");
    assert!(offsets.iter().chain(&states).all(|&l| l > 0), "internal topics led: {offsets:?} {states:?}");
    let (group, transactional_id) = (0..100)
        .flat_map(|i| (0..100).map(move |j| (format!("eos-group-{i}"), format!("eos-txn-{j}"))))
        .find(|(g, t)| coordinator(&offsets, g) != coordinator(&states, t) && coordinator(&states, t) != 1)
        .expect("ids whose coordinators differ");
    eprintln!(
        "group {group} on broker {}, transactional id {transactional_id} on broker {}",
        coordinator(&offsets, &group),
        coordinator(&states, &transactional_id)
    );
    java_scenario(
        bootstrap,
        "ClusterTxnScenarios",
        "consume_transform_produce",
        &["eos-in", "eos-out", &group, &transactional_id],
    );
}
