//! A front-end's side of push: every subscription of the cluster (learnt
//! from the change feed), the changes pushed lately (encoded once each),
//! and a delivery worker for each tablet this front-end owns under the
//! current view ([`ownership`](super::ownership)).
//!
//! A worker keeps only a cursor (the version its tablet has been delivered
//! up to) and reads what to push next from the hub: so a slow tablet costs
//! memory for nothing but its cursor, falls behind without losing anything
//! (what has left the hub's memory is read back from the db), and a new
//! owner resumes by setting the cursor. Workers run on a thread of their own,
//! so a fan-out to thousands of tablets neither delays the front-end's reads
//! nor leaves the second core idle.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info};

mod table;
mod takeover;

use crate::clock::ClusterClock;
use crate::db::wire::{ChangeBatch, DbClient};
use crate::push::ownership::{owner, Report};
use crate::push::pushable::Pushable;
use crate::push::report::{FeedMode, MemberReport, View, MAX_LISTED};
use crate::push::worker;
use crate::scoreboard::subscription::{Style, Subscription};
use crate::shutdown::{Shutdown, Tasks};
use crate::store::{Change, Entry};
use table::{remove, upsert};

/// Pushable changes kept in memory; a tablet further behind is served from
/// the db's log.
const RING_CHANGES: usize = 4096;
/// How long a tablet this member gave up stays in its reports, so that the
/// new owner sees where it stopped.
const RELEASED_KEPT: Duration = Duration::from_secs(10);
/// How long a new owner waits for a live previous owner to release a
/// tablet before it takes it over regardless.
const TAKEOVER_WAIT: Duration = Duration::from_secs(2);
/// Pause between two looks at the db's progress during a takeover.
const TAKEOVER_POLL: Duration = Duration::from_millis(50);
/// Balancers remembered as cluster endpoints.
const MAX_BALANCERS: usize = 16;
/// Pause before asking the db again after it failed.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Who this member is, for the hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub uid: u32,
    pub mode: FeedMode,
    /// The longest this member lets pass between two feed polls, ms.
    pub poll_ms: u64,
    /// For subscriptions, progress and old changes, and to end the
    /// subscriptions of unreachable tablets.
    pub db: DbClient,
    /// Leases are in cluster time.
    pub clock: ClusterClock,
    /// This front-end's own address, as bound (a cluster endpoint no
    /// callback may name; the db hears of it with every report).
    pub endpoint: Option<SocketAddr>,
}

/// A running worker, as the hub sees it.
#[derive(Debug)]
pub(super) struct WorkerHandle {
    pub(super) wake: Arc<Notify>,
    /// Every change up to this version has been delivered (or does not
    /// concern the tablet).
    pub(super) through: Arc<AtomicI64>,
    /// True while a push is pending (so `through` may lag the feed).
    pub(super) busy: Arc<AtomicBool>,
    pub(super) stop: Shutdown,
}

