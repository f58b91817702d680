//! Topic names and topic-partitions, with Kafka's naming rules.

use std::fmt;
use std::sync::Arc;

use crate::limits::TOPIC_NAME_BYTES_MAX;

/// A partition of a topic. The topic name is shared (`Arc<str>`) because the same names travel
/// between shards in cross-core messages and sit in every shard's metadata image.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic's name, already validated by [`validate_topic_name`].
    pub topic: Arc<str>,
    /// The partition index, `0..partition_count`.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic-partition; the caller has validated the name.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }

    /// The partition's directory name under the data dir, `<topic>-<partition>`, as Kafka names it.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Why a topic name is refused (Kafka's `InvalidTopicException` cases).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    /// The name is empty.
    #[error("topic name is empty")]
    Empty,
    /// `.` and `..` are refused because they would name the data dir itself.
    #[error("topic name cannot be '.' or '..'")]
    Dots,
    /// Longer than Kafka's 249 characters.
    #[error("topic name is longer than {TOPIC_NAME_BYTES_MAX} characters")]
    TooLong,
    /// Only ASCII alphanumerics, `.`, `_` and `-` are legal.
    #[error("topic name contains an illegal character {0:?} (legal: a-z A-Z 0-9 . _ -)")]
    IllegalChar(char),
}

/// Kafka's topic name rules: 1..=249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Dots);
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(TopicNameError::TooLong);
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        Some(c) => Err(TopicNameError::IllegalChar(c)),
        None => Ok(()),
    }
}

/// Java's `String.hashCode` of `s` (over UTF-16 code units, wrapping), which Kafka uses to place
/// groups and transactional ids.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// The partition of an internal topic of `partitions` partitions that holds `key` (a group or
/// transactional id): Kafka's `Utils.abs(key.hashCode) % partitions`, where `Utils.abs` maps
/// `i32::MIN` to 0.
pub fn partition_for_key(key: &str, partitions: i32) -> i32 {
    let hash = java_string_hash(key);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    if partitions <= 0 { 0 } else { abs % partitions }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert_eq!(validate_topic_name(".."), Err(TopicNameError::Dots));
        assert_eq!(validate_topic_name("a/b"), Err(TopicNameError::IllegalChar('/')));
        assert_eq!(validate_topic_name(&"x".repeat(250)), Err(TopicNameError::TooLong));
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        assert_eq!(TopicPartition::new("t", 3).dir_name(), "t-3");
    }
}
