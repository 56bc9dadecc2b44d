//! Push subscriptions as callers make them: the followed names resolved
//! against the roster, the lease clamped to its bounds, then handed to the
//! push hub.

use std::collections::HashSet;
use std::time::Duration;

use super::push::{LEGACY_LEASE_SECS, MAX_LEASE_SECS, MIN_LEASE_SECS};
use super::Frontend;
use crate::rpc::Fault;

impl Frontend {
    /// Adds or renews the subscription of `url`; returns the lease granted.
    ///
    /// # Errors
    /// Unknown names, a bad URL, or too many subscribers.
    pub(super) fn subscribe(
        &self,
        url: &str,
        events: &[String],
        teams: &[String],
        lease_seconds: Option<i64>,
    ) -> Result<Duration, Fault> {
        let roster = self.roster()?;
        let events: HashSet<String> = events
            .iter()
            .map(|e| roster.event(e).map(str::to_lowercase))
            .collect::<Result<_, _>>()?;
        let teams: HashSet<String> = teams
            .iter()
            .map(|t| roster.team(t).map(str::to_lowercase))
            .collect::<Result<_, _>>()?;
        let secs = lease_seconds
            .unwrap_or(LEGACY_LEASE_SECS)
            .clamp(MIN_LEASE_SECS, MAX_LEASE_SECS);
        let lease = Duration::from_secs(secs.unsigned_abs());
        self.push.subscribe(url, events, teams, lease)?;
        Ok(lease)
    }

    /// Ends the subscription of `url`; true if there was one.
    pub(super) fn unsubscribe(&self, url: &str) -> bool {
        self.push.unsubscribe(url)
    }
}
