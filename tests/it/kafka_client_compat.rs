//! Real Kafka clients against the real broker: confluent-kafka (librdkafka), kafka-python and
//! Debian's kcat, through the scenarios in tests/clients/compat.py (one test per scenario, each
//! on its own broker). The clients are current releases used with their defaults, so
//! kafka-python 3.x produces idempotently; tests/it/idempotence.rs covers idempotence itself.

use crate::harness::{Broker, compat_scenario, free_port};

fn run_scenario(scenario: &str, broker_flags: &[&str]) {
    compat_scenario(&Broker::start(broker_flags), scenario, &[]);
}

#[test]
fn confluent_round_trip_is_byte_exact() {
    run_scenario("roundtrip_confluent", &["--cores", "1"]);
}

#[test]
fn records_cross_between_clients() {
    run_scenario("cross_client", &["--cores", "2"]);
}

#[test]
fn kcat_produces_and_consumes() {
    run_scenario("kcat", &["--cores", "1"]);
}

#[test]
fn every_compression_codec_round_trips() {
    run_scenario("compression", &["--cores", "1"]);
}

#[test]
fn hundred_thousand_keyed_records_keep_per_partition_order() {
    run_scenario("order_100k", &["--cores", "2"]);
}

/// kafka-python's and librdkafka's connections move to the core that leads the partition they
/// write (and their consumers' to the one they read), with nothing lost, doubled or reordered
/// (`server::placement`); the broker's metrics count the moves.
#[test]
fn connections_move_to_their_partitions_core_without_losing_order() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let broker = Broker::start(&["--cores", "2", "--metrics-listen", &metrics]);
    compat_scenario(&broker, "connection_moves", &[]);
    let (_, text) = crate::metrics::scrape(&metrics, "text/plain");
    let moved: f64 = text
        .lines()
        .filter(|l| l.starts_with("sluice_connections_moved_in_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    // Two producers, each writing the partitions of both cores in turn, 30 requests or more at a
    // time: each starts on the core of one and moves at least once, for the other.
    assert!(moved >= 2.0, "{moved} connections moved:\n{text}");
}

#[test]
fn acks_zero_one_and_all() {
    run_scenario("acks", &["--cores", "1"]);
}

#[test]
fn list_offsets_by_time_and_watermarks() {
    run_scenario("list_offsets", &["--cores", "1", "--segment-bytes", "8192"]);
}

#[test]
fn replay_from_any_offset() {
    run_scenario("replay", &["--cores", "1", "--segment-bytes", "8192", "--batch-cache-bytes", "0"]);
}

#[test]
fn topic_admin_errors() {
    run_scenario("topic_admin_errors", &["--cores", "2"]);
}

#[test]
fn topic_configs_and_log_append_time() {
    run_scenario("configs", &["--cores", "1"]);
}

#[test]
fn incremental_alter_configs_sets_and_deletes() {
    run_scenario("incremental_alter_configs", &["--cores", "1"]);
}

#[test]
fn alter_configs_replaces_topic_and_broker_configs() {
    run_scenario("alter_configs", &["--cores", "1"]);
}

#[test]
fn dynamic_broker_configs_survive_a_restart() {
    let mut broker = Broker::start(&["--cores", "1"]);
    compat_scenario(&broker, "broker_config", &["dyn", "set"]);
    broker.restart();
    compat_scenario(&broker, "broker_config", &["dyn", "check"]);
}

#[test]
fn produce_to_an_unknown_topic_fails() {
    run_scenario("unknown_topic_produce", &["--cores", "1"]);
}

#[test]
fn large_batches_and_message_too_large() {
    run_scenario("large_batches", &["--cores", "2"]);
}

#[test]
fn a_long_poll_fetch_wakes_on_append() {
    run_scenario("long_poll", &["--cores", "2"]);
}
