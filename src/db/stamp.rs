//! Update timestamps that never decrease: the writer stamps each write, in
//! version order, no earlier than the last one, starting from the newest
//! timestamp in the log. The cluster clock alone cannot promise that: it
//! never runs backwards within one run, but a db restarted with its clock
//! behind (Berkeley rounds had moved it forward, and the correction is not
//! persisted) would stamp earlier than what it stored before; and writes
//! read the clock before they queue, so two of them can reach the writer
//! in the other order.

/// How far behind the last stamp the clock may read before the writer
/// warns: more than clock jitter, less than anything an operator would
/// want to miss.
pub(crate) const WARN_BEHIND_SECS: f64 = 1.0;

/// The floor under every timestamp the writer stamps.
#[derive(Debug, Clone)]
pub(crate) struct Stamper {
    /// The newest timestamp stamped or stored, seconds since the epoch.
    last: f64,
    /// The clock is (or was, at the last stamp) more than
    /// [`WARN_BEHIND_SECS`] behind `last`.
    behind: bool,
}

/// A change worth a log line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Lag {
    /// The clock fell more than [`WARN_BEHIND_SECS`] behind the last
    /// stamp; stamps hold at the last one until it catches up.
    FellBehind { behind_secs: f64 },
    /// It caught up again.
    CaughtUp,
}

impl Stamper {
    /// A floor at `last`, the newest timestamp the log holds (0 for an
    /// empty log).
    pub(crate) fn new(last: f64) -> Stamper {
        Stamper {
            last: if last.is_finite() { last } else { 0.0 },
            behind: false,
        }
    }

    /// The timestamp of the next write, whose clock read `now`: `now`, or
    /// the last stamp when `now` is earlier. Also whether the clock just
    /// fell behind or caught up.
    pub(crate) fn stamp(&mut self, now: f64) -> (f64, Option<Lag>) {
        let behind_secs = self.last - now;
        let stamp = if now.is_finite() && now > self.last {
            now
        } else {
            self.last
        };
        self.last = stamp;
        let lag = match (self.behind, behind_secs > WARN_BEHIND_SECS) {
            (false, true) => Some(Lag::FellBehind { behind_secs }),
            (true, false) => Some(Lag::CaughtUp),
            _ => None,
        };
        self.behind = behind_secs > WARN_BEHIND_SECS;
        (stamp, lag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_never_decrease_and_lag_is_reported_once() {
        let mut s = Stamper::new(100.0);
        assert_eq!(s.stamp(101.0), (101.0, None));
        // A little behind (reordered writes, jitter): held, not reported.
        assert_eq!(s.stamp(100.5), (101.0, None));
        // Far behind (a restarted db whose clock lost its correction).
        assert_eq!(
            s.stamp(95.0),
            (101.0, Some(Lag::FellBehind { behind_secs: 6.0 }))
        );
        assert_eq!(s.stamp(96.0), (101.0, None));
        assert_eq!(s.stamp(100.5), (101.0, Some(Lag::CaughtUp)));
        assert_eq!(s.stamp(102.0), (102.0, None));
        assert_eq!(s.stamp(f64::NAN), (102.0, None));
        assert_eq!(Stamper::new(f64::NAN).stamp(1.0), (1.0, None));
    }
}
