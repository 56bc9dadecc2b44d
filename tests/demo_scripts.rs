//! The demo scripts as a newcomer runs them: `scripts/run-local.sh` in the
//! background, inside a detached tmux session, and when a member cannot
//! start; and `scripts/cluster-status.sh`.
//!
//! The demo listens on fixed ports (8000 to 8006), so each run gets a
//! fresh network namespace of its own (see netns_support) and meets
//! nothing else on this machine; it uses the test build's binaries
//! (`PODIUM_BIN_DIR`) and a temporary directory for its logs and database
//! (`PODIUM_DEMO_DIR`).
//!
//! Properties: every member can be stopped and started again by uid; a
//! stop is a clean SIGTERM shutdown (no `-wal`/`-shm` left, exit logged);
//! the logs are kept; nothing is left running when the demo ends, whether
//! it was stopped, timed out, or failed to start.

mod netns_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use netns_support::{output_within, Netns};
use support::{wait_for, wait_until, Process, Stream};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
const MEMBERS: [&str; 7] = [
    "db",
    "frontend1",
    "frontend2",
    "balancer",
    "feeder",
    "tablet1",
    "tablet2",
];

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// The directory of this build's binaries.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_podium-db"))
        .parent()
        .expect("binaries live in a directory")
        .to_path_buf()
}

/// `scripts/run-local.sh args` inside host 0 of `net`, for the demo kept
/// in `dir`, with no tmux.
fn run_local(net: &Netns, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = net.command(0, script("run-local.sh"));
    cmd.args(args)
        .env("PODIUM_BIN_DIR", bin_dir())
        .env("PODIUM_DEMO_DIR", dir)
        .env("PODIUM_NO_TMUX", "1")
        .env_remove("TMUX");
    cmd
}

/// Runs `run-local.sh args` to completion; its output.
fn run_local_once(net: &Netns, dir: &Path, args: &[&str]) -> Output {
    output_within(run_local(net, dir, args), SCRIPT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `run-local.sh status`, as (member, running) pairs.
fn status(net: &Netns, dir: &Path) -> Vec<(String, bool)> {
    let out = run_local_once(net, dir, &["status"]);
    assert!(out.status.success(), "status: {}", stdout(&out));
    stdout(&out)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(name, state)| (name.to_owned(), state.starts_with("running")))
        .collect()
}

fn all_running(net: &Netns, dir: &Path) -> bool {
    let s = status(net, dir);
    s.len() == MEMBERS.len() && s.iter().all(|(_, up)| *up)
}

/// Processes inside host 0 other than `except`.
fn left_running(net: &Netns, except: &[u32]) -> Vec<String> {
    net.pids(0)
        .into_iter()
        .filter(|p| !except.contains(p))
        .map(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .map(|c| c.replace('\0', " "))
                .unwrap_or_else(|_| p.to_string())
        })
        .collect()
}

