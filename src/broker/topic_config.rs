//! Kafka's topic configs and the broker configs that default them: every topic config Kafka 4.1
//! defines ([`TOPIC_CONFIGS`]: type, default, range, broker synonyms, documentation), the broker
//! configs AlterConfigs may change at run time ([`dynamic_broker_config`]), and a topic's
//! effective configuration ([`TopicConfig`]), resolved as Kafka layers it:
//!
//! topic override > this broker's dynamic config > the cluster-wide dynamic default > the
//! broker's flag (static) > Kafka's default.
//!
//! Overrides and dynamic broker configs live in the metadata image (controller records), so every
//! broker resolves the same layers; [`TopicDefaults`] is the broker part of them for one broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{CompressionType, TimestampType};
use crate::storage::{ConfigError, FlushMode, LogConfig, TOPIC_CONFIG_NAMES};

/// Where a config value came from (DescribeConfigs' `config_source`, Kafka's numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (CreateTopics, AlterConfigs): `DYNAMIC_TOPIC_CONFIG`.
    TopicOverride,
    /// Set for this broker by AlterConfigs on `BROKER <id>`: `DYNAMIC_BROKER_CONFIG`.
    DynamicBroker,
    /// Set for every broker by AlterConfigs on `BROKER ""`: `DYNAMIC_DEFAULT_BROKER_CONFIG`.
    DynamicDefaultBroker,
    /// Set by a broker flag: `STATIC_BROKER_CONFIG`.
    StaticBroker,
    /// Kafka's default: `DEFAULT_CONFIG`.
    Default,
}

