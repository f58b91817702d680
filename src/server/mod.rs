//! The network side of the broker: a listener on every shard (SO_REUSEPORT spreads connections
//! across them), one task pair per connection, framing, in-order responses, and the writer that
//! sends record bytes without copying them.
//!
//! The server knows nothing of Kafka's APIs: each request frame goes to a [`Dispatch`], which
//! the broker implements, and comes back as a [`Reply`]. The dispatcher also reports which
//! shards each request worked on ([`Placement`]), and a client connection whose requests keep
//! working on one other shard moves there (`placement.rs`).

pub mod connection;
pub mod memory;
mod placement;
pub mod reader;
mod sweep;
pub mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use glommio::net::TcpListener;
use tracing::{info, warn};

use crate::protocol::Reply;

/// The future of one request's reply.
pub type ReplyFuture = Pin<Box<dyn Future<Output = Reply>>>;

/// What answers the requests of a connection: given one request frame (without its length
/// prefix), the future of its reply.
pub trait Dispatch: 'static {
    /// Handles one request frame from `peer`, telling `placement` which shards its work went to
    /// (the future holds it until the request is done).
    fn dispatch(self: Rc<Self>, frame: BytesMut, peer: SocketAddr, placement: Placement) -> ReplyFuture;
}

pub use memory::RequestMemory;
pub use placement::{Handoff, HandoffEnd, MOVE_AFTER_REQUESTS, Placement};

/// The first wait after `accept` fails (out of descriptors or memory: EMFILE, ENFILE, ENOMEM);
/// it doubles while the failures go on, up to [`ACCEPT_RETRY_MAX`]. Retrying at once would spin
/// a core on a listener that cannot succeed until connections close.
const ACCEPT_RETRY_MIN: Duration = Duration::from_millis(10);
/// The longest wait between accepts that fail.
const ACCEPT_RETRY_MAX: Duration = Duration::from_secs(1);
/// The soft limit on open descriptors, for log lines about running out of them.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections open at once on one shard; more are closed as they arrive.
    pub connections_per_shard: u32,
    /// Requests of one connection in flight before reading pauses.
    pub in_flight_per_connection: usize,
    /// The largest request frame accepted.
    pub request_bytes_max: u32,
    /// `connections.max.idle.ms`: a connection with no request in flight and no bytes read or
    /// written for this long is closed; `None` never closes one (Kafka's -1).
    pub connections_max_idle: Option<Duration>,
    /// `--request-receive-timeout-ms`: a request whose first bytes arrived must be whole within
    /// this long, or the connection is closed.
    pub request_receive_timeout: Duration,
}

