//! [`ShardBroker`]: the broker's state on one shard — the metadata image, the partitions this
//! shard owns, its batch cache — and the [`ShardRequest`]s other shards send it.
//!
//! Lifecycle: one per shard, made at startup and kept until shutdown, when it closes its logs
//! (flush, seal, clean-shutdown marker). Cores: not `Send`; everything another shard needs from
//! it goes through [`ShardBroker::call`].

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tracing::{error, info, warn};

use super::config::BrokerConfig;
use super::controller::{ControllerRequest, ControllerResponse};
use super::fetch_session::FetchSessions;
use super::groups::{Coordinator, GroupRequest, GroupResponse};
use super::metadata::MetadataImage;
use super::partition::{Fetched, Partition, PartitionError};
use super::topic_config::TopicConfig;
use crate::model::{LeaderEpoch, Offset, Timestamp, TopicPartition};
use crate::shard::{ShardError, ShardId, ShardMesh};
use crate::storage::{BatchCache, HighWatermark, OpenOptions, PartitionLog};

/// What one partition's append came to.
#[derive(Debug, Clone, Copy)]
pub struct ProduceOutcome {
    /// Offset of the first record appended.
    pub base_offset: Offset,
    /// The append time stamped on LogAppendTime topics, else `Timestamp::NONE`.
    pub log_append_time: Timestamp,
    /// The log start offset.
    pub log_start_offset: Offset,
}

/// One partition's part of a fetch.
#[derive(Debug, Clone)]
pub struct FetchWork {
    /// Which partition.
    pub topic_partition: TopicPartition,
    /// From which offset.
    pub offset: Offset,
    /// At most this many bytes (the first batch is whole regardless).
    pub max_bytes: u64,
}

/// Per-partition results, in request order.
pub type PartitionResults<T> = Vec<(TopicPartition, Result<T, PartitionError>)>;

/// Work one shard asks of another.
#[derive(Debug)]
pub enum ShardRequest {
    /// Open the logs of partitions this shard owns in the image (phase one of an install).
    OpenPartitions(Arc<MetadataImage>),
    /// Use this image, and close the partitions it no longer has (phase two).
    InstallImage(Arc<MetadataImage>),
    /// Topic administration (shard 0 only).
    Controller(ControllerRequest),
    /// Append to partitions this shard owns.
    Produce {
        /// -1, 0 or 1.
        acks: i16,
        /// How long to wait for acknowledgement.
        timeout: Duration,
        /// Records per partition (`None`: the request had null records).
        partitions: Vec<(TopicPartition, Option<BytesMut>)>,
    },
    /// Read from partitions this shard owns.
    Fetch(Vec<FetchWork>),
    /// Resolve when any of these partitions' high watermark passes the offset, or after the
    /// timeout (the wait of a long-poll fetch).
    WaitForData {
        /// (partition, offset the fetch is waiting beyond).
        partitions: Vec<(TopicPartition, Offset)>,
        /// The longest wait.
        timeout: Duration,
    },
    /// ListOffsets: (partition, timestamp or -1/-2/-3/-4).
    ListOffsets(Vec<(TopicPartition, i64)>),
    /// DeleteRecords: (partition, offset or -1 for the high watermark).
    DeleteRecords(Vec<(TopicPartition, i64)>),
    /// A consumer group operation, for the shard that coordinates the group.
    Group(GroupRequest),
}

/// The answer to a [`ShardRequest`].
#[derive(Debug)]
pub enum ShardResponse {
    /// Done, nothing to report.
    Done,
    /// From the controller.
    Controller(ControllerResponse),
    /// Produce results.
    Produce(PartitionResults<ProduceOutcome>),
    /// Fetch results.
    Fetch(PartitionResults<Fetched>),
    /// ListOffsets results: (timestamp, offset).
    ListOffsets(PartitionResults<(Timestamp, Offset)>),
    /// DeleteRecords results: the new low watermark.
    DeleteRecords(PartitionResults<Offset>),
    /// A consumer group operation's answer.
    Group(GroupResponse),
}

