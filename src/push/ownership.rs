//! Who pushes to which tablet, and where a new owner resumes. Pure.
//!
//! The db numbers each set of live front-ends that may push (a *view*);
//! within a view, the owner of a tablet is chosen by rendezvous hashing over
//! that set, so every member computes the same owner without asking, and a
//! member joining or leaving moves only its own share of the tablets.
//!
//! Every member tells the db, with each change-feed poll, how far its
//! tablets have been delivered (a [`Report`]). When a tablet changes owner,
//! the new owner resumes from the previous owner's report: a live previous
//! owner first releases the tablet (so two members never push to one
//! tablet, and pushes stay in version order), a dead one is resumed from
//! its last word. Nothing is lost; only pushes in flight when an owner died
//! can arrive twice.

use std::collections::BTreeMap;

/// A view's owner set by view number: the db keeps the recent ones.
pub type Views = BTreeMap<u64, Vec<u32>>;

/// How many views back a resume looks for a tablet's last owner.
const MAX_VIEWS_BACK: usize = 64;

/// The member that pushes to `url` among `owners`: the highest
/// [`rendezvous`] score wins.
pub fn owner(url: &str, owners: &[u32]) -> Option<u32> {
    owners
        .iter()
        .copied()
        .max_by_key(|uid| (rendezvous(*uid, url), *uid))
}

/// The rendezvous score of `uid` for `url`: FNV-1a (64 bits) over both. A
/// fixed, written-out hash, so that every build of every member agrees.
pub fn rendezvous(uid: u32, url: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in uid.to_le_bytes().iter().chain(url.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    // FNV's low bits mix poorly for short inputs; a final avalanche
    // (from MurmurHash3's fmix64) spreads them.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash
}

/// What a member last told the db about its deliveries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The view it had applied when it reported.
    pub view: u64,
    /// Every tablet it owns under that view has been delivered every change
    /// up to this version...
    pub position: i64,
    /// ...except these, delivered up to the version given.
    pub lagging: BTreeMap<String, i64>,
    /// Tablets it stopped pushing to lately (it lost them in a view
    /// change), with the version each had been delivered up to.
    pub released: BTreeMap<String, i64>,
}

impl Report {
    /// How far this member delivered `url`, if it speaks for it: it
    /// released it, or it owned it under the view it reported at.
    fn delivered(&self, url: &str, uid: u32, views: &Views) -> Option<i64> {
        if let Some(v) = self.released.get(url) {
            return Some(*v);
        }
        let owned = views
            .get(&self.view)
            .is_some_and(|owners| owner(url, owners) == Some(uid));
        owned.then(|| self.lagging.get(url).copied().unwrap_or(self.position))
    }
}

/// Where a new owner starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Push every change after this version.
    From(i64),
    /// The previous owner is alive and has not released the tablet yet:
    /// ask again shortly (and, past a deadline, resume as if it were dead:
    /// see [`resume`]'s `previous_alive`).
    Wait,
}

