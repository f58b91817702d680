//! Reading request frames off a socket into buffers charged to the shard's request memory.
//!
//! Each frame gets a buffer of its own, so what a request keeps alive is exactly its frame (and
//! what is charged is exactly that buffer's capacity):
//! - A small frame that arrives whole within one read of the connection's read-ahead buffer
//!   ([`CONNECTION_READ_AHEAD_BYTES`]) is copied out into an exactly sized buffer.
//! - A larger one moves to a buffer of its own, which the socket fills directly. A frame of at
//!   most [`REQUEST_BUFFER_WHOLE_BYTES_MAX`] gets its whole buffer at once while that leaves
//!   the budget at most half charged, so the usual produce frame is never copied as it grows.
//!   Otherwise the buffer grows as bytes arrive: to at most twice what arrived, or to what the
//!   kernel already holds for it (`FIONREAD`), never to the declared length up front. Each
//!   growth waits for the memory budget (`memory.rs`); while it waits the socket is not read,
//!   which is the backpressure.
//!
//! A frame's length is checked (`protocol::frame_length`, the check `split_frame` makes for the
//! client and the fuzz target) before anything is allocated for it. Nothing is zero-filled:
//! the socket is read with `recv(2)` into spare capacity. When there is nothing to read, the
//! reader waits for the socket with a one-byte peek and holds no buffer at all, so an idle
//! connection costs no read-ahead memory. (`crate::socket` does the reads.)
//!
//! **Small requests flow while the budget is spent.** A connection with nothing in flight may
//! always take one new request; only a connection with requests in flight waits for the budget
//! to have room before it takes another. Kafka mutes every connection instead; here heartbeats,
//! metadata and ApiVersions requests keep being answered under a produce storm, at a cost
//! bounded by one small frame per connection.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::Poll;

use bytes::BytesMut;
use glommio::net::TcpStream;

use super::memory::{Charge, RequestMemory};
use super::sweep::ConnectionState;
use crate::limits::{CONNECTION_READ_AHEAD_BYTES, REQUEST_BUFFER_MIN_BYTES, REQUEST_BUFFER_WHOLE_BYTES_MAX};
use crate::protocol::{FrameError, FrameLimits, LENGTH_PREFIX_BYTES, frame_length};
use crate::socket::recv_into;

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

/// One request frame (without its length prefix) and the memory charged for it. The charge is
/// given back when it drops: keep it until the request's handler has returned.
#[derive(Debug)]
pub struct Frame {
    /// The frame's bytes, in a buffer of their own.
    pub bytes: BytesMut,
    /// The frame's buffer, charged to the shard's request memory.
    pub charge: Charge,
}

/// A frame whose length is known, part of it received.
#[derive(Debug)]
struct Partial {
    len: usize,
    buf: Vec<u8>,
    charge: Charge,
}

/// Reads length-prefixed request frames off one connection.
#[derive(Debug)]
pub struct FrameReader {
    limits: FrameLimits,
    memory: Rc<RequestMemory>,
    /// Read-ahead: bytes read but not yet part of a frame buffer, from `head_start`. Its
    /// allocation is dropped whenever it is empty and the socket has nothing to read.
    head: Vec<u8>,
    head_start: usize,
    partial: Option<Partial>,
}

impl FrameReader {
    /// A reader refusing frames outside `limits`, charging them to `memory`.
    pub fn new(limits: FrameLimits, memory: Rc<RequestMemory>) -> Self {
        FrameReader { limits, memory, head: Vec::new(), head_start: 0, partial: None }
    }

    /// A reader that starts with `read_ahead`, bytes another shard read from the connection
    /// before it moved here (`placement.rs`).
    pub(super) fn with_read_ahead(limits: FrameLimits, memory: Rc<RequestMemory>, mut read_ahead: Vec<u8>) -> Self {
        if !read_ahead.is_empty() {
            // The room a read ahead has when it is not empty (see `next`).
            read_ahead.reserve(CONNECTION_READ_AHEAD_BYTES.saturating_sub(read_ahead.len()));
        }
        FrameReader { limits, memory, head: read_ahead, head_start: 0, partial: None }
    }

