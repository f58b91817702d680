//! [`Quorum`]: the metadata quorum's Raft node, sans I/O. tikv's `RawNode` does the consensus;
//! this drives its Ready protocol over a durable [`RaftLog`], and maps Kafka node ids to raft ids.
//!
//! # Lifecycle and threading
//! One `Quorum` per voter, owned by one shard (not `Send`, no async, no sockets). The caller:
//! 1. [`Quorum::open`]s it, builds its application state from [`Quorum::image`];
//! 2. calls [`Quorum::tick`] every 100 ms (the election timeout is `election_ticks` ticks);
//! 3. feeds every message from a peer to [`Quorum::step`], and calls [`Quorum::unreachable`] when
//!    the connection to a peer breaks (raft then probes it again, which is how a restarted or
//!    wiped peer gets caught up);
//! 4. after any of the above or a [`Quorum::propose`], calls [`Quorum::ready`]: it persists
//!    (fdatasync) before returning, then the caller sends its messages, installs its snapshot (if
//!    any) and applies its committed entries in order, then reports [`Quorum::applied`].
//!
//! # Bootstrap
//! Every voter of a new cluster starts an empty directory identically ([`Bootstrap::NewCluster`]):
//! a snapshot at index 1, term 1, holding the configured voters and the application's first
//! image (`initial_data`), with hard state term 1, commit 1 — raft-rs's own examples start a
//! node this way. Since all voters hold the same entry 1, any of them can be elected and the
//! log matching property holds from there.
//!
//! # A wiped voter
//! raft-rs (like Raft itself) assumes a voter never forgets its vote or the entries it
//! acknowledged; it detects nothing. A voter whose directory was lost and that bootstraps as new
//! could grant its vote to a candidate missing committed entries (which it had helped commit),
//! and those entries would be lost. So a voter that lost its directory must be opened with
//! [`Bootstrap::Rejoin`]: it starts from an empty log (snapshot index 0, no data), never campaigns
//! and ignores vote requests until it installed a snapshot from a leader (whose log holds every
//! committed entry); only then does it vote again. The leader's first index is at least 2, so
//! such a node is always caught up by a snapshot. The leader still believes the node holds what
//! it acknowledged before, so the node tells it otherwise when a heartbeat shows the gap
//! (`report_lost_log`, `peer_lost_its_log`). The caller decides which mode an empty directory
//! means (an operator flag): nothing on a node can tell "new" from "wiped". While two of three
//! voters are rejoining, the quorum is unavailable rather than at risk of losing commits.
//! Bootstrapping "identically" is the caller's promise: the same voters and the same
//! `initial_data` on every voter (a differing image at index 1 would go unnoticed).
//!
//! # Untrusted input
//! [`Quorum::step`] decodes and checks each message's shape (sender, recipient, type, entry
//! indexes, conf state) before raft sees it, so garbled bytes are an error, never a panic.
//! raft-rs still panics on Raft protocol violations by an authenticated voter (e.g. a leader
//! rewriting committed entries): Raft tolerates crashes, not lies, and the transport must only
//! accept configured peers.

use std::path::PathBuf;

use protobuf::Message as _;
use raft::eraftpb::{Entry, EntryType, Message, MessageType, Snapshot};
use raft::{ProgressState, RawNode, SnapshotStatus, StateRole, Storage};

use super::raft_log::{Bootstrap as LogBootstrap, RaftLog, RaftLogError};

/// The largest record [`Quorum::propose`] accepts: metadata records are small (a topic's
/// creation with thousands of partitions stays below 1 MiB); whole images travel in snapshots.
pub const RECORD_BYTES_MAX: usize = 1 << 20;
/// The entry bytes raft packs into one append message: bounds a catching-up follower's message
/// size while still moving many small records per round trip.
pub const APPEND_MSG_BYTES_MAX: u64 = 1 << 20;
/// Append messages in flight per follower before raft waits for acknowledgements.
pub const INFLIGHT_MSGS_MAX: usize = 256;
/// Ready rounds one [`Quorum::ready`] call runs: a round may make more work ready (a single
/// voter commits what it just persisted); a few rounds drain that, and the caller calls again
/// after its next event anyway.
pub const READY_ROUNDS_MAX: usize = 4;

/// The bootstrap snapshot's index and term (see the module docs).
const BOOTSTRAP_INDEX: u64 = 1;
const BOOTSTRAP_TERM: u64 = 1;

/// What an empty log directory means when [`Quorum::open`] finds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// A voter of a new cluster: start from the shared first snapshot holding `initial_data`.
    NewCluster,
    /// A voter that lost its directory: start empty and catch up from a leader's snapshot
    /// before voting (see the module docs).
    Rejoin,
}

/// How a [`Quorum`] is set up.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's Kafka node id (one of `voters`).
    pub node_id: i32,
    /// The Kafka node ids of every voter (the same list on every voter).
    pub voters: Vec<i32>,
    /// The directory of the Raft log.
    pub dir: PathBuf,
    /// Ticks without a leader before a follower campaigns (raft randomises in [n, 2n)).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats; below `election_ticks`.
    pub heartbeat_ticks: usize,
    /// Entries kept before [`Quorum::applied`] compacts them into a snapshot.
    pub snapshot_after_entries: u64,
    /// What an empty `dir` means.
    pub bootstrap: Bootstrap,
}

