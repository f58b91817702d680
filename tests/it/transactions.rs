//! Transactions (KIP-98, KIP-447, KIP-890) against the real broker.
//!
//! Third-party clients (tests/clients/transactions.py, tests/clients/node/transactions.js):
//! - a consume-transform-produce application (librdkafka) in a consumer group, reading
//!   read_committed and committing its offsets in each transaction, SIGKILLed, paused while a
//!   second instance fences it (a zombie), and running while the broker is SIGKILLed; a
//!   read_committed consumer of its output then sees every input record exactly once;
//! - visibility: aborted records never reach read_committed consumers, and an open transaction
//!   holds them at its last stable offset, with records committed after it by others;
//! - zombie fencing by a second producer with the same transactional id;
//! - a stalled transaction aborted by the broker at its timeout;
//! - kafka-python's and KafkaJS's transactional producers (commit, abort, offsets).
//!
//! The raw protocol, one request at a time: KIP-890's verification of a transactional producer's
//! first write to a partition, offsets committed in a transaction (TxnOffsetCommit), the errors of
//! bad transactional requests, and the `sluice txn` and `sluice topic producers` commands on an
//! open transaction.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice::model::{ControlType, ProducerId, Timestamp, marker_batch, set_producer};

use crate::harness::{Broker, client_script, fail_line, node_script, python, sluice_bin};
use crate::raw::{Reader, batch, connect_to, create_topic, read_frame, request, string};

/// Flags of every broker here: partitions on both shards, groups formed at once, timed-out
/// transactions found within 200 ms.
const BROKER_FLAGS: &[&str] =
    &["--cores", "2", "--group-initial-rebalance-delay-ms", "0", "--transaction-abort-check-interval-ms", "200"];

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `command` of tests/clients/transactions.py against `addr` and asserts that it printed
/// `PASS <command>`; returns that line.
#[track_caller]
pub(crate) fn transactions_py(addr: &str, command: &str, args: &[&str]) -> String {
    let output = Command::new(python())
        .arg(client_script("transactions.py"))
        .args(["--bootstrap", addr, "--sluice"])
        .arg(sluice_bin())
        .arg(command)
        .args(args)
        .output()
        .expect("run transactions.py");
    passed(&output, command, &format!("transactions.py {command} {args:?}"))
}

#[track_caller]
pub(crate) fn passed(output: &Output, command: &str, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let pass = stdout.lines().find(|l| l.starts_with(&format!("PASS {command}")));
    match pass {
        Some(line) if output.status.success() => line.to_string(),
        _ => panic!(
            "{}\n{what} failed ({})\n--- stdout\n{}\n--- stderr (end)\n{}",
            fail_line(&stdout).unwrap_or("no FAIL line"),
            output.status,
            tail(&stdout, 40),
            tail(&stderr, 60)
        ),
    }
}

// --- consume-transform-produce through crashes ----------------------------------------------------

/// A small random source (xorshift), seeded from the clock; the seed is printed so that a run can
/// be repeated.
struct Random(u64);

