//! Helpers for the election and clock-sync tests (and `examples/failover_bench.rs`):
//! an election group of real `podium-db` and `podium-frontend` processes on
//! loopback, each told every other member's port in advance, and blocking
//! readers of `cluster.status`.
//!
//! Members must know each other's ports before they start, so a server
//! cannot bind port 0: [`free_ports`] asks the kernel for free ports (bind
//! `127.0.0.1:0`, read the port, drop the listener) and [`Group::start`]
//! retries the whole group on fresh ports if a member fails to start (another
//! process may take a port between the probe and the bind).
//!
//! Builds on `support` (processes, waiting with deadlines), which someone
//! else owns. Use with `mod support; mod election_support;`. Binaries are
//! passed in ([`Bins`]) because `CARGO_BIN_EXE_*` exists only in tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Duration;

use podium::clock::local_micros;
use podium::rpc::Value;

use crate::support::{wait_for, Process};

/// The cluster secret of every test group.
pub const SECRET: &str = "election-test-secret-7b41e0";
/// The feeder password of every test group.
pub const PASSWORD: &str = "election-feeder-password-2c9d";

/// Deadline of one `cluster.status` (or other) call: generous, a debug
/// build on a loaded two-core machine can be slow, but bounded so that a
/// frozen member never hangs a test.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Attempts at starting a group (or one member) before giving up: each
/// failure may be a port taken between the probe and the bind.
const START_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

/// `n` distinct free loopback ports: all are bound at once (so they differ),
/// read, and released. Another process may take one before the caller binds
/// it; [`Group::start`] retries on fresh ports when that happens.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

// ---------------------------------------------------------------------------
// Calling members
// ---------------------------------------------------------------------------

pub use crate::support::Rpc;

/// Calls on the shared [`Rpc`] that read a member's `cluster.status`.
impl Rpc {
    /// `cluster.status`, parsed.
    ///
    /// # Errors
    /// A failed call, or a reply not shaped as documented.
    pub fn status(&self) -> Result<Status, String> {
        let v = self
            .call("cluster.status", &[])
            .map_err(|e| format!("cluster.status at {}: {e}", self.url()))?;
        Status::from_value(&v)
    }

    /// `cluster.status` with the local time (microseconds, [`local_micros`])
    /// just before the call was sent and just after the reply was read.
    ///
    /// # Errors
    /// As [`Rpc::status`].
    pub fn timed_status(&self) -> Result<Timed, String> {
        let before_us = local_micros();
        let status = self.status()?;
        let after_us = local_micros();
        Ok(Timed {
            status,
            before_us,
            after_us,
        })
    }
}

/// One peer as a member reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub uid: i64,
    pub url: String,
    pub healthy: bool,
    pub last_seen_ms: i64,
    pub last_error: String,
}

/// A member's `cluster.status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub uid: u32,
    /// "coordinator" or "member".
    pub role: String,
    /// "coordinator", "member" or "candidate".
    pub state: String,
    /// The coordinator's uid, or -1 while unknown.
    pub coordinator: i64,
    pub term: i64,
    pub offset_ms: f64,
    pub target_offset_ms: f64,
    /// The member's cluster clock, microseconds since the epoch.
    pub clock_us: i64,
    pub vector_clock: Vec<i64>,
    pub peers: Vec<PeerStatus>,
}

fn field<'a>(s: &'a podium::rpc::Struct, name: &str) -> Result<&'a Value, String> {
    s.get(name)
        .ok_or_else(|| format!("cluster.status lacks {name:?}: {s:?}"))
}

fn int(s: &podium::rpc::Struct, name: &str) -> Result<i64, String> {
    field(s, name)?
        .as_i64()
        .ok_or_else(|| format!("cluster.status {name:?} is not an int: {s:?}"))
}

fn double(s: &podium::rpc::Struct, name: &str) -> Result<f64, String> {
    match field(s, name)? {
        Value::Double(d) => Ok(*d),
        Value::Int(i) => Ok(*i as f64),
        other => Err(format!(
            "cluster.status {name:?} is not a number: {other:?}"
        )),
    }
}

