//! Push fan-out (`fanout`): M simulated tablets subscribe (through the
//! balancer or a front-end), then K writes, one at a time; for each (write,
//! subscriber) pair, the time from the write's acknowledgement until that
//! subscriber got the push, and how many pushes never came or came twice.
//! With `--kill-pid`, a process (the front-end that owns half the tablets)
//! is killed mid-stream: the pushes of the writes after it show how long
//! the takeover took, and that nothing was lost.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

mod report;

use super::tablets;
use super::{ensure, BenchError, Target, DEFAULT_EVENT};
use crate::api::callback::Callback;
use crate::api::Subscribe;
use crate::rpc::ClientError;
use crate::secret::Secret;
use crate::shutdown::{Shutdown, Tasks};
pub use report::FanoutReport;
use report::Measured;

/// Most subscribers a run may start.
const MAX_SUBSCRIBERS: usize = 10_000;
/// Attempts of one write (a write carries a request id, so a retry after a
/// front-end died applies once).
const WRITE_ATTEMPTS: u32 = 5;
/// Most measured writes.
const MAX_WRITES: usize = 10_000;
/// Most unmeasured writes.
const MAX_WARMUP_WRITES: usize = 100;
/// Subscribe and unsubscribe calls in flight at once during set-up.
const SETUP_CONCURRENCY: usize = 32;
/// Lease asked for by subscribers, seconds: longer than any run.
const LEASE_SECS: i64 = 600;
/// How long a callback server may take to finish its last requests.
const SUBSCRIBER_GRACE_MS: u64 = 1_000;

/// The flags of a fan-out run.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutConfig {
    /// The front-end the subscribers register with.
    #[arg(long)]
    pub url: String,
    /// Where the writes go; default the same front-end.
    #[arg(long)]
    pub write_url: Option<String>,
    /// Callback servers to start, each on its own loopback port.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Measured writes; each waits until every subscriber got its push (or the timeout).
    #[arg(long, default_value_t = 20)]
    pub writes: usize,
    /// Unmeasured writes first (the front-end opens its connections to the subscribers).
    #[arg(long, default_value_t = 1)]
    pub warmup_writes: usize,
    /// The event written and followed.
    #[arg(long, default_value = DEFAULT_EVENT)]
    pub event: String,
    /// How long one write's pushes may take before the missing ones count as lost, ms.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Kill -9 this process (a front-end) mid-stream.
    #[arg(long)]
    pub kill_pid: Option<u32>,
    /// With --kill-pid: kill it after this many measured writes.
    #[arg(long, default_value_t = 5)]
    pub kill_after: usize,
}

impl FanoutConfig {
    fn validate(&self) -> Result<(), BenchError> {
        ensure((1..=MAX_SUBSCRIBERS).contains(&self.subscribers), || {
            format!("--subscribers must be 1 to {MAX_SUBSCRIBERS}")
        })?;
        ensure((1..=MAX_WRITES).contains(&self.writes), || {
            format!("--writes must be 1 to {MAX_WRITES}")
        })?;
        ensure(self.warmup_writes <= MAX_WARMUP_WRITES, || {
            format!("--warmup-writes must be at most {MAX_WARMUP_WRITES}")
        })?;
        ensure(
            self.kill_pid.is_none() || self.kill_after < self.writes,
            || "--kill-after must be below --writes".to_owned(),
        )
    }
}

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
    /// Pushes that came again after the first.
    repeated: AtomicUsize,
}

impl Arrivals {
    fn new(subscribers: usize, writes: usize, nonce: u32) -> Arrivals {
        Arrivals {
            subscribers,
            marker: format!("fo{nonce:08x}w"),
            times: Mutex::new(vec![None; writes * subscribers]),
            counts: (0..writes).map(|_| AtomicUsize::new(0)).collect(),
            all_in: Notify::new(),
            other: AtomicUsize::new(0),
            repeated: AtomicUsize::new(0),
        }
    }

    /// Records `callback`, pushed to subscriber `sub`, received at `at`.
    /// A repeated push keeps its first arrival.
    fn receive(&self, sub: usize, callback: &Callback, at: Instant) {
        let write = match callback {
            Callback::Score { text, .. } => self.write_index(text),
            Callback::Tally { .. } => None,
        };
        let Some(write) = write else {
            self.other.fetch_add(1, Ordering::Relaxed);
            return;
        };
        {
            let mut times = self.times.lock().unwrap_or_else(|p| p.into_inner());
            let slot = &mut times[write * self.subscribers + sub];
            if slot.is_some() {
                self.repeated.fetch_add(1, Ordering::Relaxed);
                return;
            }
            *slot = Some(at);
        }
        if self.counts[write].fetch_add(1, Ordering::AcqRel) + 1 == self.subscribers {
            self.all_in.notify_waiters();
        }
    }

