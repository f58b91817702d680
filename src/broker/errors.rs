//! The one place broker and storage errors become Kafka error codes.

use super::controller::TopicError;
use super::fetch_session::SessionError;
use super::partition::PartitionError;
use crate::model::BatchError;
use crate::protocol::ErrorCode;
use crate::storage;

impl From<&BatchError> for ErrorCode {
    fn from(e: &BatchError) -> Self {
        match e {
            BatchError::TooLarge { .. } => ErrorCode::MessageTooLarge,
            // Kafka: a batch that is not v2 in a Produce v3+, or whose count disagrees with its
            // offsets, is an invalid record; bytes that do not check out are corrupt.
            BatchError::UnsupportedMagic(_) | BatchError::CountMismatch { .. } => ErrorCode::InvalidRecord,
            BatchError::Truncated { .. }
            | BatchError::InvalidLength(_)
            | BatchError::CrcMismatch { .. }
            | BatchError::UnknownCompression(_)
            | BatchError::Compression(_) => ErrorCode::CorruptMessage,
        }
    }
}

impl From<&storage::Error> for ErrorCode {
    fn from(e: &storage::Error) -> Self {
        match e {
            storage::Error::InvalidBatch(batch) => batch.into(),
            storage::Error::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            storage::Error::Io { .. } | storage::Error::Offline(_) => ErrorCode::KafkaStorageError,
            storage::Error::Closed => ErrorCode::NotLeaderOrFollower,
            storage::Error::Config(_) => ErrorCode::InvalidConfig,
        }
    }
}

impl From<&PartitionError> for ErrorCode {
    fn from(e: &PartitionError) -> Self {
        match e {
            PartitionError::UnknownTopicOrPartition => ErrorCode::UnknownTopicOrPartition,
            PartitionError::NotAvailable => ErrorCode::LeaderNotAvailable,
            PartitionError::Storage(e) => e.into(),
            PartitionError::InvalidRequiredAcks(_) => ErrorCode::InvalidRequiredAcks,
            PartitionError::Timeout => ErrorCode::RequestTimedOut,
            PartitionError::NoRecords => ErrorCode::CorruptMessage,
        }
    }
}

impl From<&TopicError> for ErrorCode {
    fn from(e: &TopicError) -> Self {
        match e {
            TopicError::InvalidName(_) | TopicError::Internal(_) => ErrorCode::InvalidTopicException,
            TopicError::AlreadyExists(_) => ErrorCode::TopicAlreadyExists,
            TopicError::Unknown => ErrorCode::UnknownTopicOrPartition,
            TopicError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
            TopicError::InvalidReplicationFactor(_) => ErrorCode::InvalidReplicationFactor,
            TopicError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            TopicError::InvalidReplicaAssignment(_) => ErrorCode::InvalidReplicaAssignment,
            TopicError::Storage(_) => ErrorCode::KafkaStorageError,
        }
    }
}

impl From<&SessionError> for ErrorCode {
    fn from(e: &SessionError) -> Self {
        match e {
            SessionError::NotFound => ErrorCode::FetchSessionIdNotFound,
            SessionError::InvalidEpoch => ErrorCode::InvalidFetchSessionEpoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_errors_map_as_kafka_does() {
        let code = |e: BatchError| ErrorCode::from(&PartitionError::from(e)).code();
        assert_eq!(code(BatchError::CrcMismatch { stored: 1, computed: 2 }), 2);
        assert_eq!(code(BatchError::TooLarge { size: 2, limit: 1 }), 10);
        assert_eq!(code(BatchError::UnsupportedMagic(1)), 87);
        assert_eq!(code(BatchError::CountMismatch { records_count: 1, last_offset_delta: 3 }), 87);
        let io = storage::Error::Io { context: "x".into(), source: std::sync::Arc::new(std::io::Error::other("full")) };
        assert_eq!(ErrorCode::from(&PartitionError::Storage(io)).code(), 56);
    }
}
