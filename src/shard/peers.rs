//! [`Peers`]: one subsystem's typed view of the mesh. The broker runs one mesh whose messages
//! are an enum with a variant per subsystem; each subsystem holds a `Peers` for its own request
//! and response types, so it can call its counterparts on other shards without naming the
//! others' messages (and without importing the broker that composes them).

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use super::mesh::{ShardError, ShardId};

/// The future of one call.
pub type CallFuture<Resp> = Pin<Box<dyn Future<Output = Result<Resp, ShardError>>>>;

/// Calls shard `to` with a request of one subsystem.
pub type CallFn<Req, Resp> = Rc<dyn Fn(ShardId, Req) -> CallFuture<Resp>>;

/// A subsystem's handle on the other shards.
pub struct Peers<Req, Resp> {
    id: ShardId,
    count: usize,
    call: CallFn<Req, Resp>,
}

impl<Req, Resp> Clone for Peers<Req, Resp> {
    fn clone(&self) -> Self {
        Peers { id: self.id, count: self.count, call: self.call.clone() }
    }
}

impl<Req, Resp> Peers<Req, Resp> {
    /// Peers of shard `id` among `count`, reached through `call`.
    pub fn new(id: ShardId, count: usize, call: CallFn<Req, Resp>) -> Self {
        Peers { id, count, call }
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
        (self.call)(to, request).await
    }
}

/// A layer's [`Peers`], set once when its shard joins the mesh (the layer exists before the
/// mesh does) and read on every cross-shard call after that.
pub struct PeersSlot<Req, Resp>(OnceCell<Peers<Req, Resp>>);

impl<Req, Resp> Default for PeersSlot<Req, Resp> {
    fn default() -> Self {
        PeersSlot(OnceCell::new())
    }
}

impl<Req, Resp> PeersSlot<Req, Resp> {
    /// Fills the slot; a second call changes nothing.
    pub fn set(&self, peers: Peers<Req, Resp>) {
        let _ = self.0.set(peers);
    }

    /// The peers. The broker joins the mesh before it serves anything, so every caller finds
    /// the slot filled.
    pub fn get(&self) -> &Peers<Req, Resp> {
        match self.0.get() {
            Some(peers) => peers,
            None => unreachable!("peers are set when the shard joins the mesh, before any request is served"),
        }
    }
}
