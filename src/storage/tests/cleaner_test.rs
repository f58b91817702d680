//! The log cleaner on whole logs: the latest record of each key kept at its offset and the
//! older ones gone, tombstones until their delete horizon, compressed batches and producer
//! fields kept, aborted transactions removed, segments grouped, a partial clean when the map
//! fills, reads and lookups on the sparse log, reopening it, a crash at every step of a clean,
//! a follower copying the gaps, and a clean racing appends.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::model::{
    BatchBuilder, CompressionType, ControlType, ProducerId, ProducerStamp, RecordBatch, RecordIter, set_producer,
};
use crate::storage::cleaner::files::{CLEAN_CRASH_STEP, CLEAN_CRASH_STEPS};
use crate::storage::{CleanReport, DedupeMap, IoBudget};
use crate::testing::run_on_shard;

/// The timestamp of the records these tests write.
const T0: i64 = 1_700_000_000_000;

/// One record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: Offset,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: Timestamp,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn compacted(segment_bytes: u32) -> LogConfig {
    let mut config = small_config(segment_bytes);
    config.set("cleanup.policy", "compact").unwrap();
    config.set("delete.retention.ms", "1000").unwrap();
    config
}

/// A batch of `(key, value)` records (None for null), timestamped from `T0 + at`.
fn keyed(at: i64, records: &[(Option<&str>, Option<&str>)]) -> BytesMut {
    let mut builder = BatchBuilder::new(Timestamp(T0 + at));
    for (i, (key, value)) in records.iter().enumerate() {
        let headers: [(&str, &[u8]); 1] = [("h", b"v")];
        builder.push(
            key.map(str::as_bytes),
            value.map(str::as_bytes),
            Timestamp(T0 + at + i as i64),
            if i % 2 == 0 { &headers } else { &[] },
        );
    }
    builder.build()
}

async fn durable(log: &PartitionLog, records: BytesMut) -> crate::storage::AppendInfo {
    append(log, records, LeaderEpoch(0)).unwrap().durable().await.unwrap()
}

/// `rounds` rounds of one update to each of `keys` keys, `per_batch` records per batch.
async fn write_updates(log: &PartitionLog, keys: usize, rounds: usize, per_batch: usize) {
    let mut pending: Vec<(String, String)> = Vec::new();
    for round in 0..rounds {
        for key in 0..keys {
            pending.push((format!("key-{key}"), format!("value-{round}-{key}-{}", "x".repeat(60))));
            if pending.len() == per_batch {
                let records: Vec<_> = pending.iter().map(|(k, v)| (Some(k.as_str()), Some(v.as_str()))).collect();
                durable(log, keyed((round * keys + key) as i64, &records)).await;
                pending.clear();
            }
        }
    }
}

/// Every stored batch from the log start, each checked as a stored batch.
async fn batches_of(log: &PartitionLog) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let slice = log.read(next, ReadLimits { max_bytes: 5000, upper_bound: end }).await.unwrap();
        if slice.is_empty() {
            break;
        }
        let bytes = slice.to_vec().await.unwrap();
        let mut advanced = false;
        for batch in BatchIter::new(&bytes, usize::MAX) {
            let batch = batch.unwrap();
            batch.validate_stored().unwrap();
            if batch.next_offset() > next {
                out.push(batch.as_bytes().to_vec());
                next = batch.next_offset();
                advanced = true;
            }
        }
        assert!(advanced, "a read at {next} returned no new batch");
    }
    out
}

fn records_in(batch: &[u8]) -> Vec<Rec> {
    let batch = RecordBatch::parse_prefix(batch, usize::MAX).unwrap();
    let area = batch.decompressed_records(usize::MAX >> 1).unwrap();
    RecordIter::with_records(&batch, &area)
        .map(|r| {
            let r = r.unwrap();
            Rec {
                offset: r.offset,
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
                timestamp: r.timestamp,
                headers: r.headers.iter().map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))).collect(),
            }
        })
        .collect()
}

async fn records_of(log: &PartitionLog) -> Vec<Rec> {
    batches_of(log).await.iter().flat_map(|b| records_in(b)).collect()
}

