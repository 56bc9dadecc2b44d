//! Typed requests of the public API. Each is read from a call's arguments by
//! the server ([`Call::from_params`]) and written by the client
//! ([`Call::to_params`]), so every wire shape is written once, here
//! (mini-redis's `cmd/` has the same shape).

pub use board::*;
pub use history::*;
pub use old::*;

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
    AddTeam(AddTeam),
    AddEvent(AddEvent),
    RevokeMedal(RevokeMedal),
    SetMedals(SetMedals),
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
            Method::AddTeam => Request::AddTeam(Call::from_params(params)?),
            Method::AddEvent => Request::AddEvent(Call::from_params(params)?),
            Method::RevokeMedal => Request::RevokeMedal(Call::from_params(params)?),
            Method::SetMedals => Request::SetMedals(Call::from_params(params)?),
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

/// A double the way Python prints it: `3.0`, `2.5`, `1e+20`, `1e-07`
/// (Rust's `Debug` picks the same shortest digits and the same switch to an
/// exponent; Python signs the exponent and gives it at least two digits).
fn double_text(d: f64) -> String {
    let shown = format!("{d:?}");
    match shown.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(digits) => ('-', digits),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => shown,
    }
}

/// A request without arguments.
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

/// `Debug` for a request holding a password: the password is redacted.
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

mod board;
mod history;
mod old;

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
            page: None,
        });
        round_trip(History {
            kind: HistoryKind::Tally,
            name: "Gaul".into(),
            page: Some(PageRequest {
                cursor: HistoryCursor::Before(42),
                limit: Some(7),
            }),
        });
        round_trip(History {
            kind: HistoryKind::Tally,
            name: "Gaul".into(),
            page: Some(PageRequest {
                cursor: HistoryCursor::Newest,
                limit: None,
            }),
        });
        round_trip(AddTeam {
            name: "Britons".into(),
            password: "pw".into(),
            request_id: Some("r".into()),
        });
        round_trip(AddEvent {
            name: "Menhir Toss".into(),
            password: "pw".into(),
            request_id: None,
        });
        round_trip(RevokeMedal {
            team: "Gaul".into(),
            medal: "gold".into(),
            password: "pw".into(),
            request_id: None,
        });
        round_trip(SetMedals {
            team: "Gaul".into(),
            gold: 1,
            silver: 0,
            bronze: 2,
            password: "pw".into(),
            request_id: Some("r".into()),
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
        assert_eq!(score(Value::Double(1e-7)).unwrap(), "1e-07");
        assert_eq!(score(Value::Double(1.5e300)).unwrap(), "1.5e+300");
        assert_eq!(score(Value::Double(1e16)).unwrap(), "1e+16");
        assert_eq!(score(Value::Double(0.0001)).unwrap(), "0.0001");
        assert_eq!(score(Value::Double(-0.5)).unwrap(), "-0.5");
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
