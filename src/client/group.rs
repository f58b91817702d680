//! [`GroupConsumer`]: a consumer that is a member of a consumer group (Kafka's classic group
//! protocol): the coordinator splits the subscribed topics' partitions among the members, each
//! member reads its own, and committed offsets let a member (or its successor) resume.
//!
//! Lifecycle: [`GroupConsumer::subscribe`] names topics (or a pattern). The first
//! [`GroupConsumer::poll`] finds the coordinator (FindCoordinator), joins (JoinGroup; the
//! coordinator may first hand out a member id and ask for a second join), and syncs
//! (SyncGroup: the leader member runs the assignor and sends every member's assignment). Each
//! newly assigned partition starts at its committed offset, or at `reset` without one. A
//! heartbeat task keeps the membership alive every `heartbeat_interval`; when the coordinator
//! answers REBALANCE_IN_PROGRESS (a member joined or left), the next `poll` rejoins.
//!
//! Rebalancing: with an eager assignor (range, roundrobin) every partition is revoked before
//! rejoining (commit first when auto-committing, then the listener's `on_revoked`). With
//! cooperative-sticky a member keeps its partitions through the rebalance and gives up only
//! those moving elsewhere, after which it rejoins once more so they can be assigned (KIP-429).
//!
//! Commits: [`GroupConsumer::commit`] commits the positions (the next offsets to read) of the
//! assigned partitions; with `auto_commit` that happens every interval inside `poll`, before a
//! revocation, and on [`GroupConsumer::close`], which also leaves the group (static members,
//! with a `group_instance_id`, stay until their session times out, as in Kafka).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::timer::sleep;

use super::assignor::Assignor;
use super::connection::Connection;
use super::consumer::{Consumer, ConsumerConfig, ConsumerRecord, SeekTo};
use super::consumer_protocol::{Assignment, Subscription};
use super::error::ClientError;
use super::metadata::Client;
use crate::protocol::messages::{
    FindCoordinatorRequest, HeartbeatRequest, JoinGroupRequest, JoinGroupRequestProtocol, LeaveGroupRequest,
    LeaveGroupRequestMember, OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    OffsetFetchRequest, OffsetFetchRequestTopic, SyncGroupRequest, SyncGroupRequestAssignment,
};
use crate::protocol::{ApiKey, ErrorCode};

/// How often a pattern subscription looks for new matching topics.
const PATTERN_REFRESH: Duration = Duration::from_secs(10);

/// Joins tried in a row before `poll` gives up (each waits out a backoff first).
const JOIN_ATTEMPTS_MAX: u32 = 20;

/// What a member subscribes to.
#[derive(Debug, Clone)]
pub enum Subscribe {
    /// These topics.
    Topics(Vec<String>),
    /// Every topic whose whole name matches (Kafka's `subscribe(Pattern)`).
    Pattern(regex::Regex),
}

/// How a [`GroupConsumer`] behaves.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The group (Kafka's `group.id`).
    pub group_id: String,
    /// A static member id (Kafka's `group.instance.id`), or none.
    pub group_instance_id: Option<String>,
    /// The coordinator drops a member that sends no heartbeat for this long.
    pub session_timeout: Duration,
    /// How long the coordinator waits for members to rejoin (Kafka's `max.poll.interval.ms`).
    pub rebalance_timeout: Duration,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Assignors offered, preferred first (Kafka's `partition.assignment.strategy`).
    pub assignors: Vec<Assignor>,
    /// Commit the positions this often inside `poll`; `None` for manual commits only.
    pub auto_commit: Option<Duration>,
    /// Where a partition without a committed offset starts (Kafka's `auto.offset.reset`):
    /// [`SeekTo::Earliest`] or [`SeekTo::Latest`].
    pub reset: SeekTo,
    /// Fetch settings.
    pub consumer: ConsumerConfig,
}

impl GroupConfig {
    /// Kafka's defaults for `group_id`.
    pub fn new(group_id: impl Into<String>) -> GroupConfig {
        GroupConfig {
            group_id: group_id.into(),
            group_instance_id: None,
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(3),
            assignors: vec![Assignor::Range, Assignor::CooperativeSticky],
            auto_commit: Some(Duration::from_secs(5)),
            reset: SeekTo::Latest,
            consumer: ConsumerConfig::default(),
        }
    }
}

