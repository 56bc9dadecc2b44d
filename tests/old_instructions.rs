//! The old system's instructions for several machines, with Podium's
//! binary names and nothing else changed, form one working cluster:
//!
//! ```text
//! podium-db       --uid=0 --port=8000 --xhost=localhost:8002 --yhost=localhost:8003
//! podium-frontend --uid=1 --port=8002 --dbhost=localhost:8000 --zhost=localhost:8003
//! podium-frontend --uid=2 --port=8003 --dbhost=localhost:8000 --zhost=localhost:8002
//! podium-balancer --port=8001 --xhost=localhost:8002 --yhost=localhost:8003
//! podium-feeder   --serip=localhost --serport=8001
//! podium-tablet   --port=8005 --serip=localhost --serport=8001 -l
//! ```
//!
//! (The old balancer had no documented line; this is the one Podium's
//! takes.) Four layouts, one property each:
//! - every process on a host of its own (a network namespace per process,
//!   one bridge), the host flags carrying the hosts' IPv4 addresses, then
//!   their IPv6 addresses (`[fd77::…]:8002`), and no other flag;
//! - every process on this machine with a loopback address of its own
//!   (127.X.Y.1 to .6), each server told it with `--host`;
//! - the lines exactly as written above, `localhost` and all, inside one
//!   fresh namespace (so the fixed ports never meet anything else here).
//!
//! What is checked, in each: every server listens on its own host's
//! address; the three members agree on one coordinator (uid 2, the highest)
//! and one term; the old Cacofonix line publishes; a write through the
//! balancer is read back through both front-ends; a push crosses from a
//! front-end to the tablet's host; SIGTERM stops every process cleanly.

mod netns_support;
mod support;

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use netns_support::{output_within, Netns};
use support::{Process, Stream};

const SECRET: &str = "old-instructions-secret-41b7";
const PASSWORD: &str = "old-instructions-password-93c2";

/// Deadline of each step (a cluster of debug builds on a loaded 2-core box).
const STEP_TIMEOUT: Duration = Duration::from_secs(40);

/// The roles, in the order of the old instructions.
const DB: usize = 0;
const FE1: usize = 1;
const FE2: usize = 2;
const BALANCER: usize = 3;
const FEEDER: usize = 4;
const TABLET: usize = 5;
const NAMES: [&str; 6] = [
    "db",
    "frontend1",
    "frontend2",
    "balancer",
    "feeder",
    "tablet",
];
/// Each role's port in the old instructions (the feeder has none).
const PORTS: [u16; 6] = [8000, 8002, 8003, 8001, 0, 8005];

/// Where one process runs.
#[derive(Debug, Clone, Copy)]
enum Place<'a> {
    /// Inside host `.1` of the namespaces.
    Host(&'a Netns, usize),
    /// Right here, like the test.
    Here,
}

impl Place<'_> {
    fn command(&self, program: &str) -> Command {
        match self {
            Place::Host(net, i) => net.command(*i, program),
            Place::Here => Command::new(program),
        }
    }
}

fn bin(role: usize) -> &'static str {
    match role {
        DB => env!("CARGO_BIN_EXE_podium-db"),
        FE1 | FE2 => env!("CARGO_BIN_EXE_podium-frontend"),
        BALANCER => env!("CARGO_BIN_EXE_podium-balancer"),
        FEEDER => env!("CARGO_BIN_EXE_podium-feeder"),
        _ => env!("CARGO_BIN_EXE_podium-tablet"),
    }
}

/// The old instructions' flags for each role, with `hosts[role]` as the
/// host flags carry it (an IPv6 address in brackets).
fn old_flags(hosts: &[String; 6]) -> [Vec<String>; 6] {
    let [db, fe1, fe2, balancer, _, _] = hosts;
    [
        vec![
            "--uid=0".into(),
            "--port=8000".into(),
            format!("--xhost={fe1}:8002"),
            format!("--yhost={fe2}:8003"),
        ],
        vec![
            "--uid=1".into(),
            "--port=8002".into(),
            format!("--dbhost={db}:8000"),
            format!("--zhost={fe2}:8003"),
        ],
        vec![
            "--uid=2".into(),
            "--port=8003".into(),
            format!("--dbhost={db}:8000"),
            format!("--zhost={fe1}:8002"),
        ],
        vec![
            "--port=8001".into(),
            format!("--xhost={fe1}:8002"),
            format!("--yhost={fe2}:8003"),
        ],
        vec![format!("--serip={balancer}"), "--serport=8001".into()],
        vec![
            "--port=8005".into(),
            format!("--serip={balancer}"),
            "--serport=8001".into(),
        ],
    ]
}

