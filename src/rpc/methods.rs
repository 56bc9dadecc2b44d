//! The method table: one visible list of (name, signature, help, handler)
//! that both dispatch and introspection read, plus typed argument
//! extraction and the `system.*` methods every server has.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use super::codec::MethodCall;
use super::fault::Fault;
use super::value::{Struct, Value};

/// What a handler returns.
pub type HandlerResult = Result<Value, Fault>;

/// A call's result: a value to encode, or a reply already encoded
/// elsewhere (the balancer relays a front-end's reply as it came).
#[derive(Debug, Clone)]
pub enum Reply {
    Value(Value),
    /// A complete `methodResponse` body, result or fault.
    Encoded(Bytes),
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Reply, Fault>> + Send + 'static>>;
type Handler = Arc<dyn Fn(Params, CallContext) -> HandlerFuture + Send + Sync>;
type RelayFuture = Pin<Box<dyn Future<Output = Result<Bytes, Fault>> + Send + 'static>>;
/// A relay method's handler: the call encoded in, the reply encoded out.
pub type RelayHandler = Arc<dyn Fn(Bytes, CallContext) -> RelayFuture + Send + Sync>;

/// Where a call came from, for handlers that care (rate limits, the cluster
/// secret).
#[derive(Clone, Default)]
pub struct CallContext {
    /// The TCP peer, when the call came over the network.
    pub peer: Option<SocketAddr>,
    /// The `X-Podium-Secret` header, which internal methods check.
    pub secret: Option<Arc<str>>,
    /// The `X-Podium-Request-Id` header: makes a retried write idempotent.
    pub request_id: Option<Arc<str>>,
    /// The `X-Forwarded-For` header (first address), set by the balancer.
    /// Only to be trusted when `secret` is valid.
    pub forwarded_for: Option<std::net::IpAddr>,
}

impl fmt::Debug for CallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallContext")
            .field("peer", &self.peer)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("request_id", &self.request_id)
            .field("forwarded_for", &self.forwarded_for)
            .finish()
    }
}

/// One entry of the table.
struct Method {
    /// Each signature is `[return type, param types...]`, as
    /// `system.methodSignature` reports it.
    signatures: Vec<Vec<&'static str>>,
    help: &'static str,
    handler: Handler,
    /// For relay methods: the handler that takes the call still encoded.
    relay: Option<RelayHandler>,
}

/// The methods a server answers. Cheap to clone.
#[derive(Clone, Default)]
pub struct Methods {
    table: Arc<BTreeMap<String, Method>>,
    /// Whether any is a relay: servers without one never peek at bodies.
    has_relays: bool,
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.table.keys()).finish()
    }
}

const SYSTEM_METHODS: [(&str, &[&str], &str); 4] = [
    (
        "system.listMethods",
        &["array"],
        "Lists the methods this server answers.",
    ),
    (
        "system.methodHelp",
        &["string", "string"],
        "Returns the help text of the named method.",
    ),
    (
        "system.methodSignature",
        &["array", "string"],
        "Returns the signatures of the named method: arrays of [return type, param types...].",
    ),
    (
        "system.multicall",
        &["array", "array"],
        "Runs several calls in order: takes [{methodName, params}...], returns [[result] or {faultCode, faultString}...].",
    ),
];

