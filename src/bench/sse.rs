//! Server-sent events at scale (`sse`): N simulated browsers follow
//! `/events` (through the balancer, usually), then M writes, one at a time;
//! for each (write, viewer) pair the time from the write's acknowledgement
//! to the change's arrival, how many never came or came twice, and each
//! watched server's memory per viewer: its RSS once every viewer has its
//! snapshot, less its RSS before the first connected, over N.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::fanout;
use super::samples::{Samples, Sorted};
use super::viewers::{self, Board, Dial, Log};
use super::{ensure, BenchError, Target, DEFAULT_EVENT};
use crate::secret::Secret;

/// Most viewers a run may start (each is a socket here and one in the
/// server; the machine's hard limit is 20,000 per process).
const MAX_CLIENTS: usize = 15_000;
/// Most measured writes.
const MAX_WRITES: usize = 10_000;
/// How long viewers get to connect, per thousand of them.
const CONNECT_MS_PER_1000: u64 = 10_000;
/// Pause once every viewer is in, before memory is read: the servers
/// finish sending snapshots.
const SETTLE: Duration = Duration::from_secs(1);

/// The flags of an `sse` run.
#[derive(Debug, Clone, clap::Args)]
pub struct SseConfig {
    /// Where the viewers follow `/events` (the balancer).
    #[arg(long)]
    pub url: String,
    /// Where the writes go; default the same server.
    #[arg(long)]
    pub write_url: Option<String>,
    /// Simulated browsers, each with one stream.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Measured writes; each waits until every viewer has it (or the timeout).
    #[arg(long, default_value_t = 20)]
    pub writes: usize,
    /// Unmeasured writes first.
    #[arg(long, default_value_t = 1)]
    pub warmup_writes: usize,
    /// The event written.
    #[arg(long, default_value = DEFAULT_EVENT)]
    pub event: String,
    /// How long one write may take to reach every viewer before the
    /// missing ones count as lost, ms.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Pause between one write reaching every viewer and the next, ms.
    #[arg(long, default_value_t = 50)]
    pub pause_ms: u64,
    /// A server whose memory per viewer is reported, as NAME=PID; repeat.
    #[arg(long = "pid", value_name = "NAME=PID")]
    pub pids: Vec<String>,
    /// Viewers connecting at once while the run starts.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Spread viewers over this many loopback source addresses
    /// (127.0.0.2, ...), as real viewers come from many: a server's
    /// per-address stream cap sees N / this from each. 0: one address.
    #[arg(long, default_value_t = 16)]
    pub source_addrs: usize,
}

impl SseConfig {
    fn validate(&self) -> Result<Vec<(String, u32)>, BenchError> {
        ensure((1..=MAX_CLIENTS).contains(&self.clients), || {
            format!("--clients must be 1 to {MAX_CLIENTS}")
        })?;
        ensure((1..=MAX_WRITES).contains(&self.writes), || {
            format!("--writes must be 1 to {MAX_WRITES}")
        })?;
        ensure(self.warmup_writes <= 100, || {
            "--warmup-writes must be at most 100".into()
        })?;
        ensure(self.connect_concurrency > 0, || {
            "--connect-concurrency must be positive".into()
        })?;
        ensure(self.source_addrs <= 250, || {
            "--source-addrs must be at most 250".into()
        })?;
        self.pids
            .iter()
            .map(|p| {
                let (name, pid) = p.split_once('=').unwrap_or(("", p));
                let pid = pid
                    .parse()
                    .map_err(|_| BenchError::Invalid(format!("--pid {p:?}: want NAME=PID")))?;
                let name = if name.is_empty() {
                    format!("pid{pid}")
                } else {
                    name.to_owned()
                };
                Ok((name, pid))
            })
            .collect()
    }
}

/// One watched server's memory.
#[derive(Debug, Clone)]
struct Memory {
    name: String,
    before: u64,
    after: u64,
}

