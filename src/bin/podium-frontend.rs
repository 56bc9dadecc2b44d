//! `podium-frontend`: a front-end server (the old ObelixServer).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use podium::cli;
use podium::election::driver::Node;
use podium::frontend::flags::{FrontendFlags, Start};
use podium::shutdown::{Shutdown, Tasks};

fn main() -> ExitCode {
    cli::main(env!("CARGO_BIN_NAME"), run)
}

fn run() -> anyhow::Result<()> {
    let flags = FrontendFlags::parse();
    cli::init_tracing();
    cli::raise_fd_limit();
    flags.tls.install()?;
    flags.guesses.install()?;
    let Start {
        config,
        election,
        addr,
    } = flags.start()?;
    let runtime = cli::runtime(flags.server.workers(1)).context("starting the runtime")?;
    runtime.block_on(async {
        let node = Node::new(election).context("election settings")?;
        let listener = cli::bind(addr, "front-end").await?;
        let shutdown = Shutdown::on_signal();
        let tasks = Tasks::new(shutdown.clone());
        tasks.spawn(node.clone().run(shutdown.clone()));
        let served =
            podium::frontend::run(listener, config, |m| node.add_methods(m), shutdown).await;
        tasks.stop(cli::DRIVER_GRACE).await;
        served.context("serving")
    })
}