/// The latest record of each key in `records`.
fn latest(records: &[Rec]) -> HashMap<Vec<u8>, Rec> {
    let mut out = HashMap::new();
    for r in records {
        if let Some(key) = &r.key {
            out.insert(key.clone(), r.clone());
        }
    }
    out
}

/// What a clean up to `end` must leave of `before`: below `end`, each key's latest record
/// (tombstones too, when `tombstones_kept`); from `end` on, everything.
fn expected_after(before: &[Rec], end: Offset, tombstones_kept: bool) -> Vec<Rec> {
    let below: Vec<Rec> = before.iter().filter(|r| r.offset < end).cloned().collect();
    let newest = latest(&below);
    before
        .iter()
        .filter(|r| {
            r.offset >= end
                || (r.key.as_ref().is_some_and(|k| newest[k].offset == r.offset)
                    && (r.value.is_some() || tombstones_kept))
        })
        .cloned()
        .collect()
}

async fn clean(log: &PartitionLog, map: &mut DedupeMap, now: i64) -> Option<CleanReport> {
    log.clean(map, &IoBudget::new(None), Timestamp(T0 + now)).await.unwrap()
}

#[test]
fn a_clean_keeps_each_keys_latest_record_at_its_offset() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(u64::MAX);
        let log = open(dir.path(), compacted(4096), &cache).await;
        write_updates(&log, 20, 10, 5).await;
        // A keyless record, which compaction removes.
        durable(&log, keyed(500, &[(None, Some("no key"))])).await;
        write_updates(&log, 20, 20, 5).await;
        let before = records_of(&log).await;
        let segments = log.segment_count();
        assert!(segments > 10, "{segments} segments");
        let cleanable = log.cleanable(Timestamp(T0 + 10_000)).unwrap();
        assert_eq!(cleanable.first_dirty, Offset::ZERO);
        assert_eq!(cleanable.clean_bytes, 0);
        assert!(cleanable.dirty_ratio > 0.99);
        assert!(cleanable.first_uncleanable < log.log_end_offset());

        let mut map = DedupeMap::new(1 << 20);
        let report = clean(&log, &mut map, 10_000).await.unwrap();
        assert_eq!(report.end, cleanable.first_uncleanable);
        assert_eq!(report.segments_before + 1, segments, "every segment but the active one");
        assert!(report.segments_after < report.segments_before, "{report:?}");
        assert!(report.bytes_after < report.bytes_before / 3, "{report:?}");
        let after = records_of(&log).await;
        assert_eq!(after, expected_after(&before, report.end, true));
        assert!(after.iter().all(|r| r.key.is_some()), "the keyless record is gone");
        let mut logs: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        logs.pop(); // the active segment's file is preallocated
        assert!(logs.iter().all(|p| p.metadata().unwrap().len() <= 4096), "a cleaned group is at most segment.bytes");
        assert_eq!(latest(&after), latest(&before.iter().filter(|r| r.key.is_some()).cloned().collect::<Vec<_>>()));
        assert_eq!(log.last_clean().unwrap().1, report);
        assert_eq!(log.size_bytes(), log.size_bytes());
        let cleanable = log.cleanable(Timestamp(T0 + 10_000)).unwrap();
        assert_eq!(cleanable.first_dirty, report.end);
        assert_eq!(cleanable.dirty_bytes, 0);
        assert!(clean(&log, &mut map, 10_000).await.is_none(), "nothing dirty left to clean");

        // Reads at removed offsets answer with the next batch; lookups by time find kept
        // records.
        for offset in 0..log.log_end_offset().0 {
            let slice = log.read(Offset(offset), ReadLimits { max_bytes: 1, upper_bound: Offset(i64::MAX) }).await;
            let bytes = slice.unwrap().to_vec().await.unwrap();
            let batch = RecordBatch::parse_prefix(&bytes, usize::MAX).unwrap();
            assert!(batch.next_offset() > Offset(offset), "a read at {offset} answered an older batch");
            let first_kept = after.iter().find(|r| r.offset >= Offset(offset)).unwrap();
            assert!(batch.base_offset() <= first_kept.offset);
        }
        for r in after.iter().step_by(7) {
            let (offset, _) = log.offset_for_timestamp(r.timestamp).await.unwrap().unwrap();
            assert!(offset <= r.offset, "{offset} for {r:?}");
        }

        // A clean close and reopen, then a crash (no close) and reopen: the same records.
        log.close().await.unwrap();
        drop(log);
        let log = open(dir.path(), compacted(4096), &cache).await;
        assert_eq!(records_of(&log).await, after);
        assert_eq!(log.cleanable(Timestamp(T0)).unwrap().first_dirty, report.end);
        drop(log);
        let log = open(dir.path(), compacted(4096), &cache).await;
        assert_eq!(records_of(&log).await, after);
        let info = durable(&log, keyed(0, &[(Some("key-1"), Some("new"))])).await;
        assert_eq!(info.base_offset, before.last().unwrap().offset.plus(1));
        log.close().await.unwrap();
    });
}

