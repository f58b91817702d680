//! Shared helpers: the `sluice` binary, temp dirs on a real disk, a broker process that tests
//! start, kill and restart, and the paths of the third-party clients.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `sluice` binary cargo built for these tests.
pub(crate) fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// A temp dir under the target dir, so direct I/O runs on a real disk filesystem even where
/// /tmp is a tmpfs.
pub(crate) fn temp_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).expect("target tmpdir");
    tempfile::tempdir_in(base).expect("temp dir")
}

/// The Python of the test venv (made by scripts/install-test-deps.sh).
pub(crate) fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-tests/bin/python");
    assert!(venv.exists(), "{} is missing: run scripts/install-test-deps.sh (scripts/test does)", venv.display());
    venv
}

/// A client script under tests/clients/.
pub(crate) fn client_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(name)
}

/// A script of the Node.js project tests/clients/node (KafkaJS), whose node_modules
/// scripts/install-test-deps.sh installs with `npm ci`.
pub(crate) fn node_script(name: &str) -> PathBuf {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node");
    let modules = project.join("node_modules");
    assert!(modules.exists(), "{} is missing: run scripts/install-test-deps.sh (scripts/test does)", modules.display());
    project.join(name)
}

/// The first line a client script printed as its one-line verdict on failure ("FAIL ..."), if
/// any.
pub(crate) fn fail_line(stdout: &str) -> Option<&str> {
    stdout.lines().find(|line| line.starts_with("FAIL "))
}

/// Runs the tests/clients/compat.py scenario `scenario` (with `args`) against `broker` and
/// asserts that it printed `PASS <scenario>`.
pub(crate) fn compat_scenario(broker: &Broker, scenario: &str, args: &[&str]) {
    let output = Command::new(python())
        .arg(client_script("compat.py"))
        .args(["--bootstrap", &broker.addr, scenario])
        .args(args)
        .output()
        .expect("run compat.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("PASS {scenario}")),
        "{}\nscenario {scenario} {args:?} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        fail_line(&stdout).unwrap_or("no FAIL line")
    );
}

/// A `sluice broker` process on a free port with its own data dir. Stopped (SIGTERM) on drop.
pub(crate) struct Broker {
    child: Option<Child>,
    /// host:port to bootstrap from.
    pub(crate) addr: String,
    /// The data dir (kept across restarts).
    pub(crate) data_dir: PathBuf,
    extra: Vec<String>,
    /// Where its stderr (its log) goes, if not to the test's.
    log: Option<PathBuf>,
    _root: Option<tempfile::TempDir>,
}

