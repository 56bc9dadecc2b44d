//! Push as one cluster, on real binaries: subscriptions live in the db,
//! exactly one front-end pushes to each tablet, nothing is lost when a
//! front-end dies, and a subscription cannot be turned against anyone.
//! Tablets are callback servers in this process (tests/push_support); the
//! old-style ones are registered through the balancer with `register_client`
//! as the old tablet does.

mod cluster_support;
mod push_support;
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::{Cluster, ClusterConfig, Mode, Rpc};
use podium::api::faults;
use podium::api::Subscribe;
use podium::rpc::{fault, ClientError, Value};
use push_support::{Behaviour, Tablet};
use support::{python, wait_until};

/// How long pushes may take to arrive (milliseconds when all is well; a
/// takeover needs about 1.5 s).
const PUSH_DEADLINE: Duration = Duration::from_secs(20);

const EVENT: &str = "Stone Curling";

fn two_pushers() -> ClusterConfig {
    ClusterConfig {
        frontends: vec![Mode::Push, Mode::Push],
        ..ClusterConfig::default()
    }
}

/// `register_client([ip, port], [EVENT], [])` through `rpc`.
fn register(rpc: &Rpc, tablet: &Tablet) -> Result<Value, ClientError> {
    rpc.call(
        "register_client",
        &[
            Value::Array(vec![
                tablet.addr.ip().to_string().into(),
                i64::from(tablet.addr.port()).into(),
            ]),
            Value::Array(vec![EVENT.into()]),
            Value::Array(vec![]),
        ],
    )
}

