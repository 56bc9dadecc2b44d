//! A minimal XML-RPC server on the Podium layer: `echo(value)` returns its
//! argument unchanged; introspection and `system.multicall` come built in.
//!
//! ```text
//! cargo run --release --example xmlrpc_echo -- --port 8080
//! python3 -c "import xmlrpc.client as x; print(x.ServerProxy('http://127.0.0.1:8080').echo([1, 'two']))"
//! ```
//!
//! It takes every flag of `podium::cli::ServerArgs` (limits, `--tls-cert`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use clap::Parser;
use podium::rpc::{serve, Methods, Value};

/// XML-RPC echo server.
#[derive(Debug, Parser)]
struct Args {
    /// Port to listen on; 0 picks a free one (printed as `LISTENING <addr>`).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Limits, timeouts and TLS, as every Podium server has them.
    #[command(flatten)]
    server: podium::cli::ServerArgs,
}

fn echo_methods() -> Methods {
    let mut methods = Methods::new();
    methods.add(
        "echo",
        &["any", "any"],
        "Returns its one argument unchanged.",
        |params, _ctx| async move {
            params.expect_count(1, 1)?;
            let value: &Value = params.arg(0, "value")?;
            Ok(value.clone())
        },
    );
    methods
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    podium::cli::init_tracing();
    podium::cli::raise_fd_limit();
    let config = args.server.to_config()?;
    let runtime = podium::cli::runtime(args.server.workers(1)).context("starting the runtime")?;
    runtime.block_on(async {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = podium::cli::bind(addr, "echo server").await?;
        serve(
            listener,
            echo_methods(),
            config,
            podium::cli::shutdown_signal(),
        )
        .await
        .context("serving")
    })
}
