//! A follower's log: batches copied from a leader's reads with `append_replicated`, truncation
//! after a divergence (`truncate_to`, `reset_to`, and a crash in the middle of one), the high
//! watermark bound, and the long poll on the log end.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use super::*;
use crate::model::{ControlType, ProducerId, set_producer};
use crate::storage::log::TRUNCATION_CRASH_STEP;
use crate::storage::{AbortedTxn, BatchEntry};
use crate::testing::run_on_shard;

const ALL: Offset = Offset(i64::MAX);

/// A batch of `records` records from producer `id` (epoch 0) starting at `sequence`.
fn produced(id: i64, sequence: i32, records: usize, transactional: bool) -> BytesMut {
    let mut bytes = batch(sequence as u64 + 1000 * id as u64, records, 150);
    set_producer(&mut bytes, ProducerId(id), 0, sequence, transactional);
    bytes
}

async fn open_as(dir: &Path, cache: &BatchCache, high_watermark: HighWatermark) -> PartitionLog {
    PartitionLog::open(OpenOptions {
        dir: dir.to_path_buf(),
        topic_partition: TopicPartition::new("t", 0),
        config: small_config(4096),
        cache,
        files: &crate::storage::FileCache::new(crate::storage::FileCacheConfig::default()),
        high_watermark,
    })
    .await
    .unwrap()
}

async fn durable(log: &PartitionLog, records: BytesMut, epoch: LeaderEpoch) -> Offset {
    append(log, records, epoch).unwrap().durable().await.unwrap().base_offset
}

async fn marker(log: &PartitionLog, producer: i64, kind: ControlType, epoch: LeaderEpoch) {
    let (pending, _) = log.append_marker(ProducerId(producer), 0, 1, kind, epoch).unwrap();
    pending.durable().await.unwrap();
}

/// What the producer state says of each producer, broker time left out.
type ProducerFacts = (ProducerId, i16, Option<Offset>, Vec<BatchEntry>);

fn producers(log: &PartitionLog) -> Vec<ProducerFacts> {
    let mut out: Vec<_> = log.with_producers(|table| {
        table
            .producers()
            .map(|(id, p)| (id, p.epoch, p.txn_first_offset, p.batches.iter().copied().collect()))
            .collect()
    });
    out.sort_by_key(|p: &ProducerFacts| p.0);
    out
}

fn epochs(log: &PartitionLog) -> Vec<Option<(LeaderEpoch, Offset)>> {
    (0..6).map(|e| log.end_offset_for_epoch(LeaderEpoch(e))).collect()
}

/// A leader log over three epochs: plain batches, an idempotent producer (7), an aborted
/// transaction (9), a committed one (11) and one left open (12).
async fn leader_history(log: &PartitionLog) {
    durable(log, batch(1, 3, 200), LeaderEpoch(1)).await;
    durable(log, produced(7, 0, 2, false), LeaderEpoch(1)).await;
    durable(log, produced(9, 0, 2, true), LeaderEpoch(1)).await;
    durable(log, produced(7, 2, 3, false), LeaderEpoch(2)).await;
    durable(log, batch(2, 2, 300), LeaderEpoch(2)).await;
    marker(log, 9, ControlType::Abort, LeaderEpoch(2)).await;
    durable(log, produced(11, 0, 2, true), LeaderEpoch(2)).await;
    for seed in 3..12 {
        durable(log, batch(seed, 1 + seed as usize % 3, 250), LeaderEpoch(3)).await;
    }
    durable(log, produced(7, 5, 1, false), LeaderEpoch(3)).await;
    marker(log, 11, ControlType::Commit, LeaderEpoch(3)).await;
    durable(log, produced(12, 0, 2, true), LeaderEpoch(3)).await;
    durable(log, batch(20, 2, 100), LeaderEpoch(3)).await;
}

