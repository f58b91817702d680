//! One client connection on the shard that accepted it: read frames, run each request as its own
//! task (clients pipeline several), and write the responses back in request order.
//!
//! Two tasks share the socket: this one reads (`reader.rs`: frames into buffers charged to the
//! shard's request memory), the writer task writes (raw writev/sendfile on a duplicate of the
//! descriptor, see `writer.rs`). The writer awaits the request tasks in arrival order, so
//! responses leave in order while requests run concurrently; at most
//! `max_in_flight_per_connection` are in flight before reading pauses. A request's memory is
//! given back when its handler returns. The sweep (`sweep.rs`) closes the connection when it is
//! idle too long or a request trickles in too slowly.
//!
//! A client connection whose requests keep working on one other shard moves there
//! (`placement.rs`): the reader stops taking requests, the writer answers those in flight, and
//! the socket goes to the other shard's listener with the bytes read ahead.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;

use glommio::channels::local_channel;
use glommio::net::TcpStream;
use tracing::{debug, warn};

use super::memory::RequestMemory;
use super::placement::{Affinity, HandoffEnd, Moved, Placement};
use super::reader::{Frame, FrameReader, ReadError};
use super::sweep::{ConnectionState, Connections};
use super::writer::{set_nonblocking, write_pieces};
use super::{Dispatch, ServerLimits};
use crate::limits::LogThrottle;
use crate::protocol::{FrameLimits, Reply};

/// What the connections of one listener on one shard share.
pub(super) struct Listener<D> {
    pub(super) dispatch: Rc<D>,
    pub(super) limits: ServerLimits,
    /// The shard's request memory budget for this listener.
    pub(super) memory: Rc<RequestMemory>,
    /// The connections the sweep watches.
    pub(super) connections: Rc<Connections>,
    /// Connections closed for a bad frame or a failed socket (a flood of bad clients logs once
    /// a second).
    pub(super) closed_log: LogThrottle,
    /// This shard's end of the handoff between shards, which also counts its open connections.
    pub(super) handoff: HandoffEnd,
    /// Whether connections move to the shard their requests work on (`placement.rs`).
    pub(super) moves: bool,
}

/// How a connection arrives at [`serve`].
#[derive(Debug, Default)]
pub(super) struct Arrival {
    /// Bytes already read from it (by the shard it moved from).
    pub(super) read_ahead: Vec<u8>,
    /// Moves it has made.
    pub(super) moves: u32,
}

/// How [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// The connection is closed.
    Closed,
    /// It moved to another shard, which serves it now.
    Moved,
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

