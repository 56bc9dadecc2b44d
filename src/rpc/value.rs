//! XML-RPC values: the data model shared by the codec, the server and the client.
//!
//! Integers are one `Int(i64)`: the writer chooses `<int>` when the value fits
//! in 32 bits (what every XML-RPC peer understands) and `<i8>` otherwise, so a
//! value read as `<i4>`, `<int>` or `<ex:i8>` compares equal to itself when it
//! comes back.

use std::collections::BTreeMap;
use std::fmt;

/// A struct's members, ordered by name so equal structs compare equal.
pub type Struct = BTreeMap<String, Value>;

/// One XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<int>`, `<i4>`, `<i8>` (and Apache's `<ex:i1>`, `<ex:i2>`, `<ex:i8>`).
    Int(i64),
    /// `<boolean>`: `0` or `1`.
    Bool(bool),
    /// `<string>`, or text directly inside `<value>`. Whitespace is kept exactly.
    String(String),
    /// `<double>`: always finite; NaN and infinities are refused by the codec.
    Double(f64),
    /// `<dateTime.iso8601>`: a calendar time without a zone, as the spec has it.
    DateTime(DateTime),
    /// `<base64>`: raw bytes.
    Base64(Vec<u8>),
    /// `<struct>`.
    Struct(Struct),
    /// `<array>`.
    Array(Vec<Value>),
    /// `<nil/>` (or `<ex:nil/>`), the common extension Python sends for `None`.
    Nil,
}

impl Value {
    /// The XML-RPC type name, as `system.methodSignature` and fault messages spell it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Bool(_) => "boolean",
            Value::String(_) => "string",
            Value::Double(_) => "double",
            Value::DateTime(_) => "dateTime.iso8601",
            Value::Base64(_) => "base64",
            Value::Struct(_) => "struct",
            Value::Array(_) => "array",
            Value::Nil => "nil",
        }
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer inside, if this is an int.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The members, if this is a struct.
    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Builds a struct value from `(name, value)` pairs.
    pub fn structure<K: Into<String>>(members: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Struct(members.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i.into())
    }
}
impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Int(i.into())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}
impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}
impl From<Struct> for Value {
    fn from(s: Struct) -> Self {
        Value::Struct(s)
    }
}

/// A `dateTime.iso8601` value: `YYYYMMDDTHH:MM:SS` on the wire, no zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// Why a date-time string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid dateTime.iso8601 {0:?}: expected YYYYMMDDTHH:MM:SS")]
pub struct DateTimeError(pub String);

impl DateTime {
    /// Builds a date-time, checking every field's range (leap years included).
    ///
    /// # Errors
    /// A field out of range. Second 60 is allowed for a leap second.
    pub fn new(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
    ) -> Result<Self, DateTimeError> {
        let dt = DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        };
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => 0,
        };
        if year > 9999 || day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 60
        {
            return Err(DateTimeError(dt.to_string()));
        }
        Ok(dt)
    }

    /// Parses `YYYYMMDDTHH:MM:SS` (the spec's form, what Python sends) and the
    /// dashed ISO form `YYYY-MM-DDTHH:MM:SS`, each optionally followed by `Z`.
    ///
    /// # Errors
    /// Anything else, including fractions and numeric zones, whose meaning the
    /// spec leaves open: refusing them beats silently changing the instant.
    pub fn parse(text: &str) -> Result<Self, DateTimeError> {
        let err = || DateTimeError(text.chars().take(64).collect());
        let s = text.trim();
        if !s.is_ascii() {
            // Also makes the byte slicing below safe.
            return Err(err());
        }
        let s = s.strip_suffix('Z').unwrap_or(s);
        let (date, time) = s.split_once('T').ok_or_else(err)?;
        let date: String = match date.len() {
            8 => date.to_owned(),
            10 if date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-' => {
                format!("{}{}{}", &date[0..4], &date[5..7], &date[8..10])
            }
            _ => return Err(err()),
        };
        let tb = time.as_bytes();
        if tb.len() != 8 || tb[2] != b':' || tb[5] != b':' {
            return Err(err());
        }
        let num = |s: &str| -> Result<u16, DateTimeError> {
            if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
                s.parse().map_err(|_| err())
            } else {
                Err(err())
            }
        };
        let narrow = |v: u16| u8::try_from(v).map_err(|_| err());
        DateTime::new(
            num(&date[0..4])?,
            narrow(num(&date[4..6])?)?,
            narrow(num(&date[6..8])?)?,
            narrow(num(&time[0..2])?)?,
            narrow(num(&time[3..5])?)?,
            narrow(num(&time[6..8])?)?,
        )
        .map_err(|_| err())
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// True for the characters XML 1.0 allows in a document (its `Char` production).
/// Anything else cannot be carried in XML, escaped or not.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_parses_both_forms_and_refuses_nonsense() {
        let want = DateTime::new(2024, 2, 29, 23, 59, 60).unwrap();
        assert_eq!(DateTime::parse("20240229T23:59:60").unwrap(), want);
        assert_eq!(DateTime::parse("2024-02-29T23:59:60Z").unwrap(), want);
        assert_eq!(want.to_string(), "20240229T23:59:60");
        for bad in [
            "",
            "2023-02-29T00:00:00",
            "20240230T00:00:00",
            "20241301T00:00:00",
            "20240101T24:00:00",
            "20240101T00:60:00",
            "20240101 00:00:00",
            "2024010T00:00:00",
            "+0240101T00:00:00",
            "20240101T00:00:00.5",
            "20240101T00:00:00+01:00",
            "２０２４0101T00:00:00",
            "123é567T00:00:00",
            "202--02-29T23:59:60Z",
            "2024-0--29T23:59:60",
        ] {
            assert!(DateTime::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn xml_char_rules() {
        assert!(is_xml_char('\t') && is_xml_char('\r') && is_xml_char('é'));
        assert!(!is_xml_char('\u{0}') && !is_xml_char('\u{1}') && !is_xml_char('\u{FFFE}'));
    }
}
