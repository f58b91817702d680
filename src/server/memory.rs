//! The request memory budget of one listener on one shard: Kafka's `queued.max.request.bytes`,
//! split evenly over the shards.
//!
//! Every byte of a request frame that is being received, or that waits to be handled, is
//! charged here at the real capacity of its buffer (not at the length the frame declares), and
//! released when the handler returns and the frame is dropped. When the budget is spent the
//! connections stop being read (backpressure), never closed.
//!
//! **The rules.** A frame grows its buffer as its bytes arrive ([`Charge::grow`]):
//! - the growth is granted at once if it fits the budget and nobody waits before it;
//! - otherwise it waits, first come first served, until memory frees up;
//! - one frame per shard may grow past the budget: the holder of the *pass*. The first waiter
//!   that does not fit takes the pass when it is free and keeps it until its frame is complete.
//!
//! Without the pass, frames that each hold part of the budget and wait for more would wait on
//! each other forever; with it, one of them always progresses, and a frame larger than the
//! whole budget is admitted (Kafka's non-strict `SimpleMemoryPool` also lets the pool dip below
//! zero by one request). So the charged total stays below the budget plus one frame of at most
//! `--max-request-bytes`, plus the small frames that the server admits without waiting (one per
//! connection at a time, see `reader.rs`).
//!
//! **Lifecycle and shards.** One [`RequestMemory`] per listener per shard, made by the caller of
//! `server::serve` (`cli/broker.rs`, which may also read it for metrics) and shared (`Rc`) by
//! that listener's connections; it never leaves the shard, so it is plain `Cell`/`RefCell`
//! state, and a wait is a waker in its queue. A [`Charge`] belongs to one frame: the reader
//! makes it, and the request's task drops it when the handler returns.
//!
//! **Known limit.** The pass goes to the first waiter that does not fit, which may be a client
//! that then stops sending: large requests then wait for room until the receive timeout
//! (`sweep.rs`) closes it. Small requests are not affected (see `reader.rs`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A shard's budget for request frames, and who waits for it.
#[derive(Debug)]
pub struct RequestMemory {
    budget_bytes: u64,
    state: RefCell<State>,
}

#[derive(Debug, Default)]
struct State {
    charged_bytes: u64,
    /// The charge (by id) allowed past the budget, if one is.
    pass: Option<u64>,
    /// Growths waiting for memory, first come first served.
    queue: VecDeque<Rc<Ask>>,
    /// Readers waiting for the budget to have room before they take a new request.
    room_waiters: Vec<Waker>,
    next_id: u64,
}

/// One waiting growth.
#[derive(Debug)]
struct Ask {
    charge: u64,
    bytes: u64,
    /// Set when the memory was granted (and already counted in `charged_bytes`).
    granted: Cell<Option<Grant>>,
    waker: RefCell<Option<Waker>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// Within the budget, or by the pass the charge already held.
    Room,
    /// Past the budget, by the pass this grant hands over.
    Pass,
}

impl RequestMemory {
    /// A budget of `budget_bytes` (at least 1).
    pub fn new(budget_bytes: u64) -> Rc<RequestMemory> {
        Rc::new(RequestMemory { budget_bytes: budget_bytes.max(1), state: RefCell::new(State::default()) })
    }

    /// The budget.
    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }

    /// Bytes charged now (may pass the budget by the pass holder's frame and small frames).
    pub fn charged_bytes(&self) -> u64 {
        self.state.borrow().charged_bytes
    }

    /// Whether the budget is spent: readers then take no new request (except a connection's
    /// first, see `reader.rs`).
    pub fn is_spent(&self) -> bool {
        self.state.borrow().charged_bytes >= self.budget_bytes
    }

    /// Whether `bytes` more would leave at most half the budget charged, with nobody waiting:
    /// room to spare for a frame taken whole before its bytes arrive (see `reader.rs`).
    pub(super) fn has_room_to_spare(&self, bytes: u64) -> bool {
        let state = self.state.borrow();
        state.queue.is_empty() && state.charged_bytes.saturating_add(bytes) <= self.budget_bytes / 2
    }

    /// Growths waiting for memory.
    pub fn waiting(&self) -> usize {
        self.state.borrow().queue.len()
    }

    /// Registers `waker` to be woken when the budget next goes from spent to having room.
    pub(super) fn wake_on_room(&self, waker: &Waker) {
        let mut state = self.state.borrow_mut();
        if !state.room_waiters.iter().any(|w| w.will_wake(waker)) {
            state.room_waiters.push(waker.clone());
        }
    }

    fn try_grant(&self, state: &State, charge: u64, bytes: u64) -> Option<Grant> {
        if state.charged_bytes.saturating_add(bytes) <= self.budget_bytes || state.pass == Some(charge) {
            Some(Grant::Room)
        } else if state.pass.is_none() {
            Some(Grant::Pass)
        } else {
            None
        }
    }

    fn apply(state: &mut State, charge: u64, bytes: u64, grant: Grant) {
        state.charged_bytes = state.charged_bytes.saturating_add(bytes);
        if grant == Grant::Pass {
            state.pass = Some(charge);
        }
    }

    /// Grants what the waiters at the front of the queue can now have, in order; returns their
    /// wakers, to be woken once `state` is no longer borrowed.
    fn admit_waiting(&self, state: &mut State) -> Vec<Waker> {
        let mut wakers = Vec::new();
        while let Some(front) = state.queue.front() {
            let Some(grant) = self.try_grant(state, front.charge, front.bytes) else { break };
            let (charge, bytes) = (front.charge, front.bytes);
            Self::apply(state, charge, bytes, grant);
            if let Some(ask) = state.queue.pop_front() {
                ask.granted.set(Some(grant));
                wakers.extend(ask.waker.borrow_mut().take());
            }
        }
        wakers
    }

    /// Gives back `bytes` (and the pass, if `pass` holds it) and wakes whoever can go on.
    fn release(&self, charge: u64, bytes: u64, pass: bool) {
        let wakers = {
            let mut state = self.state.borrow_mut();
            let was_spent = state.charged_bytes >= self.budget_bytes;
            debug_assert!(state.charged_bytes >= bytes, "released more than charged");
            state.charged_bytes = state.charged_bytes.saturating_sub(bytes);
            if pass && state.pass == Some(charge) {
                state.pass = None;
            }
            let mut wakers = self.admit_waiting(&mut state);
            if was_spent && state.charged_bytes < self.budget_bytes {
                wakers.append(&mut state.room_waiters);
            }
            wakers
        };
        // Woken outside the borrow, in case a waker runs code that charges again.
        for waker in wakers {
            waker.wake();
        }
    }
}

