//! The whole cluster (db, two front-ends, balancer: the real binaries on
//! loopback port 0) as its clients see it:
//! - the old protocol, driven from Python's `xmlrpc.client` exactly as the old
//!   feeder (Cacofonix) and tablet (StoneTablet) call it, including push to a
//!   tablet's own `SimpleXMLRPCServer` registered with `register_client`;
//! - cache coherence across front-ends, in both cache modes: after a write
//!   through one front-end, reads through the other become fresh;
//! - rejected writes (wrong password, unknown team, event or medal) get the
//!   documented fault and write nothing;
//! - internal `db.*` methods are not public.
//!
//! Every wait polls with a deadline; no assertion is about speed (the
//! benchmark measures that). Front-end caches get a one-hour TTL, so the TTL
//! can never be what makes a freshness test pass.

mod cluster_support;
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cluster_support::{
    db_snapshot, CallbackServer, Cluster, ClusterConfig, Mode, Pushed, Rpc, EVENTS, PASSWORD, TEAMS,
};
use podium::api::faults;
use podium::rpc::fault;
use podium::rpc::{ClientError, Value};
use support::{python, wait_for};

/// How long a front-end may take to see another front-end's write. Far above
/// what either mode needs (milliseconds in push mode, one 200-250 ms pull
/// interval in pull mode) and far below the one-hour cache TTL.
const FRESH_DEADLINE: Duration = Duration::from_secs(15);

/// How long a push may take to reach a tablet.
const PUSH_DEADLINE: Duration = Duration::from_secs(15);

/// Helpers every Python script starts with: `URL` is `sys.argv[1]`, the
/// proxy is built exactly as the old clients built theirs (no options).
const PY_PRELUDE: &str = r#"
import re, socket, sys, time, xmlrpc.client
socket.setdefaulttimeout(20)
URL = sys.argv[1]
PASSWORD = sys.argv[2]
server = xmlrpc.client.ServerProxy(URL)

TALLY = re.compile(r"Team (\w+) has:\n(\d+) gold medals\n(\d+) silver medals\n(\d+) bronze medals\nas of (never|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)\n\Z")
SCORE = re.compile(r"(.*) \[(never|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)\]\n\Z", re.S)

def tally(team, client_id):
    text = server.get_medal_tally(team, client_id)
    assert type(text) is str, f"get_medal_tally returned {text!r}"
    m = TALLY.match(text)
    assert m, f"get_medal_tally({team!r}) is not in the old format: {text!r}"
    return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), m.group(5)

def score(event, client_id):
    text = server.get_score(event, client_id)
    assert type(text) is str, f"get_score returned {text!r}"
    m = SCORE.match(text)
    assert m, f"get_score({event!r}) is not in the old format: {text!r}"
    return m.group(1), m.group(2)

