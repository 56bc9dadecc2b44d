//! Hostile clients against the `xmlrpc_echo` example, in raw bytes over a
//! `TcpStream`: malformed, truncated and non-UTF-8 XML, absurd nesting,
//! entity tricks, oversized and compressed-bomb bodies, slow and idle
//! connections, too many connections.
//!
//! The properties (DESIGN.md "Security", STYLE.md "Bounded resources"):
//! - bad XML is a fault with the standard code, never a crash or a hang;
//! - HTTP misuse gets the right status (404, 405, 408, 413, 415);
//! - no request makes the server hold more than its body limit in memory,
//!   and a slow or idle client cannot keep a connection past its timeouts;
//! - after every hostile input the server still answers a normal call.
//!
//! Each case is a function run by its own test against a fresh server, and
//! all of them run again in one batch against a single server whose memory
//! is measured before and after.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use podium::rpc::codec::{parse_response, Limits};
use podium::rpc::fault::{INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR};
use podium::rpc::{Fault, Value};
use support::{
    connect, example_bin, exchange, http_post, post_request, read_response, wait_for_close,
    Process, RawResponse,
};

/// The server's default body limit, which the chunked and gzip cases cross.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Header (and idle) timeout the timing cases start the server with.
const HEADER_TIMEOUT_MS: u64 = 500;
/// Body timeout the slow-body case starts the server with.
const BODY_TIMEOUT_MS: u64 = 500;
/// How late a timeout may fire on a loaded machine before the test fails.
const TIMEOUT_SLACK: Duration = Duration::from_secs(4);
/// How early a timeout may appear to fire: our clock starts a little after
/// the server's (at connect), and timers have some jitter.
const TIMEOUT_EARLY: Duration = Duration::from_millis(100);

/// Starts the echo example on a free port with `extra` flags.
fn server(extra: &[&str]) -> Process {
    let mut args = vec!["--port", "0"];
    args.extend_from_slice(extra);
    Process::spawn(example_bin("xmlrpc_echo"), args, &[])
}

/// A server with short header and body timeouts, for the timing cases and
/// the batch.
fn impatient_server() -> Process {
    let header = HEADER_TIMEOUT_MS.to_string();
    let body = BODY_TIMEOUT_MS.to_string();
    server(&["--header-timeout-ms", &header, "--body-timeout-ms", &body])
}

/// A `methodCall` of `method` with `params_xml` inside `<params>`.
fn call_xml(method: &str, params_xml: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>{params_xml}</params></methodCall>"
    )
    .into_bytes()
}

/// A call of `echo` with one string parameter.
fn echo_xml(text: &str) -> Vec<u8> {
    call_xml(
        "echo",
        &format!("<param><value><string>{text}</string></value></param>"),
    )
}

/// The fault in a response, failing the test if it is anything else.
fn fault_of(resp: &RawResponse, what: &str) -> Fault {
    assert_eq!(resp.status, 200, "{what}: {} {}", resp.status, resp.text());
    match parse_response(&resp.body, Limits::default()) {
        Ok(Err(fault)) => fault,
        other => panic!("{what}: want a fault, got {other:?}"),
    }
}

fn assert_fault(resp: &RawResponse, code: i32, what: &str) {
    let fault = fault_of(resp, what);
    assert_eq!(fault.code, code, "{what}: {fault}");
}

fn assert_status(resp: &RawResponse, status: u16, what: &str) {
    assert_eq!(
        resp.status,
        status,
        "{what}: {:?} {}",
        resp.headers,
        resp.text()
    );
}

/// The value of a successful response, failing the test otherwise.
fn value_of(resp: &RawResponse, what: &str) -> Value {
    assert_status(resp, 200, what);
    match parse_response(&resp.body, Limits::default()) {
        Ok(Ok(v)) => v,
        other => panic!("{what}: want a value, got {other:?}"),
    }
}

/// The server still answers a normal call on a new connection.
fn assert_serves(server: &Process, after: &str) {
    let resp = http_post(server.addr(), "/RPC2", &[], &echo_xml("still alive"));
    assert_eq!(
        value_of(&resp, &format!("echo after {after}")),
        Value::from("still alive"),
        "echo after {after}"
    );
}

// ---------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------

