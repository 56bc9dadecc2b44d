//! Clocks under a hostile network (issue 11, points 5 and 6), on an election
//! group of the real `podium-db` (uid 0) and `podium-frontend` (uids 1, 2)
//! binaries on loopback:
//! - vector clocks cannot be poisoned: a hostile `X-Podium-Vclock` on a
//!   public call or on a call with a wrong secret is ignored, one from a
//!   caller holding the secret is refused with a fault that says what is
//!   wrong, nothing out of range reaches the update log, and the members
//!   keep accepting each other's clocks (elections, heartbeats and writes
//!   carry on);
//! - update timestamps never decrease: a db with a skewed clock, corrected
//!   by Berkeley rounds, killed with SIGKILL and restarted (its clock skewed
//!   again), stamps no update earlier than the last one stored, and neither
//!   after the coordinator changes.
//!
//! One test at a time ([`serial`]): they share two cores and heartbeats.
//! Every wait polls with a deadline.

mod election_support;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use election_support::{Bins, Group, GroupConfig, Rpc, PASSWORD, SECRET};
use podium::db::wire::{ChangeBatch, WriteReply};
use podium::rpc::codec::{parse_response, write_call, Limits};
use podium::rpc::{Fault, Value};
use podium::store::Change;
use support::wait_for;

/// How long a group gets to agree, a front-end to be ready, a clock to be
/// corrected: generous, for debug builds on a loaded two-core machine.
const DEADLINE: Duration = Duration::from_secs(40);

/// The most a counter of a sane vector clock reaches in these tests (each
/// counts the requests one member handled: thousands, not more).
const SANE_COUNT: i64 = 10_000_000;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn bins() -> Bins {
    Bins {
        db: env!("CARGO_BIN_EXE_podium-db").into(),
        frontend: env!("CARGO_BIN_EXE_podium-frontend").into(),
    }
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("a loopback address")
}

/// A call's outcome, over a connection of its own, with `headers`:
/// `Err(why)` when no XML-RPC reply came back (the server broke the
/// connection, or answered garbage).
fn raw_call(
    url: &str,
    headers: &[&str],
    method: &str,
    params: &[Value],
) -> Result<Result<Value, Fault>, String> {
    let body = write_call(method, params).expect("an encodable call");
    let mut stream = support::connect(addr_of(url));
    let request = support::post_request("/", headers, &body);
    let reply = support::exchange(&mut stream, &request).map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!("HTTP {}: {}", reply.status, reply.text()));
    }
    parse_response(&reply.body, Limits::default()).map_err(|e| format!("{e}: {}", reply.text()))
}

/// The db's update log, oldest first (read with the cluster secret).
fn update_log(db: &Rpc) -> Vec<Change> {
    let mut all = Vec::new();
    let mut after = 0;
    for _ in 0..1000 {
        let batch = ChangeBatch::from_value(&db.ok("db.changes", &[Value::Int(after)]))
            .expect("a change batch");
        let Some(last) = batch.changes.last() else {
            return all;
        };
        after = last.version;
        all.extend(batch.changes);
    }
    panic!("the update log did not end within 1000 pages")
}

/// A member's client of `url`: the secret, no vector clock of its own.
fn member(url: &str) -> Rpc {
    Rpc::with_config(url, Duration::from_secs(20), Some(SECRET))
}

fn wait_ready(group: &Group, uids: &[u32]) {
    for &uid in uids {
        let fe = group.rpc(uid);
        assert!(
            wait_for(DEADLINE, || fe
                .call("scoreboard.tally", &["Gaul".into()])
                .ok())
            .is_some(),
            "front-end {uid} never served a tally\n{}",
            group.outputs()
        );
    }
}

fn wait_coordinator(group: &Group, uids: &[u32], coordinator: u32) {
    group
        .wait_agreement(uids, DEADLINE, |a| a.coordinator == coordinator)
        .unwrap_or_else(|last| {
            panic!(
                "members {uids:?} never agreed on coordinator {coordinator}: {last}\n{}",
                group.outputs()
            )
        });
}

/// A vector clock is sane: at most one entry per uid of the group, each a
/// small count.
fn assert_sane(what: &str, vclock: &[i64]) {
    assert!(
        vclock.len() <= 3 && vclock.iter().all(|c| (0..SANE_COUNT).contains(c)),
        "{what}: vector clock {vclock:?} is not sane"
    );
}

