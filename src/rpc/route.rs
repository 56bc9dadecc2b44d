//! HTTP routes beside XML-RPC: a server may answer requests other than
//! `POST /` and `POST /RPC2` (a page, its assets, a stream of events)
//! through [`Routes`], under the same connection registry, caps, timeouts
//! and TLS as its calls.
//!
//! A route's reply may stream: its body is sent as it comes, never
//! buffered. A reply that lasts (server-sent events) first makes its
//! connection a *stream* with [`RouteRequest::open_stream`]: counted under
//! the stream caps ([`ServerConfig::max_streams`](super::ServerConfig::max_streams)),
//! never shed as idle, closed after its reply, and ended when the server
//! shuts down.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode, Uri};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::connections::Conn;

/// What a body's error may be.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// A route's reply body: any body of bytes, sent as it comes.
pub type RouteBody = UnsyncBoxBody<Bytes, BoxError>;

/// Answers the requests that are not XML-RPC calls.
pub trait Routes: Send + Sync + 'static {
    /// The reply to `request`, or `None` when no route serves it (the
    /// server then answers 404 or 405 as for any stray request).
    fn route(
        &self,
        request: RouteRequest,
    ) -> impl Future<Output = Option<Response<RouteBody>>> + Send;

    /// The methods the routes answer at `path` (as an `Allow` header
    /// lists them), for the 405 a call path gives to any other method.
    fn allow(&self, _path: &str) -> Option<&'static str> {
        None
    }
}

/// No routes: every request but a call gets 404 or 405.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRoutes;

impl Routes for NoRoutes {
    async fn route(&self, _request: RouteRequest) -> Option<Response<RouteBody>> {
        None
    }
}

impl<R: Routes> Routes for std::sync::Arc<R> {
    fn route(
        &self,
        request: RouteRequest,
    ) -> impl Future<Output = Option<Response<RouteBody>>> + Send {
        (**self).route(request)
    }

    fn allow(&self, path: &str) -> Option<&'static str> {
        (**self).allow(path)
    }
}

/// A request for a route: its head (a route reads no body) and where it
/// came from.
pub struct RouteRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The address the connection was accepted on.
    pub local: Option<SocketAddr>,
    conn: Conn,
    /// Cancelled when the server shuts down.
    stop: CancellationToken,
}

impl fmt::Debug for RouteRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteRequest")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefused {
    #[error("this server carries as many streams as it may")]
    Full,
    #[error("this address carries as many streams as it may")]
    ClientFull,
    #[error("the connection is closing")]
    Closing,
}

impl RouteRequest {
    pub(crate) fn new(
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        conn: Conn,
        stop: CancellationToken,
    ) -> RouteRequest {
        RouteRequest {
            method,
            uri,
            headers,
            peer,
            local,
            conn,
            stop,
        }
    }

    /// A header's value as text, if present and printable ASCII.
    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Makes this connection a stream, for a reply that lasts (see the
    /// module doc). Put the reply's body in [`StreamSlot::body`].
    ///
    /// # Errors
    /// At a stream cap, or when the connection is closing.
    pub fn open_stream(&self) -> Result<StreamSlot, StreamRefused> {
        self.conn.become_stream()?;
        Ok(StreamSlot {
            close: self.conn.close_token(),
            stop: self.stop.clone(),
        })
    }
}

/// A connection made a stream by [`RouteRequest::open_stream`].
#[derive(Debug)]
pub struct StreamSlot {
    close: CancellationToken,
    stop: CancellationToken,
}

impl StreamSlot {
    /// Closes the connection at once, whatever it is doing (for a client
    /// that cannot keep up: its unsent data is dropped).
    pub fn closer(&self) -> Closer {
        Closer(self.close.clone())
    }

    /// `body` as this stream's reply body: it ends when `body` does or when
    /// the server shuts down, whichever comes first.
    pub fn body<B>(self, body: B) -> RouteBody
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        UntilStop {
            inner: body,
            stop: Box::pin(self.stop.cancelled_owned()),
        }
        .boxed_unsync()
    }
}

/// Closes one stream's connection at once. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Closer(CancellationToken);

impl Closer {
    pub fn close(&self) {
        self.0.cancel();
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.0.is_cancelled()
    }

    /// A closer attached to no connection, for tests.
    pub fn detached() -> Closer {
        Closer(CancellationToken::new())
    }
}

/// A body that ends at the server's shutdown.
struct UntilStop<B> {
    inner: B,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<B> Body for UntilStop<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A whole reply of `body` with `content_type`.
pub fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<RouteBody> {
    let body = http_body_util::Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A plain-text refusal of a stream: come back in `retry_secs`.
pub fn unavailable(text: &'static str, retry_secs: &'static str) -> Response<RouteBody> {
    let mut resp = full(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain",
        Bytes::from_static(text.as_bytes()),
    );
    let h = resp.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static(retry_secs));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}