impl ConfigSource {
    /// Kafka's numbering of config sources.
    pub fn wire(self) -> i8 {
        match self {
            ConfigSource::TopicOverride => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// Kafka's config types (`ConfigDef.Type`), as DescribeConfigs v3+ numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true` or `false`.
    Boolean,
    /// Any string, or one of a set.
    String,
    /// A 32-bit integer.
    Int,
    /// A 64-bit integer.
    Long,
    /// A floating point number.
    Double,
    /// A comma-separated list.
    List,
}

impl ConfigType {
    /// DescribeConfigs' `config_type`.
    pub fn wire(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// A value's allowed range, Kafka's validators.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// Anything of the type.
    Any,
    /// `atLeast(n)`.
    AtLeast(i64),
    /// `between(min, max)` of a double.
    Between(f64, f64),
    /// `in(...)`: one of these strings.
    OneOf(&'static [&'static str]),
    /// `ValidList.in(...)`: each element one of these.
    ListOf(&'static [&'static str]),
    /// A compression level in [min, max], or `extra` (gzip's -1, its library default).
    Level(i64, i64, Option<i64>),
    /// `ThrottledReplicaListValidator`: `*`, or `partition:broker` pairs.
    ThrottledReplicas,
}

/// A broker config that defaults a topic config, with Kafka's default for it if it has one.
#[derive(Debug, Clone, Copy)]
pub struct Synonym {
    /// The broker config's name.
    pub name: &'static str,
    /// Its default in Kafka (`None`: Kafka's default is null, e.g. `log.retention.ms`, which
    /// falls back to the synonyms after it).
    pub kafka_default: Option<&'static str>,
}

const fn syn(name: &'static str, kafka_default: &'static str) -> Synonym {
    Synonym { name, kafka_default: Some(kafka_default) }
}

const fn syn_null(name: &'static str) -> Synonym {
    Synonym { name, kafka_default: None }
}

/// One Kafka topic config.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub config_type: ConfigType,
    /// Kafka's default, as DescribeConfigs prints it.
    pub default: &'static str,
    check: Check,
    /// The broker configs that default it, in Kafka's order (`ServerTopicConfigSynonyms`); the
    /// first is the one AlterConfigs may set dynamically.
    pub synonyms: &'static [Synonym],
    /// What it does (DescribeConfigs v3+ `documentation`).
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";

/// Every topic config of Kafka 4.1, sorted by name. README's "Topic configs" says which ones
/// Sluice applies and why the others are accepted without effect.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        config_type: ConfigType::List,
        default: "delete",
        check: Check::ListOf(&["compact", "delete"]),
        synonyms: &[syn("log.cleanup.policy", "delete")],
        doc: "delete: remove old segments by retention time or size; compact: keep the latest record per key. Both \
              may be given.",
    },
    TopicConfigDef {
        name: "compression.gzip.level",
        config_type: ConfigType::Int,
        default: "-1",
        check: Check::Level(1, 9, Some(-1)),
        synonyms: &[syn("compression.gzip.level", "-1")],
        doc: "The gzip level used when compression.type is gzip.",
    },
    TopicConfigDef {
        name: "compression.lz4.level",
        config_type: ConfigType::Int,
        default: "9",
        check: Check::Level(1, 17, None),
        synonyms: &[syn("compression.lz4.level", "9")],
        doc: "The lz4 level used when compression.type is lz4.",
    },
    TopicConfigDef {
        name: "compression.type",
        config_type: ConfigType::String,
        default: "producer",
        check: Check::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        synonyms: &[syn("compression.type", "producer")],
        doc: "The codec the topic's batches are stored with; producer keeps the codec the producer chose.",
    },
    TopicConfigDef {
        name: "compression.zstd.level",
        config_type: ConfigType::Int,
        default: "3",
        check: Check::Level(-131072, 22, None),
        synonyms: &[syn("compression.zstd.level", "3")],
        doc: "The zstd level used when compression.type is zstd.",
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        config_type: ConfigType::Long,
        default: "86400000",
        check: Check::AtLeast(0),
        synonyms: &[syn("log.cleaner.delete.retention.ms", "86400000")],
        doc: "How long a compacted topic keeps tombstones (and transaction markers) after they are cleaned.",
    },
    TopicConfigDef {
        name: "file.delete.delay.ms",
        config_type: ConfigType::Long,
        default: "60000",
        check: Check::AtLeast(0),
        synonyms: &[syn("log.segment.delete.delay.ms", "60000")],
        doc: "How long a deleted segment's files are kept before they are removed from disk.",
    },
    TopicConfigDef {
        name: "flush.messages",
        config_type: ConfigType::Long,
        default: LONG_MAX,
        check: Check::AtLeast(1),
        synonyms: &[syn("log.flush.interval.messages", LONG_MAX)],
        doc: "Force an fsync after this many records.",
    },
    TopicConfigDef {
        name: "flush.ms",
        config_type: ConfigType::Long,
        default: LONG_MAX,
        check: Check::AtLeast(0),
        synonyms: &[syn_null("log.flush.interval.ms"), syn("log.flush.scheduler.interval.ms", LONG_MAX)],
        doc: "Force an fsync when the oldest unflushed record is this old.",
    },
    TopicConfigDef {
        name: "follower.replication.throttled.replicas",
        config_type: ConfigType::List,
        default: "",
        check: Check::ThrottledReplicas,
        synonyms: &[],
        doc: "Replicas whose follower side is throttled: partition:broker pairs, or * for all.",
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        config_type: ConfigType::Int,
        default: "4096",
        check: Check::AtLeast(0),
        synonyms: &[syn("log.index.interval.bytes", "4096")],
        doc: "An offset index entry every this many bytes of the log.",
    },
    TopicConfigDef {
        name: "leader.replication.throttled.replicas",
        config_type: ConfigType::List,
        default: "",
        check: Check::ThrottledReplicas,
        synonyms: &[],
        doc: "Replicas whose leader side is throttled: partition:broker pairs, or * for all.",
    },
    TopicConfigDef {
        name: "local.retention.bytes",
        config_type: ConfigType::Long,
        default: "-2",
        check: Check::AtLeast(-2),
        synonyms: &[syn("log.local.retention.bytes", "-2")],
        doc: "With tiered storage, the bytes kept on local disk (-2: retention.bytes).",
    },
    TopicConfigDef {
        name: "local.retention.ms",
        config_type: ConfigType::Long,
        default: "-2",
        check: Check::AtLeast(-2),
        synonyms: &[syn("log.local.retention.ms", "-2")],
        doc: "With tiered storage, how long segments stay on local disk (-2: retention.ms).",
    },
    TopicConfigDef {
        name: "max.compaction.lag.ms",
        config_type: ConfigType::Long,
        default: LONG_MAX,
        check: Check::AtLeast(1),
        synonyms: &[syn("log.cleaner.max.compaction.lag.ms", LONG_MAX)],
        doc: "A record stays uncompacted at most this long: older dirty records make the log cleanable.",
    },
    TopicConfigDef {
        name: "max.message.bytes",
        config_type: ConfigType::Int,
        default: "1048588",
        check: Check::AtLeast(0),
        synonyms: &[syn("message.max.bytes", "1048588")],
        doc: "The largest record batch the topic accepts.",
    },
    TopicConfigDef {
        name: "message.timestamp.after.max.ms",
        config_type: ConfigType::Long,
        default: "3600000",
        check: Check::AtLeast(0),
        synonyms: &[syn("log.message.timestamp.after.max.ms", "3600000")],
        doc: "With CreateTime, a record whose timestamp is more than this ahead of the broker's clock is refused.",
    },
    TopicConfigDef {
        name: "message.timestamp.before.max.ms",
        config_type: ConfigType::Long,
        default: LONG_MAX,
        check: Check::AtLeast(0),
        synonyms: &[syn("log.message.timestamp.before.max.ms", LONG_MAX)],
        doc: "With CreateTime, a record whose timestamp is more than this behind the broker's clock is refused.",
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        config_type: ConfigType::String,
        default: "CreateTime",
        check: Check::OneOf(&["CreateTime", "LogAppendTime"]),
        synonyms: &[syn("log.message.timestamp.type", "CreateTime")],
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock.",
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        config_type: ConfigType::Double,
        default: "0.5",
        check: Check::Between(0.0, 1.0),
        synonyms: &[syn("log.cleaner.min.cleanable.ratio", "0.5")],
        doc: "A compacted log is cleaned once this share of it is dirty (written since the last clean).",
    },
    TopicConfigDef {
        name: "min.compaction.lag.ms",
        config_type: ConfigType::Long,
        default: "0",
        check: Check::AtLeast(0),
        synonyms: &[syn("log.cleaner.min.compaction.lag.ms", "0")],
        doc: "A record stays uncompacted at least this long after it is written.",
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        config_type: ConfigType::Int,
        default: "1",
        check: Check::AtLeast(1),
        synonyms: &[syn("min.insync.replicas", "1")],
        doc: "An acks=all produce needs this many in-sync replicas.",
    },
    TopicConfigDef {
        name: "preallocate",
        config_type: ConfigType::Boolean,
        default: "false",
        check: Check::Any,
        synonyms: &[syn("log.preallocate", "false")],
        doc: "Preallocate a new segment's file on disk.",
    },
    TopicConfigDef {
        name: "remote.log.copy.disable",
        config_type: ConfigType::Boolean,
        default: "false",
        check: Check::Any,
        synonyms: &[],
        doc: "With tiered storage, stop copying segments to remote storage.",
    },
    TopicConfigDef {
        name: "remote.log.delete.on.disable",
        config_type: ConfigType::Boolean,
        default: "false",
        check: Check::Any,
        synonyms: &[],
        doc: "With tiered storage, delete remote data when tiering is turned off.",
    },
    TopicConfigDef {
        name: "remote.storage.enable",
        config_type: ConfigType::Boolean,
        default: "false",
        check: Check::Any,
        synonyms: &[],
        doc: "Tiered storage: copy closed segments to remote storage.",
    },
    TopicConfigDef {
        name: "retention.bytes",
        config_type: ConfigType::Long,
        default: "-1",
        check: Check::Any,
        synonyms: &[syn("log.retention.bytes", "-1")],
        doc: "Delete the oldest segments while a partition is larger than this (-1: no limit).",
    },
    TopicConfigDef {
        name: "retention.ms",
        config_type: ConfigType::Long,
        default: "604800000",
        check: Check::AtLeast(-1),
        synonyms: &[syn_null("log.retention.ms"), syn_null("log.retention.minutes"), syn("log.retention.hours", "168")],
        doc: "Delete segments whose records are all older than this (-1: keep forever).",
    },
    TopicConfigDef {
        name: "segment.bytes",
        config_type: ConfigType::Int,
        default: "1073741824",
        check: Check::AtLeast(14),
        synonyms: &[syn("log.segment.bytes", "1073741824")],
        doc: "Roll to a new segment past this size.",
    },
    TopicConfigDef {
        name: "segment.index.bytes",
        config_type: ConfigType::Int,
        default: "10485760",
        check: Check::AtLeast(4),
        synonyms: &[syn("log.index.size.max.bytes", "10485760")],
        doc: "Roll to a new segment when its offset index would pass this size.",
    },
    TopicConfigDef {
        name: "segment.jitter.ms",
        config_type: ConfigType::Long,
        default: "0",
        check: Check::AtLeast(0),
        synonyms: &[syn_null("log.roll.jitter.ms"), syn("log.roll.jitter.hours", "0")],
        doc: "Each segment rolls up to this much before segment.ms, so that partitions do not all roll at once.",
    },
    TopicConfigDef {
        name: "segment.ms",
        config_type: ConfigType::Long,
        default: "604800000",
        check: Check::AtLeast(1),
        synonyms: &[syn_null("log.roll.ms"), syn("log.roll.hours", "168")],
        doc: "Roll a segment this old even if it is not full.",
    },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        config_type: ConfigType::Boolean,
        default: "false",
        check: Check::Any,
        synonyms: &[syn("unclean.leader.election.enable", "false")],
        doc: "With no live in-sync replica, elect an out-of-sync one (losing what only the others had).",
    },
];

