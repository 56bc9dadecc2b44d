//! `podium-feeder`: publishes scores and medals (the old Cacofonix). A
//! simulated-games mode for demos, and one-shot writes for scripts.
//!
//! Writes use the structured methods with a request id of our own, so a
//! write retried after a timeout is applied once. A write refused for now
//! (rate limited, after failed passwords from the same address) is retried
//! after the wait the server names, with the same request id.
//!
//! Every kind of write is one [`Update`] variant: its subcommand, its line
//! in an updates file ([`parse_updates`]), its call ([`Feeder::apply`]) and
//! its words ([`Update`]'s `Display`). A new kind (add a team, revoke a
//! medal) adds one variant and one arm in each.

pub mod flags;

use std::fmt;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom as _;
use rand::Rng;
use tracing::{info, warn};

use crate::api::{faults, Client, WriteAck};
use crate::rpc::ClientError;
use crate::scoreboard::{Medal, Roster};
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::store::Entry;

/// Attempts per write at most, the first included.
pub const WRITE_ATTEMPTS: u32 = 5;
/// A write is not retried once this long has passed since its first
/// attempt (waits included).
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// Pause after the first transport failure; it doubles after each.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Added to the wait a rate-limited refusal names, which is rounded to a
/// tenth of a second.
const RATE_LIMIT_MARGIN: Duration = Duration::from_millis(100);

/// One update, as a file line or a subcommand describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Score {
        event: String,
        score: String,
    },
    Medal {
        team: String,
        medal: String,
    },
    /// Takes one medal back (a disqualification).
    Revoke {
        team: String,
        medal: String,
    },
    /// Sets a team's counts outright (a correction).
    Medals {
        team: String,
        counts: [i64; 3],
    },
    /// A new team joins the roster.
    Team {
        name: String,
    },
    /// A new event joins the roster.
    Event {
        name: String,
    },
}

impl fmt::Display for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Update::Score { event, score } => write!(f, "score of {event} set to {score:?}"),
            Update::Medal { team, medal } => write!(f, "{medal} medal to {team}"),
            Update::Revoke { team, medal } => write!(f, "{medal} medal taken back from {team}"),
            Update::Medals {
                team,
                counts: [g, s, b],
            } => write!(
                f,
                "medals of {team} set to {g} gold, {s} silver, {b} bronze"
            ),
            Update::Team { name } => write!(f, "team {name} added"),
            Update::Event { name } => write!(f, "event {name} added"),
        }
    }
}

/// What a write did, in words: the old acknowledgement text and the
/// version the write got.
pub fn describe_ack(ack: &WriteAck) -> String {
    let what = match &ack.entry {
        Entry::Tally(t) => crate::scoreboard::text::medal_ack(t),
        Entry::Score(s) => crate::scoreboard::text::score_ack(&s.event),
        Entry::TeamAdded(name) => format!("Team {name} added"),
        Entry::EventAdded(name) => format!("Event {name} added"),
        Entry::Subscribed(s) => format!("{} subscribed", s.url),
        Entry::Unsubscribed { url, .. } => format!("{url} unsubscribed"),
    };
    let again = if ack.duplicate {
        ", already applied before"
    } else {
        ""
    };
    format!("{} (version {}{again})", what.trim_end(), ack.version)
}

/// Why a write failed, in words.
pub fn describe_error(e: &ClientError) -> String {
    match e {
        ClientError::Fault(f) => format!("the server refused it: {} (fault {})", f.message, f.code),
        other => other.to_string(),
    }
}

/// How long to wait before trying a failed write again, or `None` to give
/// up: after `attempts` tries, `elapsed` since the first. A rate-limited
/// refusal waits as long as the server says; a transport failure, an
/// "unavailable" or an "outcome unknown" fault (the write may or may not
/// have been applied: the request id makes a second arrival harmless) waits 100 ms, then twice as
/// long each time; other faults and bad URLs are final.
pub fn retry_pause(error: &ClientError, attempts: u32, elapsed: Duration) -> Option<Duration> {
    if attempts >= WRITE_ATTEMPTS {
        return None;
    }
    let backoff = FIRST_RETRY_PAUSE * 2u32.saturating_pow(attempts.saturating_sub(1));
    let pause = match error {
        ClientError::Fault(f)
            if matches!(f.code, faults::UNAVAILABLE | faults::OUTCOME_UNKNOWN) =>
        {
            backoff
        }
        ClientError::Fault(f) => faults::retry_after(f)? + RATE_LIMIT_MARGIN,
        ClientError::Url(_) | ClientError::Encode(_) => return None,
        _ => backoff,
    };
    (elapsed + pause <= WRITE_DEADLINE).then_some(pause)
}

