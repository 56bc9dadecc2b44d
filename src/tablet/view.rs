//! What a tablet shows: the latest tally of each team and the latest score
//! of each event it follows, whether they were polled or pushed, with the
//! time of each; and which pushes it has already shown.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use crate::api::callback::Callback;
use crate::scoreboard::text;

/// Recent pushes remembered to drop duplicates.
const DEDUP_WINDOW: usize = 256;
/// Shown for a followed name before its first value arrives.
const WAITING: &str = "(waiting)";

/// The tablet's view.
#[derive(Debug, Default)]
pub struct View {
    title: String,
    /// Latest tally text per team followed (the old text format).
    pub(super) teams: BTreeMap<String, String>,
    /// Latest `score [time]` per event followed.
    pub(super) events: BTreeMap<String, String>,
    /// The pushes shown lately: a push that arrives twice (when a
    /// front-end died with it in flight) is shown once. Known by its
    /// version when it carries one, else by its text and time.
    recent: VecDeque<(bool, String, u64)>,
    /// Updates received (after de-duplication).
    pub updates: u64,
}

impl View {
    pub fn new(title: String, teams: &[String], events: &[String]) -> Self {
        let waiting = |names: &[String]| {
            names
                .iter()
                .map(|n| (n.clone(), WAITING.to_owned()))
                .collect()
        };
        View {
            title,
            teams: waiting(teams),
            events: waiting(events),
            ..View::default()
        }
    }

    /// Records a push; false if it was a duplicate of a recent one.
    pub fn push(&mut self, callback: &Callback) -> bool {
        let (is_score, text, time, version) = match callback {
            Callback::Score {
                text,
                time,
                version,
            } => (true, text, *time, *version),
            Callback::Tally {
                text,
                time,
                version,
            } => (false, text, *time, *version),
        };
        let id = match version {
            Some(v) => (is_score, String::new(), v.unsigned_abs()),
            None => (is_score, text.clone(), time.to_bits()),
        };
        if self.recent.contains(&id) {
            return false;
        }
        if self.recent.len() == DEDUP_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
        if is_score {
            // "Event: score", with the time shown as a polled score shows it.
            let (event, score) = text::parse_score_push(text).unwrap_or((text.as_str(), ""));
            let shown = format!("{score} [{}]", text::format_time(time));
            insert(&mut self.events, event, shown);
        } else {
            let name = text::tally_team(text).unwrap_or_else(|| text.lines().next().unwrap_or(""));
            insert(&mut self.teams, name, text.trim_end().to_owned());
        }
        self.updates += 1;
        true
    }

    /// Sets a polled tally (the old text format); true if it changed.
    pub fn set_tally(&mut self, team: &str, text: &str) -> bool {
        self.set(false, team, text)
    }

    /// Sets a polled score (`get_score`'s `score [time]`); true if it changed.
    pub fn set_score(&mut self, event: &str, text: &str) -> bool {
        self.set(true, event, text)
    }

    fn set(&mut self, is_score: bool, name: &str, text: &str) -> bool {
        let target = if is_score {
            &mut self.events
        } else {
            &mut self.teams
        };
        let text = text.trim_end().to_owned();
        if target.get(name) == Some(&text) {
            return false;
        }
        target.insert(name.to_owned(), text);
        self.updates += 1;
        true
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "=== {} ===", self.title);
        let _ = writeln!(out, "-- medal tallies --");
        for (team, text) in &self.teams {
            if text.starts_with("Team ") {
                let _ = writeln!(out, "{}", text.replace('\n', " | "));
            } else {
                let _ = writeln!(out, "{team}: {text}");
            }
        }
        let _ = writeln!(out, "-- scores --");
        for (event, text) in &self.events {
            let _ = writeln!(out, "{event}: {text}");
        }
        out
    }
}

/// Sets the value of the followed name matching `name` (case-insensitively),
/// or of `name` itself when none matches.
fn insert(target: &mut BTreeMap<String, String>, name: &str, value: String) {
    let key = target
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned());
    target.insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(text: &str, time: f64) -> Callback {
        Callback::Score {
            text: text.into(),
            time,
            version: None,
        }
    }

    #[test]
    fn duplicate_pushes_show_once() {
        let mut v = View::new("t".into(), &["Gaul".into()], &["Stone Curling".into()]);
        assert!(v.push(&score("Stone Curling: 3-1", 10.0)));
        assert!(!v.push(&score("Stone Curling: 3-1", 10.0)));
        assert!(v.push(&score("Stone Curling: 3-1", 11.0)));
        assert!(v.push(&Callback::Tally {
            text: "Team Gaul has:\n1 gold medals\n".into(),
            time: 12.0,
            version: None,
        }));
        assert_eq!(v.updates, 3);
        let shown = v.render();
        assert!(shown.contains("Stone Curling: 3-1"), "{shown}");
        assert!(shown.contains("Team Gaul has: | 1 gold medals"), "{shown}");
        assert!(!v.set_tally("Gaul", "Team Gaul has:\n1 gold medals\n"));
        // A versioned push is known by its version.
        let versioned = score("Stone Curling: 4-1", 13.0).with_version(9);
        assert!(v.push(&versioned));
        assert!(!v.push(&versioned));
        assert_eq!(v.updates, 4);
    }

    #[test]
    fn pushed_scores_show_their_time_as_polled_ones_do() {
        let mut v = View::new("t".into(), &[], &["Stone Curling".into()]);
        assert!(v.push(&score("stone curling: Gaul 3: Rome 1", 1_700_000_000.0)));
        let shown = v.render();
        assert!(
            shown.contains("Stone Curling: Gaul 3: Rome 1 [2023-11-14 22:13:20 UTC]"),
            "{shown}"
        );
        // A poll of the same value changes nothing.
        assert!(!v.set_score(
            "Stone Curling",
            "Gaul 3: Rome 1 [2023-11-14 22:13:20 UTC]\n"
        ));
    }
}
