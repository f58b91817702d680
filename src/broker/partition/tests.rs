//! The partition layer over a real log on a real shard: read_committed fetches (bounded by the
//! last stable offset, naming aborted transactions, long polls that sleep through an open
//! transaction and wake at its marker), ListOffsets by isolation level, and DescribeProducers.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_channel::{mpsc, oneshot};

use super::messages::{FetchOrder, FetchWait, FetchWork, PartitionRequest, PartitionResponse, Progress};
use super::registry::ShardPartitions;
use super::replica::{Acks, Fetched, IsolationLevel, OffsetSpec, Partition, PartitionError};
use crate::broker::config::BrokerConfig;
use crate::broker::topic_config::TopicConfig;
use crate::model::{BatchIter, ControlType, LeaderEpoch, Offset, ProducerId, Timestamp, TopicId, TopicPartition};
use crate::storage::{AbortedTxn, Error, LogConfig, ProducerError};
use crate::testing::{batch_of, run_on_shard};

const BASE_TIME: i64 = 1_700_000_000_000;

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// A shard's partition layer with one open partition, `t-0`, in `dir`.
async fn partitions(dir: &std::path::Path) -> (Rc<ShardPartitions>, Rc<Partition>) {
    let config = BrokerConfig::for_data_dir(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    let partitions = Rc::new(ShardPartitions::new(Arc::new(config)));
    let topic = TopicConfig::resolve(&LogConfig::default().into(), &BTreeMap::new()).unwrap();
    partitions.open(tp(), TopicId::random().unwrap(), topic, LeaderEpoch(0)).await;
    let partition = partitions.get(&tp()).unwrap();
    (partitions, partition)
}

/// `records` records timestamped `BASE_TIME + seed`; from producer `producer` (sequence
/// `sequence` on) unless it is negative.
fn records(seed: u64, records: usize, producer: i64, sequence: i32, transactional: bool) -> BytesMut {
    let mut bytes = batch_of(records, 50, seed, Timestamp(BASE_TIME + seed as i64));
    if producer >= 0 {
        crate::model::set_producer(&mut bytes, ProducerId(producer), 0, sequence, transactional);
    }
    bytes
}

/// Appends and waits for the high watermark; a transactional first write is verified first,
/// as the produce path does with the transaction coordinator.
async fn append(partition: &Partition, bytes: BytesMut) -> Offset {
    let appended = match partition.append(bytes.clone(), None) {
        Err(PartitionError::NeedsVerification { guard, .. }) => partition.append(bytes, Some(guard)),
        other => other,
    };
    appended.unwrap().acknowledged(Acks::All, partition).await.unwrap().base_offset
}

async fn end_txn(partition: &Partition, producer: i64, kind: ControlType) -> Offset {
    let (appended, _) = partition.append_marker(ProducerId(producer), 0, 1, kind).unwrap();
    appended.acknowledged(Acks::All, partition).await.unwrap().base_offset
}

/// The bytes a fetch returned, in memory.
async fn fetched_bytes(fetched: &Fetched) -> Vec<u8> {
    let slice =
        crate::storage::ReadSlice { chunks: fetched.chunks.clone(), bytes: fetched.bytes, ..Default::default() };
    slice.to_vec().await.unwrap()
}

/// The base offsets of the batches a fetch returned.
async fn batch_offsets(fetched: &Fetched) -> Vec<i64> {
    let bytes = fetched_bytes(fetched).await;
    BatchIter::new(&bytes, usize::MAX).map_while(Result::ok).map(|b| b.base_offset().0).collect()
}

fn order(offset: i64, isolation: IsolationLevel, wait: Option<FetchWait>) -> PartitionRequest {
    let work = vec![FetchWork {
        topic_partition: tp(),
        offset: Offset(offset),
        max_bytes: 1 << 20,
        current_leader_epoch: -1,
        last_fetched_epoch: -1,
    }];
    PartitionRequest::Fetch(FetchOrder { work, isolation, replica: None, wait })
}

async fn fetch(partitions: &ShardPartitions, offset: i64, isolation: IsolationLevel) -> Fetched {
    match partitions.serve(order(offset, isolation, None)).await {
        PartitionResponse::Fetch(mut results) => results.remove(0).1.unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn read_committed_stops_at_the_last_stable_offset_and_names_aborted_transactions() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (partitions, partition) = partitions(dir.path()).await;
        append(&partition, records(1, 2, -1, 0, false)).await;
        let txn = append(&partition, records(2, 2, 9, 0, true)).await;
        append(&partition, records(3, 1, -1, 0, false)).await;
        assert_eq!((partition.high_watermark(), partition.last_stable_offset()), (Offset(5), txn));

        let committed = fetch(&partitions, 0, IsolationLevel::ReadCommitted).await;
        assert_eq!((committed.high_watermark, committed.last_stable_offset), (Offset(5), Offset(2)));
        assert_eq!(batch_offsets(&committed).await, [0]);
        assert_eq!(committed.aborted_transactions, Some(vec![]));
        let nothing = fetch(&partitions, 2, IsolationLevel::ReadCommitted).await;
        assert_eq!((nothing.bytes, nothing.aborted_transactions), (0, Some(vec![])));
        let uncommitted = fetch(&partitions, 0, IsolationLevel::ReadUncommitted).await;
        assert_eq!(uncommitted.last_stable_offset, Offset(2), "the real LSO, whatever the isolation");
        assert_eq!(batch_offsets(&uncommitted).await, [0, 2, 4]);
        assert_eq!(uncommitted.aborted_transactions, None);

        let marker = end_txn(&partition, 9, ControlType::Abort).await;
        let committed = fetch(&partitions, 2, IsolationLevel::ReadCommitted).await;
        assert_eq!(committed.last_stable_offset, marker.plus(1));
        assert_eq!(batch_offsets(&committed).await, [2, 4, 5]);
        let aborted = AbortedTxn {
            producer_id: ProducerId(9),
            first_offset: txn,
            last_offset: marker,
            last_stable_offset: marker.plus(1),
        };
        assert_eq!(committed.aborted_transactions, Some(vec![aborted]));
        // A fetch past the aborted transaction does not name it.
        append(&partition, records(4, 1, -1, 0, false)).await;
        let later = fetch(&partitions, 6, IsolationLevel::ReadCommitted).await;
        assert_eq!(batch_offsets(&later).await, [6]);
        assert_eq!(later.aborted_transactions, Some(vec![]));
        partitions.close_all().await;
    });
}

