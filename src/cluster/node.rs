//! [`ClusterNode`]: one node's part in the control plane, on one shard (the broker's shard 0).
//!
//! - A voter drives its [`Quorum`]: ticks, steps messages from the transport, and runs the Ready
//!   protocol, then applies the committed records to its image. An observer (a broker that is not
//!   a voter) pulls committed records from the controller every tick instead.
//! - Each new image goes to the broker through the `ImageSink` (which installs it on every shard);
//!   one installer task does that, coalescing images that come faster than installs finish.
//! - Every node, voter or not, registers its broker with the controller and heartbeats.
//! - The controller (the quorum's leader) answers those calls, fences brokers whose session
//!   expired, elects unclean leaders where topics allow it, moves leaderships back to their
//!   preferred replicas when a broker's are out of balance, and runs the broker's topic
//!   administration (`Decide`) one decision at a time, each committed before the next is decided.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::oneshot;
use tracing::{error, info, warn};

use super::brokers::{self, RegisterError};
use super::image::{BrokerMeta, MetadataImage, NO_LEADER, NodeId};
use super::quorum::{Bootstrap, CommittedRead, Quorum, QuorumConfig, QuorumError, Ready};
use super::records::{self, PendingChange, decode_image, encode_image};
use super::rpc::{self, LogRead, NodeRequest, NodeResponse, QuorumStatus};
use super::transport::{Transport, TransportConfig};

/// How long a metadata change may take to commit and reach this node's image before the call
/// fails (Kafka's request timeout for admin calls is 30 s; a quorum on loopback commits in
/// milliseconds, so this only bounds a lost quorum).
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a call to the controller keeps looking for it (following leader hints, trying every
/// voter) before it gives up.
pub const CONTROLLER_SEARCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Applied entries whose terms a voter remembers, to confirm its own proposals: far more than
/// can commit while one decision waits for its own.
pub const APPLIED_TERMS_KEPT: usize = 4096;
/// How long a call other than a metadata change (a heartbeat, a registration, a log pull) waits
/// for the controller before trying another: well inside the session timeout, so a paused
/// controller does not keep a live broker from reaching the new one.
pub const QUICK_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a voter without a log waits for each other voter to say whether a quorum exists.
pub const BOOTSTRAP_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a broker shutting down waits for the controller to fence it: a commit takes
/// milliseconds with a quorum, and without one the shutdown should not hang (the session then
/// expires as after a crash).
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How much longer than [`COMMIT_TIMEOUT`] a call waits for its answer (the way there and back).
pub const CALL_MARGIN: Duration = Duration::from_secs(5);
/// How long a connect to another node may take (loopback or a LAN: a peer that does not
/// answer a SYN within this is down).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes of log entries an observer pulls per call (at least one entry): bounds the answer
/// well inside a transport frame while moving a split change's parts a few at a time.
pub const FETCH_LOG_BYTES_MAX: usize = 4 << 20;
/// The size a metadata change is split at ([`records::split`]): half an entry's bound, so a
/// part never nears it.
pub const CHANGE_PART_BYTES: usize = crate::cluster::quorum::RECORD_BYTES_MAX / 2;
/// After a voter's quorum failed to persist (a full disk, an I/O error), how long it waits
/// before reopening it from its log, doubling up to [`QUORUM_REOPEN_BACKOFF_MAX`] while the
/// reopen fails. Kafka's controller halts the process on a metadata log failure and leaves the
/// restart to a supervisor; reopening in place does what that restart would (raft recovers from
/// its log, the torn tail cut) without taking the broker's partitions down with it.
pub const QUORUM_REOPEN_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// How long a voter's connections from the quorum's leader stay closed before it takes the
/// leader for dead (see `ClusterNode::detect_leader_loss`): a live leader sends a heartbeat every
/// tick (100 ms) and reconnects to do so.
pub const LEADER_LOST_GRACE: Duration = Duration::from_millis(300);
/// See [`QUORUM_REOPEN_BACKOFF_MIN`].
pub const QUORUM_REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Installs a new image on every shard of this broker.
pub type ImageSink = Rc<dyn Fn(Arc<MetadataImage>) -> Pin<Box<dyn Future<Output = ()>>>>;
/// Decides an encoded topic administration request against the current image: the next image
/// (if the request changes anything) and the encoded answer.
pub type Decide = Rc<dyn Fn(&MetadataImage, &[u8]) -> Decided>;

/// What `Decide` returns.
pub struct Decided {
    /// The image the request makes, if it changes anything.
    pub image: Option<MetadataImage>,
    /// The encoded answer, which stands once `image` is committed.
    pub response: Vec<u8>,
}

/// How one node takes part.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node.
    pub node_id: NodeId,
    /// The voters and their transport addresses.
    pub voters: Vec<(NodeId, SocketAddr)>,
    /// Where this node's transport listens (voters: their address in `voters`; observers: port
    /// 0). `None` for a single node with no peers.
    pub listen: Option<SocketAddr>,
    /// The quorum's directory.
    pub dir: PathBuf,
    /// Raft's tick.
    pub tick: Duration,
    /// Ticks without a leader before a voter campaigns.
    pub election_ticks: usize,
    /// How often this broker heartbeats.
    pub heartbeat_interval: Duration,
    /// A broker not heard from for this long is fenced.
    pub session_timeout: Duration,
    /// Compact the log after this many entries.
    pub snapshot_after_entries: u64,
    /// `unclean.leader.election.enable`, the default of topics without an override: with no
    /// live in-sync replica, the controller elects an out-of-sync one.
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`: the controller moves leaderships back to their preferred
    /// replicas when a broker's are out of balance.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`: how often it looks.
    pub leader_imbalance_check_interval: Duration,
}

impl NodeConfig {
    /// How long a broker whose connections to the controller closed may take to heartbeat again
    /// before it is fenced as crashed: two heartbeats, so a live broker that only lost a
    /// connection reconnects in time.
    pub fn crash_grace(&self) -> Duration {
        self.heartbeat_interval.saturating_mul(2)
    }

