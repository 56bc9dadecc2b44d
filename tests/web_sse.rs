//! The scoreboard's event stream on real binaries: a snapshot first, then
//! every change once with its db version as id; a viewer that comes back
//! with Last-Event-ID gets exactly what it missed; through the balancer,
//! nothing is lost or repeated when the front-end it follows dies; a
//! front-end that loses the db ends its streams instead of serving stale
//! numbers; the page is served everywhere and nothing else is.

mod cluster_support;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_support::{Cluster, ClusterConfig, Mode};
use hyper::header::HeaderValue;
use podium::rpc::{Client, ClientConfig};
use podium::web::sse::{Event, Reader};
use podium::web::wire::{ChangeEvent, Snapshot};
use support::{connect, read_response, wait_until};

/// How long a change may take to reach a viewer here: generous, since
/// this is a correctness test on a loaded machine (speed is the bench's).
const ARRIVAL: Duration = Duration::from_secs(20);

const EVENT: &str = "Stone Curling";

/// One viewer of `/events` at `url`, read on a thread of its own.
struct Viewer {
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    status: Option<u16>,
    events: Vec<Event>,
    ended: bool,
}

impl Viewer {
    fn open(url: &str, last_id: Option<i64>) -> Viewer {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let client = Client::new(url, ClientConfig::default()).expect("a URL");
        let shared = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use http_body_util::BodyExt as _;
                let headers: Vec<(&'static str, HeaderValue)> = last_id
                    .map(|v| ("last-event-id", HeaderValue::from(v)))
                    .into_iter()
                    .collect();
                let resp = client.get("/events", &headers).await;
                let Ok(resp) = resp else {
                    shared.lock().unwrap().ended = true;
                    return;
                };
                shared.lock().unwrap().status = Some(resp.status().as_u16());
                let mut body = resp.into_body();
                let mut reader = Reader::new();
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        let mut got = Vec::new();
                        reader.feed(&data, |e| got.push(e)).unwrap();
                        shared.lock().unwrap().events.extend(got);
                    }
                }
                shared.lock().unwrap().ended = true;
            });
        });
        Viewer { seen }
    }

    fn events(&self) -> Vec<Event> {
        self.seen.lock().unwrap().events.clone()
    }

    fn ended(&self) -> bool {
        self.seen.lock().unwrap().ended
    }

    fn status(&self) -> Option<u16> {
        self.seen.lock().unwrap().status
    }

    /// The versions of the changes received, in order.
    fn change_ids(&self) -> Vec<i64> {
        self.events()
            .iter()
            .filter(|e| e.name == "change")
            .map(|e| {
                let change: ChangeEvent = serde_json::from_str(&e.data).unwrap();
                assert_eq!(e.id.as_deref(), Some(change.version.to_string().as_str()));
                change.version
            })
            .collect()
    }

    fn snapshots(&self) -> Vec<Snapshot> {
        self.events()
            .iter()
            .filter(|e| e.name == "snapshot")
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect()
    }

    /// Waits until every one of `versions` has arrived.
    fn wait_for(&self, versions: &[i64]) -> bool {
        wait_until(ARRIVAL, || {
            let ids = self.change_ids();
            versions.iter().all(|v| ids.contains(v))
        })
    }
}

fn score(cluster: &Cluster, i: usize) -> i64 {
    cluster
        .balancer()
        .set_score(EVENT, &format!("Gaul {i}, Rome 0"), None)
        .unwrap()
        .version
}

/// Exactly once each, in order, and nothing but `versions` after `after`.
fn assert_exactly(ids: &[i64], versions: &[i64]) {
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for id in ids {
        *counts.entry(*id).or_default() += 1;
    }
    assert!(counts.values().all(|n| *n == 1), "repeated: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {ids:?}");
    assert_eq!(ids, versions, "lost or extra changes");
}

#[test]
fn a_viewer_gets_a_snapshot_then_every_change_once_and_resumes_exactly() {
    let cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Push],
        ..ClusterConfig::default()
    });
    let fe = cluster.frontends[0].url();
    let first = score(&cluster, 0);
    let viewer = Viewer::open(&fe, None);
    assert!(wait_until(ARRIVAL, || !viewer.snapshots().is_empty()));
    assert_eq!(viewer.status(), Some(200));
    let snap = &viewer.snapshots()[0];
    assert!(snap.version >= first);
    let curling = snap.events.iter().find(|e| e.event == EVENT).unwrap();
    assert_eq!(curling.score, "Gaul 0, Rome 0", "right the moment it loads");
    assert_eq!(snap.teams.len(), 5);
    let writes: Vec<i64> = (1..=5).map(|i| score(&cluster, i)).collect();
    assert!(viewer.wait_for(&writes));
    assert_exactly(&viewer.change_ids(), &writes);
    // Back with the id of the second write: exactly the three after it.
    let back = Viewer::open(&fe, Some(writes[1]));
    assert!(back.wait_for(&writes[2..]));
    assert!(back.snapshots().is_empty(), "a resume is not a snapshot");
    assert_exactly(&back.change_ids(), &writes[2..]);
    // From before the front-end's history: a new snapshot instead.
    let old = Viewer::open(&fe, Some(0));
    assert!(wait_until(ARRIVAL, || !old.snapshots().is_empty()));
    assert!(old.change_ids().is_empty());
}