/// Told about partitions as they are revoked and assigned. Runs inside `poll`.
pub trait RebalanceListener {
    /// These partitions are no longer this member's (after the commit, when auto-committing).
    fn on_revoked(&mut self, partitions: &[(String, i32)]);
    /// These partitions are now this member's.
    fn on_assigned(&mut self, partitions: &[(String, i32)]);
}

/// The membership the heartbeat task shares with the consumer.
struct Member {
    member_id: RefCell<String>,
    generation: Cell<i32>,
    coordinator: RefCell<Option<Connection>>,
    /// Set when the coordinator asks for a rejoin.
    rejoin: Cell<bool>,
    /// A failure that ends the membership (a fenced static member).
    fatal: RefCell<Option<ClientError>>,
    closed: Cell<bool>,
}

/// A consumer group member. See the module docs. Owned by one task (`&mut self`).
pub struct GroupConsumer {
    client: Client,
    config: GroupConfig,
    consumer: Consumer,
    subscription: Option<Subscribe>,
    /// Topics the last join subscribed to.
    joined_topics: Vec<String>,
    member: Rc<Member>,
    assigned: BTreeSet<(String, i32)>,
    protocol: Option<Assignor>,
    joined: bool,
    last_commit: Instant,
    last_pattern_check: Instant,
    listener: Option<Box<dyn RebalanceListener>>,
    heartbeat_started: bool,
}

impl GroupConsumer {
    /// A member of `config.group_id`, not yet subscribed.
    pub fn new(client: Client, config: GroupConfig) -> GroupConsumer {
        let consumer = Consumer::new(client.clone(), config.consumer.clone());
        let member = Rc::new(Member {
            member_id: RefCell::new(String::new()),
            generation: Cell::new(-1),
            coordinator: RefCell::new(None),
            rejoin: Cell::new(false),
            fatal: RefCell::new(None),
            closed: Cell::new(false),
        });
        GroupConsumer {
            client,
            config,
            consumer,
            subscription: None,
            joined_topics: Vec::new(),
            member,
            assigned: BTreeSet::new(),
            protocol: None,
            joined: false,
            last_commit: Instant::now(),
            last_pattern_check: Instant::now(),
            listener: None,
            heartbeat_started: false,
        }
    }

    /// Subscribes (replacing any earlier subscription); takes effect at the next `poll`.
    pub fn subscribe(&mut self, subscription: Subscribe) {
        self.subscription = Some(subscription);
        self.member.rejoin.set(true);
    }

