//! Measures the election's failover time and the clock agreement Berkeley
//! rounds reach, with the real `podium-db` and `podium-frontend` binaries on
//! loopback.
//!
//! ```text
//! cargo run --release --example failover_bench -- --runs 10
//! ```
//!
//! Failover: a group of three (the db, uid 0, and front-ends 1 and 2, default
//! timings: heartbeat every 500 ms, presumed dead after 1.5 s) agrees on a
//! coordinator; then, `--runs` times: the coordinator is killed with
//! SIGKILL at a random point of the heartbeat cycle (a uniformly random
//! 0..`--phase-ms` after the group agreed), and the failover time is from
//! just before the kill until every
//! live member reports the same new coordinator and a newer term (statuses
//! polled every `--poll-ms`); the killed member is restarted and the bench
//! waits until it has taken over again, so each run starts from a full group.
//! Prints every run, then the median and the worst.
//!
//! Clock agreement: a group of three whose local clocks are skewed by
//! -2000, 0 and +1500 ms, with a Berkeley round every `--sync-interval-ms`,
//! is watched for `--clock-wait-secs`; then `--clock-samples` samples are
//! taken. Each member's cluster clock (`clock_us` of `cluster.status`) is
//! compared with this process's clock at the middle of the call that read
//! it, keeping the fastest of five calls, so the call's latency cancels out
//! up to half its round trip (printed as the uncertainty). Prints the
//! largest pairwise disagreement.
//!
//! The binaries are built first (`cargo build --bins` in this example's
//! profile and target directory) unless `--no-build` is given.

#[path = "../tests/election_support/mod.rs"]
mod election_support;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use election_support::{
    agreement, describe, disagreement_us, median_and_max, ms, Agreement, Bins, Group, GroupConfig,
    Timed,
};
use rand::Rng as _;

/// Election failover and clock-agreement measurements.
#[derive(Debug, Parser)]
struct Args {
    /// Kill -9 runs of the failover measurement.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Before each kill, wait a uniformly random 0 to this many milliseconds
    /// after the group agreed, so the kill lands anywhere in the heartbeat
    /// cycle. 0 kills right after the takeover (just after the coordinator
    /// announced itself, so the members' timeout starts in full: the worst case).
    #[arg(long, default_value_t = 1000)]
    phase_ms: u64,
    /// Milliseconds between two polls of the members' statuses.
    #[arg(long, default_value_t = 10)]
    poll_ms: u64,
    /// Seconds to let the skewed clocks converge before sampling them.
    #[arg(long, default_value_t = 15)]
    clock_wait_secs: u64,
    /// Samples of the converged clocks.
    #[arg(long, default_value_t = 10)]
    clock_samples: usize,
    /// Berkeley round interval of the clock measurement, milliseconds.
    #[arg(long, default_value_t = 1000)]
    sync_interval_ms: u64,
    /// Use the binaries already built next to this example.
    #[arg(long)]
    no_build: bool,
    /// Skip the failover measurement.
    #[arg(long)]
    no_failover: bool,
    /// Skip the clock measurement.
    #[arg(long)]
    no_clock: bool,
}

/// Longest wait for any agreement: far above the 2 s goal, so a slow run is
/// measured rather than aborted.
const AGREE_DEADLINE: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.poll_ms > 0, "--poll-ms must be positive");
    let bins = binaries(!args.no_build)?;
    println!(
        "binaries: {} and {}",
        bins.db.display(),
        bins.frontend.display()
    );
    if !args.no_failover {
        failover(&bins, &args)?;
    }
    if !args.no_clock {
        clocks(&bins, &args)?;
    }
    Ok(())
}