impl Random {
    fn from_clock() -> Random {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        let seed = nanos | 1;
        eprintln!("transactions: random seed {seed}");
        Random(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What an application process printed so far.
#[derive(Default)]
struct AppOutput {
    /// The last "committed <count>".
    committed: usize,
    /// How many "open" lines: transactions whose records were written.
    opened: usize,
    initialized: bool,
    done: bool,
    fenced: Option<String>,
    lines: Vec<String>,
}

/// A running instance of the application (transactions.py `app`).
struct App {
    name: String,
    /// The broker it talks to, whose state a failure reports.
    broker_addr: String,
    child: Child,
    out: Arc<Mutex<AppOutput>>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

impl App {
    fn spawn(name: &str, addr: &str, args: &[&str]) -> App {
        let mut child = Command::new(python())
            .arg(client_script("transactions.py"))
            .args(["--bootstrap", addr, "app"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the application");
        let out = Arc::new(Mutex::new(AppOutput::default()));
        let shared = out.clone();
        let pipe = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut out = shared.lock().expect("app output");
                if let Some(n) = line.strip_prefix("committed ").and_then(|n| n.parse().ok()) {
                    out.committed = n;
                } else if line.starts_with("open ") {
                    out.opened += 1;
                } else if line == "initialized" {
                    out.initialized = true;
                } else if line == "DONE" {
                    out.done = true;
                } else if line.starts_with("FENCED") {
                    out.fenced = Some(line.clone());
                }
                out.lines.push(line);
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        App {
            name: name.to_string(),
            broker_addr: addr.to_string(),
            child,
            out,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    fn committed(&self) -> usize {
        self.out.lock().expect("app output").committed
    }

    /// Waits until the app's next transaction has written its records and is still open;
    /// returns how many transactions it had opened then.
    fn wait_open(&mut self) -> usize {
        let before = self.out.lock().expect("app output").opened;
        self.wait_for("in a transaction", Duration::from_secs(40), |o| o.opened > before);
        self.out.lock().expect("app output").opened
    }

    /// Whether the app (stopped or killed) was still inside its `opened`-th transaction, with
    /// its records written, when it stopped: nothing after that "open" line.
    fn stopped_inside(&mut self, opened: usize) -> bool {
        std::thread::sleep(Duration::from_millis(50)); // what it printed reaches the reader
        let out = self.out.lock().expect("app output");
        out.opened == opened && out.lines.last().is_some_and(|l| l.starts_with("open "))
    }

    /// Waits until `ready` holds of what the app printed; fails if it exits first.
    fn wait_for(&mut self, what: &str, timeout: Duration, ready: impl Fn(&AppOutput) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if ready(&self.out.lock().expect("app output")) {
                return;
            }
            if !matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100)); // let the readers finish
                if ready(&self.out.lock().expect("app output")) {
                    return;
                }
                self.fail(&format!("exited before {what}"));
            }
            if Instant::now() > deadline {
                self.fail(&format!("not {what} after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the app to exit; returns whether it succeeded.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(h) = self.stdout.take() {
                    let _ = h.join();
                }
                return status.success();
            }
            if Instant::now() > deadline {
                self.fail(&format!("still running after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    fn fail(&mut self, what: &str) -> ! {
        // Where it is stuck, if it is (transactions.py dumps its threads' stacks on SIGUSR1).
        self.signal(libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(200));
        self.kill9();
        if let Some(h) = self.stdout.take() {
            let _ = h.join();
        }
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        let out = self.out.lock().expect("app output");
        let stdout = out.lines.join("\n");
        let broker = match std::net::TcpStream::connect(&self.broker_addr) {
            Ok(_) => "accepts connections",
            Err(_) => "does not accept connections",
        };
        panic!(
            "{}\napplication {} {what} (the broker at {} {broker})\n--- stdout (end)\n{}\n--- stderr (end)\n{}",
            fail_line(&stdout).unwrap_or("no FAIL line"),
            self.name,
            self.broker_addr,
            tail(&stdout, 30),
            tail(&stderr, 60)
        );
    }

    /// How many of the app's transactions were aborted or retried (it says so on stdout).
    fn troubles(&self) -> usize {
        let out = self.out.lock().expect("app output");
        out.lines.iter().filter(|l| l.starts_with("abortable") || l.starts_with("retry")).count()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill9();
    }
}

/// What happens to the running application or the broker at one point of the run.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// SIGKILL the application and start it again: the new instance fences what is left of the
    /// old one and aborts its open transaction.
    App,
    /// SIGKILL the broker and restart it (same data dir and port); the application keeps
    /// running through it.
    Broker,
    /// Pause the application (SIGSTOP), start a second instance (which fences the first), then
    /// resume the first: a zombie, which must find itself fenced and stop.
    Zombie,
    /// SIGKILL both, then restart both.
    Both,
}

#[test]
fn consume_transform_produce_exactly_once_through_app_and_broker_sigkills() {
    const PARTITIONS: usize = 4;
    const N: usize = 20_000;
    const PER_TXN: &str = "100";
    // Records per second: the app takes ~10 s without crashes, so that each crash lands
    // mid-stream.
    const RATE: &str = "2000";
    let plan: [(usize, Crash); 5] = [
        (2_000, Crash::App),
        (5_000, Crash::Broker),
        (8_000, Crash::Zombie),
        (11_000, Crash::Both),
        (14_500, Crash::Broker),
    ];
    let started = Instant::now();
    let mut random = Random::from_clock();
    let mut broker = Broker::start(BROKER_FLAGS);
    let (input, output, group, txn_id) = ("eos-in", "eos-out", "eos-app", "eos-app-0");
    let partitions = PARTITIONS.to_string();
    transactions_py(&broker.addr, "seed", &[input, &partitions, &N.to_string()]);
    transactions_py(&broker.addr, "seed", &[output, &partitions, "0"]);
    let seeded = started.elapsed();
    let args = [input, output, &partitions, group, txn_id, PER_TXN, RATE];
    let mut instance = 0;
    let mut app = App::spawn("#0", &broker.addr, &args);
    let mut troubles = 0;
    // Crashes of the application inside a transaction whose records were written.
    let mut inside = 0;
    for &(at, crash) in &plan {
        app.wait_for(&format!("committed {at}"), Duration::from_secs(40), |o| o.committed >= at);
        // Inside the next transaction, once its records are written (the app then holds it open
        // for at least 30 ms, keeping its pace, before it sends its offsets and commits).
        let opened = app.wait_open();
        assert!(app.committed() < N, "all {N} records were committed before the crash at {at}: not mid-stream");
        eprintln!("transactions: {crash:?} at {} committed ({:?})", app.committed(), started.elapsed());
        instance += 1;
        let name = format!("#{instance}");
        match crash {
            Crash::App => {
                app.kill9();
                inside += usize::from(app.stopped_inside(opened));
                troubles += app.troubles();
                app = App::spawn(&name, &broker.addr, &args);
            }
            Crash::Broker => {
                std::thread::sleep(Duration::from_millis(random.below(60)));
                broker.kill9();
                std::thread::sleep(Duration::from_millis(200 + random.below(300)));
                broker.restart();
            }
            Crash::Both => {
                app.kill9();
                inside += usize::from(app.stopped_inside(opened));
                troubles += app.troubles();
                broker.kill9();
                broker.restart();
                app = App::spawn(&name, &broker.addr, &args);
            }
            Crash::Zombie => {
                app.signal(libc::SIGSTOP);
                inside += usize::from(app.stopped_inside(opened));
                let mut successor = App::spawn(&name, &broker.addr, &args);
                successor.wait_for("initialized", Duration::from_secs(40), |o| o.initialized);
                let mut zombie = std::mem::replace(&mut app, successor);
                zombie.signal(libc::SIGCONT);
                let exited = zombie.wait_exit(Duration::from_secs(40));
                let fenced = zombie.out.lock().expect("app output").fenced.clone();
                if !exited || fenced.is_none() {
                    zombie.fail("was resumed after a second instance started, and did not stop fenced");
                }
                eprintln!("transactions: the zombie stopped: {}", fenced.unwrap_or_default());
                troubles += zombie.troubles();
            }
        }
    }
    app.wait_for("DONE", Duration::from_secs(60), |o| o.done);
    assert!(app.wait_exit(Duration::from_secs(20)), "the last application instance failed");
    troubles += app.troubles();
    let processed = started.elapsed();
    // Each crash of the application inside a transaction left records in the log, which its
    // successor aborted: read_uncommitted sees at least one record more per such crash. (Almost
    // always every crash of the app; the test may be too late for the 30 ms on a loaded machine.)
    let aborted = inside.to_string();
    let args = [input, output, &partitions, &N.to_string(), group, &aborted];
    let verdict = transactions_py(&broker.addr, "verify-eos", &args);
    eprintln!(
        "transactions: {N} records, crashes {plan:?}: seeded in {seeded:?}, processed in {processed:?} \
         ({inside} crashes inside a transaction, {troubles} transaction calls aborted or retried), verified in \
         {:?}: {verdict}",
        started.elapsed()
    );
}

// --- the other clients' scenarios -----------------------------------------------------------------

#[test]
fn read_committed_never_sees_aborted_records_and_waits_at_an_open_transaction() {
    let broker = Broker::start(BROKER_FLAGS);
    transactions_py(&broker.addr, "visibility", &["visibility"]);
}

#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let broker = Broker::start(BROKER_FLAGS);
    transactions_py(&broker.addr, "fencing", &["fencing"]);
}

#[test]
fn a_stalled_transaction_is_aborted_at_its_timeout() {
    let broker = Broker::start(BROKER_FLAGS);
    let verdict = transactions_py(&broker.addr, "timeout", &["stalled", "stalled-txn"]);
    eprintln!("transactions: {verdict}");
}

#[test]
fn kafka_python_transactional_producer_commits_and_aborts() {
    let broker = Broker::start(BROKER_FLAGS);
    transactions_py(&broker.addr, "kafka-python", &["kafka-python", "kafka-python-group"]);
    transactions_py(&broker.addr, "expect", &["kafka-python", "c1,c2,c3", "c1,c2,a1,c3"]);
}

#[test]
fn kafkajs_transactional_producer_commits_aborts_and_sends_offsets() {
    let broker = Broker::start(BROKER_FLAGS);
    let output = Command::new("node")
        .arg(node_script("transactions.js"))
        .args([&broker.addr, "kafkajs", "kafkajs-group"])
        .output()
        .expect("run transactions.js");
    passed(&output, "kafkajs", "transactions.js");
    transactions_py(&broker.addr, "expect", &["kafkajs", "c1,c2,c3", "c1,c2,a1,c3"]);
}

// --- the raw protocol -----------------------------------------------------------------------------

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const INVALID_RECORD: i16 = 87;
const PRODUCER_FENCED: i16 = 90;

const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

/// Sends one request on a fresh connection and returns the response body after the correlation
/// id.
#[track_caller]
fn call(addr: &str, api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut stream = connect_to(addr);
    stream.write_all(&request(api_key, version, 7, body)).expect("send");
    let frame = read_frame(&mut stream).unwrap_or_else(|| panic!("no answer to API {api_key} v{version}"));
    assert_eq!(i32::from_be_bytes(frame[..4].try_into().expect("4 bytes")), 7, "correlation id");
    frame[4..].to_vec()
}

/// Repeats `attempt` while it answers an error a client retries (the coordinator loading, a
/// transaction still completing).
fn retrying<T>(what: &str, mut attempt: impl FnMut() -> (i16, T)) -> (i16, T) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (error, value) = attempt();
        let retriable = [COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, CONCURRENT_TRANSACTIONS];
        if !retriable.contains(&error) || Instant::now() > deadline {
            return (error, value);
        }
        eprintln!("transactions: {what}: error {error}, retrying");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// InitProducerId v1: (error, producer id, epoch).
fn init_producer_id(addr: &str, transactional_id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let (error, (id, epoch)) = retrying("InitProducerId", || {
        let mut body = Vec::new();
        string(&mut body, transactional_id);
        body.extend_from_slice(&timeout_ms.to_be_bytes());
        let response = call(addr, 22, 1, &body);
        let mut r = Reader(&response);
        r.i32(); // throttle time
        let error = r.i16();
        (error, (r.i64(), r.i16()))
    });
    (error, id, epoch)
}

/// The transactional id's producer id and epoch, asserting that InitProducerId succeeded.
#[track_caller]
fn init_transactional(addr: &str, transactional_id: &str) -> (i64, i16) {
    let (error, id, epoch) = init_producer_id(addr, transactional_id, 60_000);
    assert_eq!(error, 0, "InitProducerId for {transactional_id}");
    (id, epoch)
}

/// AddPartitionsToTxn v2: the error of every (topic, partition), in the response's order.
fn add_partitions(
    addr: &str,
    transactional_id: &str,
    id: i64,
    epoch: i16,
    topics: &[(&str, &[i32])],
) -> Vec<(String, i32, i16)> {
    let (_, results) = retrying("AddPartitionsToTxn", || {
        let mut body = Vec::new();
        string(&mut body, transactional_id);
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&epoch.to_be_bytes());
        body.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            string(&mut body, topic);
            body.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                body.extend_from_slice(&p.to_be_bytes());
            }
        }
        let response = call(addr, 24, 2, &body);
        let mut r = Reader(&response);
        r.i32(); // throttle time
        let mut results = Vec::new();
        for _ in 0..r.i32() {
            let topic = r.string();
            for _ in 0..r.i32() {
                let partition = r.i32();
                results.push((topic.clone(), partition, r.i16()));
            }
        }
        let retry = results.iter().map(|r| r.2).find(|e| *e == CONCURRENT_TRANSACTIONS).unwrap_or(0);
        (retry, results)
    });
    results
}

/// EndTxn at `version` (v0-2, not flexible): the error.
fn end_txn_v(addr: &str, version: i16, transactional_id: &str, id: i64, epoch: i16, commit: bool) -> i16 {
    retrying("EndTxn", || {
        let mut body = Vec::new();
        string(&mut body, transactional_id);
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&epoch.to_be_bytes());
        body.push(u8::from(commit));
        let response = call(addr, 26, version, &body);
        let mut r = Reader(&response);
        r.i32(); // throttle time
        (r.i16(), ())
    })
    .0
}

/// EndTxn v2 (the first version that answers PRODUCER_FENCED).
fn end_txn(addr: &str, transactional_id: &str, id: i64, epoch: i16, commit: bool) -> i16 {
    end_txn_v(addr, 2, transactional_id, id, epoch, commit)
}

/// Produce v3 (acks=all) of `records` to topic/partition with `transactional_id` in the request:
/// the partition's error and base offset.
#[track_caller]
fn txn_produce(addr: &str, transactional_id: &str, topic: &str, partition: i32, records: &[u8]) -> (i16, i64) {
    let mut body = Vec::new();
    string(&mut body, transactional_id);
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(records.len() as i32).to_be_bytes());
    body.extend_from_slice(records);
    let response = call(addr, 0, 3, &body);
    let mut r = Reader(&response);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), topic);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.i32(), partition);
    let error = r.i16();
    (error, r.i64())
}

