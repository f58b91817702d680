//! The `kafka-protocol` crate as an independent oracle (its code is generated from Apache
//! Kafka's own message definitions). For every API and every version both sides implement,
//! and for every sample variant (non-default values in every field present, nulls, empty and
//! multi-element arrays, record bytes): encode with ours, decode with theirs, encode with
//! theirs, and require the very same bytes, then decode theirs with ours and require the same
//! value. Byte equality after their decode-then-encode means they read every field where we
//! wrote it; they must also have found no tagged field they do not know (they keep unknown tags
//! and would write them back unchanged, hiding a wrong tag number). Then, across versions:
//! decoded at an older version (where newer fields are absent and take their defaults) and
//! encoded at a newer one, both sides must produce the same bytes, which checks the defaults of
//! absent fields. Default values must encode alike too. The defaults of tagged fields, which
//! decide whether they are written at all, are compared one by one in
//! `tagged_field_defaults_match`.
//!
//! The oracle (Kafka 4.x definitions) no longer has CreateTopics v0-1, DeleteTopics v0,
//! DescribeConfigs v0, OffsetCommit v0-1, OffsetFetch v0 and WriteTxnMarkers v0; `golden.rs` pins
//! those by hand.

use std::fmt::Debug;

use bytes::BytesMut;
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::{Decodable, Encodable, Message as KpMessage};

use crate::protocol::Message;
use crate::protocol::messages as ours;

/// Checks one message type against its oracle; returns the versions checked.
fn check<Ours, Theirs>(sample: impl Fn(i16, u8) -> Ours, compare_defaults: bool) -> Vec<i16>
where
    Ours: Message,
    Theirs: Encodable + Decodable + Default + Debug + KpMessage,
{
    let min = Ours::VERSION_MIN.max(Theirs::VERSIONS.min);
    let max = Ours::VERSION_MAX.min(Theirs::VERSIONS.max);
    assert!(min <= max, "{:?}: no version in common with the oracle", Ours::API_KEY);
    let name = std::any::type_name::<Ours>();
    for version in min..=max {
        for variant in 0..3 {
            let value = sample(version, variant);
            let mut bytes = BytesMut::new();
            value.encode(&mut bytes, version).unwrap();
            let mut wire = bytes.clone().freeze();
            let theirs = Theirs::decode(&mut wire, version)
                .unwrap_or_else(|e| panic!("{name} v{version} variant {variant}: the oracle cannot decode ours: {e}"));
            assert!(wire.is_empty(), "{name} v{version} variant {variant}: the oracle left {} bytes", wire.len());
            assert_no_unknown_tags(&theirs, &format!("{name} v{version} variant {variant}"));
            let mut again = BytesMut::new();
            theirs.encode(&mut again, version).unwrap();
            assert_eq!(again, bytes, "{name} v{version} variant {variant}: the oracle read {theirs:?}");
            let back = Ours::decode(&mut again, version)
                .unwrap_or_else(|e| panic!("{name} v{version} variant {variant}: we cannot decode theirs: {e}"));
            assert!(again.is_empty());
            assert_eq!(back, value, "{name} v{version} variant {variant}");
        }
        if compare_defaults {
            let mut ours = BytesMut::new();
            Ours::default().encode(&mut ours, version).unwrap();
            let mut theirs = BytesMut::new();
            Theirs::default().encode(&mut theirs, version).unwrap();
            assert_eq!(ours, theirs, "{name} v{version}: defaults differ");
        }
    }
    // Across versions: the fields absent from `old` take each side's defaults.
    for old in min..max {
        for new in old + 1..=max {
            let mut bytes = BytesMut::new();
            // A null the newer version allows may not be allowed in the older one.
            if sample(new, 0).encode(&mut bytes, old).is_err() {
                continue;
            }
            let mut wire = bytes.clone().freeze();
            let theirs = Theirs::decode(&mut wire, old).unwrap();
            let ours = Ours::decode(&mut bytes, old).unwrap();
            let mut theirs_new = BytesMut::new();
            // The oracle refuses to encode a field removed in `new` that holds a non-default
            // value; we drop it silently. Such pairs say nothing about defaults.
            if theirs.encode(&mut theirs_new, new).is_err() {
                continue;
            }
            let mut ours_new = BytesMut::new();
            ours.encode(&mut ours_new, new).unwrap();
            assert_eq!(ours_new, theirs_new, "{name} decoded at v{old}, encoded at v{new}: defaults differ");
        }
    }
    (min..=max).collect()
}

