//! One handler per Kafka API, and the handler table ([`HANDLED`], [`run`]), the single list of
//! what the broker serves: the ApiVersions response is built from it, requests outside it are
//! refused, and dispatch follows it.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::partition::{PartitionError, PartitionRequest, PartitionResponse, PartitionResults};
use crate::model::TopicPartition;
use crate::protocol::{ApiKey, Reply, RequestBody, RequestHeader, SUPPORTED};
use crate::shard::ShardId;

/// The handler table: one line per API the broker serves, naming its handler. It makes both
/// [`HANDLED`] (which ApiVersions advertises, each at the versions the codec implements, from
/// `versions=` in `src/protocol/schema/*.msg`) and [`run`] (the dispatch), so an API is added in
/// one place.
macro_rules! handler_table {
    (|$broker:ident, $header:ident, $request:ident, $peer:ident, $worked_on:ident| {
        $($api:ident => $call:expr,)*
    }) => {
        /// The APIs the broker serves.
        pub const HANDLED: &[ApiKey] = &[$(ApiKey::$api),*];

        /// Runs the handler for `body`; produce and fetch call `worked_on` with each shard they
        /// work on (the server moves a connection to the one its requests keep working on).
        pub async fn run(
            $broker: &Rc<ShardBroker>,
            $header: &RequestHeader,
            body: RequestBody,
            $peer: SocketAddr,
            $worked_on: &dyn Fn(ShardId),
        ) -> Reply {
            // Unreachable when every message the codec knows is served.
            #[allow(unreachable_patterns)]
            match body {
                $(RequestBody::$api($request) => $call,)*
                _ => Reply::Close,
            }
        }
    };
}

handler_table!(|broker, header, request, peer, worked_on| {
    Produce => produce::handle(broker, header, request, worked_on).await,
    Fetch => fetch::handle(broker, header, request, false, worked_on).await,
    ListOffsets => list_offsets::handle(broker, header, request).await,
    Metadata => metadata::handle(broker, header, request).await,
    ApiVersions => api_versions::handle(header, request),
    CreateTopics => create_topics::handle(broker, header, request).await,
    DeleteTopics => delete_topics::handle(broker, header, request).await,
    DeleteRecords => delete_records::handle(broker, header, request).await,
    DescribeConfigs => describe_configs::handle(broker, header, request),
    CreatePartitions => create_partitions::handle(broker, header, request).await,
    DescribeCluster => describe_cluster::handle(broker, header, request),
    DescribeLogDirs => describe_log_dirs::handle(broker, header, request).await,
    // The cluster: the metadata quorum and partition leadership.
    DescribeQuorum => describe_quorum::handle(broker, header, request).await,
    ElectLeaders => elect_leaders::handle(broker, header, request).await,
    // Consumer groups (the classic protocol): everything the codec implements, which covers
    // librdkafka 2.x, kafka-python 2.x and the Java 3.x/4.x clients.
    FindCoordinator => find_coordinator::handle(broker, header, request).await,
    JoinGroup => join_group::handle(broker, header, request, peer).await,
    SyncGroup => sync_group::handle(broker, header, request).await,
    Heartbeat => heartbeat::handle(broker, header, request).await,
    LeaveGroup => leave_group::handle(broker, header, request).await,
    OffsetCommit => offset_commit::handle(broker, header, request).await,
    OffsetFetch => offset_fetch::handle(broker, header, request).await,
    ListGroups => list_groups::handle(broker, header, request).await,
    DescribeGroups => describe_groups::handle(broker, header, request).await,
    DeleteGroups => delete_groups::handle(broker, header, request).await,
    OffsetDelete => offset_delete::handle(broker, header, request).await,
    IncrementalAlterConfigs => incremental_alter_configs::handle(broker, header, request).await,
    AlterConfigs => alter_configs::handle(broker, header, request).await,
    // Exactly once: idempotent producers and transactions.
    InitProducerId => init_producer_id::handle(broker, header, request).await,
    AddPartitionsToTxn => add_partitions_to_txn::handle(broker, header, request).await,
    AddOffsetsToTxn => add_offsets_to_txn::handle(broker, header, request).await,
    EndTxn => end_txn::handle(broker, header, request).await,
    WriteTxnMarkers => write_txn_markers::handle(broker, header, request).await,
    DescribeTransactions => describe_transactions::handle(broker, header, request).await,
    ListTransactions => list_transactions::handle(broker, header, request).await,
    DescribeProducers => describe_producers::handle(broker, header, request).await,
    TxnOffsetCommit => txn_offset_commit::handle(broker, header, request).await,
});

/// The versions of `api` the broker serves: all the codec implements, if the broker handles it.
pub fn served_versions(api: ApiKey) -> Option<(i16, i16)> {
    if !HANDLED.contains(&api) {
        return None;
    }
    SUPPORTED.iter().find(|s| s.api_key == api).map(|s| (s.version_min, s.version_max))
}

/// Whether the broker serves `version` of `api`.
pub fn serves(api: ApiKey, version: i16) -> bool {
    served_versions(api).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// Calls `worked_on` with the shard that leads each of `partitions` here (a client connection
/// moves to the one shard its requests keep working on, see `server::placement`); partitions not
/// led here count for nothing.
pub(crate) fn note_placement<'a>(
    broker: &ShardBroker,
    worked_on: &dyn Fn(ShardId),
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) {
    for tp in partitions {
        if let Ok(shard) = broker.metadata.route(&tp.topic, tp.partition) {
            worked_on(shard);
        }
    }
}

/// Sends each shard its part of a partition-wise request (one message per shard, concurrently)
/// and gathers the per-partition results, keyed by partition. Partitions this broker does not
/// lead get their routing error (unknown, NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE) without a
/// message.
pub(crate) async fn scatter<W, T>(
    broker: &Rc<ShardBroker>,
    work: Vec<(TopicPartition, W)>,
    request: impl Fn(Vec<(TopicPartition, W)>) -> PartitionRequest,
    response: impl Fn(PartitionResponse) -> Option<PartitionResults<T>>,
) -> BTreeMap<TopicPartition, Result<T, PartitionError>> {
    let mut by_shard: BTreeMap<ShardId, Vec<(TopicPartition, W)>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (tp, item) in work {
        match broker.metadata.route(&tp.topic, tp.partition) {
            Ok(shard) => by_shard.entry(shard).or_default().push((tp, item)),
            Err(e) => {
                out.insert(tp, Err(e));
            }
        }
    }
    let calls: Vec<_> = by_shard
        .into_iter()
        .map(|(shard, items)| {
            let tps: Vec<TopicPartition> = items.iter().map(|(tp, _)| tp.clone()).collect();
            let (peers, message) = (broker.partitions.peers().clone(), request(items));
            (tps, glommio::spawn_local(async move { peers.call(shard, message).await }))
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
