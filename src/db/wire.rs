//! The db's internal API, written once for both sides: method names, the
//! shapes of their replies, and [`DbClient`], the typed client front-ends use.

use crate::api::faults;
use crate::push::report::{MemberReport, Progress, View};
use crate::rpc::Fault;
use crate::rpc::{Client, ClientError, Value};
use crate::scoreboard::subscription::Subscription;
use crate::scoreboard::{get_int, get_str, Medal, Roster, Score, Tally};
use crate::store::{Change, Entry};

/// Longest long poll a client may ask of `db.changes`, in milliseconds.
pub const MAX_WAIT_MS: i64 = 30_000;
/// Most changes one `db.changes` reply carries; the client asks again for more.
pub const MAX_CHANGES_PER_REPLY: usize = 1000;

pub const ROSTER: &str = "db.roster";
pub const TALLY: &str = "db.tally";
pub const TALLIES: &str = "db.tallies";
pub const SCORE: &str = "db.score";
pub const INCREMENT_MEDAL: &str = "db.increment_medal";
pub const SET_SCORE: &str = "db.set_score";
pub const REVOKE_MEDAL: &str = "db.revoke_medal";
pub const SET_MEDALS: &str = "db.set_medals";
pub const ADD_TEAM: &str = "db.add_team";
pub const ADD_EVENT: &str = "db.add_event";
pub const CHANGES: &str = "db.changes";
pub const HISTORY: &str = "db.history";
pub const SUBSCRIBE: &str = "db.subscribe";
pub const UNSUBSCRIBE: &str = "db.unsubscribe";
pub const SUBSCRIPTIONS: &str = "db.subscriptions";
pub const PUSH_PROGRESS: &str = "db.push_progress";

impl Change {
    pub fn to_value(&self) -> Value {
        let entry = match &self.entry {
            Entry::Tally(t) => t.to_value(),
            Entry::Score(s) => s.to_value(),
            Entry::TeamAdded(name) | Entry::EventAdded(name) => {
                Value::structure([("name", Value::from(name.as_str()))])
            }
            Entry::Subscribed(s) => s.to_value(),
            Entry::Unsubscribed { url, reason } => Value::structure([
                ("url", Value::from(url.as_str())),
                ("reason", Value::from(reason.as_str())),
            ]),
        };
        Value::structure([
            ("version", Value::Int(self.version)),
            ("kind", Value::from(self.entry.kind())),
            ("key", Value::from(self.entry.key())),
            ("entry", entry),
            ("timestamp", Value::Double(self.timestamp)),
            ("vector_clock", vclock_value(&self.vclock)),
            (
                "request_id",
                self.request_id
                    .as_deref()
                    .map(Value::from)
                    .unwrap_or(Value::from("")),
            ),
        ])
    }

    /// # Errors
    /// A value not shaped like [`Change::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<Change, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("change is not a struct"))?;
        let entry_value = s
            .get("entry")
            .ok_or_else(|| Fault::internal("change lacks entry"))?;
        let entry = match get_str(s, "kind")?.as_str() {
            "tally" => Entry::Tally(Tally::from_value(entry_value)?),
            "score" => Entry::Score(Score::from_value(entry_value)?),
            kind @ ("team" | "event") => {
                let name = entry_value
                    .as_struct()
                    .ok_or_else(|| Fault::internal("roster change is not a struct"))
                    .and_then(|e| get_str(e, "name"))?;
                if kind == "team" {
                    Entry::TeamAdded(name)
                } else {
                    Entry::EventAdded(name)
                }
            }
            "subscribed" => Entry::Subscribed(Subscription::from_value(entry_value)?),
            "unsubscribed" => {
                let e = entry_value
                    .as_struct()
                    .ok_or_else(|| Fault::internal("unsubscription is not a struct"))?;
                Entry::Unsubscribed {
                    url: get_str(e, "url")?,
                    reason: get_str(e, "reason")?,
                }
            }
            other => return Err(Fault::internal(format!("unknown change kind {other:?}"))),
        };
        let vclock = s
            .get("vector_clock")
            .and_then(Value::as_array)
            .unwrap_or(&[])
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        let request_id = get_str(s, "request_id").ok().filter(|r| !r.is_empty());
        Ok(Change {
            version: get_int(s, "version")?,
            entry,
            timestamp: crate::scoreboard::get_f64(s, "timestamp")?,
            vclock,
            request_id,
        })
    }
}

