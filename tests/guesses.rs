//! Guessing a secret stays slow however it is spread: the feeder password
//! (checked by the front-ends, guessed here through the balancer, which
//! passes on each client's address) and the cluster secret (checked by
//! every member, guessed here at the db). Clients call from loopback
//! addresses of their own (127.0.x.y), each one "address".

mod cluster_support;
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cluster_support::{Cluster, ClusterConfig, Mode, PASSWORD};
use podium::api::faults;
use podium::rpc::{Client, ClientConfig, ClientError, Value};
use support::runtime;

/// Concurrent clients when many addresses guess.
const CONCURRENCY: usize = 32;

/// `127.0.X.Y` for `i` (from 127.0.1.0 up: away from the cluster's own
/// 127.0.0.1).
fn address(i: usize) -> IpAddr {
    let i = u32::try_from(i).expect("few addresses") + 256;
    IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + i))
}

/// Address `i` on a network (/24) of its own: 127.A.B.1.
fn networked_address(i: usize) -> IpAddr {
    let i = u32::try_from(i).expect("few addresses") + 256;
    IpAddr::V4(Ipv4Addr::from(0x7f00_0001 + (i << 8)))
}

/// What a guess came to: compared (and wrong, or right), or refused.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Right,
    Wrong,
    Refused(String),
}

fn answer(result: Result<Value, ClientError>) -> Answer {
    match result {
        Ok(_) => Answer::Right,
        Err(ClientError::Fault(f)) if f.code == faults::UNAUTHORIZED => Answer::Wrong,
        Err(ClientError::Fault(f)) if f.code == faults::RATE_LIMITED => Answer::Refused(f.message),
        Err(e) => panic!("a guess failed outside the protocol: {e}"),
    }
}

/// One client at `from`, with `secret` as its cluster secret, if any.
fn client(url: &str, from: IpAddr, secret: Option<&str>) -> Client {
    let base = match secret {
        Some(s) => podium::cluster::member_client_config(
            &podium::secret::Secret::new(s).expect("a secret"),
            None,
            Duration::from_secs(20),
        ),
        None => ClientConfig {
            timeout: Duration::from_secs(20),
            ..ClientConfig::default()
        },
    };
    Client::new(
        url,
        ClientConfig {
            local_addr: Some(from),
            pool_max_idle: 1,
            ..base
        },
    )
    .expect("a client")
}

/// A feeder-password guess from `from` through the balancer.
async fn password_guess(url: &str, from: IpAddr, password: &str) -> Answer {
    let params = ["Stone Curling".into(), "2-1".into(), password.into()];
    answer(
        client(url, from, None)
            .call("scoreboard.set_score", &params)
            .await,
    )
}

/// A cluster-secret guess from `from` at the db (an internal method).
async fn secret_guess(url: &str, from: IpAddr, secret: &str) -> Answer {
    answer(client(url, from, Some(secret)).call("db.roster", &[]).await)
}

/// Runs `guess(i)` for every `i` in `range`, `CONCURRENCY` at a time; the
/// answers in order.
fn many<F, Fut>(range: std::ops::Range<usize>, guess: F) -> Vec<Answer>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Answer> + Send,
{
    runtime().block_on(async move {
        let guess = std::sync::Arc::new(guess);
        let next = std::sync::Arc::new(AtomicUsize::new(range.start));
        let end = range.end;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENCY {
            let (guess, next) = (guess.clone(), next.clone());
            tasks.spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return out;
                    }
                    out.push((i, guess(i).await));
                }
            });
        }
        let mut all = Vec::new();
        while let Some(done) = tasks.join_next().await {
            all.extend(done.expect("a guessing task"));
        }
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, a)| a).collect()
    })
}

fn count(answers: &[Answer], want: fn(&Answer) -> bool) -> usize {
    answers.iter().filter(|a| want(a)).count()
}

#[test]
fn a_new_address_is_limited_after_ten_thousand_others_guessed() {
    // The old limiter stopped tracking at 10,000 addresses: every address
    // after them guessed without limit. The global bound is lifted here, so
    // that only the per-address one is under test.
    let cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Push],
        frontend_args: vec!["--guess-global-burst".into(), "1e9".into()],
        ..ClusterConfig::default()
    });
    let url = cluster.balancer_url();
    let others = {
        let url = url.clone();
        many(0..10_050, move |i| {
            let url = url.clone();
            async move { password_guess(&url, address(i), "wrong").await }
        })
    };
    assert_eq!(count(&others, |a| *a == Answer::Wrong), others.len());
    let newcomer = address(20_000);
    let answers: Vec<Answer> = (0..8)
        .map(|_| runtime().block_on(password_guess(&url, newcomer, "wrong")))
        .collect();
    assert_eq!(
        &answers[..5],
        &[const { Answer::Wrong }; 5],
        "its burst of five is compared"
    );
    for a in &answers[5..] {
        let Answer::Refused(message) = a else {
            panic!("a guess past the burst was compared: {answers:?}");
        };
        assert!(message.contains("retry in"), "{message}");
    }
}

