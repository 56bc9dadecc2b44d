//! The cluster under failure, with the real binaries on loopback port 0:
//! - the db restarts (kill -9, then again on the same file and port): no
//!   front-end keeps serving a value that is no longer the db's;
//! - a front-end is killed with SIGKILL under a read load through the
//!   balancer: not one read fails;
//! - a front-end is frozen with SIGSTOP: the balancer routes around it, and
//!   no read waits for it longer than the forward timeout plus a retry;
//! - the db is killed with SIGKILL during writes: every acknowledged write
//!   is there after the restart, and retried request ids count once.
//!
//! The load tests run one at a time (see [`serial`]) so that they do not
//! compete for the two cores they are given. Every loop is bounded in count
//! and in time; every wait polls with a deadline.

mod cluster_support;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use cluster_support::{
    db_snapshot, CallbackServer, Cluster, ClusterConfig, Mode, Rpc, EVENTS, TEAMS,
};
use podium::api::faults;
use podium::rpc::Value;
use support::{python, wait_until};

/// How long a front-end may take to drop a value the db no longer has:
/// several times the feed's longest reconnect backoff (1 s) plus a pull
/// interval, and far below the one-hour cache TTL the clusters run with.
const FRESH_DEADLINE: Duration = Duration::from_secs(10);

/// Deadline for conditions of the load tests (enough reads done, writers
/// seen failing...): generous, they normally take well under a second.
const LOAD_DEADLINE: Duration = Duration::from_secs(30);

/// One test at a time for the tests that put load on the machine.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------
// db restart and stale values
// ---------------------------------------------------------------------------

/// Property: after the db restarts, no front-end serves a value older than
/// an acknowledged write. Both front-ends cache a value (proved: they still
/// serve it while the db is down, when a miss can only fail); the db is
/// killed with SIGKILL and restarted on the same file and port; a write
/// through one front-end must then become visible through the other, and
/// back. With a one-hour TTL, only the change feed can make this pass.
#[test]
fn no_stale_value_survives_a_db_restart() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Pull { interval_ms: 200 }, Mode::Push],
        balancer: false,
        ..ClusterConfig::default()
    });
    let fe = [cluster.frontend(0), cluster.frontend(1)];
    let first = fe[0]
        .increment_medal("Gaul", "gold", None)
        .expect("a write");
    let cached = first.tally();
    fe[1]
        .set_score("Stone Curling", "before the restart", None)
        .expect("a write");
    for (i, fe) in fe.iter().enumerate() {
        cluster
            .wait_tally(i, "Gaul", FRESH_DEADLINE, |t| *t == cached)
            .unwrap_or_else(|last| panic!("front-end {i} never showed {cached:?}: {last:?}"));
        assert!(
            wait_until(FRESH_DEADLINE, || fe.score("Stone Curling").score
                == "before the restart"),
            "front-end {i} never showed the score"
        );
    }

    cluster.kill_db();
    // While the db is down, both serve what they cached (so it was cached)...
    for (i, fe) in fe.iter().enumerate() {
        assert_eq!(
            fe.tally("Gaul"),
            cached,
            "front-end {i}'s cached tally, db down"
        );
        assert_eq!(fe.score("Stone Curling").score, "before the restart");
        // ...a miss fails fast with "unavailable"...
        let f = fe.fault("scoreboard.tally", &["Persia".into()]);
        assert_eq!(
            f.code,
            faults::UNAVAILABLE,
            "a miss at front-end {i}, db down: {f}"
        );
        // ...and so does a write, which must not be applied later.
        let err = fe
            .increment_medal("Gaul", "gold", None)
            .expect_err("a write with the db down");
        assert_eq!(
            err.fault().map(|f| f.code),
            Some(faults::UNAVAILABLE),
            "{err}"
        );
    }

    cluster.restart_db();
    let db_now = db_snapshot(&cluster.db_url());
    assert_eq!(
        db_now.latest,
        first.version + 1,
        "the restarted db lost or gained writes"
    );

    // A write through each front-end in turn; the other must catch up.
    for (a, b) in [(0, 1), (1, 0)] {
        let ack = loop_until_written(&fe[a], "Gaul");
        let written = ack.tally();
        let own = fe[a].tally("Gaul");
        assert!(
            own.gold == written.gold && own.version == ack.version,
            "front-end {a} does not show its own write {written:?}: {own:?}"
        );
        if let Err(last) = cluster.wait_tally(b, "Gaul", FRESH_DEADLINE, |t| {
            t.gold == written.gold && t.version >= ack.version
        }) {
            panic!(
                "front-end {b} still serves {last:?} {FRESH_DEADLINE:?} after front-end {a} \
                 acknowledged {written:?} on the restarted db"
            );
        }
        let text = fe[b].ok("get_medal_tally", &["Gaul".into(), Value::Int(1)]);
        let want = format!("Team Gaul has:\n{} gold medals\n", written.gold);
        assert!(
            text.as_str().is_some_and(|t| t.starts_with(&want)),
            "old-format tally at front-end {b}: {text:?}, want {want:?}"
        );
    }
    // The score too, through the push-mode front-end after a pull-mode write.
    let s = fe[0]
        .set_score("Stone Curling", "after the restart", None)
        .expect("a write");
    assert!(
        support::wait_until(FRESH_DEADLINE, || {
            let got = fe[1].score("Stone Curling");
            got.score == "after the restart" && got.version >= s.version
        }),
        "front-end 1 still serves {:?}",
        fe[1].score("Stone Curling")
    );
}

