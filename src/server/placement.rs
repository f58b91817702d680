//! Moving a client connection to the shard its requests work on.
//!
//! A connection is accepted on whichever shard the kernel's SO_REUSEPORT hash picks, but a
//! produce or fetch is done by the shard that owns the partition. When that is another shard,
//! every request hops there and its answer hops back: two more thread wakes per request (on a
//! 2-vCPU VM about 100 µs each, most of an idle broker's acks=all round trip), and the request's
//! bytes, written into one core's cache by the socket, are read by the other. Measured with one
//! producer on one partition (perf/README.md, issue 16): the broker spent about half as much
//! CPU again per GB when the connection landed on the other shard.
//!
//! Kafka clients cannot pick a shard (ScyllaDB's shard-aware drivers do, from the client side),
//! so the broker moves the connection: the dispatcher reports the shards each request worked on
//! through its [`Placement`], and a connection whose last [`MOVE_AFTER_REQUESTS`] requests that
//! did any partition work all did it on one other shard asks to move there. Its reader stops
//! taking requests, waits until every request in flight is answered (responses stay in order),
//! and hands the socket with the bytes it read ahead to that shard's listener over a
//! [`Handoff`] channel; the client sees nothing but one round trip's pause. Requests that touch
//! no partition (metadata, heartbeats) leave the count as it is; one that touches several
//! shards starts it again. Each move doubles the count the next one needs, so a client that
//! alternates between partitions on different shards moves a few times and then stays.
//!
//! A move reserves a place under the target shard's `--max-connections-per-core` first (the
//! shards' open counts are shared atomics for this) and is not made when there is none, or when
//! the target's listener has stopped.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Requests in a row that did all their partition work on one other shard before a connection
/// moves there (doubled by each move the connection has made). Small enough that a producer
/// moves within its first few milliseconds of work, large enough that a client which touches
/// partitions on both shards in turn does not move for every few requests.
pub const MOVE_AFTER_REQUESTS: u32 = 8;
/// The most doublings of [`MOVE_AFTER_REQUESTS`]: past ten moves a connection needs 8,192
/// requests in a row on one other shard to move again.
const MOVE_BACKOFF_DOUBLINGS_MAX: u32 = 10;

/// What one request's work touched, reported by the dispatcher: given with each request, and
/// counted into its connection's placement when the request is done (dropped).
#[derive(Debug)]
pub struct Placement {
    touched: Cell<Touched>,
    affinity: Option<Rc<Affinity>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Touched {
    Nothing,
    One(usize),
    Several,
}

impl Placement {
    /// A placement that counts nowhere: for a listener whose connections never move (the
    /// replication listener's land on the shard they fetch from), and for tests.
    pub fn detached() -> Placement {
        Placement { touched: Cell::new(Touched::Nothing), affinity: None }
    }

    fn counted_into(affinity: &Rc<Affinity>) -> Placement {
        Placement { touched: Cell::new(Touched::Nothing), affinity: Some(affinity.clone()) }
    }

    /// The request did partition work on `shard` (a produce or fetch routed there).
    pub fn worked_on(&self, shard: usize) {
        let touched = match self.touched.get() {
            Touched::Nothing => Touched::One(shard),
            Touched::One(s) if s == shard => Touched::One(s),
            Touched::One(_) | Touched::Several => Touched::Several,
        };
        self.touched.set(touched);
    }
}

impl Drop for Placement {
    fn drop(&mut self) {
        if let Some(affinity) = &self.affinity {
            affinity.count(self.touched.get());
        }
    }
}

/// Where one connection's requests have been working, and whether it should move.
#[derive(Debug)]
pub(super) struct Affinity {
    /// The shard serving the connection now.
    here: usize,
    /// The shard the latest requests all worked on, and how many in a row.
    streak: Cell<Option<(usize, u32)>>,
    /// Moves the connection has made (carried along by each move).
    moves: u32,
}

impl Affinity {
    /// A connection served on shard `here` that has moved `moves` times.
    pub(super) fn new(here: usize, moves: u32) -> Rc<Affinity> {
        Rc::new(Affinity { here, streak: Cell::new(None), moves })
    }

