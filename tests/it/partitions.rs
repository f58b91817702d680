//! Many partitions on one broker (issue 15): a topic of thousands of partitions under an open
//! files limit far below what their files would take if each held its descriptors, every
//! partition written once and read back, before and after a crash and restart.

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use sluice::model::{BatchBuilder, Timestamp};

use crate::harness::{Broker, limit_open_files, open_files, sluice_bin};
use crate::raw::{Reader, read_frame, request, string};

/// Partitions of the topic: 3,000 used to need 6,000-12,000 descriptors.
const PARTITIONS: i32 = 3000;
/// Partitions created per request (each metadata change stays well inside its commit timeout
/// on a slow debug build).
const CREATE_STEP: i32 = 1000;
/// The broker's `--max-open-files`.
const MAX_OPEN_FILES: u64 = 256;
/// The broker's RLIMIT_NOFILE once started: less than a descriptor per partition.
const OPEN_FILES_LIMIT: u64 = 1024;
/// Partitions per Produce and Fetch request.
const PER_REQUEST: i32 = 1000;
const TOPIC: &str = "many";

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// A connection that waits long for its answer: the first write to each of a thousand partitions
/// creates its file, and a debug build on a loaded machine is slow.
fn connect(broker: &Broker) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(&broker.addr).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(120))).expect("timeout");
    stream
}

fn sluice(broker: &Broker, args: &[&str]) {
    let output =
        Command::new(sluice_bin()).args(args).args(["--bootstrap", &broker.addr]).output().expect("run sluice");
    assert!(output.status.success(), "sluice {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// Partition `p`'s one record's value.
fn value(p: i32) -> Vec<u8> {
    format!("the record of partition {p:05}").into_bytes()
}

fn batch(p: i32) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Timestamp(1_700_000_000_000));
    builder.push(Some(b"k"), Some(&value(p)), Timestamp(1_700_000_000_000), &[]);
    builder.build().to_vec()
}

/// One Produce v3 (acks=all) of a batch to each of `partitions`; every one must land at offset
/// `offset`.
fn produce_each(broker: &Broker, partitions: std::ops::Range<i32>, offset: i64) {
    let mut body = (-1i16).to_be_bytes().to_vec(); // transactional id: null
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks=all
    body.extend_from_slice(&60_000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    string(&mut body, TOPIC);
    body.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for p in partitions.clone() {
        let records = batch(p);
        body.extend_from_slice(&p.to_be_bytes());
        body.extend_from_slice(&(records.len() as i32).to_be_bytes());
        body.extend_from_slice(&records);
    }
    let mut stream = connect(broker);
    stream.write_all(&request(0, 3, 7, &body)).expect("send");
    let Some(frame) = read_frame(&mut stream) else {
        let log = broker.log_text();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!("no Produce response; the broker's log ends with:\n{}", tail.join("\n"));
    };
    let mut r = Reader(&frame);
    assert_eq!(r.i32(), 7, "correlation id");
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), TOPIC);
    assert_eq!(r.i32(), partitions.len() as i32);
    for _ in partitions {
        let p = r.i32();
        let (error, base_offset, _append_time) = (r.i16(), r.i64(), r.i64());
        assert_eq!((error, base_offset), (0, offset), "Produce to partition {p}");
    }
}

/// One Fetch v4 of each of `partitions` from offset 0; each must answer its `records` records,
/// the first of them its value.
fn fetch_each(broker: &Broker, partitions: std::ops::Range<i32>, records: i64) {
    let mut body = (-1i32).to_be_bytes().to_vec(); // replica id
    body.extend_from_slice(&0i32.to_be_bytes()); // max wait
    body.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    body.extend_from_slice(&(64i32 << 20).to_be_bytes()); // max bytes
    body.push(0); // read_uncommitted
    body.extend_from_slice(&1i32.to_be_bytes());
    string(&mut body, TOPIC);
    body.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for p in partitions.clone() {
        body.extend_from_slice(&p.to_be_bytes());
        body.extend_from_slice(&0i64.to_be_bytes());
        body.extend_from_slice(&(1i32 << 20).to_be_bytes());
    }
    let mut stream = connect(broker);
    stream.write_all(&request(1, 4, 8, &body)).expect("send");
    let frame = read_frame(&mut stream).expect("a Fetch response");
    let mut r = Reader(&frame);
    assert_eq!(r.i32(), 8, "correlation id");
    let _throttle = r.i32();
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), TOPIC);
    assert_eq!(r.i32(), partitions.len() as i32);
    for _ in partitions {
        let p = r.i32();
        let (error, high_watermark, _lso) = (r.i16(), r.i64(), r.i64());
        let aborted = r.i32();
        assert!(aborted <= 0, "no transactions here");
        let len = r.i32();
        let bytes = r.take(usize::try_from(len).unwrap_or(0)).to_vec();
        assert_eq!((error, high_watermark), (0, records), "Fetch of partition {p}");
        let batch = sluice::model::RecordBatch::parse_prefix(&bytes, usize::MAX).expect("a whole batch");
        let mut iter = sluice::model::RecordIter::new(&batch);
        let first = iter.next().expect("a record").expect("a valid record");
        assert_eq!(first.value, Some(&value(p)[..]), "partition {p}'s record");
    }
}

