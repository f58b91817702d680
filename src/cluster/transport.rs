//! Node-to-node transport: framed TCP connections between cluster nodes, carrying Raft messages
//! (fire-and-forget) and calls (request bytes in, response bytes out, matched by a correlation id).
//!
//! # Wire
//!
//! A connection starts with a hello from the connecting side, [`HELLO_BYTES`] long:
//! [`MAGIC`], the protocol version (u16, [`PROTOCOL_VERSION`]) and the sender's node id (i32),
//! all big-endian. Then frames, in both directions:
//!
//! ```text
//! length u32 (of what follows, at most FRAME_BYTES_MAX) | kind u8 | correlation id u64 | payload
//! ```
//!
//! The connecting side sends `Raft` frames (correlation id 0) and `Request` frames; the accepting
//! side sends only `Response` frames, on the connection the request came on. A node sends its
//! own traffic over its own outbound connections, so each direction between two nodes has its own
//! socket. A wrong hello, a length above the maximum, an unknown kind or a kind the direction does
//! not allow closes that connection only, with one warn line (rate-limited, see
//! [`WARN_LINES_PER_WINDOW`]); the listener keeps serving the others.
//!
//! # Lifecycle and concurrency
//!
//! A [`Transport`] lives on ONE shard of its node (everything is `Rc`; nothing here is `Send`).
//! [`Transport::start`] binds the listener and spawns the accept loop on the current executor.
//! Outbound connections are opened lazily, one per peer address, and shared by Raft sends and
//! calls. Each runs as one task (connect, hello, then a writer and a reader raced together);
//! when it dies it fails its in-flight calls at once ([`TransportError::Closed`], or
//! [`TransportError::Connect`] if it never connected), drops its queued Raft frames and leaves
//! the cache, so the next send connects again. A failed connect puts the address in a backoff
//! (doubling from [`RECONNECT_BACKOFF_MIN`] to [`RECONNECT_BACKOFF_MAX`]) during which Raft sends
//! to it are dropped at once; calls try to connect regardless, since their caller waits for them
//! and bounds them with its timeout. [`Transport::close`] (or dropping the `Transport`) stops
//! every task; handler futures already running finish on their own, and their answers are
//! dropped.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::future::or;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;
use glommio::task::JoinHandle;
use tracing::{debug, warn};

/// The first bytes of every connection: a port that is not a Sluice controller listener (or a
/// stray client) is told apart before any frame is parsed.
pub const MAGIC: [u8; 4] = *b"SLCN";
/// The version of this wire format; a peer with another one is refused (no negotiation yet: all
/// nodes of a cluster run the same build).
pub const PROTOCOL_VERSION: u16 = 1;
/// Bytes of the hello: magic, version u16, node id i32.
pub const HELLO_BYTES: usize = MAGIC.len() + 2 + 4;
/// Bytes of a frame's length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Bytes the length counts before the payload: kind u8 and correlation id u64.
pub const FRAME_HEAD_BYTES: usize = 1 + 8;
/// The largest frame length accepted (kind, correlation id and payload), checked before anything is
/// allocated for it. Raft appends and snapshot chunks are sized by the quorum's configuration far
/// below this; 16 MiB bounds what a garbled or hostile length prefix can make a node reserve.
pub const FRAME_BYTES_MAX: u32 = 16 * 1024 * 1024;
/// The largest payload a frame carries.
pub const PAYLOAD_BYTES_MAX: usize = FRAME_BYTES_MAX as usize - FRAME_HEAD_BYTES;
/// Raft frames queued per outbound connection before sends are dropped: Raft retries, so a peer
/// that cannot keep up (or is still connecting) costs a bounded queue, never the caller's time.
pub const RAFT_QUEUE_FRAMES_MAX: usize = 1024;
/// Bytes of Raft payloads queued per outbound connection before sends are dropped (a few large
/// appends must not pin a lot of memory for a slow peer).
pub const RAFT_QUEUE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Calls in flight per outbound connection; beyond it a call fails with
/// [`TransportError::Overloaded`]. Callers are a few control-plane loops, far below this.
pub const CALLS_IN_FLIGHT_MAX: usize = 256;
/// Requests of one inbound connection being handled at once; reading pauses beyond it, so a
/// peer flooding requests is slowed instead of spawning unbounded tasks.
pub const INBOUND_CALLS_IN_FLIGHT_MAX: usize = 64;
/// Inbound connections open at once; more are closed as they arrive. A cluster has a handful of
/// nodes, each with one connection per address, plus brokers calling the controllers.
pub const INBOUND_CONNECTIONS_MAX: usize = 1024;
/// How long an accepted connection may take to send its hello, so idle sockets do not hold
/// connection slots.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait after a failed connect before Raft sends try the address again.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between connect attempts: a restarted peer is found again within this.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Bytes of queued frames coalesced into one write (fewer syscalls when Raft sends in bursts).
pub const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Bytes read from the socket at a time when no larger frame is pending.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Warn lines about misbehaving connections per [`WARN_WINDOW`]; the rest are counted and the
/// count reported with the next line, so a flood of garbage logs little.
pub const WARN_LINES_PER_WINDOW: u32 = 10;
/// The window of [`WARN_LINES_PER_WINDOW`].
pub const WARN_WINDOW: Duration = Duration::from_secs(10);
/// Pause after a failed accept (for example out of descriptors), so the loop does not spin.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

const _: () = assert!(FRAME_BYTES_MAX as usize > FRAME_HEAD_BYTES);
const _: () = assert!(RAFT_QUEUE_BYTES_MAX >= PAYLOAD_BYTES_MAX);
const _: () = assert!(RECONNECT_BACKOFF_MIN.as_nanos() <= RECONNECT_BACKOFF_MAX.as_nanos());

/// Receives the Raft messages from node `from` (the id in its hello), in the order it sent them.
/// Runs inline on the reading task, so it must not block. A handler that needs the transport holds
/// it by `Weak` (so does a [`CallHandler`]), or the two keep each other alive.
pub type RaftHandler = Rc<dyn Fn(i32, Bytes)>;
/// Answers a call from node `from`; the answer goes back on the connection the request came on.
pub type CallHandler = Rc<dyn Fn(i32, Bytes) -> Pin<Box<dyn Future<Output = Bytes>>>>;

