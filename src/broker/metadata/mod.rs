//! The metadata layer: the image of topics and partitions every shard holds ([`image`]), topic
//! administration on shard 0 ([`controller`]), and [`Metadata`], one shard's view of both with
//! the [`MetadataRequest`]s shards send each other to change it.
//!
//! Lifecycle: each shard starts with the image loaded from disk; a change is decided and
//! persisted on shard 0 and installed on every shard in two phases (open the new partitions,
//! then swap the image and close what was removed), so no shard advertises a partition whose
//! log is not open. After an install, the listeners registered with
//! [`Metadata::on_installed`] run (the group coordinator loads new `__consumer_offsets`
//! partitions). The cluster issue replaces the JSON image with the replicated metadata log; this
//! is where its driver will feed images in.

pub mod controller;
pub mod image;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use tracing::{error, info, warn};

use self::controller::{ControllerRequest, ControllerResponse, NewTopic, TopicError, decide};
use self::image::{MetadataImage, store_image};
use super::config::BrokerConfig;
use super::partition::ShardPartitions;
use super::topic_config::TopicConfig;
use crate::model::{LeaderEpoch, ProducerId, TopicPartition};
use crate::protocol::ErrorCode;
use crate::shard::{Peers, PeersSlot, ShardError, ShardId};

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

/// What one shard asks of another's metadata layer.
#[derive(Debug)]
pub enum MetadataRequest {
    /// Open the logs of partitions this shard owns in the image (phase one of an install).
    OpenPartitions(Arc<MetadataImage>),
    /// Use this image, and close the partitions it no longer has (phase two).
    InstallImage(Arc<MetadataImage>),
    /// Topic administration (shard 0 only).
    Controller(ControllerRequest),
}

/// The answer to a [`MetadataRequest`].
#[derive(Debug)]
pub enum MetadataResponse {
    /// Done, nothing to report.
    Done,
    /// From the controller.
    Controller(ControllerResponse),
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
    /// One change at a time on shard 0: each builds on the image the previous one installed.
    controller_lock: glommio::sync::Semaphore,
    peers: PeersSlot<MetadataRequest, MetadataResponse>,
    listeners: RefCell<Vec<InstallListener>>,
    /// Producer ids this shard may hand out, from its last block.
    producer_ids: RefCell<std::ops::Range<i64>>,
}

impl Metadata {
    /// The layer for one shard, starting from `image`.
    pub fn new(config: Arc<BrokerConfig>, image: Arc<MetadataImage>, partitions: Rc<ShardPartitions>) -> Self {
        Metadata {
            config,
            image: RefCell::new(image),
            partitions,
            controller_lock: glommio::sync::Semaphore::new(1),
            peers: PeersSlot::default(),
            listeners: RefCell::new(Vec::new()),
            producer_ids: RefCell::new(0..0),
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

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// The shard that owns a partition, if the partition exists.
    pub fn owner_of(&self, topic: &str, partition: i32) -> Option<ShardId> {
        let image = self.image.borrow();
        let index = usize::try_from(partition).ok()?;
        image.topics.get(topic)?.partitions.get(index).map(|p| p.shard)
    }

    /// Sends a topic administration request to the controller shard and returns its answer.
    pub async fn control(&self, request: ControllerRequest) -> Result<ControllerResponse, ShardError> {
        match self.peers.get().call(CONTROLLER_SHARD, MetadataRequest::Controller(request)).await? {
            MetadataResponse::Controller(response) => Ok(response),
            MetadataResponse::Done => Err(ShardError::WrongReply(CONTROLLER_SHARD)),
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
        let topic = NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: [("cleanup.policy".to_string(), "compact".to_string())].into_iter().collect(),
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

    /// Opens this shard's partitions of the current image (at startup, before serving).
    pub async fn open_current(&self) {
        let image = self.image();
        self.open_partitions(&image).await;
        self.install_image(image).await;
    }

    /// Serves a request from another shard (or this one).
    pub async fn serve(&self, request: MetadataRequest) -> MetadataResponse {
        match request {
            MetadataRequest::OpenPartitions(image) => {
                self.open_partitions(&image).await;
                MetadataResponse::Done
            }
            MetadataRequest::InstallImage(image) => {
                self.install_image(image).await;
                MetadataResponse::Done
            }
            MetadataRequest::Controller(request) => MetadataResponse::Controller(self.run_controller(request).await),
        }
    }

    /// Decides `request`, then persists and installs the new image everywhere (shard 0 only).
    async fn run_controller(&self, request: ControllerRequest) -> ControllerResponse {
        let _permit = self.controller_lock.acquire_permit(1).await;
        let decision = decide(&self.image(), &self.config, request);
        let mut response = decision.response;
        if let Some(image) = decision.image {
            match self.install_everywhere(image).await {
                Ok(()) => response.log_changes(),
                Err(e) => response.fail_successes(&e),
            }
        }
        response
    }

    /// Persists `image` and installs it on every shard.
    async fn install_everywhere(&self, mut image: MetadataImage) -> Result<(), TopicError> {
        image.version += 1;
        store_image(&self.config.data_dir, &image).map_err(|e| TopicError::Storage(e.to_string()))?;
        let image = Arc::new(image);
        let peers = self.peers.get();
        let phases: [fn(Arc<MetadataImage>) -> MetadataRequest; 2] =
            [MetadataRequest::OpenPartitions, MetadataRequest::InstallImage];
        for phase in phases {
            let calls: Vec<_> = (0..peers.count())
                .map(|shard| {
                    let (peers, request) = (peers.clone(), phase(image.clone()));
                    glommio::spawn_local(async move { peers.call(shard, request).await })
                })
                .collect();
            for call in calls {
                call.await.map_err(|e| TopicError::Storage(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Opens the logs of partitions this shard owns in `image` and does not have open yet;
    /// open ones take the topic's config from the image.
    async fn open_partitions(&self, image: &MetadataImage) {
        let me = self.shard_id();
        for topic in image.topics.values() {
            let config = match TopicConfig::resolve(&self.config.log_defaults, &topic.configs) {
                Ok(config) => config,
                Err(e) => {
                    error!(topic = %topic.name, error = %e, "stored topic config is invalid; using defaults");
                    match TopicConfig::resolve(&self.config.log_defaults, &Default::default()) {
                        Ok(config) => config,
                        Err(_) => continue,
                    }
                }
            };
            for (index, meta) in topic.partitions.iter().enumerate() {
                let Ok(partition) = i32::try_from(index) else { continue };
                if meta.shard != me {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.as_str(), partition);
                self.partitions.open(tp, topic.id, config.clone(), LeaderEpoch(meta.leader_epoch)).await;
            }
        }
    }

    /// Swaps in `image`, closes (and deletes) the partitions it no longer has, and runs the
    /// install listeners.
    async fn install_image(&self, image: Arc<MetadataImage>) {
        *self.image.borrow_mut() = image.clone();
        self.partitions
            .retain(|tp, id| {
                let index = usize::try_from(tp.partition).unwrap_or(usize::MAX);
                image.topics.get(&*tp.topic).is_some_and(|topic| topic.id == id && index < topic.partitions.len())
            })
            .await;
        let listeners: Vec<InstallListener> = self.listeners.borrow().clone();
        for listener in listeners {
            listener().await;
        }
    }
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