fn case_malformed_xml(server: &Process) {
    let bodies: [(&str, &[u8]); 10] = [
        ("empty body", b""),
        (
            "mismatched end tag",
            b"<methodCall><methodName>echo</methodName><params></methodCall>",
        ),
        (
            "content after the root",
            b"<methodCall><methodName>echo</methodName></methodCall><methodCall/>",
        ),
        (
            "unclosed attribute",
            b"<methodCall a=\"1><methodName>echo</methodName></methodCall>",
        ),
        (
            "bad character reference",
            b"<methodCall><methodName>&#0;</methodName></methodCall>",
        ),
        (
            "control character",
            b"<methodCall><methodName>ec\x01ho</methodName></methodCall>",
        ),
        (
            "unsupported encoding declaration",
            b"<?xml version='1.0' encoding='x-klingon'?><methodCall><methodName>echo</methodName></methodCall>",
        ),
        ("lone end tag", b"</methodCall>"),
        (
            "unterminated comment",
            b"<methodCall><!-- <methodName>echo</methodName></methodCall>",
        ),
        (
            "unterminated CDATA",
            b"<methodCall><methodName><![CDATA[echo</methodName></methodCall>",
        ),
    ];
    // All on one keep-alive connection: a parse fault must not end it.
    let mut stream = connect(server.addr());
    for (what, body) in bodies {
        let resp = exchange(&mut stream, &post_request("/", &[], body))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_fault(&resp, PARSE_ERROR, what);
        assert!(!resp.closes(), "{what}: a fault should keep the connection");
    }
    // Well-formed XML that is not XML-RPC is an invalid request instead.
    let invalid: [(&str, &[u8]); 4] = [
        ("wrong root", b"<methodResponse/>"),
        ("no method name", b"<methodCall><params/></methodCall>"),
        (
            "unknown type",
            b"<methodCall><methodName>echo</methodName><params><param><value><float128>1</float128></value></param></params></methodCall>",
        ),
        (
            "bad int",
            b"<methodCall><methodName>echo</methodName><params><param><value><int>1x</int></value></param></params></methodCall>",
        ),
    ];
    for (what, body) in invalid {
        let resp = exchange(&mut stream, &post_request("/", &[], body))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_fault(&resp, INVALID_REQUEST, what);
    }
    // Not well-formed, so -32700 is the right code, but the codec answers
    // Not well-formed either, though quick-xml alone lets them through: the
    // codec's own checks refuse them as parse errors.
    for (what, body) in NOT_WELL_FORMED_PAST_QUICK_XML {
        let resp = exchange(&mut stream, &post_request("/", &[], body))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let fault = fault_of(&resp, what);
        assert_eq!(fault.code, PARSE_ERROR, "{what}: {fault}");
    }
    assert_serves(server, "malformed XML");
}

/// Inputs that are not well-formed XML although quick-xml's reader
/// accepts them.
const NOT_WELL_FORMED_PAST_QUICK_XML: [(&str, &[u8]); 4] = [
    ("plain text", b"hello"),
    ("angle soup", b"<<<>>>"),
    (
        "text before the root",
        b"junk<methodCall><methodName>echo</methodName></methodCall>",
    ),
    (
        "invalid element name",
        b"<1methodCall><methodName>echo</methodName></1methodCall>",
    ),
];

fn case_truncated_calls(server: &Process) {
    let full = call_xml(
        "echo",
        "<param><value><struct><member><name>a &amp; b</name><value><array><data>\
         <value><i8>9007199254740993</i8></value><value><base64>aGVsbG8=</base64></value>\
         <value><dateTime.iso8601>19980717T14:08:55</dateTime.iso8601></value>\
         <value><![CDATA[x]]></value><value><nil/></value><!-- c -->\
         </data></array></value></member></struct></value></param>",
    );
    // Every strict prefix that stops before the root is closed.
    let end = full
        .windows(b"</methodCall>".len())
        .rposition(|w| w == b"</methodCall>")
        .expect("the call has a root end tag")
        + b"</methodCall>".len();
    let mut stream = connect(server.addr());
    for cut in 0..end {
        let resp = exchange(&mut stream, &post_request("/", &[], &full[..cut]))
            .unwrap_or_else(|e| panic!("prefix of {cut} bytes: {e}"));
        let fault = fault_of(&resp, &format!("prefix of {cut} bytes"));
        assert_eq!(
            fault.code,
            PARSE_ERROR,
            "prefix {:?}: {fault}",
            String::from_utf8_lossy(&full[..cut])
        );
    }
    // The whole call works on the same connection.
    let resp = exchange(&mut stream, &post_request("/", &[], &full)).expect("full call");
    assert!(value_of(&resp, "full call").as_struct().is_some());
    assert_serves(server, "truncated calls");
}

fn case_invalid_utf8(server: &Process) {
    let mut bodies: Vec<(&str, Vec<u8>)> = vec![
        ("UTF-16 BOM", b"\xff\xfe<\x00m\x00".to_vec()),
        ("lone continuation byte", b"\x80".to_vec()),
    ];
    for (what, bad) in [
        ("truncated sequence", &b"\xc3"[..]),
        ("invalid continuation", b"\xc3\x28"),
        ("overlong slash", b"\xc0\xaf"),
        ("UTF-16 surrogate", b"\xed\xa0\x80"),
        ("beyond U+10FFFF", b"\xf4\x90\x80\x80"),
        ("0xFF", b"\xff"),
    ] {
        let mut body = b"<?xml version=\"1.0\"?><methodCall><methodName>echo</methodName><params><param><value><string>ok ".to_vec();
        body.extend_from_slice(bad);
        body.extend_from_slice(b" ok</string></value></param></params></methodCall>");
        bodies.push((what, body));
    }
    let mut stream = connect(server.addr());
    for (what, body) in &bodies {
        let resp = exchange(&mut stream, &post_request("/", &[], body))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_fault(&resp, PARSE_ERROR, what);
    }
    assert_serves(server, "invalid UTF-8");
}

