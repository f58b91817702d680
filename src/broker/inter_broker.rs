//! Kafka-protocol requests from this broker to other brokers of the cluster: the transaction
//! coordinator's WriteTxnMarkers to partition leaders, and a partition leader's KIP-890
//! verification (AddPartitionsToTxn v4+, `verify_only`) to a transaction coordinator.
//!
//! Lifecycle: [`InterBroker`] is one pool per shard, empty at start. The first request to a
//! broker's address (its Kafka listener, `host:port` from the metadata image) connects; later
//! ones reuse the connection. A connection that failed (refused, reset, a frame it cannot
//! read) fails every request waiting on it and is replaced by a new one at the next request:
//! the callers retry, so the pool never resends anything itself.
//!
//! Concurrency: shard-local (`Rc`, `RefCell`s never borrowed across an `.await`). Up to
//! [`IN_FLIGHT_MAX`] requests share a connection at once; each waits at most
//! [`REQUEST_TIMEOUT`] for its answer. A writer task owns the socket's sending side, so a request
//! given up on (timed out, or its future dropped) never leaves half a frame behind, and a reader
//! task hands each response to the request with its correlation id; the answer of a request
//! given up on is read and dropped. Dropping the pool closes its sockets.
//!
//! No ApiVersions handshake: Sluice brokers talk only to Sluice brokers of the same build, so the
//! caller picks the version it knows the other side serves (this crate's own `SUPPORTED`
//! table). This module speaks through `crate::protocol` only; it is not the client library
//! (`crate::client`), which a broker may not name.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use futures_lite::AsyncWriteExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use glommio::timer::Timer;
use tracing::debug;

use crate::protocol::{
    ApiKey, FrameLimits, Request, RequestHeader, decode_response_frame, encode_request_frame, request_buffers,
    split_frame,
};

/// How long to wait for a TCP connection to another broker. Brokers of a cluster are near each
/// other; a broker that does not accept within this is as good as down, and the caller retries.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for its answer. A WriteTxnMarkers is answered once every marker is
/// committed, so this covers a flush and the followers' acknowledgements, with room to spare.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Requests in flight at once on one connection; more wait for a slot (within their timeout).
pub const IN_FLIGHT_MAX: usize = 32;

/// The largest response frame accepted. Inter-broker answers are lists of error codes per
/// partition; a larger length prefix means a broken peer, and fails the connection.
pub const RESPONSE_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// Bytes read from the socket at a time when no larger frame is pending.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The client id in the headers this broker sends, for the other broker's logs.
const CLIENT_ID_PREFIX: &str = "sluice-broker-";

/// Why a request to another broker got no answer. Every variant is worth a retry by the caller
/// (after a fresh look at the metadata image), except [`InterBrokerError::Encode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterBrokerError {
    /// No TCP connection to the broker.
    #[error("cannot connect to broker {addr}: {reason}")]
    Connect {
        /// The broker's `host:port`.
        addr: String,
        /// What the connect said.
        reason: String,
    },
    /// The connection failed (or was closed) before the answer came.
    #[error("connection to broker {addr} failed: {reason}")]
    Network {
        /// The broker's `host:port`.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// No answer within [`REQUEST_TIMEOUT`].
    #[error("broker {addr} did not answer {api:?} within {after:?}")]
    Timeout {
        /// The broker's `host:port`.
        addr: String,
        /// The API of the request.
        api: ApiKey,
        /// How long it waited.
        after: Duration,
    },
    /// The broker sent something that is not a valid answer (the connection is dropped).
    #[error("broker {addr} sent an unreadable answer: {reason}")]
    Protocol {
        /// The broker's `host:port`.
        addr: String,
        /// What was wrong.
        reason: String,
    },
    /// The request cannot be encoded at the version asked for (a bug of the caller).
    #[error("cannot encode {api:?} v{version}: {reason}")]
    Encode {
        /// The API of the request.
        api: ApiKey,
        /// The version asked for.
        version: i16,
        /// What the encoder said.
        reason: String,
    },
}

/// This shard's connections to other brokers, by address. See the module docs.
pub struct InterBroker {
    client_id: String,
    connections: RefCell<HashMap<String, Rc<Link>>>,
    /// One gate per address (one per broker of the cluster), held while connecting to it.
    connecting: RefCell<HashMap<String, Rc<Semaphore>>>,
    timeouts: Timeouts,
    /// The largest answer accepted ([`RESPONSE_BYTES_MAX`] unless made with
    /// [`InterBroker::with_response_limit`]).
    response_max: u32,
}