def eventually(what, probe, timeout=15.0):
    """Polls probe() until it returns a true value; fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(100000):
        last = probe()
        if last[0]:
            return last[1]
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    raise AssertionError(f"{what}: never happened; last seen {last!r}")

def expect_fault(code, call, *args):
    try:
        got = call(*args)
    except xmlrpc.client.Fault as f:
        assert f.faultCode == code, f"{args!r}: fault {f.faultCode} {f.faultString!r}, want {code}"
        return f.faultString
    raise AssertionError(f"{args!r}: got {got!r}, want fault {code}")
"#;

fn py(script: &str, url: &str) -> String {
    python(&format!("{PY_PRELUDE}\n{script}"), &[url, PASSWORD])
}

/// The old feeder and the old tablet, through the balancer, with Python's
/// stock client: the feeder's writes take effect and are acknowledged with a
/// string; the tablet's reads come back in the old text formats, names match
/// case-insensitively, and `client_id` may be an int or a string.
#[test]
fn old_feeder_and_tablet_work_through_the_balancer() {
    let cluster = Cluster::start(ClusterConfig::default());
    let out = py(
        r#"
TEAMS = ["Gaul", "Rome", "Carthage", "Greece", "Persia"]
EVENTS = ["Stone Curling", "Stone Skating", "Underwater Stone Weaving", "Synchronized Stone Swimming"]

# The tablet: a fresh database has zero medals and no scores, "as of never".
for i, team in enumerate(TEAMS):
    assert tally(team, i) == (team, 0, 0, 0, "never"), tally(team, i)
for event in EVENTS:
    assert score(event, 1) == ("", "never"), score(event, 1)

# The feeder, exactly as Cacofonix calls it.
for medal in ["gold", "gold", "silver", "bronze"]:
    ack = server.increment_medal_tally("Gaul", medal, PASSWORD)
    assert type(ack) is str and ack, f"increment_medal_tally acknowledged with {ack!r}"
ack = server.increment_medal_tally("rOME", "Bronze", PASSWORD)   # any case
assert type(ack) is str and ack, ack
ack = server.set_score("Stone Curling", "Gaul 2 - Rome 1 (end 7)", PASSWORD)
assert type(ack) is str and ack, f"set_score acknowledged with {ack!r}"

# The tablet sees them (through either front-end: wait until fresh).
got = eventually("Gaul's tally", lambda: (lambda t: (t[1:4] == (2, 1, 1), t))(tally("gaul", 7)))
assert got[0] == "Gaul", got           # the display name, whatever case was asked
assert got[4] != "never", got
got = eventually("Rome's tally", lambda: (lambda t: (t[1:4] == (0, 0, 1), t))(tally("Rome", "tablet-2")))
got = eventually("the curling score",
                 lambda: (lambda s: (s[0] == "Gaul 2 - Rome 1 (end 7)", s))(score("stone curling", 3)))
assert got[1] != "never", got
# Other keys untouched.
assert tally("Persia", 1) == ("Persia", 0, 0, 0, "never")
assert score("Stone Skating", 1) == ("", "never")
print("ok")
"#,
        &cluster.balancer_url(),
    );
    assert_eq!(out.trim(), "ok");

    // The structured API agrees with what the old one showed.
    let bal = cluster.balancer();
    let gaul = bal.tally("Gaul");
    assert_eq!((gaul.gold, gaul.silver, gaul.bronze), (2, 1, 1), "{gaul:?}");
    let table = bal.medal_table();
    assert_eq!(table[0].team, "Gaul", "Gaul leads the table: {table:?}");
}

/// Push to old tablets: each runs its own `SimpleXMLRPCServer` and registers
/// with `register_client([host, port], events, teams)` (one through the
/// balancer, as the old tablet did; one directly with the pull-mode
/// front-end). Writes made through either front-end reach both tablets as
/// `print_medal_tally_for_team(text, time)` / `print_score_for_event(text,
/// time)`, in order, with exactly what each follows and nothing else.
#[test]
fn old_tablets_get_pushes_for_writes_through_either_front_end() {
    let cluster = Cluster::start(ClusterConfig::default());
    let via_balancer = CallbackServer::start();
    let via_pull_fe = CallbackServer::start();

    // The old tablet's registration calls (a tuple marshals as an array, as
    // Python 2's xmlrpclib did).
    let register = |url: &str, port: u16, events: &str, teams: &str| {
        py(
            &format!(
                r#"
ack = server.register_client(("127.0.0.1", {port}), {events}, {teams})
assert type(ack) is str and ack, ack
print("ok")
"#
            ),
            url,
        )
    };
    register(
        &cluster.balancer_url(),
        via_balancer.port(),
        r#"["Stone Curling"]"#,
        r#"["Rome"]"#,
    );
    register(
        &cluster.frontends[0].url(),
        via_pull_fe.port(),
        r#"["stone skating"]"#,
        r#"["GAUL", "Rome"]"#,
    );

    // The old feeder's writes, alternating front-ends; each is acknowledged
    // before the next, so they are ordered. Unfollowed keys come first: as
    // each tablet gets its pushes in order, once the last one has arrived
    // any push for an unfollowed key would have arrived too.
    let fe = [cluster.frontend(0), cluster.frontend(1)];
    let feed = |i: usize, method: &str, a: &str, b: &str| {
        let ack = fe[i].ok(method, &[a.into(), b.into(), PASSWORD.into()]);
        assert!(
            matches!(ack, Value::String(ref s) if !s.is_empty()),
            "{ack:?}"
        );
    };
    feed(1, "increment_medal_tally", "Carthage", "gold"); // nobody follows
    feed(0, "set_score", "Underwater Stone Weaving", "Greece leads"); // nobody follows
    feed(1, "increment_medal_tally", "Gaul", "bronze"); // pull tablet
    feed(0, "set_score", "Stone Curling", "Rome 4 - Gaul 0"); // balancer tablet
    feed(1, "set_score", "Stone Skating", "Gaul 9.5"); // pull tablet
    feed(0, "increment_medal_tally", "Rome", "gold"); // both
    feed(1, "increment_medal_tally", "Rome", "silver"); // both, last

    let start = unix_now();
    let is_last = |p: &Pushed| {
        p.method == "print_medal_tally_for_team"
            && p.text.starts_with("Team Rome has:\n1 gold")
            && p.text.contains("\n1 silver medals\n")
    };
    for (name, tablet) in [("balancer", &via_balancer), ("pull", &via_pull_fe)] {
        assert!(
            tablet.wait_for(PUSH_DEADLINE, is_last).is_some(),
            "the {name} tablet never got Rome's final tally; it got {:#?}",
            tablet.received()
        );
    }

    let tally_text = |team: &str, g, s, b| {
        format!("Team {team} has:\n{g} gold medals\n{s} silver medals\n{b} bronze medals\nas of ")
    };
    let check = |name: &str, tablet: &CallbackServer, want: &[(&str, String, &str)]| {
        let got = tablet.received();
        assert_eq!(
            got.len(),
            want.len(),
            "the {name} tablet got {got:#?}, want exactly {want:#?}"
        );
        for (p, (method, prefix, contains)) in got.iter().zip(want) {
            assert_eq!(&p.method, method, "{name}: {got:#?}");
            assert!(
                p.text.starts_with(prefix.as_str()) && p.text.contains(contains),
                "{name}: push {p:?} should start with {prefix:?} and contain {contains:?}"
            );
            assert_eq!(p.types, ["str", "float"], "{name}: {p:?}");
            let time = p.time.expect("a time");
            assert!(
                (time - start).abs() < 600.0,
                "{name}: time of update {time} is not near now ({start}): {p:?}"
            );
        }
    };
    let score = "print_score_for_event";
    let medal = "print_medal_tally_for_team";
    check(
        "balancer",
        &via_balancer,
        &[
            (score, String::new(), "Rome 4 - Gaul 0"),
            (medal, tally_text("Rome", 1, 0, 0), "UTC\n"),
            (medal, tally_text("Rome", 1, 1, 0), "UTC\n"),
        ],
    );
    check(
        "pull",
        &via_pull_fe,
        &[
            (medal, tally_text("Gaul", 0, 0, 1), "UTC\n"),
            (score, String::new(), "Gaul 9.5"),
            (medal, tally_text("Rome", 1, 0, 0), "UTC\n"),
            (medal, tally_text("Rome", 1, 1, 0), "UTC\n"),
        ],
    );
    // Score pushes name their event, or an old tablet could not tell them apart.
    assert!(via_balancer.received()[0].text.contains("Stone Curling"));
    assert!(via_pull_fe.received()[1].text.contains("Stone Skating"));
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// After a write acknowledged by front-end A, front-end B (which had the old
/// value cached) serves the new one: tally, medal table, score, and the old
/// text format. The writer's own front-end serves it at once
/// (read-your-writes). Rounds alternate the direction.
fn fresh_across_front_ends(mode: Mode) {
    let cluster = Cluster::start(ClusterConfig {
        frontends: vec![mode, mode],
        balancer: false,
        ..ClusterConfig::default()
    });
    let fe = [cluster.frontend(0), cluster.frontend(1)];
    for round in 0..6 {
        let (a, b) = (round % 2, 1 - round % 2);
        let team = TEAMS[round % TEAMS.len()];
        let event = EVENTS[round % EVENTS.len()];
        // B reads (and caches) the current values first.
        let before = fe[b].tally(team);
        let _ = fe[b].medal_table();
        let _ = fe[b].score(event);
        let _ = fe[b].ok("get_medal_tally", &[team.into(), Value::Int(1)]);

        let ack = fe[a]
            .increment_medal(team, "gold", None)
            .unwrap_or_else(|e| panic!("write through front-end {a}: {e}"));
        let written = ack.tally();
        assert_eq!(
            written.gold,
            before.gold + 1,
            "{written:?} after {before:?}"
        );
        let new_score = format!("round {round}: {team} ahead");
        let score_ack = fe[a]
            .set_score(event, &new_score, None)
            .unwrap_or_else(|e| panic!("set_score through front-end {a}: {e}"));

        // Read-your-writes: the writer's front-end, at once.
        let own = fe[a].tally(team);
        assert!(
            own.gold == written.gold && own.version >= ack.version,
            "front-end {a} does not show its own write: {own:?}, wrote {written:?}"
        );
        assert_eq!(fe[a].score(event).score, new_score);

        // The other front-end, within the deadline.
        let fresh =
            |t: &podium::scoreboard::Tally| t.gold == written.gold && t.version >= ack.version;
        if let Err(last) = cluster.wait_tally(b, team, FRESH_DEADLINE, fresh) {
            panic!("front-end {b} ({mode:?}) still serves {last:?} {FRESH_DEADLINE:?} after front-end {a} acknowledged {written:?}");
        }
        let table_row = wait_for(FRESH_DEADLINE, || {
            fe[b]
                .medal_table()
                .into_iter()
                .find(|t| t.team == team && fresh(t))
        });
        assert!(
            table_row.is_some(),
            "front-end {b}'s medal table never showed {written:?}: {:?}",
            fe[b].medal_table()
        );
        let score = wait_for(FRESH_DEADLINE, || {
            let s = fe[b].score(event);
            (s.score == new_score && s.version >= score_ack.version).then_some(s)
        });
        assert!(
            score.is_some(),
            "front-end {b} never showed score {new_score:?}: {:?}",
            fe[b].score(event)
        );
        let want_text = format!("Team {team} has:\n{} gold medals\n", written.gold);
        let text = wait_for(FRESH_DEADLINE, || {
            let v = fe[b].ok("get_medal_tally", &[team.into(), Value::Int(1)]);
            v.as_str()
                .filter(|t| t.starts_with(&want_text))
                .map(str::to_owned)
        });
        assert!(
            text.is_some(),
            "front-end {b}'s old-format tally never showed {want_text:?}"
        );

        // And it stays fresh: never an older value again.
        for _ in 0..20 {
            let t = fe[b].tally(team);
            assert!(
                fresh(&t),
                "front-end {b} went back to {t:?} after showing {written:?}"
            );
        }
    }
}

#[test]
fn a_write_through_one_front_end_is_read_fresh_through_the_other_push_mode() {
    fresh_across_front_ends(Mode::Push);
}

#[test]
fn a_write_through_one_front_end_is_read_fresh_through_the_other_pull_mode() {
    fresh_across_front_ends(Mode::Pull { interval_ms: 250 });
}

/// A wrong password gets fault 1 and writes nothing; an unknown team, event
/// or medal gets fault 2, 3 or 4 and writes nothing; through the balancer and
/// directly, through the old methods (from Python) and the structured ones.
/// "Nothing" is checked at the db (latest version, every tally and score)
/// and through both front-ends; a final good write shows the check sees writes.
#[test]
fn rejected_writes_get_a_fault_and_change_nothing() {
    let cluster = Cluster::start(ClusterConfig::default());
    let before = db_snapshot(&cluster.db_url());
    // Some state to protect: one good write first.
    let seeded = cluster
        .balancer()
        .increment_medal("Greece", "silver", None)
        .expect("a good write");
    let before = {
        let after_seed = db_snapshot(&cluster.db_url());
        assert_eq!(
            after_seed.latest,
            before.latest + 1,
            "the seed write counts once"
        );
        assert_eq!(seeded.version, after_seed.latest);
        after_seed
    };
    // Warm both front-ends' caches with it.
    for i in 0..2 {
        assert!(
            cluster
                .wait_tally(i, "Greece", FRESH_DEADLINE, |t| t.silver == 1)
                .is_ok(),
            "front-end {i} never saw the seed write"
        );
    }

    // Old protocol from Python, through the balancer. One wrong password
    // here; at most three per front-end in all, under the rate limit's
    // burst of five (after which even the right password is refused).
    let out = py(
        r#"
msg = expect_fault(1, server.increment_medal_tally, "Gaul", "gold", "not-the-password")
assert "not-the-password" not in msg, msg
expect_fault(2, server.increment_medal_tally, "Atlantis", "gold", PASSWORD)
expect_fault(4, server.increment_medal_tally, "Gaul", "platinum", PASSWORD)
expect_fault(4, server.increment_medal_tally, "Gaul", "", PASSWORD)
expect_fault(3, server.set_score, "Stone Juggling", "1-0", PASSWORD)
expect_fault(2, server.get_medal_tally, "Atlantis", 1)
expect_fault(3, server.get_score, "Stone Juggling", 1)
print("ok")
"#,
        &cluster.balancer_url(),
    );
    assert_eq!(out.trim(), "ok");

    // Directly at each front-end, both API styles.
    let wrong = |pw: &str| Value::from(pw);
    let near_misses = [
        format!("{PASSWORD}x"),
        PASSWORD[..PASSWORD.len() - 1].to_owned(),
        String::new(),
        PASSWORD.to_uppercase(),
    ];
    for (i, fe) in [cluster.frontend(0), cluster.frontend(1)]
        .iter()
        .enumerate()
    {
        let calls: [(&str, Vec<Value>); 2] = [
            (
                "increment_medal_tally",
                vec!["Greece".into(), "silver".into(), wrong(&near_misses[i * 2])],
            ),
            (
                "scoreboard.set_score",
                vec![
                    "Stone Curling".into(),
                    "Persia 5".into(),
                    wrong(&near_misses[i * 2 + 1]),
                ],
            ),
        ];
        for (method, params) in &calls {
            let f = fe.fault(method, params);
            assert_eq!(
                f.code,
                faults::UNAUTHORIZED,
                "{method} at front-end {i}: {f}"
            );
        }
        let unknown: [(&str, Vec<Value>, i32); 6] = [
            (
                "scoreboard.increment_medal",
                vec!["Atlantis".into(), "gold".into(), PASSWORD.into()],
                faults::UNKNOWN_TEAM,
            ),
            (
                "scoreboard.increment_medal",
                vec![
                    "Gaul".into(),
                    "tin".into(),
                    PASSWORD.into(),
                    "rid-unknown-medal".into(),
                ],
                faults::UNKNOWN_MEDAL,
            ),
            (
                "scoreboard.set_score",
                vec!["Stone Juggling".into(), "1".into(), PASSWORD.into()],
                faults::UNKNOWN_EVENT,
            ),
            (
                "set_score",
                vec!["".into(), "1".into(), PASSWORD.into()],
                faults::UNKNOWN_EVENT,
            ),
            (
                "scoreboard.tally",
                vec!["Gauls".into()],
                faults::UNKNOWN_TEAM,
            ),
            (
                "scoreboard.history",
                vec!["score".into(), "Stone Juggling".into()],
                faults::UNKNOWN_EVENT,
            ),
        ];
        for (method, params, code) in &unknown {
            let f = fe.fault(method, params);
            assert_eq!(f.code, *code, "{method}{params:?} at front-end {i}: {f}");
        }
    }

    // Nothing was written, at the db or in either front-end's view.
    let after = db_snapshot(&cluster.db_url());
    assert_eq!(after, before, "a rejected write changed the db");
    for i in 0..2 {
        let fe = cluster.frontend(i);
        assert_eq!(
            fe.medal_table(),
            sorted(&after.tallies),
            "front-end {i}'s medal table disagrees with the db"
        );
        assert_eq!(
            fe.history("tally", "Gaul").len(),
            0,
            "Gaul's history at front-end {i}"
        );
        assert_eq!(
            fe.history("tally", "Greece").len(),
            1,
            "Greece's history at front-end {i}"
        );
        assert_eq!(fe.history("score", "Stone Curling").len(), 0);
    }

    // Control: a good write is seen by the same check.
    cluster
        .balancer()
        .increment_medal("Gaul", "gold", None)
        .expect("the right password still works");
    let control = db_snapshot(&cluster.db_url());
    assert_eq!(control.latest, before.latest + 1);
    assert_ne!(control, before);
}

/// The db's tallies ranked as `scoreboard.medal_table` ranks them.
fn sorted(tallies: &[podium::scoreboard::Tally]) -> Vec<podium::scoreboard::Tally> {
    let mut t = tallies.to_vec();
    podium::scoreboard::rank(&mut t);
    t
}

/// Internal methods are not public: the balancer refuses `db.*` as an
/// unknown method (-32601) even with the cluster secret and inside a
/// multicall, and does not list them; a front-end refuses them too; the db
/// itself refuses them without the right secret (fault 1) and answers with it.
#[test]
fn internal_methods_are_refused_without_the_secret_and_never_forwarded() {
    let cluster = Cluster::start(ClusterConfig::default());
    let before = db_snapshot(&cluster.db_url());
    let bal_url = cluster.balancer_url();
    let internal_calls: [(&str, Vec<Value>); 4] = [
        ("db.roster", vec![]),
        ("db.changes", vec![Value::Int(0)]),
        ("db.tallies", vec![]),
        (
            "db.increment_medal",
            vec!["Gaul".into(), "gold".into(), "rid-smuggled".into()],
        ),
    ];

    // The balancer: not a method, with or without the secret.
    for client in [Rpc::new(&bal_url), Rpc::internal(&bal_url)] {
        for (method, params) in &internal_calls {
            let f = client.fault(method, params);
            assert_eq!(f.code, fault::METHOD_NOT_FOUND, "balancer {method}: {f}");
        }
        let multi = client.ok(
            "system.multicall",
            &[Value::Array(vec![Value::structure([
                ("methodName", Value::from("db.roster")),
                ("params", Value::Array(vec![])),
            ])])],
        );
        let entry = &multi.as_array().expect("an array")[0];
        let code = entry
            .as_struct()
            .and_then(|s| s.get("faultCode"))
            .and_then(Value::as_i64);
        assert_eq!(
            code,
            Some(fault::METHOD_NOT_FOUND.into()),
            "multicall entry {entry:?}"
        );
    }
    let names = Rpc::new(&bal_url).ok("system.listMethods", &[]);
    let names: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"get_medal_tally"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("db.")), "{names:?}");

    // Python's stock client, as any outsider would try it.
    let out = py(
        r#"
expect_fault(-32601, server.db.roster)
expect_fault(-32601, server.db.increment_medal, "Gaul", "gold", "rid-py")
print("ok")
"#,
        &bal_url,
    );
    assert_eq!(out.trim(), "ok");

    // A front-end: refused without the secret, and with a wrong one.
    for i in 0..2 {
        let url = cluster.frontends[i].url();
        for client in [
            Rpc::new(&url),
            Rpc::with_config(&url, cluster_support::CALL_TIMEOUT, Some("wrong-secret")),
        ] {
            for (method, params) in &internal_calls {
                let f = client.fault(method, params);
                assert!(
                    [fault::METHOD_NOT_FOUND, faults::UNAUTHORIZED].contains(&f.code),
                    "front-end {i} {method}: {f}"
                );
            }
        }
    }

    // The db: fault 1 without the secret or with a wrong one...
    let db_url = cluster.db_url();
    for client in [
        Rpc::new(&db_url),
        Rpc::with_config(&db_url, cluster_support::CALL_TIMEOUT, Some("wrong-secret")),
    ] {
        for (method, params) in &internal_calls {
            let f = client.fault(method, params);
            assert_eq!(
                f.code,
                faults::UNAUTHORIZED,
                "db {method} without the secret: {f}"
            );
        }
    }
    // ...nothing was written by any of it...
    assert_eq!(
        db_snapshot(&db_url),
        before,
        "a refused internal call wrote"
    );
    // ...and with the secret the same call works (so the refusals above
    // were about the secret, not a broken method).
    let roster = Rpc::internal(&db_url).ok("db.roster", &[]);
    assert!(
        roster.as_struct().is_some_and(|s| s.contains_key("epoch")),
        "{roster:?}"
    );
    match Rpc::new(&db_url).call("db.roster", &[]) {
        Err(ClientError::Fault(f)) => assert_eq!(f.code, faults::UNAUTHORIZED),
        other => panic!("db.roster without the secret: {other:?}"),
    }
}

/// The balancer hands a call in the plain spelling to a front-end without
/// parsing it, and parses any other. Either way a client gets what the
/// front-end itself answers: the same result for the same call however it is
/// spelled, and the same fault for a body that is broken after its method
/// name, which only the front-end parses.
#[test]
fn every_spelling_of_a_call_gets_the_front_ends_answer_through_the_balancer() {
    use support::http_post;
    let cluster = Cluster::start(ClusterConfig::default());
    let bal = cluster.balancer.as_ref().expect("a balancer").addr();
    let fe = cluster.frontends[0].addr();
    let bodies: [&[u8]; 6] = [
        // Plain: relayed unparsed.
        b"<?xml version='1.0'?>\n<methodCall>\n<methodName>get_medal_tally</methodName>\n<params><param><value><string>Gaul</string></value></param></params>\n</methodCall>\n",
        // Other spellings of the same call: parsed by the balancer.
        b"<methodCall><!-- hi --><methodName>get_medal_tally</methodName><params><param><value>Gaul</value></param></params></methodCall>",
        b"<methodCall><methodName >get_medal_tally</methodName ><params><param><value><![CDATA[Gaul]]></value></param></params></methodCall>",
        // Broken after the method name.
        b"<methodCall><methodName>get_medal_tally</methodName><params><param><value><int>x</int></value></param></params></methodCall>",
        b"<methodCall><methodName>get_medal_tally</methodName><params><param>",
        b"<methodCall><methodName>get_medal_tally</methodName><params><param><value><string>Gaul</string></value></param></params></methodCall><extra/>",
    ];
    let answers: Vec<(String, String)> = bodies
        .iter()
        .map(|body| {
            let via_bal = http_post(bal, "/", &[], body);
            let direct = http_post(fe, "/", &[], body);
            assert_eq!(via_bal.status, 200, "{}", String::from_utf8_lossy(body));
            (via_bal.text(), direct.text())
        })
        .collect();
    for (i, (via_bal, direct)) in answers.iter().enumerate() {
        // Tally replies carry the time of the last change, the same on both.
        assert_eq!(via_bal, direct, "body {i}");
    }
    for (via_bal, _) in &answers[..3] {
        assert!(via_bal.contains("Team Gaul has:"), "{via_bal}");
    }
    for (via_bal, _) in &answers[3..] {
        assert!(via_bal.contains("faultCode"), "{via_bal}");
    }
}

/// What stock clients in other languages do, from Python's stock client
/// through the balancer: code generators read `system.methodSignature` for
/// every public method (XML-RPC type names only, one signature per arity),
/// and Perl, PHP and Ruby send a numeric score as `<int>` or `<double>`,
/// which is stored as its text, as the old server stored it.
#[test]
fn stock_clients_introspect_and_send_numeric_scores_through_the_balancer() {
    let cluster = Cluster::start(ClusterConfig::default());
    let out = py(
        r#"
TYPES = {"string", "int", "i8", "boolean", "double", "dateTime.iso8601",
         "base64", "struct", "array", "nil"}
names = server.system.listMethods()
public = [n for n in names if not n.startswith("system.")]
assert "set_score" in public and "scoreboard.set_score" in public, names
assert not any(n.startswith("db.") or n.startswith("cluster.") for n in names), names
for name in names:
    sigs = server.system.methodSignature(name)
    assert type(sigs) is list and sigs, f"{name}: signature {sigs!r}"
    arities = {}
    for sig in sigs:
        assert all(t in TYPES for t in sig), f"{name}: {sig!r} is not in XML-RPC's type names"
        arities.setdefault(len(sig) - 1, []).append(sig[1:])
    for n, params in arities.items():
        assert len(params) == len({tuple(p) for p in params}), f"{name}: repeated signature {sigs!r}"
    assert server.system.methodHelp(name), f"{name} has no help"
# Optional arguments show as one signature per arity.
arities = {len(s) - 1 for s in server.system.methodSignature("scoreboard.set_score")}
assert arities == {3, 4}, arities
arities = {len(s) - 1 for s in server.system.methodSignature("get_score")}
assert arities == {1, 2}, arities

# Numeric scores, as <int> and <double>, become their text.
for value, text in [(3, "3"), (2.5, "2.5"), (3.0, "3.0"), (-7, "-7"), (1e20, "1e+20")]:
    ack = server.set_score("Stone Curling", value, PASSWORD)
    assert type(ack) is str and ack, f"set_score({value!r}) acknowledged with {ack!r}"
    eventually(f"score {text}", lambda: (lambda s: (s[0] == text, s))(score("Stone Curling", 1)))
reply = server.scoreboard.set_score("Stone Skating", 42, PASSWORD)
assert reply["score"]["score"] == "42", reply
eventually("the skating score", lambda: (lambda s: (s["score"] == "42", s))(server.scoreboard.score("Stone Skating")))
# Anything else is refused with a fault that names the argument.
msg = expect_fault(-32602, server.set_score, "Stone Curling", True, PASSWORD)
assert "score" in msg, msg
msg = expect_fault(-32602, server.set_score, "Stone Curling", [1], PASSWORD)
assert "score" in msg, msg
print("ok")
"#,
        &cluster.balancer_url(),
    );
    assert_eq!(out.trim(), "ok");
}
