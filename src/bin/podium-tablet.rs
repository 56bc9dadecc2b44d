//! `podium-tablet`: follows teams and events (the old StoneTablet).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use podium::api::Client;
use podium::cli::{self, BindArgs, ClientTlsArgs, ServerArgs, TargetArgs};
use podium::rpc::ClientConfig;
use podium::scoreboard::Roster;
use podium::shutdown::Shutdown;
use podium::tablet::{self, Mode, PushSettings, DEFAULT_LEASE_SECS, DEFAULT_PORT};
use rand::SeedableRng as _;

/// Podium tablet: a live view of chosen teams' medals and events' scores.
///
/// In push mode it listens on --port for the front-ends' callbacks and
/// gives them the address it listens on (or --callback-host).
#[derive(Debug, Parser)]
#[command(name = env!("CARGO_BIN_NAME"), version, after_help = cli::help_footer(&[]))]
struct Args {
    /// How the view learns of changes.
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
    /// Push mode: the host front-ends should call back. Default: the
    /// address listened on; with 0.0.0.0 or ::, the address this host
    /// reaches the server from.
    #[arg(long)]
    callback_host: Option<String>,
    /// Push mode: subscription lease in seconds (renewed every third).
    #[arg(long, default_value_t = DEFAULT_LEASE_SECS)]
    lease_secs: u64,
    /// Client id sent with polls, as the old tablet did.
    #[arg(long, default_value_t = 0)]
    client_id: i64,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    bind: BindArgs,
    #[command(flatten)]
    server_limits: ServerArgs,
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
    anyhow::ensure!(args.interval_ms >= 10, "--interval-ms must be at least 10");
    anyhow::ensure!(args.lease_secs >= 5, "--lease-secs must be at least 5");
    let url = args.target.url()?;
    let limits = args.server_limits.to_config()?;
    // Push mode listens where the server can reach it (see --host).
    let listen = match args.mode {
        Mode::Push => Some(
            args.bind
                .ip([url.as_str()])
                .context("choosing the address to listen on")?,
        ),
        Mode::Pull => None,
    };
    // The cluster calls back only the address a subscription comes from:
    // on a host with several, call from the one listened on.
    let local_addr = listen.filter(|ip| !ip.is_unspecified() && args.callback_host.is_none());
    let config = ClientConfig {
        local_addr,
        ..ClientConfig::default()
    };
    let server = Client::new(&url, config).with_context(|| format!("server URL {url}"))?;
    let runtime = cli::runtime(args.server_limits.workers(1)).context("starting the runtime")?;
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
                let ip = listen.expect("push mode chose an address");
                let listener = cli::bind((ip, args.port).into(), "tablet").await?;
                let bound = listener.local_addr()?;
                let host = match &args.callback_host {
                    Some(host) => host.clone(),
                    None if ip.is_unspecified() => cli::addr::default_listen_ip([url.as_str()])
                        .context("choosing the callback address")?
                        .to_string(),
                    None => ip.to_string(),
                };
                let scheme = args.server_limits.scheme();
                let callback_url =
                    format!("{scheme}://{}/", cli::addr::authority(&host, bound.port()));
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
