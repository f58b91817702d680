//! [`ShardBroker`]: the broker on one shard, composed of its layers — the metadata image and
//! topic administration, the partitions this shard owns, the group coordinator, the fetch
//! sessions of its connections — and the one mesh they share.
//!
//! Each layer has its own request and response types and serves them in its own folder;
//! [`ShardMessage`] only wraps them for the mesh, and each layer reaches the other shards through
//! a typed [`Peers`] made here. Adding a layer (the transaction coordinator, replication) adds
//! a variant here and a folder beside the others; no layer edits another's messages.
//!
//! Lifecycle: one per shard, made at startup and kept until shutdown, when it closes its logs
//! (flush, seal, clean-shutdown marker). Cores: not `Send`; other shards reach it only through
//! the mesh.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::config::BrokerConfig;
use super::fetch_session::FetchSessions;
use super::groups::{Coordinator, GroupRequest, GroupResponse};
use super::inter_broker::InterBroker;
use super::metadata::image::MetadataImage;
use super::metadata::{Metadata, MetadataRequest, MetadataResponse};
use super::partition::{Partition, PartitionRequest, PartitionResponse, ShardPartitions};
use super::replication::Replication;
use super::stats::{Stats, StatsRequest, StatsResponse};
use super::transactions::{TxnCoordinator, TxnRequest, TxnResponse};
use crate::shard::{CallFuture, Mesh, Peers, ShardError, ShardMesh};

/// How often a message that arrived while this shard was still starting looks again.
const STARTING_POLL: Duration = Duration::from_millis(1);

/// A message between shards: one variant per layer.
#[derive(Debug)]
pub enum ShardMessage {
    /// For the partition layer.
    Partitions(PartitionRequest),
    /// For the metadata layer.
    Metadata(MetadataRequest),
    /// For the group coordinator.
    Groups(GroupRequest),
    /// For the transaction coordinator.
    Transactions(TxnRequest),
    /// For a metrics scrape.
    Stats(StatsRequest),
}

/// The answer to a [`ShardMessage`], from the same layer.
#[derive(Debug)]
pub enum ShardReply {
    /// From the partition layer.
    Partitions(PartitionResponse),
    /// From the metadata layer.
    Metadata(MetadataResponse),
    /// From the group coordinator.
    Groups(GroupResponse),
    /// From the transaction coordinator.
    Transactions(TxnResponse),
    /// For a metrics scrape.
    Stats(StatsResponse),
}

/// The broker's mesh.
pub type BrokerMesh = Mesh<ShardMessage, ShardReply>;

/// One handle per shard on a new broker mesh (call it on the main thread; see
/// `crate::shard::mesh_handles`).
pub fn broker_meshes(shards: usize) -> Vec<BrokerMesh> {
    crate::shard::mesh_handles(shards)
}

/// The broker on one shard.
pub struct ShardBroker {
    /// The broker's configuration.
    pub config: Arc<BrokerConfig>,
    /// The metadata image and topic administration.
    pub metadata: Rc<Metadata>,
    /// The partitions this shard owns.
    pub partitions: Rc<ShardPartitions>,
    /// The consumer groups this shard coordinates.
    pub groups: Rc<Coordinator>,
    /// The transactional ids this shard coordinates.
    pub transactions: Rc<TxnCoordinator>,
    /// Followers fetching from leaders; leaders' ISR changes.
    pub replication: Rc<Replication>,
    /// The fetch sessions of this shard's connections.
    pub fetch_sessions: RefCell<FetchSessions>,
    /// What a metrics scrape asks of this shard.
    pub stats: Rc<Stats>,
    /// Set once `start` has given every layer its peers: a message from a shard that started
    /// first (shard 0 installing the first image) waits for it.
    started: std::cell::Cell<bool>,
}

impl ShardBroker {
    /// The broker state for one shard, before it joins the mesh.
    pub fn new(config: Arc<BrokerConfig>, image: Arc<MetadataImage>) -> Rc<Self> {
        let partitions = Rc::new(ShardPartitions::new(config.clone()));
        let metadata = Rc::new(Metadata::new(config.clone(), image, partitions.clone()));
        let groups = Rc::new(Coordinator::new(config.clone(), metadata.clone(), partitions.clone()));
        let inter_broker = Rc::new(InterBroker::new(config.node_id));
        let transactions =
            TxnCoordinator::new(config.clone(), metadata.clone(), partitions.clone(), groups.clone(), inter_broker);
        let replication = Replication::new(config.clone(), metadata.clone(), partitions.clone());
        let stats = Rc::new(Stats::new(config.clone(), metadata.clone(), partitions.clone(), groups.clone()));
        Rc::new(ShardBroker {
            config,
            metadata,
            partitions,
            groups,
            transactions,
            replication,
            fetch_sessions: RefCell::new(FetchSessions::new(0, 1, 0, Duration::ZERO)),
            stats,
            started: std::cell::Cell::new(false),
        })
    }

