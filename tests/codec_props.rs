//! Property-based tests of the XML-RPC codec (`podium::rpc::codec`):
//! - every value the data model allows survives `write_call`/`parse_call`
//!   and `write_response`/`parse_response` unchanged (all variants, strings
//!   of any XML characters including whitespace-only ones and `\r`, any
//!   finite double, any valid date-time), and so do faults;
//! - nesting is accepted up to the depth limit and refused past it;
//! - no input makes the parsers panic: arbitrary bytes, soups of XML-RPC
//!   tokens, and valid messages with random edits; and whatever they do
//!   accept is written back and re-read as the same message.

use std::borrow::Cow;
use std::ops::RangeInclusive;

use podium::balancer::peek_method_name;
use podium::rpc::codec::{
    parse_call, parse_response, write_call, write_fault, write_response, DEFAULT_MAX_DEPTH,
};
use podium::rpc::{DateTime, Fault, Limits, MethodCall, ParseError, Struct, Value};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, Index};

/// Runs enough cases to explore, without writing regression files into the
/// source tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Characters XML 1.0 can carry, beyond ASCII (the C1 controls included).
const WIDE_CHARS: &[RangeInclusive<char>] = &[
    '\u{7F}'..='\u{D7FF}',
    '\u{E000}'..='\u{FFFD}',
    '\u{10000}'..='\u{10FFFF}',
];

/// One character XML can carry, weighted towards whitespace and characters
/// that mean something in markup.
fn xml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => select(vec![' ', '\t', '\n', '\r', '&', '<', '>', '"', '\'', ']', ';', '#', '=']),
        4 => proptest::char::range(' ', '~'),
        2 => proptest::char::ranges(Cow::Borrowed(WIDE_CHARS)),
    ]
}

/// Strings of XML characters: general ones, whitespace-only ones (which a
/// careless reader trims away), and fragments that look like markup.
fn xml_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => vec(xml_char(), 0..24).prop_map(String::from_iter),
        2 => vec(select(vec![' ', '\t', '\n', '\r']), 0..8).prop_map(String::from_iter),
        1 => select(vec![
            "]]>", "&amp;", "&#13;", "<![CDATA[x]]>", "<!-- c -->", "\r\n", "\r", "&lt;value&gt;",
            "<value><int>1</int></value>", "\u{FEFF}", "\u{85}\u{2028}",
        ])
        .prop_map(String::from),
    ]
}

/// Method names as the spec allows them: letters, digits, `_ . : /`.
fn method_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:/]{1,24}"
}

/// Any finite double, with the awkward ones made likely.
fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64 as f;
    prop_oneof![
        4 => f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO,
        1 => select(vec![
            0.0, -0.0, 0.1, -1.5, 1e21, 1e-7, 5e-324, f64::MAX, f64::MIN, f64::MIN_POSITIVE,
            f64::EPSILON, 9007199254740993.0,
        ]),
    ]
}

/// Any valid date-time, leap days and leap seconds included.
fn date_time() -> impl Strategy<Value = DateTime> {
    (
        0u16..=9999,
        1u8..=12,
        1u8..=31,
        0u8..=23,
        0u8..=59,
        0u8..=60,
    )
        .prop_filter_map("a real calendar date", |(y, mo, d, h, mi, s)| {
            DateTime::new(y, mo, d, h, mi, s).ok()
        })
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => any::<i64>(),
        2 => any::<i32>().prop_map(i64::from),
        1 => select(vec![
            0,
            i64::MIN,
            i64::MAX,
            i64::from(i32::MAX),
            i64::from(i32::MAX) + 1,
            i64::from(i32::MIN),
            i64::from(i32::MIN) - 1,
        ]),
    ]
}

/// Integers `<int>` can carry: the 32-bit range, ends included (a wider one
/// is refused, so it would test only the refusal).
fn int32() -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => any::<i32>(),
        1 => select(vec![0, i32::MIN, i32::MAX]),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        int().prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
        xml_string().prop_map(Value::String),
        finite_f64().prop_map(Value::Double),
        date_time().prop_map(Value::DateTime),
        vec(any::<u8>(), 0..48).prop_map(Value::Base64),
        Just(Value::Nil),
    ]
}

/// Any value, nested at most a few levels (far below the depth limit).
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(xml_string(), inner, 0..6).prop_map(|m: Struct| Value::Struct(m)),
        ]
    })
}