/// Why a quorum call failed.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// The configuration is unusable (e.g. `node_id` not among `voters`).
    #[error("quorum config: {0}")]
    Config(String),
    /// The stored voters differ from the configured ones: this node was started with a voter
    /// list its own quorum does not have.
    #[error("the log in {dir} has voters {stored:?}, the config says {configured:?}")]
    VotersMismatch {
        /// The log directory.
        dir: PathBuf,
        /// The voters in the log.
        stored: Vec<i32>,
        /// The voters in the config.
        configured: Vec<i32>,
    },
    /// The log on disk.
    #[error(transparent)]
    Log(#[from] RaftLogError),
    /// Only the leader takes proposals.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<i32>,
    },
    /// A proposal is empty or larger than [`RECORD_BYTES_MAX`].
    #[error("a record of {0} bytes (1..={RECORD_BYTES_MAX} allowed)")]
    RecordSize(usize),
    /// A peer's message is garbled or not one a correct peer sends; close its connection.
    #[error("bad message from node {from}: {reason}")]
    BadMessage {
        /// The sender the connection claims.
        from: i32,
        /// What is wrong.
        reason: String,
    },
    /// raft refused a call.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// An earlier persist failed; raft's state no longer matches the disk, so this node must
    /// restart (and recover from its log).
    #[error("the quorum failed earlier and must be reopened")]
    Poisoned,
}

/// A committed application record, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedEntry {
    /// Its log index.
    pub index: u64,
    /// The term it was proposed in (with `index`, identifies a [`Proposal`]).
    pub term: u64,
    /// The application's bytes.
    pub data: Vec<u8>,
}

/// Where a proposed record sits; it committed if a [`CommittedEntry`] with the same index *and*
/// term arrives (another term at that index means it was lost to a new leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    /// The index it has if it commits.
    pub index: u64,
    /// The leader's term when proposed.
    pub term: u64,
}

/// The application's image at a log index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The last index the image includes.
    pub index: u64,
    /// The image.
    pub data: Vec<u8>,
}

/// The output of one [`Quorum::ready`], already durable. Handle in this order: send
/// `messages`, replace the application state with `snapshot` if any, apply `committed`.
#[derive(Debug, Default)]
pub struct Ready {
    /// (to node id, encoded raft message).
    pub messages: Vec<(i32, Vec<u8>)>,
    /// A snapshot from the leader: the new application image.
    pub snapshot: Option<Image>,
    /// Committed application records, in order (raft's empty entries skipped).
    pub committed: Vec<CommittedEntry>,
}

/// What [`Quorum::committed_after`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommittedRead {
    /// Committed records after the asked index (possibly none); read on after `last_index`,
    /// which counts raft's skipped empty entries too.
    Entries {
        /// The records.
        entries: Vec<CommittedEntry>,
        /// The last index covered.
        last_index: u64,
    },
    /// The asked index was compacted away: start over from this image.
    Snapshot(Image),
}

fn raft_id(node: i32) -> u64 {
    // Node ids are checked non-negative at open; raft reserves 0 for "none".
    u64::from(node.unsigned_abs()) + 1
}

fn node_id(raft_id: u64) -> Option<i32> {
    raft_id.checked_sub(1).and_then(|id| i32::try_from(id).ok())
}

/// Routes raft's slog records to tracing. Hand-written because the slog→tracing adapter crates
/// are not dependencies, and this is a few lines: warn/error keep their level, info becomes
/// debug (raft is chatty about every election), the rest is dropped.
struct TracingDrain;

struct KvLine(String);

impl slog::Serializer for KvLine {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        use std::fmt::Write as _;
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        let level = record.level();
        if !level.is_at_least(slog::Level::Info) {
            return Ok(());
        }
        let mut kv = KvLine(String::new());
        let _ = slog::KV::serialize(&record.kv(), record, &mut kv);
        let _ = slog::KV::serialize(values, record, &mut kv);
        let msg = record.msg();
        match level {
            slog::Level::Critical | slog::Level::Error => tracing::error!(target: "raft", "{msg}{}", kv.0),
            slog::Level::Warning => tracing::warn!(target: "raft", "{msg}{}", kv.0),
            _ => tracing::debug!(target: "raft", "{msg}{}", kv.0),
        }
        Ok(())
    }
}

/// One voter of the metadata quorum. See the module docs for how to drive it.
pub struct Quorum {
    raw: RawNode<RaftLog>,
    config: QuorumConfig,
    /// Opened with [`Bootstrap::Rejoin`] and not yet caught up by a snapshot: must not vote.
    catching_up: bool,
    poisoned: bool,
    /// The index of the last entry handed out in a [`Ready`].
    handed_out: u64,
    /// Messages made outside raft (see [`Quorum::ask_for_snapshot`]), sent with the next Ready.
    outbox: Vec<(i32, Vec<u8>)>,
}

