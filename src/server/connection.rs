//! One client connection on the shard that accepted it: read frames, run each request as its own
//! task (clients pipeline several), and write the responses back in request order.
//!
//! Two tasks share the socket: this one reads (through glommio), the writer task writes (raw
//! writev/sendfile on a duplicate of the descriptor, see `writer.rs`). The writer awaits the
//! request tasks in arrival order, so responses leave in order while requests run concurrently;
//! at most `max_in_flight_per_connection` are in flight before reading pauses.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;

use bytes::{Buf, BytesMut};
use futures_lite::AsyncReadExt;
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use tracing::{debug, warn};

use super::writer::{set_nonblocking, write_pieces};
use super::{Dispatch, ServerLimits};
use crate::limits::REQUEST_BYTES_MIN;
use crate::protocol::Reply;

/// Bytes read from the socket at a time when no larger frame is pending.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why reading a frame stopped the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The length prefix is negative, too small for a header, or above `--max-request-bytes`.
    #[error("frame length {length} outside [{REQUEST_BYTES_MIN}, {max}]")]
    BadLength {
        /// The length prefix.
        length: i32,
        /// The limit in force.
        max: u32,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-frame")]
    Truncated,
}

/// Reads length-prefixed frames, checking each length before allocating for it.
pub struct FrameReader {
    buf: BytesMut,
    max_bytes: u32,
}

impl FrameReader {
    /// A reader refusing frames above `max_bytes`.
    pub fn new(max_bytes: u32) -> Self {
        FrameReader { buf: BytesMut::with_capacity(READ_CHUNK_BYTES), max_bytes }
    }

    /// The next frame (without its length prefix), or `None` at a clean end of stream.
    pub async fn next(&mut self, stream: &mut TcpStream) -> Result<Option<BytesMut>, FrameError> {
        loop {
            let mut want = READ_CHUNK_BYTES;
            if self.buf.len() >= 4 {
                let length = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                let size = u32::try_from(length)
                    .ok()
                    .filter(|&l| (REQUEST_BYTES_MIN..=self.max_bytes).contains(&l))
                    .ok_or(FrameError::BadLength { length, max: self.max_bytes })? as usize;
                if self.buf.len() >= 4 + size {
                    self.buf.advance(4);
                    return Ok(Some(self.buf.split_to(size)));
                }
                want = want.max(4 + size - self.buf.len());
            }
            let start = self.buf.len();
            self.buf.resize(start + want, 0);
            let read = stream.read(&mut self.buf[start..]).await;
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(e.into());
                }
            };
            self.buf.truncate(start + n);
            if n == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(FrameError::Truncated) };
            }
        }
    }
}

/// Serves one connection until the client closes it or sends something that forces a close.
pub async fn serve<D: Dispatch>(dispatch: Rc<D>, limits: ServerLimits, mut stream: TcpStream, peer: SocketAddr) {
    let fd = stream.as_raw_fd();
    if let Err(e) = set_nonblocking(fd) {
        warn!(%peer, error = %e, "cannot configure socket");
        return;
    }
    if let Err(e) = stream.set_nodelay(true) {
        warn!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    // SAFETY: dup gives a new descriptor for the same socket, owned by the writer's stream.
    let dup = unsafe { libc::dup(fd) };
    if dup < 0 {
        warn!(%peer, error = %io::Error::last_os_error(), "cannot duplicate socket");
        return;
    }
    // SAFETY: `dup` is a fresh descriptor nobody else owns.
    let mut write_stream = unsafe { TcpStream::from_raw_fd(dup) };
    let (tx, rx) = local_channel::new_bounded(limits.in_flight_per_connection.max(1));
    let writer = glommio::spawn_local(async move {
        while let Some(task) = rx.recv().await {
            let task: glommio::task::JoinHandle<Reply> = task;
            match task.await {
                Some(Reply::Send(pieces)) => {
                    if let Err(e) = write_pieces(&mut write_stream, pieces).await {
                        debug!(%peer, error = %e, "write failed; closing");
                        break;
                    }
                }
                Some(Reply::Nothing) => {}
                Some(Reply::Close) | None => break,
            }
        }
        // Wake the reader, which may be waiting for a frame the client will never send.
        // SAFETY: shutdown(2) on the descriptor this task owns.
        unsafe { libc::shutdown(write_stream.as_raw_fd(), libc::SHUT_RDWR) };
    })
    .detach();
    let mut frames = FrameReader::new(limits.request_bytes_max);
    loop {
        let frame = match frames.next(&mut stream).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(FrameError::Io(e))
                if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) =>
            {
                debug!(%peer, error = %e, "client went away");
                break;
            }
            Err(e) => {
                warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        let task = glommio::spawn_local(dispatch.clone().dispatch(frame, peer)).detach();
        if tx.send(task).await.is_err() {
            break;
        }
    }
    drop(tx);
    writer.await;
    let _ = stream.shutdown(std::net::Shutdown::Both).await;
}
