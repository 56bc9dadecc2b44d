//! The change-feed follower: keeps the cache coherent, keeps the roster
//! current, and hands every batch on to a [`FeedListener`] (the push hub),
//! whose report rides on every poll.
//!
//! It learns the db's epoch and roster, then asks for "changes after V",
//! either held open by the db (push mode) or every pull interval. A new
//! epoch (the db restarted) or a reset (a gap) empties the cache. Every
//! call on the feed has a deadline (the db's hold plus [`FEED_SLACK`]): a
//! silent feed empties the cache and stops hits ([`Freshness`]), while a
//! db that refuses connections (it is down) leaves them served. The first
//! poll after losing the db never waits, so a new epoch is seen as soon as
//! the db is back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::freshness::{Freshness, FEED_SLACK};
use super::{Cache, CacheMode};
use crate::api::faults;
use crate::db::wire::{ChangeBatch, DbClient, FeedError, RosterReply, MAX_CHANGES_PER_REPLY};
use crate::push::report::MemberReport;
use crate::scoreboard::Roster;
use crate::shutdown::Shutdown;
use crate::store::Entry;

/// How long the db holds a push-mode poll open, milliseconds. Short, so
/// that the db sees this member alive (it is while it polls) and so that
/// a silent feed is noticed soon: a change still comes at once.
pub(crate) const LONG_POLL_MS: i64 = 750;
/// First retry delay after the db could not be reached, milliseconds...
const MIN_BACKOFF_MS: u64 = 50;
/// ...doubling up to this.
const MAX_BACKOFF_MS: u64 = 1_000;

/// Where the follower reads the change feed: the db, or a test's stand-in.
pub(crate) trait Feed: Send + Sync + 'static {
    /// The roster, the epoch and the latest version: where following starts.
    fn start(&self) -> impl Future<Output = Result<RosterReply, FeedError>> + Send;
    /// Changes after `after`, held up to `wait_ms` until there is one;
    /// `report` is what this member says of itself.
    fn changes(
        &self,
        after: i64,
        wait_ms: i64,
        report: Option<MemberReport>,
    ) -> impl Future<Output = Result<ChangeBatch, FeedError>> + Send;
}

/// Who else follows the feed through the follower (the push hub).
pub(crate) trait FeedListener: Send + Sync + 'static {
    /// Following (re)started at `position`: a start, a new db epoch, or a
    /// gap; what was known before may be stale.
    fn restarted(&self, position: i64);
    /// A batch, after the cache and the roster took it.
    fn batch(&self, batch: &ChangeBatch);
    /// The feed could not be read.
    fn lost(&self);
    /// What this member says of itself with its next poll.
    fn report(&self) -> Option<MemberReport>;
}

impl Feed for DbClient {
    fn start(&self) -> impl Future<Output = Result<RosterReply, FeedError>> + Send {
        self.roster()
    }

    async fn changes(
        &self,
        after: i64,
        wait_ms: i64,
        report: Option<MemberReport>,
    ) -> Result<ChangeBatch, FeedError> {
        DbClient::changes(self, after, wait_ms, report.as_ref()).await
    }
}

/// How the follower follows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FollowerConfig {
    pub mode: CacheMode,
    /// Pause between polls in pull mode.
    pub pull_interval: Duration,
}

impl FollowerConfig {
    /// The longest normal gap between two replies of the db: a long poll's
    /// hold, or a pull interval, plus [`FEED_SLACK`].
    pub(crate) fn max_silence(&self) -> Duration {
        let gap = match self.mode {
            CacheMode::Push => Duration::from_millis(LONG_POLL_MS.unsigned_abs()),
            CacheMode::Pull => self.pull_interval,
        };
        gap + FEED_SLACK
    }
}

/// Follows the feed until shutdown. See the module doc.
pub(crate) struct Follower<F> {
    feed: F,
    cache: Cache,
    roster: Arc<watch::Sender<Option<Arc<Roster>>>>,
    /// Gets every batch, after the cache has dropped what it made stale.
    listener: Arc<dyn FeedListener>,
    /// Told of every reply and failure: what the read path asks.
    freshness: Arc<Freshness>,
    config: FollowerConfig,
}

