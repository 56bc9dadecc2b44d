//! Every stock client's character encoding and scalar spelling, posted as
//! raw bytes to the real `xmlrpc_echo` example (issue 9, B1 and B2):
//! - PHP's xmlrpc extension declares `encoding="iso-8859-1"` on every call;
//!   such calls are read in that encoding, and é comes back (in UTF-8, which
//!   is all the server writes);
//! - UTF-16 with a byte-order mark, in both byte orders, is read;
//! - an encoding nobody can decode is fault -32700 naming it, and so are
//!   bytes that are not valid in the declared encoding;
//! - `<int>` beyond 32 bits and `<boolean>true</boolean>` are fault -32600,
//!   while `<i8>` keeps 64 bits.

mod support;

use podium::rpc::codec::{parse_response, Limits};
use podium::rpc::fault::{INVALID_REQUEST, PARSE_ERROR};
use podium::rpc::{Fault, Value};
use support::{example_bin, http_post, python, Process, RawResponse};

/// Starts the echo example on a free port.
fn echo_server() -> Process {
    Process::spawn(example_bin("xmlrpc_echo"), ["--port", "0"], &[])
}

/// Posts `body` as it is and reads the XML-RPC result.
fn post(server: &Process, body: &[u8]) -> (RawResponse, Result<Value, Fault>) {
    let resp = http_post(server.addr(), "/RPC2", &[], body);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let result = parse_response(&resp.body, Limits::default())
        .unwrap_or_else(|e| panic!("unreadable reply {:?}: {e}", resp.text()));
    (resp, result)
}

/// A call of `echo` with `value` (raw bytes, in whatever encoding `decl`
/// declares) as its one param, spelled as PHP's xmlrpc extension spells it.
fn echo_call(decl: &str, value: &[u8]) -> Vec<u8> {
    [
        decl.as_bytes(),
        b"\n<methodCall>\n<methodName>echo</methodName>\n<params>\n <param>\n  ",
        value,
        b"\n </param>\n</params>\n</methodCall>\n",
    ]
    .concat()
}

const PHP_DECL: &str = r#"<?xml version="1.0" encoding="iso-8859-1"?>"#;

/// `text` in UTF-16, byte-order mark first.
fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mark = if big_endian {
        [0xFE, 0xFF]
    } else {
        [0xFF, 0xFE]
    };
    let units = text.encode_utf16().flat_map(|unit| {
        if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        }
    });
    mark.into_iter().chain(units).collect()
}

fn assert_fault(result: &Result<Value, Fault>, code: i32, what: &str) -> String {
    match result {
        Err(fault) => {
            assert_eq!(fault.code, code, "{what}: {fault}");
            fault.message.clone()
        }
        Ok(v) => panic!("{what}: want fault {code}, got {v:?}"),
    }
}

/// PHP escapes non-ASCII characters as references by default, and sends
/// them as ISO-8859-1 bytes when told to escape only markup; both read as
/// é and ü, and the reply carries them in UTF-8.
#[test]
fn php_style_iso_8859_1_calls_are_understood() {
    let server = echo_server();
    let by_reference = echo_call(
        PHP_DECL,
        b"<value>\n   <string>caf&#233; M&#252;ller</string>\n  </value>",
    );
    let by_bytes = echo_call(
        PHP_DECL,
        b"<value>\n   <string>caf\xe9 M\xfcller</string>\n  </value>",
    );
    for (what, body) in [("references", by_reference), ("bytes", by_bytes)] {
        let (resp, result) = post(&server, &body);
        assert_eq!(result, Ok(Value::from("café Müller")), "{what}");
        let utf8 = "café Müller".as_bytes();
        assert!(
            resp.body.windows(utf8.len()).any(|w| w == utf8),
            "{what}: reply is not UTF-8: {:?}",
            resp.text()
        );
    }
    // windows-1252, which WHATWG also reads ISO-8859-1 as, has the euro sign.
    let body = echo_call(
        r#"<?xml version="1.0" encoding="windows-1252"?>"#,
        b"<value><string>5 \x80</string></value>",
    );
    assert_eq!(post(&server, &body).1, Ok(Value::from("5 €")));
}

/// Python's own client, told to send ISO-8859-1, declares it and encodes
/// the body in it (characters outside it as references).
#[test]
fn python_client_sending_iso_8859_1_round_trips() {
    let server = echo_server();
    let out = python(
        r#"
import sys, xmlrpc.client
proxy = xmlrpc.client.ServerProxy(sys.argv[1], encoding="iso-8859-1")
for text in ["café Müller", "5 €", "plain"]:
    got = proxy.echo(text)
    assert got == text, (got, text)
print("ok")
"#,
        &[&server.url()],
    );
    assert_eq!(out.trim(), "ok");
}