/// `depth` nested arrays (and, separately, structs): refused at the nesting
/// limit, whatever the depth.
fn case_deep_nesting(server: &Process, depth: usize) {
    let arrays = format!(
        "<param>{}<value>x</value>{}</param>",
        "<value><array><data>".repeat(depth),
        "</data></array></value>".repeat(depth)
    );
    let structs = format!(
        "<param>{}<value>x</value>{}</param>",
        "<value><struct><member><name>m</name>".repeat(depth),
        "</member></struct></value>".repeat(depth)
    );
    // Only opening tags: the parser must stop at the limit, not at the end.
    let unclosed = "<value><array><data>".repeat(depth);
    for (what, params) in [
        ("arrays", arrays),
        ("structs", structs),
        ("unclosed", format!("<param>{unclosed}")),
    ] {
        let body = call_xml("echo", &params);
        let start = Instant::now();
        let resp = http_post(server.addr(), "/", &[], &body);
        let fault = fault_of(&resp, &format!("{depth} nested {what}"));
        assert_eq!(
            fault.code, INVALID_REQUEST,
            "{depth} nested {what}: {fault}"
        );
        assert!(fault.message.contains("nested"), "{fault}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{depth} nested {what} took {:?}",
            start.elapsed()
        );
    }
    assert_serves(server, "deep nesting");
}

fn case_doctype_and_entities(server: &Process) {
    let laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n\
        <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n\
        <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n\
        <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n\
        <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n\
        <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n\
        <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n\
        <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n\
        <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n\
        <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n\
        ]>\n<methodCall><methodName>echo</methodName><params><param><value><string>&lol9;\
        </string></value></param></params></methodCall>";
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
        <methodCall><methodName>echo</methodName><params><param><value><string>&xxe;\
        </string></value></param></params></methodCall>";
    let undeclared = "<methodCall><methodName>echo</methodName><params><param><value>\
        <string>&lol9;</string></value></param></params></methodCall>";
    let external_dtd = "<!DOCTYPE methodCall SYSTEM \"http://127.0.0.1:1/x.dtd\">\
        <methodCall><methodName>echo</methodName></methodCall>";
    for (what, body) in [
        ("billion laughs", laughs),
        ("external entity", xxe),
        ("undeclared entity", undeclared),
        ("external DTD", external_dtd),
    ] {
        let start = Instant::now();
        let resp = http_post(server.addr(), "/", &[], body.as_bytes());
        let fault = fault_of(&resp, what);
        assert_eq!(fault.code, PARSE_ERROR, "{what}: {fault}");
        assert!(!fault.message.contains("root:"), "{what} leaked a file");
        assert!(
            resp.body.len() < 4096,
            "{what}: reply of {}",
            resp.body.len()
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what} took {:?}",
            start.elapsed()
        );
    }
    assert_serves(server, "DOCTYPEs and entities");
}

fn case_unknown_method_keeps_alive(server: &Process) {
    let mut stream = connect(server.addr());
    let resp = exchange(
        &mut stream,
        &post_request("/RPC2", &[], &call_xml("no.such.method", "")),
    )
    .expect("first request");
    let fault = fault_of(&resp, "unknown method");
    assert_eq!(fault.code, METHOD_NOT_FOUND, "{fault}");
    assert!(fault.message.contains("no.such.method"), "{fault}");
    assert!(
        !resp.closes(),
        "an unknown method must not close the connection"
    );
    // The same socket serves the next call.
    let resp = exchange(
        &mut stream,
        &post_request("/RPC2", &[], &echo_xml("second")),
    )
    .expect("second request on the same connection");
    assert_eq!(value_of(&resp, "second call"), Value::from("second"));
    // Pipelined: both requests in one write, answered in order.
    let mut both = post_request("/", &[], &call_xml("nope", ""));
    both.extend(post_request("/", &[], &echo_xml("third")));
    stream.write_all(&both).expect("pipelined requests");
    let first = read_response(&mut stream).expect("first pipelined reply");
    assert_fault(&first, METHOD_NOT_FOUND, "first pipelined request");
    let second = read_response(&mut stream).expect("second pipelined reply");
    assert_eq!(
        value_of(&second, "second pipelined request"),
        Value::from("third")
    );
    assert_serves(server, "an unknown method");
}

/// Broken HTTP framing and oversized heads: refused by the HTTP layer with
/// the right status, the connection closed.
fn case_bad_http(server: &Process) {
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("garbage request line", b"HELLO\r\n\r\n".to_vec(), 400),
        (
            "non-numeric Content-Length",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
            400,
        ),
        (
            "conflicting Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
                .to_vec(),
            400,
        ),
        (
            "unknown Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            400,
        ),
        (
            "200 headers",
            format!("POST / HTTP/1.1\r\nHost: x\r\n{many_headers}Content-Length: 0\r\n\r\n")
                .into_bytes(),
            431,
        ),
        (
            "a 100 KB header",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
                "a".repeat(100_000)
            )
            .into_bytes(),
            431,
        ),
    ];
    for (what, request, status) in cases {
        let mut stream = connect(server.addr());
        let resp = exchange(&mut stream, &request).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_status(&resp, status, what);
        assert!(
            wait_for_close(&mut stream, Duration::from_secs(5)).is_some(),
            "{what}: connection left open"
        );
    }
    // A big but acceptable head is served.
    let big = format!("X-Big: {}", "a".repeat(60_000));
    let resp = http_post(server.addr(), "/", &[&big], &echo_xml("big head"));
    assert_eq!(value_of(&resp, "a 60 KB header"), Value::from("big head"));
    assert_serves(server, "bad HTTP");
}

