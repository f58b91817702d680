//! Incremental fetch sessions (KIP-227). A consumer that fetches many partitions sends the full
//! list once (epoch 0) and gets a session id; later fetches (epoch 1, 2, …) name only the
//! partitions whose fetch position changed, and the response carries only the partitions that
//! have something new (records, a moved high watermark or log start offset, an error).
//!
//! Cores: one cache per shard; a session lives on the shard whose connection created it (ids
//! encode the shard, so they are unique broker-wide). A client that reconnects to another shard
//! gets FETCH_SESSION_ID_NOT_FOUND and starts a new session, as Kafka clients do.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::model::TopicPartition;
use crate::protocol::ErrorCode;

/// Kafka's epoch values with special meanings.
pub const INITIAL_EPOCH: i32 = 0;
/// A sessionless fetch, or closing a session.
pub const FINAL_EPOCH: i32 = -1;

/// What the consumer asked for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedPartition {
    /// Which partition.
    pub topic_partition: TopicPartition,
    /// Where to read from.
    pub fetch_offset: i64,
    /// At most this many bytes.
    pub partition_max_bytes: i32,
    /// The leader epoch the reader knows (KIP-320), or -1.
    pub current_leader_epoch: i32,
    /// A follower's last fetched epoch, or -1.
    pub last_fetched_epoch: i32,
}

/// What the broker last told the consumer about a partition in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionView {
    /// High watermark.
    pub high_watermark: i64,
    /// Last stable offset.
    pub last_stable_offset: i64,
    /// Log start offset.
    pub log_start_offset: i64,
}

#[derive(Debug, Clone)]
struct SessionPartition {
    fetch_offset: i64,
    partition_max_bytes: i32,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    last_sent: Option<PartitionView>,
}

#[derive(Debug)]
struct Session {
    /// Partitions in the order the consumer first listed them.
    order: Vec<TopicPartition>,
    partitions: HashMap<TopicPartition, SessionPartition>,
    next_epoch: i32,
    last_used: Instant,
}

/// Why a fetch's session fields are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No session with that id (expired, evicted, or created on another shard).
    #[error("fetch session id not found")]
    NotFound,
    /// The epoch is not the one the session expects next.
    #[error("invalid fetch session epoch")]
    InvalidEpoch,
}

/// The partitions one fetch reads, and how to answer.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    /// The session id to put in the response (0: no session).
    pub session_id: i32,
    /// Incremental: the response carries only partitions with news.
    pub incremental: bool,
    /// Every partition to read, in order.
    pub partitions: Vec<RequestedPartition>,
    /// Incremental plans only: what the session had last sent of each partition when this fetch
    /// began. The response is judged against it, not against the session, because the session
    /// may go while the fetch waits: a client closing its session (epoch -1) sends the close on
    /// the same connection right behind its last long poll, and requests of one connection run
    /// concurrently here (Kafka runs them one at a time). Without it, that poll's answer listed
    /// every partition, which the Java client rejects ("invalid full fetch response").
    last_sent: HashMap<TopicPartition, PartitionView>,
}

/// One shard's fetch sessions.
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    shard: i32,
    shards: i32,
    counter: i32,
    max: usize,
    idle: Duration,
}

impl FetchSessions {
    /// A cache for shard `shard` of `shards`, holding at most `max` sessions idle at most `idle`.
    pub fn new(shard: usize, shards: usize, max: usize, idle: Duration) -> Self {
        let shard = i32::try_from(shard).unwrap_or(0);
        let shards = i32::try_from(shards.max(1)).unwrap_or(1);
        FetchSessions { sessions: HashMap::new(), shard, shards, counter: 0, max, idle }
    }

