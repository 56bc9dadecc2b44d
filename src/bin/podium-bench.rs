//! `podium-bench`: a load generator for Podium, or for any XML-RPC server
//! that serves the same public methods (the Python baseline, say).
//!
//! Subcommands:
//! - `reads`: N keep-alive connections looping `get_medal_tally` on random teams;
//! - `writes`: the same with `increment_medal_tally` or `set_score`, which a
//!   front-end acknowledges only once the db made them durable;
//! - `mix`: reads and writes in a chosen proportion;
//! - `fanout`: M callback servers subscribe to a front-end, then K writes;
//!   for each (write, subscriber) pair, the time from the write's
//!   acknowledgement until that subscriber got the push;
//! - `staleness`: write through front-end A, poll front-end B until it
//!   serves the new value; the time from the acknowledgement until then.
//!
//! Every connection is a dedicated keep-alive HTTP/1.1 connection driven by a
//! plain request/response loop (no pipelining), so numbers for different
//! servers compare. Latencies are kept exactly and sorted for percentiles.
//! Every loop is bounded in time and count, and only loopback addresses are
//! accepted. Each run ends with one `RESULT key=value...` line for scripts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use podium::rpc::codec::{self, Limits};
use podium::rpc::pool;
use podium::rpc::{Client, ClientConfig, Methods, Params, ServerConfig, Value};
use podium::secret::FEEDER_PASSWORD_ENV;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::{Barrier, Notify, Semaphore};
use tokio::task::JoinSet;

/// The default roster's teams, medals and events (DESIGN.md).
const TEAMS: [&str; 5] = ["Gaul", "Rome", "Carthage", "Greece", "Persia"];
const MEDALS: [&str; 3] = ["gold", "silver", "bronze"];
const DEFAULT_EVENT: &str = "Stone Curling";
/// Deadline of one request; a slower one counts as an error.
const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Largest reply accepted.
const MAX_REPLY_BYTES: usize = 16 << 20;
/// Pause after a failed request, so a dead server is not spun on.
const ERROR_PAUSE_MS: u64 = 10;
/// Longest a load run may last, whatever the flags say.
const MAX_DURATION_SECS: f64 = 600.0;
/// Most subscribers a fan-out run may start (each is a listening socket).
const MAX_SUBSCRIBERS: usize = 10_000;
/// Concurrent subscribe/unsubscribe calls during fan-out set-up.
const SETUP_CONCURRENCY: usize = 32;
/// Lease asked for by fan-out subscribers, seconds.
const FANOUT_LEASE_SECS: i64 = 600;

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
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Cached reads: each connection loops get_medal_tally on random teams.
    Reads(LoadArgs),
    /// Durable writes: each connection loops increment_medal_tally or set_score.
    Writes {
        #[command(flatten)]
        load: LoadArgs,
        /// Which write to send.
        #[arg(long, value_enum, default_value_t = WriteKind::Medal)]
        kind: WriteKind,
    },
    /// Reads and writes mixed at random.
    Mix {
        #[command(flatten)]
        load: LoadArgs,
        /// Percentage of requests that are writes (0 to 100).
        #[arg(long, default_value_t = 10)]
        write_percent: u32,
        /// Which write to send.
        #[arg(long, value_enum, default_value_t = WriteKind::Medal)]
        kind: WriteKind,
    },
    /// Push fan-out: M callback servers subscribe, then K writes; latency
    /// from each write's acknowledgement to each subscriber's push.
    Fanout(FanoutArgs),
    /// Cross-front-end staleness: write through A, poll B until it serves
    /// the new value; latency from the acknowledgement to the fresh read.
    Staleness(StalenessArgs),
}

