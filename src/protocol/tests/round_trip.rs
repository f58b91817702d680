//! Ours → ours: every API, every version, every sample variant encodes and decodes back to the
//! same value; every proper prefix of an encoding is an error, never a panic.

use bytes::{BufMut, BytesMut};

use super::{cases, encode_request, encode_response, request, response};
use crate::model::Chunk;
use crate::protocol::{Encoder, decode_request_body, decode_response_body};

#[test]
fn every_request_round_trips() {
    for (api_key, version, variant) in cases() {
        let body = request(api_key, version, variant);
        let bytes = encode_request(&body, version);
        let mut buf = bytes.clone();
        let decoded = decode_request_body(api_key, version, &mut buf)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version} variant {variant}: {e}"));
        assert!(buf.is_empty(), "{api_key:?} v{version}: {} bytes left", buf.len());
        assert_eq!(decoded, body, "{api_key:?} v{version} variant {variant}");
        assert_eq!(encode_request(&decoded, version), bytes);
    }
}

#[test]
fn every_response_round_trips() {
    for (api_key, version, variant) in cases() {
        let body = response(api_key, version, variant);
        let bytes = encode_response(&body, version);
        let mut buf = bytes.clone();
        let decoded = decode_response_body(api_key, version, &mut buf)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version} variant {variant}: {e}"));
        assert!(buf.is_empty(), "{api_key:?} v{version}: {} bytes left", buf.len());
        assert_eq!(decoded, body, "{api_key:?} v{version} variant {variant}");
    }
}

#[test]
fn pieces_and_contiguous_encodings_agree() {
    for (api_key, version, variant) in cases() {
        let body = response(api_key, version, variant);
        let mut enc = Encoder::pieces();
        body.encode_into(&mut enc, version).unwrap();
        let mut joined = BytesMut::new();
        for piece in enc.into_pieces() {
            let Chunk::Bytes(bytes) = piece else { panic!("no file ranges in samples") };
            joined.put_slice(&bytes);
        }
        assert_eq!(joined, encode_response(&body, version), "{api_key:?} v{version}");
    }
}

#[test]
fn every_proper_prefix_is_an_error() {
    for (api_key, version, variant) in cases() {
        let bytes = encode_request(&request(api_key, version, variant), version);
        for len in 0..bytes.len() {
            let mut prefix = BytesMut::from(&bytes[..len]);
            assert!(
                decode_request_body(api_key, version, &mut prefix).is_err(),
                "{api_key:?} v{version} request[..{len}]"
            );
        }
        let bytes = encode_response(&response(api_key, version, variant), version);
        for len in 0..bytes.len() {
            let mut prefix = BytesMut::from(&bytes[..len]);
            assert!(
                decode_response_body(api_key, version, &mut prefix).is_err(),
                "{api_key:?} v{version} response[..{len}]"
            );
        }
    }
}

#[test]
fn records_decode_without_copying() {
    use crate::protocol::messages::{ProduceRequest, ProduceRequestPartition, ProduceRequestTopic};
    use crate::protocol::{Message, RecordSet};
    let batch = BytesMut::from(&b"0123456789abcdef"[..]);
    let body = ProduceRequest {
        acks: -1,
        timeout_ms: 1000,
        topic_data: vec![ProduceRequestTopic {
            name: "t".into(),
            partition_data: vec![ProduceRequestPartition { index: 0, records: Some(RecordSet::Owned(batch.clone())) }],
        }],
        ..ProduceRequest::default()
    };
    let mut frame = BytesMut::new();
    body.encode(&mut frame, 9).unwrap();
    let frame_start = frame.as_ptr() as usize;
    let frame_end = frame_start + frame.len();
    let decoded = ProduceRequest::decode(&mut frame, 9).unwrap();
    let Some(RecordSet::Owned(records)) = &decoded.topic_data[0].partition_data[0].records else { panic!() };
    assert_eq!(records, &batch);
    let at = records.as_ptr() as usize;
    assert!(frame_start <= at && at + records.len() <= frame_end, "records were copied out of the frame");
}

#[test]
fn a_reused_struct_is_one_type_in_both_places() {
    // AddPartitionsToTxn's v0-3 topics and v4+ transactions' topics are the same struct (a field
    // may reuse a struct defined earlier in its message, `schema/codegen.rs`).
    use crate::protocol::Message;
    use crate::protocol::messages::{
        AddPartitionsToTxnRequest, AddPartitionsToTxnRequestTopic, AddPartitionsToTxnRequestTransaction,
    };
    let topics = vec![AddPartitionsToTxnRequestTopic { name: "t".into(), partitions: vec![0, 1] }];
    let client = AddPartitionsToTxnRequest {
        v3_and_below_transactional_id: "x".into(),
        v3_and_below_producer_id: 1,
        v3_and_below_topics: topics.clone(),
        ..Default::default()
    };
    let broker = AddPartitionsToTxnRequest {
        transactions: vec![AddPartitionsToTxnRequestTransaction {
            transactional_id: client.v3_and_below_transactional_id.clone(),
            producer_id: client.v3_and_below_producer_id,
            producer_epoch: client.v3_and_below_producer_epoch,
            verify_only: true,
            topics: client.v3_and_below_topics.clone(),
        }],
        ..Default::default()
    };
    for (request, version) in [(&client, 3), (&broker, 4)] {
        let mut bytes = BytesMut::new();
        request.encode(&mut bytes, version).unwrap();
        assert_eq!(&AddPartitionsToTxnRequest::decode(&mut bytes, version).unwrap(), request);
    }
    assert_eq!(broker.transactions[0].topics, topics);
}
