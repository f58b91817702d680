//! The group coordinator on one shard: the groups whose `__consumer_offsets` partition this
//! shard owns, fed by [`GroupRequest`]s that handlers on any shard route here, with their
//! timers, persistence and reload.
//!
//! Lifecycle: one per shard (`ShardBroker` makes it), empty at start; a partition's groups are rebuilt by
//! replaying the partition when it opens ([`Coordinator::load`]) and requests for it get
//! COORDINATOR_LOAD_IN_PROGRESS until then. Cores: shard-local (`RefCell`s, never borrowed across
//! an `.await`); other shards reach it only through a `GroupRequest` over the mesh.
//!
//! Durability: a commit's offsets and every group metadata change are appended to the group's
//! partition through the normal append path and acknowledged only once durable under the flush
//! mode. Concurrent commits are independent appends, so the log's group commit batches their
//! fdatasyncs; nothing here serialises them.
//!
//! Transactions (KIP-98, KIP-447): TxnOffsetCommit appends its offsets as a transactional batch
//! stamped with the producer's id and epoch, and holds them pending in the group from the moment
//! the batch has its place in the log. The transaction coordinator ends the transaction in the
//! partition with [`Coordinator::write_txn_marker`]: the marker is appended and committed, then
//! the producer's offsets from before the marker become the groups' offsets or are dropped.
//! Replay does the same from the log: transactional offsets wait for their producer's marker,
//! and those still open at the end stay pending for the transaction coordinator to end.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use tracing::{info, warn};

use super::messages::{FetchedOffset, GroupOp, GroupRequest, GroupResponse, MemberRef, TxnCommit};
use crate::broker::config::BrokerConfig;
use crate::broker::metadata::Metadata;
use crate::broker::partition::{Acks, Partition, PartitionError, ShardPartitions};
use crate::group::{
    CommittedOffset, Effect, Group, GroupDescription, GroupState, GroupValue, JoinResult, OFFSETS_TOPIC, OffsetKey,
    OffsetValue, RecordKey, SyncResult, Waiter,
};
use crate::model::{
    BatchBuilder, ControlType, NO_SEQUENCE, Offset, ProducerId, RecordBatch, RecordIter, Timestamp, TopicId,
    TopicPartition, parse_marker, set_producer,
};
use crate::protocol::ErrorCode;
use crate::shard::{Peers, PeersSlot};

/// How often each shard runs its groups' timers (join deadlines, session expiry).
const TICK_MS: u64 = 100;

/// The group layer's handle on the other shards.
pub type GroupPeers = Peers<GroupRequest, GroupResponse>;

/// The groups one shard coordinates.
pub struct Coordinator {
    config: Arc<BrokerConfig>,
    metadata: Rc<Metadata>,
    partitions: Rc<ShardPartitions>,
    peers: PeersSlot<GroupRequest, GroupResponse>,
    groups: RefCell<HashMap<String, Group>>,
    /// The groups holding a producer's pending transactional offsets, by (`__consumer_offsets`
    /// partition, producer): the groups its marker there completes, without visiting every group.
    txn_groups: RefCell<HashMap<(i32, ProducerId), HashSet<String>>>,
    loaded: RefCell<HashSet<i32>>,
    waiters: RefCell<HashMap<Waiter, oneshot::Sender<Effect>>>,
    next_waiter: Cell<Waiter>,
}

fn now_ms() -> i64 {
    Timestamp::now().0
}

/// A fresh id suffix in Kafka's style (a random UUID).
pub fn fresh_suffix() -> String {
    let bytes = TopicId::random().map(|id| id.0).unwrap_or_else(|_| {
        // No OS randomness: fall back to the clock, still unique enough within one broker.
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&now_ms().to_be_bytes());
        b[8..].copy_from_slice(&u64::from(std::process::id()).to_be_bytes());
        b
    });
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

impl Coordinator {
    /// No groups yet; they are loaded as `__consumer_offsets` partitions open.
    pub fn new(config: Arc<BrokerConfig>, metadata: Rc<Metadata>, partitions: Rc<ShardPartitions>) -> Self {
        Coordinator {
            config,
            metadata,
            partitions,
            peers: PeersSlot::default(),
            groups: RefCell::new(HashMap::new()),
            txn_groups: RefCell::new(HashMap::new()),
            loaded: RefCell::new(HashSet::new()),
            waiters: RefCell::new(HashMap::new()),
            next_waiter: Cell::new(0),
        }
    }

    /// Connects the layer to its counterparts on the other shards (once, at startup).
    pub fn set_peers(&self, peers: GroupPeers) {
        self.peers.set(peers);
    }

    fn offsets_partition(&self, partition: i32) -> Option<Rc<Partition>> {
        self.partitions.get(&TopicPartition::new(OFFSETS_TOPIC, partition))
    }