/// Property: no caller can poison a vector clock. A hostile header (an
/// entry at i64::MAX, one past what a counter may reach, thousands of
/// entries, negative numbers, garbage) is ignored on a public call and on
/// an internal call with a wrong secret (which is refused), and refused
/// with an invalid-request fault that names the header when the caller
/// holds the secret. Afterwards every vector clock stored in the update log
/// and held by a member is sane, and the members still take each other's:
/// a write through front-end 1 carries front-end 1's events into the log,
/// the group still agrees on its coordinator, and the db still merges.
#[test]
fn hostile_vector_clocks_are_ignored_or_refused_and_never_stored() {
    let _serial = serial();
    // Each hostile header comes with a wrong secret too (two on the db), all
    // from this one address: a burst of wrong guesses that the guess limiter
    // would end after five, and then refuse the right secret from here as
    // well. What is tested here is the clocks, so the burst is raised.
    let group = Group::start(
        &bins(),
        GroupConfig {
            extra_args: vec!["--guess-burst".into(), "1000".into()],
            ..GroupConfig::members(2)
        },
    );
    wait_coordinator(&group, &[0, 1, 2], 2);
    wait_ready(&group, &[1, 2]);

    let thousands = vec!["1"; 5000].join(",");
    let hostile: Vec<String> = vec![
        i64::MAX.to_string(),
        format!("0,{},0", i64::MAX),
        format!("{},0,0", 1i64 << 53),
        "99999999999999999999999".into(),
        thousands,
        "1,0,-5".into(),
        "garbage".into(),
        "1,,2".into(),
        "0x10".into(),
    ];
    for header in &hostile {
        let vclock = format!("X-Podium-Vclock: {header}");
        let shown: String = header.chars().take(40).collect();
        for uid in [0, 1, 2] {
            let url = group.url(uid);
            // A public call: answered as if the header were not there.
            let public = raw_call(&url, &[&vclock], "cluster.status", &[]);
            assert!(
                matches!(public, Ok(Ok(_))),
                "uid {uid}, public cluster.status with X-Podium-Vclock {shown:?}: {public:?}\n{}",
                group.outputs()
            );
            // A wrong secret: refused as unauthorized, header ignored.
            let wrong = raw_call(
                &url,
                &[&vclock, "X-Podium-Secret: not-the-secret"],
                "clock.read",
                &[],
            );
            match &wrong {
                Ok(Err(f)) if f.code == 1 => {}
                other => panic!(
                    "uid {uid}, clock.read with a wrong secret and X-Podium-Vclock {shown:?}: \
                     want fault 1, got {other:?}\n{}",
                    group.outputs()
                ),
            }
            // The secret: refused, saying what is wrong.
            let secret = format!("X-Podium-Secret: {SECRET}");
            let refused = raw_call(&url, &[&vclock, &secret], "clock.read", &[]);
            match &refused {
                Ok(Err(f)) if f.code == -32600 && f.message.contains("X-Podium-Vclock") => {}
                other => panic!(
                    "uid {uid}, a member's clock.read with X-Podium-Vclock {shown:?}: \
                     want fault -32600 naming the header, got {other:?}\n{}",
                    group.outputs()
                ),
            }
        }
        // The db's writes, the call a poisoned clock is stored by.
        let secret = format!("X-Podium-Secret: {SECRET}");
        for headers in [
            vec![vclock.as_str()],
            vec![vclock.as_str(), "X-Podium-Secret: not-the-secret"],
            vec![vclock.as_str(), secret.as_str()],
        ] {
            let outcome = raw_call(
                &group.url(0),
                &headers,
                "db.increment_medal",
                &["Rome".into(), "gold".into()],
            );
            assert!(
                matches!(&outcome, Ok(Err(f)) if f.code == 1 || f.code == -32600),
                "db.increment_medal with {headers:?}: want a refusal, got {outcome:?}\n{}",
                group.outputs()
            );
        }
    }

    // Members still take each other's clocks: a write through front-end 1
    // reaches the log with front-end 1's count in it.
    let fe1 = group.rpc(1);
    let ack = fe1.ok(
        "scoreboard.increment_medal",
        &["Gaul".into(), "gold".into(), PASSWORD.into()],
    );
    let version = ack
        .as_struct()
        .and_then(|s| s.get("version"))
        .and_then(Value::as_i64)
        .expect("a version");
    let db = member(&group.url(0));
    let log = update_log(&db);
    assert!(
        !log.iter().any(|c| c.entry.key() == "tally:rome"),
        "a refused write reached the log: {log:?}"
    );
    for change in &log {
        assert_sane(&format!("update {}", change.version), &change.vclock);
    }
    let written = log
        .iter()
        .find(|c| c.version == version)
        .expect("the write is in the log");
    assert!(
        written.vclock.get(1).is_some_and(|c| *c > 0),
        "the db did not merge front-end 1's clock: {:?}",
        written.vclock
    );
    // The group carries on: heartbeats and elections still work, and every
    // member's own clock is sane.
    wait_coordinator(&group, &[0, 1, 2], 2);
    for uid in [0, 1, 2] {
        let status = group.rpc(uid).status().expect("a status");
        assert_sane(&format!("uid {uid}"), &status.vector_clock);
        // Members heartbeat the coordinator (uid 2), which hears from all.
        let unhealthy: Vec<_> = status
            .peers
            .iter()
            .filter(|p| (uid == 2 || p.uid == 2) && !p.healthy)
            .collect();
        assert!(
            unhealthy.is_empty(),
            "uid {uid} sees unhealthy peers: {unhealthy:?}"
        );
    }
}

