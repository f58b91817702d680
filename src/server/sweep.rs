//! Closing connections that only hold resources: one sweep per listener per shard walks its
//! connections every [`sweep_interval`] and closes
//! - an idle one: no request in flight, nothing being received, and no bytes read or response
//!   written for `connections.max.idle.ms` (Kafka's setting, 10 minutes by default), at debug
//!   level: clients reconnect, as they do with Kafka;
//! - a slow one: a request whose first bytes arrived but that is still incomplete after
//!   `--request-receive-timeout-ms` (the trickle attack: declare 100 MB, send 1 KB, then
//!   nothing), with a warning at most once a second.
//!
//! One sweep instead of a timer per connection: a pass over ten thousand connections costs
//! less than arming and cancelling a timer around every read. A connection that waits for
//! request memory (`memory.rs`) or for room among its requests in flight is neither idle nor
//! slow: the broker stopped reading it, not the client; its receive clock starts again when it
//! is read again.
//!
//! **Lifecycle.** A connection registers its [`ConnectionState`] for as long as it serves; the
//! [`Registration`] must be dropped before the connection's socket is closed, because the sweep
//! closes a connection by `shutdown(2)` on its descriptor (which wakes its reader and writer).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::limits::LogThrottle;

/// The longest time between two sweeps: a timeout fires at most this late.
const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(1);
/// The shortest time between two sweeps, whatever the timeouts (tests set them to a few
/// hundred milliseconds; a shorter interval would only cost CPU).
const SWEEP_INTERVAL_MIN: Duration = Duration::from_millis(10);
/// Sweeps per shortest timeout: a timeout fires at most a tenth of itself late.
const SWEEPS_PER_TIMEOUT: u32 = 10;

/// Why the sweep closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// No request for `connections.max.idle.ms`.
    Idle,
    /// A request not received whole within `--request-receive-timeout-ms`.
    SlowRequest,
}

/// The timeouts a sweep enforces.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// `connections.max.idle.ms`; `None` never closes idle connections (Kafka's -1).
    pub(super) idle: Option<Duration>,
    /// `--request-receive-timeout-ms`.
    pub(super) receive: Duration,
}

/// How often the sweep runs for `timeouts`.
pub(super) fn sweep_interval(timeouts: Timeouts) -> Duration {
    let shortest = timeouts.idle.map_or(timeouts.receive, |idle| idle.min(timeouts.receive));
    (shortest / SWEEPS_PER_TIMEOUT).clamp(SWEEP_INTERVAL_MIN, SWEEP_INTERVAL_MAX)
}

/// What the reader, the writer and the sweep know of one connection.
#[derive(Debug)]
pub(super) struct ConnectionState {
    fd: RawFd,
    peer: SocketAddr,
    /// The last time bytes were read or a response was written.
    last_active: Cell<Instant>,
    /// When the first bytes of the request being received arrived (`None` between requests, or
    /// while the connection waits for memory).
    receiving_since: Cell<Option<Instant>>,
    /// Not read by the broker (waiting for request memory or for room among the requests in
    /// flight), so neither idle nor slow.
    waiting: Cell<bool>,
    /// Requests read and not yet answered.
    in_flight: Cell<usize>,
    /// Set by the sweep when it closes the connection.
    expired: Cell<Option<Expiry>>,
    /// The reader, while it waits for its in-flight requests to be answered.
    reader_waker: RefCell<Option<Waker>>,
}

impl ConnectionState {
    /// A connection on socket `fd` (the reader's descriptor) from `peer`.
    pub(super) fn new(fd: RawFd, peer: SocketAddr) -> Rc<ConnectionState> {
        Rc::new(ConnectionState {
            fd,
            peer,
            last_active: Cell::new(Instant::now()),
            receiving_since: Cell::new(None),
            waiting: Cell::new(false),
            in_flight: Cell::new(0),
            expired: Cell::new(None),
            reader_waker: RefCell::new(None),
        })
    }

