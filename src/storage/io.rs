//! The only place storage touches glommio's file API, so that a move to another io_uring runtime
//! changes this file (and `appender.rs`) alone, and so that tests can inject faults (a full disk,
//! a failing fsync) into exactly the calls a real disk would fail.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

use crate::limits::BLOCK_BYTES;

/// A segment or index file opened for direct I/O, shared between the appender and readers.
pub type SharedFile = Rc<DmaFile>;

/// Faults a test can arm on the current thread (one shard): the next matching call fails with
/// the given errno. Checked on every write, sync and preallocation; unarmed it costs one
/// thread-local borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Writes fail with ENOSPC once this many more bytes have been written.
    DiskFullAfterBytes(u64),
    /// Every fdatasync fails with EIO.
    SyncFails,
}

thread_local! {
    static FAULT: RefCell<Option<Fault>> = const { RefCell::new(None) };
}

/// Arms `fault` for the calling thread's storage I/O (tests only; see [`Fault`]).
pub fn inject_fault(fault: Option<Fault>) {
    FAULT.with(|f| *f.borrow_mut() = fault);
}

fn check_write_fault(len: u64) -> io::Result<()> {
    FAULT.with(|f| {
        let mut fault = f.borrow_mut();
        if let Some(Fault::DiskFullAfterBytes(left)) = fault.as_mut() {
            if *left < len {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            *left -= len;
        }
        Ok(())
    })
}

fn check_sync_fault() -> io::Result<()> {
    FAULT.with(|f| match *f.borrow() {
        Some(Fault::SyncFails) => Err(io::Error::from_raw_os_error(libc::EIO)),
        _ => Ok(()),
    })
}

thread_local! {
    static PROBED_DEVICES: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// glommio decides once per process and device whether reads may use the io_uring poll ring,
/// by reading the first block of the first DMA file opened there. If that file is empty the
/// read succeeds trivially, polling is wrongly enabled, and every later read fails with
/// EOPNOTSUPP. So before this shard opens its first DMA file on a device, it opens a non-empty
/// probe file there.
async fn probe_device(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let device = std::fs::metadata(dir)?.dev();
    if PROBED_DEVICES.with(|p| p.borrow().contains(&device)) {
        return Ok(());
    }
    let probe = dir.join(format!(".sluice-dma-probe-{}", std::process::id()));
    std::fs::write(&probe, [0u8; BLOCK_BYTES as usize])?;
    let opened = OpenOptions::new().read(true).dma_open(&probe).await;
    let _ = std::fs::remove_file(&probe);
    opened?.close().await?;
    PROBED_DEVICES.with(|p| p.borrow_mut().insert(device));
    Ok(())
}

/// Opens (creating if asked) a file for direct reads and writes.
pub async fn open_rw(path: &Path, create: bool) -> io::Result<DmaFile> {
    probe_device(path).await?;
    Ok(OpenOptions::new().read(true).write(true).create(create).dma_open(path).await?)
}

/// Writes all of `buf` at `pos` (both block-aligned). A short write is reported as an error: with
/// O_DIRECT into a preallocated extent it only happens when the device is failing.
///
/// `synced`: the write returns once the bytes are durable, as [`sync`] would make them: one
/// io_uring write with `RWF_DSYNC` (see `DmaFile::write_at_dsync`), so the shard is woken once,
/// when the data is on stable storage, not once for the write and again for the fdatasync. It
/// counts as an fdatasync for fault injection and in `sluice_log_flush_duration_seconds`.
pub async fn write_all_at(file: &DmaFile, buf: DmaBuffer, pos: u64, synced: bool) -> io::Result<()> {
    let len = buf.len();
    check_write_fault(len as u64)?;
    let written = if synced {
        check_sync_fault()?;
        let started = std::time::Instant::now();
        let written = file.write_at_dsync(buf, pos).await?;
        crate::metrics::log_flushed(started.elapsed());
        written
    } else {
        file.write_at(buf, pos).await?
    };
    if written != len {
        return Err(io::Error::new(io::ErrorKind::WriteZero, format!("short direct write: {written} of {len} bytes")));
    }
    Ok(())
}

/// fdatasync.
pub async fn sync(file: &DmaFile) -> io::Result<()> {
    check_sync_fault()?;
    let started = std::time::Instant::now();
    let synced = file.fdatasync().await;
    crate::metrics::log_flushed(started.elapsed());
    Ok(synced?)
}

/// Grows the file's allocation (and size) to `size` bytes with fallocate.
pub async fn pre_allocate(file: &DmaFile, size: u64) -> io::Result<()> {
    check_write_fault(0)?;
    Ok(file.pre_allocate(size, false).await?)
}

/// Sets the file size.
pub async fn truncate(file: &DmaFile, size: u64) -> io::Result<()> {
    Ok(file.truncate(size).await?)
}

/// The file size.
pub async fn file_size(file: &DmaFile) -> io::Result<u64> {
    Ok(file.file_size().await?)
}

/// Reads up to `len` bytes at `pos` (any alignment); fewer at the end of the file.
pub async fn read_at(file: &DmaFile, pos: u64, len: usize) -> io::Result<glommio::io::ReadResult> {
    Ok(file.read_at(pos, len).await?)
}

/// Where a read of a segment goes.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// The direct-I/O descriptor: asynchronous reads that bypass the page cache (recovery,
    /// truncation, producer-state replay, the cleaner: long reads the shard must not block on).
    Direct(&'a DmaFile),
    /// The buffered descriptor: pread(2) through the page cache, which blocks the shard while a
    /// cold block comes off the disk (fetches and timestamp lookups: the header scan of a fetch
    /// reads the blocks its sendfile then sends, so the scan warms them instead of the send
    /// blocking on them; a segment needs only this one descriptor to be read).
    Buffered(&'a std::fs::File),
}

/// Bytes a [`Source`] read.
pub enum Read {
    /// From the direct descriptor.
    Direct(glommio::io::ReadResult),
    /// From the buffered descriptor.
    Buffered(Vec<u8>),
}

impl Read {
    /// The bytes, as shared ones (no copy of a buffered read).
    pub fn into_bytes(self) -> bytes::Bytes {
        match self {
            Read::Direct(read) => bytes::Bytes::copy_from_slice(&read),
            Read::Buffered(read) => bytes::Bytes::from(read),
        }
    }
}

impl std::ops::Deref for Read {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Read::Direct(read) => read,
            Read::Buffered(read) => read,
        }
    }
}

impl Source<'_> {
    /// Reads up to `len` bytes at `pos` (any alignment); fewer at the end of the file.
    pub async fn read_at(self, pos: u64, len: usize) -> io::Result<Read> {
        match self {
            Source::Direct(file) => Ok(Read::Direct(read_at(file, pos, len).await?)),
            Source::Buffered(file) => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; len];
                let mut filled = 0;
                while filled < len {
                    match file.read_at(&mut buf[filled..], pos + filled as u64) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                buf.truncate(filled);
                Ok(Read::Buffered(buf))
            }
        }
    }
}

