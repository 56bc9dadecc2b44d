//! What every binary does the same way at its edge: flags shared by several
//! binaries (listening, the old host flags, the election group, limits,
//! secrets), one `--help` layout, logging setup, the runtime, the shutdown
//! signal, reporting the bound address, and a fatal error as one line.
//!
//! [`addr`] parses the old `HOST[:PORT]` flags and chooses the address to
//! listen on when no flag says.

pub mod addr;
mod election_args;
mod guess_args;
mod target_args;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

pub use addr::{HostPort, HostPortError};
pub use election_args::{ElectionArgs, PeerAddr};
pub use guess_args::GuessArgs;
pub use target_args::TargetArgs;

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
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
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

/// The footer of every binary's `--help`: logging, backtraces, and the
/// environment variables `vars` (each `(NAME, what it holds)`).
pub fn help_footer(vars: &[(&str, &str)]) -> String {
    let mut out = String::from("Environment:\n");
    let mut line = |name: &str, what: &str| {
        out.push_str(&format!("  {name:<24} {what}\n"));
    };
    line(
        "RUST_LOG",
        "what to log to stderr (default: info), e.g. RUST_LOG=debug or RUST_LOG=podium=debug",
    );
    line("RUST_BACKTRACE=1", "add a backtrace to a fatal error");
    for (name, what) in vars {
        line(name, what);
    }
    out
}

/// [`help_footer`] entry for `$PODIUM_CLUSTER_SECRET`.
pub const CLUSTER_SECRET_VAR: (&str, &str) = (
    crate::secret::CLUSTER_SECRET_ENV,
    "the cluster secret, unless --cluster-secret-file",
);
/// [`help_footer`] entry for `$PODIUM_FEEDER_PASSWORD`.
pub const FEEDER_PASSWORD_VAR: (&str, &str) = (
    crate::secret::FEEDER_PASSWORD_ENV,
    "the feeder password, unless --password-file",
);

/// Runs a binary's `run` and reports a failure as one line on stderr,
/// `NAME: error: WHAT: WHY` with each cause said once, then exits 1. A
/// backtrace follows only when `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`)
/// asks for one.
pub fn main(name: &str, run: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: {}", error_line(&e));
            let backtrace = e.backtrace();
            if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                eprintln!("{backtrace}");
            }
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, `outer: inner: root`, leaving out a
/// cause whose text the line already holds (a wrapper that prints its
/// source) and turning line breaks into spaces.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

/// Limits every server binary exposes as flags, and its TLS certificate.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Server limits")]
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
    /// Event streams (the scoreboard's /events) open at once, counted apart
    /// from --max-connections and never closed to make room; past it a new
    /// one gets 503.
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_MAX_STREAMS)]
    pub max_streams: usize,
    /// Event streams open at once from one client address (IPv6: one /64).
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_MAX_STREAMS_PER_IP)]
    pub max_streams_per_ip: usize,
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
    #[arg(long, requires = "tls_key", help_heading = "TLS")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", help_heading = "TLS")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Runtime worker threads [default: 1]. One thread gave the lowest
    /// latency and the least CPU per call on the 2-core machines we
    /// measured; a balancer serving thousands of event streams wants 2 (a
    /// change is a socket write per stream, and with one thread the calls
    /// wait behind them; see README, Benchmarks).
    #[arg(long)]
    pub workers: Option<usize>,
}

impl ServerArgs {
    /// `--workers`, else `default`.
    pub fn workers(&self, default: usize) -> usize {
        self.workers.unwrap_or(default)
    }

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
            self.workers.is_none_or(|w| (1..=64).contains(&w)),
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
            max_streams: self.max_streams,
            max_streams_per_ip: self.max_streams_per_ip,
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
#[command(next_help_heading = "TLS")]
pub struct ClientTlsArgs {
    /// PEM file of the CA whose certificates the cluster's servers use:
    /// calls to https:// URLs trust it (and nothing else), and URLs built
    /// from host-only flags (--dbhost, --xhost, --serip...) use https.
    #[arg(long, global = true)]
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

/// `http`, or `https` once a CA is installed ([`ClientTlsArgs::install`]):
/// the scheme of a server named by a host-only flag.
pub fn client_scheme() -> &'static str {
    if crate::rpc::tls::default_client().is_some() {
        "https"
    } else {
        "http"
    }
}

/// `SCHEME://HOST:PORT/` with [`client_scheme`]: the URL of a server named
/// by a host-only flag. An IPv6 address is bracketed.
pub fn host_url(host: &str, port: u16) -> String {
    format!("{}://{}/", client_scheme(), addr::authority(host, port))
}

/// Where the cluster secret comes from (never a flag's value: `ps` shows flags).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Secrets")]
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

/// Which address a process listens on, besides its port (whose default
/// differs per binary).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Listening")]
pub struct BindArgs {
    /// Address to listen on (0.0.0.0 or :: for every interface). Default:
    /// loopback when every peer (a tablet's: its server) is on loopback,
    /// else the address this host reaches the first other one from, so
    /// that it can reach this process back.
    #[arg(long, conflicts_with = "run_locally")]
    pub host: Option<IpAddr>,
    /// Listen on loopback (127.0.0.1) only, as the old system's flag.
    #[arg(short = 'l', long = "run_locally", alias = "run-locally")]
    pub run_locally: bool,
}

impl BindArgs {
    /// The address to listen on: `--host`, loopback with `-l`, else
    /// [`addr::default_listen_ip`] of `peers` (URLs or `host:port`).
    ///
    /// # Errors
    /// As [`addr::default_listen_ip`].
    pub fn ip<'a>(
        &self,
        peers: impl IntoIterator<Item = &'a str>,
    ) -> Result<IpAddr, addr::BindError> {
        match (self.host, self.run_locally) {
            (Some(host), _) => Ok(host),
            (None, true) => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            (None, false) => addr::default_listen_ip(peers),
        }
    }
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
        .with_context(|| format!("cannot listen on {addr}"))?;
    let listener = socket
        .listen(LISTEN_BACKLOG)
        .with_context(|| format!("listening on {addr}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%bound, "{what} listening");
    announce_listening(bound);
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_and_its_causes_make_one_line_each_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let e = anyhow::Error::new(io).context("cannot listen on 127.0.0.1:8000");
        assert_eq!(
            error_line(&e),
            "cannot listen on 127.0.0.1:8000: address in use"
        );
        // A wrapper whose message already holds its source's.
        #[derive(Debug, thiserror::Error)]
        #[error("election settings: {0}")]
        struct Wrapper(#[source] std::io::Error);
        let inner = std::io::Error::other("peer 2: bad\nurl");
        let e = anyhow::Error::new(Wrapper(inner)).context("starting");
        assert_eq!(
            error_line(&e),
            "starting: election settings: peer 2: bad url"
        );
    }
}
