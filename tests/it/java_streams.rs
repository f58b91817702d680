//! Apache Kafka Streams (tests/java, pinned by its pom.xml) against Sluice: each test runs one
//! scenario of sluice.it.StreamsScenarios under one processing guarantee. Streams creates its own
//! repartition and changelog topics (CreateTopics with configs, DescribeConfigs), runs a classic
//! group with its own assignor, purges repartition topics (DeleteRecords), restores stores from
//! changelogs (ListOffsets, read_committed fetches) and, under exactly_once_v2, writes in
//! transactions that commit the consumed offsets with the group's generation (TxnOffsetCommit).

use crate::harness::{Broker, java_scenario};

const AT_LEAST_ONCE: &str = "at_least_once";
const EXACTLY_ONCE: &str = "exactly_once_v2";

/// A group's first rebalance need not wait for more members: each app runs one instance. The
/// transaction of a killed app that nobody restarts with its transactional id is aborted within
/// a second of its timeout (Streams sets 10 s) rather than ten.
const BROKER_FLAGS: [&str; 4] =
    ["--group-initial-rebalance-delay-ms", "0", "--transaction-abort-check-interval-ms", "1000"];

fn run(scenario: &str, args: &[&str]) {
    let broker = Broker::start(&BROKER_FLAGS);
    java_scenario(&broker, "StreamsScenarios", scenario, args);
}

/// Word count: a repartition topic, a compacted changelog; exact counts.
#[test]
fn word_count_at_least_once() {
    run("word_count", &[AT_LEAST_ONCE]);
}

#[test]
fn word_count_exactly_once() {
    run("word_count", &[EXACTLY_ONCE]);
}

/// A stream-table join, regrouped, summed in tumbling windows: exact sums per region and window.
#[test]
fn region_totals_at_least_once() {
    run("region_totals", &[AT_LEAST_ONCE]);
}

#[test]
fn region_totals_exactly_once() {
    run("region_totals", &[EXACTLY_ONCE]);
}

/// A second instance joins (tasks move to it in Streams' follow-up rebalance, their offsets and
/// state committed first), then the first leaves: exact counts across both moves.
#[test]
fn word_count_scaled_out_and_in_exactly_once() {
    run("word_count_scaled", &[EXACTLY_ONCE]);
}

/// The app SIGKILLed mid-run and restarted on its state dir: no word lost, some maybe twice.
#[test]
fn word_count_killed_at_least_once() {
    run("word_count_killed", &[AT_LEAST_ONCE, "same_state"]);
}

/// Killed inside a transaction; the restarted producer's InitProducerId aborts it: exact counts.
#[test]
fn word_count_killed_exactly_once() {
    run("word_count_killed", &[EXACTLY_ONCE, "same_state"]);
}

/// Killed inside a transaction and restarted without its state dir (a new transactional id):
/// the broker aborts the transaction at its timeout, the store is restored from the changelog,
/// and the counts are still exact.
#[test]
fn word_count_killed_state_lost_exactly_once() {
    run("word_count_killed", &[EXACTLY_ONCE, "state_lost"]);
}
