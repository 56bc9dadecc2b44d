//! The embedded SQLite store: WAL journal, `synchronous=FULL`, so a commit
//! is on disk when it returns. [`schema`] holds the tables and their
//! migrations, [`apply`] what each write does to them, [`rows`] how the
//! update log is read, [`reader`] the connections that read it off the
//! writer's thread, [`check`] the start-up check of the file.

mod apply;
mod check;
mod reader;
mod rows;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension as _};

use super::{
    Change, Committed, FileGuard, LogReader, Snapshot, StartupCheck, Store, StoreError,
    WriteRequest,
};
use crate::scoreboard::subscription::Subscription;
use crate::scoreboard::{Roster, Score, Tally};
use rows::{change_from_row, vclock_to_text, CHANGE_COLUMNS};

pub use reader::SqliteReader;

/// How long a connection waits for another's lock before it gives up. The
/// writer is alone in writing; readers never block it in WAL mode, so this
/// only covers another process holding the file (a backup, say).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A SQLite database file holding the roster, current values and update log.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    latest_version: i64,
    guard: Arc<FileGuard>,
}

impl SqliteStore {
    /// Opens the database at `path`, or creates it with `new_roster`,
    /// after checking an existing file with `startup_check`.
    ///
    /// # Errors
    /// The file cannot be opened, fails the check ([`StoreError::Damaged`])
    /// or is not a Podium database.
    pub fn open(
        path: &Path,
        new_roster: &Roster,
        startup_check: StartupCheck,
    ) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Before anything is written to it.
        check::run(&conn, startup_check)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "journal_mode is {mode}, WAL required"
            )));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
        schema::migrate(&mut conn)?;
        let empty: i64 = conn.query_row("SELECT COUNT(*) FROM teams", [], |r| r.get(0))?;
        if empty == 0 {
            seed(&conn, new_roster)?;
        }
        let latest_version =
            conn.query_row("SELECT COALESCE(MAX(version), 0) FROM updates", [], |r| {
                r.get(0)
            })?;
        // After the writes above, so that the write-ahead log exists.
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let guard = FileGuard::new(path, Path::new(&wal))
            .map_err(|e| StoreError::Corrupt(format!("cannot watch the file: {e}")))?;
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            latest_version,
            guard: Arc::new(guard),
        })
    }

    /// A reader of this store's log (what [`Store::reader`] boxes).
    ///
    /// # Errors
    /// The file cannot be opened again.
    pub fn open_reader(&self) -> Result<SqliteReader, StoreError> {
        SqliteReader::open(&self.path)
    }
}

/// Writes a roster with zero tallies and empty scores.
fn seed(conn: &Connection, roster: &Roster) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    for team in &roster.teams {
        tx.execute("INSERT INTO teams(name) VALUES (?1)", [team])?;
        tx.execute("INSERT INTO tallies(team) VALUES (?1)", [team])?;
    }
    for event in &roster.events {
        tx.execute("INSERT INTO events(name) VALUES (?1)", [event])?;
        tx.execute("INSERT INTO scores(event) VALUES (?1)", [event])?;
    }
    tx.commit()?;
    Ok(())
}

impl Store for SqliteStore {
    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let names = |sql: &str| -> Result<Vec<String>, StoreError> {
            let mut stmt = self.conn.prepare(sql)?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        let roster = Roster {
            teams: names("SELECT name FROM teams ORDER BY rowid")?,
            events: names("SELECT name FROM events ORDER BY rowid")?,
        };
        let mut stmt = self.conn.prepare(
            "SELECT team, gold, silver, bronze, version, updated FROM tallies ORDER BY rowid",
        )?;
        let tallies = stmt
            .query_map([], |r| {
                Ok(Tally {
                    team: r.get(0)?,
                    gold: r.get(1)?,
                    silver: r.get(2)?,
                    bronze: r.get(3)?,
                    version: r.get(4)?,
                    updated: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = self
            .conn
            .prepare("SELECT event, score, version, updated FROM scores ORDER BY rowid")?;
        let scores = stmt
            .query_map([], |r| {
                Ok(Score {
                    event: r.get(0)?,
                    score: r.get(1)?,
                    version: r.get(2)?,
                    updated: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = self
            .conn
            .prepare("SELECT value, version FROM subscriptions ORDER BY version")?;
        let subscriptions = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .map(|row| {
                let (text, version) = row?;
                Subscription::from_json(&text)
                    .map(|s| (s, version))
                    .map_err(|e| StoreError::Corrupt(format!("subscription {text:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Snapshot {
            roster,
            tallies,
            scores,
            subscriptions,
            latest_version: self.latest_version,
        })
    }

    fn commit(&mut self, batch: &[WriteRequest]) -> Result<Vec<Committed>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut next = self.latest_version;
        let mut out = Vec::with_capacity(batch.len());
        for w in batch {
            if let Some(id) = &w.request_id {
                let earlier = tx
                    .prepare_cached(&format!(
                        "SELECT {CHANGE_COLUMNS} FROM updates WHERE request_id = ?1"
                    ))?
                    .query_row([id], change_from_row)
                    .optional()?;
                if let Some(change) = earlier {
                    out.push(Committed {
                        change: change?,
                        duplicate: true,
                    });
                    continue;
                }
            }
            next += 1;
            let apply::Logged {
                kind,
                name,
                value,
                entry,
            } = apply::apply(&tx, &w.op, next, w.timestamp)?;
            tx.prepare_cached(
                "INSERT INTO updates(version, kind, name, key, value, ts, vclock, request_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                next,
                kind,
                name,
                entry.key(),
                value,
                w.timestamp,
                vclock_to_text(&w.vclock),
                w.request_id
            ])?;
            out.push(Committed {
                change: Change {
                    version: next,
                    entry,
                    timestamp: w.timestamp,
                    vclock: w.vclock.clone(),
                    request_id: w.request_id.clone(),
                },
                duplicate: false,
            });
        }
        tx.commit()?;
        self.latest_version = next;
        Ok(out)
    }

    fn last_timestamp(&self) -> Result<f64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(ts), 0) FROM updates", [], |r| r.get(0))?)
    }

    fn reader(&self) -> Result<Box<dyn LogReader>, StoreError> {
        Ok(Box::new(self.open_reader()?))
    }

    fn file_guard(&self) -> Option<Arc<FileGuard>> {
        Some(self.guard.clone())
    }
}

#[cfg(test)]
mod tests;
