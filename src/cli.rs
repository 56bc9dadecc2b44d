//! What every binary does the same way at its edge: logging setup, the
//! descriptor limit, the runtime, the shutdown signal, TLS settings, and
//! reporting the bound address.

use std::net::SocketAddr;

/// How long a binary waits at exit for its election driver's last messages
/// (each bounded by a call deadline of at most 300 ms).
pub const DRIVER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Raises this process's soft limit on open files to the hard limit (a
/// server holds one descriptor per connection, and the usual soft limit of
/// 1024 is below `--max-connections` plus what the process needs besides),
/// and logs the result. Call after [`init_tracing`]. Does nothing where the
/// OS has no such limit.
pub fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// A tokio runtime with `workers` threads; 1 gives the current-thread
/// scheduler, which on small machines serves small requests fastest.
///
/// # Errors
/// When the OS refuses threads or an event loop.
pub fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received");
}

/// Tells whoever started us where we listen, on stdout: `LISTENING <addr>`.
/// Tests and scripts start servers on port 0 and read this line.
pub fn announce_listening(addr: SocketAddr) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "LISTENING {addr}");
    let _ = out.flush();
}

/// Limits every server binary exposes as flags, and its TLS certificate.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Largest request body in bytes (after gzip decoding).
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Connections open at once; at the cap a waiting one is closed to make
    /// room: first one that never completed a request (still sending its
    /// head, say), else the one idle longest.
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv6: one /64); at
    /// the cap one of its waiting ones is closed as for --max-connections,
    /// and with all of them busy a new one gets 503.
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: usize,
    /// Milliseconds allowed for a request's headers, for an idle keep-alive
    /// connection, and for a TLS handshake.
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_HEADER_READ_TIMEOUT_MS)]
    pub header_timeout_ms: u64,
    /// Milliseconds allowed for a request's body.
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_BODY_READ_TIMEOUT_MS)]
    pub body_timeout_ms: u64,
    /// Request-body bytes all connections together may hold; a body that
    /// cannot get its share within a moment is refused with 503. At least
    /// --max-body-bytes.
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_MAX_BODY_BUDGET_BYTES)]
    pub max_body_budget_bytes: usize,
    /// Largest reply in bytes (before gzip); a larger one becomes a fault.
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_MAX_REPLY_BYTES)]
    pub max_reply_bytes: usize,
    /// PEM certificate chain: serve HTTPS only (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Runtime worker threads; 1 runs everything on one thread, which on
    /// the 2-core machines we measured gave the lowest latency and the least
    /// CPU per request, for the balancer too (see README, Benchmarks).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

impl ServerArgs {
    /// # Errors
    /// A limit of zero, a body budget below the body limit, or a TLS
    /// certificate or key that cannot be used.
    pub fn to_config(&self) -> anyhow::Result<crate::rpc::ServerConfig> {
        anyhow::ensure!(self.max_body_bytes > 0, "--max-body-bytes must be positive");
        anyhow::ensure!(
            self.max_connections > 0,
            "--max-connections must be positive"
        );
        anyhow::ensure!(
            self.max_connections_per_ip > 0,
            "--max-connections-per-ip must be positive"
        );
        anyhow::ensure!(
            self.header_timeout_ms > 0,
            "--header-timeout-ms must be positive"
        );
        anyhow::ensure!(
            self.body_timeout_ms > 0,
            "--body-timeout-ms must be positive"
        );
        anyhow::ensure!(
            self.max_body_budget_bytes >= self.max_body_bytes,
            "--max-body-budget-bytes must be at least --max-body-bytes"
        );
        anyhow::ensure!(
            self.max_reply_bytes > 0,
            "--max-reply-bytes must be positive"
        );
        anyhow::ensure!(
            (1..=64).contains(&self.workers),
            "--workers must be 1 to 64"
        );
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                crate::rpc::tls::server_config(cert, key)
                    .map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key: {e}"))?,
            ),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        Ok(crate::rpc::ServerConfig {
            max_body_bytes: self.max_body_bytes,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            header_read_timeout: std::time::Duration::from_millis(self.header_timeout_ms),
            body_read_timeout: std::time::Duration::from_millis(self.body_timeout_ms),
            max_body_budget_bytes: self.max_body_budget_bytes,
            max_reply_bytes: self.max_reply_bytes,
            tls,
            ..crate::rpc::ServerConfig::default()
        })
    }

    /// The scheme of this server's own URL: `https` when it serves TLS.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Whom this process trusts when it calls `https://` URLs: every binary
