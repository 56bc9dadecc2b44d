//! The embedded SQLite store: WAL journal, `synchronous=FULL`, so a commit
//! is on disk when it returns. [`schema`] holds the tables and their
//! migrations, [`apply`] what each write does to them.

mod apply;
mod schema;

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension as _, Row};

use super::{Change, Committed, Entry, Snapshot, Store, StoreError, WriteRequest};
use crate::scoreboard::subscription::Subscription;
use crate::scoreboard::{Roster, Score, Tally};

/// A SQLite database file holding the roster, current values and update log.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    latest_version: i64,
}

impl SqliteStore {
    /// Opens the database at `path`, or creates it with `new_roster`.
    ///
    /// # Errors
    /// The file cannot be opened or is not a Podium database.
    pub fn open(path: &Path, new_roster: &Roster) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
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
        Ok(SqliteStore {
            conn,
            latest_version,
        })
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

fn vclock_to_text(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

fn vclock_from_text(s: &str) -> Result<Vec<i64>, StoreError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|n| {
            n.parse()
                .map_err(|_| StoreError::Corrupt(format!("vector clock {s:?}")))
        })
        .collect()
}

const CHANGE_COLUMNS: &str = "version, kind, name, value, ts, vclock, request_id";

/// Reads a row selected with [`CHANGE_COLUMNS`].
fn change_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Change, StoreError>> {
    let version: i64 = row.get(0)?;
    let kind: String = row.get(1)?;
    let name: String = row.get(2)?;
    let value: String = row.get(3)?;
    let timestamp: f64 = row.get(4)?;
    let vclock: String = row.get(5)?;
    let request_id: Option<String> = row.get(6)?;
    Ok((|| {
        let entry = match kind.as_str() {
            "tally" => {
                let counts: Vec<i64> = value
                    .split(',')
                    .map(|n| n.parse().map_err(|_| StoreError::Corrupt(value.clone())))
                    .collect::<Result<_, _>>()?;
                let [gold, silver, bronze] = counts[..] else {
                    return Err(StoreError::Corrupt(format!("tally value {value:?}")));
                };
                Entry::Tally(Tally {
                    team: name,
                    gold,
                    silver,
                    bronze,
                    version,
                    updated: timestamp,
                })
            }
            "score" => Entry::Score(Score {
                event: name,
                score: value,
                version,
                updated: timestamp,
            }),
            "team" => Entry::TeamAdded(name),
            "event" => Entry::EventAdded(name),
            "subscribed" => Entry::Subscribed(
                Subscription::from_json(&value)
                    .map_err(|e| StoreError::Corrupt(format!("subscription {value:?}: {e}")))?,
            ),
            "unsubscribed" => Entry::Unsubscribed {
                url: name,
                reason: value,
            },
            other => return Err(StoreError::Corrupt(format!("update of kind {other:?}"))),
        };
        Ok(Change {
            version,
            entry,
            timestamp,
            vclock: vclock_from_text(&vclock)?,
            request_id,
        })
    })())
}

