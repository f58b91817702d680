//! `sluice log dump | load`: a partition log directory without a broker.
//!
//! `load` appends synthetic batches with many appends in flight, so group commit is exercised
//! as a busy broker would; it reports appends/s, MB/s and append latency percentiles, and with
//! `--print-acks` prints each acknowledged append (the crash test reads those lines, kills the
//! process, and checks that every one survived).

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::limits::{FLUSH_INTERVAL_MS_DEFAULT, SEGMENT_BYTES_DEFAULT};
use crate::model::{BatchIter, LeaderEpoch, Timestamp, TopicPartition, ValidBatches, seeded_batch};
use crate::storage::{
    self, BatchCache, FileCache, FileCacheConfig, FlushMode, HighWatermark, LogConfig, OpenOptions, PartitionLog,
    ReadLimits,
};

#[derive(Debug, Args)]
pub(super) struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Print every batch of a partition directory (recovering it first, as a broker would).
    Dump {
        /// The partition directory.
        dir: PathBuf,
    },
    /// Append synthetic batches and report throughput and latency.
    Load(LoadArgs),
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// The partition directory (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Bytes per batch (records of `--record-bytes` each, at least one per batch).
    #[arg(long, default_value_t = 16 * 1024)]
    batch_bytes: usize,
    /// Value bytes per record.
    #[arg(long, default_value_t = 1000)]
    record_bytes: usize,
    /// Appends in flight at once (each waits for its acknowledgement before the next).
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Stop after this many appends (0: use --duration).
    #[arg(long, default_value_t = 0)]
    batches: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// When an append counts as done: sync (fdatasync), interval, none.
    #[arg(long, default_value = "sync")]
    flush_mode: String,
    /// fdatasync period for --flush-mode interval.
    #[arg(long, default_value_t = FLUSH_INTERVAL_MS_DEFAULT)]
    flush_interval_ms: u64,
    /// segment.bytes.
    #[arg(long, default_value_t = SEGMENT_BYTES_DEFAULT)]
    segment_bytes: u32,
    /// Print `ack <base offset> <last offset> <seed>` for every acknowledged append.
    #[arg(long)]
    print_acks: bool,
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: LogArgs) -> anyhow::Result<()> {
    match args.command {
        LogCommand::Dump { dir } => on_shard(move || dump(dir)),
        LogCommand::Load(args) => on_shard(move || load(args)),
    }
}

fn on_shard<F>(make_future: impl FnOnce() -> F + Send + 'static) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>> + 'static,
{
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("sluice-log")
        .spawn(make_future)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("starting a glommio executor (is RLIMIT_MEMLOCK at least 512 KiB?)")?;
    handle.join().map_err(|e| anyhow::anyhow!("executor failed: {e:?}"))?
}

fn topic_partition_of(dir: &std::path::Path) -> TopicPartition {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("log");
    match name.rsplit_once('-').and_then(|(t, p)| Some((t, p.parse().ok()?))) {
        Some((topic, partition)) => TopicPartition::new(topic, partition),
        None => TopicPartition::new(name, 0),
    }
}

async fn dump(dir: PathBuf) -> anyhow::Result<()> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let cache = BatchCache::new(0);
    // As a compacted log: recovery then takes offset gaps as a cleaner's holes, not as damage
    // to cut, whatever the topic's policy.
    let mut config = LogConfig::default();
    config.set("cleanup.policy", "compact")?;
    let log = PartitionLog::open(OpenOptions {
        dir: dir.clone(),
        topic_partition: topic_partition_of(&dir),
        config,
        cache: &cache,
        files: &FileCache::new(FileCacheConfig::default()),
        high_watermark: HighWatermark::FollowsAcks,
    })
    .await?;
    println!(
        "log start {}  log end {}  segments {}  bytes {}",
        log.log_start_offset(),
        log.log_end_offset(),
        log.segment_count(),
        log.size_bytes()
    );
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let slice = log.read(next, ReadLimits { max_bytes: 1 << 20, upper_bound: end }).await?;
        if slice.is_empty() {
            break;
        }
        let bytes = slice.to_vec().await?;
        let mut iter = BatchIter::new(&bytes, usize::MAX);
        for batch in iter.by_ref() {
            let batch = batch?;
            if batch.base_offset() > next {
                let removed = batch.base_offset().0 - next.0;
                println!("hole {next}..={}  ({removed} offsets removed by compaction)", batch.base_offset().plus(-1));
            }
            let crc = if batch.validate_stored().is_ok() { "ok" } else { "BAD" };
            let header = batch.header();
            println!(
                "offsets {}..={}  records {}  bytes {}  epoch {}  max_ts {}  compression {:?}  crc {crc}  \
                 producer {}/{} seq {}{}{}",
                batch.base_offset(),
                batch.last_offset(),
                batch.records_count(),
                batch.size(),
                batch.leader_epoch(),
                batch.max_timestamp(),
                batch.compression()?,
                batch.producer_id().0,
                header.producer_epoch.get(),
                header.base_sequence.get(),
                if batch.is_transactional() { "  transactional" } else { "" },
                if batch.is_control() { "  control" } else { "" },
            );
            next = batch.next_offset();
        }
    }
    log.close().await?;
    Ok(())
}

