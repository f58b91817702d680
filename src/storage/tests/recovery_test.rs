//! Damage a log's files the ways a crash or a bad disk can, reopen it, and check that recovery
//! keeps exactly the batches before the damage and nothing after it.

use std::path::Path;

use super::*;
use crate::model::LeaderEpoch;
use crate::storage::segment_file;
use crate::testing::run_on_shard;

/// Writes `count` batches of assorted sizes, closes cleanly, and returns the originals (as
/// handed to append) and each batch's end position in the log file.
async fn build_log(dir: &Path, config: &LogConfig, count: u64) -> (Vec<Vec<u8>>, Vec<u64>) {
    let cache = BatchCache::new(u64::MAX);
    let log = open(dir, config.clone(), &cache).await;
    let mut originals = Vec::new();
    for seed in 0..count {
        let b = batch(seed, 1 + (seed as usize % 3), 40 + (seed as usize * 53) % 400);
        originals.push(b.to_vec());
        append(&log, b, LeaderEpoch(0)).unwrap().durable().await.unwrap();
    }
    log.close().await.unwrap();
    let mut ends = Vec::new();
    let mut end = 0;
    for b in &originals {
        end += b.len() as u64;
        ends.push(end);
    }
    (originals, ends)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name != ".clean-shutdown" {
            std::fs::copy(entry.path(), to.join(name)).unwrap();
        }
    }
}

/// Opens the damaged copy and checks it holds exactly `originals[..kept]`, then that it takes
/// appends again at the right offset.
async fn check_recovers_to(dir: &Path, config: &LogConfig, originals: &[Vec<u8>], kept: usize, what: &str) {
    let cache = BatchCache::new(0);
    let log = open(dir, config.clone(), &cache).await;
    let got = read_all(&log, Offset(0), log.log_end_offset()).await;
    assert_eq!(got.len(), kept, "{what}: kept {} batches, expected {kept}", got.len());
    for (i, ((_, stored), original)) in got.iter().zip(originals).enumerate() {
        assert!(same_batch(stored, original), "{what}: batch {i} differs");
    }
    let records: i64 = got
        .iter()
        .map(|(_, b)| i64::from(crate::model::RecordBatch::parse_prefix(b, usize::MAX).unwrap().records_count()))
        .sum();
    assert_eq!(log.log_end_offset(), Offset(records), "{what}");
    let info = append(&log, batch(1000, 1, 10), LeaderEpoch(0)).unwrap().durable().await.unwrap();
    assert_eq!(info.base_offset, Offset(records), "{what}");
    log.close().await.unwrap();
}

#[test]
fn a_tail_cut_anywhere_keeps_exactly_the_whole_batches_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let config = small_config(1 << 20);
        let (originals, ends) = build_log(&root.join("orig"), &config, 30).await;
        let log_name = segment_file(Path::new(""), Offset(0), "log");
        let total = *ends.last().unwrap();
        let mut cuts: Vec<u64> = (0..total).step_by(29).collect();
        for &end in &ends {
            cuts.extend([end.saturating_sub(1), end, end + 1, end.saturating_sub(61)]);
        }
        cuts.retain(|&c| c <= total);
        cuts.sort();
        cuts.dedup();
        for (i, &cut) in cuts.iter().enumerate() {
            let copy = root.join(format!("cut-{i}"));
            copy_dir(&root.join("orig"), &copy);
            let file = std::fs::OpenOptions::new().write(true).open(copy.join(&log_name)).unwrap();
            file.set_len(cut).unwrap();
            let kept = ends.iter().take_while(|&&e| e <= cut).count();
            check_recovers_to(&copy, &config, &originals, kept, &format!("cut at {cut}")).await;
            std::fs::remove_dir_all(&copy).unwrap();
        }
    });
}