/// A transactional batch of `records` records from producer `id` at `epoch`, from `sequence`.
fn txn_batch(records: usize, id: i64, epoch: i16, sequence: i32) -> Vec<u8> {
    let mut b = batch(records, 20);
    set_producer(&mut b, ProducerId(id), epoch, sequence, true);
    b
}

/// ListOffsets v2, latest, at `isolation`: the high watermark (read_uncommitted) or the last
/// stable offset (read_committed).
#[track_caller]
fn latest(addr: &str, topic: &str, partition: i32, isolation: i8) -> i64 {
    let mut body = (-1i32).to_be_bytes().to_vec(); // replica id
    body.push(isolation as u8);
    body.extend_from_slice(&1i32.to_be_bytes());
    string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(-1i64).to_be_bytes()); // latest
    let response = call(addr, 2, 2, &body);
    let mut r = Reader(&response);
    r.i32(); // throttle time
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), topic);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.i32(), partition);
    assert_eq!(r.i16(), 0, "ListOffsets error");
    r.i64(); // timestamp
    r.i64()
}

/// What a Fetch v4 from offset 0 says of a partition.
#[derive(Debug)]
struct Fetched {
    high_watermark: i64,
    last_stable_offset: i64,
    /// (producer id, first offset) of each aborted transaction in the fetched range.
    aborted: Vec<(i64, i64)>,
    record_bytes: usize,
}