impl WorkerHandle {
    fn through(&self) -> i64 {
        self.through.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
struct Sub {
    sub: Subscription,
    /// The change that made or last renewed it.
    version: i64,
    worker: Option<WorkerHandle>,
    /// Its tablet kept failing: no worker until the db ends it.
    unreachable: bool,
}

#[derive(Debug)]
struct State {
    /// The last version the feed brought.
    position: i64,
    /// Every pushable change after this version is in `ring`.
    ring_from: i64,
    ring: VecDeque<Arc<Pushable>>,
    /// False while the feed is lost: this member may no longer be an owner.
    feed_ok: bool,
    /// The subscriptions have been read from the db since the last start.
    loaded: bool,
    /// Counts starts, so a load that a newer start overtook is dropped.
    generation: u64,
    subs: HashMap<String, Sub>,
    /// Subscriptions ended since the last start, by version: a load that
    /// predates the end must not bring them back.
    ended: HashMap<String, i64>,
    /// Followed key → the URLs following it.
    by_key: HashMap<String, HashSet<String>>,
    view: Option<View>,
    /// URLs owned under `view`, waiting for their resume point.
    pending: HashSet<String>,
    takeover_running: bool,
    /// Tablets given up lately, with how far they had been delivered.
    released: HashMap<String, (i64, Instant)>,
    /// Balancers calls came through lately (cluster endpoints too).
    balancers: VecDeque<SocketAddr>,
}

#[derive(Debug)]
struct Shared {
    config: HubConfig,
    state: Mutex<State>,
    /// The push thread's runtime, where every worker runs.
    runtime: tokio::runtime::Handle,
    tasks: Tasks,
}

/// The hub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

/// What a worker is to do next.
#[derive(Debug)]
pub(super) enum Next {
    /// Push this change.
    Push(Arc<Pushable>, Style),
    /// Nothing to push: the tablet is delivered up to this version.
    Idle(i64),
    /// What comes next has left the hub's memory: read the log after this
    /// version.
    Fetch(i64),
    /// Not now (the feed is lost, or the lease ran out): wait.
    Paused,
    /// This member no longer pushes to the tablet.
    Stopped,
}

impl Hub {
    /// Starts the push thread, which runs until `tasks`' shutdown.
    ///
    /// # Errors
    /// The OS refused a thread or an event loop.
    pub fn start(tasks: &Tasks, config: HubConfig) -> std::io::Result<Hub> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let shutdown: Shutdown = tasks.shutdown().clone();
        std::thread::Builder::new()
            .name("podium-push".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let _ = handle_tx.send(Ok(rt.handle().clone()));
                        rt.block_on(shutdown.triggered());
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })?;
        let runtime = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("push thread died at start"))??;
        Ok(Hub {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State {
                    position: 0,
                    ring_from: 0,
                    ring: VecDeque::with_capacity(RING_CHANGES),
                    feed_ok: false,
                    loaded: false,
                    generation: 0,
                    subs: HashMap::new(),
                    ended: HashMap::new(),
                    by_key: HashMap::new(),
                    view: None,
                    pending: HashSet::new(),
                    takeover_running: false,
                    released: HashMap::new(),
                    balancers: VecDeque::new(),
                }),
                runtime,
                tasks: tasks.clone(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn config(&self) -> &HubConfig {
        &self.shared.config
    }

    /// Subscriptions known (cluster-wide).
    pub fn len(&self) -> usize {
        self.lock().subs.len()
    }

    /// True when no subscription is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tablets this member pushes to now.
    pub fn owned(&self) -> usize {
        self.lock()
            .subs
            .values()
            .filter(|s| s.worker.is_some())
            .count()
    }

    /// The subscription of a canonical URL, if any.
    pub fn subscription(&self, url: &str) -> Option<Subscription> {
        self.lock().subs.get(url).map(|s| s.sub.clone())
    }

    /// Following the feed (re)started at `position`: a start, a new db
    /// epoch, or a gap. The subscriptions are read again from the db; until
    /// then, no new worker starts.
    pub fn restarted(&self, position: i64) {
        let generation = {
            let mut state = self.lock();
            state.position = position;
            state.ring.clear();
            state.ring_from = position;
            state.loaded = false;
            state.generation += 1;
            state.ended.clear();
            // View numbers belong to one run of the db: wait for the new
            // run's, keeping every worker meanwhile.
            state.view = None;
            state.pending.clear();
            for s in state.subs.values() {
                if let Some(w) = &s.worker {
                    // A db restored from an older file has gone back: the
                    // tablets cannot be ahead of it.
                    w.through.fetch_min(position, Ordering::AcqRel);
                }
            }
            state.generation
        };
        let hub = self.clone();
        self.shared
            .tasks
            .spawn_on(hub.load(generation), &self.shared.runtime);
    }

    /// Reads every subscription from the db, retrying until it answers or a
    /// newer start overtakes this one.
    async fn load(self, generation: u64) {
        let shutdown = self.shared.tasks.shutdown().clone();
        let (latest, rows) = loop {
            if shutdown.is_triggered() || self.lock().generation != generation {
                return;
            }
            match self.shared.config.db.subscriptions().await {
                Ok(found) => break found,
                Err(e) => {
                    debug!(error = %e, "cannot read the subscriptions yet");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_PAUSE) => {}
                        _ = shutdown.triggered() => return,
                    }
                }
            }
        };
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        let listed: HashSet<String> = rows.iter().map(|(s, _)| s.url.clone()).collect();
        // Known here but not in the db's list: ended before it was read,
        // unless it was made after (the feed brought it).
        let gone: Vec<String> = state
            .subs
            .iter()
            .filter(|(url, s)| !listed.contains(*url) && s.version <= latest)
            .map(|(url, _)| url.clone())
            .collect();
        for url in gone {
            remove(&mut state, &url);
        }
        for (sub, version) in rows {
            let ended_after = state.ended.get(&sub.url).is_some_and(|v| *v > version);
            let newer_here = state
                .subs
                .get(&sub.url)
                .is_some_and(|s| s.version >= version);
            if !ended_after && !newer_here {
                upsert(&mut state, sub, version);
            }
        }
        state.loaded = true;
        info!(
            subscriptions = state.subs.len(),
            "push subscriptions loaded"
        );
        self.reconcile(&mut state);
    }

