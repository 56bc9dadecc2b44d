//! The old system's text formats, exactly as its clients print them, each
//! written next to the parser that reads it back (the tablet reads pushes,
//! tests read replies).
//!
//! ```text
//! get_medal_tally   Team Gaul has:\n3 gold medals\n1 silver medals\n0 bronze medals\nas of 2023-11-14 22:13:20 UTC\n
//! get_score         Gaul 3, Rome 1 [2023-11-14 22:13:20 UTC]\n
//! score push        Stone Curling: Gaul 3, Rome 1
//! medal ack         Medal tally of Gaul updated: 3 gold, 1 silver, 0 bronze\n
//! score ack         Score of Stone Curling updated\n
//! ```

use super::{Score, Tally};

/// A tally as `get_medal_tally` answers it and as it is pushed.
pub fn tally(t: &Tally) -> String {
    format!(
        "Team {} has:\n{} gold medals\n{} silver medals\n{} bronze medals\nas of {}\n",
        t.team,
        t.gold,
        t.silver,
        t.bronze,
        format_time(t.updated)
    )
}

/// The team a [`tally`] text is about, read from its first line alone.
pub fn tally_team(text: &str) -> Option<&str> {
    text.strip_prefix("Team ")?
        .split_once(" has:")
        .map(|(team, _)| team)
}

/// What [`tally`] wrote, read back: `(team, gold, silver, bronze)`.
pub fn parse_tally(text: &str) -> Option<(String, i64, i64, i64)> {
    let rest = text.strip_prefix("Team ")?;
    let (team, rest) = rest.split_once(" has:\n")?;
    let mut lines = rest.lines();
    let mut count =
        |suffix: &str| -> Option<i64> { lines.next()?.strip_suffix(suffix)?.trim().parse().ok() };
    let gold = count(" gold medals")?;
    let silver = count(" silver medals")?;
    let bronze = count(" bronze medals")?;
    Some((team.to_owned(), gold, silver, bronze))
}

/// A score as `get_score` answers it: `"{score} [{time}]\n"`.
pub fn score(s: &Score) -> String {
    format!("{} [{}]\n", s.score, format_time(s.updated))
}

/// A score as it is pushed to old tablets: `"{event}: {score}"` (the time
/// travels as the callback's second argument).
pub fn score_push(s: &Score) -> String {
    format!("{}: {}", s.event, s.score)
}

/// What [`score_push`] wrote, read back: `(event, score)`. The event is
/// everything before the first `": "`, so scores may hold colons.
pub fn parse_score_push(text: &str) -> Option<(&str, &str)> {
    text.split_once(": ")
}

/// The acknowledgement of `increment_medal_tally`.
pub fn medal_ack(t: &Tally) -> String {
    format!(
        "Medal tally of {} updated: {} gold, {} silver, {} bronze\n",
        t.team, t.gold, t.silver, t.bronze
    )
}

/// The acknowledgement of `set_score`.
pub fn score_ack(event: &str) -> String {
    format!("Score of {event} updated\n")
}

/// The acknowledgement of `register_client`.
pub fn register_ack(callback_url: &str) -> String {
    format!("Registered {callback_url}\n")
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

    fn gaul() -> Tally {
        Tally {
            team: "Gaul".into(),
            gold: 3,
            silver: 1,
            bronze: 0,
            version: 7,
            updated: 1_700_000_000.5,
        }
    }

    #[test]
    fn tallies_read_back_what_was_written() {
        let t = gaul();
        assert_eq!(
            tally(&t),
            "Team Gaul has:\n3 gold medals\n1 silver medals\n0 bronze medals\nas of 2023-11-14 22:13:20 UTC\n"
        );
        assert_eq!(parse_tally(&tally(&t)), Some(("Gaul".into(), 3, 1, 0)));
        assert_eq!(parse_tally("Team Gaul has:\n3 gold medals\n"), None);
        assert_eq!(tally_team("Team Gaul has:\n3 gold medals\n"), Some("Gaul"));
        assert_eq!(tally_team("Gaul: 3"), None);
        assert_eq!(parse_tally("Score of Gaul"), None);
        assert_eq!(
            medal_ack(&t),
            "Medal tally of Gaul updated: 3 gold, 1 silver, 0 bronze\n"
        );
    }

    #[test]
    fn scores_read_back_what_was_written() {
        let s = Score {
            event: "Stone Curling".into(),
            score: "Gaul 3: Rome 1".into(),
            version: 8,
            updated: 0.0,
        };
        assert_eq!(score(&s), "Gaul 3: Rome 1 [never]\n");
        assert_eq!(score_push(&s), "Stone Curling: Gaul 3: Rome 1");
        assert_eq!(
            parse_score_push(&score_push(&s)),
            Some(("Stone Curling", "Gaul 3: Rome 1"))
        );
        assert_eq!(
            score_ack("Stone Curling"),
            "Score of Stone Curling updated\n"
        );
        assert_eq!(register_ack("http://h:1/"), "Registered http://h:1/\n");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(format_time(0.0), "never");
        assert_eq!(format_time(f64::NAN), "never");
    }
}
