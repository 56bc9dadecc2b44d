//! The method name of a call, read without parsing it: what lets the
//! balancer pass the plain spelling every client sends on as its bytes;
//! and the fault code of a reply, read without parsing a success.

use crate::rpc::codec::{self, Limits};

/// The fault code of a front-end's reply, or `None` for a success. Only a
/// reply that opens with `<fault>` is parsed (faults are small); a success
/// costs a scan of its first bytes.
pub fn reply_fault_code(reply: &[u8]) -> Option<i32> {
    const HEAD: usize = 128;
    let head = &reply[..reply.len().min(HEAD)];
    if !head.windows(7).any(|w| w == b"<fault>") {
        return None;
    }
    match codec::parse_response(reply, Limits::default()) {
        Ok(Err(fault)) => Some(fault.code),
        _ => None,
    }
}

/// The method name of a `methodCall` in its plainest spelling (an optional
/// XML declaration, then `<methodCall>`, whitespace, and
/// `<methodName>NAME</methodName>`), read without parsing the rest. `None`
/// for any other spelling, which only the full parser can judge. The rest of
/// the body is not checked: this is for relaying a call, whose receiver
/// parses it.
///
/// Every byte it reads is printable ASCII or whitespace (a declaration
/// holding anything else gets `None`), and such bytes read the same in
/// every encoding the parser accepts without a byte-order mark, so the name
/// is the one the parser finds. (ISO-2022-JP leaves ASCII only through ESC;
/// UTF-16 needs the mark, which the peek does not skip.)
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
        let plain = |b: &u8| matches!(b, b' '..=b'~' | b'\t' | b'\r' | b'\n') && *b != b'<';
        if !decl[..end].iter().all(plain) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::codec::{parse_call, write_call, Limits};
    use crate::rpc::Value;

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
        // PHP's xmlrpc extension.
        assert_eq!(
            name(b"<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<methodCall>\n<methodName>echo</methodName>"),
            Some("echo".into())
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
            // Bytes an encoding may read as something else: ISO-2022-JP's
            // ESC $ B would make the rest two-byte characters.
            b"<?xml version='1.0' encoding='ISO-2022-JP' \x1b$B?><methodCall><methodName>x</methodName>",
            b"<?xml version='1.0' encoding='windows-1252' a='\xe9'?><methodCall><methodName>x</methodName>",
            b"\xef\xbb\xbf<methodCall><methodName>x</methodName>",
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

    #[test]
    fn a_fault_reply_gives_its_code_and_a_success_none() {
        let fault = crate::rpc::codec::write_fault(&crate::rpc::Fault::new(5, "cut off"));
        assert_eq!(super::reply_fault_code(&fault), Some(5));
        let ok = crate::rpc::codec::write_response(&crate::rpc::Value::from("<fault>"))
            .expect("encodes");
        assert_eq!(super::reply_fault_code(&ok), None);
        assert_eq!(super::reply_fault_code(b"<fault>garbage"), None);
    }
}
