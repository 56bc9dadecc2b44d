//! `podium-feeder`: publishes scores and medals (the old Cacofonix).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser as _};
use podium::api::Client;
use podium::cli;
use podium::feeder::flags::{Command, FeederFlags, Work};
use podium::feeder::{describe_ack, describe_error, Feeder};
use podium::rpc::ClientConfig;
use podium::secret::{Secret, FEEDER_PASSWORD_ENV};
use podium::shutdown::Shutdown;
use rand::SeedableRng as _;

fn main() -> ExitCode {
    let mut flags = FeederFlags::parse();
    let command = match flags.command.take() {
        Some(command) => command,
        None if flags.target.is_old_style() => Command::Simulate {
            rate: 1.0,
            count: None,
        },
        None => {
            eprint!("{}", FeederFlags::command().render_help());
            return ExitCode::from(2);
        }
    };
    cli::main(env!("CARGO_BIN_NAME"), || run(&flags, command))
}

fn run(flags: &FeederFlags, command: Command) -> anyhow::Result<()> {
    cli::init_tracing();
    cli::raise_fd_limit();
    flags.tls.install()?;
    let url = flags.target.url()?;
    let password = Secret::load(
        FEEDER_PASSWORD_ENV,
        flags.password_file.as_deref(),
        "--password-file",
    )
    .context("reading the feeder password")?;
    let client = Client::new(
        &url,
        ClientConfig {
            timeout: std::time::Duration::from_millis(flags.timeout_ms),
            ..ClientConfig::default()
        },
    )
    .with_context(|| format!("server URL {url}"))?;
    let feeder = Feeder::new(client, password);
    let runtime = cli::runtime(1).context("starting the runtime")?;
    let updates = match command.work()? {
        Work::Simulate { rate, count } => {
            let mut rng = rand::rngs::StdRng::from_entropy();
            return runtime
                .block_on(async {
                    let shutdown = Shutdown::on_signal();
                    feeder.simulate(rate, count, &mut rng, shutdown).await
                })
                .map_err(|e| anyhow::anyhow!("simulated games: {}", describe_error(&e)))
                .map(|_| ());
        }
        Work::Updates(updates) => updates,
    };
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
