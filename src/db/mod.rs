//! `podium-db`: owns the store, orders every write, and serves the change
//! feed front-ends keep their caches coherent with.
//!
//! Reads are answered from memory (the whole state is roster-sized); writes
//! go to the single writer thread (`writer`) and are acknowledged once
//! durable. All methods here are internal: they require the cluster secret.

pub mod wire;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::info;

use crate::api::faults;
use crate::clock::ClusterClock;
use crate::cluster::{add_internal, Envelope};
use crate::election::vclock::SharedClock;
use crate::rpc::Fault;
use crate::rpc::{Methods, Params, ServerConfig, Value};
use crate::scoreboard::{check_score, Medal, Roster, Score, Tally};
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::store::{Change, Entry, SqliteStore, Store, StoreError, WriteOp, WriteRequest};
use wire::{ChangeBatch, WriteReply, MAX_CHANGES_PER_REPLY, MAX_WAIT_MS};
use writer::Job;

/// Default port, as the old DatabaseServer.
pub const DEFAULT_PORT: u16 = 8000;
/// Default database file.
pub const DEFAULT_DB_FILE: &str = "scores.db";
/// Changes kept in memory for the feed; older ones are read from the log.
const RECENT_CHANGES: usize = 4096;
/// Longest key history one call returns.
const MAX_HISTORY: i64 = 1000;

/// Everything `podium-db` needs to run.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// The SQLite file; created with the default roster if missing.
    pub db_file: PathBuf,
    /// Required on every call, as the `X-Podium-Secret` header.
    pub cluster_secret: Secret,
    pub server: ServerConfig,
    /// Timestamps of updates come from it.
    pub clock: ClusterClock,
    /// This process's vector clock; stored with every update.
    pub vclock: SharedClock,
}

/// What readers see: current values and the recent change log.
pub(crate) struct State {
    roster: Roster,
    epoch: String,
    inner: RwLock<Inner>,
    latest_tx: watch::Sender<i64>,
}

struct Inner {
    tallies: HashMap<String, Tally>,
    scores: HashMap<String, Score>,
    /// A contiguous run of the newest changes, ending at `latest`.
    recent: VecDeque<Change>,
    latest: i64,
}

impl State {
    /// Makes committed changes visible to readers and wakes long polls.
    pub(crate) fn apply<'a>(&self, changes: impl Iterator<Item = &'a Change>) {
        let latest = {
            let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
            for change in changes {
                match &change.entry {
                    Entry::Tally(t) => {
                        inner.tallies.insert(t.team.to_lowercase(), t.clone());
                    }
                    Entry::Score(s) => {
                        inner.scores.insert(s.event.to_lowercase(), s.clone());
                    }
                }
                if inner.recent.len() == RECENT_CHANGES {
                    inner.recent.pop_front();
                }
                inner.latest = inner.latest.max(change.version);
                inner.recent.push_back(change.clone());
            }
            inner.latest
        };
        self.latest_tx.send_replace(latest);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running db: state, writer and secret, shared by all handlers.
struct Db {
    state: Arc<State>,
    writer: mpsc::Sender<Job>,
    secret: Secret,
    clock: ClusterClock,
    vclock: SharedClock,
    /// Triggered at shutdown; long polls then answer at once instead of
    /// holding the graceful shutdown for their whole wait.
    shutdown: Shutdown,
}

/// An opened database, ready to serve.
pub struct DbServer {
    db: Arc<Db>,
    writer_thread: std::thread::JoinHandle<()>,
    server: ServerConfig,
}

impl std::fmt::Debug for DbServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbServer")
            .field("epoch", &self.db.state.epoch)
            .finish()
    }
}

impl DbServer {
    /// Opens the store and loads its state.
    ///
    /// # Errors
    /// The database cannot be opened or read.
    pub fn open(config: DbConfig, shutdown: Shutdown) -> Result<DbServer, StoreError> {
        let store = SqliteStore::open(&config.db_file)?;
        let snapshot = store.snapshot()?;
        let recent = store.changes_after(
            (snapshot.latest_version - RECENT_CHANGES as i64).max(0),
            RECENT_CHANGES,
        )?;
        let epoch = format!("{:016x}", rand::random::<u64>());
        info!(file = %config.db_file.display(), latest = snapshot.latest_version, %epoch, "database opened");
        let (latest_tx, _) = watch::channel(snapshot.latest_version);
        let state = Arc::new(State {
            roster: snapshot.roster,
            epoch,
            inner: RwLock::new(Inner {
                tallies: snapshot
                    .tallies
                    .into_iter()
                    .map(|t| (t.team.to_lowercase(), t))
                    .collect(),
                scores: snapshot
                    .scores
                    .into_iter()
                    .map(|s| (s.event.to_lowercase(), s))
                    .collect(),
                recent: recent.into(),
                latest: snapshot.latest_version,
            }),
            latest_tx,
        });
        let (writer, writer_thread) = writer::spawn(Box::new(store), state.clone());
        Ok(DbServer {
            db: Arc::new(Db {
                state,
                writer,
                secret: config.cluster_secret,
                clock: config.clock,
                vclock: config.vclock.clone(),
                shutdown,
            }),
            writer_thread,
            server: config.server,
        })
    }

