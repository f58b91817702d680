//! ListOffsets: earliest (-2), latest (-1, the high watermark; for read_committed the last
//! stable offset), max timestamp (-3), earliest local (-4), or the first offset at or after a
//! timestamp (for read_committed only below the last stable offset).

use std::rc::Rc;

use super::scatter;
use crate::broker::ShardBroker;
use crate::broker::partition::{IsolationLevel, OffsetSpec, PartitionError, PartitionRequest, PartitionResponse};
use crate::model::TopicPartition;
use crate::protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, ListOffsetsResponsePartition, ListOffsetsResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// ListOffsets.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: ListOffsetsRequest) -> Reply {
    let mut work = Vec::new();
    let mut order = Vec::new();
    for topic in &request.topics {
        let name: std::sync::Arc<str> = topic.name.as_str().into();
        for partition in &topic.partitions {
            work.push((
                TopicPartition { topic: name.clone(), partition: partition.partition_index },
                OffsetSpec::from_wire(partition.timestamp),
            ));
        }
        order.push((name, topic.partitions.iter().map(|p| p.partition_index).collect::<Vec<_>>()));
    }
    let mut results = match IsolationLevel::try_from(request.isolation_level) {
        Ok(isolation) => {
            let ask = |partitions| PartitionRequest::ListOffsets { isolation, partitions };
            scatter(broker, work, ask, |response| match response {
                PartitionResponse::ListOffsets(results) => Some(results),
                _ => None,
            })
            .await
        }
        Err(e) => work.into_iter().map(|(tp, _)| (tp, Err::<_, PartitionError>(e.clone()))).collect(),
    };
    let image = broker.metadata.image();
    let topics = order
        .into_iter()
        .map(|(name, indexes)| ListOffsetsResponseTopic {
            name: name.to_string(),
            partitions: indexes
                .into_iter()
                .map(|index| {
                    let tp = TopicPartition { topic: name.clone(), partition: index };
                    let epoch = image
                        .topics
                        .get(&*name)
                        .and_then(|t| t.partitions.get(usize::try_from(index).unwrap_or(usize::MAX)))
                        .map_or(-1, |p| p.leader_epoch);
                    match results.remove(&tp) {
                        Some(Ok((timestamp, offset))) => ListOffsetsResponsePartition {
                            partition_index: index,
                            timestamp: timestamp.0,
                            offset: offset.0,
                            leader_epoch: if offset.0 >= 0 { epoch } else { -1 },
                            ..Default::default()
                        },
                        Some(Err(e)) => ListOffsetsResponsePartition {
                            partition_index: index,
                            error_code: ErrorCode::from(&e).code(),
                            timestamp: -1,
                            offset: -1,
                            leader_epoch: -1,
                        },
                        None => ListOffsetsResponsePartition {
                            partition_index: index,
                            error_code: ErrorCode::InvalidRequest.code(),
                            timestamp: -1,
                            offset: -1,
                            leader_epoch: -1,
                        },
                    }
                })
                .collect(),
        })
        .collect();
    respond(header, &ListOffsetsResponse { topics, ..Default::default() })
}
