//! The method table: one visible list of (name, signature, help, handler)
//! that both dispatch and introspection read, plus typed argument
//! extraction and the `system.*` methods every server has. A [`Methods`]
//! is a [`Handler`]: it decodes the call, dispatches it and encodes the
//! reply.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, Instrument as _};

use super::codec::{self, Limits, MethodCall};
use super::fault::Fault;
use super::handler::{CallContext, Handler, Request, Response};
use super::value::{Struct, Value};

/// What a handler returns.
pub type HandlerResult = Result<Value, Fault>;

type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'static>>;
type MethodHandler = Arc<dyn Fn(Params, CallContext) -> HandlerFuture + Send + Sync>;

/// Default for [`Methods::with_max_multicall`]: calls one `system.multicall` may
/// hold. A multicall costs one request but runs every entry, so without a
/// cap a 4 KB body could ask for thousands of answers.
pub const DEFAULT_MAX_MULTICALL: usize = 1000;

/// One entry of the table.
struct Method {
    /// Each signature is `[return type, param types...]`, as
    /// `system.methodSignature` reports it: one per arity.
    signatures: Vec<Vec<&'static str>>,
    help: &'static str,
    handler: MethodHandler,
}

/// The methods a server answers. Cheap to clone.
#[derive(Clone)]
pub struct Methods {
    table: Arc<BTreeMap<String, Method>>,
    /// What the decoder accepts.
    limits: Limits,
    /// Most entries in one `system.multicall`.
    max_multicall: usize,
}

impl Default for Methods {
    fn default() -> Self {
        Methods {
            table: Arc::default(),
            limits: Limits::default(),
            max_multicall: DEFAULT_MAX_MULTICALL,
        }
    }
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

    /// Sets what the decoder accepts. Default [`Limits::default`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the most entries one `system.multicall` may hold. Default
    /// [`DEFAULT_MAX_MULTICALL`].
    pub fn with_max_multicall(mut self, max: usize) -> Self {
        self.max_multicall = max;
        self
    }

    /// Adds a method with one signature, `[return type, param types...]`.
    ///
    /// # Panics
    /// As [`Methods::add_overloaded`].
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
        self.add_overloaded(name, &[signature], help, handler)
    }

    /// Adds a method with one signature per arity it accepts (a method with
    /// optional arguments has several), each `[return type, param types...]`.
    ///
    /// # Panics
    /// When the name is taken or is one of the built-in `system.*` methods:
    /// that is a programming error, found at start-up.
    pub fn add_overloaded<F, Fut>(
        &mut self,
        name: &str,
        signatures: &[&[&'static str]],
        help: &'static str,
        handler: F,
    ) -> &mut Self
    where
        F: Fn(Params, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        assert!(
            !SYSTEM_METHODS.iter().any(|(n, _, _)| *n == name),
            "{name} is built in"
        );
        let handler: MethodHandler = Arc::new(move |p, c| Box::pin(handler(p, c)));
        let table = Arc::get_mut(&mut self.table).expect("methods are added before serving");
        let old = table.insert(
            name.to_owned(),
            Method {
                signatures: signatures.iter().map(|s| s.to_vec()).collect(),
                help,
                handler,
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

    /// Decodes, runs and encodes one call. Every failure becomes a fault
    /// reply.
    pub async fn respond(&self, body: &[u8], ctx: CallContext) -> Bytes {
        // The multicall cap is checked as the calls are read, not after.
        let limits = Limits {
            max_multicall: Some(self.max_multicall),
            ..self.limits
        };
        let call = match codec::parse_call(body, limits) {
            Ok(call) => call,
            Err(e) => {
                debug!(error = %e, "refused request");
                return codec::write_fault(&Fault::from(e)).into();
            }
        };
        let span = tracing::debug_span!("rpc", method = %call.method);
        async move {
            let encoded = match self.call(call, ctx).await {
                Ok(value) => codec::write_response(&value)
                    .map(Bytes::from)
                    .map_err(|e| Fault::internal(format!("cannot encode the result: {e}"))),
                Err(fault) => Err(fault),
            };
            encoded.unwrap_or_else(|fault| {
                debug!(code = fault.code, message = %fault.message, "fault");
                codec::write_fault(&fault).into()
            })
        }
        .instrument(span)
        .await
    }

    /// Runs one call: the table, then the built-ins.
    pub async fn call(&self, call: MethodCall, ctx: CallContext) -> HandlerResult {
        if call.method == "system.multicall" {
            let params = Params::new(call.params);
            params.expect_count(1, 1)?;
            let calls: &[Value] = params.arg(0, "calls")?;
            if calls.len() > self.max_multicall {
                return Err(Fault::new(
                    super::fault::INVALID_REQUEST,
                    format!(
                        "system.multicall holds {} calls; at most {} are allowed",
                        calls.len(),
                        self.max_multicall
                    ),
                ));
            }
            let mut results = Vec::with_capacity(calls.len());
            for (i, entry) in calls.iter().enumerate() {
                let mut entry_ctx = ctx.clone();
                entry_ctx.multicall_index = Some(i);
                let result = match multicall_entry(entry) {
                    Ok(call) => self.call_one(call, entry_ctx).await,
                    Err(fault) => Err(fault),
                };
                results.push(match result {
                    Ok(v) => Value::Array(vec![v]),
                    Err(fault) => fault.to_value(),
                });
            }
            return Ok(Value::Array(results));
        }
        self.call_one(call, ctx).await
    }

    /// Any call but `system.multicall`, which is what keeps multicall from nesting.
    async fn call_one(&self, call: MethodCall, ctx: CallContext) -> HandlerResult {
        if let Some(method) = self.table.get(&call.method) {
            return (method.handler)(Params::new(call.params), ctx).await;
        }
        self.call_builtin(call)
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

impl Handler for Methods {
    async fn handle(&self, request: Request) -> Response {
        Response::new(self.respond(&request.body, request.ctx).await)
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
    async fn multicall_entries_know_their_position_and_the_count_is_capped() {
        let mut m = Methods::new().with_max_multicall(3);
        m.add(
            "index",
            &["int"],
            "The entry's position.",
            |_, ctx: CallContext| async move {
                Ok(Value::Int(ctx.multicall_index.map_or(-1, |i| i as i64)))
            },
        );
        let entry = Value::structure([("methodName", Value::from("index"))]);
        let out = m
            .call(
                call(
                    "system.multicall",
                    vec![Value::Array(vec![entry.clone(), entry.clone()])],
                ),
                CallContext::default(),
            )
            .await
            .unwrap();
        let seen: Vec<&Value> = out
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r.as_array().unwrap()[0])
            .collect();
        assert_eq!(seen, [&Value::Int(0), &Value::Int(1)]);
        let direct = m
            .call(call("index", vec![]), CallContext::default())
            .await
            .unwrap();
        assert_eq!(direct, Value::Int(-1));
        let too_many = m
            .call(
                call("system.multicall", vec![Value::Array(vec![entry; 4])]),
                CallContext::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(too_many.code, crate::rpc::fault::INVALID_REQUEST);
        assert!(too_many.message.contains("at most 3"), "{too_many}");
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
