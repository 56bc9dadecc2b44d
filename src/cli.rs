//! What every binary does the same way at its edge: logging setup, the
//! runtime, the shutdown signal, and reporting the bound address.

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

/// Limits every server binary exposes as flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Largest request body in bytes (after gzip decoding).
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Milliseconds allowed for a request's headers, and for an idle keep-alive connection.
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_HEADER_READ_TIMEOUT_MS)]
    pub header_timeout_ms: u64,
    /// Milliseconds allowed for a request's body.
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_BODY_READ_TIMEOUT_MS)]
    pub body_timeout_ms: u64,
    /// Runtime worker threads; 1 runs everything on one thread, which on
    /// the 2-core machines we measured gave the lowest latency and the least
    /// CPU per request, for the balancer too (see README, Benchmarks).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

impl ServerArgs {
    /// # Errors
    /// A limit of zero.
    pub fn to_config(&self) -> anyhow::Result<crate::rpc::ServerConfig> {
        anyhow::ensure!(self.max_body_bytes > 0, "--max-body-bytes must be positive");
        anyhow::ensure!(
            self.max_connections > 0,
            "--max-connections must be positive"
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
            (1..=64).contains(&self.workers),
            "--workers must be 1 to 64"
        );
        Ok(crate::rpc::ServerConfig {
            max_body_bytes: self.max_body_bytes,
            max_connections: self.max_connections,
            header_read_timeout: std::time::Duration::from_millis(self.header_timeout_ms),
            body_read_timeout: std::time::Duration::from_millis(self.body_timeout_ms),
            ..crate::rpc::ServerConfig::default()
        })
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

/// Binds, logs and announces; the common start of every server binary.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%bound, "{what} listening");
    announce_listening(bound);
    Ok(listener)
}

/// Membership of the election group and its timings.
#[derive(Debug, Clone, clap::Args)]
pub struct ElectionArgs {
    /// Another member of the election group, `UID=HOST:PORT` (or `UID=URL`); repeat for each.
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

fn parse_peer(s: &str) -> Result<(u32, String), String> {
    let (uid, addr) = s.split_once('=').ok_or("expected UID=HOST:PORT")?;
    let uid = uid.trim().parse().map_err(|_| format!("bad uid {uid:?}"))?;
    let url = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}/")
    };
    Ok((uid, url))
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
                peers.insert(peer_uid, format!("http://{host}:{port}/"));
            }
        }
        for (peer_uid, url) in &self.peers {
            peers.insert(*peer_uid, url.clone());
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
    /// The server's URL.
    pub fn url(&self) -> String {
        match &self.server {
            Some(url) => url.clone(),
            None => {
                let host = if self.run_locally {
                    "127.0.0.1"
                } else {
                    self.serip.as_str()
                };
                format!("http://{host}:{}/", self.serport)
            }
        }
    }
}
