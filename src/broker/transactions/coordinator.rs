//! The transaction coordinator on one shard: the transactional ids whose `__transaction_state`
//! partition this shard owns, fed by [`TxnRequest`]s that handlers on any shard route here.
//!
//! Lifecycle: one per shard, empty at start; a partition's ids are rebuilt by replaying it when
//! it opens ([`TxnCoordinator::load`]), and a transaction found half ended (PrepareCommit,
//! PrepareAbort) is finished then. Until loaded, requests for its ids get
//! COORDINATOR_LOAD_IN_PROGRESS. Cores: shard-local (`RefCell`s never borrowed across an
//! `.await`); other shards reach it through a `TxnRequest`.
//!
//! Durability: every change of an id's metadata is appended to its partition and acknowledged
//! (committed) before the request is answered or the next step taken, so after a crash the
//! partition says how far each transaction got. Ending a transaction is three steps, Kafka's:
//! persist PrepareCommit/PrepareAbort, write a marker to every partition of the transaction
//! (each committed), persist CompleteCommit/CompleteAbort. A crash between them resumes at load.
//!
//! Cluster: markers go to each partition's leader, through the shards when it is this broker
//! and with WriteTxnMarkers when it is another; a partition leader asks this coordinator to
//! verify with AddPartitionsToTxn `verify_only`, and [`TxnCoordinator::verify`] does the same
//! for this broker's partitions when another broker coordinates the id. Both go through
//! [`InterBroker`].
//!
//! One operation per id at a time: a request for an id that is busy (its markers being
//! written, its metadata being persisted) gets CONCURRENT_TRANSACTIONS and retries, as Kafka's
//! clients do.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::messages::{TxnRequest, TxnResponse};
use crate::broker::config::BrokerConfig;
use crate::broker::groups::Coordinator as GroupCoordinator;
use crate::broker::inter_broker::InterBroker;
use crate::broker::metadata::{Metadata, PartitionLeader};
use crate::broker::partition::{Acks, Partition, PartitionError, PartitionRequest, PartitionResponse, ShardPartitions};
use crate::group::OFFSETS_TOPIC;
use crate::model::{BatchBuilder, ControlType, ProducerId, RecordIter, Timestamp, TopicPartition};
use crate::protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnRequestTopic, AddPartitionsToTxnRequestTransaction,
    AddPartitionsToTxnResponse, WriteTxnMarkersRequest, WriteTxnMarkersRequestMarker, WriteTxnMarkersRequestTopic,
};
use crate::protocol::{ErrorCode, Message};
use crate::shard::{Peers, PeersSlot, ShardId};
use crate::txn::state::{EndPlan, plan_end};
use crate::txn::{TRANSACTION_TOPIC, TxnKey, TxnMetadata, TxnOp, TxnState, TxnValue};

/// Runs `futures` concurrently (on this task: they may borrow) and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut running: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (future, slot) in running.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(output) => *slot = Some(output),
                    Poll::Pending => all = false,
                }
            }
        }
        if all { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// How long to wait before writing markers again to partitions that failed.
const MARKER_RETRY_MS: u64 = 100;

/// WriteTxnMarkers to another broker at the newest version Sluice serves (no ApiVersions
/// between Sluice brokers: see `inter_broker`).
const WRITE_TXN_MARKERS_VERSION: i16 = WriteTxnMarkersRequest::VERSION_MAX;

/// AddPartitionsToTxn to another broker: v4 is the first with `verify_only` (KIP-890), and
/// Sluice serves it; v5 only adds TRANSACTION_ABORTABLE, which no coordinator here answers.
const VERIFY_VERSION: i16 = 4;

/// One transaction's marker, as every partition of it gets it.
#[derive(Debug, Clone, Copy)]
struct Marker {
    producer_id: ProducerId,
    producer_epoch: i16,
    kind: ControlType,
    /// The leader epoch of the transaction's `__transaction_state` partition here (Kafka's
    /// coordinator epoch): a partition refuses markers from an older coordinator, one that lost
    /// the transaction's partition to this one.
    coordinator_epoch: i32,
}

/// The transaction layer's handle on the other shards.
pub type TxnPeers = Peers<TxnRequest, TxnResponse>;

/// The transactional ids one shard coordinates.
pub struct TxnCoordinator {
    config: Arc<BrokerConfig>,
    metadata: Rc<Metadata>,
    partitions: Rc<ShardPartitions>,
    groups: Rc<GroupCoordinator>,
    /// Connections to the other brokers, for markers and verifications they must serve.
    inter_broker: Rc<InterBroker>,
    peers: PeersSlot<TxnRequest, TxnResponse>,
    txns: RefCell<HashMap<String, TxnMetadata>>,
    /// Ids with an operation in flight.
    busy: RefCell<HashSet<String>>,
    loaded: RefCell<HashSet<i32>>,
    /// Itself, for the tasks it spawns.
    me: RefCell<Weak<TxnCoordinator>>,
}

fn now_ms() -> i64 {
    Timestamp::now().0
}

/// Marks an id busy until dropped.
struct Busy<'a> {
    coordinator: &'a TxnCoordinator,
    id: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.coordinator.busy.borrow_mut().remove(&self.id);
    }
}

