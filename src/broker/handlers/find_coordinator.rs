//! FindCoordinator: this broker coordinates every group and transactional id (single broker);
//! answering also creates `__consumer_offsets` or `__transaction_state` on first use, as Kafka
//! does.

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
        let error = if key.is_empty() {
            ErrorCode::InvalidRequest
        } else {
            let ready = match request.key_type {
                KEY_TYPE_GROUP => broker.groups.ensure_offsets_topic().await,
                KEY_TYPE_TRANSACTION => broker.transactions.ensure_topic().await,
                _ => Err(ErrorCode::InvalidRequest),
            };
            match ready {
                Ok(_) => ErrorCode::None,
                Err(e) => e,
            }
        };
        let ok = error == ErrorCode::None;
        answers.push(FindCoordinatorResponseCoordinator {
            key,
            node_id: if ok { broker.config.node_id } else { -1 },
            host: if ok { broker.config.advertised_host.clone() } else { String::new() },
            port: if ok { i32::from(broker.config.advertised_port) } else { -1 },
            error_code: error.code(),
            error_message: (!ok).then(|| format!("{error:?}")),
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
