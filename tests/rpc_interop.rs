//! Interoperability with Python's standard library, both ways:
//! - Python's `xmlrpc.client` (and raw `http.client`) calling our
//!   `xmlrpc_echo` example, with every XML-RPC type, introspection,
//!   multicall, gzip in both directions and faults;
//! - our `podium::rpc::Client` calling Python's `SimpleXMLRPCServer`.
//!
//! Python is the reference peer named in DESIGN.md: the old clients are
//! Python, so whatever Python sends must be understood and whatever we send
//! must read back in Python as the same value.
//!
//! The Python side does its own checking with `check(got, want)`, which also
//! compares types (so `True` is not taken for `1`); any failed check or
//! escaped exception exits non-zero, and [`support::python`] fails the test
//! with the script's stderr.

mod support;

use podium::rpc::{Client, ClientConfig, ClientError, DateTime, Fault, Value};
use support::{example_bin, python, Process};

/// Imports and helpers every Python client script starts with.
/// `sys.argv[1]` is the server URL.
const PRELUDE: &str = r#"
import datetime, http.client, socket, sys, urllib.parse, xmlrpc.client
socket.setdefaulttimeout(20)
URL = sys.argv[1]

def proxy(**kw):
    return xmlrpc.client.ServerProxy(URL, allow_none=True, use_builtin_types=True, **kw)

def check(got, want, what=""):
    assert type(got) is type(want) and got == want, f"{what}: got {got!r}, want {want!r}"

def expect_fault(call, code, what=""):
    try:
        got = call()
    except xmlrpc.client.Fault as f:
        assert f.faultCode == code, f"{what}: fault {f.faultCode} {f.faultString!r}, want code {code}"
        return f.faultString
    raise AssertionError(f"{what}: got {got!r}, want fault {code}")

def post_raw(body: bytes):
    """POSTs a hand-written call; returns (status, headers, body bytes)."""
    u = urllib.parse.urlsplit(URL)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    conn.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.headers, data

def echo_raw(value_xml: str):
    """Echoes a hand-written <value>; returns (decoded result, raw reply)."""
    body = ('<?xml version="1.0"?><methodCall><methodName>echo</methodName>'
            '<params><param>' + value_xml + '</param></params></methodCall>').encode()
    status, _, data = post_raw(body)
    assert status == 200, (status, data)
    (result,), _ = xmlrpc.client.loads(data, use_builtin_types=True)
    return result, data
"#;

/// Starts the echo example on a free port.
fn echo_server() -> Process {
    Process::spawn(example_bin("xmlrpc_echo"), ["--port", "0"], &[])
}

/// Runs a Python client script (after [`PRELUDE`]) against a fresh echo
/// server and returns its stdout.
fn run_client(script: &str) -> String {
    let server = echo_server();
    python(&format!("{PRELUDE}\n{script}"), &[&server.url()])
}

// ---------------------------------------------------------------------------
// (a) Python's xmlrpc.client calling our server
// ---------------------------------------------------------------------------

#[test]
fn python_client_round_trips_every_scalar_type() {
    let out = run_client(
        r#"
p = proxy()
cases = [
    0, 1, -1, 42, 2**31 - 1, -2**31,
    True, False,
    "", "hello", " ", "   ", " \t\n ", "\n", "  padded  ",
    "a & b < c > d ]]> 'single' \"double\"", "<value><int>1</int></value>",
    "héllo wörld", "☃ 𝄞 日本語 \u00a0 \ue000 \U0010fffd",
    0.0, 0.1, -1.5, 1e21, -1.5e300, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
    None,
    b"", b"\x00", b"\x00\xff\x80\x7f" * 64, bytes(range(256)),
    datetime.datetime(1998, 7, 17, 14, 8, 55),
    datetime.datetime(2024, 2, 29, 23, 59, 59),
    datetime.datetime(1, 1, 1, 0, 0, 0),
    datetime.datetime(9999, 12, 31, 23, 59, 59),
]
for v in cases:
    check(p.echo(v), v, repr(v))
# Python writes "\r" unescaped and XML end-of-line handling (which expat
# applies too) reads it as "\n": that is what any XML parser must return.
check(p.echo("a\rb\r\nc"), "a\nb\nc", "raw CR")
print("checked", len(cases) + 1)
"#,
    );
    assert!(out.contains("checked 37"), "{out}");
}