#[derive(Debug, Clone, ClapArgs)]
struct LoadArgs {
    /// Server URL (loopback only), e.g. http://127.0.0.1:8001/.
    #[arg(long)]
    url: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured time, seconds.
    #[arg(long, default_value_t = 5.0)]
    duration_secs: f64,
    /// Unmeasured time first, seconds (connections, caches and CPU warm up).
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Most requests per connection, warm-up included.
    #[arg(long, default_value_t = 10_000_000)]
    max_requests: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WriteKind {
    /// increment_medal_tally(random team, random medal, password).
    Medal,
    /// set_score(event, a new text, password).
    Score,
}

#[derive(Debug, Clone, ClapArgs)]
struct FanoutArgs {
    /// The front-end the subscribers register with.
    #[arg(long)]
    url: String,
    /// Where the writes go; default the same front-end.
    #[arg(long)]
    write_url: Option<String>,
    /// Callback servers to start, each on its own loopback port.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Measured writes; each waits until every subscriber got its push (or the timeout).
    #[arg(long, default_value_t = 20)]
    writes: usize,
    /// Unmeasured writes first (the front-end opens its connections to the subscribers).
    #[arg(long, default_value_t = 1)]
    warmup_writes: usize,
    /// The event written and followed.
    #[arg(long, default_value = DEFAULT_EVENT)]
    event: String,
    /// How long one write's pushes may take before the missing ones count as lost, ms.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
}

#[derive(Debug, Clone, ClapArgs)]
struct StalenessArgs {
    /// Front-end the writes go through.
    #[arg(long)]
    write_url: String,
    /// Front-end polled for the new value (push mode, for the target).
    #[arg(long)]
    read_url: String,
    /// Measured samples.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Unmeasured samples first.
    #[arg(long, default_value_t = 5)]
    warmup_samples: usize,
    /// The event written and read.
    #[arg(long, default_value = DEFAULT_EVENT)]
    event: String,
    /// How long one sample may wait for the fresh value before it counts as lost, ms.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=64).contains(&args.threads),
        "--threads must be 1 to 64"
    );
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .context("starting the runtime")?;
    let label = args.label.clone();
    runtime.block_on(async move {
        match args.command {
            Command::Reads(load) => {
                let gen = Generator::new(0, WriteKind::Medal, None);
                run_load("reads", &label, &load, gen).await
            }
            Command::Writes { load, kind } => {
                let gen = Generator::new(100, kind, Some(password()?));
                run_load("writes", &label, &load, gen).await
            }
            Command::Mix {
                load,
                write_percent,
                kind,
            } => {
                ensure!(write_percent <= 100, "--write-percent must be 0 to 100");
                let password = (write_percent > 0).then(password).transpose()?;
                let gen = Generator::new(write_percent, kind, password);
                run_load("mix", &label, &load, gen).await
            }
            Command::Fanout(fanout_args) => fanout(&label, fanout_args).await,
            Command::Staleness(stale_args) => staleness(&label, stale_args).await,
        }
    })
}

/// The feeder password, from the environment as the servers take it.
fn password() -> anyhow::Result<String> {
    std::env::var(FEEDER_PASSWORD_ENV)
        .with_context(|| format!("writes need the feeder password in ${FEEDER_PASSWORD_ENV}"))
}

// ---------------------------------------------------------------------------
// One keep-alive connection.

/// Where requests go: a loopback address and the request path.
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    path: String,
    url: String,
}

impl Target {
    async fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid URL {url:?}"))?;
        ensure!(
            uri.scheme_str() == Some("http"),
            "{url}: only http:// URLs are supported"
        );
        let host = uri.host().with_context(|| format!("{url}: no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let host_port = format!(
            "{}:{port}",
            host.trim_start_matches('[').trim_end_matches(']')
        );
        let addr = tokio::net::lookup_host(host_port.as_str())
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        ensure!(
            addr.ip().is_loopback(),
            "{url}: the benchmark only drives loopback addresses"
        );
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or(host_port);
        Ok(Target {
            addr,
            host: HeaderValue::from_str(&authority).context("host header")?,
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".to_owned()),
            url: url.to_owned(),
        })
    }
}

/// Why one request failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("connect: {0}")]
    Connect(String),
    #[error("http: {0}")]
    Http(String),
    #[error("HTTP status {0}")]
    Status(StatusCode),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("invalid reply: {0}")]
    Parse(String),
    #[error("fault {code}: {message}")]
    Fault { code: i32, message: String },
}

