//! Idempotent producers (KIP-98) against the real broker.
//!
//! Third-party clients produce numbered, keyed records while the broker is SIGKILLed and
//! restarted on the same data dir and port; they retry what was in flight, and the broker must
//! recognise the retries of batches it had already written (its producer state is rebuilt from
//! snapshots and the log). A kill at a random moment rarely finds a batch written but not yet
//! acknowledged, so the clients talk to the broker through a proxy (the broker advertises it)
//! that can swallow the broker's answers: the test turns it on, waits until answers were
//! swallowed, and only then kills the broker, so the client certainly retries batches that are
//! already in the log. Afterwards every record is in the topic exactly once, in order, at
//! the offset it was acknowledged with, and the log holds one gapless sequence per partition
//! from one producer id (a broker that forgot the producer would have made the client start
//! over with a new one). The clients: librdkafka (confluent-kafka) with enable.idempotence,
//! kafka-python 3.x's default producer, KafkaJS's idempotent producer
//! (tests/clients/idempotence.py, tests/clients/node/idempotent-producer.js).
//!
//! A raw-protocol test checks the rules one request at a time: duplicates, gaps, epochs, unknown
//! producers, and deduplication after a SIGKILL and after a clean restart.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice::model::{ProducerId, RecordBatch, set_producer};

use crate::harness::{Broker, client_script, fail_line, node_script, python, temp_dir};
use crate::raw::{Reader, batch, connect_to, create_topic, produce_to, read_frame, request, string};

const PARTITIONS: usize = 4;

/// Broker flags of the client tests: partitions on both shards, and segments small enough to
/// roll (and write producer-state snapshots) many times, so recovery loads a snapshot and
/// replays the tail after it.
const BROKER_FLAGS: &[&str] = &["--cores", "2", "--segment-bytes", "262144"];

#[derive(Debug, Clone, Copy)]
enum Client {
    Librdkafka,
    KafkaPython,
    KafkaJs,
}

impl Client {
    /// The producer process: records 0..n to `topic`, at most `rate` records/s.
    fn producer(self, addr: &str, topic: &str, n: usize, acks: &Path, rate: u32) -> Command {
        let args = [topic.to_string(), PARTITIONS.to_string(), n.to_string()];
        let mut command = match self {
            Client::Librdkafka | Client::KafkaPython => {
                let mut c = Command::new(python());
                c.arg(client_script("idempotence.py")).args(["--bootstrap", addr]);
                c.arg(if matches!(self, Client::Librdkafka) { "librdkafka" } else { "kafka-python" });
                c
            }
            Client::KafkaJs => {
                let mut c = Command::new("node");
                c.arg(node_script("idempotent-producer.js")).arg(addr);
                c
            }
        };
        command.args(args).arg(acks).arg(rate.to_string());
        command
    }
}

/// A producer process. A thread reads its stdout: "acked <count>" lines move `acked`, other
/// lines are kept for the verdict.
struct RunningProducer {
    client: Client,
    child: Child,
    acked: Arc<AtomicUsize>,
    stdout: Option<JoinHandle<Vec<String>>>,
    stderr: Option<JoinHandle<String>>,
}

