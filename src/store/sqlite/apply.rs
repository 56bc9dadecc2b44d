//! One write, applied inside the writer's transaction: the rows it changes,
//! and what the update log records of it.

use rusqlite::{params, OptionalExtension as _, Transaction};

use crate::scoreboard::subscription::Subscription;
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
        WriteOp::Subscribe {
            subscription,
            max_total,
            max_per_client,
        } => subscribe(tx, subscription, *max_total, *max_per_client, version),
        WriteOp::Unsubscribe { url, reason } => {
            let removed = tx
                .prepare_cached("DELETE FROM subscriptions WHERE url = ?1")?
                .execute([url])?;
            if removed == 0 {
                return Err(StoreError::Refused(format!("no subscription for {url}")));
            }
            Ok(Logged {
                kind: "unsubscribed",
                name: url.clone(),
                value: reason.clone(),
                entry: Entry::Unsubscribed {
                    url: url.clone(),
                    reason: reason.clone(),
                },
            })
        }
    }
}

/// Makes or renews a subscription, within the caps (a renewal is never
/// refused: it takes no new place).
fn subscribe(
    tx: &Transaction<'_>,
    subscription: &Subscription,
    max_total: usize,
    max_per_client: usize,
    version: i64,
) -> Result<Logged, StoreError> {
    let (total, of_client, exists): (i64, i64, bool) = tx
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(client = ?1), 0), COALESCE(SUM(url = ?2), 0) > 0
             FROM subscriptions",
        )?
        .query_row(params![subscription.client, subscription.url], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    let over = |n: i64, cap: usize| usize::try_from(n).map_or(true, |n| n >= cap);
    if !exists && over(total, max_total) {
        return Err(StoreError::Full(format!(
            "the cluster holds {max_total} subscriptions, its most"
        )));
    }
    if !exists && over(of_client, max_per_client) {
        return Err(StoreError::Full(format!(
            "{} holds {max_per_client} subscriptions, the most one address may",
            subscription.client
        )));
    }
    let value = subscription.to_json();
    tx.prepare_cached(
        "INSERT INTO subscriptions(url, client, value, version) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(url) DO UPDATE SET client = ?2, value = ?3, version = ?4",
    )?
    .execute(params![
        subscription.url,
        subscription.client,
        value,
        version
    ])?;
    Ok(Logged {
        kind: "subscribed",
        name: subscription.url.clone(),
        value,
        entry: Entry::Subscribed(subscription.clone()),
    })
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
