//! The typed client of the public API: what the feeder, the tablet, the
//! benchmark and the tests call a balancer or a front-end with.

use bytes::Bytes;

use super::request::{self as req, Call, HistoryCursor, HistoryKind, HistoryPage};
use super::HEALTH_METHOD;
use crate::rpc::{self, ClientConfig, ClientError, Fault, Value};
use crate::scoreboard::rank::Standing;
use crate::scoreboard::{get_int, Roster, Score, Tally};
use crate::store::{Change, Entry};

/// A client of one server's public API. Cheap to clone; clones share the
/// connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    rpc: rpc::Client,
}

/// The outcome of a structured write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteAck {
    /// The version the write got (or got before, for a repeated request id).
    pub version: i64,
    /// The key's value after the write.
    pub entry: Entry,
    /// True when the request id had been applied before: nothing changed.
    pub duplicate: bool,
}

/// A subscription as the server granted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub callback_url: String,
    /// The lease granted, which may differ from the one asked for.
    pub lease_seconds: i64,
}

/// A front-end's readiness, from `podium.health`.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Ready to serve fresh data.
    pub ok: bool,
    /// Entries in its cache.
    pub cached: i64,
    /// Push subscriptions it holds.
    pub subscribers: i64,
    /// Its cluster clock, seconds since the epoch.
    pub clock: f64,
    /// How its change feed stands: `live`, `starting`, `db down`, or why
    /// it is silent (then `ok` is false). Empty from an older front-end.
    pub feed: String,
}

fn shape(what: &str) -> ClientError {
    ClientError::Fault(Fault::internal(format!("unexpected {what} reply")))
}

/// An array of changes, as history returns it.
fn changes(v: &Value, what: &str) -> Result<Vec<Change>, ClientError> {
    v.as_array()
        .ok_or_else(|| shape(what))?
        .iter()
        .map(|c| Change::from_value(c).map_err(fault))
        .collect()
}

fn fault(f: Fault) -> ClientError {
    ClientError::Fault(f)
}

impl Client {
    /// A client of the server at `url` (`http://host:port/` or `host:port`).
    ///
    /// # Errors
    /// An invalid URL.
    pub fn new(url: &str, config: ClientConfig) -> Result<Client, ClientError> {
        Ok(Client {
            rpc: rpc::Client::new(url, config)?,
        })
    }

    /// The plain XML-RPC client underneath.
    pub fn rpc(&self) -> &rpc::Client {
        &self.rpc
    }

    /// Calls the method of `call`.
    ///
    /// # Errors
    /// A fault as [`ClientError::Fault`]; transport failures as the other variants.
    pub async fn call<C: Call>(&self, call: &C) -> Result<Value, ClientError> {
        self.rpc.call(C::METHOD.name(), &call.to_params()).await
    }

    /// Posts a call already encoded (a load generator's, made once) and
    /// returns the reply body undecoded.
    ///
    /// # Errors
    /// Transport failures; faults are inside the body.
    pub async fn send_encoded(&self, body: Bytes) -> Result<Bytes, ClientError> {
        self.rpc.call_raw(body).await
    }

    async fn text<C: Call>(&self, call: &C) -> Result<String, ClientError> {
        match self.call(call).await? {
            Value::String(s) => Ok(s),
            _ => Err(shape(C::METHOD.name())),
        }
    }

