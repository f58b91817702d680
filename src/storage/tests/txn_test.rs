//! Transactions in a whole log: the last stable offset (open transactions and markers not yet
//! below the high watermark hold it back), the aborted-transaction index surviving a clean
//! close and a crash without losing or repeating entries, and its trimming by DeleteRecords.

use super::*;
use crate::model::{BatchIter, ControlType, ProducerId, set_producer};
use crate::storage::txn_index::TXN_INDEX_FILE;
use crate::storage::{AbortedTxn, producer_state};
use crate::testing::run_on_shard;

const ALL: Offset = Offset(i64::MAX);

/// A batch of `records` records from producer `id` at `epoch`, starting at `sequence`.
fn produced(id: i64, epoch: i16, sequence: i32, records: usize, transactional: bool) -> BytesMut {
    let mut bytes = batch(sequence as u64 + 1000 * id as u64, records, 100);
    set_producer(&mut bytes, ProducerId(id), epoch, sequence, transactional);
    bytes
}

async fn durable(log: &PartitionLog, records: BytesMut) -> crate::storage::AppendInfo {
    append(log, records, LeaderEpoch(0)).unwrap().durable().await.unwrap()
}

async fn marker(log: &PartitionLog, producer: i64, kind: ControlType) -> Offset {
    let (pending, _) = log.append_marker(ProducerId(producer), 0, 1, kind, LeaderEpoch(0)).unwrap();
    pending.durable().await.unwrap().base_offset
}

#[test]
fn open_transactions_hold_the_last_stable_offset_and_aborts_are_indexed() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(u64::MAX);
        let log = open(dir.path(), small_config(1 << 20), &cache).await;
        durable(&log, batch(1, 2, 10)).await;
        assert_eq!(log.last_stable_offset(), Offset(2), "no transaction: the HW");
        let nine = durable(&log, produced(9, 0, 0, 2, true)).await;
        assert_eq!(nine.base_offset, Offset(2));
        durable(&log, batch(2, 2, 10)).await;
        let eleven = durable(&log, produced(11, 0, 0, 1, true)).await;
        assert_eq!((log.high_watermark(), log.last_stable_offset()), (Offset(7), Offset(2)));

        let (pending, completed) = log.append_marker(ProducerId(9), 0, 1, ControlType::Abort, LeaderEpoch(0)).unwrap();
        assert!(completed.aborted);
        // Ended, but its marker is not below the HW yet: still unstable.
        assert_eq!(log.last_stable_offset(), Offset(2));
        let abort_at = pending.durable().await.unwrap().base_offset;
        assert_eq!(abort_at, Offset(7));
        assert_eq!(log.last_stable_offset(), eleven.base_offset, "now 11's open transaction holds it");
        let expected = AbortedTxn {
            producer_id: ProducerId(9),
            first_offset: Offset(2),
            last_offset: Offset(7),
            last_stable_offset: eleven.base_offset,
        };
        assert_eq!(log.aborted_transactions(Offset::ZERO, ALL), [expected]);

        let commit_at = marker(&log, 11, ControlType::Commit).await;
        assert_eq!(log.last_stable_offset(), commit_at.plus(1));
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        assert_eq!(log.aborted_transactions(Offset::ZERO, ALL), [expected], "commits are not indexed");
        assert!(log.aborted_transactions(Offset(8), ALL).is_empty(), "ended before the range");
        assert!(log.aborted_transactions(Offset::ZERO, Offset(2)).is_empty(), "began after the range");
        assert_eq!(log.aborted_transactions(Offset(7), Offset(8)), [expected]);
        log.close().await.unwrap();
    });
}

#[test]
fn a_marker_settles_only_once_the_high_watermark_passes_it() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(u64::MAX);
        let log = PartitionLog::open(OpenOptions {
            dir: dir.path().to_path_buf(),
            topic_partition: TopicPartition::new("t", 0),
            config: small_config(1 << 20),
            cache: &cache,
            files: &crate::storage::FileCache::new(crate::storage::FileCacheConfig::default()),
            high_watermark: HighWatermark::SetByReplication,
        })
        .await
        .unwrap();
        append(&log, produced(4, 0, 0, 2, true), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        let end = marker(&log, 4, ControlType::Abort).await;
        assert_eq!(end, Offset(2));
        log.set_high_watermark(Offset(2));
        assert_eq!(log.last_stable_offset(), Offset(0), "the marker is not committed yet");
        log.set_high_watermark(Offset(3));
        assert_eq!(log.last_stable_offset(), Offset(3));
        log.close().await.unwrap();
    });
}

/// Appends `rounds` transactions (every other one aborted) between plain batches, enough to
/// roll segments of `small_config(4096)` several times.
async fn transactions(log: &PartitionLog, first_producer: i64, rounds: i64) {
    for i in 0..rounds {
        let producer = first_producer + i;
        durable(log, produced(producer, 0, 0, 2, true)).await;
        durable(log, batch(producer as u64, 3, 100)).await;
        let kind = if i % 2 == 0 { ControlType::Abort } else { ControlType::Commit };
        marker(log, producer, kind).await;
    }
}