#[test]
fn tombstones_stay_until_their_delete_horizon() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(0);
        let log = open(dir.path(), compacted(4096), &cache).await;
        write_updates(&log, 10, 3, 5).await;
        durable(&log, keyed(100, &[(Some("gone-3"), None), (Some("gone-4"), None)])).await;
        write_updates(&log, 30, 2, 10).await;
        let before = records_of(&log).await;
        let mut map = DedupeMap::new(1 << 20);
        // The first clean keeps the tombstones and stamps their batch's horizon (now + 1 s).
        let first = clean(&log, &mut map, 0).await.unwrap();
        assert_eq!(first.tombstones_removed, 0);
        let after = records_of(&log).await;
        assert_eq!(after, expected_after(&before, first.end, true));
        assert_eq!(after.iter().filter(|r| r.value.is_none()).count(), 2);
        // Another round of updates makes the log dirty again; within the horizon the
        // tombstones stay, past it they go.
        write_updates(&log, 30, 2, 10).await;
        let second = clean(&log, &mut map, 500).await.unwrap();
        assert_eq!(second.tombstones_removed, 0);
        write_updates(&log, 30, 1, 10).await;
        let third = clean(&log, &mut map, 5000).await.unwrap();
        assert_eq!(third.tombstones_removed, 2, "{third:?}");
        let after = records_of(&log).await;
        assert!(after.iter().all(|r| r.value.is_some()));
        assert!(after.iter().all(|r| r.key.as_deref() != Some(b"gone-3".as_slice())));
        log.close().await.unwrap();
    });
}

