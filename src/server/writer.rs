//! Writing responses without copying record bytes: a response is a list of [`Chunk`]s; bytes in
//! memory (headers, encoded fields, cached batches as shared `Bytes`) go out with one `writev`,
//! file ranges with `sendfile` from the segment file straight into the socket.
//!
//! glommio has no vectored write, no sendfile and no readiness API, so both are raw syscalls on
//! the socket, which is O_NONBLOCK (glommio's own reads and writes on it still work: they try
//! with MSG_DONTWAIT and fall back to io_uring). When the socket is full the raw call says
//! EAGAIN; the writer then pushes the next small piece through glommio's write, which completes
//! once the socket drains, and goes back to the raw calls.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use bytes::Bytes;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;

use crate::limits::SENDFILE_CHUNK_BYTES;
use crate::model::{Chunk, FileRange};

/// Most iovecs one writev carries.
const IOVECS_MAX: usize = 64;
/// How much goes through glommio's write when the socket is full.
const FALLBACK_BYTES: usize = 16 * 1024;

/// Marks a socket O_NONBLOCK so raw writev/sendfile never block the shard's thread.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes every chunk, in order, to `stream`.
pub async fn write_pieces(stream: &mut TcpStream, pieces: Vec<Chunk>) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let mut pieces = pieces.into_iter().peekable();
    // In-memory pieces waiting for the next writev, and how much of the first is already sent.
    let mut pending: Vec<Bytes> = Vec::new();
    loop {
        while let Some(Chunk::Bytes(_)) = pieces.peek() {
            if let Some(Chunk::Bytes(b)) = pieces.next()
                && !b.is_empty()
            {
                pending.push(b);
            }
        }
        write_all_vectored(stream, fd, &mut pending).await?;
        match pieces.next() {
            None => return Ok(()),
            Some(Chunk::File(FileRange { file, position, len })) => {
                send_file(stream, fd, &file, position, len).await?;
            }
            Some(Chunk::Bytes(b)) => pending.push(b),
        }
    }
}

async fn write_all_vectored(stream: &mut TcpStream, fd: RawFd, pending: &mut Vec<Bytes>) -> io::Result<()> {
    while !pending.is_empty() {
        let iovecs: Vec<libc::iovec> = pending
            .iter()
            .take(IOVECS_MAX)
            .map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() })
            .collect();
        let count = libc::c_int::try_from(iovecs.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: every iovec points into a `Bytes` in `pending`, alive for the call.
        let written = unsafe { libc::writev(fd, iovecs.as_ptr(), count) };
        if written < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => {
                    // Socket full: let glommio wait for room by writing a little through it.
                    let first = &mut pending[0];
                    let n = first.len().min(FALLBACK_BYTES);
                    let chunk = first.split_to(n);
                    stream.write_all(&chunk).await?;
                    if first.is_empty() {
                        pending.remove(0);
                    }
                    continue;
                }
                io::ErrorKind::Interrupted => continue,
                _ => return Err(err),
            }
        }
        let mut written = usize::try_from(written).unwrap_or(0);
        while written > 0 {
            let first = &mut pending[0];
            if written >= first.len() {
                written -= first.len();
                pending.remove(0);
            } else {
                let _ = first.split_to(written);
                written = 0;
            }
        }
    }
    Ok(())
}

/// The least and most read ahead of a cold file range (see `send_file`).
const READAHEAD_MIN_BYTES: u64 = 1 << 20;
const READAHEAD_MAX_BYTES: u64 = 16 << 20;

async fn send_file(
    stream: &mut TcpStream,
    socket: RawFd,
    file: &std::fs::File,
    position: u64,
    len: u64,
) -> io::Result<()> {
    let mut offset = libc::off_t::try_from(position).map_err(io::Error::other)?;
    // A consumer reading a cold segment asks next for the bytes after this range, and the
    // sendfile below blocks the shard while the disk reads: start reading those now, so the
    // next fetch finds them in the page cache (posix_fadvise only queues the readahead).
    if let (Ok(next), Ok(ahead)) = (
        libc::off_t::try_from(position.saturating_add(len)),
        libc::off_t::try_from(len.clamp(READAHEAD_MIN_BYTES, READAHEAD_MAX_BYTES)),
    ) {
        // SAFETY: fadvise on an open descriptor; the range may extend past the end of the file.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), next, ahead, libc::POSIX_FADV_WILLNEED) };
    }
    let mut left = len;
    while left > 0 {
        let count = usize::try_from(left).unwrap_or(usize::MAX).min(SENDFILE_CHUNK_BYTES);
        // SAFETY: both descriptors are open for the call; `offset` is a valid pointer.
        let sent = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut offset, count) };
        if sent < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => {
                    // Socket full: read a little of the file and write it through glommio,
                    // which waits for room.
                    let n = count.min(FALLBACK_BYTES);
                    let mut chunk = vec![0u8; n];
                    // SAFETY: `chunk` is a valid buffer of `n` bytes.
                    let read = unsafe { libc::pread(file.as_raw_fd(), chunk.as_mut_ptr().cast(), n, offset) };
                    if read <= 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "segment shorter than its range"));
                    }
                    let read = usize::try_from(read).unwrap_or(0);
                    stream.write_all(&chunk[..read]).await?;
                    offset += libc::off_t::try_from(read).unwrap_or(0);
                    left -= read as u64;
                    continue;
                }
                io::ErrorKind::Interrupted => continue,
                _ => return Err(err),
            }
        }
        if sent == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "segment shorter than its range"));
        }
        left -= u64::try_from(sent).unwrap_or(0);
    }
    Ok(())
}
