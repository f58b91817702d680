//! The native Rust client: connections, metadata, admin, producer and consumer, over the Kafka
//! wire protocol only (`protocol` and `model`, never broker internals; DESIGN.md's module table).
//!
//! Every client object lives on one glommio executor and is `!Send`: state is shared through
//! `Rc`/`RefCell`/`Cell`, never across shards. A shard that wants to talk to the cluster builds
//! its own [`Client`].
//!
//! What is where:
//!
//! - [`error`]: [`ClientError`], the one error type of this module.
//! - [`connection`]: one TCP connection to one broker: the ApiVersions handshake, pipelined
//!   requests matched to responses in order, a timeout per request.
//! - [`metadata`]: [`Client`], the bootstrap list, a connection per broker and the cached
//!   topic → partition → leader map, refreshed by Metadata requests.
//! - [`admin`]: create, delete and describe topics, add partitions, describe and alter topic
//!   configs; list offsets.
//! - [`group_admin`]: list, describe, delete consumer groups; their committed offsets and lag;
//!   offset resets.
//! - [`coordinator`]: finding the coordinator of a group or a transactional id.
//! - [`txn_admin`]: list and describe transactions, abort them, describe a partition's
//!   producers.
//! - [`partitioner`]: the Java client's murmur2 key partitioner.
//! - [`producer`]: batching, compression, acks, retries, delivery futures; idempotence, whose
//!   sequence-number bookkeeping is [`sequencing`].
//! - [`consumer`]: assigned partitions, seeks, pipelined long-poll fetches, record decoding
//!   (compressed batches too).
//! - [`group`]: a consumer that is a member of a consumer group: join, sync, heartbeats,
//!   rebalances, commits; [`assignor`] (range, roundrobin, cooperative-sticky) and
//!   [`consumer_protocol`] (the subscription and assignment bytes members exchange).

pub mod admin;
pub mod assignor;
pub mod connection;
pub mod consumer;
pub mod consumer_protocol;
pub mod coordinator;
pub mod error;
pub mod group;
pub mod group_admin;
pub mod metadata;
pub mod partitioner;
pub mod producer;
pub mod sequencing;
pub mod txn_admin;
mod txn_requests;

pub use admin::{
    Admin, AlterConfigOp, BrokerInfo, ClusterInfo, ConfigEntry, ConfigSource, NewTopic, OffsetSpec, PartitionLogInfo,
    QuorumInfo, QuorumReplica,
};
pub use assignor::Assignor;
pub use connection::{Connection, ConnectionConfig};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, SeekTo};
pub use error::ClientError;
pub use group::{GroupConfig, GroupConsumer, RebalanceListener, Subscribe};
pub use metadata::{Client, ClientConfig, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use producer::{Acks, Delivery, Producer, ProducerConfig, ProducerIdentity, ProducerRecord, RecordMetadata};
