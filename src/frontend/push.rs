//! Push to tablets: subscriptions with a lease, and a fan-out in which every
//! subscriber has its own worker and bounded queue, so a slow or dead tablet
//! delays no one else. A tablet that keeps failing is dropped.
//!
//! The workers run on a runtime thread of their own: a fan-out to a thousand
//! tablets then neither queues the front-end's reads and acknowledgements
//! behind it nor leaves the second core idle. Each change is encoded once
//! ([`Callback::encode`]), whatever the number of subscribers. The hub also
//! ends subscriptions whose lease ran out, on a ticker of its own.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::api::callback::Callback;
use crate::api::faults;
use crate::rpc::{Client, ClientConfig, Fault};
use crate::shutdown::{Shutdown, Tasks};
use crate::store::{Change, Entry};

/// Pushes queued per subscriber before new ones are dropped for it.
const QUEUE_PER_SUBSCRIBER: usize = 256;
/// Consecutive failed pushes after which a tablet is dropped.
const MAX_FAILURES: u32 = 3;
/// Deadline of one push.
const PUSH_TIMEOUT_MS: u64 = 2_000;
/// Most subscriptions one front-end holds.
pub(crate) const MAX_SUBSCRIBERS: usize = 10_000;
/// Shortest and longest lease a tablet may ask for, seconds.
pub(crate) const MIN_LEASE_SECS: i64 = 5;
pub(crate) const MAX_LEASE_SECS: i64 = 86_400;
/// Lease of an old-style `register_client`, which never renews.
pub(crate) const LEGACY_LEASE_SECS: i64 = 3_600;
/// How often expired leases are looked for.
const EXPIRY_INTERVAL_MS: u64 = 1_000;

/// One encoded callback, shared by every subscriber that gets it.
type Push = bytes::Bytes;

struct Subscriber {
    /// Lower-case event and team names followed.
    events: HashSet<String>,
    teams: HashSet<String>,
    expires: Instant,
    queue: mpsc::Sender<Push>,
}

/// The subscriptions of one front-end. Cheap to clone.
#[derive(Clone)]
pub(crate) struct PushHub {
    subs: Arc<Mutex<HashMap<String, Subscriber>>>,
    /// The push thread's runtime, where every worker runs.
    runtime: tokio::runtime::Handle,
    /// Owns the workers and the expiry ticker.
    tasks: Tasks,
}

impl PushHub {
    /// Starts the push thread, which runs until `tasks`' shutdown, and the
    /// expiry ticker on it.
    ///
    /// # Errors
    /// The OS refused a thread or an event loop.
    pub(crate) fn start(tasks: &Tasks) -> std::io::Result<PushHub> {
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
        let hub = PushHub {
            subs: Arc::default(),
            runtime,
            tasks: tasks.clone(),
        };
        let expiring = hub.clone();
        let shutdown = tasks.shutdown().clone();
        tasks.spawn_on(
            async move {
                let mut ticker = tokio::time::interval(Duration::from_millis(EXPIRY_INTERVAL_MS));
                loop {
                    tokio::select! {
                        _ = ticker.tick() => expiring.expire(),
                        _ = shutdown.triggered() => return,
                    }
                }
            },
            &hub.runtime,
        );
        Ok(hub)
    }
}

impl std::fmt::Debug for PushHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushHub")
            .field("subscribers", &self.len())
            .finish()
    }
}

