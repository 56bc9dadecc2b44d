//! The server side of the envelope: a layer around a handler that judges
//! each call once (member or not, whose address, which request id), keeps
//! the vector clock, and leaves a [`Caller`] for the handlers below.
//!
//! The cluster secret is checked behind a guess limiter
//! ([`crate::guesses`]), keyed by the TCP peer's address (a forwarded
//! address is believed only from members, so it cannot key this). A
//! connection that gave the right secret is remembered, and its later calls
//! are compared without the limiter: members that share a host with a
//! guesser keep working over the connections they hold.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use hyper::header::HeaderValue;
use lru::LruCache;
use tracing::{debug, warn};

use super::{Caller, SECRET_HEADER, VCLOCK_HEADER};
use crate::api::faults;
use crate::election::vclock::{SharedClock, VectorClock};
use crate::guesses::{GuessLimiter, GuessLimits, Refused};
use crate::rpc::{codec, fault, CallContext, Fault, Handler, Request, Response};
use crate::secret::Secret;

/// Connections remembered as having given the right secret.
const TRUSTED_CONNECTIONS: usize = 4_096;

/// Wraps a handler with the cluster's envelope.
#[derive(Debug)]
pub struct Envelope<H> {
    inner: H,
    /// This process's cluster secret; without one, no caller is a member.
    secret: Option<Secret>,
    /// This process's vector clock: ticked for every call handled, merged
    /// from members' calls, and sent back to them.
    vclock: Option<SharedClock>,
    guesses: GuessLimiter,
    /// Peers (address and port: one connection) that gave the right secret.
    trusted: Mutex<LruCache<SocketAddr, ()>>,
}

impl<H> Envelope<H> {
    pub fn new(inner: H, secret: Option<Secret>, vclock: Option<SharedClock>) -> Self {
        Envelope {
            inner,
            secret,
            vclock,
            guesses: GuessLimiter::new(GuessLimits::configured()),
            trusted: Mutex::new(LruCache::new(
                NonZeroUsize::new(TRUSTED_CONNECTIONS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// Whether the call carries the right secret.
    ///
    /// # Errors
    /// [`Refused`] when its address guessed wrong too often lately: the
    /// secret it carries was not compared.
    async fn is_member(&self, ctx: &CallContext) -> Result<bool, Refused> {
        let (Some(secret), Some(given)) = (&self.secret, ctx.header(SECRET_HEADER)) else {
            return Ok(false);
        };
        let trusted = |peer: SocketAddr| {
            let mut trusted = self.trusted.lock().unwrap_or_else(|p| p.into_inner());
            trusted.get(&peer).is_some()
        };
        if let Some(peer) = ctx.peer.filter(|p| trusted(*p)) {
            if secret.matches(given) {
                return Ok(true);
            }
            // A different secret on a trusted connection: no longer trusted,
            // and this guess counts as any other.
            self.trusted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop(&peer);
        }
        let ip = ctx.peer.map(|p| p.ip());
        let right = self.guesses.check(ip, || secret.matches(given)).await?;
        if right {
            if let Some(peer) = ctx.peer {
                self.trusted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .put(peer, ());
            }
        } else {
            warn!(peer = ?ctx.peer, "wrong cluster secret");
        }
        Ok(right)
    }
}

impl<H: Handler> Handler for Envelope<H> {
    async fn handle(&self, mut request: Request) -> Response {
        let is_member = match self.is_member(&request.ctx).await {
            Ok(is_member) => is_member,
            Err(Refused(wait)) => {
                debug!(peer = ?request.ctx.peer, "cluster secret guesses refused");
                let fault = faults::rate_limited("too many wrong cluster secrets", wait);
                return Response::new(codec::write_fault(&fault));
            }
        };
        let caller = Caller::with_membership(&request.ctx, is_member);
        if let Some(clock) = &self.vclock {
            // Only members' clocks are merged: anyone else could poison ours.
            // A member's that is out of bounds refuses its call.
            let header = is_member
                .then(|| request.ctx.header(VCLOCK_HEADER))
                .flatten();
            let remote = match header.map(VectorClock::from_header).transpose() {
                Ok(remote) => remote,
                Err(e) => {
                    warn!(error = %e, "a member sent an invalid vector clock");
                    let fault = Fault::new(
                        fault::INVALID_REQUEST,
                        format!("invalid X-Podium-Vclock header: {e}"),
                    );
                    return Response::new(codec::write_fault(&fault));
                }
            };
            clock.receive(remote.as_ref());
        }
        request.ctx.extensions.insert(caller);
        let mut response = self.inner.handle(request).await;
        if let (true, Some(clock)) = (is_member, &self.vclock) {
            if let Ok(v) = HeaderValue::from_str(&clock.snapshot().to_header()) {
                response.headers.insert(VCLOCK_HEADER, v);
            }
        }
        response
    }
}