    /// Whether this shard coordinates groups of `partition` now.
    fn check(&self, partition: i32) -> Result<Rc<Partition>, ErrorCode> {
        // This broker may hold a follower replica: only the leader coordinates.
        if self.metadata.route(OFFSETS_TOPIC, partition).ok() != Some(self.metadata.shard_id()) {
            return Err(ErrorCode::NotCoordinator);
        }
        let p = self.offsets_partition(partition).ok_or(ErrorCode::NotCoordinator)?;
        if !self.loaded.borrow().contains(&partition) {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        Ok(p)
    }

    fn waiter(&self) -> (Waiter, oneshot::Receiver<Effect>) {
        let id = self.next_waiter.get();
        self.next_waiter.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(id, tx);
        (id, rx)
    }

    /// Persists what `effects` ask, then delivers their replies (failing them if persisting did).
    async fn apply(&self, group: &str, partition: i32, effects: Vec<Effect>) {
        let mut failed = None;
        if effects.contains(&Effect::StoreGroup) {
            let value = self.groups.borrow().get(group).map(|g| g.stored().encode());
            if let Some(value) = value {
                let key = RecordKey::Group(group.to_string()).encode();
                if let Err(e) = self.append(partition, vec![(key, Some(value))]).await {
                    warn!(group, error = ?e, "could not persist group metadata");
                    failed = Some(e);
                }
            }
        }
        for effect in effects {
            let (waiter, effect) = match (effect, failed) {
                (Effect::StoreGroup, _) => continue,
                (Effect::Join(w, r), None) => (w, Effect::Join(w, r)),
                (Effect::Sync(w, r), None) => (w, Effect::Sync(w, r)),
                (Effect::Join(w, r), Some(e)) => (w, Effect::Join(w, JoinResult::error(e, &r.member_id))),
                (Effect::Sync(w, _), Some(e)) => (w, Effect::Sync(w, SyncResult::error(e))),
            };
            if let Some(tx) = self.waiters.borrow_mut().remove(&waiter) {
                // The requester may have gone (its connection closed): nothing to do then.
                let _ = tx.send(effect);
            }
        }
    }

    /// Serves one routed group request.
    pub async fn serve(&self, request: GroupRequest) -> GroupResponse {
        match request {
            GroupRequest::ForGroup { group, partition, op } => self.serve_op(group, partition, *op).await,
            GroupRequest::TxnMarker { partition, producer_id, producer_epoch, coordinator_epoch, kind } => {
                GroupResponse::Code(
                    match self.end_txn(partition, producer_id, producer_epoch, coordinator_epoch, kind).await {
                        Ok(()) => ErrorCode::None,
                        Err(e) => e,
                    },
                )
            }
            GroupRequest::List => GroupResponse::List(
                self.groups
                    .borrow()
                    .values()
                    .filter(|g| g.state() != GroupState::Dead)
                    .map(|g| (g.id.clone(), g.protocol_type().to_string(), g.state().name()))
                    .collect(),
            ),
        }
    }

    async fn serve_op(&self, group: String, partition: i32, op: GroupOp) -> GroupResponse {
        match op {
            GroupOp::Join(join) => {
                let member_id = join.member_id.clone();
                if let Err(e) = self.check(partition) {
                    return GroupResponse::Join(JoinResult::error(e, &member_id));
                }
                let (waiter, rx) = self.waiter();
                let mut effects = Vec::new();
                {
                    let mut groups = self.groups.borrow_mut();
                    let config = self.config.group;
                    let g = groups.entry(group.clone()).or_insert_with(|| Group::new(&group, config, now_ms()));
                    g.join(now_ms(), join, waiter, &mut effects);
                }
                self.apply(&group, partition, effects).await;
                match rx.await {
                    Ok(Effect::Join(_, result)) => GroupResponse::Join(result),
                    _ => GroupResponse::Join(JoinResult::error(ErrorCode::CoordinatorNotAvailable, &member_id)),
                }
            }
            GroupOp::Sync(sync) => {
                if let Err(e) = self.check(partition) {
                    return GroupResponse::Sync(SyncResult::error(e));
                }
                let (waiter, rx) = self.waiter();
                let mut effects = Vec::new();
                match self.groups.borrow_mut().get_mut(&group) {
                    Some(g) => g.sync(now_ms(), sync, waiter, &mut effects),
                    None => effects.push(Effect::Sync(waiter, SyncResult::error(ErrorCode::UnknownMemberId))),
                }
                self.apply(&group, partition, effects).await;
                match rx.await {
                    Ok(Effect::Sync(_, result)) => GroupResponse::Sync(result),
                    _ => GroupResponse::Sync(SyncResult::error(ErrorCode::CoordinatorNotAvailable)),
                }
            }
            GroupOp::Heartbeat(MemberRef { generation, member_id: member, instance_id: instance }) => {
                if let Err(e) = self.check(partition) {
                    return GroupResponse::Code(e);
                }
                GroupResponse::Code(match self.groups.borrow_mut().get_mut(&group) {
                    Some(g) => g.heartbeat(now_ms(), generation, &member, instance.as_deref()),
                    None => ErrorCode::UnknownMemberId,
                })
            }
            GroupOp::Leave(members) => {
                if let Err(e) = self.check(partition) {
                    return GroupResponse::Leave(Err(e));
                }
                let mut effects = Vec::new();
                let codes = match self.groups.borrow_mut().get_mut(&group) {
                    Some(g) => members
                        .iter()
                        .map(|m| g.leave(now_ms(), &m.member_id, m.instance_id.as_deref(), &mut effects))
                        .collect(),
                    None => return GroupResponse::Leave(Err(ErrorCode::UnknownMemberId)),
                };
                self.apply(&group, partition, effects).await;
                GroupResponse::Leave(Ok(codes))
            }
            GroupOp::Commit(member, offsets) => {
                GroupResponse::Code(self.commit(group, partition, member, offsets).await)
            }
            GroupOp::TxnCommit(commit) => GroupResponse::Code(self.txn_commit(group, partition, commit).await),
            GroupOp::FetchOffsets { partitions: wanted, require_stable } => {
                if let Err(e) = self.check(partition) {
                    return GroupResponse::Offsets(Err(e));
                }
                let groups = self.groups.borrow();
                let g = groups.get(&group);
                // Kafka: a partition whose offset a transaction may still replace is unstable for
                // a consumer that asks (KIP-447), so it cannot start from an offset about to move.
                let answer = |t: &str, p: i32| -> FetchedOffset {
                    match g {
                        Some(g) if require_stable && g.offsets_with_pending().is_unstable(t, p) => {
                            Err(ErrorCode::UnstableOffsetCommit)
                        }
                        Some(g) => Ok(g.offset(t, p).cloned()),
                        None => Ok(None),
                    }
                };
                let out = match wanted {
                    Some(wanted) => wanted
                        .into_iter()
                        .map(|(t, p)| {
                            let o = answer(&t, p);
                            (t, p, o)
                        })
                        .collect(),
                    None => g
                        .map(|g| g.offsets().map(|((t, p), _)| (t.clone(), *p, answer(t, *p))).collect())
                        .unwrap_or_default(),
                };
                GroupResponse::Offsets(Ok(out))
            }
            GroupOp::Describe => {
                if let Err(e) = self.check(partition) {
                    return GroupResponse::Describe(Err(e));
                }
                GroupResponse::Describe(Ok(match self.groups.borrow().get(&group) {
                    Some(g) => g.describe(),
                    // Kafka describes an unknown group as Dead, without an error.
                    None => GroupDescription {
                        state: GroupState::Dead.name(),
                        protocol_type: String::new(),
                        protocol: String::new(),
                        members: Vec::new(),
                    },
                }))
            }
            GroupOp::Delete => GroupResponse::Code(self.delete(group, partition).await),
            GroupOp::OffsetDelete(partitions) => {
                GroupResponse::OffsetDelete(self.offset_delete(group, partition, partitions).await)
            }
        }
    }

    async fn commit(
        &self,
        group: String,
        partition: i32,
        member: MemberRef,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> ErrorCode {
        let MemberRef { generation, member_id, instance_id } = member;
        if let Err(e) = self.check(partition) {
            return e;
        }
        let checked = self
            .check_committer(&group, generation, |g| g.check_commit(generation, &member_id, instance_id.as_deref()));
        if let Err(e) = checked {
            return e;
        }
        if offsets.is_empty() {
            return ErrorCode::None;
        }
        let at = match self.append(partition, offset_records(&group, &offsets)).await {
            Ok(at) => at,
            Err(e) => return e,
        };
        if let Some(g) = self.groups.borrow_mut().get_mut(&group) {
            g.commit(at, offsets);
        }
        ErrorCode::None
    }

    /// Whether `group` takes a commit (plain or transactional) from the member `check` judges;
    /// Kafka's rule for a group that does not exist: a commit outside group management
    /// (`generation` < 0) creates it, one naming a generation is from a stale member.
    fn check_committer(
        &self,
        group: &str,
        generation: i32,
        check: impl FnOnce(&Group) -> Result<(), ErrorCode>,
    ) -> Result<(), ErrorCode> {
        let mut groups = self.groups.borrow_mut();
        match groups.get(group) {
            Some(g) => check(g),
            None if generation < 0 => {
                groups.insert(group.to_string(), Group::new(group, self.config.group, now_ms()));
                Ok(())
            }
            None => Err(ErrorCode::IllegalGeneration),
        }
    }

    /// TxnOffsetCommit on the coordinating shard: the KIP-447 member checks, then the offsets
    /// appended as a transactional batch of the producer and held pending in the group.
    async fn txn_commit(&self, group: String, partition: i32, commit: TxnCommit) -> ErrorCode {
        let TxnCommit { producer_id, producer_epoch, member, offsets } = commit;
        let MemberRef { generation, member_id, instance_id } = member;
        let p = match self.check(partition) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let checked = self.check_committer(&group, generation, |g| {
            g.check_txn_commit(generation, &member_id, instance_id.as_deref())
        });
        if let Err(e) = checked {
            return e;
        }
        if offsets.is_empty() {
            return ErrorCode::None;
        }
        // Kafka's coordinator writes these with no sequence: the producer did not number them.
        let mut batch = offsets_batch(&offset_records(&group, &offsets));
        set_producer(&mut batch, producer_id, producer_epoch, NO_SEQUENCE, true);
        let appended = match p.append_for_coordinator(batch) {
            Ok(appended) => appended,
            Err(e) => return txn_append_error(partition, &e),
        };
        let at = appended.info().base_offset;
        // Pending from the moment the batch has its place in the log, before it is durable: a
        // marker for the producer can only be appended after it, and must find it even if the
        // marker is acknowledged first.
        if let Some(g) = self.groups.borrow_mut().get_mut(&group) {
            g.prepare_txn_commit(producer_id, at, offsets);
            self.txn_groups.borrow_mut().entry((partition, producer_id)).or_default().insert(group.clone());
        }
        match appended.acknowledged(Acks::All, &p).await {
            Ok(_) => ErrorCode::None,
            Err(e) => {
                warn!(partition, error = %e, "transactional offsets were not made durable");
                if let Some(g) = self.groups.borrow_mut().get_mut(&group) {
                    g.fail_txn_commit(producer_id, at);
                }
                ErrorCode::CoordinatorNotAvailable
            }
        }
    }

    /// Ends `producer_id`'s transaction in `partition` of `__consumer_offsets`: appends the
    /// marker, waits until it is committed, then commits or drops the producer's offsets that
    /// the groups of the partition hold pending from before the marker.
    async fn end_txn(
        &self,
        partition: i32,
        producer_id: ProducerId,
        producer_epoch: i16,
        coordinator_epoch: i32,
        kind: ControlType,
    ) -> Result<(), ErrorCode> {
        // Not before the partition is loaded: replay would miss a marker appended behind it
        // and the offsets it ends are not in memory yet.
        let p = self.check(partition)?;
        let (appended, _) =
            p.append_marker(producer_id, producer_epoch, coordinator_epoch, kind).map_err(|e| ErrorCode::from(&e))?;
        let marker_at = appended.info().base_offset;
        appended.acknowledged(Acks::All, &p).await.map_err(|e| {
            warn!(partition, error = %e, "transaction marker in __consumer_offsets was not committed");
            ErrorCode::from(&e)
        })?;
        self.complete_txn(partition, producer_id, marker_at, kind == ControlType::Commit);
        Ok(())
    }

    /// Commits or drops what the groups of `partition` hold pending for `producer_id` from
    /// before its marker at `marker_at`.
    fn complete_txn(&self, partition: i32, producer_id: ProducerId, marker_at: Offset, commit: bool) {
        let key = (partition, producer_id);
        let Some(names) = self.txn_groups.borrow_mut().remove(&key) else { return };
        let mut groups = self.groups.borrow_mut();
        // Offsets of the producer's next transaction, appended after this marker, stay pending.
        let still: HashSet<String> = names
            .into_iter()
            .filter(|name| match groups.get_mut(name) {
                Some(g) => {
                    g.complete_txn(producer_id, marker_at, commit);
                    g.offsets_with_pending().has_pending(producer_id)
                }
                None => false,
            })
            .collect();
        if !still.is_empty() {
            self.txn_groups.borrow_mut().entry(key).or_default().extend(still);
        }
    }

    /// Ends `producer_id`'s transaction in `offsets_partition` of `__consumer_offsets` (the
    /// transaction coordinator calls it for each such partition of a transaction, as Kafka's
    /// WriteTxnMarkers does through `onTransactionCompleted`): on the shard that owns the
    /// partition, appends the marker and waits until it is committed, then makes the
    /// producer's pending offsets in the partition's groups committed (COMMIT) or drops them
    /// (ABORT). Errors: UNKNOWN_TOPIC_OR_PARTITION if the partition does not exist (nothing to
    /// end), NOT_LEADER_OR_FOLLOWER if another broker leads it and LEADER_NOT_AVAILABLE if none
    /// does (the marker goes to the leader), COORDINATOR_LOAD_IN_PROGRESS while it loads and
    /// NOT_COORDINATOR if the shard does not have it (both retriable), the log's refusal (INVALID_PRODUCER_EPOCH,
    /// TRANSACTION_COORDINATOR_FENCED), or the storage error that kept the marker from being
    /// committed.
    pub async fn write_txn_marker(
        &self,
        offsets_partition: i32,
        producer_id: ProducerId,
        producer_epoch: i16,
        coordinator_epoch: i32,
        kind: ControlType,
    ) -> Result<(), ErrorCode> {
        // Led by another broker (or by none) is not "no such partition": the transaction
        // coordinator must send the marker to the leader, not drop it.
        let shard = self.metadata.route(OFFSETS_TOPIC, offsets_partition).map_err(|e| ErrorCode::from(&e))?;
        let request = GroupRequest::TxnMarker {
            partition: offsets_partition,
            producer_id,
            producer_epoch,
            coordinator_epoch,
            kind,
        };
        match self.peers.get().call(shard, request).await {
            Ok(GroupResponse::Code(ErrorCode::None)) => Ok(()),
            Ok(GroupResponse::Code(e)) => Err(e),
            Ok(_) => Err(ErrorCode::UnknownServerError),
            Err(_) => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }

    async fn delete(&self, group: String, partition: i32) -> ErrorCode {
        if let Err(e) = self.check(partition) {
            return e;
        }
        let records = {
            let groups = self.groups.borrow();
            let Some(g) = groups.get(&group).filter(|g| g.state() != GroupState::Dead) else {
                return ErrorCode::GroupIdNotFound;
            };
            if !g.has_no_members() {
                return ErrorCode::NonEmptyGroup;
            }
            let mut records = vec![(RecordKey::Group(group.clone()).encode(), None)];
            // Offsets pending in transactions go too (Kafka's `removeAllOffsets`): their
            // tombstones make replay drop them as well.
            let mut keys: BTreeSet<OffsetKey> = g.offsets().map(|(key, _)| key.clone()).collect();
            keys.extend(g.offsets_with_pending().pending_keys());
            for (topic, p) in keys {
                let key = RecordKey::Offset { group: group.clone(), topic, partition: p };
                records.push((key.encode(), None));
            }
            records
        };
        if let Err(e) = self.append(partition, records).await {
            return e;
        }
        if let Some(mut g) = self.groups.borrow_mut().remove(&group) {
            g.mark_dead(now_ms());
        }
        ErrorCode::None
    }

    async fn offset_delete(
        &self,
        group: String,
        partition: i32,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        self.check(partition)?;
        let (codes, doomed) = {
            let groups = self.groups.borrow();
            let g = groups.get(&group).filter(|g| g.state() != GroupState::Dead).ok_or(ErrorCode::GroupIdNotFound)?;
            if !g.has_no_members() && g.protocol_type() != "consumer" {
                return Err(ErrorCode::NonEmptyGroup);
            }
            let mut doomed = Vec::new();
            let codes: Vec<ErrorCode> = partitions
                .iter()
                .map(|(topic, p)| {
                    if g.subscribes_to(topic) {
                        ErrorCode::GroupSubscribedToTopic
                    } else {
                        if g.offset(topic, *p).is_some() || g.offsets_with_pending().is_unstable(topic, *p) {
                            doomed.push((topic.clone(), *p));
                        }
                        ErrorCode::None
                    }
                })
                .collect();
            (codes, doomed)
        };
        self.tombstone_offsets(&group, partition, doomed).await?;
        Ok(codes)
    }

    async fn tombstone_offsets(&self, group: &str, partition: i32, keys: Vec<(String, i32)>) -> Result<(), ErrorCode> {
        if keys.is_empty() {
            return Ok(());
        }
        let records = keys
            .iter()
            .map(|(topic, p)| {
                (RecordKey::Offset { group: group.to_string(), topic: topic.clone(), partition: *p }.encode(), None)
            })
            .collect();
        let at = self.append(partition, records).await?;
        if let Some(g) = self.groups.borrow_mut().get_mut(group) {
            g.forget_offsets(at, &keys);
        }
        Ok(())
    }

    /// Forgets the groups of `__consumer_offsets` partitions this shard no longer leads (their
    /// new leader loads them from the log; requests here get NOT_COORDINATOR).
    fn unload(&self) {
        let image = self.metadata.image();
        let me = self.metadata.shard_id();
        let count = image.topics.get(OFFSETS_TOPIC).map_or(0, |t| t.partitions.len());
        let lost: Vec<i32> = self
            .loaded
            .borrow()
            .iter()
            .copied()
            .filter(|p| self.metadata.route(OFFSETS_TOPIC, *p).ok() != Some(me))
            .collect();
        if lost.is_empty() {
            return;
        }
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        for partition in &lost {
            self.loaded.borrow_mut().remove(partition);
            self.txn_groups.borrow_mut().retain(|(p, _), _| p != partition);
        }
        let mut groups = self.groups.borrow_mut();
        let before = groups.len();
        // A partition count of 0 (the topic deleted) drops every group of the lost partitions.
        groups.retain(|id, _| count > 0 && !lost.contains(&crate::group::partition_for(id, count)));
        info!(partitions = ?lost, groups = before - groups.len(), "consumer groups unloaded (no longer the leader)");
    }

    /// Unloads what this shard no longer leads, then replays every `__consumer_offsets`
    /// partition it leads and has not loaded yet.
    ///
    /// Returns the led partitions whose leadership has not committed its predecessors' records
    /// yet: call again once [`Partition::wait_leadership_committed`] resolves for them.
    pub async fn load(&self) -> Vec<Rc<Partition>> {
        let mut deferred = Vec::new();
        self.unload();
        let image = self.metadata.image();
        let Some(topic) = image.topics.get(OFFSETS_TOPIC) else { return deferred };
        let me = self.metadata.shard_id();
        for (index, meta) in topic.partitions.iter().enumerate() {
            let Ok(partition) = i32::try_from(index) else { continue };
            if self.metadata.led_shard(meta) != Some(me) || self.loaded.borrow().contains(&partition) {
                continue;
            }
            let Some(p) = self.offsets_partition(partition) else { continue };
            if !p.leadership_committed() {
                // A new leader may hold records of the previous one above its high watermark:
                // the load waits until they are committed (the caller loads again then).
                deferred.push(p);
                continue;
            }
            let started = std::time::Instant::now();
            match replay(&p).await {
                Ok(Replayed { groups, offsets, pending }) => {
                    let now = now_ms();
                    let config = self.config.group;
                    let mut restored: HashMap<String, Group> = groups
                        .into_iter()
                        .map(|(id, value)| (id.clone(), Group::restore(&id, config, now, value)))
                        .collect();
                    for ((group, topic, part), (value, at)) in offsets {
                        let g = restored
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, config, value.commit_timestamp_ms));
                        g.commit(at, [((topic, part), CommittedOffset::from_value(&value))]);
                    }
                    // Transactions still open at the end of the log: their offsets stay pending
                    // until the transaction coordinator ends them here.
                    let mut open = 0;
                    for (producer_id, offsets) in pending {
                        for ((group, topic, part), (value, at)) in offsets {
                            let g = restored
                                .entry(group.clone())
                                .or_insert_with(|| Group::new(&group, config, value.commit_timestamp_ms));
                            g.prepare_txn_commit(
                                producer_id,
                                at,
                                [((topic, part), CommittedOffset::from_value(&value))],
                            );
                            self.txn_groups.borrow_mut().entry((partition, producer_id)).or_default().insert(group);
                        }
                        open += 1;
                    }
                    let (took_ms, log_bytes) = (started.elapsed().as_millis(), p.size_bytes());
                    info!(
                        partition,
                        groups = restored.len(),
                        open_transactions = open,
                        took_ms,
                        log_bytes,
                        "consumer groups loaded"
                    );
                    self.groups.borrow_mut().extend(restored);
                    self.loaded.borrow_mut().insert(partition);
                }
                Err(e) => warn!(partition, error = %e, "cannot replay __consumer_offsets; its groups stay unavailable"),
            }
        }
        deferred
    }

    /// Runs the group timers and offset expiry of this shard until the broker goes away.
    pub fn spawn_timers(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        glommio::spawn_local(async move {
            let mut last_expiry = now_ms();
            loop {
                glommio::timer::sleep(Duration::from_millis(TICK_MS)).await;
                let Some(coordinator) = weak.upgrade() else { return };
                let now = now_ms();
                let mut work = Vec::new();
                for (id, g) in coordinator.groups.borrow_mut().iter_mut() {
                    let mut effects = Vec::new();
                    g.tick(now, &mut effects);
                    if !effects.is_empty() {
                        work.push((id.clone(), effects));
                    }
                }
                for (id, effects) in work {
                    let partition = crate::group::partition_for(&id, coordinator.offsets_partitions());
                    coordinator.apply(&id, partition, effects).await;
                }
                let every = i64::try_from(coordinator.config.offsets_retention_check_interval_ms).unwrap_or(i64::MAX);
                if now - last_expiry >= every {
                    last_expiry = now;
                    coordinator.expire_offsets(now).await;
                }
            }
        })
        .detach();
    }

    async fn expire_offsets(&self, now: i64) {
        let retention = self.config.offsets_retention_ms;
        let expired: Vec<(String, Vec<(String, i32)>)> = self
            .groups
            .borrow()
            .values()
            .map(|g| (g.id.clone(), g.expired_offsets(now, retention)))
            .filter(|(_, keys)| !keys.is_empty())
            .collect();
        for (group, keys) in expired {
            let partition = crate::group::partition_for(&group, self.offsets_partitions());
            let count = keys.len();
            match self.tombstone_offsets(&group, partition, keys).await {
                Ok(()) => info!(group, count, "expired committed offsets"),
                Err(e) => warn!(group, error = ?e, "could not expire offsets"),
            }
        }
    }
}

impl Coordinator {
    /// Partitions of `__consumer_offsets` as the metadata image has them (the count the topic
    /// was created with, which a later change of the flag does not alter).
    pub fn offsets_partitions(&self) -> i32 {
        self.metadata.partition_count(OFFSETS_TOPIC)
    }

