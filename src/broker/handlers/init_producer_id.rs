//! InitProducerId: an idempotent producer (no transactional id) gets a fresh producer id at
//! epoch 0 from this shard's block, whatever id and epoch it sends (Kafka's rule: a KIP-360
//! epoch bump of an idempotent producer is served by a new id). A transactional producer is
//! served by its transaction coordinator, which bumps the epoch, fencing older producers with
//! the same id and aborting their open transaction.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::model::ProducerId;
use crate::protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};
use crate::txn::TxnOp;

/// InitProducerId.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: InitProducerIdRequest) -> Reply {
    let result = match request.transactional_id.as_deref() {
        None => broker.metadata.next_producer_id().await.map(|id| (id, 0)).map_err(|e| {
            tracing::warn!(error = %e, "could not allocate a producer id");
            ErrorCode::CoordinatorNotAvailable
        }),
        Some("") => Err(ErrorCode::InvalidRequest),
        Some(id) => {
            let expected = (request.producer_id >= 0 && request.producer_epoch >= 0)
                .then_some((ProducerId(request.producer_id), request.producer_epoch));
            let op = TxnOp::InitProducerId { timeout_ms: request.transaction_timeout_ms, expected };
            broker.transactions.route(id, op).await
        }
    };
    let response = match result {
        Ok((id, epoch)) => InitProducerIdResponse { producer_id: id.0, producer_epoch: epoch, ..Default::default() },
        Err(error) => InitProducerIdResponse {
            error_code: fenced_for(header.api_version, 4, error).code(),
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        },
    };
    respond(header, &response)
}

/// PRODUCER_FENCED for request versions that know it (from `since`), else
/// INVALID_PRODUCER_EPOCH, as Kafka answers older clients (KIP-588).
pub(crate) fn fenced_for(version: i16, since: i16, error: ErrorCode) -> ErrorCode {
    if error == ErrorCode::ProducerFenced && version < since { ErrorCode::InvalidProducerEpoch } else { error }
}
