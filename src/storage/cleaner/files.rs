//! The cleaner's files and the order it changes them in, so that a crash at any step leaves
//! either the old segments of a group or the new one, never a mix (Kafka's swap protocol):
//!
//! 1. The cleaned segment is written as `<base>.log.cleaned` (and `.index.cleaned`,
//!    `.timeindex.cleaned`), each cut to size and fdatasync'd.
//! 2. The indexes are renamed to `.swap`, then the log (`<base>.log.swap`) and the directory is
//!    synced: that rename is the decision. Before it, recovery deletes every `.cleaned` file
//!    and any `.swap` index without its `.log.swap` (the old group stands); from it on,
//!    recovery finishes the swap.
//! 3. The old segments of the group after the first are deleted.
//! 4. The `.swap` files are renamed to their final names (the log last), replacing the first
//!    old segment's files, and the directory is synced.
//!
//! Recovery ([`recover_swaps`], run before a log's segments are listed) finishes a decided
//! swap: it deletes the old segments whose base lies inside the swap segment's offsets (found
//! by walking its batch headers), then renames its files as in step 4. An old segment whose
//! every record the clean removed lies past the swap segment's last offset and is kept: it
//! holds only records a newer one supersedes, so the log is still valid (Kafka does the same).
//!
//! `cleaner-offset-checkpoint` holds the first dirty offset, written atomically after a clean.
//! Its presence also marks the log as possibly sparse (offsets with gaps), whatever its policy
//! is now.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::limits::{BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES};
use crate::model::Offset;
use crate::storage::error::Error;
use crate::storage::io as sio;
use crate::storage::segment::{parse_segment_name, segment_file};

/// The per-partition checkpoint of the first dirty offset.
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// The extensions of one segment's files.
const SEGMENT_EXTENSIONS: [&str; 3] = ["log", "index", "timeindex"];
/// Suffix of a cleaned segment's files not yet decided on.
const CLEANED: &str = "cleaned";
/// Suffix of a cleaned segment's files once decided on.
const SWAP: &str = "swap";

/// `<base>.<extension>.cleaned`.
pub(crate) fn cleaned_file(dir: &Path, base: Offset, extension: &str) -> PathBuf {
    segment_file(dir, base, &format!("{extension}.{CLEANED}"))
}

fn swap_file(dir: &Path, base: Offset, extension: &str) -> PathBuf {
    segment_file(dir, base, &format!("{extension}.{SWAP}"))
}

/// The first dirty offset the last clean left, if any.
pub(crate) fn read_checkpoint(dir: &Path) -> Option<Offset> {
    let text = std::fs::read_to_string(dir.join(CLEANER_CHECKPOINT_FILE)).ok()?;
    text.trim().parse().ok().map(Offset)
}

/// Writes the first dirty offset (atomically).
pub(crate) fn write_checkpoint(dir: &Path, first_dirty: Offset) -> Result<(), Error> {
    let path = dir.join(CLEANER_CHECKPOINT_FILE);
    sio::write_atomically(&path, format!("{}\n", first_dirty.0).as_bytes())
        .map_err(Error::io(format!("writing {}", path.display())))
}

/// Removes the `.cleaned` files of `base` (a clean given up, or a crash before its decision).
pub(crate) fn remove_cleaned(dir: &Path, base: Offset) {
    for extension in SEGMENT_EXTENSIONS {
        remove_if_present(&cleaned_file(dir, base, extension));
    }
}

