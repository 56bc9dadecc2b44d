//! Helpers for the tests that run a whole cluster of real binaries: a db on a
//! temporary file, front-ends in either cache mode, a balancer, all on
//! `127.0.0.1:0`, and a [`Cluster`] that kills them all when dropped.
//!
//! Also: the cluster's defaults and scoreboard calls on the shared blocking
//! XML-RPC caller (`support::Rpc`, re-exported here as [`Rpc`]), and an
//! old-style Python tablet callback server ([`CallbackServer`]).
//!
//! Use from a test file with `mod support; mod cluster_support;`: this module
//! builds on `support` (processes, waiting with deadlines), which someone else
//! owns.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use podium::api::{HistoryCursor, HistoryKind};
use podium::db::wire::ChangeBatch;
use podium::rpc::{ClientError, Value};
use podium::scoreboard::{Score, Tally};
use podium::store::{Change, Entry};

use crate::support::{wait_for, wait_until, Process, Stream};

/// The cluster secret every test cluster shares (internal calls need it).
pub const SECRET: &str = "cluster-test-secret-5f1c9a";
/// The feeder password of every test cluster.
pub const PASSWORD: &str = "feeder-test-password-8d2e";

/// The default roster, as DESIGN.md gives it.
pub const TEAMS: [&str; 5] = ["Gaul", "Rome", "Carthage", "Greece", "Persia"];
pub const EVENTS: [&str; 4] = [
    "Stone Curling",
    "Stone Skating",
    "Underwater Stone Weaving",
    "Synchronized Stone Swimming",
];

/// How long a cluster gets to become ready (every front-end has the roster,
/// the balancer answers). Generous: debug builds on a loaded two-core box.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Deadline of one call made by [`Rpc`] unless told otherwise: long enough
/// that a slow machine never fails a call by itself, so a failure means the
/// cluster failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The environment every cluster process gets.
fn envs() -> [(&'static str, &'static str); 2] {
    [
        ("PODIUM_CLUSTER_SECRET", SECRET),
        ("PODIUM_FEEDER_PASSWORD", PASSWORD),
    ]
}

// ---------------------------------------------------------------------------
// Calling the cluster
// ---------------------------------------------------------------------------

pub use crate::support::Rpc;

/// The cluster's defaults and calls on the shared [`Rpc`].
impl Rpc {
    /// A client with [`CALL_TIMEOUT`] and no secret: what any public client is.
    pub fn new(url: &str) -> Rpc {
        Rpc::with_config(url, CALL_TIMEOUT, None)
    }

    /// A client that sends the cluster secret: what a cluster member is.
    pub fn internal(url: &str) -> Rpc {
        Rpc::with_config(url, CALL_TIMEOUT, Some(SECRET))
    }

    /// `scoreboard.tally(team)`.
    pub fn tally(&self, team: &str) -> Tally {
        self.block_on(self.api().tally(team))
            .unwrap_or_else(|e| panic!("scoreboard.tally({team}) at {}: {e}", self.url()))
    }

    /// `scoreboard.score(event)`.
    pub fn score(&self, event: &str) -> Score {
        self.block_on(self.api().score(event))
            .unwrap_or_else(|e| panic!("scoreboard.score({event}) at {}: {e}", self.url()))
    }

    /// `scoreboard.medal_table()`, as tallies.
    pub fn medal_table(&self) -> Vec<Tally> {
        self.block_on(self.api().medal_table())
            .unwrap_or_else(|e| panic!("scoreboard.medal_table at {}: {e}", self.url()))
            .into_iter()
            .map(|row| row.tally)
            .collect()
    }

    /// `scoreboard.increment_medal(team, medal, PASSWORD[, request_id])`:
    /// the new version and tally, and whether it was a duplicate.
    pub fn increment_medal(
        &self,
        team: &str,
        medal: &str,
        request_id: Option<&str>,
    ) -> Result<WriteAck, ClientError> {
        self.block_on(
            self.api()
                .increment_medal(team, medal, PASSWORD, request_id),
        )
        .map(WriteAck)
    }

    /// `scoreboard.set_score(event, score, PASSWORD[, request_id])`.
    pub fn set_score(
        &self,
        event: &str,
        score: &str,
        request_id: Option<&str>,
    ) -> Result<WriteAck, ClientError> {
        self.block_on(self.api().set_score(event, score, PASSWORD, request_id))
            .map(WriteAck)
    }