/// The first write after a restart may race the front-end's reconnection to
/// the db (the front-end answers "unavailable" until it is back): retries,
/// bounded.
fn loop_until_written(fe: &Rpc, team: &str) -> cluster_support::WriteAck {
    loop_until_written_medal(fe, team, "gold")
}

fn loop_until_written_medal(fe: &Rpc, team: &str, medal: &str) -> cluster_support::WriteAck {
    let rid = format!("restart-{team}-{}", rand_suffix());
    let mut last = None;
    let ok = support::wait_for(FRESH_DEADLINE, || {
        match fe.increment_medal(team, medal, Some(&rid)) {
            Ok(ack) => Some(ack),
            Err(e) => {
                last = Some(e.to_string());
                None
            }
        }
    });
    ok.unwrap_or_else(|| panic!("no write accepted after the restart: {last:?}"))
}

fn rand_suffix() -> u64 {
    rand::random()
}

/// Property: a db restart alone empties every front-end's cache (DESIGN.md:
/// "a gap, a db restart, or a lost feed connection empties the cache rather
/// than serve values of unknown age"). The file is changed while the db is
/// down (as an operator restoring or correcting it would), without any write
/// through the cluster, so nothing but the restart can tell a front-end that
/// its cached value is stale. Both cache modes.
#[test]
fn a_db_restart_alone_empties_the_caches() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Pull { interval_ms: 200 }, Mode::Push],
        balancer: false,
        ..ClusterConfig::default()
    });
    let fe = [cluster.frontend(0), cluster.frontend(1)];
    let ack = fe[0]
        .increment_medal("Rome", "bronze", None)
        .expect("a write");
    let cached = ack.tally();
    for i in 0..2 {
        cluster
            .wait_tally(i, "Rome", FRESH_DEADLINE, |t| *t == cached)
            .unwrap_or_else(|last| panic!("front-end {i} never showed {cached:?}: {last:?}"));
    }

    cluster.kill_db();
    for (i, fe) in fe.iter().enumerate() {
        assert_eq!(fe.tally("Rome"), cached, "front-end {i} had it cached");
    }
    let db_file = cluster.db_file().to_str().expect("UTF-8 path").to_owned();
    python(
        r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
n = con.execute("UPDATE tallies SET bronze = bronze + 100 WHERE team = 'Rome'").rowcount
assert n == 1, n
con.commit()
con.close()
"#,
        &[&db_file],
    );
    cluster.restart_db();
    assert_eq!(
        cluster
            .db()
            .ok("db.tally", &["Rome".into()])
            .as_struct()
            .unwrap()["bronze"],
        Value::Int(cached.bronze + 100),
        "the restarted db reads the edited file"
    );

    for i in 0..2 {
        if let Err(last) = cluster.wait_tally(i, "Rome", FRESH_DEADLINE, |t| {
            t.bronze == cached.bronze + 100
        }) {
            panic!(
                "front-end {i} ({:?}) still serves {last:?} {FRESH_DEADLINE:?} after the db \
                 restarted with {} bronze medals for Rome",
                cluster.config.frontends[i],
                cached.bronze + 100
            );
        }
    }
}