    /// `get_medal_tally`: the old text format.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn get_medal_tally(&self, team: &str, client_id: i64) -> Result<String, ClientError> {
        self.text(&req::GetMedalTally {
            team: team.to_owned(),
            client_id: Some(Value::Int(client_id)),
        })
        .await
    }

    /// `get_score`: the old text format.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn get_score(&self, event: &str, client_id: i64) -> Result<String, ClientError> {
        self.text(&req::GetScore {
            event: event.to_owned(),
            client_id: Some(Value::Int(client_id)),
        })
        .await
    }

    /// `increment_medal_tally`: the old acknowledgement text.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn increment_medal_tally(
        &self,
        team: &str,
        medal: &str,
        password: &str,
    ) -> Result<String, ClientError> {
        self.text(&req::IncrementMedalTally {
            team: team.to_owned(),
            medal: medal.to_owned(),
            password: password.to_owned(),
        })
        .await
    }

    /// `set_score`: the old acknowledgement text.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn set_score_text(
        &self,
        event: &str,
        score: &str,
        password: &str,
    ) -> Result<String, ClientError> {
        self.text(&req::SetScore {
            event: event.to_owned(),
            score: score.to_owned(),
            password: password.to_owned(),
        })
        .await
    }

    /// `register_client`: the old acknowledgement text.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn register_client(&self, call: &req::RegisterClient) -> Result<String, ClientError> {
        self.text(call).await
    }

    /// `scoreboard.roster`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn roster(&self) -> Result<Roster, ClientError> {
        Roster::from_value(&self.call(&req::Roster).await?).map_err(fault)
    }

    /// `scoreboard.tally`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn tally(&self, team: &str) -> Result<Tally, ClientError> {
        let v = self
            .call(&req::Tally {
                team: team.to_owned(),
            })
            .await?;
        Tally::from_value(&v).map_err(fault)
    }

    /// `scoreboard.score`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn score(&self, event: &str) -> Result<Score, ClientError> {
        let v = self
            .call(&req::Score {
                event: event.to_owned(),
            })
            .await?;
        Score::from_value(&v).map_err(fault)
    }

    /// `scoreboard.medal_table`: every team, ranked.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn medal_table(&self) -> Result<Vec<Standing>, ClientError> {
        let v = self.call(&req::MedalTable).await?;
        v.as_array()
            .ok_or_else(|| shape("medal_table"))?
            .iter()
            .map(|row| Standing::from_value(row).map_err(fault))
            .collect()
    }

    /// `scoreboard.increment_medal`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn increment_medal(
        &self,
        team: &str,
        medal: &str,
        password: &str,
        request_id: Option<&str>,
    ) -> Result<WriteAck, ClientError> {
        let v = self
            .call(&req::IncrementMedal {
                team: team.to_owned(),
                medal: medal.to_owned(),
                password: password.to_owned(),
                request_id: request_id.map(str::to_owned),
            })
            .await?;
        WriteAck::from_value(&v).map_err(fault)
    }

    /// `scoreboard.set_score`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn set_score(
        &self,
        event: &str,
        score: &str,
        password: &str,
        request_id: Option<&str>,
    ) -> Result<WriteAck, ClientError> {
        let v = self
            .call(&req::SetEventScore {
                event: event.to_owned(),
                score: score.to_owned(),
                password: password.to_owned(),
                request_id: request_id.map(str::to_owned),
            })
            .await?;
        WriteAck::from_value(&v).map_err(fault)
    }

    /// `scoreboard.add_team`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn add_team(
        &self,
        name: &str,
        password: &str,
        request_id: Option<&str>,
    ) -> Result<WriteAck, ClientError> {
        self.write(&req::AddTeam {
            name: name.to_owned(),
            password: password.to_owned(),
            request_id: request_id.map(str::to_owned),
        })
        .await
    }

    /// `scoreboard.add_event`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn add_event(
        &self,
        name: &str,
        password: &str,
        request_id: Option<&str>,
    ) -> Result<WriteAck, ClientError> {
        self.write(&req::AddEvent {
            name: name.to_owned(),
            password: password.to_owned(),
            request_id: request_id.map(str::to_owned),
        })
        .await
    }

    /// `scoreboard.revoke_medal`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn revoke_medal(
        &self,
        team: &str,
        medal: &str,
        password: &str,
        request_id: Option<&str>,
    ) -> Result<WriteAck, ClientError> {
        self.write(&req::RevokeMedal {
            team: team.to_owned(),
            medal: medal.to_owned(),
            password: password.to_owned(),
            request_id: request_id.map(str::to_owned),
        })
        .await
    }

    /// `scoreboard.set_medals`: `counts` are gold, silver and bronze.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn set_medals(
        &self,
        team: &str,
        [gold, silver, bronze]: [i64; 3],
        password: &str,
        request_id: Option<&str>,
    ) -> Result<WriteAck, ClientError> {
        self.write(&req::SetMedals {
            team: team.to_owned(),
            gold,
            silver,
            bronze,
            password: password.to_owned(),
            request_id: request_id.map(str::to_owned),
        })
        .await
    }

    async fn write<C: Call>(&self, call: &C) -> Result<WriteAck, ClientError> {
        WriteAck::from_value(&self.call(call).await?).map_err(fault)
    }

    /// `scoreboard.subscribe`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn subscribe(&self, call: &req::Subscribe) -> Result<Subscription, ClientError> {
        let v = self.call(call).await?;
        Subscription::from_value(&v).map_err(fault)
    }

    /// `scoreboard.unsubscribe`: whether there was a subscription.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn unsubscribe(&self, callback_url: &str) -> Result<bool, ClientError> {
        let v = self
            .call(&req::Unsubscribe {
                callback_url: callback_url.to_owned(),
            })
            .await?;
        match v {
            Value::Bool(b) => Ok(b),
            _ => Err(shape("unsubscribe")),
        }
    }

    /// `scoreboard.history(kind, name)`: the key's newest updates (at most
    /// [`HISTORY_DEFAULT_LIMIT`](super::HISTORY_DEFAULT_LIMIT)), oldest first.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn history(&self, kind: HistoryKind, name: &str) -> Result<Vec<Change>, ClientError> {
        let v = self
            .call(&req::History {
                kind,
                name: name.to_owned(),
                page: None,
            })
            .await?;
        changes(&v, "history")
    }

    /// One page of `scoreboard.history`: the newest updates before `cursor`
    /// (at most `limit`), oldest first, and the cursor of the page before.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn history_page(
        &self,
        kind: HistoryKind,
        name: &str,
        cursor: HistoryCursor,
        limit: Option<i64>,
    ) -> Result<HistoryPage, ClientError> {
        let v = self
            .call(&req::History {
                kind,
                name: name.to_owned(),
                page: Some(req::PageRequest { cursor, limit }),
            })
            .await?;
        HistoryPage::from_value(&v).map_err(fault)
    }

    /// `podium.health` (front-ends only).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn health(&self) -> Result<Health, ClientError> {
        let v = self.rpc.call(HEALTH_METHOD, &[]).await?;
        Health::from_value(&v).map_err(fault)
    }
}

