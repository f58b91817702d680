//! Apache Kafka's Java client (tests/java, pinned by its pom.xml) against Sluice, with its
//! default settings: each test runs one scenario of sluice.it.ClientScenarios.

use crate::harness::{Broker, java_scenario};

/// Auto-creation for the producer scenario, which writes to a topic nobody created; no initial
/// rebalance delay, so a group's first member does not wait 3 s for others.
const BROKER_FLAGS: &[&str] = &["--auto-create-topics", "--group-initial-rebalance-delay-ms", "0"];

fn run(scenario: &str) {
    let broker = Broker::start(BROKER_FLAGS);
    java_scenario(&broker, "ClientScenarios", scenario, &[]);
}

/// The default producer (idempotent, acks=all) to an auto-created topic; a group reads it all.
#[test]
fn producer_defaults() {
    run("producer_defaults");
}

/// Two classic members split four partitions, then one leaves; every record is read once.
#[test]
fn group_rebalance() {
    run("group_rebalance");
}

/// commitSync, commitAsync and committed(); a new member resumes after the committed offsets.
#[test]
fn group_commits() {
    run("group_commits");
}

/// assign() without a group.
#[test]
fn manual_assign() {
    run("manual_assign");
}

/// seek, seekToBeginning, seekToEnd, beginningOffsets and endOffsets.
#[test]
fn seek() {
    run("seek");
}

/// offsetsForTimes against timestamps the producer set.
#[test]
fn offsets_for_times() {
    run("offsets_for_times");
}

/// pause and resume.
#[test]
fn pause_resume() {
    run("pause_resume");
}

/// A committed and an aborted transaction (records and group offsets), read read_committed and
/// read_uncommitted.
#[test]
fn transactions() {
    run("transactions");
}

/// group.protocol=consumer (KIP-848) is not served: the consumer fails at once with Kafka's
/// UnsupportedVersionException telling the user to set group.protocol=classic.
#[test]
fn consumer_protocol_is_refused_clearly() {
    run("consumer_protocol");
}

/// gzip, snappy, lz4 and zstd batches with null keys, null values and headers.
#[test]
fn compression() {
    run("compression");
}

/// The cooperative-sticky assignor: incremental rebalances as a member joins and leaves.
#[test]
fn group_cooperative() {
    run("group_cooperative");
}

/// Static membership: a static member's restart causes no rebalance; the admin removes one.
#[test]
fn group_static() {
    run("group_static");
}

/// Records near 1 MiB, consumers with tiny fetch limits (KIP-74), RecordTooLargeException.
#[test]
fn large_records() {
    run("large_records");
}

/// The exactly-once loop: offsets committed with a live member's group metadata (KIP-447).
#[test]
fn consume_transform_produce() {
    run("consume_transform_produce");
}