    /// The placement one request of this connection reports into.
    pub(super) fn placement(self: &Rc<Self>) -> Placement {
        Placement::counted_into(self)
    }

    /// Moves made before this one.
    pub(super) fn moves(&self) -> u32 {
        self.moves
    }

    fn count(&self, touched: Touched) {
        match touched {
            Touched::Nothing => {}
            Touched::Several => self.streak.set(None),
            Touched::One(shard) => {
                let streak = match self.streak.get() {
                    Some((s, n)) if s == shard => n.saturating_add(1),
                    _ => 1,
                };
                self.streak.set(Some((shard, streak)));
            }
        }
    }

    /// The shard this connection should move to, if its requests have been working there.
    pub(super) fn wants_move(&self) -> Option<usize> {
        let (shard, streak) = self.streak.get()?;
        let needed = MOVE_AFTER_REQUESTS << self.moves.min(MOVE_BACKOFF_DOUBLINGS_MAX);
        (shard != self.here && streak >= needed).then_some(shard)
    }

    /// Forget the streak (the move it asked for could not be made): it has to build up again.
    pub(super) fn start_over(&self) {
        self.streak.set(None);
    }
}

/// A connection on its way to another shard: the socket, the bytes already read from it that
/// no request has taken yet, and how many times it has moved.
#[derive(Debug)]
pub(super) struct Moved {
    pub(super) socket: OwnedFd,
    pub(super) peer: SocketAddr,
    pub(super) read_ahead: Vec<u8>,
    pub(super) moves: u32,
}

/// The channels that carry moved connections to each shard's client listener, and the shards'
/// open connection counts (so a move can reserve its place under the target's limit). Made once
/// for the broker, before its shards start; each shard takes its [`HandoffEnd`].
#[derive(Debug)]
pub struct Handoff {
    inboxes: Vec<(flume::Sender<Moved>, flume::Receiver<Moved>)>,
    open: Vec<AtomicU32>,
    serving: Vec<AtomicBool>,
}

impl Handoff {
    /// The handoff between `shards` shards.
    pub fn new(shards: usize) -> Arc<Handoff> {
        Arc::new(Handoff {
            // Unbounded: a move sends one message and has reserved a connection slot first, so
            // the inbox never holds more than the target's connection limit.
            inboxes: (0..shards).map(|_| flume::unbounded()).collect(),
            open: (0..shards).map(|_| AtomicU32::new(0)).collect(),
            serving: (0..shards).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// Shard `shard`'s end.
    pub fn end(self: &Arc<Self>, shard: usize) -> HandoffEnd {
        HandoffEnd { shard, handoff: self.clone() }
    }
}

/// One shard's end of the [`Handoff`]: where its listener receives connections, and how it
/// sends them on.
#[derive(Debug, Clone)]
pub struct HandoffEnd {
    shard: usize,
    handoff: Arc<Handoff>,
}

impl HandoffEnd {
    /// The shard this end belongs to.
    pub(super) fn shard(&self) -> usize {
        self.shard
    }

    fn open(&self, shard: usize) -> Option<&AtomicU32> {
        self.handoff.open.get(shard)
    }

    /// Takes one of this shard's connection places, if fewer than `limit` are taken.
    pub(super) fn take_place(&self, limit: u32) -> bool {
        self.reserve(self.shard, limit)
    }

    /// Gives one of this shard's connection places back.
    pub(super) fn give_place(&self) {
        self.give_place_on(self.shard);
    }

    /// Gives back a place on `shard` (one [`HandoffEnd::reserve`] took for a move not made).
    pub(super) fn give_place_on(&self, shard: usize) {
        if let Some(open) = self.open(shard) {
            let _ = open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(1)));
        }
    }

    /// This shard's open connections.
    pub(super) fn open_here(&self) -> u32 {
        self.open(self.shard).map_or(0, |open| open.load(Ordering::Acquire))
    }

    /// Reserves a place on `shard` for a connection moving there: `false` if it is at `limit`
    /// or not serving.
    pub(super) fn reserve(&self, shard: usize, limit: u32) -> bool {
        let serving = self.handoff.serving.get(shard).is_some_and(|s| s.load(Ordering::Acquire));
        let Some(open) = self.open(shard) else { return false };
        serving && open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).is_ok()
    }