impl<F: Feed> Follower<F> {
    pub(crate) fn new(
        feed: F,
        cache: Cache,
        roster: Arc<watch::Sender<Option<Arc<Roster>>>>,
        listener: Arc<dyn FeedListener>,
        freshness: Arc<Freshness>,
        config: FollowerConfig,
    ) -> Self {
        Follower {
            feed,
            cache,
            roster,
            listener,
            freshness,
            config,
        }
    }

    /// Runs until `shutdown` is triggered.
    pub(crate) async fn run(self, shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(MIN_BACKOFF_MS);
        // (epoch, last version applied), once known.
        let mut position: Option<(String, i64)> = None;
        // After the feed was lost, the next poll must not wait: if the db came
        // back as a new run (new epoch) with nothing newer than our position, a
        // long poll would only tell us at its next write or after LONG_POLL_MS,
        // serving pre-restart values meanwhile.
        let mut reconnecting = false;
        loop {
            let outcome = tokio::select! {
                r = self.step(position.as_ref(), reconnecting) => r,
                _ = shutdown.triggered() => return,
            };
            let pause = match outcome {
                Ok((next, again_now)) => {
                    self.freshness.replied();
                    position = Some(next);
                    reconnecting = false;
                    backoff = Duration::from_millis(MIN_BACKOFF_MS);
                    (self.config.mode == CacheMode::Pull && !again_now)
                        .then_some(self.config.pull_interval)
                }
                Err(e) => {
                    if e.refused {
                        warn!(error = %e, retry_in = ?backoff, "change feed unavailable: the db is down, serving cached values");
                        self.freshness.db_down();
                    } else {
                        warn!(error = %e, retry_in = ?backoff, "change feed unavailable: silent or failing, emptying the cache");
                        self.freshness.cut();
                        self.cache.clear();
                    }
                    self.listener.lost();
                    reconnecting = true;
                    let pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_millis(MAX_BACKOFF_MS));
                    Some(pause)
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.triggered() => return,
                }
            }
        }
    }

    /// One poll. Returns the new position and whether to poll again at once
    /// (more changes are waiting, or following just started).
    async fn step(
        &self,
        position: Option<&(String, i64)>,
        reconnecting: bool,
    ) -> Result<((String, i64), bool), FeedError> {
        let Some((epoch, after)) = position else {
            // Start from the db's latest version: nothing cached yet.
            let start = within(start_wait_ms(), self.feed.start()).await?;
            self.cache.clear();
            self.roster.send_replace(Some(Arc::new(start.roster)));
            self.listener.restarted(start.latest);
            info!(epoch = %start.epoch, latest = start.latest, "following the db's change feed");
            return Ok(((start.epoch, start.latest), true));
        };
        let wait = match self.config.mode {
            CacheMode::Push if !reconnecting => LONG_POLL_MS,
            CacheMode::Push | CacheMode::Pull => 0,
        };
        let batch = within(
            wait,
            self.feed.changes(*after, wait, self.listener.report()),
        )
        .await?;
        if batch.epoch != *epoch || batch.reset {
            info!(old = %epoch, new = %batch.epoch, reset = batch.reset, "db restarted or feed gap: emptying the cache");
            self.cache.clear();
            // The roster may have changed with the restart.
            let start = within(start_wait_ms(), self.feed.start()).await?;
            self.roster.send_replace(Some(Arc::new(start.roster)));
            if batch.reset {
                self.listener.restarted(batch.latest);
                self.listener.batch(&batch);
                return Ok(((batch.epoch, batch.latest), true));
            }
            self.listener.restarted(*after);
            // A restarted db that still has our position: what it committed
            // since (writes made before we reconnected) is still news for
            // tablets, so go on as for any batch.
        }
        let mut last = *after;
        for change in &batch.changes {
            self.cache.apply_change(change).await;
            apply_to_roster(&self.roster, &change.entry);
            last = last.max(change.version);
        }
        self.listener.batch(&batch);
        let more = batch.changes.len() >= MAX_CHANGES_PER_REPLY;
        Ok(((batch.epoch, last), more))
    }
}

