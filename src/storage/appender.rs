//! Appends to one file with O_DIRECT: block-aligned writes from DMA buffers, the partial tail
//! block kept in memory and rewritten by the next write, the file preallocated in extents.
//!
//! Lifecycle: created or opened at a logical size by the partition's flusher task, which alone
//! drives it (one write in flight per file, since each write rewrites the previous tail block);
//! closed by truncating the file to its logical size. Lives on the shard that owns the partition.
//!
//! Durability contract: after [`SegmentAppender::write`] returns, the bytes are in the file (a
//! process crash keeps them); after [`SegmentAppender::sync`] returns they survive power loss.
//!
//! glommio's `DmaStreamWriter` is not used because it cannot resume an existing file and
//! rewrites its whole buffer on every sync.

use std::io;

use bytes::Bytes;

use super::io::{self as sio, SharedFile};
use crate::limits::{BLOCK_BYTES, WRITE_CHUNK_BYTES, WRITES_IN_FLIGHT_MAX};

/// The writer of one append-only file.
pub(crate) struct SegmentAppender {
    file: SharedFile,
    /// Logical bytes in the file: everything before this has been written.
    written: u64,
    /// The bytes of the block containing `written`, from the block start to `written`.
    tail: Vec<u8>,
    /// Bytes allocated by fallocate so far.
    allocated: u64,
    /// The extent to grow the allocation by.
    allocate_step: u64,
}

fn align_down(v: u64) -> u64 {
    v - v % BLOCK_BYTES
}

fn align_up(v: u64) -> u64 {
    v.div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

impl SegmentAppender {
    /// Resumes `file` at logical size `written`, reading the partial tail block back.
    pub(crate) async fn resume(file: SharedFile, written: u64, allocate_step: u64) -> io::Result<Self> {
        assert!(allocate_step.is_multiple_of(BLOCK_BYTES));
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
        Ok(Self { file, written, tail, allocated, allocate_step })
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
        let total: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if total == 0 {
            return Ok(());
        }
        let start = align_down(self.written);
        let logical_end = self.written + total;
        self.ensure_allocated(align_up(logical_end)).await?;
        let mut source = std::iter::once(&self.tail[..]).chain(chunks.iter().map(|c| &c[..])).filter(|s| !s.is_empty());
        let mut current: &[u8] = source.next().unwrap_or_default();
        let mut position = start;
        let mut new_tail = Vec::new();
        let mut writes = std::collections::VecDeque::new();
        while position < logical_end {
            let take = usize::try_from((logical_end - position).min(WRITE_CHUNK_BYTES as u64)).unwrap_or(0);
            let len = usize::try_from(align_up(take as u64)).unwrap_or(usize::MAX);
            let mut buf = self.file.alloc_dma_buffer(len);
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
            let file = self.file.clone();
            let at = position;
            writes.push_back(glommio::spawn_local(async move { sio::write_all_at(&file, buf, at).await }).detach());
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
        Ok(())
    }

    async fn ensure_allocated(&mut self, end: u64) -> io::Result<()> {
        if end <= self.allocated {
            return Ok(());
        }
        let target = align_up(end.max(self.allocated + self.allocate_step));
        sio::pre_allocate(&self.file, target).await?;
        self.allocated = target;
        Ok(())
    }

    /// fdatasync: everything written so far survives power loss.
    pub(crate) async fn sync(&self) -> io::Result<()> {
        sio::sync(&self.file).await
    }

    /// Cuts the preallocated space so the file size is the logical size, and syncs. The file
    /// stays open for readers.
    pub(crate) async fn seal(self) -> io::Result<SharedFile> {
        sio::truncate(&self.file, self.written).await?;
        sio::sync(&self.file).await?;
        Ok(self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn appends_resume_and_rewrite_the_tail_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        crate::testing::run_on_shard(move || async move {
            let file = Rc::new(sio::open_rw(&path, true).await.unwrap());
            let mut appender = SegmentAppender::resume(file, 0, 64 * 1024).await.unwrap();
            let mut expected = Vec::new();
            for i in 0..50u32 {
                let chunk: Vec<u8> = (0..(i * 97 + 13)).map(|b| (b % 251) as u8).collect();
                expected.extend_from_slice(&chunk);
                appender.write(&[Bytes::from(chunk)]).await.unwrap();
                appender.sync().await.unwrap();
            }
            assert_eq!(appender.written(), expected.len() as u64);
            let file = appender.seal().await.unwrap();
            assert_eq!(sio::file_size(&file).await.unwrap(), expected.len() as u64);

            // Resume the sealed file and go on appending.
            let mut appender = SegmentAppender::resume(file, expected.len() as u64, 64 * 1024).await.unwrap();
            let more = Bytes::from(vec![7u8; 10_000]);
            expected.extend_from_slice(&more);
            appender.write(&[more.clone(), more.slice(0..1)]).await.unwrap();
            expected.push(7);
            let file = appender.seal().await.unwrap();
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
            let mut appender = SegmentAppender::resume(file, 0, 1024 * 1024).await.unwrap();
            let big: Vec<u8> =
                (0..WRITE_CHUNK_BYTES * WRITES_IN_FLIGHT_MAX * 2 + 12_345).map(|b| (b % 253) as u8).collect();
            appender.write(&[Bytes::from_static(b"abc"), Bytes::from(big.clone())]).await.unwrap();
            let file = appender.seal().await.unwrap();
            let read = sio::read_at(&file, 0, big.len() + 3).await.unwrap();
            assert_eq!(&read[..3], b"abc");
            assert!(read[3..] == big[..]);
        });
    }

    #[test]
    fn a_full_disk_fails_the_write_and_keeps_the_logical_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.log");
        crate::testing::run_on_shard(move || async move {
            let file = Rc::new(sio::open_rw(&path, true).await.unwrap());
            let mut appender = SegmentAppender::resume(file, 0, 64 * 1024).await.unwrap();
            appender.write(&[Bytes::from(vec![1u8; 5000])]).await.unwrap();
            sio::inject_fault(Some(sio::Fault::DiskFullAfterBytes(0)));
            let err = appender.write(&[Bytes::from(vec![2u8; 5000])]).await.unwrap_err();
            sio::inject_fault(None);
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
            assert_eq!(appender.written(), 5000);
        });
    }
}
