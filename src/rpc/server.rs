//! The XML-RPC HTTP server: accepts connections under a limit, reads each
//! request under size and time limits, dispatches it through [`Methods`],
//! and shuts down gracefully.

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

use super::codec::{self, Limits};
use super::fault::Fault;
use super::http::{accepts_gzip, gunzip, gzip, read_body, BodyError};
use super::methods::{CallContext, Methods, Reply};
use crate::election::vclock::{SharedClock, VectorClock};

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
/// Header name that carries the cluster secret on internal calls.
pub const SECRET_HEADER: &str = "x-podium-secret";
/// Header name that carries the sender's vector clock on internal calls and
/// their replies (`1,0,3`).
pub const VCLOCK_HEADER: &str = "x-podium-vclock";
/// Header name that carries a write's request id (see [`CallContext`]).
pub const REQUEST_ID_HEADER: &str = "x-podium-request-id";
/// Longest request id accepted; longer ones are ignored.
const MAX_REQUEST_ID_BYTES: usize = 128;

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
    /// XML limits.
    pub limits: Limits,
    /// This process's vector clock: ticked for every request handled, merged
    /// from the request's `X-Podium-Vclock` and sent back on the reply.
    pub vclock: Option<SharedClock>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
            body_read_timeout: Duration::from_millis(DEFAULT_BODY_READ_TIMEOUT_MS),
            shutdown_grace: Duration::from_millis(DEFAULT_SHUTDOWN_GRACE_MS),
            limits: Limits::default(),
            vclock: None,
        }
    }
}

struct Shared {
    methods: Methods,
    config: ServerConfig,
}

/// Serves `methods` on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish (up to the grace period) and
/// returns.
///
/// # Errors
/// Only when accepting keeps failing for over a minute (out of file
/// descriptors, say); single failures are logged and retried with backoff.
pub async fn serve(
    listener: TcpListener,
    methods: Methods,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let shared = Arc::new(Shared { methods, config });
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
        let service = service_fn(move |req| handle(req, shared.clone(), peer));
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

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: SocketAddr,
) -> Result<HttpReply, Infallible> {
    Ok(respond(req, &shared, peer).await)
}

async fn respond(req: Request<Incoming>, shared: &Shared, peer: SocketAddr) -> HttpReply {
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
    let vclock = config.vclock.as_ref().map(|clock| {
        let remote = headers
            .get(VCLOCK_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(VectorClock::from_header);
        clock.receive(remote.as_deref())
    });
    let secret = headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(Arc::from);
    let request_id = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID_BYTES)
        .map(Arc::from);
    let forwarded_for = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok());
    let body = match read_body(
        req.into_body(),
        config.max_body_bytes,
        config.body_read_timeout,
    )
    .await
    {
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
    let ctx = CallContext {
        peer: Some(peer),
        secret,
        request_id,
        forwarded_for,
    };
    let xml = match shared.methods.relay_for(&body) {
        Some(relay) => relay(body, ctx)
            .await
            .unwrap_or_else(|fault| codec::write_fault(&fault).into()),
        None => dispatch(&shared.methods, &body, config.limits, ctx).await,
    };
    let mut reply = xml_reply(xml, wants_gzip);
    if let (Some(clock), Some(_)) = (&config.vclock, vclock) {
        if let Ok(v) = HeaderValue::from_str(&clock.snapshot().to_header()) {
            reply.headers_mut().insert(VCLOCK_HEADER, v);
        }
    }
    reply
}

/// Decodes, runs and encodes one call. Every failure becomes a fault reply.
async fn dispatch(methods: &Methods, body: &[u8], limits: Limits, ctx: CallContext) -> Bytes {
    let call = match codec::parse_call(body, limits) {
        Ok(call) => call,
        Err(e) => {
            debug!(error = %e, "refused request");
            return codec::write_fault(&Fault::from(e)).into();
        }
    };
    let span = tracing::debug_span!("rpc", method = %call.method);
    async move {
        let encoded = match methods.respond(call, ctx).await {
            Ok(Reply::Encoded(bytes)) => Ok(bytes),
            Ok(Reply::Value(value)) => codec::write_response(&value)
                .map(Bytes::from)
                .map_err(|e| Fault::internal(format!("cannot encode the result: {e}"))),
            Err(fault) => Err(fault),
        };
        match encoded {
            Ok(bytes) => bytes,
            Err(fault) => {
                debug!(code = fault.code, message = %fault.message, "fault");
                codec::write_fault(&fault).into()
            }
        }
    }
    .instrument(span)
    .await
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