/// How a [`Transport`] is set up.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// This node's id, sent in every hello.
    pub node_id: i32,
    /// Where to listen for other nodes (`--controller-listen`); `None` for a node that only calls
    /// out. Port 0 picks a free port ([`Transport::local_addr`] tells which).
    pub listen: Option<SocketAddr>,
    /// How long [`Transport::call`] waits for an answer, connecting included.
    pub call_timeout: Duration,
    /// How long a connect may take before the address counts as down. Must not be zero.
    pub connect_timeout: Duration,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No answer within the call timeout (the connection may still be fine).
    #[error("no answer within the call timeout")]
    Timeout,
    /// The connection closed (or the transport was closed) before the answer came.
    #[error("connection closed before the answer")]
    Closed,
    /// The node could not be reached.
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    /// The request is larger than a frame may carry ([`PAYLOAD_BYTES_MAX`]).
    #[error("request of {bytes} bytes is larger than a frame may carry")]
    TooLarge {
        /// The request's size.
        bytes: usize,
    },
    /// [`CALLS_IN_FLIGHT_MAX`] calls to that address are already waiting.
    #[error("too many calls in flight to that address")]
    Overloaded,
}

/// Counters of one transport, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Raft messages queued for sending.
    pub raft_queued: u64,
    /// Raft messages dropped: unknown peer, peer in backoff, full queue, too large, or still
    /// queued when their connection died.
    pub raft_dropped: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
    /// Connections closed because the peer broke the protocol (either direction).
    pub protocol_errors: u64,
}

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A Raft message (connecting side to accepting side), correlation id 0.
    Raft = 1,
    /// A call's request (connecting side to accepting side).
    Request = 2,
    /// A call's answer (accepting side to connecting side), with the request's correlation id.
    Response = 3,
}

impl TryFrom<u8> for FrameKind {
    type Error = FrameError;
    fn try_from(byte: u8) -> Result<Self, FrameError> {
        match byte {
            1 => Ok(FrameKind::Raft),
            2 => Ok(FrameKind::Request),
            3 => Ok(FrameKind::Response),
            other => Err(FrameError::UnknownKind(other)),
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What it carries.
    pub kind: FrameKind,
    /// Matches a response to its request; 0 for Raft.
    pub correlation_id: u64,
    /// The opaque bytes.
    pub payload: Bytes,
}

/// Why a hello or a frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The hello does not start with [`MAGIC`].
    #[error("wrong magic {0:02x?}")]
    WrongMagic([u8; 4]),
    /// The hello's protocol version is not [`PROTOCOL_VERSION`].
    #[error("unsupported protocol version {0}")]
    WrongVersion(u16),
    /// The length prefix is below the frame head or above [`FRAME_BYTES_MAX`].
    #[error("frame length {0} out of range")]
    BadLength(u32),
    /// The kind byte is none of [`FrameKind`].
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A known kind that this side of the connection must not receive.
    #[error("unexpected {0:?} frame")]
    UnexpectedKind(FrameKind),
}

/// The hello the connecting side sends.
pub fn encode_hello(node_id: i32) -> [u8; HELLO_BYTES] {
    let mut hello = [0u8; HELLO_BYTES];
    let (magic, rest) = hello.split_at_mut(MAGIC.len());
    magic.copy_from_slice(&MAGIC);
    let (version, id) = rest.split_at_mut(2);
    version.copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    id.copy_from_slice(&node_id.to_be_bytes());
    hello
}

/// The sender's node id from a hello, or why it is refused.
pub fn decode_hello(hello: &[u8; HELLO_BYTES]) -> Result<i32, FrameError> {
    let (magic, rest) = hello.split_first_chunk::<4>().ok_or(FrameError::BadLength(0))?;
    let (version, id) = rest.split_first_chunk::<2>().ok_or(FrameError::BadLength(0))?;
    let id = id.first_chunk::<4>().ok_or(FrameError::BadLength(0))?;
    if *magic != MAGIC {
        return Err(FrameError::WrongMagic(*magic));
    }
    let version = u16::from_be_bytes(*version);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::WrongVersion(version));
    }
    Ok(i32::from_be_bytes(*id))
}

/// Appends one frame to `out`. The caller has checked `payload.len() <= PAYLOAD_BYTES_MAX`.
pub fn encode_frame(out: &mut BytesMut, kind: FrameKind, correlation_id: u64, payload: &[u8]) {
    assert!(payload.len() <= PAYLOAD_BYTES_MAX);
    out.reserve(LENGTH_PREFIX_BYTES + FRAME_HEAD_BYTES + payload.len());
    out.put_u32((FRAME_HEAD_BYTES + payload.len()) as u32);
    out.put_u8(kind as u8);
    out.put_u64(correlation_id);
    out.put_slice(payload);
}

/// The length a prefix announces, if it is in range.
fn checked_length(prefix: [u8; LENGTH_PREFIX_BYTES]) -> Result<usize, FrameError> {
    let length = u32::from_be_bytes(prefix);
    if (length as usize) < FRAME_HEAD_BYTES || length > FRAME_BYTES_MAX {
        return Err(FrameError::BadLength(length));
    }
    Ok(length as usize)
}

/// Splits the first whole frame off `buf`, `None` if it holds only part of one. The length is
/// checked before the frame is waited for, so a bad prefix fails at once.
pub fn decode_frame(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    let Some(&prefix) = buf.first_chunk::<LENGTH_PREFIX_BYTES>() else { return Ok(None) };
    let length = checked_length(prefix)?;
    if buf.len() < LENGTH_PREFIX_BYTES + length {
        return Ok(None);
    }
    let mut frame = buf.split_to(LENGTH_PREFIX_BYTES + length).split_off(LENGTH_PREFIX_BYTES);
    let payload = frame.split_off(FRAME_HEAD_BYTES).freeze();
    let Some((&[kind], correlation_id)) = frame.split_first_chunk::<1>() else {
        return Err(FrameError::BadLength(length as u32));
    };
    let correlation_id = correlation_id.first_chunk::<8>().map_or(0, |id| u64::from_be_bytes(*id));
    Ok(Some(Frame { kind: FrameKind::try_from(kind)?, correlation_id, payload }))
}

/// Why reading frames off a connection stopped.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("connection closed mid-frame")]
    Truncated,
}

/// Reads frames off one connection through a reusable buffer.
struct FrameReader {
    buf: BytesMut,
}

impl FrameReader {
    fn new() -> Self {
        FrameReader { buf: BytesMut::new() }
    }

