//! The old system's requests, as its clients send them.

use super::{list, names, score_text, text, Call};
use crate::api::Method;
use crate::rpc::{Fault, Params, Value};

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

redacted_debug!(IncrementMedalTally { team, medal });
redacted_debug!(SetScore { event, score });
