//! The XML-RPC HTTP server: accepts connections, keeps slow and idle ones
//! from starving new clients (the private `connections` module says how),
//! reads each request under size, time and memory limits, hands it to a
//! [`Handler`] (usually [`Methods`](super::Methods)), caps the size of the
//! reply, and shuts down gracefully. With a TLS config the port serves
//! HTTPS only.
//!
//! Every connection is a task owned by the server: at shutdown, waiting
//! connections are closed at once, busy ones finish their request within
//! the grace period, and whatever is left then is closed.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument as _};

use super::budget::BodyBudget;
use super::codec;
use super::connections::{Conn, Refused, Registry, Ticket};
use super::fault::Fault;
use super::http::{accepts_gzip, gunzip, gzip, read_body, BodyError};
use super::tls::Stream;
use super::{CallContext, Handler, Request as RpcRequest};

pub use super::budget::FREE_BODY_BYTES;

/// Default for [`ServerConfig::max_body_bytes`]: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default for [`ServerConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default for [`ServerConfig::max_connections_per_ip`]: a quarter of
/// [`DEFAULT_MAX_CONNECTIONS`], so one address can never hold most of them,
/// and well above what one client (a balancer's pool, a load generator)
/// keeps busy at once.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Default for [`ServerConfig::header_read_timeout`]: also how long an idle
/// keep-alive connection is kept, and how long a TLS handshake may take.
/// A real client's head arrives in one packet; this is for slow networks.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Default for [`ServerConfig::body_read_timeout`].
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 10_000;
/// Default for [`ServerConfig::max_body_budget_bytes`]: 64 MiB.
pub const DEFAULT_MAX_BODY_BUDGET_BYTES: usize = 64 << 20;
/// Default for [`ServerConfig::body_budget_wait`].
pub const DEFAULT_BODY_BUDGET_WAIT_MS: u64 = 500;
/// Default for [`ServerConfig::max_reply_bytes`]: 4 MiB.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 4 << 20;
/// Default for [`ServerConfig::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
/// Replies at least this long are gzipped for clients that accept it (the
/// threshold Python's own server uses).
pub const GZIP_MIN_BYTES: usize = 1400;
/// Largest request head (request line and headers); longer ones get 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long connections closed at the end of the grace period get to go.
const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// What a refused client is told to wait, in seconds.
const RETRY_AFTER_SECS: &str = "1";
/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Limits and timeouts of a server. Every knob has a safe default.
#[derive(Clone)]
pub struct ServerConfig {
    /// Largest request body, after gzip decoding. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Connections open at once. At the cap a waiting connection is closed
    /// to make room: the one that has waited longest without completing a
    /// request (a slowloris, a silent client, a request stalled on the body
    /// budget), else the keep-alive connection idle longest. When every one
    /// is busy, new ones wait in the listen backlog. Default 1024.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 /64
    /// counts as one). At the cap one of that address's waiting
    /// connections is closed to make room, chosen as for
    /// `max_connections`; when all of its connections are busy, the new one
    /// is refused (503). Default 256.
    pub max_connections_per_ip: usize,
    /// Time allowed for a request's head to arrive, counted from the end
    /// of the previous response on a keep-alive connection, so it also
    /// bounds idle connections; with TLS, the handshake must also complete
    /// within it. Default 10 s.
    pub header_read_timeout: Duration,
    /// Time allowed for a request body to arrive. Default 10 s.
    pub body_read_timeout: Duration,
    /// Request-body bytes held by all connections together; never less
    /// than `max_body_bytes`. Bodies up to
    /// [`FREE_BODY_BYTES`] are not counted.
    /// Default 64 MiB.
    pub max_body_budget_bytes: usize,
    /// How long a body waits for budget before it is refused with 503.
    /// Default 500 ms.
    pub body_budget_wait: Duration,
    /// Largest reply (before gzip); a longer one is replaced by a fault
    /// (-32603) saying so, and never sent. Default 4 MiB.
    pub max_reply_bytes: usize,
    /// How long in-flight requests may run after shutdown is triggered.
    /// Default 10 s.
    pub shutdown_grace: Duration,
    /// Serve HTTPS with this config (and nothing else on the port).
    /// Default `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
            body_read_timeout: Duration::from_millis(DEFAULT_BODY_READ_TIMEOUT_MS),
            max_body_budget_bytes: DEFAULT_MAX_BODY_BUDGET_BYTES,
            body_budget_wait: Duration::from_millis(DEFAULT_BODY_BUDGET_WAIT_MS),
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            shutdown_grace: Duration::from_millis(DEFAULT_SHUTDOWN_GRACE_MS),
            tls: None,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_body_budget_bytes", &self.max_body_budget_bytes)
            .field("body_budget_wait", &self.body_budget_wait)
            .field("max_reply_bytes", &self.max_reply_bytes)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Connection tasks alive at once, shed ones still closing included: a
/// hard ceiling well above the cap, which shed connections (gone within a
/// poll) never come near.
fn task_ceiling(max_connections: usize) -> usize {
    max_connections.saturating_mul(2).max(16)
}

struct Shared<H> {
    handler: H,
    config: ServerConfig,
    builder: http1::Builder,
    budget: BodyBudget,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl<H> fmt::Debug for Shared<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// Serves `handler` on `listener` until `shutdown` completes, then stops
/// accepting, closes waiting connections, lets in-flight requests finish
/// (up to the grace period), closes the rest and returns.
///
/// # Errors
/// Only when accepting keeps failing for over a minute; single failures
/// are logged and retried with backoff (out of descriptors, the connection
/// waiting longest is closed first to free one).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let registry = Registry::new(config.max_connections, config.max_connections_per_ip);
    let ceiling = Arc::new(Semaphore::new(task_ceiling(config.max_connections)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEADER_BYTES)
        // max_buf_size alone is not a header limit: hyper reads into all the
        // spare capacity of its buffer, which can be several times larger,
        // so a 100 KB head got through. This makes it exact (431 past it).
        .max_header_size(MAX_HEADER_BYTES);
    let shared = Arc::new(Shared {
        handler,
        builder,
        budget: BodyBudget::new(
            config.max_body_budget_bytes.max(config.max_body_bytes),
            config.body_budget_wait,
        ),
        tls: config.tls.clone().map(tokio_rustls::TlsAcceptor::from),
        config,
    });
    let tasks = TaskTracker::new();
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = ceiling.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    backoff = Duration::from_millis(10);
                    pair
                }
                Err(e) => {
                    if backoff > Duration::from_secs(64) {
                        return Err(e);
                    }
                    warn!(error = %e, ?backoff, "accept failed");
                    if is_out_of_descriptors(&e) {
                        registry.shed_waiting_one();
                    }
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    continue;
                }
            },
        };
        let ticket = tokio::select! {
            _ = &mut shutdown => break,
            ticket = admit(&registry, peer) => ticket,
        };
        let Some(ticket) = ticket else {
            refuse(stream, shared.tls.is_some());
            continue;
        };
        let span = tracing::debug_span!("conn", %peer);
        tasks.spawn(
            connection(stream, peer, ticket, shared.clone(), stop.clone(), permit).instrument(span),
        );
        // Let the connections run before the next accept: a connection
        // whose request head has arrived then turns busy before a burst of
        // new ones (each of which may shed the longest waiting) could shed
        // it. Costs one pass of the scheduler per new connection.
        tokio::task::yield_now().await;
    }
    drop(listener);
    let idle = registry.shed_waiting();
    info!(
        busy = registry.len(),
        closed_idle = idle,
        "shutting down: finishing in-flight requests"
    );
    stop.cancel();
    tasks.close();
    let grace = shared.config.shutdown_grace;
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        warn!(
            ?grace,
            open = tasks.len(),
            "in-flight requests did not finish in time: closing them"
        );
        registry.close_all();
        let _ = tokio::time::timeout(FORCED_CLOSE_WAIT, tasks.wait()).await;
    }
    Ok(())
}

fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// A place for a connection from `peer`: at once, or once a busy
/// connection finishes or starts waiting (when every one is busy at the
/// cap). `None` when the peer's address is at its own cap, all busy.
async fn admit(registry: &Registry, peer: SocketAddr) -> Option<Ticket> {
    loop {
        let changed = registry.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match registry.admit(peer.ip()) {
            Ok(ticket) => return Some(ticket),
            Err(Refused::ClientFull) => {
                debug!(%peer, "refused: every connection from this address is busy");
                return None;
            }
            Err(Refused::Full) => changed.await,
        }
    }
}

/// Turns away a connection that got no place: a 503 in plain text where
/// that can be written at once (never on a TLS port), then a close.
fn refuse(stream: TcpStream, tls: bool) {
    if !tls {
        let _ = stream.try_write(&raw_reply(
            "503 Service Unavailable",
            "too many busy connections from this address\n",
        ));
    }
}

/// A whole closing plain-text response, for the few written without hyper.
fn raw_reply(status: &str, text: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nConnection: close\r\n\
         Retry-After: {RETRY_AFTER_SECS}\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
    .into_bytes()
}

/// One connection's task: serves it until it ends, or until the registry
/// closes it (shed at a cap, or past the shutdown grace). Holds its place
/// under the task ceiling until it ends.
async fn connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    shared: Arc<Shared<H>>,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    tokio::select! {
        biased;
        _ = ticket.closed() => debug!("closed by the server: waited longest at a cap, or outlived the shutdown grace"),
        _ = serve_connection(stream, peer, ticket.conn(), &shared, &stop) => {}
    }
}

