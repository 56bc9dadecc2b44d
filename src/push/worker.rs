//! One tablet's delivery: pushes in version order, one at a time, retries
//! a failed push a few times, and gives the tablet up (cluster-wide) when it
//! keeps failing. A push counts as delivered only when the tablet answers
//! with a `methodResponse` that is not a fault; its reply is read up to a
//! small bound and never decompressed.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tracing::debug;

use super::hub::{Hub, Next};
use super::pushable::Pushable;
use crate::rpc::codec::{self, Limits};
use crate::rpc::{Client, ClientConfig, ClientError};
use crate::shutdown::Shutdown;

/// Deadline of one push.
const PUSH_TIMEOUT_MS: u64 = 2_000;
/// Deadline of connecting to a tablet.
const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Largest reply read from a tablet (it answers `true`).
const MAX_REPLY_BYTES: usize = 64 << 10;
/// Failed pushes in a row after which a tablet is given up.
const MAX_FAILURES: u32 = 3;
/// Pause after the first failed push; doubled after each further one.
const FIRST_RETRY_MS: u64 = 100;
/// How often a paused worker looks again.
const PAUSED_RECHECK: Duration = Duration::from_millis(200);

/// What the hub hands a worker.
#[derive(Debug)]
pub(super) struct Parts {
    pub(super) url: String,
    pub(super) wake: Arc<Notify>,
    pub(super) through: Arc<AtomicI64>,
    pub(super) busy: Arc<AtomicBool>,
    pub(super) stop: Shutdown,
}

/// The client of one tablet: no secret (tablets are not members), no gzip
/// either way, a small reply bound.
fn tablet_client(url: &str) -> Result<Client, ClientError> {
    Client::new(
        url,
        ClientConfig {
            timeout: Duration::from_millis(PUSH_TIMEOUT_MS),
            connect_timeout: Duration::from_millis(CONNECT_TIMEOUT_MS),
            max_response_bytes: MAX_REPLY_BYTES,
            pool_max_idle: 1,
            accept_gzip: false,
            decompress: false,
            ..ClientConfig::default()
        },
    )
}

/// Runs until the hub stops it or the tablet is given up.
pub(super) async fn run(hub: Hub, parts: Parts) {
    let client = match tablet_client(&parts.url) {
        Ok(c) => c,
        Err(e) => {
            debug!(url = %parts.url, error = %e, "not a callback URL");
            hub.unreachable(&parts.url);
            return;
        }
    };
    loop {
        if parts.stop.is_triggered() {
            return;
        }
        let through = parts.through.load(Ordering::Acquire);
        match hub.next_for(&parts.url, through) {
            Next::Stopped => return,
            Next::Paused => {
                parts.busy.store(false, Ordering::Release);
                tokio::select! {
                    _ = parts.wake.notified() => {}
                    _ = tokio::time::sleep(PAUSED_RECHECK) => {}
                    _ = parts.stop.triggered() => return,
                }
            }
            Next::Idle(position) => {
                parts.through.fetch_max(position, Ordering::AcqRel);
                parts.busy.store(false, Ordering::Release);
                tokio::select! {
                    _ = parts.wake.notified() => {}
                    _ = parts.stop.triggered() => return,
                }
            }
            Next::Push(pushable, style) => {
                parts.busy.store(true, Ordering::Release);
                match deliver(&client, pushable.body(style), &parts).await {
                    Outcome::Delivered => {
                        parts.through.fetch_max(pushable.version, Ordering::AcqRel);
                    }
                    Outcome::GaveUp => {
                        hub.unreachable(&parts.url);
                        return;
                    }
                    Outcome::Stopped => return,
                }
            }
            Next::Fetch(after) => {
                parts.busy.store(true, Ordering::Release);
                if !catch_up(&hub, &client, &parts, after).await {
                    return;
                }
            }
        }
    }
}

/// Pushes what the log holds after `after` (what has left the hub's
/// memory), a page at a time. False when the worker must end.
async fn catch_up(hub: &Hub, client: &Client, parts: &Parts, after: i64) -> bool {
    let Some(sub) = hub.worker_subscription(&parts.url) else {
        return false;
    };
    let batch = tokio::select! {
        b = hub.config().db.changes(after, 0, None) => b,
        _ = parts.stop.triggered() => return false,
    };
    let batch = match batch {
        Ok(b) => b,
        Err(e) => {
            debug!(url = %parts.url, error = %e, "cannot read the log; retrying");
            tokio::select! {
                _ = tokio::time::sleep(PAUSED_RECHECK) => return true,
                _ = parts.stop.triggered() => return false,
            }
        }
    };
    if batch.reset {
        // The db cannot go back that far (a file restored from an older
        // copy): deliver from where it stands.
        parts.through.store(batch.latest, Ordering::Release);
        return true;
    }
    for change in &batch.changes {
        if let Some(pushable) = Pushable::of(change) {
            if sub.follows(&pushable.key) {
                match deliver(client, pushable.body(sub.style), parts).await {
                    Outcome::Delivered => {}
                    Outcome::GaveUp => {
                        hub.unreachable(&parts.url);
                        return false;
                    }
                    Outcome::Stopped => return false,
                }
            }
        }
        parts.through.fetch_max(change.version, Ordering::AcqRel);
    }
    if batch.changes.is_empty() {
        // Nothing more in the log: the hub's memory covers the rest.
        parts.through.fetch_max(batch.latest, Ordering::AcqRel);
    }
    true
}

/// How a push ended.
enum Outcome {
    Delivered,
    /// The tablet kept failing.
    GaveUp,
    /// The hub stopped the worker first (nothing is known of the push).
    Stopped,
}

/// Pushes one change, retrying a few times.
async fn deliver(client: &Client, body: Bytes, parts: &Parts) -> Outcome {
    let mut pause = Duration::from_millis(FIRST_RETRY_MS);
    for attempt in 1..=MAX_FAILURES {
        let outcome = tokio::select! {
            r = client.call_raw(body.clone()) => r,
            _ = parts.stop.triggered() => return Outcome::Stopped,
        };
        let why = match outcome {
            Ok(reply) => match codec::parse_response(&reply, Limits::default()) {
                Ok(Ok(_)) => return Outcome::Delivered,
                Ok(Err(fault)) => format!("the tablet answered a fault: {fault}"),
                Err(e) => format!("the tablet's reply is not XML-RPC: {e}"),
            },
            Err(e) => e.to_string(),
        };
        debug!(url = %parts.url, attempt, why, "push failed");
        if attempt < MAX_FAILURES {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = parts.stop.triggered() => return Outcome::Stopped,
            }
            pause *= 2;
        }
    }
    Outcome::GaveUp
}
