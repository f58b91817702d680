//! Bounded resources: what the broker does when the machine runs out of something it needs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{Broker, limit_open_files, open_files};
use crate::raw::{batch, connect_to, create_topic, produce_to, read_frame, request, still_serves};

/// CPU time (user + system) the process has used.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf(3) has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

#[test]
fn out_of_descriptors_the_listener_backs_off_logs_once_a_second_and_recovers() {
    let broker = Broker::start_logged(&["--cores", "1"]);
    let pid = broker.pid().expect("running");
    still_serves(&broker);
    // Room for a handful of connections only.
    limit_open_files(pid, (open_files(pid) + 4) as u64);
    let held: Vec<TcpStream> = (0..30).map(|_| connect_to(&broker.addr)).collect();
    let (cpu_before, watched) = (cpu_time(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (cpu, wall) = (cpu_time(pid) - cpu_before, watched.elapsed());
    assert!(cpu < wall / 4, "the broker used {cpu:?} of CPU in {wall:?} while out of descriptors: a busy loop");
    let log = broker.log_text();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("accept failed")).collect();
    assert!(!failures.is_empty(), "nothing logged why connections wait:\n{log}");
    assert!(failures.len() <= 5, "{} lines in ~3 s, more than one a second:\n{}", failures.len(), failures.join("\n"));
    assert!(failures[0].contains("open_files_limit"), "the line names the limit: {}", failures[0]);
    // Connections that close give their descriptors back; new clients are served again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let served = std::panic::catch_unwind(|| still_serves(&broker)).is_ok();
        if served {
            break;
        }
        assert!(Instant::now() < deadline, "no client served 10 s after the held connections closed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The broker's resident memory, from /proc/<pid>/status.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    let kib: u64 = line.split_whitespace().nth(1).expect("a number").parse().expect("kB");
    kib * 1024
}

/// How long an ApiVersions request on `stream` takes to be answered.
fn api_versions_latency(stream: &mut TcpStream, correlation_id: i32) -> Duration {
    let started = Instant::now();
    stream.write_all(&request(18, 0, correlation_id, &[])).expect("send ApiVersions");
    let frame = read_frame(stream).expect("an ApiVersions response");
    assert_eq!(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]), correlation_id);
    started.elapsed()
}

/// Whether the broker closed `stream` (a read sees the end of the stream or a reset), within
/// the stream's read timeout.
fn closed_by_broker(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// The length prefix of a request frame of `len` bytes, and the start of its header (an
/// ApiVersions request) so the bytes look like a request.
fn frame_start(len: i32) -> Vec<u8> {
    let mut start = len.to_be_bytes().to_vec();
    start.extend_from_slice(&request(18, 0, 1, &[])[4..]);
    start
}

/// The per-connection memory a broker may add for 200 connections besides request memory:
/// their tasks, channels and read-ahead buffers, and the allocator's slack. Measured at about
/// 4 MiB; stated generously.
const CONNECTIONS_OVERHEAD_BYTES: u64 = 24 * 1024 * 1024;

/// 200 connections each declare a frame of almost `--max-request-bytes` and trickle 4 KB at a
/// time, 128 KB in all: more than the request budget if each were read. The broker holds what
/// arrived (not the 20 GB declared), never more than its budget, and answers a healthy client
/// throughout.
#[test]
fn trickling_maximum_size_frames_stay_within_the_request_budget_and_others_are_served() {
    const BUDGET: u64 = 16 * 1024 * 1024;
    const CONNECTIONS: usize = 200;
    let budget = BUDGET.to_string();
    let broker = Broker::start(&["--cores", "1", "--queued-max-request-bytes", &budget]);
    let pid = broker.pid().expect("running");
    still_serves(&broker);
    let baseline = resident_bytes(pid);
    let declared = 100 * 1024 * 1024 - 1;
    let mut trickling: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect_to(&broker.addr)).collect();
    for stream in &mut trickling {
        stream.write_all(&frame_start(declared)).expect("send a frame start");
    }
    let mut healthy = connect_to(&broker.addr);
    let (mut latency_max, mut resident_max) = (Duration::ZERO, baseline);
    for round in 0..32 {
        for stream in &mut trickling {
            // The kernel's buffers take 4 KB even from a connection the broker stopped reading.
            stream.write_all(&[round as u8; 4096]).expect("trickle");
        }
        for probe in 0..5 {
            latency_max = latency_max.max(api_versions_latency(&mut healthy, round * 10 + probe));
            resident_max = resident_max.max(resident_bytes(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let grown = resident_max.saturating_sub(baseline);
    println!(
        "{CONNECTIONS} trickling connections: resident {} MiB at rest, +{} MiB at most \
        (budget {} MiB); healthy ApiVersions answered in {latency_max:?} at most",
        baseline >> 20,
        grown >> 20,
        BUDGET >> 20
    );
    assert!(
        grown <= BUDGET + CONNECTIONS_OVERHEAD_BYTES,
        "resident memory grew by {grown} bytes, past the {BUDGET}-byte budget and {CONNECTIONS_OVERHEAD_BYTES} bytes"
    );
    assert!(latency_max < Duration::from_secs(2), "a healthy ApiVersions took {latency_max:?}");
    drop(trickling);
    still_serves(&broker);
}

/// A connection that sends the start of a request and then nothing is closed after
/// --request-receive-timeout-ms, with one line saying why; other connections are served.
#[test]
fn a_request_that_stops_arriving_closes_its_connection_after_the_receive_timeout() {
    let broker = Broker::start_logged(&["--cores", "1", "--request-receive-timeout-ms", "500"]);
    let mut stalled: Vec<TcpStream> = (0..3).map(|_| connect_to(&broker.addr)).collect();
    for stream in &mut stalled {
        stream.write_all(&frame_start(1024 * 1024)).expect("send a frame start");
        stream.write_all(&[1u8; 1000]).expect("send part of it");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    }
    let mut healthy = connect_to(&broker.addr);
    let started = Instant::now();
    for stream in &mut stalled {
        assert!(closed_by_broker(stream), "a stalled request's connection stayed open");
    }
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    api_versions_latency(&mut healthy, 5);
    still_serves(&broker);
    let log = broker.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("--request-receive-timeout-ms")).collect();
    assert!(!lines.is_empty(), "nothing logged why:\n{log}");
    assert!(lines.len() <= 2, "one line a second for a burst of three:\n{}", lines.join("\n"));
}

/// Twelve producers send 1 MiB batches at once, and one a 5 MiB batch, through a 2 MiB request
/// budget: reading waits for memory (backpressure), and every request completes, none refused,
/// the one larger than the whole budget too.
#[test]
fn large_produces_all_complete_through_a_request_budget_smaller_than_them() {
    const PRODUCERS: usize = 12;
    let budget = (2 * 1024 * 1024).to_string();
    let broker = Broker::start(&[
        "--cores",
        "1",
        "--queued-max-request-bytes",
        &budget,
        "--max-message-bytes",
        "8388608",
        "--flush-mode",
        "none",
    ]);
    create_topic(&broker, "big");
    let addr = broker.addr.clone();
    let started = Instant::now();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let records = if i == 0 { batch(5, 1024 * 1024) } else { batch(16, 64 * 1024) };
                (0..3).map(|_| produce_to(&addr, "big", (i % 2) as i32, &records).0).collect::<Vec<i16>>()
            })
        })
        .collect();
    for producer in producers {
        let errors = producer.join().expect("a producer finished");
        assert_eq!(errors, [0, 0, 0], "a produce failed");
    }
    println!("{PRODUCERS} producers, 3 requests each, through a 2 MiB budget in {:?}", started.elapsed());
    still_serves(&broker);
}