/// Bytes charged to a [`RequestMemory`] for one frame, given back when dropped. A frame being
/// received may also hold the shard's pass to grow past the budget until it is complete.
#[derive(Debug)]
pub struct Charge {
    memory: Rc<RequestMemory>,
    id: u64,
    bytes: u64,
    pass: bool,
}

impl Charge {
    /// A charge of nothing yet.
    pub fn new(memory: &Rc<RequestMemory>) -> Charge {
        let id = {
            let mut state = memory.state.borrow_mut();
            state.next_id += 1;
            state.next_id
        };
        Charge { memory: memory.clone(), id, bytes: 0, pass: false }
    }

    /// Bytes this charge holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether this charge holds the pass to grow past the budget.
    pub fn has_pass(&self) -> bool {
        self.pass
    }

    /// Charges `bytes` more once the rules allow (see the module docs): at once if they fit and
    /// nobody waits, else in turn.
    pub fn grow(&mut self, bytes: u64) -> Grow<'_> {
        Grow { charge: self, bytes, ask: None }
    }

    /// Charges `bytes` more at once, past the budget if need be: for a frame already complete
    /// and small (bounded by the caller), so it costs no wait.
    pub fn grow_now(&mut self, bytes: u64) {
        let mut state = self.memory.state.borrow_mut();
        state.charged_bytes = state.charged_bytes.saturating_add(bytes);
        self.bytes += bytes;
    }

    /// The frame is complete: gives the pass (if held) to the next waiter. The bytes stay
    /// charged until the charge is dropped.
    pub fn return_pass(&mut self) {
        if self.pass {
            self.pass = false;
            self.memory.release(self.id, 0, true);
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.bytes > 0 || self.pass {
            self.memory.release(self.id, self.bytes, self.pass);
        }
    }
}

/// The future of [`Charge::grow`].
#[derive(Debug)]
pub struct Grow<'a> {
    charge: &'a mut Charge,
    bytes: u64,
    ask: Option<Rc<Ask>>,
}

impl Future for Grow<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let grant = match &this.ask {
            None => {
                let memory = this.charge.memory.clone();
                let mut state = memory.state.borrow_mut();
                // Nobody overtakes a waiter, except the pass holder, which waits for nobody (the
                // waiters may be waiting for its pass).
                let grant = if state.queue.is_empty() || state.pass == Some(this.charge.id) {
                    memory.try_grant(&state, this.charge.id, this.bytes)
                } else {
                    None
                };
                match grant {
                    Some(grant) => {
                        RequestMemory::apply(&mut state, this.charge.id, this.bytes, grant);
                        grant
                    }
                    None => {
                        let ask = Rc::new(Ask {
                            charge: this.charge.id,
                            bytes: this.bytes,
                            granted: Cell::new(None),
                            waker: RefCell::new(Some(cx.waker().clone())),
                        });
                        state.queue.push_back(ask.clone());
                        this.ask = Some(ask);
                        return Poll::Pending;
                    }
                }
            }
            Some(ask) => match ask.granted.take() {
                Some(grant) => grant,
                None => {
                    *ask.waker.borrow_mut() = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            },
        };
        this.ask = None;
        this.charge.bytes += this.bytes;
        if grant == Grant::Pass {
            this.charge.pass = true;
        }
        // A zero-byte grow still counts as a grant: nothing more to do.
        this.bytes = 0;
        Poll::Ready(())
    }
}

