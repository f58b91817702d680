//! read_committed over the wire, against the real broker: Fetch and ListOffsets at isolation
//! level 1 for data outside transactions (the last stable offset is then the high watermark,
//! `aborted_transactions` an empty list rather than null), long polls and fetch sessions at that
//! level, and DescribeProducers for an idempotent producer. Requests are built from
//! `sluice::protocol::messages` and sent at both old (non-flexible) and new versions. Then real
//! transactions: confluent-kafka aborts one, commits one and leaves one open
//! (tests/clients/read_committed.py, which checks what its read_committed and read_uncommitted
//! consumers see), and the broker's answers about them are checked here.

use std::process::Command;
use std::time::{Duration, Instant};

use sluice::client::{Client, ClientConfig, Connection};
use sluice::model::{ProducerId, set_producer};
use sluice::protocol::ApiKey;
use sluice::protocol::messages::{
    DescribeProducersRequest, DescribeProducersRequestTopic, FetchRequest, FetchRequestPartition, FetchRequestTopic,
    FetchResponse, FetchResponsePartition, InitProducerIdRequest, ListOffsetsRequest, ListOffsetsRequestPartition,
    ListOffsetsRequestTopic,
};
use sluice::testing::run_on_shard;

use crate::harness::{Broker, client_script, fail_line, python};
use crate::raw::{batch, create_topic, produce_to};