    /// Appends `records` (key, value or tombstone) as one batch to a `__consumer_offsets`
    /// partition and waits until it is durable; returns the batch's offset (its place among the
    /// group's records, see `group/offsets.rs`).
    async fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> Result<Offset, ErrorCode> {
        let p = self.offsets_partition(partition).ok_or(ErrorCode::NotCoordinator)?;
        let appended = p.append(offsets_batch(&records), None).map_err(|e| {
            warn!(partition, error = %e, "append to __consumer_offsets failed");
            ErrorCode::CoordinatorNotAvailable
        })?;
        let at = appended.info().base_offset;
        appended.acknowledged(Acks::All, &p).await.map(|_| at).map_err(|e| {
            warn!(partition, error = %e, "__consumer_offsets append was not made durable");
            ErrorCode::CoordinatorNotAvailable
        })
    }

    /// Creates `__consumer_offsets` (compacted) if it does not exist yet, as Kafka does on first
    /// use; returns its partition count.
    pub async fn ensure_offsets_topic(&self) -> Result<i32, ErrorCode> {
        self.metadata.ensure_internal_topic(OFFSETS_TOPIC, self.config.offsets_topic_partitions).await
    }

    /// Routes `op` on `group` to the shard that coordinates the group (the owner of its
    /// `__consumer_offsets` partition), creating that topic on first use.
    pub async fn route(&self, group: &str, op: GroupOp) -> Result<GroupResponse, ErrorCode> {
        let partitions = self.ensure_offsets_topic().await?;
        let partition = crate::group::partition_for(group, partitions);
        let shard = self.metadata.route(OFFSETS_TOPIC, partition).map_err(coordinator_error)?;
        let request = GroupRequest::ForGroup { group: group.to_string(), partition, op: Box::new(op) };
        self.peers.get().call(shard, request).await.map_err(|_| ErrorCode::CoordinatorNotAvailable)
    }