/// `min.insync.replicas`.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
/// `unclean.leader.election.enable`.
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";
const TIMESTAMP_TYPE: &str = "message.timestamp.type";
const TIMESTAMP_BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
const TIMESTAMP_AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";
const COMPRESSION_TYPE: &str = "compression.type";

const FLUSH_MESSAGES: &str = "flush.messages";
const FLUSH_MS: &str = "flush.ms";

/// The broker's `--flush-mode`, made as strict as `flush.messages` and `flush.ms` ask: an
/// fsync per append for `flush.messages=1` or `flush.ms=0`, at most `flush.ms` between fsyncs
/// otherwise. Never looser than the broker's mode (Sync already flushes every append). Other
/// `flush.messages` values have no counter to drive them and are stored only. The flush mode
/// is taken when a partition opens (creation, restart).
fn stricter_flush(mode: FlushMode, flush_messages: i64, flush_ms: i64) -> FlushMode {
    if flush_messages == 1 || flush_ms == 0 {
        return FlushMode::Sync;
    }
    let Ok(ms) = u64::try_from(flush_ms) else { return mode };
    if flush_ms == i64::MAX {
        return mode;
    }
    let asked = Duration::from_millis(ms);
    match mode {
        FlushMode::Sync => FlushMode::Sync,
        FlushMode::Interval(every) => FlushMode::Interval(every.min(asked)),
        FlushMode::None => FlushMode::Interval(asked),
    }
}

/// The definition of topic config `name`.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

/// Every topic config name, sorted.
pub fn topic_config_names() -> Vec<&'static str> {
    TOPIC_CONFIGS.iter().map(|def| def.name).collect()
}

