//! The domain: the roster, medals, tallies and scores, and the text formats
//! the old clients print. Pure; every server and client shares it.

use std::fmt;

use crate::rpc::fault::{self, Fault};
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
                fault::UNKNOWN_MEDAL,
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

/// Teams and events, with their display names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roster {
    pub teams: Vec<String>,
    pub events: Vec<String>,
}

impl Roster {
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
                fault::UNKNOWN_TEAM,
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
                fault::UNKNOWN_EVENT,
                format!("unknown event {:?}", clip(name)),
            )
        })
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

fn find<'a>(names: &'a [String], wanted: &str) -> Option<&'a str> {
    let wanted = wanted.trim();
    names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(wanted) || n.to_lowercase() == wanted.to_lowercase())
        .map(String::as_str)
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

    /// The old text format, exactly as the old tablets print it.
    pub fn to_text(&self) -> String {
        format!(
            "Team {} has:\n{} gold medals\n{} silver medals\n{} bronze medals\nas of {}\n",
            self.team,
            self.gold,
            self.silver,
            self.bronze,
            format_time(self.updated)
        )
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
    /// The old text format: `"{score} [{time}]\n"`.
    pub fn to_text(&self) -> String {
        format!("{} [{}]\n", self.score, format_time(self.updated))
    }

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
            fault::INVALID_VALUE,
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

/// Ranks tallies gold > silver > bronze, then by team name.
pub fn rank(tallies: &mut [Tally]) {
    tallies.sort_by(|a, b| {
        (b.gold, b.silver, b.bronze)
            .cmp(&(a.gold, a.silver, a.bronze))
            .then_with(|| a.team.cmp(&b.team))
    });
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`; "never" for 0.
pub fn format_time(secs: f64) -> String {
    if !(secs.is_finite() && secs > 0.0) {
        return "never".to_owned();
    }
    let total = secs as i64;
    let (days, rem) = (total.div_euclid(86_400), total.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive() {
        let r = Roster::default_roster();
        assert_eq!(r.team("gAuL").unwrap(), "Gaul");
        assert_eq!(r.event(" stone curling ").unwrap(), "Stone Curling");
        assert_eq!(r.team("Atlantis").unwrap_err().code, fault::UNKNOWN_TEAM);
        assert_eq!(r.event("Chess").unwrap_err().code, fault::UNKNOWN_EVENT);
        assert_eq!(Medal::parse("GOLD").unwrap(), Medal::Gold);
        assert_eq!(Medal::parse("tin").unwrap_err().code, fault::UNKNOWN_MEDAL);
        assert_eq!(Roster::from_value(&r.to_value()).unwrap(), r);
    }

    #[test]
    fn old_text_formats() {
        let t = Tally {
            team: "Gaul".into(),
            gold: 3,
            silver: 1,
            bronze: 0,
            version: 7,
            updated: 1_700_000_000.5,
        };
        assert_eq!(
            t.to_text(),
            "Team Gaul has:\n3 gold medals\n1 silver medals\n0 bronze medals\nas of 2023-11-14 22:13:20 UTC\n"
        );
        assert_eq!(Tally::from_value(&t.to_value()).unwrap(), t);
        let s = Score {
            event: "Stone Curling".into(),
            score: "Gaul 3, Rome 1".into(),
            version: 8,
            updated: 0.0,
        };
        assert_eq!(s.to_text(), "Gaul 3, Rome 1 [never]\n");
        assert_eq!(Score::from_value(&s.to_value()).unwrap(), s);
    }

    #[test]
    fn ranking_is_gold_then_silver_then_bronze() {
        let t = |team: &str, g, s, b| Tally {
            team: team.into(),
            gold: g,
            silver: s,
            bronze: b,
            version: 0,
            updated: 0.0,
        };
        let mut v = vec![
            t("A", 1, 0, 5),
            t("B", 1, 2, 0),
            t("C", 2, 0, 0),
            t("D", 1, 2, 0),
        ];
        rank(&mut v);
        let order: Vec<&str> = v.iter().map(|t| t.team.as_str()).collect();
        assert_eq!(order, ["C", "B", "D", "A"]);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(format_time(0.0), "never");
    }
}
