//! The native client (`sluice::client`) against the real broker: admin, connection errors,
//! produce and consume, compression with every codec (to and from confluent-kafka, kafka-python
//! and kcat), and pipelined fetches.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice::client::{
    Acks, Admin, Client, ClientConfig, ClientError, Connection, ConnectionConfig, Consumer, ConsumerConfig,
    ConsumerRecord, NewTopic, OffsetSpec, Producer, ProducerConfig, ProducerRecord, SeekTo,
};
use sluice::model::{BatchIter, CompressionType};
use sluice::protocol::RecordSet;
use sluice::protocol::messages::{FetchRequest, FetchRequestPartition, FetchRequestTopic};
use sluice::testing::run_on_shard;

use crate::harness::{Broker, compat_scenario};

/// Key and value of each record, by partition, in offset order.
type PerPartition = BTreeMap<i32, Vec<(Vec<u8>, Vec<u8>)>>;

/// Flags of every broker these tests start: two shards, so requests cross cores.
const BROKER_FLAGS: &[&str] = &["--cores", "2"];

fn config(addr: &str) -> ClientConfig {
    ClientConfig::new([addr.to_string()])
}

#[test]
fn admin_creates_describes_and_deletes_topics() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        assert!(!client.metadata().brokers.is_empty());
        let admin = Admin::new(client);
        let results = admin
            .create_topics(&[NewTopic::new("a", 3).config("retention.ms", "60000"), NewTopic::new("b", 1)])
            .await
            .unwrap();
        for (name, result) in &results {
            assert!(result.is_ok(), "{name}: {result:?}");
        }
        let again = admin.create_topic(NewTopic::new("a", 3)).await.unwrap_err();
        assert_eq!(again.code(), Some(sluice::protocol::ErrorCode::TopicAlreadyExists), "{again}");
        let bad = admin.create_topic(NewTopic::new("c", 1).config("no.such.config", "1")).await;
        assert!(bad.is_err(), "unknown config accepted");

        let described = admin.describe_topics(&["a", "b", "missing"]).await.unwrap();
        assert_eq!(described[0].partitions.len(), 3);
        assert!(described[0].partitions.iter().all(|p| p.leader >= 0));
        assert_eq!(described[1].partitions.len(), 1);
        assert!(described[2].error().is_some());

        let offsets = admin.list_offsets("a", OffsetSpec::Latest).await.unwrap();
        assert_eq!(offsets.len(), 3);
        assert!(offsets.values().all(|o| o.offset == Some(0)), "{offsets:?}");
        let earliest = admin.list_offset("a", 1, OffsetSpec::Earliest).await.unwrap();
        assert_eq!(earliest.offset, Some(0));

        let deleted = admin.delete_topics(&["a", "missing"]).await.unwrap();
        assert!(deleted[0].1.is_ok(), "{deleted:?}");
        assert!(deleted[1].1.is_err(), "{deleted:?}");
        let described = admin.describe_topics(&["a", "b"]).await.unwrap();
        assert!(described[0].error().is_some(), "a still exists: {:?}", described[0]);
        assert!(described[1].error().is_none());
        let unknown = admin.list_offsets("a", OffsetSpec::Latest).await.unwrap_err();
        assert!(matches!(unknown, ClientError::UnknownTopic(_)), "{unknown}");
    });
}

#[test]
fn unreachable_bootstrap_fails_quickly_and_clearly() {
    // A port nothing listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let error = run_on_shard(move || async move {
        let mut config = config(&format!("127.0.0.1:{port}"));
        config.connection.connect_timeout = Duration::from_secs(2);
        match Client::connect(config).await {
            Ok(_) => panic!("connected to nothing"),
            Err(e) => e.to_string(),
        }
    });
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(error.contains("no bootstrap server reachable") && error.contains("cannot connect"), "{error}");
}

#[test]
fn requests_pipeline_on_one_connection() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        let admin = Admin::new(client.clone());
        admin.create_topic(NewTopic::new("p", 2)).await.unwrap();
        let connection = client.any_connection().await.unwrap();
        let request = sluice::protocol::messages::MetadataRequest {
            topics: Some(vec![sluice::protocol::messages::MetadataRequestTopic {
                name: Some("p".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (connection, request) = (connection.clone(), request.clone());
                glommio::spawn_local(async move { connection.send(&request).await })
            })
            .collect();
        for task in tasks {
            let response = task.await.unwrap();
            assert_eq!(response.topics[0].partitions.len(), 2);
        }
    });
}