    /// A batch of the feed, after the cache and the roster took it.
    pub fn batch(&self, batch: &ChangeBatch) {
        let mut wake = Vec::new();
        let mut state = self.lock();
        state.feed_ok = true;
        for change in &batch.changes {
            self.take_change(&mut state, change, &mut wake);
        }
        if let Some(view) = &batch.view {
            if state.view.as_ref().is_none_or(|v| v != view) {
                self.apply_view(&mut state, view.clone());
            }
        }
        drop(state);
        for w in wake {
            w.notify_one();
        }
    }

    fn take_change(&self, state: &mut State, change: &Change, wake: &mut Vec<Arc<Notify>>) {
        state.position = state.position.max(change.version);
        match &change.entry {
            Entry::Subscribed(sub) => {
                let fresh = !state.subs.contains_key(&sub.url);
                upsert(state, sub.clone(), change.version);
                if fresh && state.loaded {
                    // Nothing before it is owed, and nobody can have
                    // pushed to it yet: an owner starts at its version.
                    let owned = state
                        .view
                        .as_ref()
                        .is_some_and(|v| owner(&sub.url, &v.owners) == Some(self.me()));
                    if owned {
                        self.start_worker(state, &sub.url, change.version);
                    }
                }
            }
            Entry::Unsubscribed { url, reason } => {
                debug!(%url, %reason, "subscription ended");
                remove(state, url);
                state.ended.insert(url.clone(), change.version);
            }
            Entry::Tally(_) | Entry::Score(_) => {
                let Some(pushable) = Pushable::of(change) else {
                    return;
                };
                if let Some(urls) = state.by_key.get(&pushable.key) {
                    for url in urls {
                        if let Some(w) = state.subs.get(url).and_then(|s| s.worker.as_ref()) {
                            wake.push(w.wake.clone());
                        }
                    }
                }
                if state.ring.len() == RING_CHANGES {
                    if let Some(old) = state.ring.pop_front() {
                        state.ring_from = old.version;
                    }
                }
                state.ring.push_back(Arc::new(pushable));
            }
            Entry::TeamAdded(_) | Entry::EventAdded(_) => {}
        }
    }

    fn me(&self) -> u32 {
        self.shared.config.uid
    }

    fn start_worker(&self, state: &mut State, url: &str, through: i64) {
        let Some(s) = state.subs.get_mut(url) else {
            return;
        };
        if s.worker.is_some() || s.unreachable {
            return;
        }
        let handle = WorkerHandle {
            wake: Arc::new(Notify::new()),
            through: Arc::new(AtomicI64::new(through)),
            busy: Arc::new(AtomicBool::new(true)),
            stop: self.shared.tasks.shutdown().child(),
        };
        let parts = worker::Parts {
            url: url.to_owned(),
            wake: handle.wake.clone(),
            through: handle.through.clone(),
            busy: handle.busy.clone(),
            stop: handle.stop.clone(),
        };
        s.worker = Some(handle);
        state.released.remove(url);
        debug!(%url, through, "pushing to a tablet");
        self.shared
            .tasks
            .spawn_on(worker::run(self.clone(), parts), &self.shared.runtime);
    }

