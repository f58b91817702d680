//! The cluster's control plane: the metadata log and the image it builds, replicated by a Raft
//! quorum of controller nodes, and the transport nodes use to talk to each other.
//!
//! - [`image`]: brokers, topics, partitions (replicas, ISR, leader, epochs), producer ids.
//! - [`records`]: the log's records, how they apply to an image, and the diff that makes them.
//! - [`quorum`]: tikv's `RawNode`, driven without I/O of its own; its log, hard state and
//!   snapshot on disk ([`raft_log`]), fdatasync'd before a vote or an append is acknowledged.
//! - [`transport`]: framed node-to-node connections (Raft messages and request/response calls).
//!
//! The broker above feeds committed records into its metadata image and installs each new image
//! on every shard; this module knows nothing of Kafka's APIs.

pub mod brokers;
pub mod image;
pub mod node;
pub mod quorum;
pub mod raft_log;
pub mod records;
pub mod rpc;
pub mod transport;