impl RunningProducer {
    fn spawn(client: Client, mut command: Command) -> RunningProducer {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the producer");
        let acked = Arc::new(AtomicUsize::new(0));
        let counter = acked.clone();
        let out = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut other = Vec::new();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                match line.strip_prefix("acked ").and_then(|n| n.parse().ok()) {
                    Some(n) => counter.store(n, Ordering::SeqCst),
                    None => other.push(line),
                }
            }
            other
        });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        RunningProducer { client, child, acked, stdout: Some(stdout), stderr: Some(stderr) }
    }

    /// Waits until at least `count` records are acknowledged; returns how many are.
    fn wait_acked(&mut self, count: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let acked = self.acked.load(Ordering::SeqCst);
            if acked >= count {
                return acked;
            }
            if !matches!(self.child.try_wait(), Ok(None)) {
                self.fail(&format!("exited after {acked} acknowledgements, before {count}"));
            }
            if Instant::now() > deadline {
                self.fail(&format!("only {acked} of {count} records acknowledged in {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the producer to exit and asserts that it acknowledged all `n` records.
    fn finish(mut self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                self.fail(&format!("still running after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let lines = self.stdout.take().expect("stdout").join().expect("stdout reader");
        if !status.success() || !lines.contains(&format!("PRODUCED {n}")) {
            let stderr = self.stderr.take().expect("stderr").join().expect("stderr reader");
            panic!(
                "{}\n{:?} producer: {status}\n--- stdout\n{}\n--- stderr (end)\n{}",
                fail_line(&lines.join("\n")).unwrap_or("no FAIL line"),
                self.client,
                lines.join("\n"),
                tail(&stderr, 40)
            );
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let lines = self.stdout.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        panic!(
            "{:?} producer {what}\n{}\n--- stdout\n{}\n--- stderr (end)\n{}",
            self.client,
            fail_line(&lines.join("\n")).unwrap_or("no FAIL line"),
            lines.join("\n"),
            tail(&stderr, 40)
        );
    }
}

impl Drop for RunningProducer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A TCP proxy in front of the broker, which the broker advertises, so that every connection of
/// a client goes through it. With `swallow` on, it drops what the broker sends (the connection
/// stays open): requests are served, and their answers never arrive.
struct Proxy {
    addr: String,
    target: Arc<Mutex<String>>,
    swallow: Arc<AtomicBool>,
    /// Reads from the broker dropped while swallowing.
    swallowed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let proxy = Proxy {
            addr: listener.local_addr().expect("proxy address").to_string(),
            target: Arc::new(Mutex::new(String::new())),
            swallow: Arc::new(AtomicBool::new(false)),
            swallowed: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (target, swallow, swallowed, stop) =
            (proxy.target.clone(), proxy.swallow.clone(), proxy.swallowed.clone(), proxy.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => continue,
                };
                let to = target.lock().expect("target").clone();
                // The broker is down: the client sees its connection close, as it would.
                let Ok(broker) = TcpStream::connect(&to) else { continue };
                let _ = client.set_nonblocking(false);
                let (client2, broker2) = (client.try_clone().expect("clone"), broker.try_clone().expect("clone"));
                std::thread::spawn(move || pump(client, broker, None));
                let (swallow, swallowed) = (swallow.clone(), swallowed.clone());
                std::thread::spawn(move || pump(broker2, client2, Some((swallow, swallowed))));
            }
        });
        proxy
    }

    /// Swallows the broker's answers until at least one was swallowed, then a little longer so
    /// that every request in flight is served.
    fn swallow_answers(&self) {
        let before = self.swallowed.load(Ordering::SeqCst);
        self.swallow.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.swallowed.load(Ordering::SeqCst) == before {
            assert!(Instant::now() < deadline, "no answer from the broker to swallow in 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either side closes, then closes both; drops what it reads while
/// `swallow` is on (and counts it).
fn pump(mut from: TcpStream, mut to: TcpStream, swallow: Option<(Arc<AtomicBool>, Arc<AtomicUsize>)>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((on, count)) = &swallow
            && on.load(Ordering::SeqCst)
        {
            count.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// How the broker goes down mid-stream.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// SIGKILL at once.
    Plain,
    /// Swallow the broker's answers first, so that the batches in flight are in the log but
    /// not acknowledged, then SIGKILL.
    Unanswered,
}

/// `client` produces `n` records at most `rate` per second; each `(at, how)` of `kills`
/// SIGKILLs the broker once `at` records are acknowledged, and restarts it. Then the topic is
/// checked: by a consumer (tests/clients/idempotence.py `verify`) and batch by batch
/// (`check_log`).
fn produce_through_crashes(client: Client, n: usize, rate: u32, kills: &[(usize, Kill)]) {
    let started = Instant::now();
    let proxy = Proxy::start();
    let mut flags = BROKER_FLAGS.to_vec();
    flags.extend(["--advertised-listener", &proxy.addr]);
    let mut broker = Broker::start(&flags);
    *proxy.target.lock().expect("target") = broker.addr.clone();
    let scratch = temp_dir();
    let acks = scratch.path().join("acks.txt");
    let topic = "idempotent";
    let mut producer = RunningProducer::spawn(client, client.producer(&proxy.addr, topic, n, &acks, rate));
    for &(at, how) in kills {
        let acked = producer.wait_acked(at, Duration::from_secs(40));
        assert!(acked < n, "{client:?}: all {n} records were acknowledged before the kill at {at}: not mid-stream");
        if let Kill::Unanswered = how {
            proxy.swallow_answers();
        }
        broker.kill9();
        // Down long enough for the client to see its connections fail and its requests go
        // unanswered.
        std::thread::sleep(Duration::from_millis(300));
        proxy.swallow.store(false, Ordering::SeqCst);
        broker.restart();
    }
    producer.finish(n, Duration::from_secs(60));
    let produced = started.elapsed();

    let output = Command::new(python())
        .arg(client_script("idempotence.py"))
        .args(["--bootstrap", &proxy.addr, "verify", topic, &PARTITIONS.to_string(), &n.to_string()])
        .arg(&acks)
        .arg("--ordered")
        .output()
        .expect("run the verifier");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(&format!("PASS verify {n}")),
        "{}\n{client:?}: the topic after {} SIGKILLs is not what was produced\n--- stderr\n{}",
        fail_line(&stdout).unwrap_or("no FAIL line"),
        kills.len(),
        tail(&String::from_utf8_lossy(&output.stderr), 40)
    );
    check_log(&broker.addr, topic, n);
    eprintln!("{client:?}: {n} records, kills {kills:?}: produced in {produced:?}, checked in {:?}", started.elapsed());
}

/// What the log says of one batch.
#[derive(Debug, Clone, Copy)]
struct BatchInfo {
    base_offset: i64,
    records: i32,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
}

/// Walks every batch of every partition (Fetch v4, by hand): each carries a producer id, and
/// each partition holds one sequence from 0, without gap or repeat, of one producer id and
/// epoch, covering `n` records in all.
fn check_log(addr: &str, topic: &str, n: usize) {
    let mut producers = HashMap::new();
    let mut records = 0usize;
    for partition in 0..PARTITIONS as i32 {
        let batches = log_batches(addr, topic, partition);
        let mut next_sequence = 0;
        for b in &batches {
            assert!(b.producer_id >= 0, "partition {partition}: a batch without a producer id: {b:?}");
            *producers.entry((b.producer_id, b.epoch)).or_insert(0usize) += 1;
            assert_eq!(
                b.base_sequence, next_sequence,
                "partition {partition}: batch at offset {} starts at sequence {}, expected {next_sequence}: {b:?}",
                b.base_offset, b.base_sequence
            );
            next_sequence += b.records;
            records += usize::try_from(b.records).expect("record count");
        }
    }
    assert_eq!(records, n, "records in the log");
    assert_eq!(
        producers.len(),
        1,
        "one producer id and epoch wrote every batch (a broker that lost the producer's state makes it start over \
         with a new one): {producers:?}"
    );
}

/// Every batch of `topic`/`partition`, by Fetch v4 from offset 0 to the high watermark.
fn log_batches(addr: &str, topic: &str, partition: i32) -> Vec<BatchInfo> {
    let mut stream = connect_to(addr);
    let mut out = Vec::new();
    let mut offset = 0i64;
    loop {
        let mut body = (-1i32).to_be_bytes().to_vec(); // replica id
        body.extend_from_slice(&0i32.to_be_bytes()); // max wait
        body.extend_from_slice(&0i32.to_be_bytes()); // min bytes
        body.extend_from_slice(&(4i32 << 20).to_be_bytes()); // max bytes
        body.push(0); // read uncommitted
        body.extend_from_slice(&1i32.to_be_bytes());
        string(&mut body, topic);
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&partition.to_be_bytes());
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&(1i32 << 20).to_be_bytes()); // partition max bytes
        stream.write_all(&request(1, 4, 5, &body)).expect("send Fetch");
        let frame = read_frame(&mut stream).expect("a Fetch response");
        let mut r = Reader(&frame);
        assert_eq!(r.i32(), 5, "correlation id");
        r.i32(); // throttle time
        assert_eq!(r.i32(), 1, "topics");
        assert_eq!(r.string(), topic);
        assert_eq!(r.i32(), 1, "partitions");
        assert_eq!(r.i32(), partition);
        assert_eq!(r.i16(), 0, "Fetch error for partition {partition} at offset {offset}");
        let high_watermark = r.i64();
        r.i64(); // last stable offset
        assert!(r.i32() <= 0, "no aborted transactions");
        let len = usize::try_from(r.i32()).unwrap_or(0);
        let mut records = r.take(len);
        if offset >= high_watermark {
            return out;
        }
        let before = offset;
        while let Ok(b) = RecordBatch::parse_prefix(records, usize::MAX) {
            let h = b.header();
            if b.base_offset().0 >= offset {
                out.push(BatchInfo {
                    base_offset: b.base_offset().0,
                    records: b.records_count(),
                    producer_id: h.producer_id.get(),
                    epoch: h.producer_epoch.get(),
                    base_sequence: h.base_sequence.get(),
                });
                offset = b.next_offset().0;
            }
            records = &records[b.size()..];
        }
        assert!(
            offset > before,
            "partition {partition}: no progress at offset {offset} (high watermark {high_watermark})"
        );
    }
}

#[test]
fn librdkafka_idempotent_producer_through_two_sigkills() {
    produce_through_crashes(Client::Librdkafka, 200_000, 40_000, &[(50_000, Kill::Unanswered), (120_000, Kill::Plain)]);
}

#[test]
fn kafka_python_default_producer_through_a_sigkill() {
    produce_through_crashes(Client::KafkaPython, 30_000, 10_000, &[(10_000, Kill::Unanswered)]);
}

#[test]
fn kafkajs_idempotent_producer_through_a_sigkill() {
    produce_through_crashes(Client::KafkaJs, 30_000, 10_000, &[(10_000, Kill::Unanswered)]);
}

// --- the raw protocol ------------------------------------------------------------------------

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const UNKNOWN_PRODUCER_ID: i16 = 59;
const INVALID_RECORD: i16 = 87;

/// InitProducerId v1 (by hand) for an idempotent producer: (producer id, epoch).
fn init_producer_id(addr: &str) -> (i64, i16) {
    let mut body = (-1i16).to_be_bytes().to_vec(); // transactional id: null
    body.extend_from_slice(&60_000i32.to_be_bytes()); // transaction timeout
    let mut stream = connect_to(addr);
    stream.write_all(&request(22, 1, 3, &body)).expect("send InitProducerId");
    let frame = read_frame(&mut stream).expect("an InitProducerId response");
    let mut r = Reader(&frame);
    assert_eq!(r.i32(), 3, "correlation id");
    r.i32(); // throttle time
    assert_eq!(r.i16(), 0, "InitProducerId error");
    (r.i64(), r.i16())
}

/// ListOffsets v1 (by hand), latest: the log end (the high watermark).
fn log_end(addr: &str, topic: &str, partition: i32) -> i64 {
    let mut body = (-1i32).to_be_bytes().to_vec(); // replica id
    body.extend_from_slice(&1i32.to_be_bytes());
    string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(-1i64).to_be_bytes()); // latest
    let mut stream = connect_to(addr);
    stream.write_all(&request(2, 1, 4, &body)).expect("send ListOffsets");
    let frame = read_frame(&mut stream).expect("a ListOffsets response");
    let mut r = Reader(&frame);
    assert_eq!(r.i32(), 4, "correlation id");
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), topic);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.i32(), partition);
    assert_eq!(r.i16(), 0, "ListOffsets error");
    r.i64(); // timestamp
    r.i64()
}

/// A batch of `records` records from producer `id` at `epoch`, its first sequence `sequence`.
fn stamped(records: usize, id: i64, epoch: i16, sequence: i32) -> Vec<u8> {
    let mut b = batch(records, 20);
    set_producer(&mut b, ProducerId(id), epoch, sequence, false);
    b
}

#[test]
fn raw_produce_deduplicates_retries_and_refuses_gaps_old_epochs_and_unknown_ids() {
    let mut broker = Broker::start(&["--cores", "1"]);
    let t = "idem";
    create_topic(&broker, t);
    let (id, epoch) = init_producer_id(&broker.addr);
    assert!(id >= 0 && epoch == 0, "InitProducerId gave id {id} epoch {epoch}");
    let addr = broker.addr.clone();
    let produce = |records: &[u8]| produce_to(&addr, t, 0, records);
    let end = || log_end(&addr, t, 0);

    let first = stamped(3, id, 0, 0);
    assert_eq!(produce(&first), (0, 0));
    assert_eq!(end(), 3);
    assert_eq!(produce(&first), (0, 0), "the retry of a written batch is answered with its offset");
    assert_eq!(end(), 3, "and appends nothing");
    let second = stamped(2, id, 0, 3);
    assert_eq!(produce(&second), (0, 3));
    assert_eq!(produce(&first), (0, 0), "an older batch among the last five is still recognised");
    assert_eq!(produce(&second), (0, 3));
    assert_eq!(end(), 5);

    assert_eq!(produce(&stamped(1, id, 0, 10)).0, OUT_OF_ORDER_SEQUENCE_NUMBER, "a gap (5 expected, 10 sent)");
    assert_eq!(produce(&stamped(1, id, 0, 4)).0, OUT_OF_ORDER_SEQUENCE_NUMBER, "a sequence already used, not a batch");
    assert_eq!(end(), 5, "refused batches append nothing");

    // A producer that bumped its epoch starts its sequence again at 0; the older epoch is fenced.
    let bumped = stamped(2, id, 1, 0);
    assert_eq!(produce(&bumped), (0, 5));
    assert_eq!(produce(&stamped(1, id, 0, 5)).0, INVALID_PRODUCER_EPOCH, "the next batch of the old epoch");
    assert_eq!(produce(&second).0, INVALID_PRODUCER_EPOCH, "a retry from the old epoch");
    assert_eq!(end(), 7);

    // A producer id the partition never saw may only start at sequence 0 (KIP-360).
    let (other, _) = init_producer_id(&broker.addr);
    assert_ne!(other, id, "a second InitProducerId gives another id");
    assert_eq!(produce(&stamped(1, other, 0, 5)).0, UNKNOWN_PRODUCER_ID);
    assert_eq!(end(), 7);
    // Sequences are per partition: the same producer starts at 0 on partition 1.
    assert_eq!(produce_to(&addr, t, 1, &stamped(4, id, 1, 0)), (0, 0));

    // SIGKILL: the producer state is rebuilt from the log, and the last batch's retry is still
    // recognised.
    broker.kill9();
    broker.restart();
    let addr = broker.addr.clone();
    let produce = |records: &[u8]| produce_to(&addr, t, 0, records);
    assert_eq!(produce(&bumped), (0, 5), "after a SIGKILL, the retry of the last batch is deduplicated");
    assert_eq!(log_end(&addr, t, 0), 7);
    assert_eq!(produce(&second).0, INVALID_PRODUCER_EPOCH, "after a SIGKILL, the old epoch is still fenced");
    assert_eq!(produce(&stamped(1, id, 1, 9)).0, OUT_OF_ORDER_SEQUENCE_NUMBER, "after a SIGKILL, a gap");
    let third = stamped(1, id, 1, 2);
    assert_eq!(produce(&third), (0, 7), "after a SIGKILL, the sequence goes on");
    assert_eq!(produce_to(&addr, t, 1, &stamped(4, id, 1, 0)), (0, 0), "partition 1 remembers too");
    let (after, _) = init_producer_id(&addr);
    assert!(after != id && after != other, "a restarted broker gives no id twice ({id}, {other}, then {after})");

    // A clean stop writes a snapshot, which the next start loads.
    assert!(broker.stop(), "clean stop");
    broker.restart();
    let addr = broker.addr.clone();
    assert_eq!(produce_to(&addr, t, 0, &third), (0, 7), "after a clean restart, the retry is deduplicated");
    assert_eq!(produce_to(&addr, t, 0, &bumped), (0, 5));
    assert_eq!(log_end(&addr, t, 0), 8);
    assert_eq!(produce_to(&addr, t, 0, &stamped(1, id, 1, 3)), (0, 8), "and the sequence goes on");

    // Kafka's rule for producer-id batches: one per partition per request. Otherwise a retry
    // beside a new batch would answer for both and lose the new one.
    let mut two = third.clone();
    two.extend_from_slice(&stamped(1, id, 1, 4));
    assert_eq!(produce_to(&addr, t, 0, &two).0, INVALID_RECORD, "a retry and a new batch together");
    assert_eq!(log_end(&addr, t, 0), 9, "append nothing");
}