fn assert_same_state(follower: &PartitionLog, leader: &PartitionLog) {
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(epochs(follower), epochs(leader));
    assert_eq!(follower.latest_epoch(), leader.latest_epoch());
    assert_eq!(producers(follower), producers(leader));
    assert_eq!(follower.aborted_transactions(Offset::ZERO, ALL), leader.aborted_transactions(Offset::ZERO, ALL));
    assert_eq!(follower.high_watermark(), leader.high_watermark());
    assert_eq!(follower.last_stable_offset(), leader.last_stable_offset());
}

#[test]
fn a_follower_copies_the_leaders_bytes_epochs_and_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        // An empty cache: the leader answers with file ranges cut at max_bytes, mid-batch.
        let cold = BatchCache::new(0);
        let leader = open_as(&path.join("leader"), &cold, HighWatermark::FollowsAcks).await;
        leader_history(&leader).await;
        assert!(leader.segment_count() > 2);
        let cache = BatchCache::new(u64::MAX);
        let follower = open_as(&path.join("follower"), &cache, HighWatermark::SetByReplication).await;
        let mut round = 0i64;
        while follower.log_end_offset() < leader.log_end_offset() {
            round += 1;
            // Start a little before the follower's end now and then: the answer overlaps.
            let start = follower.log_end_offset().plus(-(round % 3)).max(Offset::ZERO);
            let max_bytes = 300 + (round as u64 * 277) % 1500;
            let limits = ReadLimits { max_bytes, upper_bound: leader.log_end_offset() };
            let slice = leader.read(start, limits).await.unwrap();
            let bytes = Bytes::from(slice.to_vec().await.unwrap());
            if let Some(pending) = follower.append_replicated(bytes).unwrap() {
                pending.durable().await.unwrap();
            }
            follower.set_high_watermark_bound(leader.high_watermark());
            assert!(round < 1000, "replication made no progress");
        }
        let everything = read_all(&leader, Offset::ZERO, leader.log_end_offset()).await;
        assert_eq!(read_all(&follower, Offset::ZERO, follower.log_end_offset()).await, everything);
        assert_same_state(&follower, &leader);
        assert_eq!(follower.aborted_transactions(Offset::ZERO, ALL).len(), 1);
        assert!(follower.last_stable_offset() < follower.high_watermark(), "12's transaction is open");

        // Nothing new, a batch overlapping the log end, a corrupt batch: nothing is appended.
        // (A gap is a compacted leader's, and is taken: see cleaner_test.)
        let all = read_whole(&leader).await;
        assert!(follower.append_replicated(all.clone()).unwrap().is_none());
        let end_before = follower.log_end_offset();
        let mut overlapping = batch(30, 2, 10);
        crate::model::assign_offset_and_epoch(&mut overlapping, end_before.plus(-1), LeaderEpoch(3));
        assert!(matches!(
            follower.append_replicated(overlapping.freeze()),
            Err(Error::NotContiguous { expected, found }) if expected == end_before && found == end_before.plus(-1)
        ));
        let mut corrupt = batch(31, 1, 10);
        crate::model::assign_offset_and_epoch(&mut corrupt, end_before, LeaderEpoch(3));
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(matches!(follower.append_replicated(corrupt.freeze()), Err(Error::InvalidBatch(_))));
        let mut stale = batch(32, 1, 10);
        crate::model::assign_offset_and_epoch(&mut stale, end_before, LeaderEpoch(2));
        assert!(matches!(follower.append_replicated(stale.freeze()), Err(Error::StaleEpoch { .. })));
        assert_eq!(follower.log_end_offset(), end_before);

        follower.close().await.unwrap();
        let follower = open_as(&path.join("follower"), &cache, HighWatermark::SetByReplication).await;
        assert_eq!(read_all(&follower, Offset::ZERO, follower.log_end_offset()).await, everything);
        assert_same_state(&follower, &leader);
        follower.close().await.unwrap();
        leader.close().await.unwrap();
    });
}

