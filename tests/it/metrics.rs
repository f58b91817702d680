//! Prometheus metrics (`--metrics-listen`): the endpoint scraped as Prometheus scrapes it, both
//! of its text formats read by the `prometheus_client` Python package's own parsers, counters
//! that move with load, consumer-group lag, and `sluice broker-stats` reading it all back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Broker, client_script, free_port, output_within, python, sluice_bin};

/// How long one `sluice` command or parser run may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `request` to `addr` and returns the whole answer (the endpoint closes after it).
fn http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    answer
}

/// `GET /metrics` with `accept`; returns (Content-Type, body).
pub(crate) fn scrape(addr: &str, accept: &str) -> (String, String) {
    let answer = http(addr, &format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n"));
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let content_type = head.lines().find_map(|l| l.strip_prefix("Content-Type: ")).expect("a Content-Type").to_string();
    (content_type, body.to_string())
}

/// The families `tests/clients/prometheus_parse.py` read from `text` with parser `parser`.
fn parsed(text: &str, parser: &str) -> Vec<Value> {
    let mut child = Command::new(python())
        .arg(client_script("prometheus_parse.py"))
        .arg(parser)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run prometheus_parse.py");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the {parser} parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    parsed["families"].as_array().unwrap().clone()
}

/// The sum of the samples named `sample` whose labels include `labels`.
fn sum(families: &[Value], sample: &str, labels: &[(&str, &str)]) -> f64 {
    families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .filter(|s| s["name"] == sample && labels.iter().all(|(k, v)| s["labels"][k] == *v))
        .map(|s| s["value"].as_f64().unwrap_or(0.0))
        .sum()
}

fn family_type<'a>(families: &'a [Value], name: &str) -> &'a str {
    let family = families.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no family {name}"));
    family["type"].as_str().unwrap()
}

