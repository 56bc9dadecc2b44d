//! A front-end cut off from the db (packets dropped, no reset) stops
//! serving what it cached: it notices the silent feed, empties its cache and
//! reports itself not ready, and the balancer takes its "unavailable" fault
//! as a reason to try the other front-end. Each process runs on a host of
//! its own (network namespaces, one bridge):
//!
//! ```text
//! host 0: db      host 1: front-end 1      host 2: front-end 2
//! host 3: balancer, and the client (Python's xmlrpc.client)
//! ```
//!
//! Two cuts, one test each: front-end 1 and the db cut apart both ways
//! (their bridge ports isolated, so frames are dropped silently), and a
//! one-way cut (front-end 1's packets to the db dropped, the db's still
//! arriving). In each: a score is read through both front-ends (both cache
//! it), the cut is made, the score is changed through front-end 2, and the
//! client reads through the balancer for four seconds. Every read must
//! succeed, and none may return the old score once the cut front-end could
//! have noticed (its deadline is 1.5 s after the cut; the test allows 3 s
//! on a loaded machine and prints what it measured). A write through the
//! balancer during the cut succeeds; after the cut heals, front-end 1 is
//! ready again and serves the new score.

mod netns_support;
mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use netns_support::Netns;
use support::{wait_until, Process};

const SECRET: &str = "partition-secret-5d1e";
const PASSWORD: &str = "partition-password-77ab";
const DB: usize = 0;
const FE1: usize = 1;
const FE2: usize = 2;
const CLIENT: usize = 3;
/// Deadline of each step (debug builds on a loaded 2-core machine).
const STEP_TIMEOUT: Duration = Duration::from_secs(40);
/// The latest a stale read may come after the cut: the front-end's own
/// deadline is 1.5 s (a 750 ms long poll plus 750 ms of slack); the rest is
/// room for a busy machine.
const STALE_LIMIT_SECS: f64 = 3.0;

fn bin(name: &str) -> &'static str {
    match name {
        "podium-db" => env!("CARGO_BIN_EXE_podium-db"),
        "podium-frontend" => env!("CARGO_BIN_EXE_podium-frontend"),
        _ => env!("CARGO_BIN_EXE_podium-balancer"),
    }
}

/// The client's side, run in Python at the client's host. It waits until
/// both front-ends serve the first score, prints `warm`, waits for a line
/// on stdin (the cut has been made), changes the score through front-end
/// 2, and reads through the balancer for four seconds; then it writes
/// through the balancer and prints one JSON line of what it saw.
const DRIVER: &str = r#"
import json, socket, sys, time, xmlrpc.client
socket.setdefaulttimeout(10)
lb, fe1, fe2, password, event = sys.argv[1:6]
def proxy(u): return xmlrpc.client.ServerProxy(u)
def score(u): return proxy(u).scoreboard.score(event)["score"]
proxy(fe2).scoreboard.set_score(event, "before the cut", password)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        if score(fe1) == "before the cut" and score(fe2) == "before the cut":
            break
    except Exception:
        pass
    time.sleep(0.05)
else:
    print(json.dumps({"error": "the front-ends never served the first score"}))
    sys.exit(1)
print("warm", flush=True)
sys.stdin.readline()
cut = time.monotonic()
proxy(fe2).scoreboard.set_score(event, "after the cut", password)
acked = time.monotonic() - cut
reads = []
while time.monotonic() < cut + 4:
    t = time.monotonic() - cut
    try:
        reads.append([t, score(lb)])
    except xmlrpc.client.Fault as f:
        reads.append([t, "fault %d: %s" % (f.faultCode, f.faultString)])
    except Exception as e:
        reads.append([t, "error: %r" % e])
try:
    proxy(lb).scoreboard.set_score(event, "during the cut", password)
    write = "ok"
except Exception as e:
    write = repr(e)
print(json.dumps({"acked": acked, "reads": reads, "write": write}), flush=True)
"#;

/// What the driver saw.
struct Seen {
    reads: Vec<(f64, String)>,
    write: String,
}

struct Cluster {
    net: Netns,
    _db: Process,
    _fe1: Process,
    _fe2: Process,
    _balancer: Process,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(net: Netns) -> Cluster {
        let dir = tempfile::tempdir().expect("a temp dir");
        let ip = |i: usize| net.ipv4(i).to_string();
        let start = |host: usize, name: &str, program: &str, args: Vec<String>| {
            let mut cmd = net.command(host, bin(program));
            cmd.args(args)
                .current_dir(dir.path())
                .env("PODIUM_CLUSTER_SECRET", SECRET)
                .env("PODIUM_FEEDER_PASSWORD", PASSWORD)
                .env("RUST_LOG", "info");
            Process::start_named(cmd, name)
        };
        let db = start(
            DB,
            "db",
            "podium-db",
            vec![
                "--uid=0".into(),
                "--port=8000".into(),
                format!("--xhost={}:8002", ip(FE1)),
                format!("--yhost={}:8003", ip(FE2)),
            ],
        );
        let fe = |host: usize, uid: u32, port: u16, other: String| {
            start(
                host,
                &format!("frontend{uid}"),
                "podium-frontend",
                vec![
                    format!("--uid={uid}"),
                    format!("--port={port}"),
                    "--cache=push".into(),
                    format!("--dbhost={}:8000", ip(DB)),
                    format!("--zhost={other}"),
                ],
            )
        };
        let fe1 = fe(FE1, 1, 8002, format!("{}:8003", ip(FE2)));
        let fe2 = fe(FE2, 2, 8003, format!("{}:8002", ip(FE1)));
        let balancer = start(
            CLIENT,
            "balancer",
            "podium-balancer",
            vec![
                "--port=8001".into(),
                format!("--xhost={}:8002", ip(FE1)),
                format!("--yhost={}:8003", ip(FE2)),
            ],
        );
        Cluster {
            net,
            _db: db,
            _fe1: fe1,
            _fe2: fe2,
            _balancer: balancer,
            dir,
        }
    }

