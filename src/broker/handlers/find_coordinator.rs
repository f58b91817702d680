//! FindCoordinator: the coordinator of a group or transactional id is the leader of its
//! `__consumer_offsets` or `__transaction_state` partition; answering also creates that topic on
//! first use, as Kafka does.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse, FindCoordinatorResponseCoordinator};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// Key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// Key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// FindCoordinator (v0-3 one key, v4+ a batch).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: FindCoordinatorRequest) -> Reply {
    let keys = if header.api_version >= 4 { request.coordinator_keys.clone() } else { vec![request.key.clone()] };
    let mut answers = Vec::with_capacity(keys.len());
    for key in keys {
        let found = if key.is_empty() {
            Err(ErrorCode::InvalidRequest)
        } else {
            coordinator(broker, request.key_type, &key).await
        };
        answers.push(match found {
            Ok((node_id, host, port)) => {
                FindCoordinatorResponseCoordinator { key, node_id, host, port, error_code: 0, error_message: None }
            }
            Err(error) => FindCoordinatorResponseCoordinator {
                key,
                node_id: -1,
                host: String::new(),
                port: -1,
                error_code: error.code(),
                error_message: Some(format!("{error:?}")),
            },
        });
    }
    let response = if header.api_version >= 4 {
        FindCoordinatorResponse { coordinators: answers, ..Default::default() }
    } else {
        let a = answers.pop().unwrap_or_default();
        FindCoordinatorResponse {
            error_code: a.error_code,
            error_message: a.error_message,
            node_id: a.node_id,
            host: a.host,
            port: a.port,
            ..Default::default()
        }
    };
    respond(header, &response)
}

/// The broker (id, host, port) leading the internal partition that holds `key`.
async fn coordinator(broker: &Rc<ShardBroker>, key_type: i8, key: &str) -> Result<(i32, String, i32), ErrorCode> {
    let (topic, partition) = match key_type {
        KEY_TYPE_GROUP => {
            let partitions = broker.groups.ensure_offsets_topic().await?;
            (crate::group::OFFSETS_TOPIC, crate::group::partition_for(key, partitions))
        }
        KEY_TYPE_TRANSACTION => {
            let partitions = broker.transactions.ensure_topic().await?;
            (crate::txn::TRANSACTION_TOPIC, crate::txn::partition_for(key, partitions))
        }
        _ => return Err(ErrorCode::InvalidRequest),
    };
    let image = broker.metadata.image();
    let leader = usize::try_from(partition)
        .ok()
        .and_then(|index| image.topics.get(topic)?.partitions.get(index))
        .map(|p| p.leader)
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let live = image.brokers.get(&leader).filter(|b| !b.fenced).ok_or(ErrorCode::CoordinatorNotAvailable)?;
    Ok((live.id, live.host.clone(), i32::from(live.port)))
}