#[cfg(test)]
thread_local! {
    /// A test's simulated crash: a clean stops at this step (see [`crash_point`]).
    pub(crate) static CLEAN_CRASH_STEP: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// The steps a crash test stops a clean at, in order (see [`crash_point`]).
#[cfg(test)]
pub(crate) const CLEAN_CRASH_STEPS: std::ops::RangeInclusive<u32> = 1..=7;

/// A simulated crash point of a clean (tests only; nothing otherwise): 1 after the `.cleaned`
/// files are written, 2 after the indexes became `.swap`, 3 after the decision, 4 after the
/// first old segment is deleted, 5 after all are, 6 after the indexes got their final names,
/// 7 after the swap, before the checkpoint.
pub(crate) fn crash_point(step: u32) -> Result<(), Error> {
    #[cfg(test)]
    if CLEAN_CRASH_STEP.with(std::cell::Cell::get) == Some(step) {
        return Err(Error::Offline(format!("simulated crash at clean step {step}")));
    }
    let _ = step;
    Ok(())
}

/// Steps 2 to 4 for a cleaned segment `base` (its `.cleaned` files written and synced) that
/// replaces the old segments `old_bases` (the first of which is `base`). Blocking file
/// operations, a few per segment, run on the shard: the caller holds the log's state for the
/// whole swap so that nothing sees it half done.
pub(crate) fn swap_in(dir: &Path, base: Offset, old_bases: &[Offset]) -> Result<(), Error> {
    let rename = |from: PathBuf, to: PathBuf| {
        std::fs::rename(&from, &to).map_err(Error::io(format!("renaming {} to {}", from.display(), to.display())))
    };
    let sync = || sio::sync_dir(dir).map_err(Error::io(format!("syncing {}", dir.display())));
    for extension in ["index", "timeindex"] {
        rename(cleaned_file(dir, base, extension), swap_file(dir, base, extension))?;
    }
    crash_point(2)?;
    rename(cleaned_file(dir, base, "log"), swap_file(dir, base, "log"))?;
    sync()?;
    crash_point(3)?;
    for (i, &old) in old_bases.iter().filter(|&&old| old != base).enumerate() {
        remove_segment(dir, old);
        if i == 0 {
            crash_point(4)?;
        }
    }
    crash_point(5)?;
    finish_swap(dir, base)?;
    sync()
}

/// Step 4: the swap files get their final names, the log last (its `.swap` is the decision).
fn finish_swap(dir: &Path, base: Offset) -> Result<(), Error> {
    for extension in ["index", "timeindex"] {
        let from = swap_file(dir, base, extension);
        if from.exists() {
            let to = segment_file(dir, base, extension);
            std::fs::rename(&from, &to).map_err(Error::io(format!("renaming {}", from.display())))?;
        }
    }
    crash_point(6)?;
    let from = swap_file(dir, base, "log");
    std::fs::rename(&from, segment_file(dir, base, "log")).map_err(Error::io(format!("renaming {}", from.display())))
}

/// The recovery rule, run on open before the segments are listed: deletes `.cleaned` files,
/// finishes every decided swap (a `<base>.log.swap`), and deletes `.swap` indexes left without
/// one. Returns how many swaps it finished.
pub(crate) fn recover_swaps(dir: &Path) -> Result<usize, Error> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(Error::io(format!("listing {}", dir.display())))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    let base_of = |name: &str, suffix: &str| name.strip_suffix(suffix).and_then(parse_segment_name);
    for name in names.iter().filter(|n| n.ends_with(&format!(".{CLEANED}"))) {
        warn!(dir = %dir.display(), file = %name, "deleting a cleaned segment file whose swap was not decided");
        remove_if_present(&dir.join(name));
    }
    let mut bases: Vec<Offset> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    bases.sort();
    let mut finished = 0;
    for base in names.iter().filter_map(|n| base_of(n, &format!(".{SWAP}"))) {
        let path = swap_file(dir, base, "log");
        let next = next_offset_of(&path, base).map_err(Error::io(format!("reading {}", path.display())))?;
        let replaced: Vec<Offset> = bases.iter().copied().filter(|&b| b > base && b < next).collect();
        info!(dir = %dir.display(), %base, %next, ?replaced, "finishing a decided segment swap");
        for &old in &replaced {
            remove_segment(dir, old);
        }
        finish_swap(dir, base)?;
        finished += 1;
    }
    for name in &names {
        let stray = ["index", "timeindex"].iter().any(|ext| name.ends_with(&format!(".{ext}.{SWAP}")));
        if stray && dir.join(name).exists() {
            warn!(dir = %dir.display(), file = %name, "deleting a swap index whose swap was not decided");
            remove_if_present(&dir.join(name));
        }
    }
    sio::sync_dir(dir).map_err(Error::io(format!("syncing {}", dir.display())))?;
    Ok(finished)
}

