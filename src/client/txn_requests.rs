//! The requests a transactional producer makes of its transaction coordinator (and of a
//! group's coordinator, for offsets), each retried while the coordinator is loading, moving or
//! busy finishing the previous transaction, as Kafka's clients do. [`super::Producer`] holds
//! the state; this file only speaks the protocol.

use std::collections::BTreeMap;

use glommio::timer::Timer;

use super::coordinator::{CoordinatorKind, coordinator_moving, find_coordinator};
use super::error::ClientError;
use super::metadata::Client;
use super::sequencing::ProducerIdentity;
use crate::model::ProducerId;
use crate::protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AddPartitionsToTxnRequestTopic, EndTxnRequest,
    InitProducerIdRequest, TxnOffsetCommitRequest, TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use crate::protocol::{ApiKey, ErrorCode};

/// Whether a transaction request that failed with `error` is worth sending again: the
/// coordinator moved or is loading, or it is still ending the previous transaction.
fn retriable(error: &ClientError) -> bool {
    coordinator_moving(error)
        || error.is_retriable()
        || matches!(error.code(), Some(ErrorCode::ConcurrentTransactions | ErrorCode::CoordinatorLoadInProgress))
}

/// Runs `attempt` against the coordinator of `key` until it succeeds, fails for good, or the
/// client's retries run out.
async fn with_coordinator<T, F>(
    client: &Client,
    key: &str,
    kind: CoordinatorKind,
    mut attempt: impl FnMut(super::connection::Connection) -> F,
) -> Result<T, ClientError>
where
    F: std::future::Future<Output = Result<T, ClientError>>,
{
    let config = client.config();
    let mut tries = 0;
    loop {
        let result = match find_coordinator(client, key, kind).await {
            Ok((_, connection)) => attempt(connection).await,
            Err(e) => Err(e),
        };
        match result {
            Err(e) if retriable(&e) && tries < config.retries => {
                tries += 1;
                Timer::new(config.retry_backoff).await;
            }
            result => return result,
        }
    }
}

fn check(code: i16, what: impl FnOnce() -> String) -> Result<(), ClientError> {
    match ClientError::from_code(code, what, None) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// InitProducerId for `transactional_id`: the producer id and epoch that fence every earlier
/// producer with the same id (`current`: the identity to bump, after an abort).
pub(super) async fn init(
    client: &Client,
    transactional_id: &str,
    timeout_ms: i32,
    current: Option<ProducerIdentity>,
) -> Result<ProducerIdentity, ClientError> {
    let request = InitProducerIdRequest {
        transactional_id: Some(transactional_id.to_string()),
        transaction_timeout_ms: timeout_ms,
        producer_id: current.map_or(ProducerId::NONE, |c| c.producer_id).0,
        producer_epoch: current.map_or(-1, |c| c.epoch),
    };
    with_coordinator(client, transactional_id, CoordinatorKind::Transaction, |connection| {
        let request = request.clone();
        async move {
            let response = connection.send(&request).await?;
            check(response.error_code, || format!("InitProducerId for {transactional_id}"))?;
            if response.producer_id < 0 || response.producer_epoch < 0 {
                return Err(ClientError::Protocol {
                    addr: connection.addr().to_string(),
                    reason: format!(
                        "InitProducerId gave id {} epoch {}",
                        response.producer_id, response.producer_epoch
                    ),
                });
            }
            Ok(ProducerIdentity {
                producer_id: ProducerId(response.producer_id),
                epoch: response.producer_epoch,
                transactional: true,
            })
        }
    })
    .await
}

/// AddPartitionsToTxn: `partitions` join the open transaction.
pub(super) async fn add_partitions(
    client: &Client,
    transactional_id: &str,
    identity: ProducerIdentity,
    partitions: &[(String, i32)],
) -> Result<(), ClientError> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic.as_str()).or_default().push(*partition);
    }
    let topics: Vec<AddPartitionsToTxnRequestTopic> = by_topic
        .into_iter()
        .map(|(name, partitions)| AddPartitionsToTxnRequestTopic { name: name.to_string(), partitions })
        .collect();
    let request = AddPartitionsToTxnRequest {
        v3_and_below_transactional_id: transactional_id.to_string(),
        v3_and_below_producer_id: identity.producer_id.0,
        v3_and_below_producer_epoch: identity.epoch,
        v3_and_below_topics: topics,
        ..Default::default()
    };
    with_coordinator(client, transactional_id, CoordinatorKind::Transaction, |connection| {
        let request = request.clone();
        async move {
            // v4+ is the brokers' batched form (KIP-890); a producer speaks v3 at most.
            let version = connection.version(ApiKey::AddPartitionsToTxn)?.min(ADD_PARTITIONS_VERSION_MAX);
            let response = connection.send_at(&request, version).await?;
            for topic in &response.results_by_topic_v3_and_below {
                for p in &topic.results_by_partition {
                    check(p.partition_error_code, || {
                        format!("adding {}-{} to the transaction", topic.name, p.partition_index)
                    })?;
                }
            }
            Ok(())
        }
    })
    .await
}

