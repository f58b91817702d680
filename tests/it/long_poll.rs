//! Long-poll fetches (`min_bytes`, `max_wait_ms`) over partitions that live on different shards,
//! with Fetch v4 encoded by hand so that one request covers both partitions (librdkafka and the
//! Java client may split a consumer's first fetches per partition). Each shard waits for its own
//! partitions; the broker must add their bytes up against `min_bytes`.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::harness::Broker;
use crate::raw::{Reader, batch, connect, create_topic, produce, produce_to, read_frame, request, string};

/// Bytes of records a Fetch v4 answered per partition, in request order.
fn fetch(broker: &Broker, topic: &str, offsets: &[(i32, i64)], min_bytes: i32, max_wait_ms: i32) -> Vec<usize> {
    let answers = fetch_codes(broker, topic, offsets, min_bytes, max_wait_ms);
    assert!(answers.iter().all(|&(error, _)| error == 0), "partition errors: {answers:?}");
    answers.into_iter().map(|(_, bytes)| bytes).collect()
}

/// (error code, bytes of records) a Fetch v4 answered per partition, in request order; no
/// partitions at all when `offsets` is empty.
fn fetch_codes(
    broker: &Broker,
    topic: &str,
    offsets: &[(i32, i64)],
    min_bytes: i32,
    max_wait_ms: i32,
) -> Vec<(i16, usize)> {
    let mut body = (-1i32).to_be_bytes().to_vec(); // replica id
    body.extend_from_slice(&max_wait_ms.to_be_bytes());
    body.extend_from_slice(&min_bytes.to_be_bytes());
    body.extend_from_slice(&(16i32 << 20).to_be_bytes()); // max bytes
    body.push(0); // isolation level: read uncommitted
    let topics = i32::from(!offsets.is_empty());
    body.extend_from_slice(&topics.to_be_bytes());
    if topics == 1 {
        string(&mut body, topic);
        body.extend_from_slice(&(offsets.len() as i32).to_be_bytes());
    }
    for &(partition, offset) in offsets {
        body.extend_from_slice(&partition.to_be_bytes());
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&(1i32 << 20).to_be_bytes()); // partition max bytes
    }
    let mut stream = connect(broker);
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    stream.write_all(&request(1, 4, 7, &body)).expect("send");
    let frame = read_frame(&mut stream).expect("a Fetch response");
    let mut r = Reader(&frame);
    assert_eq!(r.i32(), 7, "correlation id");
    r.i32(); // throttle time
    let mut out = Vec::new();
    if r.i32() == 0 {
        return out;
    }
    assert_eq!(r.string(), topic);
    let count = r.i32();
    for _ in 0..count {
        r.i32(); // partition
        let error = r.i16();
        r.i64(); // high watermark
        r.i64(); // last stable offset
        let aborted = r.i32();
        assert!(aborted <= 0, "no transactions here");
        let len = r.i32();
        out.push((error, usize::try_from(len).unwrap_or(0)));
        r.take(usize::try_from(len).unwrap_or(0));
    }
    out
}

#[test]
fn min_bytes_adds_up_over_shards() {
    let broker = Broker::start(&["--cores", "2"]);
    // Two partitions on a two-shard broker: one on each shard.
    create_topic(&broker, "spread");
    let one = batch(1, 600);
    let min_bytes = i32::try_from(one.len() * 3 / 2).unwrap();
    assert_eq!(produce(&broker, "spread", 0, &one), 0);
    assert_eq!(produce(&broker, "spread", 1, &one), 0);

    // Each shard holds less than min_bytes, both together more: answered without waiting out
    // the 30 s.
    let started = Instant::now();
    let got = fetch(&broker, "spread", &[(0, 0), (1, 0)], min_bytes, 30_000);
    assert_eq!(got, vec![one.len(), one.len()]);
    assert!(started.elapsed() < Duration::from_secs(15), "waited {:?} with enough bytes", started.elapsed());

    // The data arrives during the wait, one batch on each shard, a second apart: the answer
    // comes once both are in, with both.
    let addr = broker.addr.clone();
    let (batch0, batch1) = (one.clone(), one.clone());
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(produce_to(&addr, "spread", 0, &batch0).0, 0);
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(produce_to(&addr, "spread", 1, &batch1).0, 0);
    });
    let started = Instant::now();
    let got = fetch(&broker, "spread", &[(0, 1), (1, 1)], min_bytes, 30_000);
    late.join().unwrap();
    assert_eq!(got, vec![one.len(), one.len()]);
    assert!(started.elapsed() >= Duration::from_millis(1500), "answered before the second batch");
    assert!(started.elapsed() < Duration::from_secs(15), "waited {:?} once both were in", started.elapsed());

    // Too little anywhere: the fetch answers at its max wait, with what there is.
    let started = Instant::now();
    let got = fetch(&broker, "spread", &[(0, 0), (1, 0)], 64 << 20, 1_500);
    assert_eq!(got, vec![2 * one.len(), 2 * one.len()]);
    assert!(started.elapsed() >= Duration::from_millis(1400), "answered before max wait");

    // The broker still serves quickly after fetches that were cut short by their clients.
    for _ in 0..8 {
        let mut stream = connect(&broker);
        let mut body = (-1i32).to_be_bytes().to_vec();
        body.extend_from_slice(&30_000i32.to_be_bytes());
        body.extend_from_slice(&(64i32 << 20).to_be_bytes());
        body.extend_from_slice(&(16i32 << 20).to_be_bytes());
        body.push(0);
        body.extend_from_slice(&1i32.to_be_bytes());
        string(&mut body, "spread");
        body.extend_from_slice(&2i32.to_be_bytes());
        for partition in 0..2i32 {
            body.extend_from_slice(&partition.to_be_bytes());
            body.extend_from_slice(&0i64.to_be_bytes());
            body.extend_from_slice(&(1i32 << 20).to_be_bytes());
        }
        stream.write_all(&request(1, 4, 8, &body)).expect("send");
        drop(stream);
    }
    let started = Instant::now();
    let got = fetch(&broker, "spread", &[(0, 0), (1, 0)], 1, 30_000);
    assert_eq!(got, vec![2 * one.len(), 2 * one.len()]);
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn long_polls_that_cannot_be_satisfied_answer_without_holding_the_shard() {
    let broker = Broker::start(&["--cores", "2"]);
    create_topic(&broker, "edges");
    let one = batch(1, 100);
    assert_eq!(produce(&broker, "edges", 0, &one), 0);

    // A partition that does not exist beside one that does: the error goes out at once, as it
    // did before the shards waited on their own, not after the 30 s wait.
    let started = Instant::now();
    let got = fetch_codes(&broker, "edges", &[(0, 1), (7, 0)], 1 << 20, 30_000);
    assert_eq!(got[1].0, 3, "UNKNOWN_TOPIC_OR_PARTITION for partition 7: {got:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "waited {:?} with an error", started.elapsed());

    // A long poll over no partitions waits out its time without holding its shard: a produce
    // sent meanwhile is answered at once.
    let addr = broker.addr.clone();
    let batch = one.clone();
    let other = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        assert_eq!(produce_to(&addr, "edges", 1, &batch).0, 0);
        started.elapsed()
    });
    let started = Instant::now();
    assert!(fetch_codes(&broker, "edges", &[], 1, 3_000).is_empty());
    assert!(started.elapsed() >= Duration::from_millis(2_900), "an empty long poll waits its max wait");
    let produce_took = other.join().unwrap();
    assert!(produce_took < Duration::from_secs(2), "a produce took {produce_took:?} beside an empty long poll");
}
