//! The network side of the broker: a listener on every shard (SO_REUSEPORT spreads connections
//! across them), one task pair per connection, framing, in-order responses, and the writer that
//! sends record bytes without copying them.
//!
//! The server knows nothing of Kafka's APIs: each request frame goes to a [`Dispatch`], which
//! the broker implements, and comes back as a [`Reply`].

pub mod connection;
pub mod writer;

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;

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

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections open at once on one shard; more are closed as they arrive.
    pub connections_per_shard: u32,
    /// Requests of one connection in flight before reading pauses.
    pub in_flight_per_connection: usize,
    /// The largest request frame accepted.
    pub request_bytes_max: u32,
}

/// Accepts connections on this shard until `shutdown` fires, handing their requests to
/// `dispatch`.
pub async fn serve<D: Dispatch>(
    dispatch: Rc<D>,
    limits: ServerLimits,
    listener: TcpListener,
    shutdown: flume::Receiver<()>,
) {
    let open = Rc::new(Cell::new(0u32));
    let limit = limits.connections_per_shard;
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            let _ = shutdown.recv_async().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(_) => continue,
        };
        if open.get() >= limit {
            warn!(%peer, limit, "connection limit reached; closing new connection");
            continue;
        }
        open.set(open.get() + 1);
        let (dispatch, open) = (dispatch.clone(), open.clone());
        glommio::spawn_local(async move {
            connection::serve(dispatch, limits, stream, peer).await;
            open.set(open.get() - 1);
        })
        .detach();
    }
    info!("listener stopped");
}
