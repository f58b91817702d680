//! AddOffsetsToTxn: adds the group's `__consumer_offsets` partition to the producer's
//! transaction, so the offsets it then commits with TxnOffsetCommit end with the transaction.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::handlers::init_producer_id::fenced_for;
use crate::group::OFFSETS_TOPIC;
use crate::model::ProducerId;
use crate::protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};
use crate::txn::TxnOp;

/// The first AddOffsetsToTxn version that answers PRODUCER_FENCED.
const FENCED_SINCE: i16 = 2;

/// AddOffsetsToTxn.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: AddOffsetsToTxnRequest) -> Reply {
    let error = if request.group_id.is_empty() || request.transactional_id.is_empty() {
        ErrorCode::InvalidRequest
    } else {
        match broker.groups.ensure_offsets_topic().await {
            Err(e) => e,
            Ok(partitions) => {
                let partition = crate::group::partition_for(&request.group_id, partitions);
                let op = TxnOp::AddPartitions {
                    producer_id: ProducerId(request.producer_id),
                    producer_epoch: request.producer_epoch,
                    partitions: vec![(OFFSETS_TOPIC.to_string(), partition)],
                };
                match broker.transactions.route(&request.transactional_id, op).await {
                    Ok(_) => ErrorCode::None,
                    Err(e) => fenced_for(header.api_version, FENCED_SINCE, e),
                }
            }
        }
    };
    respond(header, &AddOffsetsToTxnResponse { error_code: error.code(), ..Default::default() })
}