#[test]
fn a_flipped_byte_anywhere_keeps_exactly_the_batches_before_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let config = small_config(1 << 20);
        let (originals, ends) = build_log(&root.join("orig"), &config, 30).await;
        let log_name = segment_file(Path::new(""), Offset(0), "log");
        let total = *ends.last().unwrap();
        let mut flips: Vec<u64> = (0..total).step_by(17).collect();
        // Every header byte of the first, a middle and the last batch (the fields outside the
        // CRC included: base offset, length, epoch).
        for k in [0usize, 15, 29] {
            let start = if k == 0 { 0 } else { ends[k - 1] };
            flips.extend(start..start + 61);
        }
        flips.sort();
        flips.dedup();
        let original_bytes = std::fs::read(root.join("orig").join(&log_name)).unwrap();
        for (i, &at) in flips.iter().enumerate() {
            let copy = root.join(format!("flip-{i}"));
            copy_dir(&root.join("orig"), &copy);
            let mut bytes = original_bytes.clone();
            bytes[at as usize] ^= 0x10;
            std::fs::write(copy.join(&log_name), &bytes).unwrap();
            let kept = ends.iter().take_while(|&&e| e <= at).count();
            check_recovers_to(&copy, &config, &originals, kept, &format!("flip at {at}")).await;
            std::fs::remove_dir_all(&copy).unwrap();
        }
    });
}

#[test]
fn damaged_or_missing_indexes_are_rebuilt_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let config = small_config(1 << 20);
        let (originals, _) = build_log(&root.join("orig"), &config, 40).await;
        let index = segment_file(Path::new(""), Offset(0), "index");
        let time_index = segment_file(Path::new(""), Offset(0), "timeindex");
        let index_bytes = std::fs::read(root.join("orig").join(&index)).unwrap();
        assert!(index_bytes.len() >= 16, "the test needs a few index entries");
        type Damage<'a> = Box<dyn Fn(&Path) + 'a>;
        let cases: Vec<(&str, Damage)> = vec![
            ("index deleted", Box::new(|d: &Path| std::fs::remove_file(d.join(&index)).unwrap())),
            ("time index deleted", Box::new(|d: &Path| std::fs::remove_file(d.join(&time_index)).unwrap())),
            ("index garbage", Box::new(|d: &Path| std::fs::write(d.join(&index), [0xabu8; 37]).unwrap())),
            (
                "index entry flipped",
                Box::new(|d: &Path| {
                    let mut b = std::fs::read(d.join(&index)).unwrap();
                    let last = b.len() - 1;
                    b[last] ^= 0x01;
                    std::fs::write(d.join(&index), b).unwrap();
                }),
            ),
            (
                "index points past the log",
                Box::new(|d: &Path| {
                    let mut b = std::fs::read(d.join(&index)).unwrap();
                    b.extend_from_slice(&[0, 0, 1, 0, 0, 1, 0, 0]);
                    std::fs::write(d.join(&index), b).unwrap();
                }),
            ),
        ];
        for (i, (what, damage)) in cases.iter().enumerate() {
            let copy = root.join(format!("idx-{i}"));
            copy_dir(&root.join("orig"), &copy);
            damage(&copy);
            check_recovers_to(&copy, &config, &originals, originals.len(), what).await;
        }
    });
}

#[test]
fn damage_in_an_older_segment_cuts_there_and_drops_the_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    run_on_shard(move || async move {
        let config = small_config(4096);
        let (originals, _) = build_log(&root.join("orig"), &config, 60).await;
        let mut bases: Vec<Offset> = std::fs::read_dir(root.join("orig"))
            .unwrap()
            .filter_map(|e| crate::storage::parse_segment_name(e.unwrap().file_name().to_str()?))
            .collect();
        bases.sort();
        assert!(bases.len() >= 4, "needs several segments, got {}", bases.len());
        // Flip the last byte of the second segment: its last batch goes, and everything after.
        let second = root.join("orig").join(segment_file(Path::new(""), bases[1], "log"));
        let mut bytes = std::fs::read(&second).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let copy = root.join("older");
        copy_dir(&root.join("orig"), &copy);
        std::fs::write(copy.join(segment_file(Path::new(""), bases[1], "log")), bytes).unwrap();
        // Batches in segment 0 and all but the last of segment 1 survive.
        let kept = originals
            .iter()
            .scan(0i64, |offset, b| {
                let start = *offset;
                *offset += i64::from(b[60]);
                Some(start)
            })
            .filter(|&start| start < bases[2].0)
            .count()
            - 1;
        check_recovers_to(&copy, &config, &originals, kept, "older segment").await;
        let left: Vec<_> = std::fs::read_dir(&copy)
            .unwrap()
            .filter_map(|e| crate::storage::parse_segment_name(e.unwrap().file_name().to_str()?))
            .collect();
        assert_eq!(left.len(), 2, "later segments were deleted");
    });
}