#[test]
fn cleaned_batches_keep_their_codec_producer_fields_headers_and_timestamps() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(0);
        let log = open(dir.path(), compacted(4096), &cache).await;
        let codecs = [CompressionType::Gzip, CompressionType::Lz4, CompressionType::Zstd, CompressionType::Snappy];
        let mut sequence = 0;
        let mut noise = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..12 {
            let codec = codecs[round % codecs.len()];
            let mut builder = BatchBuilder::new(Timestamp(T0 + round as i64));
            builder.set_producer(ProducerStamp {
                producer_id: ProducerId(7),
                epoch: 3,
                base_sequence: sequence,
                transactional: false,
            });
            for key in 0..8 {
                let key = format!("k{}", (key + round) % 10);
                let value: String = (0..40)
                    .map(|_| {
                        noise = noise.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        format!("{:x}", noise >> 59)
                    })
                    .collect();
                builder.push(
                    Some(key.as_bytes()),
                    Some(value.as_bytes()),
                    Timestamp(T0 + 10 * round as i64),
                    &[("h", b"1")],
                );
            }
            sequence += 8;
            durable(&log, builder.build_compressed(codec).unwrap()).await;
        }
        let before_batches = batches_of(&log).await;
        let before = records_of(&log).await;
        let report = clean(&log, &mut DedupeMap::new(1 << 20), 0).await.unwrap();
        let after_batches = batches_of(&log).await;
        assert_eq!(records_of(&log).await, expected_after(&before, report.end, true));
        let originals: HashMap<Offset, RecordBatch<'_>> = before_batches
            .iter()
            .map(|b| RecordBatch::parse_prefix(b, usize::MAX).unwrap())
            .map(|b| (b.base_offset(), b))
            .collect();
        for bytes in &after_batches {
            let batch = RecordBatch::parse_prefix(bytes, usize::MAX).unwrap();
            let original = originals[&batch.base_offset()];
            assert_eq!(batch.compression().unwrap(), original.compression().unwrap());
            assert_eq!(batch.producer_id(), original.producer_id());
            assert_eq!(batch.header().producer_epoch.get(), 3);
            assert_eq!(batch.header().base_sequence.get(), original.header().base_sequence.get());
            assert_eq!(batch.leader_epoch(), original.leader_epoch());
            assert!(batch.records_count() <= original.records_count());
        }
        // The producer's last batch stays whole: its sequence survives a rebuild.
        let last = RecordBatch::parse_prefix(after_batches.last().unwrap(), usize::MAX).unwrap();
        assert_eq!(last.header().base_sequence.get(), 88);
        drop(log);
        std::fs::remove_file(dir.path().join(".clean-shutdown")).ok();
        for snapshot in crate::storage::producer_state::list_snapshots(dir.path()) {
            std::fs::remove_file(crate::storage::producer_state::snapshot_path(dir.path(), snapshot)).unwrap();
        }
        let log = open(dir.path(), compacted(4096), &cache).await;
        let entry = log.with_producers(|p| p.get(ProducerId(7)).cloned()).unwrap();
        assert_eq!((entry.epoch, entry.last_sequence()), (3, Some(95)));
        log.close().await.unwrap();
    });
}

/// A transactional batch of `(key, value)` records from producer `id` (epoch 0).
fn transactional(id: i64, sequence: i32, at: i64, records: &[(Option<&str>, Option<&str>)]) -> BytesMut {
    let mut bytes = keyed(at, records);
    set_producer(&mut bytes, ProducerId(id), 0, sequence, true);
    bytes
}

#[test]
fn aborted_transactions_and_their_markers_go() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(0);
        let log = open(dir.path(), compacted(4096), &cache).await;
        write_updates(&log, 5, 2, 5).await;
        durable(&log, transactional(9, 0, 1, &[(Some("key-1"), Some("aborted")), (Some("t"), Some("aborted"))])).await;
        durable(&log, transactional(11, 0, 2, &[(Some("c"), Some("committed"))])).await;
        let (abort, _) = log.append_marker(ProducerId(9), 0, 1, ControlType::Abort, LeaderEpoch(0)).unwrap();
        let abort_at = abort.durable().await.unwrap().base_offset;
        let (commit, _) = log.append_marker(ProducerId(11), 0, 1, ControlType::Commit, LeaderEpoch(0)).unwrap();
        commit.durable().await.unwrap();
        write_updates(&log, 40, 2, 10).await;
        let mut map = DedupeMap::new(1 << 20);
        let report = clean(&log, &mut map, 0).await.unwrap();
        assert_eq!(report.aborted_removed, 2, "{report:?}");
        let after = records_of(&log).await;
        assert!(after.iter().all(|r| r.value.as_deref() != Some(b"aborted".as_slice())));
        assert_eq!(
            after.iter().find(|r| r.key.as_deref() == Some(b"c".as_slice())).unwrap().value.as_deref(),
            Some(b"committed".as_slice())
        );
        // The producers' last batches stay as markers (both have no data left past them).
        let batches = batches_of(&log).await;
        let markers: Vec<Offset> = batches
            .iter()
            .map(|b| RecordBatch::parse_prefix(b, usize::MAX).unwrap())
            .filter(|b| b.is_control())
            .map(|b| b.base_offset())
            .collect();
        assert!(markers.contains(&abort_at), "the last epoch's marker of producer 9 stays: {markers:?}");
        log.close().await.unwrap();
    });
}

