//! Network namespaces for tests that run each process on a host of its
//! own: [`Netns::create`] makes N "hosts" joined by one bridge, and removes
//! them all when dropped, also when the test fails.
//!
//! ```text
//!   host 0 (10.77.S.1, fd77::S:1)   host 1 (10.77.S.2, fd77::S:2)   ...
//!        eth0                                eth0
//!         |  veth                             |  veth
//!        p0 ------------ br0 (hub) ---------- p1  ...
//! ```
//!
//! The bridge lives in a hub namespace of its own, so the machine's own
//! network is never touched, and the hosts have no route beyond their
//! /24 (/64): no test traffic can leave them. Names are
//! `podium-t<pid>-<S>-h<i>` (and `-hub`), unique per test process and per
//! call (S); namespaces that a killed test process left behind are removed
//! by the next [`Netns::create`].
//!
//! Creating namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and
//! `ip` (iproute2). Without them [`Netns::create`] says why, and
//! [`Netns::or_skip`] prints that (past the harness's capture) and lets the
//! test skip, unless `PODIUM_REQUIRE_NETNS=1` (set by `.ci/run` where
//! namespaces can be made) makes it a failure.
//!
//! Use from a test file with `mod support; mod netns_support;`.
#![allow(dead_code)]

use std::io::Read as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread;
use std::time::Duration;

use crate::support::{wait_for, wait_until};

/// Prefix of every namespace these helpers make.
const PREFIX: &str = "podium-t";
/// Deadline of each `ip` command.
const IP_TIMEOUT: Duration = Duration::from_secs(10);
/// Set to 1 to fail, not skip, when namespaces cannot be made.
pub const REQUIRE_ENV: &str = "PODIUM_REQUIRE_NETNS";

/// Calls of [`Netns::create`] in this process so far: the S in names and
/// addresses.
static SERIAL: AtomicU8 = AtomicU8::new(0);

/// N hosts on one bridge; removed on drop.
#[derive(Debug)]
pub struct Netns {
    /// `podium-t<pid>-<S>-`.
    prefix: String,
    serial: u8,
    hosts: usize,
    /// Namespaces made so far, the hub first: what drop removes.
    made: Vec<String>,
}

impl Netns {
    /// Makes `hosts` namespaces, each with `lo` up and one interface on the
    /// bridge with the addresses [`Netns::ipv4`] and [`Netns::ipv6`].
    ///
    /// # Errors
    /// Why namespaces cannot be made here (not root, no `ip`, no support).
    pub fn create(hosts: usize) -> Result<Netns, String> {
        assert!((1..=200).contains(&hosts), "1 to 200 hosts");
        ip(&["-V"]).map_err(|e| format!("no usable `ip` command (iproute2): {e}"))?;
        remove_leftovers();
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let mut netns = Netns {
            prefix: format!("{PREFIX}{}-{serial}-", std::process::id()),
            serial,
            hosts,
            made: Vec::new(),
        };
        let hub = netns.hub();
        netns.add(&hub).map_err(|e| {
            format!("cannot create a network namespace (`ip netns add` needs root): {e}")
        })?;
        let mut setup = || -> Result<(), String> {
            ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
            ip(&["-n", &hub, "link", "set", "br0", "up"])?;
            for i in 0..hosts {
                let host = netns.name(i).to_owned();
                netns.add(&host)?;
                let port = format!("p{i}");
                ip(&["-n", &host, "link", "set", "lo", "up"])?;
                ip(&[
                    "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", &host,
                ])?;
                ip(&["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
                let v4 = format!("{}/24", netns.ipv4(i));
                let v6 = format!("{}/64", netns.ipv6(i));
                ip(&["-n", &host, "addr", "add", &v4, "dev", "eth0"])?;
                ip(&[
                    "-n", &host, "-6", "addr", "add", &v6, "dev", "eth0", "nodad",
                ])?;
                ip(&["-n", &host, "link", "set", "eth0", "up"])?;
            }
            Ok(())
        };
        // On failure, drop removes what was made.
        setup()?;
        Ok(netns)
    }

    /// [`Netns::create`], or `None` after printing why not, so the test
    /// can return early: `let Some(net) = Netns::or_skip("my_test", 3) else { return };`
    ///
    /// # Panics
    /// When namespaces cannot be made and `PODIUM_REQUIRE_NETNS=1`.
    pub fn or_skip(test: &str, hosts: usize) -> Option<Netns> {
        match Netns::create(hosts) {
            Ok(netns) => Some(netns),
            Err(reason) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") => {
                panic!("{test}: {REQUIRE_ENV}=1 but network namespaces cannot be made: {reason}")
            }
            Err(reason) => {
                // Straight to stderr, past the test harness's capture, so
                // that a skip shows in a passing run too.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: {reason} (run as root to test across namespaces)"
                );
                None
            }
        }
    }