impl TxnCoordinator {
    /// No ids yet; they are loaded as `__transaction_state` partitions open.
    pub fn new(
        config: Arc<BrokerConfig>,
        metadata: Rc<Metadata>,
        partitions: Rc<ShardPartitions>,
        groups: Rc<GroupCoordinator>,
        inter_broker: Rc<InterBroker>,
    ) -> Rc<Self> {
        let coordinator = Rc::new(TxnCoordinator {
            config,
            metadata,
            partitions,
            groups,
            inter_broker,
            peers: PeersSlot::default(),
            txns: RefCell::new(HashMap::new()),
            busy: RefCell::new(HashSet::new()),
            loaded: RefCell::new(HashSet::new()),
            me: RefCell::new(Weak::new()),
        });
        *coordinator.me.borrow_mut() = Rc::downgrade(&coordinator);
        coordinator
    }

    /// Connects the layer to its counterparts on the other shards (once, at startup).
    pub fn set_peers(&self, peers: TxnPeers) {
        self.peers.set(peers);
    }

    /// Partitions of `__transaction_state` as the metadata image has them.
    pub fn state_partitions(&self) -> i32 {
        self.metadata.partition_count(TRANSACTION_TOPIC)
    }

    /// Creates `__transaction_state` (compacted) if it does not exist yet, as Kafka does on first
    /// use; returns its partition count.
    pub async fn ensure_topic(&self) -> Result<i32, ErrorCode> {
        self.metadata.ensure_internal_topic(TRANSACTION_TOPIC, self.config.txn.state_log_partitions).await
    }

