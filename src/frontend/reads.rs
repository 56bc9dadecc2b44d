//! The read path: every read is answered from the cache, and a miss fetches
//! from the db (concurrent misses of one key share one fetch).

use std::sync::Arc;

use super::Frontend;
use crate::api::{faults, History, HistoryCursor, HistoryKind, HistoryPage};
use crate::cache::{Cached, TABLE_KEY};
use crate::rpc::Fault;
use crate::scoreboard::rank::Standing;
use crate::scoreboard::{score_key, tally_key, Roster, Score, Tally};

impl Frontend {
    /// The roster, once the db has told it.
    ///
    /// # Errors
    /// `UNAVAILABLE` before the db was first reached.
    pub(super) fn roster(&self) -> Result<Arc<Roster>, Fault> {
        self.roster_tx
            .borrow()
            .clone()
            .ok_or_else(|| faults::unavailable("the db has not been reached yet"))
    }

    /// The roster for a read of the cache: refused while the change feed is
    /// silent, as every cached value is then (see [`crate::cache`]).
    ///
    /// # Errors
    /// `UNAVAILABLE` before the db was first reached, or while cut off.
    pub(super) fn fresh_roster(&self) -> Result<Arc<Roster>, Fault> {
        self.freshness.check()?;
        self.roster()
    }

    /// One team's tally.
    ///
    /// # Errors
    /// An unknown team, cut off from the db, or the db unavailable on a miss.
    pub(super) async fn tally(&self, team: &str) -> Result<Tally, Fault> {
        let team = self.fresh_roster()?.team(team)?.to_owned();
        let key = tally_key(&team);
        let fetch = || async { self.db.tally(&team).await.map(Cached::Tally) };
        match self.cache.get_or_fetch(&key, fetch).await? {
            Cached::Tally(t) => Ok(t),
            _ => Err(Fault::internal("cache holds a non-tally under a tally key")),
        }
    }

    /// One event's score.
    ///
    /// # Errors
    /// An unknown event, cut off from the db, or the db unavailable on a miss.
    pub(super) async fn score(&self, event: &str) -> Result<Score, Fault> {
        let event = self.fresh_roster()?.event(event)?.to_owned();
        let key = score_key(&event);
        let fetch = || async { self.db.score(&event).await.map(Cached::Score) };
        match self.cache.get_or_fetch(&key, fetch).await? {
            Cached::Score(s) => Ok(s),
            _ => Err(Fault::internal("cache holds a non-score under a score key")),
        }
    }

    /// The medal table, ranked once when fetched, not on every hit.
    ///
    /// # Errors
    /// Cut off from the db, or the db unavailable on a miss.
    pub(super) async fn medal_table(&self) -> Result<Arc<Vec<Standing>>, Fault> {
        self.freshness.check()?;
        let fetch = || async {
            let tallies = self.db.tallies().await?;
            Ok(Cached::Table(Arc::new(Standing::table(tallies))))
        };
        match self.cache.get_or_fetch(TABLE_KEY, fetch).await? {
            Cached::Table(t) => Ok(t),
            _ => Err(Fault::internal(
                "cache holds a non-table under the table key",
            )),
        }
    }

    /// A page of the updates of a tally or a score, oldest first (never
    /// cached: it is for audits, not for tablets; the db reads it off its
    /// writer's thread).
    ///
    /// # Errors
    /// An unknown name, or the db unavailable.
    pub(super) async fn history(&self, request: &History) -> Result<HistoryPage, Fault> {
        let roster = self.roster()?;
        let key = match request.kind {
            HistoryKind::Tally => tally_key(roster.team(&request.name)?),
            HistoryKind::Score => score_key(roster.event(&request.name)?),
        };
        let limit = request.limit();
        let before = request.page.and_then(|p| p.cursor.before());
        // One more than the page, to know whether there is a page before.
        let mut updates = self.db.history(&key, limit + 1, before).await?;
        let more = updates.len() > limit.unsigned_abs() as usize;
        if more {
            updates.remove(0);
        }
        let next = more
            .then(|| updates.first().map(|c| HistoryCursor::Before(c.version)))
            .flatten();
        Ok(HistoryPage { updates, next })
    }
}
