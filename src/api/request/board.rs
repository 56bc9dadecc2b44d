//! The structured requests of the `scoreboard.` namespace, for new clients.

use super::{list, names, opt_text, score_text, text, Call};
use crate::api::Method;
use crate::rpc::{Fault, Params, Value};

no_params!(Roster, Method::Roster, "`scoreboard.roster()`.");
no_params!(
    MedalTable,
    Method::MedalTable,
    "`scoreboard.medal_table()`."
);

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

/// A write of one medal: `scoreboard.increment_medal(team, medal,
/// password[, request_id])` and `scoreboard.revoke_medal(...)` have the
/// same shape.
macro_rules! medal_write {
    ($name:ident, $method:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, PartialEq)]
        pub struct $name {
            pub team: String,
            pub medal: String,
            pub password: String,
            /// Makes a retry apply once; the server makes one when absent.
            pub request_id: Option<String>,
        }

        impl Call for $name {
            const METHOD: Method = $method;
            fn from_params(params: &Params) -> Result<Self, Fault> {
                params.expect_count(3, 4)?;
                Ok($name {
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

        redacted_debug!($name {
            team,
            medal,
            request_id
        });
    };
}

medal_write!(
    IncrementMedal,
    Method::IncrementMedal,
    "`scoreboard.increment_medal(team, medal, password[, request_id])`."
);

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

redacted_debug!(SetEventScore {
    event,
    score,
    request_id
});

/// A roster write: `scoreboard.add_team(name, password[, request_id])` and
/// `scoreboard.add_event(...)` have the same shape.
macro_rules! roster_write {
    ($name:ident, $method:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, PartialEq)]
        pub struct $name {
            pub name: String,
            pub password: String,
            /// As [`IncrementMedal::request_id`].
            pub request_id: Option<String>,
        }

        impl Call for $name {
            const METHOD: Method = $method;
            fn from_params(params: &Params) -> Result<Self, Fault> {
                params.expect_count(2, 3)?;
                Ok($name {
                    name: text(params, 0, "name")?,
                    password: text(params, 1, "password")?,
                    request_id: opt_text(params, 2, "request_id")?,
                })
            }
            fn to_params(&self) -> Vec<Value> {
                let mut p = vec![self.name.as_str().into(), self.password.as_str().into()];
                p.extend(self.request_id.as_deref().map(Value::from));
                p
            }
        }

        redacted_debug!($name { name, request_id });
    };
}

roster_write!(
    AddTeam,
    Method::AddTeam,
    "`scoreboard.add_team(name, password[, request_id])`."
);
roster_write!(
    AddEvent,
    Method::AddEvent,
    "`scoreboard.add_event(name, password[, request_id])`."
);

medal_write!(
    RevokeMedal,
    Method::RevokeMedal,
    "`scoreboard.revoke_medal(team, medal, password[, request_id])`: a disqualification takes one medal back."
);

/// `scoreboard.set_medals(team, gold, silver, bronze, password[, request_id])`:
/// a correction sets the counts outright.
#[derive(Clone, PartialEq)]
pub struct SetMedals {
    pub team: String,
    pub gold: i64,
    pub silver: i64,
    pub bronze: i64,
    pub password: String,
    /// As [`IncrementMedal::request_id`].
    pub request_id: Option<String>,
}

impl Call for SetMedals {
    const METHOD: Method = Method::SetMedals;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(5, 6)?;
        Ok(SetMedals {
            team: text(params, 0, "team")?,
            gold: params.arg(1, "gold")?,
            silver: params.arg(2, "silver")?,
            bronze: params.arg(3, "bronze")?,
            password: text(params, 4, "password")?,
            request_id: opt_text(params, 5, "request_id")?,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        let mut p = vec![
            self.team.as_str().into(),
            Value::Int(self.gold),
            Value::Int(self.silver),
            Value::Int(self.bronze),
            self.password.as_str().into(),
        ];
        p.extend(self.request_id.as_deref().map(Value::from));
        p
    }
}

redacted_debug!(SetMedals {
    team,
    gold,
    silver,
    bronze,
    request_id
});