/// Why an updates file was refused.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct FileError {
    pub line: usize,
    pub reason: String,
}

/// Parses an updates file: one update per line, fields separated by tabs or
/// by ` | `, `#` starts a comment. A score is the rest of its line, so it
/// may hold ` | ` itself.
///
/// ```text
/// score | Stone Curling | Gaul 3, Rome 1
/// medal | Gaul | gold
/// revoke | Gaul | gold
/// medals | Gaul | 2 | 1 | 0
/// team | Britons
/// event | Menhir Toss
/// ```
///
/// # Errors
/// The first malformed line; nothing is applied from a malformed file.
pub fn parse_updates(text: &str) -> Result<Vec<Update>, FileError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sep = if line.contains('\t') { '\t' } else { '|' };
        let (kind, rest) = line.split_once(sep).unwrap_or((line, ""));
        let fields = |n: usize| -> Vec<String> {
            rest.splitn(n, sep).map(|f| f.trim().to_owned()).collect()
        };
        let update = match (kind.trim(), fields(2).as_slice()) {
            ("score", [event, score]) if !event.is_empty() => Some(Update::Score {
                event: event.clone(),
                score: score.clone(),
            }),
            ("medal", [team, medal]) if !team.is_empty() => Some(Update::Medal {
                team: team.clone(),
                medal: medal.clone(),
            }),
            ("revoke", [team, medal]) if !team.is_empty() => Some(Update::Revoke {
                team: team.clone(),
                medal: medal.clone(),
            }),
            ("medals", _) => match fields(4).as_slice() {
                [team, g, s, b] if !team.is_empty() => {
                    let count = |c: &String| c.parse::<i64>().ok().filter(|n| *n >= 0);
                    match (count(g), count(s), count(b)) {
                        (Some(g), Some(s), Some(b)) => Some(Update::Medals {
                            team: team.clone(),
                            counts: [g, s, b],
                        }),
                        _ => None,
                    }
                }
                _ => None,
            },
            ("team", [name]) if !name.is_empty() => Some(Update::Team { name: name.clone() }),
            ("event", [name]) if !name.is_empty() => Some(Update::Event { name: name.clone() }),
            _ => None,
        };
        match update {
            Some(update) => out.push(update),
            None => {
                return Err(FileError {
                    line: i + 1,
                    reason: "expected `score | EVENT | SCORE`, `medal | TEAM | MEDAL`, \
                             `revoke | TEAM | MEDAL`, `medals | TEAM | GOLD | SILVER | BRONZE`, \
                             `team | NAME` or `event | NAME`"
                        .to_owned(),
                })
            }
        }
    }
    Ok(out)
}

/// A feeder bound to one server (normally the balancer).
#[derive(Debug, Clone)]
pub struct Feeder {
    client: Client,
    password: Secret,
}

impl Feeder {
    pub fn new(client: Client, password: Secret) -> Self {
        Feeder { client, password }
    }

    /// Applies one update; returns the server's acknowledgement. Retries
    /// as [`retry_pause`] says, with the same request id.
    ///
    /// # Errors
    /// A fault (wrong password, unknown name) at once; transport failures
    /// and rate-limited refusals once [`retry_pause`] gives up.
    pub async fn apply(&self, update: &Update) -> Result<WriteAck, ClientError> {
        let request_id = crate::cluster::new_request_id("feeder");
        let password = self.password.expose();
        let start = Instant::now();
        let mut attempts = 1;
        loop {
            let outcome = match update {
                Update::Score { event, score } => {
                    self.client
                        .set_score(event, score, &password, Some(&request_id))
                        .await
                }
                Update::Medal { team, medal } => {
                    self.client
                        .increment_medal(team, medal, &password, Some(&request_id))
                        .await
                }
                Update::Revoke { team, medal } => {
                    self.client
                        .revoke_medal(team, medal, &password, Some(&request_id))
                        .await
                }
                Update::Medals { team, counts } => {
                    self.client
                        .set_medals(team, *counts, &password, Some(&request_id))
                        .await
                }
                Update::Team { name } => {
                    self.client
                        .add_team(name, &password, Some(&request_id))
                        .await
                }
                Update::Event { name } => {
                    self.client
                        .add_event(name, &password, Some(&request_id))
                        .await
                }
            };
            let error = match outcome {
                Ok(ack) => return Ok(ack),
                Err(e) => e,
            };
            let Some(pause) = retry_pause(&error, attempts, start.elapsed()) else {
                return Err(error);
            };
            warn!(
                "{update}: {}; trying again in {:.1} s (attempt {} of at most {WRITE_ATTEMPTS})",
                describe_error(&error),
                pause.as_secs_f64(),
                attempts + 1
            );
            tokio::time::sleep(pause).await;
            attempts += 1;
        }
    }