/// One layout of the old instructions.
struct Layout<'a> {
    /// Where each role runs.
    places: [Place<'a>; 6],
    /// Each role's host as the flags carry it.
    hosts: [String; 6],
    /// Flags added to a role's old line (`--host` on one machine, the old
    /// `-l` of the tablet's line).
    extra: [Vec<String>; 6],
    /// The address each server must listen on.
    listen: [IpAddr; 6],
}

/// Starts `role` with its old line plus `extra`, in `dir`.
fn start(layout: &Layout, role: usize, dir: &Path) -> Process {
    let mut cmd = layout.places[role].command(bin(role));
    cmd.args(&old_flags(&layout.hosts)[role])
        .args(&layout.extra[role])
        .current_dir(dir)
        .env("PODIUM_CLUSTER_SECRET", SECRET)
        .env("PODIUM_FEEDER_PASSWORD", PASSWORD)
        .env("RUST_LOG", "info");
    if role == FEEDER {
        return Process::start_client(cmd, NAMES[role]);
    }
    let process = Process::start_named(cmd, NAMES[role]);
    assert_eq!(
        process.addr(),
        (layout.listen[role], PORTS[role]).into(),
        "{} listens where its peers cannot reach it",
        NAMES[role]
    );
    process
}

/// `http://HOST:PORT/` of `role`, as the others reach it.
fn url(layout: &Layout, role: usize) -> String {
    format!("http://{}:{}/", layout.hosts[role], PORTS[role])
}

