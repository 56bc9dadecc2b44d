//! The text of a typed scalar (`<int>`, `<double>`, ...) read as a [`Value`].

use base64::Engine as _;

use super::{invalid, is_xml_space, ParseError, BASE64};
use crate::rpc::value::{DateTime, Value};

/// The kinds of typed value whose content is text.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scalar {
    /// A signed integer that must fit in `bits` bits: 32 for `<int>` and
    /// `<i4>` (the spec's "four-byte signed integer"; Python's and PHP's
    /// servers refuse more), 64 for `<i8>`, and 8 and 16 for Apache's
    /// `<ex:i1>` and `<ex:i2>`. A wider value is refused, never widened.
    Int {
        bits: u32,
    },
    /// `0` or `1`, and nothing else (not `true`): the spec's only spellings.
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
        Scalar::Int { bits } => {
            let t = text.trim();
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!("invalid int {:?}", shown())));
            }
            let out_of_range = || invalid(format!("int {:?} does not fit in {bits} bits", shown()));
            let i: i64 = t.parse().map_err(|_| out_of_range())?;
            // The smallest and largest `bits`-bit integers (arithmetic shifts).
            if !(i64::MIN >> (64 - bits)..=i64::MAX >> (64 - bits)).contains(&i) {
                return Err(out_of_range());
            }
            Value::Int(i)
        }
        // XML whitespace around the digit is let through, as around an int.
        Scalar::Bool => match text.trim_matches([' ', '\t', '\r', '\n']) {
            "1" => Value::Bool(true),
            "0" => Value::Bool(false),
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

    /// `<int>` and `<i4>` hold exactly the 32-bit range and refuse one past
    /// either end as an invalid request (-32600), not an XML error; `<i8>`
    /// holds the 64-bit range; Apache's `<ex:i1>`/`<ex:i2>` their own.
    #[test]
    fn each_int_tag_holds_its_own_range() {
        let ok = |tag: &str, i: i64| {
            let xml = format!("<value><{tag} xmlns:ex='x'>{i}</{tag}></value>");
            assert_eq!(one_param(&xml), Ok(Value::Int(i)), "{xml}");
        };
        let refused = |tag: &str, text: &str| {
            let xml = format!("<value><{tag} xmlns:ex='x'>{text}</{tag}></value>");
            match one_param(&xml) {
                Err(ParseError::Invalid(msg)) => assert!(msg.contains("does not fit"), "{msg}"),
                other => panic!("{xml}: {other:?}"),
            }
        };
        let (max32, min32) = (i64::from(i32::MAX), i64::from(i32::MIN));
        for tag in ["int", "i4"] {
            ok(tag, max32);
            ok(tag, min32);
            refused(tag, &(max32 + 1).to_string());
            refused(tag, &(min32 - 1).to_string());
            refused(tag, &i64::MAX.to_string());
        }
        for tag in ["i8", "ex:i8"] {
            ok(tag, max32 + 1);
            ok(tag, min32 - 1);
            ok(tag, i64::MAX);
            ok(tag, i64::MIN);
            refused(tag, "9223372036854775808");
        }
        ok("ex:i1", 127);
        ok("ex:i1", -128);
        refused("ex:i1", "128");
        refused("ex:i1", "-129");
        ok("ex:i2", 32767);
        refused("ex:i2", "32768");
        let err = one_param("<value><int>2147483648</int></value>").unwrap_err();
        assert!(!err.is_xml_level(), "{err}");
    }

    /// `<boolean>` is `0` or `1`, with XML whitespace around it allowed;
    /// `true`, `false` and every other text are refused.
    #[test]
    fn booleans_are_only_0_or_1() {
        for (text, want) in [
            ("0", false),
            ("1", true),
            (" 1\n", true),
            ("\t0\r\n", false),
        ] {
            let xml = format!("<value><boolean>{text}</boolean></value>");
            assert_eq!(one_param(&xml), Ok(Value::Bool(want)), "{text:?}");
        }
        for text in [
            "true", "false", "TRUE", "2", "", " ", "01", "-1", "+1", "\u{A0}1",
        ] {
            let xml = format!("<value><boolean>{text}</boolean></value>");
            let err = one_param(&xml).expect_err(text);
            assert!(matches!(err, ParseError::Invalid(_)), "{text:?}: {err}");
        }
    }
}
