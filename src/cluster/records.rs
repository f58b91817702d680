//! The metadata log's records. Each Raft entry carries one batch of records (one controller
//! decision), applied to the image all together, so an image never shows half a decision.
//!
//! Records carry whole states (a broker's registration, a partition's replicas/ISR/leader), not
//! deltas: applying one needs nothing but the image, and [`diff`] turns any decided image into
//! the records that build it from the current one, so the controller decides on images and the
//! log stays the single way an image changes. Encoded as JSON: the log is small and rare, and a
//! readable log is worth more than its bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::image::{BrokerMeta, MetadataImage, NodeId, PartitionMeta, TopicMeta};
use crate::model::TopicId;

/// One record of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// The cluster's id, set once by the first controller of a new cluster.
    ClusterId(String),
    /// A broker registered, or its state changed (fenced, unfenced). A new incarnation starts a
    /// new broker epoch: the record's index.
    Broker(BrokerMeta),
    /// A broker is gone from the cluster.
    RemoveBroker(NodeId),
    /// A topic was created, or its config overrides changed (partitions come as their own
    /// records).
    Topic {
        /// Its name.
        name: String,
        /// Its id.
        id: TopicId,
        /// All of its config overrides.
        configs: BTreeMap<String, String>,
    },
    /// A partition's whole state: created or changed.
    Partition {
        /// The topic.
        topic: TopicId,
        /// The partition index.
        index: u32,
        /// Its state.
        state: PartitionMeta,
    },
    /// A topic and its partitions were deleted.
    RemoveTopic(TopicId),
    /// Producer ids below this were handed out.
    ProducerIds(i64),
    /// A broker resource's whole set of dynamic configs (`""`: the cluster-wide defaults;
    /// `"<node id>"`: one broker's); an empty set removes them.
    BrokerConfigs {
        /// The resource name.
        resource: String,
        /// Every dynamic config of it, by Kafka name.
        configs: BTreeMap<String, String>,
    },
}

/// Why a log entry could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The entry is not a batch of records.
    #[error("undecodable metadata entry: {0}")]
    Decode(#[from] serde_json::Error),
    /// A record names a topic the image does not have, or a partition past its end + 1.
    #[error("metadata record out of order: {0}")]
    OutOfOrder(String),
}

/// Encodes one batch of records as a log entry.
pub fn encode(records: &[MetadataRecord]) -> Vec<u8> {
    // Serializing plain data structures into a Vec cannot fail.
    serde_json::to_vec(records).unwrap_or_default()
}

/// Decodes a log entry.
pub fn decode(entry: &[u8]) -> Result<Vec<MetadataRecord>, RecordError> {
    Ok(serde_json::from_slice(entry)?)
}

/// Encodes an image as a snapshot.
pub fn encode_image(image: &MetadataImage) -> Vec<u8> {
    serde_json::to_vec(image).unwrap_or_default()
}

/// Decodes a snapshot.
pub fn decode_image(data: &[u8]) -> Result<MetadataImage, RecordError> {
    Ok(serde_json::from_slice(data)?)
}

impl MetadataImage {
    /// Applies the batch of records committed at log index `index`. All or nothing: on an
    /// error the image is unchanged.
    pub fn apply(&mut self, index: u64, records: &[MetadataRecord]) -> Result<(), RecordError> {
        let mut next = self.clone();
        for record in records {
            next.apply_one(index, record)?;
        }
        next.version = index;
        *self = next;
        Ok(())
    }

    fn apply_one(&mut self, index: u64, record: &MetadataRecord) -> Result<(), RecordError> {
        match record {
            MetadataRecord::ClusterId(id) => self.cluster_id = id.clone(),
            MetadataRecord::Broker(broker) => {
                let mut broker = broker.clone();
                broker.epoch = match self.brokers.get(&broker.id) {
                    Some(old) if old.incarnation == broker.incarnation => old.epoch,
                    _ => index,
                };
                self.brokers.insert(broker.id, broker);
            }
            MetadataRecord::RemoveBroker(id) => {
                self.brokers.remove(id);
            }
            MetadataRecord::Topic { name, id, configs } => {
                let topic = match self.topics.get(name) {
                    Some(old) if old.id == *id => TopicMeta { configs: configs.clone(), ..(**old).clone() },
                    _ => TopicMeta { name: name.clone(), id: *id, partitions: Vec::new(), configs: configs.clone() },
                };
                self.topics.insert(name.clone(), Arc::new(topic));
            }
            MetadataRecord::Partition { topic, index: at, state } => {
                let name = self
                    .topic_by_id(*topic)
                    .map(|t| t.name.clone())
                    .ok_or_else(|| RecordError::OutOfOrder(format!("partition of unknown topic {}", topic.hex())))?;
                let Some(topic) = self.topics.get_mut(&name) else { return Ok(()) };
                let topic = Arc::make_mut(topic);
                let at = *at as usize;
                match at.cmp(&topic.partitions.len()) {
                    std::cmp::Ordering::Less => topic.partitions[at] = state.clone(),
                    std::cmp::Ordering::Equal => topic.partitions.push(state.clone()),
                    std::cmp::Ordering::Greater => {
                        return Err(RecordError::OutOfOrder(format!(
                            "partition {at} of {name} comes before {}",
                            at - 1
                        )));
                    }
                }
            }
            MetadataRecord::RemoveTopic(id) => {
                self.topics.retain(|_, t| t.id != *id);
            }
            MetadataRecord::ProducerIds(next) => self.next_producer_id = *next,
            MetadataRecord::BrokerConfigs { resource, configs } => {
                if configs.is_empty() {
                    self.broker_configs.remove(resource);
                } else {
                    self.broker_configs.insert(resource.clone(), configs.clone());
                }
            }
        }
        Ok(())
    }
}

