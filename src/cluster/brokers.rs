//! The controller's decisions about brokers, as pure functions from image to image: register,
//! unfence once caught up, fence when a session expires (and move its leaderships), elect
//! preferred leaders. The quorum's leader runs them (`node.rs`) and logs the [`diff`] of the
//! result.
//!
//! [`diff`]: super::records::diff

use super::image::{BrokerMeta, MetadataImage, NO_LEADER, NodeId};

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
}