/// A dedicated keep-alive HTTP/1.1 connection, reopened after an error.
/// Driven by the task that uses it (podium's own [`pool::Connection`]), so
/// the generator spends as little of the machine as it can on itself.
struct Conn {
    target: Target,
    conn: Option<pool::Connection>,
}

impl Conn {
    fn new(target: Target) -> Conn {
        Conn { target, conn: None }
    }

    async fn connect(&mut self) -> Result<(), CallError> {
        let authority = self.target.addr.to_string();
        let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
        let conn = pool::Connection::open(&authority, timeout)
            .await
            .map_err(|e| CallError::Connect(e.to_string()))?;
        self.conn = Some(conn);
        Ok(())
    }

    /// Posts `body` and returns the reply body.
    async fn post(&mut self, body: Bytes) -> Result<Bytes, CallError> {
        let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
        let result = tokio::time::timeout(timeout, self.post_inner(body)).await;
        let result = result.unwrap_or(Err(CallError::Timeout(timeout)));
        if result.is_err() {
            // The connection's state is unknown: start afresh next time.
            self.conn = None;
        }
        result
    }

    async fn post_inner(&mut self, body: Bytes) -> Result<Bytes, CallError> {
        let mut req = Request::post(self.target.path.as_str())
            .header(header::HOST, self.target.host.clone())
            .header(header::CONTENT_TYPE, "text/xml")
            .header(header::CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .map_err(|e| CallError::Parse(e.to_string()))?;
        // Twice at most: a connection the server closed while idle gives
        // the request back unsent, to send on a new one.
        for _ in 0..2 {
            if !self.conn.as_ref().is_some_and(pool::Connection::is_open) {
                self.connect().await?;
            }
            let conn = self
                .conn
                .as_mut()
                .expect("connect() set the connection or returned an error");
            match conn.exchange(req, MAX_REPLY_BYTES).await {
                Ok((parts, _)) if parts.status != StatusCode::OK => {
                    return Err(CallError::Status(parts.status))
                }
                Ok((_, reply)) => return Ok(reply),
                Err(pool::Failed::Unsent(unsent, _)) => {
                    self.conn = None;
                    req = *unsent;
                }
                Err(pool::Failed::Sent(e)) => return Err(CallError::Http(e.to_string())),
            }
        }
        Err(CallError::Http(
            "connection closed twice before the request was sent".into(),
        ))
    }

    /// Calls `method` and decodes the reply; a fault is an error.
    async fn call(&mut self, method: &str, params: &[Value]) -> Result<Value, CallError> {
        let body =
            codec::write_call(method, params).map_err(|e| CallError::Parse(e.to_string()))?;
        let reply = self.post(Bytes::from(body)).await?;
        match codec::parse_response(&reply, Limits::default()) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(fault)) => Err(CallError::Fault {
                code: fault.code,
                message: fault.message,
            }),
            Err(e) => Err(CallError::Parse(e.to_string())),
        }
    }
}

/// True when an XML-RPC reply body is a fault (looked for near the start,
/// where `<methodResponse>` puts it, so a huge value is not scanned).
fn is_fault(reply: &[u8]) -> bool {
    let head = &reply[..reply.len().min(160)];
    head.windows(7).any(|w| w == b"<fault>")
}

// ---------------------------------------------------------------------------
// Latencies.

/// Exact latency samples in nanoseconds, sorted for percentiles.
#[derive(Debug, Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn record(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn sort(&mut self) {
        self.0.sort_unstable();
    }

    /// Nearest-rank percentile in milliseconds, of sorted samples; NaN when empty.
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.0.len()) - 1;
        self.0[i] as f64 / 1e6
    }

    fn summary(&self) -> String {
        format!(
            "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (n={})",
            self.percentile_ms(50.0),
            self.percentile_ms(90.0),
            self.percentile_ms(99.0),
            self.percentile_ms(100.0),
            self.len()
        )
    }
}

// ---------------------------------------------------------------------------
// Closed-loop load: reads, writes, mix.