    /// The method table, for callers that add their own (the election).
    pub fn methods(&self) -> Methods {
        methods(self.db.clone())
    }

    /// Serves until the shutdown given to [`DbServer::open`], then waits for the writer to finish what was
    /// acknowledged.
    ///
    /// # Errors
    /// Accepting failed for good.
    pub async fn serve(self, listener: TcpListener, methods: Methods) -> std::io::Result<()> {
        let DbServer {
            db,
            writer_thread,
            server,
        } = self;
        let shutdown = db.shutdown.clone();
        let envelope = Envelope::new(methods, Some(db.secret.clone()), Some(db.vclock.clone()));
        drop(db);
        let grace = server.shutdown_grace;
        let result = crate::rpc::serve(listener, envelope, server, shutdown.triggered()).await;
        // The method table held the last handles on the writer's channel; now
        // that it is gone the writer drains its queue and exits.
        let join = tokio::task::spawn_blocking(move || {
            let _ = writer_thread.join();
        });
        if tokio::time::timeout(grace, join).await.is_err() {
            tracing::warn!("writer still busy at exit; acknowledged writes are already durable");
        }
        result
    }
}

fn unavailable(what: impl std::fmt::Display) -> Fault {
    Fault::new(faults::UNAVAILABLE, format!("db: {what}"))
}

