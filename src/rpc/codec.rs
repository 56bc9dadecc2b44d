//! The XML-RPC wire format, read and written with quick-xml's streaming
//! reader and writer. Pure: bytes in, values out, and back.
//!
//! ```text
//! <?xml version="1.0"?>
//! <methodCall>
//!   <methodName>get_score</methodName>
//!   <params><param><value><string>Stone Curling</string></value></param></params>
//! </methodCall>
//! ```
//!
//! The reader keeps its own explicit stack of open elements instead of
//! recursing, so hostile nesting costs one bounds check, never the thread's
//! stack; values may nest at most [`Limits::max_depth`] deep. A DOCTYPE is
//! refused outright, and only the five predefined entities and character
//! references are ever resolved, so no entity expansion can happen.

use std::borrow::Cow;
use std::io::Write as _;

use base64::Engine as _;
use quick_xml::events::{BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

use super::fault::Fault;
use super::value::{is_xml_char, DateTime, Struct, Value};

/// Default for [`Limits::max_depth`]: how deep values may nest.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Starting size of a written message: typical replies fit without growing,
/// and an allocation this small costs the same as a smaller one.
const INITIAL_BUFFER_BYTES: usize = 1024;

/// Deepest value the writer will emit; values this deep can only be built in
/// code, never parsed, so hitting it is a bug the caller hears about.
const MAX_WRITE_DEPTH: usize = 512;

/// What a parser accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum number of `<value>` elements open at once. Default 64.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// A decoded `methodCall`.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    pub method: String,
    pub params: Vec<Value>,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not well-formed XML: {0}")]
    Xml(String),
    #[error("message is not valid UTF-8")]
    NotUtf8,
    #[error("unsupported encoding {0:?}: only UTF-8 is accepted")]
    Encoding(String),
    #[error("DOCTYPE declarations are not allowed")]
    Doctype,
    #[error("entity &{0}; is not allowed: only the predefined entities are")]
    Entity(String),
    #[error("message ended before the document was complete")]
    Truncated,
    #[error("values nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("invalid XML-RPC: {0}")]
    Invalid(String),
}

impl ParseError {
    /// True when the XML itself was refused, rather than the XML-RPC in it.
    pub fn is_xml_level(&self) -> bool {
        !matches!(self, ParseError::TooDeep(_) | ParseError::Invalid(_))
    }
}

/// Why a value could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("string contains {0:?}, which XML cannot carry")]
    InvalidChar(char),
    #[error("double {0} is not finite")]
    NonFinite(String),
    #[error("value nested deeper than {MAX_WRITE_DEPTH} levels")]
    TooDeep,
}

fn invalid(msg: impl Into<String>) -> ParseError {
    ParseError::Invalid(msg.into())
}

/// Parses a `methodCall`.
///
/// # Errors
/// Any deviation from XML-RPC, with the reason.
pub fn parse_call(bytes: &[u8], limits: Limits) -> Result<MethodCall, ParseError> {
    match parse(bytes, limits, Root::Call)? {
        Message::Call(call) => Ok(call),
        Message::Response(_) => Err(invalid("expected methodCall")),
    }
}

/// The method name of a `methodCall` in its plainest spelling (an optional
/// XML declaration, then `<methodCall>`, whitespace, and
/// `<methodName>NAME</methodName>`), read without parsing the rest. `None`
/// for any other spelling, which only the full parser can judge. The rest of
/// the body is not checked: this is for relaying a call, whose receiver
/// parses it.
pub fn peek_method_name(bytes: &[u8]) -> Option<&str> {
    fn skip_ws(b: &[u8]) -> &[u8] {
        let n = b
            .iter()
            .take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
            .count();
        &b[n..]
    }
    let mut rest = skip_ws(bytes);
    if let Some(decl) = rest.strip_prefix(b"<?xml") {
        let end = decl.windows(2).position(|w| w == b"?>")?;
        if decl[..end].contains(&b'<') {
            return None;
        }
        rest = skip_ws(&decl[end + 2..]);
    }
    rest = skip_ws(rest.strip_prefix(b"<methodCall>")?);
    rest = rest.strip_prefix(b"<methodName>")?;
    let len = rest
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'/' | b'-'))
        .count();
    if len == 0 || !rest[len..].starts_with(b"</methodName>") {
        return None;
    }
    std::str::from_utf8(&rest[..len]).ok()
}

