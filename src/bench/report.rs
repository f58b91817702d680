//! What a run reports: the live progress line, the summary for people, the JSON for machines
//! (its fields are documented on [`Report`]), and HdrHistogram percentile files.
//!
//! Units everywhere: MB = 10^6 bytes of record payload (keys and values, as Kafka's perf tools
//! count), latencies in milliseconds.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::config::{BenchConfig, compression_label};
use super::stats::{Counts, Percentiles, Second, ShardStats};

/// Bytes in a MB.
const MB: f64 = 1_000_000.0;

/// One second of the run, as the progress line shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// Seconds since the start at the beginning of this one.
    pub second: u64,
    /// Inside the warm-up (not counted in the totals).
    pub warmup: bool,
    /// Records acknowledged in this second.
    pub produced: Counts,
    /// Records consumed in this second.
    pub consumed: Counts,
    /// Produce failures in this second.
    pub errors: u64,
    /// Transactions committed in this second.
    pub commits: u64,
    /// Produce latency p99 of this second (ms).
    pub produce_p99_ms: Option<f64>,
    /// End-to-end latency p99 of this second (ms).
    pub e2e_p99_ms: Option<f64>,
}

impl Progress {
    /// The progress of second `second` with the shards' counts added up in `stats`.
    pub fn of(second: u64, warmup: bool, stats: &ShardStats) -> Progress {
        let p99 = |h: &Histogram<u64>| (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0);
        Progress {
            second,
            warmup,
            produced: stats.produced,
            consumed: stats.consumed,
            errors: stats.errors,
            commits: stats.commits,
            produce_p99_ms: p99(&stats.produce_latency),
            e2e_p99_ms: p99(&stats.e2e_latency),
        }
    }

    /// The line shown for this second.
    pub fn line(&self) -> String {
        let mut line = format!("[{:>4}s{}]", self.second + 1, if self.warmup { " warmup" } else { "" });
        if self.produced.records > 0 || self.produce_p99_ms.is_some() || self.errors > 0 {
            let _ = write!(
                line,
                " produce {:>11} rec/s {:>8.1} MB/s",
                group_digits(self.produced.records),
                self.produced.bytes as f64 / MB
            );
            if let Some(p99) = self.produce_p99_ms {
                let _ = write!(line, " p99 {p99:.2} ms");
            }
        }
        if self.consumed.records > 0 {
            let separator = if line.contains("produce") { " |" } else { "" };
            let _ = write!(
                line,
                "{separator} consume {:>11} rec/s {:>8.1} MB/s",
                group_digits(self.consumed.records),
                self.consumed.bytes as f64 / MB
            );
            if let Some(p99) = self.e2e_p99_ms {
                let _ = write!(line, " e2e p99 {p99:.2} ms");
            }
        }
        if self.commits > 0 {
            let _ = write!(line, " | {} commits/s", group_digits(self.commits));
        }
        if self.errors > 0 {
            let _ = write!(line, " | {} errors", self.errors);
        }
        line
    }
}

/// Throughput of one direction over the measured time.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Records.
    pub records: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Records per second.
    pub records_per_s: f64,
    /// Payload MB (10^6 bytes) per second.
    pub mb_per_s: f64,
}

impl Throughput {
    fn of(counts: Counts, seconds: f64) -> Throughput {
        let per_s = |n: f64| if seconds > 0.0 { n / seconds } else { 0.0 };
        Throughput {
            records: counts.records,
            bytes: counts.bytes,
            records_per_s: per_s(counts.records as f64),
            mb_per_s: per_s(counts.bytes as f64) / MB,
        }
    }
}

