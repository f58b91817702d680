//! The partitions a shard owns. [`Partition`] holds all of one partition's state and is the only
//! door to its log: appends go in through [`Partition::append`] (validation, offset assignment,
//! and the place where producer-state checks and replication will sit), reads come out through
//! [`Partition::fetch`] and [`Partition::read`], bounded by the high watermark, or for
//! read_committed fetches by the last stable offset. [`ShardPartitions`] is the shard's set of
//! them; [`PartitionRequest`] is what other shards ask of it.
//!
//! Cores: a `Partition` lives only on the shard that owns it (`Rc`); handlers on other shards
//! reach it through a [`PartitionRequest`] over the mesh.
//!
//! Where the cluster goes: replication adds a follower [`Role`], the ISR and the followers' log
//! end offsets here, and moves the high watermark with [`HighWatermark::SetByReplication`];
//! [`Appended::acknowledged`] with [`Acks::All`] then waits for the ISR instead of the local
//! flush. Idempotent producers add their sequence checks at the top of `append`.

mod cleaning;
mod leadership;
mod messages;
mod registry;
mod replica;
mod serve;
#[cfg(test)]
mod tests;

pub use crate::storage::HighWatermark;
pub use leadership::{LeaderState, Leadership, NodeId, Role};
pub use messages::{
    FetchOrder, FetchWait, FetchWork, PartitionRequest, PartitionResponse, PartitionResults, ProduceOutcome, Progress,
};
pub use registry::{PartitionPeers, ShardPartitions};
pub(crate) use replica::IsrProposal;
pub use replica::{
    Acks, Appended, DeleteTo, Fetched, IsolationLevel, LeaderHealth, LogDirDescription, OffsetSpec, Partition,
    PartitionError, ProducerDescription,
};
