//! `podium-bench`: a load generator for Podium, or for any XML-RPC server
//! that serves the same public methods; the scenarios live in
//! [`podium::bench`]. Each run ends with one `RESULT key=value...` line for
//! scripts (`scripts/bench.sh`).

use anyhow::{ensure, Context as _};
use clap::Parser;
use podium::bench::Scenario;
use podium::secret::{Secret, FEEDER_PASSWORD_ENV};

/// Podium load generator: reads, writes, a mix, push fan-out, and
/// cross-front-end staleness against loopback URLs.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Runtime worker threads of this load generator; 1 runs it on one
    /// thread, leaving the other cores to the servers under test.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    /// Tag printed in the RESULT line, for scripts.
    #[arg(long, default_value = "-", global = true)]
    label: String,
    #[command(subcommand)]
    scenario: Scenario,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=64).contains(&args.threads),
        "--threads must be 1 to 64"
    );
    let password = if args.scenario.writes() {
        Some(password()?)
    } else {
        None
    };
    // The attack scenarios hold thousands of sockets.
    podium::cli::raise_fd_limit();
    let runtime = podium::cli::runtime(args.threads).context("starting the runtime")?;
    let report = runtime.block_on(args.scenario.run(&args.label, password))?;
    print!("{report}");
    report.check()?;
    Ok(())
}

/// The feeder password, from the environment as the servers take it.
fn password() -> anyhow::Result<Secret> {
    let text = std::env::var(FEEDER_PASSWORD_ENV)
        .with_context(|| format!("writes need the feeder password in ${FEEDER_PASSWORD_ENV}"))?;
    Secret::new(&text).with_context(|| format!("${FEEDER_PASSWORD_ENV}"))
}