fn case_wrong_http_method(server: &Process) {
    for method in ["GET", "PUT", "DELETE"] {
        let mut stream = connect(server.addr());
        let request =
            format!("{method} / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
        let resp = exchange(&mut stream, request.as_bytes()).expect(method);
        assert_status(&resp, 405, method);
        assert_eq!(
            resp.header("allow"),
            Some("POST"),
            "{method}: {:?}",
            resp.headers
        );
    }
    assert_serves(server, "GET");
}

fn case_wrong_path(server: &Process) {
    for path in ["/nope", "/RPC2/", "/rpc2", "/RPC2/x", "//"] {
        let resp = http_post(server.addr(), path, &[], &echo_xml("x"));
        assert_status(&resp, 404, path);
    }
    let mut stream = connect(server.addr());
    let resp = exchange(&mut stream, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").expect("GET");
    assert_status(&resp, 404, "GET /index.html");
    assert_serves(server, "wrong paths");
}

/// A body declared too large is refused from its headers alone: we send no
/// body at all, so an answer (rather than a body timeout) shows the server
/// did not wait to read it.
fn case_declared_too_large(server: &Process) {
    for (what, extra) in [
        ("50 MB", vec!["Content-Length: 52428800"]),
        (
            "50 MB expecting 100-continue",
            vec!["Content-Length: 52428800", "Expect: 100-continue"],
        ),
        ("one byte over", vec!["Content-Length: 1048577"]),
    ] {
        let mut stream = connect(server.addr());
        let mut head =
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n".to_owned();
        for h in &extra {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("send headers");
        let start = Instant::now();
        let resp = read_response(&mut stream).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_status(&resp, 413, what);
        assert!(resp.closes(), "{what}: the connection should close");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what}: answered after {:?}",
            start.elapsed()
        );
        assert!(
            wait_for_close(&mut stream, Duration::from_secs(5)).is_some(),
            "{what}: connection left open"
        );
    }
    // Exactly at the limit is accepted.
    let body = call_of_exact_size(MAX_BODY_BYTES);
    let resp = http_post(server.addr(), "/", &[], &body);
    let value = value_of(&resp, "a body of exactly the limit");
    assert!(value
        .as_str()
        .is_some_and(|s| s.len() > MAX_BODY_BYTES - 200));
    assert_serves(server, "declared oversized bodies");
}

/// An echo call of exactly `size` bytes, padded with a long string.
fn call_of_exact_size(size: usize) -> Vec<u8> {
    let empty = echo_xml("");
    let mut body = echo_xml(&"x".repeat(size - empty.len()));
    body.truncate(size);
    assert_eq!(body.len(), size);
    body
}

/// Sends `body` chunked on `stream` in `chunk`-byte chunks, stopping at the
/// first write error; returns how many body bytes were written. `finish`
/// sends the terminating chunk.
fn send_chunked(stream: &mut TcpStream, body: &[u8], chunk: usize, finish: bool) -> usize {
    let head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let mut sent = 0;
    for piece in body.chunks(chunk) {
        let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
        framed.extend_from_slice(piece);
        framed.extend_from_slice(b"\r\n");
        if stream.write_all(&framed).is_err() {
            return sent;
        }
        sent += piece.len();
    }
    if finish {
        let _ = stream.write_all(b"0\r\n\r\n");
    }
    sent
}

fn case_chunked_too_large(server: &Process) {
    // At the limit: accepted. One byte over: refused.
    let mut stream = connect(server.addr());
    let body = call_of_exact_size(MAX_BODY_BYTES);
    assert_eq!(
        send_chunked(&mut stream, &body, 64 * 1024, true),
        body.len()
    );
    let resp = read_response(&mut stream).expect("reply at the limit");
    assert!(value_of(&resp, "chunked body at the limit")
        .as_str()
        .is_some());

    let mut stream = connect(server.addr());
    let body = call_of_exact_size(MAX_BODY_BYTES + 1);
    send_chunked(&mut stream, &body, 64 * 1024, true);
    let resp = read_response(&mut stream).expect("reply one byte over");
    assert_status(&resp, 413, "chunked body one byte over");

    // 50 MB: the writer runs in a thread while we wait for the refusal; it
    // stops when the server closes the connection.
    const TOTAL: usize = 50 * 1000 * 1000;
    let mut stream = connect(server.addr());
    let mut writer_stream = stream.try_clone().expect("clone the socket");
    let writer = thread::spawn(move || {
        let body = vec![b'a'; TOTAL];
        let sent = send_chunked(&mut writer_stream, &body, 256 * 1024, true);
        let _ = writer_stream.shutdown(Shutdown::Write);
        sent
    });
    let resp = read_response(&mut stream).expect("reply to 50 MB chunked");
    assert_status(&resp, 413, "50 MB chunked");
    assert!(resp.closes(), "50 MB chunked: the connection should close");
    assert!(
        wait_for_close(&mut stream, Duration::from_secs(10)).is_some(),
        "50 MB chunked: connection left open"
    );
    let sent = writer.join().expect("writer thread");
    assert!(
        sent < TOTAL,
        "the server read all {sent} bytes instead of stopping at the limit"
    );
    assert_serves(server, "oversized chunked bodies");
}

/// A gzip stream of `total` zero bytes, built without compressing them all:
/// a deflate block of 1 MiB of zeros ends with a full flush (byte-aligned,
/// dictionary reset), so copies of it concatenate into a valid stream. The
/// trailer's CRC is combined from the block's, so the file is valid.
fn gzip_of_zeros(total_mib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, Crc, FlushCompress, Status};
    const BLOCK: usize = 1 << 20;
    let zeros = vec![0u8; BLOCK];
    let mut block = Vec::with_capacity(64 * 1024);
    let mut deflate = Compress::new(Compression::best(), false);
    let status = deflate
        .compress_vec(&zeros, &mut block, FlushCompress::Full)
        .expect("compressing zeros");
    assert!(
        status == Status::Ok
            && deflate.total_in() == BLOCK as u64
            && block.len() < block.capacity(),
        "one call compresses the whole block: {status:?} {} {}",
        deflate.total_in(),
        block.len()
    );
    let mut last = Vec::with_capacity(64);
    Compress::new(Compression::best(), false)
        .compress_vec(&[], &mut last, FlushCompress::Finish)
        .expect("final block");
    let mut block_crc = Crc::new();
    block_crc.update(&zeros);
    let mut crc = Crc::new();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..total_mib {
        out.extend_from_slice(&block);
        crc.combine(&block_crc);
    }
    out.extend_from_slice(&last);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    let size = (total_mib as u64 * BLOCK as u64) as u32; // ISIZE is mod 2^32
    out.extend_from_slice(&size.to_le_bytes());
    out
}

