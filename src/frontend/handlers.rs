//! The public API bound to a front-end: every [`Method`] gets a handler
//! through one exhaustive `match` on [`Request`], so a method without one
//! does not compile; each arm shapes its reply (the old text formats, or
//! structs for new clients).

use std::sync::Arc;

use super::Frontend;
use crate::api::{Health, Method, Request, Subscription, HEALTH_METHOD};
use crate::rpc::{CallContext, Fault, Methods, Value};
use crate::scoreboard::text;
use crate::store::Entry;

/// The public API of a front-end, plus its health probe.
pub(super) fn methods(fe: Arc<Frontend>) -> Methods {
    let mut m = Methods::new();
    for method in Method::ALL {
        let fe = fe.clone();
        m.add_overloaded(
            method.name(),
            method.signatures(),
            method.help(),
            move |params, ctx| {
                let fe = fe.clone();
                async move {
                    let request = Request::parse(method, &params)?;
                    fe.handle(request, &ctx).await
                }
            },
        );
    }
    m.add(
        HEALTH_METHOD,
        &["struct"],
        "Readiness of this front-end: {ok, cached, subscribers, clock}.",
        move |params, _| {
            let fe = fe.clone();
            async move {
                params.expect_count(0, 0)?;
                Ok(fe.health().to_value())
            }
        },
    );
    m
}

impl Frontend {
    /// Runs one public request. Writes and other calls that reach the db
    /// are boxed: their futures are kilobytes, and carried inline they
    /// would make every cached read's future as large.
    async fn handle(&self, request: Request, ctx: &CallContext) -> Result<Value, Fault> {
        match request {
            Request::GetMedalTally(r) => Ok(text::tally(&self.tally(&r.team).await?).into()),
            Request::GetScore(r) => Ok(text::score(&self.score(&r.event).await?).into()),
            Request::IncrementMedalTally(r) => {
                let write = self.increment_medal(&r.team, &r.medal, &r.password, None, ctx);
                let ack = Box::pin(write).await?;
                Ok(match &ack.entry {
                    Entry::Tally(t) => text::medal_ack(t),
                    _ => return Err(Fault::internal("a medal write made no tally")),
                }
                .into())
            }
            Request::SetScore(r) => {
                let write = self.set_score(&r.event, &r.score, &r.password, None, ctx);
                let ack = Box::pin(write).await?;
                Ok(match &ack.entry {
                    Entry::Score(s) => text::score_ack(&s.event),
                    _ => return Err(Fault::internal("a score write made no score")),
                }
                .into())
            }
            Request::RegisterClient(r) => {
                let url = r.callback_url();
                self.subscribe(&url, &r.events, &r.teams, None)?;
                Ok(text::register_ack(&url).into())
            }
            Request::Roster(_) => Ok(self.roster()?.to_value()),
            Request::Tally(r) => Ok(self.tally(&r.team).await?.to_value()),
            Request::MedalTable(_) => {
                let table = self.medal_table().await?;
                Ok(Value::Array(table.iter().map(|s| s.to_value()).collect()))
            }
            Request::Score(r) => Ok(self.score(&r.event).await?.to_value()),
            Request::IncrementMedal(r) => {
                let write = self.increment_medal(
                    &r.team,
                    &r.medal,
                    &r.password,
                    r.request_id.as_deref(),
                    ctx,
                );
                Ok(Box::pin(write).await?.to_value())
            }
            Request::SetEventScore(r) => {
                let write = self.set_score(
                    &r.event,
                    &r.score,
                    &r.password,
                    r.request_id.as_deref(),
                    ctx,
                );
                Ok(Box::pin(write).await?.to_value())
            }
            Request::Subscribe(r) => {
                let lease =
                    self.subscribe(&r.callback_url, &r.events, &r.teams, r.lease_seconds)?;
                Ok(Subscription {
                    callback_url: r.callback_url,
                    lease_seconds: i64::try_from(lease.as_secs()).unwrap_or(i64::MAX),
                }
                .to_value())
            }
            Request::Unsubscribe(r) => Ok(Value::Bool(self.unsubscribe(&r.callback_url))),
            Request::History(r) => {
                let changes = Box::pin(self.history(r.kind, &r.name)).await?;
                Ok(Value::Array(changes.iter().map(|c| c.to_value()).collect()))
            }
        }
    }

    fn health(&self) -> Health {
        Health {
            ok: self.roster.borrow().is_some(),
            cached: i64::try_from(self.cache.len()).unwrap_or(i64::MAX),
            subscribers: i64::try_from(self.push.len()).unwrap_or(i64::MAX),
            clock: self.clock.now_secs(),
        }
    }
}
