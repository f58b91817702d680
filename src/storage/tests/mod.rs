//! Storage tests that need a whole log: appends, reads, rolls, group commit, failures, recovery
//! and retention, each on a real glommio shard with real files under a temp dir.

mod cleaner_test;
mod file_cache_test;
mod log_test;
mod producer_test;
mod recovery_test;
mod replication_test;
mod retention_test;
mod txn_test;

use std::path::Path;

use bytes::BytesMut;

use super::{
    BatchCache, Error, FileCache, FileCacheConfig, FlushMode, HighWatermark, LogConfig, OpenOptions, PartitionLog,
    PendingAppend, ReadLimits,
};
use crate::model::{BatchIter, LeaderEpoch, Offset, Timestamp, TopicPartition, ValidBatches};

/// A log config that rolls small segments and indexes densely, so tests cross every boundary.
pub(super) fn small_config(segment_bytes: u32) -> LogConfig {
    let mut config = LogConfig { flush_mode: FlushMode::Sync, ..LogConfig::default() };
    config.set("segment.bytes", &segment_bytes.to_string()).unwrap();
    config.set("index.interval.bytes", "512").unwrap();
    config
}

pub(super) async fn open(dir: &Path, config: LogConfig, cache: &BatchCache) -> PartitionLog {
    open_in(dir, config, cache, &FileCache::new(FileCacheConfig::default())).await
}

/// [`open`] with the shard's descriptor cache `files`.
pub(super) async fn open_in(dir: &Path, config: LogConfig, cache: &BatchCache, files: &FileCache) -> PartitionLog {
    PartitionLog::open(OpenOptions {
        dir: dir.to_path_buf(),
        topic_partition: TopicPartition::new("t", 0),
        config,
        cache,
        files,
        high_watermark: HighWatermark::FollowsAcks,
    })
    .await
    .unwrap()
}

/// Validates `records` against the log's own limit, as the broker does before an append, and
/// appends them.
pub(super) fn append(log: &PartitionLog, records: BytesMut, epoch: LeaderEpoch) -> Result<PendingAppend, Error> {
    let batches = ValidBatches::new(records, log.config().batch_bytes_max())?;
    log.append(batches, epoch)
}

/// A batch of `records` records whose content is determined by `seed`.
pub(super) fn batch(seed: u64, records: usize, value_bytes: usize) -> BytesMut {
    crate::testing::batch_of(records, value_bytes, seed, Timestamp(1_700_000_000_000 + seed as i64))
}

/// Every whole batch from `from` up to `upper`, read through `PartitionLog::read` in small
/// steps, as `(base offset, batch bytes)`.
pub(super) async fn read_all(log: &PartitionLog, from: Offset, upper: Offset) -> Vec<(Offset, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < upper {
        let slice = log.read(next, ReadLimits { max_bytes: 3000, upper_bound: upper }).await.unwrap();
        if slice.is_empty() {
            break;
        }
        let bytes = slice.to_vec().await.unwrap();
        let mut advanced = false;
        for batch in BatchIter::new(&bytes, usize::MAX) {
            let batch = batch.unwrap();
            batch.validate().unwrap();
            if batch.next_offset() > next {
                out.push((batch.base_offset(), batch.as_bytes().to_vec()));
                next = batch.next_offset();
                advanced = true;
            }
        }
        assert!(advanced, "a read at {next} returned no new batch");
    }
    out
}

/// True if `stored` is `original` with only the broker-owned fields (base offset, epoch) changed.
pub(super) fn same_batch(stored: &[u8], original: &[u8]) -> bool {
    stored.len() == original.len() && stored[8..12] == original[8..12] && stored[16..] == original[16..]
}