/// Asserts the demo in `dir` ended cleanly: every member logged its
/// shutdown, no SQLite side files, no pid files.
fn assert_ended_cleanly(dir: &Path) {
    for name in [
        "db",
        "frontend1",
        "frontend2",
        "balancer",
        "tablet1",
        "tablet2",
    ] {
        let log = std::fs::read_to_string(dir.join("logs").join(format!("{name}.log")))
            .unwrap_or_else(|e| panic!("no log for {name}: {e}"));
        assert!(
            log.contains("shutdown signal received"),
            "{name} did not shut down on SIGTERM:\n{log}"
        );
    }
    for side in ["scores.db-wal", "scores.db-shm"] {
        assert!(!dir.join(side).exists(), "{side} left behind");
    }
    let pid_files: Vec<_> = std::fs::read_dir(dir.join("logs/run"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(pid_files.is_empty(), "pid files left: {pid_files:?}");
}

#[test]
fn run_local_stops_and_starts_one_member_by_uid_and_stops_cleanly() {
    let Some(net) = Netns::or_skip("run_local_stops_and_starts_one_member_by_uid", 1) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir = dir.path();
    let mut cmd = run_local(&net, dir, &[]);
    cmd.env("PODIUM_DEMO_SECONDS", "600");
    let mut demo = Process::start_client(cmd, "run-local.sh");
    assert!(
        demo.wait_for_line(Stream::Stdout, SCRIPT_TIMEOUT, |l| l
            .starts_with("Demo running"))
            .is_some(),
        "the demo did not start:\n{}\n{}",
        demo.output(Stream::Stdout),
        demo.output(Stream::Stderr)
    );
    assert!(all_running(&net, dir), "{:?}", status(&net, dir));

    // The election group as cluster-status.sh shows it.
    let shown = wait_for(SCRIPT_TIMEOUT, || {
        let mut cmd = net.command(0, script("cluster-status.sh"));
        cmd.env("PODIUM_STATUS_ROUNDS", "1");
        let text = stdout(&output_within(cmd, SCRIPT_TIMEOUT).ok()?);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("http://")).collect();
        let coordinators = rows.iter().filter(|r| r.contains(" coordinator ")).count();
        (rows.len() == 3 && coordinators == 1 && !text.contains("unreachable"))
            .then_some(text.clone())
    })
    .expect("cluster-status.sh never showed one coordinator");
    assert!(shown.contains("http://127.0.0.1:8003/"), "{shown}");

    // Stop uid 2 (the coordinator) and start it again.
    let out = run_local_once(&net, dir, &["stop", "2"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("stopped frontend2"),
        "{}",
        stdout(&out)
    );
    let s = status(&net, dir);
    assert!(s.contains(&("frontend2".into(), false)), "{s:?}");
    assert_eq!(s.iter().filter(|(_, up)| *up).count(), 6, "{s:?}");
    let out = run_local_once(&net, dir, &["start", "2"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("started frontend2"),
        "{}",
        stdout(&out)
    );
    assert!(all_running(&net, dir), "{:?}", status(&net, dir));

    // A bad name is refused with the list of good ones.
    let out = run_local_once(&net, dir, &["stop", "7"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("frontend1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGTERM to the script stops everything, cleanly.
    let status = demo
        .terminate(SCRIPT_TIMEOUT)
        .expect("the demo stops on SIGTERM");
    assert!(status.success(), "the demo exited with {status}");
    let left = left_running(&net, &[]);
    assert!(left.is_empty(), "left running: {left:?}");
    assert_ended_cleanly(dir);
    assert!(demo.output(Stream::Stdout).contains("stopped db"));
}

#[test]
fn run_local_leaves_nothing_running_when_a_member_cannot_start() {
    let Some(net) = Netns::or_skip("run_local_leaves_nothing_running", 1) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    // Front-end 2's port is taken.
    let mut squat = net.command(0, "python3");
    squat.args([
        "-c",
        "import socket, time\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', 8003)); s.listen()\n\
         print('LISTENING 127.0.0.1:8003', flush=True); time.sleep(600)",
    ]);
    let squatter = Process::start_named(squat, "squatter");
    let out = run_local_once(&net, dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}\n{stderr}", stdout(&out));
    assert!(stderr.contains("frontend2 exited at start"), "{stderr}");
    assert!(stderr.contains("8003"), "the cause is not shown:\n{stderr}");
    let left = left_running(&net, &[squatter.pid()]);
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(stdout(&out).contains("stopped db"), "{}", stdout(&out));
}

/// A tmux server on a socket of its own (a file in the test's temporary
/// directory), killed on drop.
struct Tmux<'a> {
    net: &'a Netns,
    socket: PathBuf,
}

impl Tmux<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.net.command(0, "tmux");
        cmd.arg("-S").arg(&self.socket).args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> String {
        let out = output_within(self.command(args), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux<'_> {
    fn drop(&mut self) {
        let _ = output_within(self.command(&["kill-server"]), Duration::from_secs(10));
    }
}

#[test]
fn run_local_inside_a_detached_tmux_session() {
    if Command::new("tmux").arg("-V").output().is_err() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED run_local_inside_a_detached_tmux_session: no tmux"
        );
        return;
    }
    let Some(net) = Netns::or_skip("run_local_inside_a_detached_tmux_session", 1) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let tmux = Tmux {
        net: &net,
        socket: dir.path().join("tmux.socket"),
    };
    // The script runs in a pane of a session no client is attached to.
    let line = format!(
        "PODIUM_BIN_DIR='{}' PODIUM_DEMO_DIR='{}' '{}'; echo demo-exited-$?; sleep 600",
        bin_dir().display(),
        dir.path().display(),
        script("run-local.sh").display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "outer",
        "-x",
        "200",
        "-y",
        "50",
        &line,
    ]);
    assert!(
        wait_until(SCRIPT_TIMEOUT, || all_running(&net, dir.path())),
        "the demo did not start inside tmux: {:?}\n{}",
        status(&net, dir.path()),
        tmux.run(&["capture-pane", "-p", "-t", "outer:0.0"])
    );
    // Its logs are shown in a window of that session, and kept in files.
    let windows = || tmux.run(&["list-windows", "-t", "outer", "-F", "#{window_name}"]);
    assert!(
        wait_until(SCRIPT_TIMEOUT, || windows()
            .lines()
            .any(|w| w == "podium-demo")),
        "no log window: {}",
        windows()
    );
    // Ctrl-C in the window's first pane stops the demo, cleanly (once the
    // pane says so, it is ready for it).
    let control = || tmux.run(&["capture-pane", "-p", "-t", "outer:podium-demo.0"]);
    assert!(
        wait_until(SCRIPT_TIMEOUT, || control().contains("Ctrl-C here stops")),
        "the control pane never became ready:\n{}",
        control()
    );
    tmux.run(&["send-keys", "-t", "outer:podium-demo.0", "C-c"]);
    assert!(
        wait_until(SCRIPT_TIMEOUT, || tmux
            .run(&["capture-pane", "-p", "-t", "outer:0.0"])
            .contains("demo-exited-0")),
        "the demo did not end:\n{}",
        tmux.run(&["capture-pane", "-p", "-t", "outer:0.0"])
    );
    assert!(!windows().contains("podium-demo"), "{}", windows());
    let mut tmux_pids: Vec<u32> = Vec::new();
    for pid in net.pids(0) {
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with("tmux") || cmdline == "sleep\x00600\x00" {
            tmux_pids.push(pid);
        }
    }
    let left = left_running(&net, &tmux_pids);
    assert!(left.is_empty(), "left running: {left:?}");
    assert_ended_cleanly(dir.path());
}

/// A member that knows no coordinator yet, as `cluster.status` says it.
const ELECTING_MEMBER: &str = r#"
from xmlrpc.server import SimpleXMLRPCServer
server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
server.register_function(lambda: {"uid": 1, "role": "member", "state": "candidate",
    "coordinator": -1, "term": 3, "offset_ms": 0.0, "vector_clock": [0, 4, 0]}, "cluster.status")
print("LISTENING %s:%d" % server.server_address, flush=True)
server.serve_forever()
"#;

#[test]
fn cluster_status_says_electing_while_no_coordinator_is_known() {
    let member = Process::spawn("python3", ["-u", "-c", ELECTING_MEMBER], &[]);
    let mut cmd = Command::new(script("cluster-status.sh"));
    cmd.arg(member.addr().to_string())
        .env("PODIUM_STATUS_ROUNDS", "1");
    let out = output_within(cmd, SCRIPT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains(&member.addr().to_string()))
        .unwrap_or_else(|| panic!("no row for the member:\n{text}"));
    assert!(
        row.contains("candidate") && row.contains("electing"),
        "{row}"
    );
    assert!(!row.contains("-1"), "{row}");
}
