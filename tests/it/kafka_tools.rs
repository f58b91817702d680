//! Apache Kafka 4.1.2's own command-line tools against Sluice, run through the main classes the
//! kafka-*.sh scripts start (tests/java pins their jars): one test per tool, several invocations
//! each, checking what they print and how they exit.
//!
//! kafka-metadata-quorum and kafka-leader-election need a cluster: see `cluster_tools.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice::client::{Client, ClientConfig, Connection, ConnectionConfig, Producer, ProducerConfig, ProducerRecord};
use sluice::protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsRequestTopic};
use sluice::testing::run_on_shard;

use crate::harness::{Broker, java, output_within, temp_dir};

const TOPICS: &str = "org.apache.kafka.tools.TopicCommand";
const CONFIGS: &str = "kafka.admin.ConfigCommand";
const CONSOLE_PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const CONSUMER_GROUPS: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
const GET_OFFSETS: &str = "org.apache.kafka.tools.GetOffsetShell";
const DELETE_RECORDS: &str = "org.apache.kafka.tools.DeleteRecordsCommand";
const PRODUCER_PERF: &str = "org.apache.kafka.tools.ProducerPerformance";
const CONSUMER_PERF: &str = "org.apache.kafka.tools.ConsumerPerformance";
const TRANSACTIONS: &str = "org.apache.kafka.tools.TransactionsCommand";
const LOG_DIRS: &str = "org.apache.kafka.tools.LogDirsCommand";

/// How long one tool run may take before it is killed and the test fails: a tool waiting on a
/// broker bug (the admin client's 60 s default API timeout, say) must fail, not hang.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// A broker for tools: groups form at once rather than after Kafka's 3 s initial delay.
fn broker() -> Broker {
    Broker::start(&["--group-initial-rebalance-delay-ms", "0"])
}

