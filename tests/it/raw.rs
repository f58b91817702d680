//! Kafka requests encoded by hand on a raw socket, so that tests need not trust the broker's own
//! codec.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sluice::model::{BatchBuilder, Timestamp};

use crate::harness::Broker;

pub(crate) fn connect(broker: &Broker) -> TcpStream {
    connect_to(&broker.addr)
}

pub(crate) fn connect_to(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream
}

/// A request with header v1 (non-flexible): api key, version, correlation id, client id.
pub(crate) fn request(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
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
pub(crate) fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut frame).ok()?;
    Some(frame)
}

pub(crate) fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

/// ApiVersions v0 on a fresh connection answers with error 0: the broker still serves.
pub(crate) fn still_serves(broker: &Broker) {
    let mut stream = connect(broker);
    stream.write_all(&request(18, 0, 77, &[])).expect("send");
    let frame = read_frame(&mut stream).expect("an ApiVersions response");
    assert_eq!(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]), 77);
    assert_eq!(i16::from_be_bytes([frame[4], frame[5]]), 0, "ApiVersions error code");
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    pub(crate) fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    pub(crate) fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().expect("2 bytes"))
    }
    pub(crate) fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().expect("4 bytes"))
    }
    pub(crate) fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    pub(crate) fn string(&mut self) -> String {
        let len = self.i16();
        String::from_utf8(self.take(len as usize).to_vec()).expect("utf8")
    }
}

pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn create_topic(broker: &Broker, name: &str) {
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
pub(crate) fn produce(broker: &Broker, topic: &str, partition: i32, records: &[u8]) -> i16 {
    produce_at(broker, topic, partition, records).0
}

/// Produce v3 of `records` (acks=all) to topic/partition; returns the error code and base offset.
pub(crate) fn produce_at(broker: &Broker, topic: &str, partition: i32, records: &[u8]) -> (i16, i64) {
    produce_to(&broker.addr, topic, partition, records)
}

/// [`produce_at`] to the broker at `addr`.
pub(crate) fn produce_to(addr: &str, topic: &str, partition: i32, records: &[u8]) -> (i16, i64) {
    let mut body = (-1i16).to_be_bytes().to_vec(); // transactional id: null
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(records.len() as i32).to_be_bytes());
    body.extend_from_slice(records);
    let mut stream = connect_to(addr);
    stream.write_all(&request(0, 3, 9, &body)).expect("send");
    let frame = read_frame(&mut stream).expect("a Produce response");
    let mut r = Reader(&frame);
    assert_eq!(r.i32(), 9, "correlation id");
    assert_eq!(r.i32(), 1);
    assert_eq!(r.string(), topic);
    assert_eq!(r.i32(), 1);
    assert_eq!(r.i32(), partition);
    let error = r.i16();
    let base_offset = r.i64();
    (error, base_offset)
}

pub(crate) fn batch(records: usize, value_bytes: usize) -> Vec<u8> {
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

pub(crate) fn fix_crc(batch: &mut [u8]) {
    let crc = sluice::model::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}