/// The broker on one shard.
pub struct ShardBroker {
    /// The broker's configuration.
    pub config: Arc<BrokerConfig>,
    image: RefCell<Arc<MetadataImage>>,
    partitions: RefCell<HashMap<TopicPartition, Rc<Partition>>>,
    cache: BatchCache,
    mesh: OnceCell<Rc<ShardMesh<ShardRequest, ShardResponse>>>,
    pub(crate) controller_lock: glommio::sync::Semaphore,
    /// The fetch sessions of this shard's connections.
    pub(crate) fetch_sessions: RefCell<FetchSessions>,
    /// The consumer groups this shard coordinates.
    pub(crate) groups: Coordinator,
}

impl ShardBroker {
    /// The broker state for one shard, before it joins the mesh.
    pub fn new(config: Arc<BrokerConfig>, image: Arc<MetadataImage>) -> Rc<Self> {
        let cache = BatchCache::new(config.batch_cache_bytes);
        Rc::new(ShardBroker {
            config,
            image: RefCell::new(image),
            partitions: RefCell::new(HashMap::new()),
            cache,
            mesh: OnceCell::new(),
            controller_lock: glommio::sync::Semaphore::new(1),
            fetch_sessions: RefCell::new(FetchSessions::new(0, 1, 0, Duration::ZERO)),
            groups: Coordinator::default(),
        })
    }

    /// Connects this shard to the others (every shard must call it) and opens its partitions.
    pub async fn start(
        self: &Rc<Self>,
        mesh: crate::shard::Mesh<ShardRequest, ShardResponse>,
    ) -> Result<(), ShardError> {
        let me = self.clone();
        let handler: crate::shard::Handler<ShardRequest, ShardResponse> = Rc::new(move |request| {
            let me = me.clone();
            Box::pin(async move { me.serve(request).await })
        });
        let joined = ShardMesh::join(mesh, handler).await?;
        *self.fetch_sessions.borrow_mut() = FetchSessions::new(
            joined.id(),
            joined.count(),
            self.config.fetch_sessions_max,
            Duration::from_millis(self.config.fetch_session_idle_ms),
        );
        let _ = self.mesh.set(joined);
        let image = self.image();
        self.open_partitions(&image).await;
        self.install_image(image).await;
        self.groups.load(self).await;
        self.spawn_retention();
        Coordinator::spawn_timers(self);
        Ok(())
    }

    /// This shard's mesh handle.
    pub fn mesh(&self) -> Rc<ShardMesh<ShardRequest, ShardResponse>> {
        match self.mesh.get() {
            Some(mesh) => mesh.clone(),
            None => unreachable!("the mesh is joined in start() before any request is served"),
        }
    }

    /// This shard's id.
    pub fn shard_id(&self) -> ShardId {
        self.mesh().id()
    }

    /// Sends `request` to shard `to` (or runs it here).
    pub async fn call(&self, to: ShardId, request: ShardRequest) -> Result<ShardResponse, ShardError> {
        self.mesh().call(to, request).await
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

    /// A partition this shard owns.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.partitions.borrow().get(tp).cloned()
    }

    async fn serve(self: Rc<Self>, request: ShardRequest) -> ShardResponse {
        match request {
            ShardRequest::OpenPartitions(image) => {
                self.open_partitions(&image).await;
                ShardResponse::Done
            }
            ShardRequest::InstallImage(image) => {
                self.install_image(image).await;
                // A new __consumer_offsets partition is empty: loading it is immediate.
                self.groups.load(&self).await;
                ShardResponse::Done
            }
            ShardRequest::Group(request) => ShardResponse::Group(self.groups.serve(&self, request).await),
            ShardRequest::Controller(request) => ShardResponse::Controller(self.control(request).await),
            ShardRequest::Produce { acks, timeout, partitions } => {
                ShardResponse::Produce(self.produce(acks, timeout, partitions).await)
            }
            ShardRequest::Fetch(work) => ShardResponse::Fetch(self.fetch(work).await),
            ShardRequest::WaitForData { partitions, timeout } => {
                self.wait_for_data(partitions, timeout).await;
                ShardResponse::Done
            }
            ShardRequest::ListOffsets(partitions) => {
                let mut out = Vec::new();
                for (tp, timestamp) in partitions {
                    let result = match self.partition(&tp) {
                        Some(p) => p.list_offset(timestamp).await,
                        None => Err(PartitionError::UnknownTopicOrPartition),
                    };
                    out.push((tp, result));
                }
                ShardResponse::ListOffsets(out)
            }
            ShardRequest::DeleteRecords(partitions) => {
                let out = partitions
                    .into_iter()
                    .map(|(tp, offset)| {
                        let result = match self.partition(&tp) {
                            Some(p) => p.delete_records(offset),
                            None => Err(PartitionError::UnknownTopicOrPartition),
                        };
                        (tp, result)
                    })
                    .collect();
                ShardResponse::DeleteRecords(out)
            }
        }
    }