    /// The next frame, or `None` at a clean end of stream.
    async fn next<R: AsyncRead + Unpin>(&mut self, read: &mut R) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = decode_frame(&mut self.buf)? {
                return Ok(Some(frame));
            }
            // decode_frame checked any complete prefix, so this reserves at most one frame.
            let start = self.buf.len();
            let rest_of_frame = match self.buf.first_chunk::<LENGTH_PREFIX_BYTES>() {
                Some(&prefix) => (LENGTH_PREFIX_BYTES + checked_length(prefix)?).saturating_sub(start),
                None => 0,
            };
            self.buf.resize(start + rest_of_frame.clamp(READ_CHUNK_BYTES, crate::limits::SOCKET_READ_BYTES_MAX), 0);
            let read = read.read(&mut self.buf[start..]).await;
            let n = *read.as_ref().unwrap_or(&0);
            self.buf.truncate(start + n);
            read?;
            if n == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(ReadError::Truncated) };
            }
        }
    }
}

/// Rate limit for warn lines about misbehaving connections.
struct WarnLimiter {
    window_start: Cell<Option<Instant>>,
    lines: Cell<u32>,
    suppressed: Cell<u64>,
}

impl WarnLimiter {
    fn new() -> Self {
        WarnLimiter { window_start: Cell::new(None), lines: Cell::new(0), suppressed: Cell::new(0) }
    }

    /// `Some(lines suppressed since the last one)` if a line may be logged at `now`.
    fn allow(&self, now: Instant) -> Option<u64> {
        let fresh = self.window_start.get().is_none_or(|start| now.duration_since(start) >= WARN_WINDOW);
        if fresh {
            self.window_start.set(Some(now));
            self.lines.set(0);
        }
        if self.lines.get() >= WARN_LINES_PER_WINDOW {
            self.suppressed.set(self.suppressed.get() + 1);
            return None;
        }
        self.lines.set(self.lines.get() + 1);
        Some(self.suppressed.replace(0))
    }
}

/// A frame waiting in an outbound connection's queue.
struct OutFrame {
    kind: FrameKind,
    correlation_id: u64,
    payload: Bytes,
}

/// Why an outbound connection died, told to the calls it fails.
#[derive(Debug, Clone)]
enum Failure {
    Closed,
    Connect(io::ErrorKind, String),
}

impl Failure {
    fn to_error(&self) -> TransportError {
        match self {
            Failure::Closed => TransportError::Closed,
            Failure::Connect(kind, message) => TransportError::Connect(io::Error::new(*kind, message.clone())),
        }
    }
}

/// One outbound connection (connecting, or up), shared by Raft sends and calls to its address.
struct Outbound {
    addr: SocketAddr,
    /// Frames not yet written, in order. Raft frames in it are bounded by `RAFT_QUEUE_*`, call
    /// frames by `CALLS_IN_FLIGHT_MAX` (each has a pending entry).
    queue: RefCell<VecDeque<OutFrame>>,
    raft_frames: Cell<usize>,
    raft_bytes: Cell<usize>,
    /// Rung after each push; the writer waits on it when the queue is empty.
    doorbell: LocalSender<()>,
    /// Calls waiting for an answer; dropping a sender tells its call that the connection died.
    pending: RefCell<HashMap<u64, LocalSender<Bytes>>>,
    next_correlation_id: Cell<u64>,
    dead: Cell<bool>,
    failure: RefCell<Option<Failure>>,
    /// Dropping it stops the connection's task.
    stop: RefCell<Option<LocalSender<()>>>,
    task: RefCell<Option<JoinHandle<()>>>,
}

impl Outbound {
    fn push(&self, frame: OutFrame) {
        if frame.kind == FrameKind::Raft {
            self.raft_frames.set(self.raft_frames.get() + 1);
            self.raft_bytes.set(self.raft_bytes.get() + frame.payload.len());
        }
        self.queue.borrow_mut().push_back(frame);
        // Full means a ring is already waiting; closed means the task is gone (and the
        // connection dead, so nothing will be written anyway).
        let _ = self.doorbell.try_send(());
    }

    fn raft_has_room(&self, bytes: usize) -> bool {
        self.raft_frames.get() < RAFT_QUEUE_FRAMES_MAX && self.raft_bytes.get() + bytes <= RAFT_QUEUE_BYTES_MAX
    }

    /// Moves queued frames into `out` (at least one if any, then up to `WRITE_BATCH_BYTES`).
    fn take_batch(&self, out: &mut BytesMut) {
        let mut queue = self.queue.borrow_mut();
        while let Some(frame) = queue.front() {
            if !out.is_empty() && out.len() + frame.payload.len() > WRITE_BATCH_BYTES {
                break;
            }
            let Some(frame) = queue.pop_front() else { break };
            if frame.kind == FrameKind::Raft {
                self.raft_frames.set(self.raft_frames.get().saturating_sub(1));
                self.raft_bytes.set(self.raft_bytes.get().saturating_sub(frame.payload.len()));
            }
            encode_frame(out, frame.kind, frame.correlation_id, &frame.payload);
        }
    }

    /// Marks the connection dead, fails its calls and drops its queue; returns the Raft frames
    /// dropped.
    fn die(&self, failure: Failure) -> u64 {
        self.dead.set(true);
        *self.failure.borrow_mut() = Some(failure);
        let dropped = self.raft_frames.replace(0) as u64;
        self.raft_bytes.set(0);
        let queue = std::mem::take(&mut *self.queue.borrow_mut());
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        drop((queue, pending));
        dropped
    }

    fn failure(&self) -> TransportError {
        self.failure.borrow().as_ref().map_or(TransportError::Closed, Failure::to_error)
    }
}

/// Removes a call's pending entry however the call ends (answer, timeout, or its future dropped).
struct PendingGuard<'a> {
    conn: &'a Outbound,
    correlation_id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.conn.pending.borrow_mut().remove(&self.correlation_id);
    }
}

/// An accepted connection, so `close` can stop it.
struct Inbound {
    stop: LocalSender<()>,
    task: Option<JoinHandle<()>>,
}

/// When an address that failed to connect may be tried again by Raft sends.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    delay: Duration,
    retry_at: Instant,
}

/// Whether a new connection may be opened to an address in backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A Raft send: dropped while the address is in backoff.
    Raft,
    /// A call: its caller waits and bounds it, so it tries anyway.
    Call,
}

/// The state the transport's tasks share.
struct Inner {
    config: TransportConfig,
    on_raft: RaftHandler,
    on_call: CallHandler,
    closed: Cell<bool>,
    peers: RefCell<HashMap<i32, SocketAddr>>,
    outbound: RefCell<HashMap<SocketAddr, Rc<Outbound>>>,
    backoff: RefCell<HashMap<SocketAddr, Backoff>>,
    inbound: RefCell<HashMap<u64, Inbound>>,
    next_inbound_id: Cell<u64>,
    /// By the node id in their hello: how many inbound connections from that node are open, and
    /// when the last one closed (the controller's hint that a broker's process died).
    inbound_from: RefCell<HashMap<i32, (usize, Option<Instant>)>>,
    stats: Cell<TransportStats>,
    warn_limiter: WarnLimiter,
}