fn string(s: &podium::rpc::Struct, name: &str) -> Result<String, String> {
    field(s, name)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("cluster.status {name:?} is not a string: {s:?}"))
}

impl Status {
    /// # Errors
    /// A value not shaped as `cluster.status` is documented.
    pub fn from_value(v: &Value) -> Result<Status, String> {
        let s = v
            .as_struct()
            .ok_or_else(|| format!("cluster.status is not a struct: {v:?}"))?;
        let vector_clock = field(s, "vector_clock")?
            .as_array()
            .ok_or("vector_clock is not an array")?
            .iter()
            .map(|c| c.as_i64().ok_or(format!("vector clock entry {c:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        let peers = field(s, "peers")?
            .as_array()
            .ok_or("peers is not an array")?
            .iter()
            .map(|p| {
                let p = p.as_struct().ok_or(format!("peer {p:?} is not a struct"))?;
                Ok(PeerStatus {
                    uid: int(p, "uid")?,
                    url: string(p, "url")?,
                    healthy: matches!(field(p, "healthy")?, Value::Bool(true)),
                    last_seen_ms: int(p, "last_seen_ms")?,
                    last_error: string(p, "last_error")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Status {
            uid: u32::try_from(int(s, "uid")?).map_err(|_| "negative uid")?,
            role: string(s, "role")?,
            state: string(s, "state")?,
            coordinator: int(s, "coordinator")?,
            term: int(s, "term")?,
            offset_ms: double(s, "offset_ms")?,
            target_offset_ms: double(s, "target_offset_ms")?,
            clock_us: int(s, "clock_us")?,
            vector_clock,
            peers,
        })
    }

    pub fn is_coordinator(&self) -> bool {
        self.role == "coordinator"
    }

    /// `uid role/state coord=C term=T`, for messages.
    pub fn brief(&self) -> String {
        format!(
            "uid {} {}/{} coordinator={} term={}",
            self.uid, self.role, self.state, self.coordinator, self.term
        )
    }
}

/// A status with the local time around the call that fetched it.
#[derive(Debug, Clone)]
pub struct Timed {
    pub status: Status,
    pub before_us: i64,
    pub after_us: i64,
}

impl Timed {
    /// The round trip of the call, microseconds.
    pub fn rtt_us(&self) -> i64 {
        self.after_us - self.before_us
    }

    /// The member's cluster clock minus the local clock, taking the member's
    /// reading to be from the middle of the call; off by at most half the
    /// round trip.
    pub fn offset_us(&self) -> i64 {
        self.status.clock_us - (self.before_us + self.after_us) / 2
    }
}

// ---------------------------------------------------------------------------
// Agreement
// ---------------------------------------------------------------------------

/// What every member of a sample agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    pub coordinator: u32,
    pub term: i64,
}

/// The coordinator and term every status names, if they all name the same
/// known one, none is campaigning, the coordinator is among them and reports
/// itself as coordinator, and no other member does.
pub fn agreement(statuses: &[Status]) -> Option<Agreement> {
    let first = statuses.first()?;
    let coordinator = u32::try_from(first.coordinator).ok()?;
    let term = first.term;
    let agreed = statuses.iter().all(|s| {
        s.coordinator == first.coordinator
            && s.term == term
            && s.state != "candidate"
            && s.is_coordinator() == (s.uid == coordinator)
    });
    let present = statuses.iter().any(|s| s.uid == coordinator);
    (agreed && present).then_some(Agreement { coordinator, term })
}

/// Pairs of members that both claim to coordinate the same term: what must
/// never happen. Empty when all is well.
pub fn same_term_coordinators(statuses: &[Status]) -> Vec<(u32, u32, i64)> {
    let mut by_term: BTreeMap<i64, u32> = BTreeMap::new();
    let mut clashes = Vec::new();
    for s in statuses.iter().filter(|s| s.is_coordinator()) {
        if let Some(other) = by_term.insert(s.term, s.uid) {
            clashes.push((other, s.uid, s.term));
        }
    }
    clashes
}

/// `a` happened before `b`: every entry of `a` at most `b`'s (missing
/// entries read as 0), and the two differ.
pub fn happened_before(a: &[i64], b: &[i64]) -> bool {
    let n = a.len().max(b.len());
    let at = |v: &[i64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..n).all(|i| at(a, i) <= at(b, i)) && (0..n).any(|i| at(a, i) < at(b, i))
}

/// `[..]` of one sample, for messages.
pub fn describe(statuses: &[Status]) -> String {
    statuses
        .iter()
        .map(Status::brief)
        .collect::<Vec<_>>()
        .join("; ")
}

// ---------------------------------------------------------------------------
// The group
// ---------------------------------------------------------------------------

/// Where the two server binaries are.
#[derive(Debug, Clone)]
pub struct Bins {
    pub db: PathBuf,
    pub frontend: PathBuf,
}

/// A group: the db (uid 0) and `frontends` front-ends (uids 1..), with
/// optional per-uid clock skews and election timings (`None`: the binary's
/// default).
#[derive(Debug, Clone, Default)]
pub struct GroupConfig {
    pub frontends: u32,
    /// `--clock-skew-ms` by uid; absent uids are not skewed.
    pub skew_ms: BTreeMap<u32, i64>,
    pub heartbeat_interval_ms: Option<u64>,
    pub heartbeat_timeout_ms: Option<u64>,
    pub sync_interval_ms: Option<u64>,
    /// More flags for every member (the db and each front-end).
    pub extra_args: Vec<String>,
}

impl GroupConfig {
    /// The db and `frontends` front-ends with default timings.
    pub fn members(frontends: u32) -> GroupConfig {
        GroupConfig {
            frontends,
            ..GroupConfig::default()
        }
    }
}

/// Running members, killed when dropped (with the temporary directory of the
/// db file).
pub struct Group {
    bins: Bins,
    config: GroupConfig,
    dir: tempfile::TempDir,
    /// uid → port, fixed for the group's life (peers know them).
    ports: BTreeMap<u32, u16>,
    /// uid → the running process, `None` while killed.
    procs: BTreeMap<u32, Option<Process>>,
    /// uid → a client for its URL.
    rpcs: BTreeMap<u32, Rpc>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("ports", &self.ports)
            .field("running", &self.running())
            .finish()
    }
}

/// Runs `f`, catching a panic (a process that failed to start) so that the
/// caller can retry; the last failure is re-raised.
fn attempt<T>(mut f: impl FnMut() -> T) -> T {
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        match panic::catch_unwind(AssertUnwindSafe(&mut f)) {
            Ok(v) => return v,
            Err(e) => last = Some(e),
        }
    }
    panic::resume_unwind(last.expect("at least one attempt"))
}

impl Group {
    /// Starts every member on fresh free ports and returns once each has
    /// printed `LISTENING` (not once they agree: see [`Group::wait_agreement`]).
    /// On a failed start, kills what started and retries on new ports.
    ///
    /// # Panics
    /// When the group cannot be started in [`START_ATTEMPTS`] tries.
    pub fn start(bins: &Bins, config: GroupConfig) -> Group {
        attempt(|| {
            let uids: Vec<u32> = (0..=config.frontends).collect();
            let ports: BTreeMap<u32, u16> =
                uids.iter().copied().zip(free_ports(uids.len())).collect();
            let mut group = Group {
                bins: bins.clone(),
                config: config.clone(),
                dir: tempfile::tempdir().expect("a temporary directory"),
                rpcs: ports
                    .iter()
                    .map(|(u, p)| {
                        let url = format!("http://127.0.0.1:{p}/");
                        (*u, Rpc::with_config(&url, CALL_TIMEOUT, None))
                    })
                    .collect(),
                procs: uids.iter().map(|u| (*u, None)).collect(),
                ports,
            };
            for uid in uids {
                // A panic here drops `group`, which kills the members started.
                let p = group.spawn(uid);
                group.procs.insert(uid, Some(p));
            }
            group
        })
    }

    /// The command line of member `uid`.
    fn args(&self, uid: u32) -> Vec<String> {
        let mut args = vec![
            "--uid".to_owned(),
            uid.to_string(),
            "--port".to_owned(),
            self.ports[&uid].to_string(),
        ];
        if uid == 0 {
            args.push("--db-file".into());
            args.push(self.dir.path().join("scores.db").display().to_string());
        } else {
            args.push("--db".into());
            args.push(format!("http://127.0.0.1:{}/", self.ports[&0]));
        }
        for (peer, port) in &self.ports {
            if *peer != uid {
                args.push("--peer".into());
                args.push(format!("{peer}=127.0.0.1:{port}"));
            }
        }
        let timings = [
            ("--heartbeat-interval-ms", self.config.heartbeat_interval_ms),
            ("--heartbeat-timeout-ms", self.config.heartbeat_timeout_ms),
            ("--sync-interval-ms", self.config.sync_interval_ms),
        ];
        for (flag, value) in timings {
            if let Some(v) = value {
                args.push(flag.into());
                args.push(v.to_string());
            }
        }
        if let Some(skew) = self.config.skew_ms.get(&uid) {
            args.push(format!("--clock-skew-ms={skew}"));
        }
        args.extend(self.config.extra_args.iter().cloned());
        args
    }

    fn spawn(&self, uid: u32) -> Process {
        let bin = if uid == 0 {
            &self.bins.db
        } else {
            &self.bins.frontend
        };
        Process::spawn(
            bin,
            self.args(uid),
            &[
                ("PODIUM_CLUSTER_SECRET", SECRET),
                ("PODIUM_FEEDER_PASSWORD", PASSWORD),
            ],
        )
    }

    /// Every uid of the group, running or not.
    pub fn uids(&self) -> Vec<u32> {
        self.ports.keys().copied().collect()
    }

    /// The uids whose process is running (not killed by the test).
    pub fn running(&self) -> Vec<u32> {
        self.procs
            .iter()
            .filter(|(_, p)| p.is_some())
            .map(|(u, _)| *u)
            .collect()
    }

    pub fn rpc(&self, uid: u32) -> &Rpc {
        &self.rpcs[&uid]
    }

    pub fn url(&self, uid: u32) -> String {
        format!("http://127.0.0.1:{}/", self.ports[&uid])
    }

    /// The running process of `uid`.
    ///
    /// # Panics
    /// When it was killed.
    pub fn process(&mut self, uid: u32) -> &mut Process {
        self.procs
            .get_mut(&uid)
            .and_then(Option::as_mut)
            .unwrap_or_else(|| panic!("uid {uid} is not running"))
    }

    /// Sends `signal` (`STOP`, `CONT`...) to `uid`.
    pub fn signal(&mut self, uid: u32, signal: &str) {
        self.process(uid).signal(signal);
    }

    /// kill -9 `uid` and waits for it to exit.
    ///
    /// # Panics
    /// When it does not exit within 10 s.
    pub fn kill(&mut self, uid: u32) {
        let mut p = self
            .procs
            .get_mut(&uid)
            .and_then(Option::take)
            .unwrap_or_else(|| panic!("uid {uid} is not running"));
        p.signal("KILL");
        assert!(
            p.wait_exit(Duration::from_secs(10)).is_some(),
            "uid {uid} survived SIGKILL"
        );
    }

    /// Starts the killed `uid` again, on its port and (for the db) its file.
    /// Retries a few times if it fails (its port may be briefly taken).
    ///
    /// # Panics
    /// When it cannot be started.
    pub fn restart(&mut self, uid: u32) {
        assert!(
            self.procs[&uid].is_none(),
            "uid {uid} is running: kill it first"
        );
        let p = attempt(|| self.spawn(uid));
        self.procs.insert(uid, Some(p));
    }

    /// One status from each of `uids`, in order.
    ///
    /// # Errors
    /// The first member that did not answer, and why.
    pub fn statuses(&self, uids: &[u32]) -> Result<Vec<Status>, String> {
        uids.iter().map(|u| self.rpc(*u).status()).collect()
    }

    /// Polls `uids` until they agree ([`agreement`]) and `accept` likes what
    /// they agree on, for at most `timeout`. Returns the agreement, or the
    /// last sample (or error) seen.
    ///
    /// # Errors
    /// No acceptable agreement by the deadline: the last sample, described.
    pub fn wait_agreement(
        &self,
        uids: &[u32],
        timeout: Duration,
        mut accept: impl FnMut(&Agreement) -> bool,
    ) -> Result<Agreement, String> {
        let mut last = String::from("no sample taken");
        wait_for(timeout, || match self.statuses(uids) {
            Ok(sample) => {
                let agreed = agreement(&sample).filter(|a| accept(a));
                if agreed.is_none() {
                    last = describe(&sample);
                }
                agreed
            }
            Err(e) => {
                last = e;
                None
            }
        })
        .ok_or(last)
    }

    /// Reads every member in `uids` `reads` times and keeps, per member, the
    /// reading with the shortest round trip; returns them in `uids` order.
    /// Every reading (not only the kept ones) is passed to `each`, so a
    /// caller can check that clocks never run backwards.
    ///
    /// # Errors
    /// A member that did not answer.
    pub fn clock_sample(
        &self,
        uids: &[u32],
        reads: usize,
        mut each: impl FnMut(&Timed),
    ) -> Result<Vec<Timed>, String> {
        uids.iter()
            .map(|u| {
                let mut best: Option<Timed> = None;
                for _ in 0..reads.max(1) {
                    let t = self.rpc(*u).timed_status()?;
                    each(&t);
                    if best.as_ref().is_none_or(|b| t.rtt_us() < b.rtt_us()) {
                        best = Some(t);
                    }
                }
                Ok(best.expect("at least one reading"))
            })
            .collect()
    }

    /// Tail of every running member's output, for failure messages.
    pub fn outputs(&self) -> String {
        let mut out = String::new();
        for (uid, p) in &self.procs {
            if let Some(p) = p {
                out.push_str(&format!(
                    "--- uid {uid} ({}) stderr ---\n{}\n",
                    p.addr(),
                    tail(&p.output(crate::support::Stream::Stderr), 40)
                ));
            }
        }
        out
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The largest pairwise disagreement of a clock sample, microseconds, and
/// its uncertainty (half the two longest round trips): each member's
/// cluster clock is compared to the local clock at the middle of the call
/// that read it, so the call's latency cancels out up to that uncertainty.
pub fn disagreement_us(sample: &[Timed]) -> (i64, i64) {
    let offsets: Vec<i64> = sample.iter().map(Timed::offset_us).collect();
    let spread =
        offsets.iter().max().copied().unwrap_or(0) - offsets.iter().min().copied().unwrap_or(0);
    let mut rtts: Vec<i64> = sample.iter().map(Timed::rtt_us).collect();
    rtts.sort_unstable_by(|a, b| b.cmp(a));
    let uncertainty = rtts.iter().take(2).sum::<i64>() / 2;
    (spread, uncertainty)
}

/// Median and maximum of `values` (sorted in place).
pub fn median_and_max(values: &mut [Duration]) -> (Duration, Duration) {
    values.sort_unstable();
    let median = if values.is_empty() {
        Duration::ZERO
    } else if values.len() % 2 == 1 {
        values[values.len() / 2]
    } else {
        (values[values.len() / 2 - 1] + values[values.len() / 2]) / 2
    };
    (median, values.last().copied().unwrap_or(Duration::ZERO))
}

/// A duration in milliseconds with a fraction, for reports.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
