//! Per-log configuration under Kafka's topic-config names, parsed once and validated.

use std::time::Duration;

use crate::limits::{
    BATCH_BYTES_MAX, DELETE_RETENTION_MS_DEFAULT, INDEX_INTERVAL_BYTES_DEFAULT, MAX_MESSAGE_BYTES_DEFAULT,
    MIN_CLEANABLE_DIRTY_RATIO_DEFAULT, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
    SEGMENT_INDEX_BYTES_DEFAULT, SEGMENT_INDEX_BYTES_MIN, SEGMENT_MS_DEFAULT,
};

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// After fdatasync: an acknowledged record survives power loss. Appends that arrive during a
    /// flush share the next one (group commit).
    Sync,
    /// After the write reaches the file (survives a process crash); fdatasync every interval.
    Interval(Duration),
    /// After the write reaches the file; fdatasync only when a segment is sealed or closed.
    None,
}

impl FlushMode {
    /// Parses `sync`, `interval` or `none`; `interval` takes `interval_ms`.
    pub fn parse(name: &str, interval_ms: u64) -> Result<FlushMode, ConfigError> {
        match name {
            "sync" => Ok(FlushMode::Sync),
            "interval" => Ok(FlushMode::Interval(Duration::from_millis(interval_ms.max(1)))),
            "none" => Ok(FlushMode::None),
            other => Err(ConfigError::Invalid {
                name: "flush.mode".into(),
                value: other.into(),
                reason: "expected sync, interval or none".into(),
            }),
        }
    }
}

/// Kafka's `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// `delete`: whole segments are removed by retention.
    pub delete: bool,
    /// `compact`: the cleaner keeps the latest record per key.
    pub compact: bool,
}

/// The configuration of one partition log. Field names follow Kafka's topic configs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment past this size.
    pub segment_bytes: u32,
    /// `segment.ms`: roll a segment this old even if it is not full.
    pub segment_ms: u64,
    /// `segment.jitter.ms`: each segment rolls up to this much before `segment.ms` (a per-segment
    /// amount, see `roll_jitter_ms`), so that partitions created together do not all roll at once.
    pub segment_jitter_ms: u64,
    /// `segment.index.bytes`: roll once a segment's offset (or time) index would pass this size.
    pub segment_index_bytes: u32,
    /// `index.interval.bytes`: an offset index entry every this many bytes.
    pub index_interval_bytes: u32,
    /// `retention.ms`: delete closed segments whose newest record is older; `None` = forever.
    pub retention_ms: Option<u64>,
    /// `retention.bytes`: delete the oldest closed segments while the log is larger; `None` =
    /// unbounded.
    pub retention_bytes: Option<u64>,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: u32,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long compaction keeps tombstones (and transaction markers)
    /// after the clean that first saw them.
    pub delete_retention_ms: u64,
    /// `min.cleanable.dirty.ratio`: clean a compacted log once this share of its cleanable
    /// bytes is dirty (written since the last clean), in [0, 1].
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long after it was
    /// written (by its batch's largest timestamp).
    pub min_compaction_lag_ms: u64,
    /// `max.compaction.lag.ms`: a dirty record older than this makes its log cleanable
    /// whatever the dirty ratio.
    pub max_compaction_lag_ms: u64,
    /// When appends resolve (broker-wide `--flush-mode`, per log here).
    pub flush_mode: FlushMode,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: SEGMENT_MS_DEFAULT,
            segment_jitter_ms: 0,
            segment_index_bytes: SEGMENT_INDEX_BYTES_DEFAULT,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            max_message_bytes: MAX_MESSAGE_BYTES_DEFAULT,
            cleanup_policy: CleanupPolicy { delete: true, compact: false },
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            min_cleanable_dirty_ratio: MIN_CLEANABLE_DIRTY_RATIO_DEFAULT,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX as u64,
            flush_mode: FlushMode::Sync,
        }
    }
}

/// A topic config that cannot be applied (Kafka's `INVALID_CONFIG`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The name is not a Kafka topic config (Kafka's message).
    #[error("Unknown topic config name: {0}")]
    Unknown(String),
    /// The value does not parse or is out of range (Kafka's `ConfigException` text).
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    Invalid {
        /// Config name.
        name: String,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// The topic config names Sluice applies, in the order `DescribeConfigs` lists them.
pub const TOPIC_CONFIG_NAMES: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "index.interval.bytes",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
];

