//! The Raft log of the metadata quorum on disk: hard state, the latest snapshot and the entries
//! after it, behind tikv's [`raft::Storage`].
//!
//! # Layout of `dir`
//! - `snapshot`: the latest snapshot (index, term, conf state and the application's image at that
//!   index), replaced atomically (temp file, fsync, rename, fsync of the directory). Layout:
//!   magic `SLRAFTS1`, crc32c (u32 LE) of the rest, then the `eraftpb::Snapshot` protobuf.
//!   A corrupt snapshot is an error: it holds committed state nobody else may still have.
//! - `raft.log`: append-only records `[len u32 LE][crc32c u32 LE][kind u8][payload]`, where `len`
//!   counts kind and payload and the crc covers them. Kinds: [`RECORD_ENTRY`] (an `eraftpb::Entry`
//!   protobuf) and [`RECORD_HARD_STATE`] (term, vote, commit: u64 LE each). On replay a later
//!   entry with an index at or below the last one replaces it and everything after it (Raft
//!   overwrote a conflicting suffix); the last hard state wins. A torn or corrupt tail record
//!   (a crash mid-append) is cut off with one warn line; an unknown kind is an error.
//!
//! # Durability
//! [`RaftLog::persist`] returns only once its records are fdatasync'd, so the caller (which follows
//! raft's Ready protocol) may then send the messages that acknowledge them. Plain blocking
//! `std::fs` is used on the shard on purpose: metadata changes are rare and small, and a slow
//! disk must hold back acknowledgements anyway.
//!
//! # Memory
//! Every entry after the snapshot is also kept in memory: the metadata log is small, and
//! [`RaftLog::compact`] bounds it.
//!
//! # Concurrency
//! Owned by one `RawNode` on one shard; not shared.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

/// The record kind of one log entry.
pub const RECORD_ENTRY: u8 = 1;
/// The record kind of a hard state (term, vote, commit).
pub const RECORD_HARD_STATE: u8 = 2;
/// Bytes before a record's kind: its length and its crc32c.
pub const RECORD_HEADER_BYTES: usize = 8;
/// The largest record (kind + payload) replay accepts; a larger length is a torn or corrupt
/// header. Entries are metadata records (the quorum caps them far lower), so 64 MiB is only a
/// sanity bound that keeps a garbled length from allocating gigabytes.
pub const RECORD_BYTES_MAX: usize = 64 << 20;
/// The first bytes of the snapshot file: names the format (version 1).
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"SLRAFTS1";
/// The largest snapshot file read: the metadata image of a whole cluster stays far below this;
/// a bigger file is corrupt rather than a reason to exhaust memory.
pub const SNAPSHOT_BYTES_MAX: u64 = 1 << 30;

const LOG_FILE: &str = "raft.log";
const SNAPSHOT_FILE: &str = "snapshot";
const HARD_STATE_BYTES: usize = 24;

/// Why the log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum RaftLogError {
    /// A file system call failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The contents on disk are not what this module wrote; nothing is guessed.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A caller broke the log's contract (e.g. compacting past the commit index).
    #[error("raft log misuse: {0}")]
    Misuse(String),
}

/// How [`RaftLog::open`] starts an empty directory: the snapshot it writes first.
pub struct Bootstrap {
    /// The snapshot's index (0 for "no state at all").
    pub index: u64,
    /// The snapshot's term.
    pub term: u64,
    /// The voters (raft ids).
    pub voters: Vec<u64>,
    /// The application's image at `index`.
    pub data: Vec<u8>,
}

