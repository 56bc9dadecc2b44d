//! `podium-frontend`: a front-end server (the old ObelixServer).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use podium::cli::{self, BindArgs, ClientTlsArgs, ClusterSecretArgs, ElectionArgs, ServerArgs};
use podium::election::driver::Node;
use podium::election::vclock::SharedClock;
use podium::frontend::{
    CacheMode, FrontendConfig, DEFAULT_CACHE_TTL_SECS, DEFAULT_DB_TIMEOUT_MS, DEFAULT_PORTS,
    DEFAULT_PULL_INTERVAL_MS,
};
use podium::secret::{Secret, FEEDER_PASSWORD_ENV};
use podium::shutdown::{Shutdown, Tasks};

/// Podium front-end: serves the public API from a cache kept coherent by the
/// db's change feed, checks the feeder password, forwards writes, pushes to
/// tablets.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// This front-end's uid (1 or 2 in the old demo; also picks the default port).
    #[arg(long, default_value_t = 1)]
    uid: u32,
    /// Port to listen on; default 8002 for uid 1, 8003 otherwise (0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    #[command(flatten)]
    bind: BindArgs,
    /// How the cache learns of changes.
    #[arg(long, value_enum, default_value_t = CacheMode::Push)]
    cache: CacheMode,
    /// Pull mode, as the old `-c` flag.
    #[arg(short = 'c', conflicts_with = "cache")]
    pull: bool,
    /// The db's URL (e.g. http://127.0.0.1:8000/).
    #[arg(long)]
    db: Option<String>,
    /// The db's host, as the old system named it (port 8000).
    #[arg(long)]
    dbhost: Option<String>,
    /// Milliseconds between change-feed polls in pull mode.
    #[arg(long, default_value_t = DEFAULT_PULL_INTERVAL_MS)]
    pull_interval_ms: u64,
    /// Seconds a cached value may live at most, whatever the feed says.
    #[arg(long, default_value_t = DEFAULT_CACHE_TTL_SECS)]
    cache_ttl_secs: u64,
    /// Most entries cached.
    #[arg(long, default_value_t = 10_000)]
    cache_capacity: u64,
    /// Milliseconds allowed for a call to the db.
    #[arg(long, default_value_t = DEFAULT_DB_TIMEOUT_MS)]
    db_timeout_ms: u64,
    /// File holding the feeder password; else $PODIUM_FEEDER_PASSWORD.
    #[arg(long)]
    password_file: Option<PathBuf>,
    #[command(flatten)]
    election: ElectionArgs,
    #[command(flatten)]
    secret: ClusterSecretArgs,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    tls: ClientTlsArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cli::init_tracing();
    cli::raise_fd_limit();
    args.tls.install()?;
    let db_url = match (&args.db, &args.dbhost) {
        (Some(url), _) => url.clone(),
        (None, Some(host)) if !args.bind.run_locally => {
            cli::host_url(host, podium::db::DEFAULT_PORT)
        }
        _ => cli::host_url("127.0.0.1", podium::db::DEFAULT_PORT),
    };
    let port = args.port.unwrap_or(if args.uid == 1 {
        DEFAULT_PORTS[0]
    } else {
        DEFAULT_PORTS[1]
    });
    let secret = args.secret.load().context("reading the cluster secret")?;
    let clock = args.election.clock();
    let vclock = SharedClock::new(args.uid as usize);
    // The db is a member too (uid 0): from --dbhost, or from --db's URL.
    let mut election_args = args.election.clone();
    if !election_args.peers.iter().any(|(uid, _)| *uid == 0) && args.dbhost.is_none() {
        election_args.peers.push((0, db_url.clone()));
    }
    let election = election_args
        .to_config(
            args.uid,
            args.dbhost.as_deref(),
            secret.clone(),
            clock.clone(),
            vclock.clone(),
        )
        .context("election settings")?;
    let config = FrontendConfig {
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
    let runtime = cli::runtime(args.server.workers).context("starting the runtime")?;
    runtime.block_on(async {
        let listener = cli::bind(args.bind.addr(port), "front-end").await?;
        let node = Node::new(election).context("election settings")?;
        let shutdown = Shutdown::on_signal();
        let tasks = Tasks::new(shutdown.clone());
        tasks.spawn(node.clone().run(shutdown.clone()));
        let served =
            podium::frontend::run(listener, config, |m| node.add_methods(m), shutdown).await;
        tasks.stop(cli::DRIVER_GRACE).await;
        served.context("serving")
    })
}