/// AddOffsetsToTxn then TxnOffsetCommit: `offsets` (topic, partition, next offset) of `group`
/// commit with the transaction.
pub(super) async fn send_offsets(
    client: &Client,
    transactional_id: &str,
    identity: ProducerIdentity,
    group: &str,
    offsets: &[(String, i32, i64)],
) -> Result<(), ClientError> {
    let add = AddOffsetsToTxnRequest {
        transactional_id: transactional_id.to_string(),
        producer_id: identity.producer_id.0,
        producer_epoch: identity.epoch,
        group_id: group.to_string(),
    };
    with_coordinator(client, transactional_id, CoordinatorKind::Transaction, |connection| {
        let add = add.clone();
        async move {
            let response = connection.send(&add).await?;
            check(response.error_code, || format!("adding group {group}'s offsets to the transaction"))
        }
    })
    .await?;
    let mut by_topic: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
    for (topic, partition, offset) in offsets {
        by_topic.entry(topic.as_str()).or_default().push(TxnOffsetCommitRequestPartition {
            partition_index: *partition,
            committed_offset: *offset,
            committed_leader_epoch: -1,
            committed_metadata: None,
        });
    }
    let commit = TxnOffsetCommitRequest {
        transactional_id: transactional_id.to_string(),
        group_id: group.to_string(),
        producer_id: identity.producer_id.0,
        producer_epoch: identity.epoch,
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        topics: by_topic
            .into_iter()
            .map(|(name, partitions)| TxnOffsetCommitRequestTopic { name: name.to_string(), partitions })
            .collect(),
    };
    with_coordinator(client, group, CoordinatorKind::Group, |connection| {
        let commit = commit.clone();
        async move {
            let response = connection.send(&commit).await?;
            for topic in &response.topics {
                for p in &topic.partitions {
                    check(p.error_code, || {
                        format!("committing {}-{} in the transaction", topic.name, p.partition_index)
                    })?;
                }
            }
            Ok(())
        }
    })
    .await
}

/// EndTxn: commits or aborts the open transaction; answered once every partition has its
/// marker.
pub(super) async fn end(
    client: &Client,
    transactional_id: &str,
    identity: ProducerIdentity,
    commit: bool,
) -> Result<(), ClientError> {
    let request = EndTxnRequest {
        transactional_id: transactional_id.to_string(),
        producer_id: identity.producer_id.0,
        producer_epoch: identity.epoch,
        committed: commit,
    };
    let what = if commit { "committing" } else { "aborting" };
    with_coordinator(client, transactional_id, CoordinatorKind::Transaction, |connection| {
        let request = request.clone();
        async move {
            // EndTxn v5+ bumps the epoch (KIP-890 part 2), which this producer does not track:
            // ask for v4 at most.
            let version = connection.version(ApiKey::EndTxn)?.min(END_TXN_VERSION_MAX);
            let response = connection.send_at(&request, version).await?;
            check(response.error_code, || format!("{what} the transaction of {transactional_id}"))
        }
    })
    .await
}

/// The newest EndTxn this producer sends: v5 would bump its epoch at every transaction.
const END_TXN_VERSION_MAX: i16 = 4;
/// The newest AddPartitionsToTxn a producer sends: v4+ is the brokers' batched form.
const ADD_PARTITIONS_VERSION_MAX: i16 = 3;