/// A connection with no request for --connections-max-idle-ms is closed; one that keeps
/// sending requests is not.
#[test]
fn an_idle_connection_is_closed_after_connections_max_idle_ms() {
    let broker = Broker::start(&["--cores", "1", "--connections-max-idle-ms", "500"]);
    let mut idle = connect_to(&broker.addr);
    let mut busy = connect_to(&broker.addr);
    api_versions_latency(&mut idle, 1);
    for i in 0..10 {
        api_versions_latency(&mut busy, i);
        std::thread::sleep(Duration::from_millis(150));
    }
    idle.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    assert!(closed_by_broker(&mut idle), "an idle connection stayed open");
    api_versions_latency(&mut busy, 11);
}

/// What a broker may add besides its budgets in a produce storm: 50 connections, their
/// librdkafka requests in flight (5 each), the write queue, and the allocator's slack. Stated
/// generously.
const STORM_OVERHEAD_BYTES: u64 = 64 * 1024 * 1024;

/// 50 librdkafka producers at linger.ms=0 (one 1 KiB record per Produce request, acks=all) for
/// 5 s: resident memory stays within the batch cache's and the request budget plus a stated
/// overhead (before per-frame buffers, each cached 1 KiB batch pinned about 23 KB of a shared
/// read buffer), every record is acknowledged, and a healthy client is answered throughout.
#[test]
fn a_storm_of_linger_0_producers_stays_within_the_budgets_and_others_are_served() {
    const CACHE: u64 = 16 * 1024 * 1024;
    const REQUESTS: u64 = 16 * 1024 * 1024;
    let (cache, requests) = (CACHE.to_string(), REQUESTS.to_string());
    let broker =
        Broker::start(&["--cores", "1", "--batch-cache-bytes", &cache, "--queued-max-request-bytes", &requests]);
    let pid = broker.pid().expect("running");
    create_topic(&broker, "storm");
    still_serves(&broker);
    let baseline = resident_bytes(pid);
    let mut storm = std::process::Command::new(crate::harness::python())
        .arg(crate::harness::client_script("storm.py"))
        .args(["--bootstrap", &broker.addr, "--topic", "storm", "--producers", "50", "--rate", "6000"])
        .args(["--seconds", "5"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    let mut healthy = connect_to(&broker.addr);
    let (mut latency_max, mut resident_max) = (Duration::ZERO, baseline);
    let mut probe = 0;
    while storm.try_wait().expect("storm").is_none() {
        latency_max = latency_max.max(api_versions_latency(&mut healthy, probe));
        resident_max = resident_max.max(resident_bytes(pid));
        probe += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = storm.wait_with_output().expect("storm output");
    let counts = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let grown = resident_max.saturating_sub(baseline);
    println!(
        "storm: {counts}; resident {} MiB at rest, +{} MiB at most (budgets {} + {} MiB); healthy ApiVersions \
         answered in {latency_max:?} at most",
        baseline >> 20,
        grown >> 20,
        CACHE >> 20,
        REQUESTS >> 20
    );
    assert!(output.status.success(), "storm.py failed: {counts}");
    let counts: serde_json::Value = serde_json::from_str(counts.trim()).expect("storm counts");
    assert!(counts["sent"].as_u64().unwrap() > 10_000, "{counts}");
    assert_eq!(counts["acked"], counts["sent"], "{counts}");
    assert!(
        grown <= CACHE + REQUESTS + STORM_OVERHEAD_BYTES,
        "resident memory grew by {grown} bytes, past the budgets and {STORM_OVERHEAD_BYTES} bytes"
    );
    assert!(latency_max < Duration::from_secs(2), "a healthy ApiVersions took {latency_max:?}");
}
