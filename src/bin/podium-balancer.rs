//! `podium-balancer`: the public entry point (the old PygmyDotCom).

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use podium::balancer::{
    BalancerConfig, DEFAULT_FORWARD_TIMEOUT_MS, DEFAULT_PORT, DEFAULT_PROBE_INTERVAL_MS,
};
use podium::cli::{self, BindArgs, ClientTlsArgs, ClusterSecretArgs, ServerArgs};
use podium::frontend::DEFAULT_PORTS;

/// Podium balancer: forwards each public call to a random healthy front-end.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    #[command(flatten)]
    bind: BindArgs,
    /// A front-end URL; repeat for each. Default: the old two, from --xhost/--yhost.
    #[arg(long = "frontend")]
    frontends: Vec<String>,
    /// Host of front-end 1 (port 8002), as the old system named it.
    #[arg(long, default_value = "127.0.0.1")]
    xhost: String,
    /// Host of front-end 2 (port 8003), as the old system named it.
    #[arg(long, default_value = "127.0.0.1")]
    yhost: String,
    /// Milliseconds between health probes of every front-end.
    #[arg(long, default_value_t = DEFAULT_PROBE_INTERVAL_MS)]
    probe_interval_ms: u64,
    /// Milliseconds a probe may take before the front-end counts as down.
    #[arg(long)]
    probe_timeout_ms: Option<u64>,
    /// Milliseconds a forwarded call may take before it is retried elsewhere.
    #[arg(long, default_value_t = DEFAULT_FORWARD_TIMEOUT_MS)]
    forward_timeout_ms: u64,
    #[command(flatten)]
    secret: ClusterSecretArgs,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    tls: ClientTlsArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cli::init_tracing();
    cli::raise_fd_limit();
    args.tls.install()?;
    let frontends = if args.frontends.is_empty() {
        let (x, y) = if args.bind.run_locally {
            ("127.0.0.1", "127.0.0.1")
        } else {
            (args.xhost.as_str(), args.yhost.as_str())
        };
        vec![
            cli::host_url(x, DEFAULT_PORTS[0]),
            cli::host_url(y, DEFAULT_PORTS[1]),
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
    let runtime = cli::runtime(args.server.workers).context("starting the runtime")?;
    runtime.block_on(async {
        let listener = cli::bind(args.bind.addr(args.port), "balancer").await?;
        podium::balancer::run(listener, config, podium::shutdown::Shutdown::on_signal())
            .await
            .context("serving")
    })
}