impl Inner {
    fn count(&self, update: impl FnOnce(&mut TransportStats)) {
        let mut stats = self.stats.get();
        update(&mut stats);
        self.stats.set(stats);
    }

    /// One warn line about a misbehaving connection, unless too many were logged lately.
    fn warn_peer(&self, peer: SocketAddr, why: &dyn std::fmt::Display) {
        if let Some(suppressed) = self.warn_limiter.allow(Instant::now()) {
            warn!(%peer, suppressed, "cluster transport: closing connection: {why}");
        }
    }

    /// The live connection to `addr`, opening one unless the transport is closed or (for Raft)
    /// the address is in backoff.
    fn outbound(self: &Rc<Self>, addr: SocketAddr, purpose: Purpose) -> Option<Rc<Outbound>> {
        if self.closed.get() {
            return None;
        }
        if let Some(conn) = self.outbound.borrow().get(&addr).filter(|conn| !conn.dead.get()) {
            return Some(conn.clone());
        }
        let now = Instant::now();
        if purpose == Purpose::Raft && self.backoff.borrow().get(&addr).is_some_and(|b| b.retry_at > now) {
            return None;
        }
        let (doorbell, rung) = local_channel::new_bounded(1);
        let (stop, stopped) = local_channel::new_bounded(1);
        let conn = Rc::new(Outbound {
            addr,
            queue: RefCell::new(VecDeque::new()),
            raft_frames: Cell::new(0),
            raft_bytes: Cell::new(0),
            doorbell,
            pending: RefCell::new(HashMap::new()),
            next_correlation_id: Cell::new(1),
            dead: Cell::new(false),
            failure: RefCell::new(None),
            stop: RefCell::new(Some(stop)),
            task: RefCell::new(None),
        });
        let task = glommio::spawn_local(drive_outbound(self.clone(), conn.clone(), rung, stopped)).detach();
        *conn.task.borrow_mut() = Some(task);
        self.outbound.borrow_mut().insert(addr, conn.clone());
        Some(conn)
    }

    fn connect_failed(&self, addr: SocketAddr) {
        self.count(|s| s.connect_failures += 1);
        let mut backoff = self.backoff.borrow_mut();
        let delay = backoff.get(&addr).map_or(RECONNECT_BACKOFF_MIN, |b| (b.delay * 2).min(RECONNECT_BACKOFF_MAX));
        backoff.insert(addr, Backoff { delay, retry_at: Instant::now() + delay });
    }

    /// Stops every connection task and returns their handles (the maps are left empty).
    fn stop_connections(&self) -> Vec<JoinHandle<()>> {
        let outbound = std::mem::take(&mut *self.outbound.borrow_mut());
        let inbound = std::mem::take(&mut *self.inbound.borrow_mut());
        let mut tasks = Vec::with_capacity(outbound.len() + inbound.len());
        for conn in outbound.into_values() {
            drop(conn.stop.borrow_mut().take());
            tasks.extend(conn.task.borrow_mut().take());
        }
        for conn in inbound.into_values() {
            drop(conn.stop);
            tasks.extend(conn.task);
        }
        tasks
    }
}

/// Runs `work` until it finishes or `stopped` fires (its sender dropped); `None` if stopped.
async fn until_stopped<T>(stopped: &LocalReceiver<()>, work: impl Future<Output = T>) -> Option<T> {
    or(async { Some(work.await) }, async {
        while stopped.recv().await.is_some() {}
        None
    })
    .await
}

/// The task of one outbound connection, from connect to death.
async fn drive_outbound(inner: Rc<Inner>, conn: Rc<Outbound>, rung: LocalReceiver<()>, stopped: LocalReceiver<()>) {
    let failure = until_stopped(&stopped, run_outbound(&inner, &conn, &rung)).await.unwrap_or(Failure::Closed);
    let dropped = conn.die(failure);
    inner.count(|s| s.raft_dropped += dropped);
    let mut outbound = inner.outbound.borrow_mut();
    if outbound.get(&conn.addr).is_some_and(|cached| Rc::ptr_eq(cached, &conn)) {
        outbound.remove(&conn.addr);
    }
}

async fn run_outbound(inner: &Inner, conn: &Outbound, rung: &LocalReceiver<()>) -> Failure {
    let addr = conn.addr;
    let stream = match TcpStream::connect_timeout(addr, inner.config.connect_timeout).await {
        Ok(stream) => stream,
        Err(e) => {
            let e = io::Error::from(e);
            debug!(%addr, error = %e, "cluster transport: connect failed");
            inner.connect_failed(addr);
            return Failure::Connect(e.kind(), e.to_string());
        }
    };
    inner.backoff.borrow_mut().remove(&addr);
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%addr, error = %e, "cluster transport: cannot set TCP_NODELAY");
    }
    let (mut read, mut write) = futures_lite::io::split(stream);
    let writer = async {
        let mut out = BytesMut::with_capacity(WRITE_BATCH_BYTES);
        out.put_slice(&encode_hello(inner.config.node_id));
        loop {
            conn.take_batch(&mut out);
            if out.is_empty() {
                if rung.recv().await.is_none() {
                    return Failure::Closed;
                }
                continue;
            }
            if let Err(e) = write_all(&mut write, &out).await {
                debug!(%addr, error = %e, "cluster transport: write failed");
                return Failure::Closed;
            }
            out.clear();
            // One large frame must not keep its buffer forever.
            if out.capacity() > 2 * WRITE_BATCH_BYTES {
                out = BytesMut::with_capacity(WRITE_BATCH_BYTES);
            }
        }
    };
    let reader = async {
        let mut frames = FrameReader::new();
        loop {
            let frame = match frames.next(&mut read).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return Failure::Closed,
                Err(ReadError::Io(e)) => {
                    debug!(%addr, error = %e, "cluster transport: read failed");
                    return Failure::Closed;
                }
                Err(e) => {
                    inner.count(|s| s.protocol_errors += 1);
                    inner.warn_peer(addr, &e);
                    return Failure::Closed;
                }
            };
            if frame.kind != FrameKind::Response {
                inner.count(|s| s.protocol_errors += 1);
                inner.warn_peer(addr, &FrameError::UnexpectedKind(frame.kind));
                return Failure::Closed;
            }
            // No entry: the call timed out or was dropped; its late answer goes nowhere.
            let waiting = conn.pending.borrow_mut().remove(&frame.correlation_id);
            if let Some(waiting) = waiting {
                let _ = waiting.try_send(frame.payload);
            }
        }
    };
    or(writer, reader).await
}

