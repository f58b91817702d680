//! [`Leadership`]: what this broker's copy of a partition is to the others — a leader tracking its
//! followers, or a follower of another broker — and the leader's rules of Kafka's ISR protocol:
//! the high watermark's bound, when a follower is caught up, when the ISR should shrink or grow.
//! Pure state and decisions, no I/O: [`super::Partition`] applies them to its log, the replication
//! layer (`broker/replication`) sends the ISR changes to the controller.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::model::{LeaderEpoch, Offset};

/// A broker id (Kafka's node id).
pub type NodeId = i32;

/// This broker's role for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes produce requests, serves consumers and followers.
    Leader,
    /// Copies the leader's log (`NO_LEADER`, -1, while the partition has none).
    Follower {
        /// The leader's broker id.
        leader: NodeId,
    },
}

/// What a leader knows of one follower, from its fetches (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// Its log end offset: the offset it last fetched from (unknown until its first fetch of
    /// this leadership).
    log_end: Option<Offset>,
    /// The leader's log end when it last fetched, and when that was.
    last_fetch: Option<(Offset, Instant)>,
    /// The last time it was caught up with the leader's log end (Kafka's
    /// `lastCaughtUpTimeMs`): it leaves the ISR when this is older than `replica.lag.time.max.ms`.
    caught_up_at: Instant,
    /// The broker epoch (registration) of the follower's broker that the fetches above came
    /// from, as the images showed it (see [`LeaderState::follower_incarnations`]).
    broker_epoch: Option<u64>,
}

/// A leader's view of its partition's replication.
#[derive(Debug, Clone)]
pub struct LeaderState {
    /// This broker.
    me: NodeId,
    /// Every replica, the preferred leader first.
    replicas: Vec<NodeId>,
    /// The ISR committed by the controller.
    isr: Vec<NodeId>,
    /// The partition epoch of that ISR (AlterPartition's `partition_epoch`).
    partition_epoch: i32,
    /// An ISR sent to the controller and not answered yet. While it is pending, the high
    /// watermark counts the union of both (Kafka's maximal ISR): a follower being added must
    /// have what is acknowledged, and one being removed still counts until it is out.
    pending: Option<Vec<NodeId>>,
    followers: HashMap<NodeId, Follower>,
    /// The log end when this leadership began: a follower joins the ISR only once it has
    /// reached it (it then holds every record of the earlier epochs the leader holds).
    epoch_start: Offset,
    /// `min.insync.replicas`.
    min_insync: usize,
}

impl LeaderState {
    /// A new leadership at `epoch_start` (the leader's log end now). Followers in the ISR count as
    /// caught up now: their time starts with the leadership.
    pub fn new(
        me: NodeId,
        replicas: Vec<NodeId>,
        isr: Vec<NodeId>,
        partition_epoch: i32,
        epoch_start: Offset,
        min_insync: usize,
        now: Instant,
    ) -> Self {
        let followers = replicas
            .iter()
            .filter(|&&r| r != me)
            .map(|&r| (r, Follower { log_end: None, last_fetch: None, caught_up_at: now, broker_epoch: None }))
            .collect();
        LeaderState { me, replicas, isr, partition_epoch, pending: None, followers, epoch_start, min_insync }
    }

    /// The committed ISR.
    pub fn isr(&self) -> &[NodeId] {
        &self.isr
    }