/// Polls until `count` records have come back (or a deadline passes), in arrival order.
async fn consume(consumer: &mut Consumer, count: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut records = Vec::new();
    while records.len() < count {
        assert!(Instant::now() < deadline, "only {} of {count} records came back", records.len());
        records.extend(consumer.poll().await.unwrap());
    }
    records
}

#[test]
fn ten_thousand_keyed_records_round_trip_in_order_per_partition() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("keyed", 4)).await.unwrap();
        let producer = Producer::new(client.clone(), ProducerConfig { acks: Acks::All, ..Default::default() }).unwrap();
        let mut deliveries = Vec::new();
        let mut sent: PerPartition = BTreeMap::new();
        for i in 0..10_000u32 {
            let key = format!("key-{}", i % 97).into_bytes();
            let value: Vec<u8> = (0..(i % 300)).map(|j| (i.wrapping_mul(31) ^ j) as u8).collect();
            let partition = sluice::client::partitioner::partition_for_key(&key, 4);
            sent.entry(partition).or_default().push((key.clone(), value.clone()));
            let record = ProducerRecord::new("keyed", Some(key), Some(value));
            deliveries.push((partition, producer.send(record).await.unwrap()));
        }
        producer.flush().await;
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for (partition, delivery) in deliveries {
            let report = delivery.await.unwrap();
            assert_eq!(report.partition, partition);
            let offset = report.offset.unwrap();
            let expected = last.get(&partition).map_or(0, |o| o + 1);
            assert_eq!(offset, expected, "offsets of partition {partition} are dense and in send order");
            last.insert(partition, offset);
        }

        let mut consumer = Consumer::new(client, ConsumerConfig::default());
        consumer.assign(&[("keyed", 0), ("keyed", 1), ("keyed", 2), ("keyed", 3)]);
        let records = consume(&mut consumer, 10_000).await;
        assert_eq!(records.len(), 10_000);
        let mut got: PerPartition = BTreeMap::new();
        for r in &records {
            let list = got.entry(r.partition).or_default();
            assert_eq!(r.offset, list.len() as i64);
            list.push((r.key.clone().unwrap().to_vec(), r.value.clone().unwrap().to_vec()));
        }
        assert_eq!(got, sent);
    });
}

#[test]
fn seek_by_offset_and_by_timestamp() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("seek", 1)).await.unwrap();
        let producer = Producer::new(client.clone(), ProducerConfig::default()).unwrap();
        let mut deliveries = Vec::new();
        for i in 0..100i64 {
            let mut record = ProducerRecord::new("seek", None, Some(i.to_be_bytes().to_vec()));
            record.partition = Some(0);
            record.timestamp = Some(1_000_000 + i * 10);
            deliveries.push(producer.send(record).await.unwrap());
        }
        producer.flush().await;
        for d in deliveries {
            d.await.unwrap();
        }
        let mut consumer = Consumer::new(client, ConsumerConfig::default());
        consumer.assign(&[("seek", 0)]);
        consumer.seek("seek", 0, SeekTo::Offset(42)).await.unwrap();
        let records = consume(&mut consumer, 58).await;
        assert_eq!(records[0].offset, 42);
        assert_eq!(records[0].value.as_deref(), Some(&42i64.to_be_bytes()[..]));
        assert_eq!(records.last().map(|r| r.offset), Some(99));

        consumer.seek("seek", 0, SeekTo::Timestamp(1_000_000 + 555)).await.unwrap();
        assert_eq!(consumer.position("seek", 0), Some(56));
        let records = consume(&mut consumer, 44).await;
        assert_eq!((records[0].offset, records[0].timestamp), (56, 1_000_560));

        consumer.seek("seek", 0, SeekTo::Timestamp(9_999_999_999_999)).await.unwrap();
        assert_eq!(consumer.position("seek", 0), Some(100), "past the last timestamp: the log end");
        consumer.seek("seek", 0, SeekTo::Earliest).await.unwrap();
        assert_eq!(consumer.position("seek", 0), Some(0));
        consumer.seek("seek", 0, SeekTo::Latest).await.unwrap();
        assert_eq!(consumer.position("seek", 0), Some(100));
        assert!(consumer.poll().await.unwrap().is_empty(), "nothing after the end (long-poll returns empty)");
    });
}

