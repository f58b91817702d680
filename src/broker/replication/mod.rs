//! Replication on one shard: Kafka's ISR protocol between this broker's copies of the partitions
//! this shard owns and their leaders elsewhere.
//!
//! - Followers: after every metadata install, each partition this shard holds but does not lead
//!   is given to the fetcher of its leader's replication listener ([`fetcher`]). All follower
//!   partitions of this shard that follow the same listener share one Fetch request (Kafka's
//!   replica form: `replica_id`, current leader epoch, last fetched epoch), spread over
//!   `--num-replica-fetchers` fetchers per leader listener, each with one fetch in flight on the
//!   shard's connection: a fetcher asks from the new log end once its last answer is
//!   acknowledged under the flush mode (fdatasync'd with `sync`), so a follower never claims
//!   records a crash could lose.
//! - Leaders: the partition itself tracks its followers from their fetches (see
//!   `partition/leadership.rs`) and bounds its high watermark by them; every
//!   [`ISR_CHECK_INTERVAL`] this layer asks each led partition whether its ISR should change and
//!   sends the change to the controller (AlterPartition), whose answer comes back in the image.
//!
//! Shards: a replica of a partition lives on the same shard index on every broker where the
//! brokers allow (placement), and every shard listens on its own replication port, advertised at
//! registration. A follower on shard s connects from shard s to the leader's listener of the
//! shard owning the partition there: both ends of the traffic run on the owning shards, with no
//! cross-shard hop. [`Replication::hops`] counts the follower fetches that still needed one.
//!
//! Lifecycle: one per shard, made at startup; the fetchers start and stop as images arrive and
//! end with the shard. Concurrency: shard-local (`Rc`, no borrow held across an `.await`).

mod fetcher;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, warn};

use crate::broker::config::BrokerConfig;
use crate::broker::inter_broker::InterBroker;
use crate::broker::metadata::Metadata;
use crate::broker::metadata::controller::{ControllerRequest, ControllerResponse};
use crate::broker::metadata::image::{MetadataImage, NO_LEADER, PartitionMeta};
use crate::broker::partition::{IsrProposal, Partition, ShardPartitions};
use crate::model::{LeaderEpoch, TopicPartition};

/// How often led partitions are checked for an ISR change (a lagging follower to drop, a
/// caught-up one to add). A follower that catches up joins within this; one that lags leaves
/// `replica.lag.time.max.ms` plus this after its last catch-up.
pub const ISR_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Bytes a follower fetch's answer may hold beyond its records (topic names, per-partition
/// fields, aborted transactions).
const REPLICA_RESPONSE_OVERHEAD: u32 = 1024 * 1024;

/// Replication on one shard. See the module docs.
pub struct Replication {
    config: Arc<BrokerConfig>,
    metadata: Rc<Metadata>,
    partitions: Rc<ShardPartitions>,
    /// This shard's connections to the other brokers' replication listeners.
    pool: InterBroker,
    /// The fetchers by leader listener address and index (`addr#i`).
    fetchers: RefCell<HashMap<String, Rc<fetcher::Fetcher>>>,
    /// Follower fetches served on this shard for a partition another shard owns.
    hops: Cell<u64>,
}

impl Replication {
    /// The layer for one shard.
    pub fn new(config: Arc<BrokerConfig>, metadata: Rc<Metadata>, partitions: Rc<ShardPartitions>) -> Rc<Self> {
        // A follower fetch's answer: the response limit, plus one whole batch (returned whole
        // however large, as KIP-74 says), plus room for the fields around the records.
        let response_max = u32::try_from(config.replication.replica_fetch_response_max_bytes.max(0))
            .unwrap_or(0)
            .saturating_add(crate::limits::BATCH_BYTES_MAX)
            .saturating_add(REPLICA_RESPONSE_OVERHEAD);
        let pool = InterBroker::with_response_limit(config.node_id, response_max);
        Rc::new(Replication {
            config,
            metadata,
            partitions,
            pool,
            fetchers: RefCell::new(HashMap::new()),
            hops: Cell::new(0),
        })
    }

    /// Notes a follower fetch answered through another shard.
    pub fn count_hop(&self) {
        self.hops.set(self.hops.get() + 1);
    }

    /// Follower fetches answered through another shard so far.
    pub fn hops(&self) -> u64 {
        self.hops.get()
    }

