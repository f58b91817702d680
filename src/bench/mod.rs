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
//! time to the acknowledgement (the batch's `RecordMetadata::acknowledged_at`, one clock read per
//! batch); end-to-end latency is that time to a consumer's receipt. A producer reads the clock
//! once per few sends (`SENDS_PER_CLOCK_READ`) and after any wait: at 100-byte records two clock
//! reads a record were 14 % of the generator's CPU samples.

mod config;
pub mod group;
pub mod plot;
pub mod report;
mod shared;
pub mod stats;
mod workload;

pub use config::{BenchConfig, Keys, Mode, Stop, compression_label};
pub use workload::SEND_TIME_BYTES;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::client::{Admin, Client, ClientError, NewTopic};
use report::Report;
use shared::{Event, Shared};
use stats::{Interval, Second, ShardStats};

/// How long the main thread waits for shards to finish after a stop before giving up on them
/// (a broker that stopped answering holds requests until their timeout).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs a benchmark; `interrupted` is set by Ctrl-C. `progress` gets one line per second.
/// Returns the report (also when the run failed or was interrupted: then `Report::error` or
/// `Report::interrupted` says so).
pub fn run(config: BenchConfig, interrupted: Arc<AtomicBool>, progress: &mut dyn FnMut(&report::Progress)) -> Report {
    let (cpu_at_start, _) = report::ProcessCost::sample();
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
    let moved =
        collector.timeline.iter().map(|(_, second)| second.stats.produced.bytes + second.stats.consumed.bytes).sum();
    let mut report = collector.into_report(config, elapsed, error);
    report.generator = Some(report::ProcessCost::since(cpu_at_start, moved));
    report
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