/// How long a push may take to reach a tablet.
const PUSH_DEADLINE: Duration = Duration::from_secs(15);

/// Property: every write reaches every subscribed tablet, also the first
/// writes after a db restart. Tablets (Python callback servers, registered
/// with `register_client` as the old tablet does) follow a team at each
/// front-end; the db is killed and kept down until both front-ends' feeds
/// back off to their longest retry delay, then restarted, and a write is
/// made at once, before the feeds are back: when they reconnect, the write
/// is in the first batch they get from the restarted db, and must be pushed.
#[test]
fn the_first_writes_after_a_db_restart_are_pushed() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Pull { interval_ms: 200 }, Mode::Push],
        balancer: false,
        ..ClusterConfig::default()
    });
    let fe = [cluster.frontend(0), cluster.frontend(1)];
    let tablets = [CallbackServer::start(), CallbackServer::start()];
    for (i, tablet) in tablets.iter().enumerate() {
        fe[i].ok(
            "register_client",
            &[
                Value::Array(vec!["127.0.0.1".into(), Value::Int(tablet.port().into())]),
                Value::Array(vec![]),
                Value::Array(vec!["Carthage".into()]),
            ],
        );
    }
    let pushed = |tablet: &CallbackServer, g: i64, s: i64| {
        let want = format!("Team Carthage has:\n{g} gold medals\n{s} silver medals\n");
        tablet
            .wait_for(PUSH_DEADLINE, |p| {
                p.method == "print_medal_tally_for_team" && p.text.starts_with(&want)
            })
            .is_some()
    };
    fe[1]
        .increment_medal("Carthage", "gold", None)
        .expect("a write");
    for (i, tablet) in tablets.iter().enumerate() {
        assert!(
            pushed(tablet, 1, 0),
            "the tablet at front-end {i} got no push before the restart: {:?}",
            tablet.received()
        );
    }

    cluster.kill_db();
    // Both feeds are now retrying at their longest delay (1 s).
    for (i, p) in cluster.frontends.iter().enumerate() {
        assert!(
            wait_until(LOAD_DEADLINE, || Cluster::logged(
                p,
                &["change feed unavailable", "retry_in=1s"]
            )),
            "front-end {i}'s feed never backed off to 1 s"
        );
    }
    cluster.restart_db();
    loop_until_written_medal(&fe[1], "Carthage", "silver");
    for (i, tablet) in tablets.iter().enumerate() {
        assert!(
            pushed(tablet, 1, 1),
            "the tablet at front-end {i} ({:?}) never got the first write after the db \
             restart; it got {:#?}",
            cluster.config.frontends[i],
            tablet.received()
        );
    }
}

// ---------------------------------------------------------------------------
// Read load through the balancer
// ---------------------------------------------------------------------------

/// What the read load has done so far.
#[derive(Debug, Default)]
struct LoadStats {
    reads: AtomicU64,
    failures: Mutex<Vec<String>>,
    /// How long every read slower than 100 ms took.
    slow: Mutex<Vec<Duration>>,
}