/// that is a client of the cluster has this flag.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientTlsArgs {
    /// PEM file of the CA whose certificates the cluster's servers use:
    /// calls to https:// URLs trust it (and nothing else), and URLs built
    /// from host-only flags (--dbhost, --xhost, --serip...) use https.
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
}

impl ClientTlsArgs {
    /// Makes `--tls-ca` the trust of every client of this process (see
    /// [`crate::rpc::tls::set_default_client`]). Call once at start, before
    /// any client or URL is made.
    ///
    /// # Errors
    /// The CA file cannot be read or used.
    pub fn install(&self) -> anyhow::Result<()> {
        if let Some(ca) = &self.tls_ca {
            let config =
                crate::rpc::tls::client_config(ca).map_err(|e| anyhow::anyhow!("--tls-ca: {e}"))?;
            crate::rpc::tls::set_default_client(config);
            tracing::info!(ca = %ca.display(), "https:// calls trust this CA");
        }
        Ok(())
    }
}

/// `http://HOST:PORT/`, or `https://` once a CA is installed
/// ([`ClientTlsArgs::install`]): the URL of a server named by a host-only
/// flag. An IPv6 address is bracketed.
pub fn host_url(host: &str, port: u16) -> String {
    let scheme = if crate::rpc::tls::default_client().is_some() {
        "https"
    } else {
        "http"
    };
    if host.contains(':') && !host.starts_with('[') {
        format!("{scheme}://[{host}]:{port}/")
    } else {
        format!("{scheme}://{host}:{port}/")
    }
}

/// [`host_url`] for `HOST:PORT`, or the URL itself when it has a scheme.
pub fn addr_url(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else {
        let scheme = if crate::rpc::tls::default_client().is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{addr}/")
    }
}

/// Where the cluster secret comes from (never a flag's value: `ps` shows flags).
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterSecretArgs {
    /// File holding the cluster secret; else $PODIUM_CLUSTER_SECRET.
    #[arg(long)]
    pub cluster_secret_file: Option<std::path::PathBuf>,
}

impl ClusterSecretArgs {
    /// # Errors
    /// Neither source set, or an unreadable file.
    pub fn load(&self) -> Result<crate::secret::Secret, crate::secret::SecretError> {
        crate::secret::Secret::load(
            crate::secret::CLUSTER_SECRET_ENV,
            self.cluster_secret_file.as_deref(),
            "--cluster-secret-file",
        )
    }
}

/// Where a server binary listens, besides its port (whose default differs
/// per binary).
#[derive(Debug, Clone, clap::Args)]
pub struct BindArgs {
    /// Address to listen on.
    #[arg(long, default_value_t = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))]
    pub host: std::net::IpAddr,
    /// Use loopback for every address (the old system's flag).
    #[arg(short = 'l', long = "run_locally", alias = "run-locally")]
    pub run_locally: bool,
}

impl BindArgs {
    /// The address to bind: `--host`, or loopback with the old `-l`.
    pub fn addr(&self, port: u16) -> SocketAddr {
        bind_addr(self.host, self.run_locally, port)
    }
}

/// The address to bind: `host`, or loopback with the old `-l`.
pub fn bind_addr(host: std::net::IpAddr, run_locally: bool, port: u16) -> SocketAddr {
    let host = if run_locally {
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    } else {
        host
    };
    SocketAddr::new(host, port)
}

