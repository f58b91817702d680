//! The broker: the metadata image and topic administration, the partitions each shard owns, and
//! (in `handlers/`) one handler per Kafka API.

pub mod config;
pub mod controller;
pub mod errors;
pub mod fetch_session;
pub mod groups;
pub mod handlers;
pub mod metadata;
pub mod partition;
pub mod shard;
pub mod topic_config;

pub use config::BrokerConfig;
pub use shard::{ShardBroker, ShardRequest, ShardResponse};
