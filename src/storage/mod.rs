//! The partition log: segments of record batches on direct-I/O files, with offset and time
//! indexes, group-committed appends, recovery, retention, and reads that hand back either shared
//! in-memory batches or file ranges for sendfile. No network and no Kafka protocol in here.
//!
//! Layout of a partition directory `<data-dir>/<topic>-<partition>/`:
//! ```text
//! 00000000000000000000.log        batches, byte for byte as appended
//! 00000000000000000000.index      sparse offset index (relative offset u32 → position u32)
//! 00000000000000000000.timeindex  time index (max timestamp i64 → relative offset u32)
//! 00000000000000052311.log ...    the next segment, named by its base offset
//! leader-epoch-checkpoint         epoch → start offset (Kafka's text format)
//! log-start-offset                the log start offset, when DeleteRecords moved it
//! .clean-shutdown                 present only while the log is closed cleanly
//! ```

mod appender;
mod batch_cache;
mod config;
mod epochs;
pub mod io;
mod log;
mod notify;
mod offset_index;
mod read;
mod retention;
mod segment;
mod time_index;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use batch_cache::BatchCache;
pub use config::{CleanupPolicy, ConfigError, FlushMode, LogConfig, TOPIC_CONFIG_NAMES};
pub use log::{AppendInfo, HighWatermark, LogStats, OpenOptions, PartitionLog, PendingAppend};
pub use offset_index::{IndexEntry, OffsetIndex};
pub use read::{ReadLimits, ReadSlice};
pub use retention::RetentionReport;
pub use segment::{parse_segment_name, segment_file};
pub use time_index::{TimeEntry, TimeIndex};

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
    /// The log is closing or closed.
    #[error("log is closed")]
    Closed,
    /// A topic config value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
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
