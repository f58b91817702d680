//! `sluice bench produce | consume | e2e`: the load generator (see [`crate::bench`]).
//!
//! Progress goes to stderr once a second (redrawn in place on a terminal), the summary to
//! stdout; `--json`, `--hdr` and `--plot` write files. Ctrl-C stops the run and still prints
//! what was measured; a second Ctrl-C exits at once. Exit status: 0 for a clean run, 1 when the
//! run failed (the reason is printed) or was interrupted.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use super::common::{AcksArg, CompressionArg};
use crate::bench::report::{Progress, Report, hgrm};
use crate::bench::{BenchConfig, Keys, Mode, Stop};

#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    #[command(subcommand)]
    mode: BenchMode,
}

#[derive(Debug, Subcommand)]
enum BenchMode {
    /// Produce records as fast as possible or at --rate; report throughput and ack latency.
    Produce(Flags),
    /// Read the topic from the earliest offset; report throughput.
    Consume(Flags),
    /// Consumers at the log end, then producers: throughput and end-to-end latency.
    E2e(Flags),
    /// A consumer group: time to form, time to rebalance after a join, commits per second.
    Group(GroupFlags),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AssignorArg {
    Range,
    Roundrobin,
    CooperativeSticky,
}

#[derive(Debug, Args)]
struct GroupFlags {
    /// Bootstrap servers, comma-separated host:port.
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = "127.0.0.1:9092", value_delimiter = ',')]
    bootstrap: Vec<String>,
    /// The topic the members subscribe to (created if missing).
    #[arg(long, default_value = "sluice-bench-group")]
    topic: String,
    /// Partitions of the topic if the bench creates it (more than --members, so each gets some).
    #[arg(long, default_value_t = 24)]
    partitions: i32,
    /// The group id.
    #[arg(long, default_value = "sluice-bench-group")]
    group: String,
    /// Members joining at first (one more joins later to time a rebalance).
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// The partition assignor.
    #[arg(long, value_enum, default_value = "range")]
    assignor: AssignorArg,
    /// Heartbeat period in ms.
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u64,
    /// Session timeout in ms.
    #[arg(long, default_value_t = 10_000)]
    session_timeout_ms: u64,
    /// Each member commits every this many ms.
    #[arg(long, default_value_t = 100)]
    commit_interval_ms: u64,
    /// Seconds of commits.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Write the report as JSON to this file ("-" for stdout, replacing the summary).
    #[arg(long)]
    json: Option<PathBuf>,
}

fn run_group(flags: GroupFlags) -> anyhow::Result<()> {
    if flags.members == 0 {
        bail!("--members must be at least 1");
    }
    if flags.partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    if !(flags.duration.is_finite() && flags.duration > 0.0) {
        bail!("--duration must be a positive number of seconds");
    }
    let config = crate::bench::group::GroupBenchConfig {
        bootstrap: flags.bootstrap,
        topic: flags.topic,
        partitions: flags.partitions,
        group: flags.group,
        members: flags.members,
        assignor: match flags.assignor {
            AssignorArg::Range => crate::client::Assignor::Range,
            AssignorArg::Roundrobin => crate::client::Assignor::RoundRobin,
            AssignorArg::CooperativeSticky => crate::client::Assignor::CooperativeSticky,
        },
        heartbeat_ms: flags.heartbeat_ms,
        session_timeout_ms: flags.session_timeout_ms,
        commit_interval_ms: flags.commit_interval_ms,
        duration_s: flags.duration,
    };
    let report = crate::bench::group::run(config).map_err(anyhow::Error::msg)?;
    match flags.json.as_deref() {
        Some(path) if path == Path::new("-") => println!("{}", serde_json::to_string_pretty(&report)?),
        Some(path) => {
            std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
            print!("{}", report.summary());
        }
        None => print!("{}", report.summary()),
    }
    Ok(())
}