/// XML 1.0 requires UTF-16 with a byte-order mark to be read; with a
/// declaration or without, in either byte order.
#[test]
fn utf16_with_a_byte_order_mark_is_understood() {
    let server = echo_server();
    let text = String::from_utf8(echo_call(
        r#"<?xml version="1.0" encoding="UTF-16"?>"#,
        "<value><string>é ü 😀</string></value>".as_bytes(),
    ))
    .expect("written as UTF-8 here");
    for big_endian in [false, true] {
        let (_, result) = post(&server, &utf16(&text, big_endian));
        assert_eq!(
            result,
            Ok(Value::from("é ü 😀")),
            "big endian: {big_endian}"
        );
    }
    let undeclared = text.split_once("?>").expect("declared").1;
    assert_eq!(
        post(&server, &utf16(undeclared, true)).1,
        Ok(Value::from("é ü 😀"))
    );
}

/// An encoding nobody can decode is a parse error that names it; so are
/// bytes invalid in the declared encoding, and UTF-16 declared on a body
/// without a byte-order mark. None of them ends the server.
#[test]
fn undecodable_encodings_are_parse_faults_that_say_why() {
    let server = echo_server();
    let value = b"<value><string>x</string></value>";
    let body = echo_call(r#"<?xml version="1.0" encoding="x-klingon"?>"#, value);
    let message = assert_fault(&post(&server, &body).1, PARSE_ERROR, "unknown label");
    assert!(message.contains("x-klingon"), "{message}");

    let body = echo_call(
        r#"<?xml version="1.0" encoding="windows-1253"?>"#,
        b"<value><string>\xaa</string></value>",
    );
    let message = assert_fault(&post(&server, &body).1, PARSE_ERROR, "invalid bytes");
    assert!(message.contains("windows-1253"), "{message}");

    let body = echo_call(r#"<?xml version="1.0" encoding="UTF-16"?>"#, value);
    let message = assert_fault(&post(&server, &body).1, PARSE_ERROR, "UTF-16 without mark");
    assert!(message.contains("byte-order mark"), "{message}");

    let body = echo_call("<?xml version=\"1.0\"?>", b"<value>caf\xe9</value>");
    assert_fault(&post(&server, &body).1, PARSE_ERROR, "not UTF-8");

    let body = echo_call(PHP_DECL, b"<value><string>still here</string></value>");
    assert_eq!(post(&server, &body).1, Ok(Value::from("still here")));
}

/// `<int>` and `<i4>` are 32-bit: one past is an invalid request (-32600),
/// as Python's and PHP's servers refuse it. `<i8>` carries it.
#[test]
fn ints_beyond_32_bits_are_refused_unless_i8() {
    let server = echo_server();
    for tag in ["int", "i4"] {
        for text in ["2147483648", "-2147483649"] {
            let value = format!("<value><{tag}>{text}</{tag}></value>");
            let body = echo_call("<?xml version=\"1.0\"?>", value.as_bytes());
            let message = assert_fault(&post(&server, &body).1, INVALID_REQUEST, &value);
            assert!(message.contains(text), "{message}");
        }
        let value = format!("<value><{tag}>2147483647</{tag}></value>");
        let body = echo_call("<?xml version=\"1.0\"?>", value.as_bytes());
        assert_eq!(post(&server, &body).1, Ok(Value::Int(2147483647)));
    }
    let body = echo_call(
        "<?xml version=\"1.0\"?>",
        b"<value><i8>2147483648</i8></value>",
    );
    let (resp, result) = post(&server, &body);
    assert_eq!(result, Ok(Value::Int(2147483648)));
    assert!(
        resp.text().contains("<i8>2147483648</i8>"),
        "{}",
        resp.text()
    );
}

/// `<boolean>` is `0` or `1`: `true` is an invalid request.
#[test]
fn booleans_other_than_0_and_1_are_refused() {
    let server = echo_server();
    for text in ["true", "false", "2", ""] {
        let value = format!("<value><boolean>{text}</boolean></value>");
        let body = echo_call("<?xml version=\"1.0\"?>", value.as_bytes());
        assert_fault(&post(&server, &body).1, INVALID_REQUEST, &value);
    }
    let body = echo_call(
        "<?xml version=\"1.0\"?>",
        b"<value><boolean>1</boolean></value>",
    );
    assert_eq!(post(&server, &body).1, Ok(Value::Bool(true)));
}
