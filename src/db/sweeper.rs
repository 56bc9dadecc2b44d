//! Ends the subscriptions whose lease ran out, through the log like any
//! change, so every front-end stops pushing to them and their places free.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::debug;

use super::methods::submit;
use super::Db;
use crate::store::{WriteOp, WriteRequest};

/// How often leases are looked at.
const SWEEP_INTERVAL_MS: u64 = 1_000;
/// Most subscriptions ended per sweep: a burst of expiries is spread over
/// sweeps rather than held in one batch of writes.
const MAX_PER_SWEEP: usize = 1_000;

/// Runs until the caller stops it.
pub(super) async fn end_expired_subscriptions(db: Arc<Db>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(SWEEP_INTERVAL_MS));
    loop {
        ticker.tick().await;
        let now = db.clock.now_secs();
        let expired: Vec<String> = db
            .state
            .read()
            .subscriptions
            .values()
            .filter(|(s, _)| s.expires <= now)
            .map(|(s, _)| s.url.clone())
            .take(MAX_PER_SWEEP)
            .collect();
        for url in expired {
            let request = WriteRequest {
                op: WriteOp::Unsubscribe {
                    url: url.clone(),
                    reason: "expired".into(),
                },
                request_id: None,
                timestamp: db.clock.now_secs(),
                vclock: db.vclock.snapshot().as_slice().to_vec(),
            };
            let (tx, _rx) = oneshot::channel();
            if submit(&db, (request, tx)).await.is_err() {
                return;
            }
            debug!(%url, "lease ended");
        }
    }
}
