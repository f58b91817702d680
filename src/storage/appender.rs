//! Appends to one file with O_DIRECT: block-aligned writes from DMA buffers, the partial tail
//! block kept in memory and rewritten by the next write, the file preallocated in extents.
//!
//! Lifecycle: created or opened at a logical size by the partition's flusher task, which alone
//! drives it (one write in flight per file, since each write rewrites the previous tail block);
//! closed by truncating the file to its logical size. Lives on the shard that owns the partition.
//! An appender of a log's active segment holds no descriptor between writes: it takes the file
//! from the shard's [`FileCache`] for each write or sync, so an idle partition's descriptor may
//! be closed and reopened later; its position and tail block live here and survive that.
//!
//! Durability contract: after [`SegmentAppender::write`] returns, the bytes are in the file (a
//! process crash keeps them); after [`SegmentAppender::sync`] or [`SegmentAppender::write_synced`]
//! returns they survive power loss.
//!
//! glommio's `DmaStreamWriter` is not used because it cannot resume an existing file and
//! rewrites its whole buffer on every sync.

use std::io;
use std::rc::Rc;

use bytes::Bytes;

use super::file_cache::{Create, DirectFile, FileCache, FileKind, SegmentFiles};
use super::io::{self as sio, SharedFile};
use crate::limits::{BLOCK_BYTES, WRITE_CHUNK_BYTES, WRITES_IN_FLIGHT_MAX};
use glommio::io::DmaFile;

/// The file an appender writes.
pub(crate) enum Target {
    /// A file it holds open throughout (a clean's new segment, an index written whole).
    File(SharedFile),
    /// A log segment's `.log`, taken from the shard's descriptor cache at each operation.
    Segment(Rc<SegmentFiles>),
}

impl Target {
    /// The file, reopened through the cache if its descriptor was closed; the handle keeps it
    /// open (in use) while held.
    async fn file(&self) -> io::Result<DirectFile> {
        match self {
            Target::File(file) => Ok(DirectFile::unmanaged(file.clone())),
            Target::Segment(files) => files.direct(FileKind::Log, Create::No).await,
        }
    }
}

/// How far the allocation grows past the end each time it is reached.
pub(crate) enum Extent {
    /// Always this many bytes (a multiple of the block size).
    Fixed(u64),
    /// What the shard's cache says now (see [`FileCache::preallocate_bytes`]).
    Shard(FileCache),
}

impl Extent {
    fn bytes(&self) -> u64 {
        match self {
            Extent::Fixed(bytes) => *bytes,
            Extent::Shard(cache) => cache.preallocate_bytes(),
        }
    }
}

/// The writer of one append-only file.
pub(crate) struct SegmentAppender {
    target: Target,
    /// Logical bytes in the file: everything before this has been written.
    written: u64,
    /// The bytes of the block containing `written`, from the block start to `written`.
    tail: Vec<u8>,
    /// Bytes allocated by fallocate so far.
    allocated: u64,
    /// The extent to grow the allocation by.
    extent: Extent,
}

fn align_down(v: u64) -> u64 {
    v - v % BLOCK_BYTES
}