impl TopicConfigDef {
    /// Checks `value` as Kafka's `ConfigDef` does (type, then range), answering Kafka's text
    /// ("Invalid value 2 for configuration min.cleanable.dirty.ratio: Value must be no more
    /// than 1"). `name` is the name the value was given under (the topic config or a broker
    /// synonym).
    pub fn validate_as(&self, name: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid { name: name.into(), value: value.into(), reason };
        let trimmed = value.trim();
        let number = match self.config_type {
            ConfigType::Int => {
                Some(trimmed.parse::<i32>().map_err(|_| invalid("Not a number of type INT".into()))? as f64)
            }
            ConfigType::Long => {
                Some(trimmed.parse::<i64>().map_err(|_| invalid("Not a number of type LONG".into()))? as f64)
            }
            ConfigType::Double => Some(
                trimmed
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| invalid("Not a number of type DOUBLE".into()))?,
            ),
            ConfigType::Boolean => {
                if !trimmed.eq_ignore_ascii_case("true") && !trimmed.eq_ignore_ascii_case("false") {
                    return Err(invalid("Expected value to be either true or false".into()));
                }
                None
            }
            ConfigType::String | ConfigType::List => None,
        };
        match (self.check, number) {
            // Compared as integers: an f64 cannot tell i64::MAX from its neighbours.
            (Check::AtLeast(min), _)
                if self.config_type == ConfigType::Long && trimmed.parse::<i64>().is_ok_and(|v| v < min) =>
            {
                return Err(invalid(format!("Value must be at least {min}")));
            }
            (Check::AtLeast(_), _) if self.config_type == ConfigType::Long => {}
            (Check::AtLeast(min), Some(v)) if v < min as f64 => {
                return Err(invalid(format!("Value must be at least {min}")));
            }
            (Check::Between(min, max), Some(v)) => {
                if v < min {
                    return Err(invalid(format!("Value must be no less than {min}")));
                }
                if v > max {
                    return Err(invalid(format!("Value must be no more than {max}")));
                }
            }
            (Check::Level(min, max, extra), Some(v))
                if extra.is_none_or(|e| e as f64 != v) && (v < min as f64 || v > max as f64) =>
            {
                let or = extra.map(|e| format!(" or {e}")).unwrap_or_default();
                return Err(invalid(format!("Value must be between {min} and {max}{or}")));
            }
            (Check::OneOf(allowed), _) if !allowed.contains(&trimmed) => {
                return Err(invalid(format!("String must be one of: {}", allowed.join(", "))));
            }
            (Check::ListOf(allowed), _) => {
                if let Some(bad) = list_items(value).find(|item| !allowed.contains(item)) {
                    return Err(ConfigError::Invalid {
                        name: name.into(),
                        value: bad.into(),
                        reason: format!("String must be one of: {}", allowed.join(", ")),
                    });
                }
            }
            (Check::ThrottledReplicas, _) => {
                let items: Vec<&str> = list_items(value).collect();
                let pair = |item: &str| {
                    item.split_once(':')
                        .is_some_and(|(p, b)| p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok())
                };
                if !(items == ["*"] || items.iter().all(|item| pair(item))) {
                    return Err(invalid(
                        "must be the literal '*' or a list of replicas in the following format: \
                         [partitionId]:[brokerId],[partitionId]:[brokerId],..."
                            .into(),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The non-empty, trimmed elements of a list value.
fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|item| !item.is_empty())
}

/// Checks a topic config override: a Kafka topic config, a valid value, and within Sluice's own
/// limits (`segment.bytes` at least a disk block, a batch at most `BATCH_BYTES_MAX`, ...).
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let def = topic_config_def(name).ok_or_else(|| ConfigError::Unknown(name.into()))?;
    def.validate_as(name, value)?;
    if TOPIC_CONFIG_NAMES.contains(&name) {
        LogConfig::default().set(name, value)?;
    }
    Ok(())
}

/// The cleaner's broker configs (Kafka's `LogCleaner.ReconfigurableConfigs`, less
/// `message.max.bytes`, which is a topic default too).
const CLEANER_CONFIGS: &[BrokerConfigDef] = &[
    BrokerConfigDef {
        name: "log.cleaner.backoff.ms",
        config_type: ConfigType::Long,
        default: "15000",
        min: 0,
        doc: "How long the cleaner sleeps when no log is cleanable.",
    },
    BrokerConfigDef {
        name: "log.cleaner.dedupe.buffer.size",
        config_type: ConfigType::Long,
        default: "134217728",
        min: crate::limits::LOG_CLEANER_DEDUPE_BUFFER_BYTES_MIN as i64,
        doc: "Memory for the cleaner's key-to-offset map, over all cleaner threads (here: per shard).",
    },
    BrokerConfigDef {
        name: "log.cleaner.io.buffer.load.factor",
        config_type: ConfigType::Double,
        default: "0.9",
        min: 0,
        doc: "How full the cleaner's dedupe map may get (stored only).",
    },
    BrokerConfigDef {
        name: "log.cleaner.io.buffer.size",
        config_type: ConfigType::Int,
        default: "524288",
        min: 0,
        doc: "The cleaner's read and write buffers, over all cleaner threads (stored only).",
    },
    BrokerConfigDef {
        name: "log.cleaner.io.max.bytes.per.second",
        config_type: ConfigType::Double,
        default: "1.7976931348623157E308",
        min: 0,
        doc: "The cleaner's I/O budget, reads and writes together.",
    },
    BrokerConfigDef {
        name: "log.cleaner.threads",
        config_type: ConfigType::Int,
        default: "1",
        min: 0,
        doc: "Cleaner threads (stored only: here each shard cleans the logs it owns).",
    },
];

/// A broker config that is not a topic default: one of the cleaner's.
#[derive(Debug, Clone, Copy)]
pub struct BrokerConfigDef {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub config_type: ConfigType,
    /// Kafka's default, as DescribeConfigs prints it.
    pub default: &'static str,
    /// Its smallest value.
    min: i64,
    /// What it does.
    pub doc: &'static str,
}

/// A broker config AlterConfigs may change at run time.
#[derive(Debug, Clone, Copy)]
pub enum DynamicBrokerConfig {
    /// The first synonym of a topic config (`log.retention.ms`, `message.max.bytes`, ...):
    /// Kafka's `DynamicLogConfig.ReconfigurableConfigs`.
    TopicDefault(&'static TopicConfigDef),
    /// One of the cleaner's.
    Cleaner(&'static BrokerConfigDef),
}

impl DynamicBrokerConfig {
    /// Its type.
    pub fn config_type(&self) -> ConfigType {
        match self {
            DynamicBrokerConfig::TopicDefault(def) => def.config_type,
            DynamicBrokerConfig::Cleaner(def) => def.config_type,
        }
    }

    /// Kafka's default for it, if any.
    pub fn kafka_default(&self) -> Option<&'static str> {
        match self {
            DynamicBrokerConfig::TopicDefault(def) => def.synonyms.first().and_then(|s| s.kafka_default),
            DynamicBrokerConfig::Cleaner(def) => Some(def.default),
        }
    }

    /// Its documentation.
    pub fn doc(&self) -> &'static str {
        match self {
            DynamicBrokerConfig::TopicDefault(def) => def.doc,
            DynamicBrokerConfig::Cleaner(def) => def.doc,
        }
    }
}

/// The dynamic broker config named `name`, if AlterConfigs may set it.
pub fn dynamic_broker_config(name: &str) -> Option<DynamicBrokerConfig> {
    if let Some(def) = CLEANER_CONFIGS.iter().find(|def| def.name == name) {
        return Some(DynamicBrokerConfig::Cleaner(def));
    }
    TOPIC_CONFIGS
        .iter()
        .find(|def| def.synonyms.first().is_some_and(|s| s.name == name))
        .map(DynamicBrokerConfig::TopicDefault)
}

/// Every dynamic broker config name, sorted.
pub fn dynamic_broker_config_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = CLEANER_CONFIGS
        .iter()
        .map(|def| def.name)
        .chain(TOPIC_CONFIGS.iter().filter_map(|def| def.synonyms.first().map(|s| s.name)))
        .collect();
    names.sort_unstable();
    names
}

/// Checks a set of dynamic broker configs as Kafka does before storing them: every name
/// dynamic (else Kafka's "Cannot update these configs dynamically: Set(...)"), every value
/// valid for its type, range and Sluice's limits.
pub fn validate_dynamic_broker_configs(configs: &BTreeMap<String, String>) -> Result<(), BrokerConfigError> {
    let not_dynamic: Vec<&str> =
        configs.keys().map(String::as_str).filter(|name| dynamic_broker_config(name).is_none()).collect();
    if !not_dynamic.is_empty() {
        return Err(BrokerConfigError::NotDynamic(format!(
            "Cannot update these configs dynamically: Set({})",
            not_dynamic.join(", ")
        )));
    }
    for (name, value) in configs {
        match dynamic_broker_config(name) {
            Some(DynamicBrokerConfig::TopicDefault(def)) => {
                def.validate_as(name, value).map_err(BrokerConfigError::Invalid)?;
                if TOPIC_CONFIG_NAMES.contains(&def.name) {
                    LogConfig::default().set(def.name, value).map_err(|e| match e {
                        ConfigError::Invalid { value, reason, .. } => {
                            BrokerConfigError::Invalid(ConfigError::Invalid { name: name.clone(), value, reason })
                        }
                        other => BrokerConfigError::Invalid(other),
                    })?;
                }
            }
            Some(DynamicBrokerConfig::Cleaner(def)) => {
                let as_topic = TopicConfigDef {
                    name: def.name,
                    config_type: def.config_type,
                    default: def.default,
                    check: Check::AtLeast(def.min),
                    synonyms: &[],
                    doc: def.doc,
                };
                as_topic.validate_as(name, value).map_err(BrokerConfigError::Invalid)?;
            }
            None => {}
        }
    }
    Ok(())
}

/// Why dynamic broker configs were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BrokerConfigError {
    /// A name that is not a broker config AlterConfigs may change (Kafka: INVALID_REQUEST).
    #[error("{0}")]
    NotDynamic(String),
    /// A bad value (Kafka: INVALID_REQUEST too, its `ConfigException` text).
    #[error("{0}")]
    Invalid(ConfigError),
}

/// The broker's layers under a topic's overrides, by Kafka broker config name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerLayers {
    /// This broker's dynamic configs (AlterConfigs on `BROKER <id>`).
    pub dynamic_broker: BTreeMap<String, String>,
    /// The cluster-wide dynamic defaults (AlterConfigs on `BROKER ""`).
    pub dynamic_default: BTreeMap<String, String>,
    /// What the broker's flags set, under Kafka's names (only those that differ from Kafka's
    /// defaults: the flags cannot tell "given" from "left at its default").
    pub static_broker: BTreeMap<String, String>,
}

