//! Limits of the public API that a client can hit on purpose: the password
//! rate limit (per client address, through the balancer too) and the score
//! size limit. Real binaries on loopback.

mod cluster_support;
mod support;

use std::time::Duration;

use cluster_support::{Cluster, ClusterConfig, PASSWORD};
use podium::api::faults;
use podium::rpc::Value;
use support::wait_for;

/// Property: after a burst of wrong passwords a client is refused (fault 6)
/// even with the right one, nothing is written meanwhile, and it is let in
/// again once the bucket refills. Each front-end keeps its own buckets, so
/// the refusal of the right password is checked at one front-end; through
/// the balancer, which spreads calls at random, a burst is limited too.
#[test]
fn repeated_wrong_passwords_are_rate_limited_then_forgiven() {
    let cluster = Cluster::start(ClusterConfig::default());
    let award = |rpc: &cluster_support::Rpc, password: &str| {
        rpc.call(
            "increment_medal_tally",
            &["Gaul".into(), "gold".into(), Value::from(password)],
        )
    };
    // Wrong passwords until refused, at most 40 (two front-ends' bursts of
    // 5 each, with a wide margin): only faults 1 and 6 on the way.
    let until_limited = |rpc: &cluster_support::Rpc| {
        let mut codes = Vec::new();
        while codes.len() < 40 && codes.last() != Some(&faults::RATE_LIMITED) {
            match award(rpc, "not-the-password") {
                Err(e) => codes.push(e.fault().map(|f| f.code).unwrap_or(0)),
                Ok(v) => panic!("a wrong password was accepted: {v:?}"),
            }
        }
        assert_eq!(
            codes.last(),
            Some(&faults::RATE_LIMITED),
            "no rate limit after {} wrong passwords: {codes:?}",
            codes.len()
        );
        assert!(
            codes
                .iter()
                .all(|c| *c == faults::UNAUTHORIZED || *c == faults::RATE_LIMITED),
            "{codes:?}"
        );
    };
    let fe = cluster.frontend(0);
    let before = fe.tally("Gaul").gold;
    until_limited(&cluster.balancer());
    until_limited(&fe);
    // Right away, even the right password is refused: guessing stops.
    let refused = award(&fe, PASSWORD).expect_err("a limited client was let in");
    assert_eq!(refused.fault().map(|f| f.code), Some(faults::RATE_LIMITED));
    assert_eq!(fe.tally("Gaul").gold, before);
    // The bucket refills (0.5 attempts a second): the right password works again.
    let accepted = wait_for(Duration::from_secs(20), || award(&fe, PASSWORD).ok());
    assert!(accepted.is_some(), "never let in again");
    let after = wait_for(Duration::from_secs(10), || {
        let gold = fe.tally("Gaul").gold;
        (gold == before + 1).then_some(gold)
    });
    assert_eq!(
        after,
        Some(before + 1),
        "exactly the one accepted write counts"
    );
}

/// Property: a score over the size limit gets fault 7 and is not stored.
#[test]
fn an_over_long_score_is_refused_and_not_stored() {
    let cluster = Cluster::start(ClusterConfig::default());
    let fe = cluster.frontend(1);
    let long = "x".repeat(podium::scoreboard::MAX_SCORE_BYTES + 1);
    let f = fe.fault(
        "set_score",
        &[
            "Stone Curling".into(),
            long.as_str().into(),
            PASSWORD.into(),
        ],
    );
    assert_eq!(f.code, faults::INVALID_VALUE, "{f}");
    assert!(fe.history("score", "Stone Curling").is_empty());
    let fits = "y".repeat(podium::scoreboard::MAX_SCORE_BYTES);
    fe.ok(
        "set_score",
        &[
            "Stone Curling".into(),
            fits.as_str().into(),
            PASSWORD.into(),
        ],
    );
    assert_eq!(fe.score("Stone Curling").score, fits);
}