impl Quorum {
    /// Opens the log in `config.dir`, or bootstraps an empty one (see [`Bootstrap`];
    /// `initial_data` is called only for [`Bootstrap::NewCluster`] on an empty directory).
    /// Fails if the stored voters differ from `config.voters`.
    pub fn open(config: QuorumConfig, initial_data: impl FnOnce() -> Vec<u8>) -> Result<Quorum, QuorumError> {
        let mut voters = config.voters.clone();
        voters.sort_unstable();
        voters.dedup();
        if voters.len() != config.voters.len() || voters.iter().any(|&v| v < 0) {
            return Err(QuorumError::Config(format!("voters {:?}: distinct node ids >= 0", config.voters)));
        }
        if !voters.contains(&config.node_id) {
            return Err(QuorumError::Config(format!("node {} is not among voters {voters:?}", config.node_id)));
        }
        let raft_voters: Vec<u64> = voters.iter().map(|&v| raft_id(v)).collect();
        let bootstrap = config.bootstrap;
        let log = RaftLog::open(&config.dir, || match bootstrap {
            Bootstrap::NewCluster => LogBootstrap {
                index: BOOTSTRAP_INDEX,
                term: BOOTSTRAP_TERM,
                voters: raft_voters.clone(),
                data: initial_data(),
            },
            Bootstrap::Rejoin => LogBootstrap { index: 0, term: 0, voters: raft_voters.clone(), data: Vec::new() },
        })?;
        let stored = log.conf_state();
        let mut stored_voters = stored.voters.clone();
        stored_voters.sort_unstable();
        if stored_voters != raft_voters || !stored.learners.is_empty() || !stored.voters_outgoing.is_empty() {
            return Err(QuorumError::VotersMismatch {
                dir: config.dir.clone(),
                stored: stored_voters.iter().filter_map(|&id| node_id(id)).collect(),
                configured: voters,
            });
        }
        let catching_up = log.snapshot_ref().get_metadata().index == 0;
        let handed_out = log.snapshot_ref().get_metadata().index;
        let raft_config = raft::Config {
            id: raft_id(config.node_id),
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            max_size_per_msg: APPEND_MSG_BYTES_MAX,
            max_inflight_msgs: INFLIGHT_MSGS_MAX,
            check_quorum: true,
            pre_vote: true,
            ..raft::Config::default()
        };
        raft_config.validate()?;
        let logger = slog::Logger::root(TracingDrain, slog::o!("raft_id" => raft_config.id));
        let raw = RawNode::new(&raft_config, log, &logger)?;
        Ok(Quorum { raw, config, catching_up, poisoned: false, handed_out, outbox: Vec::new() })
    }

    /// The image the application starts from after [`Quorum::open`] (the latest snapshot); the
    /// following [`Quorum::ready`] calls hand out the committed entries after it.
    pub fn image(&self) -> Image {
        let snapshot = self.raw.store().snapshot_ref();
        Image { index: snapshot.get_metadata().index, data: snapshot.data.to_vec() }
    }

    /// A voter alone in its quorum elects itself at once instead of waiting out an election
    /// timeout (a single-node broker would otherwise start a second or two late).
    pub fn campaign_if_alone(&mut self) -> Result<(), QuorumError> {
        if self.config.voters == [self.config.node_id] && !self.raw.raft.state.eq(&raft::StateRole::Leader) {
            self.raw.campaign()?;
        }
        Ok(())
    }

    /// The leader's process is gone (its connections to this node closed and stayed closed):
    /// rather than wait out its election timeout (1-2 s, randomised), this voter stops treating
    /// the leader as alive, so it grants another voter's vote at once, and campaigns itself if
    /// `campaign` (the caller picks one voter, so the survivors do not split their votes).
    /// Pre-vote still asks a majority first: a leader that is in fact alive keeps its followers
    /// in its lease elsewhere, and nothing changes.
    pub fn leader_lost(&mut self, campaign: bool) -> Result<(), QuorumError> {
        if self.poisoned || self.catching_up || self.is_leader() {
            return Ok(());
        }
        let raft = &mut self.raw.raft;
        raft.election_elapsed = raft.election_elapsed.max(raft.election_timeout());
        if campaign {
            self.raw.campaign()?;
        }
        Ok(())
    }

    /// Advances raft's clock by one tick (the caller ticks every 100 ms). A rejoining node that
    /// has not caught up does not tick, so it never campaigns.
    pub fn tick(&mut self) {
        if !self.catching_up {
            self.raw.tick();
        }
    }

    /// The connection to `node` broke: the leader probes it afresh once it is back (a peer that
    /// restarted or lost its log is found that way) and retries a snapshot that was in flight.
    pub fn unreachable(&mut self, node: i32) {
        let id = raft_id(node);
        if !self.config.voters.contains(&node) || node < 0 {
            return;
        }
        let in_snapshot = self.raw.raft.prs().get(id).is_some_and(|pr| pr.state == ProgressState::Snapshot);
        self.raw.report_unreachable(id);
        if in_snapshot {
            self.raw.report_snapshot(id, SnapshotStatus::Failure);
        }
    }

    /// Steps a message from node `from` (bytes as [`Ready::messages`] made them). Garbled bytes
    /// or a message that is not `from`'s to this node → `Err` (close that connection).
    pub fn step(&mut self, from: i32, bytes: &[u8]) -> Result<(), QuorumError> {
        if self.poisoned {
            return Err(QuorumError::Poisoned);
        }
        let bad = |reason: String| QuorumError::BadMessage { from, reason };
        if from < 0 || from == self.config.node_id || !self.config.voters.contains(&from) {
            return Err(bad("not a peer voter".into()));
        }
        let mut msg = Message::parse_from_bytes(bytes).map_err(|e| bad(format!("does not decode: {e}")))?;
        if msg.from != raft_id(from) || msg.to != raft_id(self.config.node_id) {
            return Err(bad(format!("claims raft ids {} -> {}", msg.from, msg.to)));
        }
        self.check_shape(&msg).map_err(bad)?;
        let msg_type = msg.get_msg_type();
        if self.catching_up && matches!(msg_type, MessageType::MsgRequestVote | MessageType::MsgRequestPreVote) {
            // Not caught up: this node may have voted or acknowledged before it lost its log.
            return Ok(());
        }
        if msg_type == MessageType::MsgAppendResponse && msg.request_snapshot != 0 {
            self.peer_lost_its_log(&msg);
            return Ok(());
        }
        let mut behind = None;
        if msg_type == MessageType::MsgHeartbeat {
            // A leader's commit for us is min(our match, its commit); after we lost our log (a
            // rejoin) its idea of our match is stale, and raft-rs panics on a commit past our last
            // entry. Clamping loses nothing: the real commit arrives with the entries.
            let last = self.raw.raft.raft_log.last_index();
            if msg.commit > last {
                behind = Some((msg.commit, msg.term));
            }
            msg.commit = msg.commit.min(last);
        }
        match self.raw.step(msg) {
            Ok(()) => {}
            Err(raft::Error::StepPeerNotFound) => return Err(bad("not a peer".into())),
            Err(e) => return Err(QuorumError::Raft(e)),
        }
        if let Some((leader_commit, term)) = behind {
            self.report_lost_log(from, leader_commit, term);
        }
        Ok(())
    }

