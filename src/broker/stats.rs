//! [`Stats`]: what a metrics scrape asks of every shard, for the figures that are counted when
//! asked rather than kept up to date (see `crate::metrics`): each shard's partitions, leaders,
//! under-replicated partitions, follower lag and batch cache, and the consumer groups' lag.
//!
//! A scrape runs on the shard serving `/metrics` and goes in two rounds: every shard sets its
//! own gauges and answers its groups' committed offsets; then the owner of each partition those
//! offsets name answers its high watermark, and the scraping shard sets each group's lag (high
//! watermark minus committed offset; in a cluster, only over the partitions this broker leads).
//!
//! Lifecycle: one per shard, made at startup; nothing is kept between scrapes. Cores: a shard's
//! `Stats` reads only its own layers; other shards are reached through [`StatsPeers`].

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::broker::config::BrokerConfig;
use crate::broker::groups::Coordinator;
use crate::broker::metadata::Metadata;
use crate::broker::partition::{Role, ShardPartitions};
use crate::limits::METRICS_SCRAPE_TIMEOUT;
use crate::metrics::{self, GroupLag, ShardSample};
use crate::model::{Offset, TopicPartition};
use crate::server::RequestMemory;
use crate::shard::{Peers, PeersSlot, ShardId};

/// The most often a scrape that timed out is logged: a scraper retrying against a stalled shard
/// would otherwise log a line per attempt.
const TIMEOUT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// What a scrape asks of one shard.
#[derive(Debug)]
pub enum StatsRequest {
    /// Set this shard's scrape-time gauges, and answer its groups' committed offsets.
    Sample,
    /// The high watermarks of these partitions, which this shard owns.
    HighWatermarks(Vec<TopicPartition>),
}

/// One committed offset of a group this shard coordinates.
#[derive(Debug, Clone)]
pub struct GroupOffset {
    /// The group id.
    pub group: String,
    /// The partition.
    pub topic_partition: TopicPartition,
    /// The next offset the group will consume.
    pub offset: i64,
}

/// The answer to a [`StatsRequest`].
#[derive(Debug)]
pub enum StatsResponse {
    /// The shard's groups' committed offsets.
    Sample(Vec<GroupOffset>),
    /// The high watermarks of the partitions asked for that this shard leads.
    HighWatermarks(Vec<(TopicPartition, Offset)>),
}

/// The stats layer's handle on the other shards.
pub type StatsPeers = Peers<StatsRequest, StatsResponse>;

/// What a scrape asks of one shard. See the module docs.
pub struct Stats {
    config: Arc<BrokerConfig>,
    metadata: Rc<Metadata>,
    partitions: Rc<ShardPartitions>,
    groups: Rc<Coordinator>,
    peers: PeersSlot<StatsRequest, StatsResponse>,
    /// When a timed-out scrape was last logged, and how many have not been since.
    timeout_logged: Cell<(Option<Instant>, u64)>,
    /// The shard's request budgets (client listener, replication listener), once serving.
    request_memory: std::cell::OnceCell<[Rc<RequestMemory>; 2]>,
}

impl Stats {
    /// The layer for one shard.
    pub fn new(
        config: Arc<BrokerConfig>,
        metadata: Rc<Metadata>,
        partitions: Rc<ShardPartitions>,
        groups: Rc<Coordinator>,
    ) -> Self {
        Stats {
            config,
            metadata,
            partitions,
            groups,
            peers: PeersSlot::default(),
            timeout_logged: Cell::new((None, 0)),
            request_memory: std::cell::OnceCell::new(),
        }
    }

    /// The request budgets of this shard's client and replication listeners, to report.
    pub fn watch_request_memory(&self, client: Rc<RequestMemory>, replication: Rc<RequestMemory>) {
        let _ = self.request_memory.set([client, replication]);
    }

    /// Connects the layer to its counterparts on the other shards (once, at startup).
    pub fn set_peers(&self, peers: StatsPeers) {
        self.peers.set(peers);
    }

    /// Serves a request from the scraping shard.
    pub async fn serve(&self, request: StatsRequest) -> StatsResponse {
        match request {
            StatsRequest::Sample => {
                metrics::set_shard_sample(self.sample());
                let offsets = self.groups.committed_offsets().into_iter();
                let offsets = offsets.map(|(group, topic, partition, offset)| GroupOffset {
                    group,
                    topic_partition: TopicPartition::new(topic, partition),
                    offset,
                });
                StatsResponse::Sample(offsets.collect())
            }
            StatsRequest::HighWatermarks(tps) => {
                let led = tps.into_iter().filter_map(|tp| {
                    let partition = self.partitions.get(&tp).filter(|p| p.role() == Role::Leader)?;
                    Some((tp, partition.high_watermark()))
                });
                StatsResponse::HighWatermarks(led.collect())
            }
        }
    }

