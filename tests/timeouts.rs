//! Deadlines nest: a client (5 s, the default of Podium's clients) waits
//! longer than the balancer (4.5 s for every attempt of a call, 2.5 s for
//! one front-end), which waits longer than a front-end waits for the db
//! (2 s). So when the db stalls, the front-ends answer before the balancer
//! gives up on them, and the balancer answers before the client gives up:
//! every write is acknowledged, or refused as not applied, or reported as
//! of unknown outcome with its request id, and retried with that id it is
//! applied exactly once.
//!
//! The db is stopped (SIGSTOP, so it neither answers nor resets: a stall)
//! for 3 s while a client writes through the balancer, one write after
//! another, each with a request id of its own.

mod cluster_support;
mod support;

use std::time::{Duration, Instant};

use cluster_support::{db_snapshot, Cluster, ClusterConfig, Mode, Rpc};
use podium::api::faults;
use podium::rpc::ClientError;
use support::{wait_until, Stream};

/// How long the db is stalled.
const STALL: Duration = Duration::from_secs(3);
/// Writing starts this long before the stall and goes on this long after.
const AROUND: Duration = Duration::from_millis(700);

/// What one write came to.
#[derive(Debug)]
enum Outcome {
    Acked,
    NotApplied(String),
    Unknown(String),
}

#[test]
fn a_stalled_db_leaves_no_write_reported_failed_that_was_applied() {
    let mut cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Push, Mode::Push],
        // The binaries' defaults: what is under test.
        forward_timeout_ms: podium::balancer::DEFAULT_FORWARD_TIMEOUT_MS,
        probe_timeout_ms: 400,
        ..ClusterConfig::default()
    });
    let client = Rpc::with_config(&cluster.balancer_url(), Duration::from_secs(5), None);
    let gold = |cluster: &Cluster| {
        db_snapshot(&cluster.db_url())
            .tallies
            .iter()
            .find(|t| t.team == "Gaul")
            .map_or(0, |t| t.gold)
    };
    let before = gold(&cluster);
    let started = Instant::now();
    let mut stalled = false;
    let mut resumed = false;
    let mut writes: Vec<(String, Outcome, Duration)> = Vec::new();
    for n in 0..1_000 {
        let elapsed = started.elapsed();
        if !stalled && elapsed >= AROUND {
            cluster.db_process().signal("STOP");
            stalled = true;
        }
        if stalled && !resumed && elapsed >= AROUND + STALL {
            cluster.db_process().signal("CONT");
            resumed = true;
        }
        if resumed && elapsed >= AROUND * 2 + STALL {
            break;
        }
        let id = format!("stall-{}-{n}", std::process::id());
        let t = Instant::now();
        let outcome = match client.increment_medal("Gaul", "gold", Some(&id)) {
            Ok(_) => Outcome::Acked,
            Err(ClientError::Fault(f)) if f.code == faults::OUTCOME_UNKNOWN => {
                assert!(
                    f.message.contains(&id) || f.message.contains("or its own"),
                    "{f:?} does not name {id}"
                );
                Outcome::Unknown(f.message)
            }
            Err(ClientError::Fault(f)) if f.code == faults::UNAVAILABLE => {
                Outcome::NotApplied(f.message)
            }
            Err(e) => panic!("write {id} failed outside the protocol: {e}"),
        };
        writes.push((id, outcome, t.elapsed()));
    }
    if !resumed {
        cluster.db_process().signal("CONT");
    }
    for (id, outcome, _) in &writes {
        match outcome {
            Outcome::NotApplied(m) => assert!(
                ["not sent", "not applied", "reached none"]
                    .iter()
                    .any(|says| m.contains(says)),
                "write {id}: an 'unavailable' fault that does not say it was not applied: {m}"
            ),
            Outcome::Unknown(m) => assert!(m.contains("may or may not"), "write {id}: {m}"),
            Outcome::Acked => {}
        }
    }
    let count = |f: fn(&Outcome) -> bool| writes.iter().filter(|w| f(&w.1)).count();
    let acked = count(|o| matches!(o, Outcome::Acked));
    let unknown = count(|o| matches!(o, Outcome::Unknown(_)));
    let refused = count(|o| matches!(o, Outcome::NotApplied(_)));
    eprintln!(
        "{} writes: {acked} acknowledged, {unknown} of unknown outcome, {refused} not applied; \
         slowest {:?}",
        writes.len(),
        writes.iter().map(|w| w.2).max().unwrap_or_default()
    );
    assert!(writes.len() > 3, "too few writes to tell: {writes:?}");

    // Once the db is back, what it holds: every acknowledged write, and of
    // the others only those reported as of unknown outcome.
    assert!(
        wait_until(Duration::from_secs(20), || cluster
            .frontend(0)
            .health()
            .is_ok_and(|h| h.0)
            && cluster.frontend(1).health().is_ok_and(|h| h.0)),
        "the front-ends did not become ready after the stall"
    );
    let applied = gold(&cluster) - before;
    assert!(
        applied >= acked as i64 && applied <= (acked + unknown) as i64,
        "{applied} applied, but {acked} acknowledged and {unknown} of unknown outcome \
         ({refused} reported not applied): a write reported failed was applied: {writes:?}"
    );

    // Retried with their ids, the unacknowledged writes apply exactly once.
    for (id, outcome, _) in &writes {
        if !matches!(outcome, Outcome::Acked) {
            client
                .increment_medal("Gaul", "gold", Some(id))
                .unwrap_or_else(|e| panic!("retrying {id}: {e}"));
        }
    }
    assert_eq!(
        gold(&cluster) - before,
        writes.len() as i64,
        "retried with their request ids, the writes did not apply exactly once"
    );

    // The balancer never gave up on a front-end for being slow: each
    // answered within its deadline.
    let balancer = cluster.balancer.as_ref().expect("a balancer");
    let log = balancer.output(Stream::Stderr);
    assert!(
        !log.lines()
            .any(|l| l.contains("front-end ejected") && l.contains("no reply within")),
        "the balancer timed out on a front-end waiting for the db:\n{log}"
    );
}
