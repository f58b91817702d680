//! The integration tests: one binary that drives the real `sluice` executable (and, from the
//! broker on, real Kafka clients). Modules are named after what they cover.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bench;
mod broker_crash;
mod broker_lifecycle;
mod chaos;
mod cli;
mod client;
mod cluster;
mod cluster_cli;
mod cluster_tools;
mod cluster_txn;
mod compaction;
mod group;
mod group_client;
mod harness;
mod idempotence;
mod idempotent_producer;
mod java_admin;
mod java_client;
mod java_connect;
mod java_streams;
mod kafka_client_compat;
mod kafka_tools;
mod limits;
mod long_poll;
mod malformed_frames;
mod metrics;
mod partitions;
mod raw;
mod read_committed;
mod replication;
mod storage_crash;
mod tidy;
mod transactions;
mod txn_client;
