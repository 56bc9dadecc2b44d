//! `attack`: a legitimate closed-loop client against a target while one
//! attack runs, and the resident memory of the server processes named by
//! `--pid`, during the attack and after it.
//!
//! The attacks (issue 11), each from loopback only:
//! - `slowloris`: sockets that send a request head that never ends, one
//!   byte a second, reconnecting at their next tick when closed;
//! - `bodies`: connections that declare a body of 1 MiB − 1, send all but
//!   the last 64 KiB of it and stall, reconnecting a second after a close;
//! - `multicall`: connections looping a small gzipped `system.multicall` of
//!   many `scoreboard.medal_table` calls, counting what comes back.
//!
//! The legitimate client reads `get_medal_tally` in a closed loop on one
//! keep-alive connection, every tenth call on a new connection (new
//! clients are what starved before). The run ramps the attack up first,
//! measures the client for the window, stops the attack and then watches
//! the memory until every process has settled: under `--settle-rss-mb`, or
//! back at or below what it used before the attack (a process that was
//! already larger is not waited for), or the `--after-secs` deadline passes.

use std::fmt;
use std::time::{Duration, Instant};

mod attackers;

use super::load::{is_fault, RequestMix};
use super::samples::{Samples, Sorted};
use super::{ensure, BenchError, Target};
use attackers::{Attack, AttackStats};

/// Most attacking sockets.
const MAX_ATTACKERS: usize = 10_000;
/// Most calls in one attacking multicall.
const MAX_CALLS: usize = 100_000;
/// Longest ramp, window or settling time, seconds.
const MAX_PHASE_SECS: f64 = 600.0;
/// How often memory is sampled.
const RSS_INTERVAL: Duration = Duration::from_millis(100);
/// Deadline of a legitimate call; a slower one counts as an error.
const LEGIT_TIMEOUT: Duration = Duration::from_secs(5);
/// One call in this many is made on a new connection.
const NEW_CONNECTION_EVERY: u64 = 10;

/// Which attack to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AttackKind {
    /// Request heads trickled a byte a second (default 2,000 sockets).
    Slowloris,
    /// Bodies of 1 MiB − 1 sent but for the end, then held (default 1,000).
    Bodies,
    /// Gzipped multicalls of many medal tables (default 4 connections).
    Multicall,
}

impl AttackKind {
    fn name(self) -> &'static str {
        match self {
            AttackKind::Slowloris => "slowloris",
            AttackKind::Bodies => "bodies",
            AttackKind::Multicall => "multicall",
        }
    }

    fn default_attackers(self) -> usize {
        match self {
            AttackKind::Slowloris => 2000,
            AttackKind::Bodies => 1000,
            AttackKind::Multicall => 4,
        }
    }
}

/// The flags of an attack run.
#[derive(Debug, Clone, clap::Args)]
pub struct AttackConfig {
    /// Server URL (loopback only): the legitimate client calls it and the
    /// attack hits it.
    #[arg(long)]
    pub url: String,
    /// Which attack.
    #[arg(long, value_enum)]
    pub kind: AttackKind,
    /// Attacking sockets; default 2000 (slowloris), 1000 (bodies), 4 (multicall).
    #[arg(long)]
    pub attackers: Option<usize>,
    /// Calls in each attacking multicall (4,500: what issue 11 measured).
    #[arg(long, default_value_t = 4500)]
    pub calls: usize,
    /// Seconds the attack runs before the measured window.
    #[arg(long, default_value_t = 2.0)]
    pub ramp_secs: f64,
    /// Measured seconds, with the attack running.
    #[arg(long, default_value_t = 5.0)]
    pub duration_secs: f64,
    /// Longest wait after the attack for every --pid to settle.
    #[arg(long, default_value_t = 60.0)]
    pub after_secs: f64,
    /// Resident memory, MiB, under which a process counts as settled after
    /// the attack (as does one back at or below its RSS before it).
    #[arg(long, default_value_t = 64.0)]
    pub settle_rss_mb: f64,
    /// A server process whose memory to watch (VmRSS); repeat for each.
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
}

impl AttackConfig {
    fn attackers(&self) -> usize {
        self.attackers.unwrap_or(self.kind.default_attackers())
    }

    fn validate(&self) -> Result<(), BenchError> {
        ensure((1..=MAX_ATTACKERS).contains(&self.attackers()), || {
            format!("--attackers must be 1 to {MAX_ATTACKERS}")
        })?;
        ensure((1..=MAX_CALLS).contains(&self.calls), || {
            format!("--calls must be 1 to {MAX_CALLS}")
        })?;
        for (flag, secs) in [
            ("--ramp-secs", self.ramp_secs),
            ("--duration-secs", self.duration_secs),
            ("--after-secs", self.after_secs),
        ] {
            ensure((0.0..=MAX_PHASE_SECS).contains(&secs), || {
                format!("{flag} must be 0 to {MAX_PHASE_SECS}")
            })?;
        }
        ensure(self.duration_secs > 0.0, || {
            "--duration-secs must be positive".into()
        })?;
        ensure(self.settle_rss_mb > 0.0, || {
            "--settle-rss-mb must be positive".into()
        })
    }
}