/// Connections the kernel may hold for us before we accept them (it caps
/// this at `net.core.somaxconn`). Deeper than the usual 1024, so a burst of
/// connects (thousands of attacking sockets reconnecting at once) does not
/// overflow it: a connect dropped there costs its client a one-second SYN
/// retransmit.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds (with a [`LISTEN_BACKLOG`] backlog), logs and announces; the
/// common start of every server binary.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .context("creating a socket")?;
    // As std and tokio do for listeners: a restarted server can bind at
    // once, while old connections linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true).context("setting SO_REUSEADDR")?;
    socket
        .bind(addr)
        .with_context(|| format!("binding {addr}"))?;
    let listener = socket
        .listen(LISTEN_BACKLOG)
        .with_context(|| format!("listening on {addr}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%bound, "{what} listening");
    announce_listening(bound);
    Ok(listener)
}

/// Membership of the election group and its timings.
#[derive(Debug, Clone, clap::Args)]
pub struct ElectionArgs {
    /// Another member of the election group, `UID=HOST:PORT` (or `UID=URL`;
    /// HOST:PORT is https with --tls-ca); repeat for each.
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<(u32, String)>,
    /// Host of front-end uid 1 (port 8002), as the old system named it.
    #[arg(long)]
    pub xhost: Option<String>,
    /// Host of front-end uid 2 (port 8003), as the old system named it.
    #[arg(long)]
    pub yhost: Option<String>,
    /// Host of a third member, uid 3 (port 8004).
    #[arg(long)]
    pub zhost: Option<String>,
    /// Milliseconds between heartbeats to the coordinator.
    #[arg(long, default_value_t = crate::election::config::DEFAULT_HEARTBEAT_INTERVAL_MS)]
    pub heartbeat_interval_ms: u64,
    /// Milliseconds without an answer after which the coordinator is presumed dead.
    #[arg(long, default_value_t = crate::election::config::DEFAULT_HEARTBEAT_TIMEOUT_MS)]
    pub heartbeat_timeout_ms: u64,
    /// Milliseconds between Berkeley clock-sync rounds (run by the coordinator).
    #[arg(long, default_value_t = crate::election::config::DEFAULT_SYNC_INTERVAL_MS)]
    pub sync_interval_ms: u64,
    /// Test only: skew this process's local clock by this many milliseconds.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub clock_skew_ms: i64,
}

/// `UID=HOST:PORT` or `UID=URL`; the address is kept as given, and made a
/// URL by [`ElectionArgs::to_config`], once the scheme is known.
fn parse_peer(s: &str) -> Result<(u32, String), String> {
    let (uid, addr) = s.split_once('=').ok_or("expected UID=HOST:PORT")?;
    let uid = uid.trim().parse().map_err(|_| format!("bad uid {uid:?}"))?;
    Ok((uid, addr.to_owned()))
}

impl ElectionArgs {
    /// This process's cluster clock (skewed only when a test asks).
    pub fn clock(&self) -> crate::clock::ClusterClock {
        crate::clock::ClusterClock::with_skew_ms(self.clock_skew_ms)
    }

    /// The election config of member `uid`; `dbhost` is the db's host (uid 0)
    /// when the binary has the old flag.
    ///
    /// # Errors
    /// Invalid timings or membership.
    pub fn to_config(
        &self,
        uid: u32,
        dbhost: Option<&str>,
        secret: crate::secret::Secret,
        clock: crate::clock::ClusterClock,
        vclock: crate::election::vclock::SharedClock,
    ) -> anyhow::Result<crate::election::config::ElectionConfig> {
        let mut peers = std::collections::BTreeMap::new();
        let old = [
            (0, dbhost, 8000),
            (1, self.xhost.as_deref(), 8002),
            (2, self.yhost.as_deref(), 8003),
            (3, self.zhost.as_deref(), 8004),
        ];
        for (peer_uid, host, port) in old {
            if let Some(host) = host {
                peers.insert(peer_uid, host_url(host, port));
            }
        }
        for (peer_uid, addr) in &self.peers {
            peers.insert(*peer_uid, addr_url(addr));
        }
        peers.remove(&uid);
        let config = crate::election::config::ElectionConfig {
            uid,
            peers,
            heartbeat_interval: std::time::Duration::from_millis(self.heartbeat_interval_ms),
            heartbeat_timeout: std::time::Duration::from_millis(self.heartbeat_timeout_ms),
            sync_interval: std::time::Duration::from_millis(self.sync_interval_ms),
            secret,
            clock,
            vclock,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The server a client binary talks to (normally the balancer), in the new
/// form (`--server URL`) or the old one (`--serip`/`--serport`, `-l`).
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Server URL (normally the balancer). Overrides --serip/--serport.
    #[arg(long)]
    pub server: Option<String>,
    /// Server address, as the old system named it.
    #[arg(long, default_value = "127.0.0.1")]
    pub serip: String,
    /// Server port, as the old system named it.
    #[arg(long, default_value_t = crate::balancer::DEFAULT_PORT)]
    pub serport: u16,
    /// Use loopback for every address (the old system's flag).
    #[arg(short = 'l', long = "run_locally", alias = "run-locally")]
    pub run_locally: bool,
}

impl TargetArgs {
    /// The server's URL (from --serip/--serport: https once a CA is
    /// installed, see [`host_url`]).
    pub fn url(&self) -> String {
        match &self.server {
            Some(url) => url.clone(),
            None => {
                let host = if self.run_locally {
                    "127.0.0.1"
                } else {
                    self.serip.as_str()
                };
                host_url(host, self.serport)
            }
        }
    }
}