    /// What a worker of `url`, delivered up to `through`, does next.
    pub(super) fn next_for(&self, url: &str, through: i64) -> Next {
        let state = self.lock();
        let Some(s) = state.subs.get(url) else {
            return Next::Stopped;
        };
        if s.worker.is_none() {
            return Next::Stopped;
        }
        if !state.feed_ok || s.sub.expires <= self.shared.config.clock.now_secs() {
            return Next::Paused;
        }
        if through < state.ring_from {
            return Next::Fetch(through);
        }
        let start = state.ring.partition_point(|p| p.version <= through);
        let next = state
            .ring
            .iter()
            .skip(start)
            .find(|p| s.sub.follows(&p.key));
        match next {
            Some(p) => Next::Push(p.clone(), s.sub.style),
            None => Next::Idle(state.position),
        }
    }

    /// The subscription a worker serves, to match changes read from the log.
    pub(super) fn worker_subscription(&self, url: &str) -> Option<Subscription> {
        let state = self.lock();
        let s = state.subs.get(url)?;
        s.worker.as_ref()?;
        Some(s.sub.clone())
    }

    /// A tablet kept failing: stop pushing to it and end its subscription
    /// cluster-wide.
    pub(super) fn unreachable(&self, url: &str) {
        {
            let mut state = self.lock();
            if let Some(s) = state.subs.get_mut(url) {
                s.unreachable = true;
                if let Some(w) = s.worker.take() {
                    w.stop.trigger();
                }
            }
        }
        let db = self.shared.config.db.clone();
        let url = url.to_owned();
        let shutdown = self.shared.tasks.shutdown().clone();
        self.shared.tasks.spawn_on(
            async move {
                for _ in 0..3 {
                    match db.unsubscribe(&url, "unreachable").await {
                        Ok(_) => {
                            info!(%url, "tablet unreachable: its subscription is ended");
                            return;
                        }
                        Err(e) => {
                            debug!(%url, error = %e, "cannot end the subscription yet");
                            tokio::select! {
                                _ = tokio::time::sleep(RETRY_PAUSE) => {}
                                _ = shutdown.triggered() => return,
                            }
                        }
                    }
                }
            },
            &self.shared.runtime,
        );
    }

    /// A call came through the balancer at `addr`: it is reported to the
    /// db as a cluster endpoint from now on.
    pub fn saw_balancer(&self, addr: SocketAddr) {
        let mut state = self.lock();
        if !state.balancers.contains(&addr) {
            if state.balancers.len() == MAX_BALANCERS {
                state.balancers.pop_front();
            }
            state.balancers.push_back(addr);
        }
    }

    /// The feed could not be read: this member may have been left out of
    /// the owners, so it stops pushing until the feed is back.
    pub fn feed_lost(&self) {
        self.lock().feed_ok = false;
    }

    /// What this member says of its deliveries with its next poll.
    pub fn report(&self) -> MemberReport {
        let mut state = self.lock();
        let now = Instant::now();
        state
            .released
            .retain(|_, (_, at)| now.duration_since(*at) < RELEASED_KEPT);
        let mut lagging = BTreeMap::new();
        for (url, s) in &state.subs {
            if let Some(w) = &s.worker {
                if w.busy.load(Ordering::Acquire) {
                    lagging.insert(url.clone(), w.through());
                }
            } else if state.pending.contains(url) {
                // Owned, not resumed yet: claim nothing past its start.
                lagging.insert(url.clone(), s.version);
            }
        }
        let mut position = state.position;
        if lagging.len() > MAX_LISTED {
            // Too many to list: claim only what every tablet has.
            position = lagging.values().copied().min().unwrap_or(position);
            lagging.clear();
        }
        MemberReport {
            uid: self.me(),
            mode: self.shared.config.mode,
            poll_ms: self.shared.config.poll_ms,
            report: Report {
                view: state.view.as_ref().map_or(0, |v| v.number),
                position,
                lagging,
                released: state
                    .released
                    .iter()
                    .map(|(url, (through, _))| (url.clone(), *through))
                    .collect(),
            },
            endpoints: self
                .shared
                .config
                .endpoint
                .into_iter()
                .chain(state.balancers.iter().copied())
                .collect(),
        }
    }
}