    /// Routes `op` on `transactional_id` to the shard that coordinates it.
    pub async fn route(&self, transactional_id: &str, op: TxnOp) -> Result<(ProducerId, i16), ErrorCode> {
        let (shard, partition) = self.coordinator_of(transactional_id).await?;
        let request = TxnRequest::ForId { transactional_id: transactional_id.to_string(), partition, op };
        match self.peers.get().call(shard, request).await {
            Ok(TxnResponse::Done(result)) => result,
            _ => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }

    /// DescribeTransactions of one id, from its coordinator.
    pub async fn describe(&self, transactional_id: &str) -> Result<TxnMetadata, ErrorCode> {
        let (shard, partition) = self.coordinator_of(transactional_id).await?;
        let request = TxnRequest::Describe { transactional_id: transactional_id.to_string(), partition };
        match self.peers.get().call(shard, request).await {
            Ok(TxnResponse::Described(result)) => result,
            _ => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }

    /// ListTransactions over every shard; COORDINATOR_NOT_AVAILABLE if a shard did not answer.
    pub async fn list_all(&self) -> (Vec<TxnMetadata>, ErrorCode) {
        let mut all = Vec::new();
        let mut error = ErrorCode::None;
        for shard in 0..self.peers.get().count() {
            match self.peers.get().call(shard, TxnRequest::List).await {
                Ok(TxnResponse::List(list)) => all.extend(list),
                _ => error = ErrorCode::CoordinatorNotAvailable,
            }
        }
        (all, error)
    }

    async fn coordinator_of(&self, transactional_id: &str) -> Result<(ShardId, i32), ErrorCode> {
        let partitions = self.ensure_topic().await?;
        let partition = crate::txn::partition_for(transactional_id, partitions);
        let shard =
            self.metadata.route(TRANSACTION_TOPIC, partition).map_err(crate::broker::groups::coordinator_error)?;
        Ok((shard, partition))
    }

    /// Serves a request from another shard (or this one).
    pub async fn serve(&self, request: TxnRequest) -> TxnResponse {
        match request {
            TxnRequest::ForId { transactional_id, partition, op } => {
                TxnResponse::Done(self.run(&transactional_id, partition, op).await)
            }
            TxnRequest::Describe { transactional_id, partition } => {
                TxnResponse::Described(self.check(partition).and_then(|_| {
                    self.txns.borrow().get(&transactional_id).cloned().ok_or(ErrorCode::TransactionalIdNotFound)
                }))
            }
            TxnRequest::List => TxnResponse::List(self.txns.borrow().values().cloned().collect()),
        }
    }

    /// Whether this shard coordinates `partition`'s ids now.
    fn check(&self, partition: i32) -> Result<Rc<Partition>, ErrorCode> {
        // This broker may hold a follower replica: only the leader coordinates.
        if self.metadata.route(TRANSACTION_TOPIC, partition).ok() != Some(self.metadata.shard_id()) {
            return Err(ErrorCode::NotCoordinator);
        }
        let p = self.state_partition(partition).ok_or(ErrorCode::NotCoordinator)?;
        if !self.loaded.borrow().contains(&partition) {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        Ok(p)
    }

    fn state_partition(&self, partition: i32) -> Option<Rc<Partition>> {
        self.partitions.get(&TopicPartition::new(TRANSACTION_TOPIC, partition))
    }

    fn claim(&self, id: &str) -> Result<Busy<'_>, ErrorCode> {
        if !self.busy.borrow_mut().insert(id.to_string()) {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        Ok(Busy { coordinator: self, id: id.to_string() })
    }

    async fn run(&self, id: &str, partition: i32, op: TxnOp) -> Result<(ProducerId, i16), ErrorCode> {
        self.check(partition)?;
        let current = self.txns.borrow().get(id).cloned().filter(|m| m.state != TxnState::Dead);
        if let TxnOp::Verify { producer_id, producer_epoch, partitions } = &op {
            // Read-only, and must not wait behind an EndTxn: a preparing transaction fails it.
            let meta = current.ok_or(ErrorCode::InvalidTxnState)?;
            if meta.producer_id != *producer_id {
                return Err(ErrorCode::InvalidProducerIdMapping);
            }
            if *producer_epoch < meta.producer_epoch {
                return Err(ErrorCode::InvalidProducerEpoch);
            }
            let inside = meta.state == TxnState::Ongoing
                && *producer_epoch == meta.producer_epoch
                && partitions.iter().all(|p| meta.partitions.contains(p));
            return if inside { Ok((meta.producer_id, meta.producer_epoch)) } else { Err(ErrorCode::InvalidTxnState) };
        }
        let _busy = self.claim(id)?;
        let now = now_ms();
        match op {
            TxnOp::InitProducerId { timeout_ms, expected } => {
                if timeout_ms <= 0 || timeout_ms > self.config.txn.max_timeout_ms {
                    return Err(ErrorCode::InvalidTransactionTimeout);
                }
                let Some(mut meta) = current else {
                    let producer_id = self.new_producer_id().await?;
                    let meta = TxnMetadata::new(id, producer_id, timeout_ms, now);
                    self.persist(partition, &meta).await?;
                    return Ok((meta.producer_id, meta.producer_epoch));
                };
                if let Some(expected) = expected
                    && expected != (meta.producer_id, meta.producer_epoch)
                {
                    return Err(ErrorCode::ProducerFenced);
                }
                if meta.state.is_preparing() {
                    return Err(ErrorCode::ConcurrentTransactions);
                }
                if meta.state == TxnState::Ongoing {
                    // A new producer with this id fences the old one: its transaction is aborted
                    // with a bumped epoch, so nothing the zombie still sends is accepted.
                    let epoch = meta.next_epoch().unwrap_or(meta.producer_epoch);
                    info!(transactional_id = id, epoch, "fencing the previous producer and aborting its transaction");
                    meta = self.end(partition, &meta, false, epoch).await?;
                }
                let new_id = match meta.next_epoch() {
                    Some(_) => None,
                    None => Some(self.new_producer_id().await?),
                };
                let next = meta.reinitialised(timeout_ms, new_id, now);
                self.persist(partition, &next).await?;
                Ok((next.producer_id, next.producer_epoch))
            }
            TxnOp::AddPartitions { producer_id, producer_epoch, partitions } => {
                let meta = current.ok_or(ErrorCode::InvalidProducerIdMapping)?;
                meta.check_producer(producer_id, producer_epoch)?;
                if meta.state.is_preparing() {
                    return Err(ErrorCode::ConcurrentTransactions);
                }
                if let Some(next) = meta.with_partitions(&partitions, now) {
                    self.persist(partition, &next).await?;
                }
                Ok((meta.producer_id, meta.producer_epoch))
            }
            TxnOp::EndTxn { producer_id, producer_epoch, commit, bump_epoch } => {
                let meta = current.ok_or(ErrorCode::InvalidProducerIdMapping)?;
                match plan_end(&meta, producer_id, producer_epoch, commit, bump_epoch)? {
                    EndPlan::AlreadyDone => Ok((meta.producer_id, meta.producer_epoch)),
                    EndPlan::Markers { epoch } => {
                        let done = self.end(partition, &meta, commit, epoch).await?;
                        Ok((done.producer_id, done.producer_epoch))
                    }
                }
            }
            TxnOp::Verify { .. } => Err(ErrorCode::InvalidRequest),
        }
    }

    /// Ends `meta`'s transaction: persist the prepare state, write the markers at `epoch`,
    /// persist the complete state. Returns the completed metadata.
    async fn end(
        &self,
        partition: i32,
        meta: &TxnMetadata,
        commit: bool,
        epoch: i16,
    ) -> Result<TxnMetadata, ErrorCode> {
        let prepared = meta.preparing(commit, epoch, now_ms());
        self.persist(partition, &prepared).await?;
        self.finish(partition, prepared).await
    }

    /// Writes the markers of a prepared transaction and persists its completion.
    async fn finish(&self, partition: i32, prepared: TxnMetadata) -> Result<TxnMetadata, ErrorCode> {
        let commit = prepared.state == TxnState::PrepareCommit;
        let coordinator_epoch = self.state_partition(partition).map_or(0, |p| p.leader_epoch().0.max(0));
        self.write_markers(&prepared, commit, coordinator_epoch).await;
        let done = prepared.completed(now_ms());
        // Not waited for: every marker is committed, so a crash before this record is durable
        // only makes the next load write the markers again (harmless: a marker with no open
        // transaction ends nothing). Anything the id does next is appended after it, so it is
        // durable before any later change is acknowledged. This saves one sync per transaction.
        self.persist_with(partition, &done, false).await?;
        Ok(done)
    }

    /// Writes a marker to every partition of the transaction, retrying those that fail until
    /// each is written. Each partition's marker goes to its leader: through the shards for the
    /// partitions this broker leads, in one WriteTxnMarkers per broker for the others. Every round
    /// looks the leaders up again in the current image, so a partition whose leader moved (or had
    /// none) gets its marker from its new leader; a partition whose topic is gone needs none.
    async fn write_markers(&self, meta: &TxnMetadata, commit: bool, coordinator_epoch: i32) {
        let kind = if commit { ControlType::Commit } else { ControlType::Abort };
        let marker =
            Marker { producer_id: meta.producer_id, producer_epoch: meta.producer_epoch, kind, coordinator_epoch };
        let mut left: Vec<(String, i32)> = meta.partitions.iter().cloned().collect();
        let mut attempts = 0u32;
        while !left.is_empty() {
            let mut failed = Vec::new();
            let mut offsets = Vec::new();
            let mut by_shard: BTreeMap<ShardId, Vec<TopicPartition>> = BTreeMap::new();
            let mut by_broker: BTreeMap<String, Vec<(String, i32)>> = BTreeMap::new();
            for (topic, index) in left {
                match self.metadata.partition_leader(&topic, index) {
                    PartitionLeader::Local(_) if topic == OFFSETS_TOPIC => offsets.push(index),
                    PartitionLeader::Local(shard) => {
                        by_shard.entry(shard).or_default().push(TopicPartition::new(topic.as_str(), index));
                    }
                    PartitionLeader::Remote { addr, .. } => by_broker.entry(addr).or_default().push((topic, index)),
                    // No leader now: retried until the partition has one again.
                    PartitionLeader::Offline => failed.push((topic, index)),
                    // A deleted partition has nothing to end.
                    PartitionLeader::Missing => {}
                }
            }
            let remote = by_broker.into_iter().map(|(addr, partitions)| self.remote_markers(marker, addr, partitions));
            let remote: Vec<_> = remote.collect();
            let (local, remote) =
                futures_lite::future::zip(self.local_markers(marker, offsets, by_shard), join_all(remote)).await;
            failed.extend(local);
            failed.extend(remote.into_iter().flatten());
            if attempts == 0 {
                for (topic, partition) in &failed {
                    warn!(topic, partition, "transaction marker not written yet; retrying");
                }
            }
            left = failed;
            if !left.is_empty() {
                attempts += 1;
                glommio::timer::sleep(Duration::from_millis(MARKER_RETRY_MS)).await;
            }
        }
    }

    /// Writes `marker` to partitions this broker leads; returns those that failed.
    async fn local_markers(
        &self,
        marker: Marker,
        offsets: Vec<i32>,
        by_shard: BTreeMap<ShardId, Vec<TopicPartition>>,
    ) -> Vec<(String, i32)> {
        let mut failed = Vec::new();
        // The group coordinator writes the markers of `__consumer_offsets` partitions, so it
        // can publish (or drop) the transaction's offsets as the marker lands.
        for index in offsets {
            let written = self
                .groups
                .write_txn_marker(
                    index,
                    marker.producer_id,
                    marker.producer_epoch,
                    marker.coordinator_epoch,
                    marker.kind,
                )
                .await;
            if let Err(error) = written {
                debug!(partition = index, ?error, "offsets marker not written");
                failed.push((OFFSETS_TOPIC.to_string(), index));
            }
        }
        for (shard, tps) in by_shard {
            let request = PartitionRequest::WriteMarkers {
                producer_id: marker.producer_id,
                producer_epoch: marker.producer_epoch,
                coordinator_epoch: marker.coordinator_epoch,
                kind: marker.kind,
                partitions: tps.clone(),
            };
            match self.partitions.peers().call(shard, request).await {
                Ok(PartitionResponse::WriteMarkers(results)) => {
                    for (tp, result) in results {
                        match result {
                            Ok(_) | Err(PartitionError::UnknownTopicOrPartition) => {}
                            Err(error) => {
                                debug!(%tp, %error, "transaction marker not written");
                                failed.push((tp.topic.to_string(), tp.partition));
                            }
                        }
                    }
                }
                _ => failed.extend(tps.iter().map(|tp| (tp.topic.to_string(), tp.partition))),
            }
        }
        failed
    }

    /// Sends `marker` for `partitions` to the broker at `addr`, their leader, in one
    /// WriteTxnMarkers; returns the partitions that failed (all of them if the request did).
    /// UNKNOWN_TOPIC_OR_PARTITION from the leader is a failure too: its image may lag behind
    /// ours, and the next round's look at our own image says whether the topic is gone.
    async fn remote_markers(&self, marker: Marker, addr: String, partitions: Vec<(String, i32)>) -> Vec<(String, i32)> {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, index) in &partitions {
            topics.entry(topic.as_str()).or_default().push(*index);
        }
        let request = WriteTxnMarkersRequest {
            markers: vec![WriteTxnMarkersRequestMarker {
                producer_id: marker.producer_id.0,
                producer_epoch: marker.producer_epoch,
                transaction_result: marker.kind == ControlType::Commit,
                topics: topics
                    .into_iter()
                    .map(|(name, partition_indexes)| WriteTxnMarkersRequestTopic {
                        name: name.to_string(),
                        partition_indexes,
                    })
                    .collect(),
                coordinator_epoch: marker.coordinator_epoch,
            }],
        };
        let response = match self.inter_broker.send(&addr, WRITE_TXN_MARKERS_VERSION, &request).await {
            Ok(response) => response,
            Err(error) => {
                debug!(addr, %error, "WriteTxnMarkers to the partitions' leader failed");
                return partitions;
            }
        };
        let mut written: HashSet<(String, i32)> = HashSet::new();
        for topic in
            response.markers.into_iter().filter(|m| m.producer_id == marker.producer_id.0).flat_map(|m| m.topics)
        {
            for p in topic.partitions {
                if p.error_code == ErrorCode::None.code() {
                    written.insert((topic.name.clone(), p.partition_index));
                } else {
                    debug!(
                        addr,
                        topic = topic.name,
                        partition = p.partition_index,
                        code = p.error_code,
                        "marker refused"
                    );
                }
            }
        }
        partitions.into_iter().filter(|tp| !written.contains(tp)).collect()
    }

    /// KIP-890: whether `partitions` are in the open transaction of `transactional_id` with this
    /// producer id and epoch, asked of its coordinator wherever it is: through the shards when
    /// this broker coordinates it, else with AddPartitionsToTxn (`verify_only`) to the broker that
    /// does. Errors are the coordinator's, so callers map them alike either way.
    pub async fn verify(
        &self,
        transactional_id: &str,
        producer_id: ProducerId,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
    ) -> Result<(), ErrorCode> {
        let count = self.ensure_topic().await?;
        let state_partition = crate::txn::partition_for(transactional_id, count);
        if let PartitionLeader::Remote { addr, .. } = self.metadata.partition_leader(TRANSACTION_TOPIC, state_partition)
        {
            return self.verify_remote(&addr, transactional_id, producer_id, producer_epoch, partitions).await;
        }
        let op = TxnOp::Verify { producer_id, producer_epoch, partitions };
        self.route(transactional_id, op).await.map(drop)
    }

    async fn verify_remote(
        &self,
        addr: &str,
        transactional_id: &str,
        producer_id: ProducerId,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
    ) -> Result<(), ErrorCode> {
        let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (topic, index) in partitions {
            topics.entry(topic).or_default().push(index);
        }
        let request = AddPartitionsToTxnRequest {
            transactions: vec![AddPartitionsToTxnRequestTransaction {
                transactional_id: transactional_id.to_string(),
                producer_id: producer_id.0,
                producer_epoch,
                verify_only: true,
                topics: topics
                    .into_iter()
                    .map(|(name, partitions)| AddPartitionsToTxnRequestTopic { name, partitions })
                    .collect(),
            }],
            ..Default::default()
        };
        let response = self.inter_broker.send(addr, VERIFY_VERSION, &request).await.map_err(|error| {
            warn!(addr, transactional_id, %error, "cannot reach the transaction coordinator to verify");
            // As when a local coordinator cannot be reached: retriable, the client tries again.
            ErrorCode::CoordinatorNotAvailable
        })?;
        let answer = verify_answer(transactional_id, &response);
        if let Err(error) = answer {
            debug!(addr, transactional_id, ?error, "the transaction coordinator refused the verification");
        }
        answer
    }
    async fn new_producer_id(&self) -> Result<ProducerId, ErrorCode> {
        self.metadata.next_producer_id().await.map_err(|e| {
            warn!(error = %e, "could not allocate a producer id");
            ErrorCode::CoordinatorNotAvailable
        })
    }

    /// Appends `meta` to its partition and waits until it is committed; then it is the id's
    /// metadata here.
    async fn persist(&self, partition: i32, meta: &TxnMetadata) -> Result<(), ErrorCode> {
        self.persist_with(partition, meta, true).await
    }

    /// [`Self::persist`], waiting for the record to be committed only if `wait`.
    async fn persist_with(&self, partition: i32, meta: &TxnMetadata, wait: bool) -> Result<(), ErrorCode> {
        let key = TxnKey(meta.transactional_id.clone()).encode();
        let value = (meta.state != TxnState::Dead).then(|| TxnValue::of(meta).encode());
        self.append(partition, key, value, wait).await?;
        let mut txns = self.txns.borrow_mut();
        if meta.state == TxnState::Dead {
            txns.remove(&meta.transactional_id);
        } else {
            txns.insert(meta.transactional_id.clone(), meta.clone());
        }
        Ok(())
    }

    async fn append(
        &self,
        partition: i32,
        key: bytes::Bytes,
        value: Option<bytes::Bytes>,
        wait: bool,
    ) -> Result<(), ErrorCode> {
        let p = self.state_partition(partition).ok_or(ErrorCode::NotCoordinator)?;
        let now = Timestamp::now();
        let mut batch = BatchBuilder::new(now);
        batch.push(Some(&key), value.as_deref(), now, &[]);
        let appended = p.append(batch.build(), None).map_err(|e| {
            warn!(partition, error = %e, "append to {TRANSACTION_TOPIC} failed");
            ErrorCode::CoordinatorNotAvailable
        })?;
        if !wait {
            return Ok(());
        }
        appended.acknowledged(Acks::All, &p).await.map(|_| ()).map_err(|e| {
            warn!(partition, error = %e, "{TRANSACTION_TOPIC} append was not committed");
            ErrorCode::CoordinatorNotAvailable
        })
    }

    /// Forgets the ids of `__transaction_state` partitions this shard no longer leads (their new
    /// leader loads them from the log; requests here get NOT_COORDINATOR).
    fn unload(&self) {
        let me = self.metadata.shard_id();
        let lost: Vec<i32> = self
            .loaded
            .borrow()
            .iter()
            .copied()
            .filter(|p| self.metadata.route(TRANSACTION_TOPIC, *p).ok() != Some(me))
            .collect();
        if lost.is_empty() {
            return;
        }
        let count = self.state_partitions();
        for partition in &lost {
            self.loaded.borrow_mut().remove(partition);
        }
        let mut txns = self.txns.borrow_mut();
        let before = txns.len();
        txns.retain(|id, _| count > 0 && !lost.contains(&crate::txn::partition_for(id, count)));
        info!(partitions = ?lost, ids = before - txns.len(), "transactional ids unloaded (no longer the leader)");
    }

    /// Replays every `__transaction_state` partition this shard owns and has not loaded yet, and
    /// finishes the transactions found half ended.
    ///
    /// Returns the led partitions whose leadership has not committed its predecessors' records
    /// yet: call again once [`Partition::wait_leadership_committed`] resolves for them.
    pub async fn load(&self) -> Vec<Rc<Partition>> {
        let mut deferred = Vec::new();
        self.unload();
        let image = self.metadata.image();
        let Some(topic) = image.topics.get(TRANSACTION_TOPIC) else { return deferred };
        let me = self.metadata.shard_id();
        for (index, meta) in topic.partitions.iter().enumerate() {
            let Ok(partition) = i32::try_from(index) else { continue };
            if self.metadata.led_shard(meta) != Some(me) || self.loaded.borrow().contains(&partition) {
                continue;
            }
            let Some(p) = self.state_partition(partition) else { continue };
            if !p.leadership_committed() {
                // A new leader may hold records of the previous one above its high watermark:
                // the load waits until they are committed (the caller loads again then).
                deferred.push(p);
                continue;
            }
            match replay(&p).await {
                Ok(found) => {
                    let now = now_ms();
                    let mut unfinished = Vec::new();
                    let ids = found.len();
                    for (id, value) in found {
                        let meta = TxnMetadata {
                            transactional_id: id.clone(),
                            producer_id: value.producer_id,
                            producer_epoch: value.producer_epoch,
                            timeout_ms: value.timeout_ms,
                            state: value.state,
                            partitions: value.partitions,
                            start_ms: value.start_ms,
                            last_update_ms: value.last_update_ms.min(now),
                        };
                        if meta.state.is_preparing() {
                            unfinished.push(meta.clone());
                        }
                        self.txns.borrow_mut().insert(id, meta);
                    }
                    info!(partition, ids, "transactional ids loaded");
                    self.loaded.borrow_mut().insert(partition);
                    for meta in unfinished {
                        self.spawn_finish(partition, meta);
                    }
                }
                Err(e) => warn!(partition, error = %e, "cannot replay {TRANSACTION_TOPIC}; its ids stay unavailable"),
            }
        }
        deferred
    }

    /// Finishes a prepared transaction in the background (after a restart), holding its id busy.
    fn spawn_finish(&self, partition: i32, mut meta: TxnMetadata) {
        let Some(me) = self.me.borrow().upgrade() else { return };
        glommio::spawn_local(async move {
            let Ok(_busy) = me.claim(&meta.transactional_id) else { return };
            if meta.state == TxnState::PrepareEpochFence {
                meta.state = TxnState::PrepareAbort;
            }
            info!(transactional_id = %meta.transactional_id, state = meta.state.name(), "finishing a transaction");
            if let Err(e) = me.finish(partition, meta.clone()).await {
                warn!(transactional_id = %meta.transactional_id, error = ?e, "could not finish the transaction");
            }
        })
        .detach();
    }

    /// Aborts transactions past their timeout and forgets ids past
    /// `transactional.id.expiration.ms`, every `--transaction-abort-check-interval-ms`.
    pub fn spawn_timers(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        let every = Duration::from_millis(self.config.txn.abort_check_interval_ms.max(1));
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                let Some(coordinator) = weak.upgrade() else { return };
                coordinator.abort_timed_out().await;
                coordinator.expire_ids().await;
            }
        })
        .detach();
    }

    async fn abort_timed_out(&self) {
        let now = now_ms();
        let partitions = self.state_partitions();
        let due: Vec<TxnMetadata> = self.txns.borrow().values().filter(|m| m.timed_out(now)).cloned().collect();
        for meta in due {
            let Ok(_busy) = self.claim(&meta.transactional_id) else { continue };
            // Re-read: it may have moved on while we waited for the claim.
            let Some(meta) = self.txns.borrow().get(&meta.transactional_id).cloned() else { continue };
            if !meta.timed_out(now) {
                continue;
            }
            let partition = crate::txn::partition_for(&meta.transactional_id, partitions);
            // Kafka bumps the epoch, so the producer that let it time out is fenced.
            let epoch = meta.next_epoch().unwrap_or(meta.producer_epoch);
            let id = meta.transactional_id.as_str();
            info!(transactional_id = id, timeout_ms = meta.timeout_ms, "aborting a transaction past its timeout");
            if let Err(e) = self.end(partition, &meta, false, epoch).await {
                warn!(transactional_id = id, error = ?e, "could not abort the timed-out transaction");
            }
        }
    }

    async fn expire_ids(&self) {
        let now = now_ms();
        let expiration = self.config.txn.transactional_id_expiration_ms;
        let partitions = self.state_partitions();
        let due: Vec<TxnMetadata> =
            self.txns.borrow().values().filter(|m| m.expired(now, expiration)).cloned().collect();
        for mut meta in due {
            let Ok(_busy) = self.claim(&meta.transactional_id) else { continue };
            let partition = crate::txn::partition_for(&meta.transactional_id, partitions);
            meta.state = TxnState::Dead;
            match self.persist(partition, &meta).await {
                Ok(()) => info!(transactional_id = %meta.transactional_id, "transactional id expired"),
                Err(e) => warn!(transactional_id = %meta.transactional_id, error = ?e, "could not expire"),
            }
        }
    }
}

