//! The start-up check of a database file: SQLite's own integrity check,
//! run before anything is written, so that a damaged file is refused with
//! a clear message instead of opening "healthy" and failing every write
//! that reaches the damage.

use rusqlite::Connection;

use crate::store::{StartupCheck, StoreError};

/// Problems the check reports at most (it stops looking after them).
const MAX_PROBLEMS: usize = 5;

/// Runs `check` on `conn`'s file.
///
/// # Errors
/// [`StoreError::Damaged`] with what the check found (or the error that
/// stopped it: a page too damaged to read is a finding too).
pub(super) fn run(conn: &Connection, check: StartupCheck) -> Result<(), StoreError> {
    let (pragma, name) = match check {
        StartupCheck::Full => (
            "integrity_check",
            "integrity check (PRAGMA integrity_check)",
        ),
        StartupCheck::Quick => ("quick_check", "quick integrity check (PRAGMA quick_check)"),
        StartupCheck::Off => return Ok(()),
    };
    let damaged = |problems: String| StoreError::Damaged {
        check: name,
        problems,
    };
    let mut stmt = conn
        .prepare(&format!("PRAGMA {pragma}({MAX_PROBLEMS})"))
        .map_err(|e| damaged(e.to_string()))?;
    let found: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| damaged(e.to_string()))?;
    match found.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        [] => Err(damaged("no answer".into())),
        problems => Err(damaged(problems.join("; ").replace('\n', " "))),
    }
}
