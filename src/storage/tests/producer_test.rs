//! Producer state in a whole log: retries deduplicated, gaps refused, and the state surviving a
//! clean close and a crash (snapshots at rolls plus the replay of the tail), markers included.

use super::*;
use crate::model::{ControlType, ProducerId, set_producer};
use crate::storage::{ProducerError, producer_state};
use crate::testing::run_on_shard;

/// A batch of `records` records from producer `id` at `epoch`, starting at `sequence`.
fn produced(id: i64, epoch: i16, sequence: i32, records: usize, transactional: bool) -> BytesMut {
    let mut bytes = batch(sequence as u64 + 1000 * id as u64, records, 100);
    set_producer(&mut bytes, ProducerId(id), epoch, sequence, transactional);
    bytes
}

#[test]
fn retries_answer_with_the_original_offsets_and_gaps_are_refused() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cache = BatchCache::new(u64::MAX);
        let log = open(dir.path(), small_config(1 << 20), &cache).await;
        append(&log, batch(1, 2, 10), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        let first = append(&log, produced(7, 0, 0, 3, false), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        assert_eq!((first.base_offset, first.last_offset), (Offset(2), Offset(4)));
        let retry = append(&log, produced(7, 0, 0, 3, false), LeaderEpoch(0)).unwrap().durable().await.unwrap();
        assert_eq!((retry.base_offset, retry.last_offset), (Offset(2), Offset(4)));
        assert_eq!(log.log_end_offset(), Offset(5), "a retry appends nothing");
        let gap = append(&log, produced(7, 0, 5, 1, false), LeaderEpoch(0)).err();
        assert!(matches!(gap, Some(Error::Producer(ProducerError::OutOfOrderSequence { expected: 3, got: 5, .. }))));
        let stale = append(&log, produced(7, -1, 3, 1, false), LeaderEpoch(0)).err();
        assert!(stale.is_none() || matches!(stale, Some(Error::Producer(_))));
        log.close().await.unwrap();
    });
}

#[test]
fn producer_state_survives_a_clean_close_and_a_crash() {
    run_on_shard(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(4096);
        let cache = BatchCache::new(u64::MAX);
        let mut sequence = 0;
        {
            let log = open(dir.path(), config.clone(), &cache).await;
            for _ in 0..40 {
                append(&log, produced(3, 1, sequence, 2, false), LeaderEpoch(0)).unwrap().durable().await.unwrap();
                sequence += 2;
            }
            assert!(log.segment_count() > 2, "the test needs rolls");
            log.close().await.unwrap();
        }
        {
            // Clean: the close wrote a snapshot at the log end; the last batch is a duplicate.
            let log = open(dir.path(), config.clone(), &cache).await;
            let end = log.log_end_offset();
            let retry = append(&log, produced(3, 1, sequence - 2, 2, false), LeaderEpoch(0)).unwrap();
            assert_eq!(retry.info().last_offset, end.plus(-1));
            assert_eq!(log.log_end_offset(), end);
            // An open transaction and a marker, then a crash (no close).
            append(&log, produced(3, 1, sequence, 1, false), LeaderEpoch(0)).unwrap().durable().await.unwrap();
            sequence += 1;
            let txn = append(&log, produced(9, 0, 0, 2, true), LeaderEpoch(0)).unwrap().durable().await.unwrap();
            assert_eq!(log.with_producers(|p| p.first_unstable_offset()), Some(txn.base_offset));
            let (marker, done) = log.append_marker(ProducerId(9), 0, 4, ControlType::Abort, LeaderEpoch(0)).unwrap();
            marker.durable().await.unwrap();
            assert!(done.aborted && done.first_offset == txn.base_offset);
            let open_txn = append(&log, produced(11, 2, 0, 1, true), LeaderEpoch(0)).unwrap().durable().await.unwrap();
            drop(log);
            // Snapshots only at rolls: the replay must cover the tail, marker included.
            let snapshots = producer_state::list_snapshots(dir.path());
            assert!(!snapshots.is_empty());
            let log = open(dir.path(), config.clone(), &cache).await;
            let retry = append(&log, produced(3, 1, sequence - 1, 1, false), LeaderEpoch(0)).unwrap();
            assert_eq!(log.log_end_offset(), open_txn.last_offset.plus(1), "the retry was a duplicate");
            drop(retry);
            log.with_producers(|p| {
                assert_eq!(p.get(ProducerId(9)).map(|e| (e.coordinator_epoch, e.txn_first_offset)), Some((4, None)));
                assert_eq!(p.first_unstable_offset(), Some(open_txn.base_offset));
            });
            let fenced = log.append_marker(ProducerId(9), 0, 3, ControlType::Commit, LeaderEpoch(0)).err();
            assert!(matches!(fenced, Some(Error::Producer(ProducerError::CoordinatorFenced { .. }))));
            log.close().await.unwrap();
        }
        {
            // Without any snapshot (a log from before producer state), the whole log replays.
            for offset in producer_state::list_snapshots(dir.path()) {
                std::fs::remove_file(producer_state::snapshot_path(dir.path(), offset)).unwrap();
            }
            std::fs::remove_file(dir.path().join(".clean-shutdown")).unwrap();
            let log = open(dir.path(), config.clone(), &cache).await;
            let next = append(&log, produced(3, 1, sequence, 1, false), LeaderEpoch(0));
            assert!(next.is_ok(), "the sequence continues after a full replay");
            let gap = append(&log, produced(3, 1, sequence + 5, 1, false), LeaderEpoch(0)).err();
            assert!(matches!(gap, Some(Error::Producer(ProducerError::OutOfOrderSequence { .. }))));
            log.close().await.unwrap();
        }
    });
}
