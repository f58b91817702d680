//! Fetch: reads each partition on the shard that owns it, honours `partition_max_bytes` and the
//! response's `max_bytes`, long-polls (`min_bytes`, `max_wait_ms`) by letting each owning shard
//! wait for its partitions' high watermarks (one round trip per shard), and keeps KIP-227 fetch
//! sessions. read_committed (`isolation_level` 1) reads below the last stable offset, waits for
//! it, and names the aborted transactions in what it returns. Record bytes are never copied:
//! cached batches go out as shared buffers, older ones by sendfile.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_lite::Stream;

use crate::broker::ShardBroker;
use crate::broker::fetch_session::{FetchPlan, PartitionView, RequestedPartition};
use crate::broker::partition::{
    FetchOrder, FetchWait, FetchWork, Fetched, IsolationLevel, PartitionError, PartitionRequest, PartitionResponse,
    Progress,
};
use crate::limits::FETCH_MAX_WAIT_MS_MAX;
use crate::model::{Offset, TopicPartition};
use crate::protocol::messages::{
    FetchRequest, FetchResponse, FetchResponseAbortedTransaction, FetchResponseEpochEndOffset, FetchResponsePartition,
    FetchResponseTopic,
};
use crate::protocol::{ErrorCode, RecordSet, RequestHeader};
use crate::protocol::{Reply, respond};
use crate::shard::{ShardError, ShardId};

type Results = BTreeMap<TopicPartition, Result<Fetched, PartitionError>>;

/// Reads every partition of `plan` on the shard that owns it, one message per owning shard.
/// With `wait` (deadline, min_bytes), each shard waits there for data itself, so a long poll
/// costs one round trip per owning shard: a waiting shard reports what it has found after each
/// read, and once the shards' counts add up to `min_bytes` (or an answer carries an error) the
/// ones still waiting are hurried to read once more and answer. The waits are futures of this
/// call: when it ends, its hurry channels drop and the remote waits end too.
async fn read(
    broker: &Rc<ShardBroker>,
    plan: &FetchPlan,
    isolation: IsolationLevel,
    replica: Option<i32>,
    mut wait: Option<(Instant, u64)>,
) -> Results {
    let mut out = Results::new();
    let mut by_shard: BTreeMap<ShardId, Vec<FetchWork>> = BTreeMap::new();
    for p in &plan.partitions {
        let tp = &p.topic_partition;
        let work = FetchWork {
            topic_partition: tp.clone(),
            offset: Offset(p.fetch_offset),
            max_bytes: u64::try_from(p.partition_max_bytes.max(0)).unwrap_or(0),
            current_leader_epoch: p.current_leader_epoch,
            last_fetched_epoch: p.last_fetched_epoch,
        };
        match broker.metadata.route(&tp.topic, tp.partition) {
            Ok(shard) => {
                if replica.is_some() && shard != broker.metadata.shard_id() {
                    broker.count_replication_hop();
                }
                by_shard.entry(shard).or_default().push(work)
            }
            Err(e) => {
                out.insert(tp.clone(), Err(e));
            }
        }
    }
    if !out.is_empty() {
        // A partition already failed (not led here): the answer goes out now, as an error
        // does, so no shard waits.
        wait = None;
    }
    if by_shard.is_empty() {
        // Nothing to read: a long poll over no partitions waits out its time, without work.
        if let Some((until, _)) = wait {
            glommio::timer::sleep(until.saturating_duration_since(Instant::now())).await;
        }
        return out;
    }
    let min_bytes = wait.map_or(0, |(_, min_bytes)| min_bytes);
    let (progress_to, mut progress) = mpsc::unbounded();
    let mut hurries = Vec::with_capacity(by_shard.len());
    let mut calls: Vec<Option<ShardCall>> = Vec::with_capacity(by_shard.len());
    for (index, (shard, work)) in by_shard.into_iter().enumerate() {
        let tps: Vec<TopicPartition> = work.iter().map(|w| w.topic_partition.clone()).collect();
        // The channels of a wait, only for a fetch that may wait.
        let wait = wait.map(|(until, min_bytes)| {
            let (hurry_to, hurry) = oneshot::channel();
            hurries.push(hurry_to);
            FetchWait { until, min_bytes, progress: Progress { index, to: progress_to.clone() }, hurry }
        });
        let request = PartitionRequest::Fetch(FetchOrder { work, isolation, replica, wait });
        let peers = broker.partitions.peers().clone();
        calls.push(Some((tps, Box::pin(async move { peers.call(shard, request).await }))));
    }
    // Bytes found so far on each shard: its last report while waiting, then its answer.
    let mut found = vec![0u64; calls.len()];
    while let Some(event) = next_event(&mut calls, &mut progress).await {
        let mut errors = false;
        match event {
            Event::Progress(index, bytes) => found[index] = bytes,
            Event::Answer(index, answer) => {
                let tps = calls[index].take().map(|(tps, _)| tps).unwrap_or_default();
                found[index] = 0;
                match answer {
                    Ok(PartitionResponse::Fetch(results)) => {
                        for (tp, result) in results {
                            match &result {
                                Ok(fetched) if fetched.diverging_epoch.is_none() => found[index] += fetched.bytes,
                                _ => errors = true,
                            }
                            out.insert(tp, result);
                        }
                    }
                    _ => {
                        errors = true;
                        for tp in tps {
                            out.insert(tp, Err(PartitionError::NotAvailable));
                        }
                    }
                }
            }
        }
        if !hurries.is_empty() && (found.iter().sum::<u64>() >= min_bytes || errors) {
            for hurry in hurries.drain(..) {
                let _ = hurry.send(());
            }
        }
    }
    out
}

