//! The change-feed follower: keeps the cache coherent and feeds the push hub.
//!
//! It learns the db's epoch and roster, then asks for "changes after V",
//! either held open by the db (push mode) or every pull interval. A new
//! epoch (the db restarted) or a reset (a gap) empties the cache. While the
//! db cannot be reached the cache is kept: every write goes through the db,
//! so nothing can change behind a cached value until the db is back, and
//! then the follower either catches up from V or, on a new epoch, empties it
//! (and still pushes what the db committed after V). Its first poll after
//! losing the db never waits, so a new epoch is seen as soon as the db is back.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::cache::Cache;
use super::push::PushHub;
use super::CacheMode;
use crate::db::wire::{DbClient, MAX_CHANGES_PER_REPLY};
use crate::scoreboard::Roster;

/// How long the db holds a push-mode poll open, milliseconds.
pub(crate) const LONG_POLL_MS: i64 = 20_000;
/// Retry delays after the db could not be reached.
const MIN_BACKOFF_MS: u64 = 50;
const MAX_BACKOFF_MS: u64 = 1_000;

/// Runs until `stop` turns true.
pub(crate) async fn follow(
    db: DbClient,
    cache: Cache,
    push: PushHub,
    roster_tx: watch::Sender<Option<Arc<Roster>>>,
    mode: CacheMode,
    pull_interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(MIN_BACKOFF_MS);
    // (epoch, last version applied), once known.
    let mut position: Option<(String, i64)> = None;
    // After the feed was lost, the next poll must not wait: if the db came
    // back as a new run (new epoch) with nothing newer than our position, a
    // long poll would only tell us at its next write or after LONG_POLL_MS,
    // serving pre-restart values meanwhile.
    let mut reconnecting = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let step = async {
            let Some((epoch, after)) = &position else {
                // Start from the db's latest version: nothing cached yet.
                let start = db.roster().await?;
                cache.clear();
                roster_tx.send_replace(Some(Arc::new(start.roster)));
                info!(epoch = %start.epoch, latest = start.latest, "following the db's change feed");
                return Ok::<_, crate::rpc::Fault>(((start.epoch, start.latest), true));
            };
            let wait = match mode {
                CacheMode::Push if !reconnecting => LONG_POLL_MS,
                CacheMode::Push | CacheMode::Pull => 0,
            };
            let batch = db.changes(*after, wait).await?;
            if batch.epoch != *epoch || batch.reset {
                info!(old = %epoch, new = %batch.epoch, reset = batch.reset, "db restarted or feed gap: emptying the cache");
                cache.clear();
                // Roster may have changed with the restart.
                roster_tx.send_replace(Some(Arc::new(db.roster().await?.roster)));
                if batch.reset {
                    return Ok(((batch.epoch, batch.latest), true));
                }
                // A restarted db that still has our position: what it
                // committed since (writes made before we reconnected) is
                // still news for tablets, so go on as for any batch.
            }
            let mut last = *after;
            for change in &batch.changes {
                cache.apply_change(&change.entry).await;
                push.publish(change);
                last = last.max(change.version);
            }
            let more = batch.changes.len() >= MAX_CHANGES_PER_REPLY;
            Ok(((batch.epoch, last), more))
        };
        let outcome = tokio::select! {
            r = step => r,
            _ = stop.changed() => return,
        };
        match outcome {
            Ok((next, again_now)) => {
                position = Some(next);
                reconnecting = false;
                backoff = Duration::from_millis(MIN_BACKOFF_MS);
                if mode == CacheMode::Pull && !again_now {
                    tokio::select! {
                        _ = tokio::time::sleep(pull_interval) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
            Err(fault) => {
                warn!(error = %fault, retry_in = ?backoff, "change feed unavailable");
                reconnecting = true;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_millis(MAX_BACKOFF_MS));
            }
        }
        // Cheap, and keeps expired leases from lingering when nothing changes.
        push.expire();
    }
}