    /// This node holds less than the leader believes (it rejoined after losing its directory):
    /// the leader's progress says it matches up to `leader_commit` at least, so raft-rs sends it
    /// only heartbeats, and ignores rejections below that match as stale. raft-rs has no message
    /// for "I lost my log", so our own rides on an append rejection that carries
    /// `request_snapshot` (which raft-rs never sets here: we never call its `request_snapshot`)
    /// and `reject_hint` = our last index. The leader's [`Quorum::step`] takes it out of raft
    /// and corrects our progress ([`Quorum::peer_lost_its_log`]).
    fn report_lost_log(&mut self, leader: i32, leader_commit: u64, term: u64) {
        if self.raw.raft.term != term || self.leader() != Some(leader) {
            return;
        }
        let mut msg = Message::default();
        msg.set_msg_type(MessageType::MsgAppendResponse);
        msg.from = raft_id(self.config.node_id);
        msg.to = raft_id(leader);
        msg.term = term;
        msg.reject = true;
        msg.index = leader_commit;
        msg.reject_hint = self.raw.raft.raft_log.last_index();
        msg.request_snapshot = BOOTSTRAP_INDEX;
        match msg.write_to_bytes() {
            Ok(bytes) => self.outbox.push((leader, bytes)),
            Err(e) => tracing::error!(leader, "raft message does not encode: {e}"),
        }
    }

    /// The leader's side of [`Quorum::report_lost_log`]: lowers the peer's match to what it
    /// holds and probes it from there (a compacted start means a snapshot). Lowering a match is
    /// safe: raft's commit index never moves back, later commits just count the truth.
    fn peer_lost_its_log(&mut self, msg: &Message) {
        if !self.is_leader() || msg.term != self.raw.raft.term || !msg.reject {
            return;
        }
        let Some(pr) = self.raw.raft.mut_prs().get_mut(msg.from) else { return };
        if pr.matched <= msg.reject_hint {
            return; // stale: it has caught up since
        }
        tracing::warn!(peer = ?node_id(msg.from), matched = pr.matched, holds = msg.reject_hint,
            "raft: a voter holds less than it acknowledged (rejoined after losing its log); catching it up");
        pr.matched = msg.reject_hint;
        pr.become_probe();
        pr.next_idx = pr.matched + 1;
    }

    /// The checks that keep a well-formed but impossible message out of raft's asserts.
    fn check_shape(&self, msg: &Message) -> Result<(), String> {
        use MessageType::*;
        let msg_type = msg.get_msg_type();
        // Proposals, read indexes and leader transfers are never forwarded between our nodes.
        if !matches!(
            msg_type,
            MsgAppend
                | MsgAppendResponse
                | MsgRequestVote
                | MsgRequestVoteResponse
                | MsgSnapshot
                | MsgHeartbeat
                | MsgHeartbeatResponse
                | MsgRequestPreVote
                | MsgRequestPreVoteResponse
        ) {
            return Err(format!("type {msg_type:?} is not sent between nodes"));
        }
        if msg.request_snapshot != 0 && msg_type != MsgAppendResponse {
            return Err(format!("{msg_type:?} requesting a snapshot"));
        }
        let mut expected = msg.index;
        for entry in msg.get_entries() {
            expected = expected.checked_add(1).ok_or("entry index overflow")?;
            if entry.index != expected {
                return Err(format!("entry {} where {expected} belongs", entry.index));
            }
            if entry.get_entry_type() != EntryType::EntryNormal {
                return Err(format!("a {:?} entry (membership never changes)", entry.get_entry_type()));
            }
        }
        if !msg.get_entries().is_empty() && msg_type != MsgAppend {
            return Err(format!("{msg_type:?} with entries"));
        }
        if msg_type == MsgSnapshot {
            let meta = msg.get_snapshot().get_metadata();
            let conf = meta.get_conf_state();
            let mut voters = conf.voters.clone();
            voters.sort_unstable();
            let mine = self.raw.store().conf_state();
            let mut my_voters = mine.voters.clone();
            my_voters.sort_unstable();
            if voters != my_voters || !conf.learners.is_empty() || !conf.voters_outgoing.is_empty() {
                return Err(format!("a snapshot with voters {:?}", conf.voters));
            }
            if meta.index == 0 {
                return Err("an empty snapshot".into());
            }
        } else if msg.has_snapshot() {
            return Err(format!("{msg_type:?} with a snapshot"));
        }
        Ok(())
    }

