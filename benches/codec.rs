//! Codec throughput: Podium's XML-RPC reader and writer next to the `dxr` 0.7
//! and `xmlrpc` 0.15 crates, on the same documents and the same values.
//!
//! Each group is one input and one operation (`parse_call_typical`,
//! `write_response_large`, ...) with one function per library, so criterion
//! reports `podium`, `dxr` and `xmlrpc` side by side. Run with
//! `cargo bench --bench codec`; `cargo bench --bench codec -- --test` runs
//! every case once.
//!
//! * Parsing: every library reads the bytes Podium's writer produced for the
//!   value (compact, no whitespace between elements). `dxr` wants `&str`, so
//!   its UTF-8 check is timed too, as Podium's is.
//! * Writing: each library's own value for the same data is built once,
//!   outside the timing loop; only serialization is timed.
//! * `xmlrpc` is a client library: it has no public parser for a
//!   `methodCall`, so it is absent from the `parse_call_*` groups. Its
//!   response parser is reached through the public `Request::call` with a
//!   `Transport` that hands back canned bytes (and sends nothing). It has no
//!   response writer either; `write_response_*` uses its public
//!   `Value::write_as_xml` between the same fixed envelope Podium writes.
//!
//! Before anything is timed, every result is checked: what each library
//! parsed is converted back to a Podium value and compared with the original,
//! and what each library wrote is read back with Podium's parser and compared.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::hint::black_box;
use std::io::Write as _;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use dxr::{TryFromValue as _, TryToValue as _};
use podium::rpc::codec::{parse_call, parse_response, write_call, write_response, Limits};
use podium::rpc::Value;

/// `get_medal_tally("Gaul", 42)`.
const TYPICAL_METHOD: &str = "get_medal_tally";

fn typical_params() -> Vec<Value> {
    vec![Value::from("Gaul"), Value::Int(42)]
}

/// A reply of six members, one of them the multi-line text reply. (Without
/// the trailing newline Podium's text reply has: `dxr` drops trailing
/// whitespace from string values, so it would not read the same value back.)
fn typical_reply() -> Value {
    Value::structure([
        ("team", Value::from("Gaul")),
        ("gold", Value::Int(3)),
        ("silver", Value::Int(1)),
        ("bronze", Value::Int(2)),
        ("points", Value::Double(12.5)),
        (
            "summary",
            Value::from("Team Gaul has:\n3 gold medals\n1 silver medal\n2 bronze medals"),
        ),
    ])
}

const LARGE_METHOD: &str = "publish_results";

/// 200 structs of eight members each: ints, doubles, booleans, strings (some
/// needing escapes), two nested arrays and a nested struct.
fn large_value() -> Value {
    let teams = ["Gaul", "Rome", "Egypt", "Britannia", "Hispania", "Helvetia"];
    let rows = (0..200i32)
        .map(|i| {
            let team = teams[i as usize % teams.len()];
            let note = if i % 10 == 0 {
                format!("tie-break <{i}> & photo finish")
            } else {
                format!("heat {} of event {}", i % 4 + 1, i / 4)
            };
            Value::structure([
                ("id", Value::Int(i.into())),
                ("team", Value::from(team)),
                (
                    "event",
                    Value::from(format!("Menhir Throw, round {}", i % 7)),
                ),
                ("score", Value::Double(f64::from(i) * 0.25 + 100.5)),
                ("final", Value::Bool(i % 3 == 0)),
                (
                    "medals",
                    Value::Array(vec![
                        Value::Int((i % 5).into()),
                        Value::Int((i % 3).into()),
                        Value::Int((i % 2).into()),
                    ]),
                ),
                (
                    "athletes",
                    Value::Array(vec![
                        Value::from(format!("{team} athlete {}", i * 2)),
                        Value::from(format!("{team} athlete {}", i * 2 + 1)),
                    ]),
                ),
                (
                    "venue",
                    Value::structure([
                        ("city", Value::from("Lutetia")),
                        ("capacity", Value::Int((10_000 + i * 37).into())),
                        ("note", Value::from(note)),
                    ]),
                ),
            ])
        })
        .collect();
    Value::Array(rows)
}

