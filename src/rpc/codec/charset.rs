//! The message's character encoding: bytes in the encoding the sender used,
//! UTF-8 text out, before the reader sees them.
//!
//! As XML 1.0 (§4.3.3, Appendix F) has it: a byte-order mark decides first
//! (UTF-8, UTF-16LE, UTF-16BE), then the `encoding` pseudo-attribute of the
//! XML declaration, then the default, UTF-8. Labels mean what the WHATWG
//! Encoding Standard says (through `encoding_rs`), as in browsers and PHP:
//! `ISO-8859-1`, `latin1` and `US-ASCII` are all read as windows-1252, a
//! superset. Bytes that are not valid in the encoding are refused, never
//! replaced, and so is an encoding nobody can decode.
//!
//! UTF-8, and ASCII in any other ASCII-compatible encoding, is borrowed as
//! it is: what every Podium process and most clients send is never copied.
//! Without a byte-order mark, the encoding label is found by a quick look at
//! the declaration's raw bytes ([`to_utf8`]); the reader, which reads the
//! declaration fully with quick-xml anyway, then checks that label against
//! the encoding used ([`Source::check_declaration`]).

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8};
use quick_xml::events::BytesDecl;

use super::ParseError;

/// How much of an unknown encoding label an error repeats.
const MAX_SHOWN_LABEL_CHARS: usize = 32;

/// The encoding a message was read in, and whether its byte-order mark said
/// so, to check the XML declaration against once the reader sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Source {
    encoding: &'static Encoding,
    by_bom: bool,
}

/// `bytes` as UTF-8 text (without a byte-order mark), and where that
/// encoding came from.
///
/// # Errors
/// An unknown or undecodable encoding label, UTF-16 declared without a
/// byte-order mark, or bytes not valid in the encoding.
pub(super) fn to_utf8(bytes: &[u8]) -> Result<(Cow<'_, str>, Source), ParseError> {
    let (source, body) = match Encoding::for_bom(bytes) {
        Some((encoding, bom_len)) => {
            let source = Source {
                encoding,
                by_bom: true,
            };
            (source, &bytes[bom_len..])
        }
        None => {
            let source = Source {
                encoding: declared_encoding(bytes)?,
                by_bom: false,
            };
            (source, bytes)
        }
    };
    let text = if source.encoding == UTF_8 {
        // The standard library's check, exactly as before encodings were
        // supported: the common case pays nothing new.
        Cow::Borrowed(std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?)
    } else {
        source
            .encoding
            .decode_without_bom_handling_and_without_replacement(body)
            .ok_or(ParseError::NotInEncoding(source.encoding.name()))?
    };
    Ok((text, source))
}

impl Source {
    /// Checks the label of the XML declaration the reader found at the
    /// start of the text against the encoding actually used. A UTF-16 label
    /// matches either UTF-16 byte-order mark (the mark gives the byte
    /// order); any other label must name the same encoding.
    ///
    /// # Errors
    /// A malformed or unknown label, one that contradicts the byte-order
    /// mark, or, without a mark, one that [`declared_label`] did not find
    /// where XML puts it.
    pub(super) fn check_declaration(&self, decl: &BytesDecl<'_>) -> Result<(), ParseError> {
        let Some(label) = decl.encoding() else {
            return Ok(());
        };
        let label = label.map_err(|e| ParseError::Xml(e.to_string()))?;
        let declared = encoding_for_label(&label)?;
        if declared == self.encoding || (is_utf16(declared) && is_utf16(self.encoding)) {
            return Ok(());
        }
        if !self.by_bom {
            return Err(ParseError::Xml(format!(
                "encoding {:?} is declared out of place: it must follow the version",
                shown(&label)
            )));
        }
        Err(ParseError::EncodingMismatch {
            declared: shown(&label),
            actual: format!("{} by its byte-order mark", self.encoding.name()),
        })
    }
}

/// The encoding the XML declaration at the very start of `bytes` names, or
/// UTF-8 when there is none.
///
/// # Errors
/// An unknown label, or a UTF-16 one: without a byte-order mark (this is
/// only called without one) the message is not UTF-16, since its
/// declaration just read as ASCII. XML requires UTF-16 to carry the mark.
fn declared_encoding(bytes: &[u8]) -> Result<&'static Encoding, ParseError> {
    let Some(label) = declared_label(bytes) else {
        return Ok(UTF_8);
    };
    let encoding = encoding_for_label(label)?;
    if is_utf16(encoding) {
        return Err(ParseError::EncodingMismatch {
            declared: shown(label),
            actual: "not UTF-16: it has no byte-order mark".into(),
        });
    }
    Ok(encoding)
}

