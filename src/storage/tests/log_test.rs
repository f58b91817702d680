use std::rc::Rc;

use super::*;
use crate::model::{Chunk, LeaderEpoch, RecordBatch};
use crate::storage::Error;
use crate::storage::io::{Fault, inject_fault};
use crate::testing::run_on_shard;

#[test]
fn appends_get_dense_offsets_and_read_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let log = open(&path, small_config(8192), &cache).await;
        let mut originals = Vec::new();
        let mut next = 0;
        for seed in 0..60u64 {
            let records = 1 + (seed as usize % 4);
            let b = batch(seed, records, 100 + seed as usize * 7);
            originals.push(b.to_vec());
            let info = append(&log, b, LeaderEpoch(3)).unwrap().durable().await.unwrap();
            assert_eq!(info.base_offset, Offset(next));
            next += records as i64;
            assert_eq!(info.last_offset, Offset(next - 1));
        }
        assert_eq!(log.log_end_offset(), Offset(next));
        assert!(log.segment_count() > 3, "8 KiB segments must have rolled");
        let got = read_all(&log, Offset(0), log.log_end_offset()).await;
        assert_eq!(got.len(), originals.len());
        for ((base, stored), original) in got.iter().zip(&originals) {
            assert!(same_batch(stored, original));
            let view = RecordBatch::parse_prefix(stored, usize::MAX).unwrap();
            assert_eq!(view.base_offset(), *base);
            assert_eq!(view.leader_epoch(), LeaderEpoch(3));
        }
        // A read starting inside a batch returns that whole batch.
        let slice = log.read(Offset(2), ReadLimits { max_bytes: 1, upper_bound: Offset(next) }).await.unwrap();
        assert!(slice.first_offset.unwrap() <= Offset(2));
        // Past the end is an error; at the end is empty.
        assert!(matches!(
            log.read(Offset(next + 1), ReadLimits { max_bytes: 100, upper_bound: Offset(next + 1) }).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        assert!(
            log.read(Offset(next), ReadLimits { max_bytes: 100, upper_bound: Offset(next) }).await.unwrap().is_empty()
        );
        log.close().await.unwrap();

        // Reopen with an empty cache: everything comes from the files now, and appends go on.
        let cold = BatchCache::new(0);
        let log = open(&path, small_config(8192), &cold).await;
        assert_eq!(log.log_end_offset(), Offset(next));
        let got = read_all(&log, Offset(0), log.log_end_offset()).await;
        assert_eq!(got.len(), originals.len());
        for ((_, stored), original) in got.iter().zip(&originals) {
            assert!(same_batch(stored, original));
        }
        let slice = log.read(Offset(0), ReadLimits { max_bytes: 1, upper_bound: Offset(next) }).await.unwrap();
        assert!(matches!(slice.chunks[0], Chunk::File(_)), "cold reads are file ranges for sendfile");
        let info = append(&log, batch(99, 2, 50), LeaderEpoch(4)).unwrap().durable().await.unwrap();
        assert_eq!(info.base_offset, Offset(next));
        assert_eq!(log.end_offset_for_epoch(LeaderEpoch(3)), Some((LeaderEpoch(3), Offset(next))));
        log.close().await.unwrap();
    });
}

#[test]
fn reads_stop_at_the_upper_bound_and_respect_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        for budget in [u64::MAX, 0] {
            let cache = BatchCache::new(budget);
            let log = open(&path.join(budget.to_string()), small_config(1 << 20), &cache).await;
            for seed in 0..20 {
                append(&log, batch(seed, 1, 200), LeaderEpoch(0)).unwrap().durable().await.unwrap();
            }
            let one = batch(0, 1, 200).len() as u64;
            let slice = log.read(Offset(0), ReadLimits { max_bytes: u64::MAX, upper_bound: Offset(5) }).await.unwrap();
            let bytes = slice.to_vec().await.unwrap();
            let batches: Vec<_> = BatchIter::new(&bytes, usize::MAX).map(|b| b.unwrap().base_offset()).collect();
            assert_eq!(batches, (0..5).map(Offset).collect::<Vec<_>>(), "budget {budget}");
            let slice = log.read(Offset(3), ReadLimits { max_bytes: one * 2, upper_bound: Offset(20) }).await.unwrap();
            assert!(slice.bytes <= one * 2 && slice.bytes >= one);
            assert_eq!(slice.first_offset, Some(Offset(3)));
            log.close().await.unwrap();
        }
    });
}