#[test]
fn a_read_committed_long_poll_sleeps_through_an_open_transaction_and_wakes_at_its_marker() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (partitions, partition) = partitions(dir.path()).await;
        let txn = append(&partition, records(1, 2, 9, 0, true)).await;
        let (progress_to, mut progress) = mpsc::unbounded();
        let (hurry_to, hurry) = oneshot::channel();
        let wait = FetchWait {
            until: Instant::now() + Duration::from_secs(20),
            min_bytes: 1,
            progress: Progress { index: 0, to: progress_to },
            hurry,
        };
        let started = Instant::now();
        let task = {
            let partitions = partitions.clone();
            glommio::spawn_local(
                async move { partitions.serve(order(0, IsolationLevel::ReadCommitted, Some(wait))).await },
            )
        };
        // The transaction goes on: the HW moves, the LSO does not, and the wait neither
        // answers nor reads again (each read would report its count).
        for sequence in 2..6 {
            append(&partition, records(2, 1, 9, sequence, true)).await;
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
        assert!(partition.high_watermark() > txn.plus(2));
        let mut reports = 0;
        while progress.try_recv().is_ok() {
            reports += 1;
        }
        assert_eq!(reports, 1, "one read, then a wait that stayed asleep");
        let marker = end_txn(&partition, 9, ControlType::Commit).await;
        let answer = match task.await {
            PartitionResponse::Fetch(mut results) => results.remove(0).1.unwrap(),
            other => panic!("{other:?}"),
        };
        assert!(started.elapsed() < Duration::from_secs(10), "answered at the marker, not the deadline");
        assert_eq!(answer.last_stable_offset, marker.plus(1));
        assert_eq!(batch_offsets(&answer).await, [0, 2, 3, 4, 5, 6]);
        assert_eq!(answer.aborted_transactions, Some(vec![]));
        drop(hurry_to);
        partitions.close_all().await;
    });
}