#[test]
fn through_the_balancer_nothing_is_lost_when_the_followed_front_end_dies() {
    let mut cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Push, Mode::Push],
        ..ClusterConfig::default()
    });
    let viewer = Viewer::open(&cluster.balancer_url(), None);
    assert!(wait_until(ARRIVAL, || !viewer.snapshots().is_empty()));
    let mut writes: Vec<i64> = (1..=3).map(|i| score(&cluster, i)).collect();
    assert!(viewer.wait_for(&writes));
    // The front-end the balancer follows, from its log.
    let balancer = cluster.balancer.as_ref().unwrap();
    let followed = (0..2)
        .find(|i| {
            let url = cluster.frontends[*i].url();
            Cluster::logged(balancer, &["web stream following", &url])
        })
        .expect("the balancer follows a front-end");
    cluster.frontends[followed].signal("KILL");
    writes.extend((4..=8).map(|i| score(&cluster, i)));
    assert!(viewer.wait_for(&writes), "got {:?}", viewer.change_ids());
    assert_exactly(&viewer.change_ids(), &writes);
    assert!(!viewer.ended(), "the balancer kept its viewer");
    assert_eq!(viewer.snapshots().len(), 1, "resumed, not reset");
}

#[test]
fn a_front_end_that_loses_the_db_ends_its_streams_and_refuses_new_ones() {
    let mut cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Push],
        balancer: false,
        ..ClusterConfig::default()
    });
    let fe = cluster.frontends[0].url();
    let viewer = Viewer::open(&fe, None);
    assert!(wait_until(ARRIVAL, || !viewer.snapshots().is_empty()));
    cluster.kill_db();
    assert!(wait_until(ARRIVAL, || viewer.ended()), "the stream went on");
    let refused = Viewer::open(&fe, None);
    assert!(wait_until(ARRIVAL, || refused.ended()));
    assert_eq!(refused.status(), Some(503));
    // With the db back, a viewer gets the board again (once the
    // front-end has seen the db's new run and read the board).
    cluster.restart_db();
    assert!(wait_until(ARRIVAL, || {
        let v = Viewer::open(&fe, None);
        wait_until(Duration::from_secs(5), || {
            v.ended() || !v.snapshots().is_empty()
        });
        !v.snapshots().is_empty()
    }));
}

#[test]
fn the_page_is_served_by_front_ends_and_the_balancer_and_nothing_else_is() {
    let cluster = Cluster::start(ClusterConfig::default());
    for url in [cluster.balancer_url(), cluster.frontends[0].url()] {
        let addr: std::net::SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        for (path, kind) in [
            ("/", "text/html"),
            ("/app.js", "text/javascript"),
            ("/style.css", "text/css"),
        ] {
            let mut s = connect(addr);
            use std::io::Write as _;
            write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let resp = read_response(&mut s).unwrap();
            assert_eq!(resp.status, 200, "{url}{path}");
            assert!(resp.header("content-type").unwrap().starts_with(kind));
            assert!(resp.header("content-security-policy").is_some());
        }
        for path in ["/RPC3", "/events/x", "/metrics", "/../etc/passwd"] {
            let mut s = connect(addr);
            use std::io::Write as _;
            write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let resp = read_response(&mut s).unwrap();
            assert_eq!(resp.status, 404, "{url}{path}");
        }
        // Another method at the page's path: 405 naming all three.
        let mut s = connect(addr);
        use std::io::Write as _;
        write!(
            s,
            "DELETE / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let resp = read_response(&mut s).unwrap();
        assert_eq!(resp.status, 405, "{url}: DELETE /");
        assert_eq!(resp.header("allow"), Some("GET, HEAD, POST"), "{url}");
        // HEAD of the stream: its headers, and no stream held open.
        let mut s = connect(addr);
        write!(s, "HEAD /events HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let resp = read_response(&mut s).unwrap();
        assert_eq!(resp.status, 200, "{url}: HEAD /events");
        assert!(resp
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream"));
    }
}
