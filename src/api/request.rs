//! Typed requests of the public API. Each is read from a call's arguments by
//! the server ([`Call::from_params`]) and written by the client
//! ([`Call::to_params`]), so every wire shape is written once, here
//! (mini-redis's `cmd/` has the same shape).

use super::Method;
use crate::rpc::{Fault, Params, Value};

/// A request of one public method.
pub trait Call: Sized {
    /// The method this request calls.
    const METHOD: Method;

    /// Reads the request from a call's arguments.
    ///
    /// # Errors
    /// `-32602` naming the argument at fault.
    fn from_params(params: &Params) -> Result<Self, Fault>;

    /// The call's arguments.
    fn to_params(&self) -> Vec<Value>;
}

/// Any public request: what a front-end dispatches with one `match`.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    GetMedalTally(GetMedalTally),
    GetScore(GetScore),
    IncrementMedalTally(IncrementMedalTally),
    SetScore(SetScore),
    RegisterClient(RegisterClient),
    Roster(Roster),
    Tally(Tally),
    MedalTable(MedalTable),
    Score(Score),
    IncrementMedal(IncrementMedal),
    SetEventScore(SetEventScore),
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
    History(History),
}

impl Request {
    /// Reads the request of `method` from its arguments.
    ///
    /// # Errors
    /// As [`Call::from_params`].
    pub fn parse(method: Method, params: &Params) -> Result<Request, Fault> {
        Ok(match method {
            Method::GetMedalTally => Request::GetMedalTally(Call::from_params(params)?),
            Method::GetScore => Request::GetScore(Call::from_params(params)?),
            Method::IncrementMedalTally => Request::IncrementMedalTally(Call::from_params(params)?),
            Method::SetScore => Request::SetScore(Call::from_params(params)?),
            Method::RegisterClient => Request::RegisterClient(Call::from_params(params)?),
            Method::Roster => Request::Roster(Call::from_params(params)?),
            Method::Tally => Request::Tally(Call::from_params(params)?),
            Method::MedalTable => Request::MedalTable(Call::from_params(params)?),
            Method::Score => Request::Score(Call::from_params(params)?),
            Method::IncrementMedal => Request::IncrementMedal(Call::from_params(params)?),
            Method::SetEventScore => Request::SetEventScore(Call::from_params(params)?),
            Method::Subscribe => Request::Subscribe(Call::from_params(params)?),
            Method::Unsubscribe => Request::Unsubscribe(Call::from_params(params)?),
            Method::History => Request::History(Call::from_params(params)?),
        })
    }
}

fn text(params: &Params, index: usize, name: &str) -> Result<String, Fault> {
    params.arg::<&str>(index, name).map(str::to_owned)
}

fn opt_text(params: &Params, index: usize, name: &str) -> Result<Option<String>, Fault> {
    Ok(params.opt_arg::<&str>(index, name)?.map(str::to_owned))
}

/// A list of names (teams or events followed).
fn names(params: &Params, index: usize, name: &str) -> Result<Vec<String>, Fault> {
    params
        .arg::<&[Value]>(index, name)?
        .iter()
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                Fault::invalid_params(format!("argument {} ({name}) must hold strings", index + 1))
            })
        })
        .collect()
}

fn list(names: &[String]) -> Value {
    Value::Array(names.iter().map(|n| Value::from(n.as_str())).collect())
}

