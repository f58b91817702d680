//! Log compaction as Kafka's clients see it (tests/clients/compat.py scenarios): a compacted
//! topic cleaned down to the latest record per key and read from offset 0 by librdkafka,
//! kafka-python and kcat, tombstones kept for delete.retention.ms, `compact,delete`, and keyless
//! records refused; SIGKILL while the cleaner works.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Broker, client_script, compat_scenario, python, temp_dir};

/// A broker whose cleaner looks for work every 100 ms rather than Kafka's 15 s.
fn broker() -> Broker {
    Broker::start(&["--log-cleaner-backoff-ms", "100"])
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
    let mut broker =
        Broker::start(&["--log-cleaner-backoff-ms", "50", "--log-cleaner-io-mb-per-sec", "1", "--cores", "1"]);
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