/// The durable Raft log of one node. See the module docs for the layout and contracts.
pub struct RaftLog {
    dir: PathBuf,
    log: File,
    hard_state: HardState,
    snapshot: Snapshot,
    /// `entries[i].index == snapshot index + 1 + i`.
    entries: Vec<Entry>,
    /// Tests: every append writes half its bytes and fails as a full disk does.
    #[cfg(test)]
    pub(crate) torn_appends: bool,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RaftLogError + '_ {
    move |source| RaftLogError::Io { path: path.to_path_buf(), source }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> RaftLogError {
    RaftLogError::Corrupt { path: path.to_path_buf(), reason: reason.into() }
}

fn encode_record(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() + 1;
    let crc = crate::model::crc32c_of_parts(&[&[kind], payload]);
    // A record longer than u32 cannot be built: entries are capped by the quorum far below.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

fn encode_hard_state(hs: &HardState, out: &mut Vec<u8>) {
    let mut payload = [0u8; HARD_STATE_BYTES];
    payload[..8].copy_from_slice(&hs.term.to_le_bytes());
    payload[8..16].copy_from_slice(&hs.vote.to_le_bytes());
    payload[16..].copy_from_slice(&hs.commit.to_le_bytes());
    encode_record(RECORD_HARD_STATE, &payload, out);
}

fn encode_entry(entry: &Entry, out: &mut Vec<u8>) -> Result<(), RaftLogError> {
    let payload = entry.write_to_bytes().map_err(|e| RaftLogError::Misuse(format!("entry encode: {e}")))?;
    if payload.len() >= RECORD_BYTES_MAX {
        return Err(RaftLogError::Misuse(format!("entry {} of {} bytes", entry.index, payload.len())));
    }
    encode_record(RECORD_ENTRY, &payload, out);
    Ok(())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(slice) = bytes.get(at..at + 8) {
        word.copy_from_slice(slice);
    }
    u64::from_le_bytes(word)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at + 4)?;
    let mut word = [0u8; 4];
    word.copy_from_slice(slice);
    Some(u32::from_le_bytes(word))
}

/// What replaying `raft.log` found.
struct Replayed {
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
    /// The byte length of the valid prefix (where a torn tail was cut).
    valid_bytes: u64,
}

fn replay(path: &Path, bytes: &[u8]) -> Result<Replayed, RaftLogError> {
    let mut out = Replayed { entries: Vec::new(), hard_state: None, valid_bytes: 0 };
    let mut at = 0usize;
    while at < bytes.len() {
        let torn = |reason: &str| {
            tracing::warn!(path = %path.display(), offset = at, "raft log: {reason}; cutting the torn tail");
        };
        let (Some(len), Some(crc)) = (u32_at(bytes, at), u32_at(bytes, at + 4)) else {
            torn("a partial record header");
            break;
        };
        let len = len as usize;
        let start = at + RECORD_HEADER_BYTES;
        let Some(body) = (len != 0 && len <= RECORD_BYTES_MAX).then(|| bytes.get(start..start + len)).flatten() else {
            torn("a record length past the end or out of bounds");
            break;
        };
        if crate::model::crc32c(body) != crc {
            torn("a record whose crc32c does not match");
            break;
        }
        let Some((&kind, payload)) = body.split_first() else {
            torn("an empty record");
            break;
        };
        match kind {
            RECORD_ENTRY => {
                let entry = Entry::parse_from_bytes(payload)
                    .map_err(|e| corrupt(path, format!("entry at byte {at} does not decode: {e}")))?;
                push_replayed(path, &mut out.entries, entry)?;
            }
            RECORD_HARD_STATE if payload.len() == HARD_STATE_BYTES => {
                out.hard_state = Some(HardState {
                    term: u64_at(payload, 0),
                    vote: u64_at(payload, 8),
                    commit: u64_at(payload, 16),
                    ..HardState::default()
                });
            }
            _ => return Err(corrupt(path, format!("record kind {kind} ({} bytes) at byte {at}", payload.len()))),
        }
        at = start + len;
        out.valid_bytes = at as u64;
    }
    Ok(out)
}

/// Appends a replayed entry: a later record for an index already seen replaces that suffix.
fn push_replayed(path: &Path, entries: &mut Vec<Entry>, entry: Entry) -> Result<(), RaftLogError> {
    if let Some(first) = entries.first().map(|e| e.index) {
        let next = first + entries.len() as u64;
        if entry.index > next {
            return Err(corrupt(path, format!("entry {} follows entry {} (a gap)", entry.index, next - 1)));
        }
        entries.truncate(entry.index.saturating_sub(first) as usize);
    }
    entries.push(entry);
    Ok(())
}

fn read_snapshot(path: &Path) -> Result<Snapshot, RaftLogError> {
    let size = std::fs::metadata(path).map_err(io_err(path))?.len();
    if size > SNAPSHOT_BYTES_MAX {
        return Err(corrupt(path, format!("{size} bytes, more than {SNAPSHOT_BYTES_MAX}")));
    }
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let (Some(magic), Some(crc), Some(body)) = (bytes.get(..8), u32_at(&bytes, 8), bytes.get(12..)) else {
        return Err(corrupt(path, "shorter than its header"));
    };
    if magic != SNAPSHOT_MAGIC {
        return Err(corrupt(path, "not a snapshot file (bad magic)"));
    }
    if crate::model::crc32c(body) != crc {
        return Err(corrupt(path, "crc32c mismatch"));
    }
    let snapshot = Snapshot::parse_from_bytes(body).map_err(|e| corrupt(path, format!("does not decode: {e}")))?;
    if snapshot.get_metadata().get_conf_state().voters.is_empty() {
        return Err(corrupt(path, "no voters in its conf state"));
    }
    Ok(snapshot)
}

fn write_snapshot(path: &Path, snapshot: &Snapshot) -> Result<(), RaftLogError> {
    let body = snapshot.write_to_bytes().map_err(|e| RaftLogError::Misuse(format!("snapshot encode: {e}")))?;
    let mut bytes = Vec::with_capacity(12 + body.len());
    bytes.extend_from_slice(SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&crate::model::crc32c(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    // write_atomically: temp file + fsync (sync_all), rename, fsync of the directory.
    crate::storage::io::write_atomically(path, &bytes).map_err(io_err(path))
}

impl RaftLog {
    /// Opens the log in `dir`, or, when `dir` holds no snapshot yet (a new node), creates it
    /// from `bootstrap()`: that snapshot, with a hard state at its term and index.
    pub fn open(dir: &Path, bootstrap: impl FnOnce() -> Bootstrap) -> Result<RaftLog, RaftLogError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let log_path = dir.join(LOG_FILE);
        let exists = |p: &Path| p.try_exists().map_err(io_err(p));
        let snapshot = if exists(&snapshot_path)? {
            read_snapshot(&snapshot_path)?
        } else if exists(&log_path)? {
            return Err(corrupt(&snapshot_path, "missing while raft.log exists"));
        } else {
            let init = bootstrap();
            let mut snapshot = Snapshot { data: init.data.into(), ..Snapshot::default() };
            let meta = snapshot.mut_metadata();
            meta.index = init.index;
            meta.term = init.term;
            meta.mut_conf_state().voters = init.voters;
            write_snapshot(&snapshot_path, &snapshot)?;
            snapshot
        };
        let bytes = match std::fs::read(&log_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&log_path)(e)),
        };
        let replayed = replay(&log_path, &bytes)?;
        let log = OpenOptions::new().create(true).append(true).open(&log_path).map_err(io_err(&log_path))?;
        if replayed.valid_bytes < bytes.len() as u64 {
            log.set_len(replayed.valid_bytes).map_err(io_err(&log_path))?;
            log.sync_data().map_err(io_err(&log_path))?;
        }
        crate::storage::io::sync_dir(dir).map_err(io_err(dir))?;

        let meta = snapshot.get_metadata();
        let (snap_index, snap_term) = (meta.index, meta.term);
        let mut entries = replayed.entries;
        // Entries up to the snapshot are covered by it. Those after it are kept only if the log
        // holds the snapshot's own entry with its term, or starts right after it: otherwise they
        // belong to a history the snapshot (received from a leader) replaced, and the crash came
        // between writing the snapshot and rewriting the log.
        let consistent = match entries.first().map(|e| e.index) {
            None => true,
            Some(first) if first > snap_index + 1 => false,
            Some(first) if first == snap_index + 1 => true,
            Some(first) => entries.get((snap_index - first) as usize).is_some_and(|e| e.term == snap_term),
        };
        if consistent {
            let first = entries.first().map_or(snap_index + 1, |e| e.index);
            entries.drain(..(snap_index + 1).saturating_sub(first).min(entries.len() as u64) as usize);
        } else {
            entries.clear();
        }
        let mut hard_state = replayed.hard_state.unwrap_or_default();
        hard_state.term = hard_state.term.max(snap_term);
        hard_state.commit = hard_state.commit.max(snap_index);
        let last = snap_index + entries.len() as u64;
        if hard_state.commit > last {
            return Err(corrupt(&log_path, format!("commit {} past the last entry {last}", hard_state.commit)));
        }
        Ok(RaftLog {
            dir: dir.to_path_buf(),
            log,
            hard_state,
            snapshot,
            entries,
            #[cfg(test)]
            torn_appends: false,
        })
    }

