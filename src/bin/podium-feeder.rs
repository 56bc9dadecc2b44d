//! `podium-feeder`: publishes scores and medals (the old Cacofonix).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};
use podium::api::Client;
use podium::cli::{self, ClientTlsArgs, TargetArgs};
use podium::feeder::{describe_ack, describe_error, parse_updates, Feeder, Update};
use podium::rpc::ClientConfig;
use podium::secret::{Secret, FEEDER_PASSWORD_ENV};
use podium::shutdown::Shutdown;
use rand::SeedableRng as _;

/// Podium score feeder: publishes scores and medals through the balancer.
/// `simulate` plays games for a demo; the other commands make one write
/// each, for scripts. Options go before or after the command.
#[derive(Debug, Parser)]
#[command(name = env!("CARGO_BIN_NAME"), version, after_help = top_footer())]
struct Args {
    #[command(flatten)]
    tls: ClientTlsArgs,
    /// File holding the feeder password; else $PODIUM_FEEDER_PASSWORD.
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
    /// Milliseconds allowed for one call.
    #[arg(long, global = true, default_value_t = podium::rpc::client::DEFAULT_CALL_TIMEOUT_MS)]
    timeout_ms: u64,
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// One subcommand per kind of write, plus `simulate` and `apply`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Plays simulated games: random scores and podiums until stopped
    /// (Ctrl-C) or --count updates.
    #[command(after_help = footer())]
    Simulate {
        /// Updates per second.
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        /// Stop after this many updates.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Sets an event's score.
    #[command(after_help = footer())]
    SetScore {
        /// The event, e.g. "Stone Curling".
        event: String,
        /// The score, any text, e.g. "Gaul 3, Rome 1".
        score: String,
    },
    /// Awards a medal to a team.
    #[command(after_help = footer())]
    Award {
        /// The team, e.g. Gaul.
        team: String,
        /// gold, silver or bronze.
        medal: String,
    },
    /// Takes one medal back from a team (a disqualification).
    #[command(after_help = footer())]
    Revoke {
        /// The team, e.g. Gaul.
        team: String,
        /// gold, silver or bronze.
        medal: String,
    },
    /// Corrects a team's medal counts.
    #[command(after_help = footer())]
    SetMedals {
        /// The team, e.g. Gaul.
        team: String,
        gold: i64,
        silver: i64,
        bronze: i64,
    },
    /// Adds a team to the roster.
    #[command(after_help = footer())]
    AddTeam {
        /// The new team's name (at most 64 characters).
        name: String,
    },
    /// Adds an event to the roster.
    #[command(after_help = footer())]
    AddEvent {
        /// The new event's name (at most 64 characters).
        name: String,
    },
    /// Applies a file of updates in order, one per line (`score | EVENT |
    /// SCORE`, `medal | TEAM | MEDAL`, `revoke | TEAM | MEDAL`, `medals |
    /// TEAM | G | S | B`, `team | NAME`, `event | NAME`; `#` starts a
    /// comment), and stops at the first that fails.
    #[command(after_help = footer())]
    Apply {
        /// The file, e.g. examples/updates.txt.
        file: PathBuf,
    },
}

fn footer() -> String {
    cli::help_footer(&[cli::FEEDER_PASSWORD_VAR])
}

fn top_footer() -> String {
    format!(
        "With no command, prints this help; the old Cacofonix line (--serip/--serport \
         and no command) plays simulated games, as Cacofonix did.\n\n{}",
        footer()
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    let command = match args.command {
        Some(command) => command,
        None if args.target.is_old_style() => Command::Simulate {
            rate: 1.0,
            count: None,
        },
        None => {
            eprint!("{}", Args::command().render_help());
            return ExitCode::from(2);
        }
    };
    cli::main(env!("CARGO_BIN_NAME"), || {
        run(
            &args.target,
            &args.tls,
            args.password_file,
            args.timeout_ms,
            command,
        )
    })
}

fn run(
    target: &TargetArgs,
    tls: &ClientTlsArgs,
    password_file: Option<PathBuf>,
    timeout_ms: u64,
    command: Command,
) -> anyhow::Result<()> {
    cli::init_tracing();
    cli::raise_fd_limit();
    tls.install()?;
    let url = target.url()?;
    let password = Secret::load(
        FEEDER_PASSWORD_ENV,
        password_file.as_deref(),
        "--password-file",
    )
    .context("reading the feeder password")?;
    let client = Client::new(
        &url,
        ClientConfig {
            timeout: std::time::Duration::from_millis(timeout_ms),
            ..ClientConfig::default()
        },
    )
    .with_context(|| format!("server URL {url}"))?;
    let feeder = Feeder::new(client, password);
    let updates = match command {
        Command::Simulate { rate, count } => {
            anyhow::ensure!(
                rate > 0.0 && rate <= 10_000.0,
                "--rate must be above 0 and at most 10000"
            );
            let runtime = cli::runtime(1).context("starting the runtime")?;
            let mut rng = rand::rngs::StdRng::from_entropy();
            runtime
                .block_on(async {
                    let shutdown = Shutdown::on_signal();
                    feeder.simulate(rate, count, &mut rng, shutdown).await
                })
                .map_err(|e| anyhow::anyhow!("simulated games: {}", describe_error(&e)))?;
            return Ok(());
        }
        Command::SetScore { event, score } => vec![Update::Score { event, score }],
        Command::Award { team, medal } => vec![Update::Medal { team, medal }],
        Command::Revoke { team, medal } => vec![Update::Revoke { team, medal }],
        Command::SetMedals {
            team,
            gold,
            silver,
            bronze,
        } => vec![Update::Medals {
            team,
            counts: [gold, silver, bronze],
        }],
        Command::AddTeam { name } => vec![Update::Team { name }],
        Command::AddEvent { name } => vec![Update::Event { name }],
        Command::Apply { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            parse_updates(&text).with_context(|| format!("in {}", file.display()))?
        }
    };
    let runtime = cli::runtime(1).context("starting the runtime")?;
    runtime.block_on(async {
        for (i, update) in updates.iter().enumerate() {
            let ack = feeder.apply(update).await.map_err(|e| {
                let position = match (updates.len(), i) {
                    (1, _) => String::new(),
                    (n, 0) => format!(" (update 1 of {n}; none applied)"),
                    (n, i) => format!(" (update {} of {n}; the {i} before it applied)", i + 1),
                };
                anyhow::anyhow!("{update}{position} failed: {}", describe_error(&e))
            })?;
            println!("{}", describe_ack(&ack));
        }
        Ok(())
    })
}
