//! `scoreboard.history` in pages (issue 11, point 7), through the balancer
//! of a real cluster: Python's stdlib `xmlrpc.client` pages through a busy
//! tally's whole history with the cursor each page gives, the old
//! two-argument call still returns an array (the newest updates, bounded),
//! and limits out of range or a cursor history never gave are refused.

mod cluster_support;
mod support;

use cluster_support::{Cluster, ClusterConfig, PASSWORD};
use podium::db::wire::WriteReply;

/// Updates written to the tally before paging: more than a page, more
/// than the old call's bound.
const UPDATES: usize = 250;

const PAGER: &str = r#"
import json, sys
import xmlrpc.client as x

url, password = sys.argv[1], sys.argv[2]
s = x.ServerProxy(url)
old = s.scoreboard.history("tally", "Gaul")
pages = []
page = s.scoreboard.history("tally", "Gaul", "", 60)
# A write between two pages moves no page: they go back in time from the
# first one.
s.scoreboard.increment_medal("Gaul", "silver", password)
for _ in range(100):
    pages.append([u["version"] for u in page["updates"]])
    if not page["next"]:
        break
    page = s.scoreboard.history("tally", "Gaul", page["next"], 60)
default = s.scoreboard.history("tally", "Gaul", "")
refused = []
for args in [("", 0), ("", 501), ("bogus", 10), ("-3", 10)]:
    try:
        s.scoreboard.history("tally", "Gaul", *args)
        refused.append(None)
    except x.Fault as f:
        refused.append(f.faultCode)
print(json.dumps({
    "old": [u["version"] for u in old],
    "old_type": type(old).__name__,
    "pages": pages,
    "default": len(default["updates"]),
    "default_next": default["next"],
    "refused": refused,
}))
"#;

/// Property: paging backwards from the newest update with the cursor each
/// page returns visits every update of the key exactly once, a page at a
/// time (each oldest first, none longer than asked), and ends with an empty
/// cursor; a write made meanwhile changes no page. The old call returns the
/// newest 100 as an array; a page without a limit holds 100; limits outside
/// 1 to 500 and cursors that history never returned are invalid params.
#[test]
fn python_pages_through_a_busy_history_via_the_balancer() {
    let cluster = Cluster::start(ClusterConfig::default());
    let db = cluster.db();
    let mut versions = Vec::new();
    for _ in 0..UPDATES {
        let v = db.ok("db.increment_medal", &["Gaul".into(), "gold".into()]);
        versions.push(WriteReply::from_value(&v).expect("a reply").change.version);
    }
    let out = support::python(PAGER, &[&cluster.balancer_url(), PASSWORD]);
    let got: serde_json::Value = serde_json::from_str(out.trim()).expect("the script's JSON");
    let list = |v: &serde_json::Value| -> Vec<i64> {
        v.as_array()
            .expect("an array")
            .iter()
            .map(|n| n.as_i64().expect("a version"))
            .collect()
    };

    assert_eq!(got["old_type"], "list", "{got}");
    assert_eq!(list(&got["old"]), versions[UPDATES - 100..], "the old call");

    let pages: Vec<Vec<i64>> = got["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(list)
        .collect();
    assert_eq!(pages.len(), UPDATES.div_ceil(60), "{pages:?}");
    for page in &pages {
        assert!(!page.is_empty() && page.len() <= 60, "{page:?}");
        assert!(
            page.windows(2).all(|w| w[0] < w[1]),
            "oldest first: {page:?}"
        );
    }
    let visited: Vec<i64> = pages.iter().rev().flatten().copied().collect();
    assert_eq!(visited, versions, "every update once, in order");

    assert_eq!(got["default"], 100, "{got}");
    assert_ne!(got["default_next"], "", "{got}");
    assert_eq!(
        got["refused"],
        serde_json::json!([-32602, -32602, -32602, -32602])
    );
}
