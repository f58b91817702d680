//! [`Error`]: what can go wrong in the storage layer.

use std::sync::Arc;

use super::config::ConfigError;
use super::producer_state::ProducerError;
use crate::model::{BatchError, Offset};

/// What can go wrong in the storage layer. Mapped to Kafka error codes once, at the broker's
/// edge. Cloneable because one failed flush fails every append waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A batch on its way to append is malformed or too large (refused by `ValidBatches::new`).
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// A read or DeleteRecords asked for an offset outside `[log start, log end]` (or above the
    /// high watermark, for DeleteRecords).
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// What was asked for.
        requested: Offset,
        /// The log start offset.
        log_start: Offset,
        /// The upper bound that applied.
        log_end: Offset,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and to which file.
        context: String,
        /// The OS error.
        source: Arc<std::io::Error>,
    },
    /// An earlier I/O error took the log offline for appends; reads still work up to the last
    /// acknowledged batch. Reopening the log recovers it.
    #[error("log is offline after an I/O error: {0}")]
    Offline(String),
    /// A replicated batch does not continue the log: its base offset is not the log end (or the
    /// previous batch's next offset). The follower's log and its leader's have diverged, or a
    /// fetch answer was for another offset.
    #[error("replicated batch at offset {found} does not continue the log at {expected}")]
    NotContiguous {
        /// The offset the batch had to start at.
        expected: Offset,
        /// The base offset it has.
        found: Offset,
    },
    /// A replicated batch carries a leader epoch older than the log's latest below it (the
    /// epochs of a log never go down; recovery would cut the log there).
    #[error("replicated batch at offset {offset} has leader epoch {epoch}, older than the log's {latest}")]
    StaleEpoch {
        /// The batch's base offset.
        offset: Offset,
        /// Its leader epoch.
        epoch: i32,
        /// The latest epoch of the log below it.
        latest: i32,
    },
    /// The append's offsets were cut by a truncation (its leader changed and its log diverged),
    /// or the log is being truncated and takes no append until it is done.
    #[error("the log was truncated below the append")]
    Truncated,
    /// The log is closing or closed.
    #[error("log is closed")]
    Closed,
    /// A topic config value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A producer's batch or marker broke the idempotence or transaction rules.
    #[error(transparent)]
    Producer(#[from] ProducerError),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source: Arc::new(source) }
    }

    /// True if the error is about the disk (Kafka's `KAFKA_STORAGE_ERROR`), not the request.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self, Error::Io { .. } | Error::Offline(_))
    }
}
