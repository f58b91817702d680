//! The transaction coordinator's logic, without I/O: each transactional id's metadata and the
//! transitions Kafka's coordinator makes ([`state`]), the records it keeps in
//! `__transaction_state` ([`records`]), and which partition of that topic (hence which shard)
//! coordinates an id ([`partition_for`]).
//!
//! The broker (`broker/transactions/`) owns the ids of the partitions its shard owns, persists
//! what the transitions decide, writes the markers, and answers the requests.

pub mod records;
pub mod state;

pub use records::{TxnKey, TxnValue};
pub use state::{TxnMetadata, TxnOp, TxnState};

/// The internal topic that holds transaction metadata.
pub const TRANSACTION_TOPIC: &str = "__transaction_state";

/// The partition of `__transaction_state` that holds `transactional_id`: Kafka's
/// `Utils.abs(transactionalId.hashCode) % transactionTopicPartitionCount`.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::model::partition_for_key(transactional_id, partitions)
}
