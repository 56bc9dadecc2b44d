//! The XML-RPC HTTP server: accepts connections under a limit, reads each
//! request under size and time limits, hands it to a [`Handler`] (usually
//! [`Methods`](super::Methods)), and shuts down gracefully.

use std::convert::Infallible;
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
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn, Instrument as _};

use super::http::{accepts_gzip, gunzip, gzip, read_body, BodyError};
use super::{CallContext, Handler, Request as RpcRequest};

/// Default for [`ServerConfig::max_body_bytes`]: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default for [`ServerConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default for [`ServerConfig::header_read_timeout`]: also how long an idle
/// keep-alive connection is kept.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 15_000;
/// Default for [`ServerConfig::body_read_timeout`].
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 10_000;
/// Default for [`ServerConfig::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
/// Replies at least this long are gzipped for clients that accept it (the
/// threshold Python's own server uses).
pub const GZIP_MIN_BYTES: usize = 1400;
/// Largest request head (request line and headers); longer ones get 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Limits and timeouts of a server. Every knob has a safe default.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body, after gzip decoding. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Connections served at once; further ones wait in the listen backlog.
    /// Default 1024.
    pub max_connections: usize,
    /// Time allowed for a request's headers to arrive, counted from the end
    /// of the previous response on a keep-alive connection, so it also bounds
    /// idle connections. Default 15 s.
    pub header_read_timeout: Duration,
    /// Time allowed for a request body to arrive. Default 10 s.
    pub body_read_timeout: Duration,
    /// How long in-flight requests may run after shutdown is triggered.
    /// Default 10 s.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
            body_read_timeout: Duration::from_millis(DEFAULT_BODY_READ_TIMEOUT_MS),
            shutdown_grace: Duration::from_millis(DEFAULT_SHUTDOWN_GRACE_MS),
        }
    }
}

struct Shared<H> {
    handler: H,
    config: ServerConfig,
}

/// Serves `handler` on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish (up to the grace period) and
/// returns.
///
/// # Errors
/// Only when accepting keeps failing for over a minute (out of file
/// descriptors, say); single failures are logged and retried with backoff.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let shared = Arc::new(Shared { handler, config });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEADER_BYTES)
        // max_buf_size alone is not a header limit: hyper reads into all the
        // spare capacity of its buffer, which can be several times larger,
        // so a 100 KB head got through. This makes it exact (431 past it).
        .max_header_size(MAX_HEADER_BYTES);
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
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
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let local = stream.local_addr().ok();
        let service = service_fn(move |req| handle(req, shared.clone(), peer, local));
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let span = tracing::debug_span!("conn", %peer);
        tokio::spawn(
            async move {
                if let Err(e) = conn.await {
                    debug!(error = %e, "connection ended with an error");
                }
                drop(permit);
            }
            .instrument(span),
        );
    }
    drop(listener);
    info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(shared.config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(grace = ?shared.config.shutdown_grace, "in-flight requests did not finish in time");
    }
    Ok(())
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

async fn handle<H: Handler>(
    req: Request<Incoming>,
    shared: Arc<Shared<H>>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Result<HttpReply, Infallible> {
    Ok(respond(req, &shared, peer, local).await)
}

async fn respond<H: Handler>(
    req: Request<Incoming>,
    shared: &Shared<H>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
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
    let body = match read_body(body, config.max_body_bytes, config.body_read_timeout).await {
        Ok(body) => body,
        Err(BodyError::TooLarge(_)) => {
            return closing(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
        }
        Err(BodyError::Timeout(_)) => {
            return closing(StatusCode::REQUEST_TIMEOUT, "request body too slow\n")
        }
        Err(e) => {
            debug!(error = %e, "could not read body");
            return closing(StatusCode::BAD_REQUEST, "could not read request body\n");
        }
    };
    let body = if gzipped {
        match gunzip(&body, config.max_body_bytes) {
            Ok(plain) => Bytes::from(plain),
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
    let mut resp = xml_reply(reply.body, wants_gzip);
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
