//! The cluster's envelope: what Podium adds to plain XML-RPC between its own
//! processes, read and written here and nowhere else.
//!
//! | header | carries | believed |
//! |---|---|---|
//! | `X-Podium-Secret` | the cluster secret | compared in constant time |
//! | `X-Podium-Vclock` | the sender's vector clock, `1,0,3` | only from members; out of bounds refuses the call |
//! | `X-Podium-Request-Id` | a write's id, so a retry applies once | from anyone |
//! | `X-Forwarded-For` | the client's address, set by the balancer | only from members |
//! | `X-Podium-Via` | the balancer's address as the client reached it | only from members |
//!
//! A *member* is a caller that holds the cluster secret. The server side is
//! [`Envelope`], a layer around any [`Handler`](crate::rpc::Handler) that
//! reads these headers once and leaves a [`Caller`] in the call's context;
//! handlers ask [`caller`] who called. The client side is
//! [`member_client_config`], used for every call from one member to another.

mod envelope;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderValue};

use crate::api::faults;
use crate::election::vclock::{SharedClock, VectorClock};
use crate::rpc::Fault;
use crate::rpc::{CallContext, CallHook, ClientConfig, Methods, Params, Value};
use crate::secret::Secret;

pub use envelope::Envelope;

/// Header that carries the cluster secret on internal calls.
pub const SECRET_HEADER: &str = "x-podium-secret";
/// Header that carries the sender's vector clock on calls between members
/// and on their replies (`1,0,3`).
pub const VCLOCK_HEADER: &str = "x-podium-vclock";
/// Header that carries a write's request id.
pub const REQUEST_ID_HEADER: &str = "x-podium-request-id";
/// Header in which the balancer passes on the client's address.
pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";
/// Header in which the balancer says where the client reached it: an
/// endpoint of the cluster, which no push callback may name.
pub const VIA_HEADER: &str = "x-podium-via";
/// Longest request id accepted; longer ones are ignored (or refused, when
/// given as an argument).
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Who made a call, as the envelope judged it.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The call carried the cluster secret.
    pub is_member: bool,
    /// The client's address: the one a member passed on, else the TCP peer.
    pub client_ip: Option<IpAddr>,
    /// The request id the call carried in its header, if any.
    pub request_id: Option<Arc<str>>,
    /// The balancer the call came through, as its client reached it.
    pub via: Option<SocketAddr>,
}

impl Caller {
    /// Judges a call from its headers and peer. `secret` is this process's
    /// cluster secret (a process without one has no members).
    pub fn judge(ctx: &CallContext, secret: Option<&Secret>) -> Caller {
        let is_member = match (secret, ctx.header(SECRET_HEADER)) {
            (Some(secret), Some(given)) => secret.matches(given),
            _ => false,
        };
        Caller::with_membership(ctx, is_member)
    }

    /// Judges a call whose membership is already known (the [`Envelope`]
    /// checks the secret itself, behind the guess limiter).
    pub fn with_membership(ctx: &CallContext, is_member: bool) -> Caller {
        let forwarded = ctx
            .header(FORWARDED_FOR_HEADER)
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        let client_ip = match forwarded {
            Some(ip) if is_member => Some(ip),
            _ => ctx.peer.map(|p| p.ip()),
        };
        let request_id = ctx
            .header(REQUEST_ID_HEADER)
            .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID_BYTES)
            .map(Arc::from);
        let via = is_member
            .then(|| ctx.header(VIA_HEADER).and_then(|v| v.parse().ok()))
            .flatten();
        Caller {
            is_member,
            client_ip,
            request_id,
            via,
        }
    }

    /// Admits a call to an internal method.
    ///
    /// # Errors
    /// The `UNAUTHORIZED` fault for a caller without the cluster secret.
    pub fn require_member(&self) -> Result<(), Fault> {
        if self.is_member {
            Ok(())
        } else {
            Err(Fault::new(
                faults::UNAUTHORIZED,
                "internal method: the cluster secret is required",
            ))
        }
    }
}

/// Who made the call: what [`Envelope`] left in the context, or, for a call
/// that came another way (a test, a multicall built in code), a judgement
/// without a secret.
pub fn caller(ctx: &CallContext) -> Caller {
    ctx.extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(|| Caller::judge(ctx, None))
}

/// A fresh request id, `PREFIX-` and 32 hex digits.
pub fn new_request_id(prefix: &str) -> String {
    format!("{prefix}-{:032x}", rand::random::<u128>())
}

/// The request id of a write: the one given as an argument, else the
/// header's (with `#N` for the Nth entry of a multicall, so entries differ),
/// else a fresh one with `prefix`.
pub fn request_id(ctx: &CallContext, given: Option<&str>, prefix: &str) -> String {
    if let Some(given) = given.filter(|g| !g.is_empty()) {
        return given.to_owned();
    }
    match (caller(ctx).request_id, ctx.multicall_index) {
        (Some(id), Some(i)) => format!("{id}#{i}"),
        (Some(id), None) => id.to_string(),
        (None, _) => new_request_id(prefix),
    }
}

