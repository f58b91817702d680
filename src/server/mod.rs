//! The network side of the broker: a listener on every shard (SO_REUSEPORT spreads connections
//! across them), one task pair per connection, framing, in-order responses, and the writer that
//! sends record bytes without copying them.

pub mod connection;
pub mod dispatch;
pub mod writer;

use std::cell::Cell;
use std::rc::Rc;

use glommio::net::TcpListener;
use tracing::{info, warn};

use crate::broker::ShardBroker;

/// Accepts connections on this shard until `shutdown` fires.
pub async fn serve(broker: Rc<ShardBroker>, listener: TcpListener, shutdown: flume::Receiver<()>) {
    let open = Rc::new(Cell::new(0u32));
    let limit = broker.config.max_connections_per_shard;
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
        let (broker, open) = (broker.clone(), open.clone());
        glommio::spawn_local(async move {
            connection::serve(broker, stream, peer).await;
            open.set(open.get() - 1);
        })
        .detach();
    }
    info!(shard = broker.shard_id(), "listener stopped");
}
