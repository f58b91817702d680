//! Apache Kafka's Java AdminClient (tests/java) against Sluice: each test runs one scenario of
//! sluice.it.AdminScenarios.

use crate::harness::{Broker, java_scenario};

/// No auto-creation (the default): the scenarios create their topics, and a missing topic must
/// stay missing. No initial rebalance delay for the group scenario.
const BROKER_FLAGS: &[&str] = &["--group-initial-rebalance-delay-ms", "0"];

fn run(scenario: &str) {
    let broker = Broker::start(BROKER_FLAGS);
    java_scenario(&broker, "AdminScenarios", scenario, &[]);
}

/// createTopics (configs, defaults, validate-only, errors), listTopics, describeTopics (by name
/// and id), createPartitions, deleteTopics (by name and id).
#[test]
fn topics() {
    run("topics");
}

/// describeConfigs (topic, broker) and incrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT,
/// errors).
#[test]
fn configs() {
    run("configs");
}

/// describeCluster: nodes, controller, cluster id.
#[test]
fn cluster() {
    run("cluster");
}

/// listGroups (filters), describeConsumerGroups, list / alter / delete group offsets,
/// deleteConsumerGroups, and the errors of a group with members.
#[test]
fn groups() {
    run("groups");
}

/// listOffsets: earliest, latest, by timestamp, max timestamp, read_committed.
#[test]
fn list_offsets() {
    run("list_offsets");
}

/// deleteRecords, then the earliest offset and consumers from the beginning.
#[test]
fn delete_records() {
    run("delete_records");
}

/// listTransactions, describeTransactions, describeProducers, abortTransaction, fenceProducers.
#[test]
fn transactions() {
    run("transactions");
}