/// Accepts connections on this shard until `shutdown` fires, handing their requests to
/// `dispatch`, with their frames charged to `memory` (this listener's budget on this shard).
/// With `handoff` (the client listener), connections move between the shards' listeners to the
/// shard their requests work on, and this one serves the connections moved to it.
pub async fn serve<D: Dispatch>(
    dispatch: Rc<D>,
    limits: ServerLimits,
    memory: Rc<RequestMemory>,
    listener: TcpListener,
    shutdown: flume::Receiver<()>,
    handoff: Option<HandoffEnd>,
) {
    let connections = Rc::new(sweep::Connections::default());
    let timeouts = sweep::Timeouts { idle: limits.connections_max_idle, receive: limits.request_receive_timeout };
    let sweeper = glommio::spawn_local(sweep::sweep(connections.clone(), timeouts));
    let moves = handoff.is_some();
    // Without a handoff, a handoff of one shard: it only counts this listener's connections.
    let handoff = handoff.unwrap_or_else(|| Handoff::new(1).end(0));
    let shared = Rc::new(connection::Listener {
        dispatch,
        limits,
        memory,
        connections,
        closed_log: crate::limits::LogThrottle::new(),
        handoff: handoff.clone(),
        moves,
    });
    let limit = limits.connections_per_shard;
    handoff.set_serving(true);
    let (stop_moved_in, moved_in_stopped) = futures_channel::oneshot::channel::<()>();
    let moved_in = moves.then(|| glommio::spawn_local(serve_moved(shared.clone(), moved_in_stopped)).detach());
    let (failed_log, refused_log) = (crate::limits::LogThrottle::new(), crate::limits::LogThrottle::new());
    let mut retry = ACCEPT_RETRY_MIN;
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            let _ = shutdown.recv_async().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        // A connection needs two descriptors (see `connection::prepare`): failing the second is
        // running out as a failed accept is.
        let prepared = accepted.map_err(std::io::Error::from).and_then(|stream| {
            let peer = stream.peer_addr()?;
            let write_stream = connection::prepare(&stream, peer)?;
            Ok((stream, write_stream, peer))
        });
        let (stream, write_stream, peer) = match prepared {
            Ok(prepared) => {
                retry = ACCEPT_RETRY_MIN;
                prepared
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => continue,
            Err(e) => {
                crate::metrics::accept_failed();
                if let Some(suppressed) = failed_log.allow() {
                    warn!(error = %e, open_files_limit = ?open_files_limit(), connections = handoff.open_here(),
                        retry_ms = retry.as_millis(), failed_since_last_line = suppressed,
                        "accept failed; new connections wait until descriptors or memory free up");
                }
                let waited = futures_lite::future::or(
                    async {
                        glommio::timer::sleep(retry).await;
                        true
                    },
                    async {
                        let _ = shutdown.recv_async().await;
                        false
                    },
                )
                .await;
                if !waited {
                    break;
                }
                retry = (retry * 2).min(ACCEPT_RETRY_MAX);
                continue;
            }
        };
        if !handoff.take_place(limit) {
            crate::metrics::connection_refused();
            if let Some(suppressed) = refused_log.allow() {
                warn!(%peer, limit, connections = handoff.open_here(), refused_since_last_line = suppressed,
                    "--max-connections-per-core reached; closing new connection");
            }
            continue;
        }
        crate::metrics::connection_opened();
        spawn_connection(shared.clone(), stream, write_stream, peer, connection::Arrival::default());
    }
    handoff.set_serving(false);
    drop(stop_moved_in);
    if let Some(moved_in) = moved_in {
        moved_in.await;
    }
    sweeper.cancel().await;
    info!("listener stopped");
}

/// Serves a connection whose place under the shard's limit is taken, until it closes (giving
/// the place back) or moves (its new shard took a place there).
fn spawn_connection<D: Dispatch>(
    shared: Rc<connection::Listener<D>>,
    stream: glommio::net::TcpStream,
    write_stream: glommio::net::TcpStream,
    peer: SocketAddr,
    arrival: connection::Arrival,
) {
    glommio::spawn_local(async move {
        let ended = connection::serve(shared.clone(), stream, write_stream, peer, arrival).await;
        shared.handoff.give_place();
        match ended {
            connection::Ended::Closed => crate::metrics::connection_closed(),
            connection::Ended::Moved => crate::metrics::connection_moved_out(),
        }
    })
    .detach();
}

/// Serves the connections other shards move here, until the listener stops (`stopped` ends);
/// those that arrive after are closed (their places given back).
async fn serve_moved<D: Dispatch>(
    shared: Rc<connection::Listener<D>>,
    stopped: futures_channel::oneshot::Receiver<()>,
) {
    let Some(inbox) = shared.handoff.inbox() else { return };
    let mut stopped = std::pin::pin!(stopped);
    loop {
        let moved = futures_lite::future::or(async { inbox.recv_async().await.ok() }, async {
            let _ = stopped.as_mut().await;
            None
        })
        .await;
        let Some(placement::Moved { socket, peer, read_ahead, moves }) = moved else { break };
        // SAFETY: the moved descriptor is owned by `socket` and handed over whole.
        let stream = unsafe { glommio::net::TcpStream::from_raw_fd(socket.into_raw_fd()) };
        match connection::prepare(&stream, peer) {
            Ok(write_stream) => {
                crate::metrics::connection_moved_in();
                spawn_connection(shared.clone(), stream, write_stream, peer, connection::Arrival { read_ahead, moves });
            }
            Err(e) => {
                shared.handoff.give_place();
                if let Some(suppressed) = shared.closed_log.allow() {
                    warn!(%peer, error = %e, closed_since_last_line = suppressed,
                        "cannot serve a connection moved here; closing it");
                }
            }
        }
    }
    // Moves sent before this shard stopped serving: close them and give their places back.
    while let Ok(moved) = inbox.try_recv() {
        drop(moved);
        shared.handoff.give_place();
    }
}
