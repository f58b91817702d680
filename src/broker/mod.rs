//! The broker: Kafka's APIs over the shard's layers. From the top:
//! - [`dispatch`]: the server's `Dispatch` trait, implemented — header, handler table, handler;
//! - [`handlers`]: one handler per Kafka API, and the handler table;
//! - [`shard`]: [`ShardBroker`], which composes the layers below on one shard and carries their
//!   messages over the mesh;
//! - [`stats`]: what a metrics scrape asks of every shard;
//! - [`metadata`] (the image, topic administration) and [`groups`] (the group coordinator);
//! - [`partition`]: the partitions a shard owns, each the only door to its log;
//! - [`fetch_session`], [`config`], [`errors`], [`topic_config`], [`inter_broker`] (requests to
//!   other brokers): leaves.
//!
//! A file uses only files below it; `tests/it/tidy.rs` checks the order.

pub mod config;
pub mod dispatch;
pub mod errors;
pub mod fetch_session;
pub mod groups;
pub mod handlers;
pub mod inter_broker;
pub mod metadata;
pub mod partition;
pub mod replication;
pub mod shard;
pub mod stats;
pub mod topic_config;
pub mod transactions;

pub use config::{BrokerConfig, CleanerConfig, ReplicationConfig, TxnConfig};
pub use shard::{BrokerMesh, ShardBroker, broker_meshes};
