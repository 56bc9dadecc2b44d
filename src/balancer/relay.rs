//! The balancer's handler. A call in the plain spelling every client sends
//! (see [`peek_method_name`]) goes on as its bytes, unparsed: the balancer
//! reads only its method name, and the front-end, which parses every call
//! anyway, judges the rest. Any other spelling, and every entry of a
//! multicall, is parsed here and encoded again.

use bytes::Bytes;

use super::frontends::Frontends;
use super::peek::peek_method_name;
use crate::api::Method;
use crate::rpc::codec::{self, Limits};
use crate::rpc::fault::Fault;
use crate::rpc::{Handler, Methods, Request, Response};

/// Forwards public calls to the front-ends.
#[derive(Debug)]
pub(crate) struct Relay {
    frontends: Frontends,
    /// The public methods, for calls that must be parsed: each handler
    /// encodes its call again, forwards it and decodes the reply.
    parsed: Methods,
}

impl Relay {
    pub(crate) fn new(frontends: Frontends) -> Relay {
        let mut parsed = Methods::new();
        for method in Method::ALL {
            let frontends = frontends.clone();
            let is_write = method.is_write();
            parsed.add_overloaded(
                method.name(),
                method.signatures(),
                method.help(),
                move |params, ctx| {
                    let frontends = frontends.clone();
                    async move {
                        let call = codec::write_call(method.name(), &params.into_inner())
                            .map_err(|e| Fault::internal(e.to_string()))?;
                        let reply = frontends.forward(Bytes::from(call), &ctx, is_write).await?;
                        codec::parse_response(&reply, Limits::default()).map_err(|e| {
                            Fault::internal(format!("front-end reply is invalid: {e}"))
                        })?
                    }
                },
            );
        }
        Relay { frontends, parsed }
    }
}

impl Handler for Relay {
    async fn handle(&self, request: Request) -> Response {
        let plain = peek_method_name(&request.body).and_then(Method::from_name);
        match plain {
            Some(method) => {
                let reply = self
                    .frontends
                    .forward(request.body, &request.ctx, method.is_write())
                    .await
                    .unwrap_or_else(|fault| codec::write_fault(&fault).into());
                Response::new(reply)
            }
            None => self.parsed.handle(request).await,
        }
    }
}