    /// Plays simulated games: at `per_sec` updates a second, random scores
    /// with flavour text and, now and then, a podium. Stops after `count`
    /// updates when given, or when `shutdown` is triggered. Failures are
    /// logged and the games go on.
    ///
    /// # Errors
    /// Only when the server refuses to give the roster.
    pub async fn simulate(
        &self,
        per_sec: f64,
        count: Option<u64>,
        rng: &mut (impl Rng + Send),
        shutdown: Shutdown,
    ) -> Result<u64, ClientError> {
        // The cluster may still be starting: wait for it, but not for faults.
        let roster: Roster = loop {
            match self.client.roster().await {
                Ok(roster) => break roster,
                Err(e) if e.fault().is_some_and(|f| f.code != faults::UNAVAILABLE) => {
                    return Err(e)
                }
                Err(e) => {
                    warn!("waiting for the server: {}", describe_error(&e));
                    tokio::select! {
                        _ = shutdown.triggered() => return Ok(0),
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        };
        let period = Duration::from_secs_f64(1.0 / per_sec.clamp(0.01, 10_000.0));
        let mut ticker = tokio::time::interval(period);
        let mut sent = 0;
        let mut failed = 0;
        while count.is_none_or(|c| sent + failed < c) {
            tokio::select! {
                _ = shutdown.triggered() => break,
                _ = ticker.tick() => {}
            }
            for update in simulated_updates(&roster, rng) {
                match self.apply(&update).await {
                    Ok(ack) => {
                        info!("published: {}", describe_ack(&ack));
                        sent += 1;
                    }
                    Err(e) => {
                        warn!("not published: {update}: {}", describe_error(&e));
                        failed += 1;
                    }
                }
            }
        }
        info!("games over: {sent} updates published, {failed} failed");
        Ok(sent)
    }
}

const FLAVOUR: [&str; 6] = [
    "after a thrilling final stone",
    "in front of a roaring crowd",
    "despite a soggy start",
    "as the druid's potion wore off",
    "with a last-second splash",
    "to the bard's dismay",
];

/// One simulated moment: a score most of the time, a podium (three medals
/// to three different teams) sometimes.
pub fn simulated_updates(roster: &Roster, rng: &mut impl Rng) -> Vec<Update> {
    if roster.teams.len() >= 3 && rng.gen_bool(0.25) {
        let podium: Vec<&String> = roster.teams.choose_multiple(rng, 3).collect();
        return Medal::ALL
            .iter()
            .zip(podium)
            .map(|(medal, team)| Update::Medal {
                team: team.clone(),
                medal: medal.as_str().to_owned(),
            })
            .collect();
    }
    let rivals: Vec<&String> = roster.teams.choose_multiple(rng, 2).collect();
    let (Some(event), [a, b]) = (roster.events.choose(rng), rivals.as_slice()) else {
        return Vec::new();
    };
    let score = format!(
        "{a} {} - {b} {}, {}",
        rng.gen_range(0..10),
        rng.gen_range(0..10),
        FLAVOUR.choose(rng).unwrap_or(&"")
    );
    vec![Update::Score {
        event: event.clone(),
        score,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_update_files() {
        let text = "# games\nscore | Stone Curling | Gaul 3 | Rome 1\n\nmedal\tGaul\tgold\n";
        assert_eq!(
            parse_updates(text).unwrap(),
            vec![
                Update::Score {
                    event: "Stone Curling".into(),
                    score: "Gaul 3 | Rome 1".into()
                },
                Update::Medal {
                    team: "Gaul".into(),
                    medal: "gold".into()
                },
            ]
        );
        assert_eq!(parse_updates("medal | Gaul").unwrap_err().line, 1);
        assert_eq!(parse_updates("ok\nnope | a | b").unwrap_err().line, 1);
    }

    #[test]
    fn parses_roster_changes_and_corrections() {
        let text =
            "team | Britons\nevent\tMenhir Toss\nrevoke | Gaul | gold\nmedals | Rome | 2 | 0 | 1\n";
        assert_eq!(
            parse_updates(text).unwrap(),
            vec![
                Update::Team {
                    name: "Britons".into()
                },
                Update::Event {
                    name: "Menhir Toss".into()
                },
                Update::Revoke {
                    team: "Gaul".into(),
                    medal: "gold".into()
                },
                Update::Medals {
                    team: "Rome".into(),
                    counts: [2, 0, 1]
                },
            ]
        );
        for bad in [
            "team |",
            "medals | Rome | 2 | 0",
            "medals | Rome | 2 | -1 | 0",
            "medals | Rome | two | 0 | 0",
            "revoke | Gaul",
        ] {
            assert!(parse_updates(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Update::Revoke {
                team: "Gaul".into(),
                medal: "gold".into()
            }
            .to_string(),
            "gold medal taken back from Gaul"
        );
    }

    #[test]
    fn updates_and_acks_read_as_words() {
        let medal = Update::Medal {
            team: "Gaul".into(),
            medal: "gold".into(),
        };
        assert_eq!(medal.to_string(), "gold medal to Gaul");
        let score = Update::Score {
            event: "Stone Curling".into(),
            score: "Gaul 3, Rome 1".into(),
        };
        assert_eq!(
            score.to_string(),
            "score of Stone Curling set to \"Gaul 3, Rome 1\""
        );
        let ack = WriteAck {
            version: 12,
            entry: Entry::Tally(crate::scoreboard::Tally {
                team: "Gaul".into(),
                gold: 3,
                silver: 1,
                bronze: 0,
                version: 12,
                updated: 0.0,
            }),
            duplicate: false,
        };
        assert_eq!(
            describe_ack(&ack),
            "Medal tally of Gaul updated: 3 gold, 1 silver, 0 bronze (version 12)"
        );
        let refused = ClientError::Fault(faults::unauthorized("wrong password"));
        assert_eq!(
            describe_error(&refused),
            "the server refused it: wrong password (fault 1)"
        );
    }

    #[test]
    fn refused_writes_wait_as_told_and_transport_failures_back_off() {
        let limited = ClientError::Fault(faults::rate_limited(
            "too many failed password attempts",
            Duration::from_millis(1_500),
        ));
        let start = Duration::ZERO;
        assert_eq!(
            retry_pause(&limited, 1, start),
            Some(Duration::from_millis(1_600))
        );
        // Bounded in attempts and in total time.
        assert_eq!(retry_pause(&limited, WRITE_ATTEMPTS, start), None);
        assert_eq!(retry_pause(&limited, 1, WRITE_DEADLINE), None);
        // Other faults are final.
        let unknown = ClientError::Fault(crate::rpc::Fault::new(faults::UNKNOWN_TEAM, "no"));
        assert_eq!(retry_pause(&unknown, 1, start), None);
        assert_eq!(retry_pause(&ClientError::Url("x".into()), 1, start), None);
        // Transport failures and "unavailable" (outcome maybe unknown):
        // 100 ms, then doubling.
        let down = ClientError::Fault(faults::unavailable("cut off"));
        let unsure = ClientError::Fault(faults::outcome_unknown("timed out", "feeder-1"));
        for down in [ClientError::Connect("refused".into()), down, unsure] {
            let pauses: Vec<_> = (1..=WRITE_ATTEMPTS)
                .map(|n| retry_pause(&down, n, start))
                .collect();
            assert_eq!(
                pauses,
                [100, 200, 400, 800]
                    .map(|ms| Some(Duration::from_millis(ms)))
                    .into_iter()
                    .chain([None])
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn podiums_go_to_three_different_teams() {
        let roster = Roster::default_roster();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut podiums = 0;
        for _ in 0..200 {
            let updates = simulated_updates(&roster, &mut rng);
            if updates.len() == 3 {
                podiums += 1;
                let mut teams: Vec<_> = updates
                    .iter()
                    .map(|u| match u {
                        Update::Medal { team, .. } => team.clone(),
                        _ => panic!("podium holds medals only"),
                    })
                    .collect();
                teams.sort();
                teams.dedup();
                assert_eq!(teams.len(), 3);
            } else {
                assert!(matches!(updates[..], [Update::Score { .. }]));
            }
        }
        assert!(podiums > 20 && podiums < 100, "{podiums}");
    }
}
