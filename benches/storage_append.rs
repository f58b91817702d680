//! Appender throughput through the public storage API: a `PartitionLog` on one glommio shard,
//! 16 KiB batches, [`IN_FLIGHT`] appends in flight (one local task each, every task waiting for
//! `durable()` before its next append), so group commit is exercised as a busy broker would.
//! Two groups: `--flush-mode sync` (acknowledged = fdatasync'd) and `none` (acknowledged =
//! written with O_DIRECT, no fdatasync).
//!
//! One criterion iteration is [`APPENDS_PER_ITER`] appends; `iter_custom` runs all the iterations
//! of a sample in one executor on a fresh log and times from the first append until the last
//! is acknowledged (opening the log, a warm-up of 64 MiB of appends, and closing are not timed).
//! Criterion prints bytes/s (MiB/s or GiB/s).
//!
//! The log lives in a temporary directory under `$SLUICE_BENCH_DIR`, or else Cargo's
//! `target/tmp` (on the repository's filesystem, never tmpfs), and is removed afterwards.
//!
//! Run: `cargo bench --bench storage_append` (about 20 s after the build).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use sluice::model::{LeaderEpoch, Timestamp, TopicPartition, ValidBatches};
use sluice::storage::{BatchCache, FlushMode, HighWatermark, LogConfig, OpenOptions, PartitionLog};
use sluice::testing::{batch_of, run_on_shard};

/// Appends in flight at once.
const IN_FLIGHT: usize = 64;
/// Appends per criterion iteration (about 16 MB of 16 KiB batches).
const APPENDS_PER_ITER: u64 = 1024;
/// Records per batch and value bytes per record: 16 records of 1000 B, a 16,333 B batch.
const RECORDS: usize = 16;
const VALUE_BYTES: usize = 1000;
/// The shard's batch cache budget. Smaller than the broker's default (256 MiB) so that the
/// untimed warm-up that fills it is short: until the cache is full every append's buffer is
/// fresh memory from the kernel (page faults), after that buffers are recycled.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// Untimed appends before the clock starts: twice what fills the cache.
const WARM_UP_BYTES: u64 = 2 * CACHE_BYTES;

fn fail(what: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("storage_append: {what}: {err}");
    std::process::exit(1)
}

fn scratch_root() -> PathBuf {
    let root =
        std::env::var_os("SLUICE_BENCH_DIR").map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    if let Err(e) = std::fs::create_dir_all(&root) {
        fail(&format!("creating {}", root.display()), e);
    }
    root
}

fn template() -> BytesMut {
    batch_of(RECORDS, VALUE_BYTES, 0, Timestamp(1_700_000_000_000))
}

/// Appends `appends` copies of `template` to a new log in `dir` with [`IN_FLIGHT`] in flight
/// (after an untimed warm-up) and returns the time from the first timed append until the last
/// was acknowledged.
async fn append_workload(dir: PathBuf, flush_mode: FlushMode, appends: u64, template: BytesMut) -> Duration {
    let cache = BatchCache::new(CACHE_BYTES);
    let config = LogConfig { flush_mode, ..LogConfig::default() };
    let options = OpenOptions {
        dir: dir.join("bench-0"),
        topic_partition: TopicPartition::new("bench", 0),
        config,
        cache: &cache,
        files: &sluice::storage::FileCache::new(sluice::storage::FileCacheConfig::default()),
        high_watermark: HighWatermark::FollowsAcks,
    };
    let log = match PartitionLog::open(options).await {
        Ok(log) => Rc::new(log),
        Err(e) => fail("opening the log", e),
    };
    append_in_flight(&log, WARM_UP_BYTES.div_ceil(template.len() as u64), &template).await;
    let started = Instant::now();
    append_in_flight(&log, appends, &template).await;
    let elapsed = started.elapsed();
    if let Err(e) = log.close().await {
        fail("closing the log", e);
    }
    elapsed
}

/// Appends `appends` copies of `template` from [`IN_FLIGHT`] tasks, each waiting for its append
/// to be acknowledged before the next; returns when all are acknowledged.
async fn append_in_flight(log: &Rc<PartitionLog>, appends: u64, template: &BytesMut) {
    let issued = Rc::new(Cell::new(0u64));
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (log, issued, template) = (log.clone(), issued.clone(), template.clone());
            let limit = log.config().batch_bytes_max();
            glommio::spawn_local(async move {
                while issued.get() < appends {
                    issued.set(issued.get() + 1);
                    // A copy per append, as a produce request brings its own buffer, validated as the
                    // broker validates one.
                    let batches = match ValidBatches::new(template.clone(), limit) {
                        Ok(batches) => batches,
                        Err(e) => fail("validating", e),
                    };
                    let pending = match log.append(batches, LeaderEpoch(0)) {
                        Ok(pending) => pending,
                        Err(e) => fail("append", e),
                    };
                    if let Err(e) = pending.durable().await {
                        fail("waiting for durability", e);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
}

fn run(root: &Path, flush_mode: FlushMode, iters: u64) -> Duration {
    let dir = match tempfile::Builder::new().prefix("storage-append-").tempdir_in(root) {
        Ok(dir) => dir,
        Err(e) => fail(&format!("creating a temp dir in {}", root.display()), e),
    };
    let path = dir.path().to_path_buf();
    let appends = iters * APPENDS_PER_ITER;
    let elapsed = run_on_shard(move || async move { append_workload(path, flush_mode, appends, template()).await });
    drop(dir);
    elapsed
}

fn storage_append(c: &mut Criterion) {
    let root = scratch_root();
    let batch_bytes = template().len() as u64;
    for (name, flush_mode) in [("sync", FlushMode::Sync), ("none", FlushMode::None)] {
        let mut group = c.benchmark_group(format!("storage_append/flush_{name}"));
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .throughput(Throughput::Bytes(batch_bytes * APPENDS_PER_ITER));
        group.bench_function(BenchmarkId::new("16KiB", format!("in_flight_{IN_FLIGHT}")), |b| {
            b.iter_custom(|iters| run(&root, flush_mode, iters))
        });
        group.finish();
    }
}

criterion_group!(benches, storage_append);
criterion_main!(benches);