    /// Every update of a key, oldest first: `scoreboard.history(kind, name,
    /// cursor, 500)` page after page, back to the first update.
    pub fn history(&self, kind: &str, name: &str) -> Vec<Change> {
        let kind = match kind {
            "tally" => HistoryKind::Tally,
            "score" => HistoryKind::Score,
            other => panic!("no history kind {other:?}"),
        };
        let mut pages = Vec::new();
        let mut cursor = HistoryCursor::Newest;
        // Bounded: a test writes at most a few thousand updates.
        for _ in 0..1000 {
            let page = self
                .block_on(self.api().history_page(kind, name, cursor, Some(500)))
                .unwrap_or_else(|e| panic!("scoreboard.history({name}) at {}: {e}", self.url()));
            pages.push(page.updates);
            match page.next {
                Some(next) => cursor = next,
                None => return pages.into_iter().rev().flatten().collect(),
            }
        }
        panic!("scoreboard.history({name}) did not end within 1000 pages")
    }

    /// A front-end's `podium.health`: `(ok, cached entries)`.
    pub fn health(&self) -> Result<(bool, i64), ClientError> {
        self.block_on(self.api().health()).map(|h| (h.ok, h.cached))
    }
}

/// The reply of a structured write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteAck(pub podium::api::WriteAck);

impl std::ops::Deref for WriteAck {
    type Target = podium::api::WriteAck;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl WriteAck {
    /// The tally a medal write left.
    pub fn tally(&self) -> Tally {
        match &self.0.entry {
            Entry::Tally(t) => t.clone(),
            other => panic!("a medal write left {other:?}"),
        }
    }
}

/// What the db holds now, straight from it (cluster secret): the latest
/// version, every tally and every score. Two equal snapshots mean nothing
/// was written in between.
#[derive(Debug, Clone, PartialEq)]
pub struct DbSnapshot {
    pub latest: i64,
    pub tallies: Vec<Tally>,
    pub scores: Vec<Score>,
}

/// Reads a [`DbSnapshot`] from the db at `db_url`.
pub fn db_snapshot(db_url: &str) -> DbSnapshot {
    let db = Rpc::internal(db_url);
    let batch = ChangeBatch::from_value(&db.ok("db.changes", &[Value::Int(i64::MAX)]))
        .expect("a change batch");
    let tallies = db
        .ok("db.tallies", &[])
        .as_array()
        .expect("db.tallies is an array")
        .iter()
        .map(|t| Tally::from_value(t).expect("a tally"))
        .collect();
    let scores = EVENTS
        .iter()
        .map(|e| Score::from_value(&db.ok("db.score", &[(*e).into()])).expect("a score"))
        .collect();
    DbSnapshot {
        latest: batch.latest,
        tallies,
        scores,
    }
}

// ---------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------

/// How a front-end's cache learns of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--cache push`: a long poll on the change feed.
    Push,
    /// `--cache pull --pull-interval-ms N`.
    Pull { interval_ms: u64 },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// One front-end per entry.
    pub frontends: Vec<Mode>,
    /// Start a balancer in front of the front-ends.
    pub balancer: bool,
    /// `--cache-ttl-secs` of the front-ends. Default an hour, so that the
    /// TTL (the last safety net) can never be what makes a test pass.
    pub cache_ttl_secs: u64,
    /// `--probe-interval-ms` of the balancer.
    pub probe_interval_ms: u64,
    /// `--probe-timeout-ms` of the balancer: a few intervals, so that a probe
    /// slowed down by a loaded machine does not eject a live front-end.
    pub probe_timeout_ms: u64,
    /// `--forward-timeout-ms` of the balancer.
    pub forward_timeout_ms: u64,
    /// `--roster` of the db: the roster of its new database.
    pub roster: Option<PathBuf>,
    /// More flags for the db (the first start; a restart uses them too).
    pub db_args: Vec<String>,
    /// More flags for every front-end.
    pub frontend_args: Vec<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            frontends: vec![Mode::Pull { interval_ms: 200 }, Mode::Push],
            balancer: true,
            cache_ttl_secs: 3600,
            probe_interval_ms: 100,
            probe_timeout_ms: 400,
            forward_timeout_ms: 500,
            roster: None,
            db_args: Vec::new(),
            frontend_args: Vec::new(),
        }
    }
}

/// A running cluster. Dropping it kills the balancer, the front-ends and the
/// db (in that order) and deletes the database file.
#[derive(Debug)]
pub struct Cluster {
    // Field order is drop order: clients of the db go first.
    pub balancer: Option<Process>,
    pub frontends: Vec<Process>,
    /// `None` between [`Cluster::kill_db`] and [`Cluster::restart_db`].
    db: Option<Process>,
    db_addr: SocketAddr,
    db_file: PathBuf,
    pub config: ClusterConfig,
    dir: tempfile::TempDir,
}

pub fn bin(name: &str) -> &'static str {
    match name {
        "db" => env!("CARGO_BIN_EXE_podium-db"),
        "frontend" => env!("CARGO_BIN_EXE_podium-frontend"),
        "balancer" => env!("CARGO_BIN_EXE_podium-balancer"),
        other => panic!("no binary {other}"),
    }
}