    async fn produce(
        &self,
        acks: i16,
        timeout: Duration,
        partitions: Vec<(TopicPartition, Option<BytesMut>)>,
    ) -> PartitionResults<ProduceOutcome> {
        let mut pending = Vec::with_capacity(partitions.len());
        for (tp, records) in partitions {
            let appended = match (self.partition(&tp), records) {
                (None, _) => Err(PartitionError::UnknownTopicOrPartition),
                (Some(_), None) => Err(PartitionError::NoRecords),
                (Some(partition), Some(records)) => partition.append(records),
            };
            pending.push((tp, appended));
        }
        let deadline = glommio::timer::sleep(timeout);
        let mut deadline = std::pin::pin!(deadline);
        let mut out = Vec::with_capacity(pending.len());
        for (tp, appended) in pending {
            let result = match appended {
                Err(e) => Err(e),
                Ok((append, log_append_time)) => {
                    let info = append.info();
                    if acks == 0 {
                        Ok(info)
                    } else {
                        let durable = std::pin::pin!(append.durable());
                        match first_of2(durable, deadline.as_mut()).await {
                            Either::Left(result) => result.map_err(PartitionError::from),
                            Either::Right(()) => Err(PartitionError::Timeout),
                        }
                    }
                    .map(|info| ProduceOutcome {
                        base_offset: info.base_offset,
                        log_append_time,
                        log_start_offset: info.log_start_offset,
                    })
                }
            };
            if let Err(e) = &result
                && matches!(e, PartitionError::Storage(s) if s.is_storage_failure())
            {
                error!(tp = %tp, error = %e, "append failed");
            }
            out.push((tp, result));
        }
        out
    }

    async fn fetch(&self, work: Vec<FetchWork>) -> PartitionResults<Fetched> {
        let mut out = Vec::with_capacity(work.len());
        for item in work {
            let result = match self.partition(&item.topic_partition) {
                Some(p) => p.fetch(item.offset, item.max_bytes).await,
                None => Err(PartitionError::UnknownTopicOrPartition),
            };
            out.push((item.topic_partition, result));
        }
        out
    }

    async fn wait_for_data(&self, partitions: Vec<(TopicPartition, Offset)>, timeout: Duration) {
        let mut waits: Vec<Pin<Box<dyn Future<Output = ()>>>> = Vec::new();
        for (tp, offset) in partitions {
            if let Some(partition) = self.partition(&tp) {
                waits.push(Box::pin(async move { partition.log.wait_for_high_watermark_beyond(offset).await }));
            }
        }
        waits.push(Box::pin(glommio::timer::sleep(timeout)));
        std::future::poll_fn(|cx| {
            for wait in waits.iter_mut() {
                if wait.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
        .await;
    }

    /// Opens the logs of partitions this shard owns in `image` and does not have open yet.
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
                if self.partitions.borrow().get(&tp).is_some_and(|p| p.topic_id == topic.id) {
                    if let Some(p) = self.partition(&tp) {
                        p.log.set_config(config.log.clone());
                        *p.config.borrow_mut() = config.clone();
                    }
                    continue;
                }
                let opened = PartitionLog::open(OpenOptions {
                    dir: self.config.data_dir.join(tp.dir_name()),
                    topic_partition: tp.clone(),
                    config: config.log.clone(),
                    cache: &self.cache,
                    high_watermark: HighWatermark::FollowsAcks,
                })
                .await;
                match opened {
                    Ok(log) => {
                        let partition = Rc::new(Partition {
                            topic_partition: tp.clone(),
                            topic_id: topic.id,
                            log,
                            config: RefCell::new(config.clone()),
                            leader_epoch: LeaderEpoch(meta.leader_epoch),
                        });
                        let replaced = self.partitions.borrow_mut().insert(tp.clone(), partition);
                        if let Some(old) = replaced {
                            // A topic deleted and created again under the same name.
                            self.remove_partition(old).await;
                        }
                    }
                    Err(e) => error!(tp = %tp, error = %e, "cannot open partition log"),
                }
            }
        }
    }

