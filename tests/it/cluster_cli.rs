//! `sluice cluster status | elect-leaders` and `sluice topic describe`'s leadership columns on a
//! three-node cluster: what the quorum and the partitions look like, in text and JSON, before and
//! after a node dies and comes back.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Cluster, sluice_bin};

/// How long a cluster may take to notice a killed node and move its leaderships.
const RECOVERY: Duration = Duration::from_secs(20);

fn sluice(addr: &str, args: &[&str]) -> Output {
    Command::new(sluice_bin()).args(args).args(["--bootstrap", addr]).output().expect("run sluice")
}

fn printed(args: &[&str], output: &Output) -> String {
    format!(
        "sluice {args:?}: {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[track_caller]
fn ok(addr: &str, args: &[&str]) -> String {
    let output = sluice(addr, args);
    assert!(output.status.success(), "{}", printed(args, &output));
    String::from_utf8(output.stdout).expect("utf-8")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Runs `args` (JSON out) until `done` holds or `RECOVERY` passes; returns the last answer.
fn until(addr: &str, args: &[&str], done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let output = sluice(addr, args);
        if output.status.success() {
            let value = json(&String::from_utf8_lossy(&output.stdout));
            if done(&value) || Instant::now() > deadline {
                return value;
            }
        } else {
            assert!(Instant::now() < deadline, "{}", printed(args, &output));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ids(value: &Value) -> Vec<i64> {
    value.as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default()
}

#[test]
fn cluster_status_elect_leaders_and_topic_leadership() {
    let mut cluster = Cluster::start(3, &[]);
    let addr = cluster.nodes[0].addr.clone();

    // The status: three live brokers, the controller among them leading the quorum, every
    // voter's lag the high watermark minus its log end.
    let status =
        until(&addr, &["cluster", "status", "--json"], |s| s["brokers"].as_array().is_some_and(|b| b.len() == 3));
    let brokers: Vec<i64> = status["brokers"].as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert_eq!(brokers, vec![1, 2, 3], "{status}");
    assert!(status["brokers"][0]["port"].as_i64().unwrap() > 0, "{status}");
    let quorum = &status["quorum"];
    let leader = quorum["leader"].as_i64().unwrap();
    assert_eq!(status["controller"], leader, "{status}");
    assert!(quorum["epoch"].as_i64().unwrap() >= 1, "{status}");
    let hw = quorum["high_watermark"].as_i64().unwrap();
    assert!(hw > 0, "{status}");
    let voters = quorum["voters"].as_array().unwrap();
    assert_eq!(voters.iter().map(|v| v["id"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3], "{status}");
    for voter in voters {
        let end = voter["log_end_offset"].as_i64().unwrap();
        assert_eq!(voter["lag"].as_i64().unwrap(), (hw - end).max(0), "{status}");
    }
    assert_eq!(quorum["observers"], serde_json::json!([]), "{status}");
    let text = ok(&addr, &["cluster", "status"]);
    assert!(text.contains("BROKER  ADDRESS"), "{text}");
    assert!(text.contains(&format!("metadata quorum: leader {leader}, epoch ")), "{text}");
    assert!(text.contains("NODE  ROLE") && text.contains(" leader ") && text.contains(" follower "), "{text}");
    assert!(!text.contains(" fenced "), "{text}");

    // A topic whose partitions each have three replicas, the preferred one leading.
    let created = ok(&addr, &["topic", "create", "lead", "--partitions", "3", "--replication-factor", "3"]);
    assert!(created.contains("3 partition(s)"), "{created}");
    let described = until(&addr, &["topic", "describe", "lead", "--json"], |d| {
        d["partitions"].as_array().is_some_and(|p| p.len() == 3)
    });
    for p in described["partitions"].as_array().unwrap() {
        assert_eq!(ids(&p["replicas"]).len(), 3, "{described}");
        assert_eq!(p["leader"].as_i64(), ids(&p["replicas"]).first().copied(), "{described}");
        assert!(p["leader_epoch"].as_i64().unwrap() >= 0, "{described}");
        assert_eq!(p["offline_replicas"], serde_json::json!([]), "{described}");
    }

    // Nothing to elect, in every form the command takes.
    let all = ok(&addr, &["cluster", "elect-leaders"]);
    assert!(all.contains("every partition is led by its preferred replica"), "{all}");
    let one = json(&ok(&addr, &["cluster", "elect-leaders", "--topic", "lead", "--partition", "2", "--json"]));
    assert_eq!(one, serde_json::json!([{"topic": "lead", "partition": 2, "outcome": "not-needed", "error": null}]));
    let topic = json(&ok(&addr, &["cluster", "elect-leaders", "--topic", "lead", "--json"]));
    assert_eq!(topic.as_array().unwrap().len(), 3, "{topic}");

    // Node 3 dies: it leaves the brokers, and its partition moves to another in-sync replica,
    // node 3 shown offline.
    let p3 = described["partitions"].as_array().unwrap().iter().find(|p| p["leader"] == 3).unwrap()["partition"]
        .as_i64()
        .unwrap();
    cluster.node(3).kill9();
    let status =
        until(&addr, &["cluster", "status", "--json"], |s| s["brokers"].as_array().is_some_and(|b| b.len() == 2));
    assert_eq!(status["brokers"].as_array().unwrap().len(), 2, "{status}");
    assert_eq!(status["fenced"], serde_json::json!([3]), "{status}");
    let text = ok(&addr, &["cluster", "status"]);
    assert!(text.lines().any(|l| l.starts_with("3 ") && l.contains(" fenced ")), "{text}");
    let described = until(&addr, &["topic", "describe", "lead", "--json"], |d| {
        d["partitions"].as_array().is_some_and(|ps| ps.iter().all(|p| p["leader"] != 3))
    });
    let moved = &described["partitions"][p3 as usize];
    assert!([1, 2].contains(&moved["leader"].as_i64().unwrap()), "{described}");
    assert!(moved["leader_epoch"].as_i64().unwrap() >= 1, "{described}");
    assert_eq!(ids(&moved["offline_replicas"]), vec![3], "{described}");
    let table = ok(&addr, &["topic", "describe", "lead"]);
    assert!(table.contains("LEADER-EPOCH") && table.contains("OFFLINE"), "{table}");

    // Its preferred replica is down: the election fails for it, and says why.
    let partition = p3.to_string();
    let args = ["cluster", "elect-leaders", "--topic", "lead", "--partition", &partition];
    let output = sluice(&addr, &args);
    assert!(!output.status.success(), "{}", printed(&args, &output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("failed") && stdout.contains("PreferredLeaderNotAvailable"), "{}", printed(&args, &output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1 partition(s) could not be led by their preferred replica"), "{stderr}");

    // Back again, node 3 is live and no replica is offline (it leads its partition again once
    // it is back in sync and an election, by hand or the auto rebalance, moves it there).
    cluster.node(3).restart();
    until(&addr, &["cluster", "status", "--json"], |s| s["brokers"].as_array().is_some_and(|b| b.len() == 3));
    let described = until(&addr, &["topic", "describe", "lead", "--json"], |d| {
        d["partitions"][p3 as usize]["offline_replicas"] == serde_json::json!([])
    });
    assert_eq!(described["partitions"][p3 as usize]["offline_replicas"], serde_json::json!([]), "{described}");
}
