//! The transaction coordinators: one per shard, for the transactional ids whose
//! `__transaction_state` partition the shard owns ([`coordinator`]), reached through
//! [`TxnRequest`]s ([`messages`]). The rules are in `crate::txn`; this layer persists, writes
//! markers through the partitions and the group coordinators, and keeps time.

mod coordinator;
mod messages;

pub use coordinator::{TxnCoordinator, TxnPeers};
pub use messages::{TxnRequest, TxnResponse};
