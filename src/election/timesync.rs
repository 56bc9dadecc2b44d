//! The time service's safety rules, pure: when the time server runs a
//! Berkeley round, whether it may act on the readings, and which
//! adjustments a member accepts. [`super::berkeley`] does the arithmetic,
//! [`super::driver`] makes the calls and asks these functions first. Time
//! is passed in; nothing here reads a clock or sends anything.
//!
//! The rules:
//! 1. Every member keeps a [`SyncSchedule`]; when a slot comes, it starts a
//!    round only if it coordinates then.
//! 2. The readings come back later. The time server acts on them only if it
//!    still coordinates then, and tags every adjustment with the term it
//!    coordinates then ([`plan_round`]); one that stepped down meanwhile
//!    drops the round.
//! 3. A member accepts an adjustment whose term is at least its own current
//!    term and whose size is at most [`MAX_ADJUSTMENT_US`]
//!    ([`check_adjustment`]). An older term comes from a deposed
//!    coordinator (typically one frozen in the middle of a round, then
//!    resumed), so it is refused. A newer term is accepted: terms belong to
//!    one uid each (see [`super::bully`]) and only a coordinator sends
//!    adjustments, so the sender did win that term, and the member has only
//!    not heard the announcement yet. Which uid sent it is not checked: the
//!    call does not say, and only members (holders of the cluster secret)
//!    can make it.
//! 4. The time server applies its own adjustment directly, without rule 3:
//!    it computed it itself, in the term it coordinates, and the bound
//!    protects members from a faulty time server, not the time server from
//!    the members' average.

use super::berkeley::{self, Reading};

/// The largest adjustment a member accepts, microseconds: one hour. More
/// than that is a broken clock or a broken time server; an operator should
/// look, rather than the cluster jump.
pub const MAX_ADJUSTMENT_US: i64 = 3_600_000_000;

/// Clock readings further than this from the median are left out of the
/// average (their owners are still corrected), microseconds.
pub const MAX_DEVIATION_US: i64 = 1_000_000;

/// Readings with a longer round trip are too uncertain to use, microseconds.
pub const MAX_READING_RTT_US: i64 = 200_000;

/// When a member's Berkeley rounds fall due (rule 1). Every member keeps
/// one, so a member that becomes coordinator runs its first round at its
/// next slot, not at once.
#[derive(Debug, Clone)]
pub struct SyncSchedule {
    interval_ms: u64,
    /// The next slot, milliseconds on the caller's clock.
    next_ms: u64,
}

impl SyncSchedule {
    /// A schedule whose first slot is one interval after `now_ms`.
    pub fn new(now_ms: u64, interval_ms: u64) -> Self {
        SyncSchedule {
            interval_ms,
            next_ms: now_ms + interval_ms,
        }
    }

    /// True when a round should start now: a slot has come and this member
    /// `coordinating`. A slot that comes is used up either way; the next one
    /// is an interval from `now_ms`.
    pub fn poll(&mut self, now_ms: u64, coordinating: bool) -> bool {
        if now_ms < self.next_ms {
            return false;
        }
        self.next_ms = now_ms + self.interval_ms;
        coordinating
    }
}

/// An adjustment as the time server sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjustment {
    /// Microseconds to add to the member's clock (slewed, not stepped).
    pub delta_us: i64,
    /// The term of the coordinator that sends it. A call without a term
    /// counts as term 0, which only a member that has seen no election yet
    /// accepts.
    pub term: u64,
}

/// A round the time server may act on (rule 2).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The term the adjustments are sent on behalf of.
    pub term: u64,
    /// What to add to the time server's own clock (rule 4), when its own
    /// reading was among the readings.
    pub own_delta_us: Option<i64>,
    /// What to send to each other member read.
    pub adjustments: Vec<(u32, Adjustment)>,
    /// Members whose readings were left out of the average.
    pub outliers: Vec<u32>,
}