/// How long connecting and answering may take (the constants, shorter in tests).
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    connect: Duration,
    request: Duration,
}

const TIMEOUTS: Timeouts = Timeouts { connect: CONNECT_TIMEOUT, request: REQUEST_TIMEOUT };

impl InterBroker {
    /// An empty pool for a shard of broker `node_id` (named in the requests' client id).
    pub fn new(node_id: i32) -> InterBroker {
        InterBroker::with_timeouts(node_id, TIMEOUTS)
    }

    /// A pool whose answers may be up to `response_max` bytes (followers' fetches: a batch is
    /// returned whole, and may be as large as a topic's `max.message.bytes` allows).
    pub fn with_response_limit(node_id: i32, response_max: u32) -> InterBroker {
        InterBroker { response_max, ..InterBroker::new(node_id) }
    }

    fn with_timeouts(node_id: i32, timeouts: Timeouts) -> InterBroker {
        InterBroker {
            client_id: format!("{CLIENT_ID_PREFIX}{node_id}"),
            connections: RefCell::default(),
            connecting: RefCell::default(),
            timeouts,
            response_max: RESPONSE_BYTES_MAX,
        }
    }

    /// Sends `request` at `api_version` to the broker at `addr` (`host:port`) and waits for its
    /// answer. Connects first if there is no working connection to `addr`.
    pub async fn send<R: Request>(
        &self,
        addr: &str,
        api_version: i16,
        request: &R,
    ) -> Result<R::Response, InterBrokerError> {
        let encode_error = |reason: String| InterBrokerError::Encode { api: R::API_KEY, version: api_version, reason };
        let link = self.link(addr).await?;
        let correlation_id = link.next_correlation_id();
        let header =
            RequestHeader { api_key: R::API_KEY, api_version, correlation_id, client_id: Some(self.client_id.clone()) };
        let frame = encode_request_frame(&header, request)
            .and_then(request_buffers)
            .map_err(|e| encode_error(e.to_string()))?;
        let mut answer = link.round_trip(R::API_KEY, correlation_id, frame, self.timeouts.request).await?;
        let (_header, response) = decode_response_frame::<R::Response>(&mut answer, api_version).map_err(|e| {
            // The frame was whole, so the stream is still aligned; only this answer is lost.
            InterBrokerError::Protocol { addr: addr.to_string(), reason: e.to_string() }
        })?;
        Ok(response)
    }

    /// The working connection to `addr`, made now if there is none (or the last one failed).
    async fn link(&self, addr: &str) -> Result<Rc<Link>, InterBrokerError> {
        if let Some(link) = self.working(addr) {
            return Ok(link);
        }
        // One connect per address at a time: requests that arrive meanwhile wait for it and
        // share the connection instead of each opening their own.
        let gate =
            self.connecting.borrow_mut().entry(addr.to_string()).or_insert_with(|| Rc::new(Semaphore::new(1))).clone();
        let _permit = gate.acquire_permit(1).await.map_err(|_| InterBrokerError::Connect {
            addr: addr.to_string(),
            reason: "connection gate closed".into(),
        })?;
        if let Some(link) = self.working(addr) {
            return Ok(link);
        }
        if self.connections.borrow().contains_key(addr) {
            debug!(addr, "reconnecting to a broker after a failed connection");
        }
        let link = Rc::new(Link::connect(addr, self.timeouts.connect, self.response_max).await?);
        self.connections.borrow_mut().insert(addr.to_string(), link.clone());
        Ok(link)
    }

    fn working(&self, addr: &str) -> Option<Rc<Link>> {
        self.connections.borrow().get(addr).filter(|link| link.shared.failure().is_none()).cloned()
    }
}

/// Where a response frame (or the failure) goes.
type ReplySender = oneshot::Sender<Result<BytesMut, InterBrokerError>>;

/// One connection: the handle's side. The writer and reader tasks hold the socket.
struct Link {
    addr: String,
    jobs: LocalSender<Job>,
    next_correlation_id: Cell<i32>,
    in_flight: Semaphore,
    shared: Rc<Shared>,
}

/// What the handle, the writer and the reader share.
struct Shared {
    /// Requests written or being written whose answers have not come, by correlation id.
    pending: RefCell<HashMap<i32, ReplySender>>,
    /// Set once the socket failed; every later request fails with it.
    failed: RefCell<Option<InterBrokerError>>,
}

