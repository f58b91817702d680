//! The load generator behind `sluice bench`: open-loop producers, consumers, end-to-end latency,
//! HdrHistograms, reports. It speaks only the Kafka protocol through [`crate::client`], so it
//! measures any Kafka-compatible broker.
//!
//! Shape: the main thread prepares the topic, then starts `cores` generator shards (glommio
//! executors, one thread each) and spreads the producers and consumers over them, each with its
//! own client and connections as separate Kafka clients would have. Shards count into their own
//! [`stats::ShardStats`] and send one interval per second to the main thread, which prints the
//! progress line and adds everything up into the [`report::Report`].
//!
//! Latency: each record's value starts with its *intended* send time (µs since the run began).
//! With `--rate`, send times are fixed in advance (open loop): a producer that falls behind
//! sends late but still counts from when the record should have gone, so a stall shows in the
//! percentiles instead of slowing the load (no coordinated omission). Produce latency is that
//! time to the acknowledgement; end-to-end latency is that time to a consumer's receipt.

pub mod group;
pub mod plot;
pub mod report;
pub mod stats;
mod workload;

pub use workload::SEND_TIME_BYTES;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::client::{Acks, Admin, Client, ClientConfig, ClientError, NewTopic};
use crate::model::CompressionType;
use report::Report;
use stats::{Interval, Second, ShardStats};

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
    fn client_config(&self, client_id: String) -> ClientConfig {
        let mut config = ClientConfig::new(self.bootstrap.clone());
        config.connection.client_id = client_id;
        config.connection.max_in_flight = self.max_in_flight;
        config.connection.request_timeout = self.request_timeout;
        config.connection.connect_timeout = Duration::from_secs(5);
        config.retries = 3;
        config
    }

    fn produces(&self) -> bool {
        self.mode != Mode::Consume
    }

    fn consumes(&self) -> bool {
        self.mode != Mode::Produce
    }
}

/// What every shard of a run shares with the main thread.
struct Shared {
    config: BenchConfig,
    /// Partitions of the topic.
    partitions: i32,
    /// Set by the main thread once every shard is ready; the run's time zero.
    start: std::sync::OnceLock<Instant>,
    /// Stop now (Ctrl-C, an error, or the consumers are done).
    stop: AtomicBool,
    /// Records acknowledged so far (e2e consumers wait for all of them).
    produced: AtomicU64,
    /// Records received so far (consume mode stops at `Stop::Records`).
    consumed: AtomicU64,
    /// Producers still running.
    producers_running: AtomicUsize,
}

/// What shards tell the main thread.
enum Event {
    /// A shard connected and is waiting for the start.
    Ready,
    /// A second's (or the last partial second's) counts of one shard.
    Interval(Box<Interval>),
    /// A failure that ends the run.
    Failed(String),
    /// A shard finished.
    Done,
}

/// How long the main thread waits for shards to finish after a stop before giving up on them
/// (a broker that stopped answering holds requests until their timeout).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long e2e consumers keep reading after the producers stop, for records still in flight.
const E2E_DRAIN_MAX: Duration = Duration::from_secs(10);

/// Runs a benchmark; `interrupted` is set by Ctrl-C. `progress` gets one line per second.
/// Returns the report (also when the run failed or was interrupted: then `Report::error` or
/// `Report::interrupted` says so).
pub fn run(config: BenchConfig, interrupted: Arc<AtomicBool>, progress: &mut dyn FnMut(&report::Progress)) -> Report {
    let partitions = match prepare(&config) {
        Ok(partitions) => partitions,
        Err(e) => return Report::failed(config, e),
    };
    // Report the topic as it is (an existing topic keeps its own partition count).
    let mut config = config;
    config.partitions = partitions;
    if config.consumes() && !config.fanout && config.consumers > usize::try_from(partitions).unwrap_or(0) {
        let reason = format!(
            "{} consumers split {partitions} partitions: some would have none (use --fanout, or fewer consumers)",
            config.consumers
        );
        return Report::failed(config, reason);
    }
    let shared = Arc::new(Shared {
        config: config.clone(),
        partitions,
        start: std::sync::OnceLock::new(),
        stop: AtomicBool::new(false),
        produced: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
        producers_running: AtomicUsize::new(if config.produces() { config.producers } else { 0 }),
    });
    let (events, inbox) = flume::unbounded();
    let mut threads = Vec::new();
    for shard in 0..config.cores {
        let (shard_shared, events) = (shared.clone(), events.clone());
        let spawned = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name(&format!("bench-{shard}"))
            .spawn(move || workload::shard_main(shard, shard_shared, events));
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                return Report::failed(config, format!("cannot start generator shard {shard}: {e}"));
            }
        }
    }
    drop(events);
    let mut collector = Collector::new(config.cores, config.warmup);
    let mut error = None;
    let mut stop_at: Option<Instant> = None;
    let mut ready = 0;
    let mut done = 0;
    while done < config.cores {
        if interrupted.load(Ordering::Relaxed) && !shared.stop.swap(true, Ordering::Relaxed) {
            collector.interrupted = true;
            stop_at = Some(Instant::now());
        }
        if stop_at.is_some_and(|at| at.elapsed() > SHUTDOWN_GRACE + config.request_timeout) {
            error.get_or_insert_with(|| "generator shards did not stop in time".to_string());
            break;
        }
        match inbox.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::Ready) => {
                ready += 1;
                if ready == config.cores {
                    let _ = shared.start.set(Instant::now());
                }
            }
            Ok(Event::Interval(interval)) => {
                for line in collector.add(*interval) {
                    progress(&line);
                }
            }
            Ok(Event::Failed(reason)) => {
                error.get_or_insert(reason);
                if !shared.stop.swap(true, Ordering::Relaxed) {
                    stop_at = Some(Instant::now());
                }
            }
            Ok(Event::Done) => done += 1,
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => break,
        }
    }
    let end = Instant::now();
    if done == config.cores {
        for thread in threads {
            let _ = thread.join();
        }
    }
    for line in collector.flush() {
        progress(&line);
    }
    let elapsed = shared.start.get().map_or(Duration::ZERO, |start| end.saturating_duration_since(*start));
    collector.into_report(config, elapsed, error)
}

