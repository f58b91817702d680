//! One handler per Kafka API, and [`HANDLERS`], the single list of what the broker serves: the
//! ApiVersions response is built from it and requests outside it are refused.

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::partition::PartitionError;
use crate::broker::shard::{PartitionResults, ShardRequest, ShardResponse};
use crate::model::TopicPartition;
use crate::protocol::Reply;
use crate::protocol::{ApiKey, RequestBody, RequestHeader};
use crate::shard::ShardId;

/// The APIs and versions the broker serves (each within what the codec implements).
pub const HANDLERS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 0, 7),
    (ApiKey::DeleteTopics, 0, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 0, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 1),
    // Consumer groups (the classic protocol): everything the codec implements, which covers
    // librdkafka 2.x, kafka-python 2.x and the Java 3.x/4.x clients.
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 0, 8),
    (ApiKey::OffsetFetch, 0, 8),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
];

/// Whether the broker serves `version` of `api`.
pub fn serves(api: ApiKey, version: i16) -> bool {
    HANDLERS.iter().any(|&(key, min, max)| key == api && (min..=max).contains(&version))
}

/// Runs the handler for `body`.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, body: RequestBody, peer: SocketAddr) -> Reply {
    match body {
        RequestBody::Produce(request) => produce::handle(broker, header, request).await,
        RequestBody::Fetch(request) => fetch::handle(broker, header, request).await,
        RequestBody::ListOffsets(request) => list_offsets::handle(broker, header, request).await,
        RequestBody::Metadata(request) => metadata::handle(broker, header, request).await,
        RequestBody::ApiVersions(request) => api_versions::handle(header, request),
        RequestBody::CreateTopics(request) => create_topics::handle(broker, header, request).await,
        RequestBody::DeleteTopics(request) => delete_topics::handle(broker, header, request).await,
        RequestBody::DeleteRecords(request) => delete_records::handle(broker, header, request).await,
        RequestBody::DescribeConfigs(request) => describe_configs::handle(broker, header, request),
        RequestBody::CreatePartitions(request) => create_partitions::handle(broker, header, request).await,
        RequestBody::DescribeCluster(request) => describe_cluster::handle(broker, header, request),
        RequestBody::FindCoordinator(request) => find_coordinator::handle(broker, header, request).await,
        RequestBody::JoinGroup(request) => join_group::handle(broker, header, request, peer).await,
        RequestBody::SyncGroup(request) => sync_group::handle(broker, header, request).await,
        RequestBody::Heartbeat(request) => heartbeat::handle(broker, header, request).await,
        RequestBody::LeaveGroup(request) => leave_group::handle(broker, header, request).await,
        RequestBody::OffsetCommit(request) => offset_commit::handle(broker, header, request).await,
        RequestBody::OffsetFetch(request) => offset_fetch::handle(broker, header, request).await,
        RequestBody::ListGroups(request) => list_groups::handle(broker, header, request).await,
        RequestBody::DescribeGroups(request) => describe_groups::handle(broker, header, request).await,
        RequestBody::DeleteGroups(request) => delete_groups::handle(broker, header, request).await,
        RequestBody::OffsetDelete(request) => offset_delete::handle(broker, header, request).await,
        RequestBody::IncrementalAlterConfigs(request) => {
            incremental_alter_configs::handle(broker, header, request).await
        }
        _ => Reply::Close,
    }
}

/// Sends each shard its part of a partition-wise request (one message per shard, concurrently)
/// and gathers the per-partition results, keyed by partition. Partitions nobody owns get
/// `UnknownTopicOrPartition` without a message.
pub(crate) async fn scatter<W, T>(
    broker: &Rc<ShardBroker>,
    work: Vec<(TopicPartition, W)>,
    request: impl Fn(Vec<(TopicPartition, W)>) -> ShardRequest,
    response: impl Fn(ShardResponse) -> Option<PartitionResults<T>>,
) -> BTreeMap<TopicPartition, Result<T, PartitionError>> {
    let mut by_shard: BTreeMap<ShardId, Vec<(TopicPartition, W)>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (tp, item) in work {
        match broker.owner_of(&tp.topic, tp.partition) {
            Some(shard) => by_shard.entry(shard).or_default().push((tp, item)),
            None => {
                out.insert(tp, Err(PartitionError::UnknownTopicOrPartition));
            }
        }
    }
    let calls: Vec<_> = by_shard
        .into_iter()
        .map(|(shard, items)| {
            let tps: Vec<TopicPartition> = items.iter().map(|(tp, _)| tp.clone()).collect();
            let (broker, message) = (broker.clone(), request(items));
            (tps, glommio::spawn_local(async move { broker.call(shard, message).await }))
        })
        .collect();
    for (tps, call) in calls {
        match call.await.ok().and_then(&response) {
            Some(results) => out.extend(results),
            None => {
                for tp in tps {
                    out.insert(tp, Err(PartitionError::NotAvailable));
                }
            }
        }
    }
    out
}
