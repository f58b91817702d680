//! The calls nodes make to the controller (the quorum's leader) over the transport, as JSON:
//! brokers register and heartbeat, observers pull the committed log, any broker forwards the
//! topic administration it received. Raft's own messages travel beside them as protobuf.

use serde::{Deserialize, Serialize};

use super::brokers::RegisterError;
use super::image::{BrokerMeta, NodeId};

/// A call to the controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeRequest {
    /// A broker process starting: its registration (a new incarnation).
    Register(BrokerMeta),
    /// A broker's session is alive; `applied` is the last metadata index it applied.
    Heartbeat {
        /// The broker.
        id: NodeId,
        /// Its incarnation.
        incarnation: String,
        /// The last log index it applied.
        applied: u64,
    },
    /// A broker shutting down cleanly: fence it now (its partitions' leadership moves at once)
    /// rather than when its session expires.
    Leave {
        /// The broker.
        id: NodeId,
        /// Its incarnation.
        incarnation: String,
    },
    /// Committed records after `after`, for a broker that is not a voter.
    FetchLog {
        /// The last index the asker applied.
        after: u64,
    },
    /// A topic administration request, encoded by the broker.
    Control(Vec<u8>),
    /// The quorum's state, for `sluice cluster status`.
    Status,
}

/// The controller's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeResponse {
    /// This node is not the controller; ask `leader` if known.
    NotController {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The registration is in the log (at `epoch`, the broker epoch).
    Registered {
        /// The broker epoch.
        epoch: u64,
    },
    /// The registration is refused.
    Refused(RegisterError),
    /// The broker is fenced.
    Left,
    /// The heartbeat was counted (`known`: the incarnation is the registered one; if not, the
    /// broker registers again).
    Heartbeat {
        /// Whether the controller knows this incarnation.
        known: bool,
    },
    /// Log entries (index, data) after the asked index, or the snapshot when the asked index
    /// is no longer in the log.
    Log(LogRead),
    /// The broker's encoded answer to a `Control` call, valid once the log reached `index`.
    Control {
        /// The answer.
        response: Vec<u8>,
        /// The log index of the change (0 if nothing changed).
        index: u64,
    },
    /// The quorum's state.
    Status(QuorumStatus),
    /// The call failed (a metadata change that did not commit in time, a bad request).
    Failed(String),
}

/// What an observer gets when it pulls the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LogRead {
    /// Committed entries, in order, and the last index they cover (raft's own empty entries
    /// are left out but counted).
    Entries {
        /// (index, data) of each entry with records.
        entries: Vec<(u64, Vec<u8>)>,
        /// The last index covered.
        last_index: u64,
    },
    /// The snapshot (its index and the image it holds).
    Snapshot(u64, Vec<u8>),
}

/// The quorum as the controller sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    /// The leader (the active controller).
    pub leader: Option<NodeId>,
    /// Its Raft term.
    pub term: u64,
    /// The log's commit index.
    pub commit_index: u64,
    /// Each voter and the index it has replicated.
    pub voters: Vec<(NodeId, u64)>,
    /// Each registered broker that is not a voter, and the index its image reached as its last
    /// heartbeat told this controller (`None` before one has been heard). Defaulted so a node
    /// without the field still decodes the answer.
    #[serde(default)]
    pub observers: Vec<(NodeId, Option<u64>)>,
}

/// Encodes a call or an answer.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).unwrap_or_default()
}

/// Decodes a call or an answer; garbage is an error, never a panic.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}
