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
//!
//! `decode` is the reader (with `charset` first turning the bytes into UTF-8
//! text, and `scalar` turning a typed value's text into a [`Value`]),
//! `encode` the writer.
//!
//! Messages are read in the encoding their byte-order mark or XML
//! declaration names (ISO-8859-1 from PHP, UTF-16 with a byte-order mark, and
//! every other WHATWG encoding); UTF-8 is read in place, without a copy.
//! Messages are always written in UTF-8, without an `encoding` declaration.

mod charset;
mod decode;
mod encode;
mod scalar;

pub use decode::{parse_call, parse_response};
pub use encode::{write_call, write_fault, write_response};

use encode::MAX_WRITE_DEPTH;

use super::value::Value;

/// Default for [`Limits::max_depth`]: how deep values may nest.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// What a parser accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum number of `<value>` elements open at once. Default 64.
    pub max_depth: usize,
    /// Most calls the array of a `system.multicall` may hold, counted while
    /// parsing: the call is refused at the first one over, so a small
    /// compressed body cannot make the parser build thousands of calls
    /// first. Default `None` (no cap: the method table sets one).
    pub max_multicall: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_multicall: None,
        }
    }
}

/// The method whose calls [`Limits::max_multicall`] counts.
pub const MULTICALL: &str = "system.multicall";

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
    /// Bytes that are not valid in the encoding the message declares (or its
    /// byte-order mark gives), named here.
    #[error("message is not valid {0}")]
    NotInEncoding(&'static str),
    /// An encoding label nobody can decode: unknown, or one that the WHATWG
    /// Encoding Standard maps to its "replacement" encoding.
    #[error("unsupported encoding {0:?}")]
    Encoding(String),
    /// The declared encoding contradicts the byte-order mark, or is UTF-16
    /// on a message without one.
    #[error("encoding {declared:?} is declared, but the message is {actual}")]
    EncodingMismatch { declared: String, actual: String },
    #[error("DOCTYPE declarations are not allowed")]
    Doctype,
    #[error("entity &{0}; is not allowed: only the predefined entities are")]
    Entity(String),
    #[error("message ended before the document was complete")]
    Truncated,
    #[error("values nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("system.multicall holds more than {0} calls")]
    TooManyCalls(usize),
    #[error("invalid XML-RPC: {0}")]
    Invalid(String),
}

impl ParseError {
    /// True when the XML itself was refused, rather than the XML-RPC in it.
    pub fn is_xml_level(&self) -> bool {
        !matches!(
            self,
            ParseError::TooDeep(_) | ParseError::TooManyCalls(_) | ParseError::Invalid(_)
        )
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

/// True when `s` is only XML whitespace (space, tab, CR, LF).
fn is_xml_space(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Standard alphabet; padding optional on input (some encoders drop it),
/// always written.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Helpers the reader's tests share.
#[cfg(test)]
mod testing {
    use super::{parse_call, Limits, MethodCall, ParseError};
    use crate::rpc::Value;

    pub(super) fn call(xml: &str) -> Result<MethodCall, ParseError> {
        parse_call(xml.as_bytes(), Limits::default())
    }

    /// Parses `xml_value` (a `<value>` element) as the one param of a call.
    pub(super) fn one_param(xml_value: &str) -> Result<Value, ParseError> {
        let doc = format!(
            "<?xml version='1.0'?><methodCall><methodName>m</methodName><params><param>{xml_value}</param></params></methodCall>"
        );
        call(&doc).map(|mut c| c.params.remove(0))
    }
}
