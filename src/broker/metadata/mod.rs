//! The metadata layer: the image of topics and partitions every shard holds ([`image`]), topic
//! administration decided on the metadata quorum's leader ([`controller`]), and [`Metadata`],
//! one shard's view of both with the [`MetadataRequest`]s shards send each other.
//!
//! Lifecycle: shard 0 runs the cluster node (`crate::cluster::node::ClusterNode`), which applies
//! the committed metadata log and hands each new image to [`Metadata::image_sink`]; the image is
//! installed on every shard in two phases (open the new partitions, then swap the image and close
//! what was removed), so no shard advertises a partition whose log is not open. After an install,
//! the listeners registered with [`Metadata::on_installed`] run (the coordinators load the
//! internal partitions they now lead and unload those they lost).

pub mod controller;
pub mod image;

use std::cell::{Cell, OnceCell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use tracing::{error, info, warn};

use self::controller::{ControllerRequest, ControllerResponse, NewTopic, TopicError, decide};
use self::image::{BrokerMeta, MetadataImage, NO_LEADER, NodeId, PartitionMeta};
use super::config::{BrokerConfig, CleanerConfig};
use super::partition::{PartitionError, ShardPartitions};
use super::topic_config::TopicConfig;
use crate::cluster::node::{ClusterNode, Decide, Decided, ImageSink, NodeError};
use crate::cluster::rpc::QuorumStatus;
use crate::model::{LeaderEpoch, ProducerId, TopicPartition};
use crate::protocol::ErrorCode;
use crate::shard::{Peers, PeersSlot, ShardError, ShardId};

/// How long a starting broker waits to be registered and unfenced by the controller quorum
/// (nodes of a cluster may start in any order, minutes apart) before it gives up.
pub const BROKER_STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The shard where topic administration runs.
pub const CONTROLLER_SHARD: ShardId = 0;

/// Kafka's share-group state topic (KIP-932): not served here, but its name is Kafka's and so
/// internal, as in Kafka's `Topic.isInternal`.
const SHARE_GROUP_STATE_TOPIC: &str = "__share_group_state";

/// Whether `name` is one of Kafka's internal topics, which Metadata reports as internal and
/// clients may not produce to. Other names starting with `__` are ordinary topics, as in Kafka.
pub fn is_internal_topic(name: &str) -> bool {
    [crate::group::OFFSETS_TOPIC, crate::txn::TRANSACTION_TOPIC, SHARE_GROUP_STATE_TOPIC].contains(&name)
}

/// A broker's Kafka listener as `host:port` (an IPv6 host in brackets).
fn listener_addr(broker: &BrokerMeta) -> String {
    if broker.host.contains(':') {
        format!("[{}]:{}", broker.host, broker.port)
    } else {
        format!("{}:{}", broker.host, broker.port)
    }
}

/// Where a partition's leader is, as [`Metadata::partition_leader`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionLeader {
    /// This broker leads it, on this shard.
    Local(ShardId),
    /// Another broker leads it.
    Remote {
        /// The leader's id.
        node: NodeId,
        /// The leader's Kafka listener, `host:port`.
        addr: String,
    },
    /// It exists but has no leader now (or one this broker cannot reach yet): try again later.
    Offline,
    /// No such topic or partition (deleted, or never created).
    Missing,
}

/// What one shard asks of another's metadata layer.
#[derive(Debug)]
pub enum MetadataRequest {
    /// Open the logs of partitions this shard owns in the image (phase one of an install).
    OpenPartitions(Arc<MetadataImage>),
    /// Use this image, and close the partitions it no longer has (phase two); the controller
    /// is the one the metadata quorum knew of when the image was installed.
    InstallImage(Arc<MetadataImage>, Option<NodeId>),
    /// Topic administration (shard 0 only).
    Controller(ControllerRequest),
    /// The broker is registered and caught up: shards may serve clients.
    Serving,
    /// The metadata quorum's state (shard 0 only, which asks the controller).
    QuorumStatus,
}

/// The answer to a [`MetadataRequest`].
#[derive(Debug)]
pub enum MetadataResponse {
    /// Done, nothing to report.
    Done,
    /// From the controller.
    Controller(ControllerResponse),
    /// The metadata quorum's state, or why the controller could not tell it.
    QuorumStatus(Result<QuorumStatus, String>),
}

/// The metadata layer's handle on the other shards.
pub type MetadataPeers = Peers<MetadataRequest, MetadataResponse>;

/// Something to run after each image install on this shard.
pub type InstallListener = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = ()>>>>;