impl Methods {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a method. `signature` is `[return type, param types...]`.
    ///
    /// # Panics
    /// When the name is taken or is one of the built-in `system.*` methods:
    /// that is a programming error, found at start-up.
    pub fn add<F, Fut>(
        &mut self,
        name: &str,
        signature: &[&'static str],
        help: &'static str,
        handler: F,
    ) -> &mut Self
    where
        F: Fn(Params, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.insert(
            name,
            signature,
            help,
            Arc::new(move |p, c| {
                let reply = handler(p, c);
                Box::pin(async move { reply.await.map(Reply::Value) })
            }),
            None,
        )
    }

    /// Adds a method that relays calls elsewhere: its handler takes the call
    /// encoded and returns the complete `methodResponse` (result or fault),
    /// sent on as it is. A call in the plainest spelling (see
    /// [`codec::peek_method_name`](super::codec::peek_method_name)) reaches
    /// it as the client sent it, without being parsed here; a call spelled
    /// otherwise, or inside a multicall, is parsed and encoded again.
    ///
    /// # Panics
    /// As [`Methods::add`].
    pub fn add_relay<F, Fut>(
        &mut self,
        name: &str,
        signature: &[&'static str],
        help: &'static str,
        relay: F,
    ) -> &mut Self
    where
        F: Fn(Bytes, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, Fault>> + Send + 'static,
    {
        let relay: RelayHandler = Arc::new(move |body, ctx| Box::pin(relay(body, ctx)));
        let method = name.to_owned();
        let encoded = relay.clone();
        self.insert(
            name,
            signature,
            help,
            Arc::new(move |p: Params, c| {
                let call = super::codec::write_call(&method, &p.into_inner());
                let encoded = encoded.clone();
                Box::pin(async move {
                    let body = call.map_err(|e| Fault::internal(e.to_string()))?;
                    encoded(Bytes::from(body), c).await.map(Reply::Encoded)
                })
            }),
            Some(relay),
        )
    }

    /// The relay for `body`, when it is a call to a relay method in the
    /// plainest spelling: the server then hands the body over unparsed.
    pub fn relay_for(&self, body: &[u8]) -> Option<RelayHandler> {
        if !self.has_relays {
            return None;
        }
        let name = super::codec::peek_method_name(body)?;
        self.table.get(name)?.relay.clone()
    }

    fn insert(
        &mut self,
        name: &str,
        signature: &[&'static str],
        help: &'static str,
        handler: Handler,
        relay: Option<RelayHandler>,
    ) -> &mut Self {
        assert!(
            !SYSTEM_METHODS.iter().any(|(n, _, _)| *n == name),
            "{name} is built in"
        );
        self.has_relays |= relay.is_some();
        let table = Arc::get_mut(&mut self.table).expect("methods are added before serving");
        let old = table.insert(
            name.to_owned(),
            Method {
                signatures: vec![signature.to_vec()],
                help,
                handler,
                relay,
            },
        );
        assert!(old.is_none(), "method {name} added twice");
        self
    }

    /// Every method name, sorted, built-ins included.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.table.keys().cloned().collect();
        names.extend(SYSTEM_METHODS.iter().map(|(n, _, _)| (*n).to_owned()));
        names.sort();
        names
    }

    /// Runs one call and returns its reply, encoded or not: what the
    /// server sends.
    pub async fn respond(&self, call: MethodCall, ctx: CallContext) -> Result<Reply, Fault> {
        if call.method == "system.multicall" {
            return self.call(call, ctx).await.map(Reply::Value);
        }
        self.call_one(call, ctx).await
    }

    /// Runs one call: the table, then the built-ins.
    pub async fn call(&self, call: MethodCall, ctx: CallContext) -> HandlerResult {
        if call.method == "system.multicall" {
            let params = Params::new(call.params);
            params.expect_count(1, 1)?;
            let calls: &[Value] = params.arg(0, "calls")?;
            let mut results = Vec::with_capacity(calls.len());
            for (i, entry) in calls.iter().enumerate() {
                // One request id for the whole multicall would make every
                // write after the first look like a retry of it.
                let mut entry_ctx = ctx.clone();
                if let Some(id) = &ctx.request_id {
                    entry_ctx.request_id = Some(Arc::from(format!("{id}#{i}")));
                }
                let result = match multicall_entry(entry) {
                    Ok(call) => self.call_one(call, entry_ctx).await.and_then(into_value),
                    Err(fault) => Err(fault),
                };
                results.push(match result {
                    Ok(v) => Value::Array(vec![v]),
                    Err(fault) => fault.to_value(),
                });
            }
            return Ok(Value::Array(results));
        }
        self.call_one(call, ctx).await.and_then(into_value)
    }

    /// Any call but `system.multicall`, which is what keeps multicall from nesting.
    async fn call_one(&self, call: MethodCall, ctx: CallContext) -> Result<Reply, Fault> {
        if let Some(method) = self.table.get(&call.method) {
            return (method.handler)(Params::new(call.params), ctx).await;
        }
        self.call_builtin(call).map(Reply::Value)
    }

    fn call_builtin(&self, call: MethodCall) -> HandlerResult {
        let params = Params::new(call.params);
        match call.method.as_str() {
            "system.listMethods" => {
                params.expect_count(0, 0)?;
                Ok(Value::Array(
                    self.names().into_iter().map(Value::String).collect(),
                ))
            }
            "system.methodHelp" => {
                params.expect_count(1, 1)?;
                let name: &str = params.arg(0, "method")?;
                let (_, help) = self.describe(name)?;
                Ok(Value::from(help))
            }
            "system.methodSignature" => {
                params.expect_count(1, 1)?;
                let name: &str = params.arg(0, "method")?;
                let (signatures, _) = self.describe(name)?;
                Ok(Value::Array(
                    signatures
                        .into_iter()
                        .map(|sig| Value::Array(sig.into_iter().map(Value::from).collect()))
                        .collect(),
                ))
            }
            "system.multicall" => Err(Fault::new(
                super::fault::INVALID_REQUEST,
                "system.multicall cannot be nested",
            )),
            other => Err(Fault::method_not_found(other)),
        }
    }

    fn describe(&self, name: &str) -> Result<(Vec<Vec<&'static str>>, &'static str), Fault> {
        if let Some(m) = self.table.get(name) {
            return Ok((m.signatures.clone(), m.help));
        }
        SYSTEM_METHODS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, sig, help)| (vec![sig.to_vec()], *help))
            .ok_or_else(|| Fault::method_not_found(name))
    }
}

/// The value of a reply, decoding an encoded one (multicall needs values).
fn into_value(reply: Reply) -> HandlerResult {
    match reply {
        Reply::Value(v) => Ok(v),
        Reply::Encoded(bytes) => {
            super::codec::parse_response(&bytes, super::codec::Limits::default())
                .map_err(|e| Fault::internal(format!("relayed reply is invalid: {e}")))?
        }
    }
}

/// Reads one `{methodName, params}` struct of a multicall.
fn multicall_entry(entry: &Value) -> Result<MethodCall, Fault> {
    let members = entry
        .as_struct()
        .ok_or_else(|| Fault::invalid_params("each multicall entry must be a struct"))?;
    let method = members
        .get("methodName")
        .and_then(Value::as_str)
        .ok_or_else(|| Fault::invalid_params("multicall entry needs a string methodName"))?;
    let params = match members.get("params") {
        Some(Value::Array(items)) => items.clone(),
        None => Vec::new(),
        Some(_) => return Err(Fault::invalid_params("multicall params must be an array")),
    };
    Ok(MethodCall {
        method: method.to_owned(),
        params,
    })
}

/// A call's arguments, with typed access that answers `-32602` naming the
/// argument at fault.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: Vec<Value>,
}

