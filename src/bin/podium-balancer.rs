//! `podium-balancer`: the public entry point (the old PygmyDotCom).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use podium::balancer::{
    BalancerConfig, DEFAULT_CALL_DEADLINE_MS, DEFAULT_FORWARD_TIMEOUT_MS, DEFAULT_PORT,
    DEFAULT_PROBE_INTERVAL_MS,
};
use podium::cli::{self, BindArgs, ClientTlsArgs, ClusterSecretArgs, HostPort, ServerArgs};
use podium::frontend::DEFAULT_PORTS;

/// Podium balancer: forwards each public call to a random healthy front-end.
#[derive(Debug, Parser)]
#[command(name = env!("CARGO_BIN_NAME"), version,
          after_help = cli::help_footer(&[cli::CLUSTER_SECRET_VAR]))]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// A front-end URL; repeat for each. Default: the old two, --xhost and --yhost.
    #[arg(long = "frontend", conflicts_with_all = ["xhost", "yhost"])]
    frontends: Vec<String>,
    /// Front-end 1, HOST or HOST:PORT (port 8002 if not given), as the old system named it.
    #[arg(long, default_value = "127.0.0.1")]
    xhost: HostPort,
    /// Front-end 2, HOST or HOST:PORT (port 8003 if not given), as the old system named it.
    #[arg(long, default_value = "127.0.0.1")]
    yhost: HostPort,
    /// Milliseconds between health probes of every front-end.
    #[arg(long, default_value_t = DEFAULT_PROBE_INTERVAL_MS)]
    probe_interval_ms: u64,
    /// Milliseconds a probe may take before the front-end counts as down.
    #[arg(long)]
    probe_timeout_ms: Option<u64>,
    /// Milliseconds one attempt at a front-end may take before the call is
    /// tried elsewhere; longer than the front-ends' --db-timeout-ms.
    #[arg(long, default_value_t = DEFAULT_FORWARD_TIMEOUT_MS)]
    forward_timeout_ms: u64,
    /// Milliseconds all attempts of one call may take together; shorter
    /// than the clients' own deadline.
    #[arg(long, default_value_t = DEFAULT_CALL_DEADLINE_MS)]
    call_deadline_ms: u64,
    #[command(flatten)]
    bind: BindArgs,
    #[command(flatten)]
    secret: ClusterSecretArgs,
    #[command(flatten)]
    server: ServerArgs,
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
    let frontends = if args.frontends.is_empty() {
        vec![
            args.xhost.url(DEFAULT_PORTS[0]),
            args.yhost.url(DEFAULT_PORTS[1]),
        ]
    } else {
        args.frontends.clone()
    };
    let probe_interval = Duration::from_millis(args.probe_interval_ms);
    let config = BalancerConfig {
        frontends,
        probe_interval,
        probe_timeout: args
            .probe_timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(probe_interval),
        forward_timeout: Duration::from_millis(args.forward_timeout_ms),
        call_deadline: Duration::from_millis(args.call_deadline_ms),
        // Optional: without it front-ends rate-limit by the balancer's address.
        cluster_secret: match args.secret.load() {
            Ok(secret) => Some(secret),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "no cluster secret: front-ends will see every client as this balancer, \
                     so failed passwords from one client rate-limit all of them"
                );
                None
            }
        },
        server: args.server.to_config()?,
    };
    config.validate().context("invalid configuration")?;
    let ip = args
        .bind
        .ip(config.frontends.iter().map(String::as_str))
        .context("choosing the address to listen on")?;
    let runtime = cli::runtime(args.server.workers(1)).context("starting the runtime")?;
    runtime.block_on(async {
        let listener = cli::bind((ip, args.port).into(), "balancer").await?;
        podium::balancer::run(listener, config, podium::shutdown::Shutdown::on_signal())
            .await
            .context("serving")
    })
}
