//! Produce: each partition's batches go to the shard that owns it (one message per shard), are
//! validated and appended there, and the answer waits for the acknowledgements `acks` asks for.
//! acks=0 gets no response at all, as in Kafka.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;

use super::metadata::auto_create;
use super::scatter;
use crate::broker::ShardBroker;
use crate::broker::metadata::is_internal_topic;
use crate::broker::partition::{Acks, PartitionError, PartitionRequest, PartitionResponse, ProduceOutcome};
use crate::model::{ProducerId, TopicPartition, validate_topic_name};
use crate::protocol::messages::{ProduceRequest, ProduceResponse, ProduceResponsePartition, ProduceResponseTopic};
use crate::protocol::{ErrorCode, RecordSet, RequestHeader};
use crate::protocol::{Reply, respond};
use crate::shard::ShardId;

/// The longest a produce request may wait for acknowledgements.
const PRODUCE_TIMEOUT_MS_MAX: i32 = 300_000;

/// Produce.
pub async fn handle(
    broker: &Rc<ShardBroker>,
    header: &RequestHeader,
    request: ProduceRequest,
    worked_on: &dyn Fn(ShardId),
) -> Reply {
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
    super::note_placement(broker, worked_on, work.iter().map(|(tp, _)| tp));
    let timeout =
        Duration::from_millis(u64::try_from(request.timeout_ms.clamp(0, PRODUCE_TIMEOUT_MS_MAX)).unwrap_or(0));
    // A transactional producer's first write to a partition in a transaction comes back asking
    // for verification (KIP-890); keep its records to send again.
    let kept: Vec<(TopicPartition, Option<BytesMut>)> = if request.transactional_id.is_some() {
        work.iter().map(|(tp, r)| (tp.clone(), r.clone())).collect()
    } else {
        Vec::new()
    };
    // Clients never write to internal topics (Kafka's ReplicaManager refuses them the same way).
    let (internal, work): (Vec<_>, Vec<_>) = work.into_iter().partition(|(tp, _)| is_internal_topic(&tp.topic));
    let mut results = match &acks {
        Ok(acks) => produce(broker, *acks, timeout, work, Vec::new()).await,
        Err(e) => work.into_iter().map(|(tp, _)| (tp, Err(e.clone()))).collect(),
    };
    for (tp, _) in internal {
        let refused = PartitionError::InternalTopic(tp.topic.to_string());
        results.insert(tp, Err(refused));
    }
    if let (Some(transactional_id), Ok(acks)) = (&request.transactional_id, &acks) {
        verify_and_retry(broker, transactional_id, *acks, timeout, kept, &mut results).await;
    }
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

async fn produce(
    broker: &Rc<ShardBroker>,
    acks: Acks,
    timeout: Duration,
    work: Vec<(TopicPartition, Option<BytesMut>)>,
    guards: Vec<(TopicPartition, u64)>,
) -> BTreeMap<TopicPartition, Result<ProduceOutcome, PartitionError>> {
    scatter(
        broker,
        work,
        |partitions| {
            let guards = guards.iter().filter(|(tp, _)| partitions.iter().any(|(p, _)| p == tp)).cloned().collect();
            PartitionRequest::Produce { acks, timeout, partitions, guards }
        },
        |response| match response {
            PartitionResponse::Produce(results) => Some(results),
            _ => None,
        },
    )
    .await
}

/// KIP-890: partitions that answered `NeedsVerification` are checked with the transaction
/// coordinator, on this broker or another (are they in the producer's open transaction?) and, if
/// so, produced again with the guard they gave; otherwise they keep the coordinator's error.
async fn verify_and_retry(
    broker: &Rc<ShardBroker>,
    transactional_id: &str,
    acks: Acks,
    timeout: Duration,
    kept: Vec<(TopicPartition, Option<BytesMut>)>,
    results: &mut BTreeMap<TopicPartition, Result<ProduceOutcome, PartitionError>>,
) {
    let mut asks: BTreeMap<(i64, i16), Vec<(TopicPartition, u64)>> = BTreeMap::new();
    for (tp, result) in results.iter() {
        if let Err(PartitionError::NeedsVerification { guard, producer_id, producer_epoch }) = result {
            asks.entry((producer_id.0, *producer_epoch)).or_default().push((tp.clone(), *guard));
        }
    }
    for ((producer_id, producer_epoch), guards) in asks {
        let partitions = guards.iter().map(|(tp, _)| (tp.topic.to_string(), tp.partition)).collect();
        match broker.transactions.verify(transactional_id, ProducerId(producer_id), producer_epoch, partitions).await {
            Ok(_) => {
                let work: Vec<(TopicPartition, Option<BytesMut>)> =
                    kept.iter().filter(|(tp, _)| guards.iter().any(|(g, _)| g == tp)).cloned().collect();
                results.extend(produce(broker, acks, timeout, work, guards).await);
            }
            Err(error) => {
                for (tp, _) in guards {
                    results.insert(tp, Err(PartitionError::Transaction(error)));
                }
            }
        }
    }
}
