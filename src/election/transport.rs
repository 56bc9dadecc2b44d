//! How a member's [`super::driver`] reaches the others: the three internal
//! calls it makes, behind the [`Transport`] trait, so that the driver can be
//! tested on an in-memory network and tokio's paused clock. [`RpcTransport`]
//! is the real one, over XML-RPC; this module also holds the calls' wire
//! form, which the driver's methods decode, so each shape is written once:
//!
//! - `election.message(from: int, kind: "election"|"coordinator"|"heartbeat",
//!   term: int)` → `{term: int, coordinator: int (-1: none known), verdict:
//!   string}`, the verdict one of [`Verdict::as_str`]'s names;
//! - `clock.read()` → `{time_us: int}`, the member's cluster clock;
//! - `clock.adjust(delta_us: int, term: int)` → `true`, or a fault when the
//!   member refuses (the term may be left out: it then counts as 0).

use std::collections::BTreeMap;
use std::future::Future;

use super::bully::{Message, Reply, Verdict};
use super::config::ConfigError;
use super::timesync::{Adjustment, Refusal};
use crate::rpc::Fault;
use crate::rpc::{Client, ClientConfig, ClientError, Params, Value};

/// The calls a member makes to another. Each call's deadline is the
/// transport's business; every call must end (with an error if need be).
pub trait Transport: Send + Sync + 'static {
    /// Why a call failed: logged, and shown in `cluster.status`.
    type Error: std::fmt::Display + Send;

    /// Sends `message` to member `to`, as this member; its reply.
    fn send(
        &self,
        to: u32,
        message: Message,
    ) -> impl Future<Output = Result<Reply, Self::Error>> + Send;

    /// Reads member `to`'s cluster clock, microseconds since the epoch.
    fn read_clock(&self, to: u32) -> impl Future<Output = Result<i64, Self::Error>> + Send;

    /// Asks member `to` to apply `adjustment`; an error when it refuses.
    fn adjust_clock(
        &self,
        to: u32,
        adjustment: Adjustment,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Why a call over [`RpcTransport`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcTransportError {
    #[error("uid {0} is not a peer")]
    UnknownPeer(u32),
    #[error(transparent)]
    Call(#[from] ClientError),
    #[error("malformed reply to {0}")]
    Malformed(&'static str),
}

/// The real transport: one XML-RPC [`Client`] per peer.
#[derive(Debug, Clone)]
pub struct RpcTransport {
    uid: u32,
    peers: BTreeMap<u32, Client>,
}

impl RpcTransport {
    /// Member `uid`'s transport to `peers` (uid → URL), every client built
    /// with `config` (deadlines, the cluster secret, the vector clock).
    ///
    /// # Errors
    /// A peer URL the client refuses, naming the peer.
    pub fn new(
        uid: u32,
        peers: &BTreeMap<u32, String>,
        config: &ClientConfig,
    ) -> Result<Self, ConfigError> {
        let mut clients = BTreeMap::new();
        for (peer, url) in peers {
            let client = Client::new(url, config.clone()).map_err(|e| ConfigError::PeerUrl {
                uid: *peer,
                reason: e.to_string(),
            })?;
            clients.insert(*peer, client);
        }
        Ok(RpcTransport {
            uid,
            peers: clients,
        })
    }

    fn client(&self, to: u32) -> Result<&Client, RpcTransportError> {
        self.peers
            .get(&to)
            .ok_or(RpcTransportError::UnknownPeer(to))
    }
}

impl Transport for RpcTransport {
    type Error = RpcTransportError;

    async fn send(&self, to: u32, message: Message) -> Result<Reply, RpcTransportError> {
        let value = self
            .client(to)?
            .call("election.message", &message_to_params(self.uid, message))
            .await?;
        reply_from_value(&value).ok_or(RpcTransportError::Malformed("election.message"))
    }

    async fn read_clock(&self, to: u32) -> Result<i64, RpcTransportError> {
        let value = self.client(to)?.call("clock.read", &[]).await?;
        value
            .as_struct()
            .and_then(|s| s.get("time_us"))
            .and_then(Value::as_i64)
            .ok_or(RpcTransportError::Malformed("clock.read"))
    }

    async fn adjust_clock(&self, to: u32, adjustment: Adjustment) -> Result<(), RpcTransportError> {
        self.client(to)?
            .call("clock.adjust", &adjustment_to_params(adjustment))
            .await?;
        Ok(())
    }
}

/// The wire name of a message's kind, and its term.
fn kind_and_term(message: Message) -> (&'static str, u64) {
    match message {
        Message::Election { term } => ("election", term),
        Message::Coordinator { term } => ("coordinator", term),
        Message::Heartbeat { term } => ("heartbeat", term),
    }
}

/// The parameters of `election.message`: `(from, kind, term)`.
pub(crate) fn message_to_params(from: u32, message: Message) -> [Value; 3] {
    let (kind, term) = kind_and_term(message);
    [
        Value::Int(from.into()),
        Value::from(kind),
        Value::Int(term as i64),
    ]
}

/// The sender of an `election.message` call (its first parameter).
///
/// # Errors
/// A wrong parameter count, or a first parameter that is not a uid.
pub(crate) fn sender_from_params(p: &Params) -> Result<u32, Fault> {
    p.expect_count(3, 3)?;
    u32::try_from(p.arg::<i64>(0, "from")?)
        .map_err(|_| Fault::invalid_params("argument 1 (from) must be a uid"))
}

/// The message of an `election.message` call (its kind and term).
///
/// # Errors
/// A negative term or an unknown kind.
pub(crate) fn message_from_params(p: &Params) -> Result<Message, Fault> {
    let term = u64::try_from(p.arg::<i64>(2, "term")?)
        .map_err(|_| Fault::invalid_params("argument 3 (term) must not be negative"))?;
    match p.arg::<&str>(1, "kind")? {
        "election" => Ok(Message::Election { term }),
        "coordinator" => Ok(Message::Coordinator { term }),
        "heartbeat" => Ok(Message::Heartbeat { term }),
        other => Err(Fault::invalid_params(format!(
            "unknown message kind {:?}",
            crate::scoreboard::clip(other)
        ))),
    }
}

/// The wire form of an `election.message` reply.
pub(crate) fn reply_to_value(reply: &Reply) -> Value {
    Value::structure([
        ("term", Value::Int(reply.term as i64)),
        (
            "coordinator",
            Value::Int(reply.coordinator.map_or(-1, i64::from)),
        ),
        ("verdict", Value::from(reply.verdict.as_str())),
    ])
}

/// The reply [`reply_to_value`] wrote, or `None` when `v` is not one.
pub(crate) fn reply_from_value(v: &Value) -> Option<Reply> {
    let s = v.as_struct()?;
    Some(Reply {
        term: u64::try_from(s.get("term")?.as_i64()?).ok()?,
        coordinator: u32::try_from(s.get("coordinator")?.as_i64()?).ok(),
        verdict: Verdict::from_name(s.get("verdict")?.as_str()?)?,
    })
}

/// The parameters of `clock.adjust`: `(delta_us, term)`.
pub(crate) fn adjustment_to_params(adjustment: Adjustment) -> [Value; 2] {
    [
        Value::Int(adjustment.delta_us),
        Value::Int(adjustment.term as i64),
    ]
}

/// The adjustment of a `clock.adjust` call; a missing term counts as 0.
///
/// # Errors
/// A wrong parameter count or type, or a negative term.
pub(crate) fn adjustment_from_params(p: &Params) -> Result<Adjustment, Fault> {
    p.expect_count(1, 2)?;
    let delta_us = p.arg(0, "delta_us")?;
    let term = u64::try_from(p.opt_arg::<i64>(1, "term")?.unwrap_or(0))
        .map_err(|_| Fault::invalid_params("argument 2 (term) must not be negative"))?;
    Ok(Adjustment { delta_us, term })
}

/// The fault a member answers a refused adjustment with.
pub(crate) fn refusal_to_fault(refusal: &Refusal) -> Fault {
    let code = match refusal {
        Refusal::StaleTerm { .. } => crate::api::faults::UNAUTHORIZED,
        Refusal::TooLarge { .. } => crate::api::faults::INVALID_VALUE,
    };
    Fault::new(code, refusal.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Property: every verdict survives the wire, with and without a known
    /// coordinator; a reply without a known verdict is malformed.
    #[test]
    fn election_replies_round_trip_on_the_wire() {
        use Verdict::*;
        for verdict in [
            Answer,
            NoAnswer,
            Accept,
            Refuse,
            Coordinating,
            NotCoordinating,
        ] {
            for coordinator in [None, Some(3)] {
                let reply = Reply {
                    term: 7,
                    coordinator,
                    verdict,
                };
                assert_eq!(reply_from_value(&reply_to_value(&reply)), Some(reply));
            }
        }
        let unknown = Value::structure([
            ("term", Value::Int(1)),
            ("coordinator", Value::Int(-1)),
            ("verdict", Value::from("ok")),
        ]);
        assert_eq!(reply_from_value(&unknown), None);
    }

    /// Property: messages and adjustments read back as they were written;
    /// a missing adjustment term is 0, a negative one is refused as a bad
    /// parameter, as is an unknown message kind.
    #[test]
    fn calls_round_trip_on_the_wire() {
        for message in [
            Message::Election { term: 4 },
            Message::Coordinator { term: 5 },
            Message::Heartbeat { term: 6 },
        ] {
            let p = Params::new(message_to_params(2, message).to_vec());
            assert_eq!(sender_from_params(&p).ok(), Some(2));
            assert_eq!(message_from_params(&p).ok(), Some(message));
        }
        let odd = Params::new(vec![Value::Int(2), "ok".into(), Value::Int(1)]);
        assert_eq!(
            message_from_params(&odd).map_err(|f| f.code),
            Err(crate::rpc::fault::INVALID_PARAMS)
        );

        let adjustment = Adjustment {
            delta_us: -1_500,
            term: 9,
        };
        let p = Params::new(adjustment_to_params(adjustment).to_vec());
        assert_eq!(adjustment_from_params(&p).ok(), Some(adjustment));
        let old = Params::new(vec![Value::Int(20)]);
        assert_eq!(
            adjustment_from_params(&old).ok(),
            Some(Adjustment {
                delta_us: 20,
                term: 0
            })
        );
        let negative = Params::new(vec![Value::Int(20), Value::Int(-1)]);
        assert_eq!(
            adjustment_from_params(&negative).map_err(|f| f.code),
            Err(crate::rpc::fault::INVALID_PARAMS)
        );
    }
}
