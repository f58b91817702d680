//! `sluice broker-stats`: reads a broker's `/metrics` endpoint (`--metrics-listen`) and prints a
//! summary a person can read — requests per second and latency by API, log flushes,
//! connections, partitions, the batch cache, descriptors and memory, consumer-group lag — or,
//! with `--raw`, the exposition as sent. Rates need two scrapes, `--interval` apart.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::metrics::{Sample, parse};

#[derive(Debug, Args)]
pub(super) struct BrokerStatsArgs {
    /// The broker's metrics endpoint: its --metrics-listen address (host:port) or a URL
    /// (http://host:port/metrics).
    #[arg(long, env = "SLUICE_METRICS", default_value = "127.0.0.1:9644")]
    metrics: String,
    /// Seconds between the two scrapes that per-second rates and recent latencies come from;
    /// 0 scrapes once and shows totals since the broker started.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Print the exposition text as the broker sent it (one scrape) instead of a summary.
    #[arg(long)]
    raw: bool,
}

/// How long connecting, sending and reading one scrape may each take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read: a broker with many groups and APIs renders well under 1 MiB.
const ANSWER_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// The longest `--interval`, so that a typo cannot hang the command for hours.
const INTERVAL_SECONDS_MAX: f64 = 3600.0;
/// Consumer groups listed, the most lagging first.
const GROUPS_SHOWN: usize = 20;

pub(super) fn run(args: BrokerStatsArgs) -> anyhow::Result<()> {
    let endpoint = Endpoint::parse(&args.metrics)?;
    if args.raw {
        print!("{}", endpoint.scrape()?);
        return Ok(());
    }
    if !(0.0..=INTERVAL_SECONDS_MAX).contains(&args.interval) {
        bail!("--interval must be between 0 and {INTERVAL_SECONDS_MAX} seconds");
    }
    let first = Snapshot::of(&parse(&endpoint.scrape()?)?);
    let (earlier, last) = match args.interval > 0.0 {
        true => {
            std::thread::sleep(Duration::from_secs_f64(args.interval));
            (Some(first), Snapshot::of(&parse(&endpoint.scrape()?)?))
        }
        false => (None, first),
    };
    print!("{}", summary(&endpoint.url(), earlier.as_ref(), &last, args.interval));
    Ok(())
}

/// Where the metrics are: `host:port` and a path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    authority: String,
    path: String,
}

impl Endpoint {
    fn parse(text: &str) -> anyhow::Result<Endpoint> {
        if text.starts_with("https://") {
            bail!("{text}: the metrics endpoint speaks plain HTTP; use http://");
        }
        let rest = text.strip_prefix("http://").unwrap_or(text);
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/metrics"),
        };
        if authority.is_empty() || !authority.contains(':') {
            bail!("{text}: give host:port (the broker's --metrics-listen) or http://host:port/metrics");
        }
        Ok(Endpoint { authority: authority.to_string(), path: path.to_string() })
    }

    fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }

    /// One GET; the body of a 200 answer.
    fn scrape(&self) -> anyhow::Result<String> {
        let addr = self
            .authority
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", self.authority))?
            .next()
            .with_context(|| format!("{} resolves to nothing", self.authority))?;
        let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT)
            .with_context(|| format!("cannot connect to {} (is the broker's --metrics-listen set?)", self.url()))?;
        stream.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
        stream.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/plain;version=0.0.4\r\nConnection: close\r\n\r\n",
            self.path, self.authority
        );
        stream.write_all(request.as_bytes())?;
        let mut answer = Vec::new();
        stream.take(ANSWER_BYTES_MAX).read_to_end(&mut answer).with_context(|| format!("reading {}", self.url()))?;
        body_of(&answer).with_context(|| format!("the answer of {}", self.url()))
    }
}

/// The body of an HTTP/1.1 answer, if its status is 200 (plain, `Content-Length` or chunked).
fn body_of(answer: &[u8]) -> anyhow::Result<String> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if status.split(' ').nth(1) != Some("200") {
        bail!("{status}: {}", body.lines().next().unwrap_or(""));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return dechunk(body);
    }
    match header("content-length").map(|v| v.parse::<usize>()) {
        Some(Ok(length)) if length <= body.len() => Ok(body[..length].to_string()),
        Some(Ok(length)) => bail!("the body ended after {} of {length} bytes", body.len()),
        Some(Err(_)) => bail!("a bad Content-Length"),
        None => Ok(body.to_string()),
    }
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("a chunk without a size line")?;
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).context("a bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).context("a chunk cut short")?;
        out.push_str(chunk);
        body = rest.get(size..).and_then(|r| r.strip_prefix("\r\n")).context("a chunk without its line end")?;
    }
}

