//! OffsetDelete: removes committed offsets of topics no member subscribes to.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::groups::{GroupOp, GroupResponse};
use crate::protocol::messages::{
    OffsetDeleteRequest, OffsetDeleteResponse, OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// OffsetDelete (v0).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: OffsetDeleteRequest) -> Reply {
    let asked: Vec<(String, i32)> =
        request.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition_index))).collect();
    // Partitions that exist anywhere in the cluster, whichever broker leads them.
    let known: Vec<(String, i32)> = asked.iter().filter(|(t, p)| broker.metadata.exists(t, *p)).cloned().collect();
    let outcome = match broker.groups.route(&request.group_id, GroupOp::OffsetDelete(known.clone())).await {
        Ok(GroupResponse::OffsetDelete(result)) => result,
        Ok(_) => Err(ErrorCode::UnknownServerError),
        Err(e) => Err(e),
    };
    let response = match outcome {
        Err(e) => OffsetDeleteResponse { error_code: e.code(), ..Default::default() },
        Ok(codes) => {
            let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
            for (topic, partition) in asked {
                let code = match known.iter().position(|k| *k == (topic.clone(), partition)) {
                    Some(i) => codes.get(i).copied().unwrap_or(ErrorCode::UnknownServerError),
                    None => ErrorCode::UnknownTopicOrPartition,
                };
                let entry = OffsetDeleteResponsePartition { partition_index: partition, error_code: code.code() };
                match topics.iter_mut().find(|t| t.name == topic) {
                    Some(t) => t.partitions.push(entry),
                    None => topics.push(OffsetDeleteResponseTopic { name: topic, partitions: vec![entry] }),
                }
            }
            OffsetDeleteResponse { topics, ..Default::default() }
        }
    };
    respond(header, &response)
}
