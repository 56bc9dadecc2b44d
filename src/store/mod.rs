//! Durable storage behind a trait, so a server database can replace the
//! embedded SQLite one. The db server owns one [`Store`] on its writer
//! thread and reads the update log through [`LogReader`]s of their own,
//! on other threads, so that a long read never holds up a write.
//! [`FileGuard`] notices a store's file deleted or replaced under it.

mod file_guard;
mod sqlite;

use std::sync::Arc;

pub use file_guard::FileGuard;
pub use sqlite::SqliteStore;

use crate::scoreboard::subscription::Subscription;
use crate::scoreboard::{Medal, Roster, Score, Tally};

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("unknown {kind} {name:?}")]
    Unknown { kind: &'static str, name: String },
    /// A write the data does not allow (revoking a medal that is not
    /// there, adding a name that is taken): nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// A cap was reached (subscriptions in all, or of one address).
    #[error("{0}")]
    Full(String),
    /// The start-up check found the file damaged; the store did not open.
    #[error(
        "the {check} found the database damaged: {problems}; restore the file from a backup, or \
         move it away to start an empty database"
    )]
    Damaged {
        /// The check that was run (`PRAGMA integrity_check`, say).
        check: &'static str,
        /// What it reported, on one line.
        problems: String,
    },
    /// The file is no longer the one opened (deleted, or replaced): what
    /// was written since would be lost at the next start, so nothing is.
    #[error("{0}")]
    Detached(String),
}

/// What the store checks of its file before it opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StartupCheck {
    /// SQLite's `integrity_check`: every page, and every index against its
    /// table (about 0.8 s for a million updates, 200 MB, on a two-core
    /// machine). The default.
    #[default]
    Full,
    /// SQLite's `quick_check`: every page's structure, not whether indexes
    /// match their tables (about a third of the time).
    Quick,
    /// No check: start at once, and find damage when a write reaches it.
    Off,
}

/// A write, with names already resolved to the roster's display names.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    IncrementMedal {
        team: String,
        medal: Medal,
    },
    /// Takes one medal back (a disqualification); never below zero.
    RevokeMedal {
        team: String,
        medal: Medal,
    },
    /// Sets a team's counts outright (a correction).
    SetMedals {
        team: String,
        gold: i64,
        silver: i64,
        bronze: i64,
    },
    SetScore {
        event: String,
        score: String,
    },
    /// A new team, with a tally of zero; the name was checked first.
    AddTeam {
        name: String,
    },
    /// A new event, with no score yet; the name was checked first.
    AddEvent {
        name: String,
    },
    /// Makes or renews the subscription of its URL. Refused beyond
    /// `max_total` subscriptions, or `max_per_client` of its client's.
    Subscribe {
        subscription: Subscription,
        max_total: usize,
        max_per_client: usize,
    },
    /// Ends the subscription of `url`, for `reason`; refused when there is
    /// none.
    Unsubscribe {
        url: String,
        reason: String,
    },
}

/// A write as the store receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRequest {
    pub op: WriteOp,
    /// Makes a retried write idempotent: a request id seen before returns the
    /// first outcome and changes nothing.
    pub request_id: Option<String>,
    /// Cluster time of the write, seconds since the epoch.
    pub timestamp: f64,
    /// The writer's vector clock, stored with the update.
    pub vclock: Vec<i64>,
}

/// The new state of a key after a write.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Tally(Tally),
    Score(Score),
    /// A team joined the roster (display name).
    TeamAdded(String),
    /// An event joined the roster (display name).
    EventAdded(String),
    /// A push subscription was made or renewed.
    Subscribed(Subscription),
    /// A push subscription ended (asked, expired, or its tablet unreachable).
    Unsubscribed {
        url: String,
        reason: String,
    },
}

impl Entry {
    /// The key the change is about, as the cache and the update log name it.
    pub fn key(&self) -> String {
        match self {
            Entry::Tally(t) => crate::scoreboard::tally_key(&t.team),
            Entry::Score(s) => crate::scoreboard::score_key(&s.event),
            Entry::TeamAdded(name) => format!("team:{}", name.to_lowercase()),
            Entry::EventAdded(name) => format!("event:{}", name.to_lowercase()),
            Entry::Subscribed(s) => format!("sub:{}", s.url),
            Entry::Unsubscribed { url, .. } => format!("sub:{url}"),
        }
    }

    /// The update log's name for the kind of change.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Tally(_) => "tally",
            Entry::Score(_) => "score",
            Entry::TeamAdded(_) => "team",
            Entry::EventAdded(_) => "event",
            Entry::Subscribed(_) => "subscribed",
            Entry::Unsubscribed { .. } => "unsubscribed",
        }
    }
}

/// One row of the update log.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub version: i64,
    pub entry: Entry,
    pub timestamp: f64,
    pub vclock: Vec<i64>,
    pub request_id: Option<String>,
}

/// The outcome of one write of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub change: Change,
    /// True when the request id had been applied before; nothing changed now.
    pub duplicate: bool,
}

/// Everything the db serves reads from, loaded once at start.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub roster: Roster,
    pub tallies: Vec<Tally>,
    pub scores: Vec<Score>,
    /// Every push subscription, whatever its lease (expired ones are ended
    /// by the db's sweeper, through the log), with the version of the
    /// change that made or last renewed it.
    pub subscriptions: Vec<(Subscription, i64)>,
    pub latest_version: i64,
}

/// Durable storage of the roster, the current values and the update log.
pub trait Store: Send {
    /// The whole current state.
    ///
    /// # Errors
    /// Storage failures.
    fn snapshot(&self) -> Result<Snapshot, StoreError>;

    /// Applies `batch` in order in one transaction, durable when this returns.
    /// All or nothing: an error means none of the batch was applied.
    ///
    /// # Errors
    /// Storage failures, and names missing from the roster.
    fn commit(&mut self, batch: &[WriteRequest]) -> Result<Vec<Committed>, StoreError>;

    /// The newest timestamp in the update log (the largest, whatever its
    /// version), 0 when the log is empty: the floor of the next one.
    ///
    /// # Errors
    /// Storage failures.
    fn last_timestamp(&self) -> Result<f64, StoreError>;

    /// A reader of the update log with a connection of its own, for
    /// another thread.
    ///
    /// # Errors
    /// Storage failures.
    fn reader(&self) -> Result<Box<dyn LogReader>, StoreError>;

    /// The guard of the store's file, when it has one.
    fn file_guard(&self) -> Option<Arc<FileGuard>>;
}

/// Reads of the update log. A reader sees every commit made before the
/// read began.
pub trait LogReader: Send {
    /// Up to `limit` changes with versions above `version`, oldest first.
    ///
    /// # Errors
    /// Storage failures.
    fn changes_after(&mut self, version: i64, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// The newest `limit` changes of one key with versions below `before`
    /// (all of them when `None`), oldest first.
    ///
    /// # Errors
    /// Storage failures.
    fn history(
        &mut self,
        key: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError>;
}