#[test]
fn a_marker_goes_after_its_horizon_once_its_transaction_is_gone() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(0);
        let log = open(dir.path(), compacted(4096), &cache).await;
        let markers = |batches: &[Vec<u8>]| -> Vec<(Offset, Option<Timestamp>)> {
            batches
                .iter()
                .map(|b| RecordBatch::parse_prefix(b, usize::MAX).unwrap())
                .filter(|b| b.is_control())
                .map(|b| (b.base_offset(), (b.header().attributes.get() & 0x40 != 0).then(|| b.base_timestamp())))
                .collect()
        };
        // Producer 9 aborts one transaction, then commits another: the aborted one's data is
        // not its last batch, so it goes at the first clean, and its marker later.
        durable(&log, transactional(9, 0, 1, &[(Some("a"), Some("aborted"))])).await;
        let (abort, _) = log.append_marker(ProducerId(9), 0, 1, ControlType::Abort, LeaderEpoch(0)).unwrap();
        let abort_at = abort.durable().await.unwrap().base_offset;
        durable(&log, transactional(9, 1, 2, &[(Some("b"), Some("committed"))])).await;
        let (commit, _) = log.append_marker(ProducerId(9), 0, 1, ControlType::Commit, LeaderEpoch(0)).unwrap();
        commit.durable().await.unwrap();
        write_updates(&log, 40, 2, 10).await;
        let mut map = DedupeMap::new(1 << 20);
        let first = clean(&log, &mut map, 0).await.unwrap();
        assert_eq!(first.aborted_removed, 1);
        assert_eq!(markers(&batches_of(&log).await)[0], (abort_at, None), "its transaction was still there");
        write_updates(&log, 40, 1, 10).await;
        assert_eq!(log.aborted_transactions(Offset::ZERO, Offset(i64::MAX)).len(), 1);
        clean(&log, &mut map, 100).await.unwrap();
        assert_eq!(markers(&batches_of(&log).await)[0], (abort_at, Some(Timestamp(T0 + 1100))), "horizon stamped");
        assert!(log.aborted_transactions(Offset::ZERO, Offset(i64::MAX)).is_empty(), "no record left to drop");
        write_updates(&log, 40, 1, 10).await;
        clean(&log, &mut map, 900).await.unwrap();
        assert_eq!(markers(&batches_of(&log).await)[0].0, abort_at, "before its horizon it stays");
        write_updates(&log, 40, 1, 10).await;
        clean(&log, &mut map, 1200).await.unwrap();
        let left = markers(&batches_of(&log).await);
        assert!(left.iter().all(|(offset, _)| *offset != abort_at), "{left:?}");
        assert_eq!(left.len(), 1, "the commit marker stays: its transaction's batch is the producer's last");
        log.close().await.unwrap();
    });
}

