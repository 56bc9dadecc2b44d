//! One write, applied inside the writer's transaction: the rows it changes,
//! and what the update log records of it.

use rusqlite::{params, OptionalExtension as _, Transaction};

use crate::scoreboard::{Medal, Score, Tally};
use crate::store::{Entry, StoreError, WriteOp};

/// What the update log records of a write: its kind, the name it is about,
/// the value as text, and the entry the change feed carries.
pub struct Logged {
    pub kind: &'static str,
    pub name: String,
    pub value: String,
    pub entry: Entry,
}

/// Applies `op` as version `version` at cluster time `ts`.
///
/// # Errors
/// A name the roster lacks, a revoke of a medal the team does not have, a
/// name that is taken, or a storage failure.
pub fn apply(
    tx: &Transaction<'_>,
    op: &WriteOp,
    version: i64,
    ts: f64,
) -> Result<Logged, StoreError> {
    match op {
        WriteOp::IncrementMedal { team, medal } => {
            let column = column(*medal);
            let sql = format!(
                "UPDATE tallies SET {column} = {column} + 1, version = ?1, updated = ?2
                 WHERE team = ?3 RETURNING team, gold, silver, bronze"
            );
            let tally = update_tally(tx, &sql, params![version, ts, team], version, ts)?
                .ok_or_else(|| unknown("team", team))?;
            Ok(tally_logged(tally))
        }
        WriteOp::RevokeMedal { team, medal } => {
            let column = column(*medal);
            let sql = format!(
                "UPDATE tallies SET {column} = {column} - 1, version = ?1, updated = ?2
                 WHERE team = ?3 AND {column} > 0 RETURNING team, gold, silver, bronze"
            );
            match update_tally(tx, &sql, params![version, ts, team], version, ts)? {
                Some(tally) => Ok(tally_logged(tally)),
                None if team_exists(tx, team)? => Err(StoreError::Refused(format!(
                    "{team} has no {medal} medal to revoke"
                ))),
                None => Err(unknown("team", team)),
            }
        }
        WriteOp::SetMedals {
            team,
            gold,
            silver,
            bronze,
        } => {
            if [gold, silver, bronze].iter().any(|n| **n < 0) {
                return Err(StoreError::Refused(
                    "medal counts cannot be negative".into(),
                ));
            }
            let sql =
                "UPDATE tallies SET gold = ?1, silver = ?2, bronze = ?3, version = ?4, updated = ?5
                       WHERE team = ?6 RETURNING team, gold, silver, bronze";
            let tally = update_tally(
                tx,
                sql,
                params![gold, silver, bronze, version, ts, team],
                version,
                ts,
            )?
            .ok_or_else(|| unknown("team", team))?;
            Ok(tally_logged(tally))
        }
        WriteOp::SetScore { event, score } => {
            let event = tx
                .prepare_cached(
                    "UPDATE scores SET score = ?1, version = ?2, updated = ?3
                     WHERE event = ?4 RETURNING event",
                )?
                .query_row(params![score, version, ts, event], |r| {
                    r.get::<_, String>(0)
                })
                .optional()?
                .ok_or_else(|| unknown("event", event))?;
            Ok(Logged {
                kind: "score",
                name: event.clone(),
                value: score.clone(),
                entry: Entry::Score(Score {
                    event,
                    score: score.clone(),
                    version,
                    updated: ts,
                }),
            })
        }
        WriteOp::AddTeam { name } => {
            if team_exists(tx, name)? {
                return Err(StoreError::Refused(format!("team {name:?} exists")));
            }
            tx.prepare_cached("INSERT INTO teams(name) VALUES (?1)")?
                .execute([name])?;
            tx.prepare_cached("INSERT INTO tallies(team, version, updated) VALUES (?1, ?2, ?3)")?
                .execute(params![name, version, ts])?;
            Ok(roster_logged("team", name, Entry::TeamAdded(name.clone())))
        }
        WriteOp::AddEvent { name } => {
            let exists: bool = tx
                .prepare_cached("SELECT COUNT(*) > 0 FROM events WHERE name = ?1")?
                .query_row([name], |r| r.get(0))?;
            if exists {
                return Err(StoreError::Refused(format!("event {name:?} exists")));
            }
            tx.prepare_cached("INSERT INTO events(name) VALUES (?1)")?
                .execute([name])?;
            tx.prepare_cached("INSERT INTO scores(event, version, updated) VALUES (?1, ?2, ?3)")?
                .execute(params![name, version, ts])?;
            Ok(roster_logged(
                "event",
                name,
                Entry::EventAdded(name.clone()),
            ))
        }
    }
}

fn column(medal: Medal) -> &'static str {
    match medal {
        Medal::Gold => "gold",
        Medal::Silver => "silver",
        Medal::Bronze => "bronze",
    }
}

fn unknown(kind: &'static str, name: &str) -> StoreError {
    StoreError::Unknown {
        kind,
        name: name.to_owned(),
    }
}

fn team_exists(tx: &Transaction<'_>, team: &str) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached("SELECT COUNT(*) > 0 FROM teams WHERE name = ?1")?
        .query_row([team], |r| r.get(0))?)
}

/// Runs an `UPDATE tallies ... RETURNING team, gold, silver, bronze`.
fn update_tally(
    tx: &Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
    version: i64,
    ts: f64,
) -> Result<Option<Tally>, StoreError> {
    Ok(tx
        .prepare_cached(sql)?
        .query_row(params, |r| {
            Ok(Tally {
                team: r.get(0)?,
                gold: r.get(1)?,
                silver: r.get(2)?,
                bronze: r.get(3)?,
                version,
                updated: ts,
            })
        })
        .optional()?)
}

fn tally_logged(tally: Tally) -> Logged {
    Logged {
        kind: "tally",
        name: tally.team.clone(),
        value: format!("{},{},{}", tally.gold, tally.silver, tally.bronze),
        entry: Entry::Tally(tally),
    }
}

fn roster_logged(kind: &'static str, name: &str, entry: Entry) -> Logged {
    Logged {
        kind,
        name: name.to_owned(),
        value: String::new(),
        entry,
    }
}
