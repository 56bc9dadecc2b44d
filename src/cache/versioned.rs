//! The versioned cache: a moka cache of tallies, scores and the medal table
//! in which every entry carries the version of the write it reflects (point
//! 1 of the coherence argument in [`crate::cache`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::future::Cache as Moka;

use crate::rpc::Fault;
use crate::scoreboard::rank::Standing;
use crate::scoreboard::{Score, Tally};
use crate::store::{Change, Entry};

/// Key of the whole medal table in the cache.
pub(crate) const TABLE_KEY: &str = "table";

/// What the cache holds.
#[derive(Debug, Clone)]
pub(crate) enum Cached {
    Tally(Tally),
    Score(Score),
    /// The medal table, ranked once when fetched, not on every hit.
    Table(Arc<Vec<Standing>>),
}

impl Cached {
    /// The newest write this value reflects.
    fn version(&self) -> i64 {
        match self {
            Cached::Tally(t) => t.version,
            Cached::Score(s) => s.version,
            Cached::Table(rows) => rows.iter().map(|r| r.tally.version).max().unwrap_or(0),
        }
    }
}

/// A cheap handle on the cache.
#[derive(Clone)]
pub(crate) struct Cache {
    entries: Moka<String, Cached>,
    /// Newest version the feed (or our own write) reported per key.
    changed: Arc<Mutex<HashMap<String, i64>>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl Cache {
    /// `ttl` is the last safety net behind the change feed.
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        Cache {
            entries: Moka::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            changed: Arc::default(),
        }
    }

    fn changed_version(&self, key: &str) -> i64 {
        let changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        changed.get(key).copied().unwrap_or(0)
    }

    /// The cached value, or `fetch`'s, cached. Concurrent misses of one key
    /// share one fetch.
    ///
    /// `fetch` makes the fetching future only on a miss, and the miss path
    /// lives on the heap: a db call's future is kilobytes, and carried
    /// inline it made every hit's future as large, which was copied on every
    /// call (memcpy was 46% of a front-end's instructions per cached read).
    pub(crate) async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<Cached, Fault>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached, Fault>> + Send,
    {
        let value = match self.entries.get(key).await {
            Some(value) => value,
            None => {
                let miss: std::pin::Pin<Box<dyn Future<Output = _> + Send + '_>> =
                    Box::pin(self.entries.try_get_with_by_ref(key, fetch()));
                miss.await.map_err(|e: Arc<Fault>| (*e).clone())?
            }
        };
        if value.version() < self.changed_version(key) {
            self.entries.invalidate(key).await;
        }
        Ok(value)
    }

    /// Drops what a change made stale: a tally's entry and the medal table,
    /// a score's entry, the medal table for a new team.
    pub(crate) async fn apply_change(&self, change: &Change) {
        let key = change.entry.key();
        let stale: &[&str] = match &change.entry {
            Entry::Tally(_) => &[key.as_str(), TABLE_KEY],
            Entry::Score(_) => &[key.as_str()],
            Entry::TeamAdded(_) => &[TABLE_KEY],
            Entry::EventAdded(_) | Entry::Subscribed(_) | Entry::Unsubscribed { .. } => &[],
        };
        {
            let mut changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
            for k in stale {
                let slot = changed.entry((*k).to_owned()).or_insert(0);
                *slot = (*slot).max(change.version);
            }
        }
        for k in stale {
            self.entries.invalidate(*k).await;
        }
    }

    /// Forgets everything: after a db restart, a gap, or a reset.
    pub(crate) fn clear(&self) {
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.entries.invalidate_all();
    }

    /// Entries currently held (approximate, for status).
    pub(crate) fn len(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Entries held, exactly: after moka's pending bookkeeping has run.
    #[cfg(test)]
    pub(crate) async fn len_now(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(version: i64, gold: i64) -> Tally {
        Tally {
            team: "Gaul".into(),
            gold,
            silver: 0,
            bronze: 0,
            version,
            updated: 0.0,
        }
    }

    fn change(t: Tally) -> Change {
        Change {
            version: t.version,
            entry: Entry::Tally(t),
            timestamp: 0.0,
            vclock: vec![],
            request_id: None,
        }
    }

    #[tokio::test]
    async fn a_fetch_that_raced_a_change_is_not_kept() {
        let cache = Cache::new(100, Duration::from_secs(60));
        let key = "tally:gaul";
        // The feed reports version 2 while a miss is still reading version 1.
        cache.apply_change(&change(tally(2, 1))).await;
        let got = cache
            .get_or_fetch(key, || async { Ok(Cached::Tally(tally(1, 0))) })
            .await
            .unwrap();
        assert!(matches!(got, Cached::Tally(t) if t.version == 1));
        // The stale value was not kept: the next read fetches again.
        let got = cache
            .get_or_fetch(key, || async { Ok(Cached::Tally(tally(2, 1))) })
            .await
            .unwrap();
        assert!(matches!(got, Cached::Tally(t) if t.version == 2));
        // And a current value is kept: no fetch happens now.
        let got = cache
            .get_or_fetch(key, || async { Err(Fault::internal("must not fetch")) })
            .await
            .unwrap();
        assert!(matches!(got, Cached::Tally(t) if t.version == 2));
    }

    #[tokio::test]
    async fn tally_changes_drop_the_table() {
        let cache = Cache::new(100, Duration::from_secs(60));
        let table = Cached::Table(Arc::new(Standing::table(vec![tally(1, 1)])));
        cache
            .get_or_fetch(TABLE_KEY, || async { Ok(table) })
            .await
            .unwrap();
        cache.apply_change(&change(tally(5, 2))).await;
        let refetched = cache
            .get_or_fetch(TABLE_KEY, || async {
                Ok(Cached::Table(Arc::new(Standing::table(vec![tally(5, 2)]))))
            })
            .await
            .unwrap();
        assert!(matches!(refetched, Cached::Table(t) if t[0].tally.gold == 2));
    }
}