    /// A node alone: its own one-voter quorum under `data_dir`, no transport.
    pub fn single(node_id: NodeId, data_dir: &std::path::Path) -> Self {
        NodeConfig {
            node_id,
            voters: vec![(node_id, SocketAddr::from(([127, 0, 0, 1], 0)))],
            listen: None,
            dir: quorum_dir(data_dir),
            tick: crate::limits::RAFT_TICK,
            election_ticks: crate::limits::RAFT_ELECTION_TICKS_DEFAULT,
            heartbeat_interval: crate::limits::BROKER_HEARTBEAT_INTERVAL_DEFAULT,
            session_timeout: crate::limits::BROKER_SESSION_TIMEOUT_DEFAULT,
            snapshot_after_entries: crate::limits::METADATA_SNAPSHOT_AFTER_ENTRIES,
            unclean_leader_election: false,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval: Duration::from_millis(
                crate::limits::LEADER_IMBALANCE_CHECK_INTERVAL_MS_DEFAULT,
            ),
        }
    }
}

/// Where the metadata quorum's log lives under a data dir.
pub fn quorum_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("__metadata").join("quorum")
}

/// Why a node could not start or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The quorum could not open or run.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// The transport could not start.
    #[error("node transport: {0}")]
    Transport(#[from] std::io::Error),
    /// No controller answered.
    #[error("no controller is available: {0}")]
    NoController(String),
    /// The controller refused the registration.
    #[error(transparent)]
    Refused(#[from] RegisterError),
    /// The change did not commit in time.
    #[error("{0}")]
    Failed(String),
}

/// One node's control plane.
pub struct ClusterNode {
    config: NodeConfig,
    /// The Raft node, on voters (set once the transport is up: a voter whose log is gone asks
    /// the others first whether it is rejoining).
    quorum: OnceCell<RefCell<Quorum>>,
    /// How the quorum was opened, to reopen it after a failed persist.
    quorum_config: OnceCell<QuorumConfig>,
    /// When the next reopen of a failed quorum may be tried, and the back-off after that one.
    reopen: Cell<(Instant, Duration)>,
    /// Raft messages the transport had dropped at the last tick.
    raft_dropped: Cell<u64>,
    transport: OnceCell<Rc<Transport>>,
    /// The newest image this node applied.
    image: RefCell<Arc<MetadataImage>>,
    /// The parts of a split metadata change applied so far (see `records`).
    pending: RefCell<Option<PendingChange>>,
    /// The version of the last image installed on every shard.
    installed: Cell<u64>,
    install_waiters: RefCell<Vec<(u64, oneshot::Sender<()>)>>,
    install_wake: flume::Sender<()>,
    sink: ImageSink,
    decide: OnceCell<Decide>,
    /// One controller decision at a time: each is decided on the image its predecessor made.
    decisions: glommio::sync::Semaphore,
    /// Controller only: when each broker last heartbeat, and whether this controller heard it
    /// (a new controller gives every broker a grace period, which is not proof of life).
    sessions: RefCell<BTreeMap<NodeId, (Instant, bool)>>,
    /// Controller only: the image index each broker's last heartbeat reported (its metadata
    /// log end, as DescribeQuorum shows observers).
    applied: RefCell<BTreeMap<NodeId, u64>>,
    /// The term this node last led in, so a new leadership resets the sessions.
    led_term: Cell<u64>,
    /// Controller only: when it last looked for imbalanced leaderships.
    rebalanced_at: Cell<Instant>,
    /// The controller this node last heard of.
    known_leader: Cell<Option<NodeId>>,
    /// The (leader, term) whose closed connections this voter last acted on (once each).
    leader_lost: Cell<Option<(NodeId, u64)>>,
    /// This broker's registration (its incarnation is this process's).
    me: RefCell<BrokerMeta>,
    /// The (index, term) of the entries this voter applied lately: a proposal committed only if
    /// its index came back with its term (a new leader may have put another entry there).
    applied_terms: RefCell<std::collections::VecDeque<(u64, u64)>>,
    /// Whether the controller has this incarnation registered.
    registered: Cell<bool>,
    /// Set at shutdown: no more heartbeats or registrations.
    leaving: Cell<bool>,
}

impl ClusterNode {
    /// Opens the quorum (voters) and the transport, starting from `initial` if the quorum's log
    /// is new, and spawns the node's tasks on the current executor. `decide` runs topic
    /// administration when this node is the controller.
    pub async fn start(
        config: NodeConfig,
        me: BrokerMeta,
        initial: MetadataImage,
        sink: ImageSink,
        decide: Decide,
    ) -> Result<Rc<ClusterNode>, NodeError> {
        let voter = config.voters.iter().any(|(id, _)| *id == config.node_id);
        let (install_wake, woken) = flume::bounded(1);
        let node = Rc::new(ClusterNode {
            config: config.clone(),
            quorum: OnceCell::new(),
            quorum_config: OnceCell::new(),
            reopen: Cell::new((Instant::now(), QUORUM_REOPEN_BACKOFF_MIN)),
            raft_dropped: Cell::new(0),
            transport: OnceCell::new(),
            image: RefCell::new(Arc::new(MetadataImage::default())),
            pending: RefCell::new(None),
            installed: Cell::new(0),
            install_waiters: RefCell::new(Vec::new()),
            install_wake,
            sink,
            decide: OnceCell::new(),
            decisions: glommio::sync::Semaphore::new(1),
            sessions: RefCell::new(BTreeMap::new()),
            applied: RefCell::new(BTreeMap::new()),
            led_term: Cell::new(0),
            rebalanced_at: Cell::new(Instant::now()),
            known_leader: Cell::new(None),
            leader_lost: Cell::new(None),
            me: RefCell::new(me),
            applied_terms: RefCell::new(std::collections::VecDeque::new()),
            registered: Cell::new(false),
            leaving: Cell::new(false),
        });
        let _ = node.decide.set(decide);
        if config.listen.is_some() || !config.voters.iter().all(|(id, _)| *id == config.node_id) {
            let weak = Rc::downgrade(&node);
            let on_raft = Rc::new(move |from: NodeId, bytes: Bytes| {
                if let Some(node) = weak.upgrade() {
                    node.on_raft(from, &bytes);
                }
            });
            let weak = Rc::downgrade(&node);
            let on_call = Rc::new(move |_from: NodeId, bytes: Bytes| -> Pin<Box<dyn Future<Output = Bytes>>> {
                let weak = weak.clone();
                Box::pin(async move {
                    let Some(node) = weak.upgrade() else { return Bytes::new() };
                    let response = match rpc::decode::<NodeRequest>(&bytes) {
                        Ok(request) => node.serve(request).await,
                        Err(e) => NodeResponse::Failed(format!("undecodable call: {e}")),
                    };
                    Bytes::from(rpc::encode(&response))
                })
            });
            let transport_config = TransportConfig {
                node_id: config.node_id,
                listen: config.listen,
                // A forwarded change may wait its whole commit timeout on the controller.
                call_timeout: COMMIT_TIMEOUT + CALL_MARGIN,
                connect_timeout: CONNECT_TIMEOUT,
            };
            let transport = Transport::start(transport_config, on_raft, on_call).await?;
            for (id, addr) in &config.voters {
                transport.set_peer(*id, *addr);
            }
            if let Some(addr) = transport.local_addr() {
                node.me.borrow_mut().transport = Some(addr.to_string());
            }
            let _ = node.transport.set(transport);
        }
        if voter {
            let bootstrap = node.bootstrap().await;
            let quorum_config = QuorumConfig {
                node_id: config.node_id,
                voters: config.voters.iter().map(|(id, _)| *id).collect(),
                dir: config.dir.clone(),
                election_ticks: config.election_ticks,
                heartbeat_ticks: 1,
                snapshot_after_entries: config.snapshot_after_entries,
                bootstrap,
            };
            let _ = node.quorum_config.set(quorum_config.clone());
            let mut quorum = Quorum::open(quorum_config, || encode_image(&initial, &None))?;
            quorum.campaign_if_alone()?;
            let start = quorum.image();
            let _ = node.quorum.set(RefCell::new(quorum));
            node.install_snapshot(start.index, &start.data);
        }
        // Replay what the log already holds before anything is served.
        node.drive()?;
        glommio::spawn_local(installer(Rc::downgrade(&node), woken)).detach();
        glommio::spawn_local(ticker(Rc::downgrade(&node))).detach();
        glommio::spawn_local(lifecycle(Rc::downgrade(&node))).detach();
        Ok(node)
    }

    /// What an empty quorum directory means: a new cluster, unless another voter already leads
    /// one (then this voter lost its log, and must catch up before it may vote again).
    async fn bootstrap(&self) -> Bootstrap {
        let has_log = std::fs::read_dir(&self.config.dir).is_ok_and(|mut entries| entries.next().is_some());
        if has_log {
            return Bootstrap::NewCluster;
        }
        let Some(transport) = self.transport.get() else { return Bootstrap::NewCluster };
        for (id, addr) in self.config.voters.iter().filter(|(id, _)| *id != self.config.node_id) {
            let call = transport.call(*addr, Bytes::from(rpc::encode(&NodeRequest::Status)));
            let answer = futures_lite::future::or(async { Some(call.await) }, async {
                glommio::timer::sleep(BOOTSTRAP_PROBE_TIMEOUT).await;
                None
            })
            .await;
            let leads = match answer.and_then(|r| r.ok()).map(|bytes| rpc::decode::<NodeResponse>(&bytes)) {
                Some(Ok(NodeResponse::Status(status))) => status.leader.is_some(),
                Some(Ok(NodeResponse::NotController { leader })) => leader.is_some(),
                _ => false,
            };
            if leads {
                warn!(voter = id, "this voter has no metadata log but the quorum has a leader: rejoining by snapshot");
                return Bootstrap::Rejoin;
            }
        }
        Bootstrap::NewCluster
    }

    /// The newest image this node applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// This broker's registration.
    pub fn me(&self) -> BrokerMeta {
        self.me.borrow().clone()
    }

    /// The controller this node knows of.
    pub fn controller(&self) -> Option<NodeId> {
        match self.quorum.get() {
            Some(quorum) => quorum.borrow().leader(),
            None => self.known_leader.get(),
        }
    }

    /// Waits until this broker is registered, caught up and unfenced (or `deadline` passes).
    pub async fn wait_unfenced(&self, deadline: Duration) -> Result<(), NodeError> {
        let until = Instant::now() + deadline;
        let mut last_log = Instant::now();
        loop {
            let id = self.config.node_id;
            let me = self.me.borrow().incarnation.clone();
            let installed = self.installed.get();
            let image = self.image();
            if image.brokers.get(&id).is_some_and(|b| b.incarnation == me && !b.fenced) && installed >= image.version {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(NodeError::NoController("this broker was not unfenced in time".into()));
            }
            if last_log.elapsed() >= Duration::from_secs(5) {
                info!(node = id, "waiting for the controller quorum to register this broker");
                last_log = Instant::now();
            }
            glommio::timer::sleep(self.config.tick).await;
        }
    }

    /// Runs an encoded topic administration request on the controller (this node, or the one
    /// it forwards to) and returns the encoded answer once the change reached this node's image.
    pub async fn control(&self, request: Vec<u8>) -> Result<Vec<u8>, NodeError> {
        match self.ask_controller(NodeRequest::Control(request)).await? {
            NodeResponse::Control { response, index } => {
                self.wait_installed(index).await?;
                Ok(response)
            }
            NodeResponse::Failed(why) => Err(NodeError::Failed(why)),
            other => Err(NodeError::Failed(format!("unexpected controller answer {other:?}"))),
        }
    }

    /// The quorum's state, from the controller.
    pub async fn status(&self) -> Result<QuorumStatus, NodeError> {
        match self.ask_controller(NodeRequest::Status).await? {
            NodeResponse::Status(status) => Ok(status),
            other => Err(NodeError::Failed(format!("unexpected controller answer {other:?}"))),
        }
    }

    /// Proposes the records that turn the current image into `next` (controller only, under the
    /// decision lock), and waits until they are installed here. Returns the index, or 0 if
    /// nothing changed.
    async fn commit(&self, next: &MetadataImage) -> Result<u64, NodeError> {
        self.commit_then(next, true).await
    }

    /// [`Self::commit`], waiting for the change to be installed here only if `install` (a
    /// controller that is shutting down cannot count on its own shards any more: applied is
    /// enough).
    async fn commit_then(&self, next: &MetadataImage, install: bool) -> Result<u64, NodeError> {
        let records = records::diff(&self.image(), next);
        if records.is_empty() {
            return Ok(0);
        }
        let proposal = {
            let Some(quorum) = self.quorum.get() else { return Err(NodeError::Failed("not a voter".into())) };
            let mut quorum = quorum.borrow_mut();
            let mut parts = records::split(records, CHANGE_PART_BYTES).into_iter();
            let count = parts.len();
            match (parts.next(), count) {
                (None, _) => return Ok(0),
                (Some(whole), 1) => quorum.propose(records::encode(&whole))?,
                (Some(first), _) => {
                    // Back to back, in one borrow: nothing else can come between the parts.
                    let started = quorum.propose(records::encode_part(0, false, first))?;
                    let mut last = started;
                    for (i, part) in parts.enumerate() {
                        last = quorum.propose(records::encode_part(started.index, i + 2 == count, part))?;
                    }
                    info!(parts = count, first = started.index, "a metadata change split over several entries");
                    last
                }
            }
        };
        self.drive()?;
        if install {
            self.wait_installed(proposal.index).await?;
        } else {
            let until = Instant::now() + COMMIT_TIMEOUT;
            while self.image().version < proposal.index && Instant::now() < until {
                glommio::timer::sleep(self.config.tick).await;
            }
        }
        let term = self.applied_terms.borrow().iter().find(|(index, _)| *index == proposal.index).map(|(_, t)| *t);
        if term != Some(proposal.term) {
            return Err(NodeError::Failed(
                "the controller lost its leadership before the change committed; try again".into(),
            ));
        }
        Ok(proposal.index)
    }

    /// Waits until the image at `index` is installed on every shard of this broker.
    async fn wait_installed(&self, index: u64) -> Result<(), NodeError> {
        if self.installed.get() >= index {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.install_waiters.borrow_mut().push((index, tx));
        let timeout = glommio::timer::sleep(COMMIT_TIMEOUT);
        match futures_lite::future::or(async { rx.await.is_ok() }, async {
            timeout.await;
            false
        })
        .await
        {
            true => Ok(()),
            false => Err(NodeError::Failed(format!(
                "the metadata change did not commit within {COMMIT_TIMEOUT:?} (is a majority of the controller quorum \
                 up?)"
            ))),
        }
    }

    /// A raft message from a peer.
    fn on_raft(&self, from: NodeId, bytes: &[u8]) {
        let Some(quorum) = self.quorum.get() else { return };
        if quorum.borrow().is_poisoned() {
            // Until the ticker reopens it; raft's senders retry, as after a lost message.
            return;
        }
        if let Err(e) = quorum.borrow_mut().step(from, bytes) {
            warn!(from, error = %e, "dropped a bad raft message");
            return;
        }
        if let Err(e) = self.drive() {
            self.quorum_failed(&e);
        }
    }

    /// A raft message the transport dropped may have been a snapshot: raft waits for a report
    /// before it sends another, so every peer is reported unreachable (it probes them again).
    fn report_drops(&self) {
        let (Some(quorum), Some(transport)) = (self.quorum.get(), self.transport.get()) else { return };
        let dropped = transport.stats().raft_dropped;
        if dropped != self.raft_dropped.replace(dropped) {
            let mut quorum = quorum.borrow_mut();
            for (id, _) in self.config.voters.iter().filter(|(id, _)| *id != self.config.node_id) {
                quorum.unreachable(*id);
            }
        }
    }

    /// Logs a failed drive; a poisoned quorum is reopened by the ticker after a back-off (the
    /// disk that failed may need a moment).
    fn quorum_failed(&self, e: &NodeError) {
        // A disk still full fails the reopened quorum at once: each failure doubles the wait
        // (up to the maximum), so it is retried, and logged, ever less often.
        let (_, backoff) = self.reopen.get();
        error!(error = %e, retry_in = ?backoff, "metadata quorum failed; reopening it from its log");
        self.reopen.set((Instant::now() + backoff, (backoff * 2).min(QUORUM_REOPEN_BACKOFF_MAX)));
    }

    /// Reopens a quorum whose persist failed, from its own directory, once the back-off has
    /// passed: raft reloads its hard state and log (cutting a torn tail), and the image is
    /// rebuilt from the latest snapshot and the committed entries after it, as at start. A
    /// directory found empty means rejoin by snapshot, never a new cluster.
    fn reopen_quorum(&self) {
        let (Some(quorum), Some(config)) = (self.quorum.get(), self.quorum_config.get()) else { return };
        let (at, backoff) = self.reopen.get();
        let now = Instant::now();
        if now < at {
            return;
        }
        let mut config = config.clone();
        config.bootstrap = Bootstrap::Rejoin;
        match Quorum::open(config, Vec::new) {
            Ok(reopened) => {
                let start = reopened.image();
                *quorum.borrow_mut() = reopened;
                self.applied_terms.borrow_mut().clear();
                self.install_snapshot(start.index, &start.data);
                // The back-off stays as it is until the quorum has run a while (the ticker
                // resets it): a disk still full fails the reopened quorum at once.
                self.reopen.set((now, backoff));
                info!(snapshot_index = start.index, "reopened the metadata quorum from its log");
                if let Err(e) = self.drive() {
                    error!(error = %e, "metadata quorum failed again at once after reopening");
                }
            }
            Err(e) => {
                warn!(error = %e, retry_in = ?backoff, "could not reopen the failed metadata quorum");
                self.reopen.set((now + backoff, (backoff * 2).min(QUORUM_REOPEN_BACKOFF_MAX)));
            }
        }
    }

    /// Runs the Ready protocol once: sends raft's messages, applies what committed.
    fn drive(&self) -> Result<(), NodeError> {
        let Some(quorum) = self.quorum.get() else { return Ok(()) };
        let ready: Ready = quorum.borrow_mut().ready()?;
        if let Some(transport) = self.transport.get() {
            for (to, bytes) in ready.messages {
                transport.send_raft(to, Bytes::from(bytes));
            }
        }
        if let Some(snapshot) = ready.snapshot {
            self.install_snapshot(snapshot.index, &snapshot.data);
        }
        let mut last = None;
        for entry in ready.committed {
            self.apply_entry(entry.index, &entry.data);
            let mut terms = self.applied_terms.borrow_mut();
            if terms.len() >= APPLIED_TERMS_KEPT {
                terms.pop_front();
            }
            terms.push_back((entry.index, entry.term));
            last = Some(entry.index);
        }
        if let Some(index) = last {
            let image = self.image();
            let pending = self.pending.borrow();
            quorum.borrow_mut().applied(index, || encode_image(&image, &pending))?;
        }
        let leader = quorum.borrow().leader();
        self.known_leader.set(leader);
        Ok(())
    }

    fn install_snapshot(&self, index: u64, data: &[u8]) {
        if data.is_empty() {
            // A rejoining voter's empty start: nothing until the leader's snapshot arrives.
            return;
        }
        match decode_image(data) {
            Ok((mut image, pending)) => {
                image.version = index;
                *self.image.borrow_mut() = Arc::new(image);
                *self.pending.borrow_mut() = pending;
                let _ = self.install_wake.try_send(());
            }
            Err(e) => error!(index, error = %e, "cannot decode a metadata snapshot; keeping the old image"),
        }
    }

    fn apply_entry(&self, index: u64, data: &[u8]) {
        let mut image = (*self.image()).clone();
        let mut pending = self.pending.borrow_mut();
        // Raft's own entries (a new leader's empty entry) carry no records, but still end a
        // split change that was not finished.
        let records = if data.is_empty() { Ok(Vec::new()) } else { records::decode(data) };
        let applied = records.and_then(|records| records::apply_entry(&mut image, &mut pending, index, records));
        if let Err(e) = applied {
            error!(index, error = %e, "cannot apply a committed metadata entry; skipping it");
            *pending = None;
            image.version = index;
        }
        drop(pending);
        *self.image.borrow_mut() = Arc::new(image);
        let _ = self.install_wake.try_send(());
    }

    /// Answers a call from another node.
    async fn serve(&self, request: NodeRequest) -> NodeResponse {
        if let NodeRequest::FetchLog { after } = request {
            return self.read_log(after);
        }
        let leader = self.quorum.get().map(|q| q.borrow().leader());
        if !self.quorum.get().is_some_and(|q| q.borrow().is_leader()) {
            return NodeResponse::NotController { leader: leader.flatten().or(self.known_leader.get()) };
        }
        match request {
            NodeRequest::Register(broker) => self.on_register(broker).await,
            NodeRequest::Heartbeat { id, incarnation, applied } => self.on_heartbeat(id, &incarnation, applied).await,
            NodeRequest::Control(bytes) => self.on_control(&bytes).await,
            NodeRequest::Leave { id, incarnation } => self.on_leave(id, &incarnation).await,
            NodeRequest::Status => NodeResponse::Status(self.quorum_status()),
            NodeRequest::FetchLog { .. } => NodeResponse::Failed("unreachable".into()),
        }
    }

    fn quorum_status(&self) -> QuorumStatus {
        let Some(quorum) = self.quorum.get() else { return QuorumStatus::default() };
        let quorum = quorum.borrow();
        let applied = self.applied.borrow();
        let observers = self
            .image()
            .brokers
            .keys()
            .filter(|id| !self.config.voters.iter().any(|(voter, _)| voter == *id))
            .map(|id| (*id, applied.get(id).copied()))
            .collect();
        QuorumStatus {
            leader: quorum.leader(),
            term: quorum.term(),
            commit_index: quorum.commit_index(),
            voters: quorum.progress(),
            observers,
        }
    }

    fn read_log(&self, after: u64) -> NodeResponse {
        let Some(quorum) = self.quorum.get() else {
            return NodeResponse::NotController { leader: self.known_leader.get() };
        };
        match quorum.borrow().committed_after(after, FETCH_LOG_BYTES_MAX) {
            CommittedRead::Entries { entries, last_index } => NodeResponse::Log(LogRead::Entries {
                entries: entries.into_iter().map(|e| (e.index, e.data)).collect(),
                last_index,
            }),
            CommittedRead::Snapshot(image) => NodeResponse::Log(LogRead::Snapshot(image.index, image.data)),
        }
    }

    async fn on_register(&self, broker: BrokerMeta) -> NodeResponse {
        let Ok(_permit) = self.decisions.acquire_permit(1).await else {
            return NodeResponse::Failed("closing".into());
        };
        // Only a heartbeat this controller heard proves the old incarnation alive: a quick
        // restart right after a controller change registers at once.
        let alive = self
            .sessions
            .borrow()
            .get(&broker.id)
            .is_some_and(|(at, heard)| *heard && at.elapsed() < self.config.session_timeout);
        let next = match brokers::register(&self.image(), &broker, alive) {
            Ok(next) => next,
            Err(e) => return NodeResponse::Refused(e),
        };
        match self.commit(&next).await {
            Ok(_) => {
                self.sessions.borrow_mut().insert(broker.id, (Instant::now(), true));
                let epoch = self.image().brokers.get(&broker.id).map_or(0, |b| b.epoch);
                info!(node = broker.id, epoch, "broker registered");
                NodeResponse::Registered { epoch }
            }
            Err(e) => NodeResponse::Failed(e.to_string()),
        }
    }

    async fn on_heartbeat(&self, id: NodeId, incarnation: &str, applied: u64) -> NodeResponse {
        let image = self.image();
        let Some(broker) = image.brokers.get(&id).filter(|b| b.incarnation == incarnation) else {
            return NodeResponse::Heartbeat { known: false };
        };
        self.sessions.borrow_mut().insert(id, (Instant::now(), true));
        self.applied.borrow_mut().insert(id, applied);
        if broker.fenced && applied >= broker.epoch {
            let Ok(_permit) = self.decisions.acquire_permit(1).await else {
                return NodeResponse::Failed("closing".into());
            };
            // Decided on the image under the lock: another decision may have come first.
            let current = self.image();
            if current.brokers.get(&id).is_some_and(|b| b.fenced && b.incarnation == incarnation) {
                let next = brokers::unfence(&current, id);
                if let Err(e) = self.commit(&next).await {
                    return NodeResponse::Failed(e.to_string());
                }
                info!(node = id, "broker unfenced");
            }
        }
        NodeResponse::Heartbeat { known: true }
    }

    async fn on_leave(&self, id: NodeId, incarnation: &str) -> NodeResponse {
        let Ok(_permit) = self.decisions.acquire_permit(1).await else {
            return NodeResponse::Failed("closing".into());
        };
        let current = self.image();
        if current.brokers.get(&id).is_some_and(|b| b.incarnation == incarnation && !b.fenced) {
            let (next, unclean) = self.elect_unclean(&brokers::fence(&current, id));
            if let Err(e) = self.commit_then(&next, id != self.config.node_id).await {
                return NodeResponse::Failed(e.to_string());
            }
            self.sessions.borrow_mut().remove(&id);
            info!(node = id, "broker fenced at its shutdown");
            log_unclean(&unclean);
        }
        NodeResponse::Left
    }

    async fn on_control(&self, request: &[u8]) -> NodeResponse {
        let Some(decide) = self.decide.get().cloned() else { return NodeResponse::Failed("not ready".into()) };
        let Ok(_permit) = self.decisions.acquire_permit(1).await else {
            return NodeResponse::Failed("closing".into());
        };
        let decided = decide(&self.image(), request);
        let index = match decided.image {
            Some(next) => match self.commit(&next).await {
                Ok(index) => index,
                Err(e) => return NodeResponse::Failed(e.to_string()),
            },
            None => 0,
        };
        NodeResponse::Control { response: decided.response, index }
    }

    /// Whether `node` heartbeat within the session timeout (as this controller saw it).
    fn session_alive(&self, node: NodeId) -> bool {
        self.sessions.borrow().get(&node).is_some_and(|(at, _)| at.elapsed() < self.config.session_timeout)
    }

    /// A voter whose connections from the quorum's leader closed [`LEADER_LOST_GRACE`] ago and
    /// stayed closed: the leader's process most likely died (its kernel closed its sockets; a
    /// live leader reconnects within a tick to send its next heartbeat). The survivors then
    /// elect a new leader at once instead of after the election timeout, as crash fencing does
    /// for brokers: the lowest surviving voter id campaigns, the others grant it their vote.
    /// A paused or cut-off leader closes nothing and keeps the timeout rule.
    fn detect_leader_loss(&self) {
        let (Some(quorum), Some(transport)) = (self.quorum.get(), self.transport.get()) else { return };
        let (leader, term) = {
            let quorum = quorum.borrow();
            (quorum.leader(), quorum.term())
        };
        let me = self.me.borrow().id;
        let Some(leader) = leader.filter(|l| *l != me) else { return };
        if self.leader_lost.get() == Some((leader, term)) {
            return;
        }
        if transport.inbound_lost_since(leader).is_none_or(|lost| lost.elapsed() < LEADER_LOST_GRACE) {
            return;
        }
        self.leader_lost.set(Some((leader, term)));
        let first = self.config.voters.iter().map(|(id, _)| *id).filter(|id| *id != leader).min();
        let campaign = first == Some(me);
        info!(leader, term, campaign, "the metadata quorum's leader closed its connections: electing another now");
        if let Err(e) = quorum.borrow_mut().leader_lost(campaign) {
            warn!(error = %e, "could not start an election after the leader left");
        }
    }

    /// Whether broker `node`'s connections to this controller closed more than
    /// [`crash_grace`](NodeConfig::crash_grace) ago and it has not heartbeat since: its process
    /// most likely died (its kernel closed its sockets), so it is fenced without waiting out its
    /// session, which stays the rule for a broker that is paused or cut off (no close is seen).
    fn connection_lost(&self, node: NodeId) -> bool {
        let Some(lost) = self.transport.get().and_then(|t| t.inbound_lost_since(node)) else { return false };
        // Heard from since (a fresh session granted by a new controller does not count).
        let heartbeat_since = self.sessions.borrow().get(&node).is_some_and(|(at, heard)| *heard && *at > lost);
        // A close older than a session timeout says nothing the session rule does not.
        let recent = lost.elapsed() < self.config.session_timeout;
        !heartbeat_since && recent && lost.elapsed() > self.config.crash_grace()
    }

    /// Controller duties each tick: a new leadership starts every session afresh (a broker
    /// is not fenced for the time no controller listened), and expired sessions are fenced.
    async fn control_tick(&self) {
        let Some(quorum) = self.quorum.get() else { return };
        let (leader, term) = {
            let quorum = quorum.borrow();
            (quorum.is_leader(), quorum.term())
        };
        if !leader {
            return;
        }
        if self.led_term.get() != term {
            self.led_term.set(term);
            // As in Kafka, the first imbalance check comes an interval after taking over.
            self.rebalanced_at.set(Instant::now());
            let now = Instant::now();
            let ids: Vec<NodeId> = self.image().brokers.keys().copied().collect();
            *self.sessions.borrow_mut() = ids.into_iter().map(|id| (id, (now, false))).collect();
            if self.image().cluster_id.is_empty() {
                self.set_cluster_id().await;
            }
            return;
        }
        let rebalance = self.config.auto_leader_rebalance
            && self.rebalanced_at.get().elapsed() >= self.config.leader_imbalance_check_interval;
        // Never this node's own broker: it runs on this very thread, so it is alive however late
        // its heartbeats are (a shard busy with 100,000 first writes delayed them past the
        // session, and a single node fenced itself out of every leadership).
        let me = self.me.borrow().id;
        let expired: Vec<NodeId> = self
            .image()
            .live_brokers()
            .map(|b| b.id)
            .filter(|id| *id != me && (!self.session_alive(*id) || self.connection_lost(*id)))
            .collect();
        if expired.is_empty() && !rebalance && !self.unclean_election_due(&self.image()) {
            return;
        }
        let Ok(_permit) = self.decisions.acquire_permit(1).await else { return };
        // Decided on the image under the lock: another decision may have come first.
        let mut next = (*self.image()).clone();
        for id in &expired {
            next = brokers::fence(&next, *id);
        }
        let (mut next, unclean) = self.elect_unclean(&next);
        let mut moved = Vec::new();
        if rebalance {
            self.rebalanced_at.set(Instant::now());
            (next, moved) = brokers::rebalance_leaders(&next);
        }
        match self.commit(&next).await {
            Ok(_) => {
                if !expired.is_empty() {
                    let timeout = self.config.session_timeout;
                    warn!(brokers = ?expired, ?timeout,
                    "fenced brokers whose session expired or whose connections closed");
                }
                log_unclean(&unclean);
                if !moved.is_empty() {
                    info!(partitions = ?moved, "leaderships moved back to their preferred replicas (leader imbalance)");
                }
            }
            Err(e) => warn!(error = %e, "cannot fence brokers or move leaderships"),
        }
    }

    /// Whether a partition of `image` has no leader, a live replica, and a topic allowing
    /// unclean election (checked every tick, so it reads and clones nothing else).
    fn unclean_election_due(&self, image: &MetadataImage) -> bool {
        let default = image.unclean_leader_election_default(self.config.unclean_leader_election);
        // The config first: most topics forbid it, and their partitions are then not walked.
        image.topics.values().any(|t| {
            brokers::unclean_allowed(t, default)
                && t.partitions.iter().any(|p| p.leader == NO_LEADER && p.replicas.iter().any(|r| image.is_live(*r)))
        })
    }

    /// `image` with the unclean elections its topics allow (see [`brokers::elect_unclean`]).
    fn elect_unclean(&self, image: &MetadataImage) -> (MetadataImage, Vec<brokers::Moved>) {
        let default = image.unclean_leader_election_default(self.config.unclean_leader_election);
        brokers::elect_unclean(image, |topic, _| brokers::unclean_allowed(topic, default))
    }

    async fn set_cluster_id(&self) {
        let Ok(_permit) = self.decisions.acquire_permit(1).await else { return };
        let Ok(id) = crate::model::TopicId::random() else { return };
        let next = MetadataImage { cluster_id: id.hex(), ..(*self.image()).clone() };
        if let Err(e) = self.commit(&next).await {
            warn!(error = %e, "cannot set the cluster id");
        }
    }

    /// Calls the controller: itself when this node leads, else the leader it knows of, following
    /// hints and trying every voter until [`CONTROLLER_SEARCH_TIMEOUT`].
    async fn ask_controller(&self, request: NodeRequest) -> Result<NodeResponse, NodeError> {
        let until = Instant::now() + CONTROLLER_SEARCH_TIMEOUT;
        let mut next_voter = 0usize;
        let mut last_error = String::from("no voter answered");
        loop {
            if self.quorum.get().is_some_and(|q| q.borrow().is_leader()) {
                let response = Box::pin(self.serve(request.clone())).await;
                if !matches!(response, NodeResponse::NotController { .. }) {
                    return Ok(response);
                }
            } else if let Some(transport) = self.transport.get() {
                let target = match self.controller().filter(|l| *l != self.config.node_id) {
                    Some(leader) => self.config.voters.iter().find(|(id, _)| *id == leader).map(|(_, a)| *a),
                    None => {
                        next_voter = next_voter.wrapping_add(1);
                        let others: Vec<SocketAddr> = self
                            .config
                            .voters
                            .iter()
                            .filter(|(id, _)| *id != self.config.node_id)
                            .map(|(_, a)| *a)
                            .collect();
                        others.get(next_voter % others.len().max(1)).copied()
                    }
                };
                if let Some(addr) = target {
                    // A change may wait out its commit timeout; anything else gives up sooner.
                    let limit = match request {
                        NodeRequest::Control(_) => COMMIT_TIMEOUT + CALL_MARGIN,
                        _ => QUICK_CALL_TIMEOUT,
                    };
                    let call = transport.call(addr, Bytes::from(rpc::encode(&request)));
                    let answer = futures_lite::future::or(call, async {
                        glommio::timer::sleep(limit).await;
                        Err(super::transport::TransportError::Timeout)
                    })
                    .await;
                    match answer {
                        Ok(bytes) => match rpc::decode::<NodeResponse>(&bytes) {
                            Ok(NodeResponse::NotController { leader }) => {
                                self.known_leader.set(leader.filter(|l| Some(*l) != self.controller()));
                                if leader.is_none() {
                                    last_error = "the controller quorum has no leader".into();
                                }
                            }
                            Ok(response) => return Ok(response),
                            Err(e) => last_error = format!("undecodable answer from {addr}: {e}"),
                        },
                        Err(e) => {
                            last_error = format!("{addr}: {e}");
                            self.known_leader.set(None);
                        }
                    }
                }
            } else {
                last_error = "the controller quorum has no leader".into();
            }
            if Instant::now() >= until {
                return Err(NodeError::NoController(last_error));
            }
            glommio::timer::sleep(self.config.tick).await;
        }
    }

    /// Registers this broker (again if the controller forgot it), then heartbeats.
    async fn heartbeat_once(&self) -> Result<(), NodeError> {
        if !self.registered.get() {
            let me = self.me();
            match self.ask_controller(NodeRequest::Register(me)).await? {
                NodeResponse::Registered { .. } => self.registered.set(true),
                NodeResponse::Refused(e) => return Err(NodeError::Refused(e)),
                other => return Err(NodeError::Failed(format!("registration: {other:?}"))),
            }
        }
        let me = self.me();
        let request = NodeRequest::Heartbeat { id: me.id, incarnation: me.incarnation, applied: self.image().version };
        match self.ask_controller(request).await? {
            NodeResponse::Heartbeat { known: false } => self.registered.set(false),
            NodeResponse::Heartbeat { known: true } => {}
            other => return Err(NodeError::Failed(format!("heartbeat: {other:?}"))),
        }
        Ok(())
    }

    /// An observer's pull of the committed log.
    async fn pull_log(&self) {
        let after = self.image().version;
        let Ok(response) = self.ask_controller(NodeRequest::FetchLog { after }).await else { return };
        match response {
            NodeResponse::Log(LogRead::Entries { entries, last_index }) => {
                for (index, data) in entries {
                    if index > self.image().version {
                        self.apply_entry(index, &data);
                    }
                }
                if last_index > self.image().version {
                    // Raft's own entries carry no records but still count.
                    self.apply_entry(last_index, &[]);
                }
            }
            NodeResponse::Log(LogRead::Snapshot(index, data)) => self.install_snapshot(index, &data),
            _ => {}
        }
    }

    /// Tells the controller this broker is shutting down (it is fenced at once and its partitions
    /// move) and waits until the image fencing it is installed on this broker's shards, at most
    /// [`LEAVE_TIMEOUT`] in all; then stops the transport.
    pub async fn leave(&self) {
        self.leaving.set(true);
        // Alone, there is nobody to hand leadership to: the next start registers again anyway.
        if self.config.voters.iter().all(|(id, _)| *id == self.config.node_id) && self.image().brokers.len() <= 1 {
            self.close().await;
            return;
        }
        let me = self.me();
        let request = NodeRequest::Leave { id: me.id, incarnation: me.incarnation.clone() };
        let left = async {
            if !matches!(self.ask_controller(request).await, Ok(NodeResponse::Left)) {
                return false;
            }
            // The shards must know they lead nothing before their logs close (a leader closing
            // would otherwise still take writes the new leader never sees): wait until the image
            // that fenced this incarnation is installed here.
            loop {
                let image = self.image();
                let fenced = image.brokers.get(&me.id).is_none_or(|b| b.incarnation != me.incarnation || b.fenced);
                if fenced && self.installed.get() >= image.version {
                    return true;
                }
                glommio::timer::sleep(self.config.tick).await;
            }
        };
        let left = futures_lite::future::or(left, async {
            glommio::timer::sleep(LEAVE_TIMEOUT).await;
            false
        })
        .await;
        if !left {
            warn!("the controller did not confirm this broker's shutdown; it is fenced when its session expires");
        }
        self.close().await;
    }

    /// Stops the transport (shutdown).
    pub async fn close(&self) {
        if let Some(transport) = self.transport.get() {
            transport.close().await;
        }
    }
}

/// One WARN line per unclean election: records only the other replicas had are lost.
fn log_unclean(elected: &[brokers::Moved]) {
    for (topic, partition, leader) in elected {
        warn!(%topic, partition, leader, "unclean leader election (no in-sync replica is live): records may be lost");
    }
}

/// Installs each new image on every shard, the newest first when several are waiting, then
/// releases the calls waiting for it.
async fn installer(node: std::rc::Weak<ClusterNode>, woken: flume::Receiver<()>) {
    while woken.recv_async().await.is_ok() {
        let Some(node) = node.upgrade() else { return };
        let image = node.image();
        if image.version <= node.installed.get() && node.installed.get() != 0 {
            continue;
        }
        (node.sink)(image.clone()).await;
        node.installed.set(image.version);
        let mut waiters = node.install_waiters.borrow_mut();
        let (done, waiting): (Vec<_>, Vec<_>) = waiters.drain(..).partition(|(index, _)| *index <= image.version);
        *waiters = waiting;
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }
}

/// Raft's clock, and the controller's duties and the observer's pulls on it.
async fn ticker(node: std::rc::Weak<ClusterNode>) {
    loop {
        let Some(tick) = node.upgrade().map(|n| n.config.tick) else { return };
        glommio::timer::sleep(tick).await;
        let Some(node) = node.upgrade() else { return };
        if let Some(quorum) = node.quorum.get() {
            if quorum.borrow().is_poisoned() {
                node.reopen_quorum();
                continue;
            }
            let (since, backoff) = node.reopen.get();
            if backoff > QUORUM_REOPEN_BACKOFF_MIN && since.elapsed() > QUORUM_REOPEN_BACKOFF_MAX {
                node.reopen.set((since, QUORUM_REOPEN_BACKOFF_MIN)); // healthy a while: forgiven
            }
            quorum.borrow_mut().tick();
            node.detect_leader_loss();
            node.report_drops();
            if let Err(e) = node.drive() {
                node.quorum_failed(&e);
            }
            node.control_tick().await;
        } else {
            node.pull_log().await;
        }
    }
}

/// Registration and heartbeats, for as long as the node runs.
async fn lifecycle(node: std::rc::Weak<ClusterNode>) {
    let mut refused_since: Option<Instant> = None;
    loop {
        let Some(this) = node.upgrade() else { return };
        let interval = this.config.heartbeat_interval;
        if this.leaving.get() {
            return;
        }
        match this.heartbeat_once().await {
            Ok(()) => refused_since = None,
            Err(NodeError::Refused(e)) => {
                // The old process's session may simply not have expired yet (a quick restart):
                // Kafka's broker retries too. Past the session timeout it is a live duplicate.
                let since = *refused_since.get_or_insert_with(Instant::now);
                if since.elapsed() > this.config.session_timeout + interval * 2 {
                    error!("{e}");
                    eprintln!("sluice broker: {e}");
                    std::process::exit(2);
                }
            }
            Err(e) => warn!(error = %e, "broker heartbeat failed"),
        }
        drop(this);
        glommio::timer::sleep(interval).await;
    }
}