    /// The replicas.
    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }

    /// The partition epoch of the committed ISR.
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// Where this leadership began.
    pub fn epoch_start(&self) -> Offset {
        self.epoch_start
    }

    /// The largest gap between `log_end` (the leader's) and where a follower last fetched
    /// from, over the followers that fetched in this leadership (0 if none has).
    pub fn follower_lag_max(&self, log_end: Offset) -> i64 {
        self.followers.values().filter_map(|f| f.log_end).map(|end| (log_end.0 - end.0).max(0)).max().unwrap_or(0)
    }

    /// Whether an ISR change is waiting for the controller.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Takes the image's state of the partition (same leadership): its ISR, partition epoch,
    /// replicas and `min.insync.replicas`. A pending change the image has caught up with is done.
    pub fn update(
        &mut self,
        replicas: Vec<NodeId>,
        isr: Vec<NodeId>,
        partition_epoch: i32,
        min_insync: usize,
        now: Instant,
    ) {
        if partition_epoch > self.partition_epoch {
            self.pending = None;
        }
        if partition_epoch >= self.partition_epoch {
            crate::metrics::isr_changed(&self.isr, &isr);
            self.isr = isr;
            self.partition_epoch = partition_epoch;
        }
        for &r in replicas.iter().filter(|&&r| r != self.me) {
            self.followers.entry(r).or_insert(Follower {
                log_end: None,
                last_fetch: None,
                caught_up_at: now,
                broker_epoch: None,
            });
        }
        self.followers.retain(|r, _| replicas.contains(r));
        self.replicas = replicas;
        self.min_insync = min_insync;
    }

    /// Takes each follower broker's current epoch (registration) from the installed image. A
    /// follower whose broker registered again since its fetches were counted is a new process,
    /// maybe on an empty disk: what its predecessor fetched says nothing of what it holds, so
    /// its fetch state starts afresh. Without this a replica restarted on a wiped disk was put
    /// back into the ISR on the strength of its predecessor's fetches, then elected with almost
    /// nothing (Kafka's KAFKA-14139, fixed by KIP-903).
    pub fn follower_incarnations(&mut self, broker_epoch: impl Fn(NodeId) -> Option<u64>) {
        for (&r, follower) in &mut self.followers {
            let current = broker_epoch(r);
            if follower.broker_epoch.is_some() && follower.broker_epoch != current {
                follower.log_end = None;
                follower.last_fetch = None;
            }
            follower.broker_epoch = current;
        }
    }

    /// The broker epochs under which the replicas `isr` adds to the committed ISR caught up:
    /// the controller refuses the change if one of them has registered again since (KIP-903).
    pub fn added_broker_epochs(&self, isr: &[NodeId]) -> Vec<(NodeId, u64)> {
        isr.iter()
            .filter(|r| !self.isr.contains(r))
            .filter_map(|&r| Some((r, self.followers.get(&r)?.broker_epoch?)))
            .collect()
    }

    /// Whether the committed ISR is at least `min.insync.replicas`: acks=all produces need it,
    /// and the high watermark moves only with it.
    pub fn enough_in_sync(&self) -> bool {
        self.isr.len() >= self.min_insync
    }

    /// A fetch by `replica` from `offset` while the leader's log ends at `log_end`: its log end
    /// is `offset`. Kafka's rule for being caught up: it fetched from the leader's log end, or
    /// from at least the leader's log end of its previous fetch (it has what was there then).
    /// Returns false for a broker that holds no replica.
    pub fn on_fetch(&mut self, replica: NodeId, offset: Offset, log_end: Offset, now: Instant) -> bool {
        let Some(follower) = self.followers.get_mut(&replica) else { return false };
        follower.log_end = Some(offset);
        if offset >= log_end {
            follower.caught_up_at = now;
        } else if let Some((previous_end, at)) = follower.last_fetch
            && offset >= previous_end
        {
            follower.caught_up_at = follower.caught_up_at.max(at);
        }
        follower.last_fetch = Some((log_end, now));
        true
    }

    /// The bound of the high watermark (see `PartitionLog::set_high_watermark_bound`): the
    /// smallest log end among the in-sync followers (the maximal ISR); `Offset(i64::MAX)` when
    /// the leader is the only one; `current` (it stays) while the ISR is below
    /// `min.insync.replicas` or a follower in it has not fetched yet in this leadership.
    pub fn high_watermark_bound(&self, current: Offset) -> Offset {
        if !self.enough_in_sync() {
            return current;
        }
        let mut bound = Offset(i64::MAX);
        for r in self.maximal_isr() {
            if r == self.me {
                continue;
            }
            match self.followers.get(&r).and_then(|f| f.log_end) {
                Some(end) => bound = bound.min(end),
                None => return current,
            }
        }
        bound
    }

    /// The committed ISR with the pending one's additions.
    fn maximal_isr(&self) -> Vec<NodeId> {
        let mut all = self.isr.clone();
        if let Some(pending) = &self.pending {
            all.extend(pending.iter().filter(|r| !self.isr.contains(r)));
        }
        all
    }

    /// The ISR this leader should propose now, if any (none while one is pending): without
    /// followers not caught up for `lag` (they left the ISR), with followers outside it that have
    /// reached both the high watermark and the start of this leadership and are `eligible` (the
    /// controller refuses a fenced broker).
    pub fn wanted_isr(
        &self,
        high_watermark: Offset,
        lag: Duration,
        now: Instant,
        eligible: impl Fn(NodeId) -> bool,
    ) -> Option<Vec<NodeId>> {
        if self.pending.is_some() {
            return None;
        }
        let mut wanted: Vec<NodeId> = self
            .isr
            .iter()
            .copied()
            .filter(|&r| {
                r == self.me || self.followers.get(&r).is_some_and(|f| now.duration_since(f.caught_up_at) <= lag)
            })
            .collect();
        if !wanted.contains(&self.me) {
            wanted.insert(0, self.me);
        }
        for &r in &self.replicas {
            if wanted.contains(&r) || !eligible(r) {
                continue;
            }
            let caught_up = self
                .followers
                .get(&r)
                .and_then(|f| f.log_end)
                .is_some_and(|end| end >= high_watermark && end >= self.epoch_start);
            if caught_up {
                wanted.push(r);
            }
        }
        let same = wanted.len() == self.isr.len() && wanted.iter().all(|r| self.isr.contains(r));
        (!same).then_some(wanted)
    }

    /// Notes `isr` as sent to the controller.
    pub fn propose(&mut self, isr: Vec<NodeId>) {
        self.pending = Some(isr);
    }

    /// The controller's answer: committed (`Some`: the new ISR and partition epoch) or refused.
    pub fn proposed(&mut self, outcome: Option<(Vec<NodeId>, i32)>) {
        self.pending = None;
        if let Some((isr, partition_epoch)) = outcome
            && partition_epoch > self.partition_epoch
        {
            crate::metrics::isr_changed(&self.isr, &isr);
            self.isr = isr;
            self.partition_epoch = partition_epoch;
        }
    }
}

