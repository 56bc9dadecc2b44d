//! Any event, not only the old roster: a database created from a roster
//! file, and password-gated roster writes (add a team or an event, revoke or
//! correct a medal) made through the balancer, which reach every front-end's
//! roster, cache and pushes through the update log, and which refuse bad
//! names without changing anything. Real binaries on loopback.

mod cluster_support;
mod support;

use std::time::Duration;

use cluster_support::{db_snapshot, CallbackServer, Cluster, ClusterConfig, PASSWORD};
use podium::api::{faults, HistoryKind};
use podium::rpc::ClientError;
use podium::store::Entry;
use support::wait_until;

/// How long a change may take to reach every front-end (push mode: ms;
/// pull mode: one 200 ms interval). Far below the one-hour cache TTL.
const FRESH_DEADLINE: Duration = Duration::from_secs(15);

fn roster_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("roster.toml");
    std::fs::write(
        &path,
        "teams = [\"Aurochs\", \"Boars\", \"Cranes\"]\nevents = [\"Menhir Toss\", \"Dolmen Dash\"]\n",
    )
    .expect("writing the roster file");
    path
}

fn fault_code(result: Result<impl std::fmt::Debug, ClientError>) -> i32 {
    match result {
        Err(ClientError::Fault(f)) => f.code,
        other => panic!("want a fault, got {other:?}"),
    }
}

/// Property: a database made with `--roster` has exactly that roster, as
/// every front-end and the balancer report it.
#[test]
fn a_new_database_takes_its_roster_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ClusterConfig {
        roster: Some(roster_file(dir.path())),
        ..ClusterConfig::default()
    });
    for rpc in [cluster.balancer(), cluster.frontend(0), cluster.frontend(1)] {
        let roster = rpc.block_on(rpc.api().roster()).expect("the roster");
        assert_eq!(roster.teams, ["Aurochs", "Boars", "Cranes"]);
        assert_eq!(roster.events, ["Menhir Toss", "Dolmen Dash"]);
    }
    let table = cluster.balancer().medal_table();
    assert_eq!(table.len(), 3);
    // Names are case-insensitive here too.
    let ack = cluster
        .balancer()
        .increment_medal("boars", "GOLD", None)
        .expect("a medal for a team of the file");
    assert_eq!(ack.tally().team, "Boars");
}

/// Property: a team or an event added through the balancer is known to
/// every front-end (roster, medal table, tallies, scores) without a
/// restart, and a new team's first medal is pushed to a tablet following it.
#[test]
fn added_teams_and_events_reach_every_front_end() {
    let cluster = Cluster::start(ClusterConfig::default());
    let lb = cluster.balancer();
    let ack = lb
        .block_on(lb.api().add_team("Britons", PASSWORD, None))
        .expect("adding a team");
    assert_eq!(ack.entry, Entry::TeamAdded("Britons".into()));
    let ack = lb
        .block_on(lb.api().add_event("Menhir Toss", PASSWORD, None))
        .expect("adding an event");
    assert_eq!(ack.entry, Entry::EventAdded("Menhir Toss".into()));
    for i in 0..2 {
        let fe = cluster.frontend(i);
        let knows = wait_until(FRESH_DEADLINE, || {
            fe.block_on(fe.api().roster()).is_ok_and(|r| {
                r.teams.iter().any(|t| t == "Britons")
                    && r.events.iter().any(|e| e == "Menhir Toss")
            })
        });
        assert!(knows, "front-end {i} never learnt the new team and event");
        let table = fe.medal_table();
        assert!(
            table.iter().any(|t| t.team == "Britons"),
            "front-end {i}'s medal table lacks the new team: {table:?}"
        );
    }
    // The new names work like the old ones, through the old API too.
    let tablet = CallbackServer::start();
    let registered = lb.call(
        "register_client",
        &[
            podium::rpc::Value::Array(vec!["127.0.0.1".into(), i64::from(tablet.port()).into()]),
            podium::rpc::Value::Array(vec!["Menhir Toss".into()]),
            podium::rpc::Value::Array(vec!["britons".into()]),
        ],
    );
    assert!(registered.is_ok(), "{registered:?}");
    lb.increment_medal("Britons", "silver", None)
        .expect("a medal");
    lb.set_score("menhir toss", "Obelix 1 - Asterix 0", None)
        .expect("a score");
    assert!(
        tablet
            .wait_for(FRESH_DEADLINE, |p| p
                .text
                .starts_with("Team Britons has:\n0 gold medals\n1 silver medals"))
            .is_some(),
        "the new team's medal was not pushed: {:?}",
        tablet.received()
    );
    assert!(
        tablet
            .wait_for(FRESH_DEADLINE, |p| p.text
                == "Menhir Toss: Obelix 1 - Asterix 0")
            .is_some(),
        "the new event's score was not pushed: {:?}",
        tablet.received()
    );
    let text = lb.ok("get_score", &["MENHIR TOSS".into(), 1.into()]);
    assert!(
        text.as_str()
            .is_some_and(|t| t.starts_with("Obelix 1 - Asterix 0 [")),
        "{text:?}"
    );
}

