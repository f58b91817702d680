//! DescribeTransactions: each transactional id's state, from its coordinator.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, DescribeTransactionsResponseTopic,
    DescribeTransactionsResponseTransaction,
};
use crate::protocol::{Reply, RequestHeader, respond};

/// DescribeTransactions.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DescribeTransactionsRequest) -> Reply {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let state = match broker.transactions.describe(&id).await {
            Ok(meta) => {
                let mut topics: Vec<DescribeTransactionsResponseTopic> = Vec::new();
                for (topic, partition) in &meta.partitions {
                    match topics.last_mut() {
                        Some(t) if t.topic == *topic => t.partitions.push(*partition),
                        _ => topics.push(DescribeTransactionsResponseTopic {
                            topic: topic.clone(),
                            partitions: vec![*partition],
                        }),
                    }
                }
                DescribeTransactionsResponseTransaction {
                    error_code: 0,
                    transaction_state: meta.state.name().to_string(),
                    transaction_timeout_ms: meta.timeout_ms,
                    transaction_start_time_ms: meta.start_ms,
                    producer_id: meta.producer_id.0,
                    producer_epoch: meta.producer_epoch,
                    topics,
                    transactional_id: id,
                }
            }
            Err(e) => DescribeTransactionsResponseTransaction {
                error_code: e.code(),
                transactional_id: id,
                transaction_start_time_ms: -1,
                producer_id: -1,
                producer_epoch: -1,
                ..Default::default()
            },
        };
        states.push(state);
    }
    respond(header, &DescribeTransactionsResponse { transaction_states: states, ..Default::default() })
}
