//! A follower fetcher: one task per leader listener this shard follows partitions of, sending
//! one replica Fetch for all of them at a time and applying each partition's answer — records
//! appended (and acknowledged under the flush mode before the next fetch), the leader's high
//! watermark followed, a diverged log truncated, an outdated one restarted at the leader's log
//! start.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, warn};

use super::Replication;
use crate::model::{LeaderEpoch, Offset, TopicPartition};
use crate::protocol::messages::{FetchRequest, FetchRequestPartition, FetchRequestTopic, FetchResponsePartition};
use crate::protocol::{ErrorCode, RecordSet};

/// The Fetch version followers send: the first with the last fetched epoch and the diverging
/// epoch (KIP-595), the highest this broker serves.
const FETCH_VERSION: i16 = 12;

/// How long a fetcher waits before asking again for partitions whose leader answered with a
/// leadership error (it has not installed the image that made it leader yet, or no longer
/// leads): short, because the metadata catching up is a matter of milliseconds.
const LEADERSHIP_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// At most one warning per this long per fetcher, so a leader that is down does not flood the
/// log.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// One leader listener's follower partitions on this shard.
pub(super) struct Fetcher {
    leader: i32,
    addr: String,
    partitions: RefCell<BTreeSet<TopicPartition>>,
    /// When this fetcher last logged a warning.
    warned: Cell<Option<Instant>>,
}

impl Fetcher {
    /// A fetcher for `partitions` led by `leader`, whose listener is `addr`.
    pub(super) fn new(leader: i32, addr: String, partitions: BTreeSet<TopicPartition>) -> Rc<Self> {
        Rc::new(Fetcher { leader, addr, partitions: RefCell::new(partitions), warned: Cell::new(None) })
    }

    /// The leader followed.
    pub(super) fn leader(&self) -> i32 {
        self.leader
    }

    /// Replaces the partitions followed; with none, the task ends after its current fetch.
    pub(super) fn set_partitions(&self, partitions: BTreeSet<TopicPartition>) {
        *self.partitions.borrow_mut() = partitions;
    }

    /// Whether a warning may be logged now (at most one per [`WARN_EVERY`]).
    fn may_warn(&self) -> bool {
        let now = Instant::now();
        if self.warned.get().is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return false;
        }
        self.warned.set(Some(now));
        true
    }
}

/// What one fetch asked of one partition, to recognise a stale answer.
struct Asked {
    epoch: LeaderEpoch,
    offset: Offset,
}

/// The fetcher's loop; ends when its partitions are gone or the shard's replication layer is.
pub(super) async fn run(replication: Weak<Replication>, fetcher: Rc<Fetcher>) {
    loop {
        let tps: Vec<TopicPartition> = fetcher.partitions.borrow().iter().cloned().collect();
        if tps.is_empty() {
            return;
        }
        let Some(me) = replication.upgrade() else { return };
        let (request, asked) = build_request(&me, &fetcher, &tps);
        if asked.is_empty() {
            drop(me);
            glommio::timer::sleep(LEADERSHIP_ERROR_BACKOFF).await;
            continue;
        }
        let answer = me.pool.send(&fetcher.addr, FETCH_VERSION, &request).await;
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                if fetcher.may_warn() {
                    warn!(leader = fetcher.leader, addr = %fetcher.addr, error = %e, "follower fetch failed");
                }
                let backoff = Duration::from_millis(me.config.replication.replica_fetch_backoff_ms);
                drop(me);
                glommio::timer::sleep(backoff).await;
                continue;
            }
        };
        let mut back_off = false;
        for topic in response.responses {
            for partition in topic.partitions {
                let tp = TopicPartition::new(topic.topic.as_str(), partition.partition_index);
                let Some(asked) = asked.get(&tp) else { continue };
                back_off |= apply(&me, &fetcher, &tp, asked, partition).await;
            }
        }
        drop(me);
        if back_off {
            glommio::timer::sleep(LEADERSHIP_ERROR_BACKOFF).await;
        }
    }
}

