//! The hub's subscription table: each subscription by its URL, and the
//! index from a followed key (`tally:TEAM`, `score:EVENT`) to the URLs
//! following it, kept in step on every change.

use std::collections::{HashMap, HashSet};

use super::{State, Sub};
use crate::scoreboard::subscription::Subscription;

/// The keys a subscription follows, as the change feed names them.
fn followed_keys(sub: &Subscription) -> impl Iterator<Item = String> + '_ {
    sub.teams
        .iter()
        .map(|t| format!("tally:{t}"))
        .chain(sub.events.iter().map(|e| format!("score:{e}")))
}

/// Adds or renews a subscription, keeping its worker.
pub(super) fn upsert(state: &mut State, sub: Subscription, version: i64) {
    let url = sub.url.clone();
    if let Some(old) = state.subs.get(&url) {
        unindex(&mut state.by_key, &url, &old.sub);
    }
    for key in followed_keys(&sub) {
        state.by_key.entry(key).or_default().insert(url.clone());
    }
    match state.subs.get_mut(&url) {
        Some(s) => {
            s.sub = sub;
            s.version = version;
            s.unreachable = false;
            // A worker may be waiting for a key it follows now.
            if let Some(w) = &s.worker {
                w.wake.notify_one();
            }
        }
        None => {
            state.subs.insert(
                url,
                Sub {
                    sub,
                    version,
                    worker: None,
                    unreachable: false,
                },
            );
        }
    }
}

/// Ends a subscription, stopping its worker.
pub(super) fn remove(state: &mut State, url: &str) {
    state.pending.remove(url);
    if let Some(s) = state.subs.remove(url) {
        unindex(&mut state.by_key, url, &s.sub);
        if let Some(w) = s.worker {
            w.stop.trigger();
        }
    }
}

fn unindex(by_key: &mut HashMap<String, HashSet<String>>, url: &str, sub: &Subscription) {
    for key in followed_keys(sub) {
        if let Some(urls) = by_key.get_mut(&key) {
            urls.remove(url);
            if urls.is_empty() {
                by_key.remove(&key);
            }
        }
    }
}