/// The leader's whole log as one fetch answer.
async fn read_whole(log: &PartitionLog) -> Bytes {
    let mut out = Vec::new();
    for (_, bytes) in read_all(log, Offset::ZERO, log.log_end_offset()).await {
        out.extend_from_slice(&bytes);
    }
    Bytes::from(out)
}

/// Ten batches of two records per epoch 1, 2, 3 (offsets 0..20, 20..40, 40..60), every other
/// one from idempotent producer 5, and an aborted transaction of producer 6 in epoch 2.
/// Returns the batches appended, as `(base offset, bytes)`.
async fn three_epochs(log: &PartitionLog) -> Vec<(Offset, Vec<u8>)> {
    let mut sequence = 0;
    for epoch in 1..=3 {
        for i in 0..10 {
            let records = if i % 2 == 0 {
                batch(epoch * 100 + i, 2, 300)
            } else {
                sequence += 2;
                produced(5, sequence - 2, 2, false)
            };
            durable(log, records, LeaderEpoch(epoch as i32)).await;
        }
    }
    read_all(log, Offset::ZERO, log.log_end_offset()).await
}

fn producer_5_last_sequence(log: &PartitionLog) -> Option<i32> {
    log.with_producers(|t| t.get(ProducerId(5)).and_then(|p| p.last_sequence()))
}