const TOPIC: &str = "rc";
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn fetch_request(offset: i64, isolation_level: i8, max_wait_ms: i32) -> FetchRequest {
    FetchRequest {
        replica_id: -1,
        max_wait_ms,
        min_bytes: 1,
        isolation_level,
        session_epoch: -1,
        topics: vec![FetchRequestTopic {
            topic: TOPIC.to_string(),
            partitions: vec![FetchRequestPartition {
                partition: 0,
                fetch_offset: offset,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
        }],
        ..Default::default()
    }
}

fn only_partition(response: &FetchResponse) -> &FetchResponsePartition {
    assert_eq!(response.responses.len(), 1, "{response:?}");
    assert_eq!(response.responses[0].partitions.len(), 1, "{response:?}");
    &response.responses[0].partitions[0]
}

fn list_request(isolation_level: i8, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest {
        replica_id: -1,
        isolation_level,
        topics: vec![ListOffsetsRequestTopic {
            name: TOPIC.to_string(),
            partitions: vec![ListOffsetsRequestPartition { partition_index: 0, timestamp, ..Default::default() }],
        }],
        ..Default::default()
    }
}

/// (error, offset) of the one partition a ListOffsets asked about.
async fn list(connection: &Connection, isolation_level: i8, timestamp: i64) -> (i16, i64) {
    let response = connection.send(&list_request(isolation_level, timestamp)).await.unwrap();
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.offset)
}

#[test]
fn read_committed_sees_plain_and_idempotent_data_up_to_the_high_watermark() {
    let broker = Broker::start(&["--cores", "2"]);
    create_topic(&broker, TOPIC);
    let addr = broker.addr.clone();
    run_on_shard(move || async move {
        let client = Client::connect(ClientConfig::new([addr.clone()])).await.unwrap();
        let connection = client.any_connection().await.unwrap();
        assert_eq!(connection.version(ApiKey::DescribeProducers).unwrap(), 0, "DescribeProducers is advertised");

        // Three plain records, then four from an idempotent producer.
        assert_eq!(produce_to(&addr, TOPIC, 0, &batch(3, 50)).0, 0);
        let idempotent =
            InitProducerIdRequest { transactional_id: None, transaction_timeout_ms: -1, ..Default::default() };
        let init = connection.send(&idempotent).await.unwrap();
        assert_eq!(init.error_code, 0);
        let mut idempotent = batch(4, 50);
        set_producer(&mut idempotent, ProducerId(init.producer_id), init.producer_epoch, 0, false);
        assert_eq!(produce_to(&addr, TOPIC, 0, &idempotent), (0, 3));

        // Fetch at read_committed, at the newest and the oldest version: everything, the LSO is
        // the HW, and an empty (not null) list of aborted transactions.
        for version in [connection.version(ApiKey::Fetch).unwrap(), 4] {
            let response = connection.send_at(&fetch_request(0, 1, 0), version).await.unwrap();
            let partition = only_partition(&response);
            assert_eq!(partition.error_code, 0, "v{version}");
            assert_eq!((partition.high_watermark, partition.last_stable_offset), (7, 7), "v{version}");
            assert_eq!(partition.aborted_transactions, Some(vec![]), "v{version}");
            assert!(partition.records.as_ref().is_some_and(|r| !r.is_empty()), "v{version}");
            let response = connection.send_at(&fetch_request(0, 0, 0), version).await.unwrap();
            let partition = only_partition(&response);
            assert_eq!(partition.last_stable_offset, 7, "v{version}: the real LSO at read_uncommitted too");
            assert_eq!(partition.aborted_transactions, None, "v{version}: null at read_uncommitted");
        }
        let response = connection.send(&fetch_request(0, 2, 0)).await.unwrap();
        assert_eq!(only_partition(&response).error_code, INVALID_REQUEST, "isolation level 2");

        // ListOffsets: latest is the LSO (here the HW); lookups are bounded by it.
        assert_eq!(list(&connection, 1, -1).await, (0, 7));
        assert_eq!(list(&connection, 0, -1).await, (0, 7));
        assert_eq!(list(&connection, 1, -2).await, (0, 0));
        assert_eq!(list(&connection, 1, 1_700_000_000_000).await, (0, 0));
        assert_eq!(list(&connection, 1, -3).await.0, 0);
        assert_eq!(list(&connection, 3, -1).await.0, INVALID_REQUEST);

        // A read_committed long poll at the end wakes when data arrives (the LSO moves with
        // the HW outside transactions), not at its max wait.
        let late = {
            let addr = addr.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                produce_to(&addr, TOPIC, 0, &batch(2, 50)).0
            })
        };
        let started = Instant::now();
        let response = connection.send(&fetch_request(7, 1, 20_000)).await.unwrap();
        assert_eq!(late.join().unwrap(), 0);
        let partition = only_partition(&response);
        assert!(started.elapsed() < Duration::from_secs(10), "waited {:?}", started.elapsed());
        assert_eq!((partition.high_watermark, partition.last_stable_offset), (9, 9));
        assert!(partition.records.as_ref().is_some_and(|r| !r.is_empty()));

        // A read_committed fetch session: the full fetch, then incremental ones that carry the
        // partition only when it has news.
        let mut full = fetch_request(0, 1, 0);
        full.session_epoch = 0;
        let response = connection.send(&full).await.unwrap();
        assert!(response.session_id > 0);
        assert_eq!(only_partition(&response).last_stable_offset, 9);
        let incremental = |epoch: i32, offset: Option<i64>| FetchRequest {
            session_id: response.session_id,
            session_epoch: epoch,
            topics: match offset {
                Some(offset) => fetch_request(offset, 1, 0).topics,
                None => Vec::new(),
            },
            ..fetch_request(0, 1, 0)
        };
        let quiet = connection.send(&incremental(1, Some(9))).await.unwrap();
        assert_eq!(quiet.error_code, 0);
        assert!(quiet.responses.is_empty(), "nothing new: {quiet:?}");
        assert_eq!(produce_to(&addr, TOPIC, 0, &batch(1, 50)).0, 0);
        let news = connection.send(&incremental(2, None)).await.unwrap();
        let partition = only_partition(&news);
        assert_eq!((partition.last_stable_offset, partition.aborted_transactions.clone()), (10, Some(vec![])));

        // DescribeProducers: the idempotent producer on partition 0, nobody on 1, errors for
        // what does not exist.
        let request = DescribeProducersRequest {
            topics: vec![
                DescribeProducersRequestTopic { name: TOPIC.to_string(), partition_indexes: vec![0, 1, 9] },
                DescribeProducersRequestTopic { name: "nope".to_string(), partition_indexes: vec![0] },
            ],
        };
        let response = connection.send(&request).await.unwrap();
        let partitions = &response.topics[0].partitions;
        assert_eq!(partitions[0].error_code, 0);
        assert_eq!(partitions[0].active_producers.len(), 1, "{partitions:?}");
        let producer = &partitions[0].active_producers[0];
        assert_eq!((producer.producer_id, producer.producer_epoch), (init.producer_id, i32::from(init.producer_epoch)));
        assert_eq!((producer.last_sequence, producer.current_txn_start_offset), (3, -1));
        assert_eq!(producer.coordinator_epoch, -1);
        assert!(producer.last_timestamp > 0);
        assert_eq!((partitions[1].error_code, partitions[1].active_producers.len()), (0, 0));
        assert_eq!(partitions[2].error_code, UNKNOWN_TOPIC_OR_PARTITION);
        assert_eq!(response.topics[1].partitions[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    });
}

#[test]
fn confluent_kafka_read_committed_sees_only_committed_transactions() {
    let mut broker = Broker::start(&["--cores", "2"]);
    create_topic(&broker, TOPIC);
    let output = Command::new(python())
        .arg(client_script("read_committed.py"))
        .args(["--bootstrap", &broker.addr, "--topic", TOPIC, "--partitions", "2"])
        .output()
        .expect("run read_committed.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("PASS read_committed"),
        "{}\nread_committed.py failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        fail_line(&stdout).unwrap_or("no FAIL line")
    );

    // Partition 0 now holds: the aborted transaction (from offset 0) and its marker, the
    // committed one and its marker, and the open one, which holds the LSO below the HW. So it
    // does after a crash: the aborted-transaction index and the open transaction are recovered.
    let before = check_transactions(&broker.addr);
    broker.restart();
    assert_eq!(check_transactions(&broker.addr), before, "(LSO, HW) after a SIGKILL and a restart");
}

/// Checks partition 0 after read_committed.py through ListOffsets, DescribeProducers and Fetch;
/// returns its (last stable offset, high watermark).
fn check_transactions(addr: &str) -> (i64, i64) {
    let addr = addr.to_string();
    run_on_shard(move || async move {
        let client = Client::connect(ClientConfig::new([addr.clone()])).await.unwrap();
        let connection = client.any_connection().await.unwrap();
        let (_, high_watermark) = list(&connection, 0, -1).await;
        let (_, last_stable_offset) = list(&connection, 1, -1).await;
        assert!(0 < last_stable_offset && last_stable_offset < high_watermark, "{last_stable_offset} {high_watermark}");

        let request = DescribeProducersRequest {
            topics: vec![DescribeProducersRequestTopic { name: TOPIC.to_string(), partition_indexes: vec![0] }],
        };
        let response = connection.send(&request).await.unwrap();
        let producers = &response.topics[0].partitions[0].active_producers;
        assert_eq!(producers.len(), 1, "{producers:?}");
        let producer = &producers[0];
        assert_eq!(producer.current_txn_start_offset, last_stable_offset, "the open transaction holds the LSO");
        assert!(producer.coordinator_epoch >= 0, "markers were written: {producer:?}");

        for version in [connection.version(ApiKey::Fetch).unwrap(), 4] {
            let response = connection.send_at(&fetch_request(0, 1, 0), version).await.unwrap();
            let partition = only_partition(&response);
            assert_eq!((partition.high_watermark, partition.last_stable_offset), (high_watermark, last_stable_offset));
            let aborted = partition.aborted_transactions.as_deref().unwrap_or_default();
            assert_eq!(aborted.len(), 1, "v{version}: {aborted:?}");
            assert_eq!((aborted[0].producer_id, aborted[0].first_offset), (producer.producer_id, 0));
            // From past the aborted transaction, nothing to drop.
            let response = connection.send_at(&fetch_request(last_stable_offset - 1, 1, 0), version).await.unwrap();
            assert_eq!(only_partition(&response).aborted_transactions, Some(vec![]), "v{version}");
        }
        (last_stable_offset, high_watermark)
    })
}