/// Connects once, creates the topic if needed (not in consume mode), and returns its partition
/// count.
fn prepare(config: &BenchConfig) -> Result<i32, String> {
    let config = config.clone();
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .map_err(|e| format!("cannot start an executor: {e}"))?;
    executor.run(async move {
        let client =
            Client::connect(config.client_config("sluice-bench-setup".into())).await.map_err(|e| e.to_string())?;
        match client.topic(&config.topic).await {
            Ok(topic) => Ok(i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX)),
            Err(ClientError::UnknownTopic(_)) if config.mode != Mode::Consume => {
                let admin = Admin::new(client.clone());
                let topic = NewTopic {
                    replication_factor: config.replication_factor,
                    ..NewTopic::new(&config.topic, config.partitions)
                };
                match admin.create_topic(topic).await {
                    Ok(()) => {}
                    // Another generator may have created it meanwhile.
                    Err(ClientError::Broker { code, .. })
                        if code == crate::protocol::ErrorCode::TopicAlreadyExists.code() => {}
                    Err(e) => return Err(format!("cannot create topic {}: {e}", config.topic)),
                }
                wait_for_leaders(&client, &config.topic).await
            }
            Err(ClientError::UnknownTopic(_)) => Err(format!("topic {} does not exist", config.topic)),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// Waits until every partition of a new topic has a leader.
async fn wait_for_leaders(client: &Client, topic: &str) -> Result<i32, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let refreshed = client.refresh_metadata(Some(&[topic.to_string()])).await.map_err(|e| e.to_string())?;
        if let Some(t) = refreshed.topics.get(topic)
            && !t.partitions.is_empty()
            && t.partitions.iter().all(|p| p.leader >= 0)
        {
            return Ok(i32::try_from(t.partitions.len()).unwrap_or(i32::MAX));
        }
        if Instant::now() > deadline {
            return Err(format!("topic {topic} has partitions without a leader after 10 s"));
        }
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
}

/// Adds up the shards' intervals into the timeline and the totals.
struct Collector {
    shards: usize,
    warmup_seconds: u64,
    /// Seconds not yet complete (not every shard reported), by second.
    pending: std::collections::BTreeMap<u64, Second>,
    /// Complete seconds, in order.
    timeline: Vec<(u64, Second)>,
    /// Everything past the warm-up.
    totals: ShardStats,
    interrupted: bool,
}

impl Collector {
    fn new(shards: usize, warmup: Duration) -> Collector {
        Collector {
            shards,
            warmup_seconds: warmup.as_secs_f64().ceil() as u64,
            pending: std::collections::BTreeMap::new(),
            timeline: Vec::new(),
            totals: ShardStats::default(),
            interrupted: false,
        }
    }

    /// Adds one interval; returns the progress lines of the seconds it completed.
    fn add(&mut self, interval: Interval) -> Vec<report::Progress> {
        if interval.second >= self.warmup_seconds {
            stats::merge_stats(&mut self.totals, &interval.stats);
        }
        self.pending.entry(interval.second).or_default().merge(&interval.stats);
        let mut lines = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.get().shards < self.shards {
                break;
            }
            let (second, sum) = entry.remove_entry();
            lines.push(self.complete(second, sum));
        }
        lines
    }

    /// Moves every pending second (the last, partial ones) to the timeline.
    fn flush(&mut self) -> Vec<report::Progress> {
        let pending = std::mem::take(&mut self.pending);
        pending.into_iter().map(|(second, sum)| self.complete(second, sum)).collect()
    }

    fn complete(&mut self, second: u64, sum: Second) -> report::Progress {
        let line = report::Progress::of(second, second < self.warmup_seconds, &sum.stats);
        self.timeline.push((second, sum));
        line
    }

    fn into_report(self, config: BenchConfig, elapsed: Duration, error: Option<String>) -> Report {
        let measured = elapsed.saturating_sub(Duration::from_secs(self.warmup_seconds));
        Report::new(config, measured, &self.totals, &self.timeline, self.interrupted, error)
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

    #[test]
    fn the_collector_completes_a_second_once_every_shard_reported_and_skips_the_warmup_in_totals() {
        let mut collector = Collector::new(2, Duration::from_secs(1));
        let interval = |second, records| {
            let mut stats = ShardStats::default();
            for _ in 0..records {
                stats.produced.add(10);
            }
            Interval { second, stats }
        };
        assert!(collector.add(interval(0, 5)).is_empty());
        assert!(collector.add(interval(1, 7)).is_empty());
        let lines = collector.add(interval(0, 5));
        assert_eq!(lines.len(), 1);
        assert!(lines[0].warmup);
        assert_eq!(lines[0].produced.records, 10);
        let lines = collector.flush();
        assert_eq!(lines.len(), 1);
        assert_eq!(collector.totals.produced.records, 7);
    }
}
