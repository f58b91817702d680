//! One TCP connection to one broker, on the executor that made it.
//!
//! Lifecycle: [`Connection::connect`] opens the socket and runs the ApiVersions handshake, which
//! picks for every API the highest version both sides implement. Requests then go out through a
//! writer task and come back through a reader task; both own a descriptor of the same socket
//! (the broker's `server::connection` splits its sockets the same way). Kafka answers requests
//! on a connection in the order they were sent, so the reader matches each response to the
//! oldest request waiting and checks that their correlation ids agree.
//!
//! Concurrency: many requests may be in flight at once (pipelining), up to
//! [`ConnectionConfig::max_in_flight`]; each waits at most [`ConnectionConfig::request_timeout`]
//! for its response. A request future dropped early is harmless: the writer task finishes writing
//! its frame, and the reader discards the answer. When the socket fails, every waiting request
//! fails with the same [`ClientError::Network`], and so does every later one: make a new
//! connection. Dropping the last handle closes the socket.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
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

use super::error::ClientError;
use crate::protocol::messages::{ApiVersionsRequest, ApiVersionsResponseKey};
use crate::protocol::{
    ApiKey, ApiSupport, FrameLimits, Request, RequestHeader, SUPPORTED, decode_response_frame, encode_request_frame,
    request_buffers, split_frame,
};

/// Bytes read from the socket at a time when no larger frame is pending.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How a connection behaves. Build with `..Default::default()`.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Sent in every request header, for the broker's logs.
    pub client_id: String,
    /// How long to wait for the TCP connection.
    pub connect_timeout: Duration,
    /// How long each request waits for its response.
    pub request_timeout: Duration,
    /// Requests in flight at once on this connection (Kafka's
    /// `max.in.flight.requests.per.connection`).
    pub max_in_flight: usize,
    /// The largest response frame accepted; a larger length prefix fails the connection.
    pub max_response_bytes: u32,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "sluice-client".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 5,
            max_response_bytes: 100 * 1024 * 1024,
        }
    }
}

/// A handle to one broker connection; clones share it. See the module docs for its lifecycle.
#[derive(Clone)]
pub struct Connection {
    inner: Rc<Inner>,
}

struct Inner {
    addr: String,
    config: ConnectionConfig,
    jobs: LocalSender<Job>,
    next_correlation_id: Cell<i32>,
    versions: RefCell<HashMap<ApiKey, i16>>,
    in_flight: Semaphore,
    state: Rc<Shared>,
}

/// Where a response frame (or the failure) goes.
type ReplySender = oneshot::Sender<Result<BytesMut, ClientError>>;

/// What the writer and reader tasks share with the handle.
struct Shared {
    /// Requests written whose responses have not come yet, oldest first.
    pending: RefCell<VecDeque<(i32, ReplySender)>>,
    /// Set once the socket failed; every later request fails with it.
    failed: RefCell<Option<ClientError>>,
}

impl Shared {
    fn fail(&self, error: ClientError) {
        if self.failed.borrow().is_none() {
            *self.failed.borrow_mut() = Some(error.clone());
        }
        let waiting: Vec<_> = self.pending.borrow_mut().drain(..).collect();
        for (_, reply) in waiting {
            let _ = reply.send(Err(error.clone()));
        }
    }

    fn failure(&self) -> Option<ClientError> {
        self.failed.borrow().clone()
    }
}

/// A frame for the writer task.
struct Job {
    correlation_id: i32,
    frame: Vec<Bytes>,
    /// Produce with acks=0 gets no response: the reply is sent once the frame is written.
    expects_response: bool,
    reply: ReplySender,
}

impl Connection {
    /// Connects to `addr` (host:port) and runs the ApiVersions handshake.
    pub async fn connect(addr: &str, config: ConnectionConfig) -> Result<Connection, ClientError> {
        let connect_error = |reason: String| ClientError::Connect { addr: addr.to_string(), reason };
        let stream =
            TcpStream::connect_timeout(addr, config.connect_timeout).await.map_err(|e| connect_error(e.to_string()))?;
        if let Err(e) = stream.set_nodelay(true) {
            return Err(connect_error(format!("cannot set TCP_NODELAY: {e}")));
        }
        // SAFETY: dup gives a new descriptor for the same socket, owned by the writer's stream.
        let dup = unsafe { libc::dup(stream.as_raw_fd()) };
        if dup < 0 {
            return Err(connect_error(format!("cannot duplicate socket: {}", std::io::Error::last_os_error())));
        }
        // SAFETY: `dup` is a fresh descriptor nobody else owns.
        let write_stream = unsafe { TcpStream::from_raw_fd(dup) };
        let state = Rc::new(Shared { pending: RefCell::new(VecDeque::new()), failed: RefCell::new(None) });
        let (jobs, job_rx) = local_channel::new_unbounded();
        glommio::spawn_local(write_loop(addr.to_string(), write_stream, job_rx, state.clone())).detach();
        glommio::spawn_local(read_loop(addr.to_string(), stream, config.max_response_bytes, state.clone())).detach();
        let in_flight = Semaphore::new(config.max_in_flight.max(1) as u64);
        let inner = Inner {
            addr: addr.to_string(),
            config,
            jobs,
            next_correlation_id: Cell::new(1),
            versions: RefCell::new(HashMap::new()),
            in_flight,
            state,
        };
        let connection = Connection { inner: Rc::new(inner) };
        connection.handshake().await?;
        Ok(connection)
    }

