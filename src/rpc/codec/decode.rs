//! The reader: quick-xml events in, one [`MethodCall`] or response out.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::charset;
use super::scalar::{scalar, Scalar};
use super::{invalid, is_xml_space, Limits, MethodCall, ParseError, MULTICALL};
use crate::rpc::fault::Fault;
use crate::rpc::value::{is_xml_char, Struct, Value};

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

struct Parser {
    stack: Vec<Frame>,
    value_depth: usize,
    limits: Limits,
    root: Root,
    done: Option<Message>,
}

fn parse(bytes: &[u8], limits: Limits, root: Root) -> Result<Message, ParseError> {
    let (text, source) = charset::to_utf8(bytes)?;
    let mut reader = Reader::from_str(&text);
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
            Event::Decl(decl) => source.check_declaration(&decl)?,
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
                    b"i1" => Frame::Scalar(Scalar::Int { bits: 8 }, String::new()),
                    b"i2" => Frame::Scalar(Scalar::Int { bits: 16 }, String::new()),
                    b"int" | b"i4" => Frame::Scalar(Scalar::Int { bits: 32 }, String::new()),
                    b"i8" | b"biginteger" => Frame::Scalar(Scalar::Int { bits: 64 }, String::new()),
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

    /// The cap on entries when the innermost open element is the array of
    /// calls of a `system.multicall` (its first param's `<data>`: stack
    /// `methodCall params param value array data`, the method name read
    /// already, as it comes first); `None` anywhere else.
    fn multicall_cap(&self) -> Option<usize> {
        let cap = self.limits.max_multicall?;
        match self.stack.as_slice() {
            [Frame::MethodCall {
                name: Some(name), ..
            }, Frame::Params(done), Frame::Param(None), Frame::Value { .. }, Frame::Array(None), Frame::Data(_)]
                if done.is_empty() && name == MULTICALL =>
            {
                Some(cap)
            }
            _ => None,
        }
    }

    fn set_typed(&mut self, value: Value) {
        if let Some(Frame::Value { typed, .. }) = self.stack.last_mut() {
            *typed = Some(value);
        }
    }

    /// Hands a finished `<value>` to the element that holds it.
    fn deliver(&mut self, value: Value) -> Result<(), ParseError> {
        let calls_cap = self.multicall_cap();
        match self.stack.last_mut() {
            Some(Frame::Param(slot)) | Some(Frame::Fault(slot)) => *slot = Some(value),
            Some(Frame::Data(items)) => {
                if let Some(cap) = calls_cap.filter(|cap| items.len() >= *cap) {
                    return Err(ParseError::TooManyCalls(cap));
                }
                items.push(value)
            }
            Some(Frame::Member { value: slot, .. }) => *slot = Some(value),
            _ => return Err(invalid("value in an unexpected place")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::codec::testing::call;
    use crate::rpc::codec::DEFAULT_MAX_DEPTH;

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
            // Not a WHATWG label ("latin1" and "ISO-8859-1" are).
            (
                "<?xml version='1.0' encoding='latin-1'?><methodCall/>",
                "encoding",
            ),
            ("", "empty"),
        ] {
            let err = call(xml).expect_err(what);
            assert!(err.is_xml_level(), "{what}: {err}");
        }
        // (FF FE alone, tested here before, is now a UTF-16LE byte-order mark.)
        assert_eq!(
            parse_call(b"<methodCall>\xff\xfe", Limits::default()),
            Err(ParseError::NotUtf8)
        );
    }

    #[test]
    fn multicall_calls_are_counted_while_parsing() {
        let entry = "<value><struct><member><name>methodName</name><value>m</value></member>\
                     <member><name>params</name><value><array><data/></array></value></member>\
                     </struct></value>";
        let doc = |method: &str, n: usize, tail: &str| {
            format!(
                "<methodCall><methodName>{method}</methodName><params><param><value><array><data>{}\
                 </data></array></value></param>{tail}</params></methodCall>",
                entry.repeat(n)
            )
        };
        let capped = Limits {
            max_multicall: Some(3),
            ..Limits::default()
        };
        let parse = |xml: &str| parse_call(xml.as_bytes(), capped);
        assert_eq!(
            parse(&doc("system.multicall", 3, "")).unwrap().params[0]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            parse(&doc("system.multicall", 4, "")),
            Err(ParseError::TooManyCalls(3))
        );
        // Refused at the fourth call: what follows is never read (here, a
        // truncation the parser would otherwise report).
        let cut = doc("system.multicall", 4, "");
        let cut = &cut[..cut.len() - 20];
        assert_eq!(parse(cut), Err(ParseError::TooManyCalls(3)));
        // Only the calls of a multicall count: other methods, other params,
        // arrays nested in a call are free.
        assert!(parse(&doc("other", 10, "")).is_ok());
        let second = format!(
            "<param><value><array><data>{}</data></array></value></param>",
            entry.repeat(10)
        );
        assert!(parse(&doc("system.multicall", 1, &second)).is_ok());
        let nested = format!(
            "<methodCall><methodName>system.multicall</methodName><params><param><value><array><data>\
             <value><struct><member><name>params</name><value><array><data>{}</data></array></value>\
             </member></struct></value></data></array></value></param></params></methodCall>",
            "<value>x</value>".repeat(10)
        );
        assert!(parse(&nested).is_ok());
        assert!(
            call(&doc("system.multicall", 10, "")).is_ok(),
            "no cap by default"
        );
        assert!(!ParseError::TooManyCalls(3).is_xml_level());
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
}