/// The oracle keeps tagged fields it does not know in `unknown_tagged_fields`; there must be
/// none, at any depth.
fn assert_no_unknown_tags(theirs: &impl Debug, context: &str) {
    let debug = format!("{theirs:?}");
    for (at, _) in debug.match_indices("unknown_tagged_fields: {") {
        let rest = &debug[at + "unknown_tagged_fields: {".len()..];
        assert!(rest.starts_with('}'), "{context}: the oracle found unknown tagged fields: {debug}");
    }
}

macro_rules! oracle_tests {
    ($($test:ident: $ours:ident = $theirs:ident, defaults: $defaults:expr, versions: $versions:expr;)*) => {$(
        #[test]
        fn $test() {
            let checked = check::<ours::$ours, kp::$theirs>(ours::$ours::sample, $defaults);
            let expected: Vec<i16> = $versions.collect();
            assert_eq!(checked, expected, "versions checked against the oracle");
        }
    )*};
}

// `defaults: false` where a `records` field's default differs on purpose: Kafka's is null, the
// oracle's an empty record set. The versions listed are those the oracle covers.
oracle_tests! {
    produce_request: ProduceRequest = ProduceRequest, defaults: false, versions: 3..=9;
    produce_response: ProduceResponse = ProduceResponse, defaults: true, versions: 3..=9;
    fetch_request: FetchRequest = FetchRequest, defaults: true, versions: 4..=12;
    fetch_response: FetchResponse = FetchResponse, defaults: true, versions: 4..=12;
    list_offsets_request: ListOffsetsRequest = ListOffsetsRequest, defaults: true, versions: 1..=10;
    list_offsets_response: ListOffsetsResponse = ListOffsetsResponse, defaults: true, versions: 1..=10;
    metadata_request: MetadataRequest = MetadataRequest, defaults: true, versions: 0..=12;
    metadata_response: MetadataResponse = MetadataResponse, defaults: true, versions: 0..=12;
    api_versions_request: ApiVersionsRequest = ApiVersionsRequest, defaults: true, versions: 0..=3;
    api_versions_response: ApiVersionsResponse = ApiVersionsResponse, defaults: true, versions: 0..=3;
    create_topics_request: CreateTopicsRequest = CreateTopicsRequest, defaults: true, versions: 2..=7;
    create_topics_response: CreateTopicsResponse = CreateTopicsResponse, defaults: true, versions: 2..=7;
    delete_topics_request: DeleteTopicsRequest = DeleteTopicsRequest, defaults: true, versions: 1..=6;
    delete_topics_response: DeleteTopicsResponse = DeleteTopicsResponse, defaults: true, versions: 1..=6;
    delete_records_request: DeleteRecordsRequest = DeleteRecordsRequest, defaults: true, versions: 0..=2;
    delete_records_response: DeleteRecordsResponse = DeleteRecordsResponse, defaults: true, versions: 0..=2;
    describe_configs_request: DescribeConfigsRequest = DescribeConfigsRequest, defaults: true, versions: 1..=4;
    describe_configs_response: DescribeConfigsResponse = DescribeConfigsResponse, defaults: true, versions: 1..=4;
    create_partitions_request: CreatePartitionsRequest = CreatePartitionsRequest, defaults: true, versions: 0..=3;
    create_partitions_response: CreatePartitionsResponse = CreatePartitionsResponse, defaults: true, versions: 0..=3;
    incremental_alter_configs_request: IncrementalAlterConfigsRequest = IncrementalAlterConfigsRequest, defaults: true,
        versions: 0..=1;
    incremental_alter_configs_response: IncrementalAlterConfigsResponse = IncrementalAlterConfigsResponse,
        defaults: true, versions: 0..=1;
    alter_configs_request: AlterConfigsRequest = AlterConfigsRequest, defaults: true, versions: 0..=2;
    alter_configs_response: AlterConfigsResponse = AlterConfigsResponse, defaults: true, versions: 0..=2;
    describe_cluster_request: DescribeClusterRequest = DescribeClusterRequest, defaults: true, versions: 0..=1;
    describe_cluster_response: DescribeClusterResponse = DescribeClusterResponse, defaults: true, versions: 0..=1;
    describe_quorum_request: DescribeQuorumRequest = DescribeQuorumRequest, defaults: true, versions: 0..=2;
    describe_quorum_response: DescribeQuorumResponse = DescribeQuorumResponse, defaults: true, versions: 0..=2;
    elect_leaders_request: ElectLeadersRequest = ElectLeadersRequest, defaults: true, versions: 0..=2;
    elect_leaders_response: ElectLeadersResponse = ElectLeadersResponse, defaults: true, versions: 0..=2;
    find_coordinator_request: FindCoordinatorRequest = FindCoordinatorRequest, defaults: true, versions: 0..=4;
    find_coordinator_response: FindCoordinatorResponse = FindCoordinatorResponse, defaults: true, versions: 0..=4;
    join_group_request: JoinGroupRequest = JoinGroupRequest, defaults: true, versions: 0..=9;
    join_group_response: JoinGroupResponse = JoinGroupResponse, defaults: true, versions: 0..=9;
    sync_group_request: SyncGroupRequest = SyncGroupRequest, defaults: true, versions: 0..=5;
    sync_group_response: SyncGroupResponse = SyncGroupResponse, defaults: true, versions: 0..=5;
    heartbeat_request: HeartbeatRequest = HeartbeatRequest, defaults: true, versions: 0..=4;
    heartbeat_response: HeartbeatResponse = HeartbeatResponse, defaults: true, versions: 0..=4;
    leave_group_request: LeaveGroupRequest = LeaveGroupRequest, defaults: true, versions: 0..=5;
    leave_group_response: LeaveGroupResponse = LeaveGroupResponse, defaults: true, versions: 0..=5;
    offset_commit_request: OffsetCommitRequest = OffsetCommitRequest, defaults: true, versions: 2..=8;
    offset_commit_response: OffsetCommitResponse = OffsetCommitResponse, defaults: true, versions: 2..=8;
    offset_fetch_request: OffsetFetchRequest = OffsetFetchRequest, defaults: true, versions: 1..=8;
    offset_fetch_response: OffsetFetchResponse = OffsetFetchResponse, defaults: true, versions: 1..=8;
    list_groups_request: ListGroupsRequest = ListGroupsRequest, defaults: true, versions: 0..=5;
    list_groups_response: ListGroupsResponse = ListGroupsResponse, defaults: true, versions: 0..=5;
    describe_groups_request: DescribeGroupsRequest = DescribeGroupsRequest, defaults: true, versions: 0..=6;
    describe_groups_response: DescribeGroupsResponse = DescribeGroupsResponse, defaults: true, versions: 0..=6;
    delete_groups_request: DeleteGroupsRequest = DeleteGroupsRequest, defaults: true, versions: 0..=2;
    delete_groups_response: DeleteGroupsResponse = DeleteGroupsResponse, defaults: true, versions: 0..=2;
    offset_delete_request: OffsetDeleteRequest = OffsetDeleteRequest, defaults: true, versions: 0..=0;
    offset_delete_response: OffsetDeleteResponse = OffsetDeleteResponse, defaults: true, versions: 0..=0;
    init_producer_id_request: InitProducerIdRequest = InitProducerIdRequest, defaults: true, versions: 0..=5;
    init_producer_id_response: InitProducerIdResponse = InitProducerIdResponse, defaults: true, versions: 0..=5;
    add_partitions_to_txn_request: AddPartitionsToTxnRequest = AddPartitionsToTxnRequest, defaults: true,
        versions: 0..=5;
    add_partitions_to_txn_response: AddPartitionsToTxnResponse = AddPartitionsToTxnResponse, defaults: true,
        versions: 0..=5;
    add_offsets_to_txn_request: AddOffsetsToTxnRequest = AddOffsetsToTxnRequest, defaults: true, versions: 0..=4;
    add_offsets_to_txn_response: AddOffsetsToTxnResponse = AddOffsetsToTxnResponse, defaults: true, versions: 0..=4;
    end_txn_request: EndTxnRequest = EndTxnRequest, defaults: true, versions: 0..=5;
    end_txn_response: EndTxnResponse = EndTxnResponse, defaults: true, versions: 0..=5;
    write_txn_markers_request: WriteTxnMarkersRequest = WriteTxnMarkersRequest, defaults: true, versions: 1..=1;
    write_txn_markers_response: WriteTxnMarkersResponse = WriteTxnMarkersResponse, defaults: true, versions: 1..=1;
    txn_offset_commit_request: TxnOffsetCommitRequest = TxnOffsetCommitRequest, defaults: true, versions: 0..=5;
    txn_offset_commit_response: TxnOffsetCommitResponse = TxnOffsetCommitResponse, defaults: true, versions: 0..=5;
    describe_producers_request: DescribeProducersRequest = DescribeProducersRequest, defaults: true, versions: 0..=0;
    describe_producers_response: DescribeProducersResponse = DescribeProducersResponse, defaults: true,
        versions: 0..=0;
    describe_transactions_request: DescribeTransactionsRequest = DescribeTransactionsRequest, defaults: true,
        versions: 0..=0;
    describe_transactions_response: DescribeTransactionsResponse = DescribeTransactionsResponse, defaults: true,
        versions: 0..=0;
    list_transactions_request: ListTransactionsRequest = ListTransactionsRequest, defaults: true, versions: 0..=2;
    list_transactions_response: ListTransactionsResponse = ListTransactionsResponse, defaults: true, versions: 0..=2;
    describe_log_dirs_request: DescribeLogDirsRequest = DescribeLogDirsRequest, defaults: true, versions: 1..=4;
}

