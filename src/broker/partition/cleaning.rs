//! The shard's log cleaner: Kafka's `LogCleaner` with one cleaner "thread" per shard. A shard
//! cleans only the compacted logs it owns, one at a time, on its own executor, so a clean needs no
//! locks and its disk traffic is the shard's own; it yields between batches and spends an I/O
//! budget (`--log-cleaner-io-mb-per-sec`), so produce and fetch on the shard keep their latency.
//!
//! Which log next (Kafka's `LogCleanerManager.grabFilthiestCompactedLog`): first a log whose
//! oldest dirty record is older than its `max.compaction.lag.ms`, then the one with the highest
//! dirty ratio at or above its `min.cleanable.dirty.ratio`. A log whose clean failed is left
//! alone for [`FAILED_CLEAN_BACKOFF`] (Kafka marks it uncleanable until restart; a retry later
//! recovers from transient errors such as a full disk).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::registry::ShardPartitions;
use super::replica::{Partition, PartitionError};
use crate::broker::config::CleanerConfig;
use crate::model::{Timestamp, TopicPartition};
use crate::storage::{self, Cleanable, DedupeMap, IoBudget};

/// How long a log whose clean failed is skipped before the cleaner tries it again.
const FAILED_CLEAN_BACKOFF: Duration = Duration::from_secs(60);
/// The cleaner's task queue shares; glommio's default queue, where requests are served, has
/// 1000.
const CLEANER_SHARES: usize = 100;

/// Why a log is cleaned now, if it is.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Urgency {
    /// A dirty record is older than `max.compaction.lag.ms`: by how many milliseconds.
    Overdue(i64),
    /// The dirty ratio, at or above `min.cleanable.dirty.ratio`.
    Dirty(f64),
}

impl Urgency {
    /// Overdue logs first (the most overdue first), then the dirtiest.
    fn rank(self) -> (u8, f64) {
        match self {
            Urgency::Overdue(ms) => (1, ms as f64),
            Urgency::Dirty(ratio) => (0, ratio),
        }
    }
}

/// Whether (and how urgently) a log with `cleanable` state and its topic's settings is due.
fn urgency(cleanable: &Cleanable, min_dirty_ratio: f64, max_lag_ms: u64, now: Timestamp) -> Option<Urgency> {
    if cleanable.dirty_bytes == 0 {
        return None;
    }
    let max_lag = i64::try_from(max_lag_ms).unwrap_or(i64::MAX);
    if let Some(oldest) = cleanable.oldest_dirty_ms {
        let late = now.0.saturating_sub(oldest).saturating_sub(max_lag);
        if late > 0 {
            return Some(Urgency::Overdue(late));
        }
    }
    (cleanable.dirty_ratio >= min_dirty_ratio).then_some(Urgency::Dirty(cleanable.dirty_ratio))
}

/// The log to clean next among `partitions`, skipping those in `resting`.
fn pick(
    partitions: &[Rc<Partition>],
    resting: &HashMap<TopicPartition, Instant>,
    now: Timestamp,
) -> Option<Rc<Partition>> {
    let mut best: Option<(Urgency, &Rc<Partition>)> = None;
    for partition in partitions {
        if resting.contains_key(partition.topic_partition()) {
            continue;
        }
        let Some(cleanable) = partition.cleanable(now) else { continue };
        let (ratio, max_lag) = {
            let config = partition.config();
            (config.log.min_cleanable_dirty_ratio, config.log.max_compaction_lag_ms)
        };
        let Some(due) = urgency(&cleanable, ratio, max_lag, now) else { continue };
        if best.as_ref().is_none_or(|(b, _)| due.rank() > b.rank()) {
            best = Some((due, partition));
        }
    }
    best.map(|(_, p)| p.clone())
}