#[test]
fn list_offsets_and_describe_producers_see_the_open_transaction() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (_partitions, partition) = partitions(dir.path()).await;
        append(&partition, records(1, 2, 3, 0, false)).await;
        let txn = append(&partition, records(50, 2, 9, 0, true)).await;
        let high_watermark = partition.high_watermark();
        let list = |spec, isolation| {
            let partition = partition.clone();
            async move { partition.list_offset(spec, isolation).await.unwrap() }
        };
        use IsolationLevel::{ReadCommitted, ReadUncommitted};
        assert_eq!(list(OffsetSpec::Latest, ReadUncommitted).await.1, high_watermark);
        assert_eq!(list(OffsetSpec::Latest, ReadCommitted).await.1, txn);
        // The transaction's batch has the largest timestamp: not for read_committed yet.
        let newest = Timestamp(BASE_TIME + 50);
        assert_eq!(list(OffsetSpec::MaxTimestamp, ReadUncommitted).await, (newest, txn));
        assert_eq!(list(OffsetSpec::MaxTimestamp, ReadCommitted).await, (Timestamp::NONE, Offset(-1)));
        assert_eq!(list(OffsetSpec::Timestamp(newest), ReadUncommitted).await, (newest, txn));
        assert_eq!(list(OffsetSpec::Timestamp(newest), ReadCommitted).await, (Timestamp::NONE, Offset(-1)));
        assert_eq!(list(OffsetSpec::Timestamp(Timestamp(BASE_TIME)), ReadCommitted).await.1, Offset(0));
        // Without tiered storage the local log is the whole log, and nothing is tiered (Kafka: -1).
        assert_eq!(OffsetSpec::from_wire(-4), OffsetSpec::EarliestLocal);
        assert_eq!(list(OffsetSpec::EarliestLocal, ReadUncommitted).await.1, Offset(0));
        assert_eq!(OffsetSpec::from_wire(-5), OffsetSpec::LatestTiered);
        assert_eq!(list(OffsetSpec::LatestTiered, ReadUncommitted).await, (Timestamp::NONE, Offset(-1)));

        let log_dir = partition.describe_log_dir();
        assert_eq!(log_dir.offset_lag, 0);
        assert!(log_dir.size_bytes > 0, "{log_dir:?}");

        let producers = partition.describe_producers();
        assert_eq!(producers.len(), 2);
        assert_eq!((producers[0].producer_id, producers[0].last_sequence), (ProducerId(3), 1));
        assert_eq!(producers[0].current_txn_start_offset, None);
        assert_eq!((producers[1].producer_id, producers[1].producer_epoch), (ProducerId(9), 0));
        assert_eq!((producers[1].last_sequence, producers[1].current_txn_start_offset), (1, Some(txn)));
        assert_eq!(producers[1].coordinator_epoch, -1);
        end_txn(&partition, 9, ControlType::Abort).await;
        let producers = partition.describe_producers();
        assert_eq!((producers[1].current_txn_start_offset, producers[1].coordinator_epoch), (None, 1));
        assert_eq!(list(OffsetSpec::Latest, ReadCommitted).await.1, partition.high_watermark());
    });
}

/// KIP-890 with a producer's two first writes of a transaction in flight at once (the Java
/// producer sends up to five): both come back for verification with the same guard, and the
/// second batch's guarded retry may come first. Refused for its sequence gap, it must leave the
/// guard for the first batch's retry, which opens the transaction; the second then goes in
/// unguarded.
#[test]
fn a_refused_guarded_write_leaves_the_guard_for_the_producers_earlier_batch() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (_partitions, partition) = partitions(dir.path()).await;
        // An earlier transaction, so the sequences of the next one go on from 2.
        append(&partition, records(0, 2, 7, 0, true)).await;
        end_txn(&partition, 7, ControlType::Commit).await;
        let first = records(1, 3, 7, 2, true);
        let second = records(2, 3, 7, 5, true);
        let guard = |result| match result {
            Err(PartitionError::NeedsVerification { guard, .. }) => guard,
            other => panic!("expected a verification, got {other:?}"),
        };
        let first_guard = guard(partition.append(first.clone(), None).map(|_| ()));
        let second_guard = guard(partition.append(second.clone(), None).map(|_| ()));
        assert_eq!(first_guard, second_guard);
        match partition.append(second.clone(), Some(second_guard)) {
            Err(PartitionError::Storage(Error::Producer(ProducerError::OutOfOrderSequence { .. }))) => {}
            other => panic!("expected a sequence gap, got {:?}", other.map(|_| ())),
        }
        let offset = partition.append(first, Some(first_guard)).unwrap().acknowledged(Acks::All, &partition).await;
        assert_eq!(offset.unwrap().base_offset, Offset(3));
        let offset = partition.append(second, None).unwrap().acknowledged(Acks::All, &partition).await;
        assert_eq!(offset.unwrap().base_offset, Offset(6));
        // Once the transaction ends, the producer's next first write verifies again.
        end_txn(&partition, 7, ControlType::Commit).await;
        guard(partition.append(records(3, 1, 7, 8, true), Some(first_guard)).map(|_| ()));
    });
}

