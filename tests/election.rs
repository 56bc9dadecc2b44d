//! The election group under failure, with the real `podium-db` (uid 0) and
//! `podium-frontend` (uids 1..) binaries on loopback:
//! - the coordinator is killed with SIGKILL: the highest live uid takes over
//!   in a newer term, and every live member agrees on it and on the term;
//! - the killed higher uid is restarted: it takes over again;
//! - the coordinator is frozen with SIGSTOP and resumed: at no sample do two
//!   members claim to coordinate the same term, and the group settles on one
//!   coordinator and one term;
//! - clocks skewed by -2 s, 0 and +1.5 s converge through Berkeley rounds to
//!   within 25 ms, and no member's cluster clock ever runs backwards;
//! - a write through front-end 1, then a read and a write through
//!   front-end 2: the stored vector clocks show the first write happened
//!   before the second.
//!
//! The tests run one at a time (see [`serial`]) so that heartbeats are not
//! starved by another test's processes on the two cores they get. Every wait
//! polls with a deadline; the deadlines are generous and are not the
//! failover goal (that is measured by `examples/failover_bench.rs`).

mod election_support;
mod support;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use election_support::{
    agreement, describe, disagreement_us, happened_before, same_term_coordinators, Agreement, Bins,
    Group, GroupConfig, Rpc, Status, PASSWORD,
};
use podium::rpc::Value;
use support::wait_for;

/// How long a group gets to agree on a coordinator: after a start, a kill,
/// a restart or a resume. Generous (the goal is under 2 s).
const AGREE_DEADLINE: Duration = Duration::from_secs(15);

/// How long skewed clocks get to converge (a 3.5 s spread, slewed at half a
/// second per second, with a round every 500 ms, takes about 5 s).
const CONVERGE_DEADLINE: Duration = Duration::from_secs(30);

/// The clock agreement the test requires (the goal is under 5 ms).
const CLOCK_BOUND_US: i64 = 25_000;

/// Allowance for clock granularity in the clock-rate check, microseconds.
const SLACK_US: i64 = 1_000;

/// Pause between two samples of the group's statuses.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// One test at a time: they are timing-sensitive and share two cores.
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

/// Waits for `uids` of `group` to agree on a coordinator `accept` likes.
///
/// # Panics
/// When they do not by [`AGREE_DEADLINE`], with the last sample and the
/// members' logs.
fn agreed(
    group: &Group,
    uids: &[u32],
    what: &str,
    accept: impl FnMut(&Agreement) -> bool,
) -> Agreement {
    group
        .wait_agreement(uids, AGREE_DEADLINE, accept)
        .unwrap_or_else(|last| {
            panic!(
                "{what}: members {uids:?} did not agree within {AGREE_DEADLINE:?}; \
                 last sample: {last}\n{}",
                group.outputs()
            )
        })
}

// ---------------------------------------------------------------------------
// Failover
// ---------------------------------------------------------------------------

/// Property: when the coordinator dies (SIGKILL: no goodbye), the highest
/// live uid becomes coordinator in a newer term, and every live member names
/// it and that term. Four members, so the survivors are three and the winner
/// (uid 2) is neither the lowest nor the only one left.
#[test]
fn killed_coordinator_is_replaced_by_the_highest_live_uid() {
    let _serial = serial();
    let mut group = Group::start(&bins(), GroupConfig::members(3));
    let all = group.uids();
    let first = agreed(&group, &all, "at start", |a| a.coordinator == 3);

    group.kill(3);
    let killed_at = Instant::now();
    let live = group.running();
    let after = agreed(&group, &live, "after killing uid 3", |a| {
        a.coordinator == 2 && a.term > first.term
    });
    eprintln!(
        "uid 3 (term {}) killed; uid 2 coordinates term {} for all of {live:?} after {:?}",
        first.term,
        after.term,
        killed_at.elapsed()
    );

    // The new coordinator's view of its peers shows uid 3 failing.
    let status = group.rpc(2).status().expect("uid 2 answers");
    let dead = status
        .peers
        .iter()
        .find(|p| p.uid == 3)
        .expect("uid 3 is a peer");
    assert!(
        !dead.last_error.is_empty() || !dead.healthy,
        "uid 2's view of the dead uid 3: {dead:?}"
    );
}