async fn write_all<W: AsyncWrite + Unpin>(write: &mut W, bytes: &[u8]) -> io::Result<()> {
    write.write_all(bytes).await?;
    write.flush().await
}

/// The accept loop: one task per accepted connection, until `stopped` fires.
async fn accept_loop(inner: Rc<Inner>, listener: TcpListener, stopped: LocalReceiver<()>) {
    while let Some(accepted) = until_stopped(&stopped, listener.accept()).await {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                warn!(error = %e, "cluster transport: accept failed");
                glommio::timer::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(peer) = stream.peer_addr() else { continue };
        if inner.inbound.borrow().len() >= INBOUND_CONNECTIONS_MAX {
            inner.warn_peer(peer, &format_args!("{INBOUND_CONNECTIONS_MAX} connections already open"));
            continue;
        }
        let id = inner.next_inbound_id.get();
        inner.next_inbound_id.set(id + 1);
        let (stop, stop_rx) = local_channel::new_bounded(1);
        let task = glommio::spawn_local(serve_inbound(inner.clone(), stream, peer, id, stop_rx)).detach();
        inner.inbound.borrow_mut().insert(id, Inbound { stop, task: Some(task) });
    }
}

/// Serves one accepted connection until it closes, breaks the protocol or `stopped` fires.
async fn serve_inbound(inner: Rc<Inner>, stream: TcpStream, peer: SocketAddr, id: u64, stopped: LocalReceiver<()>) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "cluster transport: cannot set TCP_NODELAY");
    }
    let (read, write) = futures_lite::io::split(stream);
    until_stopped(&stopped, serve_frames(&inner, read, write, peer)).await;
    inner.inbound.borrow_mut().remove(&id);
}

async fn serve_frames<R, W>(inner: &Rc<Inner>, mut read: R, mut write: W, peer: SocketAddr)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut hello = [0u8; HELLO_BYTES];
    let timeout = async {
        glommio::timer::sleep(HELLO_TIMEOUT).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "no hello in time"))
    };
    if let Err(e) = or(read.read_exact(&mut hello), timeout).await {
        debug!(%peer, error = %e, "cluster transport: no hello");
        return;
    }
    let from = match decode_hello(&hello) {
        Ok(from) => from,
        Err(e) => {
            inner.count(|s| s.protocol_errors += 1);
            inner.warn_peer(peer, &e);
            return;
        }
    };
    // Answers of handled requests; capacity matches the permits, so a handler never waits.
    let (answers, answered) = local_channel::new_bounded::<(u64, Bytes)>(INBOUND_CALLS_IN_FLIGHT_MAX);
    let answers = Rc::new(answers);
    let permits = Rc::new(Semaphore::new(INBOUND_CALLS_IN_FLIGHT_MAX as u64));
    let reader = async {
        let mut frames = FrameReader::new();
        loop {
            let frame = match frames.next(&mut read).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(ReadError::Io(e)) => {
                    debug!(%peer, error = %e, "cluster transport: read failed");
                    return;
                }
                Err(e) => {
                    inner.count(|s| s.protocol_errors += 1);
                    inner.warn_peer(peer, &e);
                    return;
                }
            };
            match frame.kind {
                FrameKind::Raft => (inner.on_raft)(from, frame.payload),
                FrameKind::Request => {
                    let Ok(permit) = permits.acquire_static_permit(1).await else { return };
                    let answer = (inner.on_call)(from, frame.payload);
                    let answers = answers.clone();
                    glommio::spawn_local(async move {
                        let body = answer.await;
                        // Closed: the connection is gone and nobody waits for this answer.
                        let _ = answers.send((frame.correlation_id, body)).await;
                        drop(permit);
                    })
                    .detach();
                }
                FrameKind::Response => {
                    inner.count(|s| s.protocol_errors += 1);
                    inner.warn_peer(peer, &FrameError::UnexpectedKind(frame.kind));
                    return;
                }
            }
        }
    };
    let writer = async {
        let mut out = BytesMut::new();
        while let Some((correlation_id, body)) = answered.recv().await {
            if body.len() > PAYLOAD_BYTES_MAX {
                // The caller times out; the handler's bug must not kill the other calls.
                warn!(%peer, bytes = body.len(), "cluster transport: answer too large for a frame; dropped");
                continue;
            }
            out.clear();
            encode_frame(&mut out, FrameKind::Response, correlation_id, &body);
            if let Err(e) = write_all(&mut write, &out).await {
                debug!(%peer, error = %e, "cluster transport: write failed");
                return;
            }
        }
    };
    inner.inbound_from.borrow_mut().entry(from).or_insert((0, None)).0 += 1;
    or(reader, writer).await;
    if let Some((open, lost)) = inner.inbound_from.borrow_mut().get_mut(&from) {
        *open = open.saturating_sub(1);
        if *open == 0 {
            *lost = Some(Instant::now());
        }
    }
}

/// Node-to-node transport of one node: see the module docs for the wire, the lifecycle and the
/// concurrency rules. Lives on one shard; dropping it stops its tasks like [`Transport::close`]
/// (without waiting for them).
pub struct Transport {
    inner: Rc<Inner>,
    local_addr: Option<SocketAddr>,
    stop_accept: RefCell<Option<LocalSender<()>>>,
    accept_task: RefCell<Option<JoinHandle<()>>>,
}

