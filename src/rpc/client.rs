//! The XML-RPC client every server-to-server call, the feeder and the tablet
//! use: pooled keep-alive connections, a deadline on every call, a cap on
//! response size, and faults as typed errors. `http://` URLs are plain TCP;
//! `https://` URLs speak TLS, trusting [`ClientConfig::tls`] or else the
//! process-wide default ([`tls::set_default_client`](super::tls::set_default_client)).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;

use super::codec::{self, EncodeError, Limits, ParseError};
use super::fault::Fault;
use super::http::{gunzip, BodyError};
use super::pool::{Endpoint, Pool, PoolError};
use super::value::Value;

/// Default for [`ClientConfig::timeout`].
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 5_000;
/// Default for [`ClientConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Default for [`ClientConfig::max_response_bytes`]: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Default for [`ClientConfig::pool_idle_timeout`]: half the server's
/// default idle limit
/// ([`DEFAULT_HEADER_READ_TIMEOUT_MS`](super::server::DEFAULT_HEADER_READ_TIMEOUT_MS)),
/// so a pooled connection is dropped here before the server closes it
/// under a request.
pub const DEFAULT_POOL_IDLE_TIMEOUT_MS: u64 = 5_000;

/// Sees every call a client makes: adds headers to the request and reads
/// the reply's. How an application layers its own envelope (a vector
/// clock, say) over plain XML-RPC calls.
pub trait CallHook: Send + Sync + fmt::Debug {
    /// Called just before a request is sent.
    fn on_send(&self, headers: &mut HeaderMap);
    /// Called with the headers of every reply that arrived.
    fn on_reply(&self, headers: &HeaderMap);
}

/// How a client behaves.
#[derive(Clone)]
pub struct ClientConfig {
    /// Deadline for a whole call: connect, send, and read the reply. Default 5 s.
    pub timeout: Duration,
    /// Deadline for connecting: the TCP connect and, for `https://`, the TLS
    /// handshake. Default 1 s.
    pub connect_timeout: Duration,
    /// Largest reply accepted, after gzip decoding. Default 16 MiB.
    pub max_response_bytes: usize,
    /// How long an unused pooled connection is kept. Default 5 s.
    pub pool_idle_timeout: Duration,
    /// Pooled idle connections kept per host. Default 64.
    pub pool_max_idle: usize,
    /// Headers sent with every call. Mark secret values sensitive
    /// ([`HeaderValue::set_sensitive`]) and `Debug` hides them.
    pub headers: HeaderMap,
    /// Sees every call and reply. Default none.
    pub hook: Option<Arc<dyn CallHook>>,
    /// Ask for gzipped replies. Default true; off between cluster members on
    /// one network, where compressing costs more CPU than it saves.
    pub accept_gzip: bool,
    /// Decompress a gzipped reply. Default true; off for calls to parties
    /// that are not trusted to be reasonable (a gzip bomb costs CPU even
    /// when capped): a gzipped reply is then an error.
    pub decompress: bool,
    /// The local address to call from. Default none (the system chooses):
    /// a host with several addresses that must be seen at one (a tablet
    /// calling back at the address it subscribes with) sets it.
    pub local_addr: Option<std::net::IpAddr>,
    /// Whom to trust for `https://` URLs. Default `None`: the process-wide
    /// default, and an `https://` URL is refused when there is none.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_millis(DEFAULT_CALL_TIMEOUT_MS),
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            pool_idle_timeout: Duration::from_millis(DEFAULT_POOL_IDLE_TIMEOUT_MS),
            pool_max_idle: 64,
            headers: HeaderMap::new(),
            hook: None,
            accept_gzip: true,
            decompress: true,
            local_addr: None,
            tls: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("pool_max_idle", &self.pool_max_idle)
            .field("headers", &self.headers)
            .field("hook", &self.hook)
            .field("accept_gzip", &self.accept_gzip)
            .field("decompress", &self.decompress)
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server URL {0:?}")]
    Url(String),
    /// An `https://` URL, and no CA to check the server against.
    #[error("{0}: https needs a trusted CA, and none is configured")]
    NoTrust(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The server's host refused the connection: the server is not
    /// running (a cut-off server would not answer at all).
    #[error("cannot connect: {0}")]
    Refused(String),
    /// The TLS handshake failed: the server's certificate is not trusted
    /// or does not name the host, or the server does not speak TLS.
    #[error("{0}")]
    Tls(String),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("transport error: {0}")]
    Transport(String),
    #[error("server answered HTTP {0}")]
    Status(StatusCode),
    #[error("reply larger than {0} bytes")]
    TooLarge(usize),
    #[error("invalid reply: {0}")]
    Parse(#[from] ParseError),
    #[error("cannot encode the call: {0}")]
    Encode(#[from] EncodeError),
    #[error("{0}")]
    Fault(Fault),
}

impl ClientError {
    /// True when the request certainly never reached the server, so any call
    /// may be retried elsewhere (a failed TLS handshake included).
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            ClientError::Connect(_) | ClientError::Refused(_) | ClientError::Tls(_)
        )
    }

