//! EndTxn: commits or aborts the producer's transaction. Answered once every partition of the
//! transaction has its marker and the coordinator has recorded the end, so the producer's next
//! transaction never waits on this one. From v5 (KIP-890 part 2) the markers carry a bumped
//! epoch, which the answer gives the producer.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::handlers::init_producer_id::fenced_for;
use crate::model::ProducerId;
use crate::protocol::messages::{EndTxnRequest, EndTxnResponse};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};
use crate::txn::TxnOp;

/// The first EndTxn version that answers PRODUCER_FENCED.
const FENCED_SINCE: i16 = 2;
/// The first EndTxn version with the per-transaction epoch bump.
const BUMP_SINCE: i16 = 5;

/// EndTxn.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: EndTxnRequest) -> Reply {
    let result = if request.transactional_id.is_empty() {
        Err(ErrorCode::InvalidRequest)
    } else {
        let op = TxnOp::EndTxn {
            producer_id: ProducerId(request.producer_id),
            producer_epoch: request.producer_epoch,
            commit: request.committed,
            bump_epoch: header.api_version >= BUMP_SINCE,
        };
        broker.transactions.route(&request.transactional_id, op).await
    };
    let response = match result {
        Ok((id, epoch)) => EndTxnResponse { producer_id: id.0, producer_epoch: epoch, ..Default::default() },
        Err(e) => EndTxnResponse {
            error_code: fenced_for(header.api_version, FENCED_SINCE, e).code(),
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        },
    };
    respond(header, &response)
}