/// Reads a partition from its start: the latest value per id, tombstones removing ids.
async fn replay(p: &Partition) -> Result<HashMap<String, TxnValue>, PartitionError> {
    let mut found = HashMap::new();
    p.replay(|batch, limit| {
        if batch.is_control() {
            return;
        }
        let Ok(records) = batch.decompressed_records(limit) else { return };
        for record in RecordIter::with_records(batch, &records) {
            let Ok(record) = record else { break };
            let Some(TxnKey(id)) = record.key.and_then(|k| TxnKey::decode(k).ok()) else { continue };
            match record.value.map(TxnValue::decode) {
                Some(Ok(value)) => {
                    found.insert(id, value);
                }
                None => {
                    found.remove(&id);
                }
                Some(Err(e)) => warn!(transactional_id = %id, error = %e, "unreadable transaction metadata skipped"),
            }
        }
    })
    .await?;
    Ok(found)
}

/// The outcome of a remote verification: the request's error, else the first partition's error
/// (the coordinator answers all partitions of a transaction alike), else success. A response
/// without the transaction, or with a code this broker does not know, is the coordinator's
/// failure to answer, which the client retries.
fn verify_answer(transactional_id: &str, response: &AddPartitionsToTxnResponse) -> Result<(), ErrorCode> {
    let code = |raw: i16| ErrorCode::try_from(raw).unwrap_or(ErrorCode::UnknownServerError);
    if response.error_code != ErrorCode::None.code() {
        return Err(code(response.error_code));
    }
    let Some(txn) = response.results_by_transaction.iter().find(|t| t.transactional_id == transactional_id) else {
        return Err(ErrorCode::CoordinatorNotAvailable);
    };
    let errors = txn.topic_results.iter().flat_map(|t| &t.results_by_partition).map(|p| p.partition_error_code);
    match errors.into_iter().find(|&e| e != ErrorCode::None.code()) {
        Some(raw) => Err(code(raw)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::{
        AddPartitionsToTxnResponsePartition, AddPartitionsToTxnResponseTopic, AddPartitionsToTxnResponseTransaction,
    };

    fn answer(id: &str, codes: &[ErrorCode]) -> AddPartitionsToTxnResponse {
        let results_by_partition = codes
            .iter()
            .enumerate()
            .map(|(i, c)| AddPartitionsToTxnResponsePartition {
                partition_index: i32::try_from(i).unwrap(),
                partition_error_code: c.code(),
            })
            .collect();
        AddPartitionsToTxnResponse {
            results_by_transaction: vec![AddPartitionsToTxnResponseTransaction {
                transactional_id: id.to_string(),
                topic_results: vec![AddPartitionsToTxnResponseTopic { name: "t".into(), results_by_partition }],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_remote_verification_answers_as_the_coordinator_did() {
        assert_eq!(verify_answer("a", &answer("a", &[ErrorCode::None, ErrorCode::None])), Ok(()));
        let refused = answer("a", &[ErrorCode::None, ErrorCode::InvalidTxnState]);
        assert_eq!(verify_answer("a", &refused), Err(ErrorCode::InvalidTxnState));
        let mut whole = answer("a", &[ErrorCode::None]);
        whole.error_code = ErrorCode::NotCoordinator.code();
        assert_eq!(verify_answer("a", &whole), Err(ErrorCode::NotCoordinator));
        // Another id's answer, or a code this broker does not know, is no answer.
        assert_eq!(verify_answer("a", &answer("b", &[])), Err(ErrorCode::CoordinatorNotAvailable));
        let mut odd = answer("a", &[ErrorCode::None]);
        odd.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code = 32_000;
        assert_eq!(verify_answer("a", &odd), Err(ErrorCode::UnknownServerError));
    }
}
