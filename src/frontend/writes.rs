//! The write path: check the feeder password, resolve the names, give the
//! write a request id (so a retry applies once), let the db make it durable,
//! and drop our own cached entry before answering (read-your-writes through
//! this front-end).

use super::Frontend;
use crate::api::WriteAck;
use crate::cluster;
use crate::rpc::{CallContext, Fault};
use crate::scoreboard::{check_score, Medal};

impl Frontend {
    /// Adds one medal to a team.
    ///
    /// # Errors
    /// A refused password, an unknown team or medal, or the db unavailable.
    pub(super) async fn increment_medal(
        &self,
        team: &str,
        medal: &str,
        password: &str,
        request_id: Option<&str>,
        ctx: &CallContext,
    ) -> Result<WriteAck, Fault> {
        self.password
            .check(password, cluster::caller(ctx).client_ip)?;
        let team = self.roster()?.team(team)?.to_owned();
        let medal = Medal::parse(medal)?;
        let rid = cluster::request_id(ctx, request_id, "fe");
        let reply = self.db.increment_medal(&team, medal, &rid).await?;
        self.cache.apply_change(&reply.change).await;
        Ok(reply.into_ack())
    }

    /// Sets an event's score.
    ///
    /// # Errors
    /// A refused password, an unknown event, an over-long score, or the db
    /// unavailable.
    pub(super) async fn set_score(
        &self,
        event: &str,
        score: &str,
        password: &str,
        request_id: Option<&str>,
        ctx: &CallContext,
    ) -> Result<WriteAck, Fault> {
        self.password
            .check(password, cluster::caller(ctx).client_ip)?;
        let event = self.roster()?.event(event)?.to_owned();
        check_score(score)?;
        let rid = cluster::request_id(ctx, request_id, "fe");
        let reply = self.db.set_score(&event, score, &rid).await?;
        self.cache.apply_change(&reply.change).await;
        Ok(reply.into_ack())
    }
}
