//! One consumer group's state machine (Kafka's classic group protocol), without I/O or clocks:
//! every call takes `now_ms`, and replies that must wait (JoinGroup until the rebalance
//! completes, SyncGroup until the leader's assignment arrives) come out later as [`Effect`]s
//! keyed by the [`Waiter`] the caller passed in. The caller persists the group when an effect
//! says so, before it delivers the replies that follow.
//!
//! States, as Kafka names and reports them:
//! `Empty` → (join) `PreparingRebalance` → (all joined, or the rebalance timeout) `CompletingRebalance`
//! → (leader's SyncGroup) `Stable` → (join of a new member, a leave, a session expiry) `PreparingRebalance`;
//! a rebalance that ends with no members goes to `Empty`; a deleted group is `Dead`.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

use super::offsets::{CommittedOffset, GroupOffsets, OffsetKey};
use super::records::{GroupValue, StoredMember, subscribed_topics};
use crate::model::{Offset, ProducerId};
use crate::protocol::ErrorCode;

/// Identifies a request waiting for its reply (chosen by the caller).
pub type Waiter = u64;

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; may still hold offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// The name Kafka reports (ListGroups, DescribeGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Broker-wide settings every group follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members.
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub session_timeout_min_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub session_timeout_max_ms: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            session_timeout_min_ms: 6000,
            session_timeout_max_ms: 1_800_000,
        }
    }
}

/// A JoinGroup, decoded.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    /// The member id, empty on a first join.
    pub member_id: String,
    /// `group.instance.id`, for static members.
    pub instance_id: Option<String>,
    /// The client id of the request header.
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocol type (`consumer`).
    pub protocol_type: String,
    /// Protocols, preferred first, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a first join gets MEMBER_ID_REQUIRED and a member id to join again with.
    pub require_known_member_id: bool,
    /// A fresh unique suffix for a new member id (`<client id>-<suffix>`).
    pub fresh_suffix: String,
    /// JoinGroup v9+ (KIP-814): a static leader that rejoins a stable group may be told to skip
    /// computing the assignment.
    pub supports_skip_assignment: bool,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    /// The error, or `None`.
    pub error: ErrorCode,
    /// The generation.
    pub generation: i32,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The leader.
    pub leader: String,
    /// The member's id.
    pub member_id: String,
    /// For the leader: every member (id, static id, metadata for the chosen protocol).
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// The leader keeps the current assignment instead of computing one (KIP-814).
    pub skip_assignment: bool,
}

