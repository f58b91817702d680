//! Fetch: reads each partition on the shard that owns it, honours `partition_max_bytes` and the
//! response's `max_bytes`, long-polls (`min_bytes`, `max_wait_ms`) by waiting on the owning
//! shards' high-watermark notifications, and keeps KIP-227 fetch sessions. Record bytes are never
//! copied: cached batches go out as shared buffers, older ones by sendfile.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::scatter;
use crate::broker::ShardBroker;
use crate::broker::fetch_session::{FetchPlan, PartitionView, RequestedPartition};
use crate::broker::partition::{Fetched, PartitionError};
use crate::broker::shard::{FetchWork, ShardRequest, ShardResponse};
use crate::limits::FETCH_MAX_WAIT_MS_MAX;
use crate::model::{Offset, TopicPartition};
use crate::protocol::messages::{FetchRequest, FetchResponse, FetchResponsePartition, FetchResponseTopic};
use crate::protocol::{ErrorCode, RecordSet, RequestHeader};
use crate::protocol::{Reply, respond};

type Results = BTreeMap<TopicPartition, Result<Fetched, PartitionError>>;

async fn read(broker: &Rc<ShardBroker>, plan: &FetchPlan) -> Results {
    let work = plan
        .partitions
        .iter()
        .map(|p| {
            let item = FetchWork {
                topic_partition: p.topic_partition.clone(),
                offset: Offset(p.fetch_offset),
                max_bytes: u64::try_from(p.partition_max_bytes.max(0)).unwrap_or(0),
            };
            (p.topic_partition.clone(), item)
        })
        .collect();
    scatter(
        broker,
        work,
        |items| ShardRequest::Fetch(items.into_iter().map(|(_, w)| w).collect()),
        |response| match response {
            ShardResponse::Fetch(results) => Some(results),
            _ => None,
        },
    )
    .await
}

/// Waits until a partition's high watermark passes what this fetch saw, or `timeout`.
async fn wait_for_data(broker: &Rc<ShardBroker>, results: &Results, timeout: Duration) {
    let work: Vec<(TopicPartition, Offset)> =
        results.iter().filter_map(|(tp, r)| r.as_ref().ok().map(|f| (tp.clone(), f.high_watermark))).collect();
    if work.is_empty() {
        glommio::timer::sleep(timeout).await;
        return;
    }
    // Returns as soon as the first shard answers (its data moved) or the timeout passes.
    let mut by_shard: BTreeMap<usize, Vec<(TopicPartition, Offset)>> = BTreeMap::new();
    for (tp, offset) in work {
        if let Some(shard) = broker.owner_of(&tp.topic, tp.partition) {
            by_shard.entry(shard).or_default().push((tp, offset));
        }
    }
    let mut waits: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = Vec::new();
    for (shard, partitions) in by_shard {
        let broker = broker.clone();
        waits.push(Box::pin(async move {
            let _ = broker.call(shard, ShardRequest::WaitForData { partitions, timeout }).await;
        }));
    }
    std::future::poll_fn(|cx| {
        for wait in waits.iter_mut() {
            if wait.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await;
}

/// Fetch.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: FetchRequest) -> Reply {
    let mut requested = Vec::new();
    for topic in &request.topics {
        let name: std::sync::Arc<str> = topic.topic.as_str().into();
        for p in &topic.partitions {
            requested.push(RequestedPartition {
                topic_partition: TopicPartition { topic: name.clone(), partition: p.partition },
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
            });
        }
    }
    let forgotten = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| TopicPartition::new(t.topic.as_str(), p)))
        .collect();
    let began = broker.fetch_sessions.borrow_mut().begin(
        request.session_id,
        request.session_epoch,
        requested,
        forgotten,
        Instant::now(),
    );
    let plan = match began {
        Ok(plan) => plan,
        Err(e) => {
            let response = FetchResponse { error_code: ErrorCode::from(&e).code(), ..Default::default() };
            return respond(header, &response);
        }
    };
    let max_wait =
        Duration::from_millis(u64::try_from(request.max_wait_ms.max(0)).unwrap_or(0).min(FETCH_MAX_WAIT_MS_MAX));
    let deadline = Instant::now() + max_wait;
    let min_bytes = u64::try_from(request.min_bytes.max(0)).unwrap_or(0);
    let mut results = read(broker, &plan).await;
    loop {
        let total: u64 = results.values().filter_map(|r| r.as_ref().ok()).map(|f| f.bytes).sum();
        let errors = results.values().any(|r| r.is_err());
        let now = Instant::now();
        if total >= min_bytes || errors || now >= deadline {
            break;
        }
        wait_for_data(broker, &results, deadline - now).await;
        results = read(broker, &plan).await;
    }
    let response_max = u64::try_from(request.max_bytes.max(0)).unwrap_or(0);
    let mut sent = 0u64;
    let mut topics: Vec<FetchResponseTopic> = Vec::new();
    let read_committed = request.isolation_level == 1;
    for p in &plan.partitions {
        let tp = &p.topic_partition;
        let mut partition = FetchResponsePartition { partition_index: tp.partition, ..Default::default() };
        let mut news = false;
        match results.remove(tp) {
            Some(Ok(fetched)) => {
                partition.high_watermark = fetched.high_watermark.0;
                partition.last_stable_offset = fetched.last_stable_offset.0;
                partition.log_start_offset = fetched.log_start_offset.0;
                // KIP-74: past the response limit, later partitions get no records, but the first
                // non-empty one is always sent whole.
                let fits = sent == 0 || sent + fetched.bytes <= response_max;
                partition.records = if fetched.bytes > 0 && fits {
                    sent += fetched.bytes;
                    news = true;
                    Some(RecordSet::Chunks(fetched.chunks))
                } else {
                    Some(RecordSet::Shared(Bytes::new()))
                };
            }
            Some(Err(e)) => {
                partition.error_code = ErrorCode::from(&e).code();
                partition.high_watermark = -1;
                partition.last_stable_offset = -1;
                partition.log_start_offset = -1;
                partition.records = Some(RecordSet::Shared(Bytes::new()));
                news = true;
            }
            None => continue,
        }
        partition.aborted_transactions = if read_committed { Some(Vec::new()) } else { None };
        let view = PartitionView {
            high_watermark: partition.high_watermark,
            last_stable_offset: partition.last_stable_offset,
            log_start_offset: partition.log_start_offset,
        };
        if !broker.fetch_sessions.borrow_mut().include(&plan, tp, view, news) {
            continue;
        }
        match topics.last_mut() {
            Some(last) if last.topic == *tp.topic => last.partitions.push(partition),
            _ => topics.push(FetchResponseTopic { topic: tp.topic.to_string(), partitions: vec![partition] }),
        }
    }
    let response = FetchResponse { session_id: plan.session_id, responses: topics, ..Default::default() };
    respond(header, &response)
}