#[test]
fn keyless_records_stick_to_one_partition_per_batch() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("sticky", 4)).await.unwrap();
        let linger = Duration::from_secs(30);
        let producer =
            Producer::new(client, ProducerConfig { batch_size: 1 << 20, linger, ..Default::default() }).unwrap();
        let mut partitions = Vec::new();
        for round in 0..3 {
            let mut deliveries = Vec::new();
            for i in 0..50 {
                let record = ProducerRecord::new("sticky", None, Some(format!("{round}-{i}").into_bytes()));
                deliveries.push(producer.send(record).await.unwrap());
            }
            producer.flush().await;
            let mut landed = Vec::new();
            for d in deliveries {
                landed.push(d.await.unwrap().partition);
            }
            landed.dedup();
            assert_eq!(landed.len(), 1, "round {round}: one batch, one partition: {landed:?}");
            partitions.push(landed[0]);
        }
        assert!(partitions.windows(2).all(|w| w[0] != w[1]), "the sticky partition moves on: {partitions:?}");
    });
}

/// A keyless record that does not fit its sticky partition's open batch closes it and goes to
/// the next sticky partition with the records after it (as in Kafka's producer, KIP-794), rather
/// than opening a batch of one record on the old partition.
#[test]
fn a_keyless_record_that_does_not_fit_moves_on_with_the_sticky_partition() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        const PARTITIONS: i32 = 8;
        Admin::new(client.clone()).create_topic(NewTopic::new("overflow", PARTITIONS)).await.unwrap();
        // Batches of a few 300-byte records that close when the next record does not fit; a
        // linger long enough that only size and the final flush close them.
        let config = ProducerConfig { batch_size: 2000, linger: Duration::from_secs(30), ..Default::default() };
        let producer = Producer::new(client.clone(), config).unwrap();
        let mut deliveries = Vec::new();
        for _ in 0..30 {
            deliveries.push(producer.send(ProducerRecord::new("overflow", None, Some(vec![b'x'; 300]))).await.unwrap());
        }
        producer.flush().await;
        for delivery in deliveries {
            delivery.await.unwrap();
        }
        let mut counts = Vec::new();
        for partition in 0..PARTITIONS {
            counts.push(stored_batch_counts(&client, "overflow", partition).await);
        }
        assert_eq!(counts.iter().flatten().sum::<i32>(), 30, "{counts:?}");
        // Only the flush's last batch may hold a single record.
        let singles = counts.iter().flatten().filter(|&&n| n == 1).count();
        assert!(singles <= 1, "batches of one record: {counts:?}");
    });
}

/// With `linger = 0`, records that come while every request slot is in use wait in one open
/// batch and go together in the next request (as in Kafka's producer), instead of one request
/// (and one round trip) each.
#[test]
fn records_sent_while_requests_are_in_flight_join_one_batch_at_linger_zero() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let mut config = config(&addr);
        config.connection.max_in_flight = 1;
        let client = Client::connect(config).await.unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("linger0", 1)).await.unwrap();
        let producer =
            Producer::new(client.clone(), ProducerConfig { linger: Duration::ZERO, ..Default::default() }).unwrap();
        const RECORDS: usize = 500;
        let mut deliveries = Vec::new();
        for i in 0..RECORDS {
            let record = ProducerRecord::new("linger0", None, Some(i.to_string().into_bytes()));
            deliveries.push((std::time::Instant::now(), producer.send(record).await.unwrap()));
            // Each record's linger runs out before the next comes.
            glommio::timer::sleep(Duration::from_micros(100)).await;
        }
        let mut acknowledged = Vec::new();
        for (i, (sent, delivery)) in deliveries.into_iter().enumerate() {
            let report = delivery.await.unwrap();
            assert_eq!(report.offset, Some(i as i64));
            assert!(report.acknowledged_at > sent, "record {i} acknowledged before it was sent");
            acknowledged.push(report.acknowledged_at);
        }
        assert!(acknowledged.is_sorted(), "batches are acknowledged in order");
        let batches = stored_batches(&client, "linger0").await;
        // One request at a time of about a millisecond (acks=all, fdatasync) while a record comes
        // every 0.1 ms or more: batches of several records. One batch a record was the old way.
        assert!(batches.len() < RECORDS / 2, "{} batches for {RECORDS} records", batches.len());
        // The acknowledgement time is the batch's: one clock reading for all its records.
        acknowledged.dedup();
        assert_eq!(acknowledged.len(), batches.len(), "one acknowledgement time per batch");
    });
}