fn chunks() -> impl Iterator<Item = std::ops::Range<i32>> {
    (0..PARTITIONS).step_by(PER_REQUEST as usize).map(|from| from..(from + PER_REQUEST).min(PARTITIONS))
}

fn report(what: &str, pid: u32, started: Instant) {
    eprintln!(
        "partitions: {what}: {:.1} s, {} open descriptors, {} MiB resident",
        started.elapsed().as_secs_f64(),
        open_files(pid),
        resident_kib(pid) / 1024
    );
}

#[test]
fn thousands_of_partitions_under_a_low_open_files_limit_read_back_every_record_across_a_crash() {
    let max_open_files = MAX_OPEN_FILES.to_string();
    let mut broker = Broker::start_logged(&["--cores", "2", "--max-open-files", &max_open_files]);
    let pid = broker.pid().expect("running");
    limit_open_files(pid, OPEN_FILES_LIMIT);
    let started = Instant::now();
    let step = CREATE_STEP.to_string();
    sluice(&broker, &["topic", "create", TOPIC, "--partitions", &step]);
    for total in (2 * CREATE_STEP..=PARTITIONS).step_by(CREATE_STEP as usize) {
        sluice(&broker, &["topic", "add-partitions", TOPIC, "--partitions", &total.to_string()]);
    }
    report("created", pid, started);
    let started = Instant::now();
    for partitions in chunks() {
        produce_each(&broker, partitions, 0);
    }
    report("one record written to each", pid, started);
    let started = Instant::now();
    for partitions in chunks() {
        fetch_each(&broker, partitions, 1);
    }
    report("each read back", pid, started);
    // The bound holds: the cache's descriptors, the connections', the reserve's.
    let limit = MAX_OPEN_FILES as usize + 128;
    assert!(open_files(pid) <= limit, "{} descriptors open, more than {limit}", open_files(pid));

    // A crash: every partition recovers its written tail segment.
    broker.kill9();
    let started = Instant::now();
    broker.restart();
    let pid = broker.pid().expect("running");
    limit_open_files(pid, OPEN_FILES_LIMIT);
    report("restarted after a crash", pid, started);
    let started = Instant::now();
    for partitions in chunks() {
        fetch_each(&broker, partitions, 1);
    }
    report("each read back from its file", pid, started);
    for partitions in chunks() {
        produce_each(&broker, partitions, 1);
    }
    for partitions in chunks() {
        fetch_each(&broker, partitions, 2);
    }
    report("a second record written and both read back", pid, started);
    assert!(open_files(pid) <= limit, "{} descriptors open, more than {limit}", open_files(pid));
    let log = broker.log_text();
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("descriptors") && l.contains("WARN")).collect();
    assert!(refused.len() <= 2, "ran out of descriptors:\n{}", refused.join("\n"));
}

/// Partitions of a topic created in one request whose metadata change outgrows one entry of the
/// metadata log (about 170 bytes of record a partition, 1 MiB an entry).
const WIDE_PARTITIONS: i32 = 8000;

#[test]
fn a_topic_too_large_for_one_metadata_entry_is_created_at_once_and_its_broker_restarts() {
    let mut broker = Broker::start_logged(&["--cores", "1"]);
    let started = Instant::now();
    sluice(&broker, &["topic", "create", TOPIC, "--partitions", &WIDE_PARTITIONS.to_string()]);
    report("created at once", broker.pid().expect("running"), started);
    let last = WIDE_PARTITIONS - PER_REQUEST..WIDE_PARTITIONS;
    produce_each(&broker, last.clone(), 0);
    fetch_each(&broker, last.clone(), 1);

    // Re-registering after a crash moves every leadership back: another change over them all.
    broker.kill9();
    broker.restart();
    fetch_each(&broker, last.clone(), 1);
    produce_each(&broker, last.clone(), 1);
    // A clean stop fences the broker first: one more.
    assert!(broker.stop(), "the broker did not stop cleanly");
    broker.restart();
    fetch_each(&broker, last.clone(), 2);
    produce_each(&broker, 0..PER_REQUEST, 0);
    fetch_each(&broker, 0..PER_REQUEST, 1);

    let log = broker.log_text();
    assert!(log.contains("a metadata change split over several entries"), "no split change:\n{log}");
    assert!(!log.contains("ERROR"), "errors:\n{log}");
}