/// The URLs the db holds subscriptions for.
fn subscribed(cluster: &Cluster) -> Vec<String> {
    let v = cluster.db().ok("db.subscriptions", &[]);
    v.as_struct()
        .and_then(|s| s.get("subscriptions"))
        .and_then(Value::as_array)
        .expect("a subscription list")
        .iter()
        .filter_map(|row| {
            row.as_struct()?
                .get("subscription")?
                .as_struct()?
                .get("url")?
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

fn fault_of(result: Result<Value, ClientError>) -> podium::rpc::Fault {
    match result {
        Err(ClientError::Fault(f)) => f,
        other => panic!("want a fault, got {other:?}"),
    }
}

fn score_text(i: usize) -> String {
    format!("{EVENT}: push test {i}")
}

/// Property: a tablet registered twice (as the old tablet does) holds one
/// subscription, and each of 50 such tablets gets each of 20 changes
/// exactly once, however the two front-ends share them.
#[test]
fn fifty_tablets_registered_twice_get_each_change_exactly_once() {
    let cluster = Cluster::start(two_pushers());
    let lb = cluster.balancer();
    let tablets: Vec<Tablet> = (0..50)
        .map(|_| Tablet::start("127.0.0.1", Behaviour::Answers))
        .collect();
    for tablet in &tablets {
        for _ in 0..2 {
            register(&lb, tablet).expect("register_client");
        }
    }
    assert_eq!(subscribed(&cluster).len(), 50, "registering twice made two");
    // 20 changes, then one more as a barrier: pushes to a tablet come in
    // version order, so once it has the last, a second pusher would have
    // shown itself by then.
    for i in 0..=20 {
        lb.set_score(EVENT, &format!("push test {i}"), None)
            .expect("a write");
    }
    for (n, tablet) in tablets.iter().enumerate() {
        let all = tablet.wait(PUSH_DEADLINE, |got| {
            got.iter().any(|cb| matches!(cb, podium::api::callback::Callback::Score { text, .. } if *text == score_text(20)))
        });
        assert!(
            all,
            "tablet {n} never got the last change: {:?}",
            tablet.received()
        );
        for i in 0..=20 {
            assert_eq!(
                tablet.count(&score_text(i)),
                1,
                "tablet {n}, change {i}: {:?}",
                tablet.received()
            );
        }
    }
    // Both front-ends pushed (each owns a share), and each says so.
    for i in 0..2 {
        let health = cluster
            .frontend(i)
            .block_on(cluster.frontend(i).api().health());
        assert_eq!(health.expect("health").subscribers, 50);
    }
}

/// Property: an unsubscribe through the balancer always ends the
/// subscription, whichever front-end takes it (20 times in 20), and the
/// tablet is pushed nothing after it.
#[test]
fn unsubscribe_through_the_balancer_works_every_time() {
    let cluster = Cluster::start(two_pushers());
    let lb = cluster.balancer();
    let tablet = Tablet::start("127.0.0.1", Behaviour::Answers);
    for round in 0..20 {
        let subscription = lb
            .block_on(lb.api().subscribe(&Subscribe {
                callback_url: tablet.url(),
                events: vec![EVENT.into()],
                teams: vec![],
                lease_seconds: Some(60),
            }))
            .expect("subscribe");
        assert_eq!(subscription.callback_url, tablet.url());
        let gone = lb
            .block_on(lb.api().unsubscribe(&tablet.url()))
            .expect("unsubscribe");
        assert!(gone, "round {round}: the unsubscribe found nothing");
        assert!(
            subscribed(&cluster).is_empty(),
            "round {round}: still subscribed"
        );
    }
    let gone = lb.block_on(lb.api().unsubscribe(&tablet.url())).unwrap();
    assert!(!gone, "a second unsubscribe found one");
    lb.set_score(EVENT, "after the last unsubscribe", None)
        .unwrap();
    // Another tablet, still subscribed, shows the write was pushed by now.
    let witness = Tablet::start("127.0.0.1", Behaviour::Answers);
    register(&lb, &witness).unwrap();
    lb.set_score(EVENT, "witness", None).unwrap();
    assert!(witness.wait(PUSH_DEADLINE, |got| !got.is_empty()));
    assert!(
        tablet.received().is_empty(),
        "an unsubscribed tablet was pushed {:?}",
        tablet.received()
    );
}

/// Property: when the front-end that pushes to a set of tablets is killed
/// during a stream of writes, every tablet still gets every acknowledged
/// change (the other front-end takes over from where it stopped); only
/// changes in flight at the kill may arrive twice, and how many did is
/// printed.
#[test]
fn killing_the_owner_during_writes_loses_no_change() {
    let mut cluster = Cluster::start(two_pushers());
    let lb = cluster.balancer();
    let tablets: Vec<Tablet> = (0..30)
        .map(|_| Tablet::start("127.0.0.1", Behaviour::Answers))
        .collect();
    for tablet in &tablets {
        register(&lb, tablet).expect("register_client");
    }
    let owned_by = |uid: u32| {
        tablets
            .iter()
            .filter(|t| podium::push::ownership::owner(&t.url(), &[1, 2]) == Some(uid))
            .count()
    };
    // Kill the front-end that owns more of them (uid 1 is front-end 0).
    let victim = if owned_by(1) >= owned_by(2) { 0 } else { 1 };
    assert!(owned_by(victim as u32 + 1) > 0);
    // Let both front-ends settle into their shares before the stream.
    lb.set_score(EVENT, "warm-up", None).unwrap();
    assert!(tablets
        .iter()
        .all(|t| t.wait(PUSH_DEADLINE, |got| !got.is_empty())));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (acked, writing, url) = (acked.clone(), writing.clone(), cluster.balancer_url());
        std::thread::spawn(move || {
            let lb = Rpc::new(&url);
            let started = Instant::now();
            let mut i = 0;
            while writing.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                i += 1;
                if lb.set_score(EVENT, &format!("stream {i}"), None).is_ok() {
                    acked.lock().unwrap().push(format!("{EVENT}: stream {i}"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    assert!(wait_until(Duration::from_secs(10), || acked
        .lock()
        .unwrap()
        .len()
        >= 40));
    cluster.frontends[victim].signal("KILL");
    let killed_at = acked.lock().unwrap().len();
    assert!(wait_until(Duration::from_secs(20), || {
        acked.lock().unwrap().len() >= killed_at + 60
    }));
    writing.store(false, Ordering::Relaxed);
    writer.join().expect("the writer");
    let acked = acked.lock().unwrap().clone();
    let last = acked.last().expect("acknowledged writes").clone();
    let mut duplicates = 0;
    let mut lost = HashMap::new();
    for (n, tablet) in tablets.iter().enumerate() {
        tablet.wait(PUSH_DEADLINE, |got| {
            got.iter().any(|cb| matches!(cb, podium::api::callback::Callback::Score { text, .. } if *text == last))
        });
        for text in &acked {
            match tablet.count(text) {
                0 => *lost.entry(n).or_insert(0) += 1,
                1 => {}
                k => duplicates += k - 1,
            }
        }
    }
    println!(
        "kill -9 of the owner of {} of 30 tablets during {} acknowledged writes: {} duplicate pushes, lost {:?}",
        owned_by(victim as u32 + 1),
        acked.len(),
        duplicates,
        lost
    );
    assert!(lost.is_empty(), "changes lost per tablet: {lost:?}");
}

/// Property: subscriptions are durable: after the db is killed and started
/// again, every tablet is still subscribed and is pushed the next change.
#[test]
fn a_db_restart_keeps_the_subscriptions() {
    let mut cluster = Cluster::start(two_pushers());
    let lb = cluster.balancer();
    let tablets: Vec<Tablet> = (0..3)
        .map(|_| Tablet::start("127.0.0.1", Behaviour::Answers))
        .collect();
    for tablet in &tablets {
        register(&lb, tablet).unwrap();
    }
    cluster.kill_db();
    cluster.restart_db();
    cluster.wait_ready();
    assert_eq!(subscribed(&cluster).len(), 3);
    let write = wait_until(PUSH_DEADLINE, || {
        lb.set_score(EVENT, "after the restart", None).is_ok()
    });
    assert!(write, "no write after the restart");
    for (n, tablet) in tablets.iter().enumerate() {
        let got = tablet.wait(PUSH_DEADLINE, |got| {
            got.iter().any(|cb| matches!(cb, podium::api::callback::Callback::Score { text, .. } if text.ends_with("after the restart")))
        });
        assert!(
            got,
            "tablet {n} lost its subscription: {:?}",
            tablet.received()
        );
    }
}

/// Property: a callback must be the subscriber's own address, and never
/// one of the cluster's endpoints (db, front-ends, balancer), while a
/// tablet on the cluster's own host, on another port, is fine.
#[test]
fn callbacks_to_anyone_else_or_to_the_cluster_are_refused() {
    let cluster = Cluster::start(ClusterConfig::default());
    let lb = cluster.balancer();
    let stranger = [("192.0.2.7", 8005), ("127.0.0.2", 8005)];
    for (host, port) in stranger {
        let f = fault_of(lb.call(
            "register_client",
            &[
                Value::Array(vec![host.into(), i64::from(port).into()]),
                Value::Array(vec![EVENT.into()]),
                Value::Array(vec![]),
            ],
        ));
        assert_eq!(f.code, fault::INVALID_PARAMS, "{host}: {f}");
        assert!(f.message.contains("not your own address"), "{f}");
    }
    let endpoints = [
        cluster.db_url(),
        cluster.frontends[0].url(),
        cluster.frontends[1].url(),
        cluster.balancer_url(),
    ];
    for url in endpoints {
        let f = fault_of(lb.call(
            "scoreboard.subscribe",
            &[
                url.as_str().into(),
                Value::Array(vec![]),
                Value::Array(vec![]),
            ],
        ));
        assert_eq!(f.code, fault::INVALID_PARAMS, "{url}: {f}");
        assert!(f.message.contains("cluster's own endpoints"), "{url}: {f}");
    }
    assert!(subscribed(&cluster).is_empty());
    let tablet = Tablet::start("127.0.0.1", Behaviour::Answers);
    register(&lb, &tablet).expect("a tablet on the cluster's own host");
}

/// Property: the operator can allow callbacks into a range
/// (`--push-allow`), which other subscribers' addresses are not.
#[test]
fn push_allow_opens_a_range() {
    let cluster = Cluster::start(ClusterConfig {
        frontend_args: vec!["--push-allow".into(), "127.0.0.5/32".into()],
        ..ClusterConfig::default()
    });
    let lb = cluster.balancer();
    let allowed = Tablet::start("127.0.0.5", Behaviour::Answers);
    register(&lb, &allowed).expect("a callback inside the allowed range");
    lb.set_score(EVENT, "allowed", None).unwrap();
    assert!(allowed.wait(PUSH_DEADLINE, |got| !got.is_empty()));
    let outside = Tablet::start("127.0.0.6", Behaviour::Answers);
    assert_eq!(
        fault_of(register(&lb, &outside)).code,
        fault::INVALID_PARAMS
    );
}

/// Registers a tablet at `ip` from a client bound to `ip` (Python's
/// xmlrpc.client with a source address), as a tablet on that host would.
fn register_from(lb_url: &str, tablet: &Tablet) -> String {
    let script = r#"
import http.client, sys, xmlrpc.client
url, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
class FromIp(xmlrpc.client.Transport):
    def make_connection(self, host):
        self._connection = host, http.client.HTTPConnection(host, timeout=20, source_address=(ip, 0))
        return self._connection[1]
try:
    print("ok", xmlrpc.client.ServerProxy(url, transport=FromIp()).register_client([ip, port], ["Stone Curling"], []))
except xmlrpc.client.Fault as f:
    print("fault", f.faultCode, f.faultString)
"#;
    python(
        script,
        &[
            lb_url,
            &tablet.addr.ip().to_string(),
            &tablet.addr.port().to_string(),
        ],
    )
}

/// Property: subscriptions are capped per address and in all, with a clear
/// fault, and an ended subscription frees its place.
#[test]
fn subscriptions_are_capped_per_address_and_in_all() {
    let cluster = Cluster::start(ClusterConfig {
        db_args: [
            "--max-subscriptions-per-address",
            "3",
            "--max-subscriptions",
            "5",
        ]
        .map(str::to_owned)
        .to_vec(),
        ..ClusterConfig::default()
    });
    let lb = cluster.balancer();
    let mine: Vec<Tablet> = (0..4)
        .map(|_| Tablet::start("127.0.0.1", Behaviour::Answers))
        .collect();
    for tablet in &mine[..3] {
        register(&lb, tablet).unwrap();
    }
    let f = fault_of(register(&lb, &mine[3]));
    assert_eq!(f.code, faults::UNAVAILABLE, "{f}");
    assert!(f.message.contains("one address"), "{f}");
    // Another address still has room, until the cluster is full.
    let theirs: Vec<Tablet> = (0..3)
        .map(|_| Tablet::start("127.0.0.2", Behaviour::Answers))
        .collect();
    let url = cluster.balancer_url();
    assert!(register_from(&url, &theirs[0]).starts_with("ok"));
    assert!(register_from(&url, &theirs[1]).starts_with("ok"));
    let full = register_from(&url, &theirs[2]);
    assert!(
        full.starts_with("fault 5") && full.contains("most"),
        "{full}"
    );
    // An ended subscription frees its place.
    assert!(lb.block_on(lb.api().unsubscribe(&mine[0].url())).unwrap());
    assert!(register_from(&url, &theirs[2]).starts_with("ok"));
    assert_eq!(subscribed(&cluster).len(), 5);
}

/// Property: a push answered with a fault, a gzipped reply nobody asked
/// for, or megabytes, is a failed push; a tablet that keeps failing is
/// dropped cluster-wide, while a healthy tablet pushed by the same
/// front-end gets every change.
#[test]
fn tablets_that_keep_failing_are_dropped_and_others_are_unaffected() {
    let cluster = Cluster::start(ClusterConfig::default());
    let lb = cluster.balancer();
    let healthy = Tablet::start("127.0.0.1", Behaviour::Answers);
    let broken: Vec<Tablet> = [Behaviour::Faults, Behaviour::Gzips, Behaviour::Floods]
        .into_iter()
        .map(|b| Tablet::start("127.0.0.1", b))
        .collect();
    register(&lb, &healthy).unwrap();
    for tablet in &broken {
        register(&lb, tablet).unwrap();
    }
    assert_eq!(subscribed(&cluster).len(), 4);
    for i in 0..5 {
        lb.set_score(EVENT, &format!("push test {i}"), None)
            .unwrap();
    }
    let dropped = wait_until(PUSH_DEADLINE, || subscribed(&cluster) == [healthy.url()]);
    assert!(dropped, "still subscribed: {:?}", subscribed(&cluster));
    for (tablet, what) in broken.iter().zip(["faults", "gzip", "floods"]) {
        assert!(
            !tablet.received().is_empty(),
            "the tablet that {what} was never tried"
        );
    }
    assert!(healthy.wait(PUSH_DEADLINE, |got| got.len() == 5));
    for i in 0..5 {
        assert_eq!(healthy.count(&score_text(i)), 1);
    }
}