#[test]
fn acks_zero_and_one() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("acks", 1)).await.unwrap();
        for (acks, expect_offsets) in [(Acks::None, false), (Acks::Leader, true)] {
            // Idempotence (the default) needs acks=all: the producer says so at once.
            let refused = Producer::new(client.clone(), ProducerConfig { acks, ..Default::default() }).err();
            assert!(matches!(&refused, Some(ClientError::Config(m)) if m.contains("acks=all")), "{refused:?}");
            let config = ProducerConfig { acks, idempotence: false, ..Default::default() };
            let producer = Producer::new(client.clone(), config).unwrap();
            let mut deliveries = Vec::new();
            for i in 0..500u32 {
                let record = ProducerRecord::new("acks", Some(i.to_be_bytes().to_vec()), Some(vec![7; 100]));
                deliveries.push(producer.send(record).await.unwrap());
            }
            producer.flush().await;
            for d in deliveries {
                let report = d.await.unwrap();
                assert_eq!(report.offset.is_some(), expect_offsets, "{acks:?}: {report:?}");
            }
        }
        let mut consumer = Consumer::new(client, ConsumerConfig::default());
        consumer.assign(&[("acks", 0)]);
        let records = consume(&mut consumer, 1000).await;
        assert_eq!(records.len(), 1000);
        assert!(records.iter().enumerate().all(|(i, r)| r.offset == i as i64));
    });
}

#[test]
fn produce_to_an_unknown_topic_fails_clearly() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    let started = Instant::now();
    let error = run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        let producer = Producer::new(client.clone(), ProducerConfig::default()).unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("two", 2)).await.unwrap();
        let mut record = ProducerRecord::new("two", None, Some(b"v".to_vec()));
        record.partition = Some(2);
        let Err(out_of_range) = producer.send(record).await else { panic!("queued a record for partition 2 of 2") };
        assert!(out_of_range.to_string().contains("partition 2 out of range"), "{out_of_range}");
        match producer.send(ProducerRecord::new("nope", None, Some(b"v".to_vec()))).await {
            Ok(_) => panic!("queued a record for a topic that does not exist"),
            Err(e) => e.to_string(),
        }
    });
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(error, "unknown topic nope");
}

#[test]
fn a_silent_broker_times_out_the_request() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let error = run_on_shard(move || async move {
        let config = ConnectionConfig { request_timeout: Duration::from_millis(300), ..Default::default() };
        match Connection::connect(&addr, config).await {
            Ok(_) => panic!("a handshake with a silent peer succeeded"),
            Err(e) => e,
        }
    });
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
    assert!(error.to_string().contains("ApiVersions request to 127.0.0.1:"), "{error}");
}