/// One run of a tool's main class.
struct Run {
    what: String,
    output: Output,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// What it printed, for failure messages.
    fn printed(&self) -> String {
        format!(
            "{}\n--- status {}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts a zero exit; returns stdout.
    #[track_caller]
    fn ok(self) -> String {
        assert!(self.output.status.success(), "expected success: {}", self.printed());
        self.stdout()
    }

    /// Asserts a non-zero exit; returns stdout and stderr together.
    #[track_caller]
    fn fails(self) -> String {
        assert!(!self.output.status.success(), "expected a failure: {}", self.printed());
        self.stdout() + &self.stderr()
    }
}

/// Runs `class` with `args` (after `--bootstrap-server <broker>` where `bootstrap` is set), with
/// `stdin` as its standard input.
fn run_with(class: &str, bootstrap: Option<&Broker>, args: &[&str], stdin: Stdio) -> Run {
    let mut command: Command = java(class);
    if let Some(broker) = bootstrap {
        command.args(["--bootstrap-server", &broker.addr]);
    }
    command.args(args).stdin(stdin);
    let short = class.rsplit('.').next().unwrap_or(class);
    let what = format!("{short} {}", args.join(" "));
    Run { what, output: output_within(command, TOOL_TIMEOUT) }
}

/// Runs a tool that takes `--bootstrap-server`.
fn tool(broker: &Broker, class: &str, args: &[&str]) -> Run {
    run_with(class, Some(broker), args, Stdio::null())
}

/// Runs kafka-console-producer with `lines` on its standard input.
fn console_produce(broker: &Broker, topic: &str, lines: &str, args: &[&str]) {
    let dir = temp_dir();
    let input = dir.path().join("stdin");
    std::fs::write(&input, lines).unwrap();
    let mut all = vec!["--topic", topic];
    all.extend_from_slice(args);
    let stdin = Stdio::from(std::fs::File::open(&input).unwrap());
    run_with(CONSOLE_PRODUCER, Some(broker), &all, stdin).ok();
}

/// kafka-topics --create.
fn create_topic(broker: &Broker, topic: &str, partitions: u32) {
    let partitions = partitions.to_string();
    let created = tool(broker, TOPICS, &["--create", "--topic", topic, "--partitions", &partitions]).ok();
    assert!(created.contains(&format!("Created topic {topic}.")), "{created}");
}

/// kafka-get-offsets for `topic` at `time`: offset by partition.
fn offsets(broker: &Broker, topic: &str, time: &str) -> BTreeMap<i32, i64> {
    let printed = tool(broker, GET_OFFSETS, &["--topic", topic, "--time", time]).ok();
    printed
        .lines()
        .map(|line| {
            let mut fields = line.rsplitn(3, ':');
            let (offset, partition) = (fields.next().unwrap(), fields.next().unwrap());
            assert_eq!(fields.next(), Some(topic), "{printed}");
            (partition.parse().unwrap(), offset.parse().unwrap())
        })
        .collect()
}

/// The lines of `text` that contain `needle`, each split at whitespace.
fn rows<'a>(text: &'a str, needle: &str) -> Vec<Vec<&'a str>> {
    text.lines().filter(|l| l.contains(needle)).map(|l| l.split_whitespace().collect()).collect()
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

#[test]
fn kafka_topics() {
    let broker = broker();
    let topic = "tools-topics";
    let created = tool(
        &broker,
        TOPICS,
        &[
            "--create",
            "--topic",
            topic,
            "--partitions",
            "3",
            "--config",
            "retention.ms=86400000",
            "--config",
            "cleanup.policy=delete",
        ],
    )
    .ok();
    assert!(created.contains(&format!("Created topic {topic}.")), "{created}");
    let again = tool(&broker, TOPICS, &["--create", "--topic", topic, "--partitions", "3"]).fails();
    assert!(again.contains("already exists") && again.contains("TopicExistsException"), "{again}");
    tool(&broker, TOPICS, &["--create", "--topic", topic, "--partitions", "3", "--if-not-exists"]).ok();
    let bad = tool(&broker, TOPICS, &["--create", "--topic", "tools-bad", "--config", "no.such.config=1"]).fails();
    assert!(bad.contains("InvalidConfigurationException"), "{bad}");
    let replicated = tool(&broker, TOPICS, &["--create", "--topic", "tools-bad", "--replication-factor", "3"]).fails();
    assert!(replicated.contains("InvalidReplicationFactorException"), "{replicated}");

    let listed = tool(&broker, TOPICS, &["--list"]).ok();
    assert_eq!(listed.lines().collect::<Vec<_>>(), [topic], "only the topic created: {listed}");

    let described = tool(&broker, TOPICS, &["--describe", "--topic", topic]).ok();
    let summary = described.lines().next().unwrap();
    for field in ["PartitionCount: 3", "ReplicationFactor: 1", "retention.ms=86400000", "cleanup.policy=delete"] {
        assert!(summary.contains(field), "no {field}: {described}");
    }
    let partitions = rows(&described, "Partition: ");
    assert_eq!(partitions.len(), 3, "{described}");
    for (i, row) in partitions.iter().enumerate() {
        let text = row.join(" ");
        assert!(text.contains(&format!("Partition: {i} Leader: 0 Replicas: 0 Isr: 0")), "{described}");
    }

    let altered = tool(&broker, TOPICS, &["--alter", "--topic", topic, "--partitions", "5"]).ok();
    assert!(!altered.contains("Error"), "{altered}");
    let described = tool(&broker, TOPICS, &["--describe", "--topic", topic]).ok();
    assert!(described.contains("PartitionCount: 5") && described.contains("Partition: 4\tLeader: 0"), "{described}");
    let fewer = tool(&broker, TOPICS, &["--alter", "--topic", topic, "--partitions", "2"]).fails();
    assert!(fewer.contains("InvalidPartitionsException"), "{fewer}");
    let healthy = tool(&broker, TOPICS, &["--describe", "--under-replicated-partitions"]).ok();
    assert_eq!(healthy.trim(), "", "a single node has no under-replicated partitions");

    tool(&broker, TOPICS, &["--delete", "--topic", topic]).ok();
    let listed = tool(&broker, TOPICS, &["--list"]).ok();
    assert_eq!(listed.trim(), "", "after --delete");
    let gone = tool(&broker, TOPICS, &["--describe", "--topic", topic]).fails();
    assert!(gone.contains(&format!("Topic '{topic}' does not exist")), "{gone}");
}

#[test]
fn kafka_configs() {
    let broker = broker();
    let topic = "tools-configs";
    tool(&broker, TOPICS, &["--create", "--topic", topic, "--config", "retention.ms=12345"]).ok();
    let describe = ["--describe", "--entity-type", "topics", "--entity-name", topic];
    let dynamic = tool(&broker, CONFIGS, &describe).ok();
    assert!(dynamic.contains(&format!("Dynamic configs for topic {topic} are:")), "{dynamic}");
    let line = "retention.ms=12345 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=12345}";
    assert!(dynamic.contains(line), "{dynamic}");

    let alter = ["--alter", "--entity-type", "topics", "--entity-name", topic];
    let added =
        tool(&broker, CONFIGS, &[&alter[..], &["--add-config", "retention.ms=999,max.message.bytes=2000"]].concat())
            .ok();
    assert!(added.contains(&format!("Completed updating config for topic {topic}.")), "{added}");
    let dynamic = tool(&broker, CONFIGS, &describe).ok();
    assert!(dynamic.contains("retention.ms=999 ") && dynamic.contains("max.message.bytes=2000 "), "{dynamic}");
    tool(&broker, CONFIGS, &[&alter[..], &["--delete-config", "retention.ms"]].concat()).ok();
    let dynamic = tool(&broker, CONFIGS, &describe).ok();
    assert!(!dynamic.contains("retention.ms") && dynamic.contains("max.message.bytes=2000 "), "{dynamic}");

    let all = tool(&broker, CONFIGS, &[&describe[..], &["--all"]].concat()).ok();
    assert!(all.contains(&format!("All configs for topic {topic} are:")), "{all}");
    assert!(all.contains("segment.bytes=1073741824 sensitive=false synonyms={DEFAULT_CONFIG:"), "{all}");
    assert!(all.contains("max.message.bytes=2000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:"), "{all}");
    let unknown = tool(&broker, CONFIGS, &[&alter[..], &["--add-config", "no.such.config=1"]].concat()).fails();
    assert!(unknown.contains("InvalidConfigurationException"), "{unknown}");
    let missing =
        ["--alter", "--entity-type", "topics", "--entity-name", "tools-nope", "--add-config", "retention.ms=1"];
    let missing = tool(&broker, CONFIGS, &missing).fails();
    assert!(missing.contains("UnknownTopicOrPartitionException"), "{missing}");

    let broker_dynamic = tool(&broker, CONFIGS, &["--describe", "--entity-type", "brokers", "--entity-name", "0"]).ok();
    assert!(broker_dynamic.contains("Dynamic configs for broker 0 are:"), "{broker_dynamic}");
    let broker_all =
        tool(&broker, CONFIGS, &["--describe", "--entity-type", "brokers", "--entity-name", "0", "--all"]).ok();
    assert!(broker_all.contains("All configs for broker 0 are:"), "{broker_all}");
    assert!(
        broker_all.contains("broker.id=0 sensitive=false synonyms={STATIC_BROKER_CONFIG:broker.id=0}"),
        "{broker_all}"
    );
    let log_dirs = format!("log.dirs={}", broker.data_dir.display());
    assert!(broker_all.contains(&log_dirs), "no {log_dirs}: {broker_all}");
    // Dynamic broker configs: this broker's and the cluster-wide defaults; not every one.
    let alter_broker =
        ["--alter", "--entity-type", "brokers", "--entity-name", "0", "--add-config", "log.retention.ms=3600000"];
    let altered = tool(&broker, CONFIGS, &alter_broker).ok();
    assert!(altered.contains("Completed updating config for broker 0."), "{altered}");
    let broker_dynamic = tool(&broker, CONFIGS, &["--describe", "--entity-type", "brokers", "--entity-name", "0"]).ok();
    let line = "log.retention.ms=3600000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=3600000";
    assert!(broker_dynamic.contains(line), "{broker_dynamic}");
    let alter_default =
        ["--alter", "--entity-type", "brokers", "--entity-default", "--add-config", "log.cleaner.backoff.ms=1000"];
    tool(&broker, CONFIGS, &alter_default).ok();
    let not_dynamic = ["--alter", "--entity-type", "brokers", "--entity-name", "0", "--add-config", "log.dirs=/x"];
    let refused = tool(&broker, CONFIGS, &not_dynamic).fails();
    assert!(refused.contains("InvalidRequestException: Cannot update these configs dynamically"), "{refused}");
    let defaults = tool(&broker, CONFIGS, &["--describe", "--entity-type", "brokers", "--entity-default"]).ok();
    assert!(defaults.contains("Default configs for brokers in the cluster are:"), "{defaults}");
    let line = "log.cleaner.backoff.ms=1000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:";
    assert!(defaults.contains(line), "{defaults}");
}

#[test]
fn kafka_console_producer_and_consumer() {
    let broker = broker();
    let topic = "tools-console";
    create_topic(&broker, topic, 1);
    let keyed = ["--property", "parse.key=true", "--property", "key.separator=:"];
    console_produce(&broker, topic, "k1:v1\nk2:v2\nk1:v3\n", &keyed);

    let consume = |extra: &[&str]| {
        let args = [&["--topic", topic, "--property", "print.key=true", "--timeout-ms", "30000"][..], extra].concat();
        tool(&broker, CONSOLE_CONSUMER, &args)
    };
    let run = consume(&["--from-beginning", "--max-messages", "3", "--group", "tools-console-group"]);
    let stderr = run.stderr();
    let stdout = run.ok();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["k1\tv1", "k2\tv2", "k1\tv3"]);
    assert!(stderr.contains("Processed a total of 3 messages"), "{stderr}");

