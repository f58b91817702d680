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
//! 00000000000000052311.snapshot   producer state before that offset (at rolls and clean close)
//! aborted-transactions            aborted transactions (Kafka's .txnindex entries, for the whole
//!                                 partition), on disk before each snapshot (see txn_index.rs)
//! .clean-shutdown                 present only while the log is closed cleanly
//! cleaner-offset-checkpoint       the first dirty offset of a compacted log (see cleaner/)
//! 00000000000000000000.log.cleaned a clean's new segment, before its swap (also .swap)
//! ```

mod appender;
mod batch_cache;
mod cleaner;
mod config;
mod epochs;
mod error;
mod file_cache;
pub mod io;
mod log;
mod notify;
mod offset_index;
pub(crate) mod producer_state;
mod read;
mod retention;
mod segment;
mod time_index;
mod txn_index;

#[cfg(test)]
mod tests;

pub use batch_cache::BatchCache;
pub use cleaner::{CleanReport, Cleanable, DedupeMap, IoBudget};
pub use config::{CleanupPolicy, ConfigError, FlushMode, LogConfig, TOPIC_CONFIG_NAMES};
pub use error::Error;
pub use file_cache::{FileCache, FileCacheConfig, FileCacheStats};
pub use log::{AppendInfo, HighWatermark, LogStats, OpenOptions, PartitionLog, PendingAppend};
pub use offset_index::{IndexEntry, OffsetIndex};
pub use producer_state::{
    Admission, BatchEntry, CompletedTxn, Origin, ProducerAppend, ProducerEntry, ProducerError, ProducerStateTable,
};
pub use read::{ReadLimits, ReadSlice};
pub use retention::RetentionReport;
pub use segment::{parse_segment_name, segment_file};
pub use time_index::{TimeEntry, TimeIndex};
pub use txn_index::AbortedTxn;