/// A write straight to the db: its stamped change.
fn write_db(db: &Rpc, team: &str) -> Change {
    let v = db.ok("db.increment_medal", &[team.into(), "bronze".into()]);
    WriteReply::from_value(&v).expect("a write reply").change
}

/// How far the db's cluster clock is from the coordinator's (uid 2),
/// milliseconds: the db's local clock runs `skew_ms` off, so its cluster
/// time is skew + offset where the coordinator's is its offset.
fn db_lag_ms(group: &Group, skew_ms: i64) -> Option<f64> {
    let db = group.rpc(0).status().ok()?;
    let coordinator = group.rpc(2).status().ok()?;
    Some(coordinator.offset_ms - (skew_ms as f64 + db.offset_ms))
}

/// Property: update timestamps never decrease, across a restart of the db
/// and a change of coordinator. The db's clock runs 6 s behind; Berkeley
/// rounds (every second) move it forward, and once it agrees with the
/// coordinator's, an update is
/// stamped. The db is then killed with SIGKILL and restarted: its clock is
/// 6 s behind again, and it takes rounds and seconds of slewing to catch
/// up. Every update stamped meanwhile must still not be earlier than the
/// last one stored before the kill. Then the coordinator (uid 2) is killed
/// and uid 1 takes over; the whole log stays in order.
#[test]
fn update_timestamps_never_decrease_across_a_db_restart_and_a_new_coordinator() {
    let _serial = serial();
    let skew_ms = -6000;
    let mut config = GroupConfig::members(2);
    config.skew_ms = BTreeMap::from([(0, skew_ms)]);
    config.sync_interval_ms = Some(1000);
    let mut group = Group::start(&bins(), config);
    wait_coordinator(&group, &[0, 1, 2], 2);
    // The time server corrects the db's clock (slewed: about 12 s).
    let corrected = wait_for(DEADLINE, || {
        db_lag_ms(&group, skew_ms).filter(|lag| lag.abs() < 200.0)
    });
    assert!(
        corrected.is_some(),
        "the db's clock was never corrected (still {:?} ms behind)\n{}",
        db_lag_ms(&group, skew_ms),
        group.outputs()
    );
    let db = member(&group.url(0));
    let before = write_db(&db, "Gaul");

    group.kill(0);
    group.restart(0);
    let db = member(&group.url(0));
    let after: Vec<Change> = (0..3).map(|_| write_db(&db, "Gaul")).collect();
    for change in &after {
        assert!(
            change.timestamp >= before.timestamp,
            "update {} is stamped {:.3}, {:.3} s before update {} ({:.3}), the last one \
             before the restart\n{}",
            change.version,
            change.timestamp,
            before.timestamp - change.timestamp,
            before.version,
            before.timestamp,
            group.outputs()
        );
    }

    // A new coordinator: uid 1.
    group.kill(2);
    wait_coordinator(&group, &[0, 1], 1);
    for _ in 0..3 {
        write_db(&db, "Rome");
    }
    let log = update_log(&db);
    assert!(log.len() >= 7, "the log: {log:?}");
    for pair in log.windows(2) {
        assert!(
            pair[1].timestamp >= pair[0].timestamp,
            "update {} ({:.3}) is stamped before update {} ({:.3})",
            pair[1].version,
            pair[1].timestamp,
            pair[0].version,
            pair[0].timestamp
        );
    }
}