    /// The broker's address, as given to [`Connection::connect`].
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// How long each request on this connection may wait for its answer.
    pub fn request_timeout(&self) -> Duration {
        self.inner.config.request_timeout
    }

    /// Whether the socket has failed (every request on it will fail).
    pub fn is_failed(&self) -> bool {
        self.inner.state.failed.borrow().is_some()
    }

    /// The version of `api` this connection uses: the highest both sides implement.
    pub fn version(&self, api: ApiKey) -> Result<i16, ClientError> {
        self.inner
            .versions
            .borrow()
            .get(&api)
            .copied()
            .ok_or_else(|| ClientError::UnsupportedApi { api, addr: self.inner.addr.clone() })
    }

    /// Sends `body` at the negotiated version and waits for its response.
    pub async fn send<R: Request>(&self, body: &R) -> Result<R::Response, ClientError> {
        let version = self.version(R::API_KEY)?;
        self.send_at(body, version).await
    }

    /// Sends `body` at `version` and waits for its response.
    pub async fn send_at<R: Request>(&self, body: &R, version: i16) -> Result<R::Response, ClientError> {
        let mut frame = self.round_trip(body, version, true).await?;
        let (_header, response) = decode_response_frame::<R::Response>(&mut frame, version)
            .map_err(|e| ClientError::decode(&self.inner.addr, e))?;
        Ok(response)
    }

    /// Sends `body` at the negotiated version for a request the broker does not answer (Produce
    /// with acks=0); returns once the frame is written.
    pub async fn send_no_response<R: Request>(&self, body: &R) -> Result<(), ClientError> {
        let version = self.version(R::API_KEY)?;
        self.round_trip(body, version, false).await.map(drop)
    }

    async fn round_trip<R: Request>(
        &self,
        body: &R,
        version: i16,
        expects_response: bool,
    ) -> Result<BytesMut, ClientError> {
        let inner = &self.inner;
        if let Some(error) = inner.state.failure() {
            return Err(error);
        }
        let correlation_id = inner.next_correlation_id.get();
        inner.next_correlation_id.set(correlation_id.wrapping_add(1).max(1));
        let header = RequestHeader {
            api_key: R::API_KEY,
            api_version: version,
            correlation_id,
            client_id: Some(inner.config.client_id.clone()),
        };
        let frame = request_buffers(encode_request_frame(&header, body)?)?;
        let timeout = inner.config.request_timeout;
        let timed_out = || ClientError::Timeout { api: R::API_KEY, addr: inner.addr.clone(), after: timeout };
        let work = async {
            // The semaphore is never closed, so acquiring fails only if it were.
            let _permit = inner.in_flight.acquire_permit(1).await.map_err(|_| timed_out())?;
            let (reply, answer) = oneshot::channel();
            let job = Job { correlation_id, frame, expects_response, reply };
            if inner.jobs.try_send(job).is_err() {
                return Err(inner.state.failure().unwrap_or_else(|| network(&inner.addr, "connection closed")));
            }
            match answer.await {
                Ok(result) => result,
                Err(_) => Err(network(&inner.addr, "connection closed")),
            }
        };
        let deadline = async {
            Timer::new(timeout).await;
            Err(timed_out())
        };
        futures_lite::future::or(work, deadline).await
    }