/// A reply of `db.changes`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeBatch {
    /// Identifies this run of the db; it changes when the db restarts.
    pub epoch: String,
    /// The db's latest version when it answered.
    pub latest: i64,
    /// Changes after the version asked for, oldest first (at most
    /// [`MAX_CHANGES_PER_REPLY`]).
    pub changes: Vec<Change>,
    /// True when the db cannot tell what changed since the version asked for
    /// (it is from the future, or older than the log): drop everything.
    pub reset: bool,
    /// The push owners now; `None` while the db is still waiting, after its
    /// start, for every member to poll (members then keep what they had).
    pub view: Option<View>,
}

impl ChangeBatch {
    pub fn to_value(&self) -> Value {
        Value::structure([
            ("epoch", Value::from(self.epoch.as_str())),
            ("latest", Value::Int(self.latest)),
            (
                "changes",
                Value::Array(self.changes.iter().map(Change::to_value).collect()),
            ),
            ("reset", Value::Bool(self.reset)),
            (
                "view",
                self.view.as_ref().map_or(Value::Nil, View::to_value),
            ),
        ])
    }

    /// # Errors
    /// A value not shaped like [`ChangeBatch::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<ChangeBatch, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("change batch is not a struct"))?;
        let changes = s
            .get("changes")
            .and_then(Value::as_array)
            .ok_or_else(|| Fault::internal("change batch lacks changes"))?
            .iter()
            .map(Change::from_value)
            .collect::<Result<_, _>>()?;
        Ok(ChangeBatch {
            epoch: get_str(s, "epoch")?,
            latest: get_int(s, "latest")?,
            changes,
            reset: matches!(s.get("reset"), Some(Value::Bool(true))),
            view: match s.get("view") {
                None | Some(Value::Nil) => None,
                Some(v) => Some(View::from_value(v)?),
            },
        })
    }
}

/// A reply of `db.roster`: the roster, and where the change feed stands.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterReply {
    pub roster: Roster,
    /// Identifies this run of the db; it changes when the db restarts.
    pub epoch: String,
    /// The db's latest version when it answered: a follower starts there.
    pub latest: i64,
}

/// The outcome of a write: the change it made (or made before, for a
/// repeated request id).
#[derive(Debug, Clone, PartialEq)]
pub struct WriteReply {
    pub change: Change,
    pub duplicate: bool,
}

impl WriteReply {
    /// What the public API tells the writer.
    pub fn into_ack(self) -> crate::api::WriteAck {
        crate::api::WriteAck {
            version: self.change.version,
            entry: self.change.entry,
            duplicate: self.duplicate,
        }
    }

    pub fn to_value(&self) -> Value {
        Value::structure([
            ("change", self.change.to_value()),
            ("duplicate", Value::Bool(self.duplicate)),
        ])
    }

    /// # Errors
    /// A value not shaped like [`WriteReply::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<WriteReply, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("write reply is not a struct"))?;
        Ok(WriteReply {
            change: Change::from_value(
                s.get("change")
                    .ok_or_else(|| Fault::internal("write reply lacks change"))?,
            )?,
            duplicate: matches!(s.get("duplicate"), Some(Value::Bool(true))),
        })
    }
}

/// Turns a failed db call into the fault a front-end passes on: the db's own
/// application faults and argument refusals as they are, anything else as
/// "unavailable".
pub fn db_fault(err: ClientError) -> Fault {
    match err {
        // The db's own answers about what it was asked (an argument it
        // refuses is the caller's: it came from the front-end's caller).
        ClientError::Fault(f) if f.code > 0 || f.code == crate::rpc::fault::INVALID_PARAMS => f,
        ClientError::Fault(f) => {
            Fault::new(faults::UNAVAILABLE, format!("db refused: {}", f.message))
        }
        other => Fault::new(faults::UNAVAILABLE, format!("db unavailable: {other}")),
    }
}

/// Turns a failed write to the db into the fault a front-end passes on. As
/// [`db_fault`] when the outcome is certain (the db answered, or nothing
/// was sent); otherwise `OUTCOME_UNKNOWN`, naming the request id with which
/// a retry applies it once.
pub fn write_fault(err: ClientError, request_id: &str) -> Fault {
    if matches!(err, ClientError::Fault(_)) {
        return db_fault(err);
    }
    if err.is_connect() {
        return Fault::new(
            faults::UNAVAILABLE,
            format!("db unavailable: {err}: the write was not applied"),
        );
    }
    faults::outcome_unknown(
        format_args!("the db did not confirm it ({err})"),
        request_id,
    )
}