fn align_up(v: u64) -> u64 {
    v.div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

impl SegmentAppender {
    /// Resumes `target` at logical size `written`, reading the partial tail block back.
    pub(crate) async fn resume(target: Target, written: u64, extent: Extent) -> io::Result<Self> {
        if let Extent::Fixed(bytes) = extent {
            assert!(bytes.is_multiple_of(BLOCK_BYTES));
        }
        let file = target.file().await?;
        let tail_start = align_down(written);
        let tail_len = usize::try_from(written - tail_start).unwrap_or(0);
        let tail = if tail_len == 0 {
            Vec::new()
        } else {
            let read = sio::read_at(&file, tail_start, tail_len).await?;
            if read.len() != tail_len {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "tail block shorter than the logical size"));
            }
            read.to_vec()
        };
        let allocated = sio::file_size(&file).await?;
        Ok(Self { target, written, tail, allocated, extent })
    }

    /// Logical bytes written.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Writes `chunks` after the current end. The bytes (with the old tail block in front) go
    /// out in block-aligned writes of [`WRITE_CHUNK_BYTES`], up to [`WRITES_IN_FLIGHT_MAX`] of them
    /// in flight at once (they cover disjoint blocks), so a large group keeps the device's queue
    /// full instead of waiting on one write at a time. Returns once all are done. On error the
    /// logical size is unchanged (a failed write may have left bytes past it, which the next
    /// write or recovery overwrites or cuts).
    pub(crate) async fn write(&mut self, chunks: &[Bytes]) -> io::Result<()> {
        self.write_maybe_synced(chunks, false).await.map(|_| ())
    }

    /// [`Self::write`] and then [`Self::sync`], for every byte written so far. When the bytes go
    /// out in one write (a group of at most [`WRITE_CHUNK_BYTES`], what low rates make), that
    /// write carries `RWF_DSYNC` and no separate fdatasync follows: the shard is woken once,
    /// when they are durable. Every earlier write of this file must have been synced already
    /// (the flusher's `--flush-mode sync` syncs every group), since a write's own sync covers
    /// only its bytes.
    pub(crate) async fn write_synced(&mut self, chunks: &[Bytes]) -> io::Result<()> {
        if !self.write_maybe_synced(chunks, true).await? {
            self.sync().await?;
        }
        Ok(())
    }

    /// [`Self::write`]; with `durable`, a write that fits in one chunk is made durable by itself.
    /// Returns whether the bytes are durable.
    async fn write_maybe_synced(&mut self, chunks: &[Bytes], durable: bool) -> io::Result<bool> {
        let total: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if total == 0 {
            return Ok(false);
        }
        let file = self.target.file().await?;
        let start = align_down(self.written);
        let logical_end = self.written + total;
        self.ensure_allocated(&file, align_up(logical_end)).await?;
        let mut source = std::iter::once(&self.tail[..]).chain(chunks.iter().map(|c| &c[..])).filter(|s| !s.is_empty());
        let mut current: &[u8] = source.next().unwrap_or_default();
        let mut position = start;
        let mut new_tail = Vec::new();
        let mut writes = std::collections::VecDeque::new();
        // One write covers it all: it can carry its own sync.
        let synced = durable && logical_end - start <= WRITE_CHUNK_BYTES as u64;
        while position < logical_end {
            let take = usize::try_from((logical_end - position).min(WRITE_CHUNK_BYTES as u64)).unwrap_or(0);
            let len = usize::try_from(align_up(take as u64)).unwrap_or(usize::MAX);
            let mut buf = file.alloc_dma_buffer(len);
            let bytes = buf.as_bytes_mut();
            let mut filled = 0;
            while filled < take {
                if current.is_empty() {
                    current = source.next().unwrap_or_default();
                    if current.is_empty() {
                        break;
                    }
                }
                let n = current.len().min(take - filled);
                bytes[filled..filled + n].copy_from_slice(&current[..n]);
                current = &current[n..];
                filled += n;
            }
            bytes[filled..].fill(0);
            if position + take as u64 == logical_end {
                new_tail = bytes[usize::try_from(align_down(take as u64)).unwrap_or(0)..take].to_vec();
            }
            let file = file.shared().clone();
            let at = position;
            writes.push_back(
                glommio::spawn_local(async move { sio::write_all_at(&file, buf, at, synced).await }).detach(),
            );
            if writes.len() >= WRITES_IN_FLIGHT_MAX
                && let Some(oldest) = writes.pop_front()
            {
                oldest.await.unwrap_or_else(|| Err(io::Error::other("write task cancelled")))?;
            }
            position += take as u64;
        }
        for write in writes {
            write.await.unwrap_or_else(|| Err(io::Error::other("write task cancelled")))?;
        }
        self.written = logical_end;
        self.tail = new_tail;
        Ok(synced)
    }

    async fn ensure_allocated(&mut self, file: &DmaFile, end: u64) -> io::Result<()> {
        if end <= self.allocated {
            return Ok(());
        }
        let target = align_up(end.max(self.allocated + self.extent.bytes()));
        sio::pre_allocate(file, target).await?;
        self.allocated = target;
        Ok(())
    }

    /// fdatasync: everything written so far survives power loss (fdatasync flushes the file,
    /// whichever descriptor it goes through, so one reopened since the write does).
    pub(crate) async fn sync(&self) -> io::Result<()> {
        let file = self.target.file().await?;
        sio::sync(&file).await
    }

    /// Cuts the preallocated space so the file size is the logical size, and syncs.
    pub(crate) async fn seal(self) -> io::Result<()> {
        let file = self.target.file().await?;
        sio::truncate(&file, self.written).await?;
        sio::sync(&file).await
    }
}

