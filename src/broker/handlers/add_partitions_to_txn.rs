//! AddPartitionsToTxn: a producer adds partitions to its open transaction (v0-3), or a broker
//! asks whether partitions are in transactions already (v4+, `verify_only`, KIP-890). Partitions
//! the broker does not have get UNKNOWN_TOPIC_OR_PARTITION and the rest OPERATION_NOT_ATTEMPTED,
//! as in Kafka; otherwise every partition gets the coordinator's answer.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::handlers::init_producer_id::fenced_for;
use crate::model::ProducerId;
use crate::protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnRequestTopic, AddPartitionsToTxnResponse,
    AddPartitionsToTxnResponsePartition, AddPartitionsToTxnResponseTopic, AddPartitionsToTxnResponseTransaction,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};
use crate::txn::TxnOp;

/// The first AddPartitionsToTxn version that answers PRODUCER_FENCED.
const FENCED_SINCE: i16 = 2;

/// AddPartitionsToTxn.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: AddPartitionsToTxnRequest) -> Reply {
    let version = header.api_version;
    if version <= 3 {
        let topics = add(
            broker,
            version,
            &request.v3_and_below_transactional_id,
            ProducerId(request.v3_and_below_producer_id),
            request.v3_and_below_producer_epoch,
            false,
            &request.v3_and_below_topics,
        )
        .await;
        return respond(
            header,
            &AddPartitionsToTxnResponse { results_by_topic_v3_and_below: topics, ..Default::default() },
        );
    }
    let mut results = Vec::with_capacity(request.transactions.len());
    for txn in &request.transactions {
        let topic_results = add(
            broker,
            version,
            &txn.transactional_id,
            ProducerId(txn.producer_id),
            txn.producer_epoch,
            txn.verify_only,
            &txn.topics,
        )
        .await;
        results.push(AddPartitionsToTxnResponseTransaction {
            transactional_id: txn.transactional_id.clone(),
            topic_results,
        });
    }
    respond(header, &AddPartitionsToTxnResponse { results_by_transaction: results, ..Default::default() })
}

async fn add(
    broker: &Rc<ShardBroker>,
    version: i16,
    transactional_id: &str,
    producer_id: ProducerId,
    producer_epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnRequestTopic],
) -> Vec<AddPartitionsToTxnResponseTopic> {
    let image = broker.metadata.image();
    let known = |topic: &str, index: i32| {
        image.topics.get(topic).is_some_and(|t| usize::try_from(index).is_ok_and(|i| i < t.partitions.len()))
    };
    let partitions: Vec<(String, i32)> =
        topics.iter().flat_map(|t| t.partitions.iter().map(move |&p| (t.name.clone(), p))).collect();
    let any_unknown = partitions.iter().any(|(t, p)| !known(t, *p));
    let outcome = if any_unknown {
        None
    } else if transactional_id.is_empty() {
        Some(ErrorCode::InvalidRequest)
    } else {
        let op = if verify_only {
            TxnOp::Verify { producer_id, producer_epoch, partitions }
        } else {
            TxnOp::AddPartitions { producer_id, producer_epoch, partitions }
        };
        Some(match broker.transactions.route(transactional_id, op).await {
            Ok(_) => ErrorCode::None,
            Err(e) => fenced_for(version, FENCED_SINCE, e),
        })
    };
    topics
        .iter()
        .map(|t| AddPartitionsToTxnResponseTopic {
            name: t.name.clone(),
            results_by_partition: t
                .partitions
                .iter()
                .map(|&p| {
                    let error = match outcome {
                        Some(error) => error,
                        None if !known(&t.name, p) => ErrorCode::UnknownTopicOrPartition,
                        None => ErrorCode::OperationNotAttempted,
                    };
                    AddPartitionsToTxnResponsePartition { partition_index: p, partition_error_code: error.code() }
                })
                .collect(),
        })
        .collect()
}