#[test]
fn truncation_cuts_the_log_its_epochs_and_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let log = open(&path, small_config(4096), &cache).await;
        let batches = three_epochs(&log).await;
        assert_eq!(log.log_end_offset(), Offset(60));
        assert!(log.segment_count() > 3);
        assert_eq!(producer_5_last_sequence(&log), Some(29));

        // Inside the batch 30..32, mid epoch 2: the log ends at 30.
        log.truncate_to(Offset(31)).await.unwrap();
        let check = |log: &PartitionLog| {
            assert_eq!(log.log_end_offset(), Offset(30));
            assert_eq!(log.high_watermark(), Offset(30));
            assert_eq!(log.latest_epoch(), Some(LeaderEpoch(2)));
            assert_eq!(log.end_offset_for_epoch(LeaderEpoch(1)), Some((LeaderEpoch(1), Offset(20))));
            assert_eq!(log.end_offset_for_epoch(LeaderEpoch(3)), Some((LeaderEpoch(2), Offset(30))));
            // Producer 5's batches at 2, 6, ... 26: the one at 30 is gone.
            assert_eq!(producer_5_last_sequence(log), Some(13));
        };
        check(&log);
        let kept: Vec<_> = batches.iter().filter(|(base, _)| *base < Offset(30)).cloned().collect();
        assert_eq!(read_all(&log, Offset::ZERO, log.log_end_offset()).await, kept);
        log.close().await.unwrap();
        let log = open(&path, small_config(4096), &cache).await;
        check(&log);
        assert_eq!(read_all(&log, Offset::ZERO, log.log_end_offset()).await, kept);

        // At a batch boundary (24 starts a batch), then appends go on from there.
        log.truncate_to(Offset(24)).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(24));
        assert_eq!(producer_5_last_sequence(&log), Some(11));
        assert_eq!(durable(&log, batch(900, 3, 100), LeaderEpoch(4)).await, Offset(24));
        assert_eq!(durable(&log, produced(5, 12, 1, false), LeaderEpoch(4)).await, Offset(27));
        assert_eq!(log.end_offset_for_epoch(LeaderEpoch(2)), Some((LeaderEpoch(2), Offset(24))));
        assert_eq!(log.end_offset_for_epoch(LeaderEpoch(4)), Some((LeaderEpoch(4), Offset(28))));
        let expected = read_all(&log, Offset::ZERO, log.log_end_offset()).await;
        log.close().await.unwrap();
        let log = open(&path, small_config(4096), &cache).await;
        assert_eq!(read_all(&log, Offset::ZERO, log.log_end_offset()).await, expected);
        assert_eq!(producer_5_last_sequence(&log), Some(12));

        // A truncation fails the appends it cuts and keeps those it does not.
        let kept_append = append(&log, batch(901, 1, 100), LeaderEpoch(4)).unwrap();
        let cut_append = append(&log, batch(902, 1, 100), LeaderEpoch(4)).unwrap();
        log.truncate_to(Offset(29)).await.unwrap();
        assert_eq!(kept_append.durable().await.unwrap().base_offset, Offset(28));
        assert!(matches!(cut_append.durable().await, Err(Error::Truncated)));
        // An append after the cut reuses offset 29 and is not mistaken for the cut one.
        assert_eq!(durable(&log, batch(903, 1, 100), LeaderEpoch(5)).await, Offset(29));

        // While a truncation is under way the log takes no appends, and reads wait for it.
        let mut truncation = std::pin::pin!(log.truncate_to(Offset(29)));
        assert!(futures_lite::future::poll_once(&mut truncation).await.is_none(), "waits for the flusher");
        assert!(matches!(append(&log, batch(906, 1, 100), LeaderEpoch(5)), Err(Error::Truncated)));
        let read = log.read(Offset(28), ReadLimits { max_bytes: 1 << 20, upper_bound: ALL });
        let (read, truncated) = futures_lite::future::zip(read, truncation).await;
        truncated.unwrap();
        assert_eq!(read.unwrap().upper_offset, Offset(29), "the read saw the truncated log");

        // Past the end: nothing happens.
        log.truncate_to(Offset(1000)).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(29));

        // Reset: an empty log at 100, appends go there, and so after a reopen.
        let pending = append(&log, batch(904, 1, 100), LeaderEpoch(5)).unwrap();
        log.reset_to(Offset(100)).await.unwrap();
        assert!(matches!(pending.durable().await, Err(Error::Truncated)));
        let empty = |log: &PartitionLog| {
            assert_eq!(
                (log.log_start_offset(), log.log_end_offset(), log.high_watermark()),
                (Offset(100), Offset(100), Offset(100))
            );
            assert_eq!(log.latest_epoch(), None);
            assert!(producers(log).is_empty());
            assert!(log.aborted_transactions(Offset::ZERO, ALL).is_empty());
        };
        empty(&log);
        log.close().await.unwrap();
        let log = open(&path, small_config(4096), &cache).await;
        empty(&log);
        assert_eq!(durable(&log, batch(905, 2, 100), LeaderEpoch(6)).await, Offset(100));
        log.close().await.unwrap();
        let log = open(&path, small_config(4096), &cache).await;
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (Offset(100), Offset(102)));
        assert_eq!(log.end_offset_for_epoch(LeaderEpoch(6)), Some((LeaderEpoch(6), Offset(102))));
        log.close().await.unwrap();
    });
}