/// A produce of one partition through the shard's serving path, as the produce handler sends it.
async fn produce(partitions: &ShardPartitions, bytes: BytesMut, guard: Option<u64>) -> Result<Offset, PartitionError> {
    let request = PartitionRequest::Produce {
        acks: Acks::All,
        timeout: Duration::from_secs(20),
        partitions: vec![(tp(), Some(bytes))],
        guards: guard.map(|guard| vec![(tp(), guard)]).unwrap_or_default(),
    };
    match partitions.serve(request).await {
        PartitionResponse::Produce(mut results) => results.remove(0).1.map(|outcome| outcome.base_offset),
        other => panic!("{other:?}"),
    }
}

fn verification(result: Result<Offset, PartitionError>) -> u64 {
    match result {
        Err(PartitionError::NeedsVerification { guard, .. }) => guard,
        other => panic!("expected a verification, got {other:?}"),
    }
}

/// The same race through the serving path: the later batch's verified retry arrives while the
/// earlier one is still being verified. Refused at once, its gap would reach the producer after
/// the earlier batch's success, when it looks real (the Java producer then aborts the
/// transaction); so it waits for the earlier batch and lands after it.
#[test]
fn a_verified_write_ahead_of_its_producers_earlier_one_waits_for_it() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (partitions, partition) = partitions(dir.path()).await;
        append(&partition, records(0, 2, 7, 0, true)).await;
        end_txn(&partition, 7, ControlType::Commit).await;
        let first = records(1, 3, 7, 2, true);
        let second = records(2, 3, 7, 5, true);
        let guard = verification(produce(&partitions, first.clone(), None).await);
        assert_eq!(verification(produce(&partitions, second.clone(), None).await), guard);
        let later = {
            let partitions = partitions.clone();
            glommio::spawn_local(async move { produce(&partitions, second, Some(guard)).await })
        };
        glommio::timer::sleep(Duration::from_millis(100)).await;
        assert_eq!(partition.high_watermark(), Offset(3), "the later batch waits");
        assert_eq!(produce(&partitions, first, Some(guard)).await.unwrap(), Offset(3));
        assert_eq!(later.await.unwrap(), Offset(6));
        partitions.close_all().await;
    });
}

/// A verified write with a real gap (no earlier write of its producer awaits verification here)
/// is refused at once, not at the request's deadline.
#[test]
fn a_verified_write_with_a_real_gap_is_refused_at_once() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (partitions, partition) = partitions(dir.path()).await;
        append(&partition, records(0, 2, 7, 0, true)).await;
        end_txn(&partition, 7, ControlType::Commit).await;
        let gapped = records(1, 3, 7, 9, true);
        let guard = verification(produce(&partitions, gapped.clone(), None).await);
        let started = Instant::now();
        match produce(&partitions, gapped, Some(guard)).await {
            Err(PartitionError::Storage(Error::Producer(ProducerError::OutOfOrderSequence {
                expected: 2, ..
            }))) => {}
            other => panic!("expected a sequence gap, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "refused at once");
        partitions.close_all().await;
    });
}

/// Three writes of a transaction: the first two verify at once, the first lands and opens the
/// transaction, then the third comes before the second's retry, itself verified too or sent
/// once the transaction opened (no verification). The guard is spent, but the second is still
/// on its way: the third waits for it rather than answering a gap.
async fn a_write_waits_for_an_earlier_verified_one(third_verified: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (partitions, partition) = partitions(dir.path()).await;
    append(&partition, records(0, 2, 7, 0, true)).await;
    end_txn(&partition, 7, ControlType::Commit).await;
    let (first, second, third) = (records(1, 3, 7, 2, true), records(2, 3, 7, 5, true), records(3, 3, 7, 8, true));
    let guard = verification(produce(&partitions, first.clone(), None).await);
    assert_eq!(verification(produce(&partitions, second.clone(), None).await), guard);
    if third_verified {
        assert_eq!(verification(produce(&partitions, third.clone(), None).await), guard);
    }
    assert_eq!(produce(&partitions, first, Some(guard)).await.unwrap(), Offset(3));
    let later = {
        let partitions = partitions.clone();
        let third_guard = third_verified.then_some(guard);
        glommio::spawn_local(async move { produce(&partitions, third, third_guard).await })
    };
    glommio::timer::sleep(Duration::from_millis(100)).await;
    assert_eq!(partition.high_watermark(), Offset(6), "the third batch waits");
    assert_eq!(produce(&partitions, second, Some(guard)).await.unwrap(), Offset(6));
    assert_eq!(later.await.unwrap(), Offset(9));
    partitions.close_all().await;
}