/// Property: a returning higher uid takes over. Uid 2 coordinates, is
/// killed, uid 1 takes over; uid 2 is restarted (fresh state, same port) and
/// becomes coordinator again in a newer term, every member agreeing.
#[test]
fn restarted_higher_uid_takes_over_again() {
    let _serial = serial();
    let mut group = Group::start(&bins(), GroupConfig::members(2));
    let all = group.uids();
    let first = agreed(&group, &all, "at start", |a| a.coordinator == 2);

    group.kill(2);
    let without = agreed(&group, &[0, 1], "after killing uid 2", |a| {
        a.coordinator == 1 && a.term > first.term
    });

    group.restart(2);
    let restarted_at = Instant::now();
    let back = agreed(&group, &all, "after restarting uid 2", |a| {
        a.coordinator == 2 && a.term > without.term
    });
    eprintln!(
        "terms: {} (uid 2) -> {} (uid 1) -> {} (uid 2 again, {:?} after its restart)",
        first.term,
        without.term,
        back.term,
        restarted_at.elapsed()
    );
}

// ---------------------------------------------------------------------------
// A frozen coordinator
// ---------------------------------------------------------------------------

/// Samples `uids` every [`SAMPLE_EVERY`] until `done` holds for a sample or
/// `timeout` passes, and checks every sample for two coordinators of one
/// term. Returns the sample `done` accepted and how many were taken.
///
/// # Panics
/// On two coordinators of one term (the safety property), or when `done`
/// never holds.
fn observe(
    group: &Group,
    uids: &[u32],
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&[Status]) -> bool,
) -> (Vec<Status>, usize) {
    let deadline = Instant::now() + timeout;
    let mut samples = 0;
    let mut last = String::from("no sample taken");
    // Bounded in time by the deadline and in count by the sampling pause.
    let max_samples = (timeout.as_millis() / SAMPLE_EVERY.as_millis()) as usize + 1;
    while Instant::now() < deadline && samples < max_samples {
        match group.statuses(uids) {
            Ok(sample) => {
                samples += 1;
                let clashes = same_term_coordinators(&sample);
                assert!(
                    clashes.is_empty(),
                    "{what}: two coordinators of one term {clashes:?} in sample {}\n{}",
                    describe(&sample),
                    group.outputs()
                );
                if done(&sample) {
                    return (sample, samples);
                }
                last = describe(&sample);
            }
            Err(e) => last = e,
        }
        thread::sleep(SAMPLE_EVERY);
    }
    panic!(
        "{what}: not done within {timeout:?} ({samples} samples); last: {last}\n{}",
        group.outputs()
    );
}

/// Samples `uids` every [`SAMPLE_EVERY`] for `window` (an observation
/// period, not a wait for a condition) and checks every sample for two
/// coordinators of one term. Returns how many samples were taken.
///
/// # Panics
/// On two coordinators of one term.
fn watch(group: &Group, uids: &[u32], window: Duration, what: &str) -> usize {
    let end = Instant::now() + window;
    let max_samples = (window.as_millis() / SAMPLE_EVERY.as_millis()) as usize + 1;
    let mut samples = 0;
    while Instant::now() < end && samples < max_samples {
        if let Ok(sample) = group.statuses(uids) {
            samples += 1;
            let clashes = same_term_coordinators(&sample);
            assert!(
                clashes.is_empty(),
                "{what}: two coordinators of one term {clashes:?} in sample {}\n{}",
                describe(&sample),
                group.outputs()
            );
        }
        thread::sleep(SAMPLE_EVERY);
    }
    samples
}