/// The records that turn `from` into `to` (the version is the log's, not a record).
pub fn diff(from: &MetadataImage, to: &MetadataImage) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    if from.cluster_id != to.cluster_id {
        out.push(MetadataRecord::ClusterId(to.cluster_id.clone()));
    }
    for (id, broker) in &to.brokers {
        if from.brokers.get(id) != Some(broker) {
            out.push(MetadataRecord::Broker(broker.clone()));
        }
    }
    for id in from.brokers.keys().filter(|id| !to.brokers.contains_key(id)) {
        out.push(MetadataRecord::RemoveBroker(*id));
    }
    for (name, old) in &from.topics {
        if to.topics.get(name).is_none_or(|new| new.id != old.id) {
            out.push(MetadataRecord::RemoveTopic(old.id));
        }
    }
    for (name, topic) in &to.topics {
        let old = from.topics.get(name).filter(|old| old.id == topic.id);
        if old.is_none_or(|old| old.configs != topic.configs) {
            out.push(MetadataRecord::Topic { name: name.clone(), id: topic.id, configs: topic.configs.clone() });
        }
        for (index, state) in topic.partitions.iter().enumerate() {
            if old.and_then(|old| old.partitions.get(index)) != Some(state) {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                out.push(MetadataRecord::Partition { topic: topic.id, index, state: state.clone() });
            }
        }
    }
    if from.next_producer_id != to.next_producer_id {
        out.push(MetadataRecord::ProducerIds(to.next_producer_id));
    }
    for (resource, configs) in &to.broker_configs {
        if from.broker_configs.get(resource) != Some(configs) {
            out.push(MetadataRecord::BrokerConfigs { resource: resource.clone(), configs: configs.clone() });
        }
    }
    for resource in from.broker_configs.keys().filter(|r| !to.broker_configs.contains_key(*r)) {
        out.push(MetadataRecord::BrokerConfigs { resource: resource.clone(), configs: BTreeMap::new() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: NodeId, incarnation: &str) -> BrokerMeta {
        crate::cluster::image::tests::broker(id, incarnation, 2)
    }

    #[test]
    fn applying_a_diff_rebuilds_the_target() {
        let mut from = MetadataImage { cluster_id: "c".into(), ..Default::default() };
        from.apply(1, &[MetadataRecord::Broker(broker(1, "a")), MetadataRecord::Broker(broker(2, "b"))]).unwrap();
        let mut to = from.clone();
        let placed = to.place_partitions(3, 2).unwrap();
        let topic = TopicMeta { name: "t".into(), id: TopicId([3; 16]), partitions: placed, configs: BTreeMap::new() };
        to.topics.insert("t".into(), Arc::new(topic));
        to.next_producer_id = 1000;
        to.brokers.get_mut(&2).unwrap().fenced = true;
        to.broker_configs.insert(String::new(), BTreeMap::from([("log.retention.ms".into(), "1000".into())]));
        to.broker_configs.insert("2".into(), BTreeMap::from([("log.segment.bytes".into(), "1048576".into())]));
        let records = diff(&from, &to);
        let mut rebuilt = from.clone();
        rebuilt.apply(7, &decode(&encode(&records)).unwrap()).unwrap();
        to.version = 7;
        assert_eq!(rebuilt, to);
        assert!(diff(&rebuilt, &to).is_empty());

        // Delete, then re-create under the same name with a new id.
        let mut again = to.clone();
        again.broker_configs.remove("2");
        let mut topic = (*again.topics["t"]).clone();
        topic.id = TopicId([4; 16]);
        topic.partitions.truncate(1);
        again.topics.insert("t".into(), Arc::new(topic));
        let mut rebuilt2 = rebuilt.clone();
        rebuilt2.apply(8, &diff(&rebuilt, &again)).unwrap();
        again.version = 8;
        assert_eq!(rebuilt2, again);
    }

    #[test]
    fn a_new_incarnation_starts_a_new_broker_epoch() {
        let mut image = MetadataImage::default();
        image.apply(3, &[MetadataRecord::Broker(broker(1, "a"))]).unwrap();
        let mut fenced = broker(1, "a");
        fenced.fenced = true;
        image.apply(5, &[MetadataRecord::Broker(fenced)]).unwrap();
        assert_eq!(image.brokers[&1].epoch, 3);
        image.apply(9, &[MetadataRecord::Broker(broker(1, "b"))]).unwrap();
        assert_eq!(image.brokers[&1].epoch, 9);
    }

    #[test]
    fn bad_entries_change_nothing() {
        let mut image = MetadataImage::default();
        assert!(decode(b"{not json").is_err());
        let orphan =
            MetadataRecord::Partition { topic: TopicId([9; 16]), index: 0, state: PartitionMeta::single(1, 0, 0) };
        let before = image.clone();
        assert!(image.apply(2, &[MetadataRecord::ProducerIds(5), orphan]).is_err());
        assert_eq!(image, before);
    }
}
