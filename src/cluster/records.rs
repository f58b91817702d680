//! The metadata log's records. Each Raft entry carries one batch of records (one controller
//! decision), applied to the image all together, so an image never shows half a decision.
//!
//! Records carry whole states (a broker's registration, a partition's replicas/ISR/leader), not
//! deltas: applying one needs nothing but the image, and [`diff`] turns any decided image into
//! the records that build it from the current one, so the controller decides on images and the
//! log stays the single way an image changes. Encoded as JSON: the log is small and rare, and a
//! readable log is worth more than its bytes.
//!
//! # Changes larger than one entry
//! A Raft entry is at most [`crate::cluster::quorum::RECORD_BYTES_MAX`], but one decision can be
//! far larger: a topic of 100,000 partitions, or fencing a broker that leads 50,000. Such a change
//! is split into parts ([`split`]), proposed back to back as consecutive entries, each opening
//! with a [`MetadataRecord::Part`] marker (Kafka's metadata transactions, KIP-868, do the same
//! with begin/end records). Appliers gather the parts in a [`PendingChange`] and apply them all at
//! the last one, so an image still never shows half a decision. A change is abandoned by any
//! entry that does not continue it (a new controller's first entry, after its predecessor died
//! between parts): every applier sees the same entries in the same order, so all abandon the
//! same changes. Snapshots carry the pending change, so a node caught up by a snapshot taken
//! between parts still completes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::image::{BrokerMeta, MetadataImage, NodeId, PartitionMeta, TopicMeta};
use crate::limits::METADATA_SNAPSHOT_BYTES_MAX;
use crate::model::{CompressionType, TopicId, compress, decompress};

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
    /// Opens an entry that is one part of a change split over consecutive entries (see the
    /// module docs): `first` is the log index of the change's first part (0 in that part itself);
    /// `last` ends the change.
    Part {
        /// The first part's index, or 0 in the first part.
        first: u64,
        /// Whether this part ends the change.
        last: bool,
    },
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
    /// A compressed snapshot that does not decompress, or would be larger than
    /// [`METADATA_SNAPSHOT_BYTES_MAX`].
    #[error("undecodable metadata snapshot: {0}")]
    Snapshot(String),
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

/// Splits a change's records into parts whose encodings stay within about `part_bytes` each (a
/// record larger than that goes alone). One part means the change fits one entry, unmarked.
pub fn split(records: Vec<MetadataRecord>, part_bytes: usize) -> Vec<Vec<MetadataRecord>> {
    let (mut parts, mut current, mut bytes) = (Vec::new(), Vec::new(), 0);
    for record in records {
        // A record's own encoding and its comma.
        let size = serde_json::to_vec(&record).map_or(0, |v| v.len()) + 1;
        if !current.is_empty() && bytes + size + PART_MARKER_BYTES > part_bytes {
            parts.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(record);
    }
    parts.push(current);
    parts
}

/// Room [`split`] leaves in each part for its [`MetadataRecord::Part`] marker.
const PART_MARKER_BYTES: usize = 64;

/// Encodes part `records` of a split change (see [`split`]): `first` is the index the first part
/// was proposed at (0 for the first part itself).
pub fn encode_part(first: u64, last: bool, records: Vec<MetadataRecord>) -> Vec<u8> {
    let mut marked = Vec::with_capacity(records.len() + 1);
    marked.push(MetadataRecord::Part { first, last });
    marked.extend(records);
    encode(&marked)
}

/// The parts of a split change gathered so far (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    /// The log index of its first part.
    first: u64,
    /// The log index of the last part gathered.
    last: u64,
    /// The records of the parts gathered, in order.
    records: Vec<MetadataRecord>,
}

