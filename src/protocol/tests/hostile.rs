//! Malicious and malformed input: lengths and counts that lie, nulls where none are allowed,
//! unknown tagged fields, and random bytes for every API and version. Decoding must fail fast,
//! without a large allocation, and never panic.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

use super::{cases, encode_request, encode_response, request, response};
use crate::protocol::messages::{DescribeClusterRequest, MetadataRequest};
use crate::protocol::{
    ApiKey, DecodeError, FrameLimits, Message, RequestHeader, SUPPORTED, decode_request_body, decode_response_body,
    split_frame,
};

const MAX_REQUEST_BYTES: u32 = 100 * 1024 * 1024;

#[test]
fn huge_array_count_in_a_tiny_frame_fails_before_allocating() {
    // A 14-byte Metadata v1 request: header (api 3, version 1, correlation id 1, null client
    // id) and a topics count of 2^30, which would be 24 GiB of `MetadataRequestTopic`s.
    let mut wire = BytesMut::new();
    wire.put_i32(14);
    wire.put_slice(&[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff]);
    wire.put_i32(0x4000_0000);
    let mut frame = split_frame(&mut wire, FrameLimits::requests(MAX_REQUEST_BYTES)).unwrap().unwrap();
    assert_eq!(frame.len(), 14);
    let header = RequestHeader::decode(&mut frame).unwrap();
    let err = decode_request_body(header.api_key, header.api_version, &mut frame).unwrap_err();
    assert_eq!(err, DecodeError::ArrayTooLong { count: 0x4000_0000, element_bytes_min: 2, remaining: 0 });
}

#[test]
fn array_counts_are_checked_against_the_smallest_element() {
    // Metadata v10 topics are a uuid and a compact nullable string: at least 17 bytes each.
    // Two of them cannot fit in 20 bytes, whatever those bytes are.
    let mut buf = BytesMut::new();
    buf.put_u8(3); // compact count: 2 elements
    buf.put_slice(&[0; 20]);
    let err = MetadataRequest::decode(&mut buf, 10).unwrap_err();
    assert_eq!(err, DecodeError::ArrayTooLong { count: 2, element_bytes_min: 18, remaining: 20 });
}

#[test]
fn lying_lengths_are_errors() {
    let cases: [(i16, &[u8], DecodeError); 4] = [
        // A topic name claiming 300 bytes with 3 left.
        (4, &[0, 0, 0, 1, 0x01, 0x2c, b'a', b'b', b'c'], DecodeError::Truncated { needed: 300, remaining: 3 }),
        // A string length of -2.
        (4, &[0, 0, 0, 1, 0xff, 0xfe], DecodeError::InvalidLength(-2)),
        // An array count of -2.
        (1, &[0xff, 0xff, 0xff, 0xfe], DecodeError::InvalidLength(-2)),
        // A compact count whose varint runs over 5 bytes.
        (12, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], DecodeError::InvalidVarint),
    ];
    for (version, bytes, expected) in cases {
        assert_eq!(MetadataRequest::decode(&mut BytesMut::from(bytes), version), Err(expected), "v{version} {bytes:?}");
    }
}

#[test]
fn nulls_where_not_allowed_are_errors() {
    // Metadata v0 topics may not be null (v1+ may).
    let null_array = [0xff, 0xff, 0xff, 0xff];
    assert_eq!(
        MetadataRequest::decode(&mut BytesMut::from(&null_array[..]), 0),
        Err(DecodeError::UnexpectedNull { field: "MetadataRequest.topics" })
    );
    assert_eq!(MetadataRequest::decode(&mut BytesMut::from(&null_array[..]), 1).unwrap().topics, None);
}

#[test]
fn invalid_utf8_is_an_error() {
    let bytes = [0, 0, 0, 1, 0, 2, 0xc3, 0x28];
    assert_eq!(MetadataRequest::decode(&mut BytesMut::from(&bytes[..]), 1), Err(DecodeError::InvalidUtf8));
}

#[test]
fn unknown_tagged_fields_are_skipped() {
    // DescribeCluster v0: include_cluster_authorized_operations = true, then two tagged fields
    // this codec does not know (tags 9 and 10, two and zero bytes).
    let bytes = [1, 2, 9, 2, 0xaa, 0xbb, 10, 0];
    let request = DescribeClusterRequest::decode(&mut BytesMut::from(&bytes[..]), 0).unwrap();
    assert!(request.include_cluster_authorized_operations);
    // A tagged field whose size runs past the frame is an error.
    let bytes = [1, 1, 9, 5, 0xaa];
    assert!(DescribeClusterRequest::decode(&mut BytesMut::from(&bytes[..]), 0).is_err());
}

#[test]
fn tagged_fields_at_their_default_are_not_written() {
    use crate::protocol::messages::{FetchResponse, FetchResponsePartition, FetchResponseTopic};
    let partition = FetchResponsePartition { partition_index: 0, ..Default::default() };
    let mut response = FetchResponse {
        responses: vec![FetchResponseTopic { topic: "t".into(), partitions: vec![partition] }],
        ..Default::default()
    };
    let mut bytes = BytesMut::new();
    response.encode(&mut bytes, 12).unwrap();
    // The partition ends with null records (0) and an empty tagged section (0), then the topic's
    // and the response's tagged sections.
    assert!(bytes.ends_with(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), "{bytes:?}");
    response.responses[0].partitions[0].current_leader.leader_id = 3;
    let mut with_leader = BytesMut::new();
    response.encode(&mut with_leader, 12).unwrap();
    // One tagged field: tag 1, size 9: leader id 3, leader epoch -1 and the struct's own (empty)
    // tagged section.
    let leader = [1, 1, 9, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0];
    assert!(with_leader.windows(leader.len()).any(|w| w == leader), "{with_leader:?}");
}

/// Every supported (API, version), for proptest to pick from.
fn api_versions() -> Vec<(ApiKey, i16)> {
    SUPPORTED.iter().flat_map(|s| (s.version_min..=s.version_max).map(move |v| (s.api_key, v))).collect()
}

/// Valid encodings of every sample, for proptest to mutate.
fn encodings() -> Vec<(ApiKey, i16, bool, BytesMut)> {
    let mut out = Vec::new();
    for (api_key, version, variant) in cases() {
        out.push((api_key, version, true, encode_request(&request(api_key, version, variant), version)));
        out.push((api_key, version, false, encode_response(&response(api_key, version, variant), version)));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        which in any::<prop::sample::Index>(),
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let all = api_versions();
        let (api_key, version) = all[which.index(all.len())];
        let _ = decode_request_body(api_key, version, &mut BytesMut::from(&bytes[..]));
        let _ = decode_response_body(api_key, version, &mut BytesMut::from(&bytes[..]));
    }

    #[test]
    fn random_frames_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut wire = BytesMut::from(&bytes[..]);
        while let Ok(Some(mut frame)) = split_frame(&mut wire, FrameLimits::requests(MAX_REQUEST_BYTES)) {
            if let Ok(header) = RequestHeader::decode(&mut frame) {
                let _ = decode_request_body(header.api_key, header.api_version, &mut frame);
            }
        }
    }

    #[test]
    fn mutated_encodings_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let all = encodings();
        let (api_key, version, is_request, bytes) = &all[which.index(all.len())];
        let mut bytes = bytes.clone();
        if bytes.is_empty() {
            return Ok(());
        }
        for (at, value) in mutations {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        let decoded = if *is_request {
            decode_request_body(*api_key, *version, &mut bytes).map(|_| ())
        } else {
            decode_response_body(*api_key, *version, &mut bytes).map(|_| ())
        };
        let _ = decoded;
    }
}
