//! XML-RPC faults: the protocol's own codes, and the conversion from codec
//! errors to faults.
//!
//! The codes follow the widely used "specification for fault code
//! interoperability" (the same numbers as JSON-RPC). An application defines
//! its own codes beside them (Podium's are in `api::faults`).

use std::fmt;

use super::codec::ParseError;
use super::value::Value;

/// Not well-formed XML, not UTF-8, or markup we refuse (DOCTYPE, entities).
pub const PARSE_ERROR: i32 = -32700;
/// Well-formed XML that is not a valid XML-RPC message, or exceeds a limit.
pub const INVALID_REQUEST: i32 = -32600;
/// No method by that name.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// Wrong number or type of arguments.
pub const INVALID_PARAMS: i32 = -32602;
/// The server failed to carry out a valid call.
pub const INTERNAL_ERROR: i32 = -32603;

/// An XML-RPC fault: `faultCode` and `faultString`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: i32,
    pub message: String,
}

impl Fault {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Fault {
            code,
            message: message.into(),
        }
    }

    pub fn method_not_found(name: &str) -> Self {
        let shown: String = name.chars().take(100).collect();
        Fault::new(
            METHOD_NOT_FOUND,
            format!("method {shown:?} is not supported"),
        )
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Fault::new(INVALID_PARAMS, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Fault::new(INTERNAL_ERROR, message)
    }

    /// The fault as the struct a fault response (or a multicall entry) carries.
    pub fn to_value(&self) -> Value {
        Value::structure([
            ("faultCode", Value::Int(self.code.into())),
            ("faultString", Value::String(self.message.clone())),
        ])
    }

    /// Reads a fault struct back. Lenient about extra members, strict about the two
    /// it needs.
    pub fn from_value(value: &Value) -> Option<Fault> {
        let members = value.as_struct()?;
        let code = members.get("faultCode")?.as_i64()?;
        let message = match members.get("faultString")? {
            Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        };
        Some(Fault::new(i32::try_from(code).ok()?, message))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Fault {}

impl From<ParseError> for Fault {
    fn from(err: ParseError) -> Self {
        let code = if err.is_xml_level() {
            PARSE_ERROR
        } else {
            INVALID_REQUEST
        };
        Fault::new(code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_round_trips_through_a_value() {
        let f = Fault::new(2, "no team \"Atlantis\"");
        assert_eq!(Fault::from_value(&f.to_value()), Some(f));
        assert_eq!(Fault::from_value(&Value::Int(1)), None);
    }

    #[test]
    fn parse_errors_map_to_the_standard_codes() {
        assert_eq!(Fault::from(ParseError::Doctype).code, PARSE_ERROR);
        assert_eq!(Fault::from(ParseError::TooDeep(64)).code, INVALID_REQUEST);
        assert_eq!(
            Fault::from(ParseError::Invalid("x".into())).code,
            INVALID_REQUEST
        );
    }
}