/// Where member `me`, owner of `url` under `view`, resumes. `since` is the
/// version of the change that made the subscription (nothing before it is
/// owed). `previous_alive` says whether a live previous owner is waited
/// for; the caller passes false once it has waited long enough, and the
/// previous owner is then resumed from its last report, as a dead one.
pub fn resume(
    url: &str,
    me: u32,
    view: u64,
    views: &Views,
    reports: &BTreeMap<u32, Report>,
    since: i64,
    previous_alive: bool,
) -> Resume {
    let alive_now = views.get(&view).cloned().unwrap_or_default();
    for (_, owners) in views.range(..view).rev().take(MAX_VIEWS_BACK) {
        let Some(previous) = owner(url, owners) else {
            continue;
        };
        let report = reports.get(&previous);
        if let Some(done) = report.and_then(|r| r.delivered(url, previous, views)) {
            // A live previous owner that has not applied our view may still
            // be pushing: its word is final only once it released the tablet.
            let released = report.is_some_and(|r| r.released.contains_key(url));
            let still_pushing = previous != me
                && alive_now.contains(&previous)
                && !released
                && report.is_some_and(|r| r.view < view);
            if still_pushing && previous_alive {
                return Resume::Wait;
            }
            return Resume::From(done.max(since));
        }
        if previous != me && alive_now.contains(&previous) && previous_alive {
            // Alive, but it has not reported on this tablet yet.
            return Resume::Wait;
        }
        // It never spoke for the tablet (it died before it took it over):
        // the owner before it did, further back.
    }
    Resume::From(since)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("http://127.0.0.1:{}/", 10_000 + i))
            .collect()
    }

    #[test]
    fn owners_are_spread_and_only_a_leavers_share_moves() {
        let all = urls(3000);
        let three = [1, 2, 3];
        let mut counts = [0; 4];
        for u in &all {
            counts[owner(u, &three).unwrap() as usize] += 1;
        }
        // Each gets about a third.
        assert!(
            counts[1..].iter().all(|c| (800..1200).contains(c)),
            "{counts:?}"
        );
        // Uid 3 leaves: only its tablets move, and they spread over 1 and 2.
        for u in &all {
            let before = owner(u, &three).unwrap();
            let after = owner(u, &[1, 2]).unwrap();
            if before != 3 {
                assert_eq!(before, after, "{u} moved although its owner stayed");
            }
        }
        assert_eq!(owner("x", &[]), None);
        assert_eq!(owner("x", &[7]), Some(7));
        // The same everywhere, whatever the order of the set.
        assert_eq!(owner(&all[0], &[3, 1, 2]), owner(&all[0], &three));
    }

    /// A url owned by `first` among `[first, second]`.
    fn url_owned_by(first: u32, second: u32) -> String {
        urls(100)
            .into_iter()
            .find(|u| owner(u, &[first, second]) == Some(first))
            .expect("some url")
    }

    fn report(view: u64, position: i64) -> Report {
        Report {
            view,
            position,
            ..Report::default()
        }
    }

    #[test]
    fn a_dead_owners_tablets_resume_from_its_last_report() {
        let url = url_owned_by(2, 1);
        let views = Views::from([(1, vec![1, 2]), (2, vec![1])]);
        let mut reports = BTreeMap::from([(1, report(2, 50)), (2, report(1, 40))]);
        // Uid 2 died at view 2; it had delivered everything up to 40.
        assert_eq!(
            resume(&url, 1, 2, &views, &reports, 5, true),
            Resume::From(40)
        );
        // A tablet it was behind on resumes from that tablet's version.
        reports.get_mut(&2).unwrap().lagging.insert(url.clone(), 33);
        assert_eq!(
            resume(&url, 1, 2, &views, &reports, 5, true),
            Resume::From(33)
        );
        // Never before the subscription itself.
        assert_eq!(
            resume(&url, 1, 2, &views, &reports, 36, true),
            Resume::From(36)
        );
        // No word from anyone: from the subscription.
        assert_eq!(
            resume(&url, 1, 2, &views, &BTreeMap::new(), 5, true),
            Resume::From(5)
        );
    }

    #[test]
    fn a_live_owner_is_waited_for_until_it_releases() {
        // Uid 2 joins: the url moves from 1 to 2 while 1 is alive.
        let url = url_owned_by(2, 1);
        let views = Views::from([(1, vec![1]), (2, vec![1, 2])]);
        let mut reports = BTreeMap::from([(1, report(1, 50))]);
        assert_eq!(resume(&url, 2, 2, &views, &reports, 5, true), Resume::Wait);
        // Past the deadline, uid 1's last report is used as if it had died.
        assert_eq!(
            resume(&url, 2, 2, &views, &reports, 5, false),
            Resume::From(50)
        );
        // Uid 1 applies view 2 and releases the url at 47.
        let r = reports.get_mut(&1).unwrap();
        r.view = 2;
        r.position = 60;
        r.released.insert(url.clone(), 47);
        assert_eq!(
            resume(&url, 2, 2, &views, &reports, 5, true),
            Resume::From(47)
        );
    }

    #[test]
    fn a_restarted_member_resumes_from_its_own_earlier_report() {
        let url = url_owned_by(1, 2);
        let views = Views::from([(1, vec![1, 2]), (2, vec![1, 2])]);
        let reports = BTreeMap::from([(1, report(1, 70)), (2, report(2, 80))]);
        // Uid 1's new process owns the url under view 2, as its old one did
        // under view 1: no waiting for itself.
        assert_eq!(
            resume(&url, 1, 2, &views, &reports, 5, true),
            Resume::From(70)
        );
    }

    #[test]
    fn a_member_that_died_before_taking_over_is_skipped() {
        // View 1: {1, 2, 3}; the url is 3's. View 2: {1, 2} (3 died), the
        // url goes to 2. View 3: {1} (2 died too, before it reported on
        // the url). Uid 1 resumes from 3's last report.
        let all = urls(400);
        let url = all
            .iter()
            .find(|u| owner(u, &[1, 2, 3]) == Some(3) && owner(u, &[1, 2]) == Some(2))
            .expect("some url");
        let views = Views::from([(1, vec![1, 2, 3]), (2, vec![1, 2]), (3, vec![1])]);
        let reports = BTreeMap::from([(3, report(1, 20)), (2, report(1, 90))]);
        assert_eq!(
            resume(url, 1, 3, &views, &reports, 5, true),
            Resume::From(20)
        );
    }
}