/// The result of a run, as `--json` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The configuration that ran (every flag, resolved).
    pub config: BenchConfig,
    /// Seconds measured: the run after the warm-up.
    pub measured_s: f64,
    /// Records acknowledged after the warm-up (absent in consume mode).
    pub produce: Option<Throughput>,
    /// Produce latency from the intended send time to the acknowledgement.
    pub produce_latency_ms: Option<Percentiles>,
    /// Records consumed after the warm-up (absent in produce mode).
    pub consume: Option<Throughput>,
    /// Latency from the intended send time to the consumer's receipt (e2e mode).
    pub e2e_latency_ms: Option<Percentiles>,
    /// Records whose produce failed.
    pub errors: u64,
    /// Transactions committed per second over the measured time (transactional producers).
    pub commits_per_sec: Option<f64>,
    /// Every second of the run, warm-up included.
    pub timeline: Vec<Progress>,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    /// What the generator itself cost over the whole run (filled in by [`super::run`]).
    pub generator: Option<ProcessCost>,
    /// Latency histograms, for `--hdr` and `--plot`.
    #[serde(skip)]
    pub histograms: Histograms,
}

/// The merged latency histograms of a run (µs).
#[derive(Debug, Clone)]
pub struct Histograms {
    /// Produce acknowledgement latency.
    pub produce: Histogram<u64>,
    /// End-to-end latency.
    pub e2e: Histogram<u64>,
}

impl Report {
    /// The report of a run that ended (or never started) with `error`.
    pub fn failed(config: BenchConfig, error: String) -> Report {
        Report::new(config, Duration::ZERO, &ShardStats::default(), &[], false, Some(error))
    }

    /// The report of a run: `totals` over `measured` time, and the timeline.
    pub fn new(
        config: BenchConfig,
        measured: Duration,
        totals: &ShardStats,
        timeline: &[(u64, Second)],
        interrupted: bool,
        error: Option<String>,
    ) -> Report {
        let seconds = measured.as_secs_f64();
        let warmup_seconds = config.warmup.as_secs_f64().ceil() as u64;
        Report {
            measured_s: seconds,
            produce: config.produces().then(|| Throughput::of(totals.produced, seconds)),
            produce_latency_ms: Percentiles::of(&totals.produce_latency),
            consume: config.consumes().then(|| Throughput::of(totals.consumed, seconds)),
            e2e_latency_ms: Percentiles::of(&totals.e2e_latency),
            errors: totals.errors,
            commits_per_sec: (totals.commits > 0).then(|| totals.commits as f64 / seconds),
            timeline: timeline
                .iter()
                .map(|(second, sum)| Progress::of(*second, *second < warmup_seconds, &sum.stats))
                .collect(),
            interrupted,
            error,
            generator: None,
            histograms: Histograms { produce: totals.produce_latency.clone(), e2e: totals.e2e_latency.clone() },
            config,
        }
    }

    /// The summary for people.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let _ = writeln!(
            out,
            "sluice bench {:?}: topic {} ({} partitions), {} producers, {} consumers, {} B records, rate {}, \
             acks {}{}, compression {}",
            c.mode,
            c.topic,
            c.partitions,
            c.producers,
            c.consumers,
            c.record_size,
            if c.rate == 0 { "max".to_string() } else { format!("{}/s", c.rate) },
            match c.acks {
                crate::client::Acks::None => "0",
                crate::client::Acks::Leader => "1",
                crate::client::Acks::All => "all",
            },
            if c.idempotent { " (idempotent)" } else { "" },
            compression_label(c.compression),
        );
        let _ = writeln!(out, "measured {:.2} s (after {} s warm-up)", self.measured_s, c.warmup.as_secs_f64());
        let rows: [(&str, &Option<Throughput>); 2] = [("produced", &self.produce), ("consumed", &self.consume)];
        for (what, throughput) in rows {
            if let Some(t) = throughput {
                let _ = writeln!(
                    out,
                    "{what:<9} {:>14} records {:>12.0} records/s {:>10.1} MB/s",
                    group_digits(t.records),
                    t.records_per_s,
                    t.mb_per_s
                );
            }
        }
        let latencies = [("produce", &self.produce_latency_ms), ("end-to-end", &self.e2e_latency_ms)];
        if latencies.iter().any(|(_, p)| p.is_some()) {
            let _ = writeln!(
                out,
                "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "latency (ms)", "p50", "p90", "p99", "p99.9", "p99.99", "max"
            );
            for (what, p) in latencies {
                if let Some(p) = p {
                    let _ = writeln!(
                        out,
                        "{what:<16} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                        p.p50, p.p90, p.p99, p.p99_9, p.p99_99, p.max
                    );
                }
            }
        }
        if let Some(commits) = self.commits_per_sec {
            let _ = writeln!(out, "transactions: {commits:.1} commits/s");
        }
        if self.errors > 0 {
            let _ = writeln!(out, "{} records failed", self.errors);
        }
        if self.interrupted {
            let _ = writeln!(out, "interrupted: the figures cover the run up to Ctrl-C");
        }
        if let Some(cost) = &self.generator {
            let per_gb = cost.cpu_s_per_gb.map_or_else(|| "-".to_string(), |c| format!("{c:.2}"));
            let _ = writeln!(
                out,
                "generator: {:.2} CPU-s ({per_gb} per GB moved), peak resident {:.0} MiB",
                cost.cpu_s, cost.peak_rss_mib
            );
        }
        out
    }
}