/// The server binaries of this example's profile, built first if `build`.
fn binaries(build: bool) -> anyhow::Result<Bins> {
    // target/<profile>/examples/failover_bench
    let profile_dir = support::target_profile_dir();
    let profile_dir = if profile_dir.ends_with("examples") {
        profile_dir
            .parent()
            .map(Path::to_path_buf)
            .context("profile directory")?
    } else {
        profile_dir
    };
    if build {
        let target_dir = profile_dir.parent().context("target directory")?;
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(name) => name,
            None => bail!("cannot tell the profile of {}", profile_dir.display()),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        println!("building the binaries (profile {profile})...");
        let mut command = Command::new(cargo);
        // What `cargo run` set for this example is not the environment of a
        // plain build: passed on, it would make the next `cargo build`
        // rebuild crates whose build scripts read it (ring, for one).
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let per_run = [
                "CARGO_MANIFEST_",
                "CARGO_PKG_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|p| name.starts_with(p))
                || name == "CARGO_PRIMARY_PACKAGE";
            if per_run {
                command.env_remove(name.as_ref());
            }
        }
        let status = command
            .args(["build", "--quiet", "--bins", "--profile", profile])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .context("running cargo build")?;
        anyhow::ensure!(status.success(), "cargo build --bins failed: {status}");
    }
    let bin = |name: &str| -> anyhow::Result<PathBuf> {
        let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        anyhow::ensure!(
            path.exists(),
            "{} not found: build it (or drop --no-build)",
            path.display()
        );
        Ok(path)
    };
    Ok(Bins {
        db: bin("podium-db")?,
        frontend: bin("podium-frontend")?,
    })
}

/// Polls `uids` every `poll` until they agree on something `accept` likes;
/// returns the agreement and when the agreeing sample was complete.
fn poll_agreement(
    group: &Group,
    uids: &[u32],
    poll: Duration,
    mut accept: impl FnMut(&Agreement) -> bool,
) -> anyhow::Result<(Agreement, Instant)> {
    let deadline = Instant::now() + AGREE_DEADLINE;
    let max_polls = (AGREE_DEADLINE.as_millis() / poll.as_millis().max(1)) as usize + 1;
    let mut last = String::from("no sample");
    for _ in 0..max_polls {
        match group.statuses(uids) {
            Ok(sample) => {
                let at = Instant::now();
                if let Some(a) = agreement(&sample).filter(|a| accept(a)) {
                    return Ok((a, at));
                }
                last = describe(&sample);
            }
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            break;
        }
        thread::sleep(poll);
    }
    bail!(
        "members {uids:?} did not agree within {AGREE_DEADLINE:?}; last: {last}\n{}",
        group.outputs()
    )
}

fn failover(bins: &Bins, args: &Args) -> anyhow::Result<()> {
    let poll = Duration::from_millis(args.poll_ms);
    let mut group = Group::start(bins, GroupConfig::members(2));
    let all = group.uids();
    let top = *all.last().expect("members");
    let (mut current, _) = poll_agreement(&group, &all, poll, |a| a.coordinator == top)?;
    println!(
        "\nfailover: db (uid 0) + front-ends 1 and 2, default timings; uid {} coordinates term {}; \
         kills {} to {} ms after agreement",
        current.coordinator, current.term, 0, args.phase_ms
    );
    let mut failovers = Vec::with_capacity(args.runs);
    let mut takeovers = Vec::with_capacity(args.runs);
    let mut rng = rand::thread_rng();
    for run in 1..=args.runs {
        let victim = current.coordinator;
        // A random phase, not a wait for a condition: the group already agrees.
        let phase = Duration::from_millis(rng.gen_range(0..=args.phase_ms));
        thread::sleep(phase);
        let killed_at = Instant::now();
        group.kill(victim);
        let live = group.running();
        let (after, agreed_at) = poll_agreement(&group, &live, poll, |a| {
            a.coordinator != victim && a.term > current.term
        })?;
        let failover = agreed_at - killed_at;

        group.restart(victim);
        let restarted_at = Instant::now();
        let (back, back_at) = poll_agreement(&group, &all, poll, |a| {
            a.coordinator == victim && a.term > after.term
        })?;
        let takeover = back_at - restarted_at;
        println!(
            "run {run:2}: kill -9 uid {victim} (term {}, {:4} ms after agreement): uid {} agreed by \
             {live:?} in term {} after {:7.1} ms; restarted uid {victim} took over in term {} after \
             {:6.1} ms",
            current.term,
            phase.as_millis(),
            after.coordinator,
            after.term,
            ms(failover),
            back.term,
            ms(takeover)
        );
        failovers.push(failover);
        takeovers.push(takeover);
        current = back;
    }
    let (median, worst) = median_and_max(&mut failovers);
    let (t_median, t_worst) = median_and_max(&mut takeovers);
    println!(
        "failover over {} runs: median {:.1} ms, worst {:.1} ms (goal: under 2000 ms)",
        args.runs,
        ms(median),
        ms(worst)
    );
    println!(
        "takeover by the restarted higher uid (from its start, LISTENING included): \
         median {:.1} ms, worst {:.1} ms",
        ms(t_median),
        ms(t_worst)
    );
    Ok(())
}