impl BrokerLayers {
    /// The layers in Kafka's order of precedence, with their sources.
    fn layers(&self) -> [(&BTreeMap<String, String>, ConfigSource); 3] {
        [
            (&self.dynamic_broker, ConfigSource::DynamicBroker),
            (&self.dynamic_default, ConfigSource::DynamicDefaultBroker),
            (&self.static_broker, ConfigSource::StaticBroker),
        ]
    }

    /// The value of broker config `name`: the highest layer's, else Kafka's default.
    pub fn value(&self, name: &str, kafka_default: Option<&str>) -> (Option<String>, ConfigSource) {
        self.layers()
            .into_iter()
            .find_map(|(layer, source)| layer.get(name).map(|v| (Some(v.clone()), source)))
            .unwrap_or((kafka_default.map(str::to_string), ConfigSource::Default))
    }

    /// Kafka's synonym list for broker config `primary` among `synonyms` (`ConfigHelper.
    /// configSynonyms`): each layer's values of every synonym, highest layer first, Kafka's
    /// defaults last, then everything before the first entry of `primary` dropped.
    pub fn synonyms(&self, primary: &str, synonyms: &[Synonym]) -> Vec<(String, String, ConfigSource)> {
        let mut out = Vec::new();
        for (layer, source) in self.layers() {
            for synonym in synonyms {
                if let Some(value) = layer.get(synonym.name) {
                    out.push((synonym.name.to_string(), value.clone(), source));
                }
            }
        }
        for synonym in synonyms {
            if let Some(value) = synonym.kafka_default {
                out.push((synonym.name.to_string(), value.to_string(), ConfigSource::Default));
            }
        }
        match out.iter().position(|(name, ..)| name == primary) {
            Some(at) => out.split_off(at),
            None => Vec::new(),
        }
    }
}

/// The broker's defaults for topic configs: the log's base (flush mode and the flags), and the
/// layers the topic's overrides go over.
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    /// What the broker's flags give the log (including `flush_mode`, not a topic config).
    pub log: LogConfig,
    /// The broker layers.
    pub layers: BrokerLayers,
}

impl TopicDefaults {
    /// Kafka's own defaults, with no broker flag set.
    pub fn default_kafka() -> Self {
        TopicDefaults::from(LogConfig::default())
    }

    /// The defaults of a broker whose flags give `log` and `replication` (min.insync.replicas,
    /// unclean.leader.election.enable), under the dynamic configs of the image.
    pub fn new(log: LogConfig, static_extra: &[(&str, String)], dynamic: DynamicLayers<'_>) -> Self {
        let kafka = LogConfig::default();
        let mut static_broker = BTreeMap::new();
        for def in TOPIC_CONFIGS.iter().filter(|def| TOPIC_CONFIG_NAMES.contains(&def.name)) {
            let (Some(synonym), Some(value)) = (def.synonyms.first(), log.get(def.name)) else { continue };
            if Some(&value) != kafka.get(def.name).as_ref() {
                static_broker.insert(synonym.name.to_string(), value);
            }
        }
        for (name, value) in static_extra {
            let kafka_default = dynamic_broker_config(name).and_then(|c| c.kafka_default());
            if kafka_default != Some(value.as_str()) {
                static_broker.insert(name.to_string(), value.clone());
            }
        }
        let layers = BrokerLayers {
            dynamic_broker: dynamic.broker.cloned().unwrap_or_default(),
            dynamic_default: dynamic.cluster.cloned().unwrap_or_default(),
            static_broker,
        };
        TopicDefaults { log, layers }
    }
}