/// A score as the old server took it: text, or a number that Perl, PHP and
/// Ruby clients send as `<int>` or `<double>`, kept as its text (as the old
/// Python server printed it: `3`, `2.5`, `3.0`).
fn score_text(params: &Params, index: usize) -> Result<String, Fault> {
    match params.arg::<&Value>(index, "score")? {
        Value::String(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Double(d) => Ok(double_text(*d)),
        other => Err(Fault::invalid_params(format!(
            "argument {} (score) must be string, int or double, got {}",
            index + 1,
            other.type_name()
        ))),
    }
}

/// A double the way Python prints it: `3.0`, `2.5`, `1e+20`.
fn double_text(d: f64) -> String {
    let shown = format!("{d:?}");
    match shown.split_once('e') {
        Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
        _ => shown,
    }
}

macro_rules! no_params {
    ($name:ident, $method:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;

        impl Call for $name {
            const METHOD: Method = $method;
            fn from_params(params: &Params) -> Result<Self, Fault> {
                params.expect_count(0, 0)?;
                Ok($name)
            }
            fn to_params(&self) -> Vec<Value> {
                Vec::new()
            }
        }
    };
}

no_params!(Roster, Method::Roster, "`scoreboard.roster()`.");
no_params!(
    MedalTable,
    Method::MedalTable,
    "`scoreboard.medal_table()`."
);

/// `get_medal_tally(team, client_id)`. The client id is what the old tablets
/// send to say who they are; any value is taken, and none is used.
#[derive(Debug, Clone, PartialEq)]
pub struct GetMedalTally {
    pub team: String,
    pub client_id: Option<Value>,
}

impl Call for GetMedalTally {
    const METHOD: Method = Method::GetMedalTally;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(1, 2)?;
        Ok(GetMedalTally {
            team: text(params, 0, "team")?,
            client_id: params.opt_arg::<&Value>(1, "client_id")?.cloned(),
        })
    }
    fn to_params(&self) -> Vec<Value> {
        let mut p = vec![Value::from(self.team.as_str())];
        p.extend(self.client_id.clone());
        p
    }
}

/// `get_score(event, client_id)`; the client id as for [`GetMedalTally`].
#[derive(Debug, Clone, PartialEq)]
pub struct GetScore {
    pub event: String,
    pub client_id: Option<Value>,
}

impl Call for GetScore {
    const METHOD: Method = Method::GetScore;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(1, 2)?;
        Ok(GetScore {
            event: text(params, 0, "event")?,
            client_id: params.opt_arg::<&Value>(1, "client_id")?.cloned(),
        })
    }
    fn to_params(&self) -> Vec<Value> {
        let mut p = vec![Value::from(self.event.as_str())];
        p.extend(self.client_id.clone());
        p
    }
}

/// `increment_medal_tally(team, medal, password)`.
#[derive(Clone, PartialEq)]
pub struct IncrementMedalTally {
    pub team: String,
    pub medal: String,
    pub password: String,
}

impl Call for IncrementMedalTally {
    const METHOD: Method = Method::IncrementMedalTally;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(3, 3)?;
        Ok(IncrementMedalTally {
            team: text(params, 0, "team")?,
            medal: text(params, 1, "medal")?,
            password: text(params, 2, "password")?,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        vec![
            self.team.as_str().into(),
            self.medal.as_str().into(),
            self.password.as_str().into(),
        ]
    }
}

/// `set_score(event, score, password)`; a numeric score is kept as its text.
#[derive(Clone, PartialEq)]
pub struct SetScore {
    pub event: String,
    pub score: String,
    pub password: String,
}

impl Call for SetScore {
    const METHOD: Method = Method::SetScore;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(3, 3)?;
        Ok(SetScore {
            event: text(params, 0, "event")?,
            score: score_text(params, 1)?,
            password: text(params, 2, "password")?,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        vec![
            self.event.as_str().into(),
            self.score.as_str().into(),
            self.password.as_str().into(),
        ]
    }
}

/// `register_client([host, port], events, teams)`: the old tablet's
/// subscription, pushed to `http://host:port/`.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterClient {
    pub host: String,
    pub port: u16,
    pub events: Vec<String>,
    pub teams: Vec<String>,
}

impl RegisterClient {
    /// The URL the tablet is called back at, IPv6 literals bracketed.
    pub fn callback_url(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("http://[{}]:{}/", self.host, self.port)
        } else {
            format!("http://{}:{}/", self.host, self.port)
        }
    }
}

impl Call for RegisterClient {
    const METHOD: Method = Method::RegisterClient;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(3, 3)?;
        let address: &[Value] = params.arg(0, "address")?;
        let (host, port) = match address {
            [Value::String(host), Value::Int(port)] => (host, *port),
            _ => {
                return Err(Fault::invalid_params(
                    "argument 1 (address) must be [host, port]",
                ))
            }
        };
        let port = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| {
            Fault::invalid_params("argument 1 (address): port must be 1 to 65535")
        })?;
        Ok(RegisterClient {
            host: host.clone(),
            port,
            events: names(params, 1, "events")?,
            teams: names(params, 2, "teams")?,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        vec![
            Value::Array(vec![
                self.host.as_str().into(),
                Value::Int(self.port.into()),
            ]),
            list(&self.events),
            list(&self.teams),
        ]
    }
}

