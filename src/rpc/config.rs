//! A server's limits and timeouts, each with a safe default.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default for [`ServerConfig::max_body_bytes`]: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default for [`ServerConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default for [`ServerConfig::max_connections_per_ip`]: a quarter of
/// [`DEFAULT_MAX_CONNECTIONS`], so one address can never hold most of them,
/// and well above what one client (a balancer's pool, a load generator)
/// keeps busy at once.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Default for [`ServerConfig::max_streams`].
pub const DEFAULT_MAX_STREAMS: usize = 4096;
/// Default for [`ServerConfig::max_streams_per_ip`]: a quarter of
/// [`DEFAULT_MAX_STREAMS`], as for connections; viewers behind one address
/// (a venue's network) may be many.
pub const DEFAULT_MAX_STREAMS_PER_IP: usize = 1024;
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
    /// Streams open at once (replies that last, such as server-sent
    /// events; see [`RouteRequest::open_stream`](super::route::RouteRequest::open_stream)). They are counted apart
    /// from `max_connections`, never shed, and at the cap a new one gets
    /// 503. Default 4096.
    pub max_streams: usize,
    /// Streams open at once from one client address (an IPv6 /64 counts as
    /// one). Default 1024.
    pub max_streams_per_ip: usize,
    /// Time allowed for a request's head to arrive, counted from the end
    /// of the previous response on a keep-alive connection, so it also
    /// bounds idle connections; with TLS, the handshake must also complete
    /// within it. Default 10 s.
    pub header_read_timeout: Duration,
    /// Time allowed for a request body to arrive. Default 10 s.
    pub body_read_timeout: Duration,
    /// Request-body bytes held by all connections together; never less
    /// than `max_body_bytes`. Bodies up to
    /// [`FREE_BODY_BYTES`](super::server::FREE_BODY_BYTES) are not counted.
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
            max_streams: DEFAULT_MAX_STREAMS,
            max_streams_per_ip: DEFAULT_MAX_STREAMS_PER_IP,
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
            .field("max_streams", &self.max_streams)
            .field("max_streams_per_ip", &self.max_streams_per_ip)
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