#[test]
fn a_truncation_cut_short_by_a_crash_recovers_to_a_valid_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        for step in 1..=4u32 {
            let dir = path.join(step.to_string());
            let cache = BatchCache::new(u64::MAX);
            let log = open(&dir, small_config(4096), &cache).await;
            let batches = three_epochs(&log).await;
            TRUNCATION_CRASH_STEP.with(|s| s.set(Some(step)));
            assert!(log.truncate_to(Offset(31)).await.is_err());
            TRUNCATION_CRASH_STEP.with(|s| s.set(None));
            assert!(
                matches!(log.check_writable(), Err(Error::Offline(_))),
                "a failed truncation takes the log offline"
            );
            drop(log);

            let log = open(&dir, small_config(4096), &cache).await;
            let end = log.log_end_offset();
            assert!(end >= Offset(30) && end <= Offset(60), "step {step}: log end {end}");
            let prefix: Vec<_> = batches.iter().filter(|(base, _)| *base < end).cloned().collect();
            assert_eq!(read_all(&log, Offset::ZERO, end).await, prefix, "step {step}: a prefix of the old log");
            // Every epoch the checkpoint knows begins at or below the end and agrees with the
            // batches: the epoch of the batch just below the end is the latest.
            let latest = log.latest_epoch().unwrap();
            let last_batch = prefix.last().unwrap();
            let view = crate::model::RecordBatch::parse_prefix(&last_batch.1, usize::MAX).unwrap();
            assert_eq!(view.leader_epoch(), latest, "step {step}");
            assert_eq!(log.end_offset_for_epoch(latest), Some((latest, end)));
            // The follower truncates again and goes on.
            log.truncate_to(Offset(31)).await.unwrap();
            assert_eq!(log.log_end_offset(), Offset(30));
            assert_eq!(durable(&log, batch(999, 1, 50), LeaderEpoch(7)).await, Offset(30));
            assert_eq!(producer_5_last_sequence(&log), Some(13));
            log.close().await.unwrap();
        }
    });
}

/// A full disk that fails the leader-epoch checkpoint's write (the flusher's, before the batch
/// that needed the new epoch) fails that append and takes the log offline, as a failed segment
/// write does: the batch never reaches a segment file under an epoch the checkpoint lacks. (The
/// memory once kept such an epoch and the next batch went to disk under it; recovery then cut
/// it as damage, and a chaos run lost acknowledged data.) Reopened, the log has everything
/// acknowledged and takes the epoch.
#[test]
fn a_failed_epoch_checkpoint_write_takes_the_log_offline_before_its_batch_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let log = open(&path, small_config(4096), &cache).await;
        durable(&log, batch(1, 2, 100), LeaderEpoch(1)).await;
        let acknowledged = log.log_end_offset();
        crate::storage::io::inject_fault(Some(crate::storage::io::Fault::DiskFullAfterBytes(0)));
        let pending = append(&log, batch(2, 2, 100), LeaderEpoch(2)).unwrap();
        let failed = pending.durable().await;
        crate::storage::io::inject_fault(None);
        assert!(failed.is_err_and(|e| e.is_storage_failure()), "the epoch's checkpoint write failed");
        assert!(append(&log, batch(3, 2, 100), LeaderEpoch(2)).is_err(), "offline");
        assert_eq!(log.log_end_offset(), acknowledged, "what was not written is dropped");
        assert_eq!(log.latest_epoch(), Some(LeaderEpoch(1)), "the epoch went with its batch");
        drop(log); // no clean shutdown: recovery checks every batch's epoch against the checkpoint
        let log = open(&path, small_config(4096), &cache).await;
        assert_eq!(log.log_end_offset(), acknowledged, "nothing acknowledged was cut");
        assert_eq!(durable(&log, batch(3, 2, 100), LeaderEpoch(2)).await, acknowledged);
        let end = log.log_end_offset();
        drop(log);
        let log = open(&path, small_config(4096), &cache).await;
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.latest_epoch(), Some(LeaderEpoch(2)));
        log.close().await.unwrap();
    });
}