impl Broker {
    /// Starts a broker with `extra` flags on a fresh data dir.
    pub(crate) fn start(extra: &[&str]) -> Broker {
        let root = temp_dir();
        let data_dir = root.path().join("data");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, addr) = spawn(&data_dir, &format!("127.0.0.1:{}", free_port()), &extra, None);
        Broker { child: Some(child), addr, data_dir, extra, log: None, _root: Some(root) }
    }

    /// [`Broker::start`] with its log (stderr, at `SLUICE_LOG=info`) in `<data dir>/../broker.log`.
    pub(crate) fn start_logged(extra: &[&str]) -> Broker {
        let root = temp_dir();
        let data_dir = root.path().join("data");
        let log = root.path().join("broker.log");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, addr) = spawn(&data_dir, &format!("127.0.0.1:{}", free_port()), &extra, Some(&log));
        Broker { child: Some(child), addr, data_dir, extra, log: Some(log), _root: Some(root) }
    }

    /// What the broker logged so far (empty unless started with [`Broker::start_logged`]).
    pub(crate) fn log_text(&self) -> String {
        self.log.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default()
    }

    /// Kills the broker with SIGKILL, as a crash would.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the broker with SIGTERM and waits for a clean exit; returns whether it was clean.
    pub(crate) fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same data dir and port.
    pub(crate) fn restart(&mut self) {
        self.kill9();
        let (child, addr) = spawn(&self.data_dir, &self.addr, &self.extra, self.log.as_deref());
        self.child = Some(child);
        self.addr = addr;
    }

    /// [`Broker::restart`] with other flags.
    pub(crate) fn restart_with(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.restart();
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The broker's process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first port test brokers take, below Linux's ephemeral range (32768 on): a port the kernel
/// hands out for port 0 (another test's client or broker) could take a killed broker's port
/// before its restart, and the restart must get the same port back.
const TEST_PORTS_FROM: u16 = 20_000;
/// How many ports after it test brokers may take.
const TEST_PORTS: u16 = 12_000;

/// A port no test broker of this process had and that nothing listens on now (also for other
/// servers the tests start, such as a Kafka Connect worker's REST listener).
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread concurrent test processes apart.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = u16::try_from(std::process::id() % u32::from(TEST_PORTS)).unwrap_or(0);
    for _ in 0..TEST_PORTS {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = TEST_PORTS_FROM + (offset.wrapping_add(n) % TEST_PORTS);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port for a test broker");
}

/// How long a broker may take to say it listens. It takes well under a second; this is for a
/// start that hangs (seen rarely on a two-core machine under heavy load: both shards idle before
/// the mesh was ready), which would otherwise hang the test run.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(60);

fn spawn(data_dir: &Path, listen: &str, extra: &[String], log: Option<&Path>) -> (Child, String) {
    // A restart may race the old process's port release; retry a few times.
    for attempt in 0..20 {
        let (level, stderr) = match log {
            Some(path) => {
                let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("broker log");
                ("info".to_string(), Stdio::from(file))
            }
            None => (std::env::var("SLUICE_LOG").unwrap_or_else(|_| "warn".into()), Stdio::inherit()),
        };
        let mut child = Command::new(sluice_bin())
            .args(["broker", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("SLUICE_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn sluice broker");
        let stdout = child.stdout.take().expect("stdout");
        // The first line, read on a thread that then keeps draining stdout (so the broker never
        // blocks on a full pipe), with a deadline: a start that hangs fails loudly here instead of
        // hanging the whole test run.
        let (first_line, line) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first_line.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        match line.recv_timeout(BROKER_START_TIMEOUT) {
            Ok(Some(line)) if line.starts_with("sluice broker listening on ") => {
                let rest = &line["sluice broker listening on ".len()..];
                let addr = rest.split_whitespace().next().expect("address").to_string();
                return (child, addr);
            }
            Err(_) => eprintln!("the broker on {listen} did not start within {BROKER_START_TIMEOUT:?}; killing it"),
            Ok(_) => {}
        }
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
    }
    panic!("the broker did not start");
}

/// tests/java: the Maven project that pins Apache Kafka's jars (client, tools, Streams, Connect).
fn java_project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java")
}

/// The class path of the Java tests: their classes, compiled from tests/java/src with javac
/// once per test run (so an edit to a scenario needs no install step), then every jar
/// scripts/install-test-deps.sh copied to tests/java/target/lib.
pub(crate) fn java_classpath() -> &'static str {
    static CLASSPATH: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    let compiled = CLASSPATH.get_or_init(|| {
        let project = java_project();
        let lib = project.join("target/lib");
        if !lib.join(".pom.xml").exists() {
            return Err(format!("{} is missing: run scripts/install-test-deps.sh (scripts/test does)", lib.display()));
        }
        let jars = format!("{}/*", lib.display());
        let classes = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("java-classes");
        let _ = std::fs::remove_dir_all(&classes);
        let mut sources = Vec::new();
        let mut dirs = vec![project.join("src/main/java")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
                let path = entry.map_err(|e| e.to_string())?.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|ext| ext == "java") {
                    sources.push(path);
                }
            }
        }
        let output = Command::new("javac")
            .args(["-nowarn", "-encoding", "UTF-8", "--release", "17", "-cp", &jars, "-d"])
            .arg(&classes)
            .args(&sources)
            .output()
            .map_err(|e| format!("run javac: {e}"))?;
        if !output.status.success() {
            return Err(format!("javac failed:\n{}", String::from_utf8_lossy(&output.stderr)));
        }
        Ok(format!("{}:{jars}", classes.display()))
    });
    match compiled {
        Ok(classpath) => classpath,
        Err(why) => panic!("{why}"),
    }
}

/// A `java` command for `main_class` on the Java tests' class path, logging through
/// tests/java/log4j2.properties (warnings up; SLUICE_JAVA_LOG=info for more). Tiered compilation
/// stops at C1: these JVMs live seconds, and start-up is most of their time.
pub(crate) fn java(main_class: &str) -> Command {
    let log_config = java_project().join("log4j2.properties");
    let level = std::env::var("SLUICE_JAVA_LOG").unwrap_or_else(|_| "warn".into());
    let mut command = Command::new("java");
    command
        .arg("-XX:TieredStopAtLevel=1")
        .arg("-XX:+UseSerialGC")
        .arg(format!("-Dlog4j2.configurationFile={}", log_config.display()))
        .arg(format!("-Dsluice.java.log={level}"))
        .args(["-cp", java_classpath(), main_class]);
    command
}

/// Runs the scenario `scenario` of the Java class `sluice.it.<class>` against `broker` and
/// asserts that it printed `PASS <scenario>`.
pub(crate) fn java_scenario(broker: &Broker, class: &str, scenario: &str, args: &[&str]) {
    let mut command = java(&format!("sluice.it.{class}"));
    command.args(["--bootstrap", &broker.addr, scenario]).args(args);
    let output = output_within(command, JAVA_SCENARIO_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("PASS {scenario}")),
        "{}\njava scenario {class} {scenario} {args:?} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        fail_line(&stdout).unwrap_or("no FAIL line")
    );
}

/// How long one Java scenario may run before the harness kills it and fails: a client that
/// waits on a broker bug (60 s max.block.ms per send, say) must fail the test, not hang it.
pub(crate) const JAVA_SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