#[track_caller]
fn fetch(addr: &str, topic: &str, partition: i32, isolation: i8) -> Fetched {
    let mut body = (-1i32).to_be_bytes().to_vec(); // replica id
    body.extend_from_slice(&0i32.to_be_bytes()); // max wait
    body.extend_from_slice(&0i32.to_be_bytes()); // min bytes
    body.extend_from_slice(&(1i32 << 20).to_be_bytes()); // max bytes
    body.push(isolation as u8);
    body.extend_from_slice(&1i32.to_be_bytes());
    string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&0i64.to_be_bytes()); // fetch offset
    body.extend_from_slice(&(1i32 << 20).to_be_bytes()); // partition max bytes
    let response = call(addr, 1, 4, &body);
    let mut r = Reader(&response);
    r.i32(); // throttle time
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), topic);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.i32(), partition);
    assert_eq!(r.i16(), 0, "Fetch error");
    let high_watermark = r.i64();
    let last_stable_offset = r.i64();
    let mut aborted = Vec::new();
    for _ in 0..r.i32().max(0) {
        let id = r.i64();
        aborted.push((id, r.i64()));
    }
    let record_bytes = usize::try_from(r.i32()).unwrap_or(0);
    Fetched { high_watermark, last_stable_offset, aborted, record_bytes }
}

