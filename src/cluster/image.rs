//! The metadata image: the cluster's brokers, and its topics with their ids, partitions (replicas,
//! ISR, leader and epochs) and config overrides. It is what the metadata log's records build
//! ([`super::records`]); every broker holds one, immutable, and swaps in a new one per change.
//! The Raft snapshot of the log is this image, serialized.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::TopicId;
use crate::shard::ShardId;

/// A Kafka node id (`node.id`).
pub type NodeId = i32;

/// No leader (Kafka's -1): the partition is offline.
pub const NO_LEADER: NodeId = -1;

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    /// Its node id.
    pub id: NodeId,
    /// A random id the process made when it started: a restarted broker registers again with a
    /// new one, and a second live process with the same node id is told apart by it.
    pub incarnation: String,
    /// The index of its registration record: Kafka's broker epoch.
    pub epoch: u64,
    /// The host clients connect to.
    pub host: String,
    /// The port clients connect to.
    pub port: u16,
    /// Where its node-to-node transport listens, if it has one.
    pub transport: Option<String>,
    /// How many shards (cores) it runs.
    pub shards: usize,
    /// Its per-shard replication listeners (`host:port`, shard i at index i): a follower replica
    /// on shard s fetches from the leader's listener of the shard owning the partition there, so
    /// replication traffic is handled by the owning shard at both ends.
    #[serde(default)]
    pub replication: Vec<String>,
    /// Fenced: registered but not caught up, or its session expired. A fenced broker leads
    /// nothing and clients are not told about it.
    pub fenced: bool,
    /// The most partition replicas it accepts (`--max-partitions`); the controller refuses a
    /// topic or partitions that would place more on it. None: no limit (registered before the
    /// limit existed).
    #[serde(default)]
    pub max_partitions: Option<u64>,
    /// The id of its data directory, made when the directory was first used (Kafka's
    /// `directory.id`, KIP-858): a broker that registers with another id lost its logs. Empty:
    /// unknown (registered before directory ids existed).
    #[serde(default)]
    pub log_dir_id: String,
}

/// One partition's replicas and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The brokers holding a replica, the preferred leader first.
    pub replicas: Vec<NodeId>,
    /// `shards[i]` is the shard that owns the replica on broker `replicas[i]` (taken modulo
    /// that broker's shard count, should it restart with fewer cores).
    pub shards: Vec<ShardId>,
    /// The in-sync replicas.
    pub isr: Vec<NodeId>,
    /// The leader, or [`NO_LEADER`].
    pub leader: NodeId,
    /// Bumped by every leader change.
    pub leader_epoch: i32,
    /// Bumped by every change of this partition's state.
    pub partition_epoch: i32,
}

impl PartitionMeta {
    /// A partition with one replica, on `node`'s shard `shard`, led by it.
    pub fn single(node: NodeId, shard: ShardId, leader_epoch: i32) -> Self {
        PartitionMeta {
            replicas: vec![node],
            shards: vec![shard],
            isr: vec![node],
            leader: node,
            leader_epoch,
            partition_epoch: 0,
        }
    }

    /// The shard holding `node`'s replica, if it has one.
    pub fn shard_on(&self, node: NodeId) -> Option<ShardId> {
        let at = self.replicas.iter().position(|&r| r == node)?;
        self.shards.get(at).copied()
    }

    /// Moves leadership to `leader` (or [`NO_LEADER`]), bumping both epochs.
    pub fn elect(&mut self, leader: NodeId) {
        self.leader = leader;
        self.leader_epoch = self.leader_epoch.saturating_add(1);
        self.partition_epoch = self.partition_epoch.saturating_add(1);
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// The name.
    pub name: String,
    /// The id.
    pub id: TopicId,
    /// Partition `i` is `partitions[i]`.
    pub partitions: Vec<PartitionMeta>,
    /// Topic config overrides, by Kafka name.
    pub configs: BTreeMap<String, String>,
}

/// The whole image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// The cluster's id, made when the first node bootstrapped.
    pub cluster_id: String,
    /// The index of the last metadata record applied (0: none yet).
    pub version: u64,
    /// Registered brokers by id.
    #[serde(default)]
    pub brokers: BTreeMap<NodeId, BrokerMeta>,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// The first producer id not yet handed out in a block: ids below it were given out
    /// (committed to the log before any is used, so none repeats).
    #[serde(default)]
    pub next_producer_id: i64,
    /// Dynamic broker configs (AlterConfigs on BROKER resources), by resource: `""` holds the
    /// cluster-wide defaults, `"<node id>"` one broker's own. Kafka broker config names; a
    /// resource with none set has no entry.
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl MetadataImage {
    /// The topic with this id.
    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<TopicMeta>> {
        self.topics.values().find(|t| t.id == id)
    }

    /// The cluster-wide dynamic value of broker config `name` (AlterConfigs on `BROKER ""`).
    pub fn dynamic_default(&self, name: &str) -> Option<&str> {
        self.broker_configs.get("")?.get(name).map(String::as_str)
    }

    /// `unclean.leader.election.enable` for topics without an override: the cluster-wide
    /// dynamic value, else `static_default` (the controller's flag).
    pub fn unclean_leader_election_default(&self, static_default: bool) -> bool {
        match self.dynamic_default("unclean.leader.election.enable").map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            _ => static_default,
        }
    }

