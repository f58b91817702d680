//! [`TxnAdmin`]: transactions seen from outside, as Kafka's `kafka-transactions` tool sees them:
//! list them (ListTransactions on every broker), describe one (DescribeTransactions at its
//! coordinator), describe a partition's producers (DescribeProducers at its leader), and abort:
//! an open transaction by id (EndTxn with its producer's id and epoch, as if the producer
//! aborted), or a hanging one by partition and start offset (WriteTxnMarkers at the leader).
//!
//! Concurrency: like [`Client`], a cheap handle for one executor; each call is independent.

use std::collections::BTreeMap;

use super::coordinator::{CoordinatorKind, find_coordinator};
use super::error::ClientError;
use super::metadata::Client;
use crate::protocol::messages::{
    DescribeProducersRequest, DescribeProducersRequestTopic, DescribeTransactionsRequest, EndTxnRequest,
    ListTransactionsRequest, WriteTxnMarkersRequest, WriteTxnMarkersRequestMarker, WriteTxnMarkersRequestTopic,
};

/// A transaction as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// Kafka's state name (`Ongoing`, `CompleteCommit`, …).
    pub state: String,
}

/// A transaction as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// The coordinator's broker id.
    pub coordinator: i32,
    /// Kafka's state name.
    pub state: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// When the open transaction began (ms since the epoch), or -1.
    pub start_time_ms: i64,
    /// The partitions of the open transaction, by topic.
    pub partitions: Vec<(String, Vec<i32>)>,
}

/// One producer with state on a partition, as DescribeProducers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i32,
    /// The sequence of its last record, or -1.
    pub last_sequence: i32,
    /// When it last wrote, or -1.
    pub last_timestamp: i64,
    /// The coordinator epoch of its last marker.
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction, if one is open.
    pub current_txn_start_offset: Option<i64>,
}

/// Transaction administration over a [`Client`]. See the module docs.
#[derive(Clone)]
pub struct TxnAdmin {
    client: Client,
}

impl TxnAdmin {
    /// A transaction admin over `client`.
    pub fn new(client: Client) -> TxnAdmin {
        TxnAdmin { client }
    }

    /// Every transactional id of every broker, sorted by id; `states` (Kafka's names) filters
    /// when not empty.
    pub async fn list(&self, states: &[String]) -> Result<Vec<TransactionListing>, ClientError> {
        let metadata = self.client.refresh_metadata(Some(&[])).await?;
        let mut brokers: Vec<i32> = metadata.brokers.keys().copied().collect();
        brokers.sort_unstable();
        let mut out = BTreeMap::new();
        for broker in brokers {
            let connection = self.client.broker_connection(broker).await?;
            let request =
                ListTransactionsRequest { state_filters: states.to_vec(), duration_filter: -1, ..Default::default() };
            let response = connection.send(&request).await?;
            let context = || format!("listing the transactions of broker {broker}");
            if let Some(error) = ClientError::from_code(response.error_code, context, None) {
                return Err(error);
            }
            for t in response.transaction_states {
                let listing = TransactionListing {
                    transactional_id: t.transactional_id.clone(),
                    producer_id: t.producer_id,
                    state: t.transaction_state,
                };
                out.insert(t.transactional_id, listing);
            }
        }
        Ok(out.into_values().collect())
    }

    /// Describes the transaction of `transactional_id` (TRANSACTIONAL_ID_NOT_FOUND if the
    /// coordinator does not know it).
    pub async fn describe(&self, transactional_id: &str) -> Result<TransactionDescription, ClientError> {
        let (coordinator, connection) =
            find_coordinator(&self.client, transactional_id, CoordinatorKind::Transaction).await?;
        let request = DescribeTransactionsRequest { transactional_ids: vec![transactional_id.to_string()] };
        let response = connection.send(&request).await?;
        let Some(t) = response.transaction_states.into_iter().find(|t| t.transactional_id == transactional_id) else {
            return Err(ClientError::Protocol {
                addr: connection.addr().to_string(),
                reason: format!("no DescribeTransactions result for {transactional_id}"),
            });
        };
        let context = || format!("describing transaction {transactional_id}");
        if let Some(error) = ClientError::from_code(t.error_code, context, None) {
            return Err(error);
        }
        Ok(TransactionDescription {
            transactional_id: t.transactional_id,
            coordinator,
            state: t.transaction_state,
            producer_id: t.producer_id,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.transaction_timeout_ms,
            start_time_ms: t.transaction_start_time_ms,
            partitions: t.topics.into_iter().map(|topic| (topic.topic, topic.partitions)).collect(),
        })
    }