#[test]
fn gzip_of_zeros_is_a_valid_gzip_file() {
    // The construction, checked end to end (CRC and length) on a small size.
    let small = gzip_of_zeros(3);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&small[..])
        .read_to_end(&mut plain)
        .expect("a valid gzip file");
    assert_eq!(plain.len(), 3 << 20);
    assert!(plain.iter().all(|&b| b == 0));
}

fn case_gzip_bomb(server: &Process) {
    let bomb = gzip_of_zeros(200);
    assert!(
        bomb.len() < MAX_BODY_BYTES,
        "the bomb itself fits: {}",
        bomb.len()
    );
    let resp = http_post(server.addr(), "/", &["Content-Encoding: gzip"], &bomb);
    assert_status(&resp, 413, "gzip bomb");
    // Corrupt gzip and unknown encodings are refused too.
    let resp = http_post(
        server.addr(),
        "/",
        &["Content-Encoding: gzip"],
        b"\x1f\x8b\x08\x00 this is not deflate",
    );
    assert_status(&resp, 400, "corrupt gzip");
    let resp = http_post(
        server.addr(),
        "/",
        &["Content-Encoding: br"],
        &echo_xml("x"),
    );
    assert_status(&resp, 415, "brotli");
    // A real gzipped call works.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&echo_xml("zipped")).expect("compress");
    let zipped = enc.finish().expect("compress");
    let resp = http_post(server.addr(), "/", &["Content-Encoding: gzip"], &zipped);
    assert_eq!(value_of(&resp, "gzipped call"), Value::from("zipped"));
    assert_serves(server, "a gzip bomb");
}

/// A client that sends its headers one byte at a time is cut off at the
/// header timeout: the timer is not restarted by each byte.
fn case_slow_headers(server: &Process) {
    let request = post_request("/", &[], &echo_xml("slow"));
    let head_len = request.len() - echo_xml("slow").len();
    let mut stream = connect(server.addr());
    let start = Instant::now();
    let mut sent = 0;
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    // One byte per 100 ms would need ~10 s for the head; bounded by it.
    let closed_after = loop {
        if sent == head_len {
            break None;
        }
        if stream.write_all(&request[sent..=sent]).is_err() {
            break Some(start.elapsed());
        }
        sent += 1;
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("a positive timeout");
        match stream.read(&mut buf) {
            Ok(0) => break Some(start.elapsed()),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break Some(start.elapsed()),
        }
    };
    let closed_after = closed_after.unwrap_or_else(|| {
        panic!(
            "sent all {head_len} header bytes slowly over {:?} without being cut off",
            start.elapsed()
        )
    });
    let timeout = Duration::from_millis(HEADER_TIMEOUT_MS);
    assert!(
        closed_after + TIMEOUT_EARLY >= timeout && closed_after < timeout + TIMEOUT_SLACK,
        "cut off after {closed_after:?}, header timeout is {timeout:?}"
    );
    assert!(sent < head_len, "the head was complete");
    assert!(
        reply.is_empty() || reply.starts_with(b"HTTP/1.1 408"),
        "unexpected reply {:?}",
        String::from_utf8_lossy(&reply)
    );
    assert_serves(server, "slow headers");
}