    /// Brokers that may lead partitions: registered and not fenced.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerMeta> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Whether `node` is registered and unfenced.
    pub fn is_live(&self, node: NodeId) -> bool {
        self.brokers.get(&node).is_some_and(|b| !b.fenced)
    }

    /// Replicas of `partition` on brokers that are not live.
    pub fn offline_replicas(&self, partition: &PartitionMeta) -> Vec<NodeId> {
        partition.replicas.iter().copied().filter(|&r| !self.is_live(r)).collect()
    }

    /// How many partition replicas each (broker, shard) holds.
    fn replica_loads(&self) -> BTreeMap<(NodeId, ShardId), usize> {
        let mut loads = BTreeMap::new();
        for partition in self.topics.values().flat_map(|t| &t.partitions) {
            for (&node, &shard) in partition.replicas.iter().zip(&partition.shards) {
                *loads.entry((node, shard)).or_default() += 1;
            }
        }
        loads
    }

    /// The shard index `s` for a new partition's replicas on `nodes`: each replica goes on
    /// shard `s` modulo its broker's shard count, so replication between brokers with as many
    /// cores pairs shard s with shard s (a follower's fetcher on shard s then needs one
    /// connection per leader broker). `s` is the one whose shards hold fewest replicas in all.
    fn shared_shard(&self, nodes: &[NodeId], loads: &BTreeMap<(NodeId, ShardId), usize>) -> ShardId {
        let count = |node: &NodeId| self.brokers.get(node).map_or(1, |b| b.shards.max(1));
        let widest = nodes.iter().map(count).max().unwrap_or(1);
        (0..widest)
            .min_by_key(|s| {
                let on = |node: &NodeId| loads.get(&(*node, s % count(node))).copied().unwrap_or(0);
                (nodes.iter().map(on).sum::<usize>(), nodes.iter().map(on).max().unwrap_or(0), *s)
            })
            .unwrap_or(0)
    }

    /// The shards of `nodes`' replicas on shard index `s` (modulo each broker's shard count).
    fn shards_at(&self, nodes: &[NodeId], s: ShardId) -> Vec<ShardId> {
        nodes.iter().map(|node| s % self.brokers.get(node).map_or(1, |b| b.shards.max(1))).collect()
    }