/// A failed call on the change feed: the fault to pass on, and whether the
/// db is down rather than silent. A db that is down takes no writes, so
/// nothing changes behind a cache; a silent one may be taking writes that
/// this caller cannot see.
#[derive(Debug, thiserror::Error)]
#[error("{fault}")]
pub struct FeedError {
    pub fault: Fault,
    pub refused: bool,
}

/// The db's host answered that the db is not there: it refused the
/// connection, or closed or reset one (a killed db's kernel does). A
/// partition answers nothing: a deadline passes, or a connect fails for
/// want of a route.
fn is_down(e: &ClientError) -> bool {
    matches!(e, ClientError::Refused(_) | ClientError::Transport(_))
}

impl From<FeedError> for Fault {
    fn from(e: FeedError) -> Fault {
        e.fault
    }
}

impl From<Fault> for FeedError {
    /// A reply that was not what the feed expects: the db answered, so it
    /// is not down.
    fn from(fault: Fault) -> FeedError {
        FeedError {
            fault,
            refused: false,
        }
    }
}

/// Typed calls to the db. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DbClient {
    client: Client,
}

impl DbClient {
    /// `client` must carry the cluster secret.
    pub fn new(client: Client) -> Self {
        DbClient { client }
    }

    async fn call(&self, method: &str, params: &[Value]) -> Result<Value, Fault> {
        self.client.call(method, params).await.map_err(db_fault)
    }

    async fn write(
        &self,
        method: &str,
        params: &[Value],
        request_id: &str,
    ) -> Result<WriteReply, Fault> {
        let v = self
            .client
            .call(method, params)
            .await
            .map_err(|e| write_fault(e, request_id))?;
        WriteReply::from_value(&v)
    }

    async fn feed_call(&self, method: &str, params: &[Value]) -> Result<Value, FeedError> {
        self.client
            .call(method, params)
            .await
            .map_err(|e| FeedError {
                refused: is_down(&e),
                fault: db_fault(e),
            })
    }

