//! The feeder's command line: its flags and subcommands, and the updates a
//! subcommand stands for.

use std::path::PathBuf;

use anyhow::Context as _;

use super::{parse_updates, Update};
use crate::cli::{self, ClientTlsArgs, TargetArgs};

/// Podium score feeder: publishes scores and medals through the balancer.
/// `simulate` plays games for a demo; the other commands make one write
/// each, for scripts. Options go before or after the command.
#[derive(Debug, clap::Parser)]
#[command(name = "podium-feeder", version, after_help = top_footer())]
pub struct FeederFlags {
    /// File holding the feeder password; else $PODIUM_FEEDER_PASSWORD.
    #[arg(long, global = true)]
    pub password_file: Option<PathBuf>,
    /// Milliseconds allowed for one call.
    #[arg(long, global = true, default_value_t = crate::rpc::client::DEFAULT_CALL_TIMEOUT_MS)]
    pub timeout_ms: u64,
    #[command(flatten)]
    pub target: TargetArgs,
    // Last: a flattened group's heading carries on to the flags after it.
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// One subcommand per kind of write, plus `simulate` and `apply`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
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

/// What a command asks for.
#[derive(Debug)]
pub enum Work {
    /// Simulated games: `rate` updates a second, `count` of them at most.
    Simulate { rate: f64, count: Option<u64> },
    /// These updates, in order.
    Updates(Vec<Update>),
}

impl Command {
    /// What the command asks for; `apply` reads its file.
    ///
    /// # Errors
    /// A rate out of range, or a file that cannot be read or parsed.
    pub fn work(self) -> anyhow::Result<Work> {
        let updates = match self {
            Command::Simulate { rate, count } => {
                anyhow::ensure!(
                    rate > 0.0 && rate <= 10_000.0,
                    "--rate must be above 0 and at most 10000"
                );
                return Ok(Work::Simulate { rate, count });
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
        Ok(Work::Updates(updates))
    }
}
