//! SIGKILL the broker while a real client produces with acks=all; after a restart every
//! acknowledged record is there, at the offset it was acknowledged with, in order.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Broker, client_script, python, temp_dir};

#[test]
fn acknowledged_records_survive_sigkill() {
    let mut broker = Broker::start(&["--cores", "2", "--segment-bytes", "65536"]);
    let scratch = temp_dir();
    let acks_path = scratch.path().join("acks.txt");
    let topic = "crash";
    let partitions = 3;
    let mut producer = Command::new(python())
        .arg(client_script("compat.py"))
        .args(["--bootstrap", &broker.addr, "produce_until_killed", topic])
        .arg(&acks_path)
        .arg(partitions.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start producer");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let acked = std::fs::read_to_string(&acks_path).map(|t| t.lines().count()).unwrap_or(0);
        if acked >= 3000 {
            break;
        }
        assert!(Instant::now() < deadline, "only {acked} records acknowledged in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.kill9();
    let _ = producer.wait();
    let acked_text = std::fs::read_to_string(&acks_path).expect("acks");
    let acked: Vec<(i32, i64, String)> = acked_text
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.to_string()))
        })
        .collect();
    assert!(acked.len() >= 3000);

    broker.restart();
    let output = Command::new(python())
        .arg(client_script("compat.py"))
        .args(["--bootstrap", &broker.addr, "dump_topic", topic, &partitions.to_string()])
        .output()
        .expect("dump topic");
    assert!(output.status.success(), "dump failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut stored: HashMap<(i32, i64), String> = HashMap::new();
    let mut last_offset: HashMap<i32, i64> = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut parts = line.split_whitespace();
        let (Some(p), Some(o), Some(k)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let (p, o): (i32, i64) = (p.parse().expect("partition"), o.parse().expect("offset"));
        if let Some(prev) = last_offset.insert(p, o) {
            assert_eq!(o, prev + 1, "offsets in partition {p} are dense and in order");
        }
        stored.insert((p, o), k.to_string());
    }
    for (p, o, key) in &acked {
        assert_eq!(stored.get(&(*p, *o)), Some(key), "acknowledged record {key} at {p}/{o} is missing or moved");
    }
}