    /// The bytes read ahead that no frame has taken, for the shard the connection moves to;
    /// `None` while a frame is half received in a buffer of its own (then it cannot move).
    pub(super) fn take_read_ahead(&mut self) -> Option<Vec<u8>> {
        if self.partial.is_some() {
            return None;
        }
        let mut head = std::mem::take(&mut self.head);
        head.drain(..self.head_start.min(head.len()));
        self.head_start = 0;
        Some(head)
    }

    /// Bytes buffered for frames not yet complete, and the capacity holding them.
    pub fn buffered(&self) -> (usize, usize) {
        let head = (self.head.len() - self.head_start, self.head.capacity());
        let partial = self.partial.as_ref().map_or((0, 0), |p| (p.buf.len(), p.buf.capacity()));
        (head.0 + partial.0, head.1 + partial.1)
    }

    fn pending(&self) -> &[u8] {
        self.head.get(self.head_start..).unwrap_or_default()
    }

    /// The next frame, or `None` at a clean end of stream.
    pub(super) async fn next(
        &mut self,
        stream: &TcpStream,
        state: &ConnectionState,
    ) -> Result<Option<Frame>, ReadError> {
        let fd = stream.as_raw_fd();
        loop {
            if let Some(partial) = &mut self.partial {
                if partial.buf.len() >= partial.len {
                    let Some(mut partial) = self.partial.take() else { continue };
                    partial.charge.return_pass();
                    state.request_received(!self.pending().is_empty());
                    return Ok(Some(Frame { bytes: into_bytes_mut(partial.buf), charge: partial.charge }));
                }
                if partial.buf.len() == partial.buf.capacity() {
                    let target = next_capacity(partial.len, partial.buf.len(), ready_bytes(fd));
                    // More than the buffer holds: it is full, and shorter than the frame.
                    debug_assert!(target > partial.buf.capacity());
                    let more = target.saturating_sub(partial.buf.capacity());
                    state.paused(partial.charge.grow(more as u64)).await;
                    partial.buf.reserve_exact(more);
                }
                let want = partial.len - partial.buf.len();
                let received = recv_into(fd, &mut partial.buf, want);
                if self.received(received, stream, state).await? {
                    continue;
                }
                return Err(ReadError::Truncated);
            }
            if state.in_flight() > 0 && self.memory.is_spent() {
                // Backpressure: no new request from a connection with requests in flight until
                // the budget has room (or they are all answered).
                let memory = self.memory.clone();
                let room = std::future::poll_fn(|cx| {
                    if state.in_flight() == 0 || !memory.is_spent() {
                        return Poll::Ready(());
                    }
                    memory.wake_on_room(cx.waker());
                    state.wake_when_answered(cx.waker());
                    Poll::Pending
                });
                state.paused(room).await;
                continue;
            }
            if let Some(&prefix) = self.pending().first_chunk::<LENGTH_PREFIX_BYTES>() {
                let len = frame_length(prefix, self.limits)? as usize;
                let arrived = self.pending().len() - LENGTH_PREFIX_BYTES;
                let body_start = self.head_start + LENGTH_PREFIX_BYTES;
                if arrived >= len {
                    let Some(body) = self.head.get(body_start..body_start + len) else { continue };
                    let mut charge = Charge::new(&self.memory);
                    // Whole and at most the read-ahead's size: admitted without waiting.
                    charge.grow_now(len as u64);
                    let bytes = BytesMut::from(body);
                    self.head_start = body_start + len;
                    state.request_received(!self.pending().is_empty());
                    return Ok(Some(Frame { bytes, charge }));
                }
                let mut target = next_capacity(len, arrived, ready_bytes(fd));
                if len <= REQUEST_BUFFER_WHOLE_BYTES_MAX && self.memory.has_room_to_spare(len as u64) {
                    target = len;
                }
                let mut charge = Charge::new(&self.memory);
                state.paused(charge.grow(target as u64)).await;
                let mut buf = Vec::with_capacity(target);
                buf.extend_from_slice(self.head.get(body_start..).unwrap_or_default());
                self.head.clear();
                self.head_start = 0;
                self.partial = Some(Partial { len, buf, charge });
                continue;
            }
            // Less than a length prefix: read ahead.
            if self.head_start > 0 {
                self.head.drain(..self.head_start);
                self.head_start = 0;
            }
            if self.head.capacity() == 0 {
                self.head.reserve_exact(CONNECTION_READ_AHEAD_BYTES);
            }
            let received = recv_into(fd, &mut self.head, CONNECTION_READ_AHEAD_BYTES);
            if !self.received(received, stream, state).await? {
                return if self.pending().is_empty() { Ok(None) } else { Err(ReadError::Truncated) };
            }
        }
    }