/// Resident memory of a process now, bytes; `None` once it is gone.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

/// What one watched process used.
#[derive(Debug, Clone, Copy, Default)]
struct Rss {
    pid: u32,
    before: u64,
    /// The most seen during the attack.
    during: u64,
    /// The last seen after it.
    after: u64,
}

/// Samples every process's memory every [`RSS_INTERVAL`] until `until`,
/// keeping the most seen in `during`.
async fn watch_during(rss: &mut [Rss], until: Instant) {
    let mut tick = tokio::time::interval(RSS_INTERVAL);
    while Instant::now() < until {
        tick.tick().await;
        for r in rss.iter_mut() {
            r.during = r.during.max(rss_bytes(r.pid).unwrap_or(0));
        }
    }
}

/// The legitimate client: closed-loop reads until `end`, measured from
/// `measure_from` on.
async fn legit(
    target: &Target,
    measure_from: Instant,
    end: Instant,
) -> Result<(Samples, u64, Option<String>), BenchError> {
    let reads = RequestMix::read_bodies(0);
    let mut kept = target.connection()?;
    let (mut samples, mut errors, mut first_error) = (Samples::default(), 0u64, None);
    let mut seq = 0u64;
    while Instant::now() < end {
        let fresh = seq % NEW_CONNECTION_EVERY == 0;
        let client = if fresh {
            target.connection()?
        } else {
            kept.clone()
        };
        let body = reads[(seq as usize) % reads.len()].clone();
        let sent = Instant::now();
        let result = tokio::time::timeout(LEGIT_TIMEOUT, client.send_encoded(body)).await;
        let done = Instant::now();
        let failure = match result {
            Ok(Ok(reply)) if is_fault(&reply) => Some("a fault".to_owned()),
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no reply within {LEGIT_TIMEOUT:?}")),
        };
        if sent >= measure_from {
            match failure {
                None => samples.record(done - sent),
                Some(e) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                    // A broken connection is not used again.
                    kept = target.connection()?;
                }
            }
        }
        seq += 1;
    }
    Ok((samples, errors, first_error))
}