#[test]
fn aborted_transactions_survive_a_clean_close_and_a_crash_without_duplicates() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(4096);
        let cache = BatchCache::new(u64::MAX);
        let all = {
            let log = open(dir.path(), config.clone(), &cache).await;
            transactions(&log, 100, 12).await;
            assert!(log.segment_count() > 2, "the test needs rolls");
            let all = log.aborted_transactions(Offset::ZERO, ALL);
            assert_eq!(all.len(), 6);
            log.close().await.unwrap();
            all
        };
        assert!(dir.path().join(TXN_INDEX_FILE).exists());
        let all = {
            let log = open(dir.path(), config.clone(), &cache).await;
            assert_eq!(log.aborted_transactions(Offset::ZERO, ALL), all, "after a clean close");
            // More, some after the last roll, then a crash (no close).
            transactions(&log, 200, 7).await;
            let all = log.aborted_transactions(Offset::ZERO, ALL);
            assert_eq!(all.len(), 10);
            drop(log);
            all
        };
        let log = open(dir.path(), config.clone(), &cache).await;
        assert_eq!(log.aborted_transactions(Offset::ZERO, ALL), all, "after a crash");
        drop(log);

        // The newest snapshot lost: recovery replays from an older one, past entries the file
        // already holds, and must neither repeat them nor keep the file's copies. The file's
        // entries are marked (their last stable offsets moved) so a kept copy would show.
        let snapshots = producer_state::list_snapshots(dir.path());
        assert_eq!(snapshots.len(), 2, "the test needs an older snapshot to fall back on");
        std::fs::remove_file(producer_state::snapshot_path(dir.path(), snapshots[1])).unwrap();
        let path = dir.path().join(TXN_INDEX_FILE);
        let mut file = std::fs::read(&path).unwrap();
        assert!(file.len() > 34, "the file holds several entries");
        for entry in file.chunks_exact_mut(34) {
            let lso = i64::from_be_bytes(entry[26..34].try_into().unwrap());
            entry[26..34].copy_from_slice(&(lso + 1000).to_be_bytes());
        }
        std::fs::write(&path, &file).unwrap();
        let marked = |t: &AbortedTxn| AbortedTxn { last_stable_offset: t.last_stable_offset.plus(1000), ..*t };
        let expected: Vec<AbortedTxn> =
            all.iter().map(|t| if t.last_offset < snapshots[0] { marked(t) } else { *t }).collect();
        assert!(expected != all && expected[expected.len() - 1] == all[all.len() - 1], "both kinds are present");
        let log = open(dir.path(), config.clone(), &cache).await;
        assert_eq!(log.aborted_transactions(Offset::ZERO, ALL), expected, "replayed from an older snapshot");
        drop(log);

        // The index lost, or damaged, beside snapshots: the whole log is replayed.
        std::fs::remove_file(dir.path().join(TXN_INDEX_FILE)).unwrap();
        let log = open(dir.path(), config.clone(), &cache).await;
        assert_eq!(log.aborted_transactions(Offset::ZERO, ALL), all, "index file lost");
        log.close().await.unwrap();
        std::fs::write(dir.path().join(TXN_INDEX_FILE), b"not an index").unwrap();
        let log = open(dir.path(), config.clone(), &cache).await;
        assert_eq!(log.aborted_transactions(Offset::ZERO, ALL), all, "index file damaged");
        log.close().await.unwrap();
    });
}

#[test]
fn delete_records_trims_the_aborted_transactions_below_the_log_start() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(4096);
        let cache = BatchCache::new(u64::MAX);
        let log = open(dir.path(), config.clone(), &cache).await;
        transactions(&log, 100, 8).await;
        let before = log.aborted_transactions(Offset::ZERO, ALL);
        assert_eq!(before.len(), 4);
        // The log start just after the second abort's marker, inside nothing: the first two go.
        let cut = before[1].last_offset.plus(1);
        log.delete_records_before(cut).unwrap();
        assert_eq!(log.aborted_transactions(Offset::ZERO, ALL), before[2..]);
        // Inside the third aborted transaction: it stays, since records of it remain.
        let inside = before[2].first_offset.plus(1);
        log.delete_records_before(inside).unwrap();
        assert_eq!(log.aborted_transactions(Offset::ZERO, ALL), before[2..]);
        log.close().await.unwrap();
        let log = open(dir.path(), config.clone(), &cache).await;
        assert_eq!(log.aborted_transactions(Offset::ZERO, ALL), before[2..], "after a reopen");
        assert!(log.last_stable_offset() >= log.log_start_offset());
        log.close().await.unwrap();
    });
}

#[test]
fn reads_report_an_offset_above_everything_they_returned() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(1 << 20);
        {
            let cache = BatchCache::new(u64::MAX);
            let log = open(dir.path(), config.clone(), &cache).await;
            for seed in 0..40 {
                durable(&log, batch(seed, 3, 100)).await;
            }
            log.close().await.unwrap();
        }
        // Once from the cache, once from the file (a fresh, empty cache).
        for cached in [true, false] {
            let cache = BatchCache::new(u64::MAX);
            let log = open(dir.path(), config.clone(), &cache).await;
            if cached {
                durable(&log, batch(99, 3, 100)).await;
            }
            let end = log.high_watermark();
            for start in [0, 5, 31, 60, 100] {
                for max_bytes in [1, 700, 3000, 1 << 20] {
                    for upper in [Offset(50), end] {
                        let slice =
                            log.read(Offset(start), ReadLimits { max_bytes, upper_bound: upper }).await.unwrap();
                        if slice.is_empty() {
                            continue;
                        }
                        let bytes = slice.to_vec().await.unwrap();
                        let last = BatchIter::new(&bytes, usize::MAX)
                            .map_while(Result::ok)
                            .map(|b| b.next_offset())
                            .last()
                            .unwrap();
                        assert!(slice.upper_offset >= last, "{start}/{max_bytes}: {:?} < {last}", slice.upper_offset);
                        assert!(slice.upper_offset <= upper);
                    }
                }
            }
            log.close().await.unwrap();
        }
    });
}