#[test]
fn a_verified_write_waits_for_an_earlier_one_after_the_transaction_opened() {
    run_on_shard(|| a_write_waits_for_an_earlier_verified_one(true));
}

#[test]
fn a_write_into_the_open_transaction_waits_for_an_earlier_verified_one() {
    run_on_shard(|| a_write_waits_for_an_earlier_verified_one(false));
}

/// Two copies of `t-0` on one shard, in two data dirs: the leader (node 1) and a follower
/// (node 2), both replicas, ISR both.
async fn leader_and_follower(
    dir: &std::path::Path,
) -> (Rc<ShardPartitions>, Rc<Partition>, Rc<ShardPartitions>, Rc<Partition>) {
    let (leaders, leader) = partitions(&dir.join("leader")).await;
    let (followers, follower) = partitions(&dir.join("follower")).await;
    leader.become_leader(1, LeaderEpoch(1), vec![1, 2], vec![1, 2], 0).unwrap();
    follower.become_follower(1, LeaderEpoch(1), 2);
    (leaders, leader, followers, follower)
}

/// One round of the follower's fetch loop, as the fetcher runs it: fetch from the follower's
/// position, apply records or the diverging epoch, follow the high watermark.
async fn replicate_once(leader: &Partition, follower: &Partition) -> Fetched {
    let (_, epoch, offset, last_epoch, _) = follower.follower_position().unwrap();
    let fetched = leader.fetch_for_follower(2, offset, 1 << 20, epoch.0, last_epoch).await.unwrap();
    if let Some((epoch, end)) = fetched.diverging_epoch {
        follower.truncate_diverged(epoch, end).await.unwrap();
    } else if fetched.bytes > 0 {
        follower.append_replicated(fetched_bytes(&fetched).await.into()).await.unwrap();
    }
    follower.follow_high_watermark(fetched.high_watermark);
    fetched
}

#[test]
fn acks_all_completes_once_the_follower_has_fetched_past_the_batch() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (_l, leader, _f, follower) = leader_and_follower(dir.path()).await;
        let appended = leader.append(records(1, 3, -1, 0, false), None).unwrap();
        let acked = appended.acknowledged(Acks::All, &leader);
        futures_lite::pin!(acked);
        // Durable on the leader, but the follower has not fetched: not committed.
        let waited = futures_lite::future::or(async { Some(acked.as_mut().await) }, async {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            None
        })
        .await;
        assert!(waited.is_none(), "acks=all waited for the follower");
        assert_eq!(leader.high_watermark(), Offset(0));
        replicate_once(&leader, &follower).await; // brings the batch over
        replicate_once(&leader, &follower).await; // tells the leader the follower has it
        assert_eq!(acked.await.unwrap().base_offset, Offset(0));
        assert_eq!(leader.high_watermark(), Offset(3));
        replicate_once(&leader, &follower).await;
        assert_eq!(follower.high_watermark(), Offset(3), "the follower follows the leader's HW");
    });
}

#[test]
fn only_the_leader_answers_a_consumers_fetch_and_list_offsets() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (_l, leader, _f, follower) = leader_and_follower(dir.path()).await;
        let _appended = leader.append(records(1, 3, -1, 0, false), None).unwrap();
        let read = IsolationLevel::ReadUncommitted;
        // The high watermark passes the records once the follower fetches past them, which it
        // does only once they are durable on both sides (flush-mode sync): a few rounds.
        for _ in 0..100 {
            replicate_once(&leader, &follower).await;
            if leader.fetch(Offset(0), 1 << 20, read).await.unwrap().high_watermark == Offset(3) {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(leader.fetch(Offset(0), 1 << 20, read).await.unwrap().high_watermark, Offset(3));
        // The follower holds the records too, but a consumer there (with stale metadata, or
        // at the same epoch) is sent to the leader, not served from a log that may lag it.
        assert!(matches!(follower.fetch(Offset(0), 1 << 20, read).await, Err(PartitionError::NotLeader)));
        assert!(matches!(follower.list_offset(OffsetSpec::Latest, read).await, Err(PartitionError::NotLeader)));
        assert_eq!(leader.list_offset(OffsetSpec::Latest, read).await.unwrap().1, Offset(3));
    });
}

