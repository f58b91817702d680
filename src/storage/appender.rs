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
use crate::limits::{BLOCK_BYTES, FLUSH_WRITE_BYTES_MAX};

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

    /// Writes `chunks` after the current end, in as many block-aligned writes of at most
    /// [`FLUSH_WRITE_BYTES_MAX`] as needed. On error the logical size is unchanged (a failed
    /// write may have left garbage after it, which the next write or recovery overwrites or cuts).
    pub(crate) async fn write(&mut self, chunks: &[Bytes]) -> io::Result<()> {
        let mut chunks = chunks.iter().filter(|c| !c.is_empty()).peekable();
        let mut current: Option<(&Bytes, usize)> = None;
        loop {
            if current.is_none() {
                current = chunks.next().map(|c| (c, 0));
            }
            let Some((_, _)) = current else { return Ok(()) };
            // Fill one DMA buffer: the old tail block, then as much new data as fits.
            let start = align_down(self.written);
            let room = FLUSH_WRITE_BYTES_MAX - self.tail.len();
            let mut staged: Vec<&[u8]> = Vec::new();
            let mut staged_len = 0usize;
            while staged_len < room {
                let Some((chunk, used)) = current else { break };
                let take = (chunk.len() - used).min(room - staged_len);
                staged.push(&chunk[used..used + take]);
                staged_len += take;
                current =
                    if used + take == chunk.len() { chunks.next().map(|c| (c, 0)) } else { Some((chunk, used + take)) };
            }
            let logical = self.tail.len() + staged_len;
            let len = align_up(logical as u64);
            self.ensure_allocated(start + len).await?;
            let mut buf = self.file.alloc_dma_buffer(usize::try_from(len).unwrap_or(usize::MAX));
            let bytes = buf.as_bytes_mut();
            bytes[..self.tail.len()].copy_from_slice(&self.tail);
            let mut at = self.tail.len();
            for piece in &staged {
                bytes[at..at + piece.len()].copy_from_slice(piece);
                at += piece.len();
            }
            bytes[at..].fill(0);
            let new_tail_start = align_down(logical as u64) as usize;
            let new_tail = bytes[new_tail_start..logical].to_vec();
            sio::write_all_at(&self.file, buf, start).await?;
            self.written = start + logical as u64;
            self.tail = new_tail;
            if current.is_none() && chunks.peek().is_none() {
                return Ok(());
            }
        }
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
            let big: Vec<u8> = (0..FLUSH_WRITE_BYTES_MAX * 2 + 12_345).map(|b| (b % 253) as u8).collect();
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