#[test]
fn a_guess_spread_over_many_addresses_is_bounded_and_the_feeder_still_gets_in() {
    let cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Push],
        // The penalty (1 s) holds a call: the balancer's default forward
        // timeout allows for it.
        forward_timeout_ms: podium::balancer::DEFAULT_FORWARD_TIMEOUT_MS,
        ..ClusterConfig::default()
    });
    let url = cluster.balancer_url();
    // 200 addresses, each on a network of its own, one wrong guess each:
    // 100 use up the global burst, and the rest are compared only after a
    // penalty.
    let first = {
        let url = url.clone();
        many(0..200, move |i| {
            let url = url.clone();
            async move { password_guess(&url, networked_address(i), "wrong").await }
        })
    };
    assert_eq!(count(&first, |a| *a == Answer::Wrong), 200, "{first:?}");
    // Their second guesses are refused uncompared: without the global
    // bound, each address would have four more.
    let second = {
        let url = url.clone();
        many(0..200, move |i| {
            let url = url.clone();
            async move { password_guess(&url, networked_address(i), "wrong").await }
        })
    };
    let compared = count(&second, |a| *a == Answer::Wrong);
    assert!(
        compared <= 20,
        "{compared} of 200 second guesses were compared (the global refill is 5/s)"
    );
    // 200 fresh addresses rotated within one network (127.0.1.0/24): at
    // most 4 penalised guesses of theirs at a time.
    let rotated = {
        let url = url.clone();
        many(0..200, move |i| {
            let url = url.clone();
            async move { password_guess(&url, address(i), "wrong").await }
        })
    };
    let compared = count(&rotated, |a| *a == Answer::Wrong);
    assert!(
        compared <= 30,
        "{compared} of 200 guesses from one /24 were compared (4 at a time, each held 1 s)"
    );
    assert!(
        rotated
            .iter()
            .all(|a| *a == Answer::Wrong
                || matches!(a, Answer::Refused(m) if m.contains("retry in"))),
        "{rotated:?}"
    );
    // A feeder at an address of its own gets in with the right password.
    let feeder = runtime().block_on(password_guess(&url, address(5_000), PASSWORD));
    assert_eq!(feeder, Answer::Right);
}

#[test]
fn wrong_cluster_secrets_are_limited_and_members_keep_working() {
    let cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Push],
        ..ClusterConfig::default()
    });
    let db = cluster.db_url();
    let guesser = address(1);
    let answers: Vec<Answer> = (0..8)
        .map(|_| runtime().block_on(secret_guess(&db, guesser, "not-the-secret")))
        .collect();
    assert_eq!(&answers[..5], &[const { Answer::Wrong }; 5], "{answers:?}");
    assert!(
        answers[5..]
            .iter()
            .all(|a| matches!(a, Answer::Refused(m) if m.contains("retry in"))),
        "guesses past the burst were compared: {answers:?}"
    );
    // A spread guess (global burst used up) leaves the members alone: the
    // front-end keeps following the db, and writes go through.
    let spread = {
        let db = db.clone();
        many(10..160, move |i| {
            let db = db.clone();
            async move { secret_guess(&db, address(i), "not-the-secret").await }
        })
    };
    assert!(count(&spread, |a| *a == Answer::Right) == 0);
    let fe = cluster.frontend(0);
    assert!(
        matches!(fe.health(), Ok((true, _))),
        "the front-end lost the db"
    );
    cluster
        .balancer()
        .set_score("Stone Curling", "3-3", None)
        .unwrap_or_else(|e| panic!("a write after the guessing: {e}"));
    // A guesser on the members' own address (127.0.0.1) uses up its
    // bucket there; the members keep working over the connections that
    // already gave the right secret (the front-end's feed stays live).
    let here = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let local: Vec<Answer> = (0..8)
        .map(|_| runtime().block_on(secret_guess(&db, here, "not-the-secret")))
        .collect();
    assert!(
        matches!(local.last(), Some(Answer::Refused(_))),
        "{local:?}"
    );
    for _ in 0..30 {
        assert!(
            matches!(fe.health(), Ok((true, _))),
            "the front-end lost the db to a guesser on its address"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The real secret, from an address that has not been guessing.
    assert_eq!(
        runtime().block_on(secret_guess(&db, address(5_000), cluster_support::SECRET)),
        Answer::Right
    );
}
