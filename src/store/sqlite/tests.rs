//! The SQLite store on real files in a temporary directory.

use super::*;
use crate::scoreboard::Medal;
use crate::store::WriteOp;
use crate::store::{Entry, LogReader};

/// A store on a new file `s.db` in `dir`, with the default roster.
fn open_new(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(
        &dir.path().join("s.db"),
        &Roster::default_roster(),
        StartupCheck::Full,
    )
    .unwrap()
}

/// The log's reads on the store's own connection, for these tests.
impl SqliteStore {
    fn changes_after(&self, version: i64, limit: usize) -> Result<Vec<Change>, StoreError> {
        rows::changes_after(&self.conn, version, limit)
    }

    fn history(&self, key: &str, limit: usize) -> Result<Vec<Change>, StoreError> {
        rows::history(&self.conn, key, None, limit)
    }
}

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
        let mut s =
            SqliteStore::open(&path, &Roster::default_roster(), StartupCheck::Full).unwrap();
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
    let s = SqliteStore::open(&path, &Roster::default_roster(), StartupCheck::Full).unwrap();
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
    let mut s = open_new(&dir);
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
    let mut s = open_new(&dir);
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
    let s = SqliteStore::open(&path, &roster, StartupCheck::Full).unwrap();
    assert_eq!(s.snapshot().unwrap().roster, roster);
    drop(s);
    // An existing database keeps its own.
    let again = SqliteStore::open(&path, &Roster::default_roster(), StartupCheck::Full).unwrap();
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
    let mut s = SqliteStore::open(&path, &Roster::default_roster(), StartupCheck::Full).unwrap();
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
    let mut s = SqliteStore::open(&path, &Roster::default_roster(), StartupCheck::Full).unwrap();
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
    let s = SqliteStore::open(&path, &Roster::default_roster(), StartupCheck::Full).unwrap();
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

#[test]
fn the_newest_timestamp_is_the_floor_even_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_new(&dir);
    assert_eq!(s.last_timestamp().unwrap(), 0.0);
    let at = |t: f64| WriteRequest {
        timestamp: t,
        ..write(gold("Gaul"), None)
    };
    // A log written before timestamps had a floor may go down.
    s.commit(&[at(50.0), at(70.0), at(60.0)]).unwrap();
    assert_eq!(s.last_timestamp().unwrap(), 70.0);
}

/// Writes 200 updates to a new file at `path` and closes it cleanly.
fn filled(path: &Path) {
    let mut s = SqliteStore::open(path, &Roster::default_roster(), StartupCheck::Full).unwrap();
    let batch: Vec<WriteRequest> = (0..200).map(|_| write(gold("Rome"), None)).collect();
    s.commit(&batch).unwrap();
}

#[test]
fn a_damaged_index_is_refused_by_either_check_unless_told_not_to() {
    use std::io::{Seek as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    filled(&path);
    let conn = Connection::open(&path).unwrap();
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let page: u64 = conn
        .query_row(
            "SELECT pageno FROM dbstat WHERE name = 'updates_by_key' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(std::io::SeekFrom::Start((page - 1) * page_size))
        .unwrap();
    f.write_all(&vec![0xA5; page_size as usize]).unwrap();
    drop(f);
    for check in [StartupCheck::Full, StartupCheck::Quick] {
        match SqliteStore::open(&path, &Roster::default_roster(), check) {
            Err(e @ StoreError::Damaged { .. }) => {
                let text = e.to_string();
                assert!(text.contains("check") && !text.contains('\n'), "{text}");
            }
            other => panic!("{check:?}: {other:?}"),
        }
    }
    assert!(SqliteStore::open(&path, &Roster::default_roster(), StartupCheck::Off).is_ok());
}

#[test]
fn a_reader_sees_commits_and_pages_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    filled(&path);
    let mut s = SqliteStore::open(&path, &Roster::default_roster(), StartupCheck::Full).unwrap();
    let mut r = s.open_reader().unwrap();
    assert_eq!(r.changes_after(0, 1000).unwrap().len(), 200);
    s.commit(&[write(gold("Rome"), None)]).unwrap();
    assert_eq!(r.changes_after(200, 10).unwrap()[0].version, 201);
    let page = r.history("tally:rome", Some(101), 30).unwrap();
    let versions: Vec<i64> = page.iter().map(|c| c.version).collect();
    assert_eq!(versions, (71..=100).collect::<Vec<_>>());
    // The reader never writes.
    assert!(r.conn.execute("DELETE FROM updates", []).is_err());
}