#[test]
fn produce_retries_across_a_broker_restart() {
    let mut broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    let (to_test, from_shard) = std::sync::mpsc::channel::<()>();
    let (to_shard, from_test) = std::sync::mpsc::channel::<()>();
    let shard = std::thread::spawn(move || {
        run_on_shard(move || async move {
            let mut config = config(&addr);
            config.retries = 100;
            config.retry_backoff = Duration::from_millis(100);
            let client = Client::connect(config).await.unwrap();
            Admin::new(client.clone()).create_topic(NewTopic::new("r", 1)).await.unwrap();
            let producer = Producer::new(client.clone(), ProducerConfig::default()).unwrap();
            let first = producer.send(ProducerRecord::new("r", None, Some(b"before".to_vec()))).await.unwrap();
            assert_eq!(first.await.unwrap().offset, Some(0));
            to_test.send(()).unwrap();
            // Wait (without blocking the executor for long) until the broker was killed.
            while from_test.try_recv().is_err() {
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            let second = producer.send(ProducerRecord::new("r", None, Some(b"after".to_vec()))).await.unwrap();
            assert_eq!(second.await.unwrap().offset, Some(1), "the retries reached the restarted broker");
            let mut consumer = Consumer::new(client, ConsumerConfig::default());
            consumer.assign(&[("r", 0)]);
            let values: Vec<_> = consume(&mut consumer, 2).await.into_iter().map(|r| r.value.unwrap()).collect();
            assert_eq!(values, [&b"before"[..], &b"after"[..]]);
        })
    });
    from_shard.recv().unwrap();
    // The second record is sent while the broker is down: the connection fails, reconnecting
    // is refused, and the producer retries until the broker is back on the same port.
    broker.kill9();
    to_shard.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    broker.restart();
    shard.join().unwrap();
}

/// Regression: glommio's mesh builder raced on a non-atomic count when shards cloned it, and a
/// fresh two-shard broker sometimes aborted with heap corruption on its first client.
#[test]
fn two_shard_broker_survives_fresh_clients() {
    for round in 0..100 {
        let broker = Broker::start(&["--cores", "2"]);
        let addr = broker.addr.clone();
        let outcome = run_on_shard(move || async move {
            let client = Client::connect(config(&addr)).await?;
            Admin::new(client).create_topic(NewTopic::new("x", 1)).await
        });
        assert!(outcome.is_ok(), "round {round}: {outcome:?}");
    }
}

// --- compression and pipelining ---------------------------------------------------------------

const CODECS: [(CompressionType, &str); 4] = [
    (CompressionType::Gzip, "gzip"),
    (CompressionType::Snappy, "snappy"),
    (CompressionType::Lz4, "lz4"),
    (CompressionType::Zstd, "zstd"),
];

/// Record `i` of the records these tests and tests/clients/compat.py (`native_records`) agree
/// on: null keys, null values (never both), headers on odd records, values that compress.
fn native_record(topic: &str, i: usize) -> ProducerRecord {
    let null_key = i % 13 == 5;
    let key = (!null_key).then(|| format!("key-{i}").into_bytes());
    let value = (i % 17 != 3 || null_key).then(|| format!("value-{i}-").repeat(1 + i % 7).into_bytes());
    let mut record = ProducerRecord::new(topic, key, value);
    record.partition = Some(0);
    record.timestamp = Some(1_700_000_000_000 + i as i64);
    if i % 2 == 1 {
        record.headers = vec![("i".to_string(), i.to_string().into_bytes())];
    }
    record
}

/// Checks consumed records against `native_record(0..)`, in offset order from 0.
fn assert_native(records: &[ConsumerRecord], topic: &str, what: &str) {
    for (i, got) in records.iter().enumerate() {
        let want = native_record(topic, i);
        assert_eq!(got.offset, i as i64, "{what}: offsets are dense from 0");
        assert_eq!(&*got.topic, topic, "{what}");
        assert_eq!(got.key.as_deref(), want.key.as_deref(), "{what}: key of record {i}");
        assert_eq!(got.value.as_deref(), want.value.as_deref(), "{what}: value of record {i}");
        assert_eq!(Some(got.timestamp), want.timestamp, "{what}: timestamp of record {i}");
        let headers: Vec<(String, Vec<u8>)> = got
            .headers
            .iter()
            .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), v.as_deref().unwrap_or_default().to_vec()))
            .collect();
        assert_eq!(headers, want.headers, "{what}: headers of record {i}");
    }
}

/// Produces `native_record(0..count)` to partition 0 of `topic` with `codec`.
async fn produce_native(client: &Client, topic: &str, codec: CompressionType, count: usize) {
    let config = ProducerConfig { compression: codec, batch_size: 8 * 1024, ..Default::default() };
    let producer = Producer::new(client.clone(), config).unwrap();
    let mut deliveries = Vec::new();
    for i in 0..count {
        deliveries.push(producer.send(native_record(topic, i)).await.unwrap());
    }
    producer.flush().await;
    for (i, delivery) in deliveries.into_iter().enumerate() {
        assert_eq!(delivery.await.unwrap().offset, Some(i as i64), "{codec:?}");
    }
}

