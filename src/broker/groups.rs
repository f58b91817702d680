//! The group coordinator on one shard: the groups whose `__consumer_offsets` partition this
//! shard owns, fed by [`GroupRequest`]s that handlers on any shard route here, with their
//! timers, persistence and reload.
//!
//! Lifecycle: one per [`ShardBroker`], empty at start; a partition's groups are rebuilt by
//! replaying the partition when it opens ([`Coordinator::load`]) and requests for it get
//! COORDINATOR_LOAD_IN_PROGRESS until then. Cores: shard-local (`RefCell`s, never borrowed across
//! an `.await`); other shards reach it only through `ShardRequest::Group`.
//!
//! Durability: a commit's offsets and every group metadata change are appended to the group's
//! partition through the normal append path and acknowledged only once durable under the flush
//! mode. Concurrent commits are independent appends, so the log's group commit batches their
//! fdatasyncs; nothing here serialises them.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use tracing::{info, warn};

use super::partition::Partition;
use super::shard::ShardBroker;
use crate::group::{
    CommittedOffset, Effect, Group, GroupDescription, GroupState, GroupValue, JoinRequest, JoinResult, OFFSETS_TOPIC,
    OffsetValue, RecordKey, SyncRequest, SyncResult, Waiter,
};
use crate::model::{BatchBuilder, BatchIter, RecordBatch, RecordIter, Timestamp, TopicPartition};
use crate::protocol::ErrorCode;
use crate::storage::ReadLimits;

/// How often each shard runs its groups' timers (join deadlines, session expiry).
const TICK_MS: u64 = 100;
/// Bytes read at a time while replaying a partition.
const REPLAY_READ_BYTES: u64 = 1024 * 1024;

/// A group operation, routed to the shard that coordinates the group.
#[derive(Debug)]
pub enum GroupRequest {
    /// JoinGroup.
    Join(String, i32, JoinRequest),
    /// SyncGroup.
    Sync(String, i32, SyncRequest),
    /// Heartbeat: generation, member id, static id.
    Heartbeat(String, i32, i32, String, Option<String>),
    /// LeaveGroup: (member id, static id) each.
    Leave(String, i32, Vec<(String, Option<String>)>),
    /// OffsetCommit.
    Commit(Commit),
    /// OffsetFetch: the partitions, or `None` for all.
    FetchOffsets(String, i32, Option<Vec<(String, i32)>>),
    /// ListGroups (this shard's groups).
    List,
    /// DescribeGroups.
    Describe(String, i32),
    /// DeleteGroups.
    Delete(String, i32),
    /// OffsetDelete.
    OffsetDelete(String, i32, Vec<(String, i32)>),
}

/// An OffsetCommit for the coordinating shard.
#[derive(Debug)]
pub struct Commit {
    /// Group id.
    pub group: String,
    /// Its partition of `__consumer_offsets`.
    pub partition: i32,
    /// Generation, or -1.
    pub generation: i32,
    /// Member id.
    pub member_id: String,
    /// Static id.
    pub instance_id: Option<String>,
    /// What to commit.
    pub offsets: Vec<((String, i32), CommittedOffset)>,
}

