//! The metadata image: which topics exist, their ids, partitions, owning shards and config
//! overrides. Immutable once built; a change makes a new image on shard 0 (the controller),
//! which persists it and hands it to every shard. Persisted as JSON in
//! `<data-dir>/__metadata/image.json` (atomically replaced); the cluster issue replaces this file
//! with the replicated metadata log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::TopicId;
use crate::shard::ShardId;
use crate::storage::io::write_atomically;

/// One partition's placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The shard that owns the partition's log on this broker.
    pub shard: ShardId,
    /// The partition's leader epoch.
    pub leader_epoch: i32,
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
    /// The cluster's id, made when the data dir was first used.
    pub cluster_id: String,
    /// Bumped by every change.
    pub version: u64,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// The first producer id not yet handed out in a block: ids below it were given to shards
    /// (persisted with the image before any is used, so none repeats after a restart).
    #[serde(default)]
    pub next_producer_id: i64,
}

impl MetadataImage {
    /// The topic with this id.
    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<TopicMeta>> {
        self.topics.values().find(|t| t.id == id)
    }

    /// How many partitions each shard owns.
    pub fn shard_loads(&self, shards: usize) -> Vec<usize> {
        let mut loads = vec![0; shards];
        for topic in self.topics.values() {
            for partition in &topic.partitions {
                if let Some(load) = loads.get_mut(partition.shard) {
                    *load += 1;
                }
            }
        }
        loads
    }

    /// Places `count` new partitions, each on the least loaded shard at that moment.
    pub fn place_partitions(&self, shards: usize, count: usize) -> Vec<PartitionMeta> {
        let mut loads = self.shard_loads(shards.max(1));
        (0..count)
            .map(|_| {
                let (shard, _) = loads.iter().enumerate().min_by_key(|(_, l)| **l).unwrap_or((0, &0));
                loads[shard] += 1;
                PartitionMeta { shard, leader_epoch: 0 }
            })
            .collect()
    }
}

/// Where the image lives under the data dir.
pub fn image_path(data_dir: &Path) -> PathBuf {
    data_dir.join("__metadata").join("image.json")
}

/// Loads the image, or makes a new one (with a new cluster id) for an empty data dir. Partitions
/// placed on shards that no longer exist (the broker was restarted with fewer cores) move to the
/// least loaded shards; the caller persists the result.
pub fn load_image(data_dir: &Path, shards: usize) -> std::io::Result<(MetadataImage, bool)> {
    let path = image_path(data_dir);
    let mut image = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<MetadataImage>(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = TopicId::random()?;
            MetadataImage { cluster_id: id.hex(), version: 0, topics: BTreeMap::new(), next_producer_id: 0 }
        }
        Err(e) => return Err(e),
    };
    let mut moved = false;
    let names: Vec<String> = image.topics.keys().cloned().collect();
    for name in names {
        let Some(topic) = image.topics.get(&name) else { continue };
        if topic.partitions.iter().all(|p| p.shard < shards) {
            continue;
        }
        let mut topic = (**topic).clone();
        for partition in &mut topic.partitions {
            if partition.shard >= shards {
                partition.shard = image.place_partitions(shards, 1).first().map_or(0, |p| p.shard);
                moved = true;
            }
        }
        image.topics.insert(name, Arc::new(topic));
    }
    Ok((image, moved))
}

/// Persists the image atomically.
pub fn store_image(data_dir: &Path, image: &MetadataImage) -> std::io::Result<()> {
    let path = image_path(data_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes = serde_json::to_vec_pretty(image).map_err(std::io::Error::other)?;
    write_atomically(&path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_round_trip_and_partitions_spread() {
        let dir = tempfile::tempdir().unwrap();
        let (mut image, _) = load_image(dir.path(), 2).unwrap();
        let partitions = image.place_partitions(2, 5);
        assert_eq!(partitions.iter().filter(|p| p.shard == 0).count(), 3);
        image.topics.insert(
            "t".into(),
            Arc::new(TopicMeta {
                name: "t".into(),
                id: TopicId::random().unwrap(),
                partitions,
                configs: BTreeMap::new(),
            }),
        );
        store_image(dir.path(), &image).unwrap();
        let (loaded, moved) = load_image(dir.path(), 2).unwrap();
        assert_eq!(loaded, image);
        assert!(!moved);
        let (shrunk, moved) = load_image(dir.path(), 1).unwrap();
        assert!(moved);
        assert!(shrunk.topics["t"].partitions.iter().all(|p| p.shard == 0));
    }
}