    // The group committed its position: the next run of the group reads only what came after.
    console_produce(&broker, topic, "k3:v4\n", &keyed);
    let stdout = consume(&["--max-messages", "1", "--group", "tools-console-group"]).ok();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["k3\tv4"]);

    // No group: a partition read from an offset, with offsets and partitions printed.
    let printed = ["--partition", "0", "--offset", "2", "--max-messages", "2", "--property", "print.offset=true"];
    let stdout = consume(&printed).ok();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["Offset:2\tk1\tv3", "Offset:3\tk3\tv4"]);
    let groups = tool(&broker, CONSUMER_GROUPS, &["--list"]).ok();
    assert_eq!(groups.lines().collect::<Vec<_>>(), ["tools-console-group"], "{groups}");
}

#[test]
fn kafka_consumer_groups() {
    let broker = broker();
    let (topic, group) = ("tools-groups", "tools-group");
    create_topic(&broker, topic, 2);
    let lines: String = (0..20).map(|i| format!("key{i}:value{i}\n")).collect();
    console_produce(&broker, topic, &lines, &["--property", "parse.key=true", "--property", "key.separator=:"]);
    let ends = offsets(&broker, topic, "latest");
    assert_eq!(ends.values().sum::<i64>(), 20, "{ends:?}");
    let consumed =
        ["--topic", topic, "--group", group, "--from-beginning", "--max-messages", "20", "--timeout-ms", "30000"];
    tool(&broker, CONSOLE_CONSUMER, &consumed).ok();

    let listed = tool(&broker, CONSUMER_GROUPS, &["--list"]).ok();
    assert_eq!(listed.lines().collect::<Vec<_>>(), [group], "{listed}");
    let typed = tool(&broker, CONSUMER_GROUPS, &["--list", "--type", "classic", "--state", "empty"]).ok();
    assert_eq!(rows(&typed, group), [[group, "Classic", "Empty"]], "{typed}");
    let consumer_protocol = tool(&broker, CONSUMER_GROUPS, &["--list", "--type", "consumer"]).ok();
    assert!(rows(&consumer_protocol, group).is_empty(), "{consumer_protocol}");
    // (partition, current offset, log end offset, lag) of each row of --describe.
    let describe = || {
        let run = tool(&broker, CONSUMER_GROUPS, &["--describe", "--group", group]);
        let stderr = run.stderr();
        let stdout = run.ok();
        assert!(stderr.contains(&format!("Consumer group '{group}' has no active members.")), "{stderr}");
        let mut rows: Vec<(i32, i64, i64, i64)> = rows(&stdout, topic)
            .into_iter()
            .map(|r| {
                assert_eq!(r[0], group, "{stdout}");
                (r[2].parse().unwrap(), r[3].parse().unwrap(), r[4].parse().unwrap(), r[5].parse().unwrap())
            })
            .collect();
        rows.sort();
        rows
    };
    let (end0, end1) = (ends[&0], ends[&1]);
    assert_eq!(describe(), [(0, end0, end0, 0), (1, end1, end1, 0)], "all consumed, no lag");
    let state = tool(&broker, CONSUMER_GROUPS, &["--describe", "--group", group, "--state"]).ok();
    let expected = [group, broker.addr.as_str(), "(0)", "-", "Empty", "0"];
    assert_eq!(rows(&state, group), [expected], "{state}");

    // NEW-OFFSET by partition, from a --reset-offsets run.
    let reset = |args: &[&str]| {
        let all = [&["--reset-offsets", "--group", group][..], args].concat();
        let stdout = tool(&broker, CONSUMER_GROUPS, &all).ok();
        let mut new: Vec<(i32, i64)> =
            rows(&stdout, topic).iter().map(|r| (r[2].parse().unwrap(), r[3].parse().unwrap())).collect();
        new.sort();
        new
    };
    assert_eq!(reset(&["--topic", topic, "--to-earliest", "--dry-run"]), [(0, 0), (1, 0)]);
    assert_eq!(describe(), [(0, end0, end0, 0), (1, end1, end1, 0)], "a dry run changes nothing");
    assert_eq!(reset(&["--topic", topic, "--to-earliest", "--execute"]), [(0, 0), (1, 0)]);
    assert_eq!(describe(), [(0, 0, end0, end0), (1, 0, end1, end1)], "all lag after --to-earliest");
    let to_offset = format!("{topic}:0");
    assert_eq!(reset(&["--topic", &to_offset, "--to-offset", "2", "--execute"]), [(0, 2)]);
    assert_eq!(reset(&["--topic", topic, "--shift-by", "1", "--execute"]), [(0, 3), (1, 1)]);
    assert_eq!(describe(), [(0, 3, end0, end0 - 3), (1, 1, end1, end1 - 1)]);
    assert_eq!(reset(&["--all-topics", "--to-latest", "--dry-run"]), [(0, end0), (1, end1)]);
}