/// `scoreboard.tally(team)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub team: String,
}

impl Call for Tally {
    const METHOD: Method = Method::Tally;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(1, 1)?;
        Ok(Tally {
            team: text(params, 0, "team")?,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        vec![self.team.as_str().into()]
    }
}

/// `scoreboard.score(event)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Score {
    pub event: String,
}

impl Call for Score {
    const METHOD: Method = Method::Score;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(1, 1)?;
        Ok(Score {
            event: text(params, 0, "event")?,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        vec![self.event.as_str().into()]
    }
}

/// `scoreboard.increment_medal(team, medal, password[, request_id])`.
#[derive(Clone, PartialEq)]
pub struct IncrementMedal {
    pub team: String,
    pub medal: String,
    pub password: String,
    /// Makes a retry apply once; the server makes one when absent.
    pub request_id: Option<String>,
}

impl Call for IncrementMedal {
    const METHOD: Method = Method::IncrementMedal;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(3, 4)?;
        Ok(IncrementMedal {
            team: text(params, 0, "team")?,
            medal: text(params, 1, "medal")?,
            password: text(params, 2, "password")?,
            request_id: opt_text(params, 3, "request_id")?,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        let mut p = vec![
            self.team.as_str().into(),
            self.medal.as_str().into(),
            self.password.as_str().into(),
        ];
        p.extend(self.request_id.as_deref().map(Value::from));
        p
    }
}

/// `scoreboard.set_score(event, score, password[, request_id])`.
#[derive(Clone, PartialEq)]
pub struct SetEventScore {
    pub event: String,
    pub score: String,
    pub password: String,
    /// As [`IncrementMedal::request_id`].
    pub request_id: Option<String>,
}

impl Call for SetEventScore {
    const METHOD: Method = Method::SetEventScore;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(3, 4)?;
        Ok(SetEventScore {
            event: text(params, 0, "event")?,
            score: score_text(params, 1)?,
            password: text(params, 2, "password")?,
            request_id: opt_text(params, 3, "request_id")?,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        let mut p = vec![
            self.event.as_str().into(),
            self.score.as_str().into(),
            self.password.as_str().into(),
        ];
        p.extend(self.request_id.as_deref().map(Value::from));
        p
    }
}

/// `scoreboard.subscribe(callback_url, events, teams[, lease_seconds])`.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    pub callback_url: String,
    pub events: Vec<String>,
    pub teams: Vec<String>,
    /// The lease asked for; the server clamps it to its bounds.
    pub lease_seconds: Option<i64>,
}

impl Call for Subscribe {
    const METHOD: Method = Method::Subscribe;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(3, 4)?;
        Ok(Subscribe {
            callback_url: text(params, 0, "callback_url")?,
            events: names(params, 1, "events")?,
            teams: names(params, 2, "teams")?,
            lease_seconds: params.opt_arg(3, "lease_seconds")?,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        let mut p = vec![
            self.callback_url.as_str().into(),
            list(&self.events),
            list(&self.teams),
        ];
        p.extend(self.lease_seconds.map(Value::Int));
        p
    }
}

/// `scoreboard.unsubscribe(callback_url)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub callback_url: String,
}

impl Call for Unsubscribe {
    const METHOD: Method = Method::Unsubscribe;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(1, 1)?;
        Ok(Unsubscribe {
            callback_url: text(params, 0, "callback_url")?,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        vec![self.callback_url.as_str().into()]
    }
}

/// Which key's history: a team's tally or an event's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    Tally,
    Score,
}

/// `scoreboard.history(kind, name)`, kind `"tally"` or `"score"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub kind: HistoryKind,
    pub name: String,
}

impl Call for History {
    const METHOD: Method = Method::History;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(2, 2)?;
        let kind = match params.arg::<&str>(0, "kind")? {
            "tally" => HistoryKind::Tally,
            "score" => HistoryKind::Score,
            _ => {
                return Err(Fault::invalid_params(
                    "argument 1 (kind) must be \"tally\" or \"score\"",
                ))
            }
        };
        Ok(History {
            kind,
            name: text(params, 1, "name")?,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        let kind = match self.kind {
            HistoryKind::Tally => "tally",
            HistoryKind::Score => "score",
        };
        vec![kind.into(), self.name.as_str().into()]
    }
}

/// Requests holding a password print it redacted.
macro_rules! redacted_debug {
    ($name:ident { $($field:ident),* }) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), &self.$field))*
                    .field("password", &"<redacted>")
                    .finish()
            }
        }
    };
}

