//! Calls from one shard to another over glommio's full channel mesh: [`ShardMesh`] joins the
//! mesh on a shard and serves the requests that reach it with a [`Handler`].
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures_channel::oneshot;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};

/// Index of a shard: `0..shard_count`. Shard `i` runs on the `i`-th core the broker was given.
pub type ShardId = usize;

/// Messages in flight per pair of shards before a sender waits.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

/// A request travelling to another shard, with where to send its answer.
pub struct Envelope<Req, Resp> {
    request: Req,
    reply: oneshot::Sender<Resp>,
}

/// The mesh all shards of one broker join: build it once, clone it into every shard (on one
/// thread: see [`mesh_handles`]).
pub type Mesh<Req, Resp> = MeshBuilder<Envelope<Req, Resp>, Full>;

/// A new mesh for `shards` shards. Private: handles to it are made only by [`mesh_handles`].
pub(super) fn mesh<Req: Send + 'static, Resp: Send + 'static>(shards: usize) -> Mesh<Req, Resp> {
    MeshBuilder::full(shards, MESH_CHANNEL_CAPACITY)
}

/// Why a call to another shard did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// The target shard is shutting down or gone.
    #[error("shard {0} is not reachable")]
    Unreachable(ShardId),
    /// No such shard.
    #[error("no shard {0}")]
    NoSuchShard(ShardId),
    /// The shard answered with a message of another subsystem (a bug in the routing).
    #[error("shard {0} answered with the wrong kind of message")]
    WrongReply(ShardId),
}

/// Serves the requests that reach a shard: given a request, the future of its response.
pub type Handler<Req, Resp> = Rc<dyn Fn(Req) -> Pin<Box<dyn Future<Output = Resp>>>>;

/// One shard's end of the mesh.
pub struct ShardMesh<Req: Send + 'static, Resp: Send + 'static> {
    id: ShardId,
    count: usize,
    senders: Senders<Envelope<Req, Resp>>,
    handler: Handler<Req, Resp>,
}

impl<Req: Send + 'static, Resp: Send + 'static> ShardMesh<Req, Resp> {
    /// Joins the mesh from the current shard (every shard must join before any call can go
    /// through) and starts serving requests from the others with `handler`.
    pub async fn join(mesh: Mesh<Req, Resp>, handler: Handler<Req, Resp>) -> Result<Rc<Self>, ShardError> {
        let (senders, mut receivers): (_, Receivers<Envelope<Req, Resp>>) =
            mesh.join().await.map_err(|_| ShardError::Unreachable(0))?;
        let id = senders.peer_id();
        let count = senders.nr_consumers();
        for (_, stream) in receivers.streams() {
            let handler = handler.clone();
            glommio::spawn_local(async move {
                while let Some(Envelope { request, reply }) = stream.recv().await {
                    let handler = handler.clone();
                    glommio::spawn_local(async move {
                        let response = handler(request).await;
                        // The caller may have gone (its connection closed): nothing to do then.
                        let _ = reply.send(response);
                    })
                    .detach();
                }
            })
            .detach();
        }
        Ok(Rc::new(Self { id, count, senders, handler }))
    }

    /// This shard's id.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// How many shards there are.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Runs `request` on shard `to` (directly, if that is this shard) and returns its answer.
    pub async fn call(&self, to: ShardId, request: Req) -> Result<Resp, ShardError> {
        if to == self.id {
            return Ok((self.handler)(request).await);
        }
        if to >= self.count {
            return Err(ShardError::NoSuchShard(to));
        }
        let (reply, answer) = oneshot::channel();
        self.senders.send_to(to, Envelope { request, reply }).await.map_err(|_| ShardError::Unreachable(to))?;
        answer.await.map_err(|_| ShardError::Unreachable(to))
    }
}