/// DescribeLogDirs responses carry Sluice's own tagged fields (tags 10000 and up, the cleaner's
/// state of a partition) that the oracle cannot know: checked with them at their defaults (not
/// written), then with them set, where the oracle must keep exactly those tags as unknown and
/// read everything else as ours says.
#[test]
fn describe_log_dirs_response() {
    let without_ours = |version, variant| {
        let mut sample = ours::DescribeLogDirsResponse::sample(version, variant);
        for partition in
            sample.results.iter_mut().flat_map(|r| r.topics.iter_mut()).flat_map(|t| t.partitions.iter_mut())
        {
            partition.cleaner_dirty_bytes = -1;
            partition.cleaner_cleanable_bytes = -1;
            partition.last_clean_ms = -1;
            partition.last_clean_end = -1;
        }
        sample
    };
    let checked = check::<ours::DescribeLogDirsResponse, kp::DescribeLogDirsResponse>(without_ours, true);
    assert_eq!(checked, (1..=4).collect::<Vec<i16>>());
    for version in 2..=4 {
        let sample = ours::DescribeLogDirsResponse::sample(version, 0);
        let mut bytes = BytesMut::new();
        sample.encode(&mut bytes, version).unwrap();
        let theirs = kp::DescribeLogDirsResponse::decode(&mut bytes.freeze(), version).unwrap();
        let mut partitions = 0;
        for partition in theirs.results.iter().flat_map(|r| r.topics.iter()).flat_map(|t| t.partitions.iter()) {
            let tags: Vec<i32> = partition.unknown_tagged_fields.keys().copied().collect();
            assert_eq!(tags, vec![10000, 10001, 10002, 10003], "v{version}");
            partitions += 1;
        }
        assert!(partitions > 0);
        let mut known = theirs.clone();
        for partition in
            known.results.iter_mut().flat_map(|r| r.topics.iter_mut()).flat_map(|t| t.partitions.iter_mut())
        {
            partition.unknown_tagged_fields.clear();
        }
        let mut ours_plain = BytesMut::new();
        without_ours(version, 0).encode(&mut ours_plain, version).unwrap();
        let mut theirs_plain = BytesMut::new();
        known.encode(&mut theirs_plain, version).unwrap();
        assert_eq!(ours_plain, theirs_plain, "v{version}: the oracle read the rest as ours wrote it");
    }
}

