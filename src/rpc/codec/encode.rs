//! The writer: values in, a `methodCall` or `methodResponse` out, with the
//! text escaping XML needs.

use std::borrow::Cow;
use std::io::Write as _;

use base64::Engine as _;
use quick_xml::events::{BytesText, Event};
use quick_xml::Writer;

use super::{EncodeError, BASE64};
use crate::rpc::fault::Fault;
use crate::rpc::value::{is_xml_char, Value};

/// Starting size of a written message: typical replies fit without growing,
/// and an allocation this small costs the same as a smaller one.
const INITIAL_BUFFER_BYTES: usize = 1024;

/// Deepest value the writer will emit; values this deep can only be built in
/// code, never parsed, so hitting it is a bug the caller hears about.
pub(super) const MAX_WRITE_DEPTH: usize = 512;

/// Writes a `methodCall`.
///
/// # Errors
/// A string XML cannot carry, a non-finite double, or absurd nesting.
pub fn write_call(method: &str, params: &[Value]) -> Result<Vec<u8>, EncodeError> {
    let mut w = Writer::new(Vec::with_capacity(INITIAL_BUFFER_BYTES));
    put_raw(&mut w, b"<?xml version=\"1.0\"?>\n<methodCall><methodName>");
    put_text(&mut w, method)?;
    put_raw(&mut w, b"</methodName><params>");
    for p in params {
        put_raw(&mut w, b"<param>");
        put_value(&mut w, p, 0)?;
        put_raw(&mut w, b"</param>");
    }
    put_raw(&mut w, b"</params></methodCall>\n");
    Ok(w.into_inner())
}

/// Writes a successful `methodResponse` carrying `value`.
///
/// # Errors
/// As [`write_call`].
pub fn write_response(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut w = Writer::new(Vec::with_capacity(INITIAL_BUFFER_BYTES));
    put_raw(
        &mut w,
        b"<?xml version=\"1.0\"?>\n<methodResponse><params><param>",
    );
    put_value(&mut w, value, 0)?;
    put_raw(&mut w, b"</param></params></methodResponse>\n");
    Ok(w.into_inner())
}

/// Writes a fault `methodResponse`. Characters XML cannot carry become U+FFFD,
/// so a fault can always be written.
pub fn write_fault(fault: &Fault) -> Vec<u8> {
    let message: String = fault
        .message
        .chars()
        .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
        .collect();
    let value = Fault::new(fault.code, message).to_value();
    let mut w = Writer::new(Vec::with_capacity(256));
    put_raw(&mut w, b"<?xml version=\"1.0\"?>\n<methodResponse><fault>");
    put_value(&mut w, &value, 0).expect("a sanitized fault struct is always writable");
    put_raw(&mut w, b"</fault></methodResponse>\n");
    w.into_inner()
}

/// Markup we generate ourselves; never carries caller text.
fn put_raw(w: &mut Writer<Vec<u8>>, markup: &[u8]) {
    w.get_mut().extend_from_slice(markup);
}

fn put_text(w: &mut Writer<Vec<u8>>, text: &str) -> Result<(), EncodeError> {
    let escaped = escape_text(text)?;
    w.write_event(Event::Text(BytesText::from_escaped(escaped)))
        .expect("writing to a Vec cannot fail");
    Ok(())
}

fn put_tagged(w: &mut Writer<Vec<u8>>, tag: &[u8], body: &[u8]) {
    let out = w.get_mut();
    out.push(b'<');
    out.extend_from_slice(tag);
    out.push(b'>');
    out.extend_from_slice(body);
    out.extend_from_slice(b"</");
    out.extend_from_slice(tag);
    out.push(b'>');
}

