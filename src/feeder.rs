//! `podium-feeder`: publishes scores and medals (the old Cacofonix). A
//! simulated-games mode for demos, and one-shot writes for scripts.
//!
//! Writes use the structured methods with a request id of our own, so a
//! write retried after a timeout is applied once.

use std::time::Duration;

use rand::seq::SliceRandom as _;
use rand::Rng;
use tracing::{info, warn};

use crate::api::{faults, Client, WriteAck};
use crate::rpc::ClientError;
use crate::scoreboard::{Medal, Roster};
use crate::secret::Secret;
use crate::shutdown::Shutdown;

/// Attempts per write before giving up (only transport failures are retried).
const WRITE_ATTEMPTS: u32 = 3;

/// One update, as a file line or a subcommand describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Score { event: String, score: String },
    Medal { team: String, medal: String },
}

/// Why an updates file was refused.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct FileError {
    pub line: usize,
    pub reason: String,
}

/// Parses an updates file: one update per line, fields separated by tabs or
/// by ` | `, `#` starts a comment.
///
/// ```text
/// score | Stone Curling | Gaul 3, Rome 1
/// medal | Gaul | gold
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
        let fields: Vec<&str> = if line.contains('\t') {
            line.split('\t').map(str::trim).collect()
        } else {
            line.splitn(3, '|').map(str::trim).collect()
        };
        let err = |reason: &str| FileError {
            line: i + 1,
            reason: reason.to_owned(),
        };
        match fields.as_slice() {
            ["score", event, score] if !event.is_empty() => out.push(Update::Score {
                event: (*event).to_owned(),
                score: (*score).to_owned(),
            }),
            ["medal", team, medal] if !team.is_empty() => out.push(Update::Medal {
                team: (*team).to_owned(),
                medal: (*medal).to_owned(),
            }),
            _ => {
                return Err(err(
                    "expected `score | EVENT | SCORE` or `medal | TEAM | MEDAL`",
                ))
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

    /// Applies one update; returns the server's acknowledgement.
    ///
    /// # Errors
    /// A fault (wrong password, unknown name) at once; transport failures
    /// after `WRITE_ATTEMPTS` tries with the same request id.
    pub async fn apply(&self, update: &Update) -> Result<WriteAck, ClientError> {
        let request_id = crate::cluster::new_request_id("feeder");
        let password = self.password.expose();
        let mut attempt = 1;
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
            };
            match outcome {
                Err(e) if attempt < WRITE_ATTEMPTS && e.fault().is_none() => {
                    warn!(error = %e, attempt, "write failed; retrying with the same request id");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                    attempt += 1;
                }
                other => return other,
            }
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
                    warn!(error = %e, "waiting for the server");
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
                    Ok(_) => {
                        info!(?update, "published");
                        sent += 1;
                    }
                    Err(e) => {
                        warn!(?update, error = %e, "publish failed");
                        failed += 1;
                    }
                }
            }
        }
        info!(sent, failed, "games over");
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