/// One shard's part of a read: its partitions, and the call.
type ShardCall = (Vec<TopicPartition>, Pin<Box<dyn Future<Output = Result<PartitionResponse, ShardError>>>>);

/// What happened next to a read spread over shards.
enum Event {
    /// Shard `.0` has found `.1` bytes so far and keeps waiting.
    Progress(usize, u64),
    /// Shard `.0` answered.
    Answer(usize, Result<PartitionResponse, ShardError>),
}

/// The next event of the calls in flight; `None` once every call has answered.
async fn next_event(
    calls: &mut [Option<ShardCall>],
    progress: &mut mpsc::UnboundedReceiver<(usize, u64)>,
) -> Option<Event> {
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (index, call) in calls.iter_mut().enumerate() {
            if let Some((_, future)) = call {
                match future.as_mut().poll(cx) {
                    Poll::Ready(answer) => return Poll::Ready(Some(Event::Answer(index, answer))),
                    Poll::Pending => pending = true,
                }
            }
        }
        if !pending {
            return Poll::Ready(None);
        }
        match Pin::new(&mut *progress).poll_next(cx) {
            Poll::Ready(Some((index, bytes))) => Poll::Ready(Some(Event::Progress(index, bytes))),
            _ => Poll::Pending,
        }
    })
    .await
}