/// One shard's metadata: the current image and the way to change it.
pub struct Metadata {
    config: Arc<BrokerConfig>,
    image: RefCell<Arc<MetadataImage>>,
    partitions: Rc<ShardPartitions>,
    peers: PeersSlot<MetadataRequest, MetadataResponse>,
    listeners: RefCell<Vec<InstallListener>>,
    /// Producer ids this shard may hand out, from its last block.
    producer_ids: RefCell<std::ops::Range<i64>>,
    /// The control plane (shard 0 only).
    node: OnceCell<Rc<ClusterNode>>,
    /// The controller as of the last install.
    controller: Cell<Option<NodeId>>,
    /// Whether shard 0 said the broker may serve.
    serving: Cell<bool>,
    /// The image the last [`Self::open_partitions`] pass opened every log of (a log that
    /// failed to open clears it, so the next pass tries everything again).
    opened: RefCell<Option<Arc<MetadataImage>>>,
}

impl Metadata {
    /// The layer for one shard, starting from `image`.
    pub fn new(config: Arc<BrokerConfig>, image: Arc<MetadataImage>, partitions: Rc<ShardPartitions>) -> Self {
        Metadata {
            config,
            image: RefCell::new(image),
            partitions,
            peers: PeersSlot::default(),
            listeners: RefCell::new(Vec::new()),
            producer_ids: RefCell::new(0..0),
            node: OnceCell::new(),
            controller: Cell::new(None),
            serving: Cell::new(false),
            opened: RefCell::new(None),
        }
    }

    /// Gives shard 0 its control plane (once, at startup).
    pub fn set_node(&self, node: Rc<ClusterNode>) {
        let _ = self.node.set(node);
    }

    /// Starts this broker's control plane on shard 0 (the metadata quorum's node, from `initial`
    /// if its log is new), registers the broker, waits until the controller has unfenced it and
    /// its image is installed everywhere, then lets every shard serve.
    /// `replication` are the shards' replication listeners, advertised at registration.
    pub async fn start_node(
        self: &Rc<Self>,
        initial: MetadataImage,
        replication: Vec<String>,
    ) -> Result<(), NodeError> {
        let incarnation = crate::model::TopicId::random().map_err(NodeError::Transport)?.hex();
        let log_dir_id = crate::storage::io::directory_id(&self.config.data_dir).map_err(NodeError::Transport)?;
        let me = BrokerMeta {
            id: self.config.node_id,
            incarnation,
            epoch: 0,
            host: self.config.advertised_host.clone(),
            port: self.config.advertised_port,
            transport: None,
            replication,
            shards: self.shard_count(),
            fenced: true,
            max_partitions: Some(self.config.max_partitions),
            log_dir_id,
        };
        let node =
            ClusterNode::start(self.config.cluster.clone(), me, initial, self.image_sink(), self.decider()).await?;
        self.set_node(node.clone());
        node.wait_unfenced(BROKER_STARTUP_TIMEOUT).await?;
        self.start_serving().await;
        Ok(())
    }

    /// The control plane, on shard 0.
    pub fn node(&self) -> Option<&Rc<ClusterNode>> {
        self.node.get()
    }

    /// What the control plane installs each new image with (every shard, two phases).
    pub fn image_sink(self: &Rc<Self>) -> ImageSink {
        let me = Rc::downgrade(self);
        Rc::new(move |image| {
            let me = me.clone();
            Box::pin(async move {
                if let Some(me) = me.upgrade() {
                    let controller = me.node.get().and_then(|n| n.controller());
                    if let Err(e) = me.install_everywhere(image, controller).await {
                        error!(error = %e, "cannot install the metadata image");
                    }
                }
            })
        })
    }

    /// How the controller decides topic administration: [`decide`] on the image, with this
    /// broker's config, the request and answer encoded for the metadata quorum's transport.
    pub fn decider(&self) -> Decide {
        let config = self.config.clone();
        Rc::new(move |image: &MetadataImage, bytes: &[u8]| match serde_json::from_slice::<ControllerRequest>(bytes) {
            Ok(request) => {
                let decision = decide(image, &config, request);
                let answer: Result<ControllerResponse, String> = Ok(decision.response);
                Decided { image: decision.image, response: serde_json::to_vec(&answer).unwrap_or_default() }
            }
            Err(e) => {
                let answer: Result<ControllerResponse, String> = Err(format!("undecodable request: {e}"));
                Decided { image: None, response: serde_json::to_vec(&answer).unwrap_or_default() }
            }
        })
    }

