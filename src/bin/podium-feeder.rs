//! `podium-feeder`: publishes scores and medals (the old Cacofonix).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use podium::api::Client;
use podium::cli::{self, ClientTlsArgs, TargetArgs};
use podium::feeder::{parse_updates, Feeder, Update};
use podium::rpc::ClientConfig;
use podium::secret::{Secret, FEEDER_PASSWORD_ENV};
use podium::shutdown::Shutdown;

/// Podium score feeder. Without a subcommand it plays simulated games.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    tls: ClientTlsArgs,
    /// File holding the feeder password; else $PODIUM_FEEDER_PASSWORD.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Milliseconds allowed for one call.
    #[arg(long, default_value_t = podium::rpc::client::DEFAULT_CALL_TIMEOUT_MS)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Plays simulated games (the default).
    Simulate {
        /// Updates per second.
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        /// Stop after this many updates.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Sets an event's score.
    SetScore { event: String, score: String },
    /// Awards a medal (gold, silver, bronze) to a team.
    Award { team: String, medal: String },
    /// Applies a file of updates (`score | EVENT | SCORE`, `medal | TEAM | MEDAL`), in order, stopping at the first failure.
    Apply { file: PathBuf },
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podium-feeder: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    cli::init_tracing();
    cli::raise_fd_limit();
    args.tls.install()?;
    let url = args.target.url();
    let password = Secret::load(
        FEEDER_PASSWORD_ENV,
        args.password_file.as_deref(),
        "--password-file",
    )
    .context("reading the feeder password")?;
    let client = Client::new(
        &url,
        ClientConfig {
            timeout: std::time::Duration::from_millis(args.timeout_ms),
            ..ClientConfig::default()
        },
    )
    .context("server URL")?;
    let feeder = Feeder::new(client, password);
    let updates = match &args.command {
        None | Some(Command::Simulate { .. }) => None,
        Some(Command::SetScore { event, score }) => Some(vec![Update::Score {
            event: event.clone(),
            score: score.clone(),
        }]),
        Some(Command::Award { team, medal }) => Some(vec![Update::Medal {
            team: team.clone(),
            medal: medal.clone(),
        }]),
        Some(Command::Apply { file }) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            Some(parse_updates(&text).with_context(|| format!("in {}", file.display()))?)
        }
    };
    let runtime = cli::runtime(1).context("starting the runtime")?;
    runtime.block_on(async {
        match updates {
            None => {
                let (rate, count) = match args.command {
                    Some(Command::Simulate { rate, count }) => (rate, count),
                    _ => (1.0, None),
                };
                anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be positive");
                let mut rng = rand::rngs::StdRng::from_entropy();
                feeder
                    .simulate(rate, count, &mut rng, Shutdown::on_signal())
                    .await
                    .context("simulated games")?;
                Ok(())
            }
            Some(updates) => {
                for (i, update) in updates.iter().enumerate() {
                    let reply = feeder.apply(update).await.with_context(|| {
                        format!(
                            "update {} of {} ({update:?}) failed; {i} applied",
                            i + 1,
                            updates.len()
                        )
                    })?;
                    println!("ok: version {}", reply.version);
                }
                Ok(())
            }
        }
    })
}

use rand::SeedableRng as _;