    /// Which of this run's writes a pushed text carries, if any.
    fn write_index(&self, text: &str) -> Option<usize> {
        let rest = &text[text.find(&self.marker)? + self.marker.len()..];
        let digits = &rest[..rest.find('e')?];
        digits.parse().ok().filter(|w| *w < self.counts.len())
    }

    /// The score text of write `write`.
    fn score_text(&self, write: usize) -> String {
        format!("{}{write}e", self.marker)
    }

    /// Waits until write `write` has reached every subscriber, or `deadline`.
    async fn wait_all_in(&self, write: usize, deadline: Instant) {
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            // Registered before the count is read, so no wake-up is missed.
            let notified = self.all_in.notified();
            if self.counts[write].load(Ordering::Acquire) >= self.subscribers {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}

/// Runs `call` for every URL, [`SETUP_CONCURRENCY`] at a time; returns the
/// failures.
async fn for_each_url<F, Fut>(urls: &[String], call: F) -> Vec<String>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), ClientError>> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for url in urls {
        let call = call(url.clone());
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            call.await.err().map(|e| e.to_string())
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

/// Runs a fan-out measurement. The callback servers live as long as the
/// run, whether it succeeds or not.
pub(crate) async fn run(
    label: String,
    config: &FanoutConfig,
    password: &Secret,
) -> Result<FanoutReport, BenchError> {
    config.validate()?;
    let subscribe_to = Target::check(&config.url).await?;
    let write_to = Target::check(config.write_url.as_deref().unwrap_or(&config.url)).await?;
    let tasks = Tasks::new(Shutdown::new());
    let report = measure(label, config, password, &subscribe_to, &write_to, &tasks).await;
    tasks
        .stop(Duration::from_millis(2 * SUBSCRIBER_GRACE_MS))
        .await;
    report
}

async fn measure(
    label: String,
    config: &FanoutConfig,
    password: &Secret,
    subscribe_to: &Target,
    write_to: &Target,
    tasks: &Tasks,
) -> Result<FanoutReport, BenchError> {
    let m = config.subscribers;
    let total_writes = config.warmup_writes + config.writes;
    let arrivals = Arc::new(Arrivals::new(m, total_writes, rand::random()));
    let mut urls = Vec::with_capacity(m);
    let receive: tablets::Receive = {
        let arrivals = arrivals.clone();
        Arc::new(move |index, callback| arrivals.receive(index, &callback, Instant::now()))
    };
    for first in (0..m).step_by(tablets::TABLETS_PER_PORT) {
        let count = tablets::TABLETS_PER_PORT.min(m - first);
        urls.extend(tablets::start_port(tasks, first, count, receive.clone()).await?);
    }

    let control = subscribe_to.client(SETUP_CONCURRENCY)?;
    let setup_started = Instant::now();
    let failures = for_each_url(&urls, |url| {
        let (control, event) = (control.clone(), config.event.clone());
        async move {
            let call = Subscribe {
                callback_url: url,
                events: vec![event],
                teams: Vec::new(),
                lease_seconds: Some(LEASE_SECS),
            };
            control.subscribe(&call).await.map(|_| ())
        }
    })
    .await;
    if let Some(first) = failures.first() {
        return Err(BenchError::Subscribe {
            failed: failures.len(),
            total: m,
            first: first.clone(),
        });
    }
    let setup = setup_started.elapsed();

    let writer = write_to.connection()?;
    let timeout = Duration::from_millis(config.timeout_ms);
    let pw = password.expose();
    let mut sends = Vec::with_capacity(total_writes);
    let mut acks = Vec::with_capacity(total_writes);
    let mut killed_at = None;
    let run_started = Instant::now();
    for w in 0..total_writes {
        if let Some(pid) = config.kill_pid {
            if killed_at.is_none() && w == config.warmup_writes + config.kill_after {
                kill(pid)?;
                killed_at = Some(Instant::now());
            }
        }
        let sent = Instant::now();
        write(&writer, &config.event, &arrivals.score_text(w), &pw)
            .await
            .map_err(|source| BenchError::Call {
                what: format!("write {w} through {}", write_to.url()),
                source,
            })?;
        let ack = Instant::now();
        sends.push(sent);
        acks.push(ack);
        arrivals.wait_all_in(w, ack + timeout).await;
    }
    let run_secs = run_started.elapsed().as_secs_f64();
    let measured = Measured::of(&arrivals, &sends, &acks, config.warmup_writes);
    let after_kill = killed_at.map(|at| Measured::after(&arrivals, &acks, at));

    let unsubscribe_failures = for_each_url(&urls, |url| {
        let control = control.clone();
        async move { control.unsubscribe(&url).await.map(|_| ()) }
    })
    .await
    .len();
    Ok(FanoutReport {
        label,
        url: subscribe_to.url().to_owned(),
        subscribers: m,
        writes: config.writes,
        warmup_writes: config.warmup_writes,
        timeout_ms: config.timeout_ms,
        setup,
        run_secs,
        write_ack: measured.write_ack.sorted(),
        pairs: measured.pairs.sorted(),
        last: measured.last.sorted(),
        from_send: measured.from_send.sorted(),
        missing: measured.missing,
        before_ack: measured.before_ack,
        unrelated: arrivals.other.load(Ordering::Relaxed),
        repeated: arrivals.repeated.load(Ordering::Relaxed),
        after_kill,
        unsubscribe_failures,
    })
}

/// One write through `writer`, with a request id of its own, retried (the
/// id makes a retry apply once) when a front-end died under it; the
/// version it got.
pub(super) async fn write(
    writer: &crate::api::Client,
    event: &str,
    score: &str,
    password: &str,
) -> Result<i64, ClientError> {
    let id = crate::cluster::new_request_id("bench");
    let mut attempt = 1;
    loop {
        match writer.set_score(event, score, password, Some(&id)).await {
            Ok(ack) => return Ok(ack.version),
            Err(e)
                if attempt < WRITE_ATTEMPTS
                    && e.fault()
                        .is_none_or(|f| f.code == crate::api::faults::UNAVAILABLE) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Kills `pid` outright, as a crash would.
fn kill(pid: u32) -> Result<(), BenchError> {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .map_err(|e| BenchError::Invalid(format!("cannot run kill: {e}")))?;
    ensure(status.success(), || {
        format!("kill -KILL {pid} failed: {status}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(text: String) -> Callback {
        Callback::Score {
            text: format!("Stone Curling: {text}"),
            time: 0.0,
            version: None,
        }
    }

    #[test]
    fn arrivals_count_each_pair_once_and_only_this_runs_writes() {
        let arrivals = Arrivals::new(2, 3, 0xabc);
        let t0 = Instant::now();
        arrivals.receive(0, &score(arrivals.score_text(1)), t0);
        arrivals.receive(
            0,
            &score(arrivals.score_text(1)),
            t0 + Duration::from_secs(1),
        );
        arrivals.receive(1, &score(arrivals.score_text(1)), t0);
        // Another run's marker, a write index past the run's, and a tally.
        arrivals.receive(0, &score(Arrivals::new(2, 3, 0xdef).score_text(1)), t0);
        arrivals.receive(0, &score(arrivals.score_text(3)), t0);
        let tally = Callback::Tally {
            text: "Team Gaul has:\n".into(),
            time: 0.0,
            version: None,
        };
        arrivals.receive(1, &tally, t0);
        let counts: Vec<_> = arrivals
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, [0, 2, 0]);
        assert_eq!(arrivals.other.load(Ordering::Relaxed), 3);
        let times = arrivals.times.lock().unwrap();
        assert_eq!(times[2], Some(t0), "the first arrival is kept");
    }

    #[test]
    fn measured_pairs_start_at_the_ack_and_skip_the_warm_up() {
        let arrivals = Arrivals::new(2, 2, 1);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let sends = [t0, t0 + ms(100)];
        let acks = [t0 + ms(5), t0 + ms(110)];
        // Write 0 is the warm-up. Write 1: one push 1 ms before its ack,
        // one 20 ms after.
        arrivals.receive(0, &score(arrivals.score_text(0)), t0 + ms(6));
        arrivals.receive(0, &score(arrivals.score_text(1)), t0 + ms(109));
        arrivals.receive(1, &score(arrivals.score_text(1)), t0 + ms(130));
        let m = Measured::of(&arrivals, &sends, &acks, 1);
        assert_eq!((m.missing, m.before_ack), (0, 1));
        let pairs = m.pairs.sorted();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs.percentile_ms(0.0), 0.0);
        assert_eq!(pairs.percentile_ms(100.0), 20.0);
        assert_eq!(m.last.sorted().percentile_ms(50.0), 20.0);
        assert_eq!(m.from_send.sorted().percentile_ms(100.0), 30.0);
        assert_eq!(m.write_ack.sorted().percentile_ms(50.0), 10.0);
        // A missing push: the pair counts as missing and the write has no "last".
        let m = Measured::of(&arrivals, &sends[..1], &acks[..1], 0);
        assert_eq!(m.missing, 1);
        assert!(m.last.sorted().is_empty());
    }
}
