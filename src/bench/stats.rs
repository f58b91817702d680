//! What a generator shard counts, and how the main thread adds the shards up.
//!
//! Each shard records into its own [`ShardStats`] (no sharing, no atomics on the hot path) and
//! hands the main thread one [`Interval`] per second of the run; the main thread sums the
//! intervals of every shard by second into the timeline and, past the warm-up, into the totals.
//! Latencies are kept in microseconds in HdrHistograms with three significant digits.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency a histogram records: one hour, in microseconds; larger values are
/// clamped to it (a stall that long is reported as "at least an hour").
const LATENCY_MAX_US: u64 = 3_600_000_000;

/// An empty latency histogram: 1 µs to one hour, three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_MAX_US, 3) {
        Ok(histogram) => histogram,
        // Constant bounds that hdrhistogram accepts (a unit test builds one): cannot happen.
        Err(e) => unreachable!("latency histogram bounds: {e}"),
    }
}

/// Records `micros` into `histogram`, clamped to its range.
pub fn record(histogram: &mut Histogram<u64>, micros: u64) {
    let _ = histogram.record(micros.clamp(1, LATENCY_MAX_US));
}

/// Records and bytes moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Records.
    pub records: u64,
    /// Key and value bytes (the payload, as Kafka's perf tools count it).
    pub bytes: u64,
}

impl Counts {
    /// Adds one record of `bytes`.
    pub fn add(&mut self, bytes: u64) {
        self.records += 1;
        self.bytes += bytes;
    }

    /// Adds `other`.
    pub fn merge(&mut self, other: Counts) {
        self.records += other.records;
        self.bytes += other.bytes;
    }
}

/// One shard's counts since it last handed them over.
pub struct ShardStats {
    /// Records acknowledged.
    pub produced: Counts,
    /// Produce-ack latency from the intended send time.
    pub produce_latency: Histogram<u64>,
    /// Records consumed.
    pub consumed: Counts,
    /// Send-to-receive latency from the intended send time (e2e only).
    pub e2e_latency: Histogram<u64>,
    /// Records whose produce failed.
    pub errors: u64,
    /// Transactions committed (transactional producers).
    pub commits: u64,
}

impl Default for ShardStats {
    fn default() -> Self {
        ShardStats {
            produced: Counts::default(),
            produce_latency: latency_histogram(),
            consumed: Counts::default(),
            e2e_latency: latency_histogram(),
            errors: 0,
            commits: 0,
        }
    }
}

impl ShardStats {
    /// Hands the counts over as the interval of second `second` and starts afresh.
    pub fn take(&mut self, second: u64) -> Interval {
        let stats = std::mem::take(self);
        Interval { second, stats }
    }
}

/// One shard's counts for one second of the run (the last may be partial).
pub struct Interval {
    /// Seconds since the start of the run at the interval's start.
    pub second: u64,
    /// The counts.
    pub stats: ShardStats,
}

/// The sum over shards of one second.
pub struct Second {
    /// Shards that reported this second.
    pub shards: usize,
    /// Their counts added up.
    pub stats: ShardStats,
}

impl Second {
    /// A second nobody has reported yet.
    pub fn new() -> Second {
        Second { shards: 0, stats: ShardStats::default() }
    }

    /// Adds one shard's interval.
    pub fn merge(&mut self, stats: &ShardStats) {
        self.shards += 1;
        merge_stats(&mut self.stats, stats);
    }
}

impl Default for Second {
    fn default() -> Self {
        Second::new()
    }
}

/// Adds `from` into `into`.
pub fn merge_stats(into: &mut ShardStats, from: &ShardStats) {
    into.produced.merge(from.produced);
    into.consumed.merge(from.consumed);
    into.errors += from.errors;
    into.commits += from.commits;
    // Same bounds on both sides, so adding cannot fail.
    let _ = into.produce_latency.add(&from.produce_latency);
    let _ = into.e2e_latency.add(&from.e2e_latency);
}

/// Latency percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p99_9: f64,
    /// 99.99th.
    pub p99_99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `histogram` (µs) in ms; `None` when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Percentiles> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            count: histogram.len(),
            mean: histogram.mean() / 1000.0,
            p50: ms(histogram.value_at_quantile(0.5)),
            p90: ms(histogram.value_at_quantile(0.9)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            p99_99: ms(histogram.value_at_quantile(0.9999)),
            max: ms(histogram.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_in_milliseconds_and_shards_add_up() {
        let mut a = ShardStats::default();
        let mut b = ShardStats::default();
        for us in 1..=1000 {
            record(&mut a.produce_latency, us);
            a.produced.add(100);
        }
        record(&mut b.produce_latency, 50_000);
        b.produced.add(100);
        let mut second = Second::new();
        second.merge(&a);
        second.merge(&b);
        assert_eq!(second.shards, 2);
        assert_eq!(second.stats.produced, Counts { records: 1001, bytes: 100_100 });
        let p = Percentiles::of(&second.stats.produce_latency).unwrap();
        assert_eq!(p.count, 1001);
        assert!((p.p50 - 0.5).abs() < 0.01, "{p:?}");
        assert!((p.max - 50.0).abs() < 0.1, "{p:?}");
        assert!(Percentiles::of(&second.stats.e2e_latency).is_none());
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut h = latency_histogram();
        record(&mut h, 0);
        record(&mut h, u64::MAX);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= LATENCY_MAX_US);
    }
}