/// `threads` clients reading through the balancer in a loop, each bounded
/// by a count and by time, until `stop`.
struct ReadLoad {
    stats: Arc<LoadStats>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

/// Reads a thread makes at most.
const MAX_READS_PER_THREAD: u64 = 200_000;
/// Longest a load thread runs.
const MAX_LOAD_TIME: Duration = Duration::from_secs(60);

impl ReadLoad {
    /// `timeout` is each read's client-side deadline: a read that takes
    /// longer counts as failed.
    fn start(url: &str, threads: usize, timeout: Duration) -> ReadLoad {
        let stats = Arc::new(LoadStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|t| {
                let rpc = Rpc::with_config(url, timeout, None);
                let (stats, stop) = (stats.clone(), stop.clone());
                thread::spawn(move || {
                    let began = Instant::now();
                    for i in 0..MAX_READS_PER_THREAD {
                        if stop.load(Ordering::Acquire) || began.elapsed() > MAX_LOAD_TIME {
                            break;
                        }
                        let team = TEAMS[(i as usize + t) % TEAMS.len()];
                        let event = EVENTS[(i as usize + t) % EVENTS.len()];
                        let (method, params): (&str, Vec<Value>) = match i % 4 {
                            0 => ("get_medal_tally", vec![team.into(), Value::Int(t as i64)]),
                            1 => ("get_score", vec![event.into(), Value::Int(t as i64)]),
                            2 => ("scoreboard.tally", vec![team.into()]),
                            _ => ("scoreboard.medal_table", vec![]),
                        };
                        let start = Instant::now();
                        let result = rpc.call(method, &params);
                        let took = start.elapsed();
                        let good = match &result {
                            Ok(Value::String(s)) => !s.is_empty(),
                            Ok(Value::Struct(s)) => s.contains_key("gold"),
                            Ok(Value::Array(a)) => a.len() == TEAMS.len(),
                            _ => false,
                        };
                        if !good {
                            stats
                                .failures
                                .lock()
                                .unwrap()
                                .push(format!("{method} after {took:?}: {result:?}"));
                        }
                        if took > Duration::from_millis(100) {
                            stats.slow.lock().unwrap().push(took);
                        }
                        stats.reads.fetch_add(1, Ordering::AcqRel);
                    }
                })
            })
            .collect();
        ReadLoad {
            stats,
            stop,
            threads,
        }
    }

    fn reads(&self) -> u64 {
        self.stats.reads.load(Ordering::Acquire)
    }

    /// Waits until `n` more reads than `since` are done.
    fn wait_reads(&self, since: u64, n: u64, what: &str) {
        assert!(
            wait_until(LOAD_DEADLINE, || self.reads() >= since + n),
            "{what}: only {} of {n} reads done in {LOAD_DEADLINE:?}; failures: {:?}",
            self.reads() - since,
            self.stats.failures.lock().unwrap()
        );
    }

    /// Stops the threads and returns the stats.
    fn finish(mut self) -> Arc<LoadStats> {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            t.join().expect("a load thread panicked");
        }
        self.stats.clone()
    }
}

impl Drop for ReadLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Property: when a front-end dies (SIGKILL) under a read load through the
/// balancer, every read still succeeds: reads in flight to it, or sent before
/// it is ejected, are retried on another front-end. Three front-ends, two
/// of them killed one after the other, for two chances to catch a lost read.
#[test]
fn killing_a_front_end_during_a_read_load_fails_no_read() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Push, Mode::Pull { interval_ms: 200 }, Mode::Push],
        ..ClusterConfig::default()
    });
    let load = ReadLoad::start(&cluster.balancer_url(), 6, cluster_support::CALL_TIMEOUT);
    load.wait_reads(0, 500, "before the first kill");
    for victim in 0..2 {
        let url = cluster.frontends[victim].url();
        cluster.frontends[victim].signal("KILL");
        assert!(
            cluster.frontends[victim]
                .wait_exit(Duration::from_secs(10))
                .is_some(),
            "front-end {victim} survived kill -9"
        );
        let at_kill = load.reads();
        load.wait_reads(at_kill, 1500, "after a kill");
        let balancer = cluster.balancer.as_ref().unwrap();
        assert!(
            wait_until(LOAD_DEADLINE, || Cluster::logged(
                balancer,
                &["front-end ejected", &url]
            )),
            "the balancer never ejected dead front-end {victim}"
        );
    }
    let stats = load.finish();
    let failures = stats.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} reads failed; first ones: {:#?}",
        failures.len(),
        stats.reads.load(Ordering::Acquire),
        &failures[..failures.len().min(10)]
    );
}