    /// The latest snapshot (its data is the application's image at its index).
    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The durable hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The voters and learners (no membership changes happen: the snapshot's conf state).
    pub fn conf_state(&self) -> &ConfState {
        self.snapshot.get_metadata().get_conf_state()
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn last(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// The entry at `index`, if kept.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        let offset = index.checked_sub(self.snapshot_index() + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Makes one Ready's snapshot, entries and hard state durable, in that order, and returns once
    /// they are fdatasync'd. A snapshot replaces everything before it: snapshot, entries, and a lower term or commit.
    pub fn persist(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), RaftLogError> {
        if let Some(snapshot) = snapshot {
            self.install(snapshot)?;
        }
        let mut buf = Vec::new();
        if let Some(first) = entries.first() {
            if first.index <= self.snapshot_index() || first.index > self.last() + 1 {
                return Err(RaftLogError::Misuse(format!(
                    "append at {} to a log holding {}..={}",
                    first.index,
                    self.snapshot_index() + 1,
                    self.last()
                )));
            }
            for entry in entries {
                encode_entry(entry, &mut buf)?;
            }
        }
        let hard_state = hard_state.filter(|hs| *hs != &self.hard_state);
        if let Some(hs) = hard_state {
            encode_hard_state(hs, &mut buf);
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.append_synced(&buf)?;
        if let Some(first) = entries.first() {
            self.entries.truncate((first.index - self.snapshot_index() - 1) as usize);
            self.entries.extend_from_slice(entries);
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Records a new commit index (learnt after a Ready was persisted). Raft does not need it
    /// durable, but it saves a restarted node from waiting for the leader to re-apply.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), RaftLogError> {
        if commit <= self.hard_state.commit {
            return Ok(());
        }
        let mut hs = self.hard_state.clone();
        hs.commit = commit.min(self.last());
        self.persist(None, &[], Some(&hs))
    }

    fn append_synced(&mut self, buf: &[u8]) -> Result<(), RaftLogError> {
        let path = self.dir.join(LOG_FILE);
        #[cfg(test)]
        if self.torn_appends {
            self.log.write_all(&buf[..buf.len() / 2]).map_err(io_err(&path))?;
            return Err(io_err(&path)(io::Error::from_raw_os_error(libc::ENOSPC)));
        }
        self.log.write_all(buf).map_err(io_err(&path))?;
        self.log.sync_data().map_err(io_err(&path))
    }

    /// Installs a snapshot received from the leader: it replaces the snapshot, every entry (a
    /// follower that needs a snapshot holds nothing worth keeping) and raises the hard state's
    /// term and commit to it.
    fn install(&mut self, snapshot: &Snapshot) -> Result<(), RaftLogError> {
        let meta = snapshot.get_metadata();
        if meta.index <= self.snapshot_index() {
            return Err(RaftLogError::Misuse(format!(
                "snapshot at {} not after the one at {}",
                meta.index,
                self.snapshot_index()
            )));
        }
        write_snapshot(&self.dir.join(SNAPSHOT_FILE), snapshot)?;
        self.snapshot = snapshot.clone();
        self.entries.clear();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.rewrite_log()
    }

    /// Takes a snapshot at `index` (at most the commit index, and applied by the application)
    /// holding `data`, the application's image there; drops the entries up to it and rewrites
    /// the log file with the rest. Nothing happens if the snapshot is already at or past `index`.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), RaftLogError> {
        if index <= self.snapshot_index() {
            return Ok(());
        }
        if index > self.hard_state.commit {
            return Err(RaftLogError::Misuse(format!("compact at {index} past commit {}", self.hard_state.commit)));
        }
        let Some(term) = self.entry(index).map(|e| e.term) else {
            return Err(RaftLogError::Misuse(format!("compact at {index}: no such entry")));
        };
        let mut snapshot = Snapshot { data: data.into(), ..Snapshot::default() };
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state().clone());
        // Snapshot first: a crash before the log is rewritten leaves entries up to `index` in the
        // log, which open() skips.
        write_snapshot(&self.dir.join(SNAPSHOT_FILE), &snapshot)?;
        let dropped = (index - self.snapshot_index()) as usize;
        self.entries.drain(..dropped.min(self.entries.len()));
        self.snapshot = snapshot;
        self.rewrite_log()
    }

    /// Replaces `raft.log` atomically with the hard state and the kept entries.
    fn rewrite_log(&mut self) -> Result<(), RaftLogError> {
        let path = self.dir.join(LOG_FILE);
        let mut buf = Vec::new();
        encode_hard_state(&self.hard_state, &mut buf);
        for entry in &self.entries {
            encode_entry(entry, &mut buf)?;
        }
        crate::storage::io::write_atomically(&path, &buf).map_err(io_err(&path))?;
        self.log = OpenOptions::new().append(true).open(&path).map_err(io_err(&path))?;
        Ok(())
    }
}

impl Storage for RaftLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state().clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.snapshot_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.snapshot_index() - 1) as usize;
        let to = (high - self.snapshot_index() - 1) as usize;
        let mut entries = self.entries.get(from..to).map(<[Entry]>::to_vec).unwrap_or_default();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.snapshot_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.entry(idx).map(|e| e.term).ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // Index 0 is a rejoining node's empty start, not a snapshot to send (raft-rs would abort).
        if self.snapshot_index() < request_index.max(1) {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot() -> Bootstrap {
        Bootstrap { index: 1, term: 1, voters: vec![1, 2, 3], data: b"first".to_vec() }
    }

    fn entry(index: u64, term: u64, data: &str) -> Entry {
        Entry { index, term, data: data.as_bytes().to_vec().into(), ..Entry::default() }
    }

    fn hs(term: u64, vote: u64, commit: u64) -> HardState {
        HardState { term, vote, commit, ..HardState::default() }
    }

    fn datas(log: &RaftLog) -> Vec<String> {
        log.entries.iter().map(|e| String::from_utf8(e.data.to_vec()).unwrap()).collect()
    }

    #[test]
    fn bootstraps_then_reopens_with_entries_and_hard_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(dir.path(), boot).unwrap();
        assert_eq!(log.first_index().unwrap(), 2);
        assert_eq!(log.last_index().unwrap(), 1);
        assert_eq!(log.term(1).unwrap(), 1);
        assert_eq!(log.hard_state().commit, 1);
        log.persist(None, &[entry(2, 2, "a"), entry(3, 2, "b")], Some(&hs(2, 1, 2))).unwrap();
        // A conflicting suffix from a new leader replaces entry 3 onwards.
        log.persist(None, &[entry(3, 3, "c"), entry(4, 3, "d")], Some(&hs(3, 2, 3))).unwrap();
        drop(log);
        let log = RaftLog::open(dir.path(), || panic!("must not bootstrap twice")).unwrap();
        assert_eq!(datas(&log), ["a", "c", "d"]);
        assert_eq!(log.hard_state(), &hs(3, 2, 3));
        assert_eq!(log.snapshot_ref().data.as_ref(), b"first");
        assert_eq!(log.conf_state().voters, [1, 2, 3]);
        assert!(matches!(log.term(0), Err(raft::Error::Store(StorageError::Compacted))));
        assert!(matches!(log.term(9), Err(raft::Error::Store(StorageError::Unavailable))));
        let got = log.entries(2, 5, None, GetEntriesContext::empty(false)).unwrap();
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn a_torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(dir.path(), boot).unwrap();
        log.persist(None, &[entry(2, 1, "a"), entry(3, 1, "b")], None).unwrap();
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let full = std::fs::read(&path).unwrap();
        // Cut the last record in half, as a crash mid-append would.
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let mut log = RaftLog::open(dir.path(), || panic!()).unwrap();
        assert_eq!(datas(&log), ["a"]);
        log.persist(None, &[entry(3, 1, "c")], None).unwrap();
        drop(log);
        // A flipped byte in the last record is torn too.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let log = RaftLog::open(dir.path(), || panic!()).unwrap();
        assert_eq!(datas(&log), ["a"]);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, full.len() / 2);
    }