/// Runs the `sluice` CLI against `addr`; asserts success and returns stdout.
#[track_caller]
fn sluice(addr: &str, args: &[&str]) -> String {
    let output = Command::new(sluice_bin()).args(args).args(["--bootstrap", addr]).output().expect("run sluice");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "sluice {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    stdout
}

#[track_caller]
fn sluice_json(addr: &str, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = sluice(addr, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("sluice {args:?} --json printed no JSON ({e}): {out}"))
}

/// `sluice topic producers TOPIC --json`: (partition, producer id, open transaction's first
/// offset) of every producer of the topic.
#[track_caller]
fn producers(addr: &str, topic: &str) -> Vec<(i64, i64, Option<i64>)> {
    let listed = sluice_json(addr, &["topic", "producers", topic]);
    let rows = listed.as_array().unwrap_or_else(|| panic!("sluice topic producers: not a list: {listed}"));
    rows.iter()
        .map(|row| {
            let start = row["current_txn_start_offset"].as_i64().filter(|o| *o >= 0);
            (row["partition"].as_i64().expect("partition"), row["producer_id"].as_i64().expect("producer id"), start)
        })
        .collect()
}

#[test]
fn raw_kip890_a_transactional_produce_needs_its_partition_in_the_transaction() {
    let broker = Broker::start(BROKER_FLAGS);
    let (addr, t, txn) = (broker.addr.as_str(), "kip890", "kip890-txn");
    create_topic(&broker, t); // two partitions
    let (id, epoch) = init_transactional(addr, txn);
    let added = add_partitions(addr, txn, id, epoch, &[(t, &[0])]);
    assert_eq!(added, vec![(t.to_string(), 0, 0)], "AddPartitionsToTxn for partition 0");

    // Partition 1 is not in the transaction: the write is refused and nothing is appended.
    let (error, _) = txn_produce(addr, txn, t, 1, &txn_batch(2, id, epoch, 0));
    assert_eq!(error, INVALID_TXN_STATE, "a transactional produce to a partition outside the transaction");
    assert_eq!(latest(addr, t, 1, READ_UNCOMMITTED), 0, "the refused produce appended nothing");
    assert!(producers(addr, t).iter().all(|p| p.0 != 1), "partition 1 knows no producer after the refusal");

    // Partition 0 is: the write lands and opens the transaction there.
    assert_eq!(txn_produce(addr, txn, t, 0, &txn_batch(2, id, epoch, 0)), (0, 0), "produce to partition 0");
    assert_eq!(latest(addr, t, 0, READ_UNCOMMITTED), 2);
    assert_eq!(latest(addr, t, 0, READ_COMMITTED), 0, "the open transaction holds the last stable offset");
    assert_eq!(producers(addr, t), vec![(0, id, Some(0))], "the open transaction starts at offset 0");

    assert_eq!(end_txn(addr, txn, id, epoch, false), 0, "EndTxn abort");
    assert_eq!(latest(addr, t, 0, READ_UNCOMMITTED), 3, "the abort marker");

    // A late write of the ended transaction (a retry of its batch, or its next one) must not
    // open a transaction nobody will end: refused, nothing appended.
    for (what, sequence) in [("the retry of its batch", 0), ("its next batch", 2)] {
        let (error, _) = txn_produce(addr, txn, t, 0, &txn_batch(2, id, epoch, sequence));
        assert_eq!(error, INVALID_TXN_STATE, "{what} after the abort");
    }
    assert_eq!(latest(addr, t, 0, READ_UNCOMMITTED), 3, "late writes appended nothing");
    assert_eq!(latest(addr, t, 0, READ_COMMITTED), 3, "no hanging transaction: last stable offset = high watermark");
    assert_eq!(producers(addr, t), vec![(0, id, None)], "no open transaction on partition 0");
    let fetched = fetch(addr, t, 0, READ_COMMITTED);
    assert_eq!((fetched.high_watermark, fetched.last_stable_offset), (3, 3), "Fetch: {fetched:?}");
    assert_eq!(fetched.aborted, vec![(id, 0)], "Fetch read_committed names the aborted transaction");
    assert!(fetched.record_bytes > 0, "read_committed Fetch returns the batches (the consumer drops them)");

    // The producer goes on: a new transaction on partition 0, added first, commits.
    assert_eq!(add_partitions(addr, txn, id, epoch, &[(t, &[0])]), vec![(t.to_string(), 0, 0)]);
    assert_eq!(txn_produce(addr, txn, t, 0, &txn_batch(1, id, epoch, 2)), (0, 3), "the next transaction's write");
    assert_eq!(end_txn(addr, txn, id, epoch, true), 0, "EndTxn commit");
    assert_eq!(latest(addr, t, 0, READ_UNCOMMITTED), 5);
    assert_eq!(latest(addr, t, 0, READ_COMMITTED), 5);
}