    /// Bytes arrived: the connection is active, and a request is being received.
    pub(super) fn bytes_arrived(&self) {
        let now = Instant::now();
        self.last_active.set(now);
        if self.receiving_since.get().is_none() {
            self.receiving_since.set(Some(now));
        }
    }

    /// A request was received whole; `more` says whether bytes of the next one are already in.
    pub(super) fn request_received(&self, more: bool) {
        self.receiving_since.set(more.then(Instant::now));
    }

    /// A request was handed to its handler.
    pub(super) fn request_started(&self) {
        self.in_flight.set(self.in_flight.get() + 1);
    }

    /// A request was answered (or its answer given up).
    pub(super) fn request_answered(&self) {
        self.last_active.set(Instant::now());
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        if self.in_flight.get() == 0
            && let Some(waker) = self.reader_waker.borrow_mut().take()
        {
            waker.wake();
        }
    }

    /// Requests read and not yet answered.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Registers the reader to be woken when its last request in flight is answered.
    pub(super) fn wake_when_answered(&self, waker: &Waker) {
        *self.reader_waker.borrow_mut() = Some(waker.clone());
    }

    /// Why the sweep closed the connection, if it did.
    pub(super) fn expired(&self) -> Option<Expiry> {
        self.expired.get()
    }

    /// Runs `wait` (a wait for request memory) with the connection's clocks stopped.
    pub(super) async fn paused<F: Future>(&self, wait: F) -> F::Output {
        let receiving = self.receiving_since.take().is_some();
        self.waiting.set(true);
        let out = wait.await;
        self.waiting.set(false);
        let now = Instant::now();
        self.last_active.set(now);
        if receiving {
            self.receiving_since.set(Some(now));
        }
        out
    }

    /// What the sweep should do with this connection at `now`.
    fn expiry(&self, now: Instant, timeouts: Timeouts) -> Option<Expiry> {
        if self.waiting.get() || self.expired.get().is_some() {
            return None;
        }
        if let Some(since) = self.receiving_since.get() {
            return (now.saturating_duration_since(since) >= timeouts.receive).then_some(Expiry::SlowRequest);
        }
        let idle = timeouts.idle?;
        (self.in_flight.get() == 0 && now.saturating_duration_since(self.last_active.get()) >= idle)
            .then_some(Expiry::Idle)
    }
}

/// The connections of one listener on one shard.
#[derive(Debug, Default)]
pub(super) struct Connections {
    by_id: RefCell<HashMap<u64, Rc<ConnectionState>>>,
    next_id: Cell<u64>,
}

impl Connections {
    /// Registers `state` with the sweep until the returned registration drops.
    pub(super) fn register(self: &Rc<Self>, state: Rc<ConnectionState>) -> Registration {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.by_id.borrow_mut().insert(id, state);
        Registration { connections: self.clone(), id }
    }
}

/// A connection's place in the sweep; dropping it takes the connection out.
#[derive(Debug)]
pub(super) struct Registration {
    connections: Rc<Connections>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.by_id.borrow_mut().remove(&self.id);
    }
}

/// Closes the connections that `timeouts` say to, every [`sweep_interval`], until cancelled.
pub(super) async fn sweep(connections: Rc<Connections>, timeouts: Timeouts) {
    let interval = sweep_interval(timeouts);
    let slow_log = LogThrottle::new();
    loop {
        glommio::timer::sleep(interval).await;
        sweep_once(&connections, timeouts, Instant::now(), &slow_log);
    }
}

