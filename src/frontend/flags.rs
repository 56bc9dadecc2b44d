//! The front-end's command line: its flags, and the configuration they
//! make (the binary parses, installs what is process-wide, and runs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use super::{
    CacheMode, FrontendConfig, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL_SECS,
    DEFAULT_DB_TIMEOUT_MS, DEFAULT_PORTS, DEFAULT_PULL_INTERVAL_MS,
};
use crate::cli::{
    self, BindArgs, ClientTlsArgs, ClusterSecretArgs, ElectionArgs, HostPort, ServerArgs,
};
use crate::election::config::ElectionConfig;
use crate::election::vclock::SharedClock;
use crate::secret::{Secret, FEEDER_PASSWORD_ENV};

/// Podium front-end: serves the public API from a cache kept coherent by the
/// db's change feed, checks the feeder password, forwards writes, pushes to
/// tablets.
#[derive(Debug, clap::Parser)]
#[command(name = "podium-frontend", version,
          after_help = cli::help_footer(&[cli::CLUSTER_SECRET_VAR, cli::FEEDER_PASSWORD_VAR]))]
pub struct FrontendFlags {
    /// This front-end's uid (1 or 2 in the old demo; also picks the default port).
    #[arg(long, default_value_t = 1)]
    pub uid: u32,
    /// Port to listen on; default 8002 for uid 1, 8003 otherwise (0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// How the cache learns of changes.
    #[arg(long, value_enum, default_value_t = CacheMode::Push)]
    pub cache: CacheMode,
    /// Pull mode, as the old `-c` flag.
    #[arg(short = 'c', conflicts_with = "cache")]
    pub pull: bool,
    /// Milliseconds between change-feed polls in pull mode.
    #[arg(long, default_value_t = DEFAULT_PULL_INTERVAL_MS)]
    pub pull_interval_ms: u64,
    /// Seconds a cached value may live at most, whatever the feed says.
    #[arg(long, default_value_t = DEFAULT_CACHE_TTL_SECS)]
    pub cache_ttl_secs: u64,
    /// Most entries cached.
    #[arg(long, default_value_t = DEFAULT_CACHE_CAPACITY)]
    pub cache_capacity: u64,
    /// Milliseconds allowed for a call to the db.
    #[arg(long, default_value_t = DEFAULT_DB_TIMEOUT_MS)]
    pub db_timeout_ms: u64,
    #[command(flatten)]
    pub bind: BindArgs,
    /// The db's URL [default: http://127.0.0.1:8000/].
    #[arg(long, conflicts_with = "dbhost", help_heading = "Cluster")]
    pub db: Option<String>,
    /// The db, HOST or HOST:PORT (port 8000 if not given), as the old system named it.
    #[arg(long, help_heading = "Cluster")]
    pub dbhost: Option<HostPort>,
    /// The other front-end of the old pair, HOST or HOST:PORT, as the old
    /// system named it: uid 2 (port 8003 if not given) for uid 1, uid 1
    /// (port 8002) for uid 2. Other uids name members with --peer.
    #[arg(long, help_heading = "Cluster")]
    pub zhost: Option<HostPort>,
    /// A range push callbacks may point into even when it is not the
    /// subscriber's own address (CIDR, e.g. 10.0.0.0/8); repeat for more.
    #[arg(long = "push-allow", help_heading = "Cluster")]
    pub push_allow: Vec<ipnet::IpNet>,
    #[command(flatten)]
    pub election: ElectionArgs,
    #[command(flatten)]
    pub secret: ClusterSecretArgs,
    #[command(flatten)]
    pub guesses: cli::GuessArgs,
    /// File holding the feeder password; else $PODIUM_FEEDER_PASSWORD.
    #[arg(long, help_heading = "Secrets")]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

/// What the flags make: the front-end's and its election member's
/// configurations, and where to listen.
#[derive(Debug)]
pub struct Start {
    pub config: FrontendConfig,
    pub election: ElectionConfig,
    pub addr: SocketAddr,
}

impl FrontendFlags {
    /// The configuration the flags describe (secrets read, peers resolved).
    ///
    /// # Errors
    /// A secret that cannot be read, flags that contradict each other, or
    /// no address to listen on.
    pub fn start(&self) -> anyhow::Result<Start> {
        let db_port = crate::db::DEFAULT_PORT;
        let db_url = match (&self.db, &self.dbhost) {
            (Some(url), _) => url.clone(),
            (None, Some(host)) => host.url(db_port),
            (None, None) => cli::host_url("127.0.0.1", db_port),
        };
        let port = self.port.unwrap_or(if self.uid == 1 {
            DEFAULT_PORTS[0]
        } else {
            DEFAULT_PORTS[1]
        });
        // The db is a member too (uid 0); --zhost is the other front-end.
        let mut old = vec![(0, db_url.clone())];
        if let Some(z) = &self.zhost {
            let (other, other_port) = match self.uid {
                1 => (2, DEFAULT_PORTS[1]),
                2 => (1, DEFAULT_PORTS[0]),
                uid => anyhow::bail!(
                    "--zhost names the other front-end of the old pair, so it needs --uid 1 or 2 \
                     (this is uid {uid}): name members with --peer UID=HOST:PORT"
                ),
            };
            old.push((other, z.url(other_port)));
        }
        let peers = self.election.peers(self.uid, &old);
        let peer_urls: Vec<String> = peers.values().cloned().collect();
        let secret = self.secret.load().context("reading the cluster secret")?;
        let clock = self.election.clock();
        let vclock = SharedClock::new(self.uid as usize);
        let election = self
            .election
            .to_config(
                self.uid,
                peers,
                secret.clone(),
                clock.clone(),
                vclock.clone(),
            )
            .context("election settings")?;
        let cluster_urls = std::iter::once(db_url.clone())
            .chain(election.peers.values().cloned())
            .collect();
        let config = FrontendConfig {
            uid: self.uid,
            cluster_urls,
            push_allow: self.push_allow.clone(),
            db_url,
            cluster_secret: secret,
            feeder_password: Secret::load(
                FEEDER_PASSWORD_ENV,
                self.password_file.as_deref(),
                "--password-file",
            )
            .context("reading the feeder password")?,
            cache_mode: if self.pull {
                CacheMode::Pull
            } else {
                self.cache
            },
            pull_interval: Duration::from_millis(self.pull_interval_ms),
            cache_ttl: Duration::from_secs(self.cache_ttl_secs),
            cache_capacity: self.cache_capacity,
            db_timeout: Duration::from_millis(self.db_timeout_ms),
            server: self.server.to_config()?,
            clock,
            vclock,
        };
        config.validate().context("invalid configuration")?;
        let ip = self
            .bind
            .ip(peer_urls.iter().map(String::as_str))
            .context("choosing the address to listen on")?;
        Ok(Start {
            config,
            election,
            addr: (ip, port).into(),
        })
    }
}
