use super::*;
use crate::model::LeaderEpoch;
use crate::storage::Error;
use crate::testing::run_on_shard;

async fn fill(log: &PartitionLog, count: u64, timestamp: impl Fn(u64) -> Timestamp) {
    for seed in 0..count {
        let b = crate::testing::batch_of(1, 400, seed, timestamp(seed));
        append(log, b, LeaderEpoch(0)).unwrap().durable().await.unwrap();
    }
}

#[test]
fn size_retention_deletes_the_oldest_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let mut config = small_config(4096);
        config.set("retention.bytes", "10000").unwrap();
        let log = open(&path, config.clone(), &cache).await;
        fill(&log, 100, |_| Timestamp::now()).await;
        let before = log.segment_count();
        let report = log.enforce_retention(Timestamp::now()).unwrap();
        assert!(report.segments_deleted > 0);
        assert_eq!(log.segment_count(), before - report.segments_deleted);
        assert!(log.size_bytes() >= 10000 && log.size_bytes() < 10000 + 4096 + 500, "size {}", log.size_bytes());
        let start = log.log_start_offset();
        assert_eq!(start, report.log_start_offset);
        assert!(start > Offset(0));
        let upper = log.log_end_offset();
        assert!(matches!(
            log.read(Offset(0), ReadLimits { max_bytes: 100, upper_bound: upper }).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        assert_eq!(read_all(&log, start, upper).await.first().map(|b| b.0), Some(start));
        // Nothing more to delete on a second pass.
        assert_eq!(log.enforce_retention(Timestamp::now()).unwrap().segments_deleted, 0);
        log.close().await.unwrap();
        let log = open(&path, config, &cache).await;
        assert_eq!(log.log_start_offset(), start);
        log.close().await.unwrap();
    });
}

#[test]
fn time_retention_goes_by_each_segments_newest_record_and_spares_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let mut config = small_config(4096);
        config.set("retention.ms", "3600000").unwrap();
        let log = open(&path, config.clone(), &cache).await;
        let now = Timestamp::now().0;
        // Records 0..50 are two hours old, 50..60 are fresh.
        fill(&log, 60, |seed| Timestamp(if seed < 50 { now - 7_200_000 } else { now })).await;
        let report = log.enforce_retention(Timestamp(now)).unwrap();
        assert!(report.segments_deleted > 0);
        // The segment holding offset 49 also holds fresh records only if it straddles; every
        // remaining old record lives in the segment that contains a fresh one.
        assert!(log.log_start_offset() <= Offset(50));
        assert!(log.log_start_offset() > Offset(40));

        // A compact-only topic keeps everything, and so does an all-old log's active segment.
        let mut compact = config.clone();
        compact.set("cleanup.policy", "compact").unwrap();
        let log = open(&path.join("compact"), compact, &cache).await;
        fill(&log, 60, |_| Timestamp(now - 7_200_000)).await;
        assert_eq!(log.enforce_retention(Timestamp(now)).unwrap().segments_deleted, 0);
        let log = open(&path.join("old"), config, &cache).await;
        fill(&log, 60, |_| Timestamp(now - 7_200_000)).await;
        log.enforce_retention(Timestamp(now)).unwrap();
        assert_eq!(log.segment_count(), 1, "only the active segment is left");
        assert!(
            log.read(log.log_start_offset(), ReadLimits { max_bytes: 1, upper_bound: log.log_end_offset() })
                .await
                .is_ok()
        );
    });
}

#[test]
fn time_retention_of_segments_without_timestamps_goes_by_their_files_modification_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let mut config = small_config(4096);
        config.set("retention.ms", "3600000").unwrap();
        let log = open(&path, config, &cache).await;
        fill(&log, 60, |_| Timestamp::NONE).await;
        let segments = log.segment_count();
        assert!(segments > 2);
        // Just written: young by their files' age.
        assert_eq!(log.enforce_retention(Timestamp::now()).unwrap().segments_deleted, 0);
        // Two hours on, every sealed segment has expired.
        let later = Timestamp(Timestamp::now().0 + 7_200_000);
        assert_eq!(log.enforce_retention(later).unwrap().segments_deleted, segments - 1);
        assert_eq!(log.segment_count(), 1);
        log.close().await.unwrap();
    });
}

#[test]
fn delete_records_moves_the_log_start_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let cache = BatchCache::new(u64::MAX);
        let config = small_config(4096);
        let log = open(&path, config.clone(), &cache).await;
        fill(&log, 50, |_| Timestamp::now()).await;
        assert_eq!(log.high_watermark(), Offset(50), "a single-replica log's HW follows its acknowledgements");
        let segments = log.segment_count();
        assert!(matches!(log.delete_records_before(Offset(51)), Err(Error::OffsetOutOfRange { .. })), "past the HW");
        assert_eq!(log.delete_records_before(Offset(30)).unwrap(), Offset(30));
        assert!(log.segment_count() < segments, "whole segments below the new start are deleted");
        assert_eq!(log.delete_records_before(Offset(10)).unwrap(), Offset(30), "the start never moves back");
        let upper = log.log_end_offset();
        assert!(log.read(Offset(29), ReadLimits { max_bytes: 100, upper_bound: upper }).await.is_err());
        let got = read_all(&log, Offset(30), upper).await;
        assert_eq!(got.len(), 20);
        assert_eq!(log.offset_for_timestamp(Timestamp(0)).await.unwrap().map(|(o, _)| o), Some(Offset(30)));
        log.close().await.unwrap();
        let log = open(&path, config, &cache).await;
        assert_eq!(log.log_start_offset(), Offset(30));
        assert_eq!(read_all(&log, Offset(30), log.log_end_offset()).await.len(), 20);
        log.close().await.unwrap();
    });
}