    /// Aborts the open transaction of `transactional_id`, as its producer would (EndTxn with the
    /// producer's current id and epoch). The producer, if alive, sees its transaction aborted.
    pub async fn abort(&self, transactional_id: &str) -> Result<(), ClientError> {
        let description = self.describe(transactional_id).await?;
        if description.state != "Ongoing" {
            return Err(ClientError::InvalidArgument(format!(
                "transaction {transactional_id} is {}, not Ongoing: nothing to abort",
                description.state
            )));
        }
        let (_, connection) = find_coordinator(&self.client, transactional_id, CoordinatorKind::Transaction).await?;
        let request = EndTxnRequest {
            transactional_id: transactional_id.to_string(),
            producer_id: description.producer_id,
            producer_epoch: description.producer_epoch,
            committed: false,
        };
        let response = connection.send(&request).await?;
        let context = || format!("aborting transaction {transactional_id}");
        match ClientError::from_code(response.error_code, context, None) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// The producers with state on each partition of `topic`, by partition.
    pub async fn describe_producers(&self, topic: &str) -> Result<Vec<(i32, Vec<ProducerState>)>, ClientError> {
        let metadata = self.client.refresh_metadata(Some(&[topic.to_string()])).await?;
        let described = metadata.topics.get(topic).ok_or_else(|| ClientError::UnknownTopic(topic.to_string()))?;
        if let Some(error) = described.error() {
            return Err(error);
        }
        let mut out = Vec::new();
        for partition in &described.partitions {
            let connection = self.client.leader_connection(topic, partition.partition).await?;
            let request = DescribeProducersRequest {
                topics: vec![DescribeProducersRequestTopic {
                    name: topic.to_string(),
                    partition_indexes: vec![partition.partition],
                }],
            };
            let response = connection.send(&request).await?;
            for t in response.topics {
                for p in t.partitions {
                    let context = || format!("describing the producers of {topic}-{}", p.partition_index);
                    if let Some(error) = ClientError::from_code(p.error_code, context, p.error_message.as_deref()) {
                        return Err(error);
                    }
                    let producers = p
                        .active_producers
                        .into_iter()
                        .map(|a| ProducerState {
                            producer_id: a.producer_id,
                            producer_epoch: a.producer_epoch,
                            last_sequence: a.last_sequence,
                            last_timestamp: a.last_timestamp,
                            coordinator_epoch: a.coordinator_epoch,
                            current_txn_start_offset: (a.current_txn_start_offset >= 0)
                                .then_some(a.current_txn_start_offset),
                        })
                        .collect();
                    out.push((p.partition_index, producers));
                }
            }
        }
        out.sort_by_key(|(p, _)| *p);
        Ok(out)
    }

    /// Aborts a hanging transaction on one partition (Kafka's `abort --start-offset`): finds the
    /// producer whose open transaction there began at `start_offset` and writes an abort marker
    /// for it at the partition's leader.
    pub async fn abort_hanging(&self, topic: &str, partition: i32, start_offset: i64) -> Result<(), ClientError> {
        let producers = self.describe_producers(topic).await?;
        let found = producers
            .into_iter()
            .filter(|(p, _)| *p == partition)
            .flat_map(|(_, producers)| producers)
            .find(|p| p.current_txn_start_offset == Some(start_offset))
            .ok_or_else(|| {
                ClientError::InvalidArgument(format!(
                    "no open transaction on {topic}-{partition} starts at offset {start_offset}"
                ))
            })?;
        let connection = self.client.leader_connection(topic, partition).await?;
        let request = WriteTxnMarkersRequest {
            markers: vec![WriteTxnMarkersRequestMarker {
                producer_id: found.producer_id,
                producer_epoch: i16::try_from(found.producer_epoch).unwrap_or(i16::MAX),
                transaction_result: false,
                topics: vec![WriteTxnMarkersRequestTopic {
                    name: topic.to_string(),
                    partition_indexes: vec![partition],
                }],
                coordinator_epoch: found.coordinator_epoch,
            }],
        };
        let response = connection.send(&request).await?;
        for marker in response.markers {
            for t in marker.topics {
                for p in t.partitions {
                    let context = || format!("aborting the hanging transaction on {topic}-{partition}");
                    if let Some(error) = ClientError::from_code(p.error_code, context, None) {
                        return Err(error);
                    }
                }
            }
        }
        Ok(())
    }
}