#[test]
fn the_high_watermark_bound_decides_how_far_acknowledged_appends_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let log = open_as(&path, &cache, HighWatermark::SetByReplication).await;
        durable(&log, batch(1, 5, 10), LeaderEpoch(0)).await;
        assert_eq!(log.high_watermark(), Offset(0), "bound at the opened HW");
        log.set_high_watermark_bound(Offset(3));
        assert_eq!(log.high_watermark(), Offset(3), "min(ack_end, bound)");
        log.set_high_watermark_bound(Offset(2));
        assert_eq!(log.high_watermark(), Offset(3), "never backwards");
        log.set_high_watermark_bound(Offset(i64::MAX));
        assert_eq!(log.high_watermark(), Offset(5), "follows the acknowledged end");
        durable(&log, batch(2, 5, 10), LeaderEpoch(0)).await;
        assert_eq!(log.high_watermark(), Offset(10));

        // Frozen at the current HW.
        log.set_high_watermark_bound(log.high_watermark());
        durable(&log, batch(3, 5, 10), LeaderEpoch(0)).await;
        assert_eq!(log.high_watermark(), Offset(10));

        // Set before the flush: takes effect after it, never past the acknowledged end.
        let pending = append(&log, batch(4, 5, 10), LeaderEpoch(0)).unwrap();
        log.set_high_watermark_bound(Offset(18));
        assert_eq!(log.high_watermark(), Offset(15), "the last batch is not acknowledged yet");
        pending.durable().await.unwrap();
        assert_eq!(log.high_watermark(), Offset(18));

        // The test hook still moves it directly.
        log.set_high_watermark(Offset(19));
        assert_eq!(log.high_watermark(), Offset(19));
        log.close().await.unwrap();
    });
}

#[test]
fn unflushed_batches_are_read_up_to_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(0);
        let log = open(&path, small_config(4096), &cache).await;
        durable(&log, batch(1, 2, 100), LeaderEpoch(0)).await;
        let pending = append(&log, batch(2, 3, 100), LeaderEpoch(0)).unwrap();
        assert_eq!(log.ack_end_offset(), Offset(2));
        let slice =
            log.read(Offset(2), ReadLimits { max_bytes: 1 << 20, upper_bound: log.log_end_offset() }).await.unwrap();
        assert_eq!((slice.first_offset, slice.upper_offset), (Some(Offset(2)), Offset(5)));
        assert!(log.ack_end_offset() < Offset(5), "read before the flush");
        pending.durable().await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn a_wait_for_the_log_end_wakes_on_append_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let log = Rc::new(open(&path, small_config(4096), &cache).await);
        let waiter = |offset: i64| {
            let (log, woken) = (log.clone(), Rc::new(Cell::new(false)));
            let flag = woken.clone();
            let task = glommio::spawn_local(async move {
                log.wait_for_log_end_beyond(Offset(offset)).await;
                flag.set(true);
            });
            (task, woken)
        };
        let pause = || glommio::timer::sleep(std::time::Duration::from_millis(5));
        let (task, woken) = waiter(0);
        pause().await;
        assert!(!woken.get(), "nothing appended yet");
        let pending = append(&log, batch(1, 1, 10), LeaderEpoch(0)).unwrap();
        task.await;
        assert!(woken.get());
        pending.durable().await.unwrap();
        let (task, woken) = waiter(1);
        pause().await;
        assert!(!woken.get());
        log.close().await.unwrap();
        task.await;
        assert!(woken.get());
    });
}

#[test]
fn a_replicated_abort_marker_is_indexed_like_the_leaders() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(u64::MAX);
        let leader = open_as(&dir.path().join("l"), &cache, HighWatermark::FollowsAcks).await;
        durable(&leader, produced(9, 0, 2, true), LeaderEpoch(0)).await;
        marker(&leader, 9, ControlType::Abort, LeaderEpoch(0)).await;
        let follower = open_as(&dir.path().join("f"), &cache, HighWatermark::SetByReplication).await;
        follower.append_replicated(read_whole(&leader).await).unwrap().unwrap().durable().await.unwrap();
        let expected = AbortedTxn {
            producer_id: ProducerId(9),
            first_offset: Offset(0),
            last_offset: Offset(2),
            last_stable_offset: Offset(3),
        };
        assert_eq!(follower.aborted_transactions(Offset::ZERO, ALL), [expected]);
        assert_eq!(follower.last_stable_offset(), Offset(0), "the marker is not below the HW yet");
        follower.set_high_watermark_bound(Offset(3));
        assert_eq!(follower.last_stable_offset(), Offset(3));
        follower.close().await.unwrap();
        leader.close().await.unwrap();
    });
}
