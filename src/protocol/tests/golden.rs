//! Hand-checked bytes for the versions the oracle no longer has (Kafka 4 dropped them, and the
//! `kafka-protocol` crate with it): CreateTopics v0-1, DeleteTopics v0, DescribeConfigs v0,
//! OffsetCommit v0-1, OffsetFetch v0 and WriteTxnMarkers v0. Each layout is written out field by
//! field from Kafka 3.9's message definitions.

use bytes::BytesMut;

use crate::protocol::Message;
use crate::protocol::messages::*;

/// Encodes `value` at `version`, compares with `expected`, and decodes `expected` back.
fn golden<M: Message>(value: &M, version: i16, expected: &[&[u8]]) {
    let expected: Vec<u8> = expected.concat();
    let mut encoded = BytesMut::new();
    value.encode(&mut encoded, version).unwrap();
    assert_eq!(&encoded[..], &expected[..], "{:?} v{version} encoding", M::API_KEY);
    let mut buf = BytesMut::from(&expected[..]);
    assert_eq!(&M::decode(&mut buf, version).unwrap(), value, "{:?} v{version} decoding", M::API_KEY);
    assert!(buf.is_empty());
}

const T: &[u8] = &[0, 1, b't'];
const NULL_STRING: &[u8] = &[0xff, 0xff];
const ONE: &[u8] = &[0, 0, 0, 1];
const NONE: &[u8] = &[0, 0, 0, 0];

#[test]
fn create_topics_v0_and_v1() {
    let request = CreateTopicsRequest {
        topics: vec![CreateTopicsRequestTopic {
            name: "t".into(),
            num_partitions: 3,
            replication_factor: 1,
            assignments: vec![],
            configs: vec![CreateTopicsRequestConfig { name: "k".into(), value: None }],
        }],
        timeout_ms: 1000,
        validate_only: false,
    };
    let topic: &[&[u8]] = &[ONE, T, &[0, 0, 0, 3], &[0, 1], NONE, ONE, &[0, 1, b'k'], NULL_STRING];
    golden(&request, 0, &[topic.concat().as_slice(), &[0, 0, 0x03, 0xe8]]);
    let request = CreateTopicsRequest { validate_only: true, ..request };
    golden(&request, 1, &[topic.concat().as_slice(), &[0, 0, 0x03, 0xe8], &[1]]);

    let response = CreateTopicsResponse {
        topics: vec![CreateTopicsResponseTopic { name: "t".into(), error_code: 36, ..Default::default() }],
        ..Default::default()
    };
    // v0: name and error code only; the error message (v1+) defaults to "".
    golden(&response, 0, &[ONE, T, &[0, 36]]);
    let response = CreateTopicsResponse {
        topics: vec![CreateTopicsResponseTopic {
            name: "t".into(),
            error_code: 36,
            error_message: None,
            ..Default::default()
        }],
        ..Default::default()
    };
    golden(&response, 1, &[ONE, T, &[0, 36], NULL_STRING]);
}

#[test]
fn delete_topics_v0() {
    let request =
        DeleteTopicsRequest { topic_names: vec!["a".into(), "b".into()], timeout_ms: 500, ..Default::default() };
    golden(&request, 0, &[&[0, 0, 0, 2], &[0, 1, b'a'], &[0, 1, b'b'], &[0, 0, 0x01, 0xf4]]);
    let response = DeleteTopicsResponse {
        responses: vec![DeleteTopicsResponseTopic { name: Some("a".into()), error_code: 3, ..Default::default() }],
        ..Default::default()
    };
    // v0 has no throttle time.
    golden(&response, 0, &[ONE, &[0, 1, b'a'], &[0, 3]]);
}

#[test]
fn describe_configs_v0() {
    let request = DescribeConfigsRequest {
        resources: vec![DescribeConfigsRequestResource {
            resource_type: 2,
            resource_name: "t".into(),
            configuration_keys: None,
        }],
        ..Default::default()
    };
    golden(&request, 0, &[ONE, &[2], T, &[0xff, 0xff, 0xff, 0xff]]);
    let response = DescribeConfigsResponse {
        throttle_time_ms: 7,
        results: vec![DescribeConfigsResponseResult {
            error_code: 0,
            error_message: None,
            resource_type: 2,
            resource_name: "t".into(),
            configs: vec![DescribeConfigsResponseConfig {
                name: "k".into(),
                value: Some("v".into()),
                read_only: false,
                is_default: true,
                is_sensitive: false,
                ..Default::default()
            }],
        }],
    };
    // v0 has is_default, and neither config_source nor synonyms.
    let config: &[&[u8]] = &[&[0, 1, b'k'], &[0, 1, b'v'], &[0], &[1], &[0]];
    golden(&response, 0, &[&[0, 0, 0, 7], ONE, &[0, 0], NULL_STRING, &[2], T, ONE, config.concat().as_slice()]);
}