/// The offset after the last batch of the segment file at `path` (whose first batch is at or
/// after `base`), walking its batch headers; `base` for an empty file. Stops at anything that
/// is not a whole batch header (the file was synced whole before its swap was decided).
fn next_offset_of(path: &Path, base: Offset) -> std::io::Result<Offset> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut position = 0u64;
    let mut next = base;
    let mut header = [0u8; BATCH_HEADER_BYTES];
    while position + BATCH_HEADER_BYTES as u64 <= size {
        file.read_exact_at(&mut header, position)?;
        let Ok(batch_size) = crate::model::batch_size_from_prefix(&header) else { break };
        let (Some(base_offset), Some(delta)) = (header.first_chunk::<8>(), header.get(23..27)) else { break };
        let mut delta_bytes = [0u8; 4];
        delta_bytes.copy_from_slice(delta);
        let last = i64::from_be_bytes(*base_offset).saturating_add(i64::from(i32::from_be_bytes(delta_bytes)));
        next = next.max(Offset(last.saturating_add(1)));
        position += batch_size.max(LOG_OVERHEAD_BYTES) as u64;
    }
    Ok(next)
}

fn remove_segment(dir: &Path, base: Offset) {
    for extension in SEGMENT_EXTENSIONS {
        remove_if_present(&segment_file(dir, base, extension));
    }
}

fn remove_if_present(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(path = %path.display(), error = %e, "could not remove a file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LeaderEpoch, assign_offset_and_epoch};

    /// A segment file of one-record batches at `offsets`.
    fn segment_bytes(offsets: &[i64]) -> Vec<u8> {
        let mut out = Vec::new();
        for &offset in offsets {
            let mut batch = crate::testing::batch_of(1, 10, offset as u64, crate::model::Timestamp(0));
            assign_offset_and_epoch(&mut batch, Offset(offset), LeaderEpoch(0));
            out.extend_from_slice(&batch);
        }
        out
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn recovery_finishes_a_decided_swap_and_forgets_an_undecided_one() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let write = |base: i64, extension: &str, bytes: &[u8]| {
            std::fs::write(segment_file(dir, Offset(base), extension), bytes).unwrap();
        };
        // Old segments 0, 10, 20 and 30; a decided swap of 0 whose last batch is at 25 replaces
        // 10 and 20; 30 stays. An undecided clean of 30 left its files.
        write(0, "log", &segment_bytes(&[0, 5]));
        write(0, "index", b"old");
        write(10, "log", &segment_bytes(&[10, 15]));
        write(10, "index", b"");
        write(20, "log", &segment_bytes(&[20, 25]));
        write(30, "log", &segment_bytes(&[30]));
        write(0, "log.swap", &segment_bytes(&[5, 25]));
        write(0, "index.swap", b"new");
        write(30, "log.cleaned", b"");
        write(30, "index.swap", b"");
        assert_eq!(recover_swaps(dir).unwrap(), 1);
        assert_eq!(names(dir), ["00000000000000000000.index", "00000000000000000000.log", "00000000000000000030.log"]);
        assert_eq!(std::fs::read(segment_file(dir, Offset(0), "log")).unwrap(), segment_bytes(&[5, 25]));
        assert_eq!(std::fs::read(segment_file(dir, Offset(0), "index")).unwrap(), b"new");

        // An emptied group's swap replaces only its first segment.
        write(0, "log.swap", b"");
        assert_eq!(recover_swaps(dir).unwrap(), 1);
        assert_eq!(std::fs::read(segment_file(dir, Offset(0), "log")).unwrap(), b"");
        assert_eq!(names(dir).len(), 3);
        assert_eq!(read_checkpoint(dir), None);
        write_checkpoint(dir, Offset(26)).unwrap();
        assert_eq!(read_checkpoint(dir), Some(Offset(26)));
    }
}
