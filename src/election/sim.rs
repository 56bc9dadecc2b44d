//! A simulated network of pure election members, shared by the Bully and
//! the time-sync tests (as raft-rs's tests share `harness/src/network.rs`).
//!
//! Each member is the pure [`Bully`] state, a simulated clock and the pure
//! [`timesync`] rules; the network delivers every request and its reply at
//! once, breadth-first, and can drop messages at random, cut links, isolate,
//! freeze, kill and restart members, and advance time in steps. Nothing here
//! sleeps: time is a number.
//!
//! Berkeley rounds are off until [`Network::sync_every`] turns them on, so
//! pure election tests see only election messages. A round's readings are
//! taken in one step and acted on at the next (a round takes time), so a
//! member frozen in between resumes with readings from before its freeze.
//! Simulated clocks take adjustments at once; slewing is
//! [`crate::clock::ClusterClock`]'s business and is tested there.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};

use super::berkeley::Reading;
use super::bully::{Bully, BullyConfig, Outbound, Output, Role};
use super::timesync::{self, Adjustment, Plan, Refusal, SyncSchedule};

/// The time [`Network::run`] advances per step, milliseconds.
pub(crate) const STEP_MS: u64 = 50;

/// The most messages one delivery may cause: more is a message storm.
const MAX_DELIVERIES: usize = 10_000;

/// A simulated member's clock: network time, plus the skew of its machine's
/// clock, plus the offset the time service gave it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SimClock {
    /// How far this machine's clock is off, microseconds.
    pub(crate) skew_us: i64,
    /// The sum of the adjustments applied, microseconds.
    pub(crate) offset_us: i64,
}

impl SimClock {
    /// The member's cluster time when the network's time is `now_ms`.
    pub(crate) fn read_us(&self, now_ms: u64) -> i64 {
        now_ms as i64 * 1000 + self.skew_us + self.offset_us
    }
}

/// An adjustment a member applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The time server that sent it.
    pub(crate) from: u32,
    pub(crate) adjustment: Adjustment,
    /// The member's own term when it applied it.
    pub(crate) term_then: u64,
}

/// One simulated member.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) bully: Bully,
    pub(crate) clock: SimClock,
    /// Berkeley slots; `None` while the network runs no rounds.
    schedule: Option<SyncSchedule>,
    /// Readings of a round started at the previous step, to act on.
    pending_round: Option<Vec<Reading>>,
    /// Adjustments from other members this one applied, oldest first.
    pub(crate) applied: Vec<Applied>,
    /// Adjustments this member refused, oldest first.
    pub(crate) refused: Vec<Refusal>,
}

impl Member {
    /// True when this member has readings it has not acted on yet (it
    /// started a round at the last step).
    pub(crate) fn has_pending_round(&self) -> bool {
        self.pending_round.is_some()
    }

    /// A fresh member (a process just started) with the given machine skew.
    fn new(uid: u32, uids: &[u32], skew_us: i64, now_ms: u64, sync_ms: Option<u64>) -> Member {
        let peers = uids.iter().copied().filter(|p| *p != uid).collect();
        Member {
            bully: Bully::new(BullyConfig::new(uid, peers)),
            clock: SimClock {
                skew_us,
                offset_us: 0,
            },
            schedule: sync_ms.map(|ms| SyncSchedule::new(now_ms, ms)),
            pending_round: None,
            applied: Vec::new(),
            refused: Vec::new(),
        }
    }
}

/// The simulated network and its members.
#[derive(Debug)]
pub(crate) struct Network {
    uids: Vec<u32>,
    members: BTreeMap<u32, Member>,
    /// Dead or frozen members neither tick nor answer.
    down: BTreeSet<u32>,
    /// Cut links, as (lower uid, higher uid); a cut is both directions.
    cut: BTreeSet<(u32, u32)>,
    /// The chance that any one message (request or reply) is lost.
    drop_rate: f64,
    /// Seeded, so every run of a test sees the same losses.
    rng: rand::rngs::StdRng,
    now_ms: u64,
    /// Berkeley interval, milliseconds; `None`: no rounds.
    sync_ms: Option<u64>,
}

