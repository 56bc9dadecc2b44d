//! The roster: the teams and events of the games, with their display
//! names. Names match case-insensitively (as the old clients send them),
//! and the rules for a new name live here, so the db, the feeder and a
//! roster file all refuse the same names.

use std::path::Path;

use super::{clip, Medal, DEFAULT_EVENTS, DEFAULT_TEAMS};
use crate::api::faults;
use crate::rpc::{Fault, Value};

/// Longest team or event name, in characters: names are shown on tablets
/// and scoreboards, and every push carries them.
pub const MAX_NAME_CHARS: usize = 64;
/// Most teams, and most events, a roster holds: a results service for a
/// real event has a few hundred at most, and every one is a row every
/// medal table carries.
pub const MAX_ROSTER_ENTRIES: usize = 1000;

/// Teams and events, with their display names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roster {
    pub teams: Vec<String>,
    pub events: Vec<String>,
}

impl Roster {
    /// The old system's roster: what a new database starts with unless
    /// told otherwise.
    pub fn default_roster() -> Roster {
        Roster {
            teams: DEFAULT_TEAMS.iter().map(|s| (*s).to_owned()).collect(),
            events: DEFAULT_EVENTS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The team's display name, matched case-insensitively.
    ///
    /// # Errors
    /// `UNKNOWN_TEAM`.
    pub fn team(&self, name: &str) -> Result<&str, Fault> {
        find(&self.teams, name).ok_or_else(|| {
            Fault::new(
                faults::UNKNOWN_TEAM,
                format!("unknown team {:?}", clip(name)),
            )
        })
    }

    /// The event's display name, matched case-insensitively.
    ///
    /// # Errors
    /// `UNKNOWN_EVENT`.
    pub fn event(&self, name: &str) -> Result<&str, Fault> {
        find(&self.events, name).ok_or_else(|| {
            Fault::new(
                faults::UNKNOWN_EVENT,
                format!("unknown event {:?}", clip(name)),
            )
        })
    }

    /// Checks a new team's name against the rules and the teams there are.
    ///
    /// # Errors
    /// `INVALID_VALUE` naming the rule broken.
    pub fn check_new_team(&self, name: &str) -> Result<String, Fault> {
        check_new(&self.teams, name, "team")
    }

    /// Checks a new event's name against the rules and the events there are.
    ///
    /// # Errors
    /// `INVALID_VALUE` naming the rule broken.
    pub fn check_new_event(&self, name: &str) -> Result<String, Fault> {
        check_new(&self.events, name, "event")
    }

    /// Reads a roster file (TOML):
    ///
    /// ```toml
    /// teams = ["Gaul", "Rome", "Carthage"]
    /// events = ["Stone Curling", "Stone Skating"]
    /// ```
    ///
    /// # Errors
    /// An unreadable or malformed file, or a name the rules refuse.
    pub fn from_file(path: &Path) -> Result<Roster, RosterFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| RosterFileError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Roster::from_toml(&text)
    }

    /// Reads a roster file's text (see [`Roster::from_file`]).
    ///
    /// # Errors
    /// Malformed TOML, or a name the rules refuse.
    pub fn from_toml(text: &str) -> Result<Roster, RosterFileError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            teams: Vec<String>,
            events: Vec<String>,
        }
        let file: File =
            toml::from_str(text).map_err(|e| RosterFileError::Syntax(e.message().to_owned()))?;
        let mut roster = Roster::default();
        for team in &file.teams {
            let name = roster.check_new_team(team).map_err(RosterFileError::Name)?;
            roster.teams.push(name);
        }
        for event in &file.events {
            let name = roster
                .check_new_event(event)
                .map_err(RosterFileError::Name)?;
            roster.events.push(name);
        }
        if roster.teams.is_empty() || roster.events.is_empty() {
            return Err(RosterFileError::Empty);
        }
        Ok(roster)
    }

    pub fn to_value(&self) -> Value {
        let list = |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
        Value::structure([
            ("teams", list(&self.teams)),
            ("events", list(&self.events)),
            (
                "medals",
                Value::Array(Medal::ALL.iter().map(|m| Value::from(m.as_str())).collect()),
            ),
        ])
    }

    /// # Errors
    /// A value not shaped like [`Roster::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<Roster, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("roster is not a struct"))?;
        let list = |name: &str| -> Result<Vec<String>, Fault> {
            s.get(name)
                .and_then(Value::as_array)
                .ok_or_else(|| Fault::internal(format!("roster lacks {name}")))?
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Fault::internal("roster name is not a string"))
                })
                .collect()
        };
        Ok(Roster {
            teams: list("teams")?,
            events: list("events")?,
        })
    }
}