/// An idle connection, fresh or after a request, is closed after the header
/// timeout.
fn case_idle_connections(server: &Process) {
    let timeout = Duration::from_millis(HEADER_TIMEOUT_MS);
    let mut fresh = connect(server.addr());
    let closed = wait_for_close(&mut fresh, timeout + TIMEOUT_SLACK)
        .expect("a fresh idle connection was left open");
    assert!(
        closed + TIMEOUT_EARLY >= timeout,
        "closed too early: {closed:?}"
    );

    let mut used = connect(server.addr());
    let resp = exchange(&mut used, &post_request("/", &[], &echo_xml("once"))).expect("echo");
    assert_eq!(value_of(&resp, "echo before idling"), Value::from("once"));
    let closed = wait_for_close(&mut used, timeout + TIMEOUT_SLACK)
        .expect("an idle keep-alive connection was left open");
    assert!(
        closed + TIMEOUT_EARLY >= timeout,
        "closed too early: {closed:?}"
    );
    assert_serves(server, "idle connections");
}

/// A body that stops arriving gets 408 at the body timeout.
fn case_slow_body(server: &Process) {
    let mut stream = connect(server.addr());
    let body = echo_xml("slow body");
    let request = post_request("/", &[], &body);
    let partial = request.len() - body.len() / 2;
    stream.write_all(&request[..partial]).expect("send half");
    let start = Instant::now();
    let resp = read_response(&mut stream).expect("a reply to a stalled body");
    let waited = start.elapsed();
    assert_status(&resp, 408, "stalled body");
    let timeout = Duration::from_millis(BODY_TIMEOUT_MS);
    assert!(
        waited + TIMEOUT_EARLY >= timeout && waited < timeout + TIMEOUT_SLACK,
        "408 after {waited:?}, body timeout is {timeout:?}"
    );
    assert!(
        wait_for_close(&mut stream, TIMEOUT_SLACK).is_some(),
        "connection left open after 408"
    );
    assert_serves(server, "a slow body");
}

/// A body cut short by the client closing its side is a 400.
fn case_short_body(server: &Process) {
    let mut stream = connect(server.addr());
    let body = echo_xml("short");
    let request = post_request("/", &[], &body);
    stream
        .write_all(&request[..request.len() - 10])
        .expect("send most");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let resp = read_response(&mut stream).expect("a reply to a short body");
    assert_status(&resp, 400, "body shorter than Content-Length");
    assert_serves(server, "a short body");
}

// ---------------------------------------------------------------------------
// One test per case, each on a fresh server
// ---------------------------------------------------------------------------

#[test]
fn malformed_xml_is_a_parse_fault() {
    case_malformed_xml(&server(&[]));
}

#[test]
fn every_truncated_call_is_a_parse_fault() {
    case_truncated_calls(&server(&[]));
}

#[test]
fn invalid_utf8_is_a_parse_fault() {
    case_invalid_utf8(&server(&[]));
}

#[test]
fn deep_nesting_is_a_fault_not_a_crash() {
    // 100,000 levels take ~4.3 MB of XML: raise the body limit so the
    // parser, not the body limit, has to refuse it.
    let s = server(&["--max-body-bytes", "8388608"]);
    case_deep_nesting(&s, 100_000);
    case_deep_nesting(&s, 65);
    // Just under the limit (61 values with the innermost) is served.
    let depth = 60;
    let params = format!(
        "<param>{}<value>x</value>{}</param>",
        "<value><array><data>".repeat(depth),
        "</data></array></value>".repeat(depth)
    );
    let resp = http_post(s.addr(), "/", &[], &call_xml("echo", &params));
    let mut value = value_of(&resp, "60 nested arrays");
    for level in 0..depth {
        value = match value {
            Value::Array(mut items) if items.len() == 1 => items.remove(0),
            other => panic!("level {level}: want a one-item array, got {other:?}"),
        };
    }
    assert_eq!(value, Value::from("x"));
}

#[test]
fn doctype_and_entities_are_refused() {
    case_doctype_and_entities(&server(&[]));
}

#[test]
fn unknown_method_keeps_the_connection_alive() {
    case_unknown_method_keeps_alive(&server(&[]));
}

#[test]
fn wrong_http_method_is_405_with_allow_post() {
    case_wrong_http_method(&server(&[]));
}

#[test]
fn bad_http_framing_and_huge_heads_are_refused() {
    case_bad_http(&server(&[]));
}

#[test]
fn wrong_path_is_404() {
    case_wrong_path(&server(&[]));
}

#[test]
fn declared_oversized_body_is_413_without_reading_it() {
    case_declared_too_large(&server(&[]));
}

#[test]
fn chunked_oversized_body_is_413_at_the_limit() {
    case_chunked_too_large(&server(&[]));
}

#[test]
fn gzip_bomb_is_413() {
    case_gzip_bomb(&server(&[]));
}