impl ShardPartitions {
    /// Cleans this shard's compacted logs until the layer goes away (see the module docs).
    /// `settings` gives the cleaner's settings as they are now: the flags under the dynamic broker
    /// configs (`log.cleaner.io.max.bytes.per.second`, `log.cleaner.dedupe.buffer.size`,
    /// `log.cleaner.backoff.ms`), read again before every clean so a change applies at once.
    pub fn spawn_cleaner(self: &Rc<Self>, settings: impl Fn() -> CleanerConfig + 'static) {
        if !self.config().cleaner.enable {
            return;
        }
        let me = Rc::downgrade(self);
        // Its own task queue, with a tenth of the default queue's shares: while requests are
        // runnable they get the core first, and the cleaner takes what they leave.
        let queue = glommio::executor().create_task_queue(
            glommio::Shares::Static(CLEANER_SHARES),
            glommio::Latency::NotImportant,
            "log-cleaner",
        );
        let cleaner = async move {
            let mut config = settings();
            // Made at the first clean, not before: a core with no log to compact never holds
            // the buffer (64 MiB by default, each slot written at creation, so all resident).
            let mut map: Option<DedupeMap> = None;
            let budget = IoBudget::new(config.io_bytes_per_sec);
            let mut resting: HashMap<TopicPartition, Instant> = HashMap::new();
            loop {
                let now = settings();
                if now.dedupe_buffer_bytes != config.dedupe_buffer_bytes {
                    map = None;
                }
                budget.set_rate(now.io_bytes_per_sec);
                config = now;
                let backoff = Duration::from_millis(config.backoff_ms.max(1));
                resting.retain(|_, until| *until > Instant::now());
                let next = {
                    let Some(partitions) = me.upgrade() else { return };
                    pick(&partitions.all(), &resting, Timestamp::now())
                };
                let Some(partition) = next else {
                    glommio::timer::sleep(backoff).await;
                    continue;
                };
                let tp = partition.topic_partition().clone();
                let map = map.get_or_insert_with(|| {
                    DedupeMap::new(usize::try_from(config.dedupe_buffer_bytes).unwrap_or(usize::MAX))
                });
                if let Some(partitions) = me.upgrade() {
                    partitions.set_cleaner_buffer_bytes(map.bytes() as u64);
                }
                match partition.clean(map, &budget, Timestamp::now()).await {
                    Ok(Some(report)) => {
                        let mb_per_sec = report.bytes_read as f64 / report.took.as_secs_f64().max(1e-6) / 1e6;
                        info!(
                            tp = %tp,
                            start = %report.start,
                            end = %report.end,
                            segments_before = report.segments_before,
                            segments_after = report.segments_after,
                            bytes_read = report.bytes_read,
                            bytes_before = report.bytes_before,
                            bytes_after = report.bytes_after,
                            records_read = report.records_read,
                            records_kept = report.records_kept,
                            tombstones_removed = report.tombstones_removed,
                            aborted_removed = report.aborted_removed,
                            took_ms = report.took.as_millis(),
                            mb_per_sec = format!("{mb_per_sec:.1}"),
                            "log cleaned"
                        )
                    }
                    // Nothing to do after all (the log changed since it was picked).
                    Ok(None) => glommio::timer::sleep(backoff).await,
                    // The log was truncated (replication) or closed (deleted, shutting down)
                    // under the clean, which left it as it was: nothing is wrong with it.
                    Err(PartitionError::Storage(storage::Error::Truncated | storage::Error::Closed)) => {
                        debug!(tp = %tp, "clean given up: the log changed under it")
                    }
                    Err(e) => {
                        warn!(tp = %tp, error = %e, retry_in_s = FAILED_CLEAN_BACKOFF.as_secs(), "log clean failed");
                        resting.insert(tp, Instant::now() + FAILED_CLEAN_BACKOFF);
                    }
                }
                drop(partition);
                glommio::yield_if_needed().await;
            }
        };
        match glommio::spawn_local_into(cleaner, queue) {
            Ok(task) => {
                task.detach();
            }
            Err(e) => warn!(error = %e, "could not start the log cleaner on this shard"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Offset;

    fn cleanable(dirty_bytes: u64, ratio: f64, oldest: Option<i64>) -> Cleanable {
        Cleanable {
            first_dirty: Offset(0),
            first_uncleanable: Offset(0),
            clean_bytes: 0,
            dirty_bytes,
            dirty_ratio: ratio,
            oldest_dirty_ms: oldest,
        }
    }

    #[test]
    fn a_log_is_due_by_dirty_ratio_or_by_max_compaction_lag() {
        let now = Timestamp(1_000_000);
        assert_eq!(urgency(&cleanable(0, 1.0, Some(0)), 0.5, 10, now), None, "nothing dirty");
        assert_eq!(urgency(&cleanable(10, 0.4, Some(now.0)), 0.5, 1000, now), None, "not dirty enough");
        assert_eq!(urgency(&cleanable(10, 0.6, Some(now.0)), 0.5, 1000, now), Some(Urgency::Dirty(0.6)));
        assert_eq!(urgency(&cleanable(10, 0.1, Some(now.0 - 5000)), 0.5, 1000, now), Some(Urgency::Overdue(4000)));
        assert!(Urgency::Overdue(1).rank() > Urgency::Dirty(1.0).rank());
        assert!(Urgency::Dirty(0.9).rank() > Urgency::Dirty(0.6).rank());
    }
}
