//! A minimal XML-RPC server on the Podium layer: `echo(value)` returns its
//! argument unchanged; introspection and `system.multicall` come built in.
//!
//! ```text
//! cargo run --release --example xmlrpc_echo -- --port 8080
//! python3 -c "import xmlrpc.client as x; print(x.ServerProxy('http://127.0.0.1:8080').echo([1, 'two']))"
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use clap::Parser;
use podium::rpc::{serve, Methods, ServerConfig, Value};

/// XML-RPC echo server.
#[derive(Debug, Parser)]
struct Args {
    /// Port to listen on; 0 picks a free one (printed as `LISTENING <addr>`).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = podium::rpc::server::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Connections served at once.
    #[arg(long, default_value_t = podium::rpc::server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Milliseconds allowed for a request's headers (and for an idle keep-alive connection).
    #[arg(long, default_value_t = podium::rpc::server::DEFAULT_HEADER_READ_TIMEOUT_MS)]
    header_timeout_ms: u64,
    /// Milliseconds allowed for a request's body.
    #[arg(long, default_value_t = podium::rpc::server::DEFAULT_BODY_READ_TIMEOUT_MS)]
    body_timeout_ms: u64,
    /// Runtime worker threads (1 = single-threaded).
    #[arg(long, default_value_t = 1)]
    workers: usize,
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
    let config = ServerConfig {
        max_body_bytes: args.max_body_bytes,
        max_connections: args.max_connections,
        header_read_timeout: std::time::Duration::from_millis(args.header_timeout_ms),
        body_read_timeout: std::time::Duration::from_millis(args.body_timeout_ms),
        ..ServerConfig::default()
    };
    let runtime = podium::cli::runtime(args.workers).context("starting the runtime")?;
    runtime.block_on(async {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        tracing::info!(%bound, "echo server listening");
        podium::cli::announce_listening(bound);
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
