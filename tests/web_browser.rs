//! The scoreboard in a real browser: Debian's headless Chromium, driven by
//! Playwright (tests/web_browser.py), loads the page through the balancer
//! of a cluster of real binaries; a write made with `podium-feeder` shows
//! within a second; the front-end the balancer's stream comes from is
//! killed, and the next write shows too; with no front-end left the page
//! says it is not live. Screenshots are saved (wall screen and phone) in
//! the target directory; `docs/scoreboard.png` is one of them.
//!
//! Needs /usr/bin/chromium and Playwright for python3
//! (`scripts/install-test-deps.sh` installs both). Without them the test
//! says so past the harness's capture and skips, unless
//! `PODIUM_REQUIRE_BROWSER=1` (set by `.ci/run`), when it fails.

mod cluster_support;
mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cluster_support::{Cluster, ClusterConfig, Mode, PASSWORD};
use support::target_profile_dir;

/// Set to 1 to fail, not skip, when the browser or Playwright is missing.
const REQUIRE_ENV: &str = "PODIUM_REQUIRE_BROWSER";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long the browser may take to start and show the page (a debug
/// cluster and Chromium starting on a loaded two-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one command may take; each bounds its own wait in the page.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const EVENT: &str = "Stone Curling";

/// Why the browser cannot be driven here, if it cannot.
fn missing() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is not installed"));
    }
    let playwright = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match playwright {
        Ok(s) if s.success() => None,
        _ => Some("python3 cannot import playwright".into()),
    }
}

/// True when the test can run; otherwise prints why and returns false.
///
/// # Panics
/// When it cannot run and `PODIUM_REQUIRE_BROWSER=1`.
fn browser_or_skip(test: &str) -> bool {
    let Some(reason) = missing() else {
        return true;
    };
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{test}: {REQUIRE_ENV}=1 but {reason}");
    }
    // Straight to stderr, past the harness's capture, so that a skip shows
    // in a passing run too.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {reason} (scripts/install-test-deps.sh installs chromium and playwright)"
    );
    false
}

/// The Playwright script, spoken to one command per line.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Browser {
    fn open(url: &str) -> Browser {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_browser.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(url)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stderr.read_to_string(&mut out);
            out
        });
        let mut browser = Browser {
            child,
            stdin,
            lines,
            stderr: Some(stderr),
        };
        browser.expect_line("LIVE", START_TIMEOUT);
        browser
    }

    fn expect_line(&mut self, want: &str, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) if line.starts_with(want) => line,
            Ok(line) => self.fail(&format!("wanted {want}, the page answered {line:?}")),
            Err(_) => self.fail(&format!("no {want} within {timeout:?}")),
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        panic!("browser: {what}\n--- script stderr ---\n{stderr}");
    }

    /// Sends one command; returns how long the page took (ms), per its answer.
    fn command(&mut self, cmd: &str, args: &[&str]) -> f64 {
        let line = format!("{cmd} {}\n", args.join("\t"));
        if self.stdin.write_all(line.as_bytes()).is_err() {
            self.fail("the script is gone");
        }
        let answer = self.expect_line("", COMMAND_TIMEOUT);
        match answer.strip_prefix("OK ") {
            Some(ms) => ms.parse().unwrap_or(0.0),
            None => self.fail(&format!("{cmd} {args:?}: {answer}")),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"QUIT\n");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `podium-feeder --server URL ARGS...` and waits for it (every call
/// it makes has its own deadline).
fn feed(url: &str, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_podium-feeder"))
        .args(["--server", url])
        .args(args)
        .env("PODIUM_FEEDER_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("podium-feeder starts");
    assert!(
        out.status.success(),
        "podium-feeder {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn shots_dir() -> PathBuf {
    let dir = target_profile_dir().join("web_browser");
    std::fs::create_dir_all(&dir).expect("a screenshot folder");
    dir
}

#[test]
fn the_page_follows_writes_live_through_the_balancer_and_a_front_end_death() {
    if !browser_or_skip("the_page_follows_writes_live_through_the_balancer_and_a_front_end_death") {
        return;
    }
    let mut cluster = Cluster::start(ClusterConfig {
        frontends: vec![Mode::Push, Mode::Push],
        ..ClusterConfig::default()
    });
    let url = cluster.balancer_url();
    // Something on the board before the page loads: it must show at once.
    for (team, medal) in [("Rome", "gold"), ("Rome", "silver"), ("Carthage", "bronze")] {
        feed(&url, &["award", team, medal]);
    }
    feed(
        &url,
        &["set-score", "Stone Skating", "Greece 12.4 s, Persia 12.9 s"],
    );
    let mut page = Browser::open(&url);
    page.command("GOLD", &["Rome", "1"]);
    page.command("RANK", &["Rome", "1"]);

    feed(&url, &["set-score", EVENT, "Gaul 3, Rome 1"]);
    page.command("SCORE", &[EVENT, "Gaul 3, Rome 1"]);
    feed(&url, &["award", "Gaul", "gold"]);
    feed(&url, &["award", "Gaul", "gold"]);
    page.command("GOLD", &["Gaul", "2"]);
    page.command("RANK", &["Gaul", "1"]);

    // The front-end the balancer's stream comes from, from its log.
    let balancer = cluster.balancer.as_ref().expect("a balancer");
    let followed = (0..cluster.frontends.len())
        .find(|i| {
            let fe = cluster.frontends[*i].url();
            Cluster::logged(balancer, &["web stream following", &fe])
        })
        .expect("the balancer follows a front-end");
    cluster.frontends[followed].signal("KILL");
    feed(&url, &["set-score", EVENT, "Gaul 4, Rome 1"]);
    page.command("SCORE", &[EVENT, "Gaul 4, Rome 1"]);
    feed(&url, &["award", "Greece", "gold"]);
    page.command("GOLD", &["Greece", "1"]);

    let dir = shots_dir();
    let wall = dir.join("scoreboard.png");
    let phone = dir.join("scoreboard-phone.png");
    page.command("SHOT", &[wall.to_str().unwrap(), "1280", "720"]);
    page.command("SHOT", &[phone.to_str().unwrap(), "390", "844"]);
    let _ = writeln!(
        std::io::stderr(),
        "screenshots: {} and {}",
        wall.display(),
        phone.display()
    );

    // No front-end left: the page says so.
    let other = 1 - followed;
    cluster.frontends[other].signal("KILL");
    page.command("NOTLIVE", &[]);
}
