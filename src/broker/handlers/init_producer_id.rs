//! InitProducerId: an idempotent producer (no transactional id) gets a fresh producer id at
//! epoch 0 from this shard's block, whatever id and epoch it sends (Kafka's rule: a KIP-360
//! epoch bump of an idempotent producer is served by a new id). A transactional producer is
//! served by its transaction coordinator.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// InitProducerId.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: InitProducerIdRequest) -> Reply {
    let response = match request.transactional_id.as_deref() {
        None => match broker.metadata.next_producer_id().await {
            Ok(id) => InitProducerIdResponse { producer_id: id.0, producer_epoch: 0, ..Default::default() },
            Err(e) => {
                tracing::warn!(error = %e, "could not allocate a producer id");
                failed(ErrorCode::CoordinatorNotAvailable)
            }
        },
        Some(_) => failed(ErrorCode::CoordinatorNotAvailable),
    };
    respond(header, &response)
}

fn failed(error: ErrorCode) -> InitProducerIdResponse {
    InitProducerIdResponse { error_code: error.code(), producer_id: -1, producer_epoch: -1, ..Default::default() }
}