    /// Takes the roles the installed image gives this shard's partitions: leads what it says
    /// this broker leads, follows the rest, and hands each followed partition to the fetcher of
    /// its leader's listener.
    pub fn on_installed(self: &Rc<Self>) {
        let image = self.metadata.image();
        let me = self.config.node_id;
        let fetchers_per_leader = self.config.replication.num_replica_fetchers.max(1);
        let mut wanted: HashMap<String, (i32, String, BTreeSet<TopicPartition>)> = HashMap::new();
        for partition in self.partitions.all() {
            let tp = partition.topic_partition().clone();
            let Some(meta) = partition_meta(&image, &tp) else { continue };
            let epoch = LeaderEpoch(meta.leader_epoch);
            if meta.leader == me {
                let led =
                    partition.become_leader(me, epoch, meta.replicas.clone(), meta.isr.clone(), meta.partition_epoch);
                if let Err(e) = led {
                    error!(%tp, error = %e, "cannot take the leadership");
                }
                partition.follower_incarnations(|r| image.brokers.get(&r).map(|b| b.epoch));
                continue;
            }
            partition.become_follower(meta.leader, epoch, meta.replicas.len());
            if meta.leader == NO_LEADER {
                continue;
            }
            match replication_addr(&image, meta, meta.leader) {
                Some(addr) => {
                    // Kafka's num.replica.fetchers: a leader's partitions spread over that many
                    // fetchers, each with its own fetch in flight on the shared connection.
                    let key = format!("{addr}#{}", fetcher_index(&tp, fetchers_per_leader));
                    wanted.entry(key).or_insert_with(|| (meta.leader, addr, BTreeSet::new())).2.insert(tp);
                }
                None => warn!(%tp, leader = meta.leader, "the leader is not registered; cannot follow it yet"),
            }
        }
        let mut fetchers = self.fetchers.borrow_mut();
        for (key, fetcher) in fetchers.iter() {
            if !wanted.contains_key(key) {
                fetcher.set_partitions(BTreeSet::new());
            }
        }
        fetchers.retain(|key, _| wanted.contains_key(key));
        for (key, (leader, addr, tps)) in wanted {
            match fetchers.get(&key) {
                Some(fetcher) if fetcher.leader() == leader => fetcher.set_partitions(tps),
                _ => {
                    if let Some(old) = fetchers.remove(&key) {
                        old.set_partitions(BTreeSet::new());
                    }
                    let fetcher = fetcher::Fetcher::new(leader, addr, tps);
                    glommio::spawn_local(fetcher::run(Rc::downgrade(self), fetcher.clone())).detach();
                    fetchers.insert(key, fetcher);
                }
            }
        }
    }

    /// Starts the ISR checks of the partitions this shard leads.
    pub fn spawn_isr_checks(self: &Rc<Self>) {
        let me = Rc::downgrade(self);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(ISR_CHECK_INTERVAL).await;
                let Some(me) = me.upgrade() else { return };
                me.check_isrs();
            }
        })
        .detach();
    }

    /// Proposes the ISR changes the led partitions want, one call to the controller each.
    fn check_isrs(self: &Rc<Self>) {
        let lag = Duration::from_millis(self.config.replication.replica_lag_time_max_ms);
        let image = self.metadata.image();
        for partition in self.partitions.all() {
            if let Some(change) = partition.propose_isr(lag, |r| image.is_live(r)) {
                let me = Rc::downgrade(self);
                glommio::spawn_local(alter_isr(me, partition, change)).detach();
            }
        }
    }
}

/// Sends one ISR change to the controller and tells the partition how it went.
async fn alter_isr(me: Weak<Replication>, partition: Rc<Partition>, change: IsrProposal) {
    let Some(me) = me.upgrade() else { return };
    let tp = partition.topic_partition().clone();
    let IsrProposal { isr, epoch, partition_epoch, added } = change;
    let request = ControllerRequest::AlterPartition {
        topic: tp.topic.to_string(),
        partition: tp.partition,
        leader: me.config.node_id,
        leader_epoch: epoch.0,
        partition_epoch,
        isr: isr.clone(),
        broker_epochs: added,
    };
    let outcome = match me.metadata.control(request).await {
        Ok(ControllerResponse::AlterPartition(Ok(altered))) => Some((altered.isr, altered.partition_epoch)),
        Ok(ControllerResponse::AlterPartition(Err(e))) => {
            warn!(%tp, ?isr, error = %e, "the controller refused the ISR change");
            None
        }
        Ok(_) => None,
        Err(e) => {
            warn!(%tp, ?isr, error = %e, "cannot reach the controller to change the ISR");
            None
        }
    };
    partition.isr_proposed(epoch, outcome);
}

/// Which of a leader's `fetchers` follows `tp`: spread by partition, so one topic's partitions
/// use them all.
fn fetcher_index(tp: &TopicPartition, fetchers: usize) -> usize {
    let mut hash = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&tp.topic, &mut hash);
    let spread = std::hash::Hasher::finish(&hash) as usize;
    spread.wrapping_add(usize::try_from(tp.partition).unwrap_or(0)) % fetchers.max(1)
}

/// Partition `tp` in `image`.
fn partition_meta<'a>(image: &'a MetadataImage, tp: &TopicPartition) -> Option<&'a PartitionMeta> {
    image.topics.get(&*tp.topic)?.partitions.get(usize::try_from(tp.partition).ok()?)
}

/// Where a follower of `meta` fetches from `leader`: the leader's replication listener of the
/// shard owning the partition there, or its Kafka listener if it advertised none.
fn replication_addr(image: &MetadataImage, meta: &PartitionMeta, leader: i32) -> Option<String> {
    let broker = image.brokers.get(&leader)?;
    let shard = meta.shard_on(leader)? % broker.shards.max(1);
    Some(broker.replication.get(shard).cloned().unwrap_or_else(|| format!("{}:{}", broker.host, broker.port)))
}
