//! Whether the cache may be served now: the follower says when it last
//! heard from the db, and reads ask before every hit.
//!
//! A db that is *down* (its host refuses the connection) takes no writes,
//! so nothing changes behind a cached value and hits stay valid. A db that
//! is *silent* (a partition drops the packets, no reset comes) may be taking
//! writes through other front-ends that this one cannot see: its cache is
//! emptied and reads are refused with `UNAVAILABLE`, which the balancer
//! takes as a reason to try another front-end. Silence is noticed within
//! its `max_silence`: the poll in progress has that deadline, and a
//! read checks the time of the last reply itself, in case the follower is
//! stuck.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::api::faults;
use crate::rpc::Fault;

/// How much longer than the db's own hold (push) or than nothing (pull) a
/// poll may take before the feed counts as silent: slack for a busy
/// machine. With the 750 ms long poll, a cut is noticed within 1.5 s.
pub(crate) const FEED_SLACK: Duration = Duration::from_millis(750);

const STARTING: u8 = 0;
const LIVE: u8 = 1;
const DB_DOWN: u8 = 2;
const CUT: u8 = 3;

/// How the change feed stands, as the read path sees it.
#[derive(Debug)]
pub(crate) struct Freshness {
    state: AtomicU8,
    /// Milliseconds after `origin` of the last reply from the db.
    last_reply_ms: AtomicU64,
    origin: Instant,
    max_silence: Duration,
}

/// What [`Freshness::health`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeedHealth {
    /// Hits may be served.
    pub ok: bool,
    /// `live`, `starting`, `db down`, or why the feed is silent.
    pub status: String,
}

impl Freshness {
    /// `max_silence`: the longest normal gap between two replies of the db.
    pub(crate) fn new(max_silence: Duration) -> Freshness {
        Freshness {
            state: AtomicU8::new(STARTING),
            last_reply_ms: AtomicU64::new(0),
            origin: Instant::now(),
            max_silence,
        }
    }

    /// The db answered a poll.
    pub(crate) fn replied(&self) {
        self.last_reply_ms
            .store(self.elapsed_ms(), Ordering::Release);
        self.state.store(LIVE, Ordering::Release);
    }

    /// The db refused the connection: it is down.
    pub(crate) fn db_down(&self) {
        self.state.store(DB_DOWN, Ordering::Release);
    }

    /// The feed is silent or failing: the cache must not be served.
    pub(crate) fn cut(&self) {
        self.state.store(CUT, Ordering::Release);
    }

    /// Admits a cache hit.
    ///
    /// # Errors
    /// `UNAVAILABLE` while the feed is silent.
    pub(crate) fn check(&self) -> Result<(), Fault> {
        let health = self.health();
        if health.ok {
            Ok(())
        } else {
            Err(faults::unavailable(format!(
                "this front-end is cut off from the db ({}): try another",
                health.status
            )))
        }
    }

    /// How the feed stands.
    pub(crate) fn health(&self) -> FeedHealth {
        let (ok, status) = match self.state.load(Ordering::Acquire) {
            STARTING => (true, "starting".to_owned()),
            DB_DOWN => (true, "db down".to_owned()),
            LIVE => {
                let since = self
                    .elapsed_ms()
                    .saturating_sub(self.last_reply_ms.load(Ordering::Acquire));
                let limit = u64::try_from(self.max_silence.as_millis()).unwrap_or(u64::MAX);
                if since <= limit {
                    (true, "live".to_owned())
                } else {
                    (false, format!("no reply from the db for {since} ms"))
                }
            }
            _ => (false, "the db's change feed is silent".to_owned()),
        };
        FeedHealth { ok, status }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn hits_are_served_while_live_or_db_down_never_when_silent() {
        let f = Freshness::new(Duration::from_millis(1_500));
        assert!(f.check().is_ok(), "starting (the roster gates reads then)");
        f.replied();
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert!(f.check().is_ok());
        // No reply for longer than the longest normal gap: silent, even if
        // the follower has not said so yet.
        tokio::time::advance(Duration::from_millis(1)).await;
        let fault = f.check().unwrap_err();
        assert_eq!(fault.code, faults::UNAVAILABLE);
        assert!(fault.message.contains("1501 ms"), "{}", fault.message);
        f.replied();
        assert!(f.check().is_ok());
        f.db_down();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(f.health().status, "db down");
        assert!(f.check().is_ok(), "a db that is down changes nothing");
        f.cut();
        assert!(!f.health().ok);
        assert!(f.check().is_err());
    }
}