/// Serves one connection until the client closes it, sends something that forces a close, the
/// sweep closes it, or it moves to another shard. `write_stream` is the writer's descriptor for
/// the same socket, from [`prepare`].
pub(super) async fn serve<D: Dispatch>(
    listener: Rc<Listener<D>>,
    stream: TcpStream,
    mut write_stream: TcpStream,
    peer: SocketAddr,
    arrival: Arrival,
) -> Ended {
    let state = ConnectionState::new(stream.as_raw_fd(), peer);
    // Dropped before `stream` (a parameter, dropped last), so the sweep never shuts down a
    // descriptor number that was closed and reused.
    let registration = listener.connections.register(state.clone());
    let affinity = listener.moves.then(|| Affinity::new(listener.handoff.shard(), arrival.moves));
    let (tx, rx) = local_channel::new_bounded(listener.limits.in_flight_per_connection.max(1));
    let writer_state = state.clone();
    let writer = glommio::spawn_local(async move {
        let mut answered_all = true;
        while let Some(task) = rx.recv().await {
            let task: glommio::task::JoinHandle<Reply> = task;
            let written = match task.await {
                Some(Reply::Send(pieces)) => write_pieces(&mut write_stream, pieces).await.map(|()| true),
                Some(Reply::Nothing) => Ok(true),
                Some(Reply::Close) | None => Ok(false),
            };
            writer_state.request_answered();
            match written {
                Ok(true) => {}
                Ok(false) => {
                    answered_all = false;
                    break;
                }
                Err(e) => {
                    debug!(%peer, error = %e, "write failed; closing");
                    answered_all = false;
                    break;
                }
            }
        }
        // A writer that answered everything stopped because the reader closed the channel: the
        // reader closes the socket itself, or moves it to another shard.
        if !answered_all {
            // Wake the reader, which may be waiting for a frame the client will never send.
            // SAFETY: shutdown(2) on the descriptor this task owns.
            unsafe { libc::shutdown(write_stream.as_raw_fd(), libc::SHUT_RDWR) };
        }
        answered_all
    })
    .detach();
    let limits = FrameLimits::requests(listener.limits.request_bytes_max);
    let mut frames = FrameReader::with_read_ahead(limits, listener.memory.clone(), arrival.read_ahead);
    let mut move_to = None;
    loop {
        if let Some(affinity) = &affinity
            && let Some(to) = affinity.wants_move()
        {
            if listener.handoff.reserve(to, listener.limits.connections_per_shard) {
                move_to = Some(to);
                break;
            }
            affinity.start_over();
        }
        let Frame { bytes, charge } = match frames.next(&stream, &state).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            // The sweep closed it, and said why.
            Err(_) if state.expired().is_some() => break,
            Err(ReadError::Io(e)) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => {
                debug!(%peer, error = %e, "client went away");
                break;
            }
            // A client may close in the middle of a request (it gave up on it): not the broker's
            // problem, and clients that do it leave in floods.
            Err(ReadError::Truncated) => {
                debug!(%peer, "client went away mid-request");
                break;
            }
            Err(e) => {
                if let Some(suppressed) = listener.closed_log.allow() {
                    warn!(%peer, error = %e, closed_since_last_line = suppressed, "closing connection");
                }
                break;
            }
        };
        state.request_started();
        let dispatch = listener.dispatch.clone();
        let placement = affinity.as_ref().map_or_else(Placement::detached, |a| a.placement());
        let task = glommio::spawn_local(async move {
            let reply = dispatch.dispatch(bytes, peer, placement).await;
            // The handler has returned and dropped the frame: its memory is free for others.
            drop(charge);
            reply
        })
        .detach();
        let sent = if tx.is_full() { state.paused(tx.send(task)).await } else { tx.try_send(task) };
        if sent.is_err() {
            break;
        }
    }
    if let Some(to) = move_to {
        drop(tx);
        let answered_all = writer.await.unwrap_or(false);
        let socket = answered_all.then(|| frames.take_read_ahead()).flatten().and_then(|read_ahead| {
            // SAFETY: dup gives a new descriptor for the socket, owned by the `OwnedFd`; the
            // streams' own descriptors close when they drop (no shutdown, so the socket lives).
            let fd = unsafe { libc::dup(stream.as_raw_fd()) };
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            (fd >= 0).then(|| (unsafe { OwnedFd::from_raw_fd(fd) }, read_ahead))
        });
        drop(registration);
        let moves = affinity.as_ref().map_or(0, |a| a.moves()).saturating_add(1);
        match socket {
            Some((socket, read_ahead)) => {
                debug!(%peer, to, moves, "connection moves to the shard its requests work on");
                listener.handoff.send(to, Moved { socket, peer, read_ahead, moves });
                return Ended::Moved;
            }
            None => {
                listener.handoff.give_place_on(to);
                let _ = stream.shutdown(std::net::Shutdown::Both).await;
                return Ended::Closed;
            }
        }
    }
    // Whatever was half received is given back now, not when the writer is done.
    drop(frames);
    drop(tx);
    let _ = writer.await;
    drop(registration);
    let _ = stream.shutdown(std::net::Shutdown::Both).await;
    Ended::Closed
}
