//! `podium-frontend`: a front-end server (the old ObelixServer).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use podium::cli::{
    self, BindArgs, ClientTlsArgs, ClusterSecretArgs, ElectionArgs, HostPort, ServerArgs,
};
use podium::election::driver::Node;
use podium::election::vclock::SharedClock;
use podium::frontend::{
    CacheMode, FrontendConfig, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL_SECS,
    DEFAULT_DB_TIMEOUT_MS, DEFAULT_PORTS, DEFAULT_PULL_INTERVAL_MS,
};
use podium::secret::{Secret, FEEDER_PASSWORD_ENV};
use podium::shutdown::{Shutdown, Tasks};

/// Podium front-end: serves the public API from a cache kept coherent by the
/// db's change feed, checks the feeder password, forwards writes, pushes to
/// tablets.
#[derive(Debug, Parser)]
#[command(name = env!("CARGO_BIN_NAME"), version,
          after_help = cli::help_footer(&[cli::CLUSTER_SECRET_VAR, cli::FEEDER_PASSWORD_VAR]))]
struct Args {
    /// This front-end's uid (1 or 2 in the old demo; also picks the default port).
    #[arg(long, default_value_t = 1)]
    uid: u32,
    /// Port to listen on; default 8002 for uid 1, 8003 otherwise (0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// How the cache learns of changes.
    #[arg(long, value_enum, default_value_t = CacheMode::Push)]
    cache: CacheMode,
    /// Pull mode, as the old `-c` flag.
    #[arg(short = 'c', conflicts_with = "cache")]
    pull: bool,
    /// Milliseconds between change-feed polls in pull mode.
    #[arg(long, default_value_t = DEFAULT_PULL_INTERVAL_MS)]
    pull_interval_ms: u64,
    /// Seconds a cached value may live at most, whatever the feed says.
    #[arg(long, default_value_t = DEFAULT_CACHE_TTL_SECS)]
    cache_ttl_secs: u64,
    /// Most entries cached.
    #[arg(long, default_value_t = DEFAULT_CACHE_CAPACITY)]
    cache_capacity: u64,
    /// Milliseconds allowed for a call to the db.
    #[arg(long, default_value_t = DEFAULT_DB_TIMEOUT_MS)]
    db_timeout_ms: u64,
    #[command(flatten)]
    bind: BindArgs,
    /// The db's URL [default: http://127.0.0.1:8000/].
    #[arg(long, conflicts_with = "dbhost", help_heading = "Cluster")]
    db: Option<String>,
    /// The db, HOST or HOST:PORT (port 8000 if not given), as the old system named it.
    #[arg(long, help_heading = "Cluster")]
    dbhost: Option<HostPort>,
    /// The other front-end of the old pair, HOST or HOST:PORT, as the old
    /// system named it: uid 2 (port 8003 if not given) for uid 1, uid 1
    /// (port 8002) for uid 2. Other uids name members with --peer.
    #[arg(long, help_heading = "Cluster")]
    zhost: Option<HostPort>,
    /// A range push callbacks may point into even when it is not the
    /// subscriber's own address (CIDR, e.g. 10.0.0.0/8); repeat for more.
    #[arg(long = "push-allow", help_heading = "Cluster")]
    push_allow: Vec<ipnet::IpNet>,
    #[command(flatten)]
    election: ElectionArgs,
    #[command(flatten)]
    secret: ClusterSecretArgs,
    #[command(flatten)]
    guesses: cli::GuessArgs,
    /// File holding the feeder password; else $PODIUM_FEEDER_PASSWORD.
    #[arg(long, help_heading = "Secrets")]
    password_file: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    tls: ClientTlsArgs,
}

fn main() -> ExitCode {
    cli::main(env!("CARGO_BIN_NAME"), run)
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    cli::init_tracing();
    cli::raise_fd_limit();
    args.tls.install()?;
    args.guesses.install()?;
    let db_port = podium::db::DEFAULT_PORT;
    let db_url = match (&args.db, &args.dbhost) {
        (Some(url), _) => url.clone(),
        (None, Some(host)) => host.url(db_port),
        (None, None) => cli::host_url("127.0.0.1", db_port),
    };
    let port = args.port.unwrap_or(if args.uid == 1 {
        DEFAULT_PORTS[0]
    } else {
        DEFAULT_PORTS[1]
    });
    // The db is a member too (uid 0); --zhost is the other front-end.
    let mut old = vec![(0, db_url.clone())];
    if let Some(z) = &args.zhost {
        let (other, other_port) = match args.uid {
            1 => (2, DEFAULT_PORTS[1]),
            2 => (1, DEFAULT_PORTS[0]),
            uid => anyhow::bail!(
                "--zhost names the other front-end of the old pair, so it needs --uid 1 or 2 \
                 (this is uid {uid}): name members with --peer UID=HOST:PORT"
            ),
        };
        old.push((other, z.url(other_port)));
    }
    let peers = args.election.peers(args.uid, &old);
    let peer_urls: Vec<String> = peers.values().cloned().collect();
    let secret = args.secret.load().context("reading the cluster secret")?;
    let clock = args.election.clock();
    let vclock = SharedClock::new(args.uid as usize);
    let election = args
        .election
        .to_config(
            args.uid,
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
        uid: args.uid,
        cluster_urls,
        push_allow: args.push_allow.clone(),
        db_url,
        cluster_secret: secret,
        feeder_password: Secret::load(
            FEEDER_PASSWORD_ENV,
            args.password_file.as_deref(),
            "--password-file",
        )
        .context("reading the feeder password")?,
        cache_mode: if args.pull {
            CacheMode::Pull
        } else {
            args.cache
        },
        pull_interval: Duration::from_millis(args.pull_interval_ms),
        cache_ttl: Duration::from_secs(args.cache_ttl_secs),
        cache_capacity: args.cache_capacity,
        db_timeout: Duration::from_millis(args.db_timeout_ms),
        server: args.server.to_config()?,
        clock,
        vclock,
    };
    config.validate().context("invalid configuration")?;
    let ip = args
        .bind
        .ip(peer_urls.iter().map(String::as_str))
        .context("choosing the address to listen on")?;
    let runtime = cli::runtime(args.server.workers).context("starting the runtime")?;
    runtime.block_on(async {
        let node = Node::new(election).context("election settings")?;
        let listener = cli::bind((ip, port).into(), "front-end").await?;
        let shutdown = Shutdown::on_signal();
        let tasks = Tasks::new(shutdown.clone());
        tasks.spawn(node.clone().run(shutdown.clone()));
        let served =
            podium::frontend::run(listener, config, |m| node.add_methods(m), shutdown).await;
        tasks.stop(cli::DRIVER_GRACE).await;
        served.context("serving")
    })
}
