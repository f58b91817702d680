//! Produce: each partition's batches go to the shard that owns it (one message per shard), are
//! validated and appended there, and the answer waits for the acknowledgements `acks` asks for.
//! acks=0 gets no response at all, as in Kafka.

use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;

use super::metadata::auto_create;
use super::scatter;
use crate::broker::ShardBroker;
use crate::broker::partition::{Acks, PartitionRequest, PartitionResponse};
use crate::model::{TopicPartition, validate_topic_name};
use crate::protocol::messages::{ProduceRequest, ProduceResponse, ProduceResponsePartition, ProduceResponseTopic};
use crate::protocol::{ErrorCode, RecordSet, RequestHeader};
use crate::protocol::{Reply, respond};

/// The longest a produce request may wait for acknowledgements.
const PRODUCE_TIMEOUT_MS_MAX: i32 = 300_000;

/// Produce.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: ProduceRequest) -> Reply {
    let acks = Acks::try_from(request.acks);
    if broker.config.auto_create_topics && acks.is_ok() {
        let image = broker.metadata.image();
        let missing: Vec<String> = request
            .topic_data
            .iter()
            .map(|t| t.name.clone())
            .filter(|n| !image.topics.contains_key(n) && validate_topic_name(n).is_ok())
            .collect();
        auto_create(broker, missing).await;
    }
    let mut order: Vec<(String, Vec<i32>)> = Vec::new();
    let mut work: Vec<(TopicPartition, Option<BytesMut>)> = Vec::new();
    for topic in request.topic_data {
        let tp_topic: std::sync::Arc<str> = topic.name.as_str().into();
        let mut indexes = Vec::new();
        for partition in topic.partition_data {
            indexes.push(partition.index);
            let records = match partition.records {
                Some(RecordSet::Owned(bytes)) => Some(bytes),
                Some(RecordSet::Shared(bytes)) => Some(BytesMut::from(&bytes[..])),
                Some(RecordSet::Chunks(_)) | None => None,
            };
            work.push((TopicPartition { topic: tp_topic.clone(), partition: partition.index }, records));
        }
        order.push((topic.name, indexes));
    }
    let timeout =
        Duration::from_millis(u64::try_from(request.timeout_ms.clamp(0, PRODUCE_TIMEOUT_MS_MAX)).unwrap_or(0));
    let mut results = match &acks {
        Ok(acks) => {
            scatter(
                broker,
                work,
                |partitions| PartitionRequest::Produce { acks: *acks, timeout, partitions, guards: Vec::new() },
                |response| match response {
                    PartitionResponse::Produce(results) => Some(results),
                    _ => None,
                },
            )
            .await
        }
        Err(e) => work.into_iter().map(|(tp, _)| (tp, Err(e.clone()))).collect(),
    };
    if acks.is_ok_and(|acks| acks == Acks::None) {
        return Reply::Nothing;
    }
    let responses = order
        .into_iter()
        .map(|(name, indexes)| {
            let topic: std::sync::Arc<str> = name.as_str().into();
            let partition_responses = indexes
                .into_iter()
                .map(|index| {
                    let tp = TopicPartition { topic: topic.clone(), partition: index };
                    match results.remove(&tp) {
                        Some(Ok(outcome)) => ProduceResponsePartition {
                            index,
                            base_offset: outcome.base_offset.0,
                            log_append_time_ms: outcome.log_append_time.0,
                            log_start_offset: outcome.log_start_offset.0,
                            ..Default::default()
                        },
                        Some(Err(e)) => ProduceResponsePartition {
                            index,
                            error_code: ErrorCode::from(&e).code(),
                            base_offset: -1,
                            error_message: Some(e.to_string()),
                            ..Default::default()
                        },
                        None => ProduceResponsePartition {
                            index,
                            error_code: ErrorCode::InvalidRequest.code(),
                            base_offset: -1,
                            error_message: Some("partition named twice in the request".into()),
                            ..Default::default()
                        },
                    }
                })
                .collect();
            ProduceResponseTopic { name, partition_responses }
        })
        .collect();
    respond(header, &ProduceResponse { responses, ..Default::default() })
}