impl Shared {
    fn fail(&self, error: InterBrokerError) {
        if self.failed.borrow().is_none() {
            *self.failed.borrow_mut() = Some(error.clone());
        }
        let waiting: Vec<ReplySender> = self.pending.borrow_mut().drain().map(|(_, reply)| reply).collect();
        for reply in waiting {
            let _ = reply.send(Err(error.clone()));
        }
    }

    fn failure(&self) -> Option<InterBrokerError> {
        self.failed.borrow().clone()
    }
}

/// A frame for the writer task.
struct Job {
    frame: Vec<Bytes>,
}

/// Removes a request's entry from the pending map when it ends, however it ends (answered,
/// timed out, dropped), so the map holds only requests someone still waits for.
struct PendingEntry<'a> {
    shared: &'a Shared,
    correlation_id: i32,
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        self.shared.pending.borrow_mut().remove(&self.correlation_id);
    }
}

impl Link {
    async fn connect(addr: &str, timeout: Duration, response_max: u32) -> Result<Link, InterBrokerError> {
        let connect_error = |reason: String| InterBrokerError::Connect { addr: addr.to_string(), reason };
        let stream = TcpStream::connect_timeout(addr, timeout).await.map_err(|e| connect_error(e.to_string()))?;
        if let Err(e) = stream.set_nodelay(true) {
            return Err(connect_error(format!("cannot set TCP_NODELAY: {e}")));
        }
        // The writer and the reader each own a descriptor of the socket, so a read waiting for
        // an answer never blocks a write (the client's connections split their sockets alike).
        // SAFETY: dup returns a new descriptor for the same socket, or -1, checked below.
        let dup = unsafe { libc::dup(stream.as_raw_fd()) };
        if dup < 0 {
            return Err(connect_error(format!("cannot duplicate socket: {}", std::io::Error::last_os_error())));
        }
        // SAFETY: `dup` is a fresh descriptor nobody else owns; the stream closes it.
        let write_stream = unsafe { TcpStream::from_raw_fd(dup) };
        let shared = Rc::new(Shared { pending: RefCell::default(), failed: RefCell::new(None) });
        // Bounded like the requests: a job is queued only by a request holding a slot.
        let (jobs, job_rx) = local_channel::new_bounded(IN_FLIGHT_MAX);
        glommio::spawn_local(write_loop(addr.to_string(), write_stream, job_rx, shared.clone())).detach();
        glommio::spawn_local(read_loop(addr.to_string(), stream, shared.clone(), response_max)).detach();
        let in_flight = Semaphore::new(IN_FLIGHT_MAX as u64);
        Ok(Link { addr: addr.to_string(), jobs, next_correlation_id: Cell::new(0), in_flight, shared })
    }

    fn next_correlation_id(&self) -> i32 {
        let id = self.next_correlation_id.get();
        // Wraps after 2^31 requests; by then the answer with the same id is long gone.
        self.next_correlation_id.set(id.wrapping_add(1) & i32::MAX);
        id
    }

    async fn round_trip(
        &self,
        api: ApiKey,
        correlation_id: i32,
        frame: Vec<Bytes>,
        timeout: Duration,
    ) -> Result<BytesMut, InterBrokerError> {
        let timed_out = || InterBrokerError::Timeout { addr: self.addr.clone(), api, after: timeout };
        let closed = || {
            self.shared.failure().unwrap_or_else(|| InterBrokerError::Network {
                addr: self.addr.clone(),
                reason: "connection closed".into(),
            })
        };
        let work = async {
            // The semaphore is never closed, so acquiring cannot fail; if it did, it is a timeout.
            let _permit = self.in_flight.acquire_permit(1).await.map_err(|_| timed_out())?;
            if let Some(error) = self.shared.failure() {
                return Err(error);
            }
            let (reply, answer) = oneshot::channel();
            self.shared.pending.borrow_mut().insert(correlation_id, reply);
            let _entry = PendingEntry { shared: &self.shared, correlation_id };
            if self.jobs.send(Job { frame }).await.is_err() {
                return Err(closed());
            }
            match answer.await {
                Ok(result) => result,
                Err(_) => Err(closed()),
            }
        };
        let deadline = async {
            Timer::new(timeout).await;
            Err(timed_out())
        };
        futures_lite::future::or(work, deadline).await
    }
}