/// A histogram summed over shards: cumulative counts by upper bound.
#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    buckets: HashMap<String, f64>,
    count: f64,
}

impl Histogram {
    /// The `q` quantile estimated as Prometheus' `histogram_quantile` does (linear within the
    /// bucket), from the observations since `earlier`; `None` without any.
    fn quantile(&self, earlier: Option<&Histogram>, q: f64) -> Option<f64> {
        let mut buckets: Vec<(f64, f64)> = self
            .buckets
            .iter()
            .map(|(le, n)| {
                let before = earlier.and_then(|e| e.buckets.get(le)).copied().unwrap_or(0.0);
                (le.parse::<f64>().unwrap_or(f64::INFINITY), n - before)
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for (bound, count) in buckets {
            if count >= rank {
                if bound.is_infinite() {
                    return Some(lower);
                }
                let share = if count > below { (rank - below) / (count - below) } else { 1.0 };
                return Some(lower + (bound - lower) * share);
            }
            (lower, below) = (bound, count);
        }
        Some(lower)
    }
}

/// Per kind of request, summed over shards.
#[derive(Debug, Clone, Default, PartialEq)]
struct Requests {
    count: f64,
    request_bytes: f64,
    response_bytes: f64,
    duration: Histogram,
}

/// One scrape, summed over shards where that is what a reader wants.
#[derive(Debug, Clone, Default, PartialEq)]
struct Snapshot {
    requests: BTreeMap<String, Requests>,
    log_flush: Histogram,
    /// Counters and gauges summed over shards, by name.
    totals: HashMap<String, f64>,
    /// Gauges by name and shard.
    by_shard: HashMap<String, BTreeMap<String, f64>>,
    /// Consumer groups: (lag, largest partition lag).
    groups: BTreeMap<String, (f64, f64)>,
}

impl Snapshot {
    fn of(samples: &[Sample]) -> Snapshot {
        let mut s = Snapshot::default();
        for sample in samples {
            let v = sample.value;
            let name = sample.name.as_str();
            if let Some(request) = sample.label("request") {
                let r = s.requests.entry(request.to_string()).or_default();
                match name {
                    "sluice_requests_total" => r.count += v,
                    "sluice_request_bytes_total" => r.request_bytes += v,
                    "sluice_response_bytes_total" => r.response_bytes += v,
                    "sluice_request_duration_seconds_bucket" => add_bucket(&mut r.duration, sample),
                    "sluice_request_duration_seconds_count" => r.duration.count += v,
                    _ => {}
                }
                continue;
            }
            if let Some(group) = sample.label("group") {
                let g = s.groups.entry(group.to_string()).or_default();
                match name {
                    "sluice_consumer_group_lag_records" => g.0 = v,
                    "sluice_consumer_group_lag_max_records" => g.1 = v,
                    _ => {}
                }
                continue;
            }
            match name {
                "sluice_log_flush_duration_seconds_bucket" => add_bucket(&mut s.log_flush, sample),
                "sluice_log_flush_duration_seconds_count" => s.log_flush.count += v,
                _ => {
                    *s.totals.entry(name.to_string()).or_default() += v;
                    if let Some(shard) = sample.label("shard") {
                        *s.by_shard.entry(name.to_string()).or_default().entry(shard.to_string()).or_default() += v;
                    }
                }
            }
        }
        s
    }

    fn total(&self, name: &str) -> f64 {
        self.totals.get(name).copied().unwrap_or(0.0)
    }

    /// `N (shard 0: a, shard 1: b)` for a gauge kept per shard.
    fn per_shard(&self, name: &str) -> String {
        let total = self.total(name);
        match self.by_shard.get(name) {
            Some(shards) if shards.len() > 1 => {
                let each: Vec<String> = shards.iter().map(|(shard, v)| format!("shard {shard}: {v}")).collect();
                format!("{total} ({})", each.join(", "))
            }
            _ => format!("{total}"),
        }
    }
}

fn add_bucket(histogram: &mut Histogram, sample: &Sample) {
    if let Some(le) = sample.label("le") {
        *histogram.buckets.entry(le.to_string()).or_default() += sample.value;
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Milliseconds, or `-` for no observations.
fn ms(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".to_string(), |s| format!("{:.2}", s * 1000.0))
}

/// The summary: rates over `seconds` when `earlier` is given, totals otherwise.
fn summary(source: &str, earlier: Option<&Snapshot>, last: &Snapshot, seconds: f64) -> String {
    let mut out = String::new();
    let rated = earlier.is_some() && seconds > 0.0;
    let rate = |now: f64, before: Option<f64>| match (rated, before) {
        (true, Some(before)) => (now - before).max(0.0) / seconds,
        _ => now,
    };
    let _ = match rated {
        true => writeln!(out, "{source}: rates and latencies over the last {seconds:.1} s\n"),
        false => writeln!(out, "{source}: totals and latencies since the broker started\n"),
    };
    let per = if rated { "/s" } else { "" };
    let _ = writeln!(
        out,
        "{:<24} {:>12} {:>12} {:>9} {:>9} {:>11} {:>11}",
        "request",
        format!("count{per}"),
        "total",
        "p50 ms",
        "p99 ms",
        format!("in MiB{per}"),
        format!("out MiB{per}")
    );
    let mut rows: Vec<(&String, &Requests)> = last.requests.iter().collect();
    let before = |name: &str| earlier.and_then(|e| e.requests.get(name));
    let count_rate = |name: &str, r: &Requests| rate(r.count, Some(before(name).map_or(0.0, |b| b.count)));
    rows.sort_by(|a, b| count_rate(b.0, b.1).total_cmp(&count_rate(a.0, a.1)).then_with(|| a.0.cmp(b.0)));
    for (name, r) in rows {
        let b = before(name);
        // A kind first seen between the scrapes has everything since the first one.
        let earlier_duration = b.map(|b| &b.duration);
        let _ = writeln!(
            out,
            "{:<24} {:>12.1} {:>12} {:>9} {:>9} {:>11.3} {:>11.3}",
            name,
            count_rate(name, r),
            r.count,
            ms(r.duration.quantile(earlier_duration, 0.5)),
            ms(r.duration.quantile(earlier_duration, 0.99)),
            rate(r.request_bytes, Some(b.map_or(0.0, |b| b.request_bytes))) / MIB,
            rate(r.response_bytes, Some(b.map_or(0.0, |b| b.response_bytes))) / MIB,
        );
    }
    let flush_before = earlier.map(|e| &e.log_flush);
    let _ = writeln!(
        out,
        "\nlog flushes      {:.1}{per} (total {}), fdatasync p50 {} ms, p99 {} ms",
        rate(last.log_flush.count, flush_before.map(|f| f.count)),
        last.log_flush.count,
        ms(last.log_flush.quantile(flush_before, 0.5)),
        ms(last.log_flush.quantile(flush_before, 0.99)),
    );
    let total_before = |name: &str| earlier.map(|e| e.total(name));
    let counted = |name: &str| rate(last.total(name), total_before(name));
    let _ = writeln!(
        out,
        "connections      open {}; accepted {:.1}{per}, refused {:.1}{per}, accept errors {:.1}{per}",
        last.per_shard("sluice_connections"),
        counted("sluice_connections_accepted_total"),
        counted("sluice_connections_refused_total"),
        counted("sluice_accept_errors_total"),
    );
    let _ = writeln!(
        out,
        "partitions       {}; leading {}; under-replicated {}",
        last.per_shard("sluice_partitions"),
        last.per_shard("sluice_partition_leaders"),
        last.total("sluice_under_replicated_partitions"),
    );
    let lag_max =
        last.by_shard.get("sluice_replica_lag_max_records").map_or(0.0, |s| s.values().copied().fold(0.0, f64::max));
    let _ = writeln!(
        out,
        "replication      follower lag max {lag_max} records; ISR shrinks {:.1}{per}, expands {:.1}{per}",
        counted("sluice_isr_shrinks_total"),
        counted("sluice_isr_expands_total"),
    );
    let (hits, misses) = (counted("sluice_batch_cache_hits_total"), counted("sluice_batch_cache_misses_total"));
    let hit_ratio = match hits + misses > 0.0 {
        true => format!("{:.1} % of {:.1}{per} reads", 100.0 * hits / (hits + misses), hits + misses),
        false => "no reads".to_string(),
    };
    let _ = writeln!(
        out,
        "batch cache      {:.1} MiB of {:.1} MiB; hits {hit_ratio}",
        last.total("sluice_batch_cache_bytes") / MIB,
        last.total("sluice_batch_cache_budget_bytes") / MIB,
    );
    let _ = writeln!(
        out,
        "process          {} open descriptors of {}; resident {:.1} MiB",
        last.total("process_open_fds"),
        last.total("process_max_fds"),
        last.total("process_resident_memory_bytes") / MIB,
    );
    if !last.groups.is_empty() {
        let _ = writeln!(out, "\n{:<32} {:>14} {:>20}", "consumer group", "lag (records)", "largest partition lag");
        let mut groups: Vec<_> = last.groups.iter().collect();
        groups.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
        for (group, (lag, max)) in groups.iter().take(GROUPS_SHOWN) {
            let _ = writeln!(out, "{group:<32} {lag:>14} {max:>20}");
        }
        if groups.len() > GROUPS_SHOWN {
            let _ = writeln!(out, "... and {} more", groups.len() - GROUPS_SHOWN);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(produces: u32, slow: u32) -> String {
        format!(
            "# TYPE sluice_requests_total counter\n\
             sluice_requests_total{{shard=\"0\",request=\"Produce\"}} {produces}\n\
             sluice_requests_total{{shard=\"1\",request=\"Produce\"}} {produces}\n\
             sluice_request_bytes_total{{shard=\"0\",request=\"Produce\"}} {}\n\
             sluice_request_duration_seconds_bucket{{shard=\"0\",request=\"Produce\",le=\"0.001\"}} {}\n\
             sluice_request_duration_seconds_bucket{{shard=\"0\",request=\"Produce\",le=\"0.01\"}} {produces}\n\
             sluice_request_duration_seconds_bucket{{shard=\"0\",request=\"Produce\",le=\"+Inf\"}} {produces}\n\
             sluice_request_duration_seconds_bucket{{shard=\"1\",request=\"Produce\",le=\"0.001\"}} {produces}\n\
             sluice_request_duration_seconds_bucket{{shard=\"1\",request=\"Produce\",le=\"0.01\"}} {produces}\n\
             sluice_request_duration_seconds_bucket{{shard=\"1\",request=\"Produce\",le=\"+Inf\"}} {produces}\n\
             sluice_partitions{{shard=\"0\"}} 3\nsluice_partitions{{shard=\"1\"}} 4\n\
             sluice_connections{{shard=\"0\"}} 2\n\
             sluice_batch_cache_hits_total{{shard=\"0\"}} {produces}\n\
             sluice_consumer_group_lag_records{{group=\"crew\"}} 42\n\
             sluice_consumer_group_lag_max_records{{group=\"crew\"}} 40\n\
             process_open_fds 77\n",
            produces * 1024 * 1024,
            produces - slow,
        )
    }

    #[test]
    fn two_scrapes_give_rates_and_the_latency_of_what_happened_between_them() {
        let first = Snapshot::of(&parse(&exposition(100, 0)).unwrap());
        let last = Snapshot::of(&parse(&exposition(300, 100)).unwrap());
        let text = summary("http://x/metrics", Some(&first), &last, 2.0);
        let produce = text.lines().find(|l| l.starts_with("Produce")).unwrap();
        let fields: Vec<&str> = produce.split_whitespace().collect();
        // 400 requests over 2 s on two shards; 200 MiB in on shard 0 over 2 s.
        assert_eq!(fields[1], "200.0", "{text}");
        assert_eq!(fields[2], "600", "{text}");
        assert_eq!(fields[5], "100.000", "{text}");
        // Since the first scrape: 300 of the 400 took under 1 ms, 100 (on shard 0) 1 to 10 ms;
        // interpolated in their buckets, the median is at 2/3 ms and the p99 near 10 ms.
        let p50: f64 = fields[3].parse().unwrap();
        let p99: f64 = fields[4].parse().unwrap();
        assert!((0.6..=0.7).contains(&p50), "{text}");
        assert!((9.0..=10.0).contains(&p99), "{text}");
        assert!(text.contains("open 2;"), "{text}");
        assert!(text.contains("partitions       7 (shard 0: 3, shard 1: 4)"), "{text}");
        assert!(text.contains("hits 100.0 % of 100.0/s reads"), "{text}");
        assert!(text.contains("77 open descriptors"), "{text}");
        assert!(text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["crew", "42", "40"]), "{text}");
    }

    #[test]
    fn one_scrape_gives_totals() {
        let only = Snapshot::of(&parse(&exposition(10, 0)).unwrap());
        let text = summary("http://x/metrics", None, &only, 0.0);
        assert!(text.contains("since the broker started"), "{text}");
        let produce = text.lines().find(|l| l.starts_with("Produce")).unwrap();
        assert_eq!(produce.split_whitespace().nth(1), Some("20.0"), "{text}");
    }

    #[test]
    fn endpoints_and_answers_are_read_or_refused_with_a_reason() {
        let e = Endpoint::parse("127.0.0.1:9644").unwrap();
        assert_eq!(e.url(), "http://127.0.0.1:9644/metrics");
        let e = Endpoint::parse("http://localhost:1/custom").unwrap();
        assert_eq!((e.authority.as_str(), e.path.as_str()), ("localhost:1", "/custom"));
        assert!(Endpoint::parse("https://x:1/metrics").is_err());
        assert!(Endpoint::parse("localhost").is_err());

        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nx 1\nextra";
        assert_eq!(body_of(plain).unwrap(), "x 1\n");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nx \r\n2;ext\r\n1\n\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked).unwrap(), "x 1\n");
        let missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 6\r\n\r\nnope!\n";
        assert!(body_of(missing).unwrap_err().to_string().contains("404 Not Found: nope!"));
        assert!(body_of(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(body_of(b"garbage").is_err());
        assert!(body_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }
}
