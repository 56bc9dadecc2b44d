//! The public API bound to a front-end: every [`Method`] gets a handler
//! through one exhaustive `match` on [`Request`], so a method without one
//! does not compile; each arm shapes its reply (the old text formats, or
//! structs for new clients).

use std::sync::Arc;

use super::writes::Write;
use super::Frontend;
use crate::api::{Health, Method, Request, Subscription, HEALTH_METHOD};
use crate::rpc::{CallContext, Fault, Methods, Value};
use crate::scoreboard::subscription::Style;
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
        "Readiness of this front-end: {ok, cached, subscribers, clock, feed}.",
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
                let write = Write::IncrementMedal {
                    team: &r.team,
                    medal: &r.medal,
                };
                let ack = Box::pin(self.write(write, &r.password, None, ctx)).await?;
                Ok(match &ack.entry {
                    Entry::Tally(t) => text::medal_ack(t),
                    _ => return Err(Fault::internal("a medal write made no tally")),
                }
                .into())
            }
            Request::SetScore(r) => {
                let write = Write::SetScore {
                    event: &r.event,
                    score: &r.score,
                };
                let ack = Box::pin(self.write(write, &r.password, None, ctx)).await?;
                Ok(match &ack.entry {
                    Entry::Score(s) => text::score_ack(&s.event),
                    _ => return Err(Fault::internal("a score write made no score")),
                }
                .into())
            }
            Request::RegisterClient(r) => {
                let url = r.callback_url();
                let subscribe = self.subscribe(&url, &r.events, &r.teams, None, Style::Old, ctx);
                let (url, _) = Box::pin(subscribe).await?;
                Ok(text::register_ack(&url).into())
            }
            Request::Roster(_) => Ok(self.fresh_roster()?.to_value()),
            Request::Tally(r) => Ok(self.tally(&r.team).await?.to_value()),
            Request::MedalTable(_) => {
                let table = self.medal_table().await?;
                Ok(Value::Array(table.iter().map(|s| s.to_value()).collect()))
            }
            Request::Score(r) => Ok(self.score(&r.event).await?.to_value()),
            Request::IncrementMedal(r) => {
                let write = Write::IncrementMedal {
                    team: &r.team,
                    medal: &r.medal,
                };
                self.structured_write(write, &r.password, r.request_id.as_deref(), ctx)
                    .await
            }
            Request::SetEventScore(r) => {
                let write = Write::SetScore {
                    event: &r.event,
                    score: &r.score,
                };
                self.structured_write(write, &r.password, r.request_id.as_deref(), ctx)
                    .await
            }
            Request::AddTeam(r) => {
                let write = Write::AddTeam { name: &r.name };
                self.structured_write(write, &r.password, r.request_id.as_deref(), ctx)
                    .await
            }
            Request::AddEvent(r) => {
                let write = Write::AddEvent { name: &r.name };
                self.structured_write(write, &r.password, r.request_id.as_deref(), ctx)
                    .await
            }
            Request::RevokeMedal(r) => {
                let write = Write::RevokeMedal {
                    team: &r.team,
                    medal: &r.medal,
                };
                self.structured_write(write, &r.password, r.request_id.as_deref(), ctx)
                    .await
            }
            Request::SetMedals(r) => {
                let write = Write::SetMedals {
                    team: &r.team,
                    counts: [r.gold, r.silver, r.bronze],
                };
                self.structured_write(write, &r.password, r.request_id.as_deref(), ctx)
                    .await
            }
            Request::Subscribe(r) => {
                let subscribe = self.subscribe(
                    &r.callback_url,
                    &r.events,
                    &r.teams,
                    r.lease_seconds,
                    Style::New,
                    ctx,
                );
                let (url, lease) = Box::pin(subscribe).await?;
                Ok(Subscription {
                    callback_url: url,
                    lease_seconds: i64::try_from(lease.as_secs()).unwrap_or(i64::MAX),
                }
                .to_value())
            }
            Request::Unsubscribe(r) => {
                let gone = Box::pin(self.unsubscribe(&r.callback_url, ctx)).await?;
                Ok(Value::Bool(gone))
            }
            Request::History(r) => {
                let page = Box::pin(self.history(&r)).await?;
                Ok(match r.page {
                    // The old call: the first page, as a plain array.
                    None => Value::Array(page.updates.iter().map(|c| c.to_value()).collect()),
                    Some(_) => page.to_value(),
                })
            }
        }
    }

    /// A write of the `scoreboard.` namespace: the acknowledgement as a
    /// struct. Boxed, as every call that reaches the db is.
    async fn structured_write(
        &self,
        write: Write<'_>,
        password: &str,
        request_id: Option<&str>,
        ctx: &CallContext,
    ) -> Result<Value, Fault> {
        let ack = Box::pin(self.write(write, password, request_id, ctx)).await?;
        Ok(ack.to_value())
    }

    fn health(&self) -> Health {
        let feed = self.freshness.health();
        Health {
            ok: feed.ok && self.roster_tx.borrow().is_some(),
            feed: feed.status,
            cached: i64::try_from(self.cache.len()).unwrap_or(i64::MAX),
            subscribers: i64::try_from(self.push.len()).unwrap_or(i64::MAX),
            clock: self.clock.now_secs(),
        }
    }
}