impl Transport {
    /// Binds `listen` (if any; port 0 allowed) and spawns the accept loop on the current executor.
    /// Fails if the address cannot be bound or `connect_timeout` is zero.
    pub async fn start(
        config: TransportConfig,
        on_raft: RaftHandler,
        on_call: CallHandler,
    ) -> io::Result<Rc<Transport>> {
        if config.connect_timeout.is_zero() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "connect_timeout must not be zero"));
        }
        let listener = match config.listen {
            Some(addr) => Some(TcpListener::bind(addr)?),
            None => None,
        };
        let local_addr = listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let inner = Rc::new(Inner {
            config,
            on_raft,
            on_call,
            closed: Cell::new(false),
            peers: RefCell::new(HashMap::new()),
            outbound: RefCell::new(HashMap::new()),
            backoff: RefCell::new(HashMap::new()),
            inbound: RefCell::new(HashMap::new()),
            next_inbound_id: Cell::new(0),
            inbound_from: RefCell::new(HashMap::new()),
            stats: Cell::new(TransportStats::default()),
            warn_limiter: WarnLimiter::new(),
        });
        let (stop_accept, accept_task) = match listener {
            Some(listener) => {
                let (stop, stopped) = local_channel::new_bounded(1);
                let task = glommio::spawn_local(accept_loop(inner.clone(), listener, stopped)).detach();
                (Some(stop), Some(task))
            }
            None => (None, None),
        };
        Ok(Rc::new(Transport {
            inner,
            local_addr,
            stop_accept: RefCell::new(stop_accept),
            accept_task: RefCell::new(accept_task),
        }))
    }

    /// The address the listener is bound to (the real port if `listen` asked for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Where node `id` listens; replaces an earlier address (a node restarted elsewhere). A
    /// connection to the old address stays until it dies (calls may still be using it).
    pub fn set_peer(&self, id: i32, addr: SocketAddr) {
        self.inner.peers.borrow_mut().insert(id, addr);
    }

    /// When the last inbound connection from node `id` closed, if none is open now (`None` also
    /// when it never connected). A process that dies has its connections closed by its kernel
    /// at once, so this is the earliest sign of a crash; a live node that lost a connection
    /// opens another at its next call.
    pub fn inbound_lost_since(&self, id: i32) -> Option<Instant> {
        match self.inner.inbound_from.borrow().get(&id) {
            Some((0, lost)) => *lost,
            _ => None,
        }
    }

    /// Forgets node `id` (it left the cluster); Raft sends to it are dropped from now on.
    pub fn remove_peer(&self, id: i32) {
        self.inner.peers.borrow_mut().remove(&id);
    }

    /// Queues Raft bytes for node `to`, in order behind earlier ones, and returns at once. Connects
    /// lazily in the background. Drops the message (counted in [`TransportStats::raft_dropped`])
    /// if the peer is unknown, in backoff after a failed connect, its queue is full, or the
    /// transport is closed; Raft retries.
    pub fn send_raft(&self, to: i32, bytes: Bytes) {
        let addr = self.inner.peers.borrow().get(&to).copied();
        let conn = match addr {
            Some(addr) if bytes.len() <= PAYLOAD_BYTES_MAX => self.inner.outbound(addr, Purpose::Raft),
            _ => None,
        };
        match conn {
            Some(conn) if conn.raft_has_room(bytes.len()) => {
                conn.push(OutFrame { kind: FrameKind::Raft, correlation_id: 0, payload: bytes });
                self.inner.count(|s| s.raft_queued += 1);
            }
            _ => self.inner.count(|s| s.raft_dropped += 1),
        }
    }

    /// Calls the node at `addr` (need not be a known peer) and waits for its answer, at most
    /// `call_timeout` (connecting included). Several calls may be in flight on one connection.
    pub async fn call(&self, addr: SocketAddr, body: Bytes) -> Result<Bytes, TransportError> {
        if body.len() > PAYLOAD_BYTES_MAX {
            return Err(TransportError::TooLarge { bytes: body.len() });
        }
        let conn = self.inner.outbound(addr, Purpose::Call).ok_or(TransportError::Closed)?;
        if conn.pending.borrow().len() >= CALLS_IN_FLIGHT_MAX {
            return Err(TransportError::Overloaded);
        }
        let correlation_id = conn.next_correlation_id.get();
        conn.next_correlation_id.set(correlation_id.wrapping_add(1).max(1));
        let (answer, answered) = local_channel::new_bounded(1);
        conn.pending.borrow_mut().insert(correlation_id, answer);
        let _guard = PendingGuard { conn: &conn, correlation_id };
        conn.push(OutFrame { kind: FrameKind::Request, correlation_id, payload: body });
        let timeout = async {
            glommio::timer::sleep(self.inner.config.call_timeout).await;
            None
        };
        match or(async { Some(answered.recv().await) }, timeout).await {
            Some(Some(body)) => Ok(body),
            Some(None) => Err(conn.failure()),
            None => Err(TransportError::Timeout),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> TransportStats {
        self.inner.stats.get()
    }

    /// Stops accepting, closes every connection (failing calls in flight with `Closed`) and waits
    /// for their tasks to end. Later sends are dropped and later calls fail with `Closed`.
    pub async fn close(&self) {
        self.inner.closed.set(true);
        drop(self.stop_accept.borrow_mut().take());
        let accept_task = self.accept_task.borrow_mut().take();
        if let Some(task) = accept_task {
            task.await;
        }
        for task in self.inner.stop_connections() {
            task.await;
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.inner.closed.set(true);
        drop(self.stop_accept.borrow_mut().take());
        drop(self.inner.stop_connections());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run_on_shard;

    /// A transport on loopback with what it received.
    struct Node {
        transport: Rc<Transport>,
        raft: Rc<RefCell<Vec<(i32, Bytes)>>>,
    }

    impl Node {
        fn addr(&self) -> SocketAddr {
            self.transport.local_addr().unwrap()
        }

        fn raft_received(&self) -> Vec<(i32, Bytes)> {
            self.raft.borrow().clone()
        }
    }

    /// The test's call handler: `never` gets no answer; otherwise the first byte is a delay in
    /// milliseconds, and the answer is the node's id byte followed by the request.
    fn answer(node_id: i32, body: Bytes) -> Pin<Box<dyn Future<Output = Bytes>>> {
        Box::pin(async move {
            if &body[..] == b"never" {
                std::future::pending::<()>().await;
            }
            let delay_ms = body.first().copied().unwrap_or(0);
            glommio::timer::sleep(Duration::from_millis(u64::from(delay_ms))).await;
            let mut out = vec![node_id as u8];
            out.extend_from_slice(&body);
            Bytes::from(out)
        })
    }

    async fn node(node_id: i32, call_timeout: Duration) -> Node {
        let raft = Rc::new(RefCell::new(Vec::new()));
        let sink = raft.clone();
        let config = TransportConfig {
            node_id,
            listen: Some("127.0.0.1:0".parse().unwrap()),
            call_timeout,
            connect_timeout: Duration::from_secs(1),
        };
        let transport = Transport::start(
            config,
            Rc::new(move |from, bytes| sink.borrow_mut().push((from, bytes))),
            Rc::new(move |_from, body| answer(node_id, body)),
        )
        .await
        .unwrap();
        Node { transport, raft }
    }

    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
    }

    fn numbered(n: u32) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(i.to_be_bytes().to_vec())).collect()
    }

    #[test]
    fn raft_arrives_in_order_both_ways_and_calls_get_their_own_answers() {
        run_on_shard(|| async {
            let (a, b) = (node(1, Duration::from_secs(2)).await, node(2, Duration::from_secs(2)).await);
            a.transport.set_peer(2, b.addr());
            b.transport.set_peer(1, a.addr());
            let messages = numbered(200);
            for m in &messages {
                a.transport.send_raft(2, m.clone());
                b.transport.send_raft(1, m.clone());
            }
            eventually("raft both ways", || a.raft.borrow().len() == 200 && b.raft.borrow().len() == 200).await;
            let from_a: Vec<(i32, Bytes)> = messages.iter().map(|m| (1, m.clone())).collect();
            let from_b: Vec<(i32, Bytes)> = messages.iter().map(|m| (2, m.clone())).collect();
            assert_eq!(b.raft_received(), from_a);
            assert_eq!(a.raft_received(), from_b);

            // Longest first, so the answers come back in the reverse order of the requests.
            let calls: Vec<_> = [40u8, 30, 20, 10, 0]
                .into_iter()
                .map(|delay| {
                    let (transport, addr) = (a.transport.clone(), b.addr());
                    let body = Bytes::from(vec![delay, b'x', delay]);
                    glommio::spawn_local(async move { (body.clone(), transport.call(addr, body).await) }).detach()
                })
                .collect();
            for call in calls {
                let (body, answer) = call.await.unwrap();
                let mut expected = vec![2u8];
                expected.extend_from_slice(&body);
                assert_eq!(answer.unwrap(), Bytes::from(expected));
            }
            assert_eq!(a.transport.stats().raft_dropped, 0);
            assert_eq!(a.transport.stats().protocol_errors + b.transport.stats().protocol_errors, 0);
            a.transport.close().await;
            b.transport.close().await;
        });
    }

    #[test]
    fn a_call_to_a_node_that_is_down_fails_fast_and_raft_backs_off() {
        run_on_shard(|| async {
            let a = node(1, Duration::from_secs(5)).await;
            let down = {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                listener.local_addr().unwrap()
            };
            let started = Instant::now();
            let result = a.transport.call(down, Bytes::from_static(b"\0hi")).await;
            assert!(matches!(result, Err(TransportError::Connect(_))), "{result:?}");
            assert!(started.elapsed() < Duration::from_secs(1));

            a.transport.set_peer(9, down);
            // The failed call put the address in backoff: Raft sends are dropped without a connect.
            a.transport.send_raft(9, Bytes::from_static(b"one"));
            assert_eq!(a.transport.stats().raft_dropped, 1);
            // After it, a send connects again; that fails, drops what was queued, and backs off longer.
            glommio::timer::sleep(RECONNECT_BACKOFF_MIN + Duration::from_millis(10)).await;
            a.transport.send_raft(9, Bytes::from_static(b"two"));
            eventually("the second connect to fail", || a.transport.stats().connect_failures == 2).await;
            a.transport.send_raft(9, Bytes::from_static(b"three"));
            let stats = a.transport.stats();
            assert_eq!((stats.raft_queued, stats.raft_dropped), (1, 3));
            // Unknown peer: dropped too.
            a.transport.send_raft(10, Bytes::from_static(b"four"));
            assert_eq!(a.transport.stats().raft_dropped, 4);
            a.transport.close().await;
        });
    }

    #[test]
    fn a_call_without_answer_times_out_and_a_dead_connection_fails_its_calls_at_once() {
        run_on_shard(|| async {
            let a = node(1, Duration::from_millis(200)).await;
            let b = node(2, Duration::from_secs(5)).await;
            let started = Instant::now();
            let result = a.transport.call(b.addr(), Bytes::from_static(b"never")).await;
            assert!(matches!(result, Err(TransportError::Timeout)), "{result:?}");
            assert!(started.elapsed() >= Duration::from_millis(200));
            // The connection is still good for other calls.
            let answer = a.transport.call(b.addr(), Bytes::from_static(b"\0ok")).await.unwrap();
            assert_eq!(&answer[..], b"\x02\0ok");

            // b calls a, a's handler never answers, and a goes away: b's call fails at once.
            let (transport, addr) = (b.transport.clone(), a.addr());
            let call =
                glommio::spawn_local(async move { transport.call(addr, Bytes::from_static(b"never")).await }).detach();
            eventually("a to get the request", || !a.transport.inner.inbound.borrow().is_empty()).await;
            glommio::timer::sleep(Duration::from_millis(20)).await;
            let closed_at = Instant::now();
            a.transport.close().await;
            let result = call.await.unwrap();
            assert!(matches!(result, Err(TransportError::Closed)), "{result:?}");
            assert!(closed_at.elapsed() < Duration::from_secs(1));
            // And a closed transport refuses at once.
            let result = a.transport.call(b.addr(), Bytes::from_static(b"\0")).await;
            assert!(matches!(result, Err(TransportError::Closed)), "{result:?}");
            b.transport.close().await;
        });
    }

    #[test]
    fn raft_sends_resume_when_the_peer_restarts_on_a_new_port() {
        run_on_shard(|| async {
            let a = node(1, Duration::from_secs(2)).await;
            let b = node(2, Duration::from_secs(2)).await;
            a.transport.set_peer(2, b.addr());
            a.transport.send_raft(2, Bytes::from_static(b"before"));
            eventually("the first message", || b.raft.borrow().len() == 1).await;
            b.transport.close().await;
            drop(b);

            let b = node(2, Duration::from_secs(2)).await;
            a.transport.set_peer(2, b.addr());
            // Raft retries: keep sending until one arrives (the old connection may eat the first).
            eventually("a message at the new address", || {
                a.transport.send_raft(2, Bytes::from_static(b"after"));
                !b.raft.borrow().is_empty()
            })
            .await;
            assert_eq!(b.raft_received()[0], (1, Bytes::from_static(b"after")));
            a.transport.close().await;
            b.transport.close().await;
        });
    }

    /// Connects to `addr`, writes `bytes`, and tells whether the other side then closed.
    async fn closed_after(addr: SocketAddr, bytes: &[u8]) -> bool {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut buf = [0u8; 64];
        let read = or(async { Some(stream.read(&mut buf).await) }, async {
            glommio::timer::sleep(Duration::from_secs(3)).await;
            None
        })
        .await;
        matches!(read, Some(Ok(0)) | Some(Err(_)))
    }

    fn frame(kind: u8, correlation_id: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = encode_hello(7).to_vec();
        out.extend_from_slice(&((FRAME_HEAD_BYTES + payload.len()) as u32).to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&correlation_id.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn garbage_closes_only_its_connection() {
        run_on_shard(|| async {
            let a = node(1, Duration::from_secs(2)).await;
            let b = node(2, Duration::from_secs(2)).await;
            // A good frame, written by hand, is understood (the wire is as documented).
            let mut by_hand = TcpStream::connect(b.addr()).await.unwrap();
            by_hand.write_all(&frame(1, 0, b"by hand")).await.unwrap();
            eventually("the hand-written raft message", || b.raft.borrow().len() == 1).await;
            assert_eq!(b.raft_received()[0], (7, Bytes::from_static(b"by hand")));

            assert!(closed_after(b.addr(), b"GET / HTTP/1.1\r\n\r\n").await, "wrong magic");
            let mut wrong_version = encode_hello(7);
            wrong_version[4] = 0xff;
            assert!(closed_after(b.addr(), &wrong_version).await, "wrong version");
            let mut oversized = encode_hello(7).to_vec();
            oversized.extend_from_slice(&u32::MAX.to_be_bytes());
            assert!(closed_after(b.addr(), &oversized).await, "oversized length");
            let mut undersized = encode_hello(7).to_vec();
            undersized.extend_from_slice(&3u32.to_be_bytes());
            assert!(closed_after(b.addr(), &undersized).await, "length below the head");
            assert!(closed_after(b.addr(), &frame(99, 0, b"?")).await, "unknown kind");
            assert!(closed_after(b.addr(), &frame(3, 5, b"!")).await, "response to the acceptor");
            assert_eq!(b.transport.stats().protocol_errors, 6);

            // The listener still serves others.
            let answer = a.transport.call(b.addr(), Bytes::from_static(b"\0still")).await.unwrap();
            assert_eq!(&answer[..], b"\x02\0still");
            a.transport.close().await;
            b.transport.close().await;
        });
    }

    #[test]
    fn a_full_queue_drops_raft_sends_without_blocking() {
        run_on_shard(|| async {
            let a = node(1, Duration::from_secs(2)).await;
            let b = node(2, Duration::from_secs(2)).await;
            a.transport.set_peer(2, b.addr());
            // No await in between: the connection's task has not even connected, so the queue fills.
            let messages = numbered(RAFT_QUEUE_FRAMES_MAX as u32 + 10);
            for m in &messages {
                a.transport.send_raft(2, m.clone());
            }
            a.transport.send_raft(2, Bytes::from(vec![0u8; PAYLOAD_BYTES_MAX + 1]));
            let stats = a.transport.stats();
            assert_eq!((stats.raft_queued, stats.raft_dropped), (RAFT_QUEUE_FRAMES_MAX as u64, 11));
            eventually("the queued messages", || b.raft.borrow().len() == RAFT_QUEUE_FRAMES_MAX).await;
            let expected: Vec<(i32, Bytes)> =
                messages.iter().take(RAFT_QUEUE_FRAMES_MAX).map(|m| (1, m.clone())).collect();
            assert_eq!(b.raft_received(), expected);
            // Drained: room again.
            a.transport.send_raft(2, Bytes::from_static(b"more"));
            assert_eq!(a.transport.stats().raft_dropped, 11);
            a.transport.close().await;
            b.transport.close().await;
        });
    }

    #[test]
    fn close_stops_the_listener() {
        run_on_shard(|| async {
            let b = node(2, Duration::from_secs(2)).await;
            let addr = b.addr();
            b.transport.close().await;
            assert!(TcpStream::connect(addr).await.is_err());
            b.transport.send_raft(1, Bytes::from_static(b"x"));
            assert_eq!(b.transport.stats().raft_dropped, 1);
        });
    }

    #[test]
    fn frames_decode_whole_split_or_not_at_all() {
        let mut wire = BytesMut::new();
        encode_frame(&mut wire, FrameKind::Request, 42, b"hello");
        encode_frame(&mut wire, FrameKind::Raft, 0, b"");
        let whole = wire.clone();
        // Byte by byte: nothing until a frame is whole.
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for byte in whole.iter() {
            buf.put_u8(*byte);
            while let Some(frame) = decode_frame(&mut buf).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames,
            vec![
                Frame { kind: FrameKind::Request, correlation_id: 42, payload: Bytes::from_static(b"hello") },
                Frame { kind: FrameKind::Raft, correlation_id: 0, payload: Bytes::new() },
            ]
        );
        assert!(buf.is_empty());

        // A bad length fails as soon as the prefix is in, without waiting for the frame.
        let mut buf = BytesMut::from(&(FRAME_BYTES_MAX + 1).to_be_bytes()[..]);
        assert_eq!(decode_frame(&mut buf), Err(FrameError::BadLength(FRAME_BYTES_MAX + 1)));
        let mut buf = BytesMut::from(&8u32.to_be_bytes()[..]);
        assert_eq!(decode_frame(&mut buf), Err(FrameError::BadLength(8)));
        let mut buf = BytesMut::from(&frame(0, 0, b"")[HELLO_BYTES..]);
        assert_eq!(decode_frame(&mut buf), Err(FrameError::UnknownKind(0)));
        // The largest length is accepted (and waited for).
        let mut buf = BytesMut::from(&FRAME_BYTES_MAX.to_be_bytes()[..]);
        assert_eq!(decode_frame(&mut buf), Ok(None));
    }

    #[test]
    fn hellos_name_the_sender_or_why_they_are_refused() {
        assert_eq!(decode_hello(&encode_hello(-3)), Ok(-3));
        let mut hello = encode_hello(1);
        hello[0] = b'X';
        assert_eq!(decode_hello(&hello), Err(FrameError::WrongMagic(*b"XLCN")));
        let mut hello = encode_hello(1);
        hello[5] = 2;
        assert_eq!(decode_hello(&hello), Err(FrameError::WrongVersion(2)));
    }

    #[test]
    fn warn_lines_are_rate_limited() {
        let limiter = WarnLimiter::new();
        let start = Instant::now();
        for _ in 0..WARN_LINES_PER_WINDOW {
            assert_eq!(limiter.allow(start), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(limiter.allow(start + WARN_WINDOW / 2), None);
        }
        assert_eq!(limiter.allow(start + WARN_WINDOW), Some(5));
        assert_eq!(limiter.allow(start + WARN_WINDOW), Some(0));
    }
}