#[test]
fn slow_headers_are_cut_off_at_the_header_timeout() {
    case_slow_headers(&impatient_server());
}

#[test]
fn idle_connections_are_closed_after_the_header_timeout() {
    case_idle_connections(&impatient_server());
}

#[test]
fn stalled_body_is_408_at_the_body_timeout() {
    case_slow_body(&impatient_server());
}

#[test]
fn short_body_is_400() {
    case_short_body(&server(&[]));
}

/// With `--max-connections 2`, a third client is served at once by closing
/// the connection that has been waiting (idle) longest; the other one stays.
#[test]
fn at_the_connection_cap_the_longest_idle_connection_makes_room() {
    let s = server(&["--max-connections", "2"]);
    let mut held = Vec::new();
    for i in 0..2 {
        let mut stream = connect(s.addr());
        let resp = exchange(&mut stream, &post_request("/", &[], &echo_xml("held")))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(value_of(&resp, "held connection"), Value::from("held"));
        held.push(stream);
    }
    let mut third = connect(s.addr());
    let resp = exchange(&mut third, &post_request("/", &[], &echo_xml("third")))
        .expect("the third connection is served at once");
    assert_eq!(value_of(&resp, "third connection"), Value::from("third"));
    assert!(
        wait_for_close(&mut held[0], TIMEOUT_SLACK).is_some(),
        "the connection idle longest was not closed"
    );
    let resp = exchange(&mut held[1], &post_request("/", &[], &echo_xml("second")))
        .expect("the younger idle connection stays open");
    assert_eq!(value_of(&resp, "second connection"), Value::from("second"));
}

/// With `--max-connections 2` and both connections busy (each in the middle
/// of sending a body), a third waits; once one of them is answered (and so
/// waiting again), it makes room and the third is served.
#[test]
fn at_the_connection_cap_with_all_busy_a_new_client_waits() {
    let s = server(&["--max-connections", "2"]);
    let body = echo_xml("busy");
    let request = post_request("/", &["Expect: 100-continue"], &body);
    let head = request.len() - body.len();
    let mut busy: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = connect(s.addr());
            stream.write_all(&request[..head]).expect("a request head");
            // The server asks for the body only once the request is its
            // handler's: the connection is busy from then on.
            let resp = read_response(&mut stream).expect("100 Continue");
            assert_status(&resp, 100, "a head asking to continue");
            stream.write_all(&body[..10]).expect("a little of the body");
            stream
        })
        .collect();
    let split = head + 10;
    let mut third = connect(s.addr());
    third
        .write_all(&post_request("/", &[], &echo_xml("third")))
        .expect("the kernel accepts the third connection's request");
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("a positive timeout");
    let mut byte = [0u8; 1];
    match third.read(&mut byte) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("the third connection was served beyond the cap: {other:?}"),
    }
    busy[0].write_all(&request[split..]).expect("the rest");
    let resp = read_response(&mut busy[0]).expect("the first busy one is answered");
    assert_eq!(value_of(&resp, "first busy"), Value::from("busy"));
    third
        .set_read_timeout(Some(support::IO_TIMEOUT))
        .expect("a positive timeout");
    let resp = read_response(&mut third).expect("the third connection is served");
    assert_eq!(value_of(&resp, "third connection"), Value::from("third"));
    busy[1].write_all(&request[split..]).expect("the rest");
    let resp = read_response(&mut busy[1]).expect("the second busy one is answered");
    assert_eq!(value_of(&resp, "second busy"), Value::from("busy"));
}

// ---------------------------------------------------------------------------
// Everything against one server, watching its memory
// ---------------------------------------------------------------------------

/// Largest growth of the server's resident memory the batch may cause.
const MAX_RSS_GROWTH_BYTES: u64 = 64 << 20;

#[test]
fn memory_stays_flat_through_a_hostile_batch() {
    let s = impatient_server();
    // Warm up: a few ordinary calls, one near the body limit, so buffers
    // and allocator arenas the server needs anyway exist before measuring.
    for _ in 0..3 {
        assert_serves(&s, "warm-up");
        let resp = http_post(s.addr(), "/", &[], &call_of_exact_size(MAX_BODY_BYTES));
        value_of(&resp, "warm-up at the limit");
    }
    let before = s.memory();
    let start = Instant::now();
    for round in 0..3 {
        eprintln!("hostile batch round {round}");
        case_malformed_xml(&s);
        case_truncated_calls(&s);
        case_invalid_utf8(&s);
        // What fits in the default 1 MiB body limit.
        case_deep_nesting(&s, 10_000);
        case_doctype_and_entities(&s);
        case_unknown_method_keeps_alive(&s);
        case_wrong_http_method(&s);
        case_wrong_path(&s);
        case_declared_too_large(&s);
        case_chunked_too_large(&s);
        case_gzip_bomb(&s);
        case_short_body(&s);
        case_bad_http(&s);
    }
    // The timing cases once: they are slow and allocate little.
    case_slow_headers(&s);
    case_idle_connections(&s);
    case_slow_body(&s);
    let after = s.memory();
    eprintln!(
        "hostile batch took {:?}; RSS {} KiB before, {} KiB after, peak {} KiB",
        start.elapsed(),
        before.rss_bytes >> 10,
        after.rss_bytes >> 10,
        after.peak_rss_bytes >> 10
    );
    assert!(
        after.rss_bytes < before.rss_bytes + MAX_RSS_GROWTH_BYTES,
        "RSS grew from {} KiB to {} KiB",
        before.rss_bytes >> 10,
        after.rss_bytes >> 10
    );
    assert!(
        after.peak_rss_bytes < before.rss_bytes + MAX_RSS_GROWTH_BYTES,
        "peak RSS reached {} KiB from {} KiB: some input was buffered whole",
        after.peak_rss_bytes >> 10,
        before.rss_bytes >> 10
    );
}