#[test]
fn offset_commit_v0_and_v1() {
    let partition = OffsetCommitRequestPartition {
        partition_index: 0,
        committed_offset: 42,
        committed_metadata: None,
        ..Default::default()
    };
    let request = OffsetCommitRequest {
        group_id: "g".into(),
        topics: vec![OffsetCommitRequestTopic { name: "t".into(), partitions: vec![partition.clone()] }],
        ..Default::default()
    };
    let offset: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 42];
    golden(&request, 0, &[&[0, 1, b'g'], ONE, T, ONE, NONE, offset, NULL_STRING]);
    // v1: generation and member id, and a commit timestamp per partition.
    let request = OffsetCommitRequest {
        generation_id_or_member_epoch: 5,
        member_id: "m".into(),
        topics: vec![OffsetCommitRequestTopic {
            name: "t".into(),
            partitions: vec![OffsetCommitRequestPartition { commit_timestamp: 99, ..partition }],
        }],
        ..request
    };
    let timestamp: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 99];
    golden(
        &request,
        1,
        &[&[0, 1, b'g'], &[0, 0, 0, 5], &[0, 1, b'm'], ONE, T, ONE, NONE, offset, timestamp, NULL_STRING],
    );
    let response = OffsetCommitResponse {
        topics: vec![OffsetCommitResponseTopic {
            name: "t".into(),
            partitions: vec![OffsetCommitResponsePartition { partition_index: 1, error_code: 25 }],
        }],
        ..Default::default()
    };
    // No throttle time before v3.
    golden(&response, 0, &[ONE, T, ONE, ONE, &[0, 25]]);
    golden(&response, 1, &[ONE, T, ONE, ONE, &[0, 25]]);
}

#[test]
fn offset_fetch_v0() {
    let request = OffsetFetchRequest {
        group_id: "g".into(),
        topics: Some(vec![OffsetFetchRequestTopic { name: "t".into(), partition_indexes: vec![0, 1] }]),
        ..Default::default()
    };
    golden(&request, 0, &[&[0, 1, b'g'], ONE, T, &[0, 0, 0, 2], NONE, ONE]);
    // The topics array is not nullable before v2.
    let all = OffsetFetchRequest { topics: None, ..request };
    assert!(all.encode(&mut BytesMut::new(), 0).is_err());
    assert!(all.encode(&mut BytesMut::new(), 2).is_ok());

    let response = OffsetFetchResponse {
        topics: vec![OffsetFetchResponseTopic {
            name: "t".into(),
            partitions: vec![OffsetFetchResponsePartition {
                partition_index: 0,
                committed_offset: 42,
                metadata: Some(String::new()),
                error_code: 0,
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    // No throttle time, leader epoch or top-level error code in v0.
    golden(&response, 0, &[ONE, T, ONE, NONE, &[0, 0, 0, 0, 0, 0, 0, 42], &[0, 0], &[0, 0]]);
}

#[test]
fn write_txn_markers_v0() {
    let request = WriteTxnMarkersRequest {
        markers: vec![WriteTxnMarkersRequestMarker {
            producer_id: 7,
            producer_epoch: 2,
            transaction_result: true,
            topics: vec![WriteTxnMarkersRequestTopic { name: "t".into(), partition_indexes: vec![0, 1] }],
            coordinator_epoch: 5,
        }],
    };
    let producer_id: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 7];
    // Classic encodings throughout: int32 counts, int16 string lengths, no tagged sections.
    golden(&request, 0, &[ONE, producer_id, &[0, 2], &[1], ONE, T, &[0, 0, 0, 2], NONE, ONE, &[0, 0, 0, 5]]);
    // v1 has the same fields, flexible: compact counts and lengths (n + 1), empty tagged sections.
    let v1: &[&[u8]] =
        &[&[2], producer_id, &[0, 2], &[1], &[2], &[2, b't'], &[3], NONE, ONE, &[0], &[0, 0, 0, 5], &[0, 0]];
    golden(&request, 1, v1);

    let response = WriteTxnMarkersResponse {
        markers: vec![WriteTxnMarkersResponseMarker {
            producer_id: 7,
            topics: vec![WriteTxnMarkersResponseTopic {
                name: "t".into(),
                partitions: vec![WriteTxnMarkersResponsePartition { partition_index: 1, error_code: 47 }],
            }],
        }],
    };
    golden(&response, 0, &[ONE, producer_id, ONE, T, ONE, ONE, &[0, 47]]);
}