/// A flag given twice takes its last value, so scripts can put overrides after defaults.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
struct Flags {
    /// Bootstrap servers, comma-separated host:port.
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = "127.0.0.1:9092", value_delimiter = ',')]
    bootstrap: Vec<String>,
    /// The topic (created with --partitions if missing, except in consume mode).
    #[arg(long, default_value = "sluice-bench")]
    topic: String,
    /// Partitions of the topic if the bench creates it.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Replication factor of the topic if the bench creates it.
    #[arg(long, default_value_t = 1)]
    replication_factor: i16,
    /// Producer clients (each with its own connections).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumer clients.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Every consumer reads every partition (pub/sub fan-out) instead of splitting them.
    #[arg(long)]
    fanout: bool,
    /// Value bytes per record (at least 8: the first 8 carry the send time).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Keys: none, N (uniform over N keys), uniform:N, seq:N, zipf:N or zipf:N:EXPONENT.
    #[arg(long, default_value = "none")]
    keys: Keys,
    /// Records per second over all producers, open loop; 0 for as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to run after the warm-up (default 10 unless --records is given).
    #[arg(long)]
    duration: Option<f64>,
    /// Records to send in all (consume mode: to receive in all); replaces --duration.
    #[arg(long, conflicts_with = "duration")]
    records: Option<u64>,
    /// Seconds at the start left out of the totals (rounded up to whole seconds).
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Kafka's batch.size: bytes per partition batch.
    #[arg(long, default_value_t = 1024 * 1024)]
    batch_bytes: usize,
    /// Kafka's linger.ms.
    #[arg(long, default_value_t = 5.0)]
    linger_ms: f64,
    /// Acknowledgements: 0, 1 or all.
    #[arg(long, value_enum, default_value = "all")]
    acks: AcksArg,
    /// Idempotent producers (needs --acks all and --max-in-flight at most 5). Off by default,
    /// unlike `sluice produce`, so the bench measures plain produce as it always has.
    #[arg(long)]
    idempotent: bool,
    /// Transactional producers (idempotent, acks all): each commits a transaction every
    /// --records-per-txn records; e2e consumers then read read_committed.
    #[arg(long)]
    transactional: bool,
    /// Records per transaction with --transactional.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    records_per_txn: u64,
    /// Batch compression.
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 5)]
    max_in_flight: usize,
    /// Generator shards (threads) the clients are spread over.
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Kafka's fetch.max.bytes for consumers.
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    fetch_max_bytes: i32,
    /// Kafka's max.partition.fetch.bytes for consumers.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    partition_fetch_max_bytes: i32,
    /// Seconds a request may take before the run fails.
    #[arg(long, default_value_t = 30.0)]
    request_timeout: f64,
    /// Write the report as JSON to this file ("-" for stdout, replacing the summary).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the latency percentile distribution (HdrHistogram .hgrm text) to this file; e2e
    /// latency goes to the same name with "-e2e" before the extension.
    #[arg(long)]
    hdr: Option<PathBuf>,
    /// Draw latency by percentile and throughput over time into this PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn seconds(what: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("--{what} {value} is not a number of seconds"))
}

impl Flags {
    fn into_config(self, mode: Mode) -> anyhow::Result<(BenchConfig, Outputs)> {
        if self.bootstrap.iter().all(|s| s.trim().is_empty()) {
            bail!("--bootstrap is empty");
        }
        if self.record_size < crate::bench::SEND_TIME_BYTES {
            bail!("--record-size must be at least {} (the send time)", crate::bench::SEND_TIME_BYTES);
        }
        if self.record_size as u64 > u64::from(crate::limits::REQUEST_BYTES_MAX_DEFAULT) {
            bail!("--record-size {} is larger than a request may be", self.record_size);
        }
        if self.partitions < 1 {
            bail!("--partitions must be at least 1");
        }
        if self.replication_factor < 1 {
            bail!("--replication-factor must be at least 1");
        }
        if mode != Mode::Consume && self.producers == 0 {
            bail!("--producers must be at least 1");
        }
        if mode != Mode::Produce && self.consumers == 0 {
            bail!("--consumers must be at least 1");
        }
        if self.cores == 0 {
            bail!("--cores must be at least 1");
        }
        if self.max_in_flight == 0 {
            bail!("--max-in-flight must be at least 1");
        }
        if !matches!(self.acks, AcksArg::All) {
            if self.idempotent {
                bail!("--idempotent needs --acks all");
            }
            if self.transactional {
                bail!("--transactional needs --acks all");
            }
        }
        if self.records_per_txn == 0 {
            bail!("--records-per-txn must be at least 1");
        }
        let in_flight_max = crate::client::producer::IDEMPOTENT_IN_FLIGHT_MAX;
        if (self.idempotent || self.transactional) && self.max_in_flight > in_flight_max {
            let flag = if self.transactional { "--transactional" } else { "--idempotent" };
            bail!("{flag} allows --max-in-flight {in_flight_max} at most");
        }
        if self.batch_bytes == 0 {
            bail!("--batch-bytes must be at least 1");
        }
        if self.fetch_max_bytes < 1 || self.partition_fetch_max_bytes < 1 {
            bail!("--fetch-max-bytes and --partition-fetch-max-bytes must be positive");
        }
        let stop = match (self.records, self.duration) {
            (Some(0), _) => bail!("--records must be at least 1"),
            (Some(n), _) => Stop::Records(n),
            (None, Some(d)) => Stop::Duration(seconds("duration", d)?),
            (None, None) => Stop::Duration(Duration::from_secs(10)),
        };
        let config = BenchConfig {
            mode,
            bootstrap: self.bootstrap.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            topic: self.topic,
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            producers: self.producers,
            consumers: self.consumers,
            fanout: self.fanout,
            record_size: self.record_size,
            keys: self.keys,
            rate: self.rate,
            stop,
            warmup: seconds("warmup", self.warmup)?,
            batch_bytes: self.batch_bytes,
            linger: seconds("linger-ms", self.linger_ms / 1000.0)?,
            acks: self.acks.into(),
            idempotent: self.idempotent,
            records_per_txn: self.transactional.then_some(self.records_per_txn),
            compression: self.compression.into(),
            max_in_flight: self.max_in_flight,
            cores: self.cores,
            fetch_max_bytes: self.fetch_max_bytes,
            partition_fetch_max_bytes: self.partition_fetch_max_bytes,
            request_timeout: seconds("request-timeout", self.request_timeout)?,
        };
        Ok((config, Outputs { json: self.json, hdr: self.hdr, plot: self.plot }))
    }
}

