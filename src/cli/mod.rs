//! What every binary does the same way at its edge: flags shared by several
//! binaries (listening, the old host flags, the election group, limits,
//! secrets), one `--help` layout, logging setup, the runtime, the shutdown
//! signal, reporting the bound address, and a fatal error as one line.
//!
//! [`addr`] parses the old `HOST[:PORT]` flags and chooses the address to
//! listen on when no flag says.

pub mod addr;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

pub use addr::{HostPort, HostPortError};

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

/// Limits every server binary exposes as flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Server limits")]
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

/// Binds, logs and announces; the common start of every server binary.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%bound, "{what} listening");
    announce_listening(bound);
    Ok(listener)
}

/// Membership of the election group and its timings. The old host flags
/// that also name members (`--xhost`, `--dbhost`, ...) belong to each
/// binary; it hands them to [`ElectionArgs::to_config`].
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Cluster")]
pub struct ElectionArgs {
    /// Another member of the election group, `UID=HOST:PORT` (or `UID=URL`); repeat for each.
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<(u32, String)>,
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

/// `UID=HOST:PORT` or `UID=URL` into the uid and the member's URL.
fn parse_peer(s: &str) -> Result<(u32, String), String> {
    let (uid, addr) = s.split_once('=').ok_or("expected UID=HOST:PORT")?;
    let uid = uid.trim().parse().map_err(|_| format!("bad uid {uid:?}"))?;
    let url = if addr.contains("://") {
        addr.to_owned()
    } else {
        let hp = HostPort::parse(addr).map_err(|e| e.to_string())?;
        let port = hp
            .port
            .ok_or("expected UID=HOST:PORT (the port is needed)")?;
        hp.url(port)
    };
    Ok((uid, url))
}

impl ElectionArgs {
    /// This process's cluster clock (skewed only when a test asks).
    pub fn clock(&self) -> crate::clock::ClusterClock {
        crate::clock::ClusterClock::with_skew_ms(self.clock_skew_ms)
    }

    /// Every other member's URL by uid: `old` (from the binary's old host
    /// flags), then `--peer`, which wins for a uid both name.
    pub fn peers(
        &self,
        uid: u32,
        old: &[(u32, String)],
    ) -> std::collections::BTreeMap<u32, String> {
        let mut peers: std::collections::BTreeMap<u32, String> = old.iter().cloned().collect();
        peers.extend(self.peers.iter().cloned());
        peers.remove(&uid);
        peers
    }

    /// The election config of member `uid` among `peers` (see
    /// [`ElectionArgs::peers`]).
    ///
    /// # Errors
    /// Invalid timings or membership.
    pub fn to_config(
        &self,
        uid: u32,
        peers: std::collections::BTreeMap<u32, String>,
        secret: crate::secret::Secret,
        clock: crate::clock::ClusterClock,
        vclock: crate::election::vclock::SharedClock,
    ) -> Result<crate::election::config::ElectionConfig, crate::election::config::ConfigError> {
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
/// form (`--server URL`) or the old one (`--serip`/`--serport`). Global, so
/// a binary with subcommands takes them after the subcommand too.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Server")]
pub struct TargetArgs {
    /// Server URL (normally the balancer's). Overrides --serip/--serport.
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// Server host, HOST or HOST:PORT, as the old system named it [default: 127.0.0.1].
    #[arg(long, global = true)]
    pub serip: Option<HostPort>,
    /// Server port, as the old system named it [default: 8001].
    #[arg(long, global = true)]
    pub serport: Option<u16>,
}

impl TargetArgs {
    /// True when the old flags name the server.
    pub fn is_old_style(&self) -> bool {
        self.server.is_none() && (self.serip.is_some() || self.serport.is_some())
    }

    /// The server's URL.
    ///
    /// # Errors
    /// `--serip` with a port and `--serport` too.
    pub fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.server {
            return Ok(url.clone());
        }
        let serip = self.serip.clone().unwrap_or_else(|| HostPort {
            host: Ipv4Addr::LOCALHOST.to_string(),
            port: None,
        });
        let port = match (serip.port, self.serport) {
            (Some(a), Some(b)) if a != b => {
                anyhow::bail!("--serip {serip} and --serport {b} give two different ports")
            }
            (Some(port), _) | (None, Some(port)) => port,
            (None, None) => crate::balancer::DEFAULT_PORT,
        };
        Ok(serip.url(port))
    }
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

    #[test]
    fn peers_take_host_port_or_url() {
        assert_eq!(
            parse_peer("1=10.0.0.2:8002"),
            Ok((1, "http://10.0.0.2:8002/".to_owned()))
        );
        assert_eq!(
            parse_peer("2=[fd00::3]:8003"),
            Ok((2, "http://[fd00::3]:8003/".to_owned()))
        );
        assert_eq!(
            parse_peer("0=http://db:8000/"),
            Ok((0, "http://db:8000/".to_owned()))
        );
        assert!(parse_peer("1=10.0.0.2").is_err());
        assert!(parse_peer("x=10.0.0.2:1").is_err());
        assert!(parse_peer("10.0.0.2:1").is_err());
    }

    #[test]
    fn the_old_server_flags_make_one_url() {
        use clap::Parser as _;
        #[derive(Debug, clap::Parser)]
        struct T {
            #[command(flatten)]
            target: TargetArgs,
        }
        let url = |args: &[&str]| {
            T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
                .map_err(|e| e.to_string())
                .and_then(|t| t.target.url().map_err(|e| e.to_string()))
        };
        assert_eq!(url(&[]).unwrap(), "http://127.0.0.1:8001/");
        assert_eq!(
            url(&["--serip=localhost", "--serport=8001"]).unwrap(),
            "http://localhost:8001/"
        );
        assert_eq!(
            url(&["--serip=10.0.0.4:9001"]).unwrap(),
            "http://10.0.0.4:9001/"
        );
        assert_eq!(url(&["--serip=::1"]).unwrap(), "http://[::1]:8001/");
        assert!(url(&["--serip=h:1", "--serport=2"]).is_err());
        assert!(url(&["--serip=h:99999"]).is_err());
    }
}