    /// Swaps in `image` and closes (and deletes) the partitions it no longer has.
    async fn install_image(&self, image: Arc<MetadataImage>) {
        *self.image.borrow_mut() = image.clone();
        let gone: Vec<Rc<Partition>> = self
            .partitions
            .borrow()
            .values()
            .filter(|p| {
                let tp = &p.topic_partition;
                let index = usize::try_from(tp.partition).unwrap_or(usize::MAX);
                match image.topics.get(&*tp.topic) {
                    Some(topic) => topic.id != p.topic_id || index >= topic.partitions.len(),
                    None => true,
                }
            })
            .cloned()
            .collect();
        for partition in gone {
            self.partitions.borrow_mut().remove(&partition.topic_partition);
            self.remove_partition(partition).await;
        }
    }

    /// Closes a partition's log and deletes its directory in the background.
    async fn remove_partition(&self, partition: Rc<Partition>) {
        let tp = partition.topic_partition.clone();
        if let Err(e) = partition.log.close().await {
            warn!(tp = %tp, error = %e, "closing a deleted partition");
        }
        let dir = self.config.data_dir.join(tp.dir_name());
        // Rename first (atomic), so a restart never sees a half-deleted partition, then delete
        // off the shard's thread.
        let doomed = self.config.data_dir.join(format!("{}.{}-delete", tp.dir_name(), std::process::id()));
        match std::fs::rename(&dir, &doomed) {
            Ok(()) => {
                std::thread::spawn(move || {
                    if let Err(e) = std::fs::remove_dir_all(&doomed) {
                        warn!(dir = %doomed.display(), error = %e, "could not delete partition directory");
                    }
                });
            }
            Err(e) => warn!(dir = %dir.display(), error = %e, "could not remove partition directory"),
        }
        info!(tp = %tp, "partition removed");
    }

    fn spawn_retention(self: &Rc<Self>) {
        let me = Rc::downgrade(self);
        let every = Duration::from_millis(self.config.retention_check_interval_ms.max(1));
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                let Some(broker) = me.upgrade() else { return };
                let partitions: Vec<Rc<Partition>> = broker.partitions.borrow().values().cloned().collect();
                for partition in partitions {
                    if let Err(e) = partition.log.enforce_retention(Timestamp::now()) {
                        warn!(tp = %partition.topic_partition, error = %e, "retention failed");
                    }
                }
            }
        })
        .detach();
    }

    /// Closes every log on this shard (flush, seal, clean-shutdown marker).
    pub async fn close_all(&self) {
        let partitions: Vec<Rc<Partition>> = self.partitions.borrow_mut().drain().map(|(_, p)| p).collect();
        for partition in partitions {
            if let Err(e) = partition.log.close().await {
                error!(tp = %partition.topic_partition, error = %e, "log did not close cleanly");
            }
        }
    }
}

enum Either<L, R> {
    Left(L),
    Right(R),
}

/// Whichever of two futures finishes first.
async fn first_of2<A: Future + Unpin, B: Future + Unpin>(mut a: A, mut b: B) -> Either<A::Output, B::Output> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = Pin::new(&mut a).poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = Pin::new(&mut b).poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}
