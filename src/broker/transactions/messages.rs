//! [`TxnRequest`]: what a handler on any shard asks of the shard that coordinates a
//! transactional id (the owner of its `__transaction_state` partition).

use crate::model::ProducerId;
use crate::protocol::ErrorCode;
use crate::txn::{TxnMetadata, TxnOp};

/// A request for a transaction coordinator.
#[derive(Debug)]
pub enum TxnRequest {
    /// An operation on one transactional id.
    ForId {
        /// The id.
        transactional_id: String,
        /// Its partition of `__transaction_state`, which decides the coordinating shard.
        partition: i32,
        /// What to do.
        op: TxnOp,
    },
    /// DescribeTransactions of one id.
    Describe {
        /// The id.
        transactional_id: String,
        /// Its partition of `__transaction_state`.
        partition: i32,
    },
    /// ListTransactions: every id this shard coordinates.
    List,
}

/// The answer to a [`TxnRequest`].
#[derive(Debug)]
pub enum TxnResponse {
    /// The outcome of an op: the producer id and epoch the producer should use from now on
    /// (InitProducerId, EndTxn) or its current ones.
    Done(Result<(ProducerId, i16), ErrorCode>),
    /// DescribeTransactions.
    Described(Result<TxnMetadata, ErrorCode>),
    /// ListTransactions.
    List(Vec<TxnMetadata>),
}
