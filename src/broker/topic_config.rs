//! A topic's configuration: Kafka's topic-config names, each resolved from a topic override, a
//! broker flag, or Kafka's default, and reported with that source by DescribeConfigs.

use std::collections::BTreeMap;

use crate::model::TimestampType;
use crate::storage::{ConfigError, LogConfig, TOPIC_CONFIG_NAMES};

/// Where a config value came from (DescribeConfigs' `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (CreateTopics, AlterConfigs).
    TopicOverride,
    /// Set by a broker flag.
    StaticBroker,
    /// Kafka's default.
    Default,
}

impl ConfigSource {
    /// Kafka's numbering of config sources.
    pub fn wire(self) -> i8 {
        match self {
            ConfigSource::TopicOverride => 1,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// Topic configs the partition log does not use: accepted so that tools which set them work,
/// validated so that nonsense is refused. `compression.type` is stored only; the replication
/// ones are read through [`TopicConfig::min_insync_replicas`] and
/// [`TopicConfig::unclean_leader_election`].
const STORED_ONLY: &[&str] = &["compression.type", MIN_INSYNC_REPLICAS, UNCLEAN_LEADER_ELECTION];
/// `min.insync.replicas`.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
/// `unclean.leader.election.enable`.
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";
/// `message.timestamp.type`.
const TIMESTAMP_TYPE: &str = "message.timestamp.type";

/// Every topic config name the broker accepts, sorted.
pub fn topic_config_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = TOPIC_CONFIG_NAMES.iter().chain(STORED_ONLY).copied().collect();
    names.push(TIMESTAMP_TYPE);
    names.sort_unstable();
    names
}

/// The broker's defaults for topic configs: the log's, and replication's.
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    /// Defaults of the configs the log uses.
    pub log: LogConfig,
    /// `min.insync.replicas` (Kafka's default 1).
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable` (Kafka's default false).
    pub unclean_leader_election: bool,
}

impl TopicDefaults {
    /// Kafka's own defaults, with no broker flag set.
    pub fn default_kafka() -> Self {
        TopicDefaults::from(LogConfig::default())
    }
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults::default_kafka()
    }
}

impl From<LogConfig> for TopicDefaults {
    /// The log defaults given, Kafka's replication defaults.
    fn from(log: LogConfig) -> Self {
        TopicDefaults { log, min_insync_replicas: 1, unclean_leader_election: false }
    }
}

/// A topic's effective configuration.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    /// What the partition logs use.
    pub log: LogConfig,
    /// Whether the broker stamps batches with the append time.
    pub timestamp_type: TimestampType,
    /// `min.insync.replicas`: an acks=all produce needs this many in-sync replicas, and the high
    /// watermark does not move with fewer.
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable`: with no live in-sync replica, the controller may elect
    /// an out-of-sync one (losing what only the others had).
    pub unclean_leader_election: bool,
    overrides: BTreeMap<String, String>,
    defaults: TopicDefaults,
}

impl TopicConfig {
    /// Resolves `overrides` over the broker's `defaults`, refusing unknown names and bad values.
    pub fn resolve(defaults: &TopicDefaults, overrides: &BTreeMap<String, String>) -> Result<TopicConfig, ConfigError> {
        let mut log = defaults.log.clone();
        let mut timestamp_type = TimestampType::CreateTime;
        let mut min_insync_replicas = defaults.min_insync_replicas;
        let mut unclean_leader_election = defaults.unclean_leader_election;
        for (name, value) in overrides {
            let invalid =
                |reason: &str| ConfigError::Invalid { name: name.clone(), value: value.clone(), reason: reason.into() };
            match name.as_str() {
                TIMESTAMP_TYPE => {
                    timestamp_type = match value.as_str() {
                        "CreateTime" => TimestampType::CreateTime,
                        "LogAppendTime" => TimestampType::LogAppendTime,
                        _ => return Err(invalid("expected CreateTime or LogAppendTime")),
                    }
                }
                "compression.type" => {
                    // The broker stores batches as producers compressed them and never
                    // recompresses, which is Kafka's `producer` setting.
                    if value != "producer" {
                        return Err(invalid("only 'producer' is supported: batches are stored as compressed"));
                    }
                }
                MIN_INSYNC_REPLICAS => match value.parse::<i32>() {
                    Ok(v) if v >= 1 => min_insync_replicas = v,
                    _ => return Err(invalid("must be a positive integer")),
                },
                UNCLEAN_LEADER_ELECTION => match value.as_str() {
                    "true" => unclean_leader_election = true,
                    "false" => unclean_leader_election = false,
                    _ => return Err(invalid("must be true or false")),
                },
                _ => log.set(name, value)?,
            }
        }
        Ok(TopicConfig {
            log,
            timestamp_type,
            min_insync_replicas,
            unclean_leader_election,
            overrides: overrides.clone(),
            defaults: defaults.clone(),
        })
    }

