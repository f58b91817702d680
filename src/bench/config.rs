//! What a bench run is asked to do: the mode, the key distribution, when to stop, and the whole
//! validated [`BenchConfig`] the CLI builds from its flags.

use std::time::Duration;

use crate::client::{Acks, ClientConfig};
use crate::model::CompressionType;

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Producers only.
    Produce,
    /// Consumers only, from the earliest offset (a catch-up read of what is there).
    Consume,
    /// Producers and consumers: consumers start at the log end, then producers start.
    E2e,
}

/// How record keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "distribution", rename_all = "lowercase")]
pub enum Keys {
    /// No keys: partitions are chosen round-robin.
    None,
    /// Keys `0..space` in turn.
    Sequential {
        /// Distinct keys.
        space: u64,
    },
    /// Keys drawn uniformly from `0..space`.
    Uniform {
        /// Distinct keys.
        space: u64,
    },
    /// Keys drawn from `0..space` with a Zipf distribution (key 0 the most frequent).
    Zipf {
        /// Distinct keys.
        space: u64,
        /// The exponent (1.0 is classic Zipf; larger is more skewed).
        exponent: f64,
    },
}

impl std::str::FromStr for Keys {
    type Err = String;

    /// `none`, `N` (uniform), `uniform:N`, `seq:N`, `zipf:N` or `zipf:N:EXPONENT`.
    fn from_str(text: &str) -> Result<Keys, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let space = |s: &str| match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("key space {s:?} is not a positive integer")),
        };
        match parts.as_slice() {
            ["none"] => Ok(Keys::None),
            [n] => Ok(Keys::Uniform { space: space(n)? }),
            ["uniform", n] => Ok(Keys::Uniform { space: space(n)? }),
            ["seq" | "sequential", n] => Ok(Keys::Sequential { space: space(n)? }),
            ["zipf", n] => Ok(Keys::Zipf { space: space(n)?, exponent: 1.0 }),
            ["zipf", n, s] => match s.parse::<f64>() {
                Ok(exponent) if exponent.is_finite() && exponent > 0.0 => Ok(Keys::Zipf { space: space(n)?, exponent }),
                _ => Err(format!("zipf exponent {s:?} is not a positive number")),
            },
            _ => Err(format!("keys {text:?}: expected none, N, uniform:N, seq:N, zipf:N or zipf:N:EXPONENT")),
        }
    }
}

/// When producers stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stop {
    /// After this long past the warm-up.
    Duration(#[serde(with = "secs")] Duration),
    /// After this many records in all (producers: sent; consume mode: received).
    Records(u64),
}

mod secs {
    pub(super) fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// A validated bench configuration (the CLI builds it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchConfig {
    /// What to run.
    pub mode: Mode,
    /// Bootstrap servers.
    pub bootstrap: Vec<String>,
    /// The topic.
    pub topic: String,
    /// Partitions of the topic: the flag when the bench creates it, else the topic's count.
    pub partitions: i32,
    /// Replication factor of the topic, if the bench creates it.
    pub replication_factor: i16,
    /// Producer clients.
    pub producers: usize,
    /// Consumer clients.
    pub consumers: usize,
    /// Every consumer reads every partition (pub/sub) instead of splitting them (a queue).
    pub fanout: bool,
    /// Value bytes per record (at least 8: the send time).
    pub record_size: usize,
    /// Keys.
    pub keys: Keys,
    /// Records per second over all producers; 0 for as fast as possible.
    pub rate: u64,
    /// When producing (or, in consume mode, consuming) stops.
    pub stop: Stop,
    /// Seconds at the start not counted in the totals.
    #[serde(with = "secs")]
    pub warmup: Duration,
    /// Kafka's `batch.size`.
    pub batch_bytes: usize,
    /// Kafka's `linger.ms`.
    #[serde(with = "secs")]
    pub linger: Duration,
    /// Acks.
    #[serde(serialize_with = "acks_name")]
    pub acks: Acks,
    /// Idempotent producers (off unless asked, so that runs stay comparable with those from
    /// before the producer became idempotent by default).
    pub idempotent: bool,
    /// Transactional producers: each commits a transaction every this many records.
    pub records_per_txn: Option<u64>,
    /// Compression.
    #[serde(serialize_with = "compression_name")]
    pub compression: CompressionType,
    /// Requests in flight per connection.
    pub max_in_flight: usize,
    /// Generator shards (threads).
    pub cores: usize,
    /// Kafka's `fetch.max.bytes` for consumers.
    pub fetch_max_bytes: i32,
    /// Kafka's `max.partition.fetch.bytes` for consumers.
    pub partition_fetch_max_bytes: i32,
    /// How long a request may take before the run fails.
    #[serde(with = "secs")]
    pub request_timeout: Duration,
}

fn acks_name<S: serde::Serializer>(acks: &Acks, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    })
}

fn compression_name<S: serde::Serializer>(c: &CompressionType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(compression_label(*c))
}

/// Kafka's name of a codec.
pub fn compression_label(c: CompressionType) -> &'static str {
    match c {
        CompressionType::None => "none",
        CompressionType::Gzip => "gzip",
        CompressionType::Snappy => "snappy",
        CompressionType::Lz4 => "lz4",
        CompressionType::Zstd => "zstd",
    }
}

impl BenchConfig {
    pub(super) fn client_config(&self, client_id: String) -> ClientConfig {
        let mut config = ClientConfig::new(self.bootstrap.clone());
        config.connection.client_id = client_id;
        config.connection.max_in_flight = self.max_in_flight;
        config.connection.request_timeout = self.request_timeout;
        config.connection.connect_timeout = Duration::from_secs(5);
        config.retries = 3;
        config
    }

    pub(super) fn produces(&self) -> bool {
        self.mode != Mode::Consume
    }

    pub(super) fn consumes(&self) -> bool {
        self.mode != Mode::Produce
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_every_documented_form_and_refuse_the_rest() {
        assert_eq!("none".parse::<Keys>(), Ok(Keys::None));
        assert_eq!("100".parse::<Keys>(), Ok(Keys::Uniform { space: 100 }));
        assert_eq!("uniform:7".parse::<Keys>(), Ok(Keys::Uniform { space: 7 }));
        assert_eq!("seq:3".parse::<Keys>(), Ok(Keys::Sequential { space: 3 }));
        assert_eq!("zipf:10".parse::<Keys>(), Ok(Keys::Zipf { space: 10, exponent: 1.0 }));
        assert_eq!("zipf:10:1.5".parse::<Keys>(), Ok(Keys::Zipf { space: 10, exponent: 1.5 }));
        for bad in ["", "0", "-1", "zipf", "zipf:0", "zipf:10:-1", "zipf:10:nan", "gauss:10", "uniform:x"] {
            assert!(bad.parse::<Keys>().is_err(), "{bad}");
        }
    }
}