/// The time server `uid`'s decision once its `readings` are in: `None`
/// unless it coordinates now (`coordinating_term` is the term it
/// coordinates, if it does), else the adjustments of the Berkeley round,
/// tagged with that term. Its own reading (offset 0) belongs in `readings`.
pub fn plan_round(uid: u32, coordinating_term: Option<u64>, readings: &[Reading]) -> Option<Plan> {
    let term = coordinating_term?;
    let round = berkeley::round(readings, MAX_DEVIATION_US, MAX_READING_RTT_US);
    let mut plan = Plan {
        term,
        own_delta_us: None,
        adjustments: Vec::new(),
        outliers: round.outliers,
    };
    for (member, delta_us) in round.adjustments {
        if member == uid {
            plan.own_delta_us = Some(delta_us);
        } else {
            plan.adjustments
                .push((member, Adjustment { delta_us, term }));
        }
    }
    Some(plan)
}

/// Why a member refused an adjustment (rule 3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Sent on behalf of a term older than the member's: a deposed
    /// coordinator.
    #[error("adjustment from term {term}, but the current term is {current}")]
    StaleTerm { term: u64, current: u64 },
    /// Larger than [`MAX_ADJUSTMENT_US`] either way.
    #[error("adjustment over an hour refused")]
    TooLarge { delta_us: i64 },
}

