//! Push subscriptions as callers make them: the followed names resolved
//! against the roster, the callback URL admitted (the subscriber's own
//! address, never the cluster's; see [`crate::push::callback_url`]), the
//! lease clamped to its bounds, then written to the db, which holds them
//! for the whole cluster.

use std::time::Duration;

use tracing::info;

use super::Frontend;
use crate::api::faults;
use crate::cluster;
use crate::push::callback_url;
use crate::rpc::{CallContext, Fault};
use crate::scoreboard::subscription::{Style, Subscription};

/// Shortest lease a subscriber may ask for, seconds.
pub(super) const MIN_LEASE_SECS: i64 = 5;
/// Longest lease, seconds.
pub(super) const MAX_LEASE_SECS: i64 = 86_400;
/// Lease of an old-style `register_client`: the old tablets register once,
/// at start, and never renew, so theirs is the longest (a tablet that dies
/// is dropped when pushes to it keep failing).
pub(super) const LEGACY_LEASE_SECS: i64 = MAX_LEASE_SECS;

impl Frontend {
    /// Makes or renews the subscription of `url`; returns its canonical URL
    /// and the lease granted.
    ///
    /// # Errors
    /// Unknown names, a callback the rules refuse, a cap reached, or the db
    /// unavailable.
    pub(super) async fn subscribe(
        &self,
        url: &str,
        events: &[String],
        teams: &[String],
        lease_seconds: Option<i64>,
        style: Style,
        ctx: &CallContext,
    ) -> Result<(String, Duration), Fault> {
        let roster = self.roster()?;
        let events = events
            .iter()
            .map(|e| roster.event(e).map(str::to_lowercase))
            .collect::<Result<Vec<_>, _>>()?;
        let teams = teams
            .iter()
            .map(|t| roster.team(t).map(str::to_lowercase))
            .collect::<Result<Vec<_>, _>>()?;
        let caller = cluster::caller(ctx);
        // The balancer the call came through, and this server as the caller
        // reached it, are cluster endpoints too.
        if let Some(via) = caller.via {
            self.push.saw_balancer(via);
        }
        let also: Vec<_> = caller.via.into_iter().chain(ctx.local).collect();
        let url = callback_url::admit(url, caller.client_ip, &self.callback_rules, &also).await?;
        let client = caller
            .client_ip
            .map(|ip| ip.to_string())
            .ok_or_else(|| Fault::invalid_params("the subscriber's address is unknown"))?;
        let secs = lease_seconds
            .unwrap_or(LEGACY_LEASE_SECS)
            .clamp(MIN_LEASE_SECS, MAX_LEASE_SECS);
        let lease = Duration::from_secs(secs.unsigned_abs());
        let subscription = Subscription {
            url: url.clone(),
            events,
            teams,
            expires: self.clock.now_secs() + lease.as_secs_f64(),
            client,
            style,
        };
        Box::pin(self.db.subscribe(&subscription)).await?;
        info!(%url, lease_secs = lease.as_secs(), "tablet subscribed");
        Ok((url, lease))
    }

    /// Ends the subscription of `url`; true if there was one. Only its
    /// subscriber (or an address the operator allows) may end it.
    ///
    /// # Errors
    /// Someone else's subscription, or the db unavailable.
    pub(super) async fn unsubscribe(&self, url: &str, ctx: &CallContext) -> Result<bool, Fault> {
        let caller = cluster::caller(ctx);
        let url = callback_url::canonicalize(url, caller.client_ip).await?;
        if let Some(sub) = self.push.subscription(&url) {
            let own = caller.client_ip.is_some_and(|ip| {
                ip.to_string() == sub.client
                    || self
                        .callback_rules
                        .allow
                        .iter()
                        .any(|net| net.contains(&ip))
            });
            if !own {
                return Err(faults::unauthorized(
                    "only its subscriber may end a subscription",
                ));
            }
        }
        Box::pin(self.db.unsubscribe(&url, "unsubscribed")).await
    }
}