fn put_value(w: &mut Writer<Vec<u8>>, value: &Value, depth: usize) -> Result<(), EncodeError> {
    if depth >= MAX_WRITE_DEPTH {
        return Err(EncodeError::TooDeep);
    }
    put_raw(w, b"<value>");
    match value {
        Value::Int(i) => {
            let tag: &[u8] = if i32::try_from(*i).is_ok() {
                b"int"
            } else {
                b"i8"
            };
            put_tagged(w, tag, itoa::Buffer::new().format(*i).as_bytes());
        }
        Value::Bool(b) => put_tagged(w, b"boolean", if *b { b"1" } else { b"0" }),
        Value::String(s) => {
            put_raw(w, b"<string>");
            put_text(w, s)?;
            put_raw(w, b"</string>");
        }
        Value::Double(d) => {
            if !d.is_finite() {
                return Err(EncodeError::NonFinite(d.to_string()));
            }
            put_raw(w, b"<double>");
            write!(w.get_mut(), "{d:?}").expect("writing to a Vec cannot fail");
            put_raw(w, b"</double>");
        }
        Value::DateTime(dt) => {
            put_raw(w, b"<dateTime.iso8601>");
            write!(w.get_mut(), "{dt}").expect("writing to a Vec cannot fail");
            put_raw(w, b"</dateTime.iso8601>");
        }
        Value::Base64(bytes) => {
            put_raw(w, b"<base64>");
            let out = w.get_mut();
            let start = out.len();
            out.resize(
                start + base64::encoded_len(bytes.len(), true).unwrap_or(0),
                0,
            );
            let written = BASE64
                .encode_slice(bytes, &mut out[start..])
                .expect("buffer sized by encoded_len");
            out.truncate(start + written);
            put_raw(w, b"</base64>");
        }
        Value::Struct(members) => {
            put_raw(w, b"<struct>");
            for (name, v) in members {
                put_raw(w, b"<member><name>");
                put_text(w, name)?;
                put_raw(w, b"</name>");
                put_value(w, v, depth + 1)?;
                put_raw(w, b"</member>");
            }
            put_raw(w, b"</struct>");
        }
        Value::Array(items) => {
            put_raw(w, b"<array><data>");
            for v in items {
                put_value(w, v, depth + 1)?;
            }
            put_raw(w, b"</data></array>");
        }
        Value::Nil => put_raw(w, b"<nil/>"),
    }
    put_raw(w, b"</value>");
    Ok(())
}

/// Nonzero for bytes that need a closer look when writing text: markup
/// characters, control characters, and 0xEF (which starts U+FFFE/U+FFFF).
const SPECIAL: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        if b != b'\t' as usize && b != b'\n' as usize {
            table[b] = 1;
        }
        b += 1;
    }
    table[b'&' as usize] = 1;
    table[b'<' as usize] = 1;
    table[b'>' as usize] = 1;
    table[b'\r' as usize] = 1;
    table[0xEF] = 1;
    table
};

/// Escapes `&`, `<`, `>` and `\r` (which XML would otherwise turn into `\n`);
/// refuses characters XML cannot carry at all. Borrows when nothing needs
/// escaping, which is the common case.
fn escape_text(s: &str) -> Result<Cow<'_, str>, EncodeError> {
    let bytes = s.as_bytes();
    // Fast path: one table lookup per byte finds the common plain string.
    if bytes
        .iter()
        .fold(0, |acc, &b| acc | SPECIAL[usize::from(b)])
        == 0
    {
        return Ok(Cow::Borrowed(s));
    }
    let mut needs_escape = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'&' | b'<' | b'>' | b'\r' => needs_escape = true,
            b'\t' | b'\n' => {}
            0..=0x1F => return Err(EncodeError::InvalidChar(char::from(b))),
            // U+FFFE and U+FFFF are EF BF BE / EF BF BF in UTF-8.
            0xEF if bytes.get(i + 1) == Some(&0xBF)
                && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) =>
            {
                let c = s[i..].chars().next().unwrap_or('\u{FFFF}');
                return Err(EncodeError::InvalidChar(c));
            }
            _ => {}
        }
    }
    if !needs_escape {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::codec::{parse_call, parse_response, Limits, MethodCall};

    #[test]
    fn writes_and_reads_back() {
        let v = Value::structure([
            ("s", Value::from("a\r\nb & <c> ]]>")),
            ("big", Value::Int(i64::MIN)),
            ("d", Value::Double(0.1)),
            ("n", Value::Nil),
            (
                "a",
                Value::Array(vec![Value::Bool(false), Value::Base64(vec![0, 255])]),
            ),
        ]);
        let bytes = write_response(&v).unwrap();
        assert_eq!(parse_response(&bytes, Limits::default()), Ok(Ok(v.clone())));
        let bytes = write_call("echo", std::slice::from_ref(&v)).unwrap();
        let back = parse_call(&bytes, Limits::default()).unwrap();
        assert_eq!(
            back,
            MethodCall {
                method: "echo".into(),
                params: vec![v]
            }
        );
    }

    #[test]
    fn writer_refuses_what_xml_cannot_carry() {
        assert_eq!(
            write_response(&Value::from("a\u{1}")),
            Err(EncodeError::InvalidChar('\u{1}'))
        );
        assert_eq!(
            write_response(&Value::from("\u{FFFE}")),
            Err(EncodeError::InvalidChar('\u{FFFE}'))
        );
        assert!(write_response(&Value::Double(f64::NAN)).is_err());
        let fault = Fault::new(1, "bad \u{0} char");
        let back = parse_response(&write_fault(&fault), Limits::default()).unwrap();
        assert_eq!(back, Err(Fault::new(1, "bad \u{FFFD} char")));
    }
}