/// Starts `podium-db` on `port` (0: any) with `file`.
fn start_db(port: u16, file: &Path, roster: Option<&Path>, extra: &[String]) -> Process {
    let port = port.to_string();
    let file = file.to_str().expect("a UTF-8 temp path");
    let mut args = vec!["--port", &port, "--db-file", file];
    if let Some(roster) = roster {
        args.extend(["--roster", roster.to_str().expect("a UTF-8 roster path")]);
    }
    args.extend(extra.iter().map(String::as_str));
    Process::spawn(bin("db"), args, &envs())
}

impl Cluster {
    /// Starts the cluster and waits until it is ready: every front-end has
    /// the roster, and the balancer (if any) answers a read.
    pub fn start(config: ClusterConfig) -> Cluster {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db_file = dir.path().join("scores.db");
        let db = start_db(0, &db_file, config.roster.as_deref(), &config.db_args);
        let db_addr = db.addr();
        let db_url = db.url();
        let mut frontends = Vec::new();
        for (i, mode) in config.frontends.iter().enumerate() {
            let uid = (i + 1).to_string();
            let ttl = config.cache_ttl_secs.to_string();
            let mut args: Vec<String> = [
                "--port",
                "0",
                "--uid",
                &uid,
                "--db",
                &db_url,
                "--cache-ttl-secs",
                &ttl,
            ]
            .map(str::to_owned)
            .to_vec();
            args.extend(config.frontend_args.iter().cloned());
            match mode {
                Mode::Push => args.extend(["--cache".into(), "push".into()]),
                Mode::Pull { interval_ms } => args.extend([
                    "--cache".into(),
                    "pull".into(),
                    "--pull-interval-ms".into(),
                    interval_ms.to_string(),
                ]),
            }
            frontends.push(Process::spawn(bin("frontend"), &args, &envs()));
        }
        let balancer = config.balancer.then(|| {
            let mut args: Vec<String> = vec!["--port".into(), "0".into()];
            for fe in &frontends {
                args.extend(["--frontend".into(), fe.url()]);
            }
            args.extend([
                "--probe-interval-ms".into(),
                config.probe_interval_ms.to_string(),
                "--probe-timeout-ms".into(),
                config.probe_timeout_ms.to_string(),
                "--forward-timeout-ms".into(),
                config.forward_timeout_ms.to_string(),
            ]);
            Process::spawn(bin("balancer"), &args, &envs())
        });
        let cluster = Cluster {
            balancer,
            frontends,
            db: Some(db),
            db_addr,
            db_file,
            config,
            dir,
        };
        cluster.wait_ready();
        cluster
    }

    /// Waits until every front-end reports ready and the balancer answers.
    ///
    /// # Panics
    /// When that takes longer than [`READY_TIMEOUT`].
    pub fn wait_ready(&self) {
        for i in 0..self.frontends.len() {
            let fe = self.frontend(i);
            assert!(
                wait_until(READY_TIMEOUT, || matches!(fe.health(), Ok((true, _)))),
                "front-end {i} ({}) never became ready",
                fe.url()
            );
        }
        if self.balancer.is_some() {
            let bal = self.balancer();
            assert!(
                wait_until(READY_TIMEOUT, || bal.call("scoreboard.roster", &[]).is_ok()),
                "the balancer never answered"
            );
        }
    }

    pub fn db_url(&self) -> String {
        format!("http://{}/", self.db_addr)
    }

    pub fn db_file(&self) -> &Path {
        &self.db_file
    }

    /// The db process, while it runs.
    pub fn db_process(&mut self) -> &mut Process {
        self.db.as_mut().expect("the db is running")
    }

    /// A client of front-end `i`.
    pub fn frontend(&self, i: usize) -> Rpc {
        Rpc::new(&self.frontends[i].url())
    }

    /// A client of the balancer.
    pub fn balancer(&self) -> Rpc {
        Rpc::new(&self.balancer_url())
    }

    pub fn balancer_url(&self) -> String {
        self.balancer.as_ref().expect("a balancer").url()
    }

    /// A client of the db that sends the cluster secret.
    pub fn db(&self) -> Rpc {
        Rpc::internal(&self.db_url())
    }

    /// `kill -9` the db and waits for it to be gone.
    pub fn kill_db(&mut self) {
        let mut db = self.db.take().expect("the db is running");
        db.signal("KILL");
        assert!(
            db.wait_exit(Duration::from_secs(10)).is_some(),
            "the db survived kill -9"
        );
    }

