//! The cap on the calls of a `system.multicall` (issue 11, point 7), on a
//! real cluster: it is checked while the call is parsed, so the parser
//! stops at the first call over the cap instead of building every call of
//! a small compressed body first. Seen from outside: a multicall that is
//! well-formed up to its 1,001st call and broken after it is refused for
//! its size (-32600), not for the break (-32700), which only a parser that
//! read to the end would have found.

mod cluster_support;
mod support;

use std::io::Write as _;

use cluster_support::{Cluster, ClusterConfig};
use podium::rpc::codec::{parse_response, Limits};
use podium::rpc::{Fault, Value};
use support::http_post;

/// The cap every server has (`rpc::methods::DEFAULT_MAX_MULTICALL`).
const CAP: usize = 1000;

const ENTRY: &str = "<value><struct><member><name>methodName</name>\
    <value>scoreboard.roster</value></member><member><name>params</name>\
    <value><array><data/></array></value></member></struct></value>";

/// A multicall of `calls` roster reads, then `tail` inside its array.
fn multicall(calls: usize, tail: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>system.multicall</methodName>\
         <params><param><value><array><data>{}{tail}</data></array></value></param></params>\
         </methodCall>",
        ENTRY.repeat(calls)
    )
}

fn gzip(xml: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(xml.as_bytes()).expect("gzip to memory");
    enc.finish().expect("gzip to memory")
}

/// POSTs a gzipped `xml` to `url` and reads the XML-RPC reply.
fn post(url: &str, xml: &str) -> Result<Value, Fault> {
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("a loopback address");
    let resp = http_post(addr, "/", &["Content-Encoding: gzip"], &gzip(xml));
    assert_eq!(resp.status, 200, "{}", resp.text());
    parse_response(&resp.body, Limits::default()).expect("an XML-RPC reply")
}

fn assert_too_many(what: &str, reply: Result<Value, Fault>) {
    match reply {
        Err(f) if f.code == -32600 && f.message.contains(&format!("{CAP}")) => {}
        other => panic!("{what}: want -32600 for more than {CAP} calls, got {other:?}"),
    }
}

/// Property: through the balancer and straight to a front-end, a
/// multicall of 4,500 calls (a 4 KB gzipped body) is refused for its size;
/// so is one broken after its 1,001st call (the parser never reads that
/// far); one of exactly 1,000 calls is answered in full, and one broken
/// before the cap is a parse error.
#[test]
fn the_multicall_cap_is_checked_while_parsing() {
    let cluster = Cluster::start(ClusterConfig {
        frontends: vec![cluster_support::Mode::Push],
        ..ClusterConfig::default()
    });
    let broken = "<value><struct><member>";
    for (who, url) in [
        ("the balancer", cluster.balancer_url()),
        ("a front-end", cluster.frontends[0].url()),
    ] {
        assert_too_many(who, post(&url, &multicall(4500, "")));
        assert_too_many(
            &format!("{who}, broken after call {}", CAP + 1),
            post(&url, &multicall(CAP + 1, broken)),
        );
        match post(&url, &multicall(10, broken)) {
            Err(f) if f.code == -32700 => {}
            other => panic!("{who}: broken before the cap: want -32700, got {other:?}"),
        }
        match post(&url, &multicall(CAP, "")) {
            Ok(Value::Array(results)) => assert_eq!(results.len(), CAP, "{who}"),
            other => panic!("{who}: want {CAP} results, got {other:?}"),
        }
    }
}
