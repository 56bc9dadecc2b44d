//! `podium-db`: the database server (the old DatabaseServer).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use podium::cli::{self, ClusterSecretArgs, ServerArgs};
use podium::clock::ClusterClock;
use podium::db::{DbConfig, DbServer, DEFAULT_DB_FILE, DEFAULT_PORT};

/// Podium database server: owns the SQLite file, orders every write, serves
/// the change feed. All its methods need the cluster secret.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on (0 picks a free one, printed as `LISTENING <addr>`).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Listen on loopback only (the old system's flag).
    #[arg(short = 'l', long = "run_locally", alias = "run-locally")]
    run_locally: bool,
    /// SQLite file; created with the default roster if missing.
    #[arg(long, default_value = DEFAULT_DB_FILE)]
    db_file: PathBuf,
    /// This process's uid in the election group.
    #[arg(long, default_value_t = 0)]
    uid: u32,
    /// Test only: skew this process's local clock by this many milliseconds.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    clock_skew_ms: i64,
    #[command(flatten)]
    secret: ClusterSecretArgs,
    #[command(flatten)]
    server: ServerArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cli::init_tracing();
    let config = DbConfig {
        db_file: args.db_file.clone(),
        cluster_secret: args.secret.load().context("reading the cluster secret")?,
        server: args.server.to_config()?,
        clock: ClusterClock::with_skew_ms(args.clock_skew_ms),
    };
    let runtime = cli::runtime(args.server.workers).context("starting the runtime")?;
    runtime.block_on(async {
        let db = DbServer::open(config)
            .with_context(|| format!("opening {}", args.db_file.display()))?;
        let listener =
            cli::bind(cli::bind_addr(args.host, args.run_locally, args.port), "db").await?;
        let methods = db.methods();
        db.serve(listener, methods, cli::shutdown_signal())
            .await
            .context("serving")
    })
}