    /// Every config with its value and source, sorted by name.
    pub fn describe(&self) -> Vec<(&'static str, String, ConfigSource)> {
        topic_config_names()
            .into_iter()
            .map(|name| {
                let kafkas = TopicDefaults::default_kafka();
                let broker_set = match name {
                    MIN_INSYNC_REPLICAS => self.defaults.min_insync_replicas != kafkas.min_insync_replicas,
                    UNCLEAN_LEADER_ELECTION => self.defaults.unclean_leader_election != kafkas.unclean_leader_election,
                    _ => self.defaults.log.get(name).is_some() && self.defaults.log.get(name) != kafkas.log.get(name),
                };
                let source = if self.overrides.contains_key(name) {
                    ConfigSource::TopicOverride
                } else if broker_set {
                    ConfigSource::StaticBroker
                } else {
                    ConfigSource::Default
                };
                let value = match name {
                    TIMESTAMP_TYPE => match self.timestamp_type {
                        TimestampType::CreateTime => "CreateTime".to_string(),
                        TimestampType::LogAppendTime => "LogAppendTime".to_string(),
                    },
                    "compression.type" => "producer".to_string(),
                    // A list keeps the order it was given in, as Kafka prints a parsed list: an
                    // APPEND shows up at the end, not where the policy's own order would put it.
                    "cleanup.policy" if self.overrides.contains_key(name) => {
                        let list = self.overrides.get(name).map(String::as_str).unwrap_or_default();
                        list.split(',').map(str::trim).collect::<Vec<_>>().join(",")
                    }
                    MIN_INSYNC_REPLICAS => self.min_insync_replicas.to_string(),
                    UNCLEAN_LEADER_ELECTION => self.unclean_leader_election.to_string(),
                    _ => self.log.get(name).unwrap_or_default(),
                };
                (name, value, source)
            })
            .collect()
    }

    /// The overrides set on the topic.
    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let find = |n: &str| described.iter().find(|(name, ..)| *name == n).unwrap().clone();
        assert_eq!(find("retention.ms"), ("retention.ms", "1000".into(), ConfigSource::TopicOverride));
        assert_eq!(find("segment.bytes"), ("segment.bytes", "1048576".into(), ConfigSource::StaticBroker));
        assert_eq!(find("cleanup.policy"), ("cleanup.policy", "delete".into(), ConfigSource::Default));
        let appended = BTreeMap::from([("cleanup.policy".to_string(), "delete, compact".to_string())]);
        let config = TopicConfig::resolve(&defaults, &appended).unwrap();
        let policy = config.describe().into_iter().find(|(name, ..)| *name == "cleanup.policy").unwrap();
        assert_eq!(policy, ("cleanup.policy", "delete,compact".into(), ConfigSource::TopicOverride));
        let bad = BTreeMap::from([("message.timestamp.type".to_string(), "Whenever".to_string())]);
        assert!(TopicConfig::resolve(&defaults, &bad).is_err());
        let unknown = BTreeMap::from([("no.such.config".to_string(), "1".to_string())]);
        assert!(matches!(TopicConfig::resolve(&defaults, &unknown), Err(ConfigError::Unknown(_))));
    }
}