    async fn handshake(&self) -> Result<(), ClientError> {
        let request = ApiVersionsRequest {
            client_software_name: "sluice".to_string(),
            client_software_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let newest = api_support(ApiKey::ApiVersions).map(|s| s.version_max).unwrap_or(0);
        // A broker that does not know our newest version answers at v0 with
        // UNSUPPORTED_VERSION and its ranges (KIP-511), which decodes badly at ours: fall back to
        // v0, which every broker answers.
        let response = match self.send_at(&request, newest).await {
            Ok(response) if response.error_code == 0 => response,
            Ok(_) | Err(ClientError::Protocol { .. }) => self.send_at(&request, 0).await?,
            Err(e) => return Err(e),
        };
        if let Some(error) = ClientError::from_code(response.error_code, || "ApiVersions".to_string(), None) {
            return Err(error);
        }
        *self.inner.versions.borrow_mut() = negotiate(SUPPORTED, &response.api_keys);
        Ok(())
    }
}

fn api_support(api: ApiKey) -> Option<&'static ApiSupport> {
    SUPPORTED.iter().find(|s| s.api_key == api)
}

/// For each API both sides implement, the highest version in both ranges.
pub fn negotiate(ours: &[ApiSupport], theirs: &[ApiVersionsResponseKey]) -> HashMap<ApiKey, i16> {
    let mut versions = HashMap::new();
    for support in ours {
        let Some(remote) = theirs.iter().find(|k| k.api_key == support.api_key.code()) else { continue };
        let low = support.version_min.max(remote.min_version);
        let high = support.version_max.min(remote.max_version);
        if low <= high {
            versions.insert(support.api_key, high);
        }
    }
    versions
}

fn network(addr: &str, reason: impl Into<String>) -> ClientError {
    ClientError::Network { addr: addr.to_string(), reason: reason.into() }
}

async fn write_loop(addr: String, mut stream: TcpStream, jobs: LocalReceiver<Job>, state: Rc<Shared>) {
    while let Some(job) = jobs.recv().await {
        if let Some(error) = state.failure() {
            let _ = job.reply.send(Err(error));
            continue;
        }
        let reply = if job.expects_response {
            state.pending.borrow_mut().push_back((job.correlation_id, job.reply));
            None
        } else {
            Some(job.reply)
        };
        let mut written = Ok(());
        for buffer in &job.frame {
            written = stream.write_all(buffer).await;
            if written.is_err() {
                break;
            }
        }
        match written {
            Ok(()) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(BytesMut::new()));
                }
            }
            Err(e) => {
                let error = network(&addr, format!("write failed: {e}"));
                if let Some(reply) = reply {
                    let _ = reply.send(Err(error.clone()));
                }
                state.fail(error);
            }
        }
    }
    // Every handle is gone: close the socket, which also ends the reader.
    let _ = stream.shutdown(std::net::Shutdown::Both).await;
}

async fn read_loop(addr: String, stream: TcpStream, max_bytes: u32, state: Rc<Shared>) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        let frame = match split_frame(&mut buf, FrameLimits::responses(max_bytes)) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let read = crate::socket::read_more(&stream, &mut buf, READ_CHUNK_BYTES).await;
                match read {
                    Ok(0) => {
                        state.fail(network(&addr, "closed by the broker"));
                        return;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        state.fail(network(&addr, format!("read failed: {e}")));
                        return;
                    }
                }
            }
            Err(e) => {
                state.fail(ClientError::Protocol { addr: addr.clone(), reason: e.to_string() });
                return;
            }
        };
        let Some(correlation_id) = frame.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])) else {
            state.fail(ClientError::Protocol { addr: addr.clone(), reason: "response frame too short".into() });
            return;
        };
        let next = state.pending.borrow_mut().pop_front();
        match next {
            Some((expected, reply)) if expected == correlation_id => {
                let _ = reply.send(Ok(frame));
            }
            Some((expected, reply)) => {
                let error = ClientError::Protocol {
                    addr: addr.clone(),
                    reason: format!("response correlation id {correlation_id}, expected {expected}"),
                };
                let _ = reply.send(Err(error.clone()));
                state.fail(error);
                return;
            }
            None => {
                let reason = format!("unsolicited response (correlation id {correlation_id})");
                state.fail(ClientError::Protocol { addr: addr.clone(), reason });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(api: ApiKey, min: i16, max: i16) -> ApiVersionsResponseKey {
        ApiVersionsResponseKey { api_key: api.code(), min_version: min, max_version: max }
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        let theirs = [key(ApiKey::Produce, 0, 5), key(ApiKey::Fetch, 4, 100), key(ApiKey::Metadata, 20, 30)];
        let versions = negotiate(SUPPORTED, &theirs);
        assert_eq!(versions.get(&ApiKey::Produce), Some(&5));
        assert_eq!(versions.get(&ApiKey::Fetch), api_support(ApiKey::Fetch).map(|s| &s.version_max));
        assert_eq!(versions.get(&ApiKey::Metadata), None, "no overlap");
        assert_eq!(versions.get(&ApiKey::ListOffsets), None, "not offered");
    }
}
