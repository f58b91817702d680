//! DescribeProducers (KIP-664): the idempotent and transactional producers each partition
//! remembers, asked of the shards that own them; what `kafka-transactions.sh describe-producers`
//! shows, and how an operator finds a transaction holding back the last stable offset.

use std::rc::Rc;

use super::scatter;
use crate::broker::ShardBroker;
use crate::broker::partition::{PartitionRequest, PartitionResponse};
use crate::model::TopicPartition;
use crate::protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, DescribeProducersResponsePartition,
    DescribeProducersResponseProducer, DescribeProducersResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// DescribeProducers.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DescribeProducersRequest) -> Reply {
    let mut work = Vec::new();
    let mut order = Vec::new();
    for topic in &request.topics {
        let name: std::sync::Arc<str> = topic.name.as_str().into();
        for &partition in &topic.partition_indexes {
            work.push((TopicPartition { topic: name.clone(), partition }, ()));
        }
        order.push((name, topic.partition_indexes.clone()));
    }
    let results = scatter(broker, work, PartitionRequest::DescribeProducers, |response| match response {
        PartitionResponse::DescribeProducers(results) => Some(results),
        _ => None,
    })
    .await;
    let topics = order
        .into_iter()
        .map(|(name, indexes)| DescribeProducersResponseTopic {
            name: name.to_string(),
            partitions: indexes
                .into_iter()
                .map(|index| {
                    let tp = TopicPartition { topic: name.clone(), partition: index };
                    // `get`, not `remove`: a partition named twice gets the same answer twice.
                    match results.get(&tp) {
                        Some(Ok(producers)) => DescribeProducersResponsePartition {
                            partition_index: index,
                            active_producers: producers
                                .iter()
                                .map(|p| DescribeProducersResponseProducer {
                                    producer_id: p.producer_id.0,
                                    producer_epoch: i32::from(p.producer_epoch),
                                    last_sequence: p.last_sequence,
                                    last_timestamp: p.last_timestamp.0,
                                    coordinator_epoch: p.coordinator_epoch,
                                    current_txn_start_offset: p.current_txn_start_offset.map_or(-1, |o| o.0),
                                })
                                .collect(),
                            ..Default::default()
                        },
                        Some(Err(e)) => failed(index, ErrorCode::from(e), Some(e.to_string())),
                        None => failed(index, ErrorCode::UnknownTopicOrPartition, None),
                    }
                })
                .collect(),
        })
        .collect();
    respond(header, &DescribeProducersResponse { topics, ..Default::default() })
}

fn failed(index: i32, error: ErrorCode, message: Option<String>) -> DescribeProducersResponsePartition {
    DescribeProducersResponsePartition {
        partition_index: index,
        error_code: error.code(),
        error_message: message,
        ..Default::default()
    }
}