#[test]
fn concurrent_appends_share_fdatasyncs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let log = Rc::new(open(&path, small_config(1 << 30), &cache).await);
        let mut tasks = Vec::new();
        for seed in 0..400u64 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                append(&log, batch(seed, 1, 1000), LeaderEpoch(0)).unwrap().durable().await.unwrap()
            }));
        }
        let mut offsets = Vec::new();
        for task in tasks {
            offsets.push(task.await.base_offset.0);
        }
        offsets.sort();
        assert_eq!(offsets, (0..400).collect::<Vec<_>>());
        let stats = log.stats();
        assert_eq!(stats.batches_appended, 400);
        assert!(stats.syncs < 100, "400 concurrent appends took {} fdatasyncs: no group commit", stats.syncs);
        assert_eq!(log.durable_end_offset(), Offset(400));
        log.close().await.unwrap();
    });
}

#[test]
fn invalid_batches_are_refused_and_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let mut config = small_config(1 << 20);
        config.set("max.message.bytes", "5000").unwrap();
        let log = open(&path, config, &cache).await;
        let good = batch(1, 1, 10);
        let mut corrupt = good.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let mut two = good.clone();
        two.extend_from_slice(&corrupt);
        for bad in [corrupt, two, good.clone().split_to(30), BytesMut::new(), batch(2, 10, 1000)] {
            assert!(matches!(append(&log, bad, LeaderEpoch(0)), Err(Error::InvalidBatch(_))));
        }
        assert_eq!(log.log_end_offset(), Offset(0));
        let mut pair = good.clone();
        pair.extend_from_slice(&batch(2, 3, 10));
        let info = append(&log, pair, LeaderEpoch(0)).unwrap().durable().await.unwrap();
        assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(3)));
        log.close().await.unwrap();
    });
}

#[test]
fn a_full_disk_fails_the_appends_in_flight_and_keeps_the_log_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let log = open(&path, small_config(1 << 20), &cache).await;
        for seed in 0..10 {
            append(&log, batch(seed, 1, 300), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        }
        inject_fault(Some(Fault::DiskFullAfterBytes(0)));
        let failed = append(&log, batch(10, 1, 300), LeaderEpoch(0)).unwrap().durable().await;
        assert!(matches!(failed, Err(Error::Offline(_))), "{failed:?}");
        assert!(append(&log, batch(11, 1, 300), LeaderEpoch(0)).is_err_and(|e| e.is_storage_failure()));
        inject_fault(None);
        assert_eq!(log.log_end_offset(), Offset(10));
        assert_eq!(read_all(&log, Offset(0), Offset(10)).await.len(), 10);
        assert!(log.close().await.is_err(), "a failed log is not closed cleanly");
        drop(log);

        // Reopening recovers; the disk has room again.
        let log = open(&path, small_config(1 << 20), &cache).await;
        assert_eq!(log.log_end_offset(), Offset(10));
        append(&log, batch(12, 1, 300), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        assert_eq!(read_all(&log, Offset(0), Offset(11)).await.len(), 11);
        log.close().await.unwrap();
    });
}

#[test]
fn a_failing_fdatasync_never_acknowledges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let log = open(&path, small_config(1 << 20), &cache).await;
        append(&log, batch(0, 1, 100), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        inject_fault(Some(Fault::SyncFails));
        assert!(append(&log, batch(1, 1, 100), LeaderEpoch(0)).unwrap().durable().await.is_err());
        inject_fault(None);
        assert_eq!(log.ack_end_offset(), Offset(1));
        assert_eq!(log.log_end_offset(), Offset(1));
    });
}

#[test]
fn timestamps_find_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(0);
        let log = open(&path, small_config(4096), &cache).await;
        // Batch k holds records k*3 .. k*3+2 with timestamps 1000 + 10*offset.
        for k in 0..40i64 {
            let mut builder = crate::model::BatchBuilder::new(Timestamp(1000 + 30 * k));
            for r in 0..3 {
                builder.push(None, Some(&[0u8; 200]), Timestamp(1000 + 10 * (3 * k + r)), &[]);
            }
            append(&log, builder.build(), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        }
        for target in [0, 1000, 1005, 1010, 1500, 1555, 2190] {
            let expected_offset = ((target - 1000).max(0) + 9) / 10;
            let got = log.offset_for_timestamp(Timestamp(target)).await.unwrap();
            assert_eq!(got, Some((Offset(expected_offset), Timestamp(1000 + 10 * expected_offset))), "target {target}");
        }
        assert_eq!(log.offset_for_timestamp(Timestamp(5000)).await.unwrap(), None);
        assert_eq!(log.max_timestamp(), Some((Offset(117), Timestamp(2190))));
        log.close().await.unwrap();
        let log = open(&path, small_config(4096), &cache).await;
        assert_eq!(log.offset_for_timestamp(Timestamp(1555)).await.unwrap(), Some((Offset(56), Timestamp(1560))));
        log.close().await.unwrap();
    });
}

