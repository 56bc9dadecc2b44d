//! The database's tables and how a file written by an older Podium is
//! brought up to date. The schema's version is SQLite's `user_version`;
//! each step up is one transaction, so a file is never half migrated.

use rusqlite::Connection;

use crate::store::StoreError;

/// The schema this build writes.
///
/// - 0: the first schema (its update log took tallies and scores only);
/// - 1: the update log takes every kind of change (roster changes too);
/// - 2: push subscriptions are kept (cluster state, in the log too).
pub const SCHEMA_VERSION: i64 = 2;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS teams (name TEXT PRIMARY KEY COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS events (name TEXT PRIMARY KEY COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS tallies (
    team TEXT PRIMARY KEY COLLATE NOCASE REFERENCES teams(name),
    gold INTEGER NOT NULL DEFAULT 0,
    silver INTEGER NOT NULL DEFAULT 0,
    bronze INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS scores (
    event TEXT PRIMARY KEY COLLATE NOCASE REFERENCES events(name),
    score TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL DEFAULT 0
);
-- Push subscriptions, one per callback URL; `value` is the subscription as
-- the update log holds it (JSON), `client` is copied out for the caps.
CREATE TABLE IF NOT EXISTS subscriptions (
    url TEXT PRIMARY KEY,
    client TEXT NOT NULL,
    value TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_by_client ON subscriptions(client);
";

/// The update log: one row per acknowledged write, in version order.
const UPDATES: &str = "
CREATE TABLE updates (
    version INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    ts REAL NOT NULL,
    vclock TEXT NOT NULL DEFAULT '',
    request_id TEXT UNIQUE
);
CREATE INDEX updates_by_key ON updates(key, version);
";

/// Creates what is missing and migrates what is old.
///
/// # Errors
/// A file written by a newer Podium, or a storage failure.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema {version}, written by a newer podium-db (this one writes {SCHEMA_VERSION})"
        )));
    }
    let tx = conn.transaction()?;
    tx.execute_batch(TABLES)?;
    let has_updates: bool = tx.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'updates'",
        [],
        |r| r.get(0),
    )?;
    if !has_updates {
        tx.execute_batch(UPDATES)?;
    } else if version < 1 {
        // Schema 0 checked `kind IN ('tally', 'score')`; SQLite cannot drop
        // a check, so the log is copied into a table without it.
        tx.execute_batch(
            "ALTER TABLE updates RENAME TO updates_v0; DROP INDEX IF EXISTS updates_by_key;",
        )?;
        tx.execute_batch(UPDATES)?;
        tx.execute_batch(
            "INSERT INTO updates SELECT version, kind, name, key, value, ts, vclock, request_id FROM updates_v0;
             DROP TABLE updates_v0;",
        )?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    tx.commit()?;
    Ok(())
}
