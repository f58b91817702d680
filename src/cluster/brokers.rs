//! The controller's decisions about brokers and leaderships, as pure functions from image to
//! image: register, unfence once caught up, fence when a session expires (and move its
//! leaderships), change a partition's ISR at its leader's request (AlterPartition), elect
//! preferred leaders (on request, or when a broker's leaderships are out of balance) and, where
//! allowed, unclean leaders. The quorum's leader runs them (`node.rs`) and logs the [`diff`] of
//! the result.
//!
//! [`diff`]: super::records::diff

use super::image::{BrokerMeta, MetadataImage, NO_LEADER, NodeId, TopicMeta};

/// The topic config allowing unclean leader election, by its Kafka name: the image holds topic
/// configs as the strings the broker validated, and this is the one the controller reads.
pub const UNCLEAN_LEADER_ELECTION_CONFIG: &str = "unclean.leader.election.enable";

/// Kafka's `leader.imbalance.per.broker.percentage` (default 10): a broker not leading more
/// than this share of the partitions it is the preferred leader of has them moved back.
/// Below it, moving leaders is not worth the clients' metadata refreshes it causes.
pub const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE: usize = 10;

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum RegisterError {
    /// Another process registered this node id and its session is alive.
    #[error("node id {0} is already registered by a live broker (incarnation {1}); is another broker running with it?")]
    Duplicate(NodeId, String),
}

/// `image` with `broker` registered: a new incarnation replaces the old one and starts fenced
/// (it leads nothing until it has caught up with the log and heartbeats). `alive` says whether
/// the broker now registered under that id still has a live session.
pub fn register(image: &MetadataImage, broker: &BrokerMeta, alive: bool) -> Result<MetadataImage, RegisterError> {
    let mut next = image.clone();
    match image.brokers.get(&broker.id) {
        Some(old) if old.incarnation == broker.incarnation => {
            // The same process asking again (its answer was lost): keep what is known.
            return Ok(next);
        }
        Some(old) if alive && !old.fenced => {
            return Err(RegisterError::Duplicate(broker.id, old.incarnation.clone()));
        }
        Some(old) if !old.log_dir_id.is_empty() && old.log_dir_id != broker.log_dir_id => {
            // A new data directory: whatever the old one held is gone (a replaced disk, a
            // wiped dir). It must not lead again as if it held what it acknowledged.
            next = lose_logs(&next, broker.id);
        }
        Some(_) => {
            // The old incarnation leads nothing it could still serve: move its leaderships as
            // a fence would, before the new one replaces it.
            next = fence(&next, broker.id);
        }
        None => {}
    }
    next.brokers.insert(broker.id, BrokerMeta { fenced: true, epoch: 0, ..broker.clone() });
    Ok(next)
}

/// `image` with `node` unfenced, and leading the partitions that had no leader and have it in
/// their ISR (it holds their data).
pub fn unfence(image: &MetadataImage, node: NodeId) -> MetadataImage {
    let mut next = image.clone();
    let Some(broker) = next.brokers.get_mut(&node) else { return next };
    broker.fenced = false;
    for topic in next.topics.values_mut() {
        if !topic.partitions.iter().any(|p| p.leader == NO_LEADER && p.isr.contains(&node)) {
            continue;
        }
        let topic = std::sync::Arc::make_mut(topic);
        for partition in &mut topic.partitions {
            if partition.leader == NO_LEADER && partition.isr.contains(&node) {
                partition.elect(node);
            }
        }
    }
    next
}

