//! Request decoding with our codec, on the server's path: `split_frame` off a read buffer, then
//! `RequestHeader::decode`, then `decode_request_body`, then dropping what was decoded. Cases:
//! Produce v9 with one batch of about 1 KiB, 16 KiB or 1 MiB, Produce v9 with 16 partitions of
//! a 1 KiB batch each, Fetch v12 for 16 partitions of one topic, and Metadata v12 for 4 topics.
//! Criterion prints requests/s and bytes/s (`Throughput::ElementsAndBytes`, the bytes being the
//! whole frame with its length prefix).
//!
//! Record sets are split off the frame, not copied, so a Produce request costs about the same
//! whatever the size of its batch: compare the three single-batch cases. `copy_reference`
//! copies the 1 MiB Produce frame once (allocate, memcpy, free), for what a copying decoder
//! would pay on top. Setup checks that every decoded record set points into the frame.
//!
//! Every iteration decodes the same frame from the same memory: the bench writes it into a
//! buffer once, and between iterations (every handle split off it having been dropped) takes
//! the buffer back without copying (`BytesMut::try_reclaim`), which costs a few ns per
//! iteration.
//!
//! Run: `cargo bench --bench request_decode` (about a minute after the build; add `-- produce` etc.
//! to filter).

use std::hint::black_box;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice::limits::REQUEST_BYTES_MAX_DEFAULT;
use sluice::model::{Chunk, Timestamp};
use sluice::protocol::messages::{
    FetchRequest, FetchRequestPartition, FetchRequestTopic, MetadataRequest, MetadataRequestTopic, ProduceRequest,
    ProduceRequestPartition, ProduceRequestTopic,
};
use sluice::protocol::{
    ApiKey, FrameLimits, Message, RecordSet, RequestBody, RequestHeader, decode_request_body, encode_request_frame,
    split_frame,
};
use sluice::testing::batch_of;

const TOPIC: &str = "bench-topic";
/// Partitions in the multi-partition Produce case and in the Fetch case.
const PARTITIONS: i32 = 16;
/// Topics in the Metadata case.
const METADATA_TOPICS: usize = 4;

fn fail(what: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("request_decode: {what}: {err}");
    std::process::exit(1)
}

/// A valid batch within a few bytes of `target` bytes, of records of about 1000 bytes (as in
/// `batch_validate`).
fn batch_near(target: usize) -> BytesMut {
    let records = (target / 1024).max(1);
    let timestamp = Timestamp(1_700_000_000_000);
    let guess = (target / records).saturating_sub(100).max(8);
    let first = batch_of(records, guess, 7, timestamp);
    let overhead = first.len() - records * guess;
    let value = (target.saturating_sub(overhead) / records).max(8);
    batch_of(records, value, 7, timestamp)
}

/// The whole frame, length prefix included, as a client would send it.
fn frame<M: Message>(api_key: ApiKey, api_version: i16, body: &M) -> Vec<u8> {
    let header = RequestHeader { api_key, api_version, correlation_id: 42, client_id: Some("bench-client".into()) };
    let pieces = match encode_request_frame(&header, body) {
        Ok(pieces) => pieces,
        Err(e) => fail(&format!("encoding a {api_key:?} v{api_version} request"), e),
    };
    let mut out = Vec::new();
    for piece in pieces {
        match piece {
            Chunk::Bytes(bytes) => out.put_slice(&bytes),
            Chunk::File(_) => fail("encoding a request", "file chunk"),
        }
    }
    out
}

/// A Produce v9 request (acks=all) with one batch of about `batch_bytes` for each of
/// `partitions` partitions of one topic.
fn produce(partitions: i32, batch_bytes: usize) -> Vec<u8> {
    let batch = batch_near(batch_bytes);
    let partition_data = (0..partitions)
        .map(|index| ProduceRequestPartition { index, records: Some(RecordSet::Owned(batch.clone())) })
        .collect();
    let body = ProduceRequest {
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![ProduceRequestTopic { name: TOPIC.into(), partition_data }],
        ..ProduceRequest::default()
    };
    frame(ApiKey::Produce, 9, &body)
}

/// A consumer's Fetch v12 request for `partitions` partitions of one topic.
fn fetch(partitions: i32) -> Vec<u8> {
    let partitions = (0..partitions)
        .map(|partition| FetchRequestPartition {
            partition,
            current_leader_epoch: 0,
            fetch_offset: 1_000_000 + i64::from(partition) * 7919,
            partition_max_bytes: 1024 * 1024,
            ..FetchRequestPartition::default()
        })
        .collect();
    let body = FetchRequest {
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes: 50 * 1024 * 1024,
        topics: vec![FetchRequestTopic { topic: TOPIC.into(), partitions }],
        ..FetchRequest::default()
    };
    frame(ApiKey::Fetch, 12, &body)
}

/// A Metadata v12 request for `topics` topics by name.
fn metadata(topics: usize) -> Vec<u8> {
    let topics = (0..topics)
        .map(|i| MetadataRequestTopic { name: Some(format!("{TOPIC}-{i}")), ..MetadataRequestTopic::default() })
        .collect();
    let body = MetadataRequest { topics: Some(topics), ..MetadataRequest::default() };
    frame(ApiKey::Metadata, 12, &body)
}

