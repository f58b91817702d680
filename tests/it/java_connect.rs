//! Kafka Connect 4.1.2 (tests/java, pinned by its pom.xml) against Sluice, with the FileStream
//! connectors: a standalone worker and a distributed worker copy a file to a topic and back out
//! to another file, byte for byte; a distributed worker stopped (SIGTERM) or killed (SIGKILL)
//! and started again resumes from the source offsets it committed to Sluice; connector offsets
//! are reset and altered by REST; and with exactly-once source support (transactions,
//! read_committed) a SIGKILL duplicates nothing.
//!
//! Each worker is a child JVM whose stdout and stderr go to files in the test's temp dir; a
//! failed wait shows their tails (SLUICE_JAVA_LOG=info shows the worker's whole story). The
//! tests talk to the worker's REST API over plain HTTP/1.0 on a loopback port.
//!
//! Two facts of the FileStream connectors shape the inputs: the source task splits lines at
//! `\n`, `\r\n` or `\r` and the sink writes each record followed by `\n`, so the inputs use
//! `\n` only (and end with one: the source holds an unterminated last line back); and the
//! source task's committed offset counts Java chars while its restart skips that many bytes of
//! the file, so the part of a file read before a restart is ASCII (the part after may be
//! anything).

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Broker, free_port, java, output_within, sluice_bin, temp_dir};

