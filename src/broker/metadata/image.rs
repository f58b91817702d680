//! The metadata image (defined in `crate::cluster::image`, built by the metadata log) and the
//! migration of the JSON image a single-node broker kept before the cluster existed: a data dir
//! written by that release opens unchanged, its image becoming the quorum's first snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

pub use crate::cluster::image::*;
use crate::model::TopicId;
use crate::shard::ShardId;

/// Where the pre-cluster image lived under the data dir.
pub fn legacy_image_path(data_dir: &Path) -> PathBuf {
    data_dir.join("__metadata").join("image.json")
}

#[derive(Deserialize)]
struct LegacyPartition {
    shard: ShardId,
    leader_epoch: i32,
}

#[derive(Deserialize)]
struct LegacyTopic {
    name: String,
    id: TopicId,
    partitions: Vec<LegacyPartition>,
    configs: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct LegacyImage {
    cluster_id: String,
    topics: BTreeMap<String, LegacyTopic>,
    #[serde(default)]
    next_producer_id: i64,
}

/// The pre-cluster image of `data_dir`, if it has one, as this node's image: every partition's
/// one replica on `node`, on the shard it had (modulo `shards`, should the broker now run fewer).
pub fn load_legacy_image(data_dir: &Path, node: NodeId, shards: usize) -> std::io::Result<Option<MetadataImage>> {
    let path = legacy_image_path(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let legacy: LegacyImage = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
    let topics = legacy
        .topics
        .into_iter()
        .map(|(name, topic)| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| PartitionMeta::single(node, p.shard % shards.max(1), p.leader_epoch))
                .collect();
            let meta = TopicMeta { name: topic.name, id: topic.id, partitions, configs: topic.configs };
            (name, Arc::new(meta))
        })
        .collect();
    Ok(Some(MetadataImage {
        cluster_id: legacy.cluster_id,
        version: 0,
        brokers: BTreeMap::new(),
        topics,
        next_producer_id: legacy.next_producer_id,
        broker_configs: BTreeMap::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pre_cluster_image_becomes_this_nodes_image() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_legacy_image(dir.path(), 1, 2).unwrap().is_none());
        std::fs::create_dir_all(dir.path().join("__metadata")).unwrap();
        let json = r#"{"cluster_id":"abc","version":4,"topics":{"t":{"name":"t","id":"01010101010101010101010101010101",
            "partitions":[{"shard":0,"leader_epoch":0},{"shard":3,"leader_epoch":2}],
            "configs":{"retention.ms":"1000"}}},"next_producer_id":5000}"#;
        std::fs::write(legacy_image_path(dir.path()), json).unwrap();
        let image = load_legacy_image(dir.path(), 7, 2).unwrap().unwrap();
        assert_eq!(image.cluster_id, "abc");
        assert_eq!(image.next_producer_id, 5000);
        let t = &image.topics["t"];
        assert_eq!(t.partitions[1], PartitionMeta::single(7, 1, 2));
        assert_eq!(t.configs["retention.ms"], "1000");
        std::fs::write(legacy_image_path(dir.path()), "{").unwrap();
        assert!(load_legacy_image(dir.path(), 7, 2).is_err());
    }
}
