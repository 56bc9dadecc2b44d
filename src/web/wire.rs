//! What the scoreboard's event stream carries, written once for every side
//! (the front-end that encodes it, the balancer that follows it, the page
//! and the benchmark that read it): JSON bodies of server-sent events.
//!
//! ```text
//! event: snapshot            the whole board at a version, first on a stream
//! id: 42
//! data: {"version":42,"teams":[{"team":"Gaul","gold":1,...}],"events":[...]}
//!
//! event: change              one change, id = its db version
//! id: 43
//! data: {"version":43,"time":1700000000.5,"tally":{"team":"Gaul",...}}
//!
//! event: status              the stream's source is (not) live
//! data: {"live":false}
//! ```
//!
//! A change carries exactly one of `tally`, `score`, `team` (a team joined
//! the roster) or `event` (an event did). Subscriptions, which are
//! changes too, are cluster business and never reach a stream.

use serde::{Deserialize, Serialize};

use crate::scoreboard::{Score, Tally};
use crate::store::{Change, Entry};

/// One team's row: its medals, and the version and time of their last
/// change (0 when never changed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamRow {
    pub team: String,
    pub gold: i64,
    pub silver: i64,
    pub bronze: i64,
    pub version: i64,
    pub updated: f64,
}

/// One event's row: its latest score (empty before the first), with the
/// version and time it was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    pub event: String,
    pub score: String,
    pub version: i64,
    pub updated: f64,
}

/// The whole board at `version`: every team in roster order, every event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: i64,
    pub teams: Vec<TeamRow>,
    pub events: Vec<EventRow>,
}

/// One change, as the stream sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub version: i64,
    /// The change's cluster time, seconds since the epoch.
    pub time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tally: Option<TeamRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<EventRow>,
    /// A team joined the roster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// An event joined the roster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// Whether the stream's source is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub live: bool,
}

impl From<&Tally> for TeamRow {
    fn from(t: &Tally) -> TeamRow {
        TeamRow {
            team: t.team.clone(),
            gold: t.gold,
            silver: t.silver,
            bronze: t.bronze,
            version: t.version,
            updated: t.updated,
        }
    }
}

impl From<&Score> for EventRow {
    fn from(s: &Score) -> EventRow {
        EventRow {
            event: s.event.clone(),
            score: s.score.clone(),
            version: s.version,
            updated: s.updated,
        }
    }
}

impl ChangeEvent {
    /// The stream's form of `change`; `None` for changes viewers are not
    /// shown (subscriptions).
    pub fn of(change: &Change) -> Option<ChangeEvent> {
        let mut event = ChangeEvent {
            version: change.version,
            time: change.timestamp,
            tally: None,
            score: None,
            team: None,
            event: None,
        };
        match &change.entry {
            Entry::Tally(t) => event.tally = Some(t.into()),
            Entry::Score(s) => event.score = Some(s.into()),
            Entry::TeamAdded(name) => event.team = Some(name.clone()),
            Entry::EventAdded(name) => event.event = Some(name.clone()),
            Entry::Subscribed(_) | Entry::Unsubscribed { .. } => return None,
        }
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_names_only_what_it_carries_and_reads_back() {
        let change = Change {
            version: 7,
            entry: Entry::Score(Score {
                event: "Stone Curling".into(),
                score: "Gaul 3, Rome \"1\"".into(),
                version: 7,
                updated: 1.5,
            }),
            timestamp: 1.5,
            vclock: vec![],
            request_id: None,
        };
        let event = ChangeEvent::of(&change).unwrap();
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"version":7,"time":1.5,"score":{"event":"Stone Curling","score":"Gaul 3, Rome \"1\"","version":7,"updated":1.5}}"#
        );
        assert_eq!(serde_json::from_str::<ChangeEvent>(&json).unwrap(), event);
    }

    #[test]
    fn subscriptions_never_reach_a_stream() {
        let change = Change {
            version: 8,
            entry: Entry::Unsubscribed {
                url: "http://10.0.0.1:8005/".into(),
                reason: "asked".into(),
            },
            timestamp: 0.0,
            vclock: vec![],
            request_id: None,
        };
        assert!(ChangeEvent::of(&change).is_none());
    }
}