    /// The controller as of the last install.
    pub fn controller(&self) -> Option<NodeId> {
        self.controller.get()
    }

    /// Whether this shard may serve clients yet.
    pub fn serving(&self) -> bool {
        self.serving.get()
    }

    /// Tells every shard the broker may serve (shard 0, once unfenced at startup).
    pub async fn start_serving(&self) {
        let peers = self.peers.get();
        for shard in 0..peers.count() {
            if let Err(e) = peers.call(shard, MetadataRequest::Serving).await {
                warn!(shard, error = %e, "cannot tell a shard to serve");
            }
        }
    }

    /// Connects the layer to its counterparts on the other shards (once, at startup).
    pub fn set_peers(&self, peers: MetadataPeers) {
        self.peers.set(peers);
    }

    /// This shard's id.
    pub fn shard_id(&self) -> ShardId {
        self.peers.get().id()
    }

    /// How many shards there are.
    pub fn shard_count(&self) -> usize {
        self.peers.get().count()
    }

    /// Runs `listener` after every install of an image on this shard.
    pub fn on_installed(&self, listener: InstallListener) {
        self.listeners.borrow_mut().push(listener);
    }

    /// The log cleaner's settings: its flags under the dynamic broker configs of the current
    /// image (`log.cleaner.io.max.bytes.per.second`, `log.cleaner.dedupe.buffer.size`,
    /// `log.cleaner.backoff.ms`, ...). Cheap enough to call at every cleaning pass.
    pub fn cleaner_config(&self) -> CleanerConfig {
        self.config.cleaner_config(&self.image())
    }