/// Property: a bad name (empty, too long, a control character, or a clash
/// with an existing name in any case) gets INVALID_VALUE and changes
/// nothing in the db.
#[test]
fn bad_names_are_refused_and_change_nothing() {
    let cluster = Cluster::start(ClusterConfig::default());
    let lb = cluster.balancer();
    let before = db_snapshot(&cluster.db_url());
    let long = "x".repeat(65);
    for name in ["", "   ", "gAuL", long.as_str(), "tab\there"] {
        let code = fault_code(lb.block_on(lb.api().add_team(name, PASSWORD, None)));
        assert_eq!(code, faults::INVALID_VALUE, "team {name:?}");
    }
    let code = fault_code(lb.block_on(lb.api().add_event("stone CURLING", PASSWORD, None)));
    assert_eq!(code, faults::INVALID_VALUE);
    let code = fault_code(lb.block_on(lb.api().add_team("Britons", "wrong password", None)));
    assert_eq!(code, faults::UNAUTHORIZED);
    assert_eq!(
        db_snapshot(&cluster.db_url()),
        before,
        "a refused write changed the db"
    );
    let roster = lb.block_on(lb.api().roster()).unwrap();
    assert_eq!(roster.teams.len(), 5);
}

/// Property: a medal revoked (a disqualification) or a tally corrected
/// through the balancer is what every front-end then serves, what a tablet
/// following the team is pushed, and what the team's history shows; a
/// revoke of a medal the team does not have is refused and changes nothing.
#[test]
fn revoked_and_corrected_medals_follow_everywhere() {
    let cluster = Cluster::start(ClusterConfig::default());
    let lb = cluster.balancer();
    lb.increment_medal("Rome", "gold", None).unwrap();
    lb.increment_medal("Rome", "gold", None).unwrap();
    // Both front-ends cache Rome's tally with two golds.
    for i in 0..2 {
        let seen = cluster.wait_tally(i, "Rome", FRESH_DEADLINE, |t| t.gold == 2);
        assert!(seen.is_ok(), "front-end {i} never saw two golds");
    }
    let tablet = CallbackServer::start();
    let sub = lb.call(
        "register_client",
        &[
            podium::rpc::Value::Array(vec!["127.0.0.1".into(), i64::from(tablet.port()).into()]),
            podium::rpc::Value::Array(vec![]),
            podium::rpc::Value::Array(vec!["Rome".into()]),
        ],
    );
    assert!(sub.is_ok(), "{sub:?}");
    let ack = lb
        .block_on(lb.api().revoke_medal("rome", "Gold", PASSWORD, None))
        .expect("revoking a gold");
    assert!(matches!(&ack.entry, Entry::Tally(t) if t.gold == 1));
    for i in 0..2 {
        let seen = cluster.wait_tally(i, "Rome", FRESH_DEADLINE, |t| t.gold == 1);
        assert!(seen.is_ok(), "front-end {i} still serves the revoked medal");
    }
    assert!(
        tablet
            .wait_for(FRESH_DEADLINE, |p| p
                .text
                .starts_with("Team Rome has:\n1 gold medals"))
            .is_some(),
        "the revoke was not pushed: {:?}",
        tablet.received()
    );
    let ack = lb
        .block_on(lb.api().set_medals("Rome", [0, 3, 1], PASSWORD, None))
        .expect("a correction");
    assert!(matches!(&ack.entry, Entry::Tally(t) if (t.gold, t.silver, t.bronze) == (0, 3, 1)));
    for i in 0..2 {
        let seen = cluster.wait_tally(i, "Rome", FRESH_DEADLINE, |t| {
            (t.gold, t.silver, t.bronze) == (0, 3, 1)
        });
        assert!(seen.is_ok(), "front-end {i} never served the correction");
    }
    // Nothing left to revoke: refused, and the db is unchanged.
    let before = db_snapshot(&cluster.db_url());
    let code = fault_code(lb.block_on(lb.api().revoke_medal("Rome", "gold", PASSWORD, None)));
    assert_eq!(code, faults::INVALID_VALUE);
    let code = fault_code(lb.block_on(lb.api().set_medals("Rome", [-1, 0, 0], PASSWORD, None)));
    assert_eq!(code, faults::INVALID_VALUE);
    assert_eq!(db_snapshot(&cluster.db_url()), before);
    // The history holds every step, oldest first.
    let history = lb.history("tally", "Rome");
    let golds: Vec<i64> = history
        .iter()
        .map(|c| match &c.entry {
            Entry::Tally(t) => t.gold,
            other => panic!("a tally's history holds {other:?}"),
        })
        .collect();
    assert_eq!(golds, [1, 2, 1, 0]);
    let api_history = lb
        .block_on(lb.api().history(HistoryKind::Tally, "rome"))
        .unwrap();
    assert_eq!(api_history.len(), 4);
}