/// The dynamic broker configs that apply to one broker: its own and the cluster-wide ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct DynamicLayers<'a> {
    /// `BROKER <id>`.
    pub broker: Option<&'a BTreeMap<String, String>>,
    /// `BROKER ""`.
    pub cluster: Option<&'a BTreeMap<String, String>>,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults::default_kafka()
    }
}

impl From<LogConfig> for TopicDefaults {
    /// The log defaults given, Kafka's for the rest, nothing dynamic.
    fn from(log: LogConfig) -> Self {
        TopicDefaults::new(log, &[], DynamicLayers::default())
    }
}

/// One config of a topic as DescribeConfigs reports it.
#[derive(Debug, Clone)]
pub struct DescribedConfig {
    /// The topic config.
    pub def: &'static TopicConfigDef,
    /// Its effective value.
    pub value: String,
    /// Where the value comes from (Kafka: the first synonym's source, else the default).
    pub source: ConfigSource,
    /// Kafka's synonyms, highest precedence first: (name, value, source).
    pub synonyms: Vec<(String, String, ConfigSource)>,
}

/// A topic's effective configuration.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    /// What the partition logs use.
    pub log: LogConfig,
    /// Whether the broker stamps batches with the append time.
    pub timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`: with CreateTime, a record more than this older than
    /// the broker's clock is refused (INVALID_TIMESTAMP).
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: with CreateTime, a record more than this ahead of the
    /// broker's clock is refused (INVALID_TIMESTAMP).
    pub timestamp_after_max_ms: i64,
    /// `compression.type`: the codec produced batches are stored with; `None` keeps the
    /// producer's (Kafka's `producer`).
    pub compression: Option<CompressionType>,
    /// `min.insync.replicas`: an acks=all produce needs this many in-sync replicas, and the high
    /// watermark does not move with fewer.
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable`: with no live in-sync replica, the controller may elect
    /// an out-of-sync one (losing what only the others had).
    pub unclean_leader_election: bool,
    /// What DescribeConfigs needs, shared: every partition of the topic holds a copy of the
    /// config, and each install hands it a new one.
    resolved: Arc<Resolved>,
}

/// The values and layers a [`TopicConfig`] was resolved from.
#[derive(Debug)]
struct Resolved {
    /// Every topic config's effective value, by name.
    values: BTreeMap<&'static str, (String, ConfigSource)>,
    overrides: BTreeMap<String, String>,
    defaults: TopicDefaults,
}

impl TopicConfig {
    /// Resolves `overrides` over the broker's `defaults`, refusing unknown names and bad values
    /// (Kafka's INVALID_CONFIG texts).
    pub fn resolve(defaults: &TopicDefaults, overrides: &BTreeMap<String, String>) -> Result<TopicConfig, ConfigError> {
        for (name, value) in overrides {
            validate_topic_config(name, value)?;
        }
        let mut values = BTreeMap::new();
        for def in TOPIC_CONFIGS {
            let resolved = match overrides.get(def.name) {
                Some(value) => (value.clone(), ConfigSource::TopicOverride),
                None => def
                    .synonyms
                    .iter()
                    .find_map(|synonym| match defaults.layers.value(synonym.name, None) {
                        (Some(value), source) => Some((value, source)),
                        (None, _) => None,
                    })
                    .unwrap_or_else(|| (def.default.to_string(), ConfigSource::Default)),
            };
            values.insert(def.name, resolved);
        }
        let value = |name: &str| values.get(name).map(|(v, _)| v.trim()).unwrap_or_default();
        let mut log = defaults.log.clone();
        for name in TOPIC_CONFIG_NAMES {
            log.set(name, value(name))?;
        }
        let long = |name: &str| value(name).parse::<i64>().unwrap_or(i64::MAX);
        log.flush_mode = stricter_flush(log.flush_mode, long(FLUSH_MESSAGES), long(FLUSH_MS));
        Ok(TopicConfig {
            log,
            timestamp_type: match value(TIMESTAMP_TYPE) {
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
            timestamp_before_max_ms: long(TIMESTAMP_BEFORE_MAX_MS),
            timestamp_after_max_ms: long(TIMESTAMP_AFTER_MAX_MS),
            compression: match value(COMPRESSION_TYPE) {
                "uncompressed" => Some(CompressionType::None),
                "gzip" => Some(CompressionType::Gzip),
                "snappy" => Some(CompressionType::Snappy),
                "lz4" => Some(CompressionType::Lz4),
                "zstd" => Some(CompressionType::Zstd),
                _ => None,
            },
            min_insync_replicas: value(MIN_INSYNC_REPLICAS).parse().unwrap_or(1),
            unclean_leader_election: value(UNCLEAN_LEADER_ELECTION).eq_ignore_ascii_case("true"),
            resolved: Arc::new(Resolved { values, overrides: overrides.clone(), defaults: defaults.clone() }),
        })
    }

    /// Every config with its value, source and synonyms, sorted by name (Kafka's
    /// `ConfigHelper.createTopicConfigEntry`).
    pub fn describe(&self) -> Vec<DescribedConfig> {
        TOPIC_CONFIGS
            .iter()
            .map(|def| {
                let value = match self.resolved.values.get(def.name) {
                    // A list keeps the order it was given in, as Kafka prints a parsed list: an
                    // APPEND shows up at the end, not where the policy's own order would put it.
                    Some((v, _)) if def.config_type == ConfigType::List => list_items(v).collect::<Vec<_>>().join(","),
                    Some((v, _)) => v.trim().to_string(),
                    None => def.default.to_string(),
                };
                let mut synonyms = match def.synonyms.first() {
                    Some(primary) => self.resolved.defaults.layers.synonyms(primary.name, def.synonyms),
                    None => Vec::new(),
                };
                if self.resolved.overrides.contains_key(def.name) {
                    synonyms.insert(0, (def.name.to_string(), value.clone(), ConfigSource::TopicOverride));
                }
                let source = synonyms.first().map_or(ConfigSource::Default, |(_, _, source)| *source);
                DescribedConfig { def, value, source, synonyms }
            })
            .collect()
    }

    /// The overrides set on the topic.
    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.resolved.overrides
    }