/// Parses a `methodResponse`: `Ok(Ok(value))` for a result, `Ok(Err(fault))`
/// for a fault.
///
/// # Errors
/// Any deviation from XML-RPC, with the reason.
pub fn parse_response(bytes: &[u8], limits: Limits) -> Result<Result<Value, Fault>, ParseError> {
    match parse(bytes, limits, Root::Response)? {
        Message::Response(r) => Ok(r),
        Message::Call(_) => Err(invalid("expected methodResponse")),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Root {
    Call,
    Response,
}

enum Message {
    Call(MethodCall),
    Response(Result<Value, Fault>),
}

#[derive(Debug, Clone, Copy)]
enum Scalar {
    Int,
    Bool,
    String,
    Double,
    DateTime,
    Base64,
    Nil,
}

/// One open element. Text-bearing frames collect their text as it arrives.
enum Frame {
    MethodCall {
        name: Option<String>,
        params: Option<Vec<Value>>,
    },
    MethodResponse {
        result: Option<Result<Value, Fault>>,
    },
    MethodName(String),
    Params(Vec<Value>),
    Param(Option<Value>),
    Fault(Option<Value>),
    Value {
        text: String,
        typed: Option<Value>,
        has_child: bool,
    },
    Scalar(Scalar, String),
    Array(Option<Vec<Value>>),
    Data(Vec<Value>),
    Struct(Struct),
    Member {
        name: Option<String>,
        value: Option<Value>,
    },
    Name(String),
}

impl Frame {
    fn text_mut(&mut self) -> Option<&mut String> {
        match self {
            Frame::MethodName(t) | Frame::Scalar(_, t) | Frame::Name(t) => Some(t),
            Frame::Value { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// XML's `Name` production, for the ASCII range (non-ASCII name
/// characters are let through: the element is refused later as unknown).
fn is_xml_name(name: &[u8]) -> bool {
    let start = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80;
    match name.split_first() {
        Some((&first, rest)) => {
            start(first)
                && rest
                    .iter()
                    .all(|&b| start(b) || b.is_ascii_digit() || b == b'-' || b == b'.')
        }
        None => false,
    }
}

fn is_xml_space(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

struct Parser {
    stack: Vec<Frame>,
    value_depth: usize,
    limits: Limits,
    root: Root,
    done: Option<Message>,
}

fn parse(bytes: &[u8], limits: Limits, root: Root) -> Result<Message, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.trim_text(false);
    config.enable_all_checks(true);
    config.expand_empty_elements = false;
    let mut parser = Parser {
        stack: Vec::with_capacity(16),
        value_depth: 0,
        limits,
        root,
        done: None,
    };
    let mut first = true;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| ParseError::Xml(e.to_string()))?;
        let at_start = std::mem::replace(&mut first, false);
        match event {
            Event::Start(start) => parser.open(&start)?,
            Event::Empty(start) => {
                parser.open(&start)?;
                parser.close()?;
            }
            Event::End(_) => parser.close()?,
            Event::Text(t) => {
                let s = t
                    .xml10_content()
                    .map_err(|e| ParseError::Xml(e.to_string()))?;
                if s.contains("]]>") {
                    return Err(ParseError::Xml("\"]]>\" is not allowed in text".into()));
                }
                parser.text(&s)?;
            }
            Event::CData(c) => {
                let s = c
                    .xml10_content()
                    .map_err(|e| ParseError::Xml(e.to_string()))?;
                parser.text(&s)?;
            }
            Event::GeneralRef(r) => {
                let c = match r
                    .resolve_char_ref()
                    .map_err(|e| ParseError::Xml(e.to_string()))?
                {
                    Some(c) => c,
                    None => {
                        let name = r.decode().map_err(|e| ParseError::Xml(e.to_string()))?;
                        match name.as_ref() {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "apos" => '\'',
                            "quot" => '"',
                            other => {
                                return Err(ParseError::Entity(other.chars().take(64).collect()))
                            }
                        }
                    }
                };
                if !is_xml_char(c) {
                    return Err(ParseError::Xml(format!(
                        "character reference to {c:?}, which XML does not allow"
                    )));
                }
                parser.text(c.encode_utf8(&mut [0; 4]))?;
            }
            Event::Decl(_) if !at_start => {
                return Err(ParseError::Xml(
                    "an XML declaration is only allowed at the very start".into(),
                ))
            }
            Event::PI(pi) if pi.target().eq_ignore_ascii_case(b"xml") => {
                return Err(ParseError::Xml("reserved processing instruction".into()))
            }
            Event::Decl(decl) => {
                if let Some(enc) = decl.encoding() {
                    let enc = enc.map_err(|e| ParseError::Xml(e.to_string()))?;
                    let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                    if !matches!(enc.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                        return Err(ParseError::Encoding(enc.chars().take(32).collect()));
                    }
                }
            }
            Event::DocType(_) => return Err(ParseError::Doctype),
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    parser.done.ok_or(ParseError::Truncated)
}

impl Parser {
    fn open(&mut self, start: &BytesStart<'_>) -> Result<(), ParseError> {
        if self.done.is_some() {
            return Err(ParseError::Xml("content after the root element".into()));
        }
        if !is_xml_name(start.name().as_ref()) {
            let shown = String::from_utf8_lossy(start.name().as_ref())
                .chars()
                .take(64)
                .collect::<String>();
            return Err(ParseError::Xml(format!("invalid element name {shown:?}")));
        }
        // Attributes mean nothing in XML-RPC, but must still be well-formed
        // (quoted, not repeated).
        for attr in start.attributes() {
            attr.map_err(|e| ParseError::Xml(e.to_string()))?;
        }
        let local = start.local_name();
        let name = local.as_ref();
        let frame = match (self.stack.last_mut(), name) {
            (None, b"methodCall") if self.root == Root::Call => Frame::MethodCall {
                name: None,
                params: None,
            },
            (None, b"methodResponse") if self.root == Root::Response => {
                Frame::MethodResponse { result: None }
            }
            (Some(Frame::MethodCall { name: None, .. }), b"methodName") => {
                Frame::MethodName(String::new())
            }
            (Some(Frame::MethodCall { params: None, .. }), b"params") => Frame::Params(Vec::new()),
            (Some(Frame::MethodResponse { result: None }), b"params") => Frame::Params(Vec::new()),
            (Some(Frame::MethodResponse { result: None }), b"fault") => Frame::Fault(None),
            (Some(Frame::Params(_)), b"param") => Frame::Param(None),
            (Some(Frame::Param(None)), b"value")
            | (Some(Frame::Fault(None)), b"value")
            | (Some(Frame::Data(_)), b"value")
            | (Some(Frame::Member { value: None, .. }), b"value") => {
                if self.value_depth >= self.limits.max_depth {
                    return Err(ParseError::TooDeep(self.limits.max_depth));
                }
                self.value_depth += 1;
                Frame::Value {
                    text: String::new(),
                    typed: None,
                    has_child: false,
                }
            }
            (
                Some(Frame::Value {
                    has_child: has_child @ false,
                    ..
                }),
                _,
            ) => {
                *has_child = true;
                match name {
                    b"int" | b"i4" | b"i8" | b"i1" | b"i2" | b"biginteger" => {
                        Frame::Scalar(Scalar::Int, String::new())
                    }
                    b"boolean" => Frame::Scalar(Scalar::Bool, String::new()),
                    b"string" => Frame::Scalar(Scalar::String, String::new()),
                    b"double" | b"float" => Frame::Scalar(Scalar::Double, String::new()),
                    b"dateTime.iso8601" | b"dateTime" => {
                        Frame::Scalar(Scalar::DateTime, String::new())
                    }
                    b"base64" => Frame::Scalar(Scalar::Base64, String::new()),
                    b"nil" => Frame::Scalar(Scalar::Nil, String::new()),
                    b"array" => Frame::Array(None),
                    b"struct" => Frame::Struct(Struct::new()),
                    _ => {
                        return Err(invalid(format!(
                            "unknown value type <{}>",
                            String::from_utf8_lossy(name)
                                .chars()
                                .take(64)
                                .collect::<String>()
                        )))
                    }
                }
            }
            (Some(Frame::Array(None)), b"data") => Frame::Data(Vec::new()),
            (Some(Frame::Struct(_)), b"member") => Frame::Member {
                name: None,
                value: None,
            },
            (Some(Frame::Member { name: None, .. }), b"name") => Frame::Name(String::new()),
            _ => {
                let shown: String = String::from_utf8_lossy(name).chars().take(64).collect();
                return Err(invalid(format!("unexpected element <{shown}>")));
            }
        };
        self.stack.push(frame);
        Ok(())
    }

    fn text(&mut self, s: &str) -> Result<(), ParseError> {
        if let Some(bad) = s.chars().find(|c| !is_xml_char(*c)) {
            return Err(ParseError::Xml(format!(
                "character {bad:?} is not allowed in XML"
            )));
        }
        let outside_root = self.stack.is_empty();
        match self.stack.last_mut().and_then(Frame::text_mut) {
            Some(buf) => {
                buf.push_str(s);
                Ok(())
            }
            None if is_xml_space(s) => Ok(()),
            None if outside_root => Err(ParseError::Xml("text outside the root element".into())),
            None => Err(invalid("unexpected text outside a value")),
        }
    }

    fn close(&mut self) -> Result<(), ParseError> {
        let frame = self
            .stack
            .pop()
            .ok_or_else(|| ParseError::Xml("unmatched end tag".into()))?;
        match frame {
            Frame::MethodCall { name, params } => {
                let method = name.ok_or_else(|| invalid("methodCall has no methodName"))?;
                self.done = Some(Message::Call(MethodCall {
                    method,
                    params: params.unwrap_or_default(),
                }));
            }
            Frame::MethodResponse { result } => {
                let result = result.ok_or_else(|| invalid("methodResponse is empty"))?;
                self.done = Some(Message::Response(result));
            }
            Frame::MethodName(name) => {
                let name = name.trim();
                if name.is_empty() {
                    return Err(invalid("empty methodName"));
                }
                if let Some(Frame::MethodCall { name: slot, .. }) = self.stack.last_mut() {
                    *slot = Some(name.to_owned());
                }
            }
            Frame::Params(items) => match self.stack.last_mut() {
                Some(Frame::MethodCall { params, .. }) => *params = Some(items),
                Some(Frame::MethodResponse { result }) => {
                    let mut items = items.into_iter();
                    match (items.next(), items.next()) {
                        (Some(v), None) => *result = Some(Ok(v)),
                        _ => return Err(invalid("a response carries exactly one param")),
                    }
                }
                _ => unreachable!("params is only opened under methodCall or methodResponse"),
            },
            Frame::Param(value) => {
                let value = value.ok_or_else(|| invalid("param without a value"))?;
                if let Some(Frame::Params(items)) = self.stack.last_mut() {
                    items.push(value);
                }
            }
            Frame::Fault(value) => {
                let value = value.ok_or_else(|| invalid("fault without a value"))?;
                let fault = Fault::from_value(&value).ok_or_else(|| {
                    invalid("fault must be a struct with faultCode and faultString")
                })?;
                if let Some(Frame::MethodResponse { result }) = self.stack.last_mut() {
                    *result = Some(Err(fault));
                }
            }
            Frame::Value {
                text,
                typed,
                has_child,
            } => {
                self.value_depth -= 1;
                let value = if has_child {
                    if !is_xml_space(&text) {
                        return Err(invalid("text beside a typed value"));
                    }
                    typed.ok_or_else(|| invalid("value element not closed"))?
                } else {
                    Value::String(text)
                };
                self.deliver(value)?;
            }
            Frame::Scalar(kind, text) => {
                let value = scalar(kind, text)?;
                if let Some(Frame::Value { typed, .. }) = self.stack.last_mut() {
                    *typed = Some(value);
                }
            }
            Frame::Array(data) => {
                let items = data.ok_or_else(|| invalid("array without data"))?;
                self.set_typed(Value::Array(items));
            }
            Frame::Data(items) => {
                if let Some(Frame::Array(slot)) = self.stack.last_mut() {
                    *slot = Some(items);
                }
            }
            Frame::Struct(members) => self.set_typed(Value::Struct(members)),
            Frame::Member { name, value } => {
                let name = name.ok_or_else(|| invalid("struct member without a name"))?;
                let value = value.ok_or_else(|| invalid("struct member without a value"))?;
                if let Some(Frame::Struct(members)) = self.stack.last_mut() {
                    members.insert(name, value);
                }
            }
            Frame::Name(name) => {
                if let Some(Frame::Member { name: slot, .. }) = self.stack.last_mut() {
                    *slot = Some(name);
                }
            }
        }
        Ok(())
    }

    fn set_typed(&mut self, value: Value) {
        if let Some(Frame::Value { typed, .. }) = self.stack.last_mut() {
            *typed = Some(value);
        }
    }

    /// Hands a finished `<value>` to the element that holds it.
    fn deliver(&mut self, value: Value) -> Result<(), ParseError> {
        match self.stack.last_mut() {
            Some(Frame::Param(slot)) | Some(Frame::Fault(slot)) => *slot = Some(value),
            Some(Frame::Data(items)) => items.push(value),
            Some(Frame::Member { value: slot, .. }) => *slot = Some(value),
            _ => return Err(invalid("value in an unexpected place")),
        }
        Ok(())
    }
}

fn scalar(kind: Scalar, text: String) -> Result<Value, ParseError> {
    let shown = || text.chars().take(64).collect::<String>();
    Ok(match kind {
        Scalar::String => Value::String(text),
        Scalar::Int => {
            let t = text.trim();
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!("invalid int {:?}", shown())));
            }
            Value::Int(
                t.parse()
                    .map_err(|_| invalid(format!("int {:?} out of range", shown())))?,
            )
        }
        Scalar::Bool => match text.trim() {
            "1" => Value::Bool(true),
            "0" => Value::Bool(false),
            t if t.eq_ignore_ascii_case("true") => Value::Bool(true),
            t if t.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(invalid(format!("invalid boolean {:?}", shown()))),
        },
        Scalar::Double => {
            let t = text.trim();
            // Rust also reads "inf" and "NaN": only digits, sign, point and exponent pass.
            let plain = !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
            match t.parse::<f64>() {
                Ok(d) if plain && d.is_finite() => Value::Double(d),
                _ => return Err(invalid(format!("invalid double {:?}", shown()))),
            }
        }
        Scalar::DateTime => {
            Value::DateTime(DateTime::parse(&text).map_err(|e| invalid(e.to_string()))?)
        }
        Scalar::Base64 => {
            let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            Value::Base64(
                BASE64
                    .decode(&compact)
                    .map_err(|e| invalid(format!("invalid base64: {e}")))?,
            )
        }
        Scalar::Nil => {
            if !is_xml_space(&text) {
                return Err(invalid("nil must be empty"));
            }
            Value::Nil
        }
    })
}

/// Standard alphabet; padding optional on input (some encoders drop it),
/// always written.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

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

    fn call(xml: &str) -> Result<MethodCall, ParseError> {
        parse_call(xml.as_bytes(), Limits::default())
    }

    fn one_param(xml_value: &str) -> Result<Value, ParseError> {
        let doc = format!(
            "<?xml version='1.0'?><methodCall><methodName>m</methodName><params><param>{xml_value}</param></params></methodCall>"
        );
        call(&doc).map(|mut c| c.params.remove(0))
    }

    #[test]
    fn reads_every_scalar_type() {
        let cases = [
            ("<value><int>42</int></value>", Value::Int(42)),
            ("<value><i4>-7</i4></value>", Value::Int(-7)),
            ("<value><i8>9007199254740993</i8></value>", Value::Int(9007199254740993)),
            ("<value><ex:i8 xmlns:ex='x'>5</ex:i8></value>", Value::Int(5)),
            ("<value><boolean>1</boolean></value>", Value::Bool(true)),
            ("<value><string>a &amp; b &#x41;</string></value>", Value::from("a & b A")),
            ("<value>  untyped  </value>", Value::from("  untyped  ")),
            ("<value>   </value>", Value::from("   ")),
            ("<value></value>", Value::from("")),
            ("<value><string><![CDATA[<x>]]></string></value>", Value::from("<x>")),
            ("<value><double>-1.5e3</double></value>", Value::Double(-1500.0)),
            ("<value><base64>aGVs\nbG8=</base64></value>", Value::Base64(b"hello".to_vec())),
            ("<value><nil/></value>", Value::Nil),
            ("<value><ex:nil xmlns:ex='x'/></value>", Value::Nil),
            (
                "<value><dateTime.iso8601>19980717T14:08:55</dateTime.iso8601></value>",
                Value::DateTime(DateTime::new(1998, 7, 17, 14, 8, 55).unwrap()),
            ),
            ("<value>\n <string> x </string>\n</value>", Value::from(" x ")),
            ("<value><array><data/></array></value>", Value::Array(vec![])),
            (
                "<value><struct><member><name>a</name><value><int>1</int></value></member></struct></value>",
                Value::structure([("a", Value::Int(1))]),
            ),
        ];
        for (xml, want) in cases {
            assert_eq!(one_param(xml), Ok(want), "{xml}");
        }
    }

    #[test]
    fn refuses_bad_scalars() {
        for xml in [
            "<value><double>nan</double></value>",
            "<value><double>inf</double></value>",
            "<value><double>1e999</double></value>",
            "<value><double></double></value>",
            "<value><int>1.5</int></value>",
            "<value><int>99999999999999999999</int></value>",
            "<value><int> </int></value>",
            "<value><boolean>2</boolean></value>",
            "<value><base64>!!!</base64></value>",
            "<value><dateTime.iso8601>yesterday</dateTime.iso8601></value>",
            "<value><nil>x</nil></value>",
            "<value>text<int>1</int></value>",
            "<value><int>1</int><int>2</int></value>",
            "<value><float_x>1</float_x></value>",
            "<value><array></array></value>",
            "<value><struct><member><value><int>1</int></value></member></struct></value>",
        ] {
            let err = one_param(xml).expect_err(xml);
            assert!(!err.is_xml_level(), "{xml}: {err}");
        }
    }

    #[test]
    fn refuses_bad_xml() {
        for (xml, what) in [
            ("<methodCall><methodName>m</methodName>", "truncated"),
            ("<methodCall><methodName>m</methodCall>", "mismatched"),
            ("<!DOCTYPE x [<!ENTITY a 'b'>]><methodCall/>", "doctype"),
            (
                "<methodCall><methodName>&a;</methodName></methodCall>",
                "entity",
            ),
            (
                "<methodCall><methodName>&#1;</methodName></methodCall>",
                "char ref",
            ),
            (
                "<methodCall><methodName>\u{1}</methodName></methodCall>",
                "control",
            ),
            (
                "<?xml version='1.0' encoding='latin-1'?><methodCall/>",
                "encoding",
            ),
            ("", "empty"),
        ] {
            let err = call(xml).expect_err(what);
            assert!(err.is_xml_level(), "{what}: {err}");
        }
        assert_eq!(
            parse_call(b"\xff\xfe", Limits::default()),
            Err(ParseError::NotUtf8)
        );
    }

    #[test]
    fn depth_is_bounded_without_recursion() {
        let n = 100_000;
        let doc = format!(
            "<methodCall><methodName>m</methodName><params><param>{}{}</param></params></methodCall>",
            "<value><array><data>".repeat(n),
            "</data></array></value>".repeat(n)
        );
        assert_eq!(call(&doc), Err(ParseError::TooDeep(DEFAULT_MAX_DEPTH)));
        let ok = 10;
        let doc = format!(
            "<methodCall><methodName>m</methodName><params><param>{}<value>x</value>{}</param></params></methodCall>",
            "<value><array><data>".repeat(ok),
            "</data></array></value>".repeat(ok)
        );
        assert!(call(&doc).is_ok());
    }

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
    fn extra_dashes_in_a_datetime_are_refused_not_a_panic() {
        // Regression: fuzzing (parse_response) found this input panicking in
        // DateTime::parse on an out-of-range slice (fixed in value.rs).
        let doc = b"<?\"?>\n<methodResponse><params><param><value><dateTime.iso8601>202--02-29T23:59:60Z</dateTime.iso8601>";
        assert!(parse_response(doc, Limits::default()).is_err());
        for text in [
            "202--02-29T23:59:60Z",
            "2024-0--29T23:59:60",
            "2024-02--9T00:00:00",
        ] {
            let xml = format!("<value><dateTime.iso8601>{text}</dateTime.iso8601></value>");
            let err = one_param(&xml).expect_err(text);
            assert!(!err.is_xml_level(), "{text}: {err}");
        }
        assert_eq!(
            one_param("<value><dateTime.iso8601>2024-02-29T23:59:60Z</dateTime.iso8601></value>"),
            Ok(Value::DateTime(
                DateTime::new(2024, 2, 29, 23, 59, 60).unwrap()
            ))
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

    #[test]
    fn peek_method_name_reads_only_the_plainest_spelling() {
        let name = |b: &[u8]| peek_method_name(b).map(str::to_owned);
        // What Python's client, ours and the old tablets send.
        assert_eq!(
            name(b"<?xml version='1.0'?>\n<methodCall>\n<methodName>get_medal_tally</methodName>\n<params/></methodCall>\n"),
            Some("get_medal_tally".into())
        );
        assert_eq!(
            name(&write_call("scoreboard.medal_table", &[]).unwrap()),
            Some("scoreboard.medal_table".into())
        );
        assert_eq!(
            name(b"  <methodCall><methodName>a.b</methodName>"),
            Some("a.b".into())
        );
        // Everything else is left to the full parser.
        for other in [
            &b""[..],
            b"<methodCall><methodName></methodName></methodCall>",
            b"<methodCall><!-- c --><methodName>x</methodName></methodCall>",
            b"<methodCall ><methodName>x</methodName></methodCall>",
            b"<methodCall><methodName>x&amp;</methodName></methodCall>",
            b"<methodCall><methodName> x</methodName></methodCall>",
            b"<methodCall><methodName>x",
            b"<?xml <methodCall>?><methodCall><methodName>x</methodName>",
            b"<!DOCTYPE a><methodCall><methodName>x</methodName>",
            b"<methodResponse><methodName>x</methodName>",
            b"<?xml version='1.0'",
        ] {
            assert_eq!(name(other), None, "{}", String::from_utf8_lossy(other));
        }
        // Anything the peek accepts, the full parser agrees on.
        let call = write_call("get_medal_tally", &[Value::from("Gaul")]).unwrap();
        assert_eq!(
            parse_call(&call, Limits::default()).unwrap().method,
            peek_method_name(&call).unwrap()
        );
    }
}
