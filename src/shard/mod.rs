//! The thread-per-core runtime: starting one executor per core and stopping them ([`ShardPool`],
//! in `runtime.rs`), shard ids, and calls from one shard to another over glommio's full channel
//! mesh. Nothing here knows what the shards run or what the messages mean; the broker defines
//! them and serves them.
//!
//! Cores: every shard holds its own [`ShardMesh`] handle (not `Send`); a call to another shard
//! moves the request over the mesh and the reply comes back on a oneshot channel, whose waker
//! glommio delivers across threads.

mod mesh;
mod nudge;
mod peers;
mod runtime;

pub use mesh::{Envelope, Handler, MESH_CHANNEL_CAPACITY, Mesh, ShardError, ShardId, ShardMesh};
pub use nudge::{NUDGE_INTERVAL, Nudged, Nudger};
pub use peers::{CallFn, CallFuture, Peers, PeersSlot};
pub use runtime::{Ready, RunningShards, ShardContext, ShardPool, ShardsConfig, Shutdown, StartError, mesh_handles};
