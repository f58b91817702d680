//! [`ShardPartitions`]: the partitions one shard owns, with the shard's batch cache, their
//! opening and closing as the metadata changes, and retention.
//!
//! Lifecycle: one per shard, made at startup; the metadata layer opens and removes partitions
//! as images arrive ([`ShardPartitions::open`], [`ShardPartitions::retain`]); at shutdown
//! [`ShardPartitions::close_all`] flushes and seals every log.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use super::messages::{PartitionRequest, PartitionResponse};
use super::replica::Partition;
use crate::broker::config::BrokerConfig;
use crate::broker::topic_config::TopicConfig;
use crate::model::{LeaderEpoch, Timestamp, TopicId, TopicPartition};
use crate::shard::{Peers, PeersSlot};
use crate::storage::{BatchCache, FileCache, HighWatermark, OpenOptions, PartitionLog};

/// The partition layer's handle on the other shards.
pub type PartitionPeers = Peers<PartitionRequest, PartitionResponse>;

/// The partitions this shard owns.
pub struct ShardPartitions {
    config: Arc<BrokerConfig>,
    partitions: RefCell<HashMap<TopicPartition, Rc<Partition>>>,
    cache: BatchCache,
    /// The shard's descriptor cache, through which every log opens its segment files.
    files: FileCache,
    peers: PeersSlot<PartitionRequest, PartitionResponse>,
    /// Bytes of the cleaner's key map, once its first clean made it (`cleaning.rs`).
    cleaner_buffer_bytes: std::cell::Cell<u64>,
}

impl ShardPartitions {
    /// No partitions yet.
    pub fn new(config: Arc<BrokerConfig>) -> Self {
        let cache = BatchCache::new(config.batch_cache_bytes);
        let files = FileCache::new(config.segment_files);
        ShardPartitions {
            config,
            partitions: RefCell::new(HashMap::new()),
            cache,
            files,
            peers: PeersSlot::default(),
            cleaner_buffer_bytes: std::cell::Cell::new(0),
        }
    }

    /// The shard's descriptor cache (its counts, for tools and metrics).
    pub fn files(&self) -> &FileCache {
        &self.files
    }

    /// Connects the layer to its counterparts on the other shards (once, at startup).
    pub fn set_peers(&self, peers: PartitionPeers) {
        self.peers.set(peers);
    }

    /// The partition layers of all shards.
    pub fn peers(&self) -> &PartitionPeers {
        self.peers.get()
    }

    /// A partition this shard owns.
    pub fn get(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.partitions.borrow().get(tp).cloned()
    }

    /// Bytes held in this shard's batch cache.
    pub fn batch_cache_bytes(&self) -> u64 {
        self.cache.used_bytes()
    }

    /// Bytes of this shard's cleaner key map (0 until its first clean).
    pub fn cleaner_buffer_bytes(&self) -> u64 {
        self.cleaner_buffer_bytes.get()
    }

    pub(super) fn set_cleaner_buffer_bytes(&self, bytes: u64) {
        self.cleaner_buffer_bytes.set(bytes);
    }

    /// The broker's configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Every partition this shard owns.
    pub fn all(&self) -> Vec<Rc<Partition>> {
        self.partitions.borrow().values().cloned().collect()
    }

    /// Opens `tp`'s log unless it is open already under the same topic id, in which case it
    /// takes `config` (a config change). Returns whether the log is open (a failure is logged).
    pub async fn open(
        &self,
        tp: TopicPartition,
        topic_id: TopicId,
        config: TopicConfig,
        leader_epoch: LeaderEpoch,
    ) -> bool {
        if let Some(open) = self.get(&tp).filter(|p| p.topic_id() == topic_id) {
            open.set_config(config);
            open.set_leader_epoch(leader_epoch);
            return true;
        }
        let opened = PartitionLog::open(OpenOptions {
            dir: self.config.data_dir.join(tp.dir_name()),
            topic_partition: tp.clone(),
            config: config.log.clone(),
            cache: &self.cache,
            files: &self.files,
            high_watermark: HighWatermark::FollowsAcks,
        })
        .await;
        match opened {
            Ok(log) => {
                let partition = Rc::new(Partition::new(tp.clone(), topic_id, log, config, leader_epoch));
                let replaced = self.partitions.borrow_mut().insert(tp, partition);
                if let Some(old) = replaced {
                    // A topic deleted and created again under the same name.
                    self.remove(old).await;
                }
                true
            }
            Err(e) => {
                error!(tp = %tp, error = %e, "cannot open partition log");
                false
            }
        }
    }

    /// Closes and deletes every partition for which `keep` says no.
    pub async fn retain(&self, keep: impl Fn(&TopicPartition, TopicId) -> bool) {
        let gone: Vec<Rc<Partition>> =
            self.partitions.borrow().values().filter(|p| !keep(p.topic_partition(), p.topic_id())).cloned().collect();
        for partition in gone {
            self.partitions.borrow_mut().remove(partition.topic_partition());
            self.remove(partition).await;
        }
    }

    /// Closes a partition's log and deletes its directory in the background.
    async fn remove(&self, partition: Rc<Partition>) {
        let tp = partition.topic_partition().clone();
        if let Err(e) = partition.close().await {
            warn!(tp = %tp, error = %e, "closing a deleted partition");
        }
        let dir = self.config.data_dir.join(tp.dir_name());
        // Rename first (atomic), so a restart never sees a half-deleted partition, then delete
        // off the shard's thread.
        let doomed = self.config.data_dir.join(format!("{}.{}-delete", tp.dir_name(), std::process::id()));
        match std::fs::rename(&dir, &doomed) {
            Ok(()) => {
                std::thread::spawn(move || {
                    if let Err(e) = std::fs::remove_dir_all(&doomed) {
                        warn!(dir = %doomed.display(), error = %e, "could not delete partition directory");
                    }
                });
            }
            Err(e) => warn!(dir = %dir.display(), error = %e, "could not remove partition directory"),
        }
        info!(tp = %tp, "partition removed");
    }

    /// Enforces retention on this shard's partitions every `--retention-check-interval-ms`
    /// until the layer goes away.
    pub fn spawn_retention(self: &Rc<Self>) {
        let me = Rc::downgrade(self);
        let every = Duration::from_millis(self.config.retention_check_interval_ms.max(1));
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                let Some(partitions) = me.upgrade() else { return };
                let expiration = Duration::from_millis(partitions.config.txn.producer_id_expiration_ms);
                for partition in partitions.all() {
                    if let Err(e) = partition.enforce_retention(Timestamp::now()) {
                        warn!(tp = %partition.topic_partition(), error = %e, "retention failed");
                    }
                    partition.expire_producers(Timestamp::now(), expiration);
                }
            }
        })
        .detach();
    }

    /// Closes every log on this shard (flush, seal, clean-shutdown marker), a few at a time:
    /// each close waits on the disk (its seal's fdatasyncs), and one after another a shard of
    /// 5,000 written partitions took over a minute to stop.
    pub async fn close_all(&self) {
        let partitions: Vec<Rc<Partition>> = self.partitions.borrow_mut().drain().map(|(_, p)| p).collect();
        for some in partitions.chunks(crate::limits::LOG_CLOSES_IN_FLIGHT) {
            let closes: Vec<_> = some
                .iter()
                .map(|partition| {
                    let partition = partition.clone();
                    glommio::spawn_local(async move { (partition.close().await, partition) }).detach()
                })
                .collect();
            for close in closes {
                if let Some((Err(e), partition)) = close.await {
                    error!(tp = %partition.topic_partition(), error = %e, "log did not close cleanly");
                }
            }
        }
    }
}
