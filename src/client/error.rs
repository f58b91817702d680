//! [`ClientError`]: what can go wrong between the client and a broker.

use std::time::Duration;

use crate::model::CompressionError;
use crate::protocol::{ApiKey, DecodeError, EncodeError, ErrorCode};

/// An error of the client. `Clone`, so that one connection failure can fail every request that
/// was in flight on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No TCP connection could be made to `addr` (refused, unreachable, or timed out).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// None of the bootstrap servers could be reached.
    #[error("no bootstrap server reachable ({tried}): {last}")]
    NoBrokerReachable {
        /// The addresses tried, comma-separated.
        tried: String,
        /// The last failure.
        last: Box<ClientError>,
    },
    /// The connection failed or was closed while requests were in flight.
    #[error("connection to {addr} failed: {reason}")]
    Network {
        /// The broker's address.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// No response came within the request timeout.
    #[error("{api:?} request to {addr} timed out after {after:?}")]
    Timeout {
        /// The API of the request.
        api: ApiKey,
        /// The broker's address.
        addr: String,
        /// The timeout in force.
        after: Duration,
    },
    /// The broker answered with an error code.
    #[error("broker error {} ({code}) for {context}{}", name(*code), suffix(message.as_deref()))]
    Broker {
        /// The wire error code.
        code: i16,
        /// What it was about (a topic, a partition, a request).
        context: String,
        /// The broker's error message, if it sent one.
        message: Option<String>,
    },
    /// A response could not be decoded, or did not match its request.
    #[error("bad response from {addr}: {reason}")]
    Protocol {
        /// The broker's address.
        addr: String,
        /// What was wrong.
        reason: String,
    },
    /// A request could not be encoded.
    #[error("cannot encode request: {0}")]
    Encode(#[from] EncodeError),
    /// The broker does not support any version of an API that this client implements.
    #[error("broker at {addr} supports no version of {api:?} that this client speaks")]
    UnsupportedApi {
        /// The API.
        api: ApiKey,
        /// The broker's address.
        addr: String,
    },
    /// A topic is not in the cluster's metadata.
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// A partition is not in the topic, or has no leader the client can reach.
    #[error("no leader for {topic}-{partition}")]
    NoLeader {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// A batch could not be compressed.
    #[error("{0}")]
    Compression(#[from] CompressionError),
    /// The caller's arguments are invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A configuration whose settings contradict each other (Kafka's `ConfigException`),
    /// refused when the client object is made.
    #[error("invalid configuration: {0}")]
    Config(String),
}

fn name(code: i16) -> String {
    match ErrorCode::from_i16(code) {
        Some(known) => format!("{known:?}"),
        None => "unknown".to_string(),
    }
}

fn suffix(message: Option<&str>) -> String {
    message.map(|m| format!(": {m}")).unwrap_or_default()
}

impl ClientError {
    /// A broker error for `code`, or `None` when `code` is 0 (no error).
    pub fn from_code(code: i16, context: impl FnOnce() -> String, message: Option<&str>) -> Option<ClientError> {
        (code != 0).then(|| ClientError::Broker { code, context: context(), message: message.map(str::to_string) })
    }

    /// A decode failure of a response from `addr`.
    pub(crate) fn decode(addr: &str, error: DecodeError) -> ClientError {
        ClientError::Protocol { addr: addr.to_string(), reason: error.to_string() }
    }

    /// The broker error code, if this is a broker error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => ErrorCode::from_i16(*code),
            _ => None,
        }
    }

    /// Whether retrying (after a metadata refresh) may succeed: network failures, timeouts and
    /// the broker codes Kafka marks retriable for leadership changes (UNKNOWN_TOPIC_OR_PARTITION
    /// among them, as in Kafka: a restarting broker answers it until its partitions are open).
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Network { .. } | ClientError::Timeout { .. } | ClientError::Connect { .. } => true,
            ClientError::NoLeader { .. } => true,
            ClientError::Broker { code, .. } => matches!(
                ErrorCode::from_i16(*code),
                Some(
                    ErrorCode::NotLeaderOrFollower
                        | ErrorCode::UnknownTopicOrPartition
                        | ErrorCode::LeaderNotAvailable
                        | ErrorCode::RequestTimedOut
                        | ErrorCode::NetworkException
                        | ErrorCode::NotEnoughReplicas
                        | ErrorCode::NotEnoughReplicasAfterAppend
                )
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_name_their_code() {
        let e = ClientError::from_code(6, || "t-0".into(), None).unwrap();
        assert_eq!(e.to_string(), "broker error NotLeaderOrFollower (6) for t-0");
        assert!(e.is_retriable());
        assert!(ClientError::from_code(0, || "t".into(), None).is_none());
        let e = ClientError::from_code(2, || "t".into(), Some("no such topic")).unwrap();
        assert!(!e.is_retriable());
        assert!(e.to_string().ends_with(": no such topic"), "{e}");
    }
}