/// Fetch; `replication` if it came to a replication listener, the only place a follower's fetch
/// (`replica_id` >= 0) is served: elsewhere one is refused with CLUSTER_AUTHORIZATION_FAILED, as
/// Kafka refuses a follower fetch without the cluster permission.
pub async fn handle(
    broker: &Rc<ShardBroker>,
    header: &RequestHeader,
    request: FetchRequest,
    replication: bool,
    worked_on: &dyn Fn(ShardId),
) -> Reply {
    let mut requested = Vec::new();
    for topic in &request.topics {
        let name: std::sync::Arc<str> = topic.topic.as_str().into();
        for p in &topic.partitions {
            requested.push(RequestedPartition {
                topic_partition: TopicPartition { topic: name.clone(), partition: p.partition },
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
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
    super::note_placement(broker, worked_on, plan.partitions.iter().map(|p| &p.topic_partition));
    let max_wait =
        Duration::from_millis(u64::try_from(request.max_wait_ms.max(0)).unwrap_or(0).min(FETCH_MAX_WAIT_MS_MAX));
    let deadline = Instant::now() + max_wait;
    let min_bytes = u64::try_from(request.min_bytes.max(0)).unwrap_or(0);
    let wait = (min_bytes > 0 && !max_wait.is_zero()).then_some((deadline, min_bytes));
    let isolation = match IsolationLevel::try_from(request.isolation_level) {
        Ok(isolation) => isolation,
        Err(e) => return refuse_all(header, &plan, ErrorCode::from(&e)),
    };
    // A follower (replica_id >= 0) reads up to the log end; Kafka's consumers send -1.
    let replica = (request.replica_id >= 0).then_some(request.replica_id);
    if replica.is_some() && !replication {
        return refuse_all(header, &plan, ErrorCode::ClusterAuthorizationFailed);
    }
    let mut results = read(broker, &plan, isolation, replica, wait).await;
    loop {
        let total: u64 = results.values().filter_map(|r| r.as_ref().ok()).map(|f| f.bytes).sum();
        // A diverged follower is news as an error is: it must hear it now.
        let errors = results.values().any(|r| r.as_ref().map_or(true, |f| f.diverging_epoch.is_some()));
        if wait.is_none() || total >= min_bytes || errors || Instant::now() >= deadline {
            break;
        }
        // New data reached some shards but, added up, not min_bytes: another round.
        results = read(broker, &plan, isolation, replica, wait).await;
    }
    let response_max = u64::try_from(request.max_bytes.max(0)).unwrap_or(0);
    let mut sent = 0u64;
    let mut topics: Vec<FetchResponseTopic> = Vec::new();
    let read_committed = isolation == IsolationLevel::ReadCommitted;
    for p in &plan.partitions {
        let tp = &p.topic_partition;
        let mut partition = FetchResponsePartition { partition_index: tp.partition, ..Default::default() };
        let mut news = false;
        match results.remove(tp) {
            Some(Ok(fetched)) => {
                partition.high_watermark = fetched.high_watermark.0;
                partition.last_stable_offset = fetched.last_stable_offset.0;
                partition.log_start_offset = fetched.log_start_offset.0;
                if let Some((epoch, end_offset)) = fetched.diverging_epoch {
                    partition.diverging_epoch =
                        FetchResponseEpochEndOffset { epoch: epoch.0, end_offset: end_offset.0 };
                    news = true;
                }
                // KIP-74: past the response limit, later partitions get no records, but the first
                // non-empty one is always sent whole.
                let fits = sent == 0 || sent + fetched.bytes <= response_max;
                partition.records = if fetched.bytes > 0 && fits {
                    sent += fetched.bytes;
                    news = true;
                    // Only with the records they concern: a partition left out by max_bytes
                    // gets an empty list, as one with nothing to read does.
                    partition.aborted_transactions = fetched.aborted_transactions.map(|aborted| {
                        aborted
                            .iter()
                            .map(|t| FetchResponseAbortedTransaction {
                                producer_id: t.producer_id.0,
                                first_offset: t.first_offset.0,
                            })
                            .collect()
                    });
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
        // Null for read_uncommitted, a list (maybe empty) for read_committed, as Kafka answers.
        if read_committed && partition.aborted_transactions.is_none() {
            partition.aborted_transactions = Some(Vec::new());
        }
        // The view is the same at both isolation levels (the LSO is the real one in both), so
        // a session may change levels between fetches without confusing what counts as news.
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

/// The answer to a fetch refused as a whole (a field Kafka does not define, a follower's fetch
/// outside a replication listener): every partition of the plan with the error (v4–v6 have no
/// top-level error code).
fn refuse_all(header: &RequestHeader, plan: &FetchPlan, error: ErrorCode) -> Reply {
    let code = error.code();
    let mut topics: Vec<FetchResponseTopic> = Vec::new();
    for p in &plan.partitions {
        let tp = &p.topic_partition;
        let partition = FetchResponsePartition {
            partition_index: tp.partition,
            error_code: code,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Some(RecordSet::Shared(Bytes::new())),
            ..Default::default()
        };
        match topics.last_mut() {
            Some(last) if last.topic == *tp.topic => last.partitions.push(partition),
            _ => topics.push(FetchResponseTopic { topic: tp.topic.to_string(), partitions: vec![partition] }),
        }
    }
    respond(header, &FetchResponse { session_id: plan.session_id, responses: topics, ..Default::default() })
}
