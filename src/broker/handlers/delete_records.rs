//! DeleteRecords: moves each partition's log start offset (low watermark) forward.

use std::rc::Rc;

use super::scatter;
use crate::broker::ShardBroker;
use crate::broker::partition::{DeleteTo, PartitionRequest, PartitionResponse};
use crate::model::TopicPartition;
use crate::protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteRecordsResponsePartition, DeleteRecordsResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// DeleteRecords.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DeleteRecordsRequest) -> Reply {
    let mut work = Vec::new();
    let mut order = Vec::new();
    for topic in &request.topics {
        let name: std::sync::Arc<str> = topic.name.as_str().into();
        for partition in &topic.partitions {
            let tp = TopicPartition { topic: name.clone(), partition: partition.partition_index };
            work.push((tp, DeleteTo::from_wire(partition.offset)));
        }
        order.push((name, topic.partitions.iter().map(|p| p.partition_index).collect::<Vec<_>>()));
    }
    let mut results = scatter(broker, work, PartitionRequest::DeleteRecords, |response| match response {
        PartitionResponse::DeleteRecords(results) => Some(results),
        _ => None,
    })
    .await;
    let topics = order
        .into_iter()
        .map(|(name, indexes)| DeleteRecordsResponseTopic {
            name: name.to_string(),
            partitions: indexes
                .into_iter()
                .map(|index| match results.remove(&TopicPartition { topic: name.clone(), partition: index }) {
                    Some(Ok(low)) => {
                        DeleteRecordsResponsePartition { partition_index: index, low_watermark: low.0, error_code: 0 }
                    }
                    Some(Err(e)) => DeleteRecordsResponsePartition {
                        partition_index: index,
                        low_watermark: -1,
                        error_code: ErrorCode::from(&e).code(),
                    },
                    None => DeleteRecordsResponsePartition {
                        partition_index: index,
                        low_watermark: -1,
                        error_code: ErrorCode::InvalidRequest.code(),
                    },
                })
                .collect(),
        })
        .collect();
    respond(header, &DeleteRecordsResponse { topics, ..Default::default() })
}