impl PushHub {
    pub(crate) fn len(&self) -> usize {
        self.subs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Adds or renews the subscription of `url`.
    ///
    /// # Errors
    /// A bad URL, or too many subscribers.
    pub(crate) fn subscribe(
        &self,
        url: &str,
        events: HashSet<String>,
        teams: HashSet<String>,
        lease: Duration,
    ) -> Result<(), Fault> {
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        let expires = Instant::now() + lease;
        if let Some(sub) = subs.get_mut(url) {
            if !sub.queue.is_closed() {
                sub.events = events;
                sub.teams = teams;
                sub.expires = expires;
                return Ok(());
            }
        }
        if subs.len() >= MAX_SUBSCRIBERS && !subs.contains_key(url) {
            return Err(faults::unavailable("too many subscribers"));
        }
        let client = Client::new(
            url,
            ClientConfig {
                timeout: Duration::from_millis(PUSH_TIMEOUT_MS),
                pool_max_idle: 2,
                ..ClientConfig::default()
            },
        )
        .map_err(|e| Fault::invalid_params(format!("callback: {e}")))?;
        let (tx, rx) = mpsc::channel(QUEUE_PER_SUBSCRIBER);
        self.tasks.spawn_on(
            deliver(client, rx, self.tasks.shutdown().clone()),
            &self.runtime,
        );
        info!(%url, "tablet subscribed");
        subs.insert(
            url.to_owned(),
            Subscriber {
                events,
                teams,
                expires,
                queue: tx,
            },
        );
        Ok(())
    }

    /// Ends the subscription of `url`; true if there was one.
    pub(crate) fn unsubscribe(&self, url: &str) -> bool {
        self.subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(url)
            .is_some()
    }

    /// Queues the change for every tablet that follows its key. Never waits.
    pub(crate) fn publish(&self, change: &Change) {
        let (is_score, name) = match &change.entry {
            Entry::Score(s) => (true, s.event.to_lowercase()),
            Entry::Tally(t) => (false, t.team.to_lowercase()),
            _ => return,
        };
        let Some(callback) = Callback::of_change(change) else {
            return;
        };
        let push: Push = match callback.encode() {
            Ok(body) => body.into(),
            Err(e) => {
                warn!(error = %e, "cannot encode a push");
                return;
            }
        };
        let now = Instant::now();
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|url, sub| {
            if sub.expires <= now || sub.queue.is_closed() {
                info!(%url, "tablet dropped (lease expired or unreachable)");
                return false;
            }
            let follows = if is_score {
                sub.events.contains(&name)
            } else {
                sub.teams.contains(&name)
            };
            if follows && sub.queue.try_send(push.clone()).is_err() {
                debug!(%url, "tablet too slow: push dropped");
            }
            true
        });
    }

    /// Drops expired subscriptions; the hub's ticker calls it.
    pub(crate) fn expire(&self) {
        let now = Instant::now();
        self.subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, sub| sub.expires > now && !sub.queue.is_closed());
    }
}

/// One tablet's worker: pushes in order, gives up after repeated failures
/// (which closes its queue, so the hub drops the subscription).
async fn deliver(client: Client, mut rx: mpsc::Receiver<Push>, shutdown: Shutdown) {
    let mut failures = 0;
    loop {
        let push = tokio::select! {
            push = rx.recv() => match push {
                Some(push) => push,
                None => return,
            },
            _ = shutdown.triggered() => return,
        };
        // A fault in the reply still means the tablet is there.
        match client.call_raw(push).await {
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                debug!(url = %client.uri(), error = %e, failures, "push failed");
                if failures >= MAX_FAILURES || e.is_connect() {
                    info!(url = %client.uri(), error = %e, "tablet unreachable: dropping it");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follows() -> (HashSet<String>, HashSet<String>) {
        (HashSet::from(["stone curling".to_owned()]), HashSet::new())
    }

    #[tokio::test]
    async fn subscriptions_are_capped_renewable_and_expire() {
        let hub = PushHub::start(&Tasks::new(Shutdown::new())).unwrap();
        let url = |i: usize| format!("http://127.0.0.1:{}/", 10_000 + i % 50_000);
        let lease = Duration::from_secs(60);
        for i in 0..MAX_SUBSCRIBERS {
            let (e, t) = follows();
            hub.subscribe(&format!("{}{i}", url(i)), e, t, lease)
                .unwrap();
        }
        assert_eq!(hub.len(), MAX_SUBSCRIBERS);
        let (e, t) = follows();
        let refused = hub
            .subscribe("http://127.0.0.1:9/new", e, t, lease)
            .unwrap_err();
        assert_eq!(refused.code, faults::UNAVAILABLE);
        // Renewing an existing one is not a new subscription.
        let (e, t) = follows();
        hub.subscribe(&format!("{}0", url(0)), e, t, Duration::ZERO)
            .unwrap();
        assert_eq!(hub.len(), MAX_SUBSCRIBERS);
        // Its lease (renewed to zero) has ended: it goes, the others stay.
        hub.expire();
        assert_eq!(hub.len(), MAX_SUBSCRIBERS - 1);
        assert!(hub.unsubscribe(&format!("{}1", url(1))));
        assert!(!hub.unsubscribe("http://127.0.0.1:9/never"));
        assert_eq!(hub.len(), MAX_SUBSCRIBERS - 2);
    }

    #[tokio::test]
    async fn bad_callback_urls_are_refused() {
        let hub = PushHub::start(&Tasks::new(Shutdown::new())).unwrap();
        let (e, t) = follows();
        let err = hub
            .subscribe("ftp://example/", e, t, Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(err.code, crate::rpc::fault::INVALID_PARAMS);
        assert_eq!(hub.len(), 0);
    }
}
