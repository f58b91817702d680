//! The native producer, idempotent by default, against the real broker: every record lands
//! exactly once and in order, with batches numbered under a producer id, and a broker killed
//! (SIGKILL) and restarted mid-stream costs retries but no duplicate.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sluice::client::{
    Admin, Client, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig, ProducerRecord,
};
use sluice::model::BatchIter;
use sluice::protocol::RecordSet;
use sluice::protocol::messages::{FetchRequest, FetchRequestPartition, FetchRequestTopic};
use sluice::testing::run_on_shard;

use crate::harness::{Broker, sluice_bin};

/// Two shards, so partitions live on both and requests cross cores.
const BROKER_FLAGS: &[&str] = &["--cores", "2"];

/// The record numbers in each partition, in offset order, read back with a consumer.
async fn numbers_by_partition(client: &Client, topic: &str, partitions: i32, total: usize) -> BTreeMap<i32, Vec<u64>> {
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    let assigned: Vec<(&str, i32)> = (0..partitions).map(|p| (topic, p)).collect();
    consumer.assign(&assigned);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    let mut by_partition: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    // Read past `total` for a moment, so a duplicate at the end would show.
    let mut quiet_polls = 0;
    while seen < total || quiet_polls < 3 {
        assert!(Instant::now() < deadline, "only {seen} of {total} records came back");
        let records = consumer.poll().await.unwrap();
        if records.is_empty() && seen >= total {
            quiet_polls += 1;
        }
        for record in records {
            let value = record.value.expect("a value");
            let number = u64::from_be_bytes(value[..8].try_into().unwrap());
            by_partition.entry(record.partition).or_default().push(number);
            seen += 1;
        }
    }
    by_partition
}

/// Checks that every number below `total` is there exactly once and that each partition
/// holds its own in increasing order.
fn assert_exactly_once_in_order(by_partition: &BTreeMap<i32, Vec<u64>>, total: u64) {
    let mut all: Vec<u64> = Vec::new();
    for (partition, numbers) in by_partition {
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "partition {partition} is out of order or has duplicates");
        all.extend(numbers);
    }
    all.sort_unstable();
    let expected: Vec<u64> = (0..total).collect();
    assert_eq!(all.len(), expected.len(), "records missing or written twice");
    assert_eq!(all, expected);
}

/// The producer id, epoch, base sequence and record count of every batch in
/// `topic`-`partition`.
async fn producer_fields(client: &Client, topic: &str, partition: i32) -> Vec<(i64, i16, i32, i32)> {
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
    let bytes = match response.responses[0].partitions[0].records.clone() {
        Some(RecordSet::Owned(bytes)) => bytes.freeze(),
        Some(RecordSet::Shared(bytes)) => bytes,
        other => panic!("no records: {other:?}"),
    };
    BatchIter::new(&bytes, bytes.len())
        .map(|batch| {
            let batch = batch.unwrap();
            let header = batch.header();
            (batch.producer_id().0, header.producer_epoch.get(), header.base_sequence.get(), batch.records_count())
        })
        .collect()
}

/// Record `number` of the test, to `partition`: the number is the key and the value's first 8
/// bytes.
fn record(topic: &str, partition: i32, number: u64) -> ProducerRecord {
    let mut value = number.to_be_bytes().to_vec();
    value.resize(100, 7);
    ProducerRecord {
        partition: Some(partition),
        ..ProducerRecord::new(topic, Some(number.to_be_bytes().to_vec()), Some(value))
    }
}

#[test]
fn the_default_producer_writes_each_record_once_in_order_under_its_producer_id() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(ClientConfig::new([addr])).await.unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("idem", 4)).await.unwrap();
        // Small batches, so each partition has many in flight at once.
        let config = ProducerConfig { batch_size: 2048, ..Default::default() };
        assert!(config.idempotence, "idempotence is the default");
        let producer = Producer::new(client.clone(), config).unwrap();
        let mut deliveries = Vec::new();
        for number in 0..10_000u64 {
            let partition = i32::try_from(number % 4).unwrap();
            deliveries.push((partition, producer.send(record("idem", partition, number)).await.unwrap()));
        }
        producer.flush().await;
        let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
        for (partition, delivery) in deliveries {
            let metadata = delivery.await.unwrap();
            let expected = next_offset.entry(partition).or_default();
            assert_eq!((metadata.partition, metadata.offset), (partition, Some(*expected)));
            *expected += 1;
        }
        let identity = producer.identity().expect("the producer has an id");
        assert!(identity.producer_id.0 >= 0);

        let by_partition = numbers_by_partition(&client, "idem", 4, 10_000).await;
        assert_exactly_once_in_order(&by_partition, 10_000);
        // Every batch carries the producer's id and epoch, and the sequences count records
        // from 0 in each partition.
        for partition in 0..4 {
            let batches = producer_fields(&client, "idem", partition).await;
            assert!(batches.len() > 1, "partition {partition}: {} batches", batches.len());
            let mut expected_sequence = 0;
            for (id, epoch, base_sequence, records) in &batches {
                assert_eq!((*id, *epoch), (identity.producer_id.0, identity.epoch));
                assert_eq!(*base_sequence, expected_sequence, "partition {partition}");
                expected_sequence += records;
            }
            assert_eq!(expected_sequence, 2500, "partition {partition}");
        }
    });
}

