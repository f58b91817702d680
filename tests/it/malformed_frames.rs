//! Bad input on a raw socket: each gets Kafka's error code, or only that connection is closed,
//! and the broker goes on serving everyone else. Requests are encoded by hand here, so these
//! tests do not trust the broker's own codec.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sluice::model::{BatchBuilder, Timestamp};

use crate::harness::Broker;

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(&broker.addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream
}

/// A request with header v1 (non-flexible): api key, version, correlation id, client id.
fn request(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&3i16.to_be_bytes());
    frame.extend_from_slice(b"raw");
    frame.extend_from_slice(body);
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    out
}

/// The next response frame, or None if the broker closed the connection.
fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut frame).ok()?;
    Some(frame)
}

fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

/// ApiVersions v0 on a fresh connection answers with error 0: the broker still serves.
fn still_serves(broker: &Broker) {
    let mut stream = connect(broker);
    stream.write_all(&request(18, 0, 77, &[])).expect("send");
    let frame = read_frame(&mut stream).expect("an ApiVersions response");
    assert_eq!(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]), 77);
    assert_eq!(i16::from_be_bytes([frame[4], frame[5]]), 0, "ApiVersions error code");
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().expect("2 bytes"))
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().expect("4 bytes"))
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    fn string(&mut self) -> String {
        let len = self.i16();
        String::from_utf8(self.take(len as usize).to_vec()).expect("utf8")
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn create_topic(broker: &Broker, name: &str) {
    // CreateTopics v0: [name, partitions, replication factor, [] assignments, [] configs], timeout.
    let mut body = 1i32.to_be_bytes().to_vec();
    string(&mut body, name);
    body.extend_from_slice(&2i32.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&10_000i32.to_be_bytes());
    let mut stream = connect(broker);
    stream.write_all(&request(19, 0, 1, &body)).expect("send");
    let frame = read_frame(&mut stream).expect("CreateTopics response");
    let mut r = Reader(&frame[4..]);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), name);
    assert_eq!(r.i16(), 0, "CreateTopics error");
}

/// Produce v3 of `records` to topic/partition; returns the partition's error code.
fn produce(broker: &Broker, topic: &str, partition: i32, records: &[u8]) -> i16 {
    let mut body = (-1i16).to_be_bytes().to_vec(); // transactional id: null
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(records.len() as i32).to_be_bytes());
    body.extend_from_slice(records);
    let mut stream = connect(broker);
    stream.write_all(&request(0, 3, 9, &body)).expect("send");
    let frame = read_frame(&mut stream).expect("a Produce response");
    let mut r = Reader(&frame);
    assert_eq!(r.i32(), 9, "correlation id");
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), topic);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.i32(), partition);
    let error = r.i16();
    let _base_offset = r.i64();
    error
}

fn batch(records: usize, value_bytes: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Timestamp(1_700_000_000_000));
    for i in 0..records {
        builder.push(
            Some(format!("k{i}").as_bytes()),
            Some(&vec![7u8; value_bytes]),
            Timestamp(1_700_000_000_000),
            &[],
        );
    }
    builder.build().to_vec()
}

fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn bad_frames_close_only_their_connection() {
    let mut broker = Broker::start(&["--cores", "2"]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("absurd length", vec![0x7f, 0xff, 0xff, 0xff]),
        ("negative length", vec![0xff, 0xff, 0xff, 0xfe]),
        ("frame shorter than a header", vec![0, 0, 0, 4, 0, 18, 0, 0]),
        ("client id longer than the frame", {
            let mut f = request(18, 0, 5, &[]);
            f[12..14].copy_from_slice(&500i16.to_be_bytes());
            f
        }),
        ("unknown api key", request(9999, 0, 5, &[])),
        ("unsupported Metadata version", request(3, 99, 5, &[])),
        ("garbage Produce body", request(0, 3, 5, &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3])),
        // 14 bytes in all: header (api 3, v1, correlation, null client id) and an array count
        // of 2^30 topics. Must be refused without allocating for them.
        ("2^30 array count in a 14-byte frame", {
            let mut f = vec![0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 5, 0xff, 0xff];
            f.extend_from_slice(&0x4000_0000i32.to_be_bytes());
            f
        }),
    ];
    for (what, bytes) in cases {
        let mut stream = connect(&broker);
        stream.write_all(&bytes).expect("send");
        // The broker may answer with an error first; either way it must not stay stuck and
        // must end the connection without a well-formed success.
        let response = read_frame(&mut stream);
        if let Some(frame) = &response {
            panic!("{what}: expected the connection to close, got a {}-byte response", frame.len());
        }
        assert!(closed(&mut stream), "{what}: connection still open");
        still_serves(&broker);
    }
    assert!(broker.is_running(), "the broker process survived every bad frame");
}

#[test]
fn an_unsupported_api_versions_version_gets_our_ranges() {
    let broker = Broker::start(&["--cores", "1"]);
    let mut stream = connect(&broker);
    stream.write_all(&request(18, 99, 42, &[])).expect("send");
    let frame = read_frame(&mut stream).expect("a v0 ApiVersions response");
    let mut r = Reader(&frame);
    assert_eq!(r.i32(), 42);
    assert_eq!(r.i16(), 35, "UNSUPPORTED_VERSION");
    let count = r.i32();
    let mut apis = Vec::new();
    for _ in 0..count {
        apis.push((r.i16(), r.i16(), r.i16()));
    }
    assert!(apis.iter().any(|&(key, min, max)| key == 18 && min == 0 && max >= 3), "{apis:?}");
    assert!(apis.iter().any(|&(key, _, max)| key == 1 && max >= 4), "Fetch >= 4 advertised: {apis:?}");
    still_serves(&broker);
}

#[test]
fn bad_batches_get_kafka_error_codes() {
    let broker = Broker::start(&["--cores", "2"]);
    create_topic(&broker, "checked");
    assert_eq!(produce(&broker, "checked", 0, &batch(3, 10)), 0, "a good batch");

    let mut crc = batch(3, 10);
    let last = crc.len() - 1;
    crc[last] ^= 1;
    assert_eq!(produce(&broker, "checked", 0, &crc), 2, "CRC mismatch: CORRUPT_MESSAGE");

    let mut magic = batch(3, 10);
    magic[16] = 1;
    assert_eq!(produce(&broker, "checked", 1, &magic), 87, "magic 1 in Produce v3: INVALID_RECORD");

    let mut count = batch(3, 10);
    count[57..61].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut count);
    assert_eq!(produce(&broker, "checked", 0, &count), 87, "record count mismatch: INVALID_RECORD");

    assert_eq!(produce(&broker, "checked", 0, &batch(3, 600_000)), 10, "oversized: MESSAGE_TOO_LARGE");
    assert_eq!(produce(&broker, "no-such-topic", 0, &batch(1, 1)), 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(produce(&broker, "checked", 7, &batch(1, 1)), 3, "unknown partition");
    let mut truncated = batch(3, 10);
    truncated.truncate(40);
    assert_eq!(produce(&broker, "checked", 0, &truncated), 2, "truncated batch: CORRUPT_MESSAGE");
    assert_eq!(produce(&broker, "checked", 0, &batch(2, 10)), 0, "and the partition still takes appends");
    still_serves(&broker);
}