impl WriteAck {
    /// The reply of a structured write: `{version, tally|score, duplicate}`.
    pub fn to_value(&self) -> Value {
        let (what, entry) = match &self.entry {
            Entry::Tally(t) => ("tally", t.to_value()),
            Entry::Score(s) => ("score", s.to_value()),
            Entry::TeamAdded(name) => ("team", Value::from(name.as_str())),
            Entry::EventAdded(name) => ("event", Value::from(name.as_str())),
            Entry::Subscribed(s) => ("subscription", s.to_value()),
            Entry::Unsubscribed { url, .. } => ("unsubscribed", Value::from(url.as_str())),
        };
        Value::structure([
            ("version", Value::Int(self.version)),
            (what, entry),
            ("duplicate", Value::Bool(self.duplicate)),
        ])
    }

    /// # Errors
    /// A value not shaped like [`WriteAck::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<WriteAck, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("write reply is not a struct"))?;
        let name = |v: &Value| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Fault::internal("a roster change names no name"))
        };
        let entry = if let Some(t) = s.get("tally") {
            Entry::Tally(Tally::from_value(t)?)
        } else if let Some(sc) = s.get("score") {
            Entry::Score(Score::from_value(sc)?)
        } else if let Some(team) = s.get("team") {
            Entry::TeamAdded(name(team)?)
        } else if let Some(event) = s.get("event") {
            Entry::EventAdded(name(event)?)
        } else {
            return Err(Fault::internal("write reply holds no change"));
        };
        Ok(WriteAck {
            version: get_int(s, "version")?,
            entry,
            duplicate: matches!(s.get("duplicate"), Some(Value::Bool(true))),
        })
    }
}

impl Subscription {
    pub fn to_value(&self) -> Value {
        Value::structure([
            ("callback_url", Value::from(self.callback_url.as_str())),
            ("lease_seconds", Value::Int(self.lease_seconds)),
        ])
    }

    /// # Errors
    /// A value not shaped like [`Subscription::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<Subscription, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("subscription is not a struct"))?;
        Ok(Subscription {
            callback_url: crate::scoreboard::get_str(s, "callback_url")?,
            lease_seconds: get_int(s, "lease_seconds")?,
        })
    }
}

impl Health {
    pub fn to_value(&self) -> Value {
        Value::structure([
            ("ok", Value::Bool(self.ok)),
            ("cached", Value::Int(self.cached)),
            ("subscribers", Value::Int(self.subscribers)),
            ("clock", Value::Double(self.clock)),
            ("feed", Value::from(self.feed.as_str())),
        ])
    }

    /// # Errors
    /// A value not shaped like [`Health::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<Health, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("health is not a struct"))?;
        Ok(Health {
            ok: matches!(s.get("ok"), Some(Value::Bool(true))),
            cached: get_int(s, "cached")?,
            subscribers: get_int(s, "subscribers")?,
            clock: crate::scoreboard::get_f64(s, "clock")?,
            feed: match s.get("feed") {
                Some(Value::String(feed)) => feed.clone(),
                _ => String::new(),
            },
        })
    }
}