/// Adds an internal method: `f` runs only for members (callers holding the
/// cluster secret); anyone else gets `UNAUTHORIZED`. `f` gets the call's
/// context too (its peer, where it reached us).
pub fn add_internal<S, F, Fut>(
    methods: &mut Methods,
    state: &Arc<S>,
    name: &str,
    signature: &[&'static str],
    help: &'static str,
    f: F,
) where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Params, CallContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Value, Fault>> + Send + 'static,
{
    let state = state.clone();
    let f = Arc::new(f);
    methods.add(name, signature, help, move |params, ctx| {
        let state = state.clone();
        let f = f.clone();
        async move {
            caller(&ctx).require_member()?;
            f(state, params, ctx).await
        }
    });
}

/// The client settings of a call from one member to another: the secret in
/// its header, this process's vector clock ticked on every call and merged
/// from every reply, no gzip (members share a fast network, and compressing
/// costs more CPU than it saves), and `timeout` for the whole call.
pub fn member_client_config(
    secret: &Secret,
    vclock: Option<SharedClock>,
    timeout: Duration,
) -> ClientConfig {
    let mut headers = HeaderMap::new();
    if let Ok(mut value) = HeaderValue::from_str(&secret.expose()) {
        value.set_sensitive(true);
        headers.insert(SECRET_HEADER, value);
    }
    ClientConfig {
        timeout,
        headers,
        hook: vclock.map(|clock| Arc::new(VclockHook(clock)) as Arc<dyn CallHook>),
        accept_gzip: false,
        ..ClientConfig::default()
    }
}

/// Ticks and sends the vector clock on every call, merges the reply's.
#[derive(Debug)]
struct VclockHook(SharedClock);

impl CallHook for VclockHook {
    fn on_send(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.0.send().to_header()) {
            headers.insert(VCLOCK_HEADER, v);
        }
    }

    fn on_reply(&self, headers: &HeaderMap) {
        // A reply's clock out of bounds is dropped, never merged: the call
        // it answers has its result already.
        let remote = headers
            .get(VCLOCK_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(VectorClock::from_header);
        match remote {
            Some(Ok(remote)) => self.0.merge(&remote),
            Some(Err(e)) => tracing::debug!(error = %e, "reply with an invalid vector clock"),
            None => {}
        }
    }
}

/// The headers the balancer adds to a call it forwards: the client's
/// address, the request id (kept from the client, or made here for a write,
/// so a retry on another front-end applies once), and where the client
/// reached the balancer.
pub fn forward_headers(
    client: Option<IpAddr>,
    request_id: Option<&str>,
    via: Option<SocketAddr>,
) -> Vec<(&'static str, HeaderValue)> {
    let mut headers = Vec::with_capacity(3);
    if let Some(v) = via.and_then(|a| HeaderValue::from_str(&a.to_string()).ok()) {
        headers.push((VIA_HEADER, v));
    }
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.push((REQUEST_ID_HEADER, id));
    }
    if let Some(v) = client.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()) {
        headers.push((FORWARDED_FOR_HEADER, v));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(headers: &[(&'static str, &str)]) -> CallContext {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        CallContext::new(Some("10.0.0.9:5000".parse().unwrap()), map)
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_members() {
        let secret = Secret::new("s3cret").unwrap();
        let forwarded = [(FORWARDED_FOR_HEADER, "192.0.2.7, 10.0.0.1")];
        let stranger = Caller::judge(&ctx(&forwarded), Some(&secret));
        assert!(!stranger.is_member);
        assert_eq!(stranger.client_ip, Some("10.0.0.9".parse().unwrap()));
        assert!(stranger.require_member().is_err());
        let member = Caller::judge(
            &ctx(&[forwarded[0], (SECRET_HEADER, "s3cret")]),
            Some(&secret),
        );
        assert!(member.is_member && member.require_member().is_ok());
        assert_eq!(member.client_ip, Some("192.0.2.7".parse().unwrap()));
        let wrong = Caller::judge(
            &ctx(&[forwarded[0], (SECRET_HEADER, "guess")]),
            Some(&secret),
        );
        assert!(!wrong.is_member);
        // Without a secret of its own, a process has no members at all.
        let unsecured = Caller::judge(&ctx(&[(SECRET_HEADER, "s3cret")]), None);
        assert!(!unsecured.is_member);
    }

    #[test]
    fn request_ids_come_from_the_argument_the_header_or_are_made() {
        let with_header = ctx(&[(REQUEST_ID_HEADER, "abc")]);
        assert_eq!(request_id(&with_header, Some("mine"), "fe"), "mine");
        assert_eq!(request_id(&with_header, None, "fe"), "abc");
        // Multicall entries get distinct ids, or every write after the first
        // would look like a retry of it.
        let mut entry = with_header.clone();
        entry.multicall_index = Some(0);
        assert_eq!(request_id(&entry, None, "fe"), "abc#0");
        entry.multicall_index = Some(1);
        assert_eq!(request_id(&entry, Some(""), "fe"), "abc#1");
        let made = request_id(&ctx(&[]), None, "fe");
        assert!(made.starts_with("fe-") && made.len() == 35, "{made}");
        let too_long = "x".repeat(MAX_REQUEST_ID_BYTES + 1);
        assert!(request_id(&ctx(&[(REQUEST_ID_HEADER, &too_long)]), None, "fe").starts_with("fe-"));
    }

    #[test]
    fn member_clients_send_the_secret_without_showing_it() {
        let config = member_client_config(
            &Secret::new("hunter2").unwrap(),
            None,
            Duration::from_secs(1),
        );
        assert_eq!(config.headers[SECRET_HEADER], "hunter2");
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!config.accept_gzip);
    }
}