    /// This shard's partitions, leaders and batch cache, counted now.
    fn sample(&self) -> ShardSample {
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut sample = ShardSample {
            batch_cache_bytes: to_i64(self.partitions.batch_cache_bytes()),
            batch_cache_budget_bytes: to_i64(self.config.batch_cache_bytes),
            cleaner_buffer_bytes: to_i64(self.partitions.cleaner_buffer_bytes()),
            cleaner_buffer_budget_bytes: to_i64(self.config.cleaner.dedupe_buffer_bytes),
            ..ShardSample::default()
        };
        if let Some([client, replication]) = self.request_memory.get() {
            sample.request_memory_bytes = to_i64(client.charged_bytes());
            sample.request_memory_budget_bytes = to_i64(client.budget_bytes());
            sample.replication_request_memory_bytes = to_i64(replication.charged_bytes());
            sample.replication_request_memory_budget_bytes = to_i64(replication.budget_bytes());
        }
        let files = self.partitions.files().stats();
        sample.open_segment_files = i64::try_from(files.open).unwrap_or(i64::MAX);
        sample.open_segment_files_max = i64::try_from(files.open_max).unwrap_or(i64::MAX);
        for partition in self.partitions.all() {
            sample.partitions += 1;
            if let Some(health) = partition.leader_health() {
                sample.leaders += 1;
                sample.under_replicated += i64::from(health.under_replicated);
                sample.replica_lag_max_records = sample.replica_lag_max_records.max(health.follower_lag_max);
            }
        }
        sample
    }

    /// Refreshes every shard's scrape-time gauges and the consumer groups' lag, giving up after
    /// [`METRICS_SCRAPE_TIMEOUT`] (the scrape then shows what it had).
    pub async fn scrape(&self) {
        let refreshed = futures_lite::future::or(
            async {
                self.refresh().await;
                true
            },
            async {
                glommio::timer::sleep(METRICS_SCRAPE_TIMEOUT).await;
                false
            },
        )
        .await;
        if refreshed {
            return;
        }
        let (last, unlogged) = self.timeout_logged.get();
        if last.is_some_and(|at| at.elapsed() < TIMEOUT_LOG_INTERVAL) {
            self.timeout_logged.set((last, unlogged + 1));
            return;
        }
        self.timeout_logged.set((Some(Instant::now()), 0));
        warn!(
            timeout_ms = METRICS_SCRAPE_TIMEOUT.as_millis(),
            timed_out_since_last_line = unlogged,
            "a metrics scrape timed out waiting for the shards; it shows their last figures"
        );
    }

    async fn refresh(&self) {
        let peers = self.peers.get().clone();
        let samples: Vec<_> = (0..peers.count())
            .map(|shard| {
                let peers = peers.clone();
                glommio::spawn_local(async move { peers.call(shard, StatsRequest::Sample).await })
            })
            .collect();
        let mut offsets = Vec::new();
        for sample in samples {
            if let Ok(StatsResponse::Sample(found)) = sample.await {
                offsets.extend(found);
            }
        }
        let mut by_shard: BTreeMap<ShardId, BTreeSet<TopicPartition>> = BTreeMap::new();
        for offset in &offsets {
            let tp = &offset.topic_partition;
            if let Ok(shard) = self.metadata.route(&tp.topic, tp.partition) {
                by_shard.entry(shard).or_default().insert(tp.clone());
            }
        }
        let asked: Vec<_> = by_shard
            .into_iter()
            .map(|(shard, tps)| {
                let peers = peers.clone();
                let request = StatsRequest::HighWatermarks(tps.into_iter().collect());
                glommio::spawn_local(async move { peers.call(shard, request).await })
            })
            .collect();
        let mut high_watermarks: HashMap<TopicPartition, Offset> = HashMap::new();
        for answer in asked {
            if let Ok(StatsResponse::HighWatermarks(found)) = answer.await {
                high_watermarks.extend(found);
            }
        }
        metrics::set_group_lags(group_lags(offsets, &high_watermarks));
    }
}

/// Each group's lag over the partitions whose high watermark is known.
fn group_lags(offsets: Vec<GroupOffset>, high_watermarks: &HashMap<TopicPartition, Offset>) -> Vec<GroupLag> {
    let mut lags: BTreeMap<String, GroupLag> = BTreeMap::new();
    for offset in offsets {
        let Some(high_watermark) = high_watermarks.get(&offset.topic_partition) else { continue };
        if offset.offset < 0 {
            continue;
        }
        let lag = (high_watermark.0 - offset.offset).max(0);
        let group = lags.entry(offset.group).or_insert_with_key(|group| GroupLag {
            group: group.clone(),
            lag_records: 0,
            lag_max_records: 0,
        });
        group.lag_records = group.lag_records.saturating_add(lag);
        group.lag_max_records = group.lag_max_records.max(lag);
    }
    lags.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_lags_by_the_high_watermark_minus_its_offsets_where_they_are_known() {
        let tp = |p| TopicPartition::new("t", p);
        let offset = |group: &str, p, offset| GroupOffset { group: group.into(), topic_partition: tp(p), offset };
        let high_watermarks: HashMap<TopicPartition, Offset> = [(tp(0), Offset(10)), (tp(1), Offset(5))].into();
        let offsets = vec![
            offset("a", 0, 4),
            offset("a", 1, 5),
            offset("a", 2, 0),
            offset("b", 0, 12),
            offset("b", 1, -1),
            offset("c", 1, 1),
        ];
        let lags = group_lags(offsets, &high_watermarks);
        let lag =
            |group: &str, lag_records, lag_max_records| GroupLag { group: group.into(), lag_records, lag_max_records };
        assert_eq!(lags, vec![lag("a", 6, 6), lag("b", 0, 0), lag("c", 4, 4)]);
    }
}
