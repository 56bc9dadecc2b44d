//! Rows of the update log: how a change is stored and read back, and the
//! two reads of the log (after a version; one key's history), shared by the
//! writer's connection and the readers'.

use rusqlite::{params, Connection, Row};

use crate::scoreboard::subscription::Subscription;
use crate::scoreboard::{Score, Tally};
use crate::store::{Change, Entry, StoreError};

pub(super) fn vclock_to_text(v: &[i64]) -> String {
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

pub(super) const CHANGE_COLUMNS: &str = "version, kind, name, value, ts, vclock, request_id";

/// Reads a row selected with [`CHANGE_COLUMNS`].
pub(super) fn change_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Change, StoreError>> {
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

pub(super) fn collect_changes(
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

/// Up to `limit` changes with versions above `version`, oldest first.
pub(super) fn changes_after(
    conn: &Connection,
    version: i64,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CHANGE_COLUMNS} FROM updates WHERE version > ?1 ORDER BY version LIMIT ?2"
    ))?;
    collect_changes(&mut stmt, params![version, limit_param(limit)])
}

/// The newest `limit` changes of `key` below version `before`, oldest first
/// (the index on `(key, version)` serves it).
pub(super) fn history(
    conn: &Connection,
    key: &str,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT * FROM (SELECT {CHANGE_COLUMNS} FROM updates WHERE key = ?1 AND version < ?2
         ORDER BY version DESC LIMIT ?3) ORDER BY version"
    ))?;
    collect_changes(
        &mut stmt,
        params![key, before.unwrap_or(i64::MAX), limit_param(limit)],
    )
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