#[test]
fn a_broker_killed_mid_stream_costs_retries_not_duplicates() {
    const TOTAL: u64 = 20_000;
    // A kill lands between a batch's append and its answer only now and then, so there are
    // three of them.
    const KILL_AT_ACKED: [usize; 3] = [4_000, 9_000, 14_000];
    let mut broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    let acked = Arc::new(AtomicUsize::new(0));
    let killer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut restarted_at = Vec::new();
            for threshold in KILL_AT_ACKED {
                while acked.load(Ordering::Relaxed) < threshold {
                    assert!(Instant::now() < deadline, "the producer stalled below {threshold} acks");
                    std::thread::sleep(Duration::from_millis(1));
                }
                // SIGKILL mid-stream: requests in flight get no answer, and some of them were
                // appended.
                broker.restart();
                restarted_at.push(acked.load(Ordering::Relaxed));
            }
            (broker, restarted_at)
        })
    };
    let acked_on_shard = acked.clone();
    let failures = run_on_shard(move || async move {
        let mut client_config = ClientConfig::new([addr]);
        // Patient enough to outlast the restart.
        client_config.retries = 200;
        client_config.retry_backoff = Duration::from_millis(50);
        client_config.connection.request_timeout = Duration::from_secs(10);
        let client = Client::connect(client_config).await.unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("crash", 3)).await.unwrap();
        let config = ProducerConfig { batch_size: 4096, linger: Duration::from_millis(1), ..Default::default() };
        let producer = Producer::new(client.clone(), config).unwrap();
        let failures: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
        for number in 0..TOTAL {
            let partition = i32::try_from(number % 3).unwrap();
            let (acked, failures) = (acked_on_shard.clone(), failures.clone());
            let callback = Box::new(move |result: Result<_, _>| match result {
                Ok(_) => {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => failures.borrow_mut().push(format!("record {number}: {e}")),
            });
            producer.send_with(record("crash", partition, number), callback).await.unwrap();
            if number % 256 == 0 {
                // Let the sender, timers and answers run between bursts.
                glommio::yield_if_needed().await;
                glommio::timer::sleep(Duration::from_micros(200)).await;
            }
        }
        producer.flush().await;
        let failures = failures.borrow().clone();
        if failures.is_empty() {
            let by_partition = numbers_by_partition(&client, "crash", 3, TOTAL as usize).await;
            assert_exactly_once_in_order(&by_partition, TOTAL);
        }
        failures
    });
    let (broker, restarted_at) = killer.join().expect("the killer thread");
    assert!(failures.is_empty(), "{} records failed, first: {:?}", failures.len(), failures.first());
    assert!(
        restarted_at.iter().all(|&at| at < TOTAL as usize),
        "a restart came after the last ack ({restarted_at:?}), so nothing was cut mid-stream"
    );
    drop(broker);
}

/// Runs `sluice produce ARGS` with `lines` on stdin; it must succeed.
fn sluice_produce(broker: &Broker, args: &[&str], lines: &str) {
    let mut child = Command::new(sluice_bin())
        .arg("produce")
        .args(args)
        .args(["--bootstrap", &broker.addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice produce");
    child.stdin.take().expect("stdin").write_all(lines.as_bytes()).expect("write stdin");
    let output = child.wait_with_output().expect("sluice produce");
    assert!(output.status.success(), "sluice produce {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn sluice_produce_is_idempotent_unless_told_otherwise() {
    let broker = Broker::start(BROKER_FLAGS);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(ClientConfig::new([addr])).await.unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("lines", 1)).await.unwrap();
    });
    sluice_produce(&broker, &["lines"], "a\nb\n");
    sluice_produce(&broker, &["lines", "--no-idempotence"], "c\n");
    // acks 1 cannot go with idempotence, so it turns it off rather than failing.
    sluice_produce(&broker, &["lines", "--acks", "1"], "d\n");
    let addr = broker.addr.clone();
    let batches = run_on_shard(move || async move {
        let client = Client::connect(ClientConfig::new([addr])).await.unwrap();
        producer_fields(&client, "lines", 0).await
    });
    assert_eq!(batches.len(), 3, "{batches:?}");
    let (id, epoch, sequence, records) = batches[0];
    assert!(id >= 0 && epoch >= 0, "{batches:?}");
    assert_eq!((sequence, records), (0, 2));
    assert_eq!(&batches[1..], [(-1, -1, -1, 1), (-1, -1, -1, 1)]);
}