/// A child process, killed if still running when dropped, so a failing test leaves none behind.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kafka_consumer_groups_with_an_active_member() {
    let broker = broker();
    let (topic, group) = ("tools-members", "tools-members-group");
    create_topic(&broker, topic, 2);
    // A member makes the group active: no reset, no delete.
    let mut member = java(CONSOLE_CONSUMER);
    member.args(["--bootstrap-server", &broker.addr, "--topic", topic, "--group", group]);
    let mut member = Reaped(member.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let members = loop {
        let members = tool(&broker, CONSUMER_GROUPS, &["--describe", "--group", group, "--members"]).ok();
        // A member listed while its group still rebalances has no partitions yet.
        let row = rows(&members, "console-consumer");
        if (row.len() == 1 && row[0].get(4) == Some(&"2")) || Instant::now() > deadline {
            break members;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let member_row = rows(&members, "console-consumer");
    assert_eq!(member_row.len(), 1, "the member did not join: {members}");
    assert_eq!((member_row[0][2], member_row[0][4]), ("/127.0.0.1", "2"), "it has both partitions: {members}");
    let state = tool(&broker, CONSUMER_GROUPS, &["--describe", "--group", group, "--state"]).ok();
    let expected = [group, broker.addr.as_str(), "(0)", "range", "Stable", "1"];
    assert_eq!(rows(&state, group), [expected], "{state}");
    let reset = ["--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute"];
    let busy = tool(&broker, CONSUMER_GROUPS, &reset);
    let busy = busy.stdout() + &busy.stderr();
    assert!(busy.contains("can only be reset if the group") && busy.contains("inactive"), "{busy}");
    let not_empty = tool(&broker, CONSUMER_GROUPS, &["--delete", "--group", group]);
    let not_empty = not_empty.stdout() + &not_empty.stderr();
    assert!(not_empty.contains("GroupNotEmptyException"), "{not_empty}");
    // SIGTERM: the console consumer's shutdown hook closes it, and it leaves the group.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(member.0.id() as i32, libc::SIGTERM) };
    member.0.wait().unwrap();

    let deleted = tool(&broker, CONSUMER_GROUPS, &["--delete", "--group", group]).ok();
    let expected = format!("Deletion of requested consumer groups ('{group}') was successful.");
    assert!(deleted.contains(&expected), "{deleted}");
    let listed = tool(&broker, CONSUMER_GROUPS, &["--list"]).ok();
    assert_eq!(listed.trim(), "", "{listed}");
    let missing = tool(&broker, CONSUMER_GROUPS, &["--delete", "--group", group]);
    let missing = missing.stdout() + &missing.stderr();
    assert!(missing.contains("GroupIdNotFoundException"), "{missing}");
}

#[test]
fn kafka_get_offsets() {
    let broker = broker();
    let topic = "tools-offsets";
    create_topic(&broker, topic, 1);
    console_produce(&broker, topic, "a\nb\nc\n", &[]);
    // Every record of the first run is older than `between`, the second run's record newer.
    std::thread::sleep(Duration::from_millis(20));
    let between = now_ms();
    std::thread::sleep(Duration::from_millis(20));
    console_produce(&broker, topic, "d\n", &[]);

    let at = |time: &str| offsets(&broker, topic, time);
    assert_eq!(at("latest"), BTreeMap::from([(0, 4)]));
    assert_eq!(at("earliest"), BTreeMap::from([(0, 0)]));
    assert_eq!(at("0"), BTreeMap::from([(0, 0)]), "the first record at or after time 0");
    assert_eq!(at(&between.to_string()), BTreeMap::from([(0, 3)]), "the first record at or after {between}");
    assert_eq!(at(&(now_ms() + 3_600_000).to_string()), BTreeMap::new(), "no record that late");
    assert_eq!(at("max-timestamp"), BTreeMap::from([(0, 3)]), "the newest record");
    assert_eq!(at("earliest-local"), BTreeMap::from([(0, 0)]), "the whole log is local");
    assert_eq!(at("latest-tiered"), BTreeMap::new(), "nothing is tiered");

    create_topic(&broker, "tools-offsets-other", 3);
    let all = tool(&broker, GET_OFFSETS, &["--topic-partitions", "tools-offsets.*:0-2"]).ok();
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        ["tools-offsets:0:4", "tools-offsets-other:0:0", "tools-offsets-other:1:0"]
    );
    let some = tool(&broker, GET_OFFSETS, &["--topic", "tools-offsets-other", "--partitions", "1,2"]).ok();
    assert_eq!(some.lines().collect::<Vec<_>>(), ["tools-offsets-other:1:0", "tools-offsets-other:2:0"]);
    let none = tool(&broker, GET_OFFSETS, &["--topic", "tools-nope"]).fails();
    assert!(none.contains("Could not match any topic-partitions"), "{none}");
}

#[test]
fn kafka_delete_records() {
    let broker = broker();
    let topic = "tools-delete";
    create_topic(&broker, topic, 2);
    let lines: String = (0..10).map(|i| format!("k{i}:v{i}\n")).collect();
    console_produce(&broker, topic, &lines, &["--property", "parse.key=true", "--property", "key.separator=:"]);
    let ends = offsets(&broker, topic, "latest");
    let (fuller, end) = ends.iter().map(|(p, o)| (*p, *o)).max_by_key(|(_, o)| *o).unwrap();
    assert!(end >= 5, "{ends:?}");

    let dir = temp_dir();
    let delete = |name: &str, json: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, json).unwrap();
        tool(&broker, DELETE_RECORDS, &["--offset-json-file", file.to_str().unwrap()])
    };
    let json = format!(r#"{{"partitions":[{{"topic":"{topic}","partition":{fuller},"offset":3}}],"version":1}}"#);
    let deleted = delete("three.json", &json).ok();
    assert!(deleted.contains(&format!("partition: {topic}-{fuller}\tlow_watermark: 3")), "{deleted}");
    assert_eq!(offsets(&broker, topic, "earliest")[&fuller], 3);
    let read = ["--topic", topic, "--partition", &fuller.to_string(), "--offset", "earliest", "--timeout-ms", "30000"];
    let remaining =
        tool(&broker, CONSOLE_CONSUMER, &[&read[..], &["--max-messages", &(end - 3).to_string()]].concat()).ok();
    assert_eq!(remaining.lines().count(), usize::try_from(end - 3).unwrap(), "{remaining}");

    // -1: up to the high watermark. Beyond it: OFFSET_OUT_OF_RANGE, reported per partition.
    let json = format!(
        r#"{{"partitions":[{{"topic":"{topic}","partition":{fuller},"offset":-1}},{{"topic":"{topic}","partition":{},"offset":{}}}],"version":1}}"#,
        1 - fuller,
        ends[&(1 - fuller)] + 100
    );
    let mixed = delete("mixed.json", &json).ok();
    assert!(mixed.contains(&format!("partition: {topic}-{fuller}\tlow_watermark: {end}")), "{mixed}");
    assert!(mixed.contains(&format!("partition: {topic}-{}\terror: ", 1 - fuller)), "{mixed}");
    assert!(mixed.contains("OffsetOutOfRangeException"), "{mixed}");
    assert_eq!(offsets(&broker, topic, "earliest"), BTreeMap::from([(fuller, end), (1 - fuller, 0)]));
    assert_eq!(offsets(&broker, topic, "latest"), ends, "deleting moves the log start only");

    let twice = format!(
        r#"{{"partitions":[{{"topic":"{topic}","partition":0,"offset":1}},{{"topic":"{topic}","partition":0,"offset":2}}],"version":1}}"#
    );
    let twice = delete("twice.json", &twice).fails();
    assert!(twice.contains("duplicate"), "{twice}");
}

