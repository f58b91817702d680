//! `sluice bench` against a real broker: the JSON report has the documented fields and counts
//! what happened; failures exit non-zero with one clear line and never hang; Ctrl-C still
//! prints the summary.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Broker, sluice_bin, temp_dir};

/// Runs `sluice bench ARGS` to the end, killing it (and failing) after `limit`.
fn bench(args: &[&str], limit: Duration) -> Output {
    let child = Command::new(sluice_bin())
        .arg("bench")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice bench");
    wait_for(child, limit)
}

fn wait_for(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "sluice bench hung for {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("json written")).expect("valid json")
}

fn assert_percentiles(value: &Value, what: &str) {
    for field in ["count", "mean", "p50", "p90", "p99", "p99_9", "p99_99", "max"] {
        assert!(value[field].is_number(), "{what}.{field} missing in {value}");
    }
    let p = |f: &str| value[f].as_f64().unwrap();
    assert!(p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("p99_9") && p("p99_9") <= p("max"));
    assert!(p("p50") > 0.0, "{what}: latency of zero");
}

#[test]
fn e2e_run_reports_every_documented_field_and_counts_every_record() {
    let broker = Broker::start(&["--cores", "2"]);
    let dir = temp_dir();
    let (json, hdr, plot) = (dir.path().join("r.json"), dir.path().join("lat.hgrm"), dir.path().join("r.png"));
    let output = bench(
        &[
            "e2e",
            "--bootstrap",
            &broker.addr,
            "--topic",
            "bench-e2e",
            "--partitions",
            "3",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--cores",
            "2",
            "--records",
            "3000",
            "--rate",
            "3000",
            "--record-size",
            "200",
            "--keys",
            "zipf:50",
            "--linger-ms",
            "1",
            "--json",
            json.to_str().unwrap(),
            "--hdr",
            hdr.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "stdout: {}\nstderr: {}", text(&output.stdout), text(&output.stderr));
    let summary = text(&output.stdout);
    assert!(summary.contains("end-to-end") && summary.contains("p99.99"), "{summary}");

    let report = read_json(&json);
    assert_eq!(report["config"]["mode"], "e2e");
    assert_eq!(report["config"]["topic"], "bench-e2e");
    assert_eq!(report["config"]["keys"]["distribution"], "zipf");
    assert_eq!(report["config"]["stop"]["records"], 3000);
    assert_eq!(report["produce"]["records"], 3000, "{report}");
    assert!(report["produce"]["bytes"].as_u64().unwrap() >= 3000 * 200);
    // Split across two consumers, every record arrives once.
    assert_eq!(report["consume"]["records"], 3000, "{report}");
    assert!(report["produce"]["records_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["consume"]["mb_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["measured_s"].as_f64().unwrap() > 0.5, "{report}");
    assert_percentiles(&report["produce_latency_ms"], "produce_latency_ms");
    assert_percentiles(&report["e2e_latency_ms"], "e2e_latency_ms");
    assert_eq!(report["errors"], 0);
    assert_eq!(report["interrupted"], false);
    assert!(report["error"].is_null());
    let timeline = report["timeline"].as_array().unwrap();
    assert!(!timeline.is_empty());
    let produced: u64 = timeline.iter().map(|s| s["produced"]["records"].as_u64().unwrap()).sum();
    assert_eq!(produced, 3000);
    // The generator's own cost, over everything it moved (produced and consumed).
    let generator = &report["generator"];
    let bytes = generator["bytes"].as_u64().unwrap();
    assert_eq!(bytes, report["produce"]["bytes"].as_u64().unwrap() + report["consume"]["bytes"].as_u64().unwrap());
    assert!(generator["cpu_s"].as_f64().unwrap() > 0.0, "{generator}");
    assert!(generator["cpu_s_per_gb"].as_f64().unwrap() > 0.0, "{generator}");
    assert!(generator["peak_rss_mib"].as_f64().unwrap() > 1.0, "{generator}");
    assert!(summary.contains("generator:"), "{summary}");

    let hgrm = std::fs::read_to_string(&hdr).unwrap();
    assert!(hgrm.contains("Percentile") && hgrm.contains("#[Max"), "{hgrm}");
    assert!(dir.path().join("lat-e2e.hgrm").exists());
    let png = std::fs::read(&plot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn produce_then_consume_reads_back_what_was_written() {
    let broker = Broker::start(&[]);
    let dir = temp_dir();
    let json = dir.path().join("p.json");
    let common = ["--bootstrap", broker.addr.as_str(), "--topic", "bench-pc", "--json", json.to_str().unwrap()];
    let output = bench(
        &[&["produce", "--partitions", "4", "--records", "20000", "--record-size", "100", "--acks", "1"], &common[..]]
            .concat(),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = read_json(&json);
    assert_eq!(report["produce"]["records"], 20000);
    assert!(report["consume"].is_null());
    assert!(report["e2e_latency_ms"].is_null());

    let output = bench(&[&["consume", "--records", "20000"], &common[..]].concat(), Duration::from_secs(60));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = read_json(&json);
    assert!(report["consume"]["records"].as_u64().unwrap() >= 20000, "{report}");
    assert!(report["produce"].is_null());
}

#[test]
fn idempotent_producers_only_when_asked_and_only_with_acks_all() {
    let broker = Broker::start(&[]);
    let dir = temp_dir();
    let json = dir.path().join("i.json");
    let common = [
        "produce",
        "--bootstrap",
        broker.addr.as_str(),
        "--topic",
        "bench-idem",
        "--partitions",
        "2",
        "--records",
        "5000",
        "--record-size",
        "100",
        "--json",
        json.to_str().unwrap(),
    ];
    // Off by default, so runs compare with those from before.
    let output = bench(&common, Duration::from_secs(60));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(read_json(&json)["config"]["idempotent"], false);
    assert!(!text(&output.stdout).contains("idempotent"), "{}", text(&output.stdout));

    let output = bench(&[&common[..], &["--idempotent"]].concat(), Duration::from_secs(60));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = read_json(&json);
    assert_eq!(report["config"]["idempotent"], true);
    assert_eq!(report["produce"]["records"], 5000);
    assert!(text(&output.stdout).contains("acks all (idempotent)"), "{}", text(&output.stdout));

    for (flags, complaint) in [
        (&["--idempotent", "--acks", "1"][..], "--idempotent needs --acks all"),
        (&["--idempotent", "--max-in-flight", "6"][..], "--idempotent allows --max-in-flight 5 at most"),
    ] {
        let output = bench(&[&common[..], flags].concat(), Duration::from_secs(30));
        assert!(!output.status.success());
        assert!(text(&output.stderr).contains(complaint), "{}", text(&output.stderr));
    }
}

#[test]
fn unreachable_broker_and_unknown_topic_fail_with_one_clear_line() {
    let output = bench(&["produce", "--bootstrap", "127.0.0.1:1", "--duration", "1"], Duration::from_secs(30));
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("sluice: no bootstrap server reachable (127.0.0.1:1)"), "{stderr}");

    let broker = Broker::start(&[]);
    let output = bench(&["consume", "--bootstrap", &broker.addr, "--topic", "absent"], Duration::from_secs(30));
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("sluice: topic absent does not exist"), "{}", text(&output.stderr));

    let args = ["e2e", "--bootstrap", &broker.addr, "--topic", "two", "--partitions", "2", "--consumers", "3"];
    let output = bench(&args, Duration::from_secs(30));
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("3 consumers split 2 partitions"), "{}", text(&output.stderr));

    let output = bench(&["produce", "--record-size", "4"], Duration::from_secs(30));
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("--record-size must be at least 8"), "{}", text(&output.stderr));
}

#[test]
fn a_broker_dying_mid_run_ends_the_run_with_an_error() {
    let mut broker = Broker::start(&[]);
    let child = Command::new(sluice_bin())
        .args(["bench", "produce", "--bootstrap", &broker.addr, "--topic", "dies", "--duration", "120"])
        .args(["--rate", "2000", "--request-timeout", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    broker.kill9();
    let output = wait_for(child, Duration::from_secs(60));
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.lines().last().unwrap_or("").starts_with("sluice: produce failed"), "{stderr}");
    assert!(text(&output.stdout).contains("produced"), "no summary: {}", text(&output.stdout));
}

#[test]
fn ctrl_c_stops_the_run_and_prints_the_summary_so_far() {
    let broker = Broker::start(&[]);
    let mut child = Command::new(sluice_bin())
        .args(["bench", "produce", "--bootstrap", &broker.addr, "--topic", "sigint", "--duration", "120"])
        .args(["--rate", "5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first progress line, so the run has started.
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !text(&seen).contains("rec/s") {
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "bench ended early: {}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = wait_for(child, Duration::from_secs(30));
    assert!(!output.status.success());
    let stdout = text(&output.stdout);
    assert!(stdout.contains("interrupted") && stdout.contains("produced"), "{stdout}");
    let produced = stdout.lines().find(|l| l.starts_with("produced")).unwrap();
    assert!(!produced.contains(" 0 records"), "{produced}");
}

#[test]
fn transactional_producers_commit_every_n_records_and_report_commits() {
    let broker = Broker::start(&[]);
    let dir = temp_dir();
    let json = dir.path().join("t.json");
    let args = [
        "e2e",
        "--bootstrap",
        broker.addr.as_str(),
        "--topic",
        "bench-txn",
        "--partitions",
        "2",
        "--records",
        "3000",
        "--record-size",
        "100",
        "--transactional",
        "--records-per-txn",
        "500",
        "--json",
        json.to_str().unwrap(),
    ];
    let output = bench(&args, Duration::from_secs(60));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = read_json(&json);
    assert_eq!(report["config"]["records_per_txn"], 500);
    assert_eq!(report["produce"]["records"], 3000);
    assert_eq!(report["consume"]["records"], 3000, "read_committed consumers see every committed record");
    assert!(report["commits_per_sec"].as_f64().is_some_and(|c| c > 0.0), "{report}");
    assert!(text(&output.stdout).contains("commits/s"), "{}", text(&output.stdout));
}