/// One request frame in a buffer that the timed loop splits it off again and again, like the
/// server's read buffer, without ever copying it.
struct FrameSource {
    buf: BytesMut,
    /// Where the buffer's memory starts (the frame's first byte), to check each reclaim.
    start: *const u8,
    len: usize,
}

impl FrameSource {
    fn new(frame: &[u8]) -> Self {
        // Exactly the frame's size: `try_reclaim` then has to move back to the start.
        let mut buf = BytesMut::with_capacity(frame.len());
        buf.put_slice(frame);
        let start = buf.as_ptr();
        Self { buf, start, len: frame.len() }
    }

    /// The frame, without its length prefix, split off the buffer by `split_frame`.
    fn next(&mut self) -> BytesMut {
        if self.buf.is_empty() {
            self.rewind();
        }
        match split_frame(&mut self.buf, FrameLimits::requests(REQUEST_BYTES_MAX_DEFAULT)) {
            Ok(Some(frame)) => frame,
            Ok(None) => fail("split_frame", "incomplete frame"),
            Err(e) => fail("split_frame", e),
        }
    }

    /// Makes the buffer hold the frame again, in the same memory.
    fn rewind(&mut self) {
        // Every handle split off the buffer (the last frame, and what was decoded from it) has
        // been dropped, so `buf` is the only owner of the memory and takes it back from its
        // start; being empty, it copies nothing.
        if !self.buf.try_reclaim(self.len) || self.buf.as_ptr() != self.start || self.buf.capacity() < self.len {
            fail("reclaiming the frame buffer", "still shared, or not at its start");
        }
        // SAFETY: `buf` covers, from its start (checked above), the allocation the frame was
        // written to in `new`, and nothing has written to that memory since: decoding only
        // reads, advances and splits, and everything decoded was dropped unmodified. So its
        // first `len` bytes are initialised and still hold the frame.
        unsafe { self.buf.set_len(self.len) }
    }

    /// Whether `bytes` lies inside the frame's memory.
    fn contains(&self, bytes: &[u8]) -> bool {
        let (start, end) = (self.start as usize, self.start as usize + self.len);
        let (first, last) = (bytes.as_ptr() as usize, bytes.as_ptr() as usize + bytes.len());
        start <= first && last <= end
    }
}

/// Decodes a request frame as the server does.
fn decode(mut frame: BytesMut) -> (RequestHeader, RequestBody) {
    let header = match RequestHeader::decode(&mut frame) {
        Ok(header) => header,
        Err(e) => fail("decoding the header", e),
    };
    match decode_request_body(header.api_key, header.api_version, &mut frame) {
        Ok(body) if frame.is_empty() => (header, body),
        Ok(_) => fail("decoding the body", format!("{} bytes left over", frame.len())),
        Err(e) => fail("decoding the body", e),
    }
}

/// Decodes the frame once outside the loop: it must decode, and every record set must have
/// stayed in the frame's memory.
fn check(source: &mut FrameSource, label: &str) {
    let (_, body) = decode(source.next());
    if let RequestBody::Produce(produce) = &body {
        for partition in produce.topic_data.iter().flat_map(|topic| &topic.partition_data) {
            let Some(bytes) = partition.records.as_ref().and_then(RecordSet::as_slice) else {
                fail(label, "a record set is missing or external")
            };
            if !source.contains(bytes) {
                fail(label, "a record set was copied out of the frame");
            }
        }
    }
}

fn request_decode(c: &mut Criterion) {
    let cases = [
        ("produce_v9", "1x1KiB".to_string(), produce(1, 1024)),
        ("produce_v9", "1x16KiB".to_string(), produce(1, 16 * 1024)),
        ("produce_v9", "1x1MiB".to_string(), produce(1, 1024 * 1024)),
        ("produce_v9", format!("{PARTITIONS}x1KiB"), produce(PARTITIONS, 1024)),
        ("fetch_v12", format!("{PARTITIONS}_partitions"), fetch(PARTITIONS)),
        ("metadata_v12", format!("{METADATA_TOPICS}_topics"), metadata(METADATA_TOPICS)),
    ];
    let mut group = c.benchmark_group("request_decode");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for (api, label, frame) in &cases {
        let mut source = FrameSource::new(frame);
        check(&mut source, &format!("{api}/{label}"));
        group.throughput(Throughput::ElementsAndBytes { elements: 1, bytes: frame.len() as u64 });
        group.bench_function(BenchmarkId::new(*api, label), |b| b.iter(|| decode(source.next())));
    }
    if let Some((_, label, frame)) = cases.iter().find(|(_, label, _)| label == "1x1MiB") {
        group.throughput(Throughput::ElementsAndBytes { elements: 1, bytes: frame.len() as u64 });
        group.bench_function(BenchmarkId::new("copy_reference", format!("produce_v9_{label}")), |b| {
            b.iter(|| BytesMut::from(black_box(&frame[..])))
        });
    }
    group.finish();
}

criterion_group!(benches, request_decode);
criterion_main!(benches);