    /// Interprets a fetch request's session fields and partition lists.
    pub fn begin(
        &mut self,
        session_id: i32,
        epoch: i32,
        requested: Vec<RequestedPartition>,
        forgotten: Vec<TopicPartition>,
        now: Instant,
    ) -> Result<FetchPlan, SessionError> {
        self.expire(now);
        if epoch == FINAL_EPOCH {
            if session_id != 0 {
                self.sessions.remove(&session_id);
            }
            return Ok(FetchPlan {
                session_id: 0,
                incremental: false,
                partitions: requested,
                last_sent: HashMap::new(),
            });
        }
        if epoch == INITIAL_EPOCH {
            if session_id != 0 {
                self.sessions.remove(&session_id);
            }
            let id = self.new_session(&requested, now);
            return Ok(FetchPlan {
                session_id: id,
                incremental: false,
                partitions: requested,
                last_sent: HashMap::new(),
            });
        }
        let session = self.sessions.get_mut(&session_id).ok_or(SessionError::NotFound)?;
        if epoch != session.next_epoch {
            return Err(SessionError::InvalidEpoch);
        }
        session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        session.last_used = now;
        for tp in forgotten {
            session.partitions.remove(&tp);
            session.order.retain(|t| *t != tp);
        }
        for partition in requested {
            let entry = SessionPartition {
                fetch_offset: partition.fetch_offset,
                partition_max_bytes: partition.partition_max_bytes,
                current_leader_epoch: partition.current_leader_epoch,
                last_fetched_epoch: partition.last_fetched_epoch,
                last_sent: None,
            };
            match session.partitions.get_mut(&partition.topic_partition) {
                Some(existing) => {
                    existing.fetch_offset = partition.fetch_offset;
                    existing.partition_max_bytes = partition.partition_max_bytes;
                    existing.current_leader_epoch = partition.current_leader_epoch;
                    existing.last_fetched_epoch = partition.last_fetched_epoch;
                }
                None => {
                    session.order.push(partition.topic_partition.clone());
                    session.partitions.insert(partition.topic_partition, entry);
                }
            }
        }
        let mut partitions = Vec::with_capacity(session.order.len());
        let mut last_sent = HashMap::with_capacity(session.order.len());
        for tp in &session.order {
            let Some(p) = session.partitions.get(tp) else { continue };
            partitions.push(RequestedPartition {
                topic_partition: tp.clone(),
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
            });
            if let Some(view) = p.last_sent {
                last_sent.insert(tp.clone(), view);
            }
        }
        Ok(FetchPlan { session_id, incremental: true, partitions, last_sent })
    }

    /// Whether a partition belongs in the response of `plan`: always in a full response; in an
    /// incremental one only with records, an error, or a view that changed since last sent
    /// (as of the fetch's start, even if the session has gone since). Records what was sent in
    /// the session, if it is still there.
    pub fn include(&mut self, plan: &FetchPlan, tp: &TopicPartition, view: PartitionView, news: bool) -> bool {
        if let Some(partition) = self.sessions.get_mut(&plan.session_id).and_then(|s| s.partitions.get_mut(tp)) {
            partition.last_sent = Some(view);
        }
        !plan.incremental || news || plan.last_sent.get(tp) != Some(&view)
    }

    fn new_session(&mut self, requested: &[RequestedPartition], now: Instant) -> i32 {
        if self.sessions.len() >= self.max {
            // Full: evict the least recently used session, as Kafka's cache does.
            let oldest = self.sessions.iter().min_by_key(|(_, s)| s.last_used).map(|(&id, _)| id);
            match oldest {
                Some(id) => {
                    self.sessions.remove(&id);
                }
                None => return 0,
            }
        }
        self.counter = self.counter.wrapping_add(1).max(1);
        let id = self.counter.wrapping_mul(self.shards).wrapping_add(self.shard).max(1);
        let mut session = Session { order: Vec::new(), partitions: HashMap::new(), next_epoch: 1, last_used: now };
        for p in requested {
            session.order.push(p.topic_partition.clone());
            session.partitions.insert(
                p.topic_partition.clone(),
                SessionPartition {
                    fetch_offset: p.fetch_offset,
                    partition_max_bytes: p.partition_max_bytes,
                    current_leader_epoch: p.current_leader_epoch,
                    last_fetched_epoch: p.last_fetched_epoch,
                    last_sent: None,
                },
            );
        }
        self.sessions.insert(id, session);
        id
    }

