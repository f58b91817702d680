//! The native transactional producer and read_committed consumer against the real broker:
//! committed transactions visible, aborted ones not; offsets sent to a transaction count only
//! when it commits; a second producer with the same transactional id fences the first.

use std::time::{Duration, Instant};

use sluice::client::group_admin::GroupAdmin;
use sluice::client::{
    Admin, Client, ClientConfig, Consumer, ConsumerConfig, IsolationLevel, NewTopic, Producer, ProducerConfig,
    ProducerRecord,
};
use sluice::protocol::ErrorCode;
use sluice::testing::run_on_shard;

use crate::harness::Broker;

fn transactional(id: &str) -> ProducerConfig {
    ProducerConfig { transactional_id: Some(id.to_string()), ..Default::default() }
}

fn record(topic: &str, partition: i32, value: &str) -> ProducerRecord {
    let mut record = ProducerRecord::new(topic, None, Some(value.as_bytes().to_vec()));
    record.partition = Some(partition);
    record
}

/// Every value of `topic`'s `partitions` a consumer at `isolation` sees, waiting until
/// `expected` came (and a moment more, so extra records would show).
async fn values(
    client: &Client,
    topic: &str,
    partitions: i32,
    isolation: IsolationLevel,
    expected: usize,
) -> Vec<String> {
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig { isolation, ..Default::default() });
    let assigned: Vec<(&str, i32)> = (0..partitions).map(|p| (topic, p)).collect();
    consumer.assign(&assigned);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    let mut quiet = 0;
    while out.len() < expected || quiet < 3 {
        assert!(Instant::now() < deadline, "{isolation:?} saw {} of {expected} records: {out:?}", out.len());
        let records = consumer.poll().await.unwrap();
        if records.is_empty() && out.len() >= expected {
            quiet += 1;
        }
        out.extend(records.into_iter().map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()));
    }
    out.sort();
    out
}

#[test]
fn committed_transactions_are_seen_aborted_ones_are_not_and_zombies_are_fenced() {
    let broker = Broker::start(&["--cores", "2"]);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(ClientConfig::new([addr])).await.unwrap();
        Admin::new(client.clone()).create_topic(NewTopic::new("txn", 2)).await.unwrap();
        let producer = Producer::new(client.clone(), transactional("app")).unwrap();
        assert!(producer.send(record("txn", 0, "outside")).await.is_err(), "no send outside a transaction");
        producer.init_transactions().await.unwrap();

        producer.begin_transaction().unwrap();
        for i in 0..10 {
            drop(producer.send(record("txn", i % 2, &format!("committed-{i}"))).await.unwrap());
        }
        producer.send_offsets_to_transaction(&[("txn".to_string(), 0, 42)], "readers").await.unwrap();
        producer.commit_transaction().await.unwrap();

        producer.begin_transaction().unwrap();
        for i in 0..10 {
            drop(producer.send(record("txn", i % 2, &format!("aborted-{i}"))).await.unwrap());
        }
        producer.send_offsets_to_transaction(&[("txn".to_string(), 0, 99)], "readers").await.unwrap();
        producer.abort_transaction().await.unwrap();

        let committed = values(&client, "txn", 2, IsolationLevel::ReadCommitted, 10).await;
        assert_eq!(committed.len(), 10);
        assert!(committed.iter().all(|v| v.starts_with("committed-")), "read_committed saw {committed:?}");
        let all = values(&client, "txn", 2, IsolationLevel::ReadUncommitted, 20).await;
        assert_eq!(all.len(), 20, "read_uncommitted sees the aborted records too");
        let offsets = GroupAdmin::new(client.clone()).committed_offsets("readers").await.unwrap();
        assert_eq!(offsets.get(&("txn".to_string(), 0)).map(|c| c.offset), Some(42), "only the committed offsets");

        // A second producer with the same id fences the first and aborts its open transaction.
        producer.begin_transaction().unwrap();
        drop(producer.send(record("txn", 0, "zombie")).await.unwrap());
        producer.flush().await;
        let successor = Producer::new(client.clone(), transactional("app")).unwrap();
        successor.init_transactions().await.unwrap();
        let fenced = producer.commit_transaction().await.unwrap_err();
        assert!(
            matches!(fenced.code(), Some(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch)),
            "the zombie's commit: {fenced}"
        );
        successor.begin_transaction().unwrap();
        drop(successor.send(record("txn", 1, "successor")).await.unwrap());
        successor.commit_transaction().await.unwrap();
        let committed = values(&client, "txn", 2, IsolationLevel::ReadCommitted, 11).await;
        assert!(committed.contains(&"successor".to_string()) && !committed.contains(&"zombie".to_string()));
    });
}