    fn url(&self, host: usize, port: u16) -> String {
        format!("http://{}:{port}/", self.net.ipv4(host))
    }

    /// Runs the driver at the client's host, calling `cut` once both
    /// front-ends are warm.
    fn drive(&self, cut: impl FnOnce()) -> Seen {
        let mut cmd = self.net.command(CLIENT, "python3");
        cmd.args(["-c", DRIVER])
            .args([
                self.url(CLIENT, 8001),
                self.url(FE1, 8002),
                self.url(FE2, 8003),
                PASSWORD.to_owned(),
                "Stone Curling".to_owned(),
            ])
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = KillOnDrop(cmd.spawn().expect("starting python3"));
        let stdout = child.0.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let warm = rx
            .recv_timeout(STEP_TIMEOUT)
            .unwrap_or_else(|_| panic!("the driver did not warm up in {STEP_TIMEOUT:?}"));
        assert_eq!(warm, "warm", "the driver: {warm}");
        cut();
        let mut stdin = child.0.stdin.take().expect("piped");
        stdin.write_all(b"go\n").expect("telling the driver");
        let line = rx
            .recv_timeout(STEP_TIMEOUT)
            .unwrap_or_else(|_| panic!("the driver did not finish in {STEP_TIMEOUT:?}"));
        let seen: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver said {line:?}: {e}"));
        let reads = seen["reads"]
            .as_array()
            .expect("reads")
            .iter()
            .map(|r| {
                (
                    r[0].as_f64().expect("a time"),
                    r[1].as_str().expect("a result").to_owned(),
                )
            })
            .collect();
        Seen {
            reads,
            write: seen["write"].as_str().expect("write").to_owned(),
        }
    }

    /// Waits until front-end 1's health says `ok`.
    fn wait_fe1_ready(&self, ready: bool) -> bool {
        let script = format!(
            "import xmlrpc.client,sys; sys.exit(0 if xmlrpc.client.ServerProxy({:?}).podium.health()['ok'] == {} else 1)",
            self.url(FE1, 8002),
            if ready { "True" } else { "False" }
        );
        wait_until(STEP_TIMEOUT, || {
            let mut cmd = self.net.command(CLIENT, "python3");
            cmd.args(["-c", &script]);
            netns_support::output_within(cmd, Duration::from_secs(10))
                .is_ok_and(|out| out.status.success())
        })
    }

    /// Front-end 1's score, read directly.
    fn fe1_score(&self) -> Option<String> {
        let script = format!(
            "import xmlrpc.client; print(xmlrpc.client.ServerProxy({:?}).scoreboard.score('Stone Curling')['score'])",
            self.url(FE1, 8002)
        );
        let mut cmd = self.net.command(CLIENT, "python3");
        cmd.args(["-c", &script]);
        let out = netns_support::output_within(cmd, Duration::from_secs(10)).ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Checks what the driver saw, and that the cluster heals.
fn check(cluster: &Cluster, seen: &Seen, heal: impl FnOnce()) {
    let failed: Vec<_> = seen
        .reads
        .iter()
        .filter(|(_, v)| v != "before the cut" && v != "after the cut")
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} reads through the balancer failed with one healthy front-end: {:?}",
        failed.len(),
        seen.reads.len(),
        &failed[..failed.len().min(5)]
    );
    let stale: Vec<f64> = seen
        .reads
        .iter()
        .filter(|(_, v)| v == "before the cut")
        .map(|(t, _)| *t)
        .collect();
    let last_stale = stale.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "{} reads in 4 s; {} stale, the last {last_stale:.3} s after the cut",
        seen.reads.len(),
        stale.len()
    );
    assert!(
        last_stale <= STALE_LIMIT_SECS,
        "a stale read {last_stale:.3} s after the cut ({} stale of {})",
        stale.len(),
        seen.reads.len()
    );
    assert!(
        seen.reads.len() > 20,
        "too few reads to tell: {}",
        seen.reads.len()
    );
    assert_eq!(
        seen.write, "ok",
        "a write through the balancer during the cut"
    );
    assert!(cluster.wait_fe1_ready(false), "front-end 1 still says ok");
    heal();
    assert!(
        cluster.wait_fe1_ready(true),
        "front-end 1 never became ready again"
    );
    assert_eq!(cluster.fe1_score().as_deref(), Some("during the cut"));
}

#[test]
fn a_front_end_cut_off_from_the_db_stops_serving_stale_scores() {
    let Some(net) = Netns::or_skip(
        "a_front_end_cut_off_from_the_db_stops_serving_stale_scores",
        4,
    ) else {
        return;
    };
    let cluster = Cluster::start(net);
    let seen = cluster.drive(|| cluster.net.partition(FE1, DB, true));
    check(&cluster, &seen, || cluster.net.partition(FE1, DB, false));
}

#[test]
fn a_one_way_cut_from_front_end_to_db_fails_no_read() {
    let Some(net) = Netns::or_skip("a_one_way_cut_from_front_end_to_db_fails_no_read", 4) else {
        return;
    };
    let cluster = Cluster::start(net);
    let seen = cluster.drive(|| cluster.net.one_way_cut(FE1, DB, true));
    check(&cluster, &seen, || cluster.net.one_way_cut(FE1, DB, false));
}