/// Clock readings checked as they come: never backwards, per member.
#[derive(Default)]
struct Monotonic {
    last: BTreeMap<u32, i64>,
    readings: usize,
    backwards: usize,
    worst_backwards_us: i64,
}

impl Monotonic {
    fn check(&mut self, t: &Timed) {
        self.readings += 1;
        let now = t.status.clock_us;
        if let Some(prev) = self.last.insert(t.status.uid, now) {
            if now < prev {
                self.backwards += 1;
                self.worst_backwards_us = self.worst_backwards_us.max(prev - now);
            }
        }
    }
}

fn clocks(bins: &Bins, args: &Args) -> anyhow::Result<()> {
    let skews: BTreeMap<u32, i64> = [(0, -2000), (1, 0), (2, 1500)].into();
    let mut config = GroupConfig::members(2);
    config.skew_ms = skews.clone();
    config.sync_interval_ms = Some(args.sync_interval_ms);
    let group = Group::start(bins, config);
    let all = group.uids();
    let started = Instant::now();
    println!(
        "\nclocks: skews {skews:?} ms, Berkeley round every {} ms; watching for {} s",
        args.sync_interval_ms, args.clock_wait_secs
    );
    let mut mono = Monotonic::default();
    let watch = Duration::from_secs(args.clock_wait_secs);
    let mut under = BTreeMap::<i64, Duration>::new();
    let mut next_report = Duration::ZERO;
    let max_samples = (watch.as_millis() / 100) as usize + 1;
    for _ in 0..max_samples {
        let elapsed = started.elapsed();
        if elapsed >= watch {
            break;
        }
        let sample = group
            .clock_sample(&all, 3, |t| mono.check(t))
            .map_err(anyhow::Error::msg)?;
        let (spread, uncertainty) = disagreement_us(&sample);
        for bound_us in [25_000, 5_000, 1_000] {
            if spread + uncertainty < bound_us {
                under.entry(bound_us).or_insert(elapsed);
            } else {
                under.remove(&bound_us);
            }
        }
        if elapsed >= next_report {
            println!(
                "  t={:5.1} s: disagreement {:10.3} ms (+/- {:.3} ms)",
                elapsed.as_secs_f64(),
                spread as f64 / 1000.0,
                uncertainty as f64 / 1000.0
            );
            next_report += Duration::from_secs(1);
        }
        thread::sleep(Duration::from_millis(100));
    }
    for (bound_us, since) in &under {
        println!(
            "  under {} ms (spread + uncertainty) for good since t={:.1} s",
            bound_us / 1000,
            since.as_secs_f64()
        );
    }

    let mut spreads = Vec::with_capacity(args.clock_samples);
    let mut worst_uncertainty = 0;
    for i in 0..args.clock_samples {
        let sample = group
            .clock_sample(&all, 5, |t| mono.check(t))
            .map_err(anyhow::Error::msg)?;
        let (spread, uncertainty) = disagreement_us(&sample);
        let offsets: Vec<String> = sample
            .iter()
            .map(|t| {
                format!(
                    "uid {}: {:+.3} ms (offset_ms {:+.3})",
                    t.status.uid,
                    t.offset_us() as f64 / 1000.0,
                    t.status.offset_ms
                )
            })
            .collect();
        println!(
            "  sample {:2}: disagreement {:.3} ms (+/- {:.3} ms); cluster minus local: {}",
            i + 1,
            spread as f64 / 1000.0,
            uncertainty as f64 / 1000.0,
            offsets.join(", ")
        );
        spreads.push(spread);
        worst_uncertainty = worst_uncertainty.max(uncertainty);
        thread::sleep(Duration::from_millis(100));
    }
    let worst = spreads.iter().copied().max().unwrap_or(0);
    let mut sorted = spreads.clone();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    println!(
        "clock agreement after {:.1} s: max pairwise disagreement {:.3} ms over {} samples \
         (median {:.3} ms; each +/- at most {:.3} ms of call latency) (goal: under 5 ms)",
        started.elapsed().as_secs_f64(),
        worst as f64 / 1000.0,
        spreads.len(),
        median as f64 / 1000.0,
        worst_uncertainty as f64 / 1000.0
    );
    println!(
        "clock readings: {} in all, {} backwards (worst {} us)",
        mono.readings, mono.backwards, mono.worst_backwards_us
    );
    Ok(())
}