    /// One partition on exactly `replicas` (by hand), all on one shard index (see
    /// [`Self::place_partitions`]), led by the first. Every replica is in the ISR: all are
    /// empty, so all are in sync.
    pub fn place_on(&self, replicas: &[NodeId]) -> PartitionMeta {
        let s = self.shared_shard(replicas, &self.replica_loads());
        let leader = replicas.first().copied().unwrap_or(NO_LEADER);
        PartitionMeta {
            replicas: replicas.to_vec(),
            shards: self.shards_at(replicas, s),
            isr: replicas.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    /// Places `count` new partitions of `replication_factor` replicas each over the live
    /// brokers: each partition's leader (its first replica) on the broker leading fewest
    /// partitions, its other replicas on the brokers holding fewest replicas, and all replicas
    /// on one shard index, the least loaded over those brokers (taken modulo each broker's shard
    /// count), so that shard s replicates from shard s. The ISR is every replica, as in Kafka: a
    /// new partition is empty everywhere. `None` if fewer live brokers than
    /// `replication_factor`.
    pub fn place_partitions(&self, count: usize, replication_factor: usize) -> Option<Vec<PartitionMeta>> {
        let live: Vec<&BrokerMeta> = self.live_brokers().collect();
        if replication_factor == 0 || live.len() < replication_factor {
            return None;
        }
        let mut shard_loads = self.replica_loads();
        let mut leaders: BTreeMap<NodeId, usize> = live.iter().map(|b| (b.id, 0)).collect();
        let mut replicas: BTreeMap<NodeId, usize> = leaders.clone();
        for partition in self.topics.values().flat_map(|t| &t.partitions) {
            if let Some(n) = leaders.get_mut(&partition.leader) {
                *n += 1;
            }
            for r in &partition.replicas {
                if let Some(n) = replicas.get_mut(r) {
                    *n += 1;
                }
            }
        }
        let mut placed = Vec::with_capacity(count);
        for _ in 0..count {
            let leader = *leaders.iter().min_by_key(|(id, n)| (**n, replicas.get(*id), **id))?.0;
            let mut chosen = vec![leader];
            while chosen.len() < replication_factor {
                let next = replicas.iter().filter(|(id, _)| !chosen.contains(id)).min_by_key(|(id, n)| (**n, **id))?.0;
                chosen.push(*next);
            }
            let s = self.shared_shard(&chosen, &shard_loads);
            let shards = self.shards_at(&chosen, s);
            for (node, shard) in chosen.iter().zip(&shards) {
                *shard_loads.entry((*node, *shard)).or_default() += 1;
                *replicas.entry(*node).or_default() += 1;
            }
            *leaders.entry(leader).or_default() += 1;
            placed.push(PartitionMeta {
                replicas: chosen.clone(),
                shards,
                isr: chosen,
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        Some(placed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A live broker for tests.
    pub(crate) fn broker(id: NodeId, incarnation: &str, shards: usize) -> BrokerMeta {
        BrokerMeta {
            id,
            incarnation: incarnation.into(),
            epoch: 0,
            host: "127.0.0.1".into(),
            port: 9092,
            transport: None,
            replication: Vec::new(),
            shards,
            fenced: false,
            max_partitions: None,
            log_dir_id: String::new(),
        }
    }

    #[test]
    fn partitions_spread_over_brokers_and_shards() {
        let mut image = MetadataImage::default();
        for id in 1..=3 {
            image.brokers.insert(id, broker(id, "i", 2));
        }
        let placed = image.place_partitions(6, 2).unwrap();
        let mut leaders = BTreeMap::<NodeId, usize>::new();
        for p in &placed {
            *leaders.entry(p.leader).or_default() += 1;
            assert_eq!(p.replicas.len(), 2);
            assert_ne!(p.replicas[0], p.replicas[1]);
            assert_eq!(p.leader, p.replicas[0]);
            assert_eq!(p.isr, p.replicas);
            assert_eq!(p.shards[0], p.shards[1], "replicas share a shard index");
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        // Each broker holds 4 replicas, two per shard.
        let topic = TopicMeta { name: "t".into(), id: TopicId([1; 16]), partitions: placed, configs: BTreeMap::new() };
        image.topics.insert("t".into(), Arc::new(topic));
        let loads = image.replica_loads();
        assert!(loads.values().all(|&n| n == 2), "{loads:?}");
        assert!(image.place_partitions(1, 4).is_none());
        image.brokers.get_mut(&3).unwrap().fenced = true;
        assert!(image.place_partitions(1, 3).is_none());
        assert!(image.place_partitions(3, 1).unwrap().iter().all(|p| p.leader != 3));
    }

    #[test]
    fn replicas_share_a_shard_index_modulo_each_brokers_cores() {
        let mut image = MetadataImage::default();
        image.brokers.insert(1, broker(1, "i", 4));
        image.brokers.insert(2, broker(2, "i", 2));
        let placed = image.place_partitions(4, 2).unwrap();
        let mut indexes: Vec<ShardId> = Vec::new();
        for p in &placed {
            let s = p.shard_on(1).unwrap();
            assert_eq!(p.shard_on(2), Some(s % 2), "{p:?}");
            indexes.push(s);
        }
        indexes.sort_unstable();
        assert_eq!(indexes, vec![0, 1, 2, 3], "the four cores of broker 1 take one each");
        // By hand: the same rule, every replica in the ISR, led by the first.
        let by_hand = image.place_on(&[2, 1]);
        assert_eq!((by_hand.leader, by_hand.isr.clone()), (2, vec![2, 1]));
        assert_eq!(by_hand.shards[0], by_hand.shards[1] % 2);
    }
}