impl Network {
    /// Members `uids`, all up and linked, knowing no coordinator; clocks
    /// agree; no Berkeley rounds.
    pub(crate) fn new(uids: &[u32]) -> Network {
        let mut net = Network {
            uids: uids.to_vec(),
            members: BTreeMap::new(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            drop_rate: 0.0,
            rng: rand::rngs::StdRng::seed_from_u64(42),
            now_ms: 0,
            sync_ms: None,
        };
        for &uid in uids {
            net.members.insert(uid, Member::new(uid, uids, 0, 0, None));
        }
        net
    }

    /// Turns Berkeley rounds on: every member's schedule has a slot every
    /// `interval_ms` from now, and the coordinator uses them.
    pub(crate) fn sync_every(&mut self, interval_ms: u64) {
        self.sync_ms = Some(interval_ms);
        for m in self.members.values_mut() {
            m.schedule = Some(SyncSchedule::new(self.now_ms, interval_ms));
        }
    }

    /// Sets how far `uid`'s machine clock is off (a jump of that clock when
    /// it changes mid-test).
    pub(crate) fn set_skew_ms(&mut self, uid: u32, skew_ms: i64) {
        self.member_mut(uid).clock.skew_us = skew_ms * 1000;
    }

    /// Each message is lost with probability `rate` from now on.
    pub(crate) fn set_drop_rate(&mut self, rate: f64) {
        self.drop_rate = rate;
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub(crate) fn cut(&mut self, a: u32, b: u32) {
        self.cut.insert((a.min(b), a.max(b)));
    }

    /// Cuts every link of `uid`: it runs on alone.
    pub(crate) fn isolate(&mut self, uid: u32) {
        for other in self.uids.clone() {
            if other != uid {
                self.cut(uid, other);
            }
        }
    }

    /// Restores every cut link.
    pub(crate) fn heal(&mut self) {
        self.cut.clear();
    }

    /// Stops `uid` where it is (SIGSTOP): it keeps its state, and neither
    /// ticks nor answers until [`Network::resume`].
    pub(crate) fn freeze(&mut self, uid: u32) {
        self.down.insert(uid);
    }

    /// Lets a frozen member go on from where it stopped.
    pub(crate) fn resume(&mut self, uid: u32) {
        self.down.remove(&uid);
    }

    /// Kills `uid`: it is down for good, unless [`Network::restart`]ed.
    pub(crate) fn kill(&mut self, uid: u32) {
        self.down.insert(uid);
    }

    /// Starts `uid` again with fresh state, as a restarted process: a new
    /// election state and no offset (its machine's skew stays).
    pub(crate) fn restart(&mut self, uid: u32) {
        let skew_us = self.member(uid).clock.skew_us;
        let fresh = Member::new(uid, &self.uids, skew_us, self.now_ms, self.sync_ms);
        self.members.insert(uid, fresh);
        self.down.remove(&uid);
    }

    pub(crate) fn member(&self, uid: u32) -> &Member {
        &self.members[&uid]
    }

    fn member_mut(&mut self, uid: u32) -> &mut Member {
        self.members
            .get_mut(&uid)
            .unwrap_or_else(|| panic!("uid {uid} is not in the network"))
    }

    pub(crate) fn bully(&self, uid: u32) -> &Bully {
        &self.member(uid).bully
    }

    /// Whether one message from `a` reaches `b` (which draws a loss).
    fn reachable(&mut self, a: u32, b: u32) -> bool {
        !self.down.contains(&b)
            && !self.cut.contains(&(a.min(b), a.max(b)))
            && !self.rng.gen_bool(self.drop_rate)
    }

    /// Delivers `from`'s sends, and every send they cause, breadth-first;
    /// each is a request with a reply.
    fn deliver(&mut self, from: u32, out: Output) {
        let mut queue: Vec<(u32, Outbound)> = out.sends.into_iter().map(|s| (from, s)).collect();
        let mut budget = MAX_DELIVERIES;
        while let Some((src, send)) = queue.pop() {
            budget -= 1;
            assert!(budget > 0, "message storm");
            if !self.reachable(src, send.to) {
                continue;
            }
            let now = self.now_ms;
            let (reply, extra) = self
                .member_mut(send.to)
                .bully
                .on_message(now, src, send.message);
            queue.extend(extra.sends.into_iter().map(|s| (send.to, s)));
            if self.reachable(send.to, src) && !self.down.contains(&src) {
                let more = self
                    .member_mut(src)
                    .bully
                    .on_reply(now, send.to, send.message, reply);
                queue.extend(more.sends.into_iter().map(|s| (src, s)));
            }
        }
    }

    /// Advances time by `ms`; then every member that is up, in uid order,
    /// acts on the readings of a round it started at the previous step,
    /// ticks its election, and starts a round if one is due. Checks that no
    /// term has two coordinators.
    pub(crate) fn step(&mut self, ms: u64) {
        self.now_ms += ms;
        let uids: Vec<u32> = self.members.keys().copied().collect();
        for uid in uids {
            if self.down.contains(&uid) {
                continue;
            }
            if let Some(readings) = self.member_mut(uid).pending_round.take() {
                self.finish_round(uid, &readings);
            }
            let now = self.now_ms;
            let out = self.member_mut(uid).bully.tick(now);
            self.deliver(uid, out);
            let member = self.member_mut(uid);
            let coordinating = member.bully.is_coordinator();
            if member
                .schedule
                .as_mut()
                .is_some_and(|s| s.poll(now, coordinating))
            {
                let readings = self.read_clocks(uid);
                self.member_mut(uid).pending_round = Some(readings);
            }
        }
        self.check_one_coordinator_per_term();
    }

    /// Runs for `ms` (rounded down to whole steps of [`STEP_MS`]).
    pub(crate) fn run(&mut self, ms: u64) {
        for _ in 0..ms / STEP_MS {
            self.step(STEP_MS);
        }
    }

    /// `uid` reads every member it can reach, now: its own reading first
    /// (offset 0), then one per member whose request and reply both get
    /// through. Round trips take no time here.
    pub(crate) fn read_clocks(&mut self, uid: u32) -> Vec<Reading> {
        let now = self.now_ms;
        let own_us = self.member(uid).clock.read_us(now);
        let mut readings = vec![Reading::from_exchange(uid, own_us, own_us, own_us)];
        for other in self.uids.clone() {
            if other != uid && self.reachable(uid, other) && self.reachable(other, uid) {
                let member_us = self.member(other).clock.read_us(now);
                readings.push(Reading::from_exchange(other, own_us, member_us, own_us));
            }
        }
        readings
    }

    /// `uid` acts on `readings` as the time service's rules say: nothing
    /// unless it coordinates now, else it moves its own clock and sends each
    /// member its adjustment, which the member checks. Returns the plan, if
    /// it had one (a frozen member has none).
    pub(crate) fn finish_round(&mut self, uid: u32, readings: &[Reading]) -> Option<Plan> {
        if self.down.contains(&uid) {
            return None;
        }
        let server = self.member_mut(uid);
        let plan = timesync::plan_round(uid, server.bully.coordinating_term(), readings)?;
        if let Some(delta_us) = plan.own_delta_us {
            server.clock.offset_us += delta_us;
        }
        for &(to, adjustment) in &plan.adjustments {
            if !self.reachable(uid, to) {
                continue;
            }
            let member = self.member_mut(to);
            let term_then = member.bully.term();
            match timesync::check_adjustment(term_then, adjustment) {
                Ok(()) => {
                    member.clock.offset_us += adjustment.delta_us;
                    member.applied.push(Applied {
                        from: uid,
                        adjustment,
                        term_then,
                    });
                }
                Err(refusal) => member.refused.push(refusal),
            }
        }
        Some(plan)
    }

    /// Cluster time of `uid` now, microseconds.
    pub(crate) fn cluster_time_us(&self, uid: u32) -> i64 {
        self.member(uid).clock.read_us(self.now_ms)
    }

    /// How far apart the cluster clocks of `uids` are now, microseconds.
    pub(crate) fn clock_spread_us(&self, uids: &[u32]) -> i64 {
        let times: Vec<i64> = uids.iter().map(|u| self.cluster_time_us(*u)).collect();
        times.iter().max().unwrap_or(&0) - times.iter().min().unwrap_or(&0)
    }

    /// Safety: among members that are up, no term has two coordinators.
    ///
    /// # Panics
    /// When one has.
    pub(crate) fn check_one_coordinator_per_term(&self) {
        let mut seen = BTreeMap::new();
        for (u, m) in &self.members {
            if m.bully.is_coordinator() && !self.down.contains(u) {
                if let Some(other) = seen.insert(m.bully.term(), *u) {
                    panic!(
                        "uids {other} and {u} both coordinate term {}",
                        m.bully.term()
                    );
                }
            }
        }
    }

    /// `(coordinator, term)` when every member that is up names the same
    /// coordinator in the same term and none is a candidate.
    pub(crate) fn agreement(&self) -> Option<(u32, u64)> {
        let live: Vec<&Bully> = self
            .members
            .iter()
            .filter(|(u, _)| !self.down.contains(u))
            .map(|(_, m)| &m.bully)
            .collect();
        let first = live.first()?;
        let c = first.coordinator()?;
        let agreed = live.iter().all(|n| {
            n.coordinator() == Some(c) && n.term() == first.term() && n.role() != Role::Candidate
        });
        agreed.then_some((c, first.term()))
    }

    /// Steps until `done` holds, for at most `ms`; returns whether it did.
    pub(crate) fn run_until(&mut self, ms: u64, mut done: impl FnMut(&Network) -> bool) -> bool {
        for _ in 0..ms / STEP_MS {
            if done(self) {
                return true;
            }
            self.step(STEP_MS);
        }
        done(self)
    }
}