/// The answer to a [`GroupRequest`].
#[derive(Debug)]
pub enum GroupResponse {
    /// JoinGroup.
    Join(JoinResult),
    /// SyncGroup.
    Sync(SyncResult),
    /// One error code (Heartbeat, DeleteGroups, a commit).
    Code(ErrorCode),
    /// LeaveGroup: a top-level error, or one per member.
    Leave(Result<Vec<ErrorCode>, ErrorCode>),
    /// OffsetFetch: (topic, partition, offset if committed).
    Offsets(Result<Vec<(String, i32, Option<CommittedOffset>)>, ErrorCode>),
    /// ListGroups: (group id, protocol type, state).
    List(Vec<(String, String, &'static str)>),
    /// DescribeGroups.
    Describe(Result<GroupDescription, ErrorCode>),
    /// OffsetDelete: a top-level error, or one per partition.
    OffsetDelete(Result<Vec<ErrorCode>, ErrorCode>),
}

/// The groups one shard coordinates.
#[derive(Default)]
pub struct Coordinator {
    groups: RefCell<HashMap<String, Group>>,
    loaded: RefCell<HashSet<i32>>,
    waiters: RefCell<HashMap<Waiter, oneshot::Sender<Effect>>>,
    next_waiter: Cell<Waiter>,
}

fn now_ms() -> i64 {
    Timestamp::now().0
}

/// A fresh id suffix in Kafka's style (a random UUID).
pub(crate) fn fresh_suffix() -> String {
    let bytes = super::metadata::TopicId::random().map(|id| id.0).unwrap_or_else(|_| {
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
    fn offsets_partition(broker: &ShardBroker, partition: i32) -> Option<Rc<Partition>> {
        broker.partition(&TopicPartition::new(OFFSETS_TOPIC, partition))
    }

    /// Whether this shard coordinates groups of `partition` now.
    fn check(&self, broker: &ShardBroker, partition: i32) -> Result<Rc<Partition>, ErrorCode> {
        let p = Self::offsets_partition(broker, partition).ok_or(ErrorCode::NotCoordinator)?;
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
    async fn apply(&self, broker: &ShardBroker, group: &str, partition: i32, effects: Vec<Effect>) {
        let mut failed = None;
        if effects.contains(&Effect::StoreGroup) {
            let value = self.groups.borrow().get(group).map(|g| g.stored().encode());
            if let Some(value) = value {
                let key = RecordKey::Group(group.to_string()).encode();
                if let Err(e) = append(broker, partition, vec![(key, Some(value))]).await {
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
    pub(crate) async fn serve(&self, broker: &ShardBroker, request: GroupRequest) -> GroupResponse {
        match request {
            GroupRequest::Join(group, partition, join) => {
                let member_id = join.member_id.clone();
                if let Err(e) = self.check(broker, partition) {
                    return GroupResponse::Join(JoinResult::error(e, &member_id));
                }
                let (waiter, rx) = self.waiter();
                let mut effects = Vec::new();
                {
                    let mut groups = self.groups.borrow_mut();
                    let config = broker.config.group;
                    let g = groups.entry(group.clone()).or_insert_with(|| Group::new(&group, config, now_ms()));
                    g.join(now_ms(), join, waiter, &mut effects);
                }
                self.apply(broker, &group, partition, effects).await;
                match rx.await {
                    Ok(Effect::Join(_, result)) => GroupResponse::Join(result),
                    _ => GroupResponse::Join(JoinResult::error(ErrorCode::CoordinatorNotAvailable, &member_id)),
                }
            }
            GroupRequest::Sync(group, partition, sync) => {
                if let Err(e) = self.check(broker, partition) {
                    return GroupResponse::Sync(SyncResult::error(e));
                }
                let (waiter, rx) = self.waiter();
                let mut effects = Vec::new();
                match self.groups.borrow_mut().get_mut(&group) {
                    Some(g) => g.sync(now_ms(), sync, waiter, &mut effects),
                    None => effects.push(Effect::Sync(waiter, SyncResult::error(ErrorCode::UnknownMemberId))),
                }
                self.apply(broker, &group, partition, effects).await;
                match rx.await {
                    Ok(Effect::Sync(_, result)) => GroupResponse::Sync(result),
                    _ => GroupResponse::Sync(SyncResult::error(ErrorCode::CoordinatorNotAvailable)),
                }
            }
            GroupRequest::Heartbeat(group, partition, generation, member, instance) => {
                if let Err(e) = self.check(broker, partition) {
                    return GroupResponse::Code(e);
                }
                GroupResponse::Code(match self.groups.borrow_mut().get_mut(&group) {
                    Some(g) => g.heartbeat(now_ms(), generation, &member, instance.as_deref()),
                    None => ErrorCode::UnknownMemberId,
                })
            }
            GroupRequest::Leave(group, partition, members) => {
                if let Err(e) = self.check(broker, partition) {
                    return GroupResponse::Leave(Err(e));
                }
                let mut effects = Vec::new();
                let codes = match self.groups.borrow_mut().get_mut(&group) {
                    Some(g) => members
                        .iter()
                        .map(|(member, instance)| g.leave(now_ms(), member, instance.as_deref(), &mut effects))
                        .collect(),
                    None => return GroupResponse::Leave(Err(ErrorCode::UnknownMemberId)),
                };
                self.apply(broker, &group, partition, effects).await;
                GroupResponse::Leave(Ok(codes))
            }
            GroupRequest::Commit(commit) => GroupResponse::Code(self.commit(broker, commit).await),
            GroupRequest::FetchOffsets(group, partition, wanted) => {
                if let Err(e) = self.check(broker, partition) {
                    return GroupResponse::Offsets(Err(e));
                }
                let groups = self.groups.borrow();
                let g = groups.get(&group);
                let out = match wanted {
                    Some(wanted) => wanted
                        .into_iter()
                        .map(|(t, p)| {
                            let o = g.and_then(|g| g.offset(&t, p)).cloned();
                            (t, p, o)
                        })
                        .collect(),
                    None => g
                        .map(|g| g.offsets().map(|((t, p), o)| (t.clone(), *p, Some(o.clone()))).collect())
                        .unwrap_or_default(),
                };
                GroupResponse::Offsets(Ok(out))
            }
            GroupRequest::List => GroupResponse::List(
                self.groups
                    .borrow()
                    .values()
                    .filter(|g| g.state() != GroupState::Dead)
                    .map(|g| (g.id.clone(), g.protocol_type().to_string(), g.state().name()))
                    .collect(),
            ),
            GroupRequest::Describe(group, partition) => {
                if let Err(e) = self.check(broker, partition) {
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
            GroupRequest::Delete(group, partition) => GroupResponse::Code(self.delete(broker, group, partition).await),
            GroupRequest::OffsetDelete(group, partition, partitions) => {
                GroupResponse::OffsetDelete(self.offset_delete(broker, group, partition, partitions).await)
            }
        }
    }

    async fn commit(&self, broker: &ShardBroker, commit: Commit) -> ErrorCode {
        let Commit { group, partition, generation, member_id, instance_id, offsets } = commit;
        if let Err(e) = self.check(broker, partition) {
            return e;
        }
        {
            let mut groups = self.groups.borrow_mut();
            let checked = match groups.get(&group) {
                Some(g) => g.check_commit(generation, &member_id, instance_id.as_deref()),
                // Kafka: a commit outside group management creates the group; one that names a
                // generation of a group that does not exist is from a stale member.
                None if generation < 0 => {
                    groups.insert(group.clone(), Group::new(&group, broker.config.group, now_ms()));
                    Ok(())
                }
                None => Err(ErrorCode::IllegalGeneration),
            };
            if let Err(e) = checked {
                return e;
            }
        }
        if offsets.is_empty() {
            return ErrorCode::None;
        }
        let records = offsets
            .iter()
            .map(|((topic, p), o)| {
                let key = RecordKey::Offset { group: group.clone(), topic: topic.clone(), partition: *p };
                (key.encode(), Some(o.value().encode()))
            })
            .collect();
        if let Err(e) = append(broker, partition, records).await {
            return e;
        }
        if let Some(g) = self.groups.borrow_mut().get_mut(&group) {
            g.commit(offsets);
        }
        ErrorCode::None
    }

    async fn delete(&self, broker: &ShardBroker, group: String, partition: i32) -> ErrorCode {
        if let Err(e) = self.check(broker, partition) {
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
            for ((topic, p), _) in g.offsets() {
                let key = RecordKey::Offset { group: group.clone(), topic: topic.clone(), partition: *p };
                records.push((key.encode(), None));
            }
            records
        };
        if let Err(e) = append(broker, partition, records).await {
            return e;
        }
        if let Some(mut g) = self.groups.borrow_mut().remove(&group) {
            g.mark_dead(now_ms());
        }
        ErrorCode::None
    }

    async fn offset_delete(
        &self,
        broker: &ShardBroker,
        group: String,
        partition: i32,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        self.check(broker, partition)?;
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
                        if g.offset(topic, *p).is_some() {
                            doomed.push((topic.clone(), *p));
                        }
                        ErrorCode::None
                    }
                })
                .collect();
            (codes, doomed)
        };
        self.tombstone_offsets(broker, &group, partition, doomed).await?;
        Ok(codes)
    }

    async fn tombstone_offsets(
        &self,
        broker: &ShardBroker,
        group: &str,
        partition: i32,
        keys: Vec<(String, i32)>,
    ) -> Result<(), ErrorCode> {
        if keys.is_empty() {
            return Ok(());
        }
        let records = keys
            .iter()
            .map(|(topic, p)| {
                (RecordKey::Offset { group: group.to_string(), topic: topic.clone(), partition: *p }.encode(), None)
            })
            .collect();
        append(broker, partition, records).await?;
        if let Some(g) = self.groups.borrow_mut().get_mut(group) {
            g.forget_offsets(&keys);
        }
        Ok(())
    }

    /// Replays every `__consumer_offsets` partition this shard owns and has not loaded yet.
    pub(crate) async fn load(&self, broker: &ShardBroker) {
        let image = broker.image();
        let Some(topic) = image.topics.get(OFFSETS_TOPIC) else { return };
        let me = broker.shard_id();
        for (index, meta) in topic.partitions.iter().enumerate() {
            let Ok(partition) = i32::try_from(index) else { continue };
            if meta.shard != me || self.loaded.borrow().contains(&partition) {
                continue;
            }
            let Some(p) = Self::offsets_partition(broker, partition) else { continue };
            match replay(&p).await {
                Ok((groups, offsets)) => {
                    let now = now_ms();
                    let mut restored: HashMap<String, Group> = groups
                        .into_iter()
                        .map(|(id, value)| (id.clone(), Group::restore(&id, broker.config.group, now, value)))
                        .collect();
                    for ((group, topic, part), value) in offsets {
                        let g = restored
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, broker.config.group, value.commit_timestamp_ms));
                        let metadata = Some(value.metadata.clone());
                        let offset = CommittedOffset {
                            offset: value.offset,
                            leader_epoch: value.leader_epoch,
                            metadata,
                            commit_timestamp_ms: value.commit_timestamp_ms,
                        };
                        g.commit([((topic, part), offset)]);
                    }
                    info!(partition, groups = restored.len(), "consumer groups loaded");
                    self.groups.borrow_mut().extend(restored);
                    self.loaded.borrow_mut().insert(partition);
                }
                Err(e) => warn!(partition, error = %e, "cannot replay __consumer_offsets; its groups stay unavailable"),
            }
        }
    }

    /// Runs the group timers and offset expiry of this shard until the broker goes away.
    pub(crate) fn spawn_timers(broker: &Rc<ShardBroker>) {
        let weak = Rc::downgrade(broker);
        glommio::spawn_local(async move {
            let mut last_expiry = now_ms();
            loop {
                glommio::timer::sleep(Duration::from_millis(TICK_MS)).await;
                let Some(broker) = weak.upgrade() else { return };
                let coordinator = &broker.groups;
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
                    let partition = crate::group::partition_for(&id, offsets_partitions(&broker));
                    coordinator.apply(&broker, &id, partition, effects).await;
                }
                let every = i64::try_from(broker.config.offsets_retention_check_interval_ms).unwrap_or(i64::MAX);
                if now - last_expiry >= every {
                    last_expiry = now;
                    coordinator.expire_offsets(&broker, now).await;
                }
            }
        })
        .detach();
    }

    async fn expire_offsets(&self, broker: &ShardBroker, now: i64) {
        let retention = broker.config.offsets_retention_ms;
        let expired: Vec<(String, Vec<(String, i32)>)> = self
            .groups
            .borrow()
            .values()
            .map(|g| (g.id.clone(), g.expired_offsets(now, retention)))
            .filter(|(_, keys)| !keys.is_empty())
            .collect();
        for (group, keys) in expired {
            let partition = crate::group::partition_for(&group, offsets_partitions(broker));
            let count = keys.len();
            match self.tombstone_offsets(broker, &group, partition, keys).await {
                Ok(()) => info!(group, count, "expired committed offsets"),
                Err(e) => warn!(group, error = ?e, "could not expire offsets"),
            }
        }
    }
}

/// Partitions of `__consumer_offsets` as the metadata image has them (the count the topic was
/// created with, which a later change of the flag does not alter).
pub(crate) fn offsets_partitions(broker: &ShardBroker) -> i32 {
    broker.image().topics.get(OFFSETS_TOPIC).map_or(0, |t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
}

/// Appends `records` (key, value or tombstone) as one batch to a `__consumer_offsets` partition
/// and waits until it is durable.
async fn append(broker: &ShardBroker, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), ErrorCode> {
    let p = Coordinator::offsets_partition(broker, partition).ok_or(ErrorCode::NotCoordinator)?;
    let now = Timestamp::now();
    let mut batch = BatchBuilder::new(now);
    for (key, value) in &records {
        batch.push(Some(key), value.as_deref(), now, &[]);
    }
    let (pending, _) = p.append(batch.build()).map_err(|e| {
        warn!(partition, error = %e, "append to __consumer_offsets failed");
        ErrorCode::CoordinatorNotAvailable
    })?;
    pending.durable().await.map(|_| ()).map_err(|e| {
        warn!(partition, error = %e, "__consumer_offsets append was not made durable");
        ErrorCode::CoordinatorNotAvailable
    })
}

type Replayed = (HashMap<String, GroupValue>, HashMap<(String, String, i32), OffsetValue>);

/// Reads a partition from its start: the latest value per key, tombstones removing keys.
async fn replay(p: &Partition) -> Result<Replayed, crate::storage::Error> {
    let mut groups = HashMap::new();
    let mut offsets = HashMap::new();
    let end = p.log.high_watermark();
    let mut at = p.log.log_start_offset();
    let limit = p.config.borrow().log.batch_bytes_max();
    while at < end {
        let slice = p.log.read(at, ReadLimits { max_bytes: REPLAY_READ_BYTES, upper_bound: end }).await?;
        if slice.is_empty() {
            break;
        }
        let bytes = slice.to_vec().await.map_err(|e| crate::storage::Error::Io {
            context: "replaying __consumer_offsets".into(),
            source: std::sync::Arc::new(e),
        })?;
        let before = at;
        for batch in BatchIter::new(&bytes, limit) {
            let Ok(batch) = batch else { break };
            at = at.max(batch.next_offset());
            apply_batch(&batch, limit, &mut groups, &mut offsets);
        }
        if at <= before {
            break;
        }
    }
    Ok((groups, offsets))
}

fn apply_batch(
    batch: &RecordBatch<'_>,
    limit: usize,
    groups: &mut HashMap<String, GroupValue>,
    offsets: &mut HashMap<(String, String, i32), OffsetValue>,
) {
    if batch.is_control() {
        return;
    }
    let Ok(records) = batch.decompressed_records(limit) else { return };
    for record in RecordIter::with_records(batch, &records) {
        let Ok(record) = record else { break };
        let Some(key) = record.key.and_then(|k| RecordKey::decode(k).ok()) else { continue };
        match key {
            RecordKey::Group(id) => match record.value.map(GroupValue::decode) {
                Some(Ok(value)) => {
                    groups.insert(id, value);
                }
                None => {
                    groups.remove(&id);
                }
                Some(Err(e)) => warn!(group = %id, error = %e, "unreadable group metadata skipped"),
            },
            RecordKey::Offset { group, topic, partition } => {
                let key = (group, topic, partition);
                match record.value.map(OffsetValue::decode) {
                    Some(Ok(value)) => {
                        offsets.insert(key, value);
                    }
                    None => {
                        offsets.remove(&key);
                    }
                    Some(Err(e)) => warn!(error = %e, "unreadable committed offset skipped"),
                }
            }
        }
    }
}

/// Creates `__consumer_offsets` (compacted) if it does not exist yet, as Kafka does on first use.
pub(crate) async fn ensure_offsets_topic(broker: &Rc<ShardBroker>) -> Result<i32, ErrorCode> {
    let partitions = offsets_partitions(broker);
    if partitions > 0 {
        return Ok(partitions);
    }
    let topic = super::controller::NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: broker.config.offsets_topic_partitions,
        replication_factor: -1,
        assignments: Vec::new(),
        configs: [("cleanup.policy".to_string(), "compact".to_string())].into_iter().collect(),
    };
    let request = super::shard::ShardRequest::Controller(super::controller::ControllerRequest::CreateTopics {
        topics: vec![topic],
        validate_only: false,
    });
    match broker.call(0, request).await {
        Ok(super::shard::ShardResponse::Controller(super::controller::ControllerResponse::CreateTopics(results))) => {
            for (_, result) in results {
                match result {
                    Ok(_) => info!(partitions = broker.config.offsets_topic_partitions, "created __consumer_offsets"),
                    // Another connection created it first.
                    Err(super::controller::TopicError::AlreadyExists(_)) => {}
                    Err(e) => warn!(error = %e, "cannot create __consumer_offsets"),
                }
            }
        }
        _ => warn!("controller unavailable while creating __consumer_offsets"),
    }
    match offsets_partitions(broker) {
        0 => Err(ErrorCode::CoordinatorNotAvailable),
        n => Ok(n),
    }
}

/// Routes a request about `group` to the shard that coordinates it (the owner of its
/// `__consumer_offsets` partition); `make` builds the request for that partition.
pub(crate) async fn call(
    broker: &Rc<ShardBroker>,
    group: &str,
    make: impl FnOnce(i32) -> GroupRequest,
) -> Result<GroupResponse, ErrorCode> {
    let partitions = ensure_offsets_topic(broker).await?;
    let partition = crate::group::partition_for(group, partitions);
    let shard = broker.owner_of(OFFSETS_TOPIC, partition).ok_or(ErrorCode::CoordinatorNotAvailable)?;
    match broker.call(shard, super::shard::ShardRequest::Group(make(partition))).await {
        Ok(super::shard::ShardResponse::Group(response)) => Ok(response),
        _ => Err(ErrorCode::CoordinatorNotAvailable),
    }
}
