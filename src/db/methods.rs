//! The db's method table: every method is internal (the cluster secret is
//! required), and each is a read of [`State`](super::state::State), a write
//! through the writer thread, or the change feed.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::feed::changes;
use super::wire::{self, WriteReply, MAX_WAIT_MS};
use super::writer::Job;
use super::{unavailable, Db};
use crate::api::{faults, HEALTH_METHOD};
use crate::cluster::{add_internal, MAX_REQUEST_ID_BYTES};
use crate::election::config::MAX_UID;
use crate::push::callback_url;
use crate::push::report::MemberReport;
use crate::rpc::{Fault, Methods, Params, Value};
use crate::scoreboard::subscription::Subscription;
use crate::scoreboard::{check_score, clip, Medal, Score, Tally};
use crate::store::{Change, FileGuard, StoreError, WriteOp, WriteRequest};

/// Longest key history one call returns.
const MAX_HISTORY: i64 = 1000;

pub(super) fn methods(db: Arc<Db>) -> Methods {
    let mut m = Methods::new();
    let health_db = db.clone();
    add_internal(
        &mut m,
        &db,
        wire::ROSTER,
        &["struct"],
        "The roster, this db run's epoch and its latest version.",
        |db, p, _| async move {
            p.expect_count(0, 0)?;
            let mut v = db.state.read().roster.to_value();
            if let Value::Struct(s) = &mut v {
                s.insert("epoch".into(), Value::from(db.state.epoch.as_str()));
                s.insert("latest".into(), Value::Int(db.state.read().latest));
            }
            Ok(v)
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::TALLY,
        &["struct", "string"],
        "One team's tally.",
        |db, p, _| async move {
            p.expect_count(1, 1)?;
            let team = db
                .state
                .read()
                .roster
                .team(p.arg(0, "team")?)?
                .to_lowercase();
            db.state
                .read()
                .tallies
                .get(&team)
                .map(Tally::to_value)
                .ok_or_else(|| Fault::internal("team without a tally row"))
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::TALLIES,
        &["array"],
        "Every team's tally.",
        |db, p, _| async move {
            p.expect_count(0, 0)?;
            let inner = db.state.read();
            Ok(Value::Array(
                inner
                    .roster
                    .teams
                    .iter()
                    .filter_map(|t| inner.tallies.get(&t.to_lowercase()))
                    .map(Tally::to_value)
                    .collect(),
            ))
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::SCORE,
        &["struct", "string"],
        "One event's score.",
        |db, p, _| async move {
            p.expect_count(1, 1)?;
            let event = db
                .state
                .read()
                .roster
                .event(p.arg(0, "event")?)?
                .to_lowercase();
            db.state
                .read()
                .scores
                .get(&event)
                .map(Score::to_value)
                .ok_or_else(|| Fault::internal("event without a score row"))
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::INCREMENT_MEDAL,
        &["struct", "string", "string", "string"],
        "Adds one medal to a team: (team, medal[, request_id]).",
        |db, p, _| async move {
            p.expect_count(2, 3)?;
            let team = db.state.read().roster.team(p.arg(0, "team")?)?.to_owned();
            let medal = Medal::parse(p.arg(1, "medal")?)?;
            write(
                &db,
                request_id(&p, 2)?,
                WriteOp::IncrementMedal { team, medal },
            )
            .await
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::REVOKE_MEDAL,
        &["struct", "string", "string", "string"],
        "Takes one medal back from a team: (team, medal[, request_id]).",
        |db, p, _| async move {
            p.expect_count(2, 3)?;
            let team = db.state.read().roster.team(p.arg(0, "team")?)?.to_owned();
            let medal = Medal::parse(p.arg(1, "medal")?)?;
            write(
                &db,
                request_id(&p, 2)?,
                WriteOp::RevokeMedal { team, medal },
            )
            .await
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::SET_MEDALS,
        &["struct", "string", "int", "int", "int", "string"],
        "Sets a team's medal counts: (team, gold, silver, bronze[, request_id]).",
        |db, p, _| async move {
            p.expect_count(4, 5)?;
            let team = db.state.read().roster.team(p.arg(0, "team")?)?.to_owned();
            let count = |i: usize, name: &str| -> Result<i64, Fault> {
                let n: i64 = p.arg(i, name)?;
                if n < 0 {
                    return Err(faults::invalid_value(format!("{name} cannot be negative")));
                }
                Ok(n)
            };
            let op = WriteOp::SetMedals {
                team,
                gold: count(1, "gold")?,
                silver: count(2, "silver")?,
                bronze: count(3, "bronze")?,
            };
            write(&db, request_id(&p, 4)?, op).await
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::ADD_TEAM,
        &["struct", "string", "string"],
        "Adds a team to the roster: (name[, request_id]).",
        |db, p, _| async move {
            p.expect_count(1, 2)?;
            let name = db.state.read().roster.check_new_team(p.arg(0, "name")?)?;
            write(&db, request_id(&p, 1)?, WriteOp::AddTeam { name }).await
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::ADD_EVENT,
        &["struct", "string", "string"],
        "Adds an event to the roster: (name[, request_id]).",
        |db, p, _| async move {
            p.expect_count(1, 2)?;
            let name = db.state.read().roster.check_new_event(p.arg(0, "name")?)?;
            write(&db, request_id(&p, 1)?, WriteOp::AddEvent { name }).await
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::SET_SCORE,
        &["struct", "string", "string", "string"],
        "Sets an event's score: (event, score[, request_id]).",
        |db, p, _| async move {
            p.expect_count(2, 3)?;
            let event = db.state.read().roster.event(p.arg(0, "event")?)?.to_owned();
            let score: &str = p.arg(1, "score")?;
            check_score(score)?;
            let score = score.to_owned();
            write(&db, request_id(&p, 2)?, WriteOp::SetScore { event, score }).await
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::CHANGES,
        &["struct", "int", "int"],
        "Changes after a version, waiting up to wait_ms (at most 30000) for one.",
        |db, p, ctx| async move {
            p.expect_count(1, 3)?;
            let after: i64 = p.arg(0, "after")?;
            let wait_ms = p
                .opt_arg::<i64>(1, "wait_ms")?
                .unwrap_or(0)
                .clamp(0, MAX_WAIT_MS);
            let member = p
                .opt_arg::<&Value>(2, "member")?
                .map(MemberReport::from_value)
                .transpose()?
                .filter(|m| m.uid <= MAX_UID);
            changes(&db, after, wait_ms, member.map(|m| (m, ctx.peer)))
                .await
                .map(|b| b.to_value())
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::SUBSCRIBE,
        &["struct", "struct"],
        "Makes or renews a push subscription (one per callback URL).",
        |db, p, ctx| async move {
            p.expect_count(1, 1)?;
            let subscription = Subscription::from_value(p.arg(0, "subscription")?)?;
            // The front-end judged the callback with what it knows; the db
            // knows every member's endpoints, and its own.
            let target = callback_url::endpoint_of(&subscription.url);
            let cluster = db.members.endpoints();
            let is_cluster =
                target.is_some_and(|t| cluster.contains(&t) || ctx.local.is_some_and(|l| l == t));
            if is_cluster {
                return Err(Fault::invalid_params(format!(
                    "callback refused: {} is one of the cluster's own endpoints",
                    subscription.url
                )));
            }
            let op = WriteOp::Subscribe {
                subscription,
                max_total: db.max_subscriptions,
                max_per_client: db.max_subscriptions_per_client,
            };
            write(&db, None, op).await
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::UNSUBSCRIBE,
        &["boolean", "string", "string"],
        "Ends a push subscription: (url, reason); false if there was none.",
        |db, p, _| async move {
            p.expect_count(2, 2)?;
            let url: &str = p.arg(0, "url")?;
            if !db.state.read().subscriptions.contains_key(url) {
                return Ok(Value::Bool(false));
            }
            let op = WriteOp::Unsubscribe {
                url: url.to_owned(),
                reason: crate::scoreboard::clip(p.arg(1, "reason")?),
            };
            match write(&db, None, op).await {
                Ok(_) => Ok(Value::Bool(true)),
                // Ended meanwhile (its lease ran out, say).
                Err(f) if f.code == faults::INVALID_VALUE => Ok(Value::Bool(false)),
                Err(f) => Err(f),
            }
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::SUBSCRIPTIONS,
        &["array"],
        "Every push subscription, with the version that made or renewed it, as of version latest: {latest, subscriptions}.",
        |db, p, _| async move {
            p.expect_count(0, 0)?;
            let inner = db.state.read();
            let rows = inner
                .subscriptions
                .values()
                .map(|(s, version)| {
                    Value::structure([
                        ("subscription", s.to_value()),
                        ("version", Value::Int(*version)),
                    ])
                })
                .collect();
            Ok(Value::structure([
                ("latest", Value::Int(inner.latest)),
                ("subscriptions", Value::Array(rows)),
            ]))
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::PUSH_PROGRESS,
        &["struct"],
        "The push owners' view history and every member's last delivery report.",
        |db, p, _| async move {
            p.expect_count(0, 0)?;
            Ok(db.members.progress().to_value())
        },
    );
    add_internal(
        &mut m,
        &db,
        wire::HISTORY,
        &["array", "string", "int", "int"],
        "The newest updates of one key (e.g. \"tally:gaul\") below version before (if given), oldest first: (key[, limit[, before]]).",
        |db, p, _| async move {
            p.expect_count(1, 3)?;
            let key: &str = p.arg(0, "key")?;
            let limit = p
                .opt_arg::<i64>(1, "limit")?
                .unwrap_or(100)
                .clamp(1, MAX_HISTORY);
            let before = p.opt_arg::<i64>(2, "before")?;
            let changes = db
                .readers
                .history(key, before, limit.unsigned_abs() as usize)
                .await?;
            Ok(Value::Array(changes.iter().map(Change::to_value).collect()))
        },
    );
    // Public, like `cluster.status`: whether this db takes writes, and if
    // not why (without the file's path, which is for the log).
    m.add(
        HEALTH_METHOD,
        &["struct"],
        "Whether this db takes writes: {ok, reason, latest}.",
        move |p, _| {
            let db = health_db.clone();
            async move {
                p.expect_count(0, 0)?;
                let problem = db.guard.as_deref().and_then(FileGuard::problem);
                Ok(Value::structure([
                    ("ok", Value::Bool(problem.is_none())),
                    ("reason", Value::from(problem.unwrap_or_default())),
                    ("latest", Value::Int(db.state.read().latest)),
                ]))
            }
        },
    );
    m
}

pub(super) async fn submit(db: &Db, job: Job) -> Result<(), Fault> {
    db.writer
        .send(job)
        .await
        .map_err(|_| unavailable("shutting down"))
}

/// The optional request id at `index`.
fn request_id(p: &Params, index: usize) -> Result<Option<String>, Fault> {
    p.opt_arg::<&str>(index, "request_id")?
        .filter(|r| !r.is_empty())
        .map(|r| {
            if r.len() > MAX_REQUEST_ID_BYTES {
                Err(Fault::invalid_params(format!(
                    "request_id longer than {MAX_REQUEST_ID_BYTES} bytes"
                )))
            } else {
                Ok(r.to_owned())
            }
        })
        .transpose()
}

async fn write(db: &Db, request_id: Option<String>, op: WriteOp) -> Result<Value, Fault> {
    // The server merged the caller's piggybacked clock and ticked ours for
    // this request: the update carries what this write causally follows.
    let vclock = db.vclock.snapshot().as_slice().to_vec();
    let request = WriteRequest {
        op,
        request_id,
        timestamp: db.clock.now_secs(),
        vclock,
    };
    let (tx, rx) = oneshot::channel();
    submit(db, (request, tx)).await?;
    let committed = rx
        .await
        .map_err(|_| unavailable("writer stopped"))?
        .map_err(store_fault)?;
    Ok(WriteReply {
        change: committed.change,
        duplicate: committed.duplicate,
    }
    .to_value())
}

/// The fault a failed write is answered with.
fn store_fault(e: StoreError) -> Fault {
    match e {
        StoreError::Unknown { kind: "team", name } => Fault::new(
            faults::UNKNOWN_TEAM,
            format!("unknown team {:?}", clip(&name)),
        ),
        StoreError::Unknown {
            kind: "event",
            name,
        } => Fault::new(
            faults::UNKNOWN_EVENT,
            format!("unknown event {:?}", clip(&name)),
        ),
        StoreError::Refused(why) => faults::invalid_value(why),
        StoreError::Full(why) => faults::unavailable(why),
        StoreError::Detached(why) => faults::unavailable(format!("db: {why}")),
        other => Fault::internal(format!("write failed: {other}")),
    }
}