/// `depth` values nested in one-item arrays and structs, alternately.
fn nested(depth: usize, leaf: Value) -> Value {
    (1..depth).fold(leaf, |inner, level| {
        if level % 2 == 0 {
            Value::Array(vec![inner])
        } else {
            Value::structure([("m", inner)])
        }
    })
}

/// Pieces of XML-RPC documents, for token soups and edits.
const TOKENS: &[&str] = &[
    "<?xml version='1.0'?>",
    "<methodCall>",
    "</methodCall>",
    "<methodName>",
    "</methodName>",
    "<params>",
    "</params>",
    "<params/>",
    "<param>",
    "</param>",
    "<value>",
    "</value>",
    "<value/>",
    "<array>",
    "</array>",
    "<data>",
    "</data>",
    "<data/>",
    "<struct>",
    "</struct>",
    "<struct/>",
    "<member>",
    "</member>",
    "<name>",
    "</name>",
    "<int>",
    "</int>",
    "<i4>",
    "</i4>",
    "<i8>",
    "</i8>",
    "<string>",
    "</string>",
    "<string/>",
    "<double>",
    "</double>",
    "<boolean>",
    "</boolean>",
    "<base64>",
    "</base64>",
    "<dateTime.iso8601>",
    "</dateTime.iso8601>",
    "<nil/>",
    "<nil>",
    "</nil>",
    "<ex:i8 xmlns:ex='x'>",
    "</ex:i8>",
    "<methodResponse>",
    "</methodResponse>",
    "<fault>",
    "</fault>",
    "faultCode",
    "faultString",
    "echo",
    "x",
    "1",
    "-7",
    "+0",
    "1.5",
    "-1e300",
    "aGk=",
    "19980717T14:08:55",
    "2024-02-29T23:59:60Z",
    " ",
    "\n",
    "\r\n",
    "\t",
    "&amp;",
    "&lt;",
    "&#13;",
    "&#x1F600;",
    "&#0;",
    "&#xD800;",
    "&bogus;",
    "&",
    "<![CDATA[z]]>",
    "<![CDATA[",
    "]]>",
    "<!-- c -->",
    "<?pi x?>",
    "<!DOCTYPE x>",
    "\u{FEFF}",
    "é",
    "\u{FFFE}",
    "<",
    ">",
    "/>",
    "=\"",
    "\0",
];

fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    vec(select(TOKENS), 0..48).prop_map(|tokens| tokens.concat().into_bytes())
}

/// One random edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index),
    Insert(Index, u8),
    Replace(Index, u8),
    InsertToken(Index, &'static str),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<Index>().prop_map(Edit::Delete),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<Index>(), select(TOKENS)).prop_map(|(i, t)| Edit::InsertToken(i, t)),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    if bytes.is_empty() {
        return;
    }
    match edit {
        Edit::Delete(i) => {
            bytes.remove(i.index(bytes.len()));
        }
        Edit::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Edit::Replace(i, b) => {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        Edit::InsertToken(i, t) => {
            let at = i.index(bytes.len() + 1);
            bytes.splice(at..at, t.bytes());
        }
        Edit::Truncate(i) => bytes.truncate(i.index(bytes.len())),
    }
}

/// Applies `edits` to `text`: each replaces (op 0 and 1), inserts (op 2) or
/// deletes (op 3) one character, picking new characters from `alphabet`.
fn edit_text(text: &str, alphabet: &str, edits: &[(u8, Index, Index)]) -> String {
    let alphabet: Vec<char> = alphabet.chars().collect();
    let mut chars: Vec<char> = text.chars().collect();
    for (op, at, pick) in edits {
        let c = alphabet[pick.index(alphabet.len())];
        match op {
            2 => chars.insert(at.index(chars.len() + 1), c),
            _ if chars.is_empty() => {}
            3 => {
                chars.remove(at.index(chars.len()));
            }
            _ => {
                let i = at.index(chars.len());
                chars[i] = c;
            }
        }
    }
    chars.into_iter().collect()
}

fn text_edits() -> impl Strategy<Value = Vec<(u8, Index, Index)>> {
    vec((0u8..4, any::<Index>(), any::<Index>()), 0..4)
}