/// Property: a coordinator frozen (SIGSTOP) long enough to be replaced, then
/// resumed (SIGCONT), believes for a moment that it still coordinates its old
/// term; it must never leave two coordinators of one term, and the group
/// must settle on one coordinator and one term. Statuses are sampled all
/// along: while it is frozen (the two others) and after it resumes (all
/// three), and for a while after they agree.
#[test]
fn frozen_coordinator_resumed_does_not_leave_two_coordinators() {
    let _serial = serial();
    let mut group = Group::start(&bins(), GroupConfig::members(2));
    let all = group.uids();
    let first = agreed(&group, &all, "at start", |a| a.coordinator == 2);

    group.signal(2, "STOP");
    let (_, frozen_samples) = observe(&group, &[0, 1], AGREE_DEADLINE, "uid 2 frozen", |s| {
        agreement(s).is_some_and(|a| a.coordinator == 1 && a.term > first.term)
    });
    let during = agreement(&group.statuses(&[0, 1]).expect("0 and 1 answer"));

    group.signal(2, "CONT");
    let mut stale_seen = false;
    let (settled, resumed_samples) = observe(&group, &all, AGREE_DEADLINE, "uid 2 resumed", |s| {
        // The resumed uid 2 may still claim its old term for a moment.
        stale_seen |= s.iter().filter(|m| m.is_coordinator()).count() > 1;
        agreement(s).is_some()
    });
    let settled = agreement(&settled).expect("the sample was accepted for agreeing");
    assert_eq!(
        settled.coordinator, 2,
        "the highest uid, alive again, should coordinate: {settled:?}"
    );
    assert!(
        settled.term > first.term,
        "uid 2 coordinates again, but in its old term {}: {settled:?}",
        first.term
    );

    // Keep watching for a few heartbeats: still never two of one term.
    let after_samples = watch(&group, &all, Duration::from_secs(2), "after agreement");
    eprintln!(
        "term {} (uid 2) -> frozen -> {during:?} -> resumed -> term {} (uid {}); \
         samples: {frozen_samples} frozen, {resumed_samples} resumed, {after_samples} after; \
         stale coordinator seen: {stale_seen}",
        first.term, settled.term, settled.coordinator
    );
}

// ---------------------------------------------------------------------------
// Clock synchronization
// ---------------------------------------------------------------------------