/// Runs an attack with a legitimate client alongside.
pub(crate) async fn run(label: String, config: &AttackConfig) -> Result<AttackReport, BenchError> {
    config.validate()?;
    let target = Target::check(&config.url).await?;
    let addr = target.addr();
    let mut rss: Vec<Rss> = config
        .pids
        .iter()
        .map(|&pid| {
            let now = rss_bytes(pid).unwrap_or(0);
            Rss {
                pid,
                before: now,
                during: now,
                after: now,
            }
        })
        .collect();
    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(config.ramp_secs);
    let end = measure_from + Duration::from_secs_f64(config.duration_secs);
    let attack = Attack::start(config, addr, &target)?;
    let (measured, ()) = tokio::join!(
        legit(&target, measure_from, end),
        watch_during(&mut rss, end)
    );
    let (samples, errors, first_error) = measured?;
    let stats = attack.stats.clone();
    attack.stop().await;
    let stopped = Instant::now();
    let settle_bytes = (config.settle_rss_mb * 1024.0 * 1024.0) as u64;
    let deadline = stopped + Duration::from_secs_f64(config.after_secs);
    let mut settled = None;
    loop {
        for r in rss.iter_mut() {
            r.after = rss_bytes(r.pid).unwrap_or(0);
        }
        if rss
            .iter()
            .all(|r| r.after < settle_bytes || r.after <= r.before)
        {
            settled = Some(stopped.elapsed());
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(RSS_INTERVAL).await;
    }
    let get = AttackStats::get;
    Ok(AttackReport {
        label,
        url: config.url.clone(),
        kind: config.kind,
        attackers: config.attackers(),
        window: Duration::from_secs_f64(config.duration_secs),
        legit: samples.sorted(),
        errors,
        first_error,
        connects: get(&stats.connects),
        closed: get(&stats.closed),
        replies: get(&stats.replies),
        faults: get(&stats.faults),
        sent_bytes: get(&stats.sent_bytes),
        reply_bytes: get(&stats.reply_bytes),
        rss,
        settle_rss_mb: config.settle_rss_mb,
        settled,
    })
}

/// What an attack run measured.
#[derive(Debug)]
pub struct AttackReport {
    label: String,
    url: String,
    kind: AttackKind,
    attackers: usize,
    window: Duration,
    /// The legitimate client's successful calls in the window.
    legit: Sorted,
    /// Its failed calls in the window.
    errors: u64,
    first_error: Option<String>,
    connects: u64,
    closed: u64,
    replies: u64,
    faults: u64,
    sent_bytes: u64,
    reply_bytes: u64,
    rss: Vec<Rss>,
    settle_rss_mb: f64,
    /// How long after the attack every process had settled (see the
    /// module's documentation).
    settled: Option<Duration>,
}

impl AttackReport {
    /// Legitimate calls that succeeded in the window.
    pub fn ok(&self) -> u64 {
        self.legit.len() as u64
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl fmt::Display for AttackReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.name();
        writeln!(
            f,
            "attack {kind}: {} attacker(s) against {}; legitimate client for {:.1} s",
            self.attackers,
            self.url,
            self.window.as_secs_f64()
        )?;
        writeln!(
            f,
            "  legitimate: {} ok, {} errors, {}",
            self.ok(),
            self.errors,
            self.legit.summary()
        )?;
        if let Some(e) = &self.first_error {
            writeln!(f, "  first error: {e}")?;
        }
        writeln!(
            f,
            "  attack: {} connects, {} closed by the server",
            self.connects, self.closed
        )?;
        let amplification = if self.sent_bytes > 0 {
            self.reply_bytes as f64 / self.sent_bytes as f64
        } else {
            f64::NAN
        };
        if self.kind == AttackKind::Multicall {
            writeln!(
                f,
                "  multicall: {} replies ({} faults), {:.1} KiB sent, {:.1} KiB back: x{amplification:.2}",
                self.replies,
                self.faults,
                self.sent_bytes as f64 / 1024.0,
                self.reply_bytes as f64 / 1024.0,
            )?;
        }
        for r in &self.rss {
            writeln!(
                f,
                "  pid {}: RSS {:.1} MiB before, {:.1} MiB at most during, {:.1} MiB after",
                r.pid,
                mib(r.before),
                mib(r.during),
                mib(r.after)
            )?;
        }
        match self.settled {
            Some(t) => writeln!(
                f,
                "  every process under {:.0} MiB (or back where it was) {:.1} s after the attack",
                self.settle_rss_mb,
                t.as_secs_f64()
            )?,
            None if !self.rss.is_empty() => writeln!(
                f,
                "  not every process was under {:.0} MiB (or back where it was) by the deadline",
                self.settle_rss_mb
            )?,
            None => {}
        }
        let most = |pick: fn(&Rss) -> u64| mib(self.rss.iter().map(pick).max().unwrap_or(0));
        let per_pid: Vec<String> = self
            .rss
            .iter()
            .map(|r| {
                format!(
                    "{}:{:.1}/{:.1}/{:.1}",
                    r.pid,
                    mib(r.before),
                    mib(r.during),
                    mib(r.after)
                )
            })
            .collect();
        writeln!(
            f,
            "RESULT kind=attack label={} attack={kind} attackers={} ok={} errors={} p50_ms={:.4} p99_ms={:.4} max_ms={:.4} connects={} closed={} replies={} faults={} amplification={amplification:.3} rss_before_mb={:.1} rss_during_mb={:.1} rss_after_mb={:.1} settle_ms={:.0} rss={}",
            self.label,
            self.attackers,
            self.ok(),
            self.errors,
            self.legit.percentile_ms(50.0),
            self.legit.percentile_ms(99.0),
            self.legit.percentile_ms(100.0),
            self.connects,
            self.closed,
            self.replies,
            self.faults,
            most(|r| r.before),
            most(|r| r.during),
            most(|r| r.after),
            self.settled.map_or(f64::NAN, |t| t.as_secs_f64() * 1000.0),
            if per_pid.is_empty() { "-".to_owned() } else { per_pid.join(",") },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::attackers::multicall_body;
    use super::*;
    use crate::rpc::codec::{self, Limits};

    #[test]
    fn the_multicall_body_is_small_and_asks_for_every_medal_table() {
        let body = multicall_body(4500);
        assert!(body.len() < 8 * 1024, "{} bytes", body.len());
        let mut xml = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut xml).unwrap();
        let call = codec::parse_call(&xml, Limits::default()).unwrap();
        assert_eq!(call.method, "system.multicall");
        let calls = call.params[0].as_array().unwrap();
        assert_eq!(calls.len(), 4500);
    }

    #[test]
    fn rss_of_this_process_is_read_and_a_missing_one_is_none() {
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
        assert_eq!(rss_bytes(u32::MAX), None);
    }
}