/// The balancer's forward timeout in the SIGSTOP test.
const FORWARD_TIMEOUT: Duration = Duration::from_millis(300);
/// No read may take longer: the forward timeout, one retry on the other
/// front-end, and a wide margin for a loaded machine. About eight times
/// what such a read typically takes (one timeout and one fast retry).
const READ_BOUND: Duration = Duration::from_millis(2_500);
/// How long each front-end stays frozen: twice the bound, so a read that
/// waited for the frozen front-end to come back would break the bound.
const FREEZE: Duration = Duration::from_millis(5_000);

/// Property: a front-end frozen with SIGSTOP (it accepts connections but
/// never answers) is routed around: every read succeeds, and none waits
/// longer than the forward timeout plus one retry (with a margin), though
/// the freeze lasts longer than that. After SIGCONT it is taken back: the
/// other front-end is then frozen in turn, and reads still succeed, which
/// they can only do through the first one.
#[test]
fn a_stopped_front_end_is_routed_around() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Push, Mode::Push],
        forward_timeout_ms: FORWARD_TIMEOUT.as_millis() as u64,
        probe_interval_ms: 100,
        ..ClusterConfig::default()
    });
    // A read slower than twice the bound fails at the client, so a broken
    // forward timeout fails the test in seconds rather than hanging it.
    let load = ReadLoad::start(&cluster.balancer_url(), 4, READ_BOUND * 2);
    load.wait_reads(0, 400, "before the first freeze");

    for (frozen, other) in [(0, 1), (1, 0)] {
        let url = cluster.frontends[frozen].url();
        let healthy_before = Cluster::count_logged(
            cluster.balancer.as_ref().unwrap(),
            &["front-end healthy", &url],
        );
        cluster.frontends[frozen].signal("STOP");
        let stopped_at = Instant::now();
        let reads_at_stop = load.reads();
        // Keep the load on for the whole freeze, and for enough reads.
        assert!(
            wait_until(FREEZE + LOAD_DEADLINE, || {
                stopped_at.elapsed() >= FREEZE && load.reads() >= reads_at_stop + 300
            }),
            "too few reads while front-end {frozen} was stopped: {}; failures: {:?}; slow reads: {:?}",
            load.reads() - reads_at_stop,
            load.stats.failures.lock().unwrap(),
            load.stats.slow.lock().unwrap()
        );
        let failed = load.stats.failures.lock().unwrap().clone();
        assert!(
            failed.is_empty(),
            "reads failed while front-end {frozen} was stopped: {failed:#?}"
        );
        cluster.frontends[frozen].signal("CONT");
        // Taken back once a probe succeeds again.
        let balancer = cluster.balancer.as_ref().unwrap();
        assert!(
            wait_until(LOAD_DEADLINE, || Cluster::count_logged(
                balancer,
                &["front-end healthy", &url]
            ) > healthy_before),
            "the balancer never took front-end {frozen} back after SIGCONT"
        );
        assert!(
            Cluster::logged(balancer, &["front-end ejected", &url]),
            "front-end {frozen} was never ejected while stopped"
        );
        // It answers again directly, and the other is still fine.
        assert!(cluster.frontend(frozen).health().is_ok());
        assert!(cluster.frontend(other).health().is_ok());
        let now = load.reads();
        load.wait_reads(now, 100, "after SIGCONT");
    }

    let stats = load.finish();
    let failures = stats.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} reads failed; first ones: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    let slow = stats.slow.lock().unwrap();
    let worst = slow.iter().max().copied().unwrap_or_default();
    assert!(
        worst < READ_BOUND,
        "a read waited {worst:?} (forward timeout {FORWARD_TIMEOUT:?}, bound {READ_BOUND:?}); \
         reads over 100 ms: {}",
        slow.len()
    );
    eprintln!(
        "{} reads, {} over 100 ms, the slowest {worst:?}",
        stats.reads.load(Ordering::Acquire),
        slow.len()
    );
}

// ---------------------------------------------------------------------------
// Writes while the db dies
// ---------------------------------------------------------------------------