/// The replica Fetch for the partitions of `tps` this broker still follows from this fetcher's
/// leader, and what it asked of each.
fn build_request(
    me: &Replication,
    fetcher: &Fetcher,
    tps: &[TopicPartition],
) -> (FetchRequest, BTreeMap<TopicPartition, Asked>) {
    let settings = &me.config.replication;
    let mut topics: Vec<FetchRequestTopic> = Vec::new();
    let mut asked = BTreeMap::new();
    for tp in tps {
        let Some(partition) = me.partitions.get(tp) else { continue };
        let Some((leader, epoch, offset, last_fetched_epoch, log_start)) = partition.follower_position() else {
            continue;
        };
        if leader != fetcher.leader {
            continue;
        }
        let entry = FetchRequestPartition {
            partition: tp.partition,
            current_leader_epoch: epoch.0,
            fetch_offset: offset.0,
            last_fetched_epoch,
            log_start_offset: log_start.0,
            partition_max_bytes: settings.replica_fetch_max_bytes,
        };
        match topics.last_mut() {
            Some(last) if last.topic == *tp.topic => last.partitions.push(entry),
            _ => topics.push(FetchRequestTopic { topic: tp.topic.to_string(), partitions: vec![entry] }),
        }
        asked.insert(tp.clone(), Asked { epoch, offset });
    }
    let request = FetchRequest {
        replica_id: me.config.node_id,
        max_wait_ms: settings.replica_fetch_wait_max_ms,
        min_bytes: 1,
        max_bytes: settings.replica_fetch_response_max_bytes,
        isolation_level: 0,
        session_id: 0,
        session_epoch: -1,
        topics,
        ..Default::default()
    };
    (request, asked)
}

/// Applies one partition's answer; returns whether it failed (a leadership error, worth a short
/// wait for the metadata to catch up, or a log that cannot take the records: asking again at
/// once would spin).
async fn apply(
    me: &Replication,
    fetcher: &Fetcher,
    tp: &TopicPartition,
    asked: &Asked,
    answer: FetchResponsePartition,
) -> bool {
    let Some(partition) = me.partitions.get(tp) else { return false };
    let Some(_gate) = partition.follower_gate().await else { return false };
    // Still following the same leadership from the same place? Otherwise the answer is stale.
    match partition.follower_position() {
        Some((leader, epoch, offset, ..))
            if leader == fetcher.leader && epoch == asked.epoch && offset == asked.offset => {}
        _ => return false,
    }
    let outcome = match ErrorCode::from_i16(answer.error_code) {
        Some(ErrorCode::None) => {
            let diverging = answer.diverging_epoch;
            if diverging.end_offset >= 0 {
                partition.truncate_diverged(LeaderEpoch(diverging.epoch), Offset(diverging.end_offset)).await
            } else {
                let records = answer.records.map(into_bytes).unwrap_or_default();
                let appended = if records.is_empty() { Ok(()) } else { partition.append_replicated(records).await };
                partition.follow_high_watermark(Offset(answer.high_watermark));
                appended.and_then(|()| partition.follow_log_start(Offset(answer.log_start_offset)))
            }
        }
        Some(ErrorCode::OffsetOutOfRange) => {
            if asked.offset.0 < answer.log_start_offset {
                partition.reset_follower(Offset(answer.log_start_offset)).await
            } else {
                // Past the leader's log end: keep only what the leader has committed.
                let latest = partition.follower_position().map_or(LeaderEpoch(-1), |(_, _, _, e, _)| LeaderEpoch(e));
                partition.truncate_diverged(latest, Offset(answer.high_watermark.max(0))).await
            }
        }
        Some(
            ErrorCode::NotLeaderOrFollower
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::UnknownLeaderEpoch
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::LeaderNotAvailable,
        ) => {
            debug!(%tp, code = answer.error_code, "the leader cannot serve this follower yet");
            return true;
        }
        _ => {
            debug!(%tp, code = answer.error_code, "follower fetch answered with an error");
            return true;
        }
    };
    match outcome {
        Ok(()) => false,
        Err(e) => {
            if fetcher.may_warn() {
                warn!(%tp, error = %e, "cannot apply the leader's records");
            }
            true
        }
    }
}

/// The bytes of a decoded record set.
fn into_bytes(records: RecordSet) -> Bytes {
    match records {
        RecordSet::Owned(bytes) => bytes.freeze(),
        RecordSet::Shared(bytes) => bytes,
        // Decoding never makes chunks; they exist only on the sending side.
        RecordSet::Chunks(_) => Bytes::new(),
    }
}