/// The display name matching `wanted`, case-insensitively.
fn find<'a>(names: &'a [String], wanted: &str) -> Option<&'a str> {
    let wanted = wanted.trim();
    names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(wanted) || n.to_lowercase() == wanted.to_lowercase())
        .map(String::as_str)
}

/// Why a roster file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RosterFileError {
    #[error("cannot read roster file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("roster file: {0}")]
    Syntax(String),
    #[error("roster file: {}", .0.message)]
    Name(Fault),
    #[error("roster file: at least one team and one event are needed")]
    Empty,
}

/// A new name, trimmed, if the rules allow it among `existing`.
fn check_new(existing: &[String], name: &str, what: &str) -> Result<String, Fault> {
    let name = name.trim();
    let refuse = |why: String| Err(faults::invalid_value(format!("{what} name {why}")));
    if name.is_empty() {
        return refuse("is empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return refuse(format!("is longer than {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return refuse(format!("{:?} holds a control character", clip(name)));
    }
    if let Some(taken) = find(existing, name) {
        return refuse(format!("{:?} clashes with {taken:?}", clip(name)));
    }
    if existing.len() >= MAX_ROSTER_ENTRIES {
        return refuse(format!(
            "{:?}: the roster already holds {MAX_ROSTER_ENTRIES}",
            clip(name)
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive() {
        let r = Roster::default_roster();
        assert_eq!(r.team("gAuL").unwrap(), "Gaul");
        assert_eq!(r.event(" stone curling ").unwrap(), "Stone Curling");
        assert_eq!(r.team("Atlantis").unwrap_err().code, faults::UNKNOWN_TEAM);
        assert_eq!(r.event("Chess").unwrap_err().code, faults::UNKNOWN_EVENT);
        assert_eq!(Roster::from_value(&r.to_value()).unwrap(), r);
    }

    #[test]
    fn new_names_follow_the_rules() {
        let r = Roster::default_roster();
        assert_eq!(r.check_new_team("  Britons ").unwrap(), "Britons");
        assert_eq!(r.check_new_event("Menhir Toss").unwrap(), "Menhir Toss");
        for bad in [
            "",
            "   ",
            "GAUL",
            "gaul ",
            "a\u{7}b",
            &"x".repeat(MAX_NAME_CHARS + 1),
        ] {
            let err = r.check_new_team(bad).unwrap_err();
            assert_eq!(err.code, faults::INVALID_VALUE, "{bad:?}");
        }
        assert!(r.check_new_event("stone SKATING").is_err());
        assert!(r.check_new_team(&"é".repeat(MAX_NAME_CHARS)).is_ok());
    }

    #[test]
    fn roster_files_are_read_and_checked() {
        let r = Roster::from_toml("teams = [\"Gaul\", \"Rome\"]\nevents = [\"Stone Curling\"]\n")
            .unwrap();
        assert_eq!(r.teams, ["Gaul", "Rome"]);
        assert_eq!(r.events, ["Stone Curling"]);
        for bad in [
            "teams = [\"Gaul\", \"gaul\"]\nevents = [\"e\"]",
            "teams = [\"\"]\nevents = [\"e\"]",
            "teams = []\nevents = [\"e\"]",
            "teams = [\"Gaul\"]",
            "teams = [\"Gaul\"]\nevents = [\"e\"]\nmedals = []",
            "teams = \"Gaul\"\nevents = [\"e\"]",
            "not toml at all",
        ] {
            assert!(Roster::from_toml(bad).is_err(), "{bad}");
        }
    }
}
