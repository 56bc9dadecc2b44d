//! The text of a typed scalar (`<int>`, `<double>`, ...) read as a [`Value`].

use base64::Engine as _;

use super::{invalid, is_xml_space, ParseError, BASE64};
use crate::rpc::value::{DateTime, Value};

/// The kinds of typed value whose content is text.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scalar {
    Int,
    Bool,
    String,
    Double,
    DateTime,
    Base64,
    Nil,
}

/// Reads the collected `text` of a `kind` element.
///
/// # Errors
/// [`ParseError::Invalid`] when the text is not a value of that kind.
pub(super) fn scalar(kind: Scalar, text: String) -> Result<Value, ParseError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::codec::testing::one_param;
    use crate::rpc::codec::{parse_response, Limits};

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
}