    /// Every committed offset of this shard's groups, as (group, topic, partition, offset), for
    /// a metrics scrape's consumer lag.
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let groups = self.groups.borrow();
        let offsets = groups.iter().flat_map(|(id, group)| {
            group
                .offsets()
                .map(move |((topic, partition), committed)| (id.clone(), topic.clone(), *partition, committed.offset))
        });
        offsets.collect()
    }

    /// ListGroups over every shard: (group id, protocol type, state) of each group, and
    /// COORDINATOR_NOT_AVAILABLE if a shard did not answer (the others' groups still count).
    pub async fn list_all(&self) -> (Vec<(String, String, &'static str)>, ErrorCode) {
        let mut groups = Vec::new();
        let mut error = ErrorCode::None;
        for shard in 0..self.peers.get().count() {
            match self.peers.get().call(shard, GroupRequest::List).await {
                Ok(GroupResponse::List(list)) => groups.extend(list),
                _ => error = ErrorCode::CoordinatorNotAvailable,
            }
        }
        (groups, error)
    }
}

/// One batch of `records` (key, value or tombstone) for `__consumer_offsets`.
fn offsets_batch(records: &[(Bytes, Option<Bytes>)]) -> bytes::BytesMut {
    let now = Timestamp::now();
    let mut batch = BatchBuilder::new(now);
    for (key, value) in records {
        batch.push(Some(key), value.as_deref(), now, &[]);
    }
    batch.build()
}

/// The error a TxnOffsetCommit gets when its batch is refused: the producer checks' own codes
/// (a fenced epoch, a broken transaction rule), Kafka's INVALID_COMMIT_OFFSET_SIZE for a batch
/// over `max.message.bytes`, COORDINATOR_NOT_AVAILABLE (retriable) for the rest, as for a plain
/// commit.
fn txn_append_error(partition: i32, e: &PartitionError) -> ErrorCode {
    match e {
        PartitionError::Storage(crate::storage::Error::Producer(_)) => ErrorCode::from(e),
        PartitionError::Storage(crate::storage::Error::InvalidBatch(crate::model::BatchError::TooLarge { .. })) => {
            ErrorCode::InvalidCommitOffsetSize
        }
        _ => {
            warn!(partition, error = %e, "transactional append to __consumer_offsets failed");
            ErrorCode::CoordinatorNotAvailable
        }
    }
}

/// A group's offset in the log: (group, topic, partition).
type LoggedKey = (String, String, i32);
/// An offset read back, with the offset of the batch that carried it.
type LoggedOffset = (OffsetValue, Offset);

/// What replaying a partition found.
#[derive(Default)]
struct Replayed {
    /// The latest metadata of each group.
    groups: HashMap<String, GroupValue>,
    /// The committed offsets.
    offsets: HashMap<LoggedKey, LoggedOffset>,
    /// Transactional offsets whose marker has not been read (yet), by producer.
    pending: HashMap<ProducerId, HashMap<LoggedKey, LoggedOffset>>,
}

/// Reads a partition from its start: the latest value per key, tombstones removing keys,
/// transactional offsets held per producer until its marker.
/// The `__consumer_offsets` records (key, value) of `group`'s `offsets`.
fn offset_records(group: &str, offsets: &[((String, i32), CommittedOffset)]) -> Vec<(Bytes, Option<Bytes>)> {
    offsets
        .iter()
        .map(|((topic, p), o)| {
            let key = RecordKey::Offset { group: group.to_string(), topic: topic.clone(), partition: *p };
            (key.encode(), Some(o.value().encode()))
        })
        .collect()
}

async fn replay(p: &Partition) -> Result<Replayed, PartitionError> {
    let mut replayed = Replayed::default();
    p.replay(|batch, limit| replayed.apply_batch(batch, limit)).await?;
    Ok(replayed)
}

impl Replayed {
    fn apply_batch(&mut self, batch: &RecordBatch<'_>, limit: usize) {
        let producer_id = batch.producer_id();
        if batch.is_control() {
            // A marker ends the producer's transaction: never offset records, whatever its
            // bytes hold. One this version cannot read ends nothing (Kafka skips those too).
            if let Some((kind, _)) = parse_marker(batch) {
                self.complete_txn(producer_id, kind == ControlType::Commit);
            }
            return;
        }
        let transactional = batch.is_transactional();
        let at = batch.base_offset();
        let Ok(records) = batch.decompressed_records(limit) else { return };
        for record in RecordIter::with_records(batch, &records) {
            let Ok(record) = record else { break };
            let Some(key) = record.key.and_then(|k| RecordKey::decode(k).ok()) else { continue };
            match key {
                // Kafka writes group metadata only outside transactions, and ignores it inside.
                RecordKey::Group(_) if transactional => {}
                RecordKey::Group(id) => match record.value.map(GroupValue::decode) {
                    Some(Ok(value)) => {
                        self.groups.insert(id, value);
                    }
                    None => {
                        self.groups.remove(&id);
                    }
                    Some(Err(e)) => warn!(group = %id, error = %e, "unreadable group metadata skipped"),
                },
                RecordKey::Offset { group, topic, partition } => {
                    let key = (group, topic, partition);
                    let value = match record.value.map(OffsetValue::decode) {
                        Some(Ok(value)) => Some(value),
                        None => None,
                        Some(Err(e)) => {
                            warn!(error = %e, "unreadable committed offset skipped");
                            continue;
                        }
                    };
                    if transactional {
                        let pending = self.pending.entry(producer_id).or_default();
                        match value {
                            Some(value) => pending.insert(key, (value, at)),
                            None => pending.remove(&key),
                        };
                        continue;
                    }
                    match value {
                        Some(value) => {
                            self.offsets.insert(key, (value, at));
                        }
                        None => {
                            // A tombstone drops the offsets transactions hold for the key too,
                            // as deleting them live does (`GroupOffsets::forget`).
                            self.offsets.remove(&key);
                            for pending in self.pending.values_mut() {
                                pending.remove(&key);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The marker of `producer_id`'s transaction: its offsets become committed (each unless a
    /// later plain commit of the partition was read already) or are dropped.
    fn complete_txn(&mut self, producer_id: ProducerId, commit: bool) {
        let Some(pending) = self.pending.remove(&producer_id) else { return };
        if !commit {
            return;
        }
        for (key, (value, at)) in pending {
            if self.offsets.get(&key).is_none_or(|(_, kept)| *kept <= at) {
                self.offsets.insert(key, (value, at));
            }
        }
    }
}

/// A group request reached a broker that does not lead the group's `__consumer_offsets`
/// partition: NOT_COORDINATOR sends the client to FindCoordinator again.
pub fn coordinator_error(e: crate::broker::partition::PartitionError) -> ErrorCode {
    match e {
        crate::broker::partition::PartitionError::NotLeader => ErrorCode::NotCoordinator,
        _ => ErrorCode::CoordinatorNotAvailable,
    }
}
