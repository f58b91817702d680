//! SIGKILL a process in the middle of appending and check that every append it acknowledged
//! survived, byte for byte, at the offsets it was given.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sluice::model::{BatchIter, Offset, RecordBatch, RecordIter, TopicPartition};
use sluice::storage::{BatchCache, HighWatermark, LogConfig, OpenOptions, PartitionLog, ReadLimits};

use crate::harness::{sluice_bin, temp_dir};

#[derive(Debug, Clone, Copy)]
struct Ack {
    base: i64,
    last: i64,
    seed: u64,
}

/// Runs `sluice log load --print-acks` until it has acknowledged `kill_after` appends, kills it
/// with SIGKILL, and returns every acknowledgement it printed before dying.
fn load_and_kill(dir: &Path, kill_after: usize) -> Vec<Ack> {
    let mut child = Command::new(sluice_bin())
        .args(["log", "load", "--print-acks", "--in-flight", "32", "--duration", "120"])
        .args(["--batch-bytes", "4096", "--record-bytes", "500", "--segment-bytes", "1048576"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sluice log load");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut acks = Vec::new();
    let parse = |line: &str| -> Ack {
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts[0], "ack", "unexpected line {line:?}");
        Ack { base: parts[1].parse().unwrap(), last: parts[2].parse().unwrap(), seed: parts[3].parse().unwrap() }
    };
    for line in lines.by_ref() {
        acks.push(parse(&line.expect("read stdout")));
        if acks.len() >= kill_after {
            break;
        }
    }
    assert!(acks.len() >= kill_after, "the load stopped early after {} acks", acks.len());
    child.kill().expect("SIGKILL");
    // Lines already in the pipe were acknowledged before the kill: they count too.
    for line in lines {
        match line {
            Ok(line) if line.starts_with("ack ") => acks.push(parse(&line)),
            _ => break,
        }
    }
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the child was killed");
    acks
}

/// Opens the log the way a restarting broker would and checks every acknowledged append.
fn verify(dir: PathBuf, acks: Vec<Ack>) -> Offset {
    sluice::testing::run_on_shard(move || async move {
        let cache = BatchCache::new(0);
        let log = PartitionLog::open(OpenOptions {
            dir: dir.clone(),
            topic_partition: TopicPartition::new("crash", 0),
            config: LogConfig::default(),
            cache: &cache,
            files: &sluice::storage::FileCache::new(sluice::storage::FileCacheConfig::default()),
            high_watermark: HighWatermark::FollowsAcks,
        })
        .await
        .expect("reopen after SIGKILL");
        let end = log.log_end_offset();
        for ack in &acks {
            assert!(Offset(ack.last) < end, "acknowledged offset {} is past the recovered end {end}", ack.last);
            let slice = log
                .read(Offset(ack.base), ReadLimits { max_bytes: 1, upper_bound: end })
                .await
                .expect("read an acked batch");
            let bytes = slice.to_vec().await.expect("read bytes");
            let batch = BatchIter::new(&bytes, usize::MAX).next().expect("a batch").expect("a valid batch");
            batch.validate().expect("acked batch passes validation");
            assert_eq!((batch.base_offset().0, batch.last_offset().0), (ack.base, ack.last));
            let first = RecordIter::new(&batch).next().expect("a record").expect("a valid record");
            let tag = ack.seed.wrapping_mul(1_000_003);
            assert_eq!(first.key, Some(&tag.to_be_bytes()[..]), "batch at {} holds another append's records", ack.base);
        }
        // And the recovered log is whole: dense offsets from the start to the end.
        let mut next = log.log_start_offset();
        while next < end {
            let slice = log.read(next, ReadLimits { max_bytes: 1 << 20, upper_bound: end }).await.expect("read");
            let bytes = slice.to_vec().await.expect("bytes");
            for batch in BatchIter::new(&bytes, usize::MAX) {
                let batch: RecordBatch<'_> = batch.expect("valid batch");
                assert_eq!(batch.base_offset(), next, "offsets are dense");
                next = batch.next_offset();
            }
        }
        log.close().await.expect("close");
        end
    })
}

#[test]
fn sigkill_mid_append_loses_no_acknowledged_append() {
    let root = temp_dir();
    let dir = root.path().join("crash-0");
    let mut all = Vec::new();
    // Kill early, mid-segment and after several rolls; each round restarts on the recovered log.
    for kill_after in [5, 300, 1500] {
        let acks = load_and_kill(&dir, kill_after);
        all.extend(acks);
        let end = verify(dir.clone(), all.clone());
        let acked_end = all.iter().map(|a| a.last + 1).max().unwrap_or(0);
        assert!(end.0 >= acked_end);
    }
}

#[test]
fn log_dump_prints_every_batch() {
    let root = temp_dir();
    let dir = root.path().join("dump-0");
    let status = Command::new(sluice_bin())
        .args(["log", "load", "--batches", "7", "--batch-bytes", "2000", "--json", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .expect("run load");
    assert!(status.success());
    let out = Command::new(sluice_bin()).args(["log", "dump"]).arg(&dir).output().expect("run dump");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(text.lines().filter(|l| l.starts_with("offsets ")).count(), 7, "{text}");
    assert!(text.lines().all(|l| !l.contains("crc BAD")));
    let missing = Command::new(sluice_bin()).args(["log", "dump", "/nonexistent/dir"]).output().expect("run dump");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not a directory"));
}