async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let flush_mode = FlushMode::parse(&args.flush_mode, args.flush_interval_ms)?;
    let mut config = LogConfig { flush_mode, ..LogConfig::default() };
    config.set("segment.bytes", &args.segment_bytes.to_string())?;
    config.set("max.message.bytes", &crate::limits::BATCH_BYTES_MAX.to_string())?;
    let cache = BatchCache::new(crate::limits::BATCH_CACHE_BYTES_DEFAULT);
    let log = Rc::new(
        PartitionLog::open(OpenOptions {
            dir: args.dir.clone(),
            topic_partition: topic_partition_of(&args.dir),
            config,
            cache: &cache,
            files: &FileCache::new(FileCacheConfig::default()),
            high_watermark: HighWatermark::FollowsAcks,
        })
        .await?,
    );
    let records = (args.batch_bytes / (args.record_bytes + 30)).max(1);
    let template = seeded_batch(records, args.record_bytes, 0, Timestamp::now());
    let batch_size = template.len();
    let histogram = Rc::new(RefCell::new(hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let issued = Rc::new(Cell::new(0u64));
    let failed = Rc::new(RefCell::new(None::<String>));
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.in_flight.max(1) {
        let (log, histogram, issued, failed) = (log.clone(), histogram.clone(), issued.clone(), failed.clone());
        let print_acks = args.print_acks;
        let (limit, record_bytes) = (args.batches, args.record_bytes);
        let template = template.clone();
        let size_max = log.config().batch_bytes_max();
        tasks.push(glommio::spawn_local(async move {
            loop {
                let seed = issued.get();
                if (limit > 0 && seed >= limit)
                    || (limit == 0 && Instant::now() >= deadline)
                    || failed.borrow().is_some()
                {
                    return;
                }
                issued.set(seed + 1);
                let batch = if print_acks {
                    seeded_batch(records, record_bytes, seed, Timestamp::now())
                } else {
                    template.clone()
                };
                let sent = Instant::now();
                // Validated here as the broker validates a produce request, so the load measures both.
                let appended = ValidBatches::new(batch, size_max)
                    .map_err(storage::Error::from)
                    .and_then(|batches| log.append(batches, LeaderEpoch(0)));
                let result = match appended {
                    Ok(pending) => pending.durable().await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(info) => {
                        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                        let _ = histogram.borrow_mut().record(micros.max(1));
                        if print_acks {
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "ack {} {} {seed}", info.base_offset, info.last_offset);
                            let _ = out.flush();
                        }
                    }
                    Err(e) => {
                        *failed.borrow_mut() = Some(e.to_string());
                        return;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    log.close().await?;
    if let Some(e) = failed.borrow().as_ref() {
        bail!("append failed: {e}");
    }
    let histogram = histogram.borrow();
    let appends = histogram.len();
    let bytes = appends * batch_size as u64;
    let mb_per_s = bytes as f64 / elapsed / 1e6;
    let appends_per_s = appends as f64 / elapsed;
    let (p50, p99, p999, max) = (
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max(),
    );
    let summary = LoadSummary {
        batch_bytes: batch_size,
        appends,
        seconds: elapsed,
        appends_per_s,
        mb_per_s,
        latency_us: Latency { p50, p99, p999, max },
        flush_mode: args.flush_mode.clone(),
        in_flight: args.in_flight,
        log_end: log.log_end_offset().0,
        writes: log.stats().writes,
        syncs: log.stats().syncs,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{appends} appends of {batch_size} B in {elapsed:.2} s: {appends_per_s:.0} appends/s, {mb_per_s:.1} MB/s; \
             latency p50 {p50} µs, p99 {p99} µs, p99.9 {p999} µs, max {max} µs (flush mode {}, {} in flight)",
            args.flush_mode, args.in_flight
        );
    }
    Ok(())
}

/// The `--json` summary of `sluice log load`.
#[derive(Debug, serde::Serialize)]
struct LoadSummary {
    batch_bytes: usize,
    appends: u64,
    seconds: f64,
    appends_per_s: f64,
    mb_per_s: f64,
    latency_us: Latency,
    flush_mode: String,
    in_flight: usize,
    log_end: i64,
    /// Segment writes issued: appends ÷ writes is the mean group-commit size.
    writes: u64,
    /// fdatasync calls.
    syncs: u64,
}

#[derive(Debug, serde::Serialize)]
struct Latency {
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}