    /// Sets the rebalance listener.
    pub fn set_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        self.listener = Some(listener);
    }

    /// The partitions assigned now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.assigned.iter().cloned().collect()
    }

    /// The member id the coordinator gave, once joined.
    pub fn member_id(&self) -> String {
        self.member.member_id.borrow().clone()
    }

    /// The generation joined, or -1.
    pub fn generation(&self) -> i32 {
        self.member.generation.get()
    }

    /// The next offset `poll` returns for an assigned partition.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.consumer.position(topic, partition)
    }

    /// Moves an assigned partition.
    pub async fn seek(&mut self, topic: &str, partition: i32, to: SeekTo) -> Result<(), ClientError> {
        self.consumer.seek(topic, partition, to).await
    }

    /// Joins or rejoins the group when needed, commits when due, and fetches.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>, ClientError> {
        if let Some(error) = self.member.fatal.borrow().clone() {
            return Err(error);
        }
        if self.subscription.is_none() {
            return Err(ClientError::InvalidArgument("poll before subscribe".into()));
        }
        if matches!(self.subscription, Some(Subscribe::Pattern(_)))
            && self.last_pattern_check.elapsed() >= PATTERN_REFRESH
        {
            self.last_pattern_check = Instant::now();
            if self.subscribed_topics().await? != self.joined_topics {
                self.member.rejoin.set(true);
            }
        }
        if !self.joined || self.member.rejoin.get() {
            self.join().await?;
        }
        if let Some(interval) = self.config.auto_commit
            && self.last_commit.elapsed() >= interval
        {
            // A failed auto-commit is retried at the next interval, as Kafka's is.
            let _ = self.commit().await;
        }
        if self.assigned.is_empty() {
            // Nothing to fetch: wait a little as a long poll would, so callers don't spin.
            sleep(self.config.consumer.max_wait.min(Duration::from_millis(100))).await;
            return Ok(Vec::new());
        }
        self.consumer.poll().await
    }

    /// Commits the positions of the assigned partitions.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let offsets: Vec<(String, i32, i64, Option<String>)> = self
            .assigned
            .iter()
            .filter_map(|(t, p)| self.consumer.position(t, *p).map(|o| (t.clone(), *p, o, None)))
            .collect();
        self.commit_offsets(&offsets).await
    }

    /// Commits `offsets`: (topic, partition, next offset to read, metadata).
    pub async fn commit_offsets(&mut self, offsets: &[(String, i32, i64, Option<String>)]) -> Result<(), ClientError> {
        self.last_commit = Instant::now();
        if offsets.is_empty() {
            return Ok(());
        }
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (topic, partition, offset, metadata) in offsets {
            topics.entry(topic).or_default().push(OffsetCommitRequestPartition {
                partition_index: *partition,
                committed_offset: *offset,
                committed_metadata: metadata.clone(),
                ..Default::default()
            });
        }
        let request = OffsetCommitRequest {
            group_id: self.config.group_id.clone(),
            generation_id_or_member_epoch: self.member.generation.get(),
            member_id: self.member.member_id.borrow().clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            topics: topics
                .into_iter()
                .map(|(name, partitions)| OffsetCommitRequestTopic { name: name.to_string(), partitions })
                .collect(),
            ..Default::default()
        };
        let coordinator = self.coordinator().await?;
        let response = match coordinator.send(&request).await {
            Ok(response) => response,
            Err(e) => {
                self.lost_coordinator();
                return Err(e);
            }
        };
        for topic in &response.topics {
            for partition in &topic.partitions {
                let context = || {
                    format!(
                        "committing {}-{} for group {}",
                        topic.name, partition.partition_index, self.config.group_id
                    )
                };
                if let Some(error) = ClientError::from_code(partition.error_code, context, None) {
                    self.react(partition.error_code);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// The committed offsets (and metadata) of `partitions`, by partition; absent when none.
    pub async fn committed(
        &mut self,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), (i64, Option<String>)>, ClientError> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            by_topic.entry(t).or_default().push(*p);
        }
        let request = OffsetFetchRequest {
            group_id: self.config.group_id.clone(),
            topics: Some(
                by_topic
                    .into_iter()
                    .map(|(name, partition_indexes)| OffsetFetchRequestTopic {
                        name: name.to_string(),
                        partition_indexes,
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        let coordinator = self.coordinator().await?;
        // v8 batches groups in another shape; one group needs only the older one.
        let version = coordinator.version(ApiKey::OffsetFetch)?.min(7);
        let response = match coordinator.send_at(&request, version).await {
            Ok(response) => response,
            Err(e) => {
                self.lost_coordinator();
                return Err(e);
            }
        };
        let context = || format!("fetching offsets of group {}", self.config.group_id);
        if let Some(error) = ClientError::from_code(response.error_code, context, None) {
            self.react(response.error_code);
            return Err(error);
        }
        let mut out = BTreeMap::new();
        for topic in response.topics {
            for p in topic.partitions {
                let context = || format!("offset of {}-{}", topic.name, p.partition_index);
                if let Some(error) = ClientError::from_code(p.error_code, context, None) {
                    return Err(error);
                }
                if p.committed_offset >= 0 {
                    out.insert((topic.name.clone(), p.partition_index), (p.committed_offset, p.metadata));
                }
            }
        }
        Ok(out)
    }

    /// Commits (when auto-committing) and leaves the group.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let committed = if self.config.auto_commit.is_some() && self.joined { self.commit().await } else { Ok(()) };
        self.member.closed.set(true);
        if self.joined && self.config.group_instance_id.is_none() {
            let member_id = self.member.member_id.borrow().clone();
            let request = LeaveGroupRequest {
                group_id: self.config.group_id.clone(),
                member_id: member_id.clone(),
                members: vec![LeaveGroupRequestMember { member_id, ..Default::default() }],
            };
            if let Ok(coordinator) = self.coordinator().await {
                // Leaving is a courtesy: without it the session times out.
                let _ = coordinator.send(&request).await;
            }
        }
        committed
    }

    /// The topics the subscription names now.
    async fn subscribed_topics(&self) -> Result<Vec<String>, ClientError> {
        let mut topics = match &self.subscription {
            Some(Subscribe::Topics(topics)) => topics.clone(),
            Some(Subscribe::Pattern(pattern)) => {
                let metadata = self.client.refresh_metadata(None).await?;
                metadata
                    .topics
                    .keys()
                    .filter(|t| {
                        !t.starts_with("__") && pattern.find(t).is_some_and(|m| m.start() == 0 && m.end() == t.len())
                    })
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        };
        topics.sort();
        topics.dedup();
        Ok(topics)
    }

    /// The coordinator's connection, found with FindCoordinator if unknown.
    async fn coordinator(&self) -> Result<Connection, ClientError> {
        if let Some(connection) = self.member.coordinator.borrow().clone()
            && !connection.is_failed()
        {
            return Ok(connection);
        }
        let request = FindCoordinatorRequest { key: self.config.group_id.clone(), key_type: 0, ..Default::default() };
        let any = self.client.any_connection().await?;
        // v4+ batches keys in another shape; one key needs only the older one.
        let version = any.version(ApiKey::FindCoordinator)?.min(3);
        let response = any.send_at(&request, version).await?;
        let context = || format!("finding the coordinator of group {}", self.config.group_id);
        if let Some(error) = ClientError::from_code(response.error_code, context, response.error_message.as_deref()) {
            return Err(error);
        }
        let connection = self.client.connection(&format!("{}:{}", response.host, response.port)).await?;
        *self.member.coordinator.borrow_mut() = Some(connection.clone());
        Ok(connection)
    }

    fn lost_coordinator(&self) {
        *self.member.coordinator.borrow_mut() = None;
    }

    /// Adjusts the membership to a group error code from the coordinator.
    fn react(&self, code: i16) {
        react(&self.member, code);
    }

    /// Joins (or rejoins) and takes up the new assignment.
    async fn join(&mut self) -> Result<(), ClientError> {
        let config = self.client.config().clone();
        let mut attempts = 0;
        loop {
            attempts += 1;
            if attempts > JOIN_ATTEMPTS_MAX {
                return Err(ClientError::InvalidArgument(format!(
                    "could not join group {} after {JOIN_ATTEMPTS_MAX} attempts",
                    self.config.group_id
                )));
            }
            if attempts > 1 {
                sleep(config.retry_backoff).await;
            }
            if let Some(error) = self.member.fatal.borrow().clone() {
                return Err(error);
            }
            let topics = self.subscribed_topics().await?;
            let cooperative = self.protocol.is_some_and(Assignor::is_cooperative);
            if !cooperative && !self.assigned.is_empty() {
                let all: Vec<(String, i32)> = self.assigned.iter().cloned().collect();
                self.revoke(&all).await;
            }
            let subscription = Subscription {
                topics: topics.clone(),
                owned_partitions: if cooperative { group_by_topic(&self.assigned) } else { BTreeMap::new() },
                generation: if cooperative { self.member.generation.get() } else { -1 },
                ..Default::default()
            };
            let metadata = subscription.encode();
            let request = JoinGroupRequest {
                group_id: self.config.group_id.clone(),
                session_timeout_ms: millis(self.config.session_timeout),
                rebalance_timeout_ms: millis(self.config.rebalance_timeout),
                member_id: self.member.member_id.borrow().clone(),
                group_instance_id: self.config.group_instance_id.clone(),
                protocol_type: "consumer".to_string(),
                protocols: self
                    .config
                    .assignors
                    .iter()
                    .map(|a| JoinGroupRequestProtocol { name: a.name().to_string(), metadata: metadata.clone() })
                    .collect(),
                reason: None,
            };
            let coordinator = match self.coordinator().await {
                Ok(c) => c,
                Err(e) if e.is_retriable() || is_coordinator_error(&e) => continue,
                Err(e) => return Err(e),
            };
            let joined = match coordinator.send(&request).await {
                Ok(response) => response,
                Err(e) => {
                    self.lost_coordinator();
                    if e.is_retriable() {
                        continue;
                    }
                    return Err(e);
                }
            };
            match ErrorCode::from_i16(joined.error_code) {
                Some(ErrorCode::None) => {}
                Some(ErrorCode::MemberIdRequired) => {
                    *self.member.member_id.borrow_mut() = joined.member_id;
                    attempts -= 1;
                    continue;
                }
                Some(
                    ErrorCode::UnknownMemberId
                    | ErrorCode::NotCoordinator
                    | ErrorCode::CoordinatorNotAvailable
                    | ErrorCode::CoordinatorLoadInProgress
                    | ErrorCode::RebalanceInProgress
                    | ErrorCode::IllegalGeneration,
                ) => {
                    self.react(joined.error_code);
                    continue;
                }
                _ => {
                    let context = || format!("joining group {}", self.config.group_id);
                    return Err(ClientError::from_code(joined.error_code, context, None)
                        .unwrap_or_else(|| ClientError::InvalidArgument("join failed".into())));
                }
            }
            *self.member.member_id.borrow_mut() = joined.member_id.clone();
            self.member.generation.set(joined.generation_id);
            let protocol_name = joined.protocol_name.clone().unwrap_or_default();
            let Some(protocol) = Assignor::from_name(&protocol_name) else {
                return Err(ClientError::Protocol {
                    addr: coordinator.addr().to_string(),
                    reason: format!(
                        "the coordinator chose protocol {protocol_name:?}, which this client did not offer"
                    ),
                });
            };
            // A static leader back in a stable group is told to keep the current assignment
            // (KIP-814, JoinGroup v9): the coordinator ignores what a stable group's leader syncs.
            let assignments = if joined.leader == joined.member_id && !joined.skip_assignment {
                self.lead(protocol, &joined.members).await?
            } else {
                Vec::new()
            };
            let request = SyncGroupRequest {
                group_id: self.config.group_id.clone(),
                generation_id: joined.generation_id,
                member_id: joined.member_id.clone(),
                group_instance_id: self.config.group_instance_id.clone(),
                protocol_type: Some("consumer".to_string()),
                protocol_name: Some(protocol_name),
                assignments,
            };
            let synced = match coordinator.send(&request).await {
                Ok(response) => response,
                Err(e) => {
                    self.lost_coordinator();
                    if e.is_retriable() {
                        continue;
                    }
                    return Err(e);
                }
            };
            if synced.error_code != 0 {
                let code = synced.error_code;
                if matches!(
                    ErrorCode::from_i16(code),
                    Some(
                        ErrorCode::RebalanceInProgress
                            | ErrorCode::UnknownMemberId
                            | ErrorCode::IllegalGeneration
                            | ErrorCode::NotCoordinator
                            | ErrorCode::CoordinatorNotAvailable
                    )
                ) {
                    self.react(code);
                    continue;
                }
                let context = || format!("syncing group {}", self.config.group_id);
                return Err(ClientError::from_code(code, context, None)
                    .unwrap_or_else(|| ClientError::InvalidArgument("sync failed".into())));
            }
            let assignment = Assignment::decode(&synced.assignment)
                .map_err(|e| ClientError::Protocol { addr: coordinator.addr().to_string(), reason: e.to_string() })?;
            self.protocol = Some(protocol);
            self.joined_topics = topics;
            self.take_up(assignment, protocol).await?;
            self.joined = true;
            self.start_heartbeat();
            return Ok(());
        }
    }

    /// As the leader: every member's assignment.
    async fn lead(
        &self,
        protocol: Assignor,
        members: &[crate::protocol::messages::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>, ClientError> {
        let mut subscriptions = BTreeMap::new();
        for member in members {
            let subscription = Subscription::decode(&member.metadata).map_err(|e| ClientError::Protocol {
                addr: String::new(),
                reason: format!("member {}: {e}", member.member_id),
            })?;
            subscriptions.insert(member.member_id.clone(), subscription);
        }
        let mut topics: Vec<String> = subscriptions.values().flat_map(|s| s.topics.iter().cloned()).collect();
        topics.sort();
        topics.dedup();
        let metadata = self.client.refresh_metadata(Some(&topics)).await?;
        let partitions: BTreeMap<String, i32> = topics
            .iter()
            .filter_map(|t| {
                let known = metadata.topics.get(t).filter(|m| m.error_code == 0)?;
                Some((t.clone(), i32::try_from(known.partitions.len()).unwrap_or(i32::MAX)))
            })
            .collect();
        let plan = protocol.assign(&subscriptions, &partitions);
        Ok(plan
            .into_iter()
            .map(|(member_id, partitions)| SyncGroupRequestAssignment {
                member_id,
                assignment: Assignment { partitions, user_data: None }.encode(),
            })
            .collect())
    }

    /// Revokes and assigns partitions to match `assignment`.
    async fn take_up(&mut self, assignment: Assignment, protocol: Assignor) -> Result<(), ClientError> {
        let new: BTreeSet<(String, i32)> =
            assignment.partitions.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p))).collect();
        let revoked: Vec<(String, i32)> = self.assigned.difference(&new).cloned().collect();
        let added: Vec<(String, i32)> = new.difference(&self.assigned).cloned().collect();
        if !revoked.is_empty() {
            self.revoke(&revoked).await;
            if protocol.is_cooperative() {
                // The revoked partitions go to others only in the next generation.
                self.member.rejoin.set(true);
            }
        } else {
            self.member.rejoin.set(false);
        }
        // Keep the positions of partitions that stay.
        let kept: Vec<((String, i32), Option<i64>)> =
            new.intersection(&self.assigned).map(|(t, p)| ((t.clone(), *p), self.consumer.position(t, *p))).collect();
        let all: Vec<(&str, i32)> = new.iter().map(|(t, p)| (t.as_str(), *p)).collect();
        self.consumer.assign(&all);
        for ((topic, partition), position) in kept {
            if let Some(offset) = position {
                self.consumer.seek(&topic, partition, SeekTo::Offset(offset)).await?;
            }
        }
        let committed = self.committed(&added).await?;
        for (topic, partition) in &added {
            let to = match committed.get(&(topic.clone(), *partition)) {
                Some((offset, _)) => SeekTo::Offset(*offset),
                None => self.config.reset,
            };
            self.consumer.seek(topic, *partition, to).await?;
        }
        self.assigned = new;
        if let Some(listener) = self.listener.as_mut()
            && !added.is_empty()
        {
            listener.on_assigned(&added);
        }
        Ok(())
    }

    /// Gives up `partitions`: commits them first when auto-committing, tells the listener.
    async fn revoke(&mut self, partitions: &[(String, i32)]) {
        if self.config.auto_commit.is_some() {
            let offsets: Vec<(String, i32, i64, Option<String>)> = partitions
                .iter()
                .filter_map(|(t, p)| self.consumer.position(t, *p).map(|o| (t.clone(), *p, o, None)))
                .collect();
            // A commit that fails here (the generation moved on) cannot be saved: the next owner
            // starts from the last successful commit (at-least-once).
            let _ = self.commit_offsets(&offsets).await;
        }
        if let Some(listener) = self.listener.as_mut() {
            listener.on_revoked(partitions);
        }
        for partition in partitions {
            self.assigned.remove(partition);
        }
    }

    fn start_heartbeat(&mut self) {
        if self.heartbeat_started {
            return;
        }
        self.heartbeat_started = true;
        let member = Rc::downgrade(&self.member);
        let (group_id, instance, interval) =
            (self.config.group_id.clone(), self.config.group_instance_id.clone(), self.config.heartbeat_interval);
        glommio::spawn_local(async move {
            loop {
                sleep(interval).await;
                let Some(member) = member.upgrade() else { return };
                if member.closed.get() {
                    return;
                }
                if member.rejoin.get() || member.generation.get() < 0 {
                    continue;
                }
                let Some(coordinator) = member.coordinator.borrow().clone() else {
                    member.rejoin.set(true);
                    continue;
                };
                let request = HeartbeatRequest {
                    group_id: group_id.clone(),
                    generation_id: member.generation.get(),
                    member_id: member.member_id.borrow().clone(),
                    group_instance_id: instance.clone(),
                };
                match coordinator.send(&request).await {
                    Ok(response) => react(&member, response.error_code),
                    Err(_) => {
                        *member.coordinator.borrow_mut() = None;
                        member.rejoin.set(true);
                    }
                }
            }
        })
        .detach();
    }
}

/// What a group error code from the coordinator means for the membership.
fn react(member: &Member, code: i16) {
    match ErrorCode::from_i16(code) {
        Some(ErrorCode::None) | None => {}
        Some(ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration) => member.rejoin.set(true),
        Some(ErrorCode::UnknownMemberId) => {
            member.member_id.borrow_mut().clear();
            member.generation.set(-1);
            member.rejoin.set(true);
        }
        Some(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable | ErrorCode::CoordinatorLoadInProgress) => {
            *member.coordinator.borrow_mut() = None;
            member.rejoin.set(true);
        }
        Some(ErrorCode::FencedInstanceId) => {
            let error = ClientError::from_code(code, || "the group membership".to_string(), None);
            *member.fatal.borrow_mut() = error;
        }
        Some(_) => {}
    }
}

fn is_coordinator_error(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable | ErrorCode::CoordinatorLoadInProgress)
    )
}

fn group_by_topic(partitions: &BTreeSet<(String, i32)>) -> BTreeMap<String, Vec<i32>> {
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        out.entry(t.clone()).or_default().push(*p);
    }
    out
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