impl JoinResult {
    /// A failed join.
    pub fn error(error: ErrorCode, member_id: &str) -> JoinResult {
        JoinResult {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// A SyncGroup, decoded.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// The generation.
    pub generation: i32,
    /// The member id.
    pub member_id: String,
    /// Static id.
    pub instance_id: Option<String>,
    /// v5+: the protocol type the member thinks the group has.
    pub protocol_type: Option<String>,
    /// v5+: the protocol name the member thinks was chosen.
    pub protocol_name: Option<String>,
    /// From the leader: each member's assignment.
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    /// The error, or `None`.
    pub error: ErrorCode,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncResult {
    /// A failed sync.
    pub fn error(error: ErrorCode) -> SyncResult {
        SyncResult { error, protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

/// What the caller must do after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Persist the group's metadata ([`Group::stored`]) before delivering the replies after it.
    StoreGroup,
    /// Reply to a waiting JoinGroup.
    Join(Waiter, JoinResult),
    /// Reply to a waiting SyncGroup.
    Sync(Waiter, SyncResult),
}

/// A group member.
#[derive(Debug, Clone)]
pub struct Member {
    /// Member id.
    pub id: String,
    /// Static id.
    pub instance_id: Option<String>,
    /// Client id of its last join.
    pub client_id: String,
    /// Its host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocols with metadata, preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// Its assignment in the current generation.
    pub assignment: Bytes,
    join_waiter: Option<Waiter>,
    sync_waiter: Option<Waiter>,
    heartbeat_deadline_ms: i64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
}

/// What DescribeGroups reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// State name.
    pub state: &'static str,
    /// Protocol type, or empty.
    pub protocol_type: String,
    /// The chosen protocol when Stable, else empty.
    pub protocol: String,
    /// (member id, static id, client id, host, metadata, assignment); metadata and assignment
    /// are empty unless Stable, as in Kafka.
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// One group and its committed offsets, owned by the shard that coordinates it.
#[derive(Debug, Clone)]
pub struct Group {
    /// The group id.
    pub id: String,
    state: GroupState,
    protocol_type: Option<String>,
    protocol: Option<String>,
    generation: i32,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, not joined yet, with when they lapse.
    pending: HashMap<String, i64>,
    /// Static id → member id.
    statics: HashMap<String, String>,
    config: GroupConfig,
    /// When the current join phase ends at the latest.
    rebalance_deadline_ms: i64,
    /// The first rebalance of an empty group does not end before this.
    initial_delay_until_ms: i64,
    state_since_ms: i64,
    offsets: GroupOffsets,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, config: GroupConfig, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            config,
            rebalance_deadline_ms: 0,
            initial_delay_until_ms: 0,
            state_since_ms: now_ms,
            offsets: GroupOffsets::default(),
        }
    }

    /// The state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// The generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The protocol type, or empty.
    pub fn protocol_type(&self) -> &str {
        self.protocol_type.as_deref().unwrap_or("")
    }

    /// Whether the group has no members.
    pub fn has_no_members(&self) -> bool {
        self.members.is_empty()
    }

    /// Member ids, for tests and logs.
    pub fn member_ids(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    /// The leader's member id.
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }

    /// Checks the static id of a request against the member id it names: FENCED_INSTANCE_ID when
    /// the static id now belongs to another member.
    fn check_instance(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), ErrorCode> {
        if let Some(instance) = instance_id
            && let Some(current) = self.statics.get(instance)
            && current != member_id
        {
            return Err(ErrorCode::FencedInstanceId);
        }
        Ok(())
    }

    /// Protocols every member supports.
    fn candidates(&self) -> Option<HashSet<String>> {
        let mut members = self.members.values();
        let first = members.next()?;
        let mut set: HashSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            let theirs: HashSet<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
            set.retain(|n| theirs.contains(n.as_str()));
        }
        Some(set)
    }

    /// JoinGroup. The reply comes as an [`Effect::Join`] for `waiter`, now or when the rebalance
    /// completes.
    pub fn join(&mut self, now_ms: i64, request: JoinRequest, waiter: Waiter, out: &mut Vec<Effect>) {
        let given_id = request.member_id.clone();
        let reply = |error| Effect::Join(waiter, JoinResult::error(error, &given_id));
        if self.state == GroupState::Dead {
            // A group deleted between routing and here: the client looks up the coordinator again.
            out.push(reply(ErrorCode::CoordinatorNotAvailable));
            return;
        }
        if request.session_timeout_ms < self.config.session_timeout_min_ms
            || request.session_timeout_ms > self.config.session_timeout_max_ms
        {
            out.push(reply(ErrorCode::InvalidSessionTimeout));
            return;
        }
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            out.push(reply(ErrorCode::InconsistentGroupProtocol));
            return;
        }
        let compatible = match (&self.protocol_type, self.members.is_empty()) {
            (_, true) => true,
            (Some(kind), false) if *kind != request.protocol_type => false,
            _ => {
                // Joining must leave at least one protocol that every member supports; a member
                // rejoining is compared with the others, not with its own old protocols.
                let others: Vec<&Member> = self.members.values().filter(|m| m.id != request.member_id).collect();
                others.is_empty()
                    || request
                        .protocols
                        .iter()
                        .any(|(name, _)| others.iter().all(|m| m.protocols.iter().any(|(theirs, _)| theirs == name)))
            }
        };
        if !compatible {
            out.push(reply(ErrorCode::InconsistentGroupProtocol));
            return;
        }
        let mut request = request;
        if request.member_id.is_empty() {
            if let Some(instance) = request.instance_id.clone() {
                let new_id = format!("{instance}-{}", request.fresh_suffix);
                if let Some(old_id) = self.statics.get(&instance).cloned() {
                    // A static member restarted: its new id replaces the old one, whose pending
                    // requests are fenced.
                    let leader_before = self.leader.clone().unwrap_or_default();
                    self.replace_member_id(&old_id, &new_id, out);
                    let known = self.members.contains_key(&new_id);
                    request.member_id = new_id;
                    if known && self.state == GroupState::Stable {
                        self.rejoin_static_stable(now_ms, request, waiter, leader_before, out);
                        return;
                    }
                    if known && self.state == GroupState::CompletingRebalance {
                        // The leader may be assigning to the old id, which would leave the new
                        // one without partitions: a new generation, as in Kafka.
                        self.update_member(now_ms, request, waiter, out);
                        self.prepare_rebalance(now_ms, out);
                        return;
                    }
                    self.add_or_update_member(now_ms, request, waiter, out);
                    return;
                }
                self.statics.insert(instance, new_id.clone());
                request.member_id = new_id;
            } else {
                let new_id = format!("{}-{}", request.client_id, request.fresh_suffix);
                if request.require_known_member_id {
                    // KIP-394: the id is handed out first, so a client that loses this answer does
                    // not leave a phantom member that blocks the rebalance until its session ends.
                    self.pending.insert(new_id.clone(), now_ms + i64::from(request.session_timeout_ms));
                    out.push(Effect::Join(waiter, JoinResult::error(ErrorCode::MemberIdRequired, &new_id)));
                    return;
                }
                request.member_id = new_id;
            }
        } else {
            if let Err(e) = self.check_instance(&request.member_id, request.instance_id.as_deref()) {
                out.push(reply(e));
                return;
            }
            let known = self.members.contains_key(&request.member_id);
            if !known && self.pending.remove(&request.member_id).is_none() {
                out.push(reply(ErrorCode::UnknownMemberId));
                return;
            }
            if let Some(instance) = &request.instance_id {
                self.statics.insert(instance.clone(), request.member_id.clone());
            }
        }
        self.add_or_update_member(now_ms, request, waiter, out);
    }

    fn replace_member_id(&mut self, old_id: &str, new_id: &str, out: &mut Vec<Effect>) {
        if let Some(mut member) = self.members.remove(old_id) {
            if let Some(w) = member.join_waiter.take() {
                out.push(Effect::Join(w, JoinResult::error(ErrorCode::FencedInstanceId, old_id)));
            }
            if let Some(w) = member.sync_waiter.take() {
                out.push(Effect::Sync(w, SyncResult::error(ErrorCode::FencedInstanceId)));
            }
            member.id = new_id.to_string();
            if self.leader.as_deref() == Some(old_id) {
                self.leader = Some(new_id.to_string());
            }
            if let Some(instance) = &member.instance_id {
                self.statics.insert(instance.clone(), new_id.to_string());
            }
            self.members.insert(new_id.to_string(), member);
        }
    }

    /// A static member that restarted (new member id) while the group is stable. As in Kafka,
    /// this is no rebalance unless the group's protocol would change: the group is stored with
    /// the new id, and the member gets the current generation back, to sync its assignment
    /// again. A leader that can skip the assignment (v9+) is told so with the member list;
    /// before v9 it is given the leader's old id, so it syncs as a follower.
    fn rejoin_static_stable(
        &mut self,
        now_ms: i64,
        request: JoinRequest,
        waiter: Waiter,
        leader_before: String,
        out: &mut Vec<Effect>,
    ) {
        let id = request.member_id.clone();
        let skip_possible = request.supports_skip_assignment;
        self.update_member(now_ms, request, waiter, out);
        if self.select_protocol() != self.protocol {
            self.prepare_rebalance(now_ms, out);
            return;
        }
        out.push(Effect::StoreGroup);
        let Some(waiter) = self.members.get_mut(&id).and_then(|m| m.join_waiter.take()) else { return };
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        let skip_assignment = skip_possible && is_leader;
        let leader = if skip_possible { self.leader.clone().unwrap_or_default() } else { leader_before };
        let members = if skip_assignment { self.member_list() } else { Vec::new() };
        out.push(Effect::Join(waiter, self.joined(id, leader, members, skip_assignment)));
    }

    /// Takes a known member's new protocols, timeouts and client details from a join, and
    /// keeps the join waiting (a retried join replaces the older one).
    fn update_member(&mut self, now_ms: i64, request: JoinRequest, waiter: Waiter, out: &mut Vec<Effect>) {
        let rebalance_timeout_ms =
            if request.rebalance_timeout_ms > 0 { request.rebalance_timeout_ms } else { request.session_timeout_ms };
        let Some(member) = self.members.get_mut(&request.member_id) else { return };
        if let Some(old) = member.join_waiter.replace(waiter) {
            out.push(Effect::Join(old, JoinResult::error(ErrorCode::RebalanceInProgress, &request.member_id)));
        }
        member.protocols = request.protocols;
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = rebalance_timeout_ms;
        member.heartbeat_deadline_ms = now_ms + i64::from(request.session_timeout_ms);
    }

    fn add_or_update_member(&mut self, now_ms: i64, request: JoinRequest, waiter: Waiter, out: &mut Vec<Effect>) {
        let rebalance_timeout_ms =
            if request.rebalance_timeout_ms > 0 { request.rebalance_timeout_ms } else { request.session_timeout_ms };
        let id = request.member_id.clone();
        let mut unchanged = false;
        let protocol_type = request.protocol_type.clone();
        if let Some(member) = self.members.get(&id) {
            unchanged = member.protocols == request.protocols;
            self.update_member(now_ms, request, waiter, out);
        } else {
            let member = Member {
                id: id.clone(),
                instance_id: request.instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                session_timeout_ms: request.session_timeout_ms,
                rebalance_timeout_ms,
                protocols: request.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(waiter),
                sync_waiter: None,
                heartbeat_deadline_ms: now_ms + i64::from(request.session_timeout_ms),
            };
            self.members.insert(id.clone(), member);
            if self.leader.is_none() {
                self.leader = Some(id.clone());
            }
        }
        self.protocol_type = Some(protocol_type);
        match self.state {
            GroupState::Stable if unchanged && self.leader.as_deref() != Some(id.as_str()) => {
                // A follower rejoining with nothing new gets the current generation back, no
                // rebalance (Kafka does the same).
                self.answer_join_now(&id, out);
            }
            GroupState::CompletingRebalance if unchanged => self.answer_join_now(&id, out),
            GroupState::PreparingRebalance => {
                self.extend_initial_delay(now_ms);
                self.maybe_complete_join(now_ms, out);
            }
            _ => self.prepare_rebalance(now_ms, out),
        }
    }

    fn answer_join_now(&mut self, id: &str, out: &mut Vec<Effect>) {
        let Some(member) = self.members.get_mut(id) else { return };
        let Some(waiter) = member.join_waiter.take() else { return };
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == id { self.member_list() } else { Vec::new() };
        out.push(Effect::Join(waiter, self.joined(id.to_string(), leader, members, false)));
    }

    /// A successful join's answer in the current generation and protocol.
    fn joined(
        &self,
        member_id: String,
        leader: String,
        members: Vec<(String, Option<String>, Bytes)>,
        skip_assignment: bool,
    ) -> JoinResult {
        JoinResult {
            error: ErrorCode::None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            member_id,
            members,
            skip_assignment,
        }
    }

    fn member_list(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members.values().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata_for(&protocol))).collect()
    }

    fn extend_initial_delay(&mut self, now_ms: i64) {
        // Kafka's InitialDelayedJoin: each new member of a new group pushes the end of the
        // first join phase out by the delay again, up to the rebalance timeout.
        if self.initial_delay_until_ms > now_ms {
            self.initial_delay_until_ms =
                (now_ms + self.config.initial_rebalance_delay_ms).min(self.rebalance_deadline_ms);
        }
    }

    fn prepare_rebalance(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        if self.state == GroupState::CompletingRebalance {
            // The assignment of the generation being synced is void: its waiters rejoin.
            for member in self.members.values_mut() {
                if let Some(w) = member.sync_waiter.take() {
                    out.push(Effect::Sync(w, SyncResult::error(ErrorCode::RebalanceInProgress)));
                }
            }
        }
        let was_empty = self.state == GroupState::Empty;
        let timeout = self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
        self.rebalance_deadline_ms = now_ms + i64::from(timeout);
        self.initial_delay_until_ms = if was_empty {
            (now_ms + self.config.initial_rebalance_delay_ms).min(self.rebalance_deadline_ms)
        } else {
            now_ms
        };
        self.set_state(GroupState::PreparingRebalance, now_ms);
        self.maybe_complete_join(now_ms, out);
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    fn maybe_complete_join(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        if self.state != GroupState::PreparingRebalance || now_ms < self.initial_delay_until_ms {
            return;
        }
        if !self.all_joined() && now_ms < self.rebalance_deadline_ms {
            return;
        }
        // Members that did not rejoin in time leave the group.
        let gone: Vec<String> =
            self.members.values().filter(|m| m.join_waiter.is_none()).map(|m| m.id.clone()).collect();
        for id in gone {
            self.drop_member(&id);
        }
        self.pending.clear();
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            out.push(Effect::StoreGroup);
            return;
        }
        self.protocol = self.select_protocol();
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.set_state(GroupState::CompletingRebalance, now_ms);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            if let Some(m) = self.members.get_mut(&id) {
                m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                m.assignment = Bytes::new();
            }
            self.answer_join_now(&id, out);
        }
    }

    /// Kafka's vote: each member votes for its most preferred protocol among those all support.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates()?;
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        votes.into_iter().max_by_key(|&(_, count)| count).map(|(name, _)| name.to_string())
    }

    fn drop_member(&mut self, id: &str) {
        if let Some(m) = self.members.remove(id)
            && let Some(instance) = m.instance_id
            && self.statics.get(&instance).is_some_and(|current| current == id)
        {
            self.statics.remove(&instance);
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// Removes a member (leave or expiry) and rebalances the rest.
    fn remove_member(&mut self, now_ms: i64, id: &str, out: &mut Vec<Effect>) {
        if let Some(m) = self.members.get_mut(id) {
            if let Some(w) = m.join_waiter.take() {
                out.push(Effect::Join(w, JoinResult::error(ErrorCode::UnknownMemberId, id)));
            }
            if let Some(w) = m.sync_waiter.take() {
                out.push(Effect::Sync(w, SyncResult::error(ErrorCode::UnknownMemberId)));
            }
        }
        self.drop_member(id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now_ms, out),
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// SyncGroup. The reply comes as an [`Effect::Sync`] for `waiter`.
    pub fn sync(&mut self, now_ms: i64, request: SyncRequest, waiter: Waiter, out: &mut Vec<Effect>) {
        let reply = |error| Effect::Sync(waiter, SyncResult::error(error));
        if let Err(e) = self.check_instance(&request.member_id, request.instance_id.as_deref()) {
            out.push(reply(e));
            return;
        }
        if !self.members.contains_key(&request.member_id) {
            out.push(reply(ErrorCode::UnknownMemberId));
            return;
        }
        if request.generation != self.generation {
            out.push(reply(ErrorCode::IllegalGeneration));
            return;
        }
        let type_mismatch = request.protocol_type.as_ref().is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_mismatch = request.protocol_name.as_ref().is_some_and(|n| Some(n) != self.protocol.as_ref());
        if type_mismatch || name_mismatch {
            out.push(reply(ErrorCode::InconsistentGroupProtocol));
            return;
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => out.push(reply(ErrorCode::UnknownMemberId)),
            GroupState::PreparingRebalance => out.push(reply(ErrorCode::RebalanceInProgress)),
            GroupState::Stable => {
                let assignment = self.members.get(&request.member_id).map(|m| m.assignment.clone()).unwrap_or_default();
                out.push(Effect::Sync(waiter, self.sync_result(assignment)));
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(&request.member_id) {
                    m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                    if let Some(old) = m.sync_waiter.replace(waiter) {
                        out.push(Effect::Sync(old, SyncResult::error(ErrorCode::RebalanceInProgress)));
                    }
                }
                if self.leader.as_deref() == Some(request.member_id.as_str()) {
                    let mut given: HashMap<String, Bytes> = request.assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        // A member the leader left out gets an empty assignment, as in Kafka.
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.set_state(GroupState::Stable, now_ms);
                    out.push(Effect::StoreGroup);
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        self.answer_sync(&id, out);
                    }
                }
            }
        }
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: ErrorCode::None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    fn answer_sync(&mut self, id: &str, out: &mut Vec<Effect>) {
        let Some(m) = self.members.get_mut(id) else { return };
        let Some(waiter) = m.sync_waiter.take() else { return };
        let assignment = m.assignment.clone();
        out.push(Effect::Sync(waiter, self.sync_result(assignment)));
    }

    /// Heartbeat: `None`, or the error telling the member what to do.
    pub fn heartbeat(&mut self, now_ms: i64, generation: i32, member_id: &str, instance_id: Option<&str>) -> ErrorCode {
        if let Err(e) = self.check_instance(member_id, instance_id) {
            return e;
        }
        match self.state {
            GroupState::Dead => return ErrorCode::CoordinatorNotAvailable,
            GroupState::Empty => return ErrorCode::UnknownMemberId,
            _ => {}
        }
        let Some(m) = self.members.get_mut(member_id) else { return ErrorCode::UnknownMemberId };
        if generation != self.generation {
            return ErrorCode::IllegalGeneration;
        }
        m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
        if self.state == GroupState::PreparingRebalance { ErrorCode::RebalanceInProgress } else { ErrorCode::None }
    }

    /// LeaveGroup of one member (by member id, or by static id with an empty member id).
    pub fn leave(
        &mut self,
        now_ms: i64,
        member_id: &str,
        instance_id: Option<&str>,
        out: &mut Vec<Effect>,
    ) -> ErrorCode {
        if self.state == GroupState::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        let id = match (member_id.is_empty(), instance_id) {
            (true, Some(instance)) => match self.statics.get(instance) {
                Some(id) => id.clone(),
                None => return ErrorCode::UnknownMemberId,
            },
            _ => {
                if let Err(e) = self.check_instance(member_id, instance_id) {
                    return e;
                }
                member_id.to_string()
            }
        };
        if self.pending.remove(&id).is_some() {
            self.maybe_complete_join(now_ms, out);
            return ErrorCode::None;
        }
        if !self.members.contains_key(&id) {
            return ErrorCode::UnknownMemberId;
        }
        self.remove_member(now_ms, &id, out);
        ErrorCode::None
    }

    /// Whether an OffsetCommit with this generation and member may commit (Kafka's checks, in
    /// Kafka's order). A commit with generation -1 to a group without members is a "simple"
    /// commit, allowed.
    pub fn check_commit(&self, generation: i32, member_id: &str, instance_id: Option<&str>) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        self.check_instance(member_id, instance_id)?;
        if generation < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(ErrorCode::RebalanceInProgress);
        }
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        Ok(())
    }

    /// Whether a TxnOffsetCommit with this generation and member may commit (Kafka's
    /// `validateOffsetCommit` for a transactional commit, KIP-447). Without a generation, member
    /// or static id (v0-2 send none) any group takes it, since a transactional producer need
    /// not be a member; with them, they must name a current member and the current generation.
    /// Unlike a plain commit, CompletingRebalance does not refuse it (Kafka answers
    /// REBALANCE_IN_PROGRESS to plain commits only): the generation check already keeps out a
    /// member of an older generation.
    pub fn check_txn_commit(
        &self,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if generation < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation < 0 && member_id.is_empty() && instance_id.is_none() {
            return Ok(());
        }
        if let Some(instance) = instance_id {
            match self.statics.get(instance) {
                None => return Err(ErrorCode::UnknownMemberId),
                Some(current) if current != member_id => return Err(ErrorCode::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        Ok(())
    }

    /// Records committed offsets whose record was appended at `at` (after it was persisted);
    /// a record later in the log wins (see `offsets.rs`).
    pub fn commit(&mut self, at: Offset, offsets: impl IntoIterator<Item = (OffsetKey, CommittedOffset)>) {
        self.offsets.commit(at, offsets);
    }

    /// Forgets offsets whose tombstones were appended at `at` (after they were persisted),
    /// pending transactional ones included.
    pub fn forget_offsets(&mut self, at: Offset, keys: &[OffsetKey]) {
        self.offsets.forget(at, keys);
    }

    /// A committed offset.
    pub fn offset(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.offsets.get(topic, partition)
    }

    /// Every committed offset.
    pub fn offsets(&self) -> impl Iterator<Item = (&OffsetKey, &CommittedOffset)> {
        self.offsets.iter()
    }

    /// The offsets, with those pending in transactions.
    pub fn offsets_with_pending(&self) -> &GroupOffsets {
        &self.offsets
    }

    /// Holds offsets `producer_id` committed in a transaction, appended at `at`, until it ends.
    pub fn prepare_txn_commit(
        &mut self,
        producer_id: ProducerId,
        at: Offset,
        offsets: impl IntoIterator<Item = (OffsetKey, CommittedOffset)>,
    ) {
        self.offsets.prepare_txn(producer_id, at, offsets);
    }

    /// Drops the transactional offsets of the append at `at`, which failed.
    pub fn fail_txn_commit(&mut self, producer_id: ProducerId, at: Offset) {
        self.offsets.fail_txn(producer_id, at);
    }

    /// Ends `producer_id`'s transaction, whose marker is at `marker_at`: commits or drops its
    /// pending offsets.
    pub fn complete_txn(&mut self, producer_id: ProducerId, marker_at: Offset, commit: bool) {
        self.offsets.complete_txn(producer_id, marker_at, commit);
    }

    /// Runs the timers: ends the join phase at its deadline, expires members whose session
    /// lapsed, forgets member ids handed out but never used.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        let lapsed: Vec<String> =
            self.pending.iter().filter(|&(_, &until)| until <= now_ms).map(|(id, _)| id.clone()).collect();
        for id in lapsed {
            self.pending.remove(&id);
        }
        // A member waiting in JoinGroup or SyncGroup is alive (its request is the heartbeat).
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none() && m.heartbeat_deadline_ms <= now_ms)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.remove_member(now_ms, &id, out);
        }
        self.maybe_complete_join(now_ms, out);
    }

    /// Expires the offsets of an Empty group that are older than `retention_ms` (counted from
    /// the later of the commit and the group becoming empty, as Kafka does); returns their keys,
    /// still in memory until [`Group::forget_offsets`].
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        if self.state != GroupState::Empty {
            return Vec::new();
        }
        // An offset a transaction is about to replace stays: its tombstone would drop the
        // transaction's offset too.
        self.offsets
            .iter()
            .filter(|(_, o)| o.commit_timestamp_ms.max(self.state_since_ms).saturating_add(retention_ms) <= now_ms)
            .filter(|((topic, partition), _)| !self.offsets.is_unstable(topic, *partition))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether `topic` is in any member's subscription (for OffsetDelete). Members whose
    /// metadata is not a readable consumer subscription count as subscribed to everything.
    pub fn subscribes_to(&self, topic: &str) -> bool {
        if self.members.is_empty() {
            return false;
        }
        if self.protocol_type.as_deref() != Some("consumer") {
            return true;
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members.values().any(|m| match subscribed_topics(&m.metadata_for(&protocol)) {
            Ok(topics) => topics.iter().any(|t| t == topic),
            Err(_) => true,
        })
    }

    /// DescribeGroups.
    pub fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupDescription {
            state: self.state.name(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol.clone() } else { String::new() },
            members: self
                .members
                .values()
                .map(|m| {
                    let (metadata, assignment) =
                        if stable { (m.metadata_for(&protocol), m.assignment.clone()) } else { Default::default() };
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        metadata,
                        assignment,
                    )
                })
                .collect(),
        }
    }

    /// Marks the group deleted.
    pub fn mark_dead(&mut self, now_ms: i64) {
        self.set_state(GroupState::Dead, now_ms);
    }

    /// The group metadata to persist.
    pub fn stored(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// A group rebuilt from its stored metadata: Stable with its members (each gets a fresh
    /// session to heartbeat in), or Empty.
    pub fn restore(id: &str, config: GroupConfig, now_ms: i64, value: GroupValue) -> Group {
        let mut group = Group::new(id, config, now_ms);
        group.generation = value.generation;
        group.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
        group.protocol = value.protocol.clone();
        group.leader = value.leader;
        let protocol = value.protocol.unwrap_or_default();
        for m in value.members {
            if let Some(instance) = &m.instance_id {
                group.statics.insert(instance.clone(), m.member_id.clone());
            }
            group.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    heartbeat_deadline_ms: now_ms + i64::from(m.session_timeout_ms),
                },
            );
        }
        if group.members.is_empty() {
            group.leader = None;
            group.state_since_ms =
                if value.current_state_timestamp_ms > 0 { value.current_state_timestamp_ms } else { now_ms };
        } else {
            group.state = GroupState::Stable;
        }
        group
    }
}