/// Applies the records of the committed entry at `index`: a whole change, or one part of a split
/// change (gathered in `pending` until its last part, then applied all together). Any entry that
/// is not the next part of the pending change abandons it. On an error the image is unchanged
/// but for its version, which moves to `index` either way (the entry is consumed).
pub fn apply_entry(
    image: &mut MetadataImage,
    pending: &mut Option<PendingChange>,
    index: u64,
    mut records: Vec<MetadataRecord>,
) -> Result<(), RecordError> {
    let Some(&MetadataRecord::Part { first, last }) = records.first() else {
        if let Some(abandoned) = pending.take() {
            tracing::warn!(
                first = abandoned.first,
                at = index,
                "a split metadata change was abandoned unfinished (its controller lost leadership)"
            );
        }
        let applied = image.apply(index, &records);
        image.version = index;
        return applied;
    };
    records.remove(0);
    image.version = index;
    if first == 0 {
        if let Some(abandoned) = pending.take() {
            tracing::warn!(first = abandoned.first, at = index, "a split metadata change was abandoned unfinished");
        }
        *pending = Some(PendingChange { first: index, last: index, records });
    } else {
        match pending.as_mut().filter(|p| p.first == first && p.last + 1 == index) {
            Some(gathering) => {
                gathering.last = index;
                gathering.records.append(&mut records);
            }
            None => {
                *pending = None;
                return Err(RecordError::OutOfOrder(format!(
                    "part of the change begun at {first} found at {index} without the parts before it"
                )));
            }
        }
    }
    if !last {
        return Ok(());
    }
    let change = pending.take().map(|p| p.records).unwrap_or_default();
    let applied = image.apply(index, &change);
    image.version = index;
    applied
}

/// A snapshot taken between the parts of a split change: the image and the parts gathered so
/// far. Without one pending, a snapshot is the bare image, as before split changes existed.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    image: &'a MetadataImage,
    pending: &'a PendingChange,
}

#[derive(Deserialize)]
struct Snapshot {
    image: MetadataImage,
    pending: PendingChange,
}

/// A zstd frame's first bytes (RFC 8878). A snapshot starting with them is compressed; one
/// starting with `{` is plain JSON, as snapshots were written before compression.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Encodes an image, and the split change it is gathering, as a snapshot: JSON, compressed with
/// zstd as Kafka batches are (`model::compress`). The JSON repeats itself (field names, replica
/// lists), so it compresses well: 200,000 partitions with varied epochs are 19.8 MB of JSON and
/// 1.4 MB compressed (test below). One transport frame (16 MiB) carries a snapshot to a lagging
/// voter or an observer whole; plain JSON stopped fitting at about 150,000 partitions,
/// compressed it fits about two million.
pub fn encode_image(image: &MetadataImage, pending: &Option<PendingChange>) -> Vec<u8> {
    let json = match pending {
        None => serde_json::to_vec(image),
        Some(pending) => serde_json::to_vec(&SnapshotRef { image, pending }),
    }
    .unwrap_or_default();
    // Compressing into memory cannot fail short of allocation failure; plain JSON decodes too.
    let mut compressed = bytes::BytesMut::new();
    match compress(CompressionType::Zstd, &json, &mut compressed) {
        Ok(()) => Vec::from(compressed),
        Err(_) => json,
    }
}

/// Decodes a snapshot (compressed or plain).
pub fn decode_image(data: &[u8]) -> Result<(MetadataImage, Option<PendingChange>), RecordError> {
    let plain;
    let data = if data.starts_with(&ZSTD_MAGIC) {
        plain = decompress_snapshot(data, METADATA_SNAPSHOT_BYTES_MAX)?;
        &plain[..]
    } else {
        data
    };
    match serde_json::from_slice::<MetadataImage>(data) {
        Ok(image) => Ok((image, None)),
        Err(bare) => match serde_json::from_slice::<Snapshot>(data) {
            Ok(snapshot) => Ok((snapshot.image, Some(snapshot.pending))),
            Err(_) => Err(bare.into()),
        },
    }
}

