//! `podium-tablet`: follows teams and events (the old StoneTablet).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use podium::api::Client;
use podium::cli::{self, ClientTlsArgs, ServerArgs, TargetArgs};
use podium::rpc::ClientConfig;
use podium::scoreboard::Roster;
use podium::shutdown::Shutdown;
use podium::tablet::{self, PushSettings, DEFAULT_LEASE_SECS, DEFAULT_PORT};
use rand::SeedableRng as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Ask the server every --interval-ms.
    Pull,
    /// Serve a callback port and let the front-ends push.
    Push,
}

/// Podium tablet: a live view of chosen teams' medals and events' scores.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, value_enum, default_value_t = Mode::Push)]
    mode: Mode,
    /// Teams to follow (repeat or comma-separate); default: a random few.
    #[arg(long, value_delimiter = ',')]
    teams: Vec<String>,
    /// Events to follow (repeat or comma-separate); default: a random few.
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    /// Pull mode: milliseconds between polls.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Push mode: callback port to listen on (0 picks a free one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Push mode: address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Push mode: the host front-ends should call back (default: the listen address).
    #[arg(long)]
    callback_host: Option<String>,
    /// Push mode: subscription lease in seconds (renewed every third).
    #[arg(long, default_value_t = DEFAULT_LEASE_SECS)]
    lease_secs: u64,
    /// Client id sent with polls, as the old tablet did.
    #[arg(long, default_value_t = 0)]
    client_id: i64,
    #[command(flatten)]
    server_limits: ServerArgs,
    #[command(flatten)]
    tls: ClientTlsArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cli::init_tracing();
    cli::raise_fd_limit();
    args.tls.install()?;
    anyhow::ensure!(args.interval_ms >= 10, "--interval-ms must be at least 10");
    anyhow::ensure!(args.lease_secs >= 5, "--lease-secs must be at least 5");
    let url = args.target.url();
    let server = Client::new(&url, ClientConfig::default()).context("server URL")?;
    let limits = args.server_limits.to_config()?;
    let runtime = cli::runtime(args.server_limits.workers).context("starting the runtime")?;
    runtime.block_on(async {
        let shutdown = Shutdown::on_signal();
        let roster: Roster = loop {
            match server.roster().await {
                Ok(roster) => break roster,
                Err(e) => {
                    tracing::warn!(error = %e, "waiting for the server");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.triggered() => return Ok(()),
                    }
                }
            }
        };
        let mut rng = rand::rngs::StdRng::from_entropy();
        let (teams, events) = tablet::choose_follows(&roster, &args.teams, &args.events, &mut rng);
        tracing::info!(?teams, ?events, mode = ?args.mode, "following");
        match args.mode {
            Mode::Pull => {
                tablet::poll(
                    server,
                    teams,
                    events,
                    Duration::from_millis(args.interval_ms),
                    args.client_id,
                    shutdown,
                )
                .await;
                Ok(())
            }
            Mode::Push => {
                let listener = cli::bind(
                    cli::bind_addr(args.host, args.target.run_locally, args.port),
                    "tablet",
                )
                .await?;
                let bound = listener.local_addr()?;
                let host = args
                    .callback_host
                    .clone()
                    .unwrap_or_else(|| bound.ip().to_string());
                let scheme = args.server_limits.scheme();
                let callback_url = if host.contains(':') {
                    format!("{scheme}://[{host}]:{}/", bound.port())
                } else {
                    format!("{scheme}://{host}:{}/", bound.port())
                };
                let settings = PushSettings {
                    callback_url,
                    lease: Duration::from_secs(args.lease_secs),
                    server: limits,
                };
                tablet::push(server, listener, teams, events, settings, shutdown)
                    .await
                    .context("serving callbacks")
            }
        }
    })
}
