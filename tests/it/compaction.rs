//! Log compaction as Kafka's clients see it (tests/clients/compat.py scenarios): a compacted
//! topic cleaned down to the latest record per key and read from offset 0 by librdkafka,
//! kafka-python and kcat, tombstones kept for delete.retention.ms, `compact,delete`, and keyless
//! records refused; SIGKILL while the cleaner works.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use sluice::client::group_admin::GroupAdmin;
use sluice::client::{Admin, Client, ClientConfig, NewTopic};
use sluice::protocol::messages::{OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use sluice::testing::run_on_shard;

use crate::harness::{Broker, client_script, compat_scenario, python, temp_dir};

/// A broker whose cleaner looks for work every 100 ms rather than Kafka's 15 s, and retention
/// every 200 ms rather than Kafka's 5 minutes.
fn broker() -> Broker {
    Broker::start(&[
        "--log-cleaner-enable",
        "true",
        "--log-cleaner-backoff-ms",
        "100",
        "--retention-check-interval-ms",
        "200",
    ])
}

#[test]
fn a_compacted_topic_keeps_the_latest_record_per_key_for_every_client() {
    compat_scenario(&broker(), "compaction", &[]);
}

#[test]
fn compact_delete_honours_both() {
    compat_scenario(&broker(), "compaction_and_deletion", &[]);
}

#[test]
fn a_compacted_topic_refuses_records_without_a_key() {
    compat_scenario(&broker(), "compaction_refuses_keyless", &[]);
}

/// `offset key value` lines, as compat.py's compaction_fill and compaction_dump print them.
fn records(text: &str) -> Vec<(i64, String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some((parts.next()?.parse().ok()?, parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

fn python_run(broker: &Broker, args: &[&str]) -> String {
    let output = Command::new(python())
        .arg(client_script("compat.py"))
        .args(["--bootstrap", &broker.addr])
        .args(args)
        .output()
        .expect("run compat.py");
    assert!(output.status.success(), "compat.py {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// SIGKILL the broker at random points while its cleaner works (slowed to 1 MB/s so a clean
/// spans seconds), restart, and read the whole log each time: it is the log before or after a
/// clean, never a mix; every key's latest record is there at its offset, and every record read
/// is one that was written, at the offset it was written at. In the end the clean completes.
#[test]
fn sigkill_while_cleaning_leaves_the_old_log_or_the_new_one() {
    let mut broker = Broker::start(&[
        "--log-cleaner-enable",
        "true",
        "--log-cleaner-backoff-ms",
        "50",
        "--log-cleaner-io-mb-per-sec",
        "1",
        "--cores",
        "1",
    ]);
    let scratch = temp_dir();
    let written_path = scratch.path().join("written.txt");
    let topic = "crash-compact";
    python_run(&broker, &["compaction_fill", topic, written_path.to_str().unwrap()]);
    let written = records(&std::fs::read_to_string(&written_path).unwrap());
    let by_offset: HashMap<i64, (String, String)> =
        written.iter().map(|(o, k, v)| (*o, (k.clone(), v.clone()))).collect();
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for (offset, key, value) in &written {
        latest.insert(key.clone(), (*offset, value.clone()));
    }
    let check = |dump: &str, when: &str| -> usize {
        let read = records(dump);
        let mut last = -1;
        for (offset, key, value) in &read {
            assert!(*offset > last, "{when}: offsets go up: {offset} after {last}");
            last = *offset;
            assert_eq!(by_offset.get(offset), Some(&(key.clone(), value.clone())), "{when}: record at {offset}");
        }
        let present: HashMap<i64, &String> = read.iter().map(|(o, _, v)| (*o, v)).collect();
        for (key, (offset, value)) in &latest {
            assert_eq!(present.get(offset), Some(&value), "{when}: the latest record of {key} at {offset}");
        }
        read.len()
    };
    // A pseudo-random but reproducible kill point per cycle.
    let mut seed: u64 = 0x5eed_c1ea;
    for cycle in 0..6 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_millis(200 + (seed >> 33) % 1500);
        std::thread::sleep(delay);
        broker.kill9();
        broker.restart();
        let count = check(&python_run(&broker, &["compaction_dump", topic]), &format!("after kill {cycle}"));
        assert!(count >= latest.len());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count = check(&python_run(&broker, &["compaction_dump", topic]), "at the end");
        if count == latest.len() {
            break;
        }
        assert!(Instant::now() < deadline, "the clean never completed: {count} records, {} keys", latest.len());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `took_ms` and `log_bytes` of the last "consumer groups loaded" line in `log`.
fn last_load(log: &str) -> Option<(u64, u64)> {
    let line = log.lines().rev().find(|l| l.contains("consumer groups loaded"))?;
    let field = |name: &str| -> Option<u64> {
        let rest = &line[line.find(&format!("{name}="))? + name.len() + 1..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    Some((field("took_ms")?, field("log_bytes")?))
}

/// Waits for a load line after the log grew past `from` bytes.
fn wait_load(broker: &Broker, from: usize) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = broker.log_text();
        if let Some(found) = log.get(from..).and_then(last_load) {
            return found;
        }
        assert!(Instant::now() < deadline, "no 'consumer groups loaded' line after restart");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The group coordinator of 10,000 groups that committed 10 times each: its load after a restart
/// replays the whole history until the cleaner compacts `__consumer_offsets`, then only the
/// latest offset per group. Reports both loads (time and log size) and checks that the
/// compacted log is a fraction of the history and that every group's last commit survives.
#[test]
fn the_group_coordinator_loads_the_compacted_offsets_topic() {
    const GROUPS: usize = 10_000;
    const COMMITS: i64 = 10;
    const IN_FLIGHT: usize = 200;
    let base = ["--offsets-topic-partitions", "1", "--offsets-topic-segment-bytes", "1048576", "--cores", "1"];
    let no_cleaner: Vec<&str> = base.iter().copied().chain(["--log-cleaner-enable", "false"]).collect();
    let mut broker = Broker::start_logged(&no_cleaner);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(ClientConfig::new([addr])).await.unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("t", 1)).await.unwrap();
        let connection = client.any_connection().await.unwrap();
        for round in 1..=COMMITS {
            for chunk in (0..GROUPS).collect::<Vec<_>>().chunks(IN_FLIGHT) {
                let commits = chunk.iter().map(|g| {
                    let request = OffsetCommitRequest {
                        group_id: format!("group-{g}"),
                        generation_id_or_member_epoch: -1,
                        topics: vec![OffsetCommitRequestTopic {
                            name: "t".into(),
                            partitions: vec![OffsetCommitRequestPartition {
                                partition_index: 0,
                                committed_offset: round * 1000 + *g as i64,
                                ..Default::default()
                            }],
                        }],
                        ..Default::default()
                    };
                    let connection = connection.clone();
                    glommio::spawn_local(async move { connection.send(&request).await })
                });
                // Spawned all at once, so the commits are in flight together.
                let commits: Vec<_> = commits.collect();
                for commit in commits {
                    let response = commit.await.unwrap();
                    assert_eq!(response.topics[0].partitions[0].error_code, 0);
                }
            }
        }
    });
    let check_groups = |broker: &Broker| {
        let addr = broker.addr.clone();
        run_on_shard(move || async move {
            let groups = GroupAdmin::new(Client::connect(ClientConfig::new([addr])).await.unwrap());
            for g in (0..GROUPS).step_by(997) {
                let committed = groups.committed_offsets(&format!("group-{g}")).await.unwrap();
                let offset = committed.get(&("t".to_string(), 0)).map(|o| o.offset);
                assert_eq!(offset, Some(COMMITS * 1000 + g as i64), "group-{g}");
            }
        });
    };
    let from = broker.log_text().len();
    broker.restart();
    let (history_ms, history_bytes) = wait_load(&broker, from);
    check_groups(&broker);

    // With the cleaner: wait for a clean of __consumer_offsets, then load again.
    let with_cleaner: Vec<&str> =
        base.iter().copied().chain(["--log-cleaner-enable", "true", "--log-cleaner-backoff-ms", "100"]).collect();
    let from = broker.log_text().len();
    broker.restart_with(&with_cleaner);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !broker.log_text().get(from..).unwrap_or_default().contains("log cleaned tp=__consumer_offsets-0") {
        assert!(Instant::now() < deadline, "__consumer_offsets was not cleaned");
        std::thread::sleep(Duration::from_millis(100));
    }
    let from = broker.log_text().len();
    broker.restart();
    let (compacted_ms, compacted_bytes) = wait_load(&broker, from);
    check_groups(&broker);
    println!(
        "coordinator load of {GROUPS} groups x {COMMITS} commits: history {history_bytes} bytes in {history_ms} ms; \
        compacted {compacted_bytes} bytes in {compacted_ms} ms"
    );
    assert!(compacted_bytes * 3 < history_bytes, "compacted {compacted_bytes} bytes of {history_bytes}");
}