/// Property: members whose local clocks are 3.5 s apart (-2 s, 0, +1.5 s)
/// converge through Berkeley rounds (every 500 ms here) until their cluster
/// clocks agree within 25 ms, and stay there; meanwhile no member's cluster
/// clock ever reads less than it did before, or advances at less than half
/// or more than one and a half times real time (adjustments are slewed).
///
/// Disagreement is measured from outside: each member's `clock_us` is
/// compared with this process's clock at the middle of the call that read
/// it (the fastest of three calls is kept), so the call's latency cancels
/// out up to half its round trip, which is counted against the bound.
#[test]
fn skewed_clocks_converge_and_never_run_backwards() {
    let _serial = serial();
    let skew_ms: BTreeMap<u32, i64> = [(0, -2000), (1, 0), (2, 1500)].into();
    let mut config = GroupConfig::members(2);
    config.skew_ms = skew_ms.clone();
    config.sync_interval_ms = Some(500);
    let group = Group::start(&bins(), config);
    let all = group.uids();

    // Every reading of every member, checked against its previous one: the
    // cluster clock never reads less than before, and between two readings
    // it advanced at between half and one and a half times real time (the
    // slew rate is at most half a second per second). The member read its
    // clock somewhere inside each call, so real time between its two
    // readings is at least `before` of the second minus `after` of the first,
    // and at most `after` of the second minus `before` of the first.
    let mut last: BTreeMap<u32, election_support::Timed> = BTreeMap::new();
    let mut readings = 0usize;
    let mut monotonic = |t: &election_support::Timed| {
        readings += 1;
        let uid = t.status.uid;
        if let Some(prev) = last.insert(uid, t.clone()) {
            let (was, now) = (prev.status.clock_us, t.status.clock_us);
            assert!(
                now >= was,
                "uid {uid}'s cluster clock ran backwards by {} us ({was} then {now})",
                was - now
            );
            let advanced = now - was;
            let least = (t.before_us - prev.after_us) / 2 - SLACK_US;
            let most = (t.after_us - prev.before_us) * 3 / 2 + SLACK_US;
            assert!(
                (least..=most).contains(&advanced),
                "uid {uid}'s cluster clock advanced {advanced} us between two readings \
                 {} to {} us of real time apart: outside [{least}, {most}]",
                t.before_us - prev.after_us,
                t.after_us - prev.before_us
            );
        }
    };
    let started = Instant::now();
    let initial = group
        .clock_sample(&all, 1, &mut monotonic)
        .expect("every member answers");
    let (initial_spread, _) = disagreement_us(&initial);

    // Converged: the spread plus its uncertainty (an upper bound of the true
    // disagreement) is under the bound.
    let mut latest = (0, 0);
    let converged = wait_for(CONVERGE_DEADLINE, || {
        let sample = group.clock_sample(&all, 3, &mut monotonic).ok()?;
        latest = disagreement_us(&sample);
        (latest.0 + latest.1 < CLOCK_BOUND_US).then_some(sample)
    })
    .unwrap_or_else(|| {
        panic!(
            "clocks skewed by {skew_ms:?} ms still disagree by {} us (+/- {} us) after \
             {CONVERGE_DEADLINE:?}\n{}",
            latest.0,
            latest.1,
            group.outputs()
        )
    });
    let converged_after = started.elapsed();

    // The agreement comes from the offsets: local clock (skew included)
    // plus offset is the same cluster time everywhere, so skew + offset
    // agree, and the db (-2 s) carries an offset about 3.5 s above uid 2's.
    let corrected: Vec<(u32, f64)> = converged
        .iter()
        .map(|t| {
            let uid = t.status.uid;
            (uid, skew_ms[&uid] as f64 + t.status.offset_ms)
        })
        .collect();
    let spread_ms = corrected.iter().map(|c| c.1).fold(f64::MIN, f64::max)
        - corrected.iter().map(|c| c.1).fold(f64::MAX, f64::min);
    assert!(
        spread_ms * 1000.0 < CLOCK_BOUND_US as f64,
        "skew + offset_ms disagree by {spread_ms} ms: {corrected:?}"
    );

    // And they stay together over several more rounds. The spread minus its
    // uncertainty (a lower bound of the true disagreement) must stay under
    // the bound, so a slow call on a loaded machine does not fail the test.
    let mut worst = 0;
    let window_end = Instant::now() + Duration::from_secs(2);
    for _ in 0..100 {
        if Instant::now() >= window_end {
            break;
        }
        let sample = group
            .clock_sample(&all, 3, &mut monotonic)
            .expect("every member answers");
        let (spread, uncertainty) = disagreement_us(&sample);
        worst = worst.max(spread);
        assert!(
            spread - uncertainty < CLOCK_BOUND_US,
            "clocks drifted apart again: {spread} us (+/- {uncertainty} us)"
        );
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "clocks {skew_ms:?} ms: {initial_spread} us apart at first, under {CLOCK_BOUND_US} us \
         after {converged_after:?}, worst {worst} us afterwards; {readings} readings, none \
         backwards; skew + offset: {corrected:?}"
    );
}

// ---------------------------------------------------------------------------
// Vector clocks
// ---------------------------------------------------------------------------

