//! The log cleaner (Kafka's compaction): one clean of one partition log at a time, called by
//! the shard's scheduler (in `broker/`) for the partitions whose `cleanup.policy` has
//! `compact`. See `clean.rs` for what a clean does and `files.rs` for why a crash at any point
//! leaves the old segments or the new ones, never a mix.
//!
//! What a scheduler holds per shard: one [`DedupeMap`] (bounded by
//! `--log-cleaner-dedupe-buffer-bytes`) and one [`IoBudget`] (`--log-cleaner-io-mb-per-sec`),
//! lent to each clean in turn. Per log it asks [`PartitionLog::cleanable`](super::PartitionLog)
//! and calls [`PartitionLog::clean`](super::PartitionLog).

mod clean;
mod dedupe_map;
pub(crate) mod files;
mod io_budget;
mod report;
mod txn;

pub use dedupe_map::DedupeMap;
pub use io_budget::IoBudget;
pub use report::{CleanReport, Cleanable};