/// One partition's replication state on this broker.
#[derive(Debug, Clone)]
pub struct Leadership {
    /// Leader or follower.
    pub role: Role,
    /// The current leader epoch.
    pub epoch: LeaderEpoch,
    /// The leader's state, while leading.
    pub leader: Option<LeaderState>,
    /// Whether the high watermark opened from the log was lowered yet: it is the log end at
    /// open, which on a replicated partition may hold records the others do not have.
    pub opened: bool,
}

impl Leadership {
    /// A partition as opened: it leads under `epoch` until the image says otherwise (a
    /// single-node broker's partitions always do).
    pub fn opened(epoch: LeaderEpoch) -> Self {
        Leadership { role: Role::Leader, epoch, leader: None, opened: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(isr: &[NodeId], min_insync: usize, now: Instant) -> LeaderState {
        LeaderState::new(1, vec![1, 2, 3], isr.to_vec(), 0, Offset(10), min_insync, now)
    }

    #[test]
    fn the_high_watermark_waits_for_every_in_sync_follower() {
        let now = Instant::now();
        let mut s = state(&[1, 2, 3], 2, now);
        assert_eq!(s.high_watermark_bound(Offset(10)), Offset(10), "followers not heard from yet");
        s.on_fetch(2, Offset(12), Offset(15), now);
        assert_eq!(s.high_watermark_bound(Offset(10)), Offset(10));
        s.on_fetch(3, Offset(11), Offset(15), now);
        assert_eq!(s.high_watermark_bound(Offset(10)), Offset(11));
        s.proposed(Some((vec![1, 2], 1)));
        assert_eq!(s.high_watermark_bound(Offset(11)), Offset(12), "3 left the ISR");
        s.proposed(Some((vec![1], 2)));
        assert_eq!(s.high_watermark_bound(Offset(12)), Offset(12), "below min.insync.replicas: frozen");
        let alone = state(&[1], 1, now);
        assert_eq!(alone.high_watermark_bound(Offset(3)), Offset(i64::MAX));
    }

    #[test]
    fn a_lagging_follower_leaves_and_a_caught_up_one_joins() {
        let start = Instant::now();
        let lag = Duration::from_secs(30);
        let mut s = state(&[1, 2, 3], 2, start);
        s.on_fetch(2, Offset(10), Offset(10), start);
        s.on_fetch(3, Offset(5), Offset(10), start);
        assert_eq!(s.wanted_isr(Offset(5), lag, start + Duration::from_secs(1), |_| true), None);
        let later = start + Duration::from_secs(31);
        s.on_fetch(2, Offset(10), Offset(10), later);
        assert_eq!(s.wanted_isr(Offset(5), lag, later, |_| true), Some(vec![1, 2]));
        s.propose(vec![1, 2]);
        assert_eq!(s.wanted_isr(Offset(5), lag, later, |_| true), None, "one change at a time");
        s.proposed(Some((vec![1, 2], 1)));
        // 3 catches up to the high watermark and the leadership's start: it may join.
        s.on_fetch(3, Offset(9), Offset(10), later);
        assert_eq!(s.wanted_isr(Offset(10), lag, later, |_| true), None, "below the high watermark");
        s.on_fetch(3, Offset(10), Offset(10), later);
        assert_eq!(s.wanted_isr(Offset(10), lag, later, |r| r != 3), None, "not eligible (fenced)");
        assert_eq!(s.wanted_isr(Offset(10), lag, later, |_| true), Some(vec![1, 2, 3]));
    }

    #[test]
    fn a_follower_keeping_up_with_the_previous_log_end_counts_as_caught_up() {
        let start = Instant::now();
        let mut s = state(&[1, 2], 1, start);
        let t1 = start + Duration::from_secs(20);
        s.on_fetch(2, Offset(8), Offset(10), t1);
        let t2 = start + Duration::from_secs(40);
        // It never reaches the moving log end, but has what was there at its previous fetch.
        s.on_fetch(2, Offset(10), Offset(12), t2);
        assert_eq!(s.wanted_isr(Offset(10), Duration::from_secs(30), t2, |_| true), None);
        assert!(!s.on_fetch(9, Offset(1), Offset(12), t2), "not a replica");
    }

    #[test]
    fn a_follower_that_registered_again_must_catch_up_again_before_it_rejoins() {
        let now = Instant::now();
        let mut s = state(&[1, 3], 1, now);
        s.follower_incarnations(|r| Some(u64::try_from(r).unwrap() * 10));
        s.on_fetch(2, Offset(40), Offset(40), now);
        let lag = Duration::from_secs(30);
        let wanted = s.wanted_isr(Offset(40), lag, now, |_| true).unwrap();
        assert_eq!(wanted, vec![1, 3, 2]);
        assert_eq!(s.added_broker_epochs(&wanted), vec![(2, 20)]);
        // Broker 2 comes back as a new process (maybe on an empty disk): its old fetches count
        // for nothing until it fetches again.
        s.follower_incarnations(|r| Some(if r == 2 { 21 } else { u64::try_from(r).unwrap() * 10 }));
        assert_eq!(s.wanted_isr(Offset(40), lag, now, |_| true), None);
        s.on_fetch(2, Offset(0), Offset(40), now);
        assert_eq!(s.wanted_isr(Offset(40), lag, now, |_| true), None, "an empty log is not caught up");
        s.on_fetch(2, Offset(40), Offset(40), now);
        let wanted = s.wanted_isr(Offset(40), lag, now, |_| true).unwrap();
        assert_eq!(s.added_broker_epochs(&wanted), vec![(2, 21)]);
    }

    #[test]
    fn a_pending_addition_counts_for_the_high_watermark() {
        let now = Instant::now();
        let mut s = state(&[1, 2], 1, now);
        s.on_fetch(2, Offset(20), Offset(20), now);
        s.on_fetch(3, Offset(15), Offset(20), now);
        s.propose(vec![1, 2, 3]);
        assert_eq!(s.high_watermark_bound(Offset(14)), Offset(15));
        s.update(vec![1, 2, 3], vec![1, 2, 3], 1, 1, now);
        assert!(!s.is_pending());
    }
}