/// A key's updates as `scoreboard.history` returns them: (version, vector clock).
fn history(fe: &Rpc, team: &str) -> Vec<(i64, Vec<i64>)> {
    let v = fe.ok("scoreboard.history", &["tally".into(), team.into()]);
    v.as_array()
        .unwrap_or_else(|| panic!("history is not an array: {v:?}"))
        .iter()
        .map(|c| {
            let s = c.as_struct().unwrap_or_else(|| panic!("update {c:?}"));
            let version = s
                .get("version")
                .and_then(Value::as_i64)
                .unwrap_or_else(|| panic!("update without version: {c:?}"));
            let vclock = s
                .get("vector_clock")
                .and_then(Value::as_array)
                .unwrap_or_else(|| panic!("update without vector_clock: {c:?}"))
                .iter()
                .map(|e| e.as_i64().unwrap_or_else(|| panic!("entry {e:?} in {c:?}")))
                .collect();
            (version, vclock)
        })
        .collect()
}

/// Property: a write through front-end 1, followed by a read through
/// front-end 2 that sees it and a write through front-end 2, are causally
/// ordered, and the stored vector clocks say so: the first update's clock is
/// entry-wise at most the second's, and they differ. Also: front-end 2's own
/// clock, once it has served the first write's value, covers that write.
#[test]
fn writes_through_two_frontends_are_causally_ordered() {
    let _serial = serial();
    let group = Group::start(&bins(), GroupConfig::members(2));
    let (fe1, fe2) = (group.rpc(1), group.rpc(2));
    let team = "Gaul";
    let wait_ready = |fe: &Rpc| {
        wait_for(AGREE_DEADLINE, || {
            fe.call("scoreboard.tally", &[team.into()]).ok()
        })
        .unwrap_or_else(|| panic!("{} never served a tally\n{}", fe.url(), group.outputs()))
    };
    wait_ready(fe1);
    wait_ready(fe2);
    let before = history(fe1, team).len();

    fe1.ok(
        "increment_medal_tally",
        &[team.into(), "gold".into(), PASSWORD.into()],
    );
    let updates = history(fe1, team);
    assert_eq!(updates.len(), before + 1, "one new update: {updates:?}");
    let (v1, first) = updates.last().cloned().expect("an update");

    // Front-end 2 serves the write (once its cache hears of it).
    let seen = wait_for(AGREE_DEADLINE, || {
        let t = fe2.call("scoreboard.tally", &[team.into()]).ok()?;
        let version = t.as_struct()?.get("version")?.as_i64()?;
        (version >= v1).then_some(version)
    });
    assert!(
        seen.is_some(),
        "front-end 2 never served version {v1}\n{}",
        group.outputs()
    );
    let fe2_clock = fe2.status().expect("front-end 2 answers").vector_clock;
    assert!(
        happened_before(&first, &fe2_clock),
        "front-end 2 served the write {first:?} but its clock {fe2_clock:?} does not cover it"
    );

    fe2.ok(
        "increment_medal_tally",
        &[team.into(), "silver".into(), PASSWORD.into()],
    );
    let updates = history(fe2, team);
    assert_eq!(updates.len(), before + 2, "two new updates: {updates:?}");
    let (v2, second) = updates.last().cloned().expect("an update");
    assert!(v2 > v1, "versions {v1} then {v2}");
    assert!(
        happened_before(&first, &second),
        "update {v1} {first:?} should have happened before update {v2} {second:?}"
    );
    assert!(
        !happened_before(&second, &first),
        "and not the other way round: {second:?} vs {first:?}"
    );
    // Each write carries its front-end's events: uid 1's entry in the first
    // (it was piggybacked), and uid 2's entry grew by the second.
    assert!(
        first.get(1).is_some_and(|c| *c > 0),
        "uid 1's entry in {first:?}"
    );
    assert!(
        second.get(2).copied().unwrap_or(0) > first.get(2).copied().unwrap_or(0),
        "uid 2's entry should grow from {first:?} to {second:?}"
    );
    eprintln!(
        "update {v1}: {first:?}; front-end 2 after reading: {fe2_clock:?}; update {v2}: {second:?}"
    );
}
