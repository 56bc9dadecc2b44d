//! `podium-db`: the database server (the old DatabaseServer).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use podium::cli::{
    self, BindArgs, ClientTlsArgs, ClusterSecretArgs, ElectionArgs, HostPort, ServerArgs,
};
use podium::db::{DbConfig, DbServer, DEFAULT_DB_FILE, DEFAULT_PORT};
use podium::election::driver::Node;
use podium::election::vclock::SharedClock;
use podium::frontend::DEFAULT_PORTS;
use podium::scoreboard::Roster;
use podium::shutdown::{Shutdown, Tasks};
use podium::store::StartupCheck;

/// Podium database server: owns the SQLite file, orders every write, serves
/// the change feed. All its methods need the cluster secret.
#[derive(Debug, Parser)]
#[command(name = env!("CARGO_BIN_NAME"), version,
          after_help = cli::help_footer(&[cli::CLUSTER_SECRET_VAR]))]
struct Args {
    /// Port to listen on (0 picks a free one, printed as `LISTENING <addr>`).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// SQLite file; created if missing.
    #[arg(long, default_value = DEFAULT_DB_FILE)]
    db_file: PathBuf,
    /// Roster of a new database: a TOML file with `teams = [...]` and
    /// `events = [...]` (see examples/roster.toml). Default: the old
    /// system's five teams and four events.
    #[arg(long)]
    roster: Option<PathBuf>,
    /// Most push subscriptions in all.
    #[arg(long, default_value_t = podium::db::DEFAULT_MAX_SUBSCRIPTIONS)]
    max_subscriptions: usize,
    /// Most push subscriptions of one subscriber address.
    #[arg(long, default_value_t = podium::db::DEFAULT_MAX_SUBSCRIPTIONS_PER_CLIENT)]
    max_subscriptions_per_address: usize,
    /// What to check of an existing file before opening it: `full`
    /// (SQLite's integrity check), `quick` (its quick check: pages only,
    /// about a third of the time) or `off`. A damaged file is refused.
    #[arg(long, value_enum, default_value_t = StartupCheck::Full)]
    startup_check: StartupCheck,
    /// This process's uid in the election group.
    #[arg(long, default_value_t = 0)]
    uid: u32,
    #[command(flatten)]
    bind: BindArgs,
    /// Front-end uid 1, HOST or HOST:PORT (port 8002 if not given), as the old system named it.
    #[arg(long, help_heading = "Cluster")]
    xhost: Option<HostPort>,
    /// Front-end uid 2, HOST or HOST:PORT (port 8003 if not given), as the old system named it.
    #[arg(long, help_heading = "Cluster")]
    yhost: Option<HostPort>,
    #[command(flatten)]
    election: ElectionArgs,
    #[command(flatten)]
    secret: ClusterSecretArgs,
    #[command(flatten)]
    guesses: cli::GuessArgs,
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
    let secret = args.secret.load().context("reading the cluster secret")?;
    let clock = args.election.clock();
    let vclock = SharedClock::new(args.uid as usize);
    let mut old = Vec::new();
    if let Some(x) = &args.xhost {
        old.push((1, x.url(DEFAULT_PORTS[0])));
    }
    if let Some(y) = &args.yhost {
        old.push((2, y.url(DEFAULT_PORTS[1])));
    }
    let peers = args.election.peers(args.uid, &old);
    let peer_urls: Vec<String> = peers.values().cloned().collect();
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
    let roster = args
        .roster
        .as_deref()
        .map(Roster::from_file)
        .transpose()
        .context("reading the roster")?;
    let ip = args
        .bind
        .ip(peer_urls.iter().map(String::as_str))
        .context("choosing the address to listen on")?;
    let config = DbConfig {
        db_file: args.db_file.clone(),
        roster,
        cluster_secret: secret,
        server: args.server.to_config()?,
        clock,
        vclock,
        max_subscriptions: args.max_subscriptions,
        max_subscriptions_per_client: args.max_subscriptions_per_address,
        startup_check: args.startup_check,
    };
    let runtime = cli::runtime(args.server.workers(1)).context("starting the runtime")?;
    runtime.block_on(async {
        let shutdown = Shutdown::on_signal();
        let db = DbServer::open(config, shutdown.clone())
            .with_context(|| format!("opening {}", args.db_file.display()))?;
        let node = Node::new(election).context("election settings")?;
        let listener = cli::bind((ip, args.port).into(), "db").await?;
        let mut methods = db.methods();
        node.add_methods(&mut methods);
        let tasks = Tasks::new(shutdown.clone());
        tasks.spawn(node.run(shutdown.clone()));
        let served = db.serve(listener, methods).await;
        tasks.stop(cli::DRIVER_GRACE).await;
        served.context("serving")
    })
}