/// One writer's record: every request id it acknowledged, with the medal and
/// the version the cluster gave it.
#[derive(Debug, Default)]
struct WriterLog {
    /// request id -> (medal, version, duplicate)
    acked: BTreeMap<String, (&'static str, i64, bool)>,
    failures: u64,
    last_error: Option<String>,
    /// A request id that was never acknowledged (the writer gave up).
    unresolved: Option<(String, &'static str)>,
}

#[derive(Debug, Default)]
struct WriterState {
    acks: AtomicU64,
    failures: AtomicU64,
}

/// Acknowledged writes one writer makes at most (each is looked for in the
/// team's history, read a page at a time).
const MAX_ACKS_PER_WRITER: u64 = 600;
/// Attempts one writer makes at most, failed ones included.
const MAX_ATTEMPTS_PER_WRITER: u64 = 20_000;
/// Pause after a failed write, so a writer facing a dead db does not spin.
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Property: a write the cluster acknowledged survives a SIGKILL of the db.
/// Writers (one team each, through the balancer) record every acknowledged
/// request id; the db is killed mid-stream and restarted; writers retry each
/// unacknowledged request id until it is acknowledged, so at the end every
/// request id was acknowledged and each must be in the update log exactly
/// once, with the version that was acknowledged, and the tallies must count
/// each exactly once. Finally the db is killed and restarted once more and
/// everything is checked again from the file.
#[test]
fn killing_the_db_during_writes_loses_no_acknowledged_write() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterConfig::default());
    const WRITERS: usize = 4;
    const MEDALS: [&str; 3] = ["gold", "silver", "bronze"];
    let stop = Arc::new(AtomicBool::new(false));
    let states: Vec<Arc<WriterState>> = (0..WRITERS).map(|_| Arc::default()).collect();
    let writers: Vec<thread::JoinHandle<WriterLog>> = (0..WRITERS)
        .map(|w| {
            let rpc = Rpc::with_config(&cluster.balancer_url(), Duration::from_secs(10), None);
            let (stop, state) = (stop.clone(), states[w].clone());
            thread::spawn(move || {
                let team = TEAMS[w];
                let began = Instant::now();
                let mut log = WriterLog::default();
                let mut pending: Option<(String, &'static str)> = None;
                for attempt in 0..MAX_ATTEMPTS_PER_WRITER {
                    let out_of_time = began.elapsed() > MAX_LOAD_TIME;
                    if pending.is_none()
                        && (stop.load(Ordering::Acquire)
                            || log.acked.len() as u64 >= MAX_ACKS_PER_WRITER)
                    {
                        break;
                    }
                    if out_of_time {
                        break;
                    }
                    let (rid, medal) = pending
                        .get_or_insert_with(|| {
                            let n = log.acked.len();
                            (format!("writer{w}-{n}-{attempt}"), MEDALS[n % MEDALS.len()])
                        })
                        .clone();
                    match rpc.increment_medal(team, medal, Some(&rid)) {
                        Ok(ack) => {
                            let t = ack.tally();
                            assert_eq!(t.team, team, "{ack:?}");
                            log.acked.insert(rid, (medal, ack.version, ack.duplicate));
                            pending = None;
                            state.acks.fetch_add(1, Ordering::AcqRel);
                        }
                        Err(e) => {
                            log.failures += 1;
                            log.last_error = Some(e.to_string());
                            state.failures.fetch_add(1, Ordering::AcqRel);
                            thread::sleep(RETRY_PAUSE);
                        }
                    }
                }
                log.unresolved = pending;
                log
            })
        })
        .collect();
    let total = |f: fn(&WriterState) -> &AtomicU64| -> Vec<u64> {
        states
            .iter()
            .map(|s| f(s).load(Ordering::Acquire))
            .collect()
    };

    assert!(
        wait_until(LOAD_DEADLINE, || total(|s| &s.acks).iter().sum::<u64>()
            >= 60),
        "writers did not get going: acks {:?}, failures {:?}",
        total(|s| &s.acks),
        total(|s| &s.failures)
    );
    cluster.kill_db();
    let failures_at_kill = total(|s| &s.failures);
    // Every writer tries (and fails) against the dead db.
    assert!(
        wait_until(LOAD_DEADLINE, || total(|s| &s.failures)
            .iter()
            .zip(&failures_at_kill)
            .all(|(now, then)| now > then)),
        "writers never saw the db down: failures {:?}",
        total(|s| &s.failures)
    );
    cluster.restart_db();
    let acks_at_restart = total(|s| &s.acks);
    assert!(
        wait_until(LOAD_DEADLINE, || total(|s| &s.acks)
            .iter()
            .zip(&acks_at_restart)
            .all(|(now, then)| *now >= (then + 30).min(MAX_ACKS_PER_WRITER))),
        "writers did not recover after the restart: acks {:?} (at restart {acks_at_restart:?}), \
         failures {:?}",
        total(|s| &s.acks),
        total(|s| &s.failures)
    );
    stop.store(true, Ordering::Release);
    let logs: Vec<WriterLog> = writers
        .into_iter()
        .map(|w| w.join().expect("a writer panicked"))
        .collect();

    assert!(
        logs.iter().all(|l| l.unresolved.is_none()),
        "a writer gave up on a write: {:?}",
        logs.iter()
            .map(|l| (&l.unresolved, &l.last_error))
            .collect::<Vec<_>>()
    );

    let check = |when: &str, cluster: &Cluster| {
        let bal = cluster.balancer();
        let snapshot = db_snapshot(&cluster.db_url());
        for (w, log) in logs.iter().enumerate() {
            let team = TEAMS[w];
            let history = bal.history("tally", team);
            let mut in_log: HashMap<&str, (i64, usize)> = HashMap::new();
            for c in &history {
                let rid = c.request_id.as_deref().unwrap_or("");
                let e = in_log.entry(rid).or_insert((c.version, 0));
                e.1 += 1;
            }
            for (rid, (medal, version, _)) in &log.acked {
                match in_log.get(rid.as_str()) {
                    Some((v, 1)) => assert_eq!(
                        v, version,
                        "{when}: {rid} ({medal} for {team}) was acknowledged as version \
                         {version}, the log has it as {v}"
                    ),
                    Some((_, n)) => panic!("{when}: {rid} is in the log {n} times"),
                    None => panic!(
                        "{when}: acknowledged write {rid} ({medal} for {team}, version \
                         {version}) is missing"
                    ),
                }
            }
            // Nothing else was applied: every write was retried until
            // acknowledged, so the log holds exactly the acknowledged ones.
            let extra: Vec<&&str> = in_log
                .keys()
                .filter(|rid| !log.acked.contains_key(**rid))
                .collect();
            assert!(
                extra.is_empty(),
                "{when}: {team}'s log has writes nobody acknowledged: {extra:?}"
            );
            // The tally counts each acknowledged write once.
            let tally = snapshot.tallies.iter().find(|t| t.team == team).unwrap();
            let count =
                |m: &str| log.acked.values().filter(|(medal, ..)| *medal == m).count() as i64;
            assert_eq!(
                (tally.gold, tally.silver, tally.bronze),
                (count("gold"), count("silver"), count("bronze")),
                "{when}: {team}'s tally does not count each acknowledged write exactly once"
            );
        }
    };
    check("after the restart", &cluster);
    // And all of it is on disk: once more from the file alone.
    cluster.kill_db();
    cluster.restart_db();
    check("after a second restart", &cluster);

    let acked: usize = logs.iter().map(|l| l.acked.len()).sum();
    let duplicates: usize = logs
        .iter()
        .map(|l| l.acked.values().filter(|(.., d)| *d).count())
        .sum();
    let failed: u64 = logs.iter().map(|l| l.failures).sum();
    eprintln!(
        "{acked} acknowledged writes, {duplicates} acknowledged as duplicates of a write \
         committed before its reply was lost, {failed} failed attempts; last errors: {:?}",
        logs.iter()
            .map(|l| l.last_error.as_deref())
            .collect::<Vec<_>>()
    );
}
