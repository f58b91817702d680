//! The network side of the broker: a listener on every shard (SO_REUSEPORT spreads connections
//! across them), one task pair per connection, framing, in-order responses, and the writer that
//! sends record bytes without copying them.
//!
//! The server knows nothing of Kafka's APIs: each request frame goes to a [`Dispatch`], which
//! the broker implements, and comes back as a [`Reply`].

pub mod connection;
pub mod memory;
pub mod reader;
mod sweep;
pub mod writer;

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use glommio::net::TcpListener;
use tracing::{info, warn};

use crate::protocol::Reply;

/// What answers the requests of a connection: given one request frame (without its length
/// prefix), the future of its reply.
pub trait Dispatch: 'static {
    /// Handles one request frame from `peer`.
    fn dispatch(self: Rc<Self>, frame: BytesMut, peer: SocketAddr) -> Pin<Box<dyn Future<Output = Reply>>>;
}

pub use memory::RequestMemory;

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
pub async fn serve<D: Dispatch>(
    dispatch: Rc<D>,
    limits: ServerLimits,
    memory: Rc<RequestMemory>,
    listener: TcpListener,
    shutdown: flume::Receiver<()>,
) {
    let connections = Rc::new(sweep::Connections::default());
    let timeouts = sweep::Timeouts { idle: limits.connections_max_idle, receive: limits.request_receive_timeout };
    let sweeper = glommio::spawn_local(sweep::sweep(connections.clone(), timeouts));
    let shared = Rc::new(connection::Listener {
        dispatch,
        limits,
        memory,
        connections,
        closed_log: crate::limits::LogThrottle::new(),
    });
    let open = Rc::new(Cell::new(0u32));
    let limit = limits.connections_per_shard;
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
                    warn!(error = %e, open_files_limit = ?open_files_limit(), connections = open.get(),
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
        if open.get() >= limit {
            crate::metrics::connection_refused();
            if let Some(suppressed) = refused_log.allow() {
                warn!(%peer, limit, refused_since_last_line = suppressed,
                    "--max-connections-per-core reached; closing new connection");
            }
            continue;
        }
        open.set(open.get() + 1);
        let (shared, open) = (shared.clone(), open.clone());
        crate::metrics::connection_opened();
        glommio::spawn_local(async move {
            connection::serve(shared, stream, write_stream, peer).await;
            open.set(open.get() - 1);
            crate::metrics::connection_closed();
        })
        .detach();
    }
    sweeper.cancel().await;
    info!("listener stopped");
}