/// Rule 3: whether a member whose current term is `current_term` applies
/// `adjustment`. The term is checked first.
///
/// # Errors
/// The reason for the refusal; the member's clock must then stay as it is.
pub fn check_adjustment(current_term: u64, adjustment: Adjustment) -> Result<(), Refusal> {
    if adjustment.term < current_term {
        return Err(Refusal::StaleTerm {
            term: adjustment.term,
            current: current_term,
        });
    }
    if adjustment.delta_us.unsigned_abs() > MAX_ADJUSTMENT_US.unsigned_abs() {
        return Err(Refusal::TooLarge {
            delta_us: adjustment.delta_us,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The rules alone, then on the simulated network of
    //! [`crate::election::sim`] (which also checks after every step that no
    //! term has two coordinators).
    use super::*;
    use crate::election::sim::{Network, STEP_MS};

    const fn adjustment(delta_us: i64, term: u64) -> Adjustment {
        Adjustment { delta_us, term }
    }

    /// Property (rule 3): a member takes adjustments of its own term or a
    /// newer one, and refuses older terms, whatever their size; the term is
    /// checked before the size.
    #[test]
    fn a_member_refuses_older_terms_only() {
        assert_eq!(check_adjustment(4, adjustment(1_000, 4)), Ok(()));
        assert_eq!(check_adjustment(4, adjustment(-1_000, 9)), Ok(()));
        assert_eq!(check_adjustment(0, adjustment(5, 0)), Ok(()));
        assert_eq!(
            check_adjustment(4, adjustment(0, 3)),
            Err(Refusal::StaleTerm {
                term: 3,
                current: 4
            })
        );
        assert_eq!(
            check_adjustment(4, adjustment(i64::MIN, 3)),
            Err(Refusal::StaleTerm {
                term: 3,
                current: 4
            })
        );
    }

    /// Property (rule 3): an adjustment of up to an hour either way is
    /// taken; one over an hour is refused, i64::MIN included.
    #[test]
    fn adjustments_over_an_hour_are_refused() {
        for ok in [MAX_ADJUSTMENT_US, -MAX_ADJUSTMENT_US, 0] {
            assert_eq!(check_adjustment(2, adjustment(ok, 2)), Ok(()), "{ok}");
        }
        for big in [
            MAX_ADJUSTMENT_US + 1,
            -MAX_ADJUSTMENT_US - 1,
            i64::MIN,
            i64::MAX,
        ] {
            assert_eq!(
                check_adjustment(2, adjustment(big, 2)),
                Err(Refusal::TooLarge { delta_us: big }),
                "{big}"
            );
        }
    }

    /// Property (rule 1): a round starts at a slot and only while the
    /// member coordinates; a slot a member was not coordinating at is
    /// spent, so the next chance is an interval later.
    #[test]
    fn rounds_start_at_slots_and_only_while_coordinating() {
        let mut s = SyncSchedule::new(1_000, 500);
        assert!(!s.poll(1_499, true));
        assert!(s.poll(1_500, true));
        assert!(!s.poll(1_600, true));
        assert!(!s.poll(2_000, false));
        assert!(!s.poll(2_400, true));
        assert!(s.poll(2_500, true));
    }

    /// Property (rules 2 and 4): a time server that no longer coordinates
    /// has nothing to do with its readings; one that does sends every other
    /// member its adjustment tagged with its term, and keeps its own apart.
    #[test]
    fn a_plan_needs_a_coordinator_and_carries_its_term() {
        let readings = [
            Reading::from_exchange(2, 0, 0, 0),
            Reading::from_exchange(0, 0, 300, 0),
            Reading::from_exchange(1, 0, -600, 0),
        ];
        assert_eq!(plan_round(2, None, &readings), None);
        let plan = plan_round(2, Some(8), &readings).expect("a coordinator plans");
        assert_eq!(plan.term, 8);
        assert_eq!(plan.own_delta_us, Some(-100));
        assert_eq!(
            plan.adjustments,
            vec![(0, adjustment(-400, 8)), (1, adjustment(500, 8))]
        );
        // Without its own reading, the server does not touch its clock.
        assert_eq!(
            plan_round(2, Some(8), &readings[1..]).unwrap().own_delta_us,
            None
        );
    }

    /// A group of three (uid 2 coordinates) with clocks -300, 0 and +200 ms
    /// off, a round every 500 ms, and run until they agree on a coordinator.
    fn skewed_group() -> Network {
        let mut net = Network::new(&[0, 1, 2]);
        for (uid, skew_ms) in [(0, -300), (1, 0), (2, 200)] {
            net.set_skew_ms(uid, skew_ms);
        }
        net.sync_every(500);
        assert!(net.run_until(3_000, |n| n.agreement().is_some()));
        net
    }

    /// Property: one Berkeley round of the coordinator brings every clock
    /// it reached to the average (to the microsecond: round trips take no
    /// time here, and the average is rounded), and scheduled rounds do it
    /// by themselves.
    #[test]
    fn a_round_brings_every_clock_to_the_average() {
        let mut net = Network::new(&[0, 1, 2]);
        for (uid, skew_ms) in [(0, -300), (1, 0), (2, 200)] {
            net.set_skew_ms(uid, skew_ms);
        }
        assert!(net.run_until(3_000, |n| n.agreement().is_some()));
        assert_eq!(net.clock_spread_us(&[0, 1, 2]), 500_000);
        let average = [0, 1, 2]
            .map(|u| net.cluster_time_us(u))
            .iter()
            .sum::<i64>()
            / 3;
        let readings = net.read_clocks(2);
        let plan = net.finish_round(2, &readings).expect("uid 2 coordinates");
        assert!(plan.outliers.is_empty());
        assert_eq!(net.clock_spread_us(&[0, 1, 2]), 0);
        assert!((net.cluster_time_us(0) - average).abs() <= 1);

        let mut scheduled = skewed_group();
        assert!(scheduled.run_until(2_000, |n| n.clock_spread_us(&[0, 1, 2]) == 0));
    }

    /// Property: a coordinator frozen in the middle of a round (readings in,
    /// adjustments not yet sent), replaced, then resumed, still believes it
    /// coordinates and sends its stale adjustments, but every member has a
    /// newer term by then and refuses them: no member's clock moves. Only
    /// its own clock does (rule 4), and the group agrees again later.
    #[test]
    fn a_resumed_ex_coordinators_adjustments_are_refused() {
        let mut net = skewed_group();
        assert!(net.run_until(2_000, |n| n.clock_spread_us(&[0, 1, 2]) == 0));
        let (_, old_term) = net.agreement().expect("agreement");
        // Uid 0's machine clock jumps 400 ms; uid 2 reads the clocks, then
        // freezes before it acts on the readings.
        net.set_skew_ms(0, 100);
        let stale = net.read_clocks(2);
        net.freeze(2);
        assert!(net.run_until(5_000, |n| n.agreement().is_some_and(|(c, _)| c == 1)));
        assert!(net.run_until(2_000, |n| n.clock_spread_us(&[0, 1]) == 0));
        let (_, new_term) = net.agreement().expect("uid 1 coordinates");
        assert!(new_term > old_term);

        net.resume(2);
        let (t0, t1) = (net.cluster_time_us(0), net.cluster_time_us(1));
        let plan = net
            .finish_round(2, &stale)
            .expect("uid 2 still believes it coordinates");
        assert_eq!(plan.term, old_term);
        assert!(plan.adjustments.iter().any(|(_, a)| a.delta_us != 0));
        assert_eq!((net.cluster_time_us(0), net.cluster_time_us(1)), (t0, t1));
        for uid in [0, 1] {
            assert_eq!(
                net.member(uid).refused.last(),
                Some(&Refusal::StaleTerm {
                    term: old_term,
                    current: new_term
                }),
                "uid {uid}"
            );
        }

        // Uid 2, the highest, takes over in a newer term and rounds bring
        // the clocks together again.
        assert!(net.run_until(5_000, |n| {
            n.agreement().is_some_and(|(c, t)| c == 2 && t > new_term)
                && n.clock_spread_us(&[0, 1, 2]) == 0
        }));
    }

    /// Property (rule 2): a coordinator that learns it was replaced before
    /// its readings come back drops the round: it sends nothing and moves
    /// no clock, its own included.
    #[test]
    fn a_time_server_that_stepped_down_drops_its_round() {
        let mut net = skewed_group();
        net.set_skew_ms(0, 100);
        let stale = net.read_clocks(2);
        net.freeze(2);
        assert!(net.run_until(5_000, |n| n.agreement().is_some_and(|(c, _)| c == 1)));
        net.resume(2);
        // Its first step: its re-announcement is refused with the newer
        // term, so it steps down (and starts the election it will win).
        net.step(STEP_MS);
        assert!(!net.bully(2).is_coordinator(), "{:?}", net.bully(2));
        let refused = [0, 1].map(|u| net.member(u).refused.len());
        let times = [0, 1, 2].map(|u| net.cluster_time_us(u));
        assert_eq!(net.finish_round(2, &stale), None);
        assert_eq!([0, 1].map(|u| net.member(u).refused.len()), refused);
        assert_eq!([0, 1, 2].map(|u| net.cluster_time_us(u)), times);
    }

    /// Property (rule 3, the bound): a member whose clock is two hours off
    /// is told to move two hours and refuses; the others are not dragged
    /// (it is an outlier) and agree among themselves.
    #[test]
    fn a_member_two_hours_off_refuses_and_the_rest_agree() {
        let mut net = skewed_group();
        net.set_skew_ms(0, 2 * 3_600_000);
        assert!(net.run_until(2_000, |n| n.clock_spread_us(&[1, 2]) == 0
            && n.member(0)
                .refused
                .iter()
                .any(|r| matches!(r, Refusal::TooLarge { .. }))));
        assert!(net.clock_spread_us(&[0, 1]) > MAX_ADJUSTMENT_US);
    }

    /// Property (rule 4): the time server itself is not bound by the hour:
    /// when it is the one two hours off, it moves itself to the others.
    #[test]
    fn a_time_server_two_hours_off_corrects_itself() {
        let mut net = skewed_group();
        net.set_skew_ms(2, 2 * 3_600_000);
        assert!(net.run_until(2_000, |n| n.clock_spread_us(&[0, 1, 2]) == 0));
        assert!([0, 1].iter().all(|u| net.member(*u).refused.is_empty()));
    }

    /// Property: with a fifth of all messages lost and the coordinator
    /// frozen and resumed twice, every adjustment a member applied came from
    /// a term no older than its own at that moment, and some stale ones
    /// were refused (the scenario does test the rule); once losses stop,
    /// the clocks agree.
    #[test]
    fn under_losses_and_freezes_only_the_current_term_moves_clocks() {
        let mut net = skewed_group();
        net.set_drop_rate(0.2);
        for round in 0..2 {
            // Freeze uid 2 right after it has started a round.
            assert!(net.run_until(5_000, |n| n.member(2).has_pending_round()));
            net.set_skew_ms(0, -300 + 150 * (round + 1));
            net.freeze(2);
            net.run(3_000);
            net.resume(2);
            net.run(3_000);
        }
        net.set_drop_rate(0.0);
        assert!(net.run_until(6_000, |n| n.agreement().is_some()
            && n.clock_spread_us(&[0, 1, 2]) == 0));
        let mut refused = 0;
        for uid in [0, 1, 2] {
            let m = net.member(uid);
            refused += m
                .refused
                .iter()
                .filter(|r| matches!(r, Refusal::StaleTerm { .. }))
                .count();
            for a in &m.applied {
                assert!(a.adjustment.term >= a.term_then, "uid {uid}: {a:?}");
            }
        }
        assert!(refused > 0, "no stale adjustment was ever sent");
    }
}