    /// The broker's defaults for topic configs under the current image's dynamic broker
    /// configs.
    pub fn topic_defaults(&self) -> super::topic_config::TopicDefaults {
        self.config.topic_defaults_in(&self.image())
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// Whether the partition exists in the image (wherever it is led).
    pub fn exists(&self, topic: &str, partition: i32) -> bool {
        partition_meta(&self.image.borrow(), topic, partition).is_some()
    }

    /// The shard of this broker that leads a partition; or why a request for it cannot be
    /// served here: unknown, led by another broker (clients re-route), or without a leader.
    pub fn route(&self, topic: &str, partition: i32) -> Result<ShardId, PartitionError> {
        match self.partition_leader(topic, partition) {
            PartitionLeader::Local(shard) => Ok(shard),
            PartitionLeader::Remote { .. } => Err(PartitionError::NotLeader),
            PartitionLeader::Offline => Err(PartitionError::NotAvailable),
            PartitionLeader::Missing => Err(PartitionError::UnknownTopicOrPartition),
        }
    }

    /// Who leads a partition, for work that must reach its leader wherever it is (transaction
    /// markers, KIP-890 verification): a shard of this broker, another broker's Kafka listener,
    /// nobody now, or nothing (no such partition).
    pub fn partition_leader(&self, topic: &str, partition: i32) -> PartitionLeader {
        let image = self.image.borrow();
        let Some(meta) = partition_meta(&image, topic, partition) else { return PartitionLeader::Missing };
        match meta.leader {
            NO_LEADER => PartitionLeader::Offline,
            leader if leader == self.config.node_id => {
                self.local_shard(meta).map_or(PartitionLeader::Offline, PartitionLeader::Local)
            }
            leader => match image.brokers.get(&leader) {
                Some(broker) => PartitionLeader::Remote { node: leader, addr: listener_addr(broker) },
                None => PartitionLeader::Offline,
            },
        }
    }

    /// The shard holding this broker's replica of `meta`, if it has one.
    pub fn local_shard(&self, meta: &PartitionMeta) -> Option<ShardId> {
        meta.shard_on(self.config.node_id).map(|shard| shard % self.shard_count().max(1))
    }

    /// The shard of this broker that leads `meta`, if it leads it.
    pub fn led_shard(&self, meta: &PartitionMeta) -> Option<ShardId> {
        (meta.leader == self.config.node_id).then(|| self.local_shard(meta)).flatten()
    }

    /// Sends a topic administration request to the controller shard and returns its answer.
    pub async fn control(&self, request: ControllerRequest) -> Result<ControllerResponse, ShardError> {
        match self.peers.get().call(CONTROLLER_SHARD, MetadataRequest::Controller(request)).await? {
            MetadataResponse::Controller(response) => Ok(response),
            _ => Err(ShardError::WrongReply(CONTROLLER_SHARD)),
        }
    }

    /// The metadata quorum's state as the controller sees it (DescribeQuorum), asked through
    /// shard 0's control plane; the error says why no controller answered.
    pub async fn quorum_status(&self) -> Result<QuorumStatus, String> {
        match self.peers.get().call(CONTROLLER_SHARD, MetadataRequest::QuorumStatus).await {
            Ok(MetadataResponse::QuorumStatus(status)) => status,
            Ok(_) => Err(ShardError::WrongReply(CONTROLLER_SHARD).to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Partitions of topic `name` in the current image (0 if it does not exist).
    pub fn partition_count(&self, name: &str) -> i32 {
        self.image.borrow().topics.get(name).map_or(0, |t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
    }

    /// Creates the broker's internal topic `name` (compacted, `partitions` partitions) if it
    /// does not exist yet, as Kafka does on first use of `__consumer_offsets` and
    /// `__transaction_state`; returns its partition count (the count it was created with, which
    /// a later change of the flag does not alter).
    pub async fn ensure_internal_topic(&self, name: &str, partitions: i32) -> Result<i32, ErrorCode> {
        let existing = self.partition_count(name);
        if existing > 0 {
            return Ok(existing);
        }
        // Kafka's offsets.topic.replication.factor, but never more than the live brokers: a
        // cluster still starting gets its internal topics at once.
        let live = self.image().live_brokers().count().max(1);
        let replication_factor = i16::try_from(live).unwrap_or(i16::MAX).min(self.config.internal_replication_factor);
        let topic = NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            assignments: Vec::new(),
            configs: [
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), self.config.cleaner.internal_segment_bytes.to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let request = ControllerRequest::CreateTopics { topics: vec![topic], validate_only: false };
        match self.control(request).await {
            Ok(ControllerResponse::CreateTopics(results)) => {
                for (_, result) in results {
                    match result {
                        Ok(_) => info!(topic = name, partitions, "created internal topic"),
                        // Another connection created it first.
                        Err(TopicError::AlreadyExists(_)) => {}
                        Err(e) => warn!(topic = name, error = %e, "cannot create internal topic"),
                    }
                }
            }
            _ => warn!(topic = name, "controller unavailable while creating internal topic"),
        }
        match self.partition_count(name) {
            0 => Err(ErrorCode::CoordinatorNotAvailable),
            n => Ok(n),
        }
    }

    /// A producer id never handed out before (InitProducerId), from this shard's block; a new
    /// block comes from the controller, persisted before any of it is used.
    pub async fn next_producer_id(&self) -> Result<ProducerId, TopicError> {
        loop {
            if let Some(id) = self.producer_ids.borrow_mut().next() {
                return Ok(ProducerId(id));
            }
            match self.control(ControllerRequest::AllocateProducerIds).await {
                Ok(ControllerResponse::ProducerIds(Ok(ids))) => {
                    let mut current = self.producer_ids.borrow_mut();
                    // Two waiters may both have asked; keep what is left of either block.
                    if current.is_empty() {
                        *current = ids;
                    }
                }
                Ok(ControllerResponse::ProducerIds(Err(e))) => return Err(e),
                Ok(_) => return Err(TopicError::Storage("unexpected controller answer".into())),
                Err(e) => return Err(TopicError::Storage(e.to_string())),
            }
        }
    }

    /// Serves a request from another shard (or this one).
    pub async fn serve(&self, request: MetadataRequest) -> MetadataResponse {
        match request {
            MetadataRequest::OpenPartitions(image) => {
                self.open_partitions(&image).await;
                MetadataResponse::Done
            }
            MetadataRequest::InstallImage(image, controller) => {
                self.controller.set(controller);
                self.install_image(image).await;
                MetadataResponse::Done
            }
            MetadataRequest::Controller(request) => MetadataResponse::Controller(self.run_controller(request).await),
            MetadataRequest::Serving => {
                self.serving.set(true);
                MetadataResponse::Done
            }
            MetadataRequest::QuorumStatus => MetadataResponse::QuorumStatus(match self.node.get() {
                Some(node) => node.status().await.map_err(|e| e.to_string()),
                None => Err("no control plane on this shard".into()),
            }),
        }
    }

    /// Runs `request` through the metadata quorum's controller (shard 0 only): decided there
    /// on the committed image, committed, and installed here before the answer comes back.
    async fn run_controller(&self, request: ControllerRequest) -> ControllerResponse {
        let Some(node) = self.node.get() else {
            return request.fail_all(&TopicError::NoController("no control plane on this shard".into()));
        };
        let bytes = serde_json::to_vec(&request).unwrap_or_default();
        match node.control(bytes).await {
            Ok(answer) => match serde_json::from_slice::<Result<ControllerResponse, String>>(&answer) {
                Ok(Ok(response)) => {
                    response.log_changes();
                    response
                }
                Ok(Err(why)) => request.fail_all(&TopicError::NoController(why)),
                Err(e) => request.fail_all(&TopicError::NoController(format!("undecodable answer: {e}"))),
            },
            Err(e) => request.fail_all(&TopicError::NoController(e.to_string())),
        }
    }

    /// Installs `image` on every shard, in two phases.
    async fn install_everywhere(
        &self,
        image: Arc<MetadataImage>,
        controller: Option<NodeId>,
    ) -> Result<(), ShardError> {
        let peers = self.peers.get();
        let phases: [&dyn Fn() -> MetadataRequest; 2] = [&|| MetadataRequest::OpenPartitions(image.clone()), &|| {
            MetadataRequest::InstallImage(image.clone(), controller)
        }];
        for phase in phases {
            let calls: Vec<_> = (0..peers.count())
                .map(|shard| {
                    let (peers, request) = (peers.clone(), phase());
                    glommio::spawn_local(async move { peers.call(shard, request).await })
                })
                .collect();
            for call in calls {
                call.await?;
            }
        }
        Ok(())
    }

    /// Opens the logs of partitions this shard owns in `image` and does not have open yet;
    /// open ones take the topic's config from the image.
    async fn open_partitions(&self, image: &Arc<MetadataImage>) {
        let me = self.shard_id();
        // The dynamic broker configs of the image under each topic's overrides: a change of
        // either reaches the open partitions here.
        let defaults = self.config.topic_defaults_in(image);
        // A topic the image shares (the same `Arc`) with the last pass, under the same broker
        // configs, has nothing new to open or configure: the pass visits only changed topics,
        // so creating the thousandth topic does not walk the other 999's partitions.
        let previous = self.opened.borrow_mut().take().filter(|p| p.broker_configs == image.broker_configs);
        let unchanged = |topic: &Arc<crate::cluster::image::TopicMeta>| {
            previous.as_ref().and_then(|p| p.topics.get(&topic.name)).is_some_and(|old| Arc::ptr_eq(old, topic))
        };
        let mut all_opened = true;
        for topic in image.topics.values().filter(|t| !unchanged(t)) {
            let config = match TopicConfig::resolve(&defaults, &topic.configs) {
                Ok(config) => config,
                Err(e) => {
                    error!(topic = %topic.name, error = %e, "stored topic config is invalid; using defaults");
                    match TopicConfig::resolve(&defaults, &Default::default()) {
                        Ok(config) => config,
                        Err(_) => continue,
                    }
                }
            };
            for (index, meta) in topic.partitions.iter().enumerate() {
                let Ok(partition) = i32::try_from(index) else { continue };
                if self.local_shard(meta) != Some(me) {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.as_str(), partition);
                all_opened &= self.partitions.open(tp, topic.id, config.clone(), LeaderEpoch(meta.leader_epoch)).await;
            }
        }
        if all_opened {
            *self.opened.borrow_mut() = Some(image.clone());
        }
    }

    /// Swaps in `image`, closes (and deletes) the partitions it no longer has here, and runs
    /// the install listeners.
    async fn install_image(&self, image: Arc<MetadataImage>) {
        *self.image.borrow_mut() = image.clone();
        let me = self.shard_id();
        self.partitions
            .retain(|tp, id| {
                let index = usize::try_from(tp.partition).unwrap_or(usize::MAX);
                image.topics.get(&*tp.topic).is_some_and(|topic| {
                    topic.id == id && topic.partitions.get(index).is_some_and(|p| self.local_shard(p) == Some(me))
                })
            })
            .await;
        let listeners: Vec<InstallListener> = self.listeners.borrow().clone();
        for listener in listeners {
            listener().await;
        }
    }
}

/// Partition `partition` of `topic` in `image`.
fn partition_meta<'a>(image: &'a MetadataImage, topic: &str, partition: i32) -> Option<&'a PartitionMeta> {
    image.topics.get(topic)?.partitions.get(usize::try_from(partition).ok()?)
}

#[cfg(test)]
mod tests {
    use super::is_internal_topic;

    #[test]
    fn only_kafkas_own_topics_are_internal() {
        assert!(is_internal_topic("__consumer_offsets"));
        assert!(is_internal_topic("__transaction_state"));
        assert!(is_internal_topic("__share_group_state"));
        assert!(!is_internal_topic("__user_topic"));
        assert!(!is_internal_topic("consumer_offsets"));
    }
}
