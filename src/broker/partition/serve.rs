//! How the owning shard serves a [`PartitionRequest`]: appends queued before any wait so one
//! flush carries them all, and fetches that wait on this shard for their data.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tracing::error;

use super::messages::{FetchOrder, FetchWork, PartitionRequest, PartitionResponse, PartitionResults, ProduceOutcome};
use super::registry::ShardPartitions;
use super::replica::{Acks, Appended, Fetched, IsolationLevel, Partition, PartitionError};
use crate::model::TopicPartition;

impl ShardPartitions {
    /// Serves a request from another shard (or this one).
    pub async fn serve(&self, request: PartitionRequest) -> PartitionResponse {
        match request {
            PartitionRequest::Produce { acks, timeout, partitions, guards } => {
                PartitionResponse::Produce(self.produce(acks, timeout, partitions, &guards).await)
            }
            PartitionRequest::WriteMarkers { producer_id, producer_epoch, coordinator_epoch, kind, partitions } => {
                let mut pending = Vec::with_capacity(partitions.len());
                for tp in partitions {
                    let appended = match self.get(&tp) {
                        Some(p) => {
                            p.append_marker(producer_id, producer_epoch, coordinator_epoch, kind).map(|a| (p, a))
                        }
                        None => Err(PartitionError::UnknownTopicOrPartition),
                    };
                    pending.push((tp, appended));
                }
                let mut out = Vec::with_capacity(pending.len());
                for (tp, appended) in pending {
                    let result = match appended {
                        Ok((partition, (appended, completed))) => {
                            appended.acknowledged(Acks::All, &partition).await.map(|_| completed)
                        }
                        Err(e) => Err(e),
                    };
                    out.push((tp, result));
                }
                PartitionResponse::WriteMarkers(out)
            }
            PartitionRequest::Fetch(order) => PartitionResponse::Fetch(self.fetch(order).await),
            PartitionRequest::ListOffsets { isolation, partitions } => {
                let mut out = Vec::with_capacity(partitions.len());
                for (tp, spec) in partitions {
                    let result = match self.get(&tp) {
                        Some(p) => p.list_offset(spec, isolation).await,
                        None => Err(PartitionError::UnknownTopicOrPartition),
                    };
                    out.push((tp, result));
                }
                PartitionResponse::ListOffsets(out)
            }
            PartitionRequest::DeleteRecords(partitions) => PartitionResponse::DeleteRecords(
                partitions
                    .into_iter()
                    .map(|(tp, to)| {
                        let result = match self.get(&tp) {
                            Some(p) => p.delete_records(to),
                            None => Err(PartitionError::UnknownTopicOrPartition),
                        };
                        (tp, result)
                    })
                    .collect(),
            ),
            PartitionRequest::DescribeProducers(partitions) => PartitionResponse::DescribeProducers(
                partitions
                    .into_iter()
                    .map(|(tp, ())| {
                        let result = match self.get(&tp) {
                            Some(p) => Ok(p.describe_producers()),
                            None => Err(PartitionError::UnknownTopicOrPartition),
                        };
                        (tp, result)
                    })
                    .collect(),
            ),
            PartitionRequest::DescribeLogDirs(partitions) => PartitionResponse::DescribeLogDirs(
                partitions
                    .into_iter()
                    .map(|(tp, ())| {
                        let result = match self.get(&tp) {
                            Some(p) => Ok(p.describe_log_dir()),
                            None => Err(PartitionError::UnknownTopicOrPartition),
                        };
                        (tp, result)
                    })
                    .collect(),
            ),
        }
    }

    async fn produce(
        &self,
        acks: Acks,
        timeout: Duration,
        partitions: Vec<(TopicPartition, Option<BytesMut>)>,
        guards: &[(TopicPartition, u64)],
    ) -> PartitionResults<ProduceOutcome> {
        // Every partition's append is queued before any wait, so one flush can carry them all.
        let mut pending = Vec::with_capacity(partitions.len());
        for (tp, records) in partitions {
            let mut in_turn = None;
            let appended = match (self.get(&tp), records) {
                (None, _) => Err(PartitionError::UnknownTopicOrPartition),
                (Some(_), None) => Err(PartitionError::NoRecords),
                (Some(partition), Some(_)) if acks == Acks::All && partition.check_enough_replicas().is_err() => {
                    Err(PartitionError::NotEnoughReplicas)
                }
                (Some(partition), Some(records)) => {
                    let guard = guards.iter().find(|(g, _)| *g == tp).map(|(_, guard)| *guard);
                    // Only a write of a producer with writes being verified here may have to wait
                    // its turn: keep a copy to append again.
                    let copy = partition.verifying_writes_of(&records).then(|| records.clone());
                    let appended = partition.append(records, guard);
                    if let (Err(e), Some(copy)) = (&appended, copy)
                        && partition.behind_a_verified_write(e)
                    {
                        in_turn = Some((partition.clone(), (copy, guard)));
                    }
                    appended.map(|a| (partition, a))
                }
            };
            pending.push((tp, appended, in_turn));
        }
        let deadline = glommio::timer::sleep(timeout);
        let mut deadline = std::pin::pin!(deadline);
        let mut out = Vec::with_capacity(pending.len());
        for (tp, appended, in_turn) in pending {
            let appended = match in_turn {
                Some((partition, (records, guard))) => {
                    append_in_turn(&partition, records, guard, deadline.as_mut()).await.map(|a| (partition, a))
                }
                None => appended,
            };
            let result = match appended {
                Err(e) => Err(e),
                Ok((partition, appended)) => {
                    let log_append_time = appended.log_append_time;
                    let acknowledged = std::pin::pin!(appended.acknowledged(acks, &partition));
                    match first_of(acknowledged, deadline.as_mut()).await {
                        Either::Left(result) => result,
                        Either::Right(()) => Err(PartitionError::Timeout),
                    }
                    .map(|info| ProduceOutcome {
                        base_offset: info.base_offset,
                        log_append_time,
                        log_start_offset: info.log_start_offset,
                    })
                }
            };
            if let Err(e) = &result
                && matches!(e, PartitionError::Storage(s) if s.is_storage_failure())
            {
                error!(tp = %tp, error = %e, "append failed");
            }
            out.push((tp, result));
        }
        out
    }