/// Runs `command` to completion like `Command::output`, but kills it (SIGKILL) after `timeout`
/// and returns what it printed so far, with a line saying so appended to stderr.
pub(crate) fn output_within(command: Command, timeout: Duration) -> std::process::Output {
    output_within_grace(command, timeout, Duration::ZERO)
}

/// [`output_within`], but at `timeout` it sends SIGTERM first (so the command can clean up after
/// itself, as on Ctrl-C) and SIGKILL only `grace` later.
pub(crate) fn output_within_grace(mut command: Command, timeout: Duration, grace: Duration) -> std::process::Output {
    use std::io::Read;
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let mut terminated = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if !terminated && !grace.is_zero() && started.elapsed() > timeout {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            terminated = true;
        }
        if started.elapsed() > timeout + grace {
            let _ = child.kill();
            terminated = true;
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = stderr.join().unwrap_or_default();
    if terminated {
        stderr.extend_from_slice(format!("\nstopped after {timeout:?}\n").as_bytes());
    }
    std::process::Output { status, stdout: stdout.join().unwrap_or_default(), stderr }
}

/// Flags that make a test cluster notice failures in a second or two instead of Kafka's 9 s.
pub(crate) const FAST_CLUSTER: &[&str] = &[
    "--broker-session-timeout-ms",
    "1500",
    "--broker-heartbeat-interval-ms",
    "250",
    "--controller-election-timeout-ms",
    "500",
];

/// A cluster of `sluice broker` processes on loopback: nodes 1..=n, the first three of them the
/// metadata quorum's voters, the rest brokers only. Node i is `nodes[i - 1]`.
pub(crate) struct Cluster {
    /// The nodes, in id order.
    pub(crate) nodes: Vec<Broker>,
    /// `--controller-voters`, for more nodes to join with.
    pub(crate) voters: String,
}

impl Cluster {
    /// Starts `n` nodes at once (each waits for the quorum before it says it listens), each with
    /// `FAST_CLUSTER` and `extra`.
    pub(crate) fn start(n: usize, extra: &[&str]) -> Cluster {
        Cluster::start_with(n, extra, 1, false)
    }

    /// [`Cluster::start`] with `cores` cores per node, and with each node's log kept
    /// ([`Broker::start_logged`]) if `logged`.
    pub(crate) fn start_with(n: usize, extra: &[&str], cores: usize, logged: bool) -> Cluster {
        let controller_ports: Vec<u16> = (0..n.min(3)).map(|_| free_port()).collect();
        let voters: Vec<String> =
            controller_ports.iter().enumerate().map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1)).collect();
        let voters = voters.join(",");
        let nodes = std::thread::scope(|scope| {
            let starts: Vec<_> = (1..=n)
                .map(|id| {
                    let mut flags: Vec<String> =
                        vec!["--node-id".into(), id.to_string(), "--controller-voters".into(), voters.clone()];
                    if let Some(port) = controller_ports.get(id - 1) {
                        flags.extend(["--controller-listen".into(), format!("127.0.0.1:{port}")]);
                    }
                    // A FAST_CLUSTER flag that `extra` sets again is left to `extra`.
                    for pair in FAST_CLUSTER.chunks(2) {
                        if !extra.contains(&pair[0]) {
                            flags.extend(pair.iter().map(|s| s.to_string()));
                        }
                    }
                    flags.extend(extra.iter().map(|s| s.to_string()));
                    flags.extend(["--cores".to_string(), cores.to_string()]);
                    scope.spawn(move || {
                        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                        if logged { Broker::start_logged(&flags) } else { Broker::start(&flags) }
                    })
                })
                .collect();
            starts.into_iter().map(|s| s.join().expect("a node started")).collect()
        });
        Cluster { nodes, voters }
    }

    /// Node `id` (1-based).
    pub(crate) fn node(&mut self, id: usize) -> &mut Broker {
        &mut self.nodes[id - 1]
    }

    /// The cluster's metadata as node `id` reports it to kcat (`kcat -L -J`).
    pub(crate) fn metadata(&self, id: usize) -> serde_json::Value {
        let output = Command::new("kcat")
            .args(["-b", &self.nodes[id - 1].addr, "-L", "-J", "-m", "10"])
            .output()
            .expect("run kcat");
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Waits up to `timeout` for node `id`'s metadata to satisfy `ok`; returns the last seen.
    pub(crate) fn wait_metadata(
        &self,
        id: usize,
        timeout: Duration,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let metadata = self.metadata(id);
            if ok(&metadata) || Instant::now() > deadline {
                return metadata;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Sets the soft and hard limit on open descriptors of process `pid`.
pub(crate) fn limit_open_files(pid: u32, limit: u64) {
    let value = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: prlimit(2) on our own child, with a valid new limit and no old one asked for.
    let done = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, &value, std::ptr::null_mut()) };
    assert_eq!(done, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Descriptors process `pid` holds open.
pub(crate) fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0)
}