#[test]
fn kafka_producer_and_consumer_perf_tests() {
    let broker = broker();
    let topic = "tools-perf";
    create_topic(&broker, topic, 2);
    let producer_props = format!("bootstrap.servers={}", broker.addr);
    let perf = ["--topic", topic, "--num-records", "2000", "--record-size", "100", "--throughput", "-1"];
    let sent = run_with(
        PRODUCER_PERF,
        None,
        &[&perf[..], &["--producer-props", &producer_props, "acks=all"]].concat(),
        Stdio::null(),
    );
    let stderr = sent.stderr();
    let sent = sent.ok();
    assert!(sent.lines().last().unwrap_or("").starts_with("2000 records sent, "), "{sent}");
    assert!(!stderr.contains("ERROR") && !(sent.clone() + &stderr).contains("Exception"), "{sent}\n{stderr}");
    assert_eq!(offsets(&broker, topic, "latest").values().sum::<i64>(), 2000);

    let consumed = tool(&broker, CONSUMER_PERF, &["--topic", topic, "--messages", "2000", "--timeout", "60000"]);
    let stderr = consumed.stderr();
    let consumed = consumed.ok();
    assert!(!consumed.contains("WARNING") && !stderr.contains("WARNING"), "{consumed}\n{stderr}");
    let header: Vec<&str> = consumed.lines().next().unwrap().split(", ").collect();
    let values: Vec<&str> = consumed.lines().nth(1).unwrap().split(", ").collect();
    let column = |name: &str| values[header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{consumed}"))];
    assert_eq!(column("data.consumed.in.nMsg"), "2000", "{consumed}");
    let megabytes: f64 = column("data.consumed.in.MB").parse().unwrap();
    assert!((megabytes - 2000.0 * 100.0 / 1024.0 / 1024.0).abs() < 0.001, "{consumed}");
}

/// Opens a transaction of `records` records on partition 0 of `topic` with the native client and
/// leaves it open (for 10 minutes): (producer id, offset of its first record).
fn open_transaction(broker: &Broker, transactional_id: &str, topic: &str, records: usize) -> (i64, i64) {
    let (addr, transactional_id, topic) = (broker.addr.clone(), transactional_id.to_string(), topic.to_string());
    run_on_shard(move || async move {
        let client = Client::connect(ClientConfig::new([addr])).await.unwrap();
        let config = ProducerConfig {
            transactional_id: Some(transactional_id),
            transaction_timeout: Duration::from_secs(600),
            ..Default::default()
        };
        let producer = Producer::new(client, config).unwrap();
        producer.init_transactions().await.unwrap();
        producer.begin_transaction().unwrap();
        let mut first = None;
        for i in 0..records {
            let mut record = ProducerRecord::new(topic.as_str(), None, Some(format!("open-{i}").into_bytes()));
            record.partition = Some(0);
            let delivered = producer.send(record).await.unwrap().await.unwrap();
            first = first.or(delivered.offset);
        }
        (producer.identity().unwrap().producer_id.0, first.unwrap())
    })
}

#[test]
fn kafka_transactions() {
    let broker = broker();
    let topic = "tools-txn";
    create_topic(&broker, topic, 1);
    // A transactional producer that commits: the perf tool with a transactional id.
    let props = format!("bootstrap.servers={}", broker.addr);
    let perf = ["--topic", topic, "--num-records", "100", "--record-size", "10", "--throughput", "-1"];
    let txn =
        ["--transactional-id", "tools-perf-txn", "--transaction-duration-ms", "60000", "--producer-props", &props];
    run_with(PRODUCER_PERF, None, &[&perf[..], &txn[..]].concat(), Stdio::null()).ok();
    let (producer_id, start) = open_transaction(&broker, "tools-open", topic, 3);
    assert_eq!(start, 101, "after 100 records and their commit marker");
    let (id, start_offset) = (producer_id.to_string(), start.to_string());

    let listed = tool(&broker, TRANSACTIONS, &["list"]).ok();
    assert!(listed.starts_with("TransactionalId\tCoordinator\tProducerId\tTransactionState"), "{listed}");
    let mut states: Vec<(&str, &str)> = rows(&listed, "tools-").iter().map(|r| (r[0], r[3])).collect();
    states.sort();
    assert_eq!(states, [("tools-open", "Ongoing"), ("tools-perf-txn", "CompleteCommit")], "{listed}");
    let described = tool(&broker, TRANSACTIONS, &["describe", "--transactional-id", "tools-open"]).ok();
    let row = &rows(&described, "tools-open")[0];
    assert_eq!((row[2], row[4], row[5]), (id.as_str(), "Ongoing", "600000"), "{described}");
    assert_eq!(row.last(), Some(&"tools-txn-0"), "the partition in the transaction: {described}");
    let missing = tool(&broker, TRANSACTIONS, &["describe", "--transactional-id", "tools-nope"]).fails();
    assert!(missing.contains("could not be found"), "{missing}");

    // (producer id, current transaction start offset) of each producer of the partition.
    let producers = || {
        let printed = tool(&broker, TRANSACTIONS, &["describe-producers", "--topic", topic, "--partition", "0"]).ok();
        assert!(printed.starts_with("ProducerId\tProducerEpoch\tLatestCoordinatorEpoch"), "{printed}");
        let mut rows: Vec<(String, String)> = printed
            .lines()
            .skip(1)
            .map(|l| l.split('\t').map(str::trim).collect::<Vec<_>>())
            .map(|r| (r[0].into(), r[5].into()))
            .collect();
        rows.sort();
        rows
    };
    let perf_producer = producers().into_iter().find(|(p, _)| *p != id).expect("the perf producer").0;
    let open = producers();
    assert!(open.contains(&(id.clone(), start_offset.clone())), "the open transaction from {start}: {open:?}");
    assert!(open.contains(&(perf_producer.clone(), "None".into())), "the committed one: {open:?}");

    // The open transaction's coordinator knows its partition: it is not hanging, however old.
    let hanging = ["find-hanging", "--topic", topic, "--max-transaction-timeout", "0"];
    let found = tool(&broker, TRANSACTIONS, &hanging).ok();
    assert_eq!(found.lines().count(), 1, "only the header: {found}");
    let found =
        tool(&broker, TRANSACTIONS, &["find-hanging", "--broker-id", "0", "--max-transaction-timeout", "0"]).ok();
    assert_eq!(found.lines().count(), 1, "only the header: {found}");

    // An operator aborts it at the partition (WriteTxnMarkers from the admin client).
    let abort = ["abort", "--topic", topic, "--partition", "0", "--start-offset", &start_offset];
    tool(&broker, TRANSACTIONS, &abort).ok();
    let after = producers();
    assert!(after.contains(&(id.clone(), "None".into())), "no open transaction after the abort: {after:?}");
    let committed =
        ["--topic", topic, "--from-beginning", "--isolation-level", "read_committed", "--timeout-ms", "30000"];
    let read = tool(&broker, CONSOLE_CONSUMER, &[&committed[..], &["--max-messages", "100"]].concat()).ok();
    assert_eq!(read.lines().count(), 100, "the committed records, up to the last stable offset");
    assert!(!read.contains("open-"), "nothing of the aborted transaction: {read}");
    let none = tool(&broker, TRANSACTIONS, &abort).fails();
    assert!(none.contains(&format!("Could not find any open transactions starting at offset {start}")), "{none}");

    // Its coordinator still holds it open, until forceTerminateTransaction fences the producer
    // (InitProducerId bumps the epoch) and ends it.
    let epoch: i32 = row[3].parse().unwrap();
    let described = tool(&broker, TRANSACTIONS, &["describe", "--transactional-id", "tools-open"]).ok();
    assert_eq!(rows(&described, "tools-open")[0][4], "Ongoing", "{described}");
    tool(&broker, TRANSACTIONS, &["forceTerminateTransaction", "--transactionalId", "tools-open"]).ok();
    let described = tool(&broker, TRANSACTIONS, &["describe", "--transactional-id", "tools-open"]).ok();
    let row = &rows(&described, "tools-open")[0];
    assert!(row[4] == "Empty" && row[3].parse::<i32>().unwrap() > epoch, "{described}");
}

#[test]
fn kafka_log_dirs() {
    let mut broker = broker();
    let topic = "tools-log-dirs";
    create_topic(&broker, topic, 1);
    console_produce(&broker, topic, "a\nb\nc\n", &[]);
    tool(&broker, TOPICS, &["--alter", "--topic", topic, "--partitions", "2"]).ok();
    // While the broker runs, the active segment's file is preallocated; a clean stop cuts it to
    // the bytes written, which Kafka calls the partition's size.
    assert!(broker.stop(), "a clean stop");
    let size = segment_bytes(&broker.data_dir, topic, 0);
    assert!(size > 0);
    broker.restart();

    // (partition, size, offsetLag, isFuture) of the one log dir of the one broker.
    let describe = |args: &[&str]| {
        let printed = tool(&broker, LOG_DIRS, &[&["--describe"][..], args].concat()).ok();
        assert!(printed.contains("Received log directory information from brokers 0"), "{printed}");
        let json: serde_json::Value = serde_json::from_str(printed.lines().last().unwrap()).unwrap();
        assert_eq!(json["version"], 1, "{json}");
        let brokers = json["brokers"].as_array().unwrap();
        assert_eq!((brokers.len(), &brokers[0]["broker"]), (1, &serde_json::json!(0)), "{json}");
        let dirs = brokers[0]["logDirs"].as_array().unwrap();
        assert_eq!(dirs.len(), 1, "{json}");
        assert_eq!(dirs[0]["logDir"].as_str(), Some(broker.data_dir.to_str().unwrap()), "{json}");
        assert!(dirs[0]["error"].is_null(), "{json}");
        let mut partitions: Vec<(String, i64, i64, bool)> = dirs[0]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let name = p["partition"].as_str().unwrap().to_string();
                (name, p["size"].as_i64().unwrap(), p["offsetLag"].as_i64().unwrap(), p["isFuture"].as_bool().unwrap())
            })
            .collect();
        partitions.sort();
        partitions
    };
    let expected = vec![(format!("{topic}-0"), size, 0, false), (format!("{topic}-1"), 0, 0, false)];
    assert_eq!(describe(&["--topic-list", topic]), expected);
    assert_eq!(describe(&[]), expected, "every partition of the broker");
    assert_eq!(describe(&["--topic-list", "tools-nope"]), [], "no such topic");
    let unknown = tool(&broker, LOG_DIRS, &["--describe", "--broker-list", "0,5"]).fails();
    assert!(unknown.contains("The given brokers do not exist from --broker-list: 5"), "{unknown}");

    // The tool shows neither the volume's space (v4) nor what the broker leaves out: ask directly.
    let (addr, name) = (broker.addr.clone(), topic.to_string());
    let answers = run_on_shard(move || async move {
        let connection = Connection::connect(&addr, ConnectionConfig::default()).await.unwrap();
        let request = DescribeLogDirsRequest {
            topics: Some(vec![
                DescribeLogDirsRequestTopic { topic: name, partitions: vec![1, 0, 7] },
                DescribeLogDirsRequestTopic { topic: "tools-nope".into(), partitions: vec![0] },
            ]),
        };
        let mut answers = Vec::new();
        for version in 1..=4 {
            answers.push(connection.send_at(&request, version).await.unwrap());
        }
        answers
    });
    let space = volume(&broker.data_dir);
    for (answer, version) in answers.iter().zip(1..) {
        assert_eq!((answer.error_code, answer.results.len()), (0, 1), "v{version}: {answer:?}");
        let dir = &answer.results[0];
        assert_eq!(dir.error_code, 0);
        assert_eq!(dir.topics.len(), 1, "only the topic that exists, v{version}: {answer:?}");
        let sizes: Vec<(i32, i64)> =
            dir.topics[0].partitions.iter().map(|p| (p.partition_index, p.partition_size)).collect();
        assert_eq!(sizes, [(0, size), (1, 0)], "only the partitions that exist, v{version}");
        if version < 4 {
            assert_eq!((dir.total_bytes, dir.usable_bytes), (-1, -1), "v{version}");
        } else {
            assert_eq!(dir.total_bytes, space.0, "the volume's size");
            assert!(dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes, "{dir:?}");
        }
    }
}

/// The bytes of the .log files of `topic`'s `partition` under `data_dir`.
fn segment_bytes(data_dir: &Path, topic: &str, partition: i32) -> i64 {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let logs = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"));
    logs.map(|p| i64::try_from(std::fs::metadata(p).unwrap().len()).unwrap()).sum()
}

/// (total, available) bytes of the filesystem holding `path`, from statvfs(3).
fn volume(path: &Path) -> (i64, i64) {
    let path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: all-zero bytes are a valid statvfs, which the call fills in; `path` is NUL-terminated.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut stats) }, 0);
    let fragment = i64::try_from(stats.f_frsize).unwrap();
    (i64::try_from(stats.f_blocks).unwrap() * fragment, i64::try_from(stats.f_bavail).unwrap() * fragment)
}