/// How long a worker may take to start, run its connectors or copy a file. Generous: the
/// machine is small and shared, and a JVM with Connect's class path starts slowly.
const WAIT: Duration = Duration::from_secs(90);
/// How long a worker may take to exit after SIGTERM (Connect's own task shutdown timeout is 5 s
/// per task, and the herder then leaves its group and closes its clients).
const STOP_WAIT: Duration = Duration::from_secs(45);
/// How many lines of a worker's stdout and stderr a failure shows.
const TAIL_LINES: usize = 60;
/// One REST request's read timeout: Connect answers a POST only once the leader has written the
/// config, which waits for the group to be formed.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `sluice` CLI command may run (it is killed then, and the test fails).
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The broker every test uses: no rebalance delay for a new group (Kafka's own tests set it to
/// 0 too), so the worker's group and the sink's consumer group form at once.
fn broker() -> Broker {
    Broker::start(&["--group-initial-rebalance-delay-ms", "0"])
}

/// A Connect worker JVM, with its REST address and the files its stdout and stderr go to.
/// Killed (SIGKILL) on drop, so a failed test leaves no JVM behind.
struct Worker {
    child: Option<Child>,
    rest: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Worker {
    /// Starts `main_class` (ConnectStandalone or ConnectDistributed) with `args`; `name` names
    /// its log files in `dir` (a restarted worker gets a new name, so both runs' logs stay).
    fn start(main_class: &str, args: &[&Path], dir: &Path, name: &str, rest: &str) -> Worker {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let child = java(main_class)
            .args(args)
            .stdout(File::create(&stdout).expect("worker stdout file"))
            .stderr(File::create(&stderr).expect("worker stderr file"))
            .spawn()
            .expect("spawn the Connect worker");
        Worker { child: Some(child), rest: rest.to_string(), stdout, stderr }
    }

    /// The last lines of the worker's stdout and stderr.
    fn tails(&self) -> String {
        let tail = |path: &Path| {
            let text = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
        };
        format!(
            "--- {} (tail)\n{}\n--- {} (tail)\n{}",
            self.stdout.display(),
            tail(&self.stdout),
            self.stderr.display(),
            tail(&self.stderr)
        )
    }

    /// Fails the test with `why` and the worker's log tails.
    fn fail(&self, why: &str) -> ! {
        panic!("{why}\n{}", self.tails())
    }

    /// Polls `probe` every 100 ms until it gives a value; fails (with the logs) if the worker
    /// exits or `WAIT` passes first. `what` says what was awaited; the probe may note what it
    /// last saw in its second argument, for the failure message.
    fn wait_for<T>(&mut self, what: &str, mut probe: impl FnMut(&Worker, &mut String) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        let mut seen = String::new();
        loop {
            if let Some(value) = probe(self, &mut seen) {
                return value;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.fail(&format!("the worker exited ({status}) while waiting for {what}; last seen: {seen}"));
            }
            if Instant::now() > deadline {
                self.fail(&format!("timed out after {WAIT:?} waiting for {what}; last seen: {seen}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A REST request to the worker; None while it does not answer (starting, say). Notes the
    /// answer (or the error) in `seen`.
    fn request(&self, method: &str, path: &str, body: Option<&Value>, seen: &mut String) -> Option<(u16, Value)> {
        let answer = http(&self.rest, method, path, body);
        *seen = match &answer {
            Ok((status, body)) => format!("{method} {path}: {status} {body}"),
            Err(e) => format!("{method} {path}: {e}"),
        };
        answer.ok()
    }

    /// Waits until the connector `name` and all its tasks (at least one) report RUNNING.
    fn wait_running(&mut self, name: &str) {
        let path = format!("/connectors/{name}/status");
        self.wait_for(&format!("connector {name} and its tasks RUNNING"), |w, seen| {
            let (status, body) = w.request("GET", &path, None, seen)?;
            let tasks = body["tasks"].as_array()?;
            let running = status == 200
                && body["connector"]["state"] == "RUNNING"
                && !tasks.is_empty()
                && tasks.iter().all(|t| t["state"] == "RUNNING");
            running.then_some(())
        });
    }

    /// Submits a connector by REST (POST /connectors), retrying while the worker is not ready
    /// to take it (no leader yet, a rebalance under way).
    fn create_connector(&mut self, name: &str, config: Value) {
        let body = json!({"name": name, "config": config});
        self.wait_for(&format!("POST /connectors {name} accepted"), |w, seen| {
            let (status, _) = w.request("POST", "/connectors", Some(&body), seen)?;
            (status == 201).then_some(())
        });
    }

    /// Sends `method path` (with `body`) until it answers `status`; gives the answer's body.
    fn until_status(&mut self, method: &str, path: &str, body: Option<&Value>, status: u16) -> Value {
        self.wait_for(&format!("{method} {path} answered {status}"), |w, seen| {
            let (got, answer) = w.request(method, path, body, seen)?;
            (got == status).then_some(answer)
        })
    }

    /// Waits until the connector `name` reports the state `state` (STOPPED: with no tasks).
    fn wait_state(&mut self, name: &str, state: &str) {
        let path = format!("/connectors/{name}/status");
        self.wait_for(&format!("connector {name} {state}"), |w, seen| {
            let (status, body) = w.request("GET", &path, None, seen)?;
            (status == 200 && body["connector"]["state"] == state).then_some(())
        });
    }

    /// Sends SIGTERM and waits for the JVM to exit by itself (its shutdown hook stops the
    /// herder, which commits the tasks' offsets).
    fn stop(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else { panic!("the worker is not running") };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.fail(&format!("the worker did not exit within {STOP_WAIT:?} of SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the JVM with SIGKILL, as a crash would.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One HTTP/1.0 request (so the answer is never chunked and ends with the connection) with a
/// JSON body; gives the status and the body as JSON (Null when it is not JSON).
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<(u16, Value)> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad HTTP response: {response}"));
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// Writes a .properties file (values here never need escaping: no backslashes, no leading
/// spaces).
fn write_properties(path: &Path, entries: &[(&str, String)]) {
    let text: String = entries.iter().map(|(key, value)| format!("{key}={value}\n")).collect();
    std::fs::write(path, text).expect("write properties");
}

/// `lines`, each ended by `\n`, as the bytes of a file.
fn file_bytes(lines: &[String]) -> Vec<u8> {
    lines.iter().flat_map(|line| format!("{line}\n").into_bytes()).collect()
}

fn append(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(path).expect("open input");
    file.write_all(bytes).expect("append input");
}

fn read_or_empty(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Line `i` of the varied input: empty and blank lines, non-ASCII (two-, three- and four-byte
/// UTF-8), JSON look-alikes, tabs, and long lines (longer than the source task's 1024-char
/// first buffer).
fn varied_line(i: usize) -> String {
    match i % 9 {
        0 => format!("line {i}"),
        1 => String::new(),
        2 => format!("zeile {i}: grüße, ünïcödé, 日本語のテキスト, emoji 🚀🦀"),
        3 => " \t  ".to_string(),
        4 => format!(r#"{{"json": {i}, "quote": "\"", "backslash": "\\"}}"#),
        5 => format!("{i}\ttab\tseparated\tfields  "),
        6 => format!("{i} {}", "long-".repeat(300 + i)),
        7 => format!("¿{i}? — «quotes» ‘single’ “double” ∑∫√ ½"),
        _ => " ".to_string(),
    }
}

/// Numbered line `i` for the restart tests: phase one is ASCII (see the module doc), phase two
/// is not.
fn numbered_line(i: usize, ascii: bool) -> String {
    if ascii {
        format!("{i:05} ascii {}", "=".repeat(i % 13))
    } else {
        format!("{i:05} grüße 日本 🚀 {}", "·".repeat(i % 7))
    }
}

/// The FileStreamSource connector's config: `file` to `topic`, which Connect creates itself
/// (CreateTopics) with one partition, so the records keep the file's order.
fn source_config(file: &Path, topic: &str) -> Value {
    json!({
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max": "1",
        "file": file.display().to_string(),
        "topic": topic,
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": "1",
    })
}

/// The FileStreamSink connector's config: `topic` to `file`.
fn sink_config(file: &Path, topic: &str) -> Value {
    json!({
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "tasks.max": "1",
        "file": file.display().to_string(),
        "topics": topic,
    })
}

/// Worker settings both modes share: quick offset commits, and group timeouts short enough
/// that a killed worker's members leave their groups in seconds (6 s is the broker's minimum
/// session timeout), for the worker's group and for the sink tasks' consumer groups.
fn common_worker_properties(broker: &Broker) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", broker.addr.clone()),
        ("offset.flush.interval.ms", "200".into()),
        // Every plugin on the class path has a ServiceLoader manifest: skip the class scan.
        ("plugin.discovery", "service_load".into()),
        ("consumer.session.timeout.ms", "6000".into()),
        ("consumer.heartbeat.interval.ms", "1000".into()),
    ]
}

/// Waits until `output` holds exactly `expected`; fails as soon as it cannot become it (it is
/// not a prefix of it), so a duplicate or a changed byte shows at once.
fn wait_output(worker: &mut Worker, output: &Path, expected: &[u8]) {
    worker.wait_for(&format!("{} to equal the input ({} bytes)", output.display(), expected.len()), |w, seen| {
        let got = read_or_empty(output);
        *seen = format!("{} bytes", got.len());
        if !expected.starts_with(&got) {
            let at = got.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(expected.len());
            w.fail(&format!(
                "{} differs from the input at byte {at} (got {} bytes, input {}): got …{:?}…, input …{:?}…",
                output.display(),
                got.len(),
                expected.len(),
                String::from_utf8_lossy(&got[at.saturating_sub(40)..(at + 40).min(got.len())]),
                String::from_utf8_lossy(&expected[at.saturating_sub(40)..(at + 40).min(expected.len())]),
            ));
        }
        (got.len() == expected.len()).then_some(())
    });
}

/// Runs `sluice <args> --bootstrap <broker> --json` and parses its output.
fn sluice_json(broker: &Broker, args: &[&str]) -> Value {
    let mut command = std::process::Command::new(sluice_bin());
    command.args(args).args(["--bootstrap", &broker.addr, "--json"]);
    let output = output_within(command, CLI_TIMEOUT);
    assert!(output.status.success(), "sluice {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("sluice --json output")
}

/// A standalone worker (offsets in a local file, StringConverter) runs a source and a sink
/// connector from .properties files: a file of varied lines goes to a topic and back out to
/// another file unchanged.
#[test]
fn standalone_copies_a_file_through_a_topic_unchanged() {
    let broker = broker();
    let dir = temp_dir();
    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    let lines: Vec<String> = (0..400).map(varied_line).collect();
    let expected = file_bytes(&lines);
    std::fs::write(&input, &expected).expect("write input");

    let rest_port = free_port();
    let worker_properties = dir.path().join("worker.properties");
    let mut entries = common_worker_properties(&broker);
    entries.extend([
        ("listeners", format!("http://127.0.0.1:{rest_port}")),
        ("key.converter", "org.apache.kafka.connect.storage.StringConverter".to_string()),
        ("value.converter", "org.apache.kafka.connect.storage.StringConverter".to_string()),
        ("offset.storage.file.filename", dir.path().join("offsets").display().to_string()),
    ]);
    write_properties(&worker_properties, &entries);
    let as_properties = |path: &Path, name: &str, config: Value| {
        let mut entries = vec![("name", name.to_string())];
        for (key, value) in config.as_object().expect("config object") {
            entries.push((key.as_str(), value.as_str().expect("string value").to_string()));
        }
        write_properties(path, &entries);
    };
    let source = dir.path().join("source.properties");
    let sink = dir.path().join("sink.properties");
    as_properties(&source, "file-source", source_config(&input, "standalone-lines"));
    as_properties(&sink, "file-sink", sink_config(&output, "standalone-lines"));

    let mut worker = Worker::start(
        "org.apache.kafka.connect.cli.ConnectStandalone",
        &[&worker_properties, &source, &sink],
        dir.path(),
        "standalone",
        &format!("127.0.0.1:{rest_port}"),
    );
    worker.wait_running("file-source");
    worker.wait_running("file-sink");
    wait_output(&mut worker, &output, &expected);
}

/// A distributed Connect cluster's files and settings: one or more workers (members of one
/// group, each with its own REST port); `worker()` starts the first one, again if it ran before.
struct Distributed {
    dir: tempfile::TempDir,
    /// The settings all members share (the REST listener is added per member).
    entries: Vec<(&'static str, String)>,
    /// Each member's properties file and REST address, made on first use.
    members: Vec<(PathBuf, String)>,
    runs: usize,
}

/// The distributed workers' group and internal topics.
const GROUP: &str = "connect-it";
const CONFIG_TOPIC: &str = "connect-it-configs";
const OFFSET_TOPIC: &str = "connect-it-offsets";
const STATUS_TOPIC: &str = "connect-it-status";

impl Distributed {
    /// Settings for distributed workers (JsonConverter without schemas) on `broker`, with
    /// `extra` settings.
    fn new(broker: &Broker, extra: &[(&'static str, &str)]) -> Distributed {
        let mut entries = common_worker_properties(broker);
        entries.extend([
            ("group.id", GROUP.to_string()),
            ("key.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
            ("value.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
            ("key.converter.schemas.enable", "false".into()),
            ("value.converter.schemas.enable", "false".into()),
            ("config.storage.topic", CONFIG_TOPIC.into()),
            ("offset.storage.topic", OFFSET_TOPIC.into()),
            ("status.storage.topic", STATUS_TOPIC.into()),
            ("config.storage.replication.factor", "1".into()),
            ("offset.storage.replication.factor", "1".into()),
            ("status.storage.replication.factor", "1".into()),
            ("session.timeout.ms", "6000".into()),
            ("heartbeat.interval.ms", "1000".into()),
        ]);
        entries.extend(extra.iter().map(|&(key, value)| (key, value.to_string())));
        Distributed { dir: temp_dir(), entries, members: Vec::new(), runs: 0 }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The REST address of member `index`.
    fn rest(&mut self, index: usize) -> String {
        while self.members.len() <= index {
            let port = free_port();
            let properties = self.path(&format!("worker-{}.properties", self.members.len()));
            let mut entries = self.entries.clone();
            entries.push(("listeners", format!("http://127.0.0.1:{port}")));
            write_properties(&properties, &entries);
            self.members.push((properties, format!("127.0.0.1:{port}")));
        }
        self.members[index].1.clone()
    }

    /// Starts member `index` (again), logging to distributed-<run>.stdout/.stderr.
    fn member(&mut self, index: usize) -> Worker {
        let rest = self.rest(index);
        self.runs += 1;
        Worker::start(
            "org.apache.kafka.connect.cli.ConnectDistributed",
            &[&self.members[index].0],
            self.dir.path(),
            &format!("distributed-{}", self.runs),
            &rest,
        )
    }

    /// Starts the first member (again).
    fn worker(&mut self) -> Worker {
        self.member(0)
    }
}

/// A distributed worker creates its three internal topics itself, compacted, forms its group
/// with Connect's own protocol, and runs a source and a sink connector submitted by REST: a file
/// of varied lines goes to a topic and back out unchanged.
#[test]
fn distributed_worker_creates_compacted_topics_joins_its_group_and_copies_a_file() {
    let broker = broker();
    let mut cluster = Distributed::new(&broker, &[]);
    let input = cluster.path("input.txt");
    let output = cluster.path("output.txt");
    let lines: Vec<String> = (0..400).map(varied_line).collect();
    let expected = file_bytes(&lines);
    std::fs::write(&input, &expected).expect("write input");

    let mut worker = cluster.worker();
    worker.create_connector("file-source", source_config(&input, "distributed-lines"));
    worker.create_connector("file-sink", sink_config(&output, "distributed-lines"));
    worker.wait_running("file-source");
    worker.wait_running("file-sink");
    wait_output(&mut worker, &output, &expected);

    // Connect's defaults: one config partition (it insists), 25 offset and 5 status partitions.
    for (topic, partitions) in [(CONFIG_TOPIC, 1), (OFFSET_TOPIC, 25), (STATUS_TOPIC, 5)] {
        let described = sluice_json(&broker, &["topic", "describe", topic]);
        let configs = described["configs"].as_array().expect("configs");
        let policy = configs.iter().find(|c| c["name"] == "cleanup.policy").expect("cleanup.policy");
        assert_eq!(policy["value"], "compact", "{topic}: {described}");
        assert_eq!(described["partitions"].as_array().map(Vec::len), Some(partitions), "{topic}: {described}");
    }
    let group = sluice_json(&broker, &["group", "describe", GROUP]);
    assert_eq!(group["protocol_type"], "connect", "{group}");
    assert_eq!(group["state"], "Stable", "{group}");
    // Connect 4's default protocol: incremental cooperative rebalancing with signed requests.
    assert_eq!(group["protocol"], "sessioned", "{group}");
    assert_eq!(group["members"].as_array().map(Vec::len), Some(1), "{group}");
    let client_id = format!("connect-{}", cluster.rest(0));
    assert_eq!(group["members"][0]["client_id"], client_id.as_str(), "{group}");
    // The sink task's consumer group, the classic consumer protocol beside it.
    let sink_group = sluice_json(&broker, &["group", "describe", "connect-file-sink"]);
    assert_eq!(sink_group["protocol_type"], "consumer", "{sink_group}");
}

/// The restart tests' first run: the connectors copy `first` lines (ASCII); gives the worker,
/// still running.
fn first_run(cluster: &mut Distributed, first: &[String]) -> Worker {
    let (input, output) = (cluster.path("input.txt"), cluster.path("output.txt"));
    std::fs::write(&input, file_bytes(first)).expect("write input");
    let mut worker = cluster.worker();
    worker.create_connector("file-source", source_config(&input, "restart-lines"));
    worker.create_connector("file-sink", sink_config(&output, "restart-lines"));
    worker.wait_running("file-source");
    worker.wait_running("file-sink");
    wait_output(&mut worker, &output, &file_bytes(first));
    worker
}

/// A worker stopped gracefully (SIGTERM) commits its source and sink offsets; lines appended
/// while it was down are copied after its restart, and nothing twice: the output equals the
/// input. The committed offsets then read back by REST match the input.
#[test]
fn distributed_worker_resumes_after_sigterm_without_duplicates() {
    let broker = broker();
    let mut cluster = Distributed::new(&broker, &[]);
    let first: Vec<String> = (0..200).map(|i| numbered_line(i, true)).collect();
    let second: Vec<String> = (200..400).map(|i| numbered_line(i, false)).collect();
    let mut worker = first_run(&mut cluster, &first);
    let status = worker.stop();
    // The JVM exits by itself once its shutdown hook is done (143 = 128 + SIGTERM).
    assert!(status.code().is_some(), "the worker did not exit by itself: {status}");
    drop(worker);

    let (input, output) = (cluster.path("input.txt"), cluster.path("output.txt"));
    append(&input, &file_bytes(&second));
    let everything = file_bytes(&[first.clone(), second.clone()].concat());
    let mut worker = cluster.worker();
    worker.wait_running("file-source");
    worker.wait_running("file-sink");
    wait_output(&mut worker, &output, &everything);

    // KIP-875: the worker reads the source offsets back from its offsets topic and the sink's
    // from its consumer group. The source offset counts Java chars (UTF-16 code units) of the
    // file; the sink's is the next record of the topic's one partition.
    let chars = String::from_utf8(everything.clone()).expect("utf-8").encode_utf16().count();
    let input_path = input.display().to_string();
    worker.wait_for("the committed source offset at the end of the input", |w, seen| {
        let (status, body) = w.request("GET", "/connectors/file-source/offsets", None, seen)?;
        let offset = body["offsets"].as_array()?.iter().find(|o| o["partition"]["filename"] == input_path.as_str())?;
        (status == 200 && offset["offset"]["position"].as_u64() == Some(chars as u64)).then_some(())
    });
    let records = first.len() + second.len();
    worker.wait_for("the committed sink offset after the last record", |w, seen| {
        let (status, body) = w.request("GET", "/connectors/file-sink/offsets", None, seen)?;
        let offset = body["offsets"].as_array()?.first()?.clone();
        (status == 200 && offset["offset"]["kafka_offset"].as_u64() == Some(records as u64)).then_some(())
    });
}

/// A worker killed (SIGKILL) loses the offsets it had not committed yet, so after its restart
/// the source may read lines again and the sink may write records again (at least once). No
/// line may be missing, and each replay restarts from an earlier line and goes on in order:
/// the output's line numbers only ever step +1 or back, starting at 0 and ending at the last.
#[test]
fn distributed_worker_resumes_after_sigkill_at_least_once_in_order() {
    let broker = broker();
    let mut cluster = Distributed::new(&broker, &[]);
    let first: Vec<String> = (0..200).map(|i| numbered_line(i, true)).collect();
    let second: Vec<String> = (200..400).map(|i| numbered_line(i, false)).collect();
    let mut worker = first_run(&mut cluster, &first);
    worker.kill9();
    drop(worker);

    let (input, output) = (cluster.path("input.txt"), cluster.path("output.txt"));
    append(&input, &file_bytes(&second));
    let everything = [first, second].concat();
    let last = everything.len() - 1;
    let mut worker = cluster.worker();
    worker.wait_running("file-source");
    worker.wait_running("file-sink");
    worker.wait_for("the last line in the output, every line at least once and in order", |w, seen| {
        // Only whole lines: the sink may be writing the last one.
        let got = read_or_empty(&output);
        let end = got.iter().rposition(|&b| b == b'\n')?;
        let complete = std::str::from_utf8(&got[..end]).unwrap_or_else(|e| w.fail(&format!("output: {e}")));
        *seen = format!("{} lines", complete.split('\n').count());
        let mut previous: Option<usize> = None;
        for (at, line) in complete.split('\n').enumerate() {
            let number = line
                .get(..5)
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n <= last && everything[n] == line)
                .unwrap_or_else(|| w.fail(&format!("output line {at} is not an input line: {line:?}")));
            let step_ok = match previous {
                None => number == 0,
                Some(p) => number <= p + 1,
            };
            if !step_ok {
                w.fail(&format!("output line {at} is input line {number} after {previous:?}: a line was skipped"));
            }
            previous = Some(number);
        }
        (previous == Some(last)).then_some(())
    });
}

/// The records of `topic` that a read_committed consumer sees (none before the topic exists),
/// as the strings the JsonConverter wrote.
fn committed_values(broker: &Broker, topic: &str) -> Vec<String> {
    let mut command = std::process::Command::new(sluice_bin());
    command
        .args(["consume", topic, "--from-beginning", "--isolation-level", "read_committed", "--timeout-ms", "500"])
        .args(["--bootstrap", &broker.addr, "--json"]);
    let output = output_within(command, CLI_TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && stderr.contains("unknown topic") {
        // The source task creates the topic with its first records.
        return Vec::new();
    }
    assert!(output.status.success(), "sluice consume: {stderr}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).expect("a JSON record");
            let value = record["value"].as_str().expect("a value");
            serde_json::from_str::<String>(value).expect("a JSON string value")
        })
        .collect()
}

/// Exactly-once source support (KIP-618): the source task writes its records and its offsets in
/// one transaction, committed every 2 s, and the worker is killed (SIGKILL) while lines are
/// being appended, so a transaction is almost surely open then. That transaction also holds
/// offsets, and the restarted worker reads its offsets topic read_committed up to the high
/// watermark, so it waits for the broker to abort the transaction at its timeout (short here,
/// as is the broker's abort check). Then the task resumes from the last committed offsets, and
/// the topic read read_committed holds every line exactly once, in order.
#[test]
fn exactly_once_source_keeps_every_line_once_across_sigkill() {
    let broker =
        Broker::start(&["--group-initial-rebalance-delay-ms", "0", "--transaction-abort-check-interval-ms", "200"]);
    let settings = [("exactly.once.source.support", "enabled"), ("producer.transaction.timeout.ms", "5000")];
    let mut cluster = Distributed::new(&broker, &settings);
    let lines: Vec<String> = (0..800).map(|i| numbered_line(i, true)).collect();
    let (before, during) = (300, 550);
    let input = cluster.path("input.txt");
    std::fs::write(&input, file_bytes(&lines[..before])).expect("write input");
    let mut worker = cluster.worker();
    let mut config = source_config(&input, "eos-lines");
    config["exactly.once.support"] = json!("required");
    config["transaction.boundary"] = json!("interval");
    config["transaction.boundary.interval.ms"] = json!("2000");
    worker.create_connector("file-source", config);
    worker.wait_running("file-source");
    let wait_committed = |worker: &mut Worker, count: usize| {
        worker.wait_for(&format!("{count} lines committed to the topic, each once and in order"), |w, seen| {
            let got = committed_values(&broker, "eos-lines");
            *seen = format!("{} records", got.len());
            if !lines.starts_with(&got) {
                let at = got.iter().zip(&lines).position(|(a, b)| a != b).unwrap_or(lines.len());
                w.fail(&format!("record {at} is {:?}, not line {at} {:?}", got.get(at), lines.get(at)));
            }
            (got.len() >= count).then_some(())
        })
    };
    wait_committed(&mut worker, before);
    // The task's transactional producer (Connect names it <group>-<connector>-<task>).
    let transactions = sluice_json(&broker, &["txn", "list"]);
    let id = format!("{GROUP}-file-source-0");
    let listed = transactions.as_array().is_some_and(|all| all.iter().any(|t| t["transactional_id"] == id.as_str()));
    assert!(listed, "no transactional id {id}: {transactions}");

    for (i, line) in lines.iter().enumerate().skip(before) {
        append(&input, format!("{line}\n").as_bytes());
        if i == during {
            worker.kill9();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(worker);
    let mut worker = cluster.worker();
    worker.wait_running("file-source");
    wait_committed(&mut worker, lines.len());
}

/// KIP-875 offset management by REST: with both connectors stopped, the sink's offsets are reset
/// (Connect deletes its consumer group) and the source's are altered to line 60 (a write to the
/// offsets topic). Resumed, the sink writes the whole topic again, which by then holds the file
/// and, again, its lines from 60 on.
#[test]
fn distributed_worker_resets_and_alters_connector_offsets() {
    let broker = broker();
    let mut cluster = Distributed::new(&broker, &[]);
    let lines: Vec<String> = (0..100).map(|i| numbered_line(i, true)).collect();
    let (input, output) = (cluster.path("input.txt"), cluster.path("output.txt"));
    std::fs::write(&input, file_bytes(&lines)).expect("write input");
    let mut worker = cluster.worker();
    worker.create_connector("file-source", source_config(&input, "managed-lines"));
    worker.create_connector("file-sink", sink_config(&output, "managed-lines"));
    worker.wait_running("file-source");
    worker.wait_running("file-sink");
    wait_output(&mut worker, &output, &file_bytes(&lines));

    for name in ["file-source", "file-sink"] {
        worker.until_status("PUT", &format!("/connectors/{name}/stop"), None, 204);
        worker.wait_state(name, "STOPPED");
    }
    worker.until_status("DELETE", "/connectors/file-sink/offsets", None, 200);
    let offsets = worker.until_status("GET", "/connectors/file-sink/offsets", None, 200);
    assert_eq!(offsets["offsets"], json!([]), "the sink's offsets after the reset");
    let resume_at = 60;
    // ASCII, so the char position is the byte length of the lines before.
    let position = file_bytes(&lines[..resume_at]).len();
    let altered = json!({"offsets": [{
        "partition": {"filename": input.display().to_string()},
        "offset": {"position": position},
    }]});
    worker.until_status("PATCH", "/connectors/file-source/offsets", Some(&altered), 200);
    let offsets = worker.until_status("GET", "/connectors/file-source/offsets", None, 200);
    assert_eq!(offsets["offsets"][0]["offset"]["position"], position, "{offsets}");

    for name in ["file-source", "file-sink"] {
        worker.until_status("PUT", &format!("/connectors/{name}/resume"), None, 202);
        worker.wait_running(name);
    }
    let expected = [file_bytes(&lines), file_bytes(&lines), file_bytes(&lines[resume_at..])].concat();
    wait_output(&mut worker, &output, &expected);
}

/// The worker (REST address) that runs task 0 of connector `name`, once it runs.
fn task_worker(worker: &mut Worker, name: &str) -> String {
    let path = format!("/connectors/{name}/status");
    worker.wait_for(&format!("task 0 of {name} RUNNING"), |w, seen| {
        let (status, body) = w.request("GET", &path, None, seen)?;
        let task = &body["tasks"][0];
        (status == 200 && task["state"] == "RUNNING").then(|| task["worker_id"].as_str().map(str::to_string))?
    })
}

/// Two distributed workers form one group (a leader and a follower, one rebalance per change);
/// the connectors, submitted to either, spread over them. The worker running the source task
/// stops (SIGTERM); after the lost-assignment delay the other one takes the task over from its
/// committed offsets, and the lines appended meanwhile are copied once.
#[test]
fn two_distributed_workers_share_connectors_and_take_over_a_stopped_ones_task() {
    let broker = broker();
    // Lost assignments wait this long for their worker to come back (Kafka's default: 5 min).
    let mut cluster = Distributed::new(&broker, &[("scheduled.rebalance.max.delay.ms", "1000")]);
    let first: Vec<String> = (0..200).map(|i| numbered_line(i, true)).collect();
    let second: Vec<String> = (200..400).map(|i| numbered_line(i, false)).collect();
    let (input, output) = (cluster.path("input.txt"), cluster.path("output.txt"));
    std::fs::write(&input, file_bytes(&first)).expect("write input");
    let mut workers = [cluster.member(0), cluster.member(1)];
    workers[0].create_connector("file-source", source_config(&input, "shared-lines"));
    workers[1].create_connector("file-sink", sink_config(&output, "shared-lines"));
    for worker in &mut workers {
        worker.wait_running("file-source");
        worker.wait_running("file-sink");
    }
    wait_output(&mut workers[0], &output, &file_bytes(&first));
    let group = sluice_json(&broker, &["group", "describe", GROUP]);
    assert_eq!(group["state"], "Stable", "{group}");
    let mut members: Vec<&str> =
        group["members"].as_array().expect("members").iter().filter_map(|m| m["client_id"].as_str()).collect();
    members.sort_unstable();
    let mut expected = [format!("connect-{}", cluster.rest(0)), format!("connect-{}", cluster.rest(1))];
    expected.sort_unstable();
    assert_eq!(members, expected, "{group}");

    let source_on = task_worker(&mut workers[0], "file-source");
    let (gone, stays) = if source_on == cluster.rest(0) { (0, 1) } else { (1, 0) };
    assert_eq!(source_on, cluster.rest(gone));
    workers[gone].stop();
    append(&input, &file_bytes(&second));
    let stays_at = cluster.rest(stays);
    let survivor = &mut workers[stays];
    survivor.wait_for("the source task on the remaining worker", |w, seen| {
        let (status, body) = w.request("GET", "/connectors/file-source/status", None, seen)?;
        (status == 200 && body["tasks"][0]["state"] == "RUNNING" && body["tasks"][0]["worker_id"] == stays_at.as_str())
            .then_some(())
    });
    wait_output(survivor, &output, &file_bytes(&[first, second].concat()));
}
