//! The callbacks a front-end pushes to tablets: the old tablet's own two
//! methods, written and read here for both sides (the push hub encodes them,
//! the tablet and the benchmark's subscribers serve them).
//!
//! ```text
//! print_score_for_event("Stone Curling: Gaul 3, Rome 1", 1700000000.5)
//! print_medal_tally_for_team("Team Gaul has:\n3 gold medals\n...", 1700000000.5)
//! ```
//!
//! The second argument is the change's cluster time, seconds since the
//! epoch, as a double. Subscribers of `scoreboard.subscribe` also get the
//! change's version as a third argument, so a push that arrives twice (when
//! a front-end died with it in flight) can be dropped.

use std::future::Future;
use std::sync::Arc;

use crate::rpc::codec::{self, EncodeError};
use crate::rpc::{Fault, Methods, Params, Value};
use crate::scoreboard::text;
use crate::store::{Change, Entry};

/// Called on the tablet for a score change.
pub const SCORE_CALLBACK: &str = "print_score_for_event";
/// Called on the tablet for a tally change.
pub const TALLY_CALLBACK: &str = "print_medal_tally_for_team";

/// What a callback carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Callback {
    /// `print_score_for_event(text, time[, version])`: `text` is
    /// `"Event: score"`.
    Score {
        text: String,
        time: f64,
        version: Option<i64>,
    },
    /// `print_medal_tally_for_team(text, time[, version])`: `text` is the
    /// tally's old text format.
    Tally {
        text: String,
        time: f64,
        version: Option<i64>,
    },
}

impl Callback {
    /// The callback that tells a tablet about `change`; none for a change
    /// of the roster, which old tablets have no callback for.
    pub fn of_change(change: &Change) -> Option<Callback> {
        match &change.entry {
            Entry::Score(s) => Some(Callback::Score {
                text: text::score_push(s),
                time: change.timestamp,
                version: None,
            }),
            Entry::Tally(t) => Some(Callback::Tally {
                text: text::tally(t),
                time: change.timestamp,
                version: None,
            }),
            Entry::TeamAdded(_)
            | Entry::EventAdded(_)
            | Entry::Subscribed(_)
            | Entry::Unsubscribed { .. } => None,
        }
    }

    /// The method called on the tablet.
    pub fn method(&self) -> &'static str {
        match self {
            Callback::Score { .. } => SCORE_CALLBACK,
            Callback::Tally { .. } => TALLY_CALLBACK,
        }
    }

    /// The same callback, carrying `version` (for new-style subscribers).
    pub fn with_version(mut self, v: i64) -> Callback {
        let (Callback::Score { version, .. } | Callback::Tally { version, .. }) = &mut self;
        *version = Some(v);
        self
    }

    /// The change's version, when the callback carries it.
    pub fn version(&self) -> Option<i64> {
        let (Callback::Score { version, .. } | Callback::Tally { version, .. }) = self;
        *version
    }

    /// The call's arguments.
    pub fn to_params(&self) -> Vec<Value> {
        let (Callback::Score {
            text,
            time,
            version,
        }
        | Callback::Tally {
            text,
            time,
            version,
        }) = self;
        let mut params = vec![Value::from(text.as_str()), Value::Double(*time)];
        params.extend(version.map(Value::Int));
        params
    }

    /// The whole call, encoded once for every tablet that gets it.
    ///
    /// # Errors
    /// Text XML cannot carry.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::write_call(self.method(), &self.to_params())
    }

    /// Reads a callback of `method`. The time is optional, as some old
    /// tablets were called without it.
    ///
    /// # Errors
    /// An unknown method, or arguments of the wrong type.
    pub fn from_call(method: &str, params: &Params) -> Result<Callback, Fault> {
        params.expect_count(1, 3)?;
        let text = params.arg::<&str>(0, "text")?.to_owned();
        let time = params.opt_arg::<f64>(1, "time_of_update")?.unwrap_or(0.0);
        let version = params.opt_arg::<i64>(2, "version")?;
        match method {
            SCORE_CALLBACK => Ok(Callback::Score {
                text,
                time,
                version,
            }),
            TALLY_CALLBACK => Ok(Callback::Tally {
                text,
                time,
                version,
            }),
            other => Err(Fault::method_not_found(other)),
        }
    }
}

/// Serves both callbacks on `methods`: each received callback goes to
/// `receive`, and the tablet answers `true`.
pub fn serve_callbacks<F, Fut>(methods: &mut Methods, receive: F)
where
    F: Fn(Callback) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let receive = Arc::new(receive);
    for method in [SCORE_CALLBACK, TALLY_CALLBACK] {
        let receive = receive.clone();
        methods.add_overloaded(
            method,
            &[
                &["boolean", "string", "double", "int"],
                &["boolean", "string", "double"],
                &["boolean", "string"],
            ],
            "Callback: shows a pushed update.",
            move |params, _| {
                let receive = receive.clone();
                async move {
                    let callback = Callback::from_call(method, &params)?;
                    receive(callback).await;
                    Ok(Value::Bool(true))
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::Score;

    #[test]
    fn a_change_becomes_the_old_callback_and_reads_back() {
        let change = Change {
            version: 4,
            entry: Entry::Score(Score {
                event: "Stone Curling".into(),
                score: "3-1".into(),
                version: 4,
                updated: 12.5,
            }),
            timestamp: 12.5,
            vclock: vec![],
            request_id: None,
        };
        let cb = Callback::of_change(&change).expect("a score has a callback");
        assert_eq!(
            cb,
            Callback::Score {
                text: "Stone Curling: 3-1".into(),
                time: 12.5,
                version: None,
            }
        );
        let body = cb.encode().unwrap();
        let call = codec::parse_call(&body, Default::default()).unwrap();
        assert_eq!(call.method, SCORE_CALLBACK);
        let back = Callback::from_call(&call.method, &Params::new(call.params)).unwrap();
        assert_eq!(back, cb);
        let untimed = Params::new(vec!["Team Gaul has:\n".into()]);
        assert!(matches!(
            Callback::from_call(TALLY_CALLBACK, &untimed),
            Ok(Callback::Tally { time, .. }) if time == 0.0
        ));
        assert!(Callback::from_call("print_other", &untimed).is_err());
        // New-style subscribers get the version too.
        let versioned = cb.clone().with_version(4);
        let call = codec::parse_call(&versioned.encode().unwrap(), Default::default()).unwrap();
        assert_eq!(call.params.len(), 3);
        let back = Callback::from_call(&call.method, &Params::new(call.params)).unwrap();
        assert_eq!(back.version(), Some(4));
    }
}
