//! The public API, written once: every method a front-end answers and the
//! balancer forwards ([`Method`], with its signatures and help), the typed
//! requests both sides share ([`Request`]), the typed client every Podium
//! program uses ([`Client`]), the callbacks pushed to tablets
//! ([`callback`]) and Podium's fault codes ([`faults`]).
//!
//! A server binds the table with an exhaustive `match` on [`Request`], so a
//! method without a handler does not compile.

pub mod callback;
mod client;
pub mod faults;
mod request;

pub use client::{Client, Health, Subscription, WriteAck};
pub use request::*;

/// The health probe the balancer calls; public on every front-end, but not
/// forwarded by the balancer.
pub const HEALTH_METHOD: &str = "podium.health";

/// One public method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `get_medal_tally(team, client_id)`: the team's medals as text.
    GetMedalTally,
    /// `get_score(event, client_id)`: the event's latest score as text.
    GetScore,
    /// `increment_medal_tally(team, medal, password)`: a text acknowledgement.
    IncrementMedalTally,
    /// `set_score(event, score, password)`: a text acknowledgement.
    SetScore,
    /// `register_client([host, port], events, teams)`: push to an old tablet.
    RegisterClient,
    /// `scoreboard.roster()`.
    Roster,
    /// `scoreboard.tally(team)`.
    Tally,
    /// `scoreboard.medal_table()`.
    MedalTable,
    /// `scoreboard.score(event)`.
    Score,
    /// `scoreboard.increment_medal(team, medal, password[, request_id])`.
    IncrementMedal,
    /// `scoreboard.set_score(event, score, password[, request_id])`.
    SetEventScore,
    /// `scoreboard.subscribe(callback_url, events, teams[, lease_seconds])`.
    Subscribe,
    /// `scoreboard.unsubscribe(callback_url)`.
    Unsubscribe,
    /// `scoreboard.history(kind, name[, cursor[, limit]])`.
    History,
    /// `scoreboard.add_team(name, password[, request_id])`.
    AddTeam,
    /// `scoreboard.add_event(name, password[, request_id])`.
    AddEvent,
    /// `scoreboard.revoke_medal(team, medal, password[, request_id])`.
    RevokeMedal,
    /// `scoreboard.set_medals(team, gold, silver, bronze, password[, request_id])`.
    SetMedals,
}