#[test]
fn a_full_map_cleans_up_to_where_it_filled_and_the_next_clean_goes_on() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(0);
        let log = open(dir.path(), compacted(4096), &cache).await;
        write_updates(&log, 200, 3, 10).await;
        let before = records_of(&log).await;
        let uncleanable = log.cleanable(Timestamp(T0)).unwrap().first_uncleanable;
        // 100 keys fit: the map fills in the first round of updates.
        let mut map = DedupeMap::new(112 * 24);
        assert!(map.capacity() < 200);
        let first = clean(&log, &mut map, 0).await.unwrap();
        assert!(first.end < uncleanable, "{first:?}");
        assert_eq!(first.end.0 % 10, 0, "the map covers whole batches");
        let after = records_of(&log).await;
        assert_eq!(after, expected_after(&before, first.end, true));
        let cleanable = log.cleanable(Timestamp(T0)).unwrap();
        assert_eq!(cleanable.first_dirty, first.end);
        assert!(cleanable.clean_bytes > 0 && cleanable.dirty_bytes > 0);
        let mut ends = vec![first.end];
        while let Some(report) = clean(&log, &mut map, 0).await {
            ends.push(report.end);
            assert!(ends.len() < 20);
        }
        assert_eq!(*ends.last().unwrap(), uncleanable);
        // Every key's latest record is there, and below the uncleanable offset nothing else.
        let after = records_of(&log).await;
        let newest = latest(&before);
        assert_eq!(latest(&after), newest);
        for r in after.iter().filter(|r| r.offset < uncleanable) {
            let below: Vec<Rec> = before.iter().filter(|b| b.offset < uncleanable).cloned().collect();
            assert_eq!(latest(&below)[r.key.as_ref().unwrap()].offset, r.offset);
        }
        log.close().await.unwrap();
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_crash_at_any_step_of_a_clean_leaves_the_old_or_the_new_segments() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("original");
        let cache = BatchCache::new(0);
        let log = open(&original, compacted(4096), &cache).await;
        write_updates(&log, 15, 8, 5).await;
        write_updates(&log, 100, 1, 10).await;
        log.close().await.unwrap();
        drop(log);
        // Segments are grouped by a larger segment.bytes than they were written with: one
        // group holds several old segments.
        let config = compacted(1 << 20);
        let reference = dir.path().join("reference");
        copy_dir(&original, &reference);
        let log = open(&reference, config.clone(), &cache).await;
        let before = records_of(&log).await;
        let report = clean(&log, &mut DedupeMap::new(1 << 20), 0).await.unwrap();
        assert_eq!(report.segments_after, 1, "{report:?}");
        assert!(report.segments_before > 2, "{report:?}");
        let after = records_of(&log).await;
        assert_ne!(before, after);
        drop(log);

        for step in CLEAN_CRASH_STEPS {
            let copy = dir.path().join(format!("crash-{step}"));
            copy_dir(&original, &copy);
            let log = open(&copy, config.clone(), &cache).await;
            CLEAN_CRASH_STEP.with(|s| s.set(Some(step)));
            let result = log.clean(&mut DedupeMap::new(1 << 20), &IoBudget::new(None), Timestamp(T0)).await;
            CLEAN_CRASH_STEP.with(|s| s.set(None));
            assert!(matches!(result, Err(Error::Offline(_))), "step {step}: {result:?}");
            drop(log);
            // Reopened under a delete policy: the gaps must still be taken as gaps.
            let log = open(&copy, small_config(1 << 20), &cache).await;
            log.set_config(config.clone());
            let got = records_of(&log).await;
            let expected = if step < 3 { &before } else { &after };
            assert!(got == *expected, "step {step}: the log is neither wholly old nor wholly new as expected");
            for r in expected.iter().step_by(5) {
                let slice = log.read(r.offset, ReadLimits { max_bytes: 1, upper_bound: Offset(i64::MAX) }).await;
                let bytes = slice.unwrap().to_vec().await.unwrap();
                assert!(records_in(&bytes[..]).iter().any(|x| x == r), "step {step}: offset {} not found", r.offset);
            }
            let leftovers: Vec<String> = std::fs::read_dir(&copy)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
                .collect();
            assert!(leftovers.is_empty(), "step {step}: {leftovers:?}");
            // A clean after the crash finishes the job.
            let again = log.clean(&mut DedupeMap::new(1 << 20), &IoBudget::new(None), Timestamp(T0)).await.unwrap();
            assert_eq!(again.is_some(), step < 7 || again.is_some());
            assert_eq!(records_of(&log).await, after, "step {step}: after a clean again");
            let info = durable(&log, keyed(0, &[(Some("x"), Some("y"))])).await;
            assert_eq!(info.base_offset, before.last().unwrap().offset.plus(1));
            log.close().await.unwrap();
        }
    });
}