/// The codec and the records area of every batch in partition 0 of `topic`, read with a raw
/// Fetch: what the producers actually wrote.
async fn stored_batches(client: &Client, topic: &str) -> Vec<(CompressionType, Vec<u8>)> {
    let bytes = stored_bytes(client, topic, 0).await;
    BatchIter::new(&bytes, bytes.len())
        .map(|batch| {
            let batch = batch.unwrap();
            (batch.compression().unwrap(), batch.records_bytes().to_vec())
        })
        .collect()
}

/// The record count of each batch stored in `topic`-`partition`.
async fn stored_batch_counts(client: &Client, topic: &str, partition: i32) -> Vec<i32> {
    let bytes = stored_bytes(client, topic, partition).await;
    BatchIter::new(&bytes, bytes.len()).map(|batch| batch.unwrap().records_count()).collect()
}

/// The stored batches of `topic`-`partition`, as one Fetch from offset 0 returns them.
async fn stored_bytes(client: &Client, topic: &str, partition: i32) -> bytes::Bytes {
    let connection = client.leader_connection(topic, partition).await.unwrap();
    let request = FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: i32::MAX,
        topics: vec![FetchRequestTopic {
            topic: topic.to_string(),
            partitions: vec![FetchRequestPartition {
                partition,
                fetch_offset: 0,
                partition_max_bytes: 64 * 1024 * 1024,
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    let response = connection.send(&request).await.unwrap();
    match response.responses[0].partitions[0].records.clone() {
        Some(RecordSet::Owned(bytes)) => bytes.freeze(),
        Some(RecordSet::Shared(bytes)) => bytes,
        None => bytes::Bytes::new(),
        Some(other) => panic!("records as {other:?}"),
    }
}

#[test]
fn every_codec_round_trips_through_the_native_client() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        let admin = Admin::new(client.clone());
        for (codec, name) in CODECS {
            let topic = format!("native-{name}");
            admin.create_topic(NewTopic::new(&topic, 1)).await.unwrap();
            produce_native(&client, &topic, codec, 2_000).await;
            let batches = stored_batches(&client, &topic).await;
            assert!(batches.len() > 1, "{name}: several batches");
            assert!(batches.iter().all(|(c, _)| *c == codec), "{name}: every batch compressed with the codec");
            let stored: usize = batches.iter().map(|(_, records)| records.len()).sum();
            let values: usize = (0..2_000).filter_map(|i| native_record(&topic, i).value).map(|v| v.len()).sum();
            assert!(stored < values, "{name}: {stored} bytes of records stored for {values} bytes of values alone");
            if codec == CompressionType::Snappy {
                assert!(batches.iter().all(|(_, r)| r.starts_with(b"\x82SNAPPY\0")), "xerial framing");
            }
            let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
            consumer.assign(&[(&topic, 0)]);
            let records = consume(&mut consumer, 2_000).await;
            assert_eq!(records.len(), 2_000, "{name}");
            assert_native(&records, &topic, name);
        }
    });
}

#[test]
fn python_clients_read_natively_compressed_batches() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        for (codec, name) in CODECS {
            let topic = format!("to-python-{name}");
            Admin::new(client.clone()).create_topic(NewTopic::new(&topic, 1)).await.unwrap();
            produce_native(&client, &topic, codec, 1_000).await;
        }
    });
    for (_, name) in CODECS {
        compat_scenario(&broker, "native_consume", &[&format!("to-python-{name}"), "1000"]);
    }
}

#[test]
fn the_native_consumer_reads_batches_compressed_by_python_clients() {
    let broker = Broker::start(BROKER_FLAGS);
    for (_, name) in CODECS {
        compat_scenario(&broker, "native_produce", &[&format!("from-python-{name}"), name, "600"]);
    }
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        for (codec, name) in CODECS {
            let topic = format!("from-python-{name}");
            let batches = stored_batches(&client, &topic).await;
            // librdkafka sends a batch uncompressed when compression does not make it smaller.
            let compressed = batches.iter().filter(|(c, _)| *c == codec).count();
            let plain = batches.iter().filter(|(c, _)| *c == CompressionType::None).count();
            assert!(
                compressed > 0 && compressed + plain == batches.len(),
                "{name}: {compressed}+{plain} of {}",
                batches.len()
            );
            if codec == CompressionType::Snappy {
                // The two framings real clients write: librdkafka a raw snappy block,
                // kafka-python (like the Java client) the xerial stream.
                let xerial = batches.iter().filter(|(_, r)| r.starts_with(b"\x82SNAPPY\0")).count();
                assert!(xerial > 0 && xerial < compressed, "{xerial} of {compressed} snappy batches xerial");
            }
            let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
            consumer.assign(&[(&topic, 0)]);
            let records = consume(&mut consumer, 600).await;
            assert_eq!(records.len(), 600, "{name}");
            assert_native(&records, &topic, &format!("{name} from Python"));
        }
    });
}