async fn serve_connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Conn,
    shared: &Arc<Shared<H>>,
    stop: &CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let io = match &shared.tls {
        None => Stream::Plain(stream),
        Some(acceptor) => {
            let deadline = shared.config.header_read_timeout;
            let handshake = tokio::time::timeout(deadline, accept_tls(acceptor, stream));
            let shaken = tokio::select! {
                shaken = handshake => shaken,
                _ = stop.cancelled() => return,
            };
            match shaken {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(?deadline, "no TLS handshake within the header timeout");
                    return;
                }
            }
        }
    };
    let service = {
        let shared = shared.clone();
        service_fn(move |req| handle(req, shared.clone(), peer, local, conn.clone()))
    };
    let http = shared.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(http);
    let result = tokio::select! {
        result = http.as_mut() => result,
        _ = stop.cancelled() => {
            http.as_mut().graceful_shutdown();
            http.await
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "connection ended with an error");
    }
}

/// The server side of a TLS handshake. A client that speaks plain HTTP to
/// the TLS port is told so in plain text, instead of seeing a handshake
/// error it cannot read.
async fn accept_tls(
    acceptor: &tokio_rustls::TlsAcceptor,
    mut stream: TcpStream,
) -> std::io::Result<Stream> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        // Take what the client sent, so the close after the answer is not
        // a reset that loses it.
        let mut sent = [0u8; 4096];
        let _ = stream.try_read(&mut sent);
        let reply = raw_reply(
            "400 Bad Request",
            "this port serves HTTPS only: use https://\n",
        );
        stream.write_all(&reply).await?;
        let _ = stream.shutdown().await;
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "plain HTTP on the TLS port",
        ));
    }
    let tls = acceptor.accept(stream).await?;
    Ok(Stream::Tls(Box::new(tls.into())))
}

type HttpReply = Response<Full<Bytes>>;