    /// Starts the db again on the same port and file, after
    /// [`Cluster::kill_db`]. Retries while the port is not yet free.
    pub fn restart_db(&mut self) {
        assert!(self.db.is_none(), "the db is still running");
        let addr = self.db_addr;
        // The killed db's listening socket is gone at once; this only guards
        // against a slow kernel. (Every server binds with SO_REUSEADDR.)
        assert!(
            wait_until(Duration::from_secs(10), || TcpListener::bind(addr).is_ok()),
            "port {} never became free again",
            addr.port()
        );
        let db = start_db(addr.port(), &self.db_file, None, &self.config.db_args);
        assert_eq!(db.addr(), addr, "the db came back on another address");
        self.db = Some(db);
    }

    /// Waits until front-end `i`'s `scoreboard.tally(team)` satisfies `good`,
    /// and returns that tally; `None` at the deadline (with the last seen
    /// one in the message of the caller's choice).
    pub fn wait_tally(
        &self,
        i: usize,
        team: &str,
        timeout: Duration,
        mut good: impl FnMut(&Tally) -> bool,
    ) -> Result<Tally, Option<Tally>> {
        let fe = self.frontend(i);
        let mut last = None;
        wait_for(timeout, || {
            match fe.call("scoreboard.tally", &[team.into()]) {
                Ok(v) => {
                    let t = Tally::from_value(&v).expect("a tally");
                    let ok = good(&t);
                    last = Some(t.clone());
                    ok.then_some(t)
                }
                Err(_) => None,
            }
        })
        .ok_or(last)
    }

    /// True when process `p`'s stderr has a line containing every one of `parts`.
    pub fn logged(p: &Process, parts: &[&str]) -> bool {
        p.output(Stream::Stderr)
            .lines()
            .any(|l| parts.iter().all(|part| l.contains(part)))
    }

    /// Number of lines of `p`'s stderr that contain every one of `parts`.
    pub fn count_logged(p: &Process, parts: &[&str]) -> usize {
        p.output(Stream::Stderr)
            .lines()
            .filter(|l| parts.iter().all(|part| l.contains(part)))
            .count()
    }

    /// The temp dir the cluster's files live in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

// ---------------------------------------------------------------------------
// An old-style tablet's callback server, in Python
// ---------------------------------------------------------------------------

/// The old tablet's XML-RPC server: Python's `SimpleXMLRPCServer` on port 0
/// with the two methods front-ends push to. Each call is printed as one line
/// `CALL <method> <type names, comma-separated> <repr of arg 2> <base64 of arg 1>`,
/// so the test reads what arrived from the process's output.
const CALLBACK_SERVER: &str = r#"
import base64
from xmlrpc.server import SimpleXMLRPCServer

server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False)

def record(method, text, time):
    types = ",".join(type(a).__name__ for a in (text, time))
    data = base64.b64encode(str(text).encode()).decode()
    print(f"CALL {method} {types} {time!r} {data}", flush=True)
    return True

# Exactly the old tablet's signatures: two positional arguments each.
def print_score_for_event(score, time_of_update):
    return record("print_score_for_event", score, time_of_update)

def print_medal_tally_for_team(tally, time_of_update):
    return record("print_medal_tally_for_team", tally, time_of_update)

server.register_function(print_score_for_event)
server.register_function(print_medal_tally_for_team)
host, port = server.server_address
print(f"LISTENING {host}:{port}", flush=True)
server.serve_forever()
"#;

/// One push a [`CallbackServer`] received.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    pub method: String,
    /// The first argument (the text).
    pub text: String,
    /// The Python type names of the two arguments, in order.
    pub types: Vec<String>,
    /// The second argument, when it parses as a number.
    pub time: Option<f64>,
}

/// A running Python callback server; killed on drop.
#[derive(Debug)]
pub struct CallbackServer {
    pub process: Process,
}

impl CallbackServer {
    pub fn start() -> CallbackServer {
        CallbackServer {
            process: Process::spawn("python3", ["-u", "-c", CALLBACK_SERVER], &[]),
        }
    }

    pub fn port(&self) -> u16 {
        self.process.addr().port()
    }

    /// Every push received so far, in order.
    pub fn received(&self) -> Vec<Pushed> {
        self.process
            .output(Stream::Stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("CALL "))
            .map(parse_pushed)
            .collect()
    }

    /// Waits until a received push satisfies `matches`, and returns it.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut matches: impl FnMut(&Pushed) -> bool,
    ) -> Option<Pushed> {
        wait_for(timeout, || self.received().into_iter().find(|p| matches(p)))
    }
}

fn parse_pushed(line: &str) -> Pushed {
    use base64::Engine as _;
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, types, time, text] = parts[..] else {
        panic!("bad CALL line {line:?}")
    };
    let text = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("bad base64 in {line:?}: {e}"));
    Pushed {
        method: method.to_owned(),
        text: String::from_utf8(text).expect("UTF-8 text"),
        types: types.split(',').map(str::to_owned).collect(),
        time: time.parse().ok(),
    }
}
