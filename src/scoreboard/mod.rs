//! The domain: the roster, medals, tallies and scores. Pure; every server
//! and client shares it. [`text`] holds the old clients' text formats and
//! [`rank`](mod@rank) the medal table's order.

pub mod rank;
pub mod roster;
pub mod subscription;
pub mod text;

pub use rank::rank;
pub use roster::Roster;

use std::fmt;

use crate::api::faults;
use crate::rpc::Fault;
use crate::rpc::{Struct, Value};

/// The old system's teams, the default roster of a new database.
pub const DEFAULT_TEAMS: [&str; 5] = ["Gaul", "Rome", "Carthage", "Greece", "Persia"];
/// The old system's events.
pub const DEFAULT_EVENTS: [&str; 4] = [
    "Stone Curling",
    "Stone Skating",
    "Underwater Stone Weaving",
    "Synchronized Stone Swimming",
];
/// Longest score text accepted: scores are short flavour lines, and every
/// byte of one is pushed to every tablet.
pub const MAX_SCORE_BYTES: usize = 1024;

/// A medal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Medal {
    Gold,
    Silver,
    Bronze,
}

impl Medal {
    pub const ALL: [Medal; 3] = [Medal::Gold, Medal::Silver, Medal::Bronze];

    /// Case-insensitive, as the old clients send it.
    ///
    /// # Errors
    /// An unknown medal, as the `UNKNOWN_MEDAL` fault.
    pub fn parse(name: &str) -> Result<Medal, Fault> {
        match name.trim().to_ascii_lowercase().as_str() {
            "gold" => Ok(Medal::Gold),
            "silver" => Ok(Medal::Silver),
            "bronze" => Ok(Medal::Bronze),
            _ => Err(Fault::new(
                faults::UNKNOWN_MEDAL,
                format!("unknown medal {:?}: gold, silver or bronze", clip(name)),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Medal::Gold => "gold",
            Medal::Silver => "silver",
            Medal::Bronze => "bronze",
        }
    }
}

impl fmt::Display for Medal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At most 64 characters of caller text, for error messages.
pub fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The cache and change-feed key of a team's tally or an event's score.
pub fn tally_key(team: &str) -> String {
    format!("tally:{}", team.to_lowercase())
}

/// See [`tally_key`].
pub fn score_key(event: &str) -> String {
    format!("score:{}", event.to_lowercase())
}

/// One team's medals, with the version and time of its last change.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub team: String,
    pub gold: i64,
    pub silver: i64,
    pub bronze: i64,
    /// Version of the last write to this tally; 0 if never written.
    pub version: i64,
    /// Cluster time of that write, seconds since the epoch; 0 if never written.
    pub updated: f64,
}

impl Tally {
    pub fn count(&self, medal: Medal) -> i64 {
        match medal {
            Medal::Gold => self.gold,
            Medal::Silver => self.silver,
            Medal::Bronze => self.bronze,
        }
    }

    pub fn to_value(&self) -> Value {
        Value::structure([
            ("team", Value::from(self.team.as_str())),
            ("gold", Value::Int(self.gold)),
            ("silver", Value::Int(self.silver)),
            ("bronze", Value::Int(self.bronze)),
            ("version", Value::Int(self.version)),
            ("updated", Value::Double(self.updated)),
        ])
    }

    /// # Errors
    /// A value not shaped like [`Tally::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<Tally, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("tally is not a struct"))?;
        Ok(Tally {
            team: get_str(s, "team")?,
            gold: get_int(s, "gold")?,
            silver: get_int(s, "silver")?,
            bronze: get_int(s, "bronze")?,
            version: get_int(s, "version")?,
            updated: get_f64(s, "updated")?,
        })
    }
}

/// One event's latest score.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub event: String,
    pub score: String,
    pub version: i64,
    pub updated: f64,
}

impl Score {
    pub fn to_value(&self) -> Value {
        Value::structure([
            ("event", Value::from(self.event.as_str())),
            ("score", Value::from(self.score.as_str())),
            ("version", Value::Int(self.version)),
            ("updated", Value::Double(self.updated)),
        ])
    }

    /// # Errors
    /// A value not shaped like [`Score::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<Score, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("score is not a struct"))?;
        Ok(Score {
            event: get_str(s, "event")?,
            score: get_str(s, "score")?,
            version: get_int(s, "version")?,
            updated: get_f64(s, "updated")?,
        })
    }
}

/// Checks a score text before it is stored.
///
/// # Errors
/// `INVALID_VALUE` for an over-long score.
pub fn check_score(score: &str) -> Result<(), Fault> {
    if score.len() > MAX_SCORE_BYTES {
        return Err(Fault::new(
            faults::INVALID_VALUE,
            format!("score longer than {MAX_SCORE_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub(crate) fn get_str(s: &Struct, name: &str) -> Result<String, Fault> {
    s.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Fault::internal(format!("missing string {name}")))
}

pub(crate) fn get_int(s: &Struct, name: &str) -> Result<i64, Fault> {
    s.get(name)
        .and_then(Value::as_i64)
        .ok_or_else(|| Fault::internal(format!("missing int {name}")))
}

pub(crate) fn get_f64(s: &Struct, name: &str) -> Result<f64, Fault> {
    match s.get(name) {
        Some(Value::Double(d)) => Ok(*d),
        Some(Value::Int(i)) => Ok(*i as f64),
        _ => Err(Fault::internal(format!("missing double {name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medals_are_case_insensitive() {
        assert_eq!(Medal::parse("GOLD").unwrap(), Medal::Gold);
        assert_eq!(Medal::parse(" bronze ").unwrap(), Medal::Bronze);
        assert_eq!(Medal::parse("tin").unwrap_err().code, faults::UNKNOWN_MEDAL);
    }

    #[test]
    fn values_round_trip() {
        let t = Tally {
            team: "Gaul".into(),
            gold: 3,
            silver: 1,
            bronze: 0,
            version: 7,
            updated: 1_700_000_000.5,
        };
        assert_eq!(Tally::from_value(&t.to_value()).unwrap(), t);
        let s = Score {
            event: "Stone Curling".into(),
            score: "Gaul 3, Rome 1".into(),
            version: 8,
            updated: 0.0,
        };
        assert_eq!(Score::from_value(&s.to_value()).unwrap(), s);
    }
}