/// AddOffsetsToTxn v2: the error.
fn add_offsets(addr: &str, transactional_id: &str, id: i64, epoch: i16, group: &str) -> i16 {
    retrying("AddOffsetsToTxn", || {
        let mut body = Vec::new();
        string(&mut body, transactional_id);
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&epoch.to_be_bytes());
        string(&mut body, group);
        let response = call(addr, 25, 2, &body);
        let mut r = Reader(&response);
        r.i32(); // throttle time
        (r.i16(), ())
    })
    .0
}

/// TxnOffsetCommit v2 of one offset: the partition's error.
fn txn_offset_commit(
    addr: &str,
    transactional_id: &str,
    id: i64,
    epoch: i16,
    group: &str,
    at: (&str, i32, i64),
) -> i16 {
    let (topic, partition, offset) = at;
    retrying("TxnOffsetCommit", || {
        let mut body = Vec::new();
        string(&mut body, transactional_id);
        string(&mut body, group);
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&epoch.to_be_bytes());
        body.extend_from_slice(&1i32.to_be_bytes());
        string(&mut body, topic);
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&partition.to_be_bytes());
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
        body.extend_from_slice(&(-1i16).to_be_bytes()); // metadata: null
        let response = call(addr, 28, 2, &body);
        let mut r = Reader(&response);
        r.i32(); // throttle time
        assert_eq!(r.i32(), 1);
        assert_eq!(r.string(), topic);
        assert_eq!(r.i32(), 1);
        assert_eq!(r.i32(), partition);
        (r.i16(), ())
    })
    .0
}

/// OffsetFetch v5 (no require_stable): the group's committed offset of topic/partition, -1 if
/// none. A transaction's offsets count only once it commits.
#[track_caller]
fn committed_offset(addr: &str, group: &str, topic: &str, partition: i32) -> i64 {
    let (_, offset) = retrying("OffsetFetch", || {
        let mut body = Vec::new();
        string(&mut body, group);
        body.extend_from_slice(&1i32.to_be_bytes());
        string(&mut body, topic);
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&partition.to_be_bytes());
        let response = call(addr, 9, 5, &body);
        let mut r = Reader(&response);
        r.i32(); // throttle time
        assert_eq!(r.i32(), 1);
        assert_eq!(r.string(), topic);
        assert_eq!(r.i32(), 1);
        assert_eq!(r.i32(), partition);
        let offset = r.i64();
        r.i32(); // leader epoch
        let metadata = r.i16();
        r.take(usize::try_from(metadata).unwrap_or(0));
        let partition_error = r.i16();
        let error = r.i16();
        assert_eq!(partition_error, 0, "OffsetFetch {group} {topic}-{partition}");
        (error, offset)
    });
    offset
}

#[test]
fn raw_txn_offsets_count_when_their_transaction_commits_not_before_and_not_if_it_aborts() {
    let mut broker = Broker::start(BROKER_FLAGS);
    let (t, group) = ("txo", "txo-group");
    create_topic(&broker, t);
    let addr = broker.addr.clone();
    let addr = addr.as_str();
    let (id, epoch) = init_transactional(addr, "txo-txn");
    let txn = "txo-txn";

    assert_eq!(add_offsets(addr, txn, id, epoch, group), 0, "AddOffsetsToTxn");
    assert_eq!(txn_offset_commit(addr, txn, id, epoch, group, (t, 0, 42)), 0, "TxnOffsetCommit");
    assert_eq!(committed_offset(addr, group, t, 0), -1, "an offset of an open transaction does not count yet");
    assert_eq!(end_txn(addr, txn, id, epoch, true), 0, "EndTxn commit");
    // Kafka's GroupMetadataManager.handleTxnCompletion: the COMMIT marker makes them the
    // group's offsets.
    assert_eq!(committed_offset(addr, group, t, 0), 42, "the committed transaction's offset, at once");

    assert_eq!(add_offsets(addr, txn, id, epoch, group), 0);
    assert_eq!(txn_offset_commit(addr, txn, id, epoch, group, (t, 0, 99)), 0);
    assert_eq!(txn_offset_commit(addr, txn, id, epoch, group, (t, 1, 7)), 0);
    assert_eq!(end_txn(addr, txn, id, epoch, false), 0, "EndTxn abort");
    assert_eq!(committed_offset(addr, group, t, 0), 42, "an aborted transaction's offset is dropped");
    assert_eq!(committed_offset(addr, group, t, 1), -1, "an aborted transaction's offset is dropped");

    broker.kill9();
    broker.restart();
    let addr = broker.addr.as_str();
    assert_eq!(committed_offset(addr, group, t, 0), 42, "after a SIGKILL, replayed");
    assert_eq!(committed_offset(addr, group, t, 1), -1, "after a SIGKILL, replayed");
}