/// A scalar element and text to put in it: a valid text for the type with a
/// few characters replaced, inserted or deleted, drawn from the characters
/// that matter to that type's parser. Random bytes almost never reach those
/// parsers' corner cases (a third dash in a dashed date, say); these do.
fn scalar_text() -> impl Strategy<Value = (&'static str, String)> {
    let base = prop_oneof![
        1 => int32().prop_map(|i| ("int", i.to_string(), "0123456789+- ")),
        1 => int().prop_map(|i| ("i8", i.to_string(), "0123456789+- ")),
        1 => finite_f64().prop_map(|d| ("double", format!("{d:?}"), "0123456789+-.eE ")),
        1 => any::<bool>().prop_map(|b| ("boolean", u8::from(b).to_string(), "01tTrRuUeEfFaAlLsS ")),
        3 => date_time_text().prop_map(|text| ("dateTime.iso8601", text, "0123456789-:TZ")),
        1 => vec(any::<u8>(), 0..12).prop_map(|bytes| {
            use base64::Engine as _;
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            ("base64", text, "AZaz09+/= \n")
        }),
    ];
    (base, text_edits())
        .prop_map(|((tag, text, alphabet), edits)| (tag, edit_text(&text, alphabet, &edits)))
}

/// A valid date-time in either accepted form: `YYYYMMDDTHH:MM:SS` or
/// `YYYY-MM-DDTHH:MM:SS`, maybe with a `Z`.
fn date_time_text() -> impl Strategy<Value = String> {
    (date_time(), any::<bool>(), any::<bool>()).prop_map(|(dt, dashed, zulu)| {
        let compact = dt.to_string();
        let mut text = if dashed {
            format!("{}-{}-{}", &compact[0..4], &compact[4..6], &compact[6..])
        } else {
            compact
        };
        if zulu {
            text.push('Z');
        }
        text
    })
}

