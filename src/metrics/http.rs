//! The `/metrics` endpoint: a small HTTP/1.1 responder, written here because glommio has no HTTP
//! server (hyper and its kin need tokio) and a scrape needs only one request and one answer.
//!
//! One shard serves it (the broker runs it on shard 0): Prometheus scrapes every few seconds,
//! and each scrape gathers every shard's figures over the mesh anyway. Each connection gets one
//! answer and is closed (`Connection: close`); its request head is read up to
//! [`HttpLimits::request_bytes_max`], and the whole exchange must end within
//! [`HttpLimits::connection_timeout`], so a client that trickles or stops holds a bounded buffer
//! for a bounded time. `GET` and `HEAD` of `/metrics` are served; other paths get 404, other
//! methods 405, a malformed head 400, another HTTP version 505, a head too long 431.

use std::cell::Cell;
use std::future::Future;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

use super::registry::Format;
use crate::limits;

/// What the endpoint runs for each scrape: the exposition text in the asked format, or `None`
/// if it could not be made (answered 500).
pub type Scrape = Rc<dyn Fn(Format) -> Pin<Box<dyn Future<Output = Option<String>>>>>;

/// Bytes read from a metrics connection at a time.
const READ_CHUNK_BYTES: usize = 1024;
/// The wait after a failed accept (out of descriptors, most likely), so the listener does not
/// spin on a failure only closing connections can end.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The endpoint's bounds.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// The longest request head read; longer gets 431.
    pub request_bytes_max: usize,
    /// From accept to the end of the answer; a connection still going then is closed.
    pub connection_timeout: Duration,
    /// Connections served at once; more get 503.
    pub connections_max: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_bytes_max: limits::METRICS_REQUEST_BYTES_MAX,
            connection_timeout: limits::METRICS_CONNECTION_TIMEOUT,
            connections_max: limits::METRICS_CONNECTIONS_MAX,
        }
    }
}

/// An answer other than the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeadTooLarge,
    ScrapeFailed,
    Busy,
    VersionNotSupported,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::HeadTooLarge => "431 Request Header Fields Too Large",
            Status::ScrapeFailed => "500 Internal Server Error",
            Status::Busy => "503 Service Unavailable",
            Status::VersionNotSupported => "505 HTTP Version Not Supported",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Status::BadRequest => "malformed HTTP request\n",
            Status::NotFound => "not found: the metrics are at /metrics\n",
            Status::MethodNotAllowed => "only GET and HEAD are served\n",
            Status::HeadTooLarge => "request head too large\n",
            Status::ScrapeFailed => "the metrics could not be rendered\n",
            Status::Busy => "too many metrics connections; try again\n",
            Status::VersionNotSupported => "only HTTP/1.x is served\n",
        }
    }
}

/// Whether an answer carries its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Body {
    Full,
    /// `HEAD`: the headers only.
    HeadOnly,
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Metrics(Format, Body),
    Refuse(Status),
}

/// Turns a socket bound on another thread (the command line binds it first, so that a taken
/// port fails the start with a clear error) into a listener of this shard's executor.
pub fn adopt(listener: std::net::TcpListener) -> TcpListener {
    // SAFETY: the descriptor is a bound, listening TCP socket whose ownership moves here.
    unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) }
}

/// Serves `/metrics` on `listener` with `scrape` until `stop` completes.
pub async fn serve(listener: TcpListener, scrape: Scrape, limits: HttpLimits, stop: impl Future<Output = ()>) {
    let open = Rc::new(Cell::new(0usize));
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stop.as_mut().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        let mut stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                // The Kafka listeners log running out (throttled); this one only waits.
                debug!(error = %e, "metrics accept failed");
                glommio::timer::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let (scrape, open) = (scrape.clone(), open.clone());
        glommio::spawn_local(async move {
            let busy = open.get() >= limits.connections_max;
            open.set(open.get() + 1);
            let answered = futures_lite::future::or(
                async {
                    match busy {
                        true => write_status(&mut stream, Status::Busy).await?,
                        false => answer(&mut stream, &scrape, limits.request_bytes_max).await?,
                    }
                    linger(&mut stream).await
                },
                async {
                    glommio::timer::sleep(limits.connection_timeout).await;
                    Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
                },
            )
            .await;
            if let Err(e) = answered {
                debug!(error = %e, "metrics connection closed without an answer");
            }
            let _ = stream.close().await;
            open.set(open.get() - 1);
        })
        .detach();
    }
    info!("metrics listener stopped");
}