impl LogConfig {
    /// Applies one Kafka topic config (`retention.ms=86400000`, ...) on top of `self`.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let invalid =
            |reason: &str| ConfigError::Invalid { name: name.into(), value: value.into(), reason: reason.into() };
        // Kafka's wording: the type names its ConfigDef parser uses, its range validators' texts.
        let int = |min: i64, max: i64| -> Result<i64, ConfigError> {
            let kind = if max <= i64::from(i32::MAX) { "INT" } else { "LONG" };
            let v: i64 = value.trim().parse().map_err(|_| invalid(&format!("Not a number of type {kind}")))?;
            if v < min {
                return Err(invalid(&format!("Value must be at least {min}")));
            }
            if v > max {
                return Err(invalid(&format!("Value must be no more than {max}")));
            }
            Ok(v)
        };
        match name {
            "segment.bytes" => {
                self.segment_bytes = int(i64::from(SEGMENT_BYTES_MIN), i64::from(SEGMENT_BYTES_MAX))? as u32
            }
            "segment.ms" => self.segment_ms = int(1, i64::MAX)? as u64,
            "segment.jitter.ms" => self.segment_jitter_ms = int(0, i64::MAX)? as u64,
            "segment.index.bytes" => {
                self.segment_index_bytes = int(i64::from(SEGMENT_INDEX_BYTES_MIN), i64::from(i32::MAX))? as u32
            }
            "index.interval.bytes" => self.index_interval_bytes = int(0, i64::from(i32::MAX))? as u32,
            "retention.ms" => self.retention_ms = u64::try_from(int(-1, i64::MAX)?).ok(),
            "retention.bytes" => self.retention_bytes = u64::try_from(int(-1, i64::MAX)?).ok(),
            "max.message.bytes" => self.max_message_bytes = int(0, i64::from(BATCH_BYTES_MAX))? as u32,
            "delete.retention.ms" => self.delete_retention_ms = int(0, i64::MAX)? as u64,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = int(0, i64::MAX)? as u64,
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = int(1, i64::MAX)? as u64,
            "min.cleanable.dirty.ratio" => {
                let v: f64 = value.trim().parse().map_err(|_| invalid("Not a number of type DOUBLE"))?;
                if v.is_nan() || v < 0.0 {
                    return Err(invalid("Value must be no less than 0"));
                }
                if v > 1.0 {
                    return Err(invalid("Value must be no more than 1"));
                }
                self.min_cleanable_dirty_ratio = v;
            }
            "cleanup.policy" => {
                let mut policy = CleanupPolicy { delete: false, compact: false };
                for part in value.split(',').map(str::trim) {
                    match part {
                        "delete" => policy.delete = true,
                        "compact" => policy.compact = true,
                        _ => return Err(invalid("String must be one of: compact, delete")),
                    }
                }
                if !policy.delete && !policy.compact {
                    // Kafka accepts an empty list (no cleanup at all) since 4.0; the log here
                    // always has a policy, so it is refused rather than silently taken as delete.
                    return Err(invalid("Sluice needs at least one of compact, delete"));
                }
                self.cleanup_policy = policy;
            }
            _ => return Err(ConfigError::Unknown(name.into())),
        }
        Ok(())
    }

    /// The current value of a config named in [`TOPIC_CONFIG_NAMES`], as Kafka prints it.
    pub fn get(&self, name: &str) -> Option<String> {
        let optional = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
        Some(match name {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.jitter.ms" => self.segment_jitter_ms.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "retention.ms" => optional(self.retention_ms),
            "retention.bytes" => optional(self.retention_bytes),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "cleanup.policy" => match (self.cleanup_policy.delete, self.cleanup_policy.compact) {
                (true, true) => "compact,delete".into(),
                (false, true) => "compact".into(),
                _ => "delete".into(),
            },
            _ => return None,
        })
    }

    /// The jitter of the segment starting at `base_offset` in [0, min(`segment.jitter.ms`,
    /// `segment.ms`)): Kafka draws it at random per segment; a hash of the base offset spreads
    /// rolls as well and gives the same answer after a restart.
    pub fn roll_jitter_ms(&self, base_offset: i64) -> u64 {
        let bound = self.segment_jitter_ms.min(self.segment_ms);
        if bound == 0 {
            return 0;
        }
        // SplitMix64's finaliser: neighbouring base offsets get unrelated jitters.
        let mut x = base_offset as u64;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (x ^ (x >> 31)) % bound
    }

    /// Index entries a segment may hold before it rolls: `segment.index.bytes` over the entry
    /// size, as Kafka's `maxEntries` (the offset index has 8-byte entries, the time index 12).
    pub fn index_entries_max(&self, entry_bytes: usize) -> usize {
        (self.segment_index_bytes as usize / entry_bytes.max(1)).max(1)
    }

    /// The largest batch accepted: `max.message.bytes`, capped by the hard limit.
    pub fn batch_bytes_max(&self) -> usize {
        self.max_message_bytes.min(BATCH_BYTES_MAX) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_parse_and_print() {
        let mut config = LogConfig::default();
        config.set("retention.ms", "-1").unwrap();
        config.set("retention.bytes", "1048576").unwrap();
        config.set("segment.bytes", "65536").unwrap();
        config.set("cleanup.policy", "compact,delete").unwrap();
        assert_eq!(config.retention_ms, None);
        assert_eq!(config.get("retention.ms").unwrap(), "-1");
        assert_eq!(config.get("retention.bytes").unwrap(), "1048576");
        assert_eq!(config.get("cleanup.policy").unwrap(), "compact,delete");
        assert!(matches!(config.set("segment.bytes", "10"), Err(ConfigError::Invalid { .. })));
        assert!(matches!(config.set("segment.bytes", "ten"), Err(ConfigError::Invalid { .. })));
        assert!(matches!(config.set("no.such", "1"), Err(ConfigError::Unknown(_))));
        let error = config.set("min.cleanable.dirty.ratio", "2").unwrap_err().to_string();
        assert_eq!(error, "Invalid value 2 for configuration min.cleanable.dirty.ratio: Value must be no more than 1");
        let error = config.set("segment.ms", "0").unwrap_err().to_string();
        assert_eq!(error, "Invalid value 0 for configuration segment.ms: Value must be at least 1");
        config.set("segment.jitter.ms", "1000").unwrap();
        config.set("segment.ms", "600").unwrap();
        assert!((0..1000).all(|base| config.roll_jitter_ms(base) < 600));
        assert!((0..1000).any(|base| config.roll_jitter_ms(base) > 0));
        config.set("segment.index.bytes", "80").unwrap();
        assert_eq!(config.index_entries_max(8), 10);
        for name in TOPIC_CONFIG_NAMES {
            assert!(config.get(name).is_some(), "{name}");
        }
    }
}