/// fsyncs a directory, so that a file created or renamed in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes a small metadata file atomically: temp file, fsync, rename, fsync the directory.
/// Blocking std I/O, acceptable because these files change rarely (an epoch change, a
/// DeleteRecords call), never per append.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    check_write_fault(contents.len() as u64)?;
    replace_file(path, contents)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Writes `contents` to a temporary file beside `path`, fsyncs it and renames it over `path`:
/// the name is durable only once the directory is synced.
fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Changes to one directory made durable together: files replaced atomically (as
/// [`write_atomically`]), files removed, then one fsync of the directory for all of them (a
/// segment file created before is made durable by name by the same fsync). Blocking calls on
/// the shard: handing them to glommio's blocking threads was tried and did not measure faster
/// (perf/README.md "Many partitions"), so the simpler form stays.
#[derive(Debug, Default)]
pub struct DirChange {
    /// `(path, contents)` of each file to replace.
    pub replace: Vec<(PathBuf, Vec<u8>)>,
    /// Files to remove (already gone is fine).
    pub remove: Vec<PathBuf>,
}

impl DirChange {
    /// Makes the change in `dir`.
    pub fn apply(self, dir: &Path) -> io::Result<()> {
        for (path, contents) in &self.replace {
            check_write_fault(contents.len() as u64)?;
            replace_file(path, contents)?;
        }
        for path in &self.remove {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        sync_dir(dir)
    }
}

/// The size of a filesystem and the room left on it, as Java's `FileStore` reports them (what
/// Kafka's DescribeLogDirs v4 answers for a log directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSpace {
    /// Every byte of the filesystem (`f_blocks × f_frsize`).
    pub total_bytes: u64,
    /// The bytes an unprivileged writer may still use (`f_bavail × f_frsize`): the root-reserved
    /// blocks are not the broker's to count on.
    pub usable_bytes: u64,
}

/// [`VolumeSpace`] of the filesystem holding `path` (statvfs(3): one blocking syscall that reads
/// the superblock's counters, no disk I/O, so it runs on the shard).
// The counters are 32-bit on some targets, so the widening `u64::from` is useless only on others.
#[allow(clippy::useless_conversion)]
pub fn volume_space(path: &Path) -> io::Result<VolumeSpace> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
    // SAFETY: all-zero bytes are a valid `statvfs` (integers only), which the call overwrites.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and outlives the call; `stats` is a valid, writable struct.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let fragment = u64::from(stats.f_frsize);
    Ok(VolumeSpace {
        total_bytes: u64::from(stats.f_blocks).saturating_mul(fragment),
        usable_bytes: u64::from(stats.f_bavail).saturating_mul(fragment),
    })
}

/// The file in a data directory holding its id (see [`directory_id`]).
pub const DIRECTORY_ID_FILE: &str = "directory.id";

/// The id of data directory `dir` (Kafka's `directory.id`, KIP-858): read from
/// [`DIRECTORY_ID_FILE`], or made (a random version-4 UUID in hex) and written durably when the
/// file is missing: a new directory, a wiped one, or one from before ids existed. A broker
/// registers with it, so the controller can tell a restart from a lost disk. A file that does
/// not hold an id is an error: guessing a new id would silently discard the directory's
/// standing, and keeping a bad one would hide a damaged directory.
pub fn directory_id(dir: &Path) -> io::Result<String> {
    let path = dir.join(DIRECTORY_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(id.to_owned())
            } else {
                Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} holds no directory id", path.display())))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            let id = crate::model::TopicId::random()?.hex();
            write_atomically(&path, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_keeps_its_id_and_a_damaged_id_file_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let id = directory_id(&dir).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(directory_id(&dir).unwrap(), id, "kept across starts");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_ne!(directory_id(&dir).unwrap(), id, "a wiped directory is a new one");
        std::fs::write(dir.join(DIRECTORY_ID_FILE), "not an id\n").unwrap();
        assert_eq!(directory_id(&dir).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