fn plain(status: StatusCode, text: &'static str) -> HttpReply {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// A refusal after which the rest of the request is not worth reading.
fn closing(status: StatusCode, text: &'static str) -> HttpReply {
    let mut resp = plain(status, text);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// A refusal for want of budget: come back in a moment.
fn busy() -> HttpReply {
    let mut resp = closing(
        StatusCode::SERVICE_UNAVAILABLE,
        "server busy: too many request bodies in flight; retry shortly\n",
    );
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    resp
}

async fn handle<H: Handler>(
    req: Request<Incoming>,
    shared: Arc<Shared<H>>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    conn: Conn,
) -> Result<HttpReply, Infallible> {
    let Some(_busy) = conn.busy() else {
        // Shed just as this request arrived: the connection is closing.
        return Ok(closing(
            StatusCode::SERVICE_UNAVAILABLE,
            "connection closed by the server; retry\n",
        ));
    };
    Ok(respond(req, &shared, peer, local, conn).await)
}

async fn respond<H: Handler>(
    req: Request<Incoming>,
    shared: &Shared<H>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    conn: Conn,
) -> HttpReply {
    let config = &shared.config;
    if !matches!(req.uri().path(), "/" | "/RPC2") {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: XML-RPC is served at / and /RPC2\n",
        );
    }
    if req.method() != Method::POST {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "XML-RPC takes POST only\n");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let headers = req.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body_bytes as u64) {
        return closing(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }
    let gzipped = match headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case(b"identity") => false,
        Some(v) if v.eq_ignore_ascii_case(b"gzip") => true,
        Some(_) => {
            return closing(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported Content-Encoding: gzip and identity are accepted\n",
            )
        }
    };
    let wants_gzip = accepts_gzip(headers.get(header::ACCEPT_ENCODING));
    let (parts, body) = req.into_parts();
    // Held to the end of the reply: the body's bytes stay in use until then.
    let mut reservation = shared.budget.reservation(Some(conn));
    let read = read_body(
        body,
        declared,
        config.max_body_bytes,
        config.body_read_timeout,
        &mut reservation,
    )
    .await;
    let body = match read {
        Ok(body) => body,
        Err(BodyError::TooLarge(_)) => {
            return closing(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
        }
        Err(BodyError::Timeout(_)) => {
            return closing(StatusCode::REQUEST_TIMEOUT, "request body too slow\n")
        }
        Err(BodyError::NoBudget(e)) => {
            debug!(error = %e, "refused a body");
            return busy();
        }
        Err(e) => {
            debug!(error = %e, "could not read body");
            return closing(StatusCode::BAD_REQUEST, "could not read request body\n");
        }
    };
    let body = if gzipped {
        match gunzip(&body, config.max_body_bytes) {
            Ok(plain) => {
                if reservation.grow(body.len() + plain.len()).await.is_err() {
                    return busy();
                }
                Bytes::from(plain)
            }
            Err(BodyError::TooLarge(_)) => {
                return closing(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large once decompressed\n",
                )
            }
            Err(_) => return closing(StatusCode::BAD_REQUEST, "corrupt gzip body\n"),
        }
    } else {
        body
    };
    let mut ctx = CallContext::new(Some(peer), parts.headers);
    ctx.local = local;
    let reply = shared.handler.handle(RpcRequest { body, ctx }).await;
    let xml = if reply.body.len() > config.max_reply_bytes {
        debug!(
            bytes = reply.body.len(),
            limit = config.max_reply_bytes,
            "reply over the limit replaced by a fault"
        );
        Bytes::from(codec::write_fault(&Fault::internal(format!(
            "the reply would be {} bytes, over this server's limit of {}: ask for less at once \
             (fewer calls in a multicall)",
            reply.body.len(),
            config.max_reply_bytes
        ))))
    } else {
        reply.body
    };
    let mut resp = xml_reply(xml, wants_gzip);
    resp.headers_mut().extend(reply.headers);
    resp
}

fn xml_reply(xml: Bytes, wants_gzip: bool) -> HttpReply {
    let (body, gzipped) = if wants_gzip && xml.len() >= GZIP_MIN_BYTES {
        (Bytes::from(gzip(&xml)), true)
    } else {
        (xml, false)
    };
    let mut resp = Response::new(Full::new(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}