/// The `encoding` label of the XML declaration at the very start of
/// `bytes`, read by the grammar (XML 1.0 §2.8): `XMLDecl ::= '<?xml'
/// VersionInfo EncodingDecl? SDDecl? S? '?>'`, so a label, if any, is the
/// pseudo-attribute right after the version. `None` without a declaration
/// or a label. A declaration this misreads is not well-formed, and the
/// reader's check refuses it.
fn declared_label(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(b"<?xml")?;
    let (_version, rest) = pseudo_attribute(rest, b"version")?;
    pseudo_attribute(rest, b"encoding").map(|(label, _)| label)
}

/// `S name Eq 'value'` (or with double quotes) at the start of `bytes`: the
/// value, and the bytes after it.
fn pseudo_attribute<'a>(bytes: &'a [u8], name: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    fn skip_space(b: &[u8]) -> &[u8] {
        let n = b
            .iter()
            .take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
            .count();
        &b[n..]
    }
    let rest = skip_space(bytes);
    if rest.len() == bytes.len() {
        return None;
    }
    let rest = skip_space(rest.strip_prefix(name)?);
    let rest = skip_space(rest.strip_prefix(b"=")?);
    let (&quote, rest) = rest.split_first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let end = rest.iter().position(|&b| b == quote)?;
    Some((&rest[..end], &rest[end + 1..]))
}

/// The WHATWG encoding for `label` (case and surrounding spaces ignored).
/// The labels WHATWG maps to its "replacement" encoding (ISO-2022-KR,
/// HZ-GB-2312, ...) are refused like unknown ones: nothing decodes them.
fn encoding_for_label(label: &[u8]) -> Result<&'static Encoding, ParseError> {
    // What most declarations say, without a search of WHATWG's table.
    if label.eq_ignore_ascii_case(b"utf-8") {
        return Ok(UTF_8);
    }
    Encoding::for_label_no_replacement(label).ok_or_else(|| ParseError::Encoding(shown(label)))
}

fn is_utf16(encoding: &'static Encoding) -> bool {
    encoding == UTF_16LE || encoding == UTF_16BE
}