#[test]
fn raw_bad_transactional_requests_get_kafkas_errors() {
    let broker = Broker::start(&[BROKER_FLAGS, &["--transaction-max-timeout-ms", "60000"]].concat());
    let (addr, t, txn) = (broker.addr.as_str(), "bad", "bad-txn");
    create_topic(&broker, t);

    // The transaction timeout must be in 1..=transaction.max.timeout.ms.
    for timeout in [60_001, 0, -1] {
        let (error, ..) = init_producer_id(addr, txn, timeout);
        assert_eq!(error, INVALID_TRANSACTION_TIMEOUT, "InitProducerId with transaction timeout {timeout}");
    }
    let (error, id, epoch) = init_producer_id(addr, txn, 60_000);
    assert_eq!(error, 0, "InitProducerId at the maximum timeout");

    // An unknown topic fails alone; the others are not attempted, and nothing was added.
    let results = add_partitions(addr, txn, id, epoch, &[("no-such-topic", &[0]), (t, &[0, 1])]);
    let mut sorted = results.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            (t.to_string(), 0, OPERATION_NOT_ATTEMPTED),
            (t.to_string(), 1, OPERATION_NOT_ATTEMPTED),
            ("no-such-topic".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
        ],
        "AddPartitionsToTxn with an unknown topic: {results:?}"
    );
    let (error, _) = txn_produce(addr, txn, t, 0, &txn_batch(1, id, epoch, 0));
    assert_eq!(error, INVALID_TXN_STATE, "a partition not attempted is not in the transaction");

    let all = [(t, &[0, 1][..])];
    assert_eq!(add_partitions(addr, txn, id, epoch, &all).iter().map(|r| r.2).collect::<Vec<_>>(), [0, 0]);
    let wrong_id = add_partitions(addr, txn, id + 1, epoch, &all);
    assert!(wrong_id.iter().all(|r| r.2 == INVALID_PRODUCER_ID_MAPPING), "AddPartitionsToTxn, wrong id: {wrong_id:?}");
    let unknown = add_partitions(addr, "never-initialized", id, epoch, &all);
    assert!(unknown.iter().all(|r| r.2 == INVALID_PRODUCER_ID_MAPPING), "AddPartitionsToTxn, unknown id: {unknown:?}");
    assert_eq!(txn_produce(addr, txn, t, 0, &txn_batch(1, id, epoch, 0)), (0, 0));

    // Control batches are the coordinator's: a client may not produce one (Kafka's
    // LogValidator: "Clients are not allowed to write control records"), even to a partition of
    // its open transaction, where the transactional batch passes verification.
    let marker = marker_batch(ProducerId(id), epoch, 0, ControlType::Commit, Timestamp(1_700_000_000_000));
    let (error, _) = txn_produce(addr, txn, t, 1, &marker);
    assert_eq!(error, INVALID_RECORD, "a control batch in Produce");
    assert_eq!(latest(addr, t, 1, READ_UNCOMMITTED), 0, "nothing appended");

    // EndTxn: the producer id must be the transactional id's, and the epoch its current one.
    assert_eq!(end_txn(addr, txn, id + 1, epoch, true), INVALID_PRODUCER_ID_MAPPING, "EndTxn, wrong producer id");
    assert_eq!(end_txn(addr, txn, id, epoch + 1, true), PRODUCER_FENCED, "EndTxn, a later epoch");
    assert_eq!(end_txn(addr, "never-initialized", id, epoch, true), INVALID_PRODUCER_ID_MAPPING, "EndTxn, unknown id");
    assert_eq!(latest(addr, t, 0, READ_COMMITTED), 0, "the transaction is still open");

    // A second InitProducerId bumps the epoch (aborting the open transaction): the old epoch is
    // fenced, as PRODUCER_FENCED from EndTxn v2 and as INVALID_PRODUCER_EPOCH before (Kafka maps
    // it for older clients).
    let (error, id2, epoch2) = init_producer_id(addr, txn, 60_000);
    assert_eq!((error, id2), (0, id), "InitProducerId again keeps the producer id");
    assert!(epoch2 > epoch, "and bumps the epoch ({epoch} then {epoch2})");
    assert_eq!(latest(addr, t, 0, READ_COMMITTED), latest(addr, t, 0, READ_UNCOMMITTED), "the open one was aborted");
    assert_eq!(end_txn(addr, txn, id, epoch, true), PRODUCER_FENCED, "EndTxn v2, an old epoch");
    assert_eq!(end_txn_v(addr, 1, txn, id, epoch, true), INVALID_PRODUCER_EPOCH, "EndTxn v1, an old epoch");
    let old = add_partitions(addr, txn, id, epoch, &all);
    assert!(old.iter().all(|r| r.2 == PRODUCER_FENCED), "AddPartitionsToTxn v2, an old epoch: {old:?}");
    // Nothing open: EndTxn has no transaction to end.
    assert_eq!(end_txn(addr, txn, id, epoch2, true), INVALID_TXN_STATE, "EndTxn commit without a transaction");
}