/// `image` with `node` fenced: each partition it leads moves to another live member of its ISR,
/// or has no leader when it was the last one (its ISR keeps it: only it has every record).
/// It leaves the ISR of partitions where others remain.
pub fn fence(image: &MetadataImage, node: NodeId) -> MetadataImage {
    let mut next = image.clone();
    if let Some(broker) = next.brokers.get_mut(&node) {
        broker.fenced = true;
    }
    let live: Vec<NodeId> = next.live_brokers().map(|b| b.id).collect();
    for topic in next.topics.values_mut() {
        if !topic.partitions.iter().any(|p| p.leader == node || p.isr.contains(&node)) {
            continue;
        }
        let topic = std::sync::Arc::make_mut(topic);
        for partition in &mut topic.partitions {
            if partition.isr.contains(&node) && partition.isr.len() > 1 {
                partition.isr.retain(|&r| r != node);
                partition.partition_epoch = partition.partition_epoch.saturating_add(1);
            }
            if partition.leader == node {
                let successor = partition.isr.iter().copied().find(|r| *r != node && live.contains(r));
                partition.elect(successor.unwrap_or(NO_LEADER));
            }
        }
    }
    next
}

/// `image` with `node` fenced and out of every ISR, even where it was the last member: its logs
/// are gone (it registered with a new data directory), so it holds nothing a partition may
/// be led from. A partition whose ISR it was alone in has no ISR and no leader until an
/// unclean election (if allowed) or an operator brings it back, as with Kafka's eligible
/// leader replicas (KIP-966), instead of being led again from an empty log. It rejoins the
/// ISRs as a follower once it has fetched their logs again.
pub fn lose_logs(image: &MetadataImage, node: NodeId) -> MetadataImage {
    let mut next = fence(image, node);
    for topic in next.topics.values_mut() {
        if !topic.partitions.iter().any(|p| p.isr.contains(&node)) {
            continue;
        }
        let topic = std::sync::Arc::make_mut(topic);
        for partition in topic.partitions.iter_mut().filter(|p| p.isr.contains(&node)) {
            partition.isr.retain(|&r| r != node);
            partition.partition_epoch = partition.partition_epoch.saturating_add(1);
        }
    }
    next
}

/// `image` with every partition whose preferred replica (its first) is live and in sync led by
/// it (ElectLeaders, type preferred). `only` limits it to some partitions (topic, index).
pub fn elect_preferred(image: &MetadataImage, only: Option<&[(String, i32)]>) -> MetadataImage {
    let mut next = image.clone();
    let live: Vec<NodeId> = next.live_brokers().map(|b| b.id).collect();
    for topic in next.topics.values_mut() {
        let asked = |index: usize| {
            only.is_none_or(|only| only.iter().any(|(t, i)| *t == topic.name && usize::try_from(*i) == Ok(index)))
        };
        // (partition, its preferred replica) for each partition to move.
        let changes: Vec<(usize, NodeId)> = topic
            .partitions
            .iter()
            .enumerate()
            .filter_map(|(index, p)| {
                let preferred = *p.replicas.first()?;
                let movable = p.leader != preferred && p.isr.contains(&preferred) && live.contains(&preferred);
                (movable && asked(index)).then_some((index, preferred))
            })
            .collect();
        if changes.is_empty() {
            continue;
        }
        let topic = std::sync::Arc::make_mut(topic);
        for (index, preferred) in changes {
            if let Some(partition) = topic.partitions.get_mut(index) {
                partition.elect(preferred);
            }
        }
    }
    next
}

/// Why an ISR change (AlterPartition) is refused; each is Kafka's error for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsrChangeError {
    /// No such topic or partition (UNKNOWN_TOPIC_OR_PARTITION).
    #[error("unknown topic or partition")]
    UnknownPartition,
    /// The sender is not the leader, or leads an older epoch (FENCED_LEADER_EPOCH).
    #[error("{0}")]
    FencedLeaderEpoch(String),
    /// The sender's partition epoch is not the current one (INVALID_UPDATE_VERSION): the
    /// partition changed since it last learnt of it.
    #[error("{0}")]
    InvalidUpdateVersion(String),
    /// The new ISR is empty, lacks the leader, names a broker twice or a non-replica
    /// (INVALID_REQUEST).
    #[error("{0}")]
    InvalidIsr(String),
    /// The new ISR adds a broker that is fenced (INELIGIBLE_REPLICA).
    #[error("{0}")]
    IneligibleReplica(String),
}