    /// Proposes one record. Returns where it will sit if it commits.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<Proposal, QuorumError> {
        if self.poisoned {
            return Err(QuorumError::Poisoned);
        }
        if !self.is_leader() {
            return Err(QuorumError::NotLeader { leader: self.leader() });
        }
        if data.is_empty() || data.len() > RECORD_BYTES_MAX {
            return Err(QuorumError::RecordSize(data.len()));
        }
        let proposal = Proposal { index: self.raw.raft.raft_log.last_index() + 1, term: self.raw.raft.term };
        match self.raw.propose(Vec::new(), data) {
            Ok(()) if self.raw.raft.raft_log.last_index() == proposal.index => Ok(proposal),
            Ok(()) | Err(raft::Error::ProposalDropped) => Err(QuorumError::NotLeader { leader: self.leader() }),
            Err(e) => Err(QuorumError::Raft(e)),
        }
    }

    /// Whether [`Quorum::ready`] has work.
    pub fn has_ready(&self) -> bool {
        !self.outbox.is_empty() || self.raw.has_ready()
    }

    /// Runs raft's Ready protocol: persists (fdatasync) snapshot, entries and hard state, then
    /// hands out what to send, install and apply. After an `Err` the quorum is poisoned.
    pub fn ready(&mut self) -> Result<Ready, QuorumError> {
        if self.poisoned {
            return Err(QuorumError::Poisoned);
        }
        let mut out = Ready { messages: std::mem::take(&mut self.outbox), ..Ready::default() };
        for _ in 0..READY_ROUNDS_MAX {
            if !self.raw.has_ready() {
                break;
            }
            if let Err(e) = self.ready_round(&mut out) {
                self.poisoned = true;
                return Err(e);
            }
        }
        Ok(out)
    }

    fn ready_round(&mut self, out: &mut Ready) -> Result<(), QuorumError> {
        let mut rd = self.raw.ready();
        let snapshot = (!rd.snapshot().is_empty()).then(|| rd.snapshot().clone());
        self.raw.mut_store().persist(snapshot.as_ref(), rd.entries(), rd.hs())?;
        // Everything below is durable now: every message may go, in raft's order.
        self.push_messages(rd.take_messages(), out);
        if let Some(snapshot) = snapshot {
            self.install(&snapshot, out);
        }
        self.push_committed(rd.take_committed_entries(), out);
        self.push_messages(rd.take_persisted_messages(), out);
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        self.push_messages(light.take_messages(), out);
        self.push_committed(light.take_committed_entries(), out);
        self.raw.advance_apply();
        Ok(())
    }

    fn install(&mut self, snapshot: &Snapshot, out: &mut Ready) {
        let index = snapshot.get_metadata().index;
        // Entries handed out earlier in this call are superseded by the snapshot.
        out.committed.retain(|e| e.index > index);
        out.snapshot = Some(Image { index, data: snapshot.data.to_vec() });
        self.handed_out = self.handed_out.max(index);
        self.catching_up = false;
    }

    fn push_messages(&self, messages: Vec<Message>, out: &mut Ready) {
        for msg in messages {
            let Some(to) = node_id(msg.to) else { continue };
            match msg.write_to_bytes() {
                Ok(bytes) => out.messages.push((to, bytes)),
                // Encoding our own message cannot fail; raft resends what is lost.
                Err(e) => tracing::error!(to, "raft message does not encode: {e}"),
            }
        }
    }

    fn push_committed(&mut self, entries: Vec<Entry>, out: &mut Ready) {
        for entry in entries {
            if entry.index <= self.handed_out {
                continue;
            }
            self.handed_out = entry.index;
            if entry.data.is_empty() || entry.get_entry_type() != EntryType::EntryNormal {
                continue;
            }
            out.committed.push(CommittedEntry { index: entry.index, term: entry.term, data: entry.data.to_vec() });
        }
    }

    /// The application applied everything up to `index` and its image there is `image()`:
    /// compacts the log into a snapshot there when more than `snapshot_after_entries` entries
    /// sit before `index`.
    pub fn applied(&mut self, index: u64, image: impl FnOnce() -> Vec<u8>) -> Result<(), QuorumError> {
        if self.poisoned {
            return Err(QuorumError::Poisoned);
        }
        let index = index.min(self.handed_out);
        let first = self.raw.store().first_index()?;
        if index < first || index - first < self.config.snapshot_after_entries {
            return Ok(());
        }
        self.raw.mut_store().compact(index, image())?;
        Ok(())
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<i32> {
        match self.raw.raft.leader_id {
            raft::INVALID_ID => None,
            id => node_id(id),
        }
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        !self.poisoned && self.raw.raft.state == StateRole::Leader
    }

    /// Whether a persist failed (say, a full disk): raft's state no longer matches the disk, and
    /// only a [`Quorum::open`] of the same directory gets this voter back.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The commit index.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// For brokers that are not voters: committed records after `index` (at most `max_bytes` of
    /// data, but at least one record), or the latest image if `index` was compacted away.
    pub fn committed_after(&self, index: u64, max_bytes: usize) -> CommittedRead {
        let log = self.raw.store();
        let snapshot = log.snapshot_ref();
        let snap_index = snapshot.get_metadata().index;
        if index < snap_index {
            return CommittedRead::Snapshot(Image { index: snap_index, data: snapshot.data.to_vec() });
        }
        let commit = self.commit_index().min(log.hard_state().commit.max(snap_index));
        let (mut entries, mut last_index, mut bytes) = (Vec::new(), index, 0usize);
        while last_index < commit {
            let Some(entry) = log.entry(last_index + 1) else { break };
            if !entry.data.is_empty() && entry.get_entry_type() == EntryType::EntryNormal {
                if !entries.is_empty() && bytes + entry.data.len() > max_bytes {
                    break;
                }
                bytes += entry.data.len();
                entries.push(CommittedEntry { index: entry.index, term: entry.term, data: entry.data.to_vec() });
            }
            last_index += 1;
        }
        CommittedRead::Entries { entries, last_index }
    }

    /// Per voter, its match index as the leader sees it (empty unless leader).
    pub fn progress(&self) -> Vec<(i32, u64)> {
        if !self.is_leader() {
            return Vec::new();
        }
        let mut progress: Vec<(i32, u64)> =
            self.raw.raft.prs().iter().filter_map(|(&id, pr)| Some((node_id(id)?, pr.matched))).collect();
        progress.sort_unstable();
        progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The application: the list of applied records; its image is that list as JSON.
    #[derive(Debug, Default, Clone, PartialEq)]
    struct App {
        records: Vec<Vec<u8>>,
        index: u64,
        snapshots_installed: usize,
    }

    impl App {
        fn from_image(image: Image) -> App {
            if image.index == 0 {
                return App::default(); // a rejoining node: no state until its snapshot
            }
            App { records: serde_json::from_slice(&image.data).unwrap(), index: image.index, snapshots_installed: 0 }
        }
        fn image(&self) -> Vec<u8> {
            serde_json::to_vec(&self.records).unwrap()
        }
    }

    struct Node {
        quorum: Option<Quorum>,
        app: App,
        dir: tempfile::TempDir,
        config: QuorumConfig,
        /// Its disk is full: its persists fail, and the helpers below leave it alone once
        /// its quorum is poisoned.
        disk_full: bool,
    }

    fn initial() -> Vec<u8> {
        serde_json::to_vec(&vec![b"init".to_vec()]).unwrap()
    }

    fn config(node_id: i32, voters: &[i32], dir: &Path, snapshot_after_entries: u64) -> QuorumConfig {
        QuorumConfig {
            node_id,
            voters: voters.to_vec(),
            dir: dir.to_path_buf(),
            election_ticks: 10,
            heartbeat_ticks: 2,
            snapshot_after_entries,
            bootstrap: Bootstrap::NewCluster,
        }
    }

    use std::path::Path;

    impl Node {
        fn new(node_id: i32, voters: &[i32], snapshot_after_entries: u64) -> Node {
            let dir = tempfile::tempdir().unwrap();
            let config = config(node_id, voters, dir.path(), snapshot_after_entries);
            let mut node = Node { quorum: None, app: App::default(), dir, config, disk_full: false };
            node.start();
            node
        }
        fn start(&mut self) {
            let quorum = Quorum::open(self.config.clone(), initial).unwrap();
            self.app = App::from_image(quorum.image());
            self.quorum = Some(quorum);
        }
        fn q(&mut self) -> &mut Quorum {
            self.quorum.as_mut().unwrap()
        }
    }

    /// One round of the Ready protocol on every live node; returns the messages to deliver.
    fn ready_all(nodes: &mut [Node]) -> Vec<(i32, i32, Vec<u8>)> {
        let mut out = Vec::new();
        for node in nodes.iter_mut() {
            let Some(quorum) = node.quorum.as_mut() else { continue };
            let rd = match quorum.ready() {
                Ok(rd) => rd,
                Err(e) if node.disk_full => {
                    assert!(quorum.is_poisoned(), "{e}");
                    continue;
                }
                Err(e) => panic!("ready: {e}"),
            };
            let from = quorum.config.node_id;
            out.extend(rd.messages.into_iter().map(|(to, bytes)| (from, to, bytes)));
            if let Some(image) = rd.snapshot {
                let installed = node.app.snapshots_installed + 1;
                node.app = App::from_image(image);
                node.app.snapshots_installed = installed;
            }
            for entry in rd.committed {
                assert!(entry.index > node.app.index, "applied in order");
                node.app.records.push(entry.data);
                node.app.index = entry.index;
            }
            let app = node.app.clone();
            quorum.applied(app.index, || app.image()).unwrap();
        }
        out
    }

    /// Loops ready/step (no ticks) until no message moves; messages to dead nodes are lost.
    fn deliver_all(nodes: &mut [Node]) {
        for _ in 0..100 {
            let messages = ready_all(nodes);
            if messages.is_empty() {
                return;
            }
            for (from, to, bytes) in messages {
                let target = nodes.iter_mut().find(|n| n.config.node_id == to).and_then(|n| n.quorum.as_mut());
                if let Some(quorum) = target
                    && !quorum.is_poisoned()
                {
                    quorum.step(from, &bytes).unwrap();
                }
            }
        }
        panic!("messages still flowing after 100 rounds");
    }

    /// Ticks every live node and delivers, until `done` holds.
    fn tick_until(nodes: &mut [Node], done: impl Fn(&[Node]) -> bool) {
        for _ in 0..500 {
            deliver_all(nodes);
            if done(nodes) {
                return;
            }
            for node in nodes.iter_mut() {
                if let Some(quorum) = node.quorum.as_mut() {
                    quorum.tick();
                }
            }
        }
        for n in nodes.iter() {
            let q = n.quorum.as_ref().unwrap();
            eprintln!(
                "node {} app {:?} leader {:?} term {} commit {} first {} last {} prs {:?}",
                n.config.node_id,
                n.app.index,
                q.leader(),
                q.term(),
                q.commit_index(),
                q.raw.store().first_index().unwrap(),
                q.raw.store().last_index().unwrap(),
                q.raw
                    .raft
                    .prs()
                    .iter()
                    .map(|(id, p)| (*id, p.matched, p.next_idx, p.state, p.recent_active))
                    .collect::<Vec<_>>()
            );
        }
        panic!("condition not reached in 500 ticks");
    }

    fn leader(nodes: &[Node]) -> Option<usize> {
        nodes.iter().position(|n| n.quorum.as_ref().is_some_and(Quorum::is_leader))
    }

    fn has_leader(nodes: &[Node]) -> bool {
        let leader = leader(nodes);
        // Every live node agrees on it.
        leader.is_some()
            && nodes
                .iter()
                .filter_map(|n| n.quorum.as_ref())
                .all(|q| q.leader() == Some(nodes[leader.unwrap()].config.node_id))
    }

    fn records(app: &App) -> Vec<String> {
        app.records.iter().map(|r| String::from_utf8(r.clone()).unwrap()).collect()
    }

    fn propose(nodes: &mut [Node], data: &str) -> Proposal {
        let leader = leader(nodes).unwrap();
        let proposal = nodes[leader].q().propose(data.as_bytes().to_vec()).unwrap();
        deliver_all(nodes);
        proposal
    }

    #[test]
    fn a_single_voter_elects_itself_commits_and_keeps_everything_across_a_restart() {
        let mut nodes = vec![Node::new(0, &[0], 1000)];
        tick_until(&mut nodes, has_leader);
        assert_eq!(nodes[0].q().leader(), Some(0));
        let p1 = propose(&mut nodes, "a");
        propose(&mut nodes, "b");
        assert_eq!(records(&nodes[0].app), ["init", "a", "b"]);
        assert!(nodes[0].q().commit_index() > p1.index);
        assert_eq!(nodes[0].q().progress(), [(0, nodes[0].q().commit_index())]);

        nodes[0].quorum = None;
        nodes[0].start();
        deliver_all(&mut nodes);
        assert_eq!(records(&nodes[0].app), ["init", "a", "b"], "replayed from disk");
        tick_until(&mut nodes, has_leader);
        propose(&mut nodes, "c");
        assert_eq!(records(&nodes[0].app), ["init", "a", "b", "c"]);
    }

    #[test]
    fn three_voters_elect_a_leader_and_apply_the_same_records_in_the_same_order() {
        let mut nodes: Vec<Node> = (0..3).map(|id| Node::new(id, &[0, 1, 2], 1000)).collect();
        tick_until(&mut nodes, has_leader);
        let leader = leader(&nodes).unwrap();
        let follower = (leader + 1) % 3;
        let err = nodes[follower].q().propose(b"x".to_vec()).unwrap_err();
        assert!(matches!(err, QuorumError::NotLeader { leader: Some(l) } if l == leader as i32), "{err}");
        for i in 0..10 {
            propose(&mut nodes, &format!("r{i}"));
        }
        // Followers learn the last commit with the next append or heartbeat.
        tick_until(&mut nodes, |n| n.iter().all(|n| n.app.records.len() == 11));
        let expected: Vec<String> =
            std::iter::once("init".to_string()).chain((0..10).map(|i| format!("r{i}"))).collect();
        for node in &nodes {
            assert_eq!(records(&node.app), expected);
        }
        let commit = nodes[leader].q().commit_index();
        assert_eq!(nodes[leader].q().progress().iter().map(|p| p.1).min(), Some(commit));
        match nodes[follower].q().committed_after(0, 1 << 20) {
            CommittedRead::Snapshot(image) => assert_eq!(image.index, 1),
            other => panic!("{other:?}"),
        }
        match nodes[follower].q().committed_after(1, 4) {
            CommittedRead::Entries { entries, last_index } => {
                assert_eq!(entries.len(), 2, "two records of 2 bytes fit in 4");
                assert_eq!(entries[0].data, b"r0");
                assert_eq!(last_index, entries[1].index);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn when_the_leader_dies_the_others_elect_a_new_one_and_the_old_one_catches_up() {
        let mut nodes: Vec<Node> = (0..3).map(|id| Node::new(id, &[0, 1, 2], 1000)).collect();
        tick_until(&mut nodes, has_leader);
        propose(&mut nodes, "before");
        let old = leader(&nodes).unwrap();
        let old_term = nodes[old].q().term();
        // Proposed but never sent: dies with the leader (the entry is on its disk only).
        nodes[old].q().propose(b"lost".to_vec()).unwrap();
        nodes[old].q().ready().unwrap();
        nodes[old].quorum = None;
        tick_until(&mut nodes, has_leader);
        let new = leader(&nodes).unwrap();
        assert_ne!(new, old);
        assert!(nodes[new].q().term() > old_term);
        propose(&mut nodes, "after");

        nodes[old].start();
        for node in nodes.iter_mut() {
            node.q().unreachable(old as i32);
        }
        tick_until(&mut nodes, |n| n.iter().all(|n| n.app.records.len() == 3) && has_leader(n));
        for node in &nodes {
            assert_eq!(records(&node.app), ["init", "before", "after"], "the uncommitted entry is gone");
        }
    }

    #[test]
    fn a_voter_whose_disk_filled_up_is_reopened_from_its_log_and_votes_again() {
        let mut nodes: Vec<Node> = (0..3).map(|id| Node::new(id, &[0, 1, 2], 1000)).collect();
        tick_until(&mut nodes, has_leader);
        propose(&mut nodes, "a");
        let leader = leader(&nodes).unwrap();
        let (full, other) = ((leader + 1) % 3, (leader + 2) % 3);
        nodes[full].disk_full = true;
        nodes[full].q().raw.mut_store().torn_appends = true;
        propose(&mut nodes, "b");
        assert!(nodes[full].q().is_poisoned(), "its append of b failed half-written");
        assert!(matches!(nodes[full].q().ready(), Err(QuorumError::Poisoned)));
        assert!(!nodes[full].q().is_leader());
        propose(&mut nodes, "c");
        tick_until(&mut nodes, |n| records(&n[leader].app) == ["init", "a", "b", "c"]);

        // Space again: the node reopens its quorum in the same directory, as ClusterNode's
        // ticker does; the torn tail is cut and raft catches it up.
        nodes[full].disk_full = false;
        nodes[full].start();
        for node in nodes.iter_mut() {
            node.q().unreachable(full as i32);
        }
        tick_until(&mut nodes, |n| n[full].app.records.len() == 4);
        // Without the third voter, commits need the reopened one.
        nodes[other].quorum = None;
        propose(&mut nodes, "d");
        tick_until(&mut nodes, |n| n[full].app.records.len() == 5 && n[leader].app.records.len() == 5);
        assert_eq!(records(&nodes[full].app), ["init", "a", "b", "c", "d"]);
        assert_eq!(records(&nodes[leader].app), records(&nodes[full].app));
    }

    #[test]
    fn a_wiped_voter_rejoins_by_snapshot_after_compaction() {
        let mut nodes: Vec<Node> = (0..3).map(|id| Node::new(id, &[0, 1, 2], 5)).collect();
        tick_until(&mut nodes, has_leader);
        for i in 0..20 {
            propose(&mut nodes, &format!("r{i}"));
        }
        tick_until(&mut nodes, |n| n.iter().all(|n| n.app.records.len() == 21));
        let leader = leader(&nodes).unwrap();
        assert!(nodes[leader].q().raw.store().first_index().unwrap() > 10, "compacted");
        let wiped = (leader + 1) % 3;
        nodes[wiped].quorum = None;
        nodes[wiped].dir = tempfile::tempdir().unwrap();
        nodes[wiped].config.dir = nodes[wiped].dir.path().to_path_buf();
        nodes[wiped].config.bootstrap = Bootstrap::Rejoin;
        nodes[wiped].start();
        assert_eq!(nodes[wiped].app.index, 0);
        // No unreachable() call: the leader learns from the rejoining node's answer to its
        // heartbeats. It ignores vote requests until caught up, but a live leader needs none.
        tick_until(&mut nodes, |n| n[wiped].app.records.len() == 21);
        assert_eq!(nodes[wiped].app.snapshots_installed, 1);
        propose(&mut nodes, "after");
        tick_until(&mut nodes, |n| n.iter().all(|n| n.app.records.len() == 22));
        assert_eq!(records(&nodes[wiped].app), records(&nodes[leader].app));
        // Caught up, it is a full voter again: reopened, it keeps its state.
        nodes[wiped].quorum = None;
        nodes[wiped].start();
        assert!(nodes[wiped].app.index > 10);
    }

    #[test]
    fn a_rejoining_voter_neither_campaigns_nor_votes_until_caught_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(1, &[0, 1, 2], dir.path(), 10);
        config.bootstrap = Bootstrap::Rejoin;
        let mut quorum = Quorum::open(config, || panic!("a rejoining node has no initial data")).unwrap();
        assert_eq!(quorum.image(), Image { index: 0, data: Vec::new() });
        for _ in 0..100 {
            quorum.tick();
        }
        assert!(quorum.ready().unwrap().messages.is_empty(), "no campaign");
        for msg_type in [MessageType::MsgRequestPreVote, MessageType::MsgRequestVote] {
            let mut msg = Message::default();
            msg.set_msg_type(msg_type);
            msg.from = raft_id(0);
            msg.to = raft_id(1);
            msg.term = 5;
            msg.log_term = 1;
            msg.index = 1;
            quorum.step(0, &msg.write_to_bytes().unwrap()).unwrap();
        }
        assert!(quorum.ready().unwrap().messages.is_empty(), "no vote granted");
        let read = quorum.committed_after(0, 100);
        assert_eq!(read, CommittedRead::Entries { entries: Vec::new(), last_index: 0 });
    }

    #[test]
    fn a_voter_list_that_disagrees_with_the_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(Quorum::open(config(0, &[0, 1, 2], dir.path(), 10), initial).unwrap());
        let err = Quorum::open(config(0, &[0, 1], dir.path(), 10), initial).err().unwrap();
        assert!(matches!(err, QuorumError::VotersMismatch { ref stored, .. } if stored == &[0, 1, 2]), "{err}");
        assert!(matches!(Quorum::open(config(3, &[0, 1, 2], dir.path(), 10), initial), Err(QuorumError::Config(_))));
        assert!(matches!(Quorum::open(config(0, &[0, 0, 1], dir.path(), 10), initial), Err(QuorumError::Config(_))));
    }

    #[test]
    fn garbled_or_misaddressed_messages_are_errors_not_panics() {
        let mut nodes: Vec<Node> = (0..3).map(|id| Node::new(id, &[0, 1, 2], 1000)).collect();
        tick_until(&mut nodes, has_leader);
        let leader_id = leader(&nodes).unwrap() as i32;
        let leader = leader_id as usize;
        nodes[leader].q().propose(b"x".to_vec()).unwrap();
        let rd = nodes[leader].q().ready().unwrap();
        let (to, bytes) = rd.messages.into_iter().find(|(to, _)| *to != leader_id).unwrap();
        let other = (0..3).find(|&i| i != leader_id && i != to).unwrap();
        let target = nodes[to as usize].q();
        assert!(matches!(target.step(other, &bytes), Err(QuorumError::BadMessage { .. })), "wrong sender");
        assert!(matches!(target.step(7, &bytes), Err(QuorumError::BadMessage { .. })), "not a voter");
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..300 {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = target.step(leader_id, &garbage);
        }
        // Truncations and bit flips of a real message.
        for cut in 0..bytes.len() {
            let _ = target.step(leader_id, &bytes[..cut]);
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x5a;
            let _ = target.step(leader_id, &flipped);
        }
        // A message type peers never send.
        let mut msg = Message::default();
        msg.set_msg_type(MessageType::MsgPropose);
        msg.from = raft_id(leader_id);
        msg.to = raft_id(to);
        let err = target.step(leader_id, &msg.write_to_bytes().unwrap()).unwrap_err();
        assert!(matches!(err, QuorumError::BadMessage { .. }), "{err}");
        // A heartbeat with a commit past our log is clamped, not a raft panic.
        let mut msg = Message::default();
        msg.set_msg_type(MessageType::MsgHeartbeat);
        msg.from = raft_id(leader_id);
        msg.to = raft_id(to);
        msg.term = target.term();
        msg.commit = 1_000_000;
        target.step(leader_id, &msg.write_to_bytes().unwrap()).unwrap();
    }
}