#[test]
fn cli_lists_describes_and_aborts_an_open_transaction() {
    let broker = Broker::start(BROKER_FLAGS);
    let (addr, t, txn) = (broker.addr.as_str(), "clitxn", "cli-txn");
    create_topic(&broker, t);
    assert_eq!(crate::raw::produce_to(addr, t, 0, &batch(2, 10)).0, 0, "two records before the transaction");
    let (id, epoch) = init_transactional(addr, txn);
    let added = add_partitions(addr, txn, id, epoch, &[(t, &[0, 1])]);
    assert!(added.iter().all(|r| r.2 == 0), "AddPartitionsToTxn: {added:?}");
    assert_eq!(txn_produce(addr, txn, t, 0, &txn_batch(3, id, epoch, 0)), (0, 2));
    assert_eq!(txn_produce(addr, txn, t, 1, &txn_batch(1, id, epoch, 0)), (0, 0));

    let listed = sluice_json(addr, &["txn", "list"]);
    let entry = listed.as_array().and_then(|l| l.iter().find(|e| e["transactional_id"] == txn).cloned());
    let entry = entry.unwrap_or_else(|| panic!("sluice txn list does not show {txn}: {listed}"));
    assert_eq!((entry["producer_id"].as_i64(), entry["state"].as_str()), (Some(id), Some("Ongoing")), "{entry}");
    let ongoing = sluice_json(addr, &["txn", "list", "--state", "Ongoing"]);
    assert_eq!(ongoing.as_array().map(Vec::len), Some(1), "txn list --state Ongoing: {ongoing}");
    let committed = sluice_json(addr, &["txn", "list", "--state", "CompleteCommit"]);
    assert_eq!(committed.as_array().map(Vec::len), Some(0), "txn list --state CompleteCommit: {committed}");

    let described = sluice_json(addr, &["txn", "describe", txn]);
    assert_eq!(described["state"], "Ongoing", "{described}");
    assert_eq!(described["producer_id"].as_i64(), Some(id), "{described}");
    assert_eq!(described["producer_epoch"].as_i64(), Some(i64::from(epoch)), "{described}");
    assert_eq!(described["timeout_ms"].as_i64(), Some(60_000), "{described}");
    assert!(described["start_time_ms"].as_i64().is_some_and(|ms| ms > 0), "{described}");
    let mut partitions: Vec<String> =
        described["partitions"].as_array().expect("partitions").iter().map(|p| p.as_str().unwrap().into()).collect();
    partitions.sort();
    assert_eq!(partitions, ["clitxn-0", "clitxn-1"], "{described}");
    let table = sluice(addr, &["txn", "describe", txn]);
    assert!(table.contains("Ongoing") && table.contains("clitxn-0"), "sluice txn describe:\n{table}");

    let mut open = producers(addr, t);
    open.sort();
    assert_eq!(open, vec![(0, id, Some(2)), (1, id, Some(0))], "sluice topic producers: the open transaction's start");
    let table = sluice(addr, &["topic", "producers", t]);
    assert!(table.contains(&id.to_string()), "sluice topic producers:\n{table}");

    let aborted = sluice(addr, &["txn", "abort", txn]);
    assert!(aborted.contains(txn), "sluice txn abort: {aborted}");
    let described = sluice_json(addr, &["txn", "describe", txn]);
    assert_eq!(described["state"], "CompleteAbort", "after sluice txn abort: {described}");
    let mut after = producers(addr, t);
    after.sort();
    assert_eq!(after, vec![(0, id, None), (1, id, None)], "sluice topic producers after the abort");
    for partition in [0, 1] {
        let (lso, hw) = (latest(addr, t, partition, READ_COMMITTED), latest(addr, t, partition, READ_UNCOMMITTED));
        assert_eq!(lso, hw, "partition {partition}: last stable offset after the abort");
    }
    // The producer learns of it at its commit: INVALID_TXN_STATE (the transaction is
    // CompleteAbort), or PRODUCER_FENCED when the abort bumped the epoch (EndTxn v5, KIP-890
    // part 2, which the CLI may speak).
    let error = end_txn(addr, txn, id, epoch, true);
    assert!([INVALID_TXN_STATE, PRODUCER_FENCED].contains(&error), "EndTxn commit after sluice txn abort: {error}");
    let listed = sluice_json(addr, &["txn", "list", "--state", "CompleteAbort"]);
    assert!(listed.as_array().is_some_and(|l| l.iter().any(|e| e["transactional_id"] == txn)), "{listed}");
}