fn collect_changes(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Change>, StoreError> {
    let rows = stmt.query_map(params, change_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
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

    fn changes_after(&self, version: i64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CHANGE_COLUMNS} FROM updates WHERE version > ?1 ORDER BY version LIMIT ?2"
        ))?;
        collect_changes(&mut stmt, params![version, limit as i64])
    }

    fn history(&self, key: &str, limit: usize) -> Result<Vec<Change>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT * FROM (SELECT {CHANGE_COLUMNS} FROM updates WHERE key = ?1
             ORDER BY version DESC LIMIT ?2) ORDER BY version"
        ))?;
        collect_changes(&mut stmt, params![key, limit as i64])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::Medal;
    use crate::store::WriteOp;

    fn write(op: WriteOp, id: Option<&str>) -> WriteRequest {
        WriteRequest {
            op,
            request_id: id.map(str::to_owned),
            timestamp: 1000.0,
            vclock: vec![1, 0, 2],
        }
    }

    fn gold(team: &str) -> WriteOp {
        WriteOp::IncrementMedal {
            team: team.into(),
            medal: Medal::Gold,
        }
    }

    #[test]
    fn writes_survive_reopen_and_request_ids_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let mut s = SqliteStore::open(&path, &Roster::default_roster()).unwrap();
            let snap = s.snapshot().unwrap();
            assert_eq!(snap.roster, Roster::default_roster());
            assert_eq!(snap.latest_version, 0);
            let out = s
                .commit(&[
                    write(gold("gaul"), Some("r1")),
                    write(gold("Gaul"), Some("r1")),
                    write(
                        WriteOp::SetScore {
                            event: "stone curling".into(),
                            score: "3-1".into(),
                        },
                        None,
                    ),
                ])
                .unwrap();
            assert_eq!(out.len(), 3);
            assert!(!out[0].duplicate && out[1].duplicate && !out[2].duplicate);
            assert_eq!(out[1].change.version, 1);
            assert_eq!(out[2].change.version, 2);
        }
        let s = SqliteStore::open(&path, &Roster::default_roster()).unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.latest_version, 2);
        let gaul = snap.tallies.iter().find(|t| t.team == "Gaul").unwrap();
        assert_eq!((gaul.gold, gaul.version), (1, 1));
        let changes = s.changes_after(0, 10).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].vclock, vec![1, 0, 2]);
        assert_eq!(s.changes_after(1, 10).unwrap()[0].version, 2);
        assert_eq!(s.history("tally:gaul", 10).unwrap().len(), 1);
    }

    #[test]
    fn unknown_names_fail_the_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("s.db"), &Roster::default_roster()).unwrap();
        let err = s
            .commit(&[write(gold("Gaul"), None), write(gold("Atlantis"), None)])
            .unwrap_err();
        assert!(matches!(err, StoreError::Unknown { .. }));
        assert_eq!(s.snapshot().unwrap().latest_version, 0);
        assert!(s.changes_after(0, 10).unwrap().is_empty());
        s.commit(&[write(gold("Gaul"), None)]).unwrap();
        assert_eq!(s.changes_after(0, 10).unwrap()[0].version, 1);
    }

    #[test]
    fn revokes_corrections_and_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("s.db"), &Roster::default_roster()).unwrap();
        let revoke = || WriteOp::RevokeMedal {
            team: "Gaul".into(),
            medal: Medal::Gold,
        };
        // Nothing to revoke yet: refused, and nothing is written.
        let err = s.commit(&[write(revoke(), None)]).unwrap_err();
        assert!(matches!(err, StoreError::Refused(_)), "{err}");
        s.commit(&[write(gold("Gaul"), None), write(gold("Gaul"), None)])
            .unwrap();
        let out = s.commit(&[write(revoke(), Some("r"))]).unwrap();
        assert!(matches!(&out[0].change.entry, Entry::Tally(t) if t.gold == 1));
        let set = WriteOp::SetMedals {
            team: "gaul".into(),
            gold: 0,
            silver: 2,
            bronze: 1,
        };
        let out = s.commit(&[write(set, None)]).unwrap();
        assert!(
            matches!(&out[0].change.entry, Entry::Tally(t) if (t.gold, t.silver, t.bronze) == (0, 2, 1))
        );
        let out = s
            .commit(&[
                write(
                    WriteOp::AddTeam {
                        name: "Britons".into(),
                    },
                    None,
                ),
                write(
                    WriteOp::AddEvent {
                        name: "Menhir Toss".into(),
                    },
                    None,
                ),
            ])
            .unwrap();
        assert_eq!(out[0].change.entry, Entry::TeamAdded("Britons".into()));
        assert_eq!(out[1].change.entry, Entry::EventAdded("Menhir Toss".into()));
        let clash = s
            .commit(&[write(
                WriteOp::AddTeam {
                    name: "BRITONS".into(),
                },
                None,
            )])
            .unwrap_err();
        assert!(matches!(clash, StoreError::Refused(_)), "{clash}");
        let snap = s.snapshot().unwrap();
        assert!(snap.roster.teams.contains(&"Britons".to_owned()));
        assert!(snap.roster.events.contains(&"Menhir Toss".to_owned()));
        let britons = snap.tallies.iter().find(|t| t.team == "Britons").unwrap();
        assert_eq!((britons.gold, britons.version), (0, out[0].change.version));
        // The update log reads every kind back.
        let kinds: Vec<&str> = s
            .changes_after(0, 100)
            .unwrap()
            .iter()
            .map(|c| c.entry.kind())
            .collect();
        assert_eq!(kinds, ["tally", "tally", "tally", "tally", "team", "event"]);
        assert_eq!(s.history("tally:gaul", 10).unwrap().len(), 4);
    }

    #[test]
    fn a_new_database_takes_the_roster_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let roster = Roster::from_toml("teams = [\"A\", \"B\"]\nevents = [\"E\"]").unwrap();
        let s = SqliteStore::open(&path, &roster).unwrap();
        assert_eq!(s.snapshot().unwrap().roster, roster);
        drop(s);
        // An existing database keeps its own.
        let again = SqliteStore::open(&path, &Roster::default_roster()).unwrap();
        assert_eq!(again.snapshot().unwrap().roster, roster);
    }

    #[test]
    fn a_schema_0_file_is_migrated_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode=WAL;
                 CREATE TABLE teams (name TEXT PRIMARY KEY COLLATE NOCASE);
                 CREATE TABLE events (name TEXT PRIMARY KEY COLLATE NOCASE);
                 CREATE TABLE tallies (team TEXT PRIMARY KEY COLLATE NOCASE REFERENCES teams(name),
                     gold INTEGER NOT NULL DEFAULT 0, silver INTEGER NOT NULL DEFAULT 0,
                     bronze INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 0,
                     updated REAL NOT NULL DEFAULT 0);
                 CREATE TABLE scores (event TEXT PRIMARY KEY COLLATE NOCASE REFERENCES events(name),
                     score TEXT NOT NULL DEFAULT '', version INTEGER NOT NULL DEFAULT 0,
                     updated REAL NOT NULL DEFAULT 0);
                 CREATE TABLE updates (version INTEGER PRIMARY KEY,
                     kind TEXT NOT NULL CHECK (kind IN ('tally', 'score')), name TEXT NOT NULL,
                     key TEXT NOT NULL, value TEXT NOT NULL, ts REAL NOT NULL,
                     vclock TEXT NOT NULL DEFAULT '', request_id TEXT UNIQUE);
                 CREATE INDEX updates_by_key ON updates(key, version);
                 INSERT INTO teams VALUES ('Gaul'); INSERT INTO tallies(team, gold, version) VALUES ('Gaul', 1, 1);
                 INSERT INTO events VALUES ('E'); INSERT INTO scores(event) VALUES ('E');
                 INSERT INTO updates VALUES (1, 'tally', 'Gaul', 'tally:gaul', '1,0,0', 10.0, '1', 'r1');",
            )
            .unwrap();
        }
        let mut s = SqliteStore::open(&path, &Roster::default_roster()).unwrap();
        assert_eq!(s.changes_after(0, 10).unwrap().len(), 1);
        // A team is a kind schema 0 refused.
        let out = s
            .commit(&[write(
                WriteOp::AddTeam {
                    name: "Rome".into(),
                },
                Some("r2"),
            )])
            .unwrap();
        assert_eq!(out[0].change.version, 2);
        // The old request id still makes a retry a duplicate.
        let again = s.commit(&[write(gold("Gaul"), Some("r1"))]).unwrap();
        assert!(again[0].duplicate);
        let version: i64 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, schema::SCHEMA_VERSION);
    }

    fn sub(url: &str, client: &str) -> Subscription {
        Subscription {
            url: url.into(),
            events: vec!["stone curling".into()],
            teams: vec![],
            expires: 2e9,
            client: client.into(),
            style: crate::scoreboard::subscription::Style::Old,
        }
    }

    fn subscribe(s: &Subscription) -> WriteOp {
        WriteOp::Subscribe {
            subscription: s.clone(),
            max_total: 3,
            max_per_client: 2,
        }
    }

    #[test]
    fn subscriptions_are_one_per_url_within_caps_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut s = SqliteStore::open(&path, &Roster::default_roster()).unwrap();
        let a1 = sub("http://10.0.0.1:1/", "10.0.0.1");
        let a2 = sub("http://10.0.0.1:2/", "10.0.0.1");
        s.commit(&[write(subscribe(&a1), None), write(subscribe(&a2), None)])
            .unwrap();
        // A renewal takes no new place, even at the cap.
        s.commit(&[write(subscribe(&a1), None)]).unwrap();
        let a3 = sub("http://10.0.0.1:3/", "10.0.0.1");
        let full = s.commit(&[write(subscribe(&a3), None)]).unwrap_err();
        assert!(matches!(full, StoreError::Full(_)), "{full}");
        s.commit(&[write(
            subscribe(&sub("http://10.0.0.2:1/", "10.0.0.2")),
            None,
        )])
        .unwrap();
        let all_full = s
            .commit(&[write(
                subscribe(&sub("http://10.0.0.3:1/", "10.0.0.3")),
                None,
            )])
            .unwrap_err();
        assert!(matches!(all_full, StoreError::Full(_)), "{all_full}");
        let gone = WriteOp::Unsubscribe {
            url: a2.url.clone(),
            reason: "unsubscribed".into(),
        };
        s.commit(&[write(gone.clone(), None)]).unwrap();
        assert!(matches!(
            s.commit(&[write(gone, None)]),
            Err(StoreError::Refused(_))
        ));
        drop(s);
        let s = SqliteStore::open(&path, &Roster::default_roster()).unwrap();
        let kept: Vec<String> = s
            .snapshot()
            .unwrap()
            .subscriptions
            .into_iter()
            .map(|(s, _)| s.url)
            .collect();
        assert_eq!(kept, ["http://10.0.0.1:1/", "http://10.0.0.2:1/"]);
        let kinds: Vec<&str> = s
            .changes_after(0, 100)
            .unwrap()
            .iter()
            .map(|c| c.entry.kind())
            .collect();
        assert_eq!(
            kinds,
            [
                "subscribed",
                "subscribed",
                "subscribed",
                "subscribed",
                "unsubscribed"
            ]
        );
    }
}