/// Runs `sluice ARGS` against `broker` with `stdin`; returns its output.
fn sluice(broker: &Broker, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(sluice_bin())
        .args(args)
        .env("SLUICE_BOOTSTRAP", &broker.addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "sluice {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn lines(n: usize) -> String {
    (0..n).map(|i| format!("record-{i}\n")).collect()
}

#[test]
fn metrics_parse_with_prometheus_parsers_and_move_with_load() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let broker =
        Broker::start(&["--cores", "2", "--metrics-listen", &metrics, "--group-initial-rebalance-delay-ms", "0"]);
    sluice(&broker, &["topic", "create", "measured", "--partitions", "4"], "");
    let (content_type, before) = scrape(&metrics, "text/plain;version=0.0.4;q=0.5,*/*;q=0.1");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let before = parsed(&before, "text");

    // One partition, so that the group's committed offsets cover every record (lag is counted
    // over the partitions a group has offsets for).
    sluice(&broker, &["produce", "measured", "--partition", "0"], &lines(200));
    let consume = ["consume", "measured", "--group", "crew", "--from-beginning", "--count", "200", "--timeout-ms"];
    sluice(&broker, &[&consume[..], &["30000"]].concat(), "");
    // Written after the group committed: its lag.
    sluice(&broker, &["produce", "measured", "--partition", "0"], &lines(30));

    // Prometheus asks for OpenMetrics first; the strict OpenMetrics parser must take it.
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, open_metrics) = scrape(&metrics, prometheus_accept);
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");
    parsed(&open_metrics, "openmetrics");
    let (_, after) = scrape(&metrics, "*/*");
    let after = parsed(&after, "text");

    for (family, kind) in [
        ("sluice_requests", "counter"),
        ("sluice_request_duration_seconds", "histogram"),
        ("sluice_log_flush_duration_seconds", "histogram"),
        ("sluice_partitions", "gauge"),
        ("sluice_consumer_group_lag_records", "gauge"),
        ("process_open_fds", "gauge"),
    ] {
        assert_eq!(family_type(&after, family), kind, "{family}");
    }
    let moved = |sample: &str, labels: &[(&str, &str)]| sum(&after, sample, labels) - sum(&before, sample, labels);
    let produce = [("request", "Produce")];
    assert!(moved("sluice_requests_total", &produce) >= 2.0, "two produce commands, at least a request each");
    assert!(moved("sluice_request_bytes_total", &produce) >= (230 * "record-0".len()) as f64);
    assert!(moved("sluice_response_bytes_total", &produce) > 0.0);
    assert_eq!(
        moved("sluice_request_duration_seconds_count", &produce),
        moved("sluice_requests_total", &produce),
        "every produce timed"
    );
    assert!(moved("sluice_requests_total", &[("request", "FetchConsumer")]) >= 1.0);
    assert!(moved("sluice_response_bytes_total", &[("request", "FetchConsumer")]) >= (200 * "record-0".len()) as f64);
    assert!(moved("sluice_requests_total", &[("request", "OffsetCommit")]) >= 1.0);
    assert!(moved("sluice_log_flush_duration_seconds_count", &[]) >= 1.0, "--flush-mode sync fdatasyncs each produce");
    assert!(moved("sluice_connections_accepted_total", &[]) >= 3.0);
    assert!(moved("sluice_batch_cache_hits_total", &[]) + moved("sluice_batch_cache_misses_total", &[]) >= 1.0);
    // Both shards report, and every partition (4, plus __consumer_offsets') is led here.
    let partitions = sum(&after, "sluice_partitions", &[]);
    assert!(partitions >= 5.0, "{partitions}");
    assert_eq!(sum(&after, "sluice_partition_leaders", &[]), partitions);
    assert_eq!(sum(&after, "sluice_under_replicated_partitions", &[]), 0.0);
    for shard in ["0", "1"] {
        assert!(after.iter().any(|f| {
            f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == "sluice_partitions" && s["labels"]["shard"] == shard)
        }));
    }
    // Memory by budget line: the batch cache's line is its gauge; both listeners have a budget.
    let batch_cache = sum(&after, "sluice_memory_bytes", &[("line", "batch_cache")]);
    assert_eq!(batch_cache, sum(&after, "sluice_batch_cache_bytes", &[]));
    assert!(batch_cache > 0.0, "produced records are cached");
    for line in ["requests", "replication_requests", "cleaner"] {
        let budget = sum(&after, "sluice_memory_budget_bytes", &[("line", line)]);
        assert!(budget >= 1e6, "{line}: {budget}");
        assert!(sum(&after, "sluice_memory_bytes", &[("line", line)]) <= budget, "{line}");
    }
    let open_segments = sum(&after, "sluice_open_segment_files", &[]);
    assert!(open_segments >= 1.0 && open_segments <= sum(&after, "sluice_open_segment_files_max", &[]));
    assert_eq!(sum(&after, "sluice_consumer_group_lag_records", &[("group", "crew")]), 30.0);
    assert!(sum(&after, "process_open_fds", &[]) > 10.0);
    assert!(sum(&after, "process_resident_memory_bytes", &[]) > 1e6);
    let buckets = sum(&after, "sluice_request_duration_seconds_bucket", &[("request", "Produce"), ("le", "+Inf")]);
    assert_eq!(buckets, sum(&after, "sluice_request_duration_seconds_count", &produce));

    // Other paths and methods are refused, and the endpoint goes on serving.
    let missing = http(&metrics, "GET /nothing HTTP/1.1\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    let posted = http(&metrics, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(posted.starts_with("HTTP/1.1 405 "), "{posted}");
    let garbage = http(&metrics, "\u{1}\u{2}\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
    scrape(&metrics, "*/*");
}

#[test]
fn broker_stats_summarises_the_endpoint_and_prints_it_raw() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let broker = Broker::start(&["--cores", "2", "--metrics-listen", &metrics]);
    sluice(&broker, &["topic", "create", "stats", "--partitions", "2"], "");
    sluice(&broker, &["produce", "stats"], &lines(50));

    let mut command = Command::new(sluice_bin());
    command.args(["broker-stats", "--metrics", &metrics, "--interval", "0.2"]);
    let output = output_within(command, COMMAND_TIMEOUT);
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{summary}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(summary.contains("rates and latencies over the last 0.2 s"), "{summary}");
    let produce = summary.lines().find(|l| l.starts_with("Produce ")).unwrap_or_else(|| panic!("{summary}"));
    let total: f64 = produce.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(total >= 1.0, "{summary}");
    for part in ["log flushes", "connections", "partitions", "batch cache", "open descriptors"] {
        assert!(summary.contains(part), "no {part} in\n{summary}");
    }

    let mut command = Command::new(sluice_bin());
    command.args(["broker-stats", "--raw", "--metrics", &format!("http://{metrics}/metrics")]);
    let output = output_within(command, COMMAND_TIMEOUT);
    let raw = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && raw.contains("# TYPE sluice_requests_total counter"), "{raw}");

    // Nothing listening: one line saying where it looked and what to set.
    let mut command = Command::new(sluice_bin());
    command.args(["broker-stats", "--metrics", &format!("127.0.0.1:{}", free_port())]);
    let output = output_within(command, COMMAND_TIMEOUT);
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && error.contains("--metrics-listen"), "{error}");
}

#[test]
fn a_taken_metrics_port_fails_the_start_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = crate::harness::temp_dir();
    let mut command = Command::new(sluice_bin());
    command.args(["broker", "--listen", &format!("127.0.0.1:{}", free_port()), "--metrics-listen", &addr]);
    command.arg("--data-dir").arg(data.path());
    let output = output_within(command, COMMAND_TIMEOUT);
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{error}");
    assert!(error.contains("cannot listen for metrics") && error.contains(&addr), "{error}");
}