// ---- conversions to and from the other crates' values (never timed) ----

fn to_dxr(v: &Value) -> dxr::Value {
    match v {
        Value::Int(i) => dxr::Value::i4(i32::try_from(*i).expect("bench ints fit in i32")),
        Value::Bool(b) => dxr::Value::boolean(*b),
        Value::String(s) => dxr::Value::string(s.clone()),
        Value::Double(d) => dxr::Value::double(*d),
        Value::Base64(b) => dxr::Value::base64(b.clone()),
        Value::Array(items) => items
            .iter()
            .map(to_dxr)
            .collect::<Vec<_>>()
            .try_to_value()
            .expect("dxr array"),
        Value::Struct(members) => members
            .iter()
            .map(|(k, v)| (k.clone(), to_dxr(v)))
            .collect::<HashMap<_, _>>()
            .try_to_value()
            .expect("dxr struct"),
        other => panic!("the bench inputs hold no {}", other.type_name()),
    }
}

fn from_dxr(v: &dxr::Value) -> Value {
    if let Ok(i) = i32::try_from_value(v) {
        Value::Int(i.into())
    } else if let Ok(b) = bool::try_from_value(v) {
        Value::Bool(b)
    } else if let Ok(s) = String::try_from_value(v) {
        Value::String(s)
    } else if let Ok(d) = f64::try_from_value(v) {
        Value::Double(d)
    } else if let Ok(b) = Vec::<u8>::try_from_value(v) {
        Value::Base64(b)
    } else if let Ok(items) = Vec::<dxr::Value>::try_from_value(v) {
        Value::Array(items.iter().map(from_dxr).collect())
    } else if let Ok(members) = HashMap::<String, dxr::Value>::try_from_value(v) {
        Value::Struct(
            members
                .iter()
                .map(|(k, v)| (k.clone(), from_dxr(v)))
                .collect(),
        )
    } else {
        panic!("the bench inputs hold no such dxr value: {v:?}")
    }
}

