//! Socket reads into a buffer's spare capacity, without zero-filling it first.
//!
//! Safe Rust reads only into initialised memory, so a read loop that asks for room with
//! `resize(len + n, 0)` writes every byte twice: zeroes, then what the socket gave. For a
//! consumer of megabyte fetch responses that memset was 5 % of its CPU samples (mostly cache
//! misses on memory not recently touched, which the kernel's copy now takes instead; see
//! perf/README.md). The broker's request reader, the client's response reader
//! and the inter-broker pool's reader all receive here instead, so the one `unsafe` read of
//! uninitialised memory is written once. It knows sockets and buffers (and `limits`), nothing of
//! Kafka.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};

use bytes::BytesMut;
use glommio::net::TcpStream;

use crate::limits::SOCKET_READ_BYTES_MAX;

/// A byte buffer whose spare capacity a read may fill.
pub trait SpareCapacity {
    /// The allocated bytes past the initialised ones.
    fn spare(&mut self) -> &mut [MaybeUninit<u8>];

    /// Counts `n` more bytes as initialised.
    ///
    /// # Safety
    /// The first `n` bytes of [`SpareCapacity::spare`] must have been initialised.
    unsafe fn filled(&mut self, n: usize);
}

impl SpareCapacity for Vec<u8> {
    fn spare(&mut self) -> &mut [MaybeUninit<u8>] {
        self.spare_capacity_mut()
    }

    unsafe fn filled(&mut self, n: usize) {
        // SAFETY: the caller initialised `n` bytes of the spare capacity, so they are in bounds.
        unsafe { self.set_len(self.len() + n) }
    }
}

impl SpareCapacity for BytesMut {
    fn spare(&mut self) -> &mut [MaybeUninit<u8>] {
        self.spare_capacity_mut()
    }

    unsafe fn filled(&mut self, n: usize) {
        // SAFETY: the caller initialised `n` bytes of the spare capacity, so they are in bounds.
        unsafe { self.set_len(self.len() + n) }
    }
}

/// Receives at most `max` bytes from `fd` into the spare capacity of `buf`, without waiting:
/// `WouldBlock` when the socket holds nothing, `Ok(0)` at the end of the stream (or when `buf`
/// has no spare capacity or `max` is 0: callers make room first).
pub fn recv_into(fd: RawFd, buf: &mut impl SpareCapacity, max: usize) -> io::Result<usize> {
    let spare = buf.spare();
    let len = spare.len().min(max);
    // SAFETY: recv writes at most `len` bytes to the spare capacity, allocated and owned by `buf`
    // and not aliased while `spare` borrows it.
    let got = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), len, libc::MSG_DONTWAIT) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = usize::try_from(got).unwrap_or(0).min(len);
    // SAFETY: the kernel initialised the first `got` bytes of the spare capacity.
    unsafe { buf.filled(got) };
    Ok(got)
}

/// Reads at least one byte from `stream` into the spare capacity of `buf` (at most `max`),
/// waiting until the socket has some; `Ok(0)` only at the end of the stream. `buf` must have
/// spare capacity and `max` must be positive, or this fails with `InvalidInput` (a read of
/// nothing cannot tell data from the end of the stream).
///
/// The stream must be read only this way: glommio's own buffered reads would hold bytes this
/// never sees.
pub async fn read_into(stream: &TcpStream, buf: &mut impl SpareCapacity, max: usize) -> io::Result<usize> {
    if max == 0 || buf.spare().is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a read needs room for at least one byte"));
    }
    let fd = stream.as_raw_fd();
    loop {
        match recv_into(fd, buf, max) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A peek completes when a byte (or the end of the stream) arrives; the next recv
                // then reads it.
                stream.peek(&mut [0u8; 1]).await.map_err(io::Error::from)?;
            }
            done => return done,
        }
    }
}

/// Reads more of a response frame into `buf`: up to the room `split_frame` reserved for it, at
/// least `min` and at most [`SOCKET_READ_BYTES_MAX`] bytes (the client's and the inter-broker
/// pool's read loops). `Ok(0)` at the end of the stream.
pub async fn read_more(stream: &TcpStream, buf: &mut BytesMut, min: usize) -> io::Result<usize> {
    let want = buf.capacity().saturating_sub(buf.len()).clamp(min.max(1), SOCKET_READ_BYTES_MAX.max(min));
    buf.reserve(want);
    read_into(stream, buf, want).await
}

#[cfg(test)]
mod tests {
    use futures_lite::AsyncWriteExt;
    use glommio::net::TcpListener;

    use super::*;
    use crate::testing::run_on_shard;

    /// Bytes arrive in the spare capacity as sent, in pieces of at most `max`; a read waits for
    /// bytes to come, ends with `Ok(0)` when the peer closes, and refuses to read into no room.
    #[test]
    fn reads_fill_spare_capacity_and_wait_for_bytes() {
        run_on_shard(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
            let to_send = sent.clone();
            let client = glommio::spawn_local(async move {
                let mut client = glommio::net::TcpStream::connect(addr).await.unwrap();
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                client.write_all(&to_send).await.unwrap();
                client.close().await.unwrap();
            });
            let server = listener.accept().await.unwrap();
            let mut buf = BytesMut::with_capacity(sent.len() + 10);
            assert_eq!(
                read_into(&server, &mut buf, 0).await.unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "no room: refused, not taken for the end of the stream"
            );
            loop {
                let got = read_into(&server, &mut buf, 4096).await.unwrap();
                assert!(got <= 4096);
                if got == 0 {
                    break;
                }
            }
            assert_eq!(&buf[..], &sent[..]);
            // `vec!` allocates exactly what it holds: no spare capacity.
            let mut full = vec![1u8];
            assert_eq!(read_into(&server, &mut full, 10).await.unwrap_err().kind(), io::ErrorKind::InvalidInput);
            client.await;
        });
    }
}
