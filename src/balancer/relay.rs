//! The balancer's handler. A call in the plain spelling every client sends
//! (see [`peek_method_name`]) goes on as its bytes, unparsed: the balancer
//! reads only its method name, and the front-end, which parses every call
//! anyway, judges the rest. Any other spelling, and every entry of a
//! multicall, is parsed here and encoded again.

use std::sync::Arc;

use bytes::Bytes;

use super::frontends::Frontends;
use crate::api::{MethodSpec, PUBLIC_METHODS};
use crate::rpc::codec::{self, peek_method_name, Limits};
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
        for &MethodSpec {
            name,
            signature,
            help,
            is_write,
        } in PUBLIC_METHODS
        {
            let frontends = frontends.clone();
            let method: Arc<str> = Arc::from(name);
            parsed.add(name, signature, help, move |params, ctx| {
                let frontends = frontends.clone();
                let method = method.clone();
                async move {
                    let call = codec::write_call(&method, &params.into_inner())
                        .map_err(|e| Fault::internal(e.to_string()))?;
                    let reply = frontends.forward(Bytes::from(call), &ctx, is_write).await?;
                    codec::parse_response(&reply, Limits::default())
                        .map_err(|e| Fault::internal(format!("front-end reply is invalid: {e}")))?
                }
            });
        }
        Relay { frontends, parsed }
    }

    /// The spec of a public method, by name.
    fn public(name: &str) -> Option<&'static MethodSpec> {
        PUBLIC_METHODS.iter().find(|m| m.name == name)
    }
}

impl Handler for Relay {
    async fn handle(&self, request: Request) -> Response {
        let plain = peek_method_name(&request.body).and_then(Relay::public);
        match plain {
            Some(spec) => {
                let reply = self
                    .frontends
                    .forward(request.body, &request.ctx, spec.is_write)
                    .await
                    .unwrap_or_else(|fault| codec::write_fault(&fault).into());
                Response::new(reply)
            }
            None => self.parsed.handle(request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_front_end_method_is_forwarded_and_nothing_else() {
        let names: Vec<&str> = PUBLIC_METHODS.iter().map(|m| m.name).collect();
        assert!(names
            .iter()
            .all(|n| !n.starts_with("db.") && !n.starts_with("election.")));
        assert!(names.contains(&"get_medal_tally") && names.contains(&"scoreboard.medal_table"));
        assert!(Relay::public("db.tally").is_none());
        assert!(Relay::public("get_score").is_some());
    }
}