    /// # Errors
    /// As [`db_fault`], saying whether the db refused the connection.
    pub async fn roster(&self) -> Result<RosterReply, FeedError> {
        let v = self.feed_call(ROSTER, &[]).await?;
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("roster reply is not a struct"))?;
        Ok(RosterReply {
            roster: Roster::from_value(&v)?,
            epoch: get_str(s, "epoch")?,
            latest: get_int(s, "latest")?,
        })
    }

    /// # Errors
    /// As [`db_fault`].
    pub async fn tally(&self, team: &str) -> Result<Tally, Fault> {
        Tally::from_value(&self.call(TALLY, &[team.into()]).await?)
    }

    /// # Errors
    /// As [`db_fault`].
    pub async fn tallies(&self) -> Result<Vec<Tally>, Fault> {
        let v = self.call(TALLIES, &[]).await?;
        v.as_array()
            .ok_or_else(|| Fault::internal("tallies reply is not an array"))?
            .iter()
            .map(Tally::from_value)
            .collect()
    }

    /// # Errors
    /// As [`db_fault`].
    pub async fn score(&self, event: &str) -> Result<Score, Fault> {
        Score::from_value(&self.call(SCORE, &[event.into()]).await?)
    }

    /// # Errors
    /// As [`db_fault`].
    pub async fn increment_medal(
        &self,
        team: &str,
        medal: Medal,
        request_id: &str,
    ) -> Result<WriteReply, Fault> {
        let params = [team.into(), medal.as_str().into(), request_id.into()];
        self.write(INCREMENT_MEDAL, &params, request_id).await
    }

    /// # Errors
    /// As [`db_fault`].
    pub async fn set_score(
        &self,
        event: &str,
        score: &str,
        request_id: &str,
    ) -> Result<WriteReply, Fault> {
        let params = [event.into(), score.into(), request_id.into()];
        self.write(SET_SCORE, &params, request_id).await
    }

    /// # Errors
    /// As [`db_fault`].
    pub async fn revoke_medal(
        &self,
        team: &str,
        medal: Medal,
        request_id: &str,
    ) -> Result<WriteReply, Fault> {
        let params = [team.into(), medal.as_str().into(), request_id.into()];
        self.write(REVOKE_MEDAL, &params, request_id).await
    }

    /// # Errors
    /// As [`db_fault`].
    pub async fn set_medals(
        &self,
        team: &str,
        [gold, silver, bronze]: [i64; 3],
        request_id: &str,
    ) -> Result<WriteReply, Fault> {
        let params = [
            team.into(),
            gold.into(),
            silver.into(),
            bronze.into(),
            request_id.into(),
        ];
        self.write(SET_MEDALS, &params, request_id).await
    }

    /// # Errors
    /// As [`db_fault`].
    pub async fn add_team(&self, name: &str, request_id: &str) -> Result<WriteReply, Fault> {
        self.write(ADD_TEAM, &[name.into(), request_id.into()], request_id)
            .await
    }

    /// # Errors
    /// As [`db_fault`].
    pub async fn add_event(&self, name: &str, request_id: &str) -> Result<WriteReply, Fault> {
        self.write(ADD_EVENT, &[name.into(), request_id.into()], request_id)
            .await
    }

    /// Changes after `after`, waiting up to `wait_ms` for one to happen;
    /// a member says how it stands with `report`.
    ///
    /// # Errors
    /// As [`db_fault`], saying whether the db refused the connection.
    pub async fn changes(
        &self,
        after: i64,
        wait_ms: i64,
        report: Option<&MemberReport>,
    ) -> Result<ChangeBatch, FeedError> {
        let mut params = vec![after.into(), wait_ms.into()];
        params.extend(report.map(MemberReport::to_value));
        Ok(ChangeBatch::from_value(
            &self.feed_call(CHANGES, &params).await?,
        )?)
    }

    /// Makes or renews a subscription.
    ///
    /// # Errors
    /// As [`db_fault`]; a full cluster or address is `UNAVAILABLE`... see the db.
    pub async fn subscribe(&self, subscription: &Subscription) -> Result<WriteReply, Fault> {
        WriteReply::from_value(&self.call(SUBSCRIBE, &[subscription.to_value()]).await?)
    }

    /// Ends a subscription; `Ok(false)` when there was none.
    ///
    /// # Errors
    /// As [`db_fault`].
    pub async fn unsubscribe(&self, url: &str, reason: &str) -> Result<bool, Fault> {
        let v = self.call(UNSUBSCRIBE, &[url.into(), reason.into()]).await?;
        Ok(matches!(v, Value::Bool(true)))
    }

    /// Every subscription, with the version that made or renewed it, and
    /// the db's latest version when it answered.
    ///
    /// # Errors
    /// As [`db_fault`].
    pub async fn subscriptions(&self) -> Result<(i64, Vec<(Subscription, i64)>), Fault> {
        let v = self.call(SUBSCRIPTIONS, &[]).await?;
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("subscriptions reply is not a struct"))?;
        let latest = get_int(s, "latest")?;
        let rows = s
            .get("subscriptions")
            .and_then(Value::as_array)
            .ok_or_else(|| Fault::internal("subscriptions reply lacks its list"))?
            .iter()
            .map(|row| {
                let s = row
                    .as_struct()
                    .ok_or_else(|| Fault::internal("a subscription row is not a struct"))?;
                let sub = Subscription::from_value(
                    s.get("subscription")
                        .ok_or_else(|| Fault::internal("a row lacks its subscription"))?,
                )?;
                Ok((sub, get_int(s, "version")?))
            })
            .collect::<Result<_, Fault>>()?;
        Ok((latest, rows))
    }

    /// What a new push owner needs to resume.
    ///
    /// # Errors
    /// As [`db_fault`].
    pub async fn push_progress(&self) -> Result<Progress, Fault> {
        Progress::from_value(&self.call(PUSH_PROGRESS, &[]).await?)
    }

    /// The newest `limit` updates of `key` below version `before` (all
    /// versions when `None`), oldest first.
    ///
    /// # Errors
    /// As [`db_fault`].
    pub async fn history(
        &self,
        key: &str,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<Change>, Fault> {
        // Without `before` in the form every db version answers.
        let mut params = vec![key.into(), limit.into()];
        params.extend(before.map(Value::Int));
        let v = self.call(HISTORY, &params).await?;
        v.as_array()
            .ok_or_else(|| Fault::internal("history reply is not an array"))?
            .iter()
            .map(Change::from_value)
            .collect()
    }
}

/// A vector clock as an array of ints, indexed by uid.
pub fn vclock_value(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|c| Value::Int(*c)).collect())
}
