//! DescribeLogDirs (KIP-113): the broker's one log directory (the data dir), the size of each
//! partition log in it, asked of the shards that own them, and (v4, KIP-827) the size and free
//! room of its filesystem; what `kafka-log-dirs.sh --describe` and `Admin.describeLogDirs` show.
//!
//! Kafka's semantics: a null topic list asks for every partition; a requested partition the
//! broker has no log for (an unknown topic or partition) is left out of the answer, not
//! answered with an error, since the response has no per-partition error (the admin client
//! reads a missing partition as "no replica here"). Kafka also lists every other topic of the
//! directory with an empty partition list; that says nothing, and is left out here.

use std::collections::BTreeSet;
use std::rc::Rc;

use super::scatter;
use crate::broker::ShardBroker;
use crate::broker::metadata::image::MetadataImage;
use crate::broker::partition::{LogDirDescription, PartitionError, PartitionRequest, PartitionResponse};
use crate::model::TopicPartition;
use crate::protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, DescribeLogDirsResponsePartition, DescribeLogDirsResponseResult,
    DescribeLogDirsResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};
use crate::storage::io::{VolumeSpace, volume_space};

/// DescribeLogDirs.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DescribeLogDirsRequest) -> Reply {
    let wanted = wanted(&request, &broker.metadata.image());
    let work = wanted.into_iter().map(|tp| (tp, ())).collect();
    let results = scatter(broker, work, PartitionRequest::DescribeLogDirs, |response| match response {
        PartitionResponse::DescribeLogDirs(results) => Some(results),
        _ => None,
    })
    .await;
    let data_dir = &broker.config.data_dir;
    // Kafka answers the path as configured, made absolute (not canonical).
    let log_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.clone());
    let result = log_dir_result(&log_dir.to_string_lossy(), volume_space(data_dir), results);
    respond(header, &DescribeLogDirsResponse { results: vec![result], ..Default::default() })
}

/// The partitions `request` asks about, each once and in order: every partition of the image
/// for a null topic list, else those named (whether or not they exist; the owners say).
fn wanted(request: &DescribeLogDirsRequest, image: &MetadataImage) -> BTreeSet<TopicPartition> {
    match &request.topics {
        None => image
            .topics
            .values()
            .flat_map(|topic| {
                let name: std::sync::Arc<str> = topic.name.as_str().into();
                (0..topic.partitions.len()).filter_map(move |p| {
                    Some(TopicPartition { topic: name.clone(), partition: i32::try_from(p).ok()? })
                })
            })
            .collect(),
        Some(topics) => topics
            .iter()
            .flat_map(|topic| {
                let name: std::sync::Arc<str> = topic.topic.as_str().into();
                topic.partitions.iter().map(move |&partition| TopicPartition { topic: name.clone(), partition })
            })
            .collect(),
    }
}