async fn write_loop(addr: String, mut stream: TcpStream, jobs: LocalReceiver<Job>, shared: Rc<Shared>) {
    while let Some(job) = jobs.recv().await {
        if shared.failure().is_some() {
            continue;
        }
        for buffer in &job.frame {
            if let Err(e) = stream.write_all(buffer).await {
                shared.fail(InterBrokerError::Network { addr: addr.clone(), reason: format!("write failed: {e}") });
                break;
            }
        }
    }
    // The pool dropped the connection: close the socket, which also ends the reader.
    let _ = stream.shutdown(std::net::Shutdown::Both).await;
}

async fn read_loop(addr: String, stream: TcpStream, shared: Rc<Shared>, response_max: u32) {
    let protocol = |reason: String| InterBrokerError::Protocol { addr: addr.clone(), reason };
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        let frame = match split_frame(&mut buf, FrameLimits::responses(response_max)) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let read = crate::socket::read_more(&stream, &mut buf, READ_CHUNK_BYTES).await;
                let failed = match read {
                    Ok(0) => "closed by the broker".to_string(),
                    Ok(_) => continue,
                    Err(e) => format!("read failed: {e}"),
                };
                shared.fail(InterBrokerError::Network { addr: addr.clone(), reason: failed });
                return;
            }
            Err(e) => {
                shared.fail(protocol(e.to_string()));
                return;
            }
        };
        // `split_frame` refuses response frames shorter than a correlation id.
        let Some(&[a, b, c, d]) = frame.get(..4) else {
            shared.fail(protocol("response frame too short".into()));
            return;
        };
        let correlation_id = i32::from_be_bytes([a, b, c, d]);
        // No entry: the request was given up on (timed out); its answer is dropped.
        let reply = shared.pending.borrow_mut().remove(&correlation_id);
        if let Some(reply) = reply {
            let _ = reply.send(Ok(frame));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use bytes::{BufMut, BytesMut};
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use glommio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::protocol::messages::{
        WriteTxnMarkersRequest, WriteTxnMarkersRequestMarker, WriteTxnMarkersResponse, WriteTxnMarkersResponseMarker,
    };
    use crate::protocol::{FrameLimits, RequestHeader, ResponseHeader, encode_response_frame, split_frame};
    use crate::testing::run_on_shard;

    const VERSION: i16 = 1;

    fn markers(producer_id: i64) -> WriteTxnMarkersRequest {
        WriteTxnMarkersRequest { markers: vec![WriteTxnMarkersRequestMarker { producer_id, ..Default::default() }] }
    }

    /// What the fake broker does with each request it reads.
    #[derive(Clone, Copy)]
    enum Behaviour {
        /// Answers with the request's producer id, after all requests of a pair came (in reverse).
        AnswerPairsReversed,
        /// Reads and never answers.
        Silent,
        /// Answers with a length prefix over the limit.
        Oversized,
        /// Closes the connection after reading one request.
        CloseAfterOne,
    }

    async fn read_request(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<(RequestHeader, i64)> {
        loop {
            if let Ok(Some(mut frame)) = split_frame(buf, FrameLimits::requests(u32::MAX >> 1)) {
                let header = RequestHeader::decode(&mut frame).ok()?;
                let request =
                    <WriteTxnMarkersRequest as crate::protocol::Message>::decode(&mut frame, header.api_version)
                        .ok()?;
                return Some((header, request.markers[0].producer_id));
            }
            let mut chunk = vec![0u8; 4096];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.put_slice(&chunk[..n]);
        }
    }

    async fn answer(stream: &mut TcpStream, header: &RequestHeader, producer_id: i64) {
        let body =
            WriteTxnMarkersResponse { markers: vec![WriteTxnMarkersResponseMarker { producer_id, topics: vec![] }] };
        let pieces =
            encode_response_frame(ResponseHeader { correlation_id: header.correlation_id }, VERSION, &body).unwrap();
        for piece in request_buffers(pieces).unwrap() {
            stream.write_all(&piece).await.unwrap();
        }
    }

    /// A fake broker on a free port; returns its address and how many connections it accepted.
    fn fake_broker(behaviour: Behaviour) -> (String, Rc<Cell<u32>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Rc::new(Cell::new(0));
        let counter = accepted.clone();
        glommio::spawn_local(async move {
            while let Ok(mut stream) = listener.accept().await {
                counter.set(counter.get() + 1);
                glommio::spawn_local(async move {
                    let mut buf = BytesMut::new();
                    let mut held = Vec::new();
                    while let Some((header, producer_id)) = read_request(&mut stream, &mut buf).await {
                        match behaviour {
                            Behaviour::AnswerPairsReversed => {
                                held.push((header, producer_id));
                                if held.len() == 2 {
                                    while let Some((header, producer_id)) = held.pop() {
                                        answer(&mut stream, &header, producer_id).await;
                                    }
                                }
                            }
                            Behaviour::Silent => {}
                            Behaviour::Oversized => {
                                let len = RESPONSE_BYTES_MAX + 1;
                                stream.write_all(&len.to_be_bytes()).await.unwrap();
                            }
                            Behaviour::CloseAfterOne => return,
                        }
                    }
                })
                .detach();
            }
        })
        .detach();
        (addr, accepted)
    }

    fn fast() -> InterBroker {
        InterBroker::with_timeouts(1, Timeouts { connect: Duration::from_secs(2), request: Duration::from_millis(300) })
    }

    #[test]
    fn answers_find_their_requests_by_correlation_id_in_any_order() {
        run_on_shard(|| async {
            let (addr, accepted) = fake_broker(Behaviour::AnswerPairsReversed);
            let pool = fast();
            let (a, b) = futures_lite::future::zip(
                pool.send(&addr, VERSION, &markers(7)),
                pool.send(&addr, VERSION, &markers(8)),
            )
            .await;
            assert_eq!(a.unwrap().markers[0].producer_id, 7);
            assert_eq!(b.unwrap().markers[0].producer_id, 8);
            assert_eq!(accepted.get(), 1, "both requests shared one connection");
        });
    }

    #[test]
    fn a_request_without_answer_times_out_and_the_connection_stays() {
        run_on_shard(|| async {
            let (addr, accepted) = fake_broker(Behaviour::Silent);
            let pool = fast();
            let error = pool.send(&addr, VERSION, &markers(1)).await.unwrap_err();
            assert!(matches!(error, InterBrokerError::Timeout { api: ApiKey::WriteTxnMarkers, .. }), "{error}");
            let error = pool.send(&addr, VERSION, &markers(2)).await.unwrap_err();
            assert!(matches!(error, InterBrokerError::Timeout { .. }), "{error}");
            assert_eq!(accepted.get(), 1);
            let link = pool.connections.borrow().get(&addr).cloned().unwrap();
            assert!(link.shared.pending.borrow().is_empty(), "timed-out requests leave no entry behind");
        });
    }

    #[test]
    fn an_oversized_answer_fails_the_connection_before_anything_is_allocated() {
        run_on_shard(|| async {
            let (addr, _) = fake_broker(Behaviour::Oversized);
            let error = fast().send(&addr, VERSION, &markers(1)).await.unwrap_err();
            assert!(
                matches!(&error, InterBrokerError::Protocol { reason, .. } if reason.contains("exceeds")),
                "{error}"
            );
        });
    }

    #[test]
    fn a_closed_connection_fails_its_requests_and_the_next_request_reconnects() {
        run_on_shard(|| async {
            let (addr, accepted) = fake_broker(Behaviour::CloseAfterOne);
            let pool = fast();
            let error = pool.send(&addr, VERSION, &markers(1)).await.unwrap_err();
            assert!(matches!(error, InterBrokerError::Network { .. }), "{error}");
            let _ = pool.send(&addr, VERSION, &markers(2)).await;
            assert_eq!(accepted.get(), 2, "a failed connection is replaced");
        });
    }

    #[test]
    fn an_unreachable_broker_is_a_connect_error() {
        run_on_shard(|| async {
            // Bind and drop a listener, so the port is very likely closed.
            let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
            let error = fast().send(&addr, VERSION, &markers(1)).await.unwrap_err();
            assert!(matches!(error, InterBrokerError::Connect { .. }), "{error}");
        });
    }

    #[test]
    fn a_request_the_version_cannot_carry_is_refused_before_sending() {
        run_on_shard(|| async {
            let (addr, _) = fake_broker(Behaviour::Silent);
            let error = fast().send(&addr, 99, &markers(1)).await.unwrap_err();
            assert!(matches!(error, InterBrokerError::Encode { version: 99, .. }), "{error}");
        });
    }

    #[test]
    fn correlation_ids_stay_non_negative_when_they_wrap() {
        run_on_shard(|| async {
            let shared = Rc::new(Shared { pending: RefCell::default(), failed: RefCell::new(None) });
            let (jobs, _rx) = local_channel::new_bounded(1);
            let link = Link {
                addr: String::new(),
                jobs,
                next_correlation_id: Cell::new(i32::MAX),
                in_flight: Semaphore::new(1),
                shared,
            };
            assert_eq!(link.next_correlation_id(), i32::MAX);
            assert_eq!(link.next_correlation_id(), 0);
        });
    }
}