#[test]
fn a_follower_copies_a_cleaned_leaders_gaps_and_keeps_them_under_any_policy() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(1 << 20);
        let leader = open(&dir.path().join("leader"), compacted(4096), &cache).await;
        write_updates(&leader, 10, 12, 5).await;
        clean(&leader, &mut DedupeMap::new(1 << 20), 0).await.unwrap();
        let expected = records_of(&leader).await;
        let follower = PartitionLog::open(OpenOptions {
            dir: dir.path().join("follower"),
            topic_partition: TopicPartition::new("t", 0),
            // The topic's policy, compact: a follower takes gaps only where the leader may have
            // them (a compacted or already sparse log); taking them makes the log sparse, so it
            // keeps them under a delete policy below.
            config: {
                let mut config = small_config(4096);
                config.set("cleanup.policy", "compact").unwrap();
                config
            },
            cache: &cache,
            files: &crate::storage::FileCache::new(crate::storage::FileCacheConfig::default()),
            high_watermark: HighWatermark::SetByReplication,
        })
        .await
        .unwrap();
        while follower.log_end_offset() < leader.log_end_offset() {
            let from = follower.log_end_offset();
            let slice =
                leader.read(from, ReadLimits { max_bytes: 3000, upper_bound: leader.log_end_offset() }).await.unwrap();
            let bytes = bytes::Bytes::from(slice.to_vec().await.unwrap());
            if let Some(pending) = follower.append_replicated(bytes).unwrap() {
                pending.durable().await.unwrap();
            }
            assert!(follower.log_end_offset() > from, "replication made no progress at {from}");
        }
        follower.set_high_watermark_bound(leader.high_watermark());
        assert_eq!(records_of(&follower).await, expected);
        assert!(dir.path().join("follower/cleaner-offset-checkpoint").exists());
        // A crash, then a reopen whose recovery validates the gaps.
        drop(follower);
        let follower = open(&dir.path().join("follower"), small_config(4096), &cache).await;
        assert_eq!(records_of(&follower).await, expected);
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        follower.close().await.unwrap();
        leader.close().await.unwrap();
    });
}

#[test]
fn a_clean_races_appends_and_gives_up_when_the_log_is_truncated() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(1 << 20);
        let log = std::rc::Rc::new(open(dir.path(), compacted(4096), &cache).await);
        write_updates(&log, 20, 10, 5).await;
        let appender = {
            let log = log.clone();
            glommio::spawn_local(async move {
                for round in 0..40 {
                    durable(&log, keyed(round, &[(Some("key-0"), Some(&format!("racing-{round}")))])).await;
                }
            })
            .detach()
        };
        // 2 MB/s: the clean sleeps between reads while the appends go on (and a second clean
        // of the same log meanwhile does nothing).
        let first = {
            let log = log.clone();
            glommio::spawn_local(async move {
                log.clean(&mut DedupeMap::new(1 << 20), &IoBudget::new(Some(2_000_000)), Timestamp(T0)).await
            })
            .detach()
        };
        glommio::executor().yield_now().await;
        let second = log.clean(&mut DedupeMap::new(1 << 20), &IoBudget::new(None), Timestamp(T0)).await;
        assert!(matches!(second, Ok(None)), "{second:?}");
        let report = first.await.unwrap();
        appender.await.unwrap();
        assert!(report.unwrap().is_some());
        let after = records_of(&log).await;
        let newest = latest(&after);
        assert_eq!(newest[b"key-0".as_slice()].value.as_deref(), Some(b"racing-39".as_slice()));
        assert_eq!(after.last().unwrap().offset, log.log_end_offset().plus(-1));

        // A truncation while a clean runs: the clean gives up and leaves no file behind.
        write_updates(&log, 20, 10, 5).await;
        let before = records_of(&log).await;
        let cut = log.log_end_offset().plus(-3);
        let cleaning = {
            let log = log.clone();
            glommio::spawn_local(async move {
                log.clean(&mut DedupeMap::new(1 << 20), &IoBudget::new(Some(1_000_000)), Timestamp(T0)).await
            })
            .detach()
        };
        // The clean runs up to its first read of the disk, then the truncation begins.
        glommio::executor().yield_now().await;
        log.truncate_to(cut).await.unwrap();
        let result = cleaning.await.unwrap();
        assert!(matches!(result, Err(Error::Truncated)), "{result:?}");
        let expected: Vec<Rec> = before.into_iter().filter(|r| r.offset < log.log_end_offset()).collect();
        assert_eq!(records_of(&log).await, expected);
        assert!(
            std::fs::read_dir(dir.path()).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .contains("cleaned"))
        );
        std::rc::Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
    });
}

