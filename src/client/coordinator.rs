//! Finding a coordinator: the broker that coordinates a consumer group or a transactional id
//! (FindCoordinator), retried while the coordinator is loading or moving, as Kafka's clients do.

use glommio::timer::Timer;

use super::connection::Connection;
use super::error::ClientError;
use super::metadata::Client;
use crate::protocol::ErrorCode;
use crate::protocol::messages::FindCoordinatorRequest;

/// What a coordinator coordinates (FindCoordinator's key type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorKind {
    /// A consumer group.
    Group,
    /// A transactional id.
    Transaction,
}

impl CoordinatorKind {
    fn key_type(self) -> i8 {
        match self {
            CoordinatorKind::Group => 0,
            CoordinatorKind::Transaction => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CoordinatorKind::Group => "group",
            CoordinatorKind::Transaction => "transactional id",
        }
    }
}

/// The broker id and a connection of `key`'s coordinator, retrying (up to the client's retries)
/// while the coordinator is loading or not yet known.
pub async fn find_coordinator(
    client: &Client,
    key: &str,
    kind: CoordinatorKind,
) -> Result<(i32, Connection), ClientError> {
    let mut attempt = 0;
    loop {
        match find_once(client, key, kind).await {
            Ok(found) => return Ok(found),
            Err(e) if attempt < client.config().retries && coordinator_moving(&e) => {
                attempt += 1;
                Timer::new(client.config().retry_backoff).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn find_once(client: &Client, key: &str, kind: CoordinatorKind) -> Result<(i32, Connection), ClientError> {
    // Both shapes are filled in: v0-3 carry `key`, v4+ `coordinator_keys`, and the encoder
    // writes only the fields of the version negotiated.
    let request = FindCoordinatorRequest {
        key: key.to_string(),
        key_type: kind.key_type(),
        coordinator_keys: vec![key.to_string()],
    };
    let connection = client.any_connection().await?;
    let response = connection.send(&request).await?;
    let context = || format!("finding the coordinator of {} {key}", kind.name());
    let (node_id, host, port) = match response.coordinators.into_iter().find(|c| c.key == key) {
        Some(c) => {
            if let Some(error) = ClientError::from_code(c.error_code, context, c.error_message.as_deref()) {
                return Err(error);
            }
            (c.node_id, c.host, c.port)
        }
        None => {
            if let Some(error) = ClientError::from_code(response.error_code, context, response.error_message.as_deref())
            {
                return Err(error);
            }
            (response.node_id, response.host, response.port)
        }
    };
    let connection = client.connection(&format!("{host}:{port}")).await?;
    Ok((node_id, connection))
}

/// Whether `error` says the coordinator is elsewhere or not ready: worth asking again.
pub fn coordinator_moving(error: &ClientError) -> bool {
    matches!(
        error.code(),
        Some(ErrorCode::CoordinatorNotAvailable | ErrorCode::CoordinatorLoadInProgress | ErrorCode::NotCoordinator)
    )
}
