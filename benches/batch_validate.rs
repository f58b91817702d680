//! Throughput of record batch validation on the produce path: `RecordBatch::parse_prefix` +
//! `validate` (length, magic, CRC-32C over attributes..end, codec, record count), on uncompressed
//! batches of about 1 KiB, 16 KiB and 1 MiB, plus `sluice::model::crc32c` alone over 1 KiB, 16 KiB and
//! 1 MiB as the ceiling. Criterion prints the rate in GB/s (`Throughput::Bytes`).
//!
//! Run: `cargo bench --bench batch_validate` (add `-- crc32c` etc. to filter).

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice::model::{RecordBatch, Timestamp};
use sluice::testing::batch_of;

/// Nominal batch sizes and their labels.
const SIZES: [(&str, usize); 3] = [("1KiB", 1024), ("16KiB", 16 * 1024), ("1MiB", 1024 * 1024)];

/// A valid batch within a few bytes of `target` bytes: `target / 1 KiB` records (at least one,
/// so values of about 1000 bytes, a typical small message), with the value length adjusted once
/// the per-record overhead is known.
fn batch_near(target: usize) -> BytesMut {
    let records = (target / 1024).max(1);
    let timestamp = Timestamp(1_700_000_000_000);
    let guess = (target / records).saturating_sub(100).max(8);
    let first = batch_of(records, guess, 7, timestamp);
    let overhead = first.len() - records * guess;
    let value = (target.saturating_sub(overhead) / records).max(8);
    batch_of(records, value, 7, timestamp)
}

fn fail(what: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("batch_validate: {what}: {err}");
    std::process::exit(1)
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_validate");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for (label, target) in SIZES {
        let batch = batch_near(target);
        let bytes: &[u8] = &batch;
        // Check once outside the loop, so the bench measures the success path.
        match RecordBatch::parse_prefix(bytes, usize::MAX).map(|b| b.validate()) {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => fail(&format!("{label} batch does not validate"), e),
        }
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse_prefix+validate", label), bytes, |b, bytes| {
            b.iter(|| {
                let batch = RecordBatch::parse_prefix(black_box(bytes), usize::MAX);
                black_box(batch.and_then(|batch| batch.validate()))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("crc32c");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let data: Vec<u8> = (0..1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for (name, len) in [("1KiB", 1024), ("16KiB", 16 * 1024), ("1MiB", data.len())] {
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("crc32c", name), &data[..len], |b, data| {
            b.iter(|| black_box(sluice::model::crc32c(black_box(data))))
        });
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