/// A label as an error message repeats it: clipped, never trusted.
fn shown(label: &[u8]) -> String {
    String::from_utf8_lossy(label)
        .chars()
        .take(MAX_SHOWN_LABEL_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::codec::{parse_call, parse_response, Limits};
    use crate::rpc::fault::{Fault, PARSE_ERROR};
    use crate::rpc::Value;

    /// A call of `echo` with one `<string>`, after `decl`: bytes as given,
    /// so the string can be in any ASCII-compatible encoding.
    fn echo_call(decl: &str, string: &[u8]) -> Vec<u8> {
        [
            decl.as_bytes(),
            b"<methodCall><methodName>echo</methodName><params><param><value><string>",
            string,
            b"</string></value></param></params></methodCall>",
        ]
        .concat()
    }

    fn echoed(bytes: &[u8]) -> Result<Value, ParseError> {
        parse_call(bytes, Limits::default()).map(|mut call| call.params.remove(0))
    }

    fn declaring(label: &str) -> String {
        format!("<?xml version=\"1.0\" encoding=\"{label}\"?>\n")
    }

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

    /// PHP's xmlrpc extension declares ISO-8859-1 by default; é is E9 and ü
    /// is FC there. Every spelling of the label browsers know works, and
    /// US-ASCII means the same (WHATWG reads all of them as windows-1252).
    #[test]
    fn iso_8859_1_is_read_by_its_declaration() {
        for label in [
            "iso-8859-1",
            "ISO-8859-1",
            "latin1",
            "ISO_8859-1",
            "l1",
            "US-ASCII",
        ] {
            let doc = echo_call(&declaring(label), b"caf\xe9 M\xfcller");
            assert_eq!(echoed(&doc), Ok(Value::from("café Müller")), "{label}");
        }
        // Spaces around "=" and after the label, as the grammar allows.
        let spaced = echo_call("<?xml version = '1.0'\n encoding = 'latin1' ?>", b"\xe9");
        assert_eq!(echoed(&spaced), Ok(Value::from("é")));
        let response = [
            declaring("ISO-8859-1").as_bytes(),
            b"<methodResponse><params><param><value>\xe9t\xe9</value></param></params></methodResponse>",
        ]
        .concat();
        assert_eq!(
            parse_response(&response, Limits::default()),
            Ok(Ok(Value::from("été")))
        );
    }

    #[test]
    fn windows_1252_and_multibyte_encodings_are_read_too() {
        let doc = echo_call(&declaring("windows-1252"), b"\x80 \x93q\x94 \x9f");
        assert_eq!(echoed(&doc), Ok(Value::from("€ \u{201C}q\u{201D} Ÿ")));
        let doc = echo_call(&declaring("Shift_JIS"), b"\x82\xa0");
        assert_eq!(echoed(&doc), Ok(Value::from("あ")));
    }

    /// XML 1.0 requires a parser to accept UTF-16 with a byte-order mark.
    /// A declaration is optional; if there is one, any UTF-16 label agrees
    /// with either mark, which gives the byte order.
    #[test]
    fn utf16_with_a_byte_order_mark_is_read_in_either_byte_order() {
        let body = "<methodCall><methodName>echo</methodName><params><param><value>é 😀 ü</value></param></params></methodCall>";
        for big_endian in [false, true] {
            for decl in [
                "",
                "<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
                "<?xml version='1.0' encoding='utf-16le'?>",
                "<?xml version='1.0' encoding='UTF-16BE'?>",
            ] {
                let doc = utf16(&format!("{decl}{body}"), big_endian);
                assert_eq!(
                    echoed(&doc),
                    Ok(Value::from("é 😀 ü")),
                    "{decl} {big_endian}"
                );
            }
        }
        let response = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><methodResponse><params><param><value><int>7</int></value></param></params></methodResponse>";
        assert_eq!(
            parse_response(&utf16(response, true), Limits::default()),
            Ok(Ok(Value::Int(7)))
        );
    }

    #[test]
    fn utf8_with_a_byte_order_mark_is_read_with_or_without_a_declaration() {
        for decl in [
            "",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<?xml version='1.0'?>",
        ] {
            let doc = [b"\xef\xbb\xbf", echo_call(decl, "é".as_bytes()).as_slice()].concat();
            assert_eq!(echoed(&doc), Ok(Value::from("é")), "{decl}");
        }
    }

    /// An encoding nobody can decode is a parse error (-32700) that names
    /// it: an unknown label, or one WHATWG maps to "replacement". Long
    /// labels are clipped.
    #[test]
    fn unsupported_encodings_are_named() {
        for label in ["x-klingon", "latin-1", "ISO-2022-KR", "UTF-7", "EBCDIC-US"] {
            let err = echoed(&echo_call(&declaring(label), b"x")).unwrap_err();
            assert_eq!(err, ParseError::Encoding(label.into()));
            let fault = Fault::from(err);
            assert_eq!(fault.code, PARSE_ERROR);
            assert!(fault.message.contains(label), "{}", fault.message);
        }
        // A label out of its place is not well-formed XML.
        let late = echo_call(
            "<?xml version='1.0' standalone='yes' encoding='latin1'?>",
            b"x",
        );
        assert!(matches!(echoed(&late), Err(ParseError::Xml(_))));
        // A label that is not even well-formed is an XML error, as before.
        let unquoted = echo_call("<?xml version='1.0' encoding=latin1?>", b"x");
        for doc in [
            unquoted.clone(),
            [b"\xef\xbb\xbf", unquoted.as_slice()].concat(),
        ] {
            let err = echoed(&doc).unwrap_err();
            assert!(matches!(err, ParseError::Xml(_)), "{err}");
        }
        let long = "x".repeat(500);
        let err = echoed(&echo_call(&declaring(&long), b"x")).unwrap_err();
        assert_eq!(err, ParseError::Encoding("x".repeat(MAX_SHOWN_LABEL_CHARS)));
        // Inside UTF-16 the label is only seen once decoded: same answer.
        let doc = utf16(
            "<?xml version='1.0' encoding='x-klingon'?><methodCall/>",
            false,
        );
        assert_eq!(echoed(&doc), Err(ParseError::Encoding("x-klingon".into())));
        let response = echo_call(&declaring("x-klingon"), b"x");
        assert_eq!(
            parse_response(&response, Limits::default()),
            Err(ParseError::Encoding("x-klingon".into()))
        );
    }

    /// Bytes not valid in the message's encoding are refused (-32700),
    /// never replaced with U+FFFD.
    #[test]
    fn bytes_invalid_in_the_encoding_are_refused_not_replaced() {
        let cases: [(Vec<u8>, ParseError); 6] = [
            (echo_call("", b"\xe9"), ParseError::NotUtf8),
            (echo_call(&declaring("UTF-8"), b"\xe9"), ParseError::NotUtf8),
            // Greek windows-1253 leaves AA unassigned.
            (
                echo_call(&declaring("windows-1253"), b"\xaa"),
                ParseError::NotInEncoding("windows-1253"),
            ),
            // A Shift_JIS lead byte without its trail byte.
            (
                echo_call(&declaring("Shift_JIS"), b"\x82 "),
                ParseError::NotInEncoding("Shift_JIS"),
            ),
            // An odd number of bytes after the mark.
            (
                [utf16("<methodCall/>", false), vec![b'x']].concat(),
                ParseError::NotInEncoding("UTF-16LE"),
            ),
            // A lone high surrogate.
            (
                [utf16("<methodCall>", true), vec![0xD8, 0x00, 0x00, b'<']].concat(),
                ParseError::NotInEncoding("UTF-16BE"),
            ),
        ];
        for (doc, want) in cases {
            let err = echoed(&doc).unwrap_err();
            assert_eq!(err, want, "{}", String::from_utf8_lossy(&doc));
            assert_eq!(Fault::from(err).code, PARSE_ERROR);
        }
    }

    /// A declaration that contradicts the byte-order mark is refused, and so
    /// is a UTF-16 label without a mark: XML requires the mark in UTF-16,
    /// and a declaration that just read as ASCII shows the message is not
    /// UTF-16 anyway (expat, hence Python's server, refuses it too).
    #[test]
    fn the_declaration_must_agree_with_the_bytes() {
        let mismatch = |declared: &str, actual: &str| ParseError::EncodingMismatch {
            declared: declared.into(),
            actual: actual.into(),
        };
        let cases = [
            (
                echo_call(&declaring("UTF-16"), b"x"),
                mismatch("UTF-16", "not UTF-16: it has no byte-order mark"),
            ),
            (
                utf16(
                    &String::from_utf8(echo_call(&declaring("ISO-8859-1"), b"x")).unwrap(),
                    false,
                ),
                mismatch("ISO-8859-1", "UTF-16LE by its byte-order mark"),
            ),
            (
                [
                    b"\xef\xbb\xbf",
                    echo_call(&declaring("ISO-8859-1"), b"x").as_slice(),
                ]
                .concat(),
                mismatch("ISO-8859-1", "UTF-8 by its byte-order mark"),
            ),
            (
                [
                    b"\xef\xbb\xbf",
                    echo_call(&declaring("UTF-16"), b"x").as_slice(),
                ]
                .concat(),
                mismatch("UTF-16", "UTF-8 by its byte-order mark"),
            ),
        ];
        for (doc, want) in cases {
            let err = echoed(&doc).unwrap_err();
            assert_eq!(err, want, "{}", String::from_utf8_lossy(&doc));
            assert_eq!(Fault::from(err).code, PARSE_ERROR);
        }
    }

    /// The common case is not copied: UTF-8 (with or without a mark or a
    /// declaration), and ASCII-only text in an ASCII-compatible encoding,
    /// are read where they lie.
    #[test]
    fn utf8_and_ascii_text_are_borrowed_not_copied() {
        let borrowed_at = |bytes: &[u8], offset: usize| {
            let (text, _) = to_utf8(bytes).unwrap();
            assert!(
                matches!(text, Cow::Borrowed(t) if t.as_ptr() == bytes[offset..].as_ptr()),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        };
        borrowed_at(&echo_call("<?xml version='1.0'?>", "é".as_bytes()), 0);
        borrowed_at(&echo_call(&declaring("utf-8"), "é".as_bytes()), 0);
        borrowed_at(&echo_call(&declaring("iso-8859-1"), b"plain"), 0);
        borrowed_at(
            &[b"\xef\xbb\xbf", echo_call("", b"x").as_slice()].concat(),
            3,
        );
        let latin1 = echo_call(&declaring("iso-8859-1"), b"\xe9");
        assert!(matches!(to_utf8(&latin1), Ok((Cow::Owned(_), _))));
    }
}
