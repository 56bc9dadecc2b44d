//! The write path: check the feeder password, resolve the names, give the
//! write a request id (so a retry applies once), let the db make it durable,
//! and apply the change here before answering (read-your-writes through
//! this front-end: its cache entry is dropped, its roster extended).

use super::Frontend;
use crate::api::WriteAck;
use crate::cache::apply_to_roster;
use crate::cluster;
use crate::db::wire::WriteReply;
use crate::rpc::{CallContext, Fault};
use crate::scoreboard::{check_score, Medal};

/// A write as the front-end takes it, names not yet resolved.
#[derive(Debug, Clone, Copy)]
pub(super) enum Write<'a> {
    IncrementMedal { team: &'a str, medal: &'a str },
    RevokeMedal { team: &'a str, medal: &'a str },
    SetMedals { team: &'a str, counts: [i64; 3] },
    SetScore { event: &'a str, score: &'a str },
    AddTeam { name: &'a str },
    AddEvent { name: &'a str },
}

impl Frontend {
    /// Makes one write.
    ///
    /// # Errors
    /// A refused password, an unknown or refused name, an unacceptable
    /// value, or the db unavailable (saying whether the write may have been
    /// applied, see [`crate::db::wire::write_fault`]).
    pub(super) async fn write(
        &self,
        write: Write<'_>,
        password: &str,
        request_id: Option<&str>,
        ctx: &CallContext,
    ) -> Result<WriteAck, Fault> {
        self.password
            .check(password, cluster::caller(ctx).client_ip)
            .await?;
        // Cut off from the db, a write would wait out the db deadline with
        // an unknown outcome; refused now, it was certainly not applied,
        // and the balancer tries another front-end at once.
        self.freshness
            .check()
            .map_err(|f| Fault::new(f.code, format!("{}; the write was not sent", f.message)))?;
        let roster = self.roster()?;
        let rid = cluster::request_id(ctx, request_id, "fe");
        let db = &self.db;
        let reply: WriteReply = match write {
            Write::IncrementMedal { team, medal } => {
                db.increment_medal(roster.team(team)?, Medal::parse(medal)?, &rid)
                    .await?
            }
            Write::RevokeMedal { team, medal } => {
                db.revoke_medal(roster.team(team)?, Medal::parse(medal)?, &rid)
                    .await?
            }
            Write::SetMedals { team, counts } => {
                db.set_medals(roster.team(team)?, counts, &rid).await?
            }
            Write::SetScore { event, score } => {
                check_score(score)?;
                db.set_score(roster.event(event)?, score, &rid).await?
            }
            // The db checks new names against its own roster, which may be
            // newer than ours; checking here first answers most mistakes
            // without a round trip.
            Write::AddTeam { name } => db.add_team(&roster.check_new_team(name)?, &rid).await?,
            Write::AddEvent { name } => db.add_event(&roster.check_new_event(name)?, &rid).await?,
        };
        self.cache.apply_change(&reply.change).await;
        apply_to_roster(&self.roster_tx, &reply.change.entry);
        Ok(reply.into_ack())
    }
}