/// Writes `bytes` as the whole of `file` (an index, at a seal or a rewrite): cut to nothing,
/// written, cut to its size, synced. No preallocation beyond the blocks it needs.
pub(crate) async fn write_whole(file: SharedFile, bytes: Vec<u8>) -> io::Result<()> {
    sio::truncate(&file, 0).await?;
    let mut appender = SegmentAppender::resume(Target::File(file), 0, Extent::Fixed(BLOCK_BYTES)).await?;
    appender.write(&[Bytes::from(bytes)]).await?;
    appender.seal().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_resume_and_rewrite_the_tail_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        crate::testing::run_on_shard(move || async move {
            let file = Rc::new(sio::open_rw(&path, true).await.unwrap());
            let mut appender =
                SegmentAppender::resume(Target::File(file.clone()), 0, Extent::Fixed(64 * 1024)).await.unwrap();
            let mut expected = Vec::new();
            for i in 0..50u32 {
                let chunk: Vec<u8> = (0..(i * 97 + 13)).map(|b| (b % 251) as u8).collect();
                expected.extend_from_slice(&chunk);
                appender.write(&[Bytes::from(chunk)]).await.unwrap();
                appender.sync().await.unwrap();
            }
            assert_eq!(appender.written(), expected.len() as u64);
            appender.seal().await.unwrap();
            assert_eq!(sio::file_size(&file).await.unwrap(), expected.len() as u64);

            // Resume the sealed file and go on appending.
            let mut appender =
                SegmentAppender::resume(Target::File(file.clone()), expected.len() as u64, Extent::Fixed(64 * 1024))
                    .await
                    .unwrap();
            let more = Bytes::from(vec![7u8; 10_000]);
            expected.extend_from_slice(&more);
            appender.write(&[more.clone(), more.slice(0..1)]).await.unwrap();
            expected.push(7);
            appender.seal().await.unwrap();
            let read = sio::read_at(&file, 0, expected.len() + 100).await.unwrap();
            assert_eq!(&read[..], &expected[..]);
        });
    }

    #[test]
    fn a_write_larger_than_one_flush_buffer_is_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        crate::testing::run_on_shard(move || async move {
            let file = Rc::new(sio::open_rw(&path, true).await.unwrap());
            let mut appender =
                SegmentAppender::resume(Target::File(file.clone()), 0, Extent::Fixed(1024 * 1024)).await.unwrap();
            let big: Vec<u8> =
                (0..WRITE_CHUNK_BYTES * WRITES_IN_FLIGHT_MAX * 2 + 12_345).map(|b| (b % 253) as u8).collect();
            appender.write(&[Bytes::from_static(b"abc"), Bytes::from(big.clone())]).await.unwrap();
            appender.seal().await.unwrap();
            let read = sio::read_at(&file, 0, big.len() + 3).await.unwrap();
            assert_eq!(&read[..3], b"abc");
            assert!(read[3..] == big[..]);
        });
    }

    #[test]
    fn an_appender_whose_descriptor_was_closed_between_writes_reopens_it_and_loses_nothing() {
        use crate::storage::file_cache::{Access, FileCacheConfig};
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_path_buf();
        crate::testing::run_on_shard(move || async move {
            let cache = FileCache::new(FileCacheConfig { open_files_max: 1, preallocate_budget_bytes: 1 << 20 });
            let (files, other) = (cache.segment(dir.join("0.log")), cache.segment(dir.join("100.log")));
            std::fs::write(other.path(FileKind::Log), b"other").unwrap();
            files.direct(FileKind::Log, Create::IfMissing).await.unwrap();
            let mut appender =
                SegmentAppender::resume(Target::Segment(files.clone()), 0, Extent::Shard(cache.clone())).await.unwrap();
            let mut expected = Vec::new();
            for i in 0..20u8 {
                let chunk = vec![i; 1000 + usize::from(i) * 37];
                expected.extend_from_slice(&chunk);
                appender.write(&[Bytes::from(chunk)]).await.unwrap();
                // Another file takes the only slot: the appender's descriptor closes while idle.
                other.buffered().unwrap();
                assert!(!files.is_open(Access::Direct(FileKind::Log)));
                appender.sync().await.unwrap();
            }
            appender.seal().await.unwrap();
            assert!(cache.stats().evictions >= 20);
            assert_eq!(std::fs::read(files.path(FileKind::Log)).unwrap(), expected);
        });
    }

    #[test]
    fn synced_writes_keep_every_byte_whether_they_fit_one_write_or_not_and_fail_when_the_sync_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("synced.log");
        crate::testing::run_on_shard(move || async move {
            let file = Rc::new(sio::open_rw(&path, true).await.unwrap());
            let mut appender =
                SegmentAppender::resume(Target::File(file.clone()), 0, Extent::Fixed(1024 * 1024)).await.unwrap();
            let mut expected = Vec::new();
            // Small groups (one RWF_DSYNC write each, rewriting the tail block), then one that
            // needs several writes and an fdatasync after them.
            for i in 0..5u8 {
                let chunk = vec![i; 700 + usize::from(i) * 1000];
                expected.extend_from_slice(&chunk);
                appender.write_synced(&[Bytes::from(chunk)]).await.unwrap();
            }
            let big: Vec<u8> = (0..WRITE_CHUNK_BYTES * 2 + 777).map(|b| (b % 241) as u8).collect();
            expected.extend_from_slice(&big);
            appender.write_synced(&[Bytes::from(big)]).await.unwrap();
            assert_eq!(appender.written(), expected.len() as u64);
            let read = sio::read_at(&file, 0, expected.len()).await.unwrap();
            assert!(read[..] == expected[..]);

            sio::inject_fault(Some(sio::Fault::SyncFails));
            let small = appender.write_synced(&[Bytes::from(vec![9u8; 100])]).await;
            let large = appender.write_synced(&[Bytes::from(vec![9u8; WRITE_CHUNK_BYTES + 1])]).await;
            sio::inject_fault(None);
            assert_eq!(small.unwrap_err().raw_os_error(), Some(libc::EIO));
            assert_eq!(large.unwrap_err().raw_os_error(), Some(libc::EIO));
        });
    }

    #[test]
    fn a_full_disk_fails_the_write_and_keeps_the_logical_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.log");
        crate::testing::run_on_shard(move || async move {
            let file = Rc::new(sio::open_rw(&path, true).await.unwrap());
            let mut appender = SegmentAppender::resume(Target::File(file), 0, Extent::Fixed(64 * 1024)).await.unwrap();
            appender.write(&[Bytes::from(vec![1u8; 5000])]).await.unwrap();
            sio::inject_fault(Some(sio::Fault::DiskFullAfterBytes(0)));
            let err = appender.write(&[Bytes::from(vec![2u8; 5000])]).await.unwrap_err();
            sio::inject_fault(None);
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
            assert_eq!(appender.written(), 5000);
        });
    }
}