impl Params {
    pub fn new(values: Vec<Value>) -> Self {
        Params { values }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn into_inner(self) -> Vec<Value> {
        self.values
    }

    /// # Errors
    /// Fewer than `min` or more than `max` arguments.
    pub fn expect_count(&self, min: usize, max: usize) -> Result<(), Fault> {
        let n = self.values.len();
        if (min..=max).contains(&n) {
            return Ok(());
        }
        let wanted = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        Err(Fault::invalid_params(format!(
            "expected {wanted} arguments, got {n}"
        )))
    }

    /// The argument at `index` (0-based) as `T`.
    ///
    /// # Errors
    /// A missing argument or one of the wrong type, as `-32602` naming it.
    pub fn arg<'a, T: FromValue<'a>>(&'a self, index: usize, name: &str) -> Result<T, Fault> {
        let value = self.values.get(index).ok_or_else(|| {
            Fault::invalid_params(format!("argument {} ({name}) is missing", index + 1))
        })?;
        T::from_value(value).ok_or_else(|| {
            Fault::invalid_params(format!(
                "argument {} ({name}) must be {}, got {}",
                index + 1,
                T::TYPE_NAME,
                value.type_name()
            ))
        })
    }

    /// Like [`Params::arg`], but `None` when the argument is absent.
    ///
    /// # Errors
    /// An argument of the wrong type.
    pub fn opt_arg<'a, T: FromValue<'a>>(
        &'a self,
        index: usize,
        name: &str,
    ) -> Result<Option<T>, Fault> {
        if index >= self.values.len() {
            return Ok(None);
        }
        self.arg(index, name).map(Some)
    }
}

/// A Rust type an argument can be read as.
pub trait FromValue<'a>: Sized {
    /// The XML-RPC type name used in fault messages.
    const TYPE_NAME: &'static str;
    fn from_value(value: &'a Value) -> Option<Self>;
}

impl<'a> FromValue<'a> for &'a str {
    const TYPE_NAME: &'static str = "string";
    fn from_value(value: &'a Value) -> Option<Self> {
        value.as_str()
    }
}
impl<'a> FromValue<'a> for i64 {
    const TYPE_NAME: &'static str = "int";
    fn from_value(value: &'a Value) -> Option<Self> {
        value.as_i64()
    }
}
impl<'a> FromValue<'a> for bool {
    const TYPE_NAME: &'static str = "boolean";
    fn from_value(value: &'a Value) -> Option<Self> {
        match value {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}
impl<'a> FromValue<'a> for f64 {
    const TYPE_NAME: &'static str = "double";
    fn from_value(value: &'a Value) -> Option<Self> {
        match value {
            Value::Double(d) => Some(*d),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}
impl<'a> FromValue<'a> for &'a [Value] {
    const TYPE_NAME: &'static str = "array";
    fn from_value(value: &'a Value) -> Option<Self> {
        value.as_array()
    }
}
impl<'a> FromValue<'a> for &'a Struct {
    const TYPE_NAME: &'static str = "struct";
    fn from_value(value: &'a Value) -> Option<Self> {
        value.as_struct()
    }
}
impl<'a> FromValue<'a> for &'a Value {
    const TYPE_NAME: &'static str = "any value";
    fn from_value(value: &'a Value) -> Option<Self> {
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::fault::{INVALID_PARAMS, METHOD_NOT_FOUND};

    fn methods() -> Methods {
        let mut m = Methods::new();
        m.add(
            "add",
            &["int", "int", "int"],
            "Adds two ints.",
            |p, _| async move {
                p.expect_count(2, 2)?;
                let a: i64 = p.arg(0, "a")?;
                let b: i64 = p.arg(1, "b")?;
                Ok(Value::Int(a + b))
            },
        );
        m
    }

    fn call(name: &str, params: Vec<Value>) -> MethodCall {
        MethodCall {
            method: name.into(),
            params,
        }
    }

    #[tokio::test]
    async fn dispatch_and_typed_arguments() {
        let m = methods();
        let ok = m.call(
            call("add", vec![1.into(), 2.into()]),
            CallContext::default(),
        );
        assert_eq!(ok.await, Ok(Value::Int(3)));
        let bad = m
            .call(
                call("add", vec![1.into(), "x".into()]),
                CallContext::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(bad.code, INVALID_PARAMS);
        assert!(
            bad.message
                .contains("argument 2 (b) must be int, got string"),
            "{bad}"
        );
        let missing = m.call(call("nope", vec![]), CallContext::default()).await;
        assert_eq!(missing.unwrap_err().code, METHOD_NOT_FOUND);
    }

    #[tokio::test]
    async fn relays_take_calls_encoded_and_their_replies_decode_inside_multicall() {
        let mut m = Methods::new();
        m.add_relay(
            "relay",
            &["int"],
            "A relayed reply.",
            |body, _| async move {
                // Answers with the number of params of the call it was given.
                let call = crate::rpc::codec::parse_call(&body, Default::default()).unwrap();
                let n = Value::Int(call.params.len() as i64);
                Ok(Bytes::from(crate::rpc::codec::write_response(&n).unwrap()))
            },
        );
        m.add("plain", &["int"], "Not a relay.", |_, _| async {
            Ok(Value::Int(0))
        });
        let plain_call = b"<?xml version='1.0'?>\n<methodCall>\n<methodName>relay</methodName><params/></methodCall>";
        assert!(m.relay_for(plain_call).is_some());
        assert!(m
            .relay_for(b"<methodCall><methodName>plain</methodName></methodCall>")
            .is_none());
        assert!(m
            .relay_for(b"<methodCall><methodName>nope</methodName></methodCall>")
            .is_none());
        let direct = m
            .respond(call("relay", vec![Value::Int(1)]), CallContext::default())
            .await;
        assert!(matches!(direct, Ok(Reply::Encoded(_))));
        assert_eq!(into_value(direct.unwrap()).unwrap(), Value::Int(1));
        let entry = Value::structure([
            ("methodName", Value::from("relay")),
            ("params", Value::Array(vec![Value::Int(1), Value::Int(2)])),
        ]);
        let out = m
            .call(
                call("system.multicall", vec![Value::Array(vec![entry])]),
                CallContext::default(),
            )
            .await
            .unwrap();
        assert_eq!(out, Value::Array(vec![Value::Array(vec![Value::Int(2)])]));
    }

    #[tokio::test]
    async fn multicall_entries_get_distinct_request_ids() {
        let mut m = Methods::new();
        m.add(
            "rid",
            &["string"],
            "The request id seen.",
            |_, ctx: CallContext| async move {
                Ok(Value::from(ctx.request_id.as_deref().unwrap_or("")))
            },
        );
        let entry = Value::structure([("methodName", Value::from("rid"))]);
        let ctx = CallContext {
            request_id: Some(Arc::from("abc")),
            ..CallContext::default()
        };
        let out = m
            .call(
                call(
                    "system.multicall",
                    vec![Value::Array(vec![entry.clone(), entry])],
                ),
                ctx,
            )
            .await
            .unwrap();
        let ids: Vec<&Value> = out
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r.as_array().unwrap()[0])
            .collect();
        assert_eq!(ids, [&Value::from("abc#0"), &Value::from("abc#1")]);
    }

    #[tokio::test]
    async fn introspection_and_multicall() {
        let m = methods();
        let ctx = CallContext::default;
        let names = m
            .call(call("system.listMethods", vec![]), ctx())
            .await
            .unwrap();
        assert!(names.as_array().unwrap().contains(&Value::from("add")));
        let sig = m
            .call(call("system.methodSignature", vec!["add".into()]), ctx())
            .await
            .unwrap();
        assert_eq!(
            sig,
            Value::Array(vec![Value::Array(vec![
                "int".into(),
                "int".into(),
                "int".into()
            ])])
        );
        let entry = |name: &str, params: Vec<Value>| {
            Value::structure([
                ("methodName", Value::from(name)),
                ("params", Value::Array(params)),
            ])
        };
        let calls = Value::Array(vec![
            entry("add", vec![1.into(), 1.into()]),
            entry("system.multicall", vec![Value::Array(vec![])]),
            entry("add", vec![]),
            Value::Int(3),
        ]);
        let out = m
            .call(call("system.multicall", vec![calls]), ctx())
            .await
            .unwrap();
        let out = out.as_array().unwrap();
        assert_eq!(out[0], Value::Array(vec![Value::Int(2)]));
        for (i, code) in [(1, -32600), (2, INVALID_PARAMS), (3, INVALID_PARAMS)] {
            assert_eq!(Fault::from_value(&out[i]).unwrap().code, code, "entry {i}");
        }
    }
}
