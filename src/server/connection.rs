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

use bytes::BytesMut;
use futures_lite::AsyncReadExt;
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use tracing::{debug, warn};

use super::writer::{set_nonblocking, write_pieces};
use super::{Dispatch, ServerLimits};
use crate::protocol::Reply;
use crate::protocol::{
    FRAME_GROWTH_STEP_BYTES, FrameError, FrameLimits, LENGTH_PREFIX_BYTES, frame_length, split_frame,
};

/// Bytes read from the socket at a time when no larger frame is pending.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why reading a frame stopped the connection.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The length prefix is negative, too small for a header, or above `--max-request-bytes`.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-frame")]
    Truncated,
}

/// Reads length-prefixed frames off a socket; the splitting (and the check of each length
/// before allocating for it) is `protocol::split_frame`, the one the client and the fuzz target
/// use too.
pub struct FrameReader {
    buf: BytesMut,
    limits: FrameLimits,
}

impl FrameReader {
    /// A reader refusing request frames above `max_bytes`.
    pub fn new(max_bytes: u32) -> Self {
        FrameReader { buf: BytesMut::with_capacity(READ_CHUNK_BYTES), limits: FrameLimits::requests(max_bytes) }
    }

    /// The next frame (without its length prefix), or `None` at a clean end of stream.
    pub async fn next(&mut self, stream: &mut TcpStream) -> Result<Option<BytesMut>, ReadError> {
        loop {
            if let Some(frame) = split_frame(&mut self.buf, self.limits)? {
                return Ok(Some(frame));
            }
            // Read up to the rest of a frame whose length is known, in steps of at most
            // FRAME_GROWTH_STEP_BYTES, so the buffer grows with the bytes that arrive.
            let start = self.buf.len();
            let rest_of_frame = match self.buf.first_chunk::<LENGTH_PREFIX_BYTES>() {
                Some(&prefix) => {
                    (LENGTH_PREFIX_BYTES + frame_length(prefix, self.limits)? as usize).saturating_sub(start)
                }
                None => 0,
            };
            let want = rest_of_frame.clamp(READ_CHUNK_BYTES, FRAME_GROWTH_STEP_BYTES);
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
                return if self.buf.is_empty() { Ok(None) } else { Err(ReadError::Truncated) };
            }
        }
    }
}

/// Readies an accepted socket for [`serve`]: non-blocking, TCP_NODELAY, and a second descriptor
/// for the writer. Fails (EMFILE, say) before anything is served, so the listener can treat it as
/// it treats a failed accept.
pub fn prepare(stream: &TcpStream, peer: SocketAddr) -> io::Result<TcpStream> {
    let fd = stream.as_raw_fd();
    set_nonblocking(fd)?;
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    // SAFETY: dup gives a new descriptor for the same socket, owned by the writer's stream.
    let dup = unsafe { libc::dup(fd) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor nobody else owns.
    Ok(unsafe { TcpStream::from_raw_fd(dup) })
}

/// Serves one connection until the client closes it or sends something that forces a close.
/// `write_stream` is the writer's descriptor for the same socket, from [`prepare`].
pub async fn serve<D: Dispatch>(
    dispatch: Rc<D>,
    limits: ServerLimits,
    mut stream: TcpStream,
    mut write_stream: TcpStream,
    peer: SocketAddr,
) {
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
            Err(ReadError::Io(e)) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_lite::AsyncWriteExt;
    use glommio::net::TcpListener;

    use super::*;
    use crate::testing::run_on_shard;

    /// A frame declared at 50 MB of which 1 KiB arrives: the reader holds about what arrived,
    /// not the declared size.
    #[test]
    fn a_declared_frame_length_is_not_a_reservation() {
        run_on_shard(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let declared: i32 = 50_000_000;
            let client = glommio::spawn_local(async move {
                let mut client = TcpStream::connect(addr).await.unwrap();
                client.write_all(&declared.to_be_bytes()).await.unwrap();
                client.write_all(&[7u8; 1024]).await.unwrap();
                client.flush().await.unwrap();
                glommio::timer::sleep(Duration::from_millis(300)).await;
                client
            });
            let mut server = listener.accept().await.unwrap();
            let mut frames = FrameReader::new(100 * 1024 * 1024);
            let waited = futures_lite::future::or(async { Some(frames.next(&mut server).await) }, async {
                glommio::timer::sleep(Duration::from_millis(200)).await;
                None
            })
            .await;
            assert!(waited.is_none(), "the frame is not complete");
            let held = frames.buf.capacity();
            assert!(held <= 2 * FRAME_GROWTH_STEP_BYTES, "{held} bytes held for 1 KiB received");
            drop(client.await);
        });
    }
}