impl Method {
    /// Every public method, in the order `system.listMethods` shows them.
    pub const ALL: [Method; 18] = [
        Method::GetMedalTally,
        Method::GetScore,
        Method::IncrementMedalTally,
        Method::SetScore,
        Method::RegisterClient,
        Method::Roster,
        Method::Tally,
        Method::MedalTable,
        Method::Score,
        Method::IncrementMedal,
        Method::SetEventScore,
        Method::Subscribe,
        Method::Unsubscribe,
        Method::History,
        Method::AddTeam,
        Method::AddEvent,
        Method::RevokeMedal,
        Method::SetMedals,
    ];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Method::GetMedalTally => "get_medal_tally",
            Method::GetScore => "get_score",
            Method::IncrementMedalTally => "increment_medal_tally",
            Method::SetScore => "set_score",
            Method::RegisterClient => "register_client",
            Method::Roster => "scoreboard.roster",
            Method::Tally => "scoreboard.tally",
            Method::MedalTable => "scoreboard.medal_table",
            Method::Score => "scoreboard.score",
            Method::IncrementMedal => "scoreboard.increment_medal",
            Method::SetEventScore => "scoreboard.set_score",
            Method::Subscribe => "scoreboard.subscribe",
            Method::Unsubscribe => "scoreboard.unsubscribe",
            Method::History => "scoreboard.history",
            Method::AddTeam => "scoreboard.add_team",
            Method::AddEvent => "scoreboard.add_event",
            Method::RevokeMedal => "scoreboard.revoke_medal",
            Method::SetMedals => "scoreboard.set_medals",
        }
    }

    /// The method of a wire name.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// One `[return type, param types...]` per arity accepted, in XML-RPC's
    /// own type names only, as code generators (xmlrpc-c's
    /// `xml-rpc-api2cpp`) read `system.methodSignature`.
    pub fn signatures(self) -> &'static [&'static [&'static str]] {
        const S: &str = "string";
        match self {
            // The old clients send an int client id; it is not used.
            Method::GetMedalTally | Method::GetScore => &[&[S, S, "int"], &[S, S]],
            Method::IncrementMedalTally => &[&[S, S, S, S]],
            // Perl, PHP and Ruby clients send a numeric score as a number.
            Method::SetScore => &[&[S, S, S, S], &[S, S, "int", S], &[S, S, "double", S]],
            Method::RegisterClient => &[&[S, "array", "array", "array"]],
            Method::Roster => &[&["struct"]],
            Method::Tally | Method::Score => &[&["struct", S]],
            Method::MedalTable => &[&["array"]],
            Method::IncrementMedal => &[&["struct", S, S, S], &["struct", S, S, S, S]],
            Method::SetEventScore => &[
                &["struct", S, S, S],
                &["struct", S, "int", S],
                &["struct", S, "double", S],
                &["struct", S, S, S, S],
                &["struct", S, "int", S, S],
                &["struct", S, "double", S, S],
            ],
            Method::Subscribe => &[
                &["struct", S, "array", "array"],
                &["struct", S, "array", "array", "int"],
            ],
            Method::Unsubscribe => &[&["boolean", S]],
            Method::History => &[
                &["array", S, S],
                &["struct", S, S, S],
                &["struct", S, S, S, "int"],
            ],
            Method::AddTeam | Method::AddEvent => &[&["struct", S, S], &["struct", S, S, S]],
            Method::RevokeMedal => &[&["struct", S, S, S], &["struct", S, S, S, S]],
            Method::SetMedals => &[
                &["struct", S, "int", "int", "int", S],
                &["struct", S, "int", "int", "int", S, S],
            ],
        }
    }

    /// The text `system.methodHelp` shows.
    pub fn help(self) -> &'static str {
        match self {
            Method::GetMedalTally => "get_medal_tally(team, client_id): the team's medals as text.",
            Method::GetScore => "get_score(event, client_id): the event's latest score as text.",
            Method::IncrementMedalTally => {
                "increment_medal_tally(team, medal, password): adds one medal."
            }
            Method::SetScore => "set_score(event, score, password): sets the event's score.",
            Method::RegisterClient => {
                "register_client([host, port], events, teams): push updates to the tablet's own XML-RPC server."
            }
            Method::Roster => "Teams, events and medals.",
            Method::Tally => "One team's tally: {team, gold, silver, bronze, version, updated}.",
            Method::MedalTable => {
                "Every team's tally, ranked gold > silver > bronze, each with its rank."
            }
            Method::Score => "One event's score: {event, score, version, updated}.",
            Method::IncrementMedal => {
                "increment_medal(team, medal, password[, request_id]): {version, tally, duplicate}."
            }
            Method::SetEventScore => {
                "set_score(event, score, password[, request_id]): {version, score, duplicate}."
            }
            Method::Subscribe => {
                "subscribe(callback_url, events, teams[, lease_seconds]): push to the URL until the lease ends; call again to renew."
            }
            Method::Unsubscribe => {
                "unsubscribe(callback_url): ends a subscription; false if there was none."
            }
            Method::History => {
                "history(kind, name[, cursor[, limit]]): the updates of a tally or score, oldest first, with version, timestamp and vector clock. With two arguments, the newest 100, as an array. With a cursor (\"\" for the newest), a page {updates, next} of the newest updates before it, at most limit (1 to 500, default 100); pass next back for the page before, until it is \"\"."
            }
            Method::AddTeam => {
                "add_team(name, password[, request_id]): adds a team to the roster: {version, team, duplicate}."
            }
            Method::AddEvent => {
                "add_event(name, password[, request_id]): adds an event to the roster: {version, event, duplicate}."
            }
            Method::RevokeMedal => {
                "revoke_medal(team, medal, password[, request_id]): takes one medal back (a disqualification): {version, tally, duplicate}."
            }
            Method::SetMedals => {
                "set_medals(team, gold, silver, bronze, password[, request_id]): corrects a team's counts: {version, tally, duplicate}."
            }
        }
    }

    /// Writes get a request id so that a retry applies once.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Method::IncrementMedalTally
                | Method::SetScore
                | Method::IncrementMedal
                | Method::SetEventScore
                | Method::AddTeam
                | Method::AddEvent
                | Method::RevokeMedal
                | Method::SetMedals
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XML-RPC's own type names: what a signature may use.
    const XMLRPC_TYPES: [&str; 10] = [
        "string",
        "int",
        "i8",
        "boolean",
        "double",
        "dateTime.iso8601",
        "base64",
        "struct",
        "array",
        "nil",
    ];

    #[test]
    fn names_round_trip_and_signatures_use_xmlrpc_types_only() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
            assert!(!m.help().is_empty());
            let sigs = m.signatures();
            assert!(!sigs.is_empty(), "{m:?}");
            for sig in sigs {
                assert!(
                    sig.iter().all(|t| XMLRPC_TYPES.contains(t)),
                    "{m:?}: {sig:?}"
                );
            }
            // One signature per shape: no two the same.
            for (i, a) in sigs.iter().enumerate() {
                assert!(sigs[i + 1..].iter().all(|b| a != b), "{m:?} repeats {a:?}");
            }
        }
        assert_eq!(Method::from_name("db.tally"), None);
        assert!(Method::ALL
            .iter()
            .all(|m| !m.name().starts_with("db.") && !m.name().starts_with("election.")));
    }
}