/// A call on the feed that the db holds up to `wait_ms`, with the deadline
/// that hold plus [`FEED_SLACK`]: past it, the feed is silent.
/// How long the start of the feed may wait beyond the slack: a new
/// member's first call to the db may pay the cluster secret's guess
/// penalty while someone is guessing it ([`crate::guesses`]).
fn start_wait_ms() -> i64 {
    let penalty = crate::guesses::GuessLimits::configured().penalty;
    i64::try_from(penalty.as_millis()).unwrap_or(i64::MAX)
}

async fn within<T>(
    wait_ms: i64,
    call: impl Future<Output = Result<T, FeedError>>,
) -> Result<T, FeedError> {
    let deadline = Duration::from_millis(wait_ms.unsigned_abs()) + FEED_SLACK;
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or_else(|_| {
            Err(FeedError {
                fault: faults::unavailable(format!(
                    "the db's change feed did not answer within {} ms",
                    deadline.as_millis()
                )),
                refused: false,
            })
        })
}

/// Extends the roster with a change to it; any other change leaves it as it
/// is, and so does a name it already holds (the front-end that made a
/// roster write applies it before the feed brings it back).
pub(crate) fn apply_to_roster(roster: &watch::Sender<Option<Arc<Roster>>>, entry: &Entry) {
    roster.send_if_modified(|current| {
        let Some(known) = current else {
            return false;
        };
        let mut next = Roster::clone(known);
        match entry {
            Entry::TeamAdded(name) if known.team(name).is_err() => next.teams.push(name.clone()),
            Entry::EventAdded(name) if known.event(name).is_err() => next.events.push(name.clone()),
            _ => return false,
        }
        *current = Some(Arc::new(next));
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::faults;
    use crate::cache::Cached;
    use crate::scoreboard::Tally;
    use crate::store::Change;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use tokio::time::Instant;

    /// One call the feed saw: when, which, `after`, `wait_ms`.
    type Seen = (Instant, &'static str, i64, i64);

    /// A scripted db: answers `changes` from a queue (an empty queue holds
    /// the poll for its whole wait, then answers "nothing new"), and records
    /// every call with the (paused) time it was made.
    #[derive(Clone, Default)]
    struct ScriptedFeed {
        epoch: Arc<Mutex<String>>,
        script: Arc<Mutex<VecDeque<Result<ChangeBatch, FeedError>>>>,
        /// Every call hangs, as across a partition that drops packets.
        silent: Arc<std::sync::atomic::AtomicBool>,
        calls: Arc<Mutex<Vec<Seen>>>,
    }

    impl ScriptedFeed {
        fn new(epoch: &str) -> Self {
            let feed = ScriptedFeed::default();
            *feed.epoch.lock().unwrap() = epoch.to_owned();
            feed
        }
        fn push(&self, answer: Result<ChangeBatch, FeedError>) {
            self.script.lock().unwrap().push_back(answer);
        }
        fn calls(&self) -> Vec<Seen> {
            self.calls.lock().unwrap().clone()
        }
        fn batch(&self, latest: i64, changes: Vec<Change>) -> ChangeBatch {
            ChangeBatch {
                epoch: self.epoch.lock().unwrap().clone(),
                latest,
                changes,
                reset: false,
                view: None,
            }
        }
    }

    impl Feed for ScriptedFeed {
        async fn start(&self) -> Result<RosterReply, FeedError> {
            self.calls
                .lock()
                .unwrap()
                .push((Instant::now(), "start", 0, 0));
            Ok(RosterReply {
                roster: Roster::default_roster(),
                epoch: self.epoch.lock().unwrap().clone(),
                latest: 0,
            })
        }

        async fn changes(
            &self,
            after: i64,
            wait_ms: i64,
            _report: Option<MemberReport>,
        ) -> Result<ChangeBatch, FeedError> {
            self.calls
                .lock()
                .unwrap()
                .push((Instant::now(), "changes", after, wait_ms));
            if self.silent.load(std::sync::atomic::Ordering::Relaxed) {
                return std::future::pending().await;
            }
            let next = self.script.lock().unwrap().pop_front();
            match next {
                Some(answer) => answer,
                None => {
                    tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
                    Ok(self.batch(after, Vec::new()))
                }
            }
        }
    }

    fn gold(version: i64) -> Change {
        Change {
            version,
            entry: Entry::Tally(Tally {
                team: "Gaul".into(),
                gold: version,
                silver: 0,
                bronze: 0,
                version,
                updated: 0.0,
            }),
            timestamp: 0.0,
            vclock: vec![],
            request_id: None,
        }
    }

    struct Running {
        feed: ScriptedFeed,
        cache: Cache,
        seen: Arc<Mutex<Vec<i64>>>,
        freshness: Arc<Freshness>,
        shutdown: Shutdown,
        task: tokio::task::JoinHandle<()>,
    }

    /// Records the versions of every batch it is handed.
    struct Listener(Arc<Mutex<Vec<i64>>>);

    impl FeedListener for Listener {
        fn restarted(&self, _position: i64) {}
        fn batch(&self, batch: &ChangeBatch) {
            let mut seen = self.0.lock().unwrap();
            seen.extend(batch.changes.iter().map(|c| c.version));
        }
        fn lost(&self) {}
        fn report(&self) -> Option<MemberReport> {
            None
        }
    }

    fn follow(feed: ScriptedFeed, mode: CacheMode) -> Running {
        let cache = Cache::new(100, Duration::from_secs(600));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let config = FollowerConfig {
            mode,
            pull_interval: Duration::from_secs(1),
        };
        let freshness = Arc::new(Freshness::new(config.max_silence()));
        let follower = Follower::new(
            feed.clone(),
            cache.clone(),
            Arc::new(watch::channel(None).0),
            Arc::new(Listener(seen.clone())),
            freshness.clone(),
            config,
        );
        let shutdown = Shutdown::new();
        let task = tokio::spawn(follower.run(shutdown.clone()));
        Running {
            feed,
            cache,
            seen,
            freshness,
            shutdown,
            task,
        }
    }

    async fn cache_tally(cache: &Cache, version: i64) {
        cache
            .get_or_fetch("tally:gaul", || async { Ok(Cached::Tally(tally(version))) })
            .await
            .unwrap();
    }

    fn tally(version: i64) -> Tally {
        match gold(version).entry {
            Entry::Tally(t) => t,
            _ => unreachable!("gold() makes tallies"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pull_mode_polls_once_per_interval_and_never_waits_at_the_db() {
        // Property: in pull mode every poll asks for no wait, and polls are
        // one pull interval apart.
        let feed = ScriptedFeed::new("e1");
        let run = follow(feed, CacheMode::Pull);
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        let calls = run.feed.calls();
        let polls: Vec<_> = calls.iter().filter(|c| c.1 == "changes").collect();
        assert_eq!(polls.len(), 4, "{calls:?}");
        assert!(polls.iter().all(|c| c.3 == 0));
        for pair in polls.windows(2) {
            assert_eq!(pair[1].0 - pair[0].0, Duration::from_secs(1));
        }
        run.shutdown.trigger();
        run.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn push_mode_long_polls_and_hands_on_every_change_in_order() {
        let feed = ScriptedFeed::new("e1");
        feed.push(Ok(feed.batch(2, vec![gold(1), gold(2)])));
        feed.push(Ok(feed.batch(3, vec![gold(3)])));
        let run = follow(feed, CacheMode::Push);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*run.seen.lock().unwrap(), [1, 2, 3]);
        let calls = run.feed.calls();
        // Each poll starts after the last version applied, and waits.
        let polls: Vec<(i64, i64)> = calls
            .iter()
            .filter(|c| c.1 == "changes")
            .map(|c| (c.2, c.3))
            .collect();
        assert_eq!(
            polls,
            [(0, LONG_POLL_MS), (2, LONG_POLL_MS), (3, LONG_POLL_MS)]
        );
        run.shutdown.trigger();
        run.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_epoch_or_a_gap_empties_the_cache() {
        let feed = ScriptedFeed::new("e1");
        let run = follow(feed.clone(), CacheMode::Pull);
        tokio::time::sleep(Duration::from_millis(10)).await;
        cache_tally(&run.cache, 0).await;
        assert_eq!(run.cache.len_now().await, 1);
        // The db restarted: a new epoch.
        *feed.epoch.lock().unwrap() = "e2".into();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(run.cache.len_now().await, 0, "new epoch kept the cache");
        cache_tally(&run.cache, 0).await;
        // The db cannot say what changed: a reset.
        let mut reset = feed.batch(9, Vec::new());
        reset.reset = true;
        feed.push(Ok(reset));
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert_eq!(run.cache.len_now().await, 0, "reset kept the cache");
        run.shutdown.trigger();
        run.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn after_losing_the_db_it_backs_off_and_its_first_poll_does_not_wait() {
        let feed = ScriptedFeed::new("e1");
        for _ in 0..3 {
            feed.push(Err(FeedError {
                fault: faults::unavailable("db down"),
                refused: true,
            }));
        }
        let run = follow(feed, CacheMode::Push);
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let calls = run.feed.calls();
        let polls: Vec<_> = calls.iter().filter(|c| c.1 == "changes").collect();
        // Three failures 50, 100 and 200 ms apart, then a poll that does not
        // wait (the db may be a new run), then long polls again.
        assert!(polls.len() >= 5, "{calls:?}");
        assert_eq!(polls[1].0 - polls[0].0, Duration::from_millis(50));
        assert_eq!(polls[2].0 - polls[1].0, Duration::from_millis(100));
        assert_eq!(polls[3].0 - polls[2].0, Duration::from_millis(200));
        assert_eq!(polls[3].3, 0, "first poll after a failure waited");
        assert_eq!(polls[4].3, LONG_POLL_MS);
        run.shutdown.trigger();
        run.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_feed_empties_the_cache_and_stops_hits_within_its_deadline() {
        // Property: once the db stops answering (packets dropped, no
        // reset), hits stop and the cache is emptied no later than the
        // longest normal gap between replies.
        let feed = ScriptedFeed::new("e1");
        let run = follow(feed.clone(), CacheMode::Push);
        tokio::time::sleep(Duration::from_millis(10)).await;
        cache_tally(&run.cache, 0).await;
        assert!(run.freshness.check().is_ok());
        feed.silent
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // The poll in progress (held LONG_POLL_MS by the scripted db) ends;
        // the next one hangs.
        let limit = Duration::from_millis(LONG_POLL_MS.unsigned_abs()) + FEED_SLACK;
        tokio::time::sleep(limit * 2 + Duration::from_millis(1)).await;
        assert!(
            run.freshness.check().is_err(),
            "{:?}",
            run.freshness.health()
        );
        assert_eq!(run.cache.len_now().await, 0, "a silent feed kept the cache");
        // Back: live again, and it follows on.
        feed.silent
            .store(false, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(
            run.freshness.check().is_ok(),
            "{:?}",
            run.freshness.health()
        );
        run.shutdown.trigger();
        run.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_db_that_refuses_connections_leaves_hits_served() {
        let feed = ScriptedFeed::new("e1");
        let run = follow(feed.clone(), CacheMode::Push);
        tokio::time::sleep(Duration::from_millis(10)).await;
        cache_tally(&run.cache, 0).await;
        for _ in 0..20 {
            feed.push(Err(FeedError {
                fault: faults::unavailable("refused"),
                refused: true,
            }));
        }
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        assert_eq!(run.freshness.health().status, "db down");
        assert!(run.freshness.check().is_ok());
        assert_eq!(run.cache.len_now().await, 1);
        run.shutdown.trigger();
        run.task.await.unwrap();
    }
}