    #[test]
    fn a_corrupt_snapshot_or_an_unknown_record_kind_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(RaftLog::open(dir.path(), boot).unwrap());
        let snap = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&snap).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&snap, &bytes).unwrap();
        assert!(matches!(RaftLog::open(dir.path(), || panic!()), Err(RaftLogError::Corrupt { .. })));
        std::fs::write(&snap, b"SLRA").unwrap();
        assert!(matches!(RaftLog::open(dir.path(), || panic!()), Err(RaftLogError::Corrupt { .. })));

        let dir = tempfile::tempdir().unwrap();
        drop(RaftLog::open(dir.path(), boot).unwrap());
        let mut record = Vec::new();
        encode_record(9, b"future", &mut record);
        std::fs::write(dir.path().join(LOG_FILE), &record).unwrap();
        let err = RaftLog::open(dir.path(), || panic!()).err().unwrap();
        assert!(err.to_string().contains("record kind 9"), "{err}");
    }

    #[test]
    fn compaction_keeps_the_suffix_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(dir.path(), boot).unwrap();
        let entries: Vec<Entry> = (2..=6).map(|i| entry(i, 1, &format!("e{i}"))).collect();
        log.persist(None, &entries, Some(&hs(1, 0, 5))).unwrap();
        assert!(log.compact(6, b"late".to_vec()).is_err(), "past commit");
        log.compact(4, b"image@4".to_vec()).unwrap();
        assert_eq!(log.first_index().unwrap(), 5);
        assert_eq!(log.term(4).unwrap(), 1);
        assert!(log.entries(4, 6, None, GetEntriesContext::empty(false)).is_err());
        drop(log);
        let log = RaftLog::open(dir.path(), || panic!()).unwrap();
        assert_eq!(datas(&log), ["e5", "e6"]);
        assert_eq!(log.snapshot_ref().data.as_ref(), b"image@4");
        assert_eq!(log.hard_state().commit, 5);
    }

    #[test]
    fn an_installed_snapshot_replaces_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(dir.path(), boot).unwrap();
        log.persist(None, &[entry(2, 1, "old")], Some(&hs(1, 0, 1))).unwrap();
        let mut snap = Snapshot { data: b"leader image".to_vec().into(), ..Snapshot::default() };
        snap.mut_metadata().index = 10;
        snap.mut_metadata().term = 4;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        log.persist(Some(&snap), &[entry(11, 4, "new")], Some(&hs(4, 2, 10))).unwrap();
        drop(log);
        let log = RaftLog::open(dir.path(), || panic!()).unwrap();
        assert_eq!(datas(&log), ["new"]);
        assert_eq!(log.first_index().unwrap(), 11);
        assert_eq!(log.hard_state(), &hs(4, 2, 10));
    }

    #[test]
    fn entries_from_a_replaced_history_are_dropped_after_a_crash_mid_install() {
        // The snapshot file was replaced, the crash came before the log was rewritten.
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(dir.path(), boot).unwrap();
        log.persist(None, &[entry(2, 1, "a"), entry(3, 1, "b")], Some(&hs(1, 0, 1))).unwrap();
        drop(log);
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 3;
        snap.mut_metadata().term = 2;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        write_snapshot(&dir.path().join(SNAPSHOT_FILE), &snap).unwrap();
        let log = RaftLog::open(dir.path(), || panic!()).unwrap();
        assert!(log.entries.is_empty());
        assert_eq!(log.hard_state().commit, 3);
        assert_eq!(log.hard_state().term, 2);
    }
}