/// `image` with partition `partition` of `topic` given the ISR `isr`, as its leader `leader`
/// (at `leader_epoch`, having seen `partition_epoch`) asked: Kafka's AlterPartition, checked in
/// Kafka's order. The partition epoch goes up by one; leader and leader epoch stay. An ISR equal
/// to the current one changes nothing.
pub fn alter_isr(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    leader: NodeId,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: &[NodeId],
) -> Result<MetadataImage, IsrChangeError> {
    let index = usize::try_from(partition).map_err(|_| IsrChangeError::UnknownPartition)?;
    let current =
        image.topics.get(topic).and_then(|t| t.partitions.get(index)).ok_or(IsrChangeError::UnknownPartition)?;
    if current.leader != leader || current.leader_epoch != leader_epoch {
        return Err(IsrChangeError::FencedLeaderEpoch(format!(
            "{topic}-{partition} is led by {} at epoch {}, not by {leader} at epoch {leader_epoch}",
            current.leader, current.leader_epoch
        )));
    }
    if current.partition_epoch != partition_epoch {
        return Err(IsrChangeError::InvalidUpdateVersion(format!(
            "{topic}-{partition} is at partition epoch {}, not {partition_epoch}",
            current.partition_epoch
        )));
    }
    let mut distinct = isr.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if isr.is_empty() || !isr.contains(&leader) || distinct.len() != isr.len() {
        return Err(IsrChangeError::InvalidIsr(format!(
            "the ISR {isr:?} of {topic}-{partition} must hold its leader {leader}, each broker once"
        )));
    }
    if let Some(stranger) = isr.iter().find(|r| !current.replicas.contains(r)) {
        return Err(IsrChangeError::InvalidIsr(format!("broker {stranger} holds no replica of {topic}-{partition}")));
    }
    if let Some(fenced) = isr.iter().find(|r| !current.isr.contains(r) && !image.is_live(**r)) {
        return Err(IsrChangeError::IneligibleReplica(format!(
            "broker {fenced} is fenced and cannot join the ISR of {topic}-{partition}"
        )));
    }
    if current.isr == isr {
        return Ok(image.clone());
    }
    let mut next = image.clone();
    if let Some(p) =
        next.topics.get_mut(topic).and_then(|meta| std::sync::Arc::make_mut(meta).partitions.get_mut(index))
    {
        p.isr = isr.to_vec();
        p.partition_epoch = p.partition_epoch.saturating_add(1);
    }
    Ok(next)
}

/// Whether `topic` allows unclean leader election: its `unclean.leader.election.enable`
/// override, else the broker's `default`.
pub fn unclean_allowed(topic: &TopicMeta, default: bool) -> bool {
    match topic.configs.get(UNCLEAN_LEADER_ELECTION_CONFIG).map(String::as_str) {
        Some("true") => true,
        Some("false") => false,
        _ => default,
    }
}

/// One leadership that moved: (topic, partition, new leader).
pub type Moved = (String, i32, NodeId);

/// `image` with a leader elected for each leaderless partition `allowed` names (topic, index):
/// a live ISR member if there is one (a clean election), else the first live replica, whose
/// ISR becomes that replica alone: what only the others had is lost (Kafka's unclean leader
/// election). Also returns the unclean elections.
pub fn elect_unclean(
    image: &MetadataImage,
    allowed: impl Fn(&TopicMeta, usize) -> bool,
) -> (MetadataImage, Vec<Moved>) {
    let mut next = image.clone();
    let mut unclean = Vec::new();
    for topic in next.topics.values_mut() {
        let view: &TopicMeta = topic;
        let eligible: Vec<usize> = view
            .partitions
            .iter()
            .enumerate()
            .filter(|(i, p)| p.leader == NO_LEADER && allowed(view, *i) && p.replicas.iter().any(|r| image.is_live(*r)))
            .map(|(i, _)| i)
            .collect();
        if eligible.is_empty() {
            continue;
        }
        let topic = std::sync::Arc::make_mut(topic);
        for index in eligible {
            let Some(p) = topic.partitions.get_mut(index) else { continue };
            if let Some(clean) = p.isr.iter().copied().find(|r| image.is_live(*r)) {
                p.elect(clean);
            } else if let Some(replica) = p.replicas.iter().copied().find(|r| image.is_live(*r)) {
                p.isr = vec![replica];
                p.elect(replica);
                unclean.push((topic.name.clone(), i32::try_from(index).unwrap_or(i32::MAX), replica));
            }
        }
    }
    (next, unclean)
}

