//! Cache coherence, the old system's weak point and Podium's named concept:
//! a front-end serves reads from a `Cache` (moka) that the db's change
//! feed keeps coherent, through one `Follower`.
//!
//! Why no front-end serves a stale value for long:
//!
//! 1. **Versions.** Every write gets a cluster-wide, strictly increasing
//!    version from the db, and every cached entry carries the version of the
//!    write it reflects. The cache remembers, per key, the newest version the
//!    feed reported. A miss that raced a change (the db answered with the
//!    old value while the feed already reported the new one) is dropped right
//!    after it is inserted: the feed records the version *before* it
//!    invalidates, so one of the two always sees the other.
//! 2. **The feed.** The follower asks the db for "changes after V" and
//!    drops every entry a change made stale: held open by the db (push mode,
//!    so within milliseconds of a commit) or every pull interval (pull mode,
//!    so within that interval).
//! 3. **Epochs and gaps.** Each run of the db has an epoch. A new epoch (the
//!    db restarted, maybe from an edited file) or a reset (the db can no
//!    longer tell what changed since V) empties the cache: values of unknown
//!    age are not served.
//! 4. **Own writes.** The front-end that takes a write drops its own entry
//!    before it answers, so a client reading through the same front-end sees
//!    its write at once.
//! 5. **TTL.** Every entry also expires after the TTL, the last safety net
//!    if all of the above failed.
//!
//! 6. **Silence.** Every poll has a deadline. A feed that stops answering
//!    (a partition that drops packets: the db may be taking writes through
//!    other front-ends) empties the cache and stops hits within
//!    `FollowerConfig::max_silence`, and the front-end reports itself not
//!    ready (`Freshness`).
//!
//! A db that is *down* (its host refuses the connection) is different: every
//! write goes through the db, so nothing can change behind a cached value
//! until it is back, and hits are still served; then the follower catches up
//! or, on a new epoch, empties the cache.

mod follower;
mod freshness;
mod listeners;
mod versioned;

pub(crate) use follower::{apply_to_roster, FeedListener, Follower, FollowerConfig, LONG_POLL_MS};
pub(crate) use freshness::{Freshness, FEED_SLACK};
pub(crate) use listeners::Listeners;
pub(crate) use versioned::{Cache, Cached, TABLE_KEY};

/// How the cache learns about changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheMode {
    /// Ask the change feed every pull interval.
    Pull,
    /// Keep a long poll open on the change feed.
    Push,
}