/// Builds each request body; writes are pre-encoded where they can be.
#[derive(Debug, Clone)]
struct Generator {
    write_percent: u32,
    kind: WriteKind,
    /// increment_medal_tally for every (team, medal), when writing medals.
    medal_bodies: Arc<Vec<Bytes>>,
    password: Option<Arc<str>>,
}

impl Generator {
    fn new(write_percent: u32, kind: WriteKind, password: Option<String>) -> Generator {
        let medal_bodies = match (&password, kind) {
            (Some(pw), WriteKind::Medal) => TEAMS
                .iter()
                .flat_map(|team| MEDALS.iter().map(move |medal| (team, medal)))
                .map(|(team, medal)| {
                    encode(
                        "increment_medal_tally",
                        &[
                            Value::from(*team),
                            Value::from(*medal),
                            Value::from(pw.as_str()),
                        ],
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        Generator {
            write_percent,
            kind,
            medal_bodies: Arc::new(medal_bodies),
            password: password.map(Arc::from),
        }
    }

    /// Read bodies for one connection (its index is the old `client_id`).
    fn read_bodies(client_id: usize) -> Vec<Bytes> {
        TEAMS
            .iter()
            .map(|team| {
                encode(
                    "get_medal_tally",
                    &[Value::from(*team), Value::Int(client_id as i64)],
                )
            })
            .collect()
    }

    /// The next request: its body and whether it is a write.
    fn next(&self, rng: &mut impl Rng, reads: &[Bytes], conn: usize, seq: u64) -> (Bytes, bool) {
        let is_write = self.write_percent > 0 && rng.gen_range(0..100) < self.write_percent;
        if !is_write {
            return (reads[rng.gen_range(0..reads.len())].clone(), false);
        }
        match self.kind {
            WriteKind::Medal => (
                self.medal_bodies[rng.gen_range(0..self.medal_bodies.len())].clone(),
                true,
            ),
            WriteKind::Score => {
                let pw = self.password.as_deref().unwrap_or_default();
                let event = ["Stone Curling", "Stone Skating"][rng.gen_range(0..2)];
                let score = format!("bench c{conn} n{seq}");
                (
                    encode(
                        "set_score",
                        &[Value::from(event), Value::from(score), Value::from(pw)],
                    ),
                    true,
                )
            }
        }
    }
}

fn encode(method: &str, params: &[Value]) -> Bytes {
    Bytes::from(
        codec::write_call(method, params)
            .expect("benchmark calls hold only plain strings and ints"),
    )
}

/// What one connection measured inside the window.
#[derive(Debug, Default)]
struct ConnReport {
    reads: Samples,
    writes: Samples,
    errors: u64,
    first_error: Option<String>,
}

async fn run_load(what: &str, label: &str, args: &LoadArgs, gen: Generator) -> anyhow::Result<()> {
    ensure!(
        (1..=10_000).contains(&args.connections),
        "--connections must be 1 to 10000"
    );
    ensure!(
        args.duration_secs > 0.0 && args.duration_secs + args.warmup_secs <= MAX_DURATION_SECS,
        "--duration-secs must be positive and, with the warm-up, at most {MAX_DURATION_SECS}"
    );
    ensure!(
        args.warmup_secs >= 0.0,
        "--warmup-secs must not be negative"
    );
    let target = Target::parse(&args.url).await?;
    let duration = Duration::from_secs_f64(args.duration_secs);
    let warmup = Duration::from_secs_f64(args.warmup_secs);
    let barrier = Arc::new(Barrier::new(args.connections + 1));
    let mut tasks = JoinSet::new();
    for conn_index in 0..args.connections {
        let target = target.clone();
        let gen = gen.clone();
        let barrier = barrier.clone();
        let max_requests = args.max_requests;
        tasks.spawn(async move {
            let mut conn = Conn::new(target);
            let mut report = ConnReport::default();
            // Open the connection before the clock starts.
            if let Err(e) = conn.connect().await {
                report.first_error = Some(e.to_string());
            }
            let reads = Generator::read_bodies(conn_index);
            let mut rng = rand::rngs::StdRng::from_entropy();
            let start = {
                barrier.wait().await;
                Instant::now()
            };
            let measure_from = start + warmup;
            let end = measure_from + duration;
            for seq in 0..max_requests {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let (body, is_write) = gen.next(&mut rng, &reads, conn_index, seq);
                let result = conn.post(body).await;
                let done = Instant::now();
                let ok = match &result {
                    Ok(reply) if is_fault(reply) => {
                        if report.first_error.is_none() {
                            report.first_error = Some(fault_text(reply));
                        }
                        false
                    }
                    Ok(_) => true,
                    Err(e) => {
                        if report.first_error.is_none() {
                            report.first_error = Some(e.to_string());
                        }
                        false
                    }
                };
                if sent >= measure_from && done <= end {
                    if !ok {
                        report.errors += 1;
                    } else if is_write {
                        report.writes.record(done - sent);
                    } else {
                        report.reads.record(done - sent);
                    }
                }
                if !ok {
                    tokio::time::sleep(Duration::from_millis(ERROR_PAUSE_MS)).await;
                }
            }
            report
        });
    }
    barrier.wait().await;
    let mut total = ConnReport::default();
    while let Some(joined) = tasks.join_next().await {
        let report = joined.context("a connection task panicked")?;
        total.reads.merge(report.reads);
        total.writes.merge(report.writes);
        total.errors += report.errors;
        if total.first_error.is_none() {
            total.first_error = report.first_error;
        }
    }
    total.reads.sort();
    total.writes.sort();
    let secs = duration.as_secs_f64();
    let ok = (total.reads.len() + total.writes.len()) as u64;
    let mut all = Samples::default();
    all.0.extend_from_slice(&total.reads.0);
    all.0.extend_from_slice(&total.writes.0);
    all.sort();
    println!(
        "{what}: {} connection(s) to {} for {secs:.1} s (after {:.1} s warm-up)",
        args.connections,
        target.url,
        warmup.as_secs_f64()
    );
    println!(
        "  {ok} ok, {} errors: {:.0} req/s",
        total.errors,
        ok as f64 / secs
    );
    if !total.reads.is_empty() {
        println!(
            "  reads  {:.0}/s  {}",
            total.reads.len() as f64 / secs,
            total.reads.summary()
        );
    }
    if !total.writes.is_empty() {
        println!(
            "  writes {:.0}/s  {}",
            total.writes.len() as f64 / secs,
            total.writes.summary()
        );
    }
    if let Some(e) = &total.first_error {
        println!("  first error: {e}");
    }
    println!(
        "RESULT kind={what} label={label} connections={} rps={:.1} p50_ms={:.4} p99_ms={:.4} max_ms={:.4} ok={ok} errors={} read_rps={:.1} write_rps={:.1} write_p50_ms={:.4} write_p99_ms={:.4}",
        args.connections,
        ok as f64 / secs,
        all.percentile_ms(50.0),
        all.percentile_ms(99.0),
        all.percentile_ms(100.0),
        total.errors,
        total.reads.len() as f64 / secs,
        total.writes.len() as f64 / secs,
        total.writes.percentile_ms(50.0),
        total.writes.percentile_ms(99.0),
    );
    if ok == 0 {
        bail!("no request succeeded");
    }
    Ok(())
}

/// The fault's string, for the first-error line.
fn fault_text(reply: &[u8]) -> String {
    match codec::parse_response(reply, Limits::default()) {
        Ok(Err(fault)) => format!("fault {}: {}", fault.code, fault.message),
        _ => "fault (undecodable)".to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Push fan-out.

/// What the callback servers saw, shared by all of them.
#[derive(Debug)]
struct Arrivals {
    subscribers: usize,
    /// Marks this run's writes: `fo{nonce}w{index}e` inside the score text.
    marker: String,
    /// Arrival time per (write, subscriber): index `write * subscribers + sub`.
    times: Mutex<Vec<Option<Instant>>>,
    /// Subscribers that got each write.
    counts: Vec<AtomicUsize>,
    /// Woken whenever a write has reached every subscriber.
    all_in: Notify,
    /// Pushes that did not belong to this run's writes.
    other: AtomicUsize,
}

impl Arrivals {
    /// Records a push to `sub` with `text`, received at `at`.
    fn record(&self, sub: usize, text: &str, at: Instant) {
        let Some(write) = self.write_index(text) else {
            self.other.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let slot = write * self.subscribers + sub;
        {
            let mut times = self.times.lock().unwrap_or_else(|p| p.into_inner());
            if times[slot].is_some() {
                return;
            }
            times[slot] = Some(at);
        }
        if self.counts[write].fetch_add(1, Ordering::AcqRel) + 1 == self.subscribers {
            self.all_in.notify_waiters();
        }
    }

    fn write_index(&self, text: &str) -> Option<usize> {
        let rest = &text[text.find(&self.marker)? + self.marker.len()..];
        let digits = &rest[..rest.find('e')?];
        digits.parse().ok().filter(|w| *w < self.counts.len())
    }

    fn score_text(&self, write: usize) -> String {
        format!("{}{write}e", self.marker)
    }
}

/// Starts one callback server on a free loopback port; returns its URL.
async fn start_subscriber(
    index: usize,
    arrivals: Arc<Arrivals>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a callback port")?;
    let addr = listener.local_addr().context("callback address")?;
    let mut methods = Methods::new();
    let scores = arrivals.clone();
    methods.add(
        "print_score_for_event",
        &["boolean", "string", "double"],
        "Records the arrival of a score push.",
        move |p: Params, _| {
            let at = Instant::now();
            let arrivals = scores.clone();
            async move {
                let text: &str = p.arg(0, "text")?;
                arrivals.record(index, text, at);
                Ok(Value::Bool(true))
            }
        },
    );
    let tallies = arrivals;
    methods.add(
        "print_medal_tally_for_team",
        &["boolean", "string", "double"],
        "Counts a tally push (the run follows no team).",
        move |_: Params, _| {
            let arrivals = tallies.clone();
            async move {
                arrivals.other.fetch_add(1, Ordering::Relaxed);
                Ok(Value::Bool(true))
            }
        },
    );
    let mut stop = stop;
    let shutdown = podium::shutdown::Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        let _ = stop.changed().await;
        trigger.trigger();
    });
    tokio::spawn(async move {
        let _ = podium::rpc::serve(
            listener,
            methods,
            ServerConfig::default(),
            shutdown.triggered(),
        )
        .await;
    });
    Ok(format!("http://{addr}/"))
}

/// Runs `call` for every URL, `SETUP_CONCURRENCY` at a time; returns the failures.
async fn for_each_url(
    client: &Client,
    urls: &[String],
    call: impl Fn(String) -> (String, Vec<Value>),
) -> Vec<String> {
    let limit = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for url in urls {
        let (method, params) = call(url.clone());
        let client = client.clone();
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            client
                .call(&method, &params)
                .await
                .err()
                .map(|e| e.to_string())
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Some(e)) => failures.push(e),
            Ok(None) => {}
            Err(e) => failures.push(e.to_string()),
        }
    }
    failures
}

async fn fanout(label: &str, args: FanoutArgs) -> anyhow::Result<()> {
    ensure!(
        (1..=MAX_SUBSCRIBERS).contains(&args.subscribers),
        "--subscribers must be 1 to {MAX_SUBSCRIBERS}"
    );
    ensure!(
        (1..=10_000).contains(&args.writes),
        "--writes must be 1 to 10000"
    );
    ensure!(
        args.warmup_writes <= 100,
        "--warmup-writes must be at most 100"
    );
    let password = password()?;
    let sub_target = Target::parse(&args.url).await?;
    let write_target = Target::parse(args.write_url.as_deref().unwrap_or(&args.url)).await?;
    let m = args.subscribers;
    let total_writes = args.warmup_writes + args.writes;
    let arrivals = Arc::new(Arrivals {
        subscribers: m,
        marker: format!("fo{:08x}w", rand::random::<u32>()),
        times: Mutex::new(vec![None; total_writes * m]),
        counts: (0..total_writes).map(|_| AtomicUsize::new(0)).collect(),
        all_in: Notify::new(),
        other: AtomicUsize::new(0),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut urls = Vec::with_capacity(m);
    for i in 0..m {
        urls.push(start_subscriber(i, arrivals.clone(), stop_rx.clone()).await?);
    }
    let control = Client::new(
        &sub_target.url,
        ClientConfig {
            pool_max_idle: SETUP_CONCURRENCY,
            ..ClientConfig::default()
        },
    )
    .context("control client")?;
    let event = args.event.clone();
    let setup_started = Instant::now();
    let failures = for_each_url(&control, &urls, |url| {
        (
            "scoreboard.subscribe".to_owned(),
            vec![
                Value::from(url),
                Value::Array(vec![Value::from(event.as_str())]),
                Value::Array(Vec::new()),
                Value::Int(FANOUT_LEASE_SECS),
            ],
        )
    })
    .await;
    if let Some(e) = failures.first() {
        bail!("{} of {m} subscriptions failed, first: {e}", failures.len());
    }
    println!(
        "fanout: {m} subscribers registered with {} in {:.0} ms",
        sub_target.url,
        setup_started.elapsed().as_secs_f64() * 1e3
    );

    let mut writer = Conn::new(write_target.clone());
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut acks = Vec::with_capacity(total_writes);
    let mut sends = Vec::with_capacity(total_writes);
    let mut write_latency = Samples::default();
    let run_started = Instant::now();
    for w in 0..total_writes {
        let sent = Instant::now();
        writer
            .call(
                "set_score",
                &[
                    Value::from(args.event.as_str()),
                    Value::from(arrivals.score_text(w)),
                    Value::from(password.as_str()),
                ],
            )
            .await
            .with_context(|| format!("write {w} through {}", write_target.url))?;
        let ack = Instant::now();
        if w >= args.warmup_writes {
            write_latency.record(ack - sent);
        }
        acks.push(ack);
        sends.push(sent);
        let deadline = tokio::time::Instant::from_std(ack + timeout);
        loop {
            let notified = arrivals.all_in.notified();
            if arrivals.counts[w].load(Ordering::Acquire) >= m {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
    }
    let run_secs = run_started.elapsed().as_secs_f64();

    let mut pairs = Samples::default();
    let mut from_send = Samples::default();
    let mut last = Samples::default();
    let (mut missing, mut before_ack) = (0usize, 0usize);
    {
        let times = arrivals.times.lock().unwrap_or_else(|p| p.into_inner());
        for (w, ack) in acks.iter().enumerate().skip(args.warmup_writes) {
            let mut slowest = Duration::ZERO;
            let mut complete = true;
            for sub in 0..m {
                match times[w * m + sub] {
                    Some(at) => {
                        if at < *ack {
                            before_ack += 1;
                        }
                        let d = at.saturating_duration_since(*ack);
                        slowest = slowest.max(d);
                        pairs.record(d);
                        from_send.record(at.saturating_duration_since(sends[w]));
                    }
                    None => {
                        missing += 1;
                        complete = false;
                    }
                }
            }
            if complete {
                last.record(slowest);
            }
        }
    }
    pairs.sort();
    from_send.sort();
    last.sort();
    let expected = args.writes * m;

    let failures = for_each_url(&control, &urls, |url| {
        ("scoreboard.unsubscribe".to_owned(), vec![Value::from(url)])
    })
    .await;
    let _ = stop_tx.send(true);

    println!(
        "fanout: {} measured writes (after {} warm-up) to {m} subscribers in {run_secs:.2} s",
        args.writes, args.warmup_writes
    );
    write_latency.sort();
    println!("  write ack latency:      {}", write_latency.summary());
    println!("  ack -> push, all pairs: {}", pairs.summary());
    println!("  ack -> last subscriber: {}", last.summary());
    println!("  sent -> push, all pairs: {}", from_send.summary());
    println!(
        "  {} of {expected} pushes arrived, {missing} missing (>{} ms), {before_ack} before the ack (counted as 0), {} unrelated",
        pairs.len(),
        args.timeout_ms,
        arrivals.other.load(Ordering::Relaxed)
    );
    if !failures.is_empty() {
        println!("  {} unsubscribe calls failed", failures.len());
    }
    println!(
        "RESULT kind=fanout label={label} subscribers={m} writes={} p50_ms={:.4} p99_ms={:.4} max_ms={:.4} last_p50_ms={:.4} last_p99_ms={:.4} send_p50_ms={:.4} send_p99_ms={:.4} ack_p50_ms={:.4} received={} missing={missing} before_ack={before_ack}",
        args.writes,
        pairs.percentile_ms(50.0),
        pairs.percentile_ms(99.0),
        pairs.percentile_ms(100.0),
        last.percentile_ms(50.0),
        last.percentile_ms(99.0),
        from_send.percentile_ms(50.0),
        from_send.percentile_ms(99.0),
        write_latency.percentile_ms(50.0),
        pairs.len(),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Cross-front-end staleness.

async fn staleness(label: &str, args: StalenessArgs) -> anyhow::Result<()> {
    ensure!(
        (1..=100_000).contains(&args.samples),
        "--samples must be 1 to 100000"
    );
    ensure!(
        args.warmup_samples <= 1000,
        "--warmup-samples must be at most 1000"
    );
    let password = password()?;
    let write_target = Target::parse(&args.write_url).await?;
    let read_target = Target::parse(&args.read_url).await?;
    let mut writer = Conn::new(write_target.clone());
    let mut reader = Conn::new(read_target.clone());
    let nonce = format!("st{:08x}x", rand::random::<u32>());
    let timeout = Duration::from_millis(args.timeout_ms);
    let read_body = encode(
        "get_score",
        &[Value::from(args.event.as_str()), Value::Int(0)],
    );
    let mut fresh = Samples::default();
    let (mut lost, mut first_poll, mut polls_total) = (0usize, 0usize, 0u64);
    let started = Instant::now();
    for i in 0..args.warmup_samples + args.samples {
        let measured = i >= args.warmup_samples;
        // B must hold the current value in its cache, or the first read
        // after the write would be a miss served fresh by the db.
        reader
            .post(read_body.clone())
            .await
            .with_context(|| format!("reading through {}", read_target.url))?;
        let token = format!("{nonce}{i}y");
        writer
            .call(
                "set_score",
                &[
                    Value::from(args.event.as_str()),
                    Value::from(token.as_str()),
                    Value::from(password.as_str()),
                ],
            )
            .await
            .with_context(|| format!("writing through {}", write_target.url))?;
        let ack = Instant::now();
        let mut polls = 0u64;
        let seen = loop {
            polls += 1;
            let reply = reader
                .post(read_body.clone())
                .await
                .with_context(|| format!("reading through {}", read_target.url))?;
            let at = Instant::now();
            if contains(&reply, token.as_bytes()) {
                break Some(at);
            }
            if at - ack > timeout {
                break None;
            }
        };
        if !measured {
            continue;
        }
        polls_total += polls;
        match seen {
            Some(at) => {
                if polls == 1 {
                    first_poll += 1;
                }
                fresh.record(at - ack);
            }
            None => lost += 1,
        }
    }
    fresh.sort();
    println!(
        "staleness: write through {}, read through {}: {} samples in {:.2} s",
        write_target.url,
        read_target.url,
        args.samples,
        started.elapsed().as_secs_f64()
    );
    println!("  ack -> fresh read: {}", fresh.summary());
    println!(
        "  {first_poll} fresh on the first poll, {:.1} polls per sample, {lost} never fresh within {} ms",
        polls_total as f64 / args.samples as f64,
        args.timeout_ms
    );
    println!(
        "RESULT kind=staleness label={label} samples={} p50_ms={:.4} p99_ms={:.4} max_ms={:.4} lost={lost} first_poll={first_poll}",
        args.samples,
        fresh.percentile_ms(50.0),
        fresh.percentile_ms(99.0),
        fresh.percentile_ms(100.0),
    );
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
