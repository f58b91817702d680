//! The `sluice topic | produce | consume | group` commands, run as a user runs them: the real
//! binary against a real broker, input on stdin, tables and JSON on stdout, one-line errors on
//! stderr with a non-zero exit.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::harness::{Broker, sluice_bin};

/// Runs `sluice ARGS` with `stdin`, killing it (and failing) after 60 s.
fn sluice(broker: Option<&Broker>, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(sluice_bin());
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.env_remove("SLUICE_BOOTSTRAP");
    if let Some(broker) = broker {
        command.env("SLUICE_BOOTSTRAP", &broker.addr);
    }
    let mut child = command.spawn().expect("spawn sluice");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!("sluice {args:?} hung\n{}", describe(&output));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a command that must succeed; returns its stdout.
fn ok(broker: &Broker, args: &[&str], stdin: &str) -> String {
    let output = sluice(Some(broker), args, stdin);
    assert!(output.status.success(), "sluice {args:?} failed\n{}", describe(&output));
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// Runs a command that must fail with one line on stderr; returns that line.
fn fails(broker: Option<&Broker>, args: &[&str]) -> String {
    let output = sluice(broker, args, "");
    assert!(!output.status.success(), "sluice {args:?} succeeded\n{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "sluice {args:?}: not one line\n{}", describe(&output));
    lines[0].to_string()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn config<'a>(described: &'a Value, name: &str) -> &'a Value {
    described["configs"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

#[test]
fn topic_create_list_describe_add_partitions_alter_config_delete() {
    let broker = Broker::start(&["--cores", "1"]);
    let created =
        ok(&broker, &["topic", "create", "orders", "--partitions", "2", "--config", "retention.ms=60000"], "");
    assert_eq!(created.trim(), "created topic orders with 2 partition(s)");
    ok(&broker, &["topic", "create", "audit", "--partitions", "1", "--replication-factor", "1"], "");

    let listed = ok(&broker, &["topic", "list"], "");
    assert_eq!(lines(&listed)[0].split_whitespace().collect::<Vec<_>>(), ["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]);
    let listed = json(&ok(&broker, &["topic", "list", "--json"], ""));
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["audit", "orders"]);
    assert_eq!(listed[1]["partitions"], 2);

    let described = json(&ok(&broker, &["topic", "describe", "orders", "--json"], ""));
    assert_eq!(described["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(described["partitions"][1]["partition"], 1);
    assert!(described["partitions"][0]["leader"].as_i64().unwrap() >= 0);
    assert_eq!(described["partitions"][0]["isr"], described["partitions"][0]["replicas"]);
    assert_eq!(config(&described, "retention.ms")["value"], "60000");
    assert_eq!(config(&described, "retention.ms")["source"], "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(config(&described, "segment.bytes")["source"], "DEFAULT_CONFIG");
    let table = ok(&broker, &["topic", "describe", "orders"], "");
    assert!(table.contains("PARTITION  LEADER  LEADER-EPOCH  REPLICAS  ISR  OFFLINE"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("retention.ms") && l.ends_with("DYNAMIC_TOPIC_CONFIG")), "{table}");

    ok(&broker, &["topic", "add-partitions", "orders", "--partitions", "4"], "");
    let described = json(&ok(&broker, &["topic", "describe", "orders", "--json"], ""));
    assert_eq!(described["partitions"].as_array().unwrap().len(), 4);

    let altered = ok(
        &broker,
        &[
            "topic",
            "alter-config",
            "orders",
            "--config",
            "segment.bytes=1048576",
            "--config",
            "cleanup.policy=compact",
            "--delete-config",
            "retention.ms",
            "--json",
        ],
        "",
    );
    assert_eq!(json(&altered)["set"]["segment.bytes"], "1048576");
    let described = json(&ok(&broker, &["topic", "describe", "orders", "--json"], ""));
    assert_eq!(config(&described, "segment.bytes")["value"], "1048576");
    assert_eq!(config(&described, "segment.bytes")["source"], "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(config(&described, "cleanup.policy")["value"], "compact");
    assert_eq!(config(&described, "retention.ms")["source"], "DEFAULT_CONFIG");

    let error = fails(Some(&broker), &["topic", "alter-config", "orders", "--config", "retention.ms=soon"]);
    assert!(error.starts_with("sluice: ") && error.contains("InvalidConfig"), "{error}");
    let error = fails(Some(&broker), &["topic", "alter-config", "orders", "--config", "no.such.config=1"]);
    assert!(error.to_lowercase().contains("unknown topic config"), "{error}");
    let error = fails(Some(&broker), &["topic", "alter-config", "orders"]);
    assert!(error.contains("nothing to change"), "{error}");
    let error = fails(Some(&broker), &["topic", "create", "orders", "--partitions", "1"]);
    assert!(error.contains("TopicAlreadyExists"), "{error}");
    let error = fails(Some(&broker), &["topic", "add-partitions", "orders", "--partitions", "2"]);
    assert!(error.contains("InvalidPartitions"), "{error}");

    assert_eq!(ok(&broker, &["topic", "delete", "audit"], "").trim(), "deleted topic audit");
    let listed = json(&ok(&broker, &["topic", "list", "--json"], ""));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let error = fails(Some(&broker), &["topic", "delete", "audit"]);
    assert!(error.contains("UnknownTopicOrPartition"), "{error}");
}

/// `--max-partitions` refuses a topic, or more partitions, that would pass it, saying which
/// limit; what fits is still created.
#[test]
fn max_partitions_refuses_what_would_pass_it() {
    let broker = Broker::start(&["--cores", "1", "--max-partitions", "3"]);
    ok(&broker, &["topic", "create", "small", "--partitions", "2"], "");
    let error = fails(Some(&broker), &["topic", "create", "big", "--partitions", "2"]);
    assert!(error.contains("PolicyViolation") && error.contains("--max-partitions"), "{error}");
    let error = fails(Some(&broker), &["topic", "add-partitions", "small", "--partitions", "4"]);
    assert!(error.contains("PolicyViolation") && error.contains("limit of 3"), "{error}");
    ok(&broker, &["topic", "add-partitions", "small", "--partitions", "3"], "");
}

/// The config an alter sets survives a restart (it is in the metadata image), and the topic's
/// partition keeps being served across the change and the restart.
#[test]
fn altered_configs_persist_across_a_restart() {
    let mut broker = Broker::start(&["--cores", "1"]);
    ok(&broker, &["topic", "create", "kept", "--partitions", "1"], "");
    ok(&broker, &["topic", "alter-config", "kept", "--config", "retention.ms=123456"], "");
    ok(&broker, &["produce", "kept"], "after\n");
    broker.restart();
    let described = json(&ok(&broker, &["topic", "describe", "kept", "--json"], ""));
    assert_eq!(config(&described, "retention.ms")["value"], "123456");
    assert_eq!(config(&described, "retention.ms")["source"], "DYNAMIC_TOPIC_CONFIG");
    let consumed = ok(&broker, &["consume", "kept", "--from-beginning", "--count", "1"], "");
    assert_eq!(consumed, "after\n");
}

/// `compression.type=zstd`: the broker stores uncompressed produces as zstd batches (Kafka's
/// broker-side recompression), and consumers read the same records.
#[test]
fn a_topic_codec_recompresses_what_producers_send() {
    let broker = Broker::start(&["--cores", "1"]);
    ok(&broker, &["topic", "create", "zipped", "--partitions", "1", "--config", "compression.type=zstd"], "");
    ok(&broker, &["produce", "zipped"], "one\ntwo\n");
    let consumed = ok(&broker, &["consume", "zipped", "--from-beginning", "--count", "2"], "");
    assert_eq!(consumed, "one\ntwo\n");
    let dump = Command::new(sluice_bin()).args(["log", "dump"]).arg(broker.data_dir.join("zipped-0")).output();
    let dump = String::from_utf8_lossy(&dump.expect("run dump").stdout).to_string();
    let batches: Vec<&str> = dump.lines().filter(|l| l.starts_with("offsets ")).collect();
    assert!(!batches.is_empty() && batches.iter().all(|l| l.contains("compression Zstd")), "{dump}");
}

#[test]
fn produce_from_stdin_then_consume_with_each_option() {
    let broker = Broker::start(&["--cores", "1"]);
    ok(&broker, &["topic", "create", "events", "--partitions", "3"], "");

    // Keys and headers, to partition 1, offsets printed.
    let produced = ok(
        &broker,
        &[
            "produce",
            "events",
            "--key-separator",
            "::",
            "--header",
            "source=cli",
            "--header",
            "n=1",
            "--partition",
            "1",
            "--verbose",
        ],
        "k0::v0\nk1::v1\nk2::v::2\n",
    );
    assert_eq!(lines(&produced), ["partition 1 offset 0", "partition 1 offset 1", "partition 1 offset 2"]);
    // Without --verbose nothing is printed; compression and acks are accepted.
    let quiet =
        ok(&broker, &["produce", "events", "--partition", "0", "--compression", "gzip", "--acks", "1"], "a\nb\r\n");
    assert_eq!(quiet, "");
    let between = now_ms();
    std::thread::sleep(Duration::from_millis(20));
    let later = ok(
        &broker,
        &["produce", "events", "--partition", "2", "--acks", "all", "--compression", "zstd", "--verbose", "--json"],
        "late1\nlate2\n",
    );
    let first = json(lines(&later)[0]);
    assert_eq!((first["partition"].as_i64(), first["offset"].as_i64()), (Some(2), Some(0)));

    // --format with every placeholder.
    let consumed = ok(
        &broker,
        &[
            "consume",
            "events",
            "--partition",
            "1",
            "--from-beginning",
            "--count",
            "3",
            "--format",
            "%T %p %o %k=%v [%h] %t",
        ],
        "",
    );
    let got = lines(&consumed);
    assert_eq!(got.len(), 3, "{consumed}");
    for (i, line) in got.iter().enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        let expected_value = if i == 2 { "v::2".to_string() } else { format!("v{i}") };
        assert_eq!(fields[..5], ["events", "1", &i.to_string(), &format!("k{i}={expected_value}"), "[source=cli,n=1]"]);
        let timestamp: i64 = fields[5].parse().unwrap();
        assert!(timestamp > 0 && timestamp <= now_ms(), "{line}");
    }

    // Default format is the value; --count stops early; several partitions at once.
    let consumed = ok(&broker, &["consume", "events", "--partition", "0,2", "--from-beginning", "--count", "4"], "");
    let mut values = lines(&consumed);
    values.sort_unstable();
    assert_eq!(values, ["a", "b", "late1", "late2"]);
    let one = ok(&broker, &["consume", "events", "--partition", "1", "--from-beginning", "--count", "1"], "");
    assert_eq!(one, "v0\n");

    // --offset, in the partition read.
    let consumed = ok(&broker, &["consume", "events", "--partition", "1", "--offset", "1", "--count", "2"], "");
    assert_eq!(lines(&consumed), ["v1", "v::2"]);

    // --timestamp: only what was produced after it.
    let consumed = ok(
        &broker,
        &["consume", "events", "--timestamp", &between.to_string(), "--timeout-ms", "1500", "--format", "%p:%v"],
        "",
    );
    assert_eq!(lines(&consumed), ["2:late1", "2:late2"]);

    // Every partition, from the beginning, until idle; --json parses.
    let consumed = ok(&broker, &["consume", "events", "--from-beginning", "--timeout-ms", "1500", "--json"], "");
    let records: Vec<Value> = lines(&consumed).into_iter().map(json).collect();
    assert_eq!(records.len(), 7);
    let keyed = records.iter().find(|r| r["partition"] == 1 && r["offset"] == 0).unwrap();
    assert_eq!((keyed["key"].as_str(), keyed["value"].as_str()), (Some("k0"), Some("v0")));
    assert_eq!(keyed["topic"], "events");
    assert_eq!(keyed["headers"][0]["key"], "source");
    assert_eq!(keyed["headers"][0]["value"], "cli");
    let unkeyed = records.iter().find(|r| r["partition"] == 0).unwrap();
    assert!(unkeyed["key"].is_null());

    // The default start is the log end: nothing old comes back.
    let consumed = ok(&broker, &["consume", "events", "--timeout-ms", "700"], "");
    assert_eq!(consumed, "");
}

#[test]
fn errors_are_one_line_and_exit_non_zero() {
    let broker = Broker::start(&["--cores", "1"]);
    ok(&broker, &["topic", "create", "present", "--partitions", "1"], "");

    let error = fails(Some(&broker), &["consume", "absent", "--count", "1"]);
    assert_eq!(error, "sluice: unknown topic absent");
    let error = fails(Some(&broker), &["produce", "absent"]);
    assert_eq!(error, "sluice: unknown topic absent");
    let error = fails(Some(&broker), &["topic", "describe", "absent"]);
    assert_eq!(error, "sluice: unknown topic absent");
    let error = fails(None, &["topic", "list", "--bootstrap", "127.0.0.1:1"]);
    assert!(error.starts_with("sluice: no bootstrap server reachable (127.0.0.1:1)"), "{error}");
    let error = fails(Some(&broker), &["consume", "present", "--partition", "5"]);
    assert!(error.contains("has no partition 5"), "{error}");
    let error = fails(Some(&broker), &["consume", "present", "--format", "%q"]);
    assert!(error.contains("unknown placeholder %q"), "{error}");
    let error = fails(Some(&broker), &["consume", "absent", "--group", "g"]);
    assert!(error.contains("unknown topic absent"), "{error}");
    let output = sluice(Some(&broker), &["produce", "present", "--key-separator", ":"], "k:v\nno separator\n");
    assert!(!output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr).trim(), "sluice: line 2 has no key separator ':'");

    // A bad flag is clap's error: non-zero, and its first line says what was wrong.
    let output = sluice(Some(&broker), &["topic", "create", "x", "--partitions", "many"], "");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.lines().next().unwrap().contains("invalid value 'many'"), "{stderr}");
    let output = sluice(Some(&broker), &["consume", "present", "--no-such-flag"], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).lines().next().unwrap().contains("--no-such-flag"));
}

/// What `sluice group …` needs from a broker: a consumer group with committed offsets, made by
/// confluent-kafka (a real group member) and then left empty.
fn commit_with_a_real_group(broker: &Broker, topic: &str, group: &str) {
    let script = format!(
        "from confluent_kafka import Consumer\n\
         c = Consumer({{'bootstrap.servers': '{addr}', 'group.id': '{group}', 'auto.offset.reset': 'earliest', \
         'enable.auto.commit': False}})\n\
         c.subscribe(['{topic}'])\n\
         got = 0\n\
         while got < 3:\n\
         \x20   m = c.poll(10)\n\
         \x20   assert m is not None and m.error() is None, m\n\
         \x20   got += 1\n\
         c.commit(asynchronous=False)\n\
         c.close()\n",
        addr = broker.addr
    );
    let output = Command::new(crate::harness::python()).args(["-c", &script]).output().expect("python");
    assert!(output.status.success(), "{}", describe(&output));
}

#[test]
fn group_list_describe_reset_offsets_delete() {
    let broker = Broker::start(&["--cores", "1"]);
    ok(&broker, &["topic", "create", "work", "--partitions", "1"], "");
    ok(&broker, &["produce", "work"], "1\n2\n3\n4\n5\n");
    commit_with_a_real_group(&broker, "work", "workers");

    let listed = json(&ok(&broker, &["group", "list", "--json"], ""));
    assert!(listed.as_array().unwrap().iter().any(|g| g["group"] == "workers"), "{listed}");
    assert!(ok(&broker, &["group", "list"], "").contains("workers"));

    let described = json(&ok(&broker, &["group", "describe", "workers", "--json"], ""));
    assert_eq!(described["state"], "Empty");
    let offsets = &described["offsets"][0];
    assert_eq!((offsets["topic"].as_str(), offsets["partition"].as_i64()), (Some("work"), Some(0)));
    assert_eq!(offsets["committed_offset"], 3);
    assert_eq!(offsets["log_end_offset"], 5);
    assert_eq!(offsets["lag"], 2);
    assert!(ok(&broker, &["group", "describe", "workers"], "").contains("LAG"));

    // A dry run changes nothing.
    let plan = ok(&broker, &["group", "reset-offsets", "workers", "--topic", "work", "--to-earliest"], "");
    assert!(plan.contains("dry run"), "{plan}");
    let described = json(&ok(&broker, &["group", "describe", "workers", "--json"], ""));
    assert_eq!(described["offsets"][0]["committed_offset"], 3);
    for (flag, value, expected) in [
        ("--to-earliest", None, 0),
        ("--to-latest", None, 5),
        ("--to-offset", Some("1"), 1),
        ("--to-offset", Some("99"), 5),
        ("--to-timestamp", Some("0"), 0),
    ] {
        let mut args = vec!["group", "reset-offsets", "workers", "--topic", "work", flag];
        args.extend(value);
        args.extend(["--execute", "--json"]);
        let done = json(&ok(&broker, &args, ""));
        assert_eq!(done["partitions"][0]["new_offset"], expected, "{flag} {value:?}");
        let described = json(&ok(&broker, &["group", "describe", "workers", "--json"], ""));
        assert_eq!(described["offsets"][0]["committed_offset"], expected, "{flag} {value:?}");
    }

    ok(&broker, &["group", "delete", "workers"], "");
    let error = fails(Some(&broker), &["group", "describe", "workers"]);
    assert!(error.contains("does not exist"), "{error}");
}

#[test]
fn group_commands_on_an_unknown_group_fail_in_one_line() {
    let broker = Broker::start(&["--cores", "1"]);
    for args in [
        &["group", "describe", "nobody"][..],
        &["group", "delete", "nobody"],
        &["group", "reset-offsets", "nobody", "--topic", "t", "--to-earliest", "--execute"],
    ] {
        let error = fails(Some(&broker), args);
        assert!(error.starts_with("sluice: ") && !error.contains('\n'), "{error}");
    }
    let output = sluice(Some(&broker), &["group", "reset-offsets", "g", "--topic", "t"], "");
    assert_eq!(output.status.code(), Some(2), "a target is required\n{}", describe(&output));
}

#[test]
fn consume_in_a_group_splits_work_and_resumes_from_the_commit() {
    let broker = Broker::start(&["--cores", "2", "--group-initial-rebalance-delay-ms", "0"]);
    ok(&broker, &["topic", "create", "jobs", "--partitions", "2"], "");
    let lines: String = (0..40).map(|i| format!("{i}\n")).collect();
    ok(&broker, &["produce", "jobs"], &lines);
    // 25 of the 40 records, from the log start; their offsets are committed.
    let first = ok(
        &broker,
        &["consume", "jobs", "--group", "crew", "--from-beginning", "--count", "25", "--format", "%p:%o"],
        "",
    );
    let first: Vec<&str> = first.lines().collect();
    assert_eq!(first.len(), 25);
    // The same group goes on where it stopped: the other 15, nothing twice.
    let rest = ok(&broker, &["consume", "jobs", "--group", "crew", "--timeout-ms", "3000", "--format", "%p:%o"], "");
    let rest: Vec<&str> = rest.lines().collect();
    assert_eq!(rest.len(), 15, "{rest:?}");
    let mut all: Vec<&str> = first.iter().chain(&rest).copied().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 40, "every record once");
    let described = json(&ok(&broker, &["group", "describe", "crew", "--json"], ""));
    let lag: i64 = described["offsets"].as_array().unwrap().iter().map(|o| o["lag"].as_i64().unwrap()).sum();
    assert_eq!(lag, 0, "{described}");
}