/// Brokers leading too few of the partitions they are the preferred leader of: more than
/// [`LEADER_IMBALANCE_PER_BROKER_PERCENTAGE`] percent of those are led by others. Only live
/// brokers count (a fenced one can lead nothing).
pub fn imbalanced_brokers(image: &MetadataImage) -> Vec<NodeId> {
    // Per live broker: (partitions it is preferred for, those it does not lead).
    let mut counts: std::collections::BTreeMap<NodeId, (usize, usize)> = std::collections::BTreeMap::new();
    for p in image.topics.values().flat_map(|t| &t.partitions) {
        let Some(&preferred) = p.replicas.first() else { continue };
        if !image.is_live(preferred) {
            continue;
        }
        let entry = counts.entry(preferred).or_default();
        entry.0 += 1;
        if p.leader != preferred {
            entry.1 += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(_, (preferred, not_led))| not_led * 100 > preferred * LEADER_IMBALANCE_PER_BROKER_PERCENTAGE)
        .map(|(id, _)| id)
        .collect()
}

/// Auto leader rebalance (`auto.leader.rebalance.enable`): `image` with a preferred election
/// for every partition whose preferred replica is one of the [`imbalanced_brokers`], where that
/// replica is live and in sync; and the leaderships that moved.
pub fn rebalance_leaders(image: &MetadataImage) -> (MetadataImage, Vec<Moved>) {
    let imbalanced = imbalanced_brokers(image);
    let mut next = image.clone();
    let mut moved = Vec::new();
    if imbalanced.is_empty() {
        return (next, moved);
    }
    for topic in next.topics.values_mut() {
        let movable = |p: &super::image::PartitionMeta| {
            p.replicas.first().is_some_and(|&preferred| {
                imbalanced.contains(&preferred) && p.leader != preferred && p.isr.contains(&preferred)
            })
        };
        if !topic.partitions.iter().any(movable) {
            continue;
        }
        let topic = std::sync::Arc::make_mut(topic);
        for (index, p) in topic.partitions.iter_mut().enumerate() {
            if movable(p) {
                let preferred = p.replicas.first().copied().unwrap_or(NO_LEADER);
                p.elect(preferred);
                moved.push((topic.name.clone(), i32::try_from(index).unwrap_or(i32::MAX), preferred));
            }
        }
    }
    (next, moved)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::cluster::image::{PartitionMeta, TopicMeta};
    use crate::model::TopicId;

    fn broker(id: NodeId, incarnation: &str) -> BrokerMeta {
        crate::cluster::image::tests::broker(id, incarnation, 1)
    }

    fn cluster() -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=3 {
            image = register(&image, &broker(id, "a"), false).unwrap();
            image = unfence(&image, id);
        }
        let partitions =
            [PartitionMeta { isr: vec![1, 2], ..PartitionMeta::single(1, 0, 0) }, PartitionMeta::single(2, 0, 0)];
        let mut p0 = partitions[0].clone();
        p0.replicas = vec![1, 2];
        p0.shards = vec![0, 0];
        let topic = TopicMeta {
            name: "t".into(),
            id: TopicId([1; 16]),
            partitions: vec![p0, partitions[1].clone()],
            configs: BTreeMap::new(),
        };
        image.topics.insert("t".into(), Arc::new(topic));
        image
    }

    #[test]
    fn fencing_moves_leaders_within_the_isr_and_unfencing_brings_back_the_offline() {
        let image = cluster();
        let fenced = fence(&image, 2);
        let t = &fenced.topics["t"];
        assert_eq!((t.partitions[0].leader, t.partitions[0].isr.clone()), (1, vec![1]));
        assert_eq!((t.partitions[1].leader, t.partitions[1].leader_epoch), (NO_LEADER, 1));
        assert_eq!(t.partitions[1].isr, vec![2]);
        let fenced1 = fence(&image, 1);
        assert_eq!(fenced1.topics["t"].partitions[0].leader, 2);
        assert_eq!(fenced1.topics["t"].partitions[0].isr, vec![2]);
        let back = unfence(&fenced, 2);
        assert_eq!((back.topics["t"].partitions[1].leader, back.topics["t"].partitions[1].leader_epoch), (2, 2));
        // Partition 0 moved to 2 when 1 was fenced; the preferred election brings it back.
        let mut moved = fence(&image, 1);
        moved = unfence(&moved, 1);
        let mut p = (*moved.topics["t"]).clone();
        p.partitions[0].isr = vec![2, 1];
        moved.topics.insert("t".into(), Arc::new(p));
        assert_eq!(elect_preferred(&moved, None).topics["t"].partitions[0].leader, 1);
        assert_eq!(elect_preferred(&moved, Some(&[("t".into(), 1)])).topics["t"].partitions[0].leader, 2);
    }

    #[test]
    fn a_live_id_cannot_be_registered_twice() {
        let image = cluster();
        assert!(matches!(register(&image, &broker(1, "b"), true), Err(RegisterError::Duplicate(1, _))));
        let again = register(&image, &broker(1, "b"), false).unwrap();
        assert!(again.brokers[&1].fenced);
        assert_eq!(again.topics["t"].partitions[0].leader, 2);
        assert_eq!(register(&image, &broker(1, "a"), true).unwrap(), image);
    }

    #[test]
    fn a_broker_back_with_a_new_data_directory_leaves_every_isr_and_leads_nothing() {
        let with_dir = |id, incarnation, dir: &str| BrokerMeta { log_dir_id: dir.into(), ..broker(id, incarnation) };
        let mut image = replicated();
        for id in 1..=3 {
            image.brokers.insert(id, BrokerMeta { fenced: false, ..with_dir(id, "a", "d") });
        }
        // Brokers 2 and 3 fell out of sync; 1 alone holds every acknowledged record.
        image = alter_isr(&image, "r", 0, 1, 0, 0, &[1]).unwrap();
        // A restart with the same directory: fenced, still the last in-sync replica.
        let restarted = register(&image, &with_dir(1, "b", "d"), false).unwrap();
        let p = &restarted.topics["r"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
        assert_eq!(unfence(&restarted, 1).topics["r"].partitions[0].leader, 1, "it leads again once caught up");
        // Back with an empty directory: out of the ISR, and it is not elected when unfenced.
        let wiped = register(&image, &with_dir(1, "b", "new"), false).unwrap();
        let p = &wiped.topics["r"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![]));
        assert_eq!(unfence(&wiped, 1).topics["r"].partitions[0].leader, NO_LEADER);
        // Where others are in sync, leadership moves to one of them and the ISR just shrinks.
        let full = replicated();
        let mut full_dirs = full.clone();
        for id in 1..=3 {
            full_dirs.brokers.insert(id, BrokerMeta { fenced: false, ..with_dir(id, "a", "d") });
        }
        let p = &register(&full_dirs, &with_dir(1, "b", "new"), false).unwrap().topics["r"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2, 3]));
        // A broker registered before directory ids existed is never taken for a lost disk.
        let old = alter_isr(&replicated(), "r", 0, 1, 0, 0, &[1]).unwrap();
        let p = &register(&old, &with_dir(1, "b", "new"), false).unwrap().topics["r"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
    }

    /// Topic "r": one partition on 1, 2, 3 (preferred 1), all in sync, led by 1.
    fn replicated() -> MetadataImage {
        let mut image = cluster();
        let p = PartitionMeta {
            replicas: vec![1, 2, 3],
            shards: vec![0, 0, 0],
            isr: vec![1, 2, 3],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        };
        let topic = TopicMeta { name: "r".into(), id: TopicId([2; 16]), partitions: vec![p], configs: BTreeMap::new() };
        image.topics.insert("r".into(), Arc::new(topic));
        image
    }

    #[test]
    fn the_leader_shrinks_and_expands_its_isr() {
        let image = replicated();
        let shrunk = alter_isr(&image, "r", 0, 1, 0, 0, &[1, 3]).unwrap();
        let p = &shrunk.topics["r"].partitions[0];
        assert_eq!((p.isr.clone(), p.leader, p.leader_epoch, p.partition_epoch), (vec![1, 3], 1, 0, 1));
        let grown = alter_isr(&shrunk, "r", 0, 1, 0, 1, &[1, 3, 2]).unwrap();
        assert_eq!(grown.topics["r"].partitions[0].isr, vec![1, 3, 2]);
        assert_eq!(grown.topics["r"].partitions[0].partition_epoch, 2);
        assert_eq!(alter_isr(&grown, "r", 0, 1, 0, 2, &[1, 3, 2]).unwrap(), grown, "no change, no new epoch");
    }

    #[test]
    fn isr_changes_are_checked_in_kafkas_order() {
        let image = replicated();
        let check = |topic: &str, partition, leader, leader_epoch, partition_epoch, isr: &[NodeId]| {
            alter_isr(&image, topic, partition, leader, leader_epoch, partition_epoch, isr).unwrap_err()
        };
        assert_eq!(check("x", 0, 1, 0, 0, &[1]), IsrChangeError::UnknownPartition);
        assert_eq!(check("r", 1, 1, 0, 0, &[1]), IsrChangeError::UnknownPartition);
        assert_eq!(check("r", -1, 1, 0, 0, &[1]), IsrChangeError::UnknownPartition);
        // A stale leader epoch wins over a bad partition epoch and a bad ISR.
        assert!(matches!(check("r", 0, 2, 0, 9, &[]), IsrChangeError::FencedLeaderEpoch(_)));
        assert!(matches!(check("r", 0, 1, 1, 9, &[]), IsrChangeError::FencedLeaderEpoch(_)));
        assert!(matches!(check("r", 0, 1, 0, 9, &[]), IsrChangeError::InvalidUpdateVersion(_)));
        assert!(matches!(check("r", 0, 1, 0, 0, &[]), IsrChangeError::InvalidIsr(_)));
        assert!(matches!(check("r", 0, 1, 0, 0, &[2, 3]), IsrChangeError::InvalidIsr(_)));
        assert!(matches!(check("r", 0, 1, 0, 0, &[1, 1]), IsrChangeError::InvalidIsr(_)));
        assert!(matches!(check("r", 0, 1, 0, 0, &[1, 4]), IsrChangeError::InvalidIsr(_)));
        // Broker 3 fenced: it may stay while the leader drops it, not be added back.
        let mut fenced = image.clone();
        fenced.brokers.get_mut(&3).unwrap().fenced = true;
        assert!(alter_isr(&fenced, "r", 0, 1, 0, 0, &[1, 3]).is_ok());
        let shrunk = alter_isr(&fenced, "r", 0, 1, 0, 0, &[1]).unwrap();
        let refused = alter_isr(&shrunk, "r", 0, 1, 0, 1, &[1, 3]).unwrap_err();
        assert!(matches!(refused, IsrChangeError::IneligibleReplica(_)), "{refused:?}");
    }

    #[test]
    fn fencing_with_a_full_isr_moves_leadership_and_shrinks_the_isr() {
        let image = replicated();
        let fenced = fence(&image, 1);
        let p = &fenced.topics["r"].partitions[0];
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (2, vec![2, 3], 1));
        let fenced = fence(&fence(&fenced, 2), 3);
        let p = &fenced.topics["r"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![3]), "the last member keeps the ISR");
        // The last in-sync replica returning leads again; another one would need an unclean
        // election.
        assert_eq!(unfence(&fenced, 3).topics["r"].partitions[0].leader, 3);
        assert_eq!(unfence(&fenced, 1).topics["r"].partitions[0].leader, NO_LEADER);
    }

    #[test]
    fn unclean_elections_take_the_first_live_replica_where_allowed() {
        let image = replicated();
        let offline = unfence(&fence(&fence(&fence(&image, 1), 2), 3), 2);
        assert_eq!(offline.topics["r"].partitions[0].leader, NO_LEADER);
        let (same, unclean) = elect_unclean(&offline, |_, _| false);
        assert_eq!((same, unclean), (offline.clone(), Vec::new()));
        let (elected, unclean) = elect_unclean(&offline, |t, _| unclean_allowed(t, true));
        let p = &elected.topics["r"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
        assert_eq!(unclean, vec![("r".to_string(), 0, 2)]);
        // Partition t-1 (ISR [2], 2 live) was led all along: untouched.
        assert_eq!(elected.topics["t"], offline.topics["t"]);
        // A live ISR member is elected cleanly, ISR kept, and not reported.
        let back = fence(&unfence(&offline, 3), 2);
        let (clean, unclean) = elect_unclean(&back, |_, _| true);
        assert!(unclean.is_empty());
        assert_eq!(clean, back, "unfence elected 3 already");
        // The topic's override beats the broker default.
        let mut topic = (*image.topics["r"]).clone();
        topic.configs.insert(UNCLEAN_LEADER_ELECTION_CONFIG.into(), "false".into());
        assert!(!unclean_allowed(&topic, true));
        topic.configs.insert(UNCLEAN_LEADER_ELECTION_CONFIG.into(), "true".into());
        assert!(unclean_allowed(&topic, false));
    }

    #[test]
    fn rebalance_moves_leaders_of_imbalanced_brokers_only() {
        let mut image = replicated();
        let mut topic = (*image.topics["r"]).clone();
        // Ten partitions preferring 1, all led by it: 1 of 10 moved away is not above 10 %.
        topic.partitions = vec![topic.partitions[0].clone(); 10];
        topic.partitions[0].leader = 2;
        image.topics.insert("r".into(), Arc::new(topic.clone()));
        image.topics.remove("t");
        assert!(imbalanced_brokers(&image).is_empty());
        assert_eq!(rebalance_leaders(&image).0, image);
        // Two of ten is above: both go back to 1, but not the one whose ISR lacks 1.
        topic.partitions[1].leader = 3;
        topic.partitions[2].leader = 3;
        topic.partitions[2].isr = vec![3, 2];
        image.topics.insert("r".into(), Arc::new(topic));
        assert_eq!(imbalanced_brokers(&image), vec![1]);
        let (next, moved) = rebalance_leaders(&image);
        assert_eq!(moved, vec![("r".to_string(), 0, 1), ("r".to_string(), 1, 1)]);
        let leaders: Vec<NodeId> = next.topics["r"].partitions.iter().map(|p| p.leader).take(3).collect();
        assert_eq!(leaders, vec![1, 1, 3]);
        assert_eq!(next.topics["r"].partitions[0].leader_epoch, 1);
        // A fenced preferred leader is not imbalanced: it can lead nothing.
        image.brokers.get_mut(&1).unwrap().fenced = true;
        assert!(imbalanced_brokers(&image).is_empty());
    }
}
