//! Log compaction as Kafka's clients see it (tests/clients/compat.py scenarios): a compacted
//! topic cleaned down to the latest record per key and read from offset 0 by librdkafka,
//! kafka-python and kcat, tombstones kept for delete.retention.ms, `compact,delete`, and keyless
//! records refused.

use crate::harness::{Broker, compat_scenario};

/// A broker whose cleaner looks for work every 100 ms rather than Kafka's 15 s.
fn broker() -> Broker {
    Broker::start(&["--log-cleaner-backoff-ms", "100"])
}

#[test]
fn a_compacted_topic_keeps_the_latest_record_per_key_for_every_client() {
    compat_scenario(&broker(), "compaction", &[]);
}

#[test]
fn compact_delete_honours_both() {
    compat_scenario(&broker(), "compaction_and_deletion", &[]);
}

#[test]
fn a_compacted_topic_refuses_records_without_a_key() {
    compat_scenario(&broker(), "compaction_refuses_keyless", &[]);
}