    /// Sends `moved` to `shard`, whose place [`HandoffEnd::reserve`] took. If that shard's
    /// listener has gone, the place is given back and the connection closes (dropped).
    pub(super) fn send(&self, shard: usize, moved: Moved) {
        let sent = self.handoff.inboxes.get(shard).map(|(to, _)| to.send(moved));
        if !matches!(sent, Some(Ok(()))) {
            self.give_place_on(shard);
        }
    }

    /// Where this shard receives connections moved to it.
    pub(super) fn inbox(&self) -> Option<flume::Receiver<Moved>> {
        self.handoff.inboxes.get(self.shard).map(|(_, from)| from.clone())
    }

    /// Marks this shard's listener as taking moved connections, or no longer.
    pub(super) fn set_serving(&self, serving: bool) {
        if let Some(s) = self.handoff.serving.get(self.shard) {
            s.store(serving, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(affinity: &Rc<Affinity>, shards: &[usize]) {
        let placement = affinity.placement();
        for &s in shards {
            placement.worked_on(s);
        }
    }

    #[test]
    fn a_connection_moves_after_enough_requests_in_a_row_on_one_other_shard() {
        let affinity = Affinity::new(0, 0);
        for _ in 0..MOVE_AFTER_REQUESTS - 1 {
            request(&affinity, &[1, 1]);
            request(&affinity, &[]);
        }
        assert_eq!(affinity.wants_move(), None);
        request(&affinity, &[1]);
        assert_eq!(affinity.wants_move(), Some(1));
        affinity.start_over();
        assert_eq!(affinity.wants_move(), None);
    }

    #[test]
    fn work_here_or_on_several_shards_starts_the_count_again() {
        let affinity = Affinity::new(0, 0);
        for i in 0..10 * MOVE_AFTER_REQUESTS {
            request(&affinity, if i % 4 == 3 { &[0, 1] } else { &[1] });
            assert_eq!(affinity.wants_move(), None);
        }
        for _ in 0..10 * MOVE_AFTER_REQUESTS {
            request(&affinity, &[0]);
        }
        assert_eq!(affinity.wants_move(), None, "its work is here");
        assert!(Placement::detached().affinity.is_none());
    }

    #[test]
    fn each_move_doubles_the_requests_the_next_needs() {
        let affinity = Affinity::new(1, 2);
        for _ in 0..4 * MOVE_AFTER_REQUESTS - 1 {
            request(&affinity, &[0]);
        }
        assert_eq!(affinity.wants_move(), None);
        request(&affinity, &[0]);
        assert_eq!(affinity.wants_move(), Some(0));
        let settled = Affinity::new(1, u32::MAX);
        for _ in 0..(MOVE_AFTER_REQUESTS << MOVE_BACKOFF_DOUBLINGS_MAX) {
            request(&settled, &[0]);
        }
        assert_eq!(settled.wants_move(), Some(0), "the doubling stops");
    }

    #[test]
    fn a_move_takes_a_place_under_the_target_limit_and_only_while_it_serves() {
        let handoff = Handoff::new(2);
        let (zero, one) = (handoff.end(0), handoff.end(1));
        assert!(!zero.reserve(1, 2), "shard 1 is not serving");
        one.set_serving(true);
        assert!(one.take_place(2));
        assert!(zero.reserve(1, 2));
        assert!(!zero.reserve(1, 2), "shard 1 is full");
        assert_eq!(one.open_here(), 2);
        one.give_place();
        assert!(zero.reserve(1, 2));
        assert!(!zero.reserve(7, 2), "no such shard");
    }
}