    async fn read_all(
        &self,
        work: &[FetchWork],
        isolation: IsolationLevel,
        replica: Option<i32>,
    ) -> PartitionResults<Fetched> {
        let mut out = Vec::with_capacity(work.len());
        for item in work {
            let result = match (self.get(&item.topic_partition), replica) {
                (None, _) => Err(PartitionError::UnknownTopicOrPartition),
                (Some(p), Some(replica)) => {
                    p.fetch_for_follower(
                        replica,
                        item.offset,
                        item.max_bytes,
                        item.current_leader_epoch,
                        item.last_fetched_epoch,
                    )
                    .await
                }
                (Some(p), None) => match p.check_leader_epoch(item.current_leader_epoch) {
                    Ok(()) => p.fetch(item.offset, item.max_bytes, isolation).await,
                    Err(e) => Err(e),
                },
            };
            out.push((item.topic_partition.clone(), result));
        }
        out
    }

    /// Reads; while the order may wait and found too little, reports the count to the caller
    /// and waits on this shard for a watermark (the high watermark, or for read_committed the
    /// last stable offset) to move past what was read, the deadline, or the caller's hurry, and
    /// reads again.
    async fn fetch(&self, order: FetchOrder) -> PartitionResults<Fetched> {
        let (isolation, replica) = (order.isolation, order.replica);
        let mut results = self.read_all(&order.work, isolation, replica).await;
        let Some(mut wait) = order.wait else { return results };
        loop {
            let bytes: u64 = results.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|f| f.bytes).sum();
            // A diverged follower is told at once, as an error would be.
            let errors = results.iter().any(|(_, r)| r.as_ref().map_or(true, |f| f.diverging_epoch.is_some()));
            let now = Instant::now();
            if bytes >= wait.min_bytes || errors || now >= wait.until {
                return results;
            }
            // Below min_bytes here; the caller adds this to the other shards' counts and hurries
            // everyone once the sum is enough.
            wait.progress.report(bytes);
            let mut waits: Vec<Pin<Box<dyn Future<Output = Woke> + '_>>> = Vec::new();
            for ((tp, result), item) in results.iter().zip(&order.work) {
                if let (Some(partition), Ok(fetched)) = (self.get(tp), result) {
                    // New data for this read means its watermark passing both what it saw and
                    // where it reads from: a read_committed fetch blocked by an open
                    // transaction sleeps through the transaction's appends (they move the HW,
                    // not the LSO) and wakes when the marker commits.
                    let seen = fetched.bound.max(item.offset);
                    waits.push(Box::pin(async move {
                        partition.wait_for_data_beyond(seen, isolation, replica.is_some()).await;
                        Woke::Data
                    }));
                }
            }
            let left = wait.until - now;
            waits.push(Box::pin(async move {
                glommio::timer::sleep(left).await;
                Woke::Deadline
            }));
            let hurry = &mut wait.hurry;
            waits.push(Box::pin(async move {
                let _ = hurry.await;
                Woke::Hurry
            }));
            let woke = first_of_all(waits).await;
            // A failed or closing log wakes its waiters at once and for good: answer rather
            // than spin on it until the deadline.
            let stopped = results.iter().any(|(tp, _)| self.get(tp).is_none_or(|p| p.is_stopped()));
            results = self.read_all(&order.work, isolation, replica).await;
            if woke == Woke::Hurry || stopped {
                return results;
            }
            glommio::yield_if_needed().await;
        }
    }
}

/// Why a fetch's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woke {
    Data,
    Deadline,
    Hurry,
}

/// Appends a write that came before an earlier write of its producer still being verified (see
/// [`Partition::behind_a_verified_write`]): again each time the high watermark moves (the earlier
/// write landed, or a marker ended the transaction), until it is no longer behind or the
/// request's deadline passes; then the last answer stands.
async fn append_in_turn(
    partition: &Partition,
    records: BytesMut,
    guard: Option<u64>,
    mut deadline: Pin<&mut impl Future<Output = ()>>,
) -> Result<Appended, PartitionError> {
    loop {
        let high_watermark = partition.high_watermark();
        let appended = partition.append(records.clone(), guard);
        match &appended {
            Err(e) if partition.behind_a_verified_write(e) && !partition.is_stopped() => {}
            _ => return appended,
        }
        let moved =
            std::pin::pin!(partition.wait_for_data_beyond(high_watermark, IsolationLevel::ReadUncommitted, false,));
        if let Either::Right(()) = first_of(moved, deadline.as_mut()).await {
            return appended;
        }
    }
}

/// The output of whichever of `futures` finishes first.
async fn first_of_all<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> T {
    std::future::poll_fn(|cx| {
        for future in futures.iter_mut() {
            if let Poll::Ready(v) = future.as_mut().poll(cx) {
                return Poll::Ready(v);
            }
        }
        Poll::Pending
    })
    .await
}

enum Either<L, R> {
    Left(L),
    Right(R),
}

/// Whichever of two futures finishes first.
async fn first_of<A: Future + Unpin, B: Future + Unpin>(mut a: A, mut b: B) -> Either<A::Output, B::Output> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = Pin::new(&mut a).poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = Pin::new(&mut b).poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}