/// The oracle list above covers every API in the table.
#[test]
fn every_supported_api_has_an_oracle_test() {
    let source = include_str!("oracle.rs");
    for support in crate::protocol::SUPPORTED {
        let name = format!("{:?}Request = ", support.api_key);
        assert!(source.contains(&name), "no oracle test for {:?}", support.api_key);
    }
}

/// Tagged fields are written only when they differ from their default, so each side must agree
/// on every tagged field's default (byte comparisons cannot see them: a field at its default is
/// absent on both sides).
#[test]
fn tagged_field_defaults_match() {
    let theirs = kp::FetchRequest::default();
    let ours = ours::FetchRequest::default();
    assert_eq!(ours.cluster_id.as_deref(), theirs.cluster_id.as_deref());

    let theirs = kp::fetch_response::PartitionData::default();
    let ours = ours::FetchResponsePartition::default();
    assert_eq!(ours.diverging_epoch.epoch, theirs.diverging_epoch.epoch);
    assert_eq!(ours.diverging_epoch.end_offset, theirs.diverging_epoch.end_offset);
    assert_eq!(ours.current_leader.leader_id, theirs.current_leader.leader_id.0);
    assert_eq!(ours.current_leader.leader_epoch, theirs.current_leader.leader_epoch);
    assert_eq!(ours.snapshot_id.end_offset, theirs.snapshot_id.end_offset);
    assert_eq!(ours.snapshot_id.epoch, theirs.snapshot_id.epoch);

    let theirs = kp::ApiVersionsResponse::default();
    let ours = ours::ApiVersionsResponse::default();
    assert_eq!(ours.supported_features.len(), theirs.supported_features.len());
    assert_eq!(ours.finalized_features_epoch, theirs.finalized_features_epoch);
    assert_eq!(ours.finalized_features.len(), theirs.finalized_features.len());
    assert_eq!(ours.zk_migration_ready, theirs.zk_migration_ready);

    let theirs = kp::create_topics_response::CreatableTopicResult::default();
    let ours = ours::CreateTopicsResponseTopic::default();
    assert_eq!(ours.topic_config_error_code, theirs.topic_config_error_code);
}

/// Every tagged field of every message is in `tagged_field_defaults_match`: the list below is
/// what the generated code has, so a new tagged field fails here until it is compared above.
#[test]
fn tagged_fields_are_all_compared() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/messages.rs"));
    let tagged: Vec<&str> = generated
        .lines()
        .filter_map(|line| line.trim().strip_prefix("#[doc = \" *Wire: "))
        .filter(|facts| facts.contains("tagged field"))
        .collect();
    // 9 of Kafka's, and Sluice's four DescribeLogDirs fields (checked in describe_log_dirs_response).
    assert_eq!(tagged.len(), 13, "tagged fields: {tagged:#?}");
}