redacted_debug!(IncrementMedalTally { team, medal });
redacted_debug!(SetScore { event, score });
redacted_debug!(IncrementMedal {
    team,
    medal,
    request_id
});
redacted_debug!(SetEventScore {
    event,
    score,
    request_id
});

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<C: Call + PartialEq + std::fmt::Debug>(call: C) {
        let params = Params::new(call.to_params());
        assert_eq!(C::from_params(&params).unwrap(), call);
        assert!(Request::parse(C::METHOD, &params).is_ok());
    }

    #[test]
    fn every_request_reads_back_what_it_writes() {
        round_trip(GetMedalTally {
            team: "Gaul".into(),
            client_id: Some(Value::Int(3)),
        });
        round_trip(GetScore {
            event: "Stone Curling".into(),
            client_id: None,
        });
        round_trip(IncrementMedalTally {
            team: "Gaul".into(),
            medal: "gold".into(),
            password: "pw".into(),
        });
        round_trip(SetScore {
            event: "Stone Curling".into(),
            score: "3-1".into(),
            password: "pw".into(),
        });
        round_trip(RegisterClient {
            host: "::1".into(),
            port: 8005,
            events: vec!["Stone Curling".into()],
            teams: vec![],
        });
        round_trip(Roster);
        round_trip(MedalTable);
        round_trip(Tally {
            team: "Rome".into(),
        });
        round_trip(Score { event: "x".into() });
        round_trip(IncrementMedal {
            team: "Gaul".into(),
            medal: "gold".into(),
            password: "pw".into(),
            request_id: Some("r1".into()),
        });
        round_trip(SetEventScore {
            event: "e".into(),
            score: "s".into(),
            password: "pw".into(),
            request_id: None,
        });
        round_trip(Subscribe {
            callback_url: "http://127.0.0.1:9/".into(),
            events: vec!["e".into()],
            teams: vec!["t".into()],
            lease_seconds: Some(30),
        });
        round_trip(Unsubscribe {
            callback_url: "http://127.0.0.1:9/".into(),
        });
        round_trip(History {
            kind: HistoryKind::Score,
            name: "e".into(),
        });
    }

    #[test]
    fn numeric_scores_become_their_text() {
        let score = |v: Value| {
            let p = Params::new(vec!["e".into(), v, "pw".into()]);
            SetScore::from_params(&p).map(|s| s.score)
        };
        assert_eq!(score(Value::Int(3)).unwrap(), "3");
        assert_eq!(score(Value::Double(2.5)).unwrap(), "2.5");
        assert_eq!(score(Value::Double(3.0)).unwrap(), "3.0");
        assert_eq!(score(Value::Double(1e20)).unwrap(), "1e+20");
        assert_eq!(score(Value::Double(1e-7)).unwrap(), "1e-7");
        assert!(score(Value::Bool(true)).is_err());
    }

    #[test]
    fn bad_arguments_name_themselves() {
        let p = Params::new(vec![
            Value::Array(vec!["h".into(), Value::Int(70_000)]),
            Value::Array(vec![]),
            Value::Array(vec![]),
        ]);
        let err = RegisterClient::from_params(&p).unwrap_err();
        assert!(err.message.contains("port"), "{err}");
        let p = Params::new(vec![
            Value::Array(vec!["h".into(), Value::Int(1)]),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![]),
        ]);
        let err = RegisterClient::from_params(&p).unwrap_err();
        assert!(err.message.contains("events"), "{err}");
        let p = Params::new(vec!["medal".into(), "Gaul".into()]);
        assert!(History::from_params(&p).is_err());
        let secret = IncrementMedal {
            team: "Gaul".into(),
            medal: "gold".into(),
            password: "hunter2".into(),
            request_id: None,
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
