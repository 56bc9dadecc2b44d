//! The server side of the envelope: a layer around a handler that judges
//! each call once (member or not, whose address, which request id), keeps
//! the vector clock, and leaves a [`Caller`] for the handlers below.

use hyper::header::HeaderValue;

use super::{Caller, VCLOCK_HEADER};
use crate::election::vclock::{SharedClock, VectorClock};
use crate::rpc::{codec, fault, Fault, Handler, Request, Response};
use crate::secret::Secret;

/// Wraps a handler with the cluster's envelope.
#[derive(Debug)]
pub struct Envelope<H> {
    inner: H,
    /// This process's cluster secret; without one, no caller is a member.
    secret: Option<Secret>,
    /// This process's vector clock: ticked for every call handled, merged
    /// from members' calls, and sent back to them.
    vclock: Option<SharedClock>,
}

impl<H> Envelope<H> {
    pub fn new(inner: H, secret: Option<Secret>, vclock: Option<SharedClock>) -> Self {
        Envelope {
            inner,
            secret,
            vclock,
        }
    }
}

impl<H: Handler> Handler for Envelope<H> {
    async fn handle(&self, mut request: Request) -> Response {
        let caller = Caller::judge(&request.ctx, self.secret.as_ref());
        let is_member = caller.is_member;
        if let Some(clock) = &self.vclock {
            // Only members' clocks are merged: anyone else could poison ours.
            // A member's that is out of bounds refuses its call.
            let header = is_member
                .then(|| request.ctx.header(VCLOCK_HEADER))
                .flatten();
            let remote = match header.map(VectorClock::from_header).transpose() {
                Ok(remote) => remote,
                Err(e) => {
                    tracing::warn!(error = %e, "a member sent an invalid vector clock");
                    let fault = Fault::new(
                        fault::INVALID_REQUEST,
                        format!("invalid X-Podium-Vclock header: {e}"),
                    );
                    return Response::new(bytes::Bytes::from(codec::write_fault(&fault)));
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