fn to_xmlrpc(v: &Value) -> xmlrpc::Value {
    match v {
        Value::Int(i) => xmlrpc::Value::Int(i32::try_from(*i).expect("bench ints fit in i32")),
        Value::Bool(b) => xmlrpc::Value::Bool(*b),
        Value::String(s) => xmlrpc::Value::String(s.clone()),
        Value::Double(d) => xmlrpc::Value::Double(*d),
        Value::Base64(b) => xmlrpc::Value::Base64(b.clone()),
        Value::Array(items) => xmlrpc::Value::Array(items.iter().map(to_xmlrpc).collect()),
        Value::Struct(members) => xmlrpc::Value::Struct(
            members
                .iter()
                .map(|(k, v)| (k.clone(), to_xmlrpc(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
        Value::Nil => xmlrpc::Value::Nil,
        other => panic!("the bench inputs hold no {}", other.type_name()),
    }
}

fn from_xmlrpc(v: &xmlrpc::Value) -> Value {
    match v {
        xmlrpc::Value::Int(i) => Value::Int((*i).into()),
        xmlrpc::Value::Int64(i) => Value::Int(*i),
        xmlrpc::Value::Bool(b) => Value::Bool(*b),
        xmlrpc::Value::String(s) => Value::String(s.clone()),
        xmlrpc::Value::Double(d) => Value::Double(*d),
        xmlrpc::Value::Base64(b) => Value::Base64(b.clone()),
        xmlrpc::Value::Array(items) => Value::Array(items.iter().map(from_xmlrpc).collect()),
        xmlrpc::Value::Struct(members) => Value::Struct(
            members
                .iter()
                .map(|(k, v)| (k.clone(), from_xmlrpc(v)))
                .collect(),
        ),
        xmlrpc::Value::Nil => Value::Nil,
        other => panic!("the bench inputs hold no such xmlrpc value: {other:?}"),
    }
}

// ---- each library's operations, exactly as timed ----

fn dxr_parse_call(bytes: &[u8]) -> dxr::MethodCall<'_> {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    dxr::deserialize_xml::<dxr::MethodCall<'_>>(text).expect("dxr parses the call")
}

fn dxr_parse_response(bytes: &[u8]) -> dxr::Value {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    dxr::deserialize_xml::<dxr::MethodResponse>(text)
        .expect("dxr parses the response")
        .inner()
}

/// Hands `xmlrpc` a response already received, so that `Request::call` (its
/// only public way to parse one) does nothing but parse.
struct Canned<'a>(&'a [u8]);

impl<'a> xmlrpc::Transport for Canned<'a> {
    type Stream = &'a [u8];

    fn transmit(
        self,
        _request: &xmlrpc::Request<'_>,
    ) -> Result<Self::Stream, Box<dyn Error + Send + Sync>> {
        Ok(self.0)
    }
}

fn xmlrpc_parse_response(request: &xmlrpc::Request<'_>, bytes: &[u8]) -> xmlrpc::Value {
    request
        .call(Canned(bytes))
        .expect("xmlrpc parses the response")
}

fn xmlrpc_write_call(request: &xmlrpc::Request<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    request.write_as_xml(&mut out).expect("write to a Vec");
    out
}

/// `xmlrpc` has no response writer: its value writer between the envelope
/// Podium writes.
fn xmlrpc_write_response(value: &xmlrpc::Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"<?xml version=\"1.0\"?>\n<methodResponse><params><param>");
    value.write_as_xml(&mut out).expect("write to a Vec");
    out.write_all(b"</param></params></methodResponse>\n")
        .expect("write to a Vec");
    out
}

// ---- the cases ----

/// One method call, as each library holds it.
struct CallCase {
    label: &'static str,
    method: &'static str,
    params: Vec<Value>,
}

fn bench_call(c: &mut Criterion, case: &CallCase) {
    let CallCase {
        label,
        method,
        params,
    } = case;
    let bytes = write_call(method, params).expect("podium writes the call");

    // Same document, same result, for every library that can read it.
    let ours = parse_call(&bytes, Limits::default()).expect("podium parses the call");
    assert_eq!((ours.method.as_str(), &ours.params), (*method, params));
    let theirs = dxr_parse_call(&bytes);
    assert_eq!(theirs.name(), *method);
    let theirs: Vec<Value> = theirs.params().iter().map(from_dxr).collect();
    assert_eq!(&theirs, params, "dxr read the call differently");

    let mut group = c.benchmark_group(format!("parse_call_{label}"));
    group.bench_function("podium", |b| {
        b.iter(|| parse_call(black_box(&bytes), Limits::default()).expect("parse"))
    });
    group.bench_function("dxr", |b| b.iter(|| dxr_parse_call(black_box(&bytes))));
    // xmlrpc: no public methodCall parser.
    group.finish();

    let dxr_call = dxr::MethodCall::new(*method, params.iter().map(to_dxr).collect());
    let xmlrpc_call = params
        .iter()
        .fold(xmlrpc::Request::new(method), |r, p| r.arg(to_xmlrpc(p)));

    // Each writer's output reads back as the same call.
    let dxr_bytes = dxr::serialize_xml(&dxr_call).expect("dxr writes the call");
    let xmlrpc_bytes = xmlrpc_write_call(&xmlrpc_call);
    for (who, written) in [("dxr", dxr_bytes.as_bytes()), ("xmlrpc", &xmlrpc_bytes)] {
        let back = parse_call(written, Limits::default())
            .unwrap_or_else(|e| panic!("{who}'s call does not read back: {e}"));
        assert_eq!(
            (back.method.as_str(), &back.params),
            (*method, params),
            "{who} wrote the call differently"
        );
    }

    let mut group = c.benchmark_group(format!("write_call_{label}"));
    group.bench_function("podium", |b| {
        b.iter(|| write_call(black_box(method), black_box(params)).expect("write"))
    });
    group.bench_function("dxr", |b| {
        b.iter(|| dxr::serialize_xml(black_box(&dxr_call)).expect("write"))
    });
    group.bench_function("xmlrpc", |b| {
        b.iter(|| xmlrpc_write_call(black_box(&xmlrpc_call)))
    });
    group.finish();
}

fn bench_response(c: &mut Criterion, label: &str, value: &Value) {
    let bytes = write_response(value).expect("podium writes the response");
    let xmlrpc_request = xmlrpc::Request::new("unused");

    let ours = parse_response(&bytes, Limits::default()).expect("podium parses the response");
    assert_eq!(ours.as_ref(), Ok(value));
    let theirs = from_dxr(&dxr_parse_response(&bytes));
    assert_eq!(&theirs, value, "dxr read the response differently");
    let theirs = from_xmlrpc(&xmlrpc_parse_response(&xmlrpc_request, &bytes));
    assert_eq!(&theirs, value, "xmlrpc read the response differently");

    let mut group = c.benchmark_group(format!("parse_response_{label}"));
    group.bench_function("podium", |b| {
        b.iter(|| parse_response(black_box(&bytes), Limits::default()).expect("parse"))
    });
    group.bench_function("dxr", |b| b.iter(|| dxr_parse_response(black_box(&bytes))));
    group.bench_function("xmlrpc", |b| {
        b.iter(|| xmlrpc_parse_response(&xmlrpc_request, black_box(&bytes)))
    });
    group.finish();

    let dxr_response = dxr::MethodResponse::new(to_dxr(value));
    let xmlrpc_value = to_xmlrpc(value);

    let dxr_bytes = dxr::serialize_xml(&dxr_response).expect("dxr writes the response");
    let xmlrpc_bytes = xmlrpc_write_response(&xmlrpc_value);
    for (who, written) in [("dxr", dxr_bytes.as_bytes()), ("xmlrpc", &xmlrpc_bytes)] {
        let back = parse_response(written, Limits::default())
            .unwrap_or_else(|e| panic!("{who}'s response does not read back: {e}"));
        assert_eq!(
            back.as_ref(),
            Ok(value),
            "{who} wrote the response differently"
        );
    }

    let mut group = c.benchmark_group(format!("write_response_{label}"));
    group.bench_function("podium", |b| {
        b.iter(|| write_response(black_box(value)).expect("write"))
    });
    group.bench_function("dxr", |b| {
        b.iter(|| dxr::serialize_xml(black_box(&dxr_response)).expect("write"))
    });
    group.bench_function("xmlrpc", |b| {
        b.iter(|| xmlrpc_write_response(black_box(&xmlrpc_value)))
    });
    group.finish();
}

fn typical(c: &mut Criterion) {
    let case = CallCase {
        label: "typical",
        method: TYPICAL_METHOD,
        params: typical_params(),
    };
    bench_call(c, &case);
    let reply = typical_reply();
    assert!(reply.as_struct().is_some_and(|m| m.len() == 6));
    bench_response(c, "typical", &reply);
}

fn large(c: &mut Criterion) {
    let value = large_value();
    let rows = value.as_array().expect("array");
    assert_eq!(rows.len(), 200);
    assert_eq!(
        rows[137].as_struct().and_then(|m| m.get("team")),
        Some(&Value::from("Helvetia"))
    );
    let case = CallCase {
        label: "large",
        method: LARGE_METHOD,
        params: vec![value.clone()],
    };
    bench_call(c, &case);
    bench_response(c, "large", &value);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = typical, large
}
criterion_main!(benches);