/// Reads one request head and answers it.
async fn answer(stream: &mut TcpStream, scrape: &Scrape, request_bytes_max: usize) -> std::io::Result<()> {
    let route = match read_head(stream, request_bytes_max).await? {
        Some(head) => route(&head),
        None => Route::Refuse(Status::HeadTooLarge),
    };
    match route {
        Route::Refuse(status) => write_status(stream, status).await,
        Route::Metrics(format, body) => match scrape(format).await {
            None => write_status(stream, Status::ScrapeFailed).await,
            Some(text) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    format.content_type(),
                    text.len()
                );
                stream.write_all(head.as_bytes()).await?;
                if body == Body::Full {
                    stream.write_all(text.as_bytes()).await?;
                }
                stream.flush().await
            }
        },
    }
}

/// Ends our side, then reads and drops what the client still sends until it closes: closing a
/// socket with unread bytes would reset the connection, and the client could lose the answer
/// (a 431 to a client still sending, say). Bounded by the connection's timeout.
async fn linger(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.shutdown(std::net::Shutdown::Write).await?;
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    while stream.read(&mut chunk).await? > 0 {}
    Ok(())
}

async fn write_status(stream: &mut TcpStream, status: Status) -> std::io::Result<()> {
    let allow = match status {
        Status::MethodNotAllowed => "Allow: GET, HEAD\r\n",
        _ => "",
    };
    let body = status.body();
    let response = format!(
        "HTTP/1.1 {}\r\n{allow}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        status.line(),
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.flush().await
}

/// The request head (up to, without, the blank line that ends it); `None` if it passes `max`
/// bytes first. A peer that closes before the end is an error: nobody is left to answer.
async fn read_head(stream: &mut TcpStream, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    loop {
        if let Some(end) = head_end(&head) {
            head.truncate(end);
            return Ok(Some(head));
        }
        if head.len() >= max {
            return Ok(None);
        }
        let room = (max - head.len()).min(READ_CHUNK_BYTES);
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

/// Where the head's terminating blank line starts (`\r\n\r\n`, or `\n\n` from a lenient
/// client such as a hand-typed netcat session).
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a request head asks for. Pure, so that any input can be tried on it.
pub(super) fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else { return Route::Refuse(Status::BadRequest) };
    let mut lines = text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Refuse(Status::BadRequest);
    };
    let token =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token(method) || !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Route::Refuse(Status::BadRequest);
    }
    match version.strip_prefix("HTTP/") {
        Some("1.0" | "1.1") => {}
        Some(v) if v.len() == 3 && v.as_bytes()[1] == b'.' && v.bytes().filter(u8::is_ascii_digit).count() == 2 => {
            return Route::Refuse(Status::VersionNotSupported);
        }
        _ => return Route::Refuse(Status::BadRequest),
    }
    let mut format = Format::Prometheus;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { return Route::Refuse(Status::BadRequest) };
        if !token(name) {
            return Route::Refuse(Status::BadRequest);
        }
        if name.eq_ignore_ascii_case("accept") && value.contains("application/openmetrics-text") {
            format = Format::OpenMetrics;
        }
    }
    let body = match method {
        "GET" => Body::Full,
        "HEAD" => Body::HeadOnly,
        _ => return Route::Refuse(Status::MethodNotAllowed),
    };
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    match path {
        "/metrics" => Route::Metrics(format, body),
        _ => Route::Refuse(Status::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run_on_shard;

    #[test]
    fn request_heads_route_to_the_metrics_or_to_the_right_refusal() {
        let cases: &[(&[u8], Route)] = &[
            (b"GET /metrics HTTP/1.1\r\nHost: x", Route::Metrics(Format::Prometheus, Body::Full)),
            (b"GET /metrics?x=1 HTTP/1.0", Route::Metrics(Format::Prometheus, Body::Full)),
            (b"HEAD /metrics HTTP/1.1", Route::Metrics(Format::Prometheus, Body::HeadOnly)),
            (
                b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
                Route::Metrics(Format::OpenMetrics, Body::Full),
            ),
            (b"POST /metrics HTTP/1.1\r\nContent-Length: 0", Route::Refuse(Status::MethodNotAllowed)),
            (b"GET / HTTP/1.1", Route::Refuse(Status::NotFound)),
            (b"GET /metrics/ HTTP/1.1", Route::Refuse(Status::NotFound)),
            (b"GET /metrics HTTP/2.0", Route::Refuse(Status::VersionNotSupported)),
            (b"GET /metrics", Route::Refuse(Status::BadRequest)),
            (b"GET /metrics HTTP/1.1 extra", Route::Refuse(Status::BadRequest)),
            (b"GET  /metrics HTTP/1.1", Route::Refuse(Status::BadRequest)),
            (b"GET metrics HTTP/1.1", Route::Refuse(Status::BadRequest)),
            (b"GET /metrics HTTP/1.1\r\nno colon here", Route::Refuse(Status::BadRequest)),
            (b"GET /metrics HTTP/1.1\r\nbad name: x", Route::Refuse(Status::BadRequest)),
            (b"GET /met\x01rics HTTP/1.1", Route::Refuse(Status::BadRequest)),
            (b"\xff\xfe\x00\x01", Route::Refuse(Status::BadRequest)),
            (b"", Route::Refuse(Status::BadRequest)),
            (b"HTTP/1.1", Route::Refuse(Status::BadRequest)),
            (b"G\xc3\xa9T /metrics HTTP/1.1", Route::Refuse(Status::BadRequest)),
            (b"GET /metrics HTTP/x.y", Route::Refuse(Status::BadRequest)),
        ];
        for (head, want) in cases {
            assert_eq!(route(head), *want, "{}", String::from_utf8_lossy(head));
        }
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(20));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    /// Sends `request` to `addr` (the client half closes after it, unless `hold`) and returns the
    /// whole answer (empty if the server closed without one).
    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[test]
    fn the_responder_answers_malformed_oversized_and_silent_clients_and_stays_up() {
        run_on_shard(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let scrape: Scrape = Rc::new(|format| {
                Box::pin(async move { Some(format!("up{{format=\"{format:?}\"}} 1\n")) })
                    as Pin<Box<dyn Future<Output = Option<String>>>>
            });
            let limits = HttpLimits {
                request_bytes_max: 512,
                connection_timeout: Duration::from_millis(300),
                connections_max: 2,
            };
            let (stop, stopped) = futures_channel::oneshot::channel::<()>();
            let server = glommio::spawn_local(serve(listener, scrape, limits, async {
                let _ = stopped.await;
            }));

            let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n").await;
            assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
            assert!(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{ok}");
            assert!(ok.ends_with("\r\n\r\nup{format=\"Prometheus\"} 1\n"), "{ok}");
            let open = exchange(addr, b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text\r\n\r\n").await;
            assert!(open.contains("Content-Type: application/openmetrics-text; version=1.0.0"), "{open}");
            let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"), "{head}");

            let garbage = exchange(addr, b"\x00\x00\x00\x10kafka frame?\r\n\r\n").await;
            assert!(garbage.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{garbage}");
            let post = exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
            assert!(post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET, HEAD\r\n"), "{post}");
            let missing = exchange(addr, b"GET /admin HTTP/1.1\r\n\r\n").await;
            assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
            let endless = exchange(addr, &[b'a'; 4096]).await;
            assert!(endless.starts_with("HTTP/1.1 431 "), "{endless}");
            // Half a head, then nothing: closed at the timeout, without an answer.
            let silent = exchange(addr, b"GET /metr").await;
            assert_eq!(silent, "");

            // Two silent connections take both places; a third is told to come back later.
            let mut held = Vec::new();
            for _ in 0..2 {
                held.push(TcpStream::connect(addr).await.unwrap());
            }
            glommio::timer::sleep(Duration::from_millis(50)).await;
            let busy = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
            assert!(busy.starts_with("HTTP/1.1 503 "), "{busy}");
            drop(held);
            glommio::timer::sleep(Duration::from_millis(400)).await;
            let again = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
            assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");

            let _ = stop.send(());
            server.await;
        });
    }
}