fn methods(db: Arc<Db>) -> Methods {
    let mut m = Methods::new();
    add_internal(
        &mut m,
        &db,
        wire::ROSTER,
        &["struct"],
        "The roster, this db run's epoch and its latest version.",
        |db, p| async move {
            p.expect_count(0, 0)?;
            let mut v = db.state.roster.to_value();
            if let Value::Struct(s) = &mut v {
                s.insert("epoch".into(), Value::from(db.state.epoch.as_str()));
                s.insert("latest".into(), Value::Int(db.state.read().latest));
            }
            Ok(v)
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::TALLY,
        &["struct", "string"],
        "One team's tally.",
        |db, p| async move {
            p.expect_count(1, 1)?;
            let team = db.state.roster.team(p.arg(0, "team")?)?.to_lowercase();
            db.state
                .read()
                .tallies
                .get(&team)
                .map(Tally::to_value)
                .ok_or_else(|| Fault::internal("team without a tally row"))
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::TALLIES,
        &["array"],
        "Every team's tally.",
        |db, p| async move {
            p.expect_count(0, 0)?;
            let inner = db.state.read();
            Ok(Value::Array(
                db.state
                    .roster
                    .teams
                    .iter()
                    .filter_map(|t| inner.tallies.get(&t.to_lowercase()))
                    .map(Tally::to_value)
                    .collect(),
            ))
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::SCORE,
        &["struct", "string"],
        "One event's score.",
        |db, p| async move {
            p.expect_count(1, 1)?;
            let event = db.state.roster.event(p.arg(0, "event")?)?.to_lowercase();
            db.state
                .read()
                .scores
                .get(&event)
                .map(Score::to_value)
                .ok_or_else(|| Fault::internal("event without a score row"))
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::INCREMENT_MEDAL,
        &["struct", "string", "string", "string"],
        "Adds one medal to a team: (team, medal[, request_id]).",
        |db, p| async move {
            p.expect_count(2, 3)?;
            let team = db.state.roster.team(p.arg(0, "team")?)?.to_owned();
            let medal = Medal::parse(p.arg(1, "medal")?)?;
            write(&db, &p, WriteOp::IncrementMedal { team, medal }).await
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::SET_SCORE,
        &["struct", "string", "string", "string"],
        "Sets an event's score: (event, score[, request_id]).",
        |db, p| async move {
            p.expect_count(2, 3)?;
            let event = db.state.roster.event(p.arg(0, "event")?)?.to_owned();
            let score: &str = p.arg(1, "score")?;
            check_score(score)?;
            let score = score.to_owned();
            write(&db, &p, WriteOp::SetScore { event, score }).await
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::CHANGES,
        &["struct", "int", "int"],
        "Changes after a version, waiting up to wait_ms (at most 30000) for one.",
        |db, p| async move {
            p.expect_count(1, 2)?;
            let after: i64 = p.arg(0, "after")?;
            let wait_ms = p
                .opt_arg::<i64>(1, "wait_ms")?
                .unwrap_or(0)
                .clamp(0, MAX_WAIT_MS);
            changes(&db, after, wait_ms).await.map(|b| b.to_value())
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::HISTORY,
        &["array", "string", "int"],
        "The last updates of one key (e.g. \"tally:gaul\"), oldest first.",
        |db, p| async move {
            p.expect_count(1, 2)?;
            let key: &str = p.arg(0, "key")?;
            let limit = p
                .opt_arg::<i64>(1, "limit")?
                .unwrap_or(100)
                .clamp(1, MAX_HISTORY);
            let (tx, rx) = oneshot::channel();
            submit(&db, Job::History(key.to_owned(), limit as usize, tx)).await?;
            let changes = rx.await.map_err(unavailable)?.map_err(unavailable)?;
            Ok(Value::Array(changes.iter().map(Change::to_value).collect()))
        },
    );
    m
}

async fn submit(db: &Db, job: Job) -> Result<(), Fault> {
    db.writer
        .send(job)
        .await
        .map_err(|_| unavailable("shutting down"))
}

async fn write(db: &Db, p: &Params, op: WriteOp) -> Result<Value, Fault> {
    let request_id = p
        .opt_arg::<&str>(2, "request_id")?
        .filter(|r| !r.is_empty())
        .map(|r| {
            if r.len() > 128 {
                Err(Fault::invalid_params("request_id longer than 128 bytes"))
            } else {
                Ok(r.to_owned())
            }
        })
        .transpose()?;
    // The server merged the caller's piggybacked clock and ticked ours for
    // this request: the update carries what this write causally follows.
    let vclock = db.vclock.snapshot().as_slice().to_vec();
    let request = WriteRequest {
        op,
        request_id,
        timestamp: db.clock.now_secs(),
        vclock,
    };
    let (tx, rx) = oneshot::channel();
    submit(db, Job::Write(request, tx)).await?;
    let committed = rx
        .await
        .map_err(|_| unavailable("writer stopped"))?
        .map_err(|e| Fault::internal(format!("write failed: {e}")))?;
    Ok(WriteReply {
        change: committed.change,
        duplicate: committed.duplicate,
    }
    .to_value())
}

async fn changes(db: &Db, after: i64, wait_ms: i64) -> Result<ChangeBatch, Fault> {
    if wait_ms > 0 {
        let mut rx = db.state.latest_tx.subscribe();
        let wait = Duration::from_millis(wait_ms as u64);
        tokio::select! {
            _ = tokio::time::timeout(wait, rx.wait_for(|latest| *latest != after)) => {}
            _ = db.shutdown.triggered() => {}
        }
    }
    let epoch = db.state.epoch.clone();
    let from_memory = {
        let inner = db.state.read();
        let latest = inner.latest;
        if after > latest || after < 0 {
            return Ok(ChangeBatch {
                epoch,
                latest,
                changes: Vec::new(),
                reset: true,
            });
        }
        match inner.recent.front() {
            _ if after == latest => Some((latest, Vec::new())),
            Some(first) if first.version <= after + 1 => {
                let skip = (after + 1 - first.version) as usize;
                let changes = inner
                    .recent
                    .iter()
                    .skip(skip)
                    .take(MAX_CHANGES_PER_REPLY)
                    .cloned()
                    .collect();
                Some((latest, changes))
            }
            _ => None,
        }
    };
    let (latest, changes) = match from_memory {
        Some(found) => found,
        None => {
            let (tx, rx) = oneshot::channel();
            submit(db, Job::ChangesAfter(after, MAX_CHANGES_PER_REPLY, tx)).await?;
            let changes = rx.await.map_err(unavailable)?.map_err(unavailable)?;
            (db.state.read().latest, changes)
        }
    };
    Ok(ChangeBatch {
        epoch,
        latest,
        changes,
        reset: false,
    })
}
