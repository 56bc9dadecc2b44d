//! `podium-db`: owns the store, orders every write, and serves the change
//! feed front-ends keep their caches coherent with.
//!
//! - `state`: what readers see, in memory (the whole state is roster-sized);
//! - `writer`: the single writer thread, which owns the store, commits in
//!   groups, and acknowledges a write only once it is durable; `stamp`, the
//!   floor that keeps update timestamps from ever decreasing;
//! - `readers`: the threads that read the update log, never the writer;
//! - `feed`: the server half of the change feed;
//! - `methods`: the method table (all internal: the cluster secret is
//!   required);
//! - [`wire`]: the shapes of the db's calls, for both sides.

mod feed;
mod members;
mod methods;
mod readers;
mod stamp;
mod state;
mod sweeper;
pub mod wire;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::api::faults;
use crate::clock::ClusterClock;
use crate::cluster::Envelope;
use crate::election::vclock::SharedClock;
use crate::rpc::Fault;
use crate::rpc::{Methods, ServerConfig};
use crate::scoreboard::Roster;
use crate::secret::Secret;
use crate::shutdown::{Shutdown, Tasks};
use crate::store::{FileGuard, SqliteStore, StartupCheck, Store, StoreError};
use members::Members;
use readers::Readers;
use state::{State, RECENT_CHANGES};
use std::time::Duration;
use writer::Job;

/// How often the db checks, between writes, that its file is still the one
/// it opened (every write batch checks too), milliseconds.
const FILE_CHECK_MS: u64 = 1000;

/// Default port, as the old DatabaseServer.
pub const DEFAULT_PORT: u16 = 8000;
/// Default database file.
pub const DEFAULT_DB_FILE: &str = "scores.db";
/// Default of [`DbConfig::max_subscriptions`]: what one front-end pushes to
/// comfortably (the benchmark's 10,000), with room.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 20_000;
/// Default of [`DbConfig::max_subscriptions_per_client`]: a room full of
/// screens behind one address, but not a table full of one attacker's.
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CLIENT: usize = 100;

/// Everything `podium-db` needs to run.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// The SQLite file; created if missing. Default `scores.db`.
    pub db_file: PathBuf,
    /// The roster a new database starts with. Default (`None`): the old
    /// system's five teams and four events. An existing database keeps its
    /// own (and changes it through roster writes).
    pub roster: Option<Roster>,
    /// Required on every call, as the `X-Podium-Secret` header.
    pub cluster_secret: Secret,
    /// Limits of the server.
    pub server: ServerConfig,
    /// Timestamps of updates come from it.
    pub clock: ClusterClock,
    /// This process's vector clock; stored with every update.
    pub vclock: SharedClock,
    /// Most push subscriptions in all. Default [`DEFAULT_MAX_SUBSCRIPTIONS`].
    pub max_subscriptions: usize,
    /// Most push subscriptions of one subscriber address. Default
    /// [`DEFAULT_MAX_SUBSCRIPTIONS_PER_CLIENT`].
    pub max_subscriptions_per_client: usize,
    /// What is checked of an existing file before it is opened. Default
    /// [`StartupCheck::Full`].
    pub startup_check: StartupCheck,
}

/// A running db: state, writer and secret, shared by all handlers.
struct Db {
    state: Arc<State>,
    writer: mpsc::Sender<Job>,
    /// Reads of the update log, on threads of their own.
    readers: Readers,
    /// Whether the file is still the one opened; `None` for a store
    /// without one.
    guard: Option<Arc<FileGuard>>,
    secret: Secret,
    clock: ClusterClock,
    vclock: SharedClock,
    /// Triggered at shutdown; long polls then answer at once instead of
    /// holding the graceful shutdown for their whole wait.
    shutdown: Shutdown,
    /// The front-ends following the feed, and who of them pushes.
    members: Members,
    /// Most subscriptions in all, and per subscriber address.
    max_subscriptions: usize,
    max_subscriptions_per_client: usize,
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
        let new_roster = config.roster.clone().unwrap_or_else(Roster::default_roster);
        let store = SqliteStore::open(&config.db_file, &new_roster, config.startup_check)?;
        let snapshot = store.snapshot()?;
        if let Some(wanted) = &config.roster {
            let held = |names: &[String], name: &String| {
                names.iter().any(|n| n.eq_ignore_ascii_case(name))
            };
            let missing = wanted
                .teams
                .iter()
                .filter(|t| !held(&snapshot.roster.teams, t))
                .count()
                + wanted
                    .events
                    .iter()
                    .filter(|e| !held(&snapshot.roster.events, e))
                    .count();
            if missing > 0 {
                warn!(
                    missing,
                    "the database already has its roster: --roster only shapes a new one (add teams and events with the feeder)"
                );
            }
        }
        let recent = store.reader()?.changes_after(
            (snapshot.latest_version - RECENT_CHANGES as i64).max(0),
            RECENT_CHANGES,
        )?;
        let epoch = format!("{:016x}", rand::random::<u64>());
        info!(file = %config.db_file.display(), latest = snapshot.latest_version, %epoch, "database opened");
        let state = Arc::new(State::new(snapshot, recent, epoch));
        let readers = Readers::start(&store)?;
        let guard = store.file_guard();
        let last_timestamp = store.last_timestamp()?;
        let (writer, writer_thread) = writer::spawn(Box::new(store), state.clone(), last_timestamp);
        Ok(DbServer {
            db: Arc::new(Db {
                state,
                writer,
                readers,
                guard,
                secret: config.cluster_secret,
                clock: config.clock,
                vclock: config.vclock.clone(),
                shutdown,
                members: Members::new(),
                max_subscriptions: config.max_subscriptions,
                max_subscriptions_per_client: config.max_subscriptions_per_client,
            }),
            writer_thread,
            server: config.server,
        })
    }

    /// The method table, for callers that add their own (the election).
    pub fn methods(&self) -> Methods {
        methods::methods(self.db.clone())
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
        let tasks = Tasks::new(shutdown.clone());
        let members = db.members.clone();
        tasks.spawn_until_shutdown(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(members::SWEEP_MS));
            loop {
                ticker.tick().await;
                members.sweep();
            }
        });
        tasks.spawn_until_shutdown(sweeper::end_expired_subscriptions(db.clone()));
        if let Some(guard) = db.guard.clone() {
            // Between writes too, so health tells before a write fails.
            tasks.spawn_until_shutdown(async move {
                let mut ticker = tokio::time::interval(Duration::from_millis(FILE_CHECK_MS));
                while guard.check().is_ok() {
                    ticker.tick().await;
                }
            });
        }
        let envelope = Envelope::new(methods, Some(db.secret.clone()), Some(db.vclock.clone()));
        drop(db);
        let grace = server.shutdown_grace;
        let result = crate::rpc::serve(listener, envelope, server, shutdown.triggered()).await;
        // The sweepers hold the writer's channel too.
        tasks.stop(grace).await;
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