impl Drop for Grow<'_> {
    fn drop(&mut self) {
        let Some(ask) = self.ask.take() else { return };
        match ask.granted.take() {
            // Granted but never seen: give it back.
            Some(grant) => self.charge.memory.release(ask.charge, ask.bytes, grant == Grant::Pass),
            None => {
                let memory = self.charge.memory.clone();
                let wakers = {
                    let mut state = memory.state.borrow_mut();
                    state.queue.retain(|waiting| !Rc::ptr_eq(waiting, &ask));
                    // The front may have been this ask: the next may fit now.
                    memory.admit_waiting(&mut state)
                };
                wakers.into_iter().for_each(Waker::wake);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn poll<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn growth_within_the_budget_is_granted_and_given_back_on_drop() {
        let memory = RequestMemory::new(100);
        let mut a = Charge::new(&memory);
        assert!(poll(&mut a.grow(60)).is_ready());
        assert_eq!((memory.charged_bytes(), a.has_pass()), (60, false));
        drop(a);
        assert_eq!(memory.charged_bytes(), 0);
    }

    #[test]
    fn past_the_budget_one_frame_takes_the_pass_and_the_others_wait_in_turn() {
        let memory = RequestMemory::new(100);
        let (mut a, mut b, mut c) = (Charge::new(&memory), Charge::new(&memory), Charge::new(&memory));
        assert!(poll(&mut a.grow(80)).is_ready());
        // b does not fit: it takes the pass and goes past the budget.
        assert!(poll(&mut b.grow(50)).is_ready());
        assert!(b.has_pass());
        assert_eq!(memory.charged_bytes(), 130);
        // c waits: no room, pass taken. a's further growth waits behind it.
        let mut c_grow = c.grow(10);
        assert!(poll(&mut c_grow).is_pending());
        assert_eq!(memory.waiting(), 1);
        // b keeps growing with its pass while others wait.
        drop(c_grow);
        let mut c_grow = c.grow(10);
        assert!(poll(&mut c_grow).is_pending());
        assert!(poll(&mut b.grow(1000)).is_ready(), "the pass holder grows past the budget");
        // b's frame completes: the pass goes to c, the first waiter.
        b.return_pass();
        assert!(poll(&mut c_grow).is_ready());
        drop(c_grow);
        assert!(c.has_pass());
        drop((a, b, c));
        assert_eq!(memory.charged_bytes(), 0);
    }

    #[test]
    fn a_frame_larger_than_the_budget_is_admitted_when_alone() {
        let memory = RequestMemory::new(10);
        let mut big = Charge::new(&memory);
        for _ in 0..5 {
            assert!(poll(&mut big.grow(8)).is_ready());
        }
        assert_eq!((memory.charged_bytes(), big.has_pass()), (40, true));
    }

    #[test]
    fn waiters_are_served_first_come_first_served_as_memory_frees() {
        let memory = RequestMemory::new(100);
        let mut holder = Charge::new(&memory);
        assert!(poll(&mut holder.grow(100)).is_ready());
        let mut pass_holder = Charge::new(&memory);
        assert!(poll(&mut pass_holder.grow(1)).is_ready());
        let (mut first, mut second) = (Charge::new(&memory), Charge::new(&memory));
        let mut first_grow = first.grow(60);
        let mut second_grow = second.grow(10);
        assert!(poll(&mut first_grow).is_pending());
        assert!(poll(&mut second_grow).is_pending(), "second would fit later but waits its turn");
        drop(holder);
        assert!(poll(&mut first_grow).is_ready());
        assert!(poll(&mut second_grow).is_ready());
        drop((first_grow, second_grow));
        assert_eq!(memory.charged_bytes(), 71);
    }

    #[test]
    fn a_dropped_wait_leaves_the_queue_and_a_dropped_grant_is_given_back() {
        let memory = RequestMemory::new(10);
        let mut full = Charge::new(&memory);
        assert!(poll(&mut full.grow(10)).is_ready());
        let mut pass = Charge::new(&memory);
        assert!(poll(&mut pass.grow(5)).is_ready());
        let mut waiting = Charge::new(&memory);
        let mut grow = waiting.grow(5);
        assert!(poll(&mut grow).is_pending());
        drop(grow);
        assert_eq!(memory.waiting(), 0);
        let mut grow = waiting.grow(5);
        assert!(poll(&mut grow).is_pending());
        drop(pass);
        // Granted (the pass freed) but dropped before it was seen: nothing leaks.
        drop(grow);
        drop(full);
        assert_eq!(memory.charged_bytes(), 0);
        assert!(!memory.is_spent());
    }

    #[test]
    fn readers_waiting_for_room_wake_when_the_budget_has_room_again() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let memory = RequestMemory::new(10);
        let mut charge = Charge::new(&memory);
        charge.grow_now(10);
        assert!(memory.is_spent());
        memory.wake_on_room(&waker);
        memory.wake_on_room(&waker);
        drop(charge);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert!(!memory.is_spent());
    }
}
