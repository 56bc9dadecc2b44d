//! What a server runs for each request. The server reads the HTTP request,
//! hands its body and a [`CallContext`] to a [`Handler`], and sends back the
//! [`Response`] body it returns. [`Methods`](super::Methods) is the usual
//! handler (decode, dispatch, encode); a layer that wraps another handler
//! (an application's envelope of headers) or a relay that passes bodies on
//! without decoding them are others.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderMap;

/// Where a call came from, and what the layers it went through learned of
/// it. Cheap to clone (a multicall clones it per entry).
#[derive(Clone, Default)]
pub struct CallContext {
    /// The TCP peer, when the call came over the network.
    pub peer: Option<SocketAddr>,
    /// The address the connection was accepted on: the server as this
    /// client reached it.
    pub local: Option<SocketAddr>,
    /// The HTTP request's headers, as they came.
    pub headers: Arc<HeaderMap>,
    /// The entry's position when the call is one entry of a
    /// `system.multicall`; layers derive per-entry values from it (request
    /// ids must differ per entry, or every write after the first would look
    /// like a retry of it).
    pub multicall_index: Option<usize>,
    /// Typed values a layer attached for the handlers below it.
    pub extensions: http::Extensions,
}

impl CallContext {
    /// A context for a call from `peer` with `headers`.
    pub fn new(peer: Option<SocketAddr>, headers: HeaderMap) -> Self {
        CallContext {
            peer,
            local: None,
            headers: Arc::new(headers),
            multicall_index: None,
            extensions: http::Extensions::new(),
        }
    }

    /// A header's value as text, if it is present and printable ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl fmt::Debug for CallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may hold secrets: only their names are printed.
        f.debug_struct("CallContext")
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("multicall_index", &self.multicall_index)
            .finish_non_exhaustive()
    }
}

/// One request as a handler receives it: the (decompressed) body and where
/// it came from.
#[derive(Debug)]
pub struct Request {
    pub body: Bytes,
    pub ctx: CallContext,
}

/// What a handler answers: a complete `methodResponse` body (a result or a
/// fault) and any headers to send with it.
#[derive(Debug, Default)]
pub struct Response {
    pub body: Bytes,
    pub headers: HeaderMap,
}

impl Response {
    /// A reply with no extra headers.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Response {
            body: body.into(),
            headers: HeaderMap::new(),
        }
    }
}

/// Answers requests. Every failure is in the returned body as a fault:
/// a handler has no way to fail the HTTP exchange itself.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;
}

impl<H: Handler> Handler for Arc<H> {
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send {
        (**self).handle(request)
    }
}
