//! Push to tablets: subscriptions with a lease, and a fan-out in which every
//! subscriber has its own worker and bounded queue, so a slow or dead tablet
//! delays no one else. A tablet that keeps failing is dropped.
//!
//! The workers run on a runtime thread of their own: a fan-out to a thousand
//! tablets then neither queues the front-end's reads and acknowledgements
//! behind it nor leaves the second core idle. Each change is encoded once,
//! whatever the number of subscribers.
//!
//! Callbacks are the old tablet's methods:
//! `print_score_for_event(text, time_of_update)` and
//! `print_medal_tally_for_team(text, time_of_update)`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::rpc::fault::{self, Fault};
use crate::rpc::{Client, ClientConfig, Value};
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
    runtime: Arc<PushRuntime>,
}

/// The thread the push workers run on; stopped when the hub is dropped.
struct PushRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for PushRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl PushHub {
    /// Starts the push thread.
    ///
    /// # Errors
    /// The OS refused a thread or an event loop.
    pub(crate) fn new() -> std::io::Result<PushHub> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("podium-push".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let _ = handle_tx.send(Ok(rt.handle().clone()));
                        rt.block_on(async {
                            let _ = stop_rx.await;
                        });
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("push thread died at start"))??;
        Ok(PushHub {
            subs: Arc::default(),
            runtime: Arc::new(PushRuntime {
                handle,
                stop: Some(stop_tx),
            }),
        })
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
            return Err(Fault::new(fault::UNAVAILABLE, "too many subscribers"));
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
        self.runtime.handle.spawn(deliver(client, rx));
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
        let (method, name, text) = match &change.entry {
            Entry::Score(s) => (
                "print_score_for_event",
                s.event.to_lowercase(),
                format!("{}: {}", s.event, s.score),
            ),
            Entry::Tally(t) => (
                "print_medal_tally_for_team",
                t.team.to_lowercase(),
                t.to_text(),
            ),
        };
        let params = [Value::from(text), Value::Double(change.timestamp)];
        let push: Push = match crate::rpc::codec::write_call(method, &params) {
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
            let follows = match &change.entry {
                Entry::Score(_) => sub.events.contains(&name),
                Entry::Tally(_) => sub.teams.contains(&name),
            };
            if follows && sub.queue.try_send(push.clone()).is_err() {
                debug!(%url, "tablet too slow: push dropped");
            }
            true
        });
    }

    /// Drops expired subscriptions; called periodically.
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
async fn deliver(client: Client, mut rx: mpsc::Receiver<Push>) {
    let mut failures = 0;
    while let Some(push) = rx.recv().await {
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
        let hub = PushHub::new().unwrap();
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
        assert_eq!(refused.code, fault::UNAVAILABLE);
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
        let hub = PushHub::new().unwrap();
        let (e, t) = follows();
        let err = hub
            .subscribe("ftp://example/", e, t, Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(err.code, fault::INVALID_PARAMS);
        assert_eq!(hub.len(), 0);
    }
}