    /// The effective value of topic config `name` and where it comes from.
    pub fn value(&self, name: &str) -> Option<(&str, ConfigSource)> {
        self.resolved.values.get(name).map(|(v, source)| (v.as_str(), *source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(described: &[DescribedConfig], name: &str) -> DescribedConfig {
        described.iter().find(|c| c.def.name == name).unwrap().clone()
    }

    #[test]
    fn overrides_win_and_report_their_source() {
        let mut defaults = LogConfig::default();
        defaults.set("segment.bytes", "1048576").unwrap();
        let overrides = BTreeMap::from([
            ("retention.ms".to_string(), "1000".to_string()),
            ("message.timestamp.type".to_string(), "LogAppendTime".to_string()),
        ]);
        let defaults = TopicDefaults::from(defaults);
        let config = TopicConfig::resolve(&defaults, &overrides).unwrap();
        assert_eq!(config.log.retention_ms, Some(1000));
        assert_eq!(config.timestamp_type, TimestampType::LogAppendTime);
        let described = config.describe();
        let retention = find(&described, "retention.ms");
        assert_eq!((retention.value.as_str(), retention.source), ("1000", ConfigSource::TopicOverride));
        let segment = find(&described, "segment.bytes");
        assert_eq!((segment.value.as_str(), segment.source), ("1048576", ConfigSource::StaticBroker));
        let policy = find(&described, "cleanup.policy");
        assert_eq!((policy.value.as_str(), policy.source), ("delete", ConfigSource::Default));
        let appended = BTreeMap::from([("cleanup.policy".to_string(), "delete, compact".to_string())]);
        let config = TopicConfig::resolve(&defaults, &appended).unwrap();
        let policy = find(&config.describe(), "cleanup.policy");
        assert_eq!((policy.value.as_str(), policy.source), ("delete,compact", ConfigSource::TopicOverride));
        let bad = BTreeMap::from([("message.timestamp.type".to_string(), "Whenever".to_string())]);
        assert!(TopicConfig::resolve(&defaults, &bad).is_err());
        let unknown = BTreeMap::from([("no.such.config".to_string(), "1".to_string())]);
        assert!(matches!(TopicConfig::resolve(&defaults, &unknown), Err(ConfigError::Unknown(_))));
    }

    #[test]
    fn every_kafka_topic_config_is_accepted_at_its_default_and_validated_as_kafka_does() {
        assert_eq!(TOPIC_CONFIGS.len(), 33);
        assert!(TOPIC_CONFIGS.windows(2).all(|w| w[0].name < w[1].name), "sorted");
        for name in TOPIC_CONFIG_NAMES {
            assert!(topic_config_def(name).is_some(), "{name} has a definition");
        }
        // The catalogue's defaults are the log's.
        let log = LogConfig::default();
        for name in TOPIC_CONFIG_NAMES {
            assert_eq!(log.get(name).as_deref(), topic_config_def(name).map(|def| def.default), "{name}");
        }
        let all: BTreeMap<String, String> =
            TOPIC_CONFIGS.iter().map(|def| (def.name.to_string(), def.default.to_string())).collect();
        let config = TopicConfig::resolve(&TopicDefaults::default(), &all).unwrap();
        assert!(config.describe().iter().all(|c| c.source == ConfigSource::TopicOverride));
        let refused = |name: &str, value: &str| validate_topic_config(name, value).unwrap_err().to_string();
        assert_eq!(
            refused("min.cleanable.dirty.ratio", "2"),
            "Invalid value 2 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"
        );
        assert_eq!(
            refused("retention.ms", "soon"),
            "Invalid value soon for configuration retention.ms: Not a number of type LONG"
        );
        assert_eq!(
            refused("retention.ms", "-2"),
            "Invalid value -2 for configuration retention.ms: Value must be at least -1"
        );
        assert_eq!(
            refused("cleanup.policy", "compact,shred"),
            "Invalid value shred for configuration cleanup.policy: String must be one of: compact, delete"
        );
        assert_eq!(
            refused("preallocate", "yes"),
            "Invalid value yes for configuration preallocate: Expected value to be either true or false"
        );
        assert!(refused("compression.type", "brotli").contains("String must be one of: uncompressed, zstd"));
        assert!(refused("compression.gzip.level", "0").contains("between 1 and 9 or -1"));
        assert!(refused("leader.replication.throttled.replicas", "0:x").contains("literal '*'"));
        assert_eq!(refused("no.such", "1"), "Unknown topic config name: no.such");
        for (name, value) in [
            ("min.cleanable.dirty.ratio", "0.01"),
            ("compression.type", "zstd"),
            ("compression.gzip.level", "-1"),
            ("compression.zstd.level", "-5"),
            ("leader.replication.throttled.replicas", "0:1, 1:2"),
            ("follower.replication.throttled.replicas", "*"),
            ("message.timestamp.before.max.ms", "3600000"),
            ("local.retention.ms", "-2"),
            ("max.compaction.lag.ms", LONG_MAX),
        ] {
            validate_topic_config(name, value).unwrap_or_else(|e| panic!("{name}={value}: {e}"));
        }
    }

    #[test]
    fn broker_layers_resolve_in_kafkas_order_with_kafkas_synonyms() {
        let cluster = BTreeMap::from([
            ("log.retention.ms".to_string(), "5000".to_string()),
            ("log.segment.bytes".to_string(), "2097152".to_string()),
        ]);
        let broker = BTreeMap::from([("log.segment.bytes".to_string(), "4194304".to_string())]);
        let mut log = LogConfig::default();
        log.set("segment.bytes", "8388608").unwrap();
        let dynamic = DynamicLayers { broker: Some(&broker), cluster: Some(&cluster) };
        let defaults = TopicDefaults::new(log, &[("min.insync.replicas", "2".to_string())], dynamic);
        let config = TopicConfig::resolve(&defaults, &BTreeMap::new()).unwrap();
        assert_eq!(config.log.segment_bytes, 4194304);
        assert_eq!(config.log.retention_ms, Some(5000));
        assert_eq!(config.min_insync_replicas, 2);
        let described = config.describe();
        let segment = find(&described, "segment.bytes");
        assert_eq!(segment.source, ConfigSource::DynamicBroker);
        let names: Vec<(&str, &str, ConfigSource)> =
            segment.synonyms.iter().map(|(n, v, s)| (n.as_str(), v.as_str(), *s)).collect();
        assert_eq!(
            names,
            vec![
                ("log.segment.bytes", "4194304", ConfigSource::DynamicBroker),
                ("log.segment.bytes", "2097152", ConfigSource::DynamicDefaultBroker),
                ("log.segment.bytes", "8388608", ConfigSource::StaticBroker),
                ("log.segment.bytes", "1073741824", ConfigSource::Default),
            ]
        );
        // retention.ms: log.retention.ms set, then log.retention.hours's default after it.
        let retention = find(&described, "retention.ms");
        assert_eq!(retention.source, ConfigSource::DynamicDefaultBroker);
        assert_eq!(retention.synonyms.len(), 2);
        assert_eq!(retention.synonyms[1].0, "log.retention.hours");
        // Nothing set: Kafka drops log.retention.hours's default (not the first synonym).
        let plain = TopicConfig::resolve(&TopicDefaults::default(), &BTreeMap::new()).unwrap().describe();
        let retention = find(&plain, "retention.ms");
        assert!(retention.synonyms.is_empty());
        assert_eq!((retention.value.as_str(), retention.source), ("604800000", ConfigSource::Default));
        let ratio = find(&plain, "min.cleanable.dirty.ratio");
        assert_eq!(
            ratio.synonyms,
            vec![("log.cleaner.min.cleanable.ratio".into(), "0.5".into(), ConfigSource::Default)]
        );
        assert_eq!(find(&described, "min.insync.replicas").source, ConfigSource::StaticBroker);
        // The topic override goes first.
        let overrides = BTreeMap::from([("segment.bytes".to_string(), "1048576".to_string())]);
        let topic = TopicConfig::resolve(&defaults, &overrides).unwrap();
        let segment = find(&topic.describe(), "segment.bytes");
        assert_eq!(segment.synonyms[0], ("segment.bytes".into(), "1048576".into(), ConfigSource::TopicOverride));
        assert_eq!(segment.synonyms.len(), 5);
    }

    #[test]
    fn flush_configs_only_make_the_brokers_flush_mode_stricter() {
        let second = Duration::from_secs(1);
        assert_eq!(stricter_flush(FlushMode::None, i64::MAX, i64::MAX), FlushMode::None);
        assert_eq!(stricter_flush(FlushMode::None, 1, i64::MAX), FlushMode::Sync);
        assert_eq!(stricter_flush(FlushMode::Interval(second), i64::MAX, 0), FlushMode::Sync);
        assert_eq!(stricter_flush(FlushMode::None, 1000, 200), FlushMode::Interval(Duration::from_millis(200)));
        assert_eq!(stricter_flush(FlushMode::Interval(second), i64::MAX, 5000), FlushMode::Interval(second));
        assert_eq!(stricter_flush(FlushMode::Sync, i64::MAX, 5000), FlushMode::Sync);
        let mut log = LogConfig { flush_mode: FlushMode::None, ..LogConfig::default() };
        log.set("segment.ms", "1000").unwrap();
        let overrides = BTreeMap::from([("flush.messages".to_string(), "1".to_string())]);
        let config = TopicConfig::resolve(&TopicDefaults::from(log), &overrides).unwrap();
        assert_eq!(config.log.flush_mode, FlushMode::Sync);
    }

    #[test]
    fn only_dynamic_broker_configs_with_valid_values_are_accepted() {
        let ok = BTreeMap::from([
            ("log.retention.ms".to_string(), "1000".to_string()),
            ("log.cleaner.io.max.bytes.per.second".to_string(), "1048576".to_string()),
            ("log.cleaner.dedupe.buffer.size".to_string(), "2000000".to_string()),
            ("min.insync.replicas".to_string(), "2".to_string()),
            ("log.cleaner.min.cleanable.ratio".to_string(), "0.1".to_string()),
        ]);
        validate_dynamic_broker_configs(&ok).unwrap();
        let hours = BTreeMap::from([("log.retention.hours".to_string(), "1".to_string())]);
        assert_eq!(
            validate_dynamic_broker_configs(&hours).unwrap_err().to_string(),
            "Cannot update these configs dynamically: Set(log.retention.hours)"
        );
        let bad = BTreeMap::from([("log.cleaner.min.cleanable.ratio".to_string(), "2".to_string())]);
        assert_eq!(
            validate_dynamic_broker_configs(&bad).unwrap_err().to_string(),
            "Invalid value 2 for configuration log.cleaner.min.cleanable.ratio: Value must be no more than 1"
        );
        let tiny = BTreeMap::from([("log.cleaner.dedupe.buffer.size".to_string(), "1000".to_string())]);
        assert!(validate_dynamic_broker_configs(&tiny).unwrap_err().to_string().contains("Value must be at least"));
        let small = BTreeMap::from([("log.segment.bytes".to_string(), "10".to_string())]);
        assert!(validate_dynamic_broker_configs(&small).unwrap_err().to_string().contains("log.segment.bytes"));
        assert!(dynamic_broker_config_names().contains(&"log.cleaner.backoff.ms"));
        assert!(dynamic_broker_config_names().contains(&"unclean.leader.election.enable"));
    }
}
