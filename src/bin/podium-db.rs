//! `podium-db`: the database server (the old DatabaseServer).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use podium::cli::{self, BindArgs, ClientTlsArgs, ClusterSecretArgs, ElectionArgs, ServerArgs};
use podium::db::{DbConfig, DbServer, DEFAULT_DB_FILE, DEFAULT_PORT};
use podium::election::driver::Node;
use podium::election::vclock::SharedClock;
use podium::scoreboard::Roster;
use podium::shutdown::{Shutdown, Tasks};

/// Podium database server: owns the SQLite file, orders every write, serves
/// the change feed. All its methods need the cluster secret.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on (0 picks a free one, printed as `LISTENING <addr>`).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    #[command(flatten)]
    bind: BindArgs,
    /// SQLite file; created if missing.
    #[arg(long, default_value = DEFAULT_DB_FILE)]
    db_file: PathBuf,
    /// Roster of a new database: a TOML file with `teams = [...]` and
    /// `events = [...]` (see examples/roster.toml). Default: the old
    /// system's five teams and four events.
    #[arg(long)]
    roster: Option<PathBuf>,
    /// This process's uid in the election group.
    #[arg(long, default_value_t = 0)]
    uid: u32,
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
    let secret = args.secret.load().context("reading the cluster secret")?;
    let clock = args.election.clock();
    let vclock = SharedClock::new(args.uid as usize);
    let election = args
        .election
        .to_config(
            args.uid,
            None,
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
    let config = DbConfig {
        db_file: args.db_file.clone(),
        roster,
        cluster_secret: secret,
        server: args.server.to_config()?,
        clock,
        vclock,
    };
    let runtime = cli::runtime(args.server.workers).context("starting the runtime")?;
    runtime.block_on(async {
        let shutdown = Shutdown::on_signal();
        let db = DbServer::open(config, shutdown.clone())
            .with_context(|| format!("opening {}", args.db_file.display()))?;
        let node = Node::new(election).context("election settings")?;
        let listener = cli::bind(args.bind.addr(args.port), "db").await?;
        let mut methods = db.methods();
        node.add_methods(&mut methods);
        let tasks = Tasks::new(shutdown.clone());
        tasks.spawn(node.run(shutdown.clone()));
        let served = db.serve(listener, methods).await;
        tasks.stop(cli::DRIVER_GRACE).await;
        served.context("serving")
    })
}