/// Whatever `parse_call` accepts must be writable and read back the same;
/// whatever `parse_response` accepts likewise. Never panics (that is the
/// other half of the property, checked by getting here).
fn check_accepted_input_is_stable(bytes: &[u8]) -> Result<(), TestCaseError> {
    let limits = Limits::default();
    if let Ok(call) = parse_call(bytes, limits) {
        // The balancer relays a call by the name it peeks: it must be the
        // name the front-end will parse.
        if let Some(peeked) = peek_method_name(bytes) {
            prop_assert_eq!(peeked, call.method.as_str());
        }
        let written = write_call(&call.method, &call.params).map_err(|e| {
            TestCaseError::fail(format!("accepted {call:?} but cannot write it: {e}"))
        })?;
        prop_assert_eq!(parse_call(&written, limits), Ok(call));
    }
    match parse_response(bytes, limits) {
        Ok(Ok(value)) => {
            let written = write_response(&value).map_err(|e| {
                TestCaseError::fail(format!("accepted {value:?} but cannot write it: {e}"))
            })?;
            prop_assert_eq!(parse_response(&written, limits), Ok(Ok(value)));
        }
        Ok(Err(fault)) => {
            prop_assert_eq!(parse_response(&write_fault(&fault), limits), Ok(Err(fault)));
        }
        Err(_) => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn calls_round_trip(method in method_name(), params in vec(value(), 0..4)) {
        let bytes = write_call(&method, &params).expect("every generated value is writable");
        let back = parse_call(&bytes, Limits::default());
        prop_assert_eq!(peek_method_name(&bytes), Some(method.as_str()));
        prop_assert_eq!(back, Ok(MethodCall { method, params }), "{}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn responses_round_trip(v in value()) {
        let bytes = write_response(&v).expect("every generated value is writable");
        let back = parse_response(&bytes, Limits::default());
        prop_assert_eq!(back, Ok(Ok(v)), "{}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn method_names_with_any_inner_characters_round_trip(
        head in "[a-z]", middle in xml_string(), tail in "[a-z]"
    ) {
        let method = format!("{head}{middle}{tail}");
        let bytes = write_call(&method, &[]).expect("writable");
        prop_assert_eq!(
            parse_call(&bytes, Limits::default()),
            Ok(MethodCall { method, params: vec![] })
        );
    }

    #[test]
    fn faults_round_trip(code in any::<i32>(), message in xml_string()) {
        let fault = Fault::new(code, message);
        let back = parse_response(&write_fault(&fault), Limits::default());
        prop_assert_eq!(back, Ok(Err(fault)));
    }

    #[test]
    fn strings_keep_every_whitespace_character(
        s in vec(select(vec![' ', '\t', '\n', '\r']), 0..16).prop_map(String::from_iter)
    ) {
        let v = Value::String(s);
        let bytes = write_response(&v).expect("writable");
        prop_assert_eq!(parse_response(&bytes, Limits::default()), Ok(Ok(v)));
    }

    #[test]
    fn doubles_round_trip_bit_for_bit(d in finite_f64()) {
        let bytes = write_response(&Value::Double(d)).expect("finite");
        match parse_response(&bytes, Limits::default()) {
            Ok(Ok(Value::Double(back))) => prop_assert_eq!(back.to_bits(), d.to_bits()),
            other => prop_assert!(false, "{d:?} came back as {other:?}"),
        }
    }

    #[test]
    fn nesting_is_accepted_up_to_the_limit_and_refused_past_it(
        depth in 1..(DEFAULT_MAX_DEPTH + 16), leaf in leaf()
    ) {
        let v = nested(depth, leaf);
        let bytes = write_call("m", std::slice::from_ref(&v)).expect("writable");
        let back = parse_call(&bytes, Limits::default());
        if depth <= DEFAULT_MAX_DEPTH {
            prop_assert_eq!(back, Ok(MethodCall { method: "m".into(), params: vec![v] }));
        } else {
            prop_assert_eq!(back, Err(ParseError::TooDeep(DEFAULT_MAX_DEPTH)));
        }
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..1024)) {
        check_accepted_input_is_stable(&bytes)?;
    }

    #[test]
    fn edited_scalar_texts_never_panic((tag, text) in scalar_text()) {
        let xml = format!(
            "<methodCall><methodName>m</methodName><params><param><value><{tag}>{text}</{tag}></value></param></params></methodCall>"
        );
        check_accepted_input_is_stable(xml.as_bytes())?;
    }

    #[test]
    fn token_soups_never_panic(bytes in token_soup()) {
        check_accepted_input_is_stable(&bytes)?;
    }

    #[test]
    fn edited_messages_never_panic(
        method in method_name(),
        params in vec(value(), 0..3),
        response in any::<bool>(),
        edits in vec(edit(), 1..5),
    ) {
        let mut bytes = if response {
            write_response(&Value::Array(params)).expect("writable")
        } else {
            write_call(&method, &params).expect("writable")
        };
        for e in &edits {
            apply(&mut bytes, e);
        }
        check_accepted_input_is_stable(&bytes)?;
    }
}

/// Inputs that are not well-formed XML (XML 1.0 §2, §3) but that
/// `parse_call` accepts, or refuses as invalid XML-RPC (-32600) instead of
/// as not well-formed (-32700).
#[test]
fn not_well_formed_xml_is_a_parse_error() {
    let echo = |inner: &str| {
        format!("<methodCall><methodName>echo</methodName><params><param><value>{inner}</value></param></params></methodCall>")
    };
    let cases: Vec<(&str, String)> = vec![
        // Refused, but as -32600 (ParseError::Invalid).
        ("text before the root", "hello".into()),
        ("text after the root", "<methodCall><methodName>m</methodName></methodCall>junk".into()),
        ("invalid element name", "<1methodCall><methodName>m</methodName></1methodCall>".into()),
        ("'<' in a name", "<<<>>>".into()),
        ("'<' in text", echo("<string>a<b</string>")),
        // Accepted outright.
        ("unquoted attribute", echo("<string a=b>x</string>")),
        ("duplicate attribute", "<methodCall x='1' x='2'><methodName>m</methodName></methodCall>".into()),
        ("'--' inside a comment", echo("<string>a<!-- x -- y -->b</string>")),
        ("']]>' in text", echo("<string>]]></string>")),
        ("a second XML declaration", "<?xml version='1.0'?><?xml version='1.0'?><methodCall><methodName>m</methodName></methodCall>".into()),
    ];
    let mut wrong = Vec::new();
    for (what, xml) in &cases {
        match parse_call(xml.as_bytes(), Limits::default()) {
            Err(e) if e.is_xml_level() => {}
            other => wrong.push(format!("{what}: {xml:?} -> {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused as XML errors:\n{}",
        wrong.join("\n")
    );
}
