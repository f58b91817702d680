//! Many logs on one shard behind a descriptor cache far smaller than their files: appends and
//! reads in a round-robin, a crash, a reopen, and what an open and a close leave on disk.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::model::{Chunk, LeaderEpoch};
use crate::testing::run_on_shard;

/// Logs in the round-robin.
const LOGS: usize = 60;
/// Descriptors the cache may hold: fewer than the logs have segments.
const OPEN_FILES: usize = 4;

fn tiny_cache() -> FileCache {
    // 60 logs share 1 MiB of preallocation: 16 KiB each.
    FileCache::new(FileCacheConfig { open_files_max: OPEN_FILES, preallocate_budget_bytes: 1 << 20 })
}

fn log_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("t-{i}"))
}

async fn open_all(root: &Path, cache: &BatchCache, files: &FileCache) -> Vec<PartitionLog> {
    let mut logs = Vec::new();
    for i in 0..LOGS {
        logs.push(open_in(&log_dir(root, i), small_config(4096), cache, files).await);
    }
    logs
}

/// What log `i` got in round `round`.
fn batch_for(i: usize, round: usize) -> BytesMut {
    batch((i * 1000 + round) as u64, 1 + (i + round) % 3, 100 + (i * 7 + round * 13) % 300)
}

/// Checks that each log holds exactly its batches of rounds `0..rounds`.
async fn check_all(logs: &[PartitionLog], rounds: usize) {
    for (i, log) in logs.iter().enumerate() {
        let got = read_all(log, Offset(0), log.log_end_offset()).await;
        assert_eq!(got.len(), rounds, "log {i}");
        for (round, (_, stored)) in got.iter().enumerate() {
            assert!(same_batch(stored, &batch_for(i, round)), "log {i} round {round}");
        }
    }
}

#[test]
fn many_logs_behind_a_tiny_descriptor_cache_keep_every_record_through_a_crash() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(0);
        let files = tiny_cache();
        let logs = open_all(&root, &cache, &files).await;
        assert_eq!(files.stats().open, 0, "opening a new log opens no file");
        assert!(std::fs::read_dir(log_dir(&root, 0)).unwrap().next().is_none(), "nor creates one");
        // Round-robin, one append at a time, each read back at once (from its file: the batch
        // cache holds nothing) and the log before it read whole now and then.
        let rounds = 12;
        for round in 0..rounds {
            for (i, log) in logs.iter().enumerate() {
                let info = append(log, batch_for(i, round), LeaderEpoch(0)).unwrap().durable().await.unwrap();
                let read =
                    log.read(info.base_offset, ReadLimits { max_bytes: 1, upper_bound: info.last_offset.plus(1) });
                let bytes = read.await.unwrap().to_vec().await.unwrap();
                assert!(same_batch(&bytes, &batch_for(i, round)), "log {i} round {round}");
                assert!(files.stats().open <= OPEN_FILES);
            }
        }
        let stats = files.stats();
        assert_eq!(stats.opens_over_max, 0, "one operation at a time never needs more: {stats:?}");
        assert!(stats.evictions > 1000, "the round-robin keeps closing and reopening: {stats:?}");
        assert!(logs.iter().all(|log| log.segment_count() > 1), "4 KiB segments rolled");
        check_all(&logs, rounds).await;
        // Reads whose answers are all still being sent (each holds its file for sendfile): once
        // every descriptor is in use, the rest copy their bytes and hold none.
        let mut held = Vec::new();
        for log in &logs {
            let limits = ReadLimits { max_bytes: 1, upper_bound: log.log_end_offset() };
            held.push(log.read(Offset(0), limits).await.unwrap());
        }
        let sent = held.iter().filter(|slice| matches!(slice.chunks[..], [Chunk::File(_)])).count();
        assert!((OPEN_FILES..=OPEN_FILES + 1).contains(&sent), "{sent} answers hold their file");
        assert!(files.stats().open <= OPEN_FILES + 1);
        for (i, slice) in held.iter().enumerate() {
            assert!(same_batch(&slice.to_vec().await.unwrap(), &batch_for(i, 0)), "log {i}");
        }
        drop(held);
        // Many at once: every flusher holds its file while it writes, so the cache opens past its
        // bound for as long as they do, and nothing is lost.
        let pending: Vec<_> = logs
            .iter()
            .enumerate()
            .map(|(i, log)| append(log, batch_for(i, rounds), LeaderEpoch(0)).unwrap())
            .collect();
        for pending in pending {
            pending.durable().await.unwrap();
        }
        check_all(&logs, rounds + 1).await;
        // Preallocation shrank to the logs' share of the budget: 16 KiB, not 32 MiB.
        for i in 0..LOGS {
            let dir = log_dir(&root, i);
            let allocated: u64 = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap())
                .filter(|m| m.is_file())
                .map(|m| m.blocks() * 512)
                .sum();
            assert!(allocated < 256 * 1024, "{} allocates {allocated} bytes", dir.display());
        }
        // A crash: no close, no seal, no marker.
        drop(logs);
        // The flushers, cancelled, drop their state on the executor's next turn.
        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(files.stats().open, 0, "the dropped logs' descriptors closed");
        let files = tiny_cache();
        let logs = open_all(&root, &cache, &files).await;
        assert_eq!(files.stats().open, 0, "recovery closes what it opened");
        check_all(&logs, rounds + 1).await;
        for (i, log) in logs.iter().enumerate() {
            append(log, batch_for(i, rounds + 1), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        }
        check_all(&logs, rounds + 2).await;
        for log in &logs {
            log.close().await.unwrap();
        }
        drop(logs);
        let files = tiny_cache();
        let logs = open_all(&root, &cache, &files).await;
        check_all(&logs, rounds + 2).await;
        assert_eq!(files.stats().opens_over_max, 0);
    });
}