fn sweep_once(connections: &Connections, timeouts: Timeouts, now: Instant, slow_log: &LogThrottle) {
    let expired: Vec<(Rc<ConnectionState>, Expiry)> = connections
        .by_id
        .borrow()
        .values()
        .filter_map(|state| state.expiry(now, timeouts).map(|why| (state.clone(), why)))
        .collect();
    for (state, why) in expired {
        state.expired.set(Some(why));
        match why {
            Expiry::Idle => {
                debug!(peer = %state.peer, idle_ms = ?timeouts.idle.map(|d| d.as_millis()),
                    "closing idle connection (connections.max.idle.ms)");
            }
            Expiry::SlowRequest => {
                if let Some(suppressed) = slow_log.allow() {
                    warn!(peer = %state.peer, timeout_ms = timeouts.receive.as_millis(),
                        closed_since_last_line = suppressed,
                        "closing connection: a request was not received whole within \
                        --request-receive-timeout-ms (a client sending too slowly, or stalled mid-request)");
                }
            }
        }
        // SAFETY: shutdown(2) on the descriptor of a registered connection: it stays open until
        // the connection drops its registration. It wakes the connection's reader and writer.
        unsafe { libc::shutdown(state.fd, libc::SHUT_RDWR) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts { idle: Some(Duration::from_secs(600)), receive: Duration::from_secs(30) };

    fn state() -> Rc<ConnectionState> {
        ConnectionState::new(-1, "127.0.0.1:1".parse().unwrap())
    }

    #[test]
    fn the_sweep_runs_a_tenth_of_the_shortest_timeout_between_bounds() {
        assert_eq!(sweep_interval(TIMEOUTS), SWEEP_INTERVAL_MAX);
        let short = Timeouts { idle: None, receive: Duration::from_millis(500) };
        assert_eq!(sweep_interval(short), Duration::from_millis(50));
        let tiny = Timeouts { idle: Some(Duration::from_millis(1)), receive: Duration::from_secs(1) };
        assert_eq!(sweep_interval(tiny), SWEEP_INTERVAL_MIN);
    }

    #[test]
    fn idle_means_nothing_in_flight_and_nothing_arriving() {
        let state = state();
        let now = Instant::now();
        let later = now + Duration::from_secs(601);
        assert_eq!(state.expiry(now, TIMEOUTS), None);
        assert_eq!(state.expiry(later, TIMEOUTS), Some(Expiry::Idle));
        state.request_started();
        assert_eq!(state.expiry(later, TIMEOUTS), None, "a request in flight is not idleness");
        let answered = Instant::now();
        state.request_answered();
        assert!(state.last_active.get() >= answered, "answering is activity");
        assert_eq!(state.expiry(answered + Duration::from_secs(599), TIMEOUTS), None);
        let never = Timeouts { idle: None, ..TIMEOUTS };
        assert_eq!(state.expiry(later + Duration::from_secs(3600), never), None);
    }

    #[test]
    fn a_request_still_arriving_after_the_receive_timeout_is_slow_unless_we_stopped_reading() {
        let state = state();
        state.bytes_arrived();
        let late = Instant::now() + Duration::from_secs(31);
        assert_eq!(state.expiry(late, TIMEOUTS), Some(Expiry::SlowRequest));
        // More bytes of the same request do not restart the clock.
        state.bytes_arrived();
        assert_eq!(state.expiry(late, TIMEOUTS), Some(Expiry::SlowRequest));
        state.request_received(false);
        assert_eq!(state.expiry(late, TIMEOUTS), None);
        state.bytes_arrived();
        state.waiting.set(true);
        assert_eq!(state.expiry(late + Duration::from_secs(3600), TIMEOUTS), None);
    }

    #[test]
    fn the_sweep_closes_each_expired_connection_once_and_forgets_dropped_ones() {
        let connections = Rc::new(Connections::default());
        let (idle, busy) = (state(), state());
        busy.request_started();
        let idle_registration = connections.register(idle.clone());
        let busy_registration = connections.register(busy.clone());
        let log = LogThrottle::new();
        sweep_once(&connections, TIMEOUTS, Instant::now() + Duration::from_secs(700), &log);
        assert_eq!((idle.expired(), busy.expired()), (Some(Expiry::Idle), None));
        assert_eq!(idle.expiry(Instant::now() + Duration::from_secs(700), TIMEOUTS), None, "closed once");
        drop((idle_registration, busy_registration));
        assert!(connections.by_id.borrow().is_empty());
    }
}