/// Several partitions, small fetches (so every poll leaves a prefetch in flight), a compressed
/// topic, and seeks and a reassignment mid-stream: every partition's records come back
/// contiguous from wherever it was last moved to, and the positions end at the log end.
#[test]
fn pipelined_fetches_keep_positions_right_across_seeks() {
    const PARTITIONS: i32 = 6;
    const PER_PARTITION: i64 = 1_000;
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(config(&addr)).await.unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("pipe", PARTITIONS)).await.unwrap();
        let config = ProducerConfig { compression: CompressionType::Lz4, batch_size: 2048, ..Default::default() };
        let producer = Producer::new(client.clone(), config).unwrap();
        let mut deliveries = Vec::new();
        for i in 0..PER_PARTITION {
            for partition in 0..PARTITIONS {
                let mut record = ProducerRecord::new("pipe", None, Some(format!("{partition}:{i:0>90}").into_bytes()));
                record.partition = Some(partition);
                deliveries.push(producer.send(record).await.unwrap());
            }
        }
        producer.flush().await;
        for delivery in deliveries {
            delivery.await.unwrap();
        }

        // Small partition fetches: about 20 records per partition per Fetch.
        let config = ConsumerConfig { partition_max_bytes: 2048, ..Default::default() };
        let mut consumer = Consumer::new(client, config);
        let all: Vec<(&str, i32)> = (0..PARTITIONS).map(|p| ("pipe", p)).collect();
        consumer.assign(&all);
        let mut expected: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
        let check = |records: Vec<ConsumerRecord>, expected: &mut BTreeMap<i32, i64>| {
            for r in records {
                let next = expected.get_mut(&r.partition).unwrap();
                assert_eq!(r.offset, *next, "partition {} out of order", r.partition);
                let value = format!("{}:{:0>90}", r.partition, r.offset).into_bytes();
                assert_eq!(r.value.as_deref(), Some(&value[..]));
                *next += 1;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        // Read until partition 2 is part-way, then move it back and move partition 3 to the end.
        while expected[&2] < 300 {
            assert!(Instant::now() < deadline, "stuck at {expected:?}");
            check(consumer.poll().await.unwrap(), &mut expected);
        }
        assert!(expected.values().all(|&n| n < PER_PARTITION), "not mid-stream any more: {expected:?}");
        consumer.seek("pipe", 2, SeekTo::Offset(100)).await.unwrap();
        consumer.seek("pipe", 3, SeekTo::Latest).await.unwrap();
        expected.insert(2, 100);
        expected.insert(3, PER_PARTITION);
        assert_eq!(consumer.position("pipe", 2), Some(100));
        while expected.values().any(|&n| n < PER_PARTITION) {
            assert!(Instant::now() < deadline, "stuck at {expected:?}");
            check(consumer.poll().await.unwrap(), &mut expected);
        }
        for partition in 0..PARTITIONS {
            assert_eq!(consumer.position("pipe", partition), Some(PER_PARTITION), "partition {partition}");
        }
        assert!(consumer.poll().await.unwrap().is_empty(), "nothing past the end");

        // A reassignment mid-stream: the new partition starts at its earliest offset.
        consumer.assign(&[("pipe", 5)]);
        let mut expected: BTreeMap<i32, i64> = BTreeMap::from([(5, 0)]);
        check(consume(&mut consumer, PER_PARTITION as usize).await, &mut expected);
        assert_eq!(expected[&5], PER_PARTITION);
        assert_eq!(consumer.position("pipe", 5), Some(PER_PARTITION));
        assert_eq!(consumer.position("pipe", 0), None, "no longer assigned");
    });
}