#[test]
fn a_log_opened_clean_and_closed_unchanged_writes_nothing_and_a_new_one_no_file() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let files = FileCache::new(FileCacheConfig::default());
        let fresh = root.join("fresh");
        let log = open_in(&fresh, small_config(4096), &cache, &files).await;
        log.close().await.unwrap();
        assert_eq!(std::fs::read_dir(&fresh).unwrap().count(), 0, "a log never written leaves its directory empty");

        let dir = root.join("written");
        let log = open_in(&dir, small_config(4096), &cache, &files).await;
        for seed in 0..30 {
            append(&log, batch(seed, 1, 300), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        }
        log.close().await.unwrap();
        let listing = |dir: &Path| {
            let mut files: Vec<(String, u64, i64)> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let m = e.metadata().unwrap();
                    (e.file_name().into_string().unwrap(), m.ino(), m.mtime_nsec() + m.mtime() * 1_000_000_000)
                })
                .collect();
            files.sort();
            files
        };
        let closed = listing(&dir);
        assert!(closed.iter().any(|(name, ..)| name == ".clean-shutdown"));
        // Opened, read, closed: the same files, none rewritten, the marker the same inode.
        let log = open_in(&dir, small_config(4096), &BatchCache::new(0), &files).await;
        assert_eq!(read_all(&log, Offset(0), log.log_end_offset()).await.len(), 30);
        assert!(dir.join(".clean-shutdown").exists(), "the marker stays until the first change");
        log.close().await.unwrap();
        assert_eq!(listing(&dir), closed, "{:#?}", listing(&dir));
        // The first append removes the marker; the close after it writes a new one.
        let log = open_in(&dir, small_config(4096), &cache, &files).await;
        append(&log, batch(99, 1, 300), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        assert!(!dir.join(".clean-shutdown").exists());
        log.close().await.unwrap();
        assert!(dir.join(".clean-shutdown").exists());
        let log = open_in(&dir, small_config(4096), &cache, &files).await;
        assert_eq!(read_all(&log, Offset(0), log.log_end_offset()).await.len(), 31);
        log.close().await.unwrap();
    });
}
