//! The db's file under attack (issue 11, point 9), on the real `podium-db`:
//! - a file with a corrupt index page (garbage written over a page of the
//!   update log's index) is refused at start, with one line that says so,
//!   instead of starting "healthy" and failing every write;
//! - the file deleted, or replaced (another file renamed over it), under a
//!   running db: writes are refused as unavailable, saying why, health says
//!   not ok with the reason, an error is logged, and reads go on.
//!
//! Every wait polls with a deadline.

mod support;

use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use podium::db::wire::WriteReply;
use podium::rpc::{ClientError, Value};
use support::{Process, Rpc, Stream};

const SECRET: &str = "db-file-test-secret-31f0";

/// How long a db gets to start, stop, or answer: generous, for debug builds
/// on a loaded two-core machine.
const DEADLINE: Duration = Duration::from_secs(30);

fn db_command(file: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podium-db"));
    cmd.args(["--port", "0", "--db-file"])
        .arg(file)
        .env("PODIUM_CLUSTER_SECRET", SECRET);
    cmd
}

fn start_db(file: &Path) -> Process {
    Process::start(db_command(file))
}

fn member(db: &Process) -> Rpc {
    Rpc::with_config(&db.url(), DEADLINE, Some(SECRET))
}

fn award(db: &Rpc, team: &str) -> Result<WriteReply, ClientError> {
    db.call("db.increment_medal", &[team.into(), "gold".into()])
        .map(|v| WriteReply::from_value(&v).expect("a write reply"))
}

fn stop(mut db: Process) {
    assert!(
        db.terminate(DEADLINE).is_some_and(|s| s.success()),
        "the db did not stop cleanly:\n{}",
        db.output(Stream::Stderr)
    );
}

/// A page of the update log's index, by `dbstat`: a leaf if it has one.
fn index_page(file: &Path) -> (u64, u64) {
    let conn = rusqlite::Connection::open(file).expect("the db file opens");
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("a page size");
    let page: u64 = conn
        .query_row(
            "SELECT pageno FROM dbstat WHERE name = 'updates_by_key' \
             ORDER BY pagetype = 'leaf' DESC, pageno LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("the index has a page");
    (page, page_size)
}

/// Property: a db file with garbage over a page of an index is refused at
/// start, with one line naming the file and the failed check, and the
/// process exits non-zero without ever listening.
#[test]
fn a_corrupt_index_page_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("scores.db");
    let db = start_db(&file);
    let rpc = member(&db);
    for i in 0..300 {
        award(&rpc, ["Gaul", "Rome", "Carthage"][i % 3]).expect("a write");
    }
    stop(db);

    let (page, page_size) = index_page(&file);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("the db file");
    f.seek(SeekFrom::Start((page - 1) * page_size))
        .expect("seek to the page");
    let garbage: Vec<u8> = (0..page_size).map(|i| (i * 7 + 13) as u8).collect();
    f.write_all(&garbage).expect("garbage written");
    f.sync_all().expect("synced");
    drop(f);

    let mut again = Process::start_client(db_command(&file), "podium-db");
    let status = again.wait_exit(DEADLINE);
    let stderr = again.output(Stream::Stderr);
    let stdout = again.output(Stream::Stdout);
    assert!(
        status.is_some(),
        "the db started on a file with a corrupt index page (page {page}):\n{stdout}{stderr}"
    );
    assert!(!status.expect("exited").success(), "{stderr}");
    assert!(!stdout.contains("LISTENING"), "it listened: {stdout}");
    let fatal: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("podium-db: error:"))
        .collect();
    assert_eq!(fatal.len(), 1, "one fatal line:\n{stderr}");
    assert!(
        fatal[0].contains("scores.db") && fatal[0].contains("integrity check"),
        "the line names the file and the check: {}",
        fatal[0]
    );
    eprintln!("{}", fatal[0]);
}

/// `podium.health` says the db takes writes.
fn assert_healthy(rpc: &Rpc) {
    let health = rpc.ok("podium.health", &[]);
    let ok = health.as_struct().and_then(|h| h.get("ok"));
    assert_eq!(ok, Some(&Value::Bool(true)), "{health:?}");
}

/// What a running db says after its file was taken away: writes refused as
/// unavailable with `why` in the message, health not ok with the reason, an
/// error logged; reads (from memory) still answered.
fn assert_detached(db: &Process, rpc: &Rpc, why: &str) {
    match award(rpc, "Rome") {
        Err(ClientError::Fault(f)) => assert!(
            f.code == 5 && f.message.contains(why),
            "want fault 5 saying {why:?}, got {f:?}"
        ),
        other => panic!(
            "a write after the file was {why} was acknowledged: {other:?}\n{}",
            db.output(Stream::Stderr)
        ),
    }
    let health = rpc.ok("podium.health", &[]);
    let h = health.as_struct().expect("a struct");
    assert_eq!(h.get("ok"), Some(&Value::Bool(false)), "{health:?}");
    assert!(
        h.get("reason")
            .and_then(Value::as_str)
            .is_some_and(|r| r.contains(why)),
        "{health:?}"
    );
    assert!(
        db.wait_for_line(Stream::Stderr, DEADLINE, |l| l.contains("ERROR")
            && l.contains(why))
            .is_some(),
        "no error logged:\n{}",
        db.output(Stream::Stderr)
    );
    let tally = rpc.ok("db.tally", &["Gaul".into()]);
    assert!(tally.as_struct().is_some(), "{tally:?}");
}

/// Property: a db whose file is deleted while it runs stops taking writes
/// (none is acknowledged that a restart would lose), says why, and keeps
/// answering reads.
#[test]
fn a_deleted_db_file_stops_writes() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("scores.db");
    let db = start_db(&file);
    let rpc = member(&db);
    award(&rpc, "Gaul").expect("a write");
    assert_healthy(&rpc);
    std::fs::remove_file(&file).expect("the file deleted");
    assert_detached(&db, &rpc, "deleted");
}

/// Property: the same when another file is renamed over the db's.
#[test]
fn a_replaced_db_file_stops_writes() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("scores.db");
    let other = dir.path().join("other.db");
    stop(start_db(&other));
    let db = start_db(&file);
    let rpc = member(&db);
    award(&rpc, "Gaul").expect("a write");
    assert_healthy(&rpc);
    std::fs::rename(&other, &file).expect("the other file renamed over it");
    assert_detached(&db, &rpc, "replaced");
}