/// What a process cost over a whole run, warm-up included: so that `perf/run` can set the
/// generator's CPU per GB beside the broker's (issue 16 sets goals for both).
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCost {
    /// CPU seconds, user and system, of every thread.
    pub cpu_s: f64,
    /// Record payload bytes produced plus consumed over the same time (warm-up included).
    pub bytes: u64,
    /// `cpu_s` per 10^9 of `bytes`; absent when nothing moved.
    pub cpu_s_per_gb: Option<f64>,
    /// The process's peak resident memory (getrusage's `ru_maxrss`).
    pub peak_rss_mib: f64,
}

impl ProcessCost {
    /// This process's CPU seconds so far and its peak resident memory in MiB.
    pub fn sample() -> (f64, f64) {
        // SAFETY: all-zero bytes are a valid `rusage` (integers only), which the call overwrites.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is a valid, writable struct; RUSAGE_SELF needs nothing else.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return (0.0, 0.0);
        }
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        (seconds(usage.ru_utime) + seconds(usage.ru_stime), usage.ru_maxrss as f64 / 1024.0)
    }

    /// The cost since `cpu_at_start` (a [`Self::sample`]) of moving `bytes`.
    pub fn since(cpu_at_start: f64, bytes: u64) -> ProcessCost {
        let (cpu_now, peak_rss_mib) = Self::sample();
        let cpu_s = (cpu_now - cpu_at_start).max(0.0);
        let cpu_s_per_gb = (bytes > 0).then(|| cpu_s / (bytes as f64 / 1e9));
        ProcessCost { cpu_s, bytes, cpu_s_per_gb, peak_rss_mib }
    }
}

/// The percentile distribution of `histogram` (µs) in HdrHistogram's `.hgrm` text format
/// (values in ms), which HdrHistogram's plotters read.
pub fn hgrm(histogram: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    for v in histogram.iter_quantiles(5) {
        let quantile = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / 1000.0;
        if quantile < 1.0 {
            let _ = writeln!(
                out,
                "{value:>12.3} {quantile:>14.12} {:>10} {:>14.2}",
                histogram.count_between(0, v.value_iterated_to()),
                1.0 / (1.0 - quantile)
            );
        } else {
            let _ = writeln!(out, "{value:>12.3} {quantile:>14.12} {:>10}", histogram.len());
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        histogram.mean() / 1000.0,
        histogram.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        histogram.max() as f64 / 1000.0,
        histogram.len()
    );
    out
}

/// `1234567` as `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::record;

    #[test]
    fn digits_are_grouped_by_thousands() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(1234567), "1,234,567");
    }

    #[test]
    fn hgrm_lists_percentiles_in_milliseconds_and_ends_with_the_totals() {
        let mut h = crate::bench::stats::latency_histogram();
        for us in 1..=10_000 {
            record(&mut h, us);
        }
        let text = hgrm(&h);
        assert!(text.starts_with("       Value     Percentile"), "{text}");
        assert!(text.contains("#[Max     =       10.0"), "{text}");
        assert!(text.contains("Total count    =        10000]"), "{text}");
        let median = text.lines().find(|l| l.contains(" 0.500000000000 ")).unwrap();
        assert!(median.trim_start().starts_with("5.0"), "{median}");
    }
}