// ---------------------------------------------------------------------------
// Our client against a hostile server
// ---------------------------------------------------------------------------

/// A misbehaving HTTP server in Python (one thread per connection), whose
/// behaviour is chosen by the request path. It announces its port the way
/// our servers do.
const HOSTILE_SERVER: &str = r#"
import gzip, socket, socketserver, time

OK = (b'<?xml version="1.0"?><methodResponse><params><param><value>'
      b'<string>fine</string></value></param></params></methodResponse>')
BOMB = gzip.compress(bytes(50_000_000), compresslevel=9)   # 50 MB of zeros

class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(30)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        path = head.split(b" ")[1].decode()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                return
            body += chunk

        def reply(status, payload, *headers):
            extra = "".join(h + "\r\n" for h in headers)
            s.sendall(("HTTP/1.1 %s\r\nContent-Type: text/xml\r\n%sContent-Length: %d\r\n"
                       "Connection: close\r\n\r\n" % (status, extra, len(payload))).encode() + payload)

        try:
            if path == "/ok":
                reply("200 OK", OK)
            elif path == "/silent":          # never answers; waits for the client to leave
                s.recv(1)
            elif path == "/drip":            # answers one byte every 100 ms
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % len(OK))
                for b in OK:
                    s.sendall(bytes([b]))
                    time.sleep(0.1)
            elif path == "/bomb":
                reply("200 OK", BOMB, "Content-Encoding: gzip")
            elif path == "/huge":            # declares and streams 32 MiB
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % (32 << 20))
                for _ in range(512):
                    s.sendall(b"x" * 65536)
            elif path == "/error":
                reply("500 Internal Server Error", b"boom")
            elif path == "/garbage":
                reply("200 OK", b"this is not XML-RPC")
            elif path == "/hangup":          # closes without a word
                pass
        except OSError:
            pass                             # the client hung up: that is the point

class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True

server = Server(("127.0.0.1", 0), Handler)
print("LISTENING %s:%d" % server.server_address, flush=True)
server.serve_forever()
"#;

#[tokio::test]
async fn our_client_survives_hostile_servers() {
    use podium::rpc::{Client, ClientConfig, ClientError};

    let hostile = Process::spawn("python3", ["-c", HOSTILE_SERVER], &[]);
    let config = ClientConfig {
        timeout: Duration::from_secs(1),
        max_response_bytes: 1 << 20,
        ..ClientConfig::default()
    };
    let client = |path: &str| {
        Client::new(&format!("http://{}{path}", hostile.addr()), config.clone())
            .expect("a valid URL")
    };
    let ping = [Value::from("ping")];

    let ok = client("/ok").call("echo", &ping).await;
    assert_eq!(ok.ok(), Some(Value::from("fine")), "the control path works");

    for path in ["/silent", "/drip"] {
        let start = Instant::now();
        let err = client(path).call("echo", &ping).await.expect_err(path);
        assert!(err.is_timeout(), "{path}: {err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{path}: gave up after {:?} with a 1 s deadline",
            start.elapsed()
        );
    }
    for path in ["/bomb", "/huge"] {
        let err = client(path).call("echo", &ping).await.expect_err(path);
        assert!(
            matches!(err, ClientError::TooLarge(n) if n == 1 << 20),
            "{path}: {err:?}"
        );
    }
    let err = client("/error").call("echo", &ping).await.expect_err("500");
    assert!(
        matches!(err, ClientError::Status(s) if s.as_u16() == 500),
        "{err:?}"
    );
    let err = client("/garbage")
        .call("echo", &ping)
        .await
        .expect_err("garbage");
    assert!(matches!(err, ClientError::Parse(_)), "{err:?}");
    let err = client("/hangup")
        .call("echo", &ping)
        .await
        .expect_err("hangup");
    assert!(
        matches!(err, ClientError::Transport(_)) && !err.is_connect(),
        "a hang-up after the request was sent must not look retryable: {err:?}"
    );

    // Nothing listens on a port we just released: a connect error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let err = Client::new(&format!("127.0.0.1:{port}"), config.clone())
        .expect("a valid URL")
        .call("echo", &ping)
        .await
        .expect_err("nothing listens");
    assert!(err.is_connect(), "{err:?}");

    let ok = client("/ok").call("echo", &ping).await;
    assert_eq!(ok.ok(), Some(Value::from("fine")), "still works afterwards");
}
