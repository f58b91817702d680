//! Storage and batch errors as Kafka error codes. Each layer's own errors map to codes beside
//! their definitions (`PartitionError` in `partition/`, `TopicError` in `metadata/controller.rs`,
//! `SessionError` in `fetch_session.rs`), through these.

use crate::model::BatchError;
use crate::protocol::ErrorCode;
use crate::storage::{self, ProducerError};

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
            | BatchError::Compression(_)
            | BatchError::Records(_) => ErrorCode::CorruptMessage,
        }
    }
}

impl From<&storage::Error> for ErrorCode {
    fn from(e: &storage::Error) -> Self {
        match e {
            storage::Error::InvalidBatch(batch) => batch.into(),
            storage::Error::OffsetOutOfRange { .. }
            | storage::Error::NotContiguous { .. }
            | storage::Error::StaleEpoch { .. } => ErrorCode::OffsetOutOfRange,
            storage::Error::Truncated => ErrorCode::NotLeaderOrFollower,
            storage::Error::Io { .. } | storage::Error::Offline(_) => ErrorCode::KafkaStorageError,
            storage::Error::Closed => ErrorCode::NotLeaderOrFollower,
            storage::Error::Config(_) => ErrorCode::InvalidConfig,
            storage::Error::Producer(e) => match e {
                ProducerError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
                ProducerError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
                ProducerError::UnknownProducerId { .. } => ErrorCode::UnknownProducerId,
                ProducerError::InvalidTxnState(_) => ErrorCode::InvalidTxnState,
                ProducerError::CoordinatorFenced { .. } => ErrorCode::TransactionCoordinatorFenced,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_errors_map_as_kafka_does() {
        let code = |e: BatchError| ErrorCode::from(&storage::Error::InvalidBatch(e)).code();
        assert_eq!(code(BatchError::CrcMismatch { stored: 1, computed: 2 }), 2);
        assert_eq!(code(BatchError::TooLarge { size: 2, limit: 1 }), 10);
        assert_eq!(code(BatchError::UnsupportedMagic(1)), 87);
        assert_eq!(code(BatchError::CountMismatch { records_count: 1, last_offset_delta: 3 }), 87);
        let io = storage::Error::Io { context: "x".into(), source: std::sync::Arc::new(std::io::Error::other("full")) };
        assert_eq!(ErrorCode::from(&io).code(), 56);
    }
}