    fn hub(&self) -> String {
        format!("{}hub", self.prefix)
    }

    fn add(&mut self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])?;
        self.made.push(name.to_owned());
        Ok(())
    }

    /// The namespace name of host `i`.
    pub fn name(&self, i: usize) -> String {
        assert!(i < self.hosts, "no host {i}");
        format!("{}h{i}", self.prefix)
    }

    /// Host `i`'s IPv4 address, `10.77.S.(i+1)`.
    pub fn ipv4(&self, i: usize) -> Ipv4Addr {
        assert!(i < self.hosts, "no host {i}");
        Ipv4Addr::new(
            10,
            77,
            self.serial,
            u8::try_from(i + 1).expect("at most 200 hosts"),
        )
    }

    /// Host `i`'s IPv6 address, `fd77::S:(i+1)`.
    pub fn ipv6(&self, i: usize) -> Ipv6Addr {
        assert!(i < self.hosts, "no host {i}");
        Ipv6Addr::new(
            0xfd77,
            0,
            0,
            0,
            0,
            0,
            u16::from(self.serial),
            (i + 1) as u16,
        )
    }

    /// A command that runs `program` inside host `i`
    /// (`ip netns exec <name> <program>`); the process it starts is
    /// `program` itself, with this process's environment.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec"]).arg(self.name(i)).arg(program);
        cmd
    }

    /// Cuts hosts `a` and `b` apart, both ways, while both still reach
    /// every other host: their bridge ports are made *isolated* (an
    /// isolated port forwards to no other isolated port). The bridge drops
    /// their frames silently, as a partition does: no reset, no error. With
    /// `cut` false, joins them again.
    ///
    /// # Panics
    /// When `ip` fails.
    pub fn partition(&self, a: usize, b: usize, cut: bool) {
        let on = if cut { "on" } else { "off" };
        for i in [a, b] {
            let port = format!("p{}", self.index(i));
            ip(&[
                "-n",
                &self.hub(),
                "link",
                "set",
                "dev",
                &port,
                "type",
                "bridge_slave",
                "isolated",
                on,
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Drops everything host `from` sends to host `to` (a blackhole route
    /// in `from` to `to`'s IPv4 address), while `to` still reaches `from`:
    /// a one-way cut. With `cut` false, removes the route.
    ///
    /// # Panics
    /// When `ip` fails.
    pub fn one_way_cut(&self, from: usize, to: usize, cut: bool) {
        let verb = if cut { "add" } else { "del" };
        let dest = format!("{}/32", self.ipv4(to));
        ip(&["-n", &self.name(from), "route", verb, "blackhole", &dest])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn index(&self, i: usize) -> usize {
        assert!(i < self.hosts, "no host {i}");
        i
    }

    /// The pids of the processes running inside host `i`.
    pub fn pids(&self, i: usize) -> Vec<u32> {
        pids_in(&self.name(i))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in self.made.iter().rev() {
            remove(name);
        }
    }
}

/// Runs `ip args`; its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let out = output_within(cmd, IP_TIMEOUT).map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The pids inside namespace `name` (`ip netns pids`).
fn pids_in(name: &str) -> Vec<u32> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "pids", name]);
    match output_within(cmd, IP_TIMEOUT) {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Kills whatever still runs in namespace `name`, then deletes it. A
/// process left inside would keep the namespace alive after `ip netns del`.
fn remove(name: &str) {
    let gone = wait_until(Duration::from_secs(5), || {
        let pids = pids_in(name);
        for pid in &pids {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        pids.is_empty()
    });
    if !gone {
        eprintln!(
            "netns {name}: processes still inside after kill -9: {:?}",
            pids_in(name)
        );
    }
    if let Err(e) = ip(&["netns", "del", name]) {
        eprintln!("netns {name}: {e}");
    }
}

/// Removes namespaces of test processes that no longer run (killed before
/// their drop could).
fn remove_leftovers() {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "list"]);
    let Ok(out) = output_within(cmd, IP_TIMEOUT) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove(name);
        }
    }
}

/// Runs `cmd` to completion with its output captured, killing it at
/// `timeout`.
///
/// # Errors
/// It could not start, or ran past `timeout` (the error holds its output).
pub fn output_within(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let collect = |mut pipe: Box<dyn std::io::Read + Send>| {
        thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            out
        })
    };
    let stdout = collect(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = collect(Box::new(child.stderr.take().expect("stderr is piped")));
    let finished = wait_for(timeout, || child.try_wait().ok().flatten());
    if finished.is_none() {
        let _ = child.kill();
    }
    let status = match finished {
        Some(status) => status,
        None => child.wait().map_err(|e| format!("reaping {cmd:?}: {e}"))?,
    };
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    match finished {
        Some(_) => Ok(output),
        None => Err(format!(
            "{cmd:?} ran over {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}