    fn expire(&mut self, now: Instant) {
        let idle = self.idle;
        self.sessions.retain(|_, s| now.duration_since(s.last_used) < idle);
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

impl From<&SessionError> for ErrorCode {
    fn from(e: &SessionError) -> Self {
        match e {
            SessionError::NotFound => ErrorCode::FetchSessionIdNotFound,
            SessionError::InvalidEpoch => ErrorCode::InvalidFetchSessionEpoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(p: i32, offset: i64) -> RequestedPartition {
        RequestedPartition {
            topic_partition: TopicPartition::new("t", p),
            fetch_offset: offset,
            partition_max_bytes: 100,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
        }
    }

    #[test]
    fn sessions_follow_kip_227() {
        let mut cache = FetchSessions::new(1, 2, 10, Duration::from_secs(60));
        let now = Instant::now();
        let full = cache.begin(0, INITIAL_EPOCH, vec![req(0, 5), req(1, 7)], vec![], now).unwrap();
        assert!(!full.incremental && full.session_id > 0);
        let id = full.session_id;
        let view = PartitionView { high_watermark: 10, last_stable_offset: 10, log_start_offset: 0 };
        assert!(cache.include(&full, &TopicPartition::new("t", 0), view, false));
        assert!(cache.include(&full, &TopicPartition::new("t", 1), view, false));

        // Epoch 1 names only partition 0; partition 1 keeps its offset and, unchanged, is left out.
        let inc = cache.begin(id, 1, vec![req(0, 6)], vec![], now).unwrap();
        assert!(inc.incremental);
        assert_eq!(inc.partitions, vec![req(0, 6), req(1, 7)]);
        assert!(cache.include(&inc, &TopicPartition::new("t", 0), view, true), "records are news");
        assert!(!cache.include(&inc, &TopicPartition::new("t", 1), view, false), "nothing new");
        let moved = PartitionView { high_watermark: 11, ..view };
        let inc = cache.begin(id, 2, vec![], vec![TopicPartition::new("t", 0)], now).unwrap();
        assert_eq!(inc.partitions, vec![req(1, 7)], "forgotten partitions leave the session");
        assert!(cache.include(&inc, &TopicPartition::new("t", 1), moved, false), "a moved HW is news");

        assert_eq!(cache.begin(id, 2, vec![], vec![], now).unwrap_err(), SessionError::InvalidEpoch);
        assert_eq!(cache.begin(id + 100, 1, vec![], vec![], now).unwrap_err(), SessionError::NotFound);
        let closed = cache.begin(id, FINAL_EPOCH, vec![req(0, 1)], vec![], now).unwrap();
        assert_eq!(closed.session_id, 0);
        assert!(cache.is_empty());
    }

    /// A client closes its session (epoch -1) on the connection its last long poll is still
    /// waiting on; that poll's answer stays incremental: nothing new, nothing listed.
    #[test]
    fn a_fetch_in_flight_when_its_session_closes_still_answers_incrementally() {
        let mut cache = FetchSessions::new(0, 1, 10, Duration::from_secs(60));
        let now = Instant::now();
        let tp = TopicPartition::new("t", 0);
        let view = PartitionView { high_watermark: 10, last_stable_offset: 10, log_start_offset: 0 };
        let full = cache.begin(0, INITIAL_EPOCH, vec![req(0, 10)], vec![], now).unwrap();
        assert!(cache.include(&full, &tp, view, false));
        let waiting = cache.begin(full.session_id, 1, vec![], vec![], now).unwrap();
        let closing = cache.begin(full.session_id, FINAL_EPOCH, vec![], vec![], now).unwrap();
        assert!(closing.partitions.is_empty() && cache.is_empty());
        assert!(!cache.include(&waiting, &tp, view, false), "unchanged: left out though the session is gone");
        let moved = PartitionView { high_watermark: 11, ..view };
        assert!(cache.include(&waiting, &tp, moved, false), "a moved high watermark is still news");
        assert!(cache.include(&waiting, &tp, view, true), "records are still news");
    }

    #[test]
    fn idle_sessions_expire_and_a_full_cache_evicts_the_oldest() {
        let mut cache = FetchSessions::new(0, 1, 2, Duration::from_millis(10));
        let t0 = Instant::now();
        let a = cache.begin(0, INITIAL_EPOCH, vec![req(0, 0)], vec![], t0).unwrap().session_id;
        let b = cache.begin(0, INITIAL_EPOCH, vec![req(0, 0)], vec![], t0 + Duration::from_millis(1)).unwrap();
        let c = cache.begin(0, INITIAL_EPOCH, vec![req(0, 0)], vec![], t0 + Duration::from_millis(2)).unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.begin(a, 1, vec![], vec![], t0 + Duration::from_millis(3)).unwrap_err(),
            SessionError::NotFound
        );
        assert!(b.session_id != c.session_id);
        cache.begin(0, FINAL_EPOCH, vec![], vec![], t0 + Duration::from_secs(1)).unwrap();
        assert!(cache.is_empty(), "idle sessions expire");
    }
}