/// Decompresses a snapshot with the batches' bounded decoder (`model::decompress`: the output
/// grows as it comes, and a frame stating a size over `limit` is refused before decoding),
/// refusing more than `limit` bytes ([`METADATA_SNAPSHOT_BYTES_MAX`]).
fn decompress_snapshot(data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    decompress(CompressionType::Zstd, data, limit).map_err(|e| RecordError::Snapshot(e.to_string()))
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
            MetadataRecord::Part { .. } => {
                return Err(RecordError::OutOfOrder("a part marker inside an entry".into()));
            }
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

    const CHANGE_PART_BYTES_FOR_TESTS: usize = 512 << 10;

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

    /// An image with brokers 1 and 2, and the image after creating topic "big" of `partitions`.
    fn big_topic(partitions: usize) -> (MetadataImage, MetadataImage) {
        let mut from = MetadataImage { cluster_id: "c".into(), ..Default::default() };
        from.apply(1, &[MetadataRecord::Broker(broker(1, "a")), MetadataRecord::Broker(broker(2, "b"))]).unwrap();
        let mut to = from.clone();
        let placed = to.place_partitions(partitions, 2).unwrap();
        let topic =
            TopicMeta { name: "big".into(), id: TopicId([5; 16]), partitions: placed, configs: BTreeMap::new() };
        to.topics.insert("big".into(), Arc::new(topic));
        (from, to)
    }

    /// Applies `entries` from log index `first` on, as a node would.
    fn apply_all(image: &mut MetadataImage, pending: &mut Option<PendingChange>, first: u64, entries: &[Vec<u8>]) {
        for (i, entry) in entries.iter().enumerate() {
            apply_entry(image, pending, first + i as u64, decode(entry).unwrap()).unwrap();
        }
    }

    /// The entries a controller proposes for `records` from log index `at` on.
    fn proposed(records: Vec<MetadataRecord>, part_bytes: usize, at: u64) -> Vec<Vec<u8>> {
        let parts = split(records, part_bytes);
        let count = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| match (i, count) {
                (_, 1) => encode(&part),
                (0, _) => encode_part(0, false, part),
                _ => encode_part(at, i + 1 == count, part),
            })
            .collect()
    }

    #[test]
    fn a_change_larger_than_an_entry_applies_all_at_once_at_its_last_part() {
        let (from, mut to) = big_topic(10_000);
        let records = diff(&from, &to);
        let entries = proposed(records, 64 << 10, 10);
        assert!(entries.len() > 10, "{} parts", entries.len());
        assert!(entries.iter().all(|e| e.len() <= 64 << 10), "a part over its bound");

        let (mut image, mut pending) = (from.clone(), None);
        let (body, tail) = entries.split_at(entries.len() - 1);
        apply_all(&mut image, &mut pending, 10, body);
        // Between parts: nothing of the change is visible, and the version still moves.
        assert!(image.topics.is_empty());
        assert_eq!(image.version, 10 + body.len() as u64 - 1);
        assert!(pending.as_ref().is_some_and(|p| p.records.len() > 9_000));

        // A snapshot taken between parts carries them: a node caught up by it completes the change.
        let (mut restored, mut restored_pending) = decode_image(&encode_image(&image, &pending)).unwrap();
        restored.version = image.version;
        assert_eq!((&restored, &restored_pending), (&image, &pending));
        let last = 10 + body.len() as u64;
        apply_all(&mut restored, &mut restored_pending, last, tail);
        apply_all(&mut image, &mut pending, last, tail);
        to.version = last;
        assert_eq!(image, to);
        assert_eq!(restored, to);
        assert!(pending.is_none() && restored_pending.is_none());
    }

    #[test]
    fn an_entry_between_parts_abandons_the_change_on_every_node_alike() {
        let (from, to) = big_topic(2_000);
        let entries = proposed(diff(&from, &to), 32 << 10, 20);
        assert!(entries.len() >= 3);

        // The controller died after two parts; the next controller's empty entry comes next.
        let (mut image, mut pending) = (from.clone(), None);
        apply_all(&mut image, &mut pending, 20, &entries[..2]);
        apply_entry(&mut image, &mut pending, 22, Vec::new()).unwrap();
        assert!(pending.is_none());
        assert!(image.topics.is_empty());
        assert_eq!(image.version, 22);

        // A part whose predecessors were abandoned is refused and changes nothing but the version.
        let before = image.clone();
        assert!(apply_entry(&mut image, &mut pending, 23, decode(&entries[2]).unwrap()).is_err());
        assert_eq!(image.topics, before.topics);
        assert_eq!(image.version, 23);

        // The next controller's own change starts afresh and completes.
        let again = proposed(diff(&from, &to), 32 << 10, 24);
        apply_all(&mut image, &mut pending, 24, &again);
        assert_eq!(image.topics, to.topics);

        // A part at the wrong index (not right after its predecessor) is refused too.
        let (mut image, mut pending) = (from.clone(), None);
        apply_all(&mut image, &mut pending, 20, &entries[..1]);
        assert!(apply_entry(&mut image, &mut pending, 22, decode(&entries[1]).unwrap()).is_err());
        assert!(pending.is_none());
    }

    #[test]
    fn a_small_change_stays_one_unmarked_entry_and_old_snapshots_still_decode() {
        let (from, to) = big_topic(10);
        let parts = split(diff(&from, &to), CHANGE_PART_BYTES_FOR_TESTS);
        assert_eq!(parts.len(), 1);
        // A snapshot written before split changes existed: a bare image.
        let (image, pending) = decode_image(&serde_json::to_vec(&to).unwrap()).unwrap();
        assert_eq!(image, to);
        assert!(pending.is_none());
        // And a current one: compressed.
        let encoded = encode_image(&to, &None);
        assert!(encoded.starts_with(&ZSTD_MAGIC));
        assert_eq!(decode_image(&encoded).unwrap(), (to, None));
    }

    #[test]
    fn a_snapshot_of_many_partitions_fits_one_transport_frame_and_bad_ones_are_refused() {
        let (_, mut image) = big_topic(200_000);
        // Epochs and ISRs that differ from partition to partition, as a cluster's do after a
        // while of leader changes (pseudo-random, so the text repeats less than a fresh image).
        let topic = Arc::make_mut(image.topics.get_mut("big").unwrap());
        for (i, partition) in topic.partitions.iter_mut().enumerate() {
            let noise = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            partition.leader_epoch = (noise % 5_000) as i32;
            partition.partition_epoch = partition.leader_epoch + (noise % 7) as i32;
            if noise.is_multiple_of(3) {
                partition.isr.truncate(1);
                partition.leader = partition.isr[0];
            }
        }
        let json = serde_json::to_vec(&image).unwrap().len();
        let encoded = encode_image(&image, &None);
        assert!(json > crate::cluster::transport::PAYLOAD_BYTES_MAX, "plain JSON {json} bytes would not fit");
        assert!(encoded.len() < crate::cluster::transport::PAYLOAD_BYTES_MAX / 8, "{} bytes compressed", encoded.len());
        assert_eq!(decode_image(&encoded).unwrap().0, image);

        // Damaged, cut short, or larger than the limit once decompressed: an error, not a panic.
        let mut damaged = encoded.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0xFF;
        assert!(decode_image(&damaged).is_err());
        assert!(decode_image(&encoded[..encoded.len() / 2]).is_err());
        let bomb = zstd::stream::encode_all(&vec![b' '; 1 << 20][..], 1).unwrap();
        assert!(bomb.len() < 1 << 10);
        assert!(matches!(decompress_snapshot(&bomb, (1 << 20) - 1), Err(RecordError::Snapshot(_))));
        assert_eq!(decompress_snapshot(&bomb, 1 << 20).unwrap().len(), 1 << 20);
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
