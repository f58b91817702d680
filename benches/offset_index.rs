//! Index lookups of a segment: `OffsetIndex::lookup` (offset → the entry to start scanning
//! from) and `TimeIndex::lookup` (timestamp → the offset to start scanning from), both a binary
//! search over the in-memory entries, on indexes of 1k, 64k and 1M entries. The targets are
//! random (a fixed-seed generator, 4096 of them, cycled through), so the larger indexes pay
//! their cache misses as a fetch at a random offset would. Criterion prints lookups/s.
//!
//! The offset index has one entry per 16 offsets and 1 KiB of log (1M entries is a full 1 GiB
//! segment at `index.interval.bytes` = 1024; the broker's default of 4096 gives 256k); the time
//! index one entry per 16 offsets and 10 ms.
//!
//! Run: `cargo bench --bench offset_index` (about a minute after the build; add `-- time_index`
//! etc. to filter).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice::model::{Offset, Timestamp};
use sluice::storage::{IndexEntry, OffsetIndex, TimeEntry, TimeIndex};

/// Index sizes, in entries, and their labels.
const SIZES: [(&str, u32); 3] = [("1k", 1_000), ("64k", 64 * 1024), ("1M", 1024 * 1024)];
/// Offsets, log bytes and milliseconds between two entries.
const OFFSETS_PER_ENTRY: u32 = 16;
const BYTES_PER_ENTRY: u32 = 1024;
const MS_PER_ENTRY: i64 = 10;
/// The segment's base offset and first timestamp.
const BASE: Offset = Offset(5_000_000);
const FIRST_TIMESTAMP: i64 = 1_700_000_000_000;
/// Random targets per index (a power of two).
const TARGETS: usize = 4096;

/// SplitMix64: a small, seeded generator, so every run looks up the same targets.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn offset_index(entries: u32) -> OffsetIndex {
    let mut index = OffsetIndex::default();
    for i in 1..=entries {
        index.push(IndexEntry { relative_offset: i * OFFSETS_PER_ENTRY, position: i * BYTES_PER_ENTRY });
    }
    index
}

fn time_index(entries: u32) -> TimeIndex {
    let mut index = TimeIndex::default();
    for i in 1..=entries {
        let timestamp = Timestamp(FIRST_TIMESTAMP + i64::from(i) * MS_PER_ENTRY);
        index.maybe_push(TimeEntry { timestamp, relative_offset: i * OFFSETS_PER_ENTRY });
    }
    index
}

fn lookups(c: &mut Criterion) {
    let mut rng = SplitMix64(0x5eed);
    let mut group = c.benchmark_group("offset_index");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for (label, entries) in SIZES {
        let index = offset_index(entries);
        // Anywhere in the segment, up to one entry's worth past the last one.
        let span = u64::from((entries + 1) * OFFSETS_PER_ENTRY);
        let targets: Vec<Offset> = (0..TARGETS).map(|_| BASE.plus(rng.below(span) as i64)).collect();
        let mut i = 0;
        group.bench_function(BenchmarkId::new("lookup", label), |b| {
            b.iter(|| {
                i = (i + 1) & (TARGETS - 1);
                index.lookup(BASE, targets[i])
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("time_index");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for (label, entries) in SIZES {
        let index = time_index(entries);
        let span = (i64::from(entries) + 1) * MS_PER_ENTRY;
        let targets: Vec<Timestamp> =
            (0..TARGETS).map(|_| Timestamp(FIRST_TIMESTAMP + rng.below(span as u64) as i64)).collect();
        let mut i = 0;
        group.bench_function(BenchmarkId::new("lookup", label), |b| {
            b.iter(|| {
                i = (i + 1) & (TARGETS - 1);
                index.lookup(BASE, targets[i])
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