/// The answer for the data dir: the partitions found, by topic in name order (partitions nobody
/// owns are left out), and the filesystem's space; a filesystem that cannot be read makes the
/// directory KAFKA_STORAGE_ERROR, as Kafka answers for a directory it cannot use.
fn log_dir_result(
    log_dir: &str,
    space: std::io::Result<VolumeSpace>,
    results: impl IntoIterator<Item = (TopicPartition, Result<LogDirDescription, PartitionError>)>,
) -> DescribeLogDirsResponseResult {
    let mut topics: Vec<DescribeLogDirsResponseTopic> = Vec::new();
    for (tp, result) in results {
        let Ok(log) = result else { continue };
        let partition = DescribeLogDirsResponsePartition {
            partition_index: tp.partition,
            partition_size: i64::try_from(log.size_bytes).unwrap_or(i64::MAX),
            offset_lag: log.offset_lag,
            is_future_key: false,
            cleaner_dirty_bytes: log.cleaning.map_or(-1, |c| i64::try_from(c.dirty_bytes).unwrap_or(i64::MAX)),
            cleaner_cleanable_bytes: log.cleaning.map_or(-1, |c| i64::try_from(c.cleanable_bytes).unwrap_or(i64::MAX)),
            last_clean_ms: log.cleaning.and_then(|c| c.last_clean).map_or(-1, |(at, _)| at.0),
            last_clean_end: log.cleaning.and_then(|c| c.last_clean).map_or(-1, |(_, end)| end.0),
        };
        match topics.last_mut() {
            Some(topic) if topic.name == *tp.topic => topic.partitions.push(partition),
            _ => topics.push(DescribeLogDirsResponseTopic { name: tp.topic.to_string(), partitions: vec![partition] }),
        }
    }
    // Kafka reports a volume too large for an i64 as i64::MAX.
    let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    match space {
        Ok(space) => DescribeLogDirsResponseResult {
            error_code: ErrorCode::None.code(),
            log_dir: log_dir.to_string(),
            topics,
            total_bytes: bytes(space.total_bytes),
            usable_bytes: bytes(space.usable_bytes),
        },
        Err(_) => DescribeLogDirsResponseResult {
            error_code: ErrorCode::KafkaStorageError.code(),
            log_dir: log_dir.to_string(),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use bytes::BytesMut;

    use super::*;
    use crate::broker::metadata::image::{PartitionMeta, TopicMeta};
    use crate::model::TopicId;
    use crate::protocol::Message;
    use crate::protocol::messages::DescribeLogDirsRequestTopic;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }

    fn image(topics: &[(&str, usize)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (i, (name, partitions)) in topics.iter().enumerate() {
            let meta = TopicMeta {
                name: name.to_string(),
                id: TopicId([u8::try_from(i).unwrap(); 16]),
                partitions: vec![PartitionMeta::single(0, 0, 0); *partitions],
                configs: BTreeMap::new(),
            };
            image.topics.insert(name.to_string(), Arc::new(meta));
        }
        image
    }

    #[test]
    fn null_topics_ask_for_every_partition_and_named_ones_for_those_named_once() {
        let image = image(&[("a", 2), ("b", 1)]);
        let all = DescribeLogDirsRequest { topics: None };
        assert_eq!(wanted(&all, &image).into_iter().collect::<Vec<_>>(), [tp("a", 0), tp("a", 1), tp("b", 0)]);
        let named = DescribeLogDirsRequest {
            topics: Some(vec![
                DescribeLogDirsRequestTopic { topic: "b".into(), partitions: vec![0, 0] },
                DescribeLogDirsRequestTopic { topic: "nope".into(), partitions: vec![3] },
            ]),
        };
        assert_eq!(wanted(&named, &image).into_iter().collect::<Vec<_>>(), [tp("b", 0), tp("nope", 3)]);
        let none = DescribeLogDirsRequest { topics: Some(vec![]) };
        assert!(wanted(&none, &image).is_empty());
    }

    #[test]
    fn found_partitions_are_grouped_by_topic_and_unknown_ones_left_out() {
        let log = |size_bytes| Ok(LogDirDescription { size_bytes, offset_lag: 0, cleaning: None });
        let results = vec![
            (tp("a", 0), log(100)),
            (tp("a", 1), log(0)),
            (tp("b", 0), log(7)),
            (tp("nope", 0), Err(PartitionError::UnknownTopicOrPartition)),
        ];
        let space = VolumeSpace { total_bytes: 1000, usable_bytes: 600 };
        let result = log_dir_result("/data", Ok(space), results);
        assert_eq!((result.error_code, result.log_dir.as_str()), (0, "/data"));
        assert_eq!((result.total_bytes, result.usable_bytes), (1000, 600));
        let shown: Vec<(&str, Vec<(i32, i64)>)> = result
            .topics
            .iter()
            .map(|t| (t.name.as_str(), t.partitions.iter().map(|p| (p.partition_index, p.partition_size)).collect()))
            .collect();
        assert_eq!(shown, [("a", vec![(0, 100), (1, 0)]), ("b", vec![(0, 7)])]);
        assert!(result.topics.iter().flat_map(|t| &t.partitions).all(|p| p.offset_lag == 0 && !p.is_future_key));

        let unreadable = log_dir_result("/data", Err(std::io::Error::other("gone")), vec![(tp("a", 0), log(1))]);
        assert_eq!(unreadable.error_code, ErrorCode::KafkaStorageError.code());
        assert!(unreadable.topics.is_empty());
        assert_eq!((unreadable.total_bytes, unreadable.usable_bytes), (-1, -1));
    }

    /// The volume's space goes on the wire from v4 on, the top-level error from v3 on; a null
    /// topic list is a compact null (0) in the flexible versions and -1 before them.
    #[test]
    fn versions_carry_their_fields() {
        let space = VolumeSpace { total_bytes: 1 << 40, usable_bytes: 1 << 39 };
        let response = DescribeLogDirsResponse {
            results: vec![log_dir_result("/d", Ok(space), Vec::new())],
            ..Default::default()
        };
        let encoded = |version| {
            let mut bytes = BytesMut::new();
            response.encode(&mut bytes, version).unwrap();
            bytes.to_vec()
        };
        let total = (1i64 << 40).to_be_bytes();
        let (v1, v3, v4) = (encoded(1), encoded(3), encoded(4));
        assert!(!v3.windows(8).any(|w| w == total) && v4.windows(8).any(|w| w == total));
        // throttle (4) + results (4) + error (2) + log dir (2 + 2) + topics (4) at v1.
        assert_eq!(v1.len(), 18);
        // v3 adds the top-level error; v4 adds two i64s.
        assert_eq!(v4.len(), v3.len() + 16);

        let mut null_v1 = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(DescribeLogDirsRequest::decode(&mut null_v1, 1).unwrap().topics, None);
        let mut null_v4 = BytesMut::from(&[0, 0][..]);
        assert_eq!(DescribeLogDirsRequest::decode(&mut null_v4, 4).unwrap().topics, None);
    }
}