    /// Handles the result of one `recv`: `Ok(true)` to go on reading, `Ok(false)` at the end of
    /// the stream. When the socket has nothing, waits until it has (holding no read-ahead).
    async fn received(
        &mut self,
        received: io::Result<usize>,
        stream: &TcpStream,
        state: &ConnectionState,
    ) -> Result<bool, ReadError> {
        match received {
            Ok(0) => Ok(false),
            Ok(_) => {
                state.bytes_arrived();
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if self.pending().is_empty() {
                    self.head = Vec::new();
                    self.head_start = 0;
                }
                // A peek completes when a byte (or the end of the stream) arrives; the next recv
                // then reads it.
                stream.peek(&mut [0u8; 1]).await.map_err(io::Error::from)?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The capacity a frame of `len` bytes, `arrived` of them received and `ready` more waiting in
/// the kernel, grows to: at least [`REQUEST_BUFFER_MIN_BYTES`], twice what arrived, or what
/// arrived plus what is ready, whichever is most, and never more than the frame.
fn next_capacity(len: usize, arrived: usize, ready: usize) -> usize {
    let target = REQUEST_BUFFER_MIN_BYTES.max(arrived.saturating_mul(2)).max(arrived.saturating_add(ready));
    target.min(len)
}

/// `buf` as a `BytesMut`, without copying (its length is its capacity: no reallocation).
fn into_bytes_mut(buf: Vec<u8>) -> BytesMut {
    BytesMut::from(bytes::Bytes::from(buf))
}

/// Bytes the kernel holds for reading on `fd` (0 if it cannot say).
fn ready_bytes(fd: RawFd) -> usize {
    let mut ready: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which is valid for the call.
    let done = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut ready as *mut libc::c_int) };
    if done < 0 { 0 } else { usize::try_from(ready).unwrap_or(0) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_lite::AsyncWriteExt;
    use glommio::net::TcpListener;

    use super::*;
    use crate::testing::run_on_shard;

    const MAX: u32 = 100 * 1024 * 1024;

    /// Reads `server` for 200 ms, in which no frame may complete; returns what `frames` then
    /// holds (bytes, capacity).
    async fn held_by_an_incomplete_frame(
        frames: &mut FrameReader,
        server: &TcpStream,
        state: &ConnectionState,
    ) -> (usize, usize) {
        let waited = futures_lite::future::or(async { Some(frames.next(server, state).await) }, async {
            glommio::timer::sleep(Duration::from_millis(200)).await;
            None
        })
        .await;
        assert!(waited.is_none(), "the frame is not complete");
        frames.buffered()
    }

    #[test]
    fn a_frame_grows_with_what_arrived_never_to_its_declared_length() {
        assert_eq!(next_capacity(50_000_000, 1024, 0), REQUEST_BUFFER_MIN_BYTES);
        assert_eq!(next_capacity(50_000_000, 1 << 20, 0), 2 << 20);
        assert_eq!(next_capacity(50_000_000, 1 << 20, 5 << 20), 6 << 20);
        assert_eq!(next_capacity(3 << 20, 2 << 20, 0), 3 << 20);
        assert_eq!(next_capacity(100, 10, 0), 100);
    }

    /// A frame of 1 MiB whose first KiB arrives gets its whole buffer at once while the budget
    /// has room to spare (so it is never copied as it grows), and grows with what arrives when
    /// taking it whole would charge more than half the budget.
    #[test]
    fn a_frame_up_to_the_whole_size_is_taken_whole_while_half_the_budget_is_free() {
        run_on_shard(|| async {
            const LEN: usize = 1 << 20;
            for (budget, whole) in [(1u64 << 30, true), (3 * LEN as u64 / 2, false)] {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let (go_on, wait) = futures_channel::oneshot::channel::<()>();
                let client = glommio::spawn_local(async move {
                    let mut client = glommio::net::TcpStream::connect(addr).await.unwrap();
                    client.write_all(&(LEN as i32).to_be_bytes()).await.unwrap();
                    client.write_all(&[7u8; 1024]).await.unwrap();
                    client.flush().await.unwrap();
                    let _ = wait.await;
                    client.write_all(&vec![7u8; LEN - 1024]).await.unwrap();
                    client.flush().await.unwrap();
                    client
                });
                let memory = RequestMemory::new(budget);
                let server = listener.accept().await.unwrap();
                let state = ConnectionState::new(server.as_raw_fd(), addr);
                let mut frames = FrameReader::new(FrameLimits::requests(MAX), memory.clone());
                let (held, capacity) = held_by_an_incomplete_frame(&mut frames, &server, &state).await;
                assert_eq!(held, 1024);
                if whole {
                    assert_eq!(capacity, LEN, "budget {budget}: the whole frame's buffer at once");
                } else {
                    assert!(capacity <= REQUEST_BUFFER_MIN_BYTES, "budget {budget}: {capacity} bytes for 1 KiB");
                }
                assert_eq!(memory.charged_bytes(), capacity as u64);
                go_on.send(()).unwrap();
                let frame = frames.next(&server, &state).await.unwrap().unwrap();
                assert_eq!(frame.bytes.len(), LEN);
                assert_eq!(frame.bytes.capacity(), LEN, "an exactly sized buffer");
                assert!(frame.bytes.iter().all(|&b| b == 7));
                drop(frame);
                assert_eq!(memory.charged_bytes(), 0, "the charge given back");
                drop(client.await);
            }
        });
    }

    /// A frame declared at 50 MB of which 1 KiB arrives: the reader holds and charges about what
    /// arrived, not the declared size; then frames of every size arrive whole, each in its own
    /// exactly sized buffer, and their charges go back when they drop.
    #[test]
    fn a_declared_frame_length_is_not_a_reservation() {
        run_on_shard(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let declared: i32 = 50_000_000;
            let sizes = [10usize, 3000, 5000, 300_000];
            let client = glommio::spawn_local(async move {
                let mut client = glommio::net::TcpStream::connect(addr).await.unwrap();
                client.write_all(&declared.to_be_bytes()).await.unwrap();
                client.write_all(&[7u8; 1024]).await.unwrap();
                client.flush().await.unwrap();
                glommio::timer::sleep(Duration::from_millis(300)).await;
                let mut second = glommio::net::TcpStream::connect(addr).await.unwrap();
                for (i, size) in sizes.into_iter().enumerate() {
                    second.write_all(&(size as i32).to_be_bytes()).await.unwrap();
                    second.write_all(&vec![i as u8; size]).await.unwrap();
                }
                second.flush().await.unwrap();
                (client, second)
            });
            let memory = RequestMemory::new(1 << 30);
            let server = listener.accept().await.unwrap();
            let state = ConnectionState::new(server.as_raw_fd(), addr);
            let mut frames = FrameReader::new(FrameLimits::requests(MAX), memory.clone());
            let (held, capacity) = held_by_an_incomplete_frame(&mut frames, &server, &state).await;
            assert_eq!(held, 1024);
            assert!(capacity <= REQUEST_BUFFER_MIN_BYTES, "{capacity} bytes held for 1 KiB received");
            assert_eq!(memory.charged_bytes(), capacity as u64);
            let second = listener.accept().await.unwrap();
            let second_state = ConnectionState::new(second.as_raw_fd(), addr);
            let mut second_frames = FrameReader::new(FrameLimits::requests(MAX), memory.clone());
            for (i, size) in sizes.into_iter().enumerate() {
                let frame = second_frames.next(&second, &second_state).await.unwrap().unwrap();
                assert_eq!(frame.bytes.len(), size);
                assert_eq!(frame.bytes.capacity(), size, "an exactly sized buffer");
                assert!(frame.bytes.iter().all(|&b| b == i as u8));
                assert_eq!(frame.charge.bytes(), size as u64);
            }
            drop(frames);
            assert_eq!(memory.charged_bytes(), 0, "every charge given back");
            drop(client.await);
        });
    }
}
