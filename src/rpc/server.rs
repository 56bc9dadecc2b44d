//! The XML-RPC HTTP server: accepts connections, keeps slow and idle ones
//! from starving new clients (the private `connections` module says how),
//! reads each request under size, time and memory limits, hands it to a
//! [`Handler`] (usually [`Methods`](super::Methods)), caps the size of the
//! reply, and shuts down gracefully. With a TLS config the port serves
//! HTTPS only. Requests other than calls go to the server's
//! [`Routes`], if it has any (a page, a stream of
//! events), under the same limits.
//!
//! Every connection is a task owned by the server: at shutdown, waiting
//! connections are closed at once, busy ones finish their request within
//! the grace period, and whatever is left then is closed. Streams end at
//! once.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
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
use super::http::{accepts_gzip, gunzip, read_body, BodyError};
use super::replies::{busy, closing, plain, raw_reply, xml_reply, HttpReply};
use super::route::{NoRoutes, RouteBody, RouteRequest, Routes};
use super::tls::Stream;
use super::{CallContext, Handler, Request as RpcRequest};

pub use super::budget::FREE_BODY_BYTES;
pub use super::config::{
    ServerConfig, DEFAULT_BODY_BUDGET_WAIT_MS, DEFAULT_BODY_READ_TIMEOUT_MS,
    DEFAULT_HEADER_READ_TIMEOUT_MS, DEFAULT_MAX_BODY_BUDGET_BYTES, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_STREAMS, DEFAULT_MAX_STREAMS_PER_IP, DEFAULT_SHUTDOWN_GRACE_MS,
};
pub use super::replies::GZIP_MIN_BYTES;

/// Largest request head (request line and headers); longer ones get 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long connections closed at the end of the grace period get to go.
const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Connection tasks alive at once, shed ones still closing included: a
/// hard ceiling well above the cap, which shed connections (gone within a
/// poll) never come near.
fn task_ceiling(config: &ServerConfig) -> usize {
    config
        .max_connections
        .saturating_add(config.max_streams)
        .saturating_mul(2)
        .max(16)
}

struct Shared<H, R> {
    handler: H,
    routes: R,
    config: ServerConfig,
    builder: http1::Builder,
    budget: BodyBudget,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl<H, R> fmt::Debug for Shared<H, R> {
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
    serve_with_routes(listener, handler, NoRoutes, config, shutdown).await
}

/// [`serve`], with `routes` answering the requests that are not calls.
///
/// # Errors
/// As [`serve`].
pub async fn serve_with_routes<H: Handler, R: Routes>(
    listener: TcpListener,
    handler: H,
    routes: R,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let registry = Registry::new(
        config.max_connections,
        config.max_connections_per_ip,
        config.max_streams,
        config.max_streams_per_ip,
    );
    let ceiling = Arc::new(Semaphore::new(task_ceiling(&config)));
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
        routes,
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
        busy = registry.len() - registry.streams(),
        streams = registry.streams(),
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

/// One connection's task: serves it until it ends, or until the registry
/// closes it (shed at a cap, or past the shutdown grace). Holds its place
/// under the task ceiling until it ends.
async fn connection<H: Handler, R: Routes>(
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    shared: Arc<Shared<H, R>>,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    tokio::select! {
        biased;
        _ = ticket.closed() => debug!("closed by the server: waited longest at a cap, or outlived the shutdown grace"),
        _ = serve_connection(stream, peer, ticket.conn(), &shared, &stop) => {}
    }
}

async fn serve_connection<H: Handler, R: Routes>(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Conn,
    shared: &Arc<Shared<H, R>>,
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
        let stop = stop.clone();
        service_fn(move |req| {
            let at = Peer {
                peer,
                local,
                conn: conn.clone(),
                stop: stop.clone(),
            };
            handle(req, shared.clone(), at)
        })
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

/// What a request gets: a call's whole reply, or a route's.
type AnyReply = Response<Either<Full<Bytes>, RouteBody>>;

/// Where a request came in.
struct Peer {
    peer: SocketAddr,
    local: Option<SocketAddr>,
    conn: Conn,
    /// Cancelled at shutdown.
    stop: CancellationToken,
}

async fn handle<H: Handler, R: Routes>(
    req: Request<Incoming>,
    shared: Arc<Shared<H, R>>,
    at: Peer,
) -> Result<AnyReply, Infallible> {
    let Some(_busy) = at.conn.busy() else {
        // Shed just as this request arrived: the connection is closing.
        return Ok(closing(
            StatusCode::SERVICE_UNAVAILABLE,
            "connection closed by the server; retry\n",
        )
        .map(Either::Left));
    };
    let path = req.uri().path();
    let is_call = req.method() == Method::POST && matches!(path, "/" | "/RPC2");
    if is_call {
        let reply = respond(req, &shared, at.peer, at.local, at.conn).await;
        return Ok(reply.map(Either::Left));
    }
    let (parts, _body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let route = RouteRequest::new(
        parts.method,
        parts.uri,
        parts.headers,
        at.peer,
        at.local,
        at.conn.clone(),
        at.stop,
    );
    match shared.routes.route(route).await {
        Some(mut resp) => {
            if at.conn.is_stream() {
                // A stream is one reply: its connection ends with it.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(resp.map(Either::Right))
        }
        None => Ok(stray(&path, shared.routes.allow(&path)).map(Either::Left)),
    }
}

/// The answer to a request that is neither a call nor a route's; `routed`
/// is what the routes answer at `path`.
fn stray(path: &str, routed: Option<&'static str>) -> HttpReply {
    if !matches!(path, "/" | "/RPC2") {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: XML-RPC is served at / and /RPC2\n",
        );
    }
    let (allow, text) = match routed {
        Some(routed) => (routed, "XML-RPC takes POST; the page takes GET and HEAD\n"),
        None => ("POST", "XML-RPC takes POST only\n"),
    };
    let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, text);
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

async fn respond<H: Handler, R>(
    req: Request<Incoming>,
    shared: &Shared<H, R>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    conn: Conn,
) -> HttpReply {
    let config = &shared.config;
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