#[test]
fn python_reads_64_bit_ints_and_escaped_cr_from_our_replies() {
    // Python cannot marshal ints beyond 32 bits, so the calls are written by
    // hand; the replies are decoded by xmlrpc.client.loads.
    let out = run_client(
        r#"
for n in [2**31, -2**31 - 1, 2**53 + 1, 2**63 - 1, -2**63]:
    got, raw = echo_raw(f"<value><i8>{n}</i8></value>")
    check(got, n, f"i8 {n}")
    assert f"<i8>{n}</i8>".encode() in raw, raw
# Values that fit in 32 bits come back as <int>, whatever tag they came in.
for tag, n in [("i8", 2**31 - 1), ("i8", -2**31), ("i4", 7), ("int", -7)]:
    got, raw = echo_raw(f"<value><{tag}>{n}</{tag}></value>")
    check(got, n, f"{tag} {n}")
    assert f"<int>{n}</int>".encode() in raw, raw
# Big ints nested in containers.
got, _ = echo_raw("<value><array><data><value><i8>-9223372036854775808</i8></value>"
                  "<value><struct><member><name>k</name><value><i8>4294967296</i8></value>"
                  "</member></struct></value></data></array></value>")
check(got, [-2**63, {"k": 2**32}], "nested i8")
# One past i64: refused as an invalid request, not wrapped around.
status, _, raw = post_raw(b"<?xml version='1.0'?><methodCall><methodName>echo</methodName>"
                          b"<params><param><value><i8>9223372036854775808</i8></value></param>"
                          b"</params></methodCall>")
assert status == 200, status
expect_fault(lambda: xmlrpc.client.loads(raw), -32600, "i8 overflow")
# Our writer escapes CR as &#13;, so Python reads it back exactly.
got, raw = echo_raw("<value><string>a&#13;b&#13;&#10;c</string></value>")
check(got, "a\rb\r\nc", "escaped CR")
assert b"&#13;" in raw, raw
# Untyped text is a string, whitespace kept.
got, _ = echo_raw("<value>  untyped  </value>")
check(got, "  untyped  ", "untyped")
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn python_client_round_trips_nested_structures() {
    let out = run_client(
        r#"
p = proxy()
deep = "bottom"
for i in range(30):
    deep = {"level": i, "inner": [deep, None]}
cases = [
    [], {}, [[]], [{}], {"": ""},
    [1, "two", 3.0, True, None, b"\x01", datetime.datetime(2000, 1, 1, 0, 0, 0)],
    {"team": "Gaul", "medals": {"gold": 3, "silver": 0, "bronze": 1}, "events": ["Stone Curling"]},
    {"clé": "valeur", " spaced key ": "x", "a&b<c>": [1, 2]},
    list(range(2000)),
    {str(i): i for i in range(500)},
    deep,
]
for v in cases:
    check(p.echo(v), v, repr(v)[:80])
# Past the server's nesting limit (64 values deep): a fault, and the
# connection carries on.
too_deep = "bottom"
for i in range(40):
    too_deep = {"inner": [too_deep]}
expect_fault(lambda: p.echo(too_deep), -32600, "nesting past the limit")
check(p.echo("after"), "after", "call after a refused one")
print("checked", len(cases))
"#,
    );
    assert!(out.contains("checked 11"), "{out}");
}

#[test]
fn python_client_introspects_our_server() {
    let out = run_client(
        r#"
p = proxy()
check(p.system.listMethods(),
      ["echo", "system.listMethods", "system.methodHelp", "system.methodSignature", "system.multicall"],
      "listMethods")
check(p.system.methodHelp("echo"), "Returns its one argument unchanged.", "help")
check(p.system.methodSignature("echo"), [["any", "any"]], "signature")
check(p.system.methodSignature("system.methodHelp"), [["string", "string"]], "signature of a built-in")
assert p.system.methodHelp("system.multicall"), "built-ins have help"
expect_fault(lambda: p.system.methodHelp("nope"), -32601, "help of an unknown method")
expect_fault(lambda: p.system.methodSignature(), -32602, "signature without a name")
expect_fault(lambda: p.system.listMethods("extra"), -32602, "listMethods with an argument")
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn python_multicall_reports_each_entry_including_a_failing_one() {
    let out = run_client(
        r#"
p = proxy()
m = xmlrpc.client.MultiCall(p)
m.echo(1)
m.echo("two")
m.no_such_method(3)
m.echo()
m.echo([1, {"a": None}])
m.system.listMethods()
res = m()
check(res[0], 1, "entry 0")
check(res[1], "two", "entry 1")
expect_fault(lambda: res[2], -32601, "entry 2")
expect_fault(lambda: res[3], -32602, "entry 3")
check(res[4], [1, {"a": None}], "entry 4")
assert "echo" in res[5], res[5]
# Nesting is refused per entry, not for the whole batch.
m = xmlrpc.client.MultiCall(p)
m.system.multicall([])
m.echo("after")
res = m()
expect_fault(lambda: res[0], -32600, "nested multicall")
check(res[1], "after", "entry after a nested multicall")
# An empty batch is fine.
check(p.system.multicall([]), [], "empty multicall")
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn python_gzipped_requests_are_decoded() {
    let out = run_client(
        r#"
class RecordingTransport(xmlrpc.client.Transport):
    """Records every request body as sent on the wire."""
    sent = []
    def send_content(self, connection, request_body):
        # The connection is kept alive between calls: wrap it only once.
        if not getattr(connection, "recording", False):
            endheaders = connection.endheaders
            def recording_endheaders(body=None, **kw):
                RecordingTransport.sent.append(body)
                return endheaders(body, **kw)
            connection.endheaders = recording_endheaders
            connection.recording = True
        super().send_content(connection, request_body)

t = RecordingTransport(use_builtin_types=True)
t.encode_threshold = 0          # gzip every request
p = xmlrpc.client.ServerProxy(URL, transport=t, allow_none=True)
check(p.echo("small"), "small", "small gzipped request")
big = {"text": "Stone Curling " * 20000, "ints": list(range(5000))}
check(p.echo(big), big, "large gzipped request")
assert len(RecordingTransport.sent) == 2, len(RecordingTransport.sent)
for body in RecordingTransport.sent:
    assert body[:2] == b"\x1f\x8b", body[:20]
# The big one really was compressed well below its plain size.
assert len(RecordingTransport.sent[1]) < 100_000, len(RecordingTransport.sent[1])
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn python_reads_gzipped_replies() {
    let out = run_client(
        r#"
class RecordingTransport(xmlrpc.client.Transport):
    """Records the Content-Encoding of every reply."""
    encodings = []
    def parse_response(self, response):
        RecordingTransport.encodings.append(response.getheader("Content-Encoding", ""))
        return super().parse_response(response)

p = xmlrpc.client.ServerProxy(URL, transport=RecordingTransport(use_builtin_types=True), allow_none=True)
check(p.echo("small"), "small", "small reply")
big = ["Underwater Stone Weaving %d" % i for i in range(8000)]  # ~500 KB of XML
check(p.echo(big), big, "large reply")
check(RecordingTransport.encodings, ["", "gzip"], "reply encodings")

# A client that does not offer gzip gets plain XML.
status, headers, raw = post_raw(xmlrpc.client.dumps((big,), "echo").encode())
assert status == 200 and headers.get("Content-Encoding") is None, (status, dict(headers))
check(xmlrpc.client.loads(raw)[0][0], big, "plain large reply")
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn python_client_sees_faults_as_xmlrpc_fault() {
    let out = run_client(
        r#"
p = proxy()
msg = expect_fault(lambda: p.no_such_method(1, 2), -32601, "unknown method")
assert "no_such_method" in msg, msg
expect_fault(lambda: p.echo(), -32602, "too few arguments")
expect_fault(lambda: p.echo(1, 2), -32602, "too many arguments")
# The connection is still good after faults.
check(p.echo("still here"), "still here", "after faults")
# A malformed call is a parse-error fault, not an HTTP error.
status, _, raw = post_raw(b"<methodCall><methodName>echo</methodName><params>")
assert status == 200, status
expect_fault(lambda: xmlrpc.client.loads(raw), -32700, "truncated call")
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
}

// ---------------------------------------------------------------------------
// (b) our Client calling Python's SimpleXMLRPCServer
// ---------------------------------------------------------------------------

/// A Python `SimpleXMLRPCServer` on a free port, announcing it the way our
/// servers do. Besides `echo` it has helpers that report how Python saw a
/// value, raise faults, and count the replies it gzipped.
const PYTHON_SERVER: &str = r#"
import xmlrpc.client
from xmlrpc.server import SimpleXMLRPCServer, SimpleXMLRPCRequestHandler

class Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/", "/RPC2")
    gzipped = 0
    def send_header(self, key, value):
        if key.lower() == "content-encoding" and value == "gzip":
            Handler.gzipped += 1
        super().send_header(key, value)

server = SimpleXMLRPCServer(("127.0.0.1", 0), requestHandler=Handler, logRequests=False,
                            allow_none=True, use_builtin_types=True)
server.register_introspection_functions()
server.register_multicall_functions()
server.register_function(lambda v: v, "echo")
server.register_function(lambda v: type(v).__name__, "py_type")
server.register_function(lambda v: repr(v), "py_repr")
def fail(code, message):
    raise xmlrpc.client.Fault(code, message)
server.register_function(fail, "fail")
def boom():
    raise ValueError("boom")
server.register_function(boom, "boom")
server.register_function(lambda n: "x" * n, "big")
server.register_function(lambda: Handler.gzipped, "gzipped_replies")
print("LISTENING %s:%d" % server.server_address, flush=True)
server.serve_forever()
"#;

fn python_server() -> Process {
    Process::spawn(
        "python3",
        ["-c", PYTHON_SERVER],
        &[("PYTHONUNBUFFERED", "1")],
    )
}

fn client_for(server: &Process) -> Client {
    Client::new(&server.url(), ClientConfig::default()).expect("a valid URL")
}

fn dt(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> Value {
    Value::DateTime(DateTime::new(y, mo, d, h, mi, s).expect("a valid date"))
}

#[tokio::test]
async fn our_client_round_trips_every_type_through_python() {
    let server = python_server();
    let client = client_for(&server);
    let nested = Value::structure([
        ("team", Value::from("Carthage")),
        (
            "medals",
            Value::structure([
                ("gold", 2.into()),
                ("silver", 0.into()),
                ("bronze", 5.into()),
            ]),
        ),
        (
            "history",
            Value::Array(vec![
                Value::Array(vec![]),
                Value::structure(Vec::<(String, Value)>::new()),
                Value::Nil,
                Value::Base64(vec![0, 1, 2, 255]),
            ]),
        ),
        ("ünïcødé kéy", Value::from("värde")),
    ]);
    let cases = vec![
        Value::Int(0),
        Value::Int(-1),
        Value::Int(i32::MAX.into()),
        Value::Int(i32::MIN.into()),
        Value::Bool(true),
        Value::Bool(false),
        Value::from(""),
        Value::from("   "),
        Value::from(" \t\n "),
        Value::from("a & b <c> ]]> \"q\" 'a'"),
        Value::from("Ελληνικά ☃ 𝄞 中文"),
        Value::Double(0.0),
        Value::Double(0.1),
        Value::Double(-2.5e-300),
        Value::Double(f64::MAX),
        Value::Double(f64::MIN_POSITIVE),
        dt(1998, 7, 17, 14, 8, 55),
        dt(2024, 2, 29, 0, 0, 0),
        Value::Base64(vec![]),
        Value::Base64((0..=255).collect()),
        Value::Nil,
        Value::Array((0..1000).map(Value::from).collect()),
        nested,
    ];
    for v in cases {
        let got = client.call("echo", std::slice::from_ref(&v)).await;
        assert_eq!(got.as_ref().ok(), Some(&v), "echo {v:?}: {got:?}");
    }
}

#[tokio::test]
async fn python_sees_the_types_and_text_we_send() {
    let server = python_server();
    let client = client_for(&server);
    let types = [
        (Value::Int(7), "int"),
        (Value::Int(1 << 40), "int"), // we send <i8>, which Python reads
        (Value::Bool(true), "bool"),
        (Value::from("s"), "str"),
        (Value::Double(1.5), "float"),
        (dt(2020, 1, 2, 3, 4, 5), "datetime"),
        (Value::Base64(vec![1]), "bytes"),
        (Value::Nil, "NoneType"),
        (Value::Array(vec![]), "list"),
        (Value::structure([("a", Value::Nil)]), "dict"),
    ];
    for (v, want) in types {
        let got = client.call("py_type", std::slice::from_ref(&v)).await;
        assert_eq!(got.ok(), Some(Value::from(want)), "type of {v:?}");
    }
    let reprs = [
        (Value::Int(1 << 40), "1099511627776"),
        // Our writer escapes CR, so it survives XML end-of-line handling.
        (Value::from("a\rb\r\nc"), r"'a\rb\r\nc'"),
        (Value::from(" \t "), r"' \t '"),
        (
            dt(2020, 1, 2, 3, 4, 5),
            "datetime.datetime(2020, 1, 2, 3, 4, 5)",
        ),
        (Value::Double(0.1), "0.1"),
        (Value::Double(1e300), "1e+300"),
    ];
    for (v, want) in reprs {
        let got = client.call("py_repr", std::slice::from_ref(&v)).await;
        assert_eq!(got.ok(), Some(Value::from(want)), "repr of {v:?}");
    }
}

#[tokio::test]
async fn python_faults_arrive_as_client_error_fault() {
    let server = python_server();
    let client = client_for(&server);
    let err = client
        .call("fail", &[42.into(), "no such team".into()])
        .await
        .expect_err("fail raises");
    match &err {
        ClientError::Fault(f) => assert_eq!(f, &Fault::new(42, "no such team")),
        other => panic!("want a fault, got {other:?}"),
    }
    assert_eq!(err.fault().map(|f| f.code), Some(42));

    let err = client
        .call("fail", &[(-32000).into(), "négatif ☃".into()])
        .await
        .expect_err("fail raises");
    assert_eq!(err.fault(), Some(&Fault::new(-32000, "négatif ☃")));

    // An exception that is not a Fault: Python answers fault 1 with its type.
    let err = client.call("boom", &[]).await.expect_err("boom raises");
    let fault = err
        .fault()
        .unwrap_or_else(|| panic!("want a fault, got {err:?}"));
    assert_eq!(fault.code, 1);
    assert!(fault.message.contains("ValueError"), "{fault}");

    let err = client
        .call("no_such_method", &[])
        .await
        .expect_err("unknown");
    let fault = err
        .fault()
        .unwrap_or_else(|| panic!("want a fault, got {err:?}"));
    assert!(fault.message.contains("no_such_method"), "{fault}");

    // Python cannot write ints beyond 32 bits: echoing one back fails on
    // its side, and that failure reaches us as a fault, not garbage.
    let err = client
        .call("echo", &[Value::Int(1 << 40)])
        .await
        .expect_err("python cannot marshal it");
    let fault = err
        .fault()
        .unwrap_or_else(|| panic!("want a fault, got {err:?}"));
    assert_eq!(fault.code, 1);
    assert!(fault.message.contains("exceeds XML-RPC limits"), "{fault}");

    // Faults leave the client usable.
    let ok = client.call("echo", &["fine".into()]).await;
    assert_eq!(ok.ok(), Some(Value::from("fine")));
}

#[tokio::test]
async fn our_client_reads_python_gzipped_replies() {
    let server = python_server();
    let client = client_for(&server);
    let before = client.call("gzipped_replies", &[]).await.expect("count");
    assert_eq!(before, Value::Int(0));
    let n = 300_000;
    let got = client
        .call("big", &[Value::Int(n)])
        .await
        .expect("big reply");
    assert_eq!(got.as_str().map(str::len), Some(300_000));
    assert!(got.as_str().is_some_and(|s| s.bytes().all(|b| b == b'x')));
    // A small reply is not compressed (Python's threshold is 1400 bytes).
    let small = client.call("echo", &["x".into()]).await.expect("small");
    assert_eq!(small, Value::from("x"));
    let after = client.call("gzipped_replies", &[]).await.expect("count");
    assert_eq!(after, Value::Int(1), "exactly the big reply was gzipped");
}

#[tokio::test]
async fn our_client_multicalls_and_introspects_python() {
    let server = python_server();
    let client = client_for(&server);
    let entry = |name: &str, params: Vec<Value>| {
        Value::structure([
            ("methodName", Value::from(name)),
            ("params", Value::Array(params)),
        ])
    };
    let calls = Value::Array(vec![
        entry("echo", vec![Value::from("one")]),
        entry("fail", vec![7.into(), "seven".into()]),
        entry("echo", vec![Value::Nil]),
    ]);
    let got = client
        .call("system.multicall", &[calls])
        .await
        .expect("multicall");
    let items = got
        .as_array()
        .unwrap_or_else(|| panic!("want an array, got {got:?}"));
    assert_eq!(items.len(), 3, "{got:?}");
    assert_eq!(items[0], Value::Array(vec![Value::from("one")]));
    assert_eq!(Fault::from_value(&items[1]), Some(Fault::new(7, "seven")));
    assert_eq!(items[2], Value::Array(vec![Value::Nil]));

    let names = client.call("system.listMethods", &[]).await.expect("list");
    let names = names.as_array().unwrap_or_default();
    for want in ["echo", "fail", "system.multicall"] {
        assert!(
            names.contains(&Value::from(want)),
            "{want} missing from {names:?}"
        );
    }
}