    /// Connects this shard to the others (every shard must call it), opens its partitions and
    /// loads its groups.
    pub async fn start(self: &Rc<Self>, mesh: BrokerMesh) -> Result<(), ShardError> {
        let me = self.clone();
        let handler: crate::shard::Handler<ShardMessage, ShardReply> = Rc::new(move |message| {
            let me = me.clone();
            Box::pin(async move { me.serve(message).await })
        });
        let joined = ShardMesh::join(mesh, handler).await?;
        *self.fetch_sessions.borrow_mut() = FetchSessions::new(
            joined.id(),
            joined.count(),
            self.config.fetch_sessions_max,
            Duration::from_millis(self.config.fetch_session_idle_ms),
        );
        self.partitions.set_peers(peers(&joined, ShardMessage::Partitions, |reply| match reply {
            ShardReply::Partitions(response) => Some(response),
            _ => None,
        }));
        self.metadata.set_peers(peers(&joined, ShardMessage::Metadata, |reply| match reply {
            ShardReply::Metadata(response) => Some(response),
            _ => None,
        }));
        self.groups.set_peers(peers(&joined, ShardMessage::Groups, |reply| match reply {
            ShardReply::Groups(response) => Some(response),
            _ => None,
        }));
        self.transactions.set_peers(peers(&joined, ShardMessage::Transactions, |reply| match reply {
            ShardReply::Transactions(response) => Some(response),
            _ => None,
        }));
        self.stats.set_peers(peers(&joined, ShardMessage::Stats, |reply| match reply {
            ShardReply::Stats(response) => Some(response),
            _ => None,
        }));
        // Roles first: the coordinators load only the partitions this broker leads. A new
        // __consumer_offsets or __transaction_state partition is empty: loading it is immediate.
        let (groups, transactions) = (Rc::downgrade(&self.groups), Rc::downgrade(&self.transactions));
        let replication = Rc::downgrade(&self.replication);
        self.metadata.on_installed(Rc::new(move || {
            let (groups, transactions) = (groups.clone(), transactions.clone());
            if let Some(replication) = replication.upgrade() {
                replication.on_installed();
            }
            Box::pin(async move {
                if let Some(groups) = groups.upgrade() {
                    let deferred = groups.load().await;
                    load_when_committed(deferred, move || {
                        let groups = groups.clone();
                        Box::pin(async move { groups.load().await })
                    });
                }
                if let Some(transactions) = transactions.upgrade() {
                    let deferred = transactions.load().await;
                    load_when_committed(deferred, move || {
                        let transactions = transactions.clone();
                        Box::pin(async move { transactions.load().await })
                    });
                }
            })
        }));
        self.started.set(true);
        self.replication.spawn_isr_checks();
        self.partitions.spawn_retention();
        let metadata = self.metadata.clone();
        self.partitions.spawn_cleaner(move || metadata.cleaner_config());
        self.groups.spawn_timers();
        self.transactions.spawn_timers();
        Ok(())
    }

    async fn serve(&self, message: ShardMessage) -> ShardReply {
        while !self.started.get() {
            glommio::timer::sleep(STARTING_POLL).await;
        }
        match message {
            ShardMessage::Partitions(request) => ShardReply::Partitions(self.partitions.serve(request).await),
            ShardMessage::Metadata(request) => ShardReply::Metadata(self.metadata.serve(request).await),
            ShardMessage::Groups(request) => ShardReply::Groups(self.groups.serve(request).await),
            ShardMessage::Transactions(request) => ShardReply::Transactions(self.transactions.serve(request).await),
            ShardMessage::Stats(request) => ShardReply::Stats(self.stats.serve(request).await),
        }
    }

    /// Notes a follower fetch that reached a partition through another shard.
    pub fn count_replication_hop(&self) {
        self.replication.count_hop();
    }

    /// Closes every log on this shard (flush, seal, clean-shutdown marker).
    pub async fn close_all(&self) {
        let hops = self.replication.hops();
        tracing::info!(
            shard = self.metadata.shard_id(),
            replication_hops = hops,
            "follower fetches served through another shard"
        );
        self.partitions.close_all().await;
    }
}

/// A coordinator's load, returning the partitions it deferred.
type Loading = std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Rc<Partition>>>>>;

/// Loads a coordinator's `deferred` partitions once their leadership has committed its
/// predecessors' records, in the background (the image install that asked must not wait: the
/// high watermark may need another install, an ISR change, to move).
fn load_when_committed(deferred: Vec<Rc<Partition>>, load: impl Fn() -> Loading + 'static) {
    if deferred.is_empty() {
        return;
    }
    glommio::spawn_local(async move {
        let mut waiting = deferred;
        while !waiting.is_empty() {
            for partition in &waiting {
                partition.wait_leadership_committed().await;
            }
            waiting = load().await;
            // A partition whose leadership ended meanwhile is not led any more, so it is not
            // deferred again; one still short of its start waits once more.
            waiting.retain(|p| !p.is_stopped());
        }
    })
    .detach();
}

/// One layer's typed view of the mesh: `wrap` makes its requests messages, `unwrap` takes its
/// answers back out of replies.
fn peers<Req: 'static, Resp: 'static>(
    mesh: &Rc<ShardMesh<ShardMessage, ShardReply>>,
    wrap: fn(Req) -> ShardMessage,
    unwrap: fn(ShardReply) -> Option<Resp>,
) -> Peers<Req, Resp> {
    let caller = mesh.clone();
    let call = Rc::new(move |to, request: Req| -> CallFuture<Resp> {
        let mesh = caller.clone();
        Box::pin(async move { unwrap(mesh.call(to, wrap(request)).await?).ok_or(ShardError::WrongReply(to)) })
    });
    Peers::new(mesh.id(), mesh.count(), call)
}