/// Runs a one-shot `podium-feeder` at the feeder's place, through the
/// balancer with the old flags; its stdout.
fn feeder(layout: &Layout, args: &[&str]) -> String {
    let mut cmd = layout.places[FEEDER].command(bin(FEEDER));
    cmd.args(&old_flags(&layout.hosts)[FEEDER])
        .args(args)
        .env("PODIUM_FEEDER_PASSWORD", PASSWORD);
    let out = output_within(cmd, STEP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "podium-feeder {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The client checks, in Python's stock XML-RPC client: `agree URL...`
/// waits until every member names uid 2 coordinator in one term; `read
/// EVENT TEXT URL...` waits until every server's `get_score(EVENT)` holds
/// TEXT.
const CHECK: &str = r#"
import socket, sys, time, xmlrpc.client
socket.setdefaulttimeout(5)
mode, args = sys.argv[1], sys.argv[2:]
deadline = time.time() + float(args.pop(0))
last = None
while time.time() < deadline:
    try:
        if mode == "agree":
            views = [xmlrpc.client.ServerProxy(u).cluster.status() for u in args]
            last = [(v["uid"], v["role"], v["coordinator"], v["term"]) for v in views]
            if all(v["coordinator"] == 2 for v in views) and len({v["term"] for v in views}) == 1:
                print("agreed", last)
                sys.exit(0)
        else:
            event, text, urls = args[0], args[1], args[2:]
            last = [xmlrpc.client.ServerProxy(u).get_score(event, 7) for u in urls]
            if all(text in s for s in last):
                print("read", last)
                sys.exit(0)
    except Exception as e:
        last = repr(e)
    time.sleep(0.1)
print("gave up; last seen:", last)
sys.exit(1)
"#;

fn check(layout: &Layout, mode: &str, args: &[String]) -> String {
    let mut cmd = layout.places[FEEDER].command("python3");
    cmd.args(["-c", CHECK, mode, &STEP_TIMEOUT.as_secs().to_string()])
        .args(args);
    let out = output_within(cmd, STEP_TIMEOUT + Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "check {mode} {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs the old instructions in `layout` and checks the whole property.
fn old_instructions_form_one_cluster(layout: &Layout) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut servers: Vec<(usize, Process)> = Vec::new();
    for role in [DB, FE1, FE2, BALANCER] {
        servers.push((role, start(layout, role, dir.path())));
    }

    // One coordinator, the highest uid, in one term, for all three.
    let members: Vec<String> = [DB, FE1, FE2].map(|r| url(layout, r)).to_vec();
    check(layout, "agree", &members);

    // The tablet subscribes through the balancer with its own address.
    let tablet = start(layout, TABLET, dir.path());
    let callback = format!("http://{}:8005/", layout.hosts[TABLET]);
    let callback = if layout.extra[TABLET].iter().any(|f| f == "-l") {
        "http://127.0.0.1:8005/".to_owned()
    } else {
        callback
    };
    assert!(
        tablet
            .wait_for_line(Stream::Stderr, STEP_TIMEOUT, |l| l.contains("subscribed")
                && l.contains(&callback))
            .is_some(),
        "the tablet never subscribed with callback {callback}:\n{}",
        tablet.output(Stream::Stderr)
    );

    // The old Cacofonix line plays games through the balancer.
    let mut games = start(layout, FEEDER, dir.path());
    assert!(
        games
            .wait_for_line(Stream::Stderr, STEP_TIMEOUT, |l| l.contains("published:"))
            .is_some(),
        "the old feeder line published nothing:\n{}",
        games.output(Stream::Stderr)
    );
    let status = games
        .terminate(STEP_TIMEOUT)
        .expect("the feeder stops on SIGTERM");
    assert!(status.success(), "the feeder exited with {status}");

    // A write through the balancer, read back through both front-ends.
    let token = format!("read-back-{}", std::process::id());
    let ack = feeder(layout, &["set-score", "Stone Curling", &token]);
    assert!(ack.contains("Score of Stone Curling updated"), "{ack}");
    let readers = [url(layout, FE1), url(layout, FE2), url(layout, BALANCER)];
    let mut args = vec!["Stone Curling".to_owned(), token];
    args.extend(readers);
    check(layout, "read", &args);

    // A push to the tablet's host: every event gets a new score, and the
    // tablet follows some of them; it polls only once, before subscribing.
    let pushed = format!("pushed-{}", std::process::id());
    let file = dir.path().join("updates.txt");
    let lines: String = [
        "Stone Curling",
        "Stone Skating",
        "Underwater Stone Weaving",
        "Synchronized Stone Swimming",
    ]
    .iter()
    .map(|e| format!("score | {e} | {pushed}\n"))
    .collect();
    std::fs::write(&file, lines).expect("writing the updates file");
    feeder(
        layout,
        &["apply", file.to_str().expect("a UTF-8 temp path")],
    );
    assert!(
        tablet
            .wait_for_line(Stream::Stdout, STEP_TIMEOUT, |l| l.contains(&pushed))
            .is_some(),
        "no push reached the tablet:\n{}",
        tablet.output(Stream::Stdout)
    );
    let pushers: Vec<&Process> = servers
        .iter()
        .filter(|(r, _)| *r == FE1 || *r == FE2)
        .map(|(_, p)| p)
        .collect();
    assert!(
        pushers.iter().any(|p| p
            .output(Stream::Stderr)
            .lines()
            .any(|l| l.contains("tablet subscribed") && l.contains(&callback))),
        "no front-end holds the tablet's subscription at {callback}"
    );

    // SIGTERM stops each cleanly: clients first, the db last.
    let mut tablet = tablet;
    let status = tablet.terminate(STEP_TIMEOUT).expect("the tablet stops");
    assert!(status.success(), "the tablet exited with {status}");
    while let Some((role, mut p)) = servers.pop() {
        let status = p
            .terminate(STEP_TIMEOUT)
            .unwrap_or_else(|| panic!("{} ignored SIGTERM", NAMES[role]));
        assert!(status.success(), "{} exited with {status}", NAMES[role]);
    }
    for (i, place) in layout.places.iter().enumerate() {
        if let Place::Host(net, host) = place {
            assert_eq!(
                net.pids(*host),
                Vec::<u32>::new(),
                "left running on {}",
                NAMES[i]
            );
        }
    }
}

/// Each role on a host of its own; `ip(i)` is host i's address.
fn on_own_hosts(net: &Netns, host_of: impl Fn(usize) -> IpAddr) {
    let flag = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let layout = Layout {
        places: [0, 1, 2, 3, 4, 5].map(|i| Place::Host(net, i)),
        hosts: [0, 1, 2, 3, 4, 5].map(|i| flag(host_of(i))),
        extra: Default::default(),
        listen: [0, 1, 2, 3, 4, 5].map(&host_of),
    };
    old_instructions_form_one_cluster(&layout);
}

#[test]
fn each_process_on_its_own_host_over_ipv4() {
    let Some(net) = Netns::or_skip("each_process_on_its_own_host_over_ipv4", 6) else {
        return;
    };
    on_own_hosts(&net, |i| net.ipv4(i).into());
}

#[test]
fn each_process_on_its_own_host_over_ipv6() {
    let Some(net) = Netns::or_skip("each_process_on_its_own_host_over_ipv6", 6) else {
        return;
    };
    on_own_hosts(&net, |i| net.ipv6(i).into());
}

#[test]
fn exactly_as_written_with_localhost_in_one_namespace() {
    let Some(net) = Netns::or_skip("exactly_as_written_with_localhost_in_one_namespace", 1) else {
        return;
    };
    let mut extra: [Vec<String>; 6] = Default::default();
    extra[TABLET] = vec!["-l".into()];
    let layout = Layout {
        places: [Place::Host(&net, 0); 6],
        hosts: std::array::from_fn(|_| "localhost".to_owned()),
        extra,
        listen: [IpAddr::from([127, 0, 0, 1]); 6],
    };
    old_instructions_form_one_cluster(&layout);
}

#[test]
fn on_one_machine_with_a_loopback_address_each() {
    // 127.X.Y.1 to .6, X.Y from this process's id, so that two runs at
    // once (and anything on 127.0.0.1) never meet.
    let pid = std::process::id();
    let x = 1 + (pid >> 8) % 250;
    let y = pid % 256;
    let ip = |i: usize| IpAddr::from([127, x as u8, y as u8, (i + 1) as u8]);
    let mut extra: [Vec<String>; 6] = Default::default();
    for role in [DB, FE1, FE2, BALANCER, TABLET] {
        extra[role] = vec![format!("--host={}", ip(role))];
    }
    let layout = Layout {
        places: [Place::Here; 6],
        hosts: std::array::from_fn(|i| ip(i).to_string()),
        extra,
        listen: std::array::from_fn(ip),
    };
    old_instructions_form_one_cluster(&layout);
}

/// Runs a binary that must refuse its flags before it binds anything; its
/// exit code and stderr.
fn refused(program: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("PODIUM_CLUSTER_SECRET", SECRET)
        .env("PODIUM_FEEDER_PASSWORD", PASSWORD)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    let out = output_within(cmd, STEP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("LISTENING"), "it started:\n{stderr}");
    (out.status.code(), stderr)
}

#[test]
fn zhost_is_the_other_front_end_so_other_uids_are_told_to_use_peer() {
    let (code, stderr) = refused(bin(FE1), &["--uid=3", "--zhost=127.0.0.1:8004"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("podium-frontend: error: --zhost names the other front-end")
            && stderr.contains("--peer UID=HOST:PORT"),
        "{stderr}"
    );
}

#[test]
fn bad_host_flags_are_refused_with_the_reason() {
    let cases: [(usize, &str, &str); 4] = [
        (
            FE1,
            "--dbhost=127.0.0.1:99999",
            "expected a number from 1 to 65535",
        ),
        (
            DB,
            "--xhost=http://10.0.0.2:8002/",
            "is a URL: expected HOST or HOST:PORT",
        ),
        (BALANCER, "--yhost=[::1", "is not an IPv6 address"),
        (TABLET, "--serip=fd00::1:x", "is not an IPv6 address"),
    ];
    for (role, flag, reason) in cases {
        let (code, stderr) = refused(bin(role), &[flag]);
        assert_eq!(code, Some(2), "{flag}: {stderr}");
        assert!(stderr.contains(reason), "{flag}: {stderr}");
    }
}