#[test]
fn the_cleanable_section_stops_at_open_transactions_young_records_and_the_active_segment() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(0);
        let mut config = compacted(4096);
        config.set("min.compaction.lag.ms", "1000").unwrap();
        let log = open(dir.path(), config.clone(), &cache).await;
        assert!(log.cleanable(Timestamp(T0)).unwrap().first_dirty == Offset::ZERO);
        write_updates(&log, 10, 10, 5).await;
        let open_at = durable(&log, transactional(5, 0, 1, &[(Some("t"), Some("open"))])).await.base_offset;
        write_updates(&log, 10, 10, 5).await;
        let segments_of = |log: &PartitionLog| log.segment_count();
        assert!(segments_of(&log) > 4);
        // Records are written at T0 + (a few hundred ms): at T0 + 600 some are too young.
        let young = log.cleanable(Timestamp(T0 + 600)).unwrap();
        let old = log.cleanable(Timestamp(T0 + 100_000)).unwrap();
        assert!(young.first_uncleanable < old.first_uncleanable, "{young:?} {old:?}");
        // The open transaction holds the section below its first offset.
        assert!(old.first_uncleanable <= open_at, "{old:?}");
        assert!(old.dirty_ratio > 0.99 && old.oldest_dirty_ms.is_some());
        let (pending, _) = log.append_marker(ProducerId(5), 0, 1, ControlType::Commit, LeaderEpoch(0)).unwrap();
        pending.durable().await.unwrap();
        let decided = log.cleanable(Timestamp(T0 + 100_000)).unwrap();
        assert!(decided.first_uncleanable > open_at, "{decided:?}");
        let active_base = decided.first_uncleanable;
        write_updates(&log, 1, 1, 1).await;
        assert!(log.cleanable(Timestamp(T0 + 100_000)).unwrap().first_uncleanable <= log.log_end_offset());
        let report = clean(&log, &mut DedupeMap::new(1 << 20), 100_000).await.unwrap();
        assert_eq!(report.end, active_base);
        // A log that is not compacted has no cleanable section and is never cleaned.
        log.set_config(small_config(4096));
        assert!(log.cleanable(Timestamp(T0)).is_none());
        assert!(clean(&log, &mut DedupeMap::new(1 << 20), 100_000).await.is_none());
        log.close().await.unwrap();
    });
}

#[test]
fn retention_goes_on_deleting_cleaned_segments_under_compact_delete() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(0);
        let mut config = compacted(4096);
        config.set("cleanup.policy", "compact,delete").unwrap();
        config.set("retention.ms", "60000").unwrap();
        let log = open(dir.path(), config, &cache).await;
        write_updates(&log, 20, 10, 5).await;
        let report = clean(&log, &mut DedupeMap::new(1 << 20), 0).await.unwrap();
        let segments = log.segment_count();
        assert!(segments > 1);
        // Within retention nothing goes; past it every cleaned segment does.
        assert_eq!(log.enforce_retention(Timestamp(T0 + 1000)).unwrap().segments_deleted, 0);
        let retention = log.enforce_retention(Timestamp(T0 + 120_000)).unwrap();
        assert_eq!(retention.segments_deleted, segments - 1);
        assert_eq!(retention.log_start_offset, report.end);
        assert_eq!(records_of(&log).await.first().unwrap().offset, report.end);
        assert_eq!(log.cleanable(Timestamp(T0)).unwrap().first_dirty, report.end);
        log.close().await.unwrap();
    });
}

#[test]
fn groups_stay_within_segment_index_bytes_too() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(0);
        let log = open(dir.path(), compacted(4096), &cache).await;
        // Every record a new key: nothing goes, so the cleaned segments keep their index entries.
        for i in 0..60 {
            let key = format!("unique-{i}");
            durable(&log, keyed(i, &[(Some(key.as_str()), Some(&"x".repeat(300)))])).await;
        }
        let mut config = compacted(1 << 20);
        config.set("segment.index.bytes", "128").unwrap();
        log.set_config(config);
        let report = clean(&log, &mut DedupeMap::new(1 << 20), 0).await.unwrap();
        assert_eq!(report.records_kept, report.records_read);
        assert!(report.segments_after > 1, "16 offset index entries per segment at most: {report:?}");
        assert!(report.segments_after < report.segments_before, "{report:?}");
        log.close().await.unwrap();
    });
}