    /// True when the server did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout(_))
    }

    /// The fault, when the server answered with one.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            ClientError::Fault(f) => Some(f),
            _ => None,
        }
    }
}

/// A client for one server URL. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Client {
    pool: Arc<Pool>,
    uri: Uri,
    /// The `Host` header: the URL's authority.
    host: HeaderValue,
    /// The request target: the URL's path and query.
    target: Uri,
    config: Arc<ClientConfig>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("uri", &self.uri)
            .field("config", &self.config)
            .finish()
    }
}

impl Client {
    /// A client for `url`: `http://host:port/`, `https://host:port/`, or
    /// `host:port` (plain HTTP).
    ///
    /// # Errors
    /// A URL that is not `http` or `https` with a host; an `https` URL when
    /// neither `config.tls` nor the process default says whom to trust.
    pub fn new(url: &str, config: ClientConfig) -> Result<Self, ClientError> {
        let full = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}/")
        };
        let bad = || ClientError::Url(url.to_owned());
        let uri: Uri = full.parse().map_err(|_| bad())?;
        let authority = uri.authority().ok_or_else(bad)?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad())?;
        let name = authority.host();
        if name.is_empty() {
            return Err(bad());
        }
        let endpoint = match uri.scheme_str() {
            Some("http") => {
                Endpoint::plain(format!("{name}:{}", authority.port_u16().unwrap_or(80)))
            }
            Some("https") => {
                let trust = config
                    .tls
                    .clone()
                    .or_else(super::tls::default_client)
                    .ok_or_else(|| ClientError::NoTrust(url.to_owned()))?;
                let connect_to = format!("{name}:{}", authority.port_u16().unwrap_or(443));
                // The certificate names an IPv6 address without brackets.
                let bare = name.trim_start_matches('[').trim_end_matches(']');
                Endpoint::tls(connect_to, bare, trust).map_err(|_| bad())?
            }
            _ => return Err(bad()),
        };
        let target: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|_| bad())?;
        let pool = Pool::new(
            endpoint.from_local(config.local_addr),
            config.connect_timeout,
            config.pool_idle_timeout,
            config.pool_max_idle,
        );
        Ok(Client {
            pool: Arc::new(pool),
            uri,
            host,
            target,
            config: Arc::new(config),
        })
    }

    /// The URL this client calls.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Calls `method` with `params`.
    ///
    /// # Errors
    /// A fault from the server as [`ClientError::Fault`]; anything else as the
    /// matching variant.
    pub async fn call(&self, method: &str, params: &[Value]) -> Result<Value, ClientError> {
        let body = codec::write_call(method, params)?;
        let reply = self.call_raw(Bytes::from(body)).await?;
        codec::parse_response(&reply, Limits::default())?.map_err(ClientError::Fault)
    }

    /// Posts an already-encoded call and returns the (decompressed) reply
    /// body, for callers that relay XML without decoding it.
    ///
    /// # Errors
    /// As [`Client::call`], except that faults are inside the returned body.
    pub async fn call_raw(&self, body: Bytes) -> Result<Bytes, ClientError> {
        self.call_raw_with(body, &[]).await
    }

    /// [`Client::call_raw`] with extra request headers (a request id, say).
    ///
    /// # Errors
    /// As [`Client::call_raw`].
    pub async fn call_raw_with(
        &self,
        body: Bytes,
        headers: &[(&'static str, HeaderValue)],
    ) -> Result<Bytes, ClientError> {
        let timeout = self.config.timeout;
        match tokio::time::timeout(timeout, self.post(body, headers)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// The configured headers, then `extra`, then the hook's.
    fn add_headers(&self, to: &mut HeaderMap, extra: &[(&'static str, HeaderValue)]) {
        for (name, value) in &self.config.headers {
            to.insert(name, value.clone());
        }
        for (name, value) in extra {
            to.insert(*name, value.clone());
        }
        if let Some(hook) = &self.config.hook {
            hook.on_send(to);
        }
    }

    /// Sends `GET target` (a path and query on this client's server) on a
    /// connection of its own, outside the pool, and returns the reply once
    /// its head has arrived, with its body still to come: a page to relay
    /// as it arrives, a stream of events to follow. The head must come
    /// within the call timeout; the body has no deadline (the caller bounds
    /// it), and the connection closes when the body ends or is dropped.
    /// Any status is returned; the hook sees the request, not the reply.
    ///
    /// # Errors
    /// A target that is not a path, or a failure to connect or to get the
    /// reply's head in time.
    pub async fn get(
        &self,
        target: &str,
        headers: &[(&'static str, HeaderValue)],
    ) -> Result<Response<Incoming>, ClientError> {
        let uri: Uri = target
            .parse()
            .map_err(|_| ClientError::Url(target.to_owned()))?;
        let mut req = Request::get(uri)
            .header(header::HOST, self.host.clone())
            .body(Empty::<Bytes>::new())
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        self.add_headers(req.headers_mut(), headers);
        let endpoint = self.pool.endpoint();
        let connect = self.config.connect_timeout;
        let exchange = async {
            let stream = tokio::time::timeout(connect, endpoint.connect())
                .await
                .map_err(|_| ClientError::Connect(format!("no connection within {connect:?}")))?
                .map_err(|e| match e {
                    PoolError::Tls(e) => ClientError::Tls(e),
                    other => ClientError::Connect(other.to_string()),
                })?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| ClientError::Connect(e.to_string()))?;
            // The connection's own task: it ends with the reply's body
            // (read to its end, or dropped).
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
                .send_request(req)
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))
        };
        let timeout = self.config.timeout;
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    async fn post(
        &self,
        body: Bytes,
        headers: &[(&'static str, HeaderValue)],
    ) -> Result<Bytes, ClientError> {
        let mut req = Request::post(self.target.clone())
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "text/xml")
            .body(Full::new(body))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if self.config.accept_gzip {
            req.headers_mut()
                .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        self.add_headers(req.headers_mut(), headers);
        let max = self.config.max_response_bytes;
        let (resp, body) = self.pool.send(req, max).await.map_err(|e| match e {
            PoolError::Connect(e) => ClientError::Connect(e),
            PoolError::Refused(e) => ClientError::Refused(e),
            PoolError::Tls(e) => ClientError::Tls(e),
            PoolError::Transport(e) => ClientError::Transport(e),
            PoolError::TooLarge(n) => ClientError::TooLarge(n),
        })?;
        if resp.status != StatusCode::OK {
            return Err(ClientError::Status(resp.status));
        }
        if let Some(hook) = &self.config.hook {
            hook.on_reply(&resp.headers);
        }
        let gzipped = resp
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        if gzipped && !self.config.decompress {
            return Err(ClientError::Transport(
                "the reply is gzipped, which was not asked for".into(),
            ));
        }
        if gzipped {
            return gunzip(&body, max).map(Bytes::from).map_err(|e| match e {
                BodyError::TooLarge(n) => ClientError::TooLarge(n),
                other => ClientError::Transport(other.to_string()),
            });
        }
        Ok(body)
    }
}