#[test]
fn a_deposed_leaders_unreplicated_tail_is_truncated_by_the_diverging_epoch() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (_l, old, _f, new) = leader_and_follower(dir.path()).await;
        // Three records replicated under epoch 1, then two the follower never got.
        append_unacked(&old, 1, 3).await;
        replicate_once(&old, &new).await;
        append_unacked(&old, 2, 2).await;
        assert_eq!((old.log_end_offset(), new.log_end_offset()), (Offset(5), Offset(3)));
        // The follower becomes leader under epoch 2 and takes one record; the old leader follows.
        new.become_leader(2, LeaderEpoch(2), vec![1, 2], vec![2], 1).unwrap();
        append_unacked(&new, 3, 1).await;
        old.become_follower(2, LeaderEpoch(2), 2);
        let (_, _, offset, last_epoch, _) = old.follower_position().unwrap();
        assert_eq!((offset, last_epoch), (Offset(5), 1));
        let fetched = new.fetch_for_follower(1, offset, 1 << 20, 2, last_epoch).await.unwrap();
        assert_eq!(fetched.diverging_epoch, Some((LeaderEpoch(1), Offset(3))), "epoch 1 ends at 3 on the new leader");
        old.truncate_diverged(LeaderEpoch(1), Offset(3)).await.unwrap();
        assert_eq!(old.log_end_offset(), Offset(3), "the unreplicated tail is gone");
        // The next fetch brings the new leader's record, and the logs agree.
        let fetched = new.fetch_for_follower(1, Offset(3), 1 << 20, 2, 1).await.unwrap();
        assert!(fetched.diverging_epoch.is_none() && fetched.bytes > 0);
        old.append_replicated(fetched_bytes(&fetched).await.into()).await.unwrap();
        assert_eq!(old.log_end_offset(), Offset(4));
        // A stale epoch is fenced; a fetch of a non-replica is refused.
        assert!(matches!(new.fetch_for_follower(1, Offset(4), 1, 1, 2).await, Err(PartitionError::FencedLeaderEpoch)));
        assert!(matches!(new.fetch_for_follower(9, Offset(4), 1, 2, 2).await, Err(PartitionError::NotLeader)));
        // The deposed leader refuses producers.
        assert!(matches!(old.append(records(4, 1, -1, 0, false), None), Err(PartitionError::NotLeader)));
    });
}

/// Appends `count` records and waits until they are durable (not committed).
async fn append_unacked(partition: &Partition, seed: u64, count: usize) {
    partition
        .append(records(seed, count, -1, 0, false), None)
        .unwrap()
        .acknowledged(Acks::Leader, partition)
        .await
        .unwrap();
}

#[test]
fn a_compacted_topic_refuses_a_record_without_a_key_compressed_or_not() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (_partitions, partition) = partitions(dir.path()).await;
        let overrides = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        partition.set_config(TopicConfig::resolve(&LogConfig::default().into(), &overrides).unwrap());
        let keyed = |codec| {
            let mut builder = crate::model::BatchBuilder::new(Timestamp(BASE_TIME));
            builder.push(Some(b"k"), Some(b"v"), Timestamp(BASE_TIME), &[]);
            builder.build_compressed(codec).unwrap()
        };
        let keyless = |codec| {
            let mut builder = crate::model::BatchBuilder::new(Timestamp(BASE_TIME));
            builder.push(Some(b"k"), Some(b"v"), Timestamp(BASE_TIME), &[]);
            builder.push(None, Some(b"v"), Timestamp(BASE_TIME), &[]);
            builder.build_compressed(codec).unwrap()
        };
        for codec in [crate::model::CompressionType::None, crate::model::CompressionType::Zstd] {
            match partition.append(keyless(codec), None) {
                Err(PartitionError::InvalidRecord(message)) => {
                    assert!(message.contains("without key"), "{message}")
                }
                other => panic!("{codec:?}: {:?}", other.map(|_| ())),
            }
            append(&partition, keyed(codec)).await;
        }
        assert_eq!(partition.log_end_offset(), Offset(2), "only the keyed batches landed");
    });
}