/// What an `sse` run measured.
#[derive(Debug)]
pub struct SseReport {
    label: String,
    clients: usize,
    ready: usize,
    writes: usize,
    /// Ack → arrival, every (measured write, viewer) pair that arrived.
    pairs: Sorted,
    /// Sent → arrival, the same pairs: an upper bound of commit → arrival,
    /// which the ack alone understates when the server that relays the
    /// write's reply is busy with the fan-out (an arrival before the ack
    /// counts as 0 above).
    from_sent: Sorted,
    /// Ack → arrival at the last viewer, per measured write.
    last: Sorted,
    /// The writes' own round trips.
    acks: Sorted,
    lost: usize,
    repeated: usize,
    out_of_order: usize,
    reconnects: usize,
    snapshots: usize,
    memory: Vec<Memory>,
}

/// Resident memory of a process, bytes.
fn rss_bytes(pid: u32) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Waits until `done` holds, woken by `board`, or `deadline`.
async fn wait(board: &Board, deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        let notified = board.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if done() {
            return true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return done();
        }
    }
}

/// Runs the scenario.
///
/// # Errors
/// Bad flags, a target that is not loopback, or a write that kept failing.
pub(crate) async fn run(
    label: String,
    config: &SseConfig,
    password: &Secret,
) -> Result<SseReport, BenchError> {
    let watched = config.validate()?;
    let target = Target::check(&config.url).await?;
    let write_to = Target::check(config.write_url.as_deref().unwrap_or(&config.url)).await?;
    let writer = write_to.client(1)?;
    let addr = target.addr();
    let sources = match addr.ip() {
        IpAddr::V4(_) => (0..config.source_addrs)
            .map(|i| IpAddr::from([127, 0, 0, 2 + i as u8]))
            .collect(),
        IpAddr::V6(_) => Vec::new(),
    };
    let dial = Dial {
        addr,
        host: addr.to_string(),
        sources,
    };
    let before: Vec<u64> = watched.iter().map(|(_, pid)| rss_bytes(*pid)).collect();
    let board = Arc::new(Board::default());
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let connect_deadline = Instant::now()
        + Duration::from_millis(
            CONNECT_MS_PER_1000 * (config.clients as u64).div_ceil(1000) + config.timeout_ms,
        );
    for n in 0..config.clients {
        let (dial, shared, stop) = (dial.clone(), board.clone(), stop.clone());
        tasks.spawn(async move { viewers::view(n, dial, &shared, stop).await });
        // At most connect_concurrency viewers on their way in at once.
        let spawned = n + 1;
        wait(&board, connect_deadline, || {
            let settled =
                board.ready.load(Ordering::Relaxed) + board.broken.load(Ordering::Relaxed);
            spawned <= settled + config.connect_concurrency
        })
        .await;
    }
    wait(&board, connect_deadline, || {
        board.ready.load(Ordering::Relaxed) >= config.clients
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    let ready = board.ready.load(Ordering::Relaxed);
    let memory: Vec<Memory> = watched
        .iter()
        .zip(before)
        .map(|((name, pid), before)| Memory {
            name: name.clone(),
            before,
            after: rss_bytes(*pid),
        })
        .collect();

    let nonce: u32 = rand::random();
    let mut measured: Vec<Measured> = Vec::with_capacity(config.writes);
    let mut acks = Samples::default();
    let password = password.expose();
    for w in 0..config.warmup_writes + config.writes {
        let text = format!("sse{nonce:08x}w{w}");
        let sent = Instant::now();
        let version = fanout::write(&writer, &config.event, &text, &password)
            .await
            .map_err(|source| BenchError::Call {
                what: format!("write {w}"),
                source,
            })?;
        let acked = Instant::now();
        if w >= config.warmup_writes {
            measured.push(Measured {
                version,
                sent,
                acked,
            });
            acks.record(acked - sent);
        }
        let deadline = acked + Duration::from_millis(config.timeout_ms);
        board.await_version(version, ready);
        wait(&board, deadline, || board.count(version) >= ready).await;
        tokio::time::sleep(Duration::from_millis(config.pause_ms)).await;
    }
    stop.cancel();
    let mut logs: Vec<Log> = Vec::with_capacity(config.clients);
    while let Some(joined) = tasks.join_next().await {
        logs.push(joined.map_err(|_| BenchError::Panicked)?);
    }
    Ok(tally(label, config, ready, &measured, acks, &logs, memory))
}

/// One measured write.
#[derive(Debug, Clone, Copy)]
struct Measured {
    version: i64,
    sent: Instant,
    acked: Instant,
}

/// Pairs each viewer's arrivals with the writes' acknowledgements.
fn tally(
    label: String,
    config: &SseConfig,
    ready: usize,
    measured: &[Measured],
    acks: Samples,
    logs: &[Log],
    memory: Vec<Memory>,
) -> SseReport {
    let mut pairs = Samples::default();
    let mut from_sent = Samples::default();
    let mut last_per_write: Vec<Option<Duration>> = vec![None; measured.len()];
    let (mut lost, mut repeated, mut out_of_order) = (0, 0, 0);
    for log in logs.iter().filter(|l| l.snapshots > 0) {
        out_of_order += log.changes.windows(2).filter(|w| w[0].0 >= w[1].0).count();
        for (i, m) in measured.iter().enumerate() {
            let mut arrivals = log.changes.iter().filter(|(v, _)| *v == m.version);
            let Some((_, at)) = arrivals.next() else {
                lost += 1;
                continue;
            };
            repeated += arrivals.count();
            // An arrival before the ack reached the writer counts as 0.
            let latency = at.saturating_duration_since(m.acked);
            pairs.record(latency);
            from_sent.record(at.saturating_duration_since(m.sent));
            let last = &mut last_per_write[i];
            *last = Some(last.map_or(latency, |l| l.max(latency)));
        }
    }
    let mut last = Samples::default();
    for l in last_per_write.into_iter().flatten() {
        last.record(l);
    }
    SseReport {
        label,
        clients: config.clients,
        ready,
        writes: measured.len(),
        pairs: pairs.sorted(),
        from_sent: from_sent.sorted(),
        last: last.sorted(),
        acks: acks.sorted(),
        lost,
        repeated,
        out_of_order,
        reconnects: logs.iter().map(|l| l.reconnects).sum(),
        snapshots: logs.iter().map(|l| l.snapshots).sum(),
        memory,
    }
}

impl SseReport {
    /// Lost changes, for [`super::Report::check`].
    pub fn lost(&self) -> usize {
        self.lost
    }
}

fn kib_per(m: &Memory, n: usize) -> f64 {
    m.after.saturating_sub(m.before) as f64 / 1024.0 / n.max(1) as f64
}

impl fmt::Display for SseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        writeln!(
            f,
            "sse: {} viewers ({} had their snapshot), {} measured writes",
            self.clients, self.ready, self.writes
        )?;
        writeln!(f, "  write ack -> receipt: {}", self.pairs.summary())?;
        writeln!(f, "  ... at the last viewer: {}", self.last.summary())?;
        writeln!(f, "  write sent -> receipt: {}", self.from_sent.summary())?;
        writeln!(f, "  the writes themselves:  {}", self.acks.summary())?;
        writeln!(
            f,
            "  lost {}, repeated {}, out of order {}, reconnects {}, snapshots {}",
            self.lost, self.repeated, self.out_of_order, self.reconnects, self.snapshots
        )?;
        for m in &self.memory {
            writeln!(
                f,
                "  {}: RSS {:.1} -> {:.1} MiB, {:.2} KiB per viewer",
                m.name,
                mib(m.before),
                mib(m.after),
                kib_per(m, self.clients)
            )?;
        }
        let memory: String = self
            .memory
            .iter()
            .map(|m| format!(" mem_{}_kib={:.3}", m.name, kib_per(m, self.clients)))
            .collect();
        writeln!(
            f,
            "RESULT kind=sse label={} clients={} ready={} writes={} p50_ms={:.4} p99_ms={:.4} max_ms={:.4} last_p50_ms={:.4} last_p99_ms={:.4} sent_p50_ms={:.4} sent_p99_ms={:.4} ack_p50_ms={:.4} received={} lost={} repeated={} out_of_order={} reconnects={}{memory}",
            self.label,
            self.clients,
            self.ready,
            self.writes,
            self.pairs.percentile_ms(50.0),
            self.pairs.percentile_ms(99.0),
            self.pairs.percentile_ms(100.0),
            self.last.percentile_ms(50.0),
            self.last.percentile_ms(99.0),
            self.from_sent.percentile_ms(50.0),
            self.from_sent.percentile_ms(99.0),
            self.acks.percentile_ms(50.0),
            self.pairs.len(),
            self.lost,
            self.repeated,
            self.out_of_order,
            self.reconnects,
        )
    }
}