/// Files to write after the run.
struct Outputs {
    json: Option<PathBuf>,
    hdr: Option<PathBuf>,
    plot: Option<PathBuf>,
}

pub(super) fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (mode, flags) = match args.mode {
        BenchMode::Produce(flags) => (Mode::Produce, flags),
        BenchMode::Consume(flags) => (Mode::Consume, flags),
        BenchMode::E2e(flags) => (Mode::E2e, flags),
        BenchMode::Group(flags) => return run_group(flags),
    };
    let (config, outputs) = flags.into_config(mode)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    // The first Ctrl-C asks the run to stop; a second one (flag already set) exits at once.
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, interrupted.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(signal, interrupted.clone()).context("installing signal handlers")?;
    }
    let terminal = std::io::stderr().is_terminal();
    let mut show = |progress: &Progress| {
        let mut err = std::io::stderr().lock();
        if terminal {
            let _ = write!(err, "\r\x1b[2K{}", progress.line());
        } else {
            let _ = writeln!(err, "{}", progress.line());
        }
        let _ = err.flush();
    };
    let report = crate::bench::run(config, interrupted, &mut show);
    if terminal {
        eprintln!();
    }
    write_outputs(&report, &outputs)?;
    if outputs.json.as_deref() != Some(Path::new("-")) {
        print!("{}", report.summary());
    }
    if let Some(error) = &report.error {
        bail!("{error}");
    }
    if report.interrupted {
        bail!("interrupted");
    }
    Ok(())
}

fn write_outputs(report: &Report, outputs: &Outputs) -> anyhow::Result<()> {
    if let Some(path) = &outputs.json {
        let json = serde_json::to_string_pretty(report).context("encoding the report")?;
        if path == Path::new("-") {
            println!("{json}");
        } else {
            std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if let Some(path) = &outputs.hdr {
        let histograms = &report.histograms;
        let primary = if report.config.mode == Mode::Consume { &histograms.e2e } else { &histograms.produce };
        std::fs::write(path, hgrm(primary)).with_context(|| format!("writing {}", path.display()))?;
        if report.config.mode == Mode::E2e {
            let e2e = with_suffix(path, "-e2e");
            std::fs::write(&e2e, hgrm(&histograms.e2e)).with_context(|| format!("writing {}", e2e.display()))?;
        }
    }
    if let Some(path) = &outputs.plot
        && let Some(warning) = crate::bench::plot::draw(report, path).map_err(anyhow::Error::msg)?
    {
        eprintln!("sluice bench: {warning}");
    }
    Ok(())
}

/// `dir/name.ext` → `dir/name<suffix>.ext`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}{suffix}.{}", ext.to_string_lossy()),
        None => format!("{stem}{suffix}"),
    };
    path.with_file_name(name)
}