#[test]
fn interval_and_none_modes_acknowledge_after_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        for (name, mode) in
            [("interval", FlushMode::Interval(std::time::Duration::from_millis(20))), ("none", FlushMode::None)]
        {
            let config = LogConfig { flush_mode: mode, ..small_config(1 << 20) };
            let log = open(&path.join(name), config, &cache).await;
            for seed in 0..20 {
                append(&log, batch(seed, 1, 100), LeaderEpoch(0)).unwrap().durable().await.unwrap();
            }
            assert_eq!(log.ack_end_offset(), Offset(20));
            if name == "interval" {
                glommio::timer::sleep(std::time::Duration::from_millis(60)).await;
                assert_eq!(log.durable_end_offset(), Offset(20), "the interval fdatasync ran");
            }
            log.close().await.unwrap();
        }
    });
}

#[test]
fn segments_roll_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let mut config = small_config(1 << 20);
        config.set("segment.ms", "30").unwrap();
        let log = open(&path, config, &cache).await;
        append(&log, batch(0, 1, 100), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        append(&log, batch(1, 1, 100), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        assert_eq!(log.segment_count(), 1);
        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
        append(&log, batch(2, 1, 100), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        assert_eq!(log.segment_count(), 2, "a segment older than segment.ms rolls on the next append");
        assert_eq!(read_all(&log, Offset(0), Offset(3)).await.len(), 3);
        log.close().await.unwrap();
    });
}

#[test]
fn segments_roll_when_an_index_would_pass_segment_index_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        for (name, index_bytes, one_segment) in [("roomy", "10485760", true), ("tight", "24", false)] {
            let mut config = small_config(1 << 20);
            config.set("segment.index.bytes", index_bytes).unwrap();
            let log = open(&path.join(name), config, &cache).await;
            for seed in 0..10 {
                append(&log, batch(seed, 1, 600), LeaderEpoch(0)).unwrap().durable().await.unwrap();
            }
            // 24 bytes: three offset index entries, two time index entries per segment.
            assert_eq!(log.segment_count() == 1, one_segment, "{name}: {} segments", log.segment_count());
            assert_eq!(read_all(&log, Offset(0), Offset(10)).await.len(), 10);
            log.close().await.unwrap();
        }
    });
}

#[test]
fn opening_garbage_files_never_panics() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = TestRunner::new(Config::default());
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..3000),
        proptest::collection::vec(any::<u8>(), 0..100),
        proptest::collection::vec(any::<u8>(), 0..100),
        any::<bool>(),
    );
    let cases: Vec<_> = (0..24).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect();
    run_on_shard(move || async move {
        // A valid batch followed by noise, and pure noise, as the log; noise as the indexes.
        for (i, (noise, index, time_index, valid_prefix)) in cases.into_iter().enumerate() {
            let path = root.join(format!("g-{i}"));
            std::fs::create_dir_all(&path).unwrap();
            let mut log_bytes = if valid_prefix { batch(0, 2, 50).to_vec() } else { Vec::new() };
            log_bytes.extend_from_slice(&noise);
            std::fs::write(crate::storage::segment_file(&path, Offset(0), "log"), &log_bytes).unwrap();
            std::fs::write(crate::storage::segment_file(&path, Offset(0), "index"), &index).unwrap();
            std::fs::write(crate::storage::segment_file(&path, Offset(0), "timeindex"), &time_index).unwrap();
            std::fs::write(path.join("leader-epoch-checkpoint"), &noise[..noise.len().min(40)]).unwrap();
            let cache = BatchCache::new(0);
            let log = open(&path, small_config(1 << 20), &cache).await;
            let end = log.log_end_offset();
            if valid_prefix {
                assert!(end >= Offset(2), "the valid batch survives");
            }
            let _ = read_all(&log, Offset(0), end).await;
            append(&log, batch(1, 1, 10), LeaderEpoch(0)).unwrap().durable().await.unwrap();
            log.close().await.unwrap();
        }
    });
}
