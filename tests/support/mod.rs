//! Shared helpers for the integration tests: real processes bound to
//! `127.0.0.1:0`, polling with deadlines instead of sleeps, raw HTTP/1.1 over
//! a `TcpStream`, python3 scripts, and a blocking XML-RPC client ([`Rpc`]).
//!
//! Each test file says `mod support;` and uses what it needs, so a helper may
//! be unused in one test crate: hence the `dead_code` allowance below.
//!
//! Conventions every helper follows, and new ones should too:
//! - a server reports where it listens with one stdout line `LISTENING <addr>`
//!   (see `podium::cli::announce_listening`), which [`Process`] waits for;
//! - every wait has a deadline and every loop a bound, and a helper that
//!   cannot do its job panics with the evidence (the child's output, the
//!   script's stderr), so the test fails with something to read;
//! - nothing here depends on a particular binary: tests locate crate binaries
//!   with `env!("CARGO_BIN_EXE_<name>")` and examples with [`example_bin`].
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{self, BufRead as _, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use podium::rpc::{ClientConfig, ClientError, Fault, Value};

/// How long a spawned server gets to print `LISTENING <addr>`. Generous:
/// debug builds start slowly on a loaded two-core machine.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Default deadline for a python3 script run by [`python`].
pub const PYTHON_TIMEOUT: Duration = Duration::from_secs(120);

/// Read and write timeout of the sockets [`connect`] opens: a server that
/// stops answering fails the test instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of each output stream a [`Process`] keeps for diagnostics and for
/// [`Process::wait_for_line`]; older lines are dropped.
const KEPT_LINES: usize = 5_000;

/// Longest pause between two polls of [`wait_until`].
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

/// Polls `condition` until it holds or `timeout` has passed, and returns
/// whether it held. Polls often at first (from 1 ms) and backs off to
/// [`MAX_POLL_INTERVAL`], so a fast condition costs almost nothing and a slow
/// one does not spin. Always evaluates `condition` at least once, and once
/// more at the deadline.
///
/// ```ignore
/// assert!(wait_until(Duration::from_secs(5), || db_path.exists()), "no database file");
/// ```
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || condition().then_some(())).is_some()
}

/// Like [`wait_until`], for a condition that produces a value: returns the
/// first `Some` that `probe` gives before `timeout`, or `None`.
pub fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_POLL_INTERVAL);
    }
}

// ---------------------------------------------------------------------------
// Locating binaries
// ---------------------------------------------------------------------------

/// The directory cargo builds into for this profile (`target/<profile>`),
/// found from the running test binary (`target/<profile>/deps/<test>-<hash>`),
/// so it honours `CARGO_TARGET_DIR` and `--release`.
///
/// # Panics
/// When the test binary is not inside a cargo target directory.
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in target/<profile>/deps", exe.display()))
        .to_path_buf()
}

/// Path of the example binary `name` (`target/<profile>/examples/<name>`).
///
/// A full `cargo test` builds every example before running integration
/// tests, but `cargo test --test <file>` builds only that test, so an
/// example can be older than the library it links. Rather than test stale
/// code, this refuses an example older than the newest build of the
/// package's library: run `cargo build --examples` (or a plain `cargo
/// test`) first.
///
/// # Panics
/// When the example has not been built, or is older than the library.
pub fn example_bin(name: &str) -> PathBuf {
    let profile_dir = target_profile_dir();
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "example {name:?} not found at {} ({e}): run `cargo build --examples` \
                 or a plain `cargo test`, which builds examples",
                path.display()
            )
        });
    if let Some(lib) = newest_library_build(&profile_dir.join("deps")) {
        assert!(
            built >= lib,
            "example {name:?} at {} is older than the library: it would test stale code. \
             Run `cargo build --examples` first (`cargo test --test <file>` does not rebuild examples)",
            path.display()
        );
    }
    path
}

/// When this package's library (`deps/lib<crate>-<hash>.rlib`) was last
/// built, if it was.
fn newest_library_build(deps: &Path) -> Option<std::time::SystemTime> {
    let prefix = format!("lib{}-", env!("CARGO_PKG_NAME").replace('-', "_"));
    std::fs::read_dir(deps)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".rlib")
        })
        .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok())
        .max()
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// Which output stream of a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What the drain threads have read so far.
#[derive(Debug, Default)]
struct Captured {
    /// The last [`KEPT_LINES`] lines of stdout, without line endings.
    stdout: VecDeque<String>,
    /// The last [`KEPT_LINES`] lines of stderr.
    stderr: VecDeque<String>,
    /// The address from the first `LISTENING <addr>` line on stdout.
    listening: Option<SocketAddr>,
    /// Streams that reached end of file (the child closed them or exited).
    closed: usize,
}

impl Captured {
    fn lines(&self, stream: Stream) -> &VecDeque<String> {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }
}

/// Output shared between the drain threads and the [`Process`] handle.
#[derive(Debug, Default)]
struct Output {
    state: Mutex<Captured>,
    /// Notified on every new line and at end of file.
    changed: Condvar,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, Captured> {
        // A drain thread cannot panic while holding the lock, but if a test
        // thread did, the captured lines are still worth reading.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads `pipe` line by line until end of file, so the child never blocks on
/// a full pipe, keeping the last lines in `output`.
fn drain(pipe: impl Read + Send + 'static, stream: Stream, output: Arc<Output>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            let mut state = output.lock();
            if stream == Stream::Stdout && state.listening.is_none() {
                if let Some(addr) = line.strip_prefix("LISTENING ") {
                    state.listening = addr.trim().parse().ok();
                }
            }
            let lines = match stream {
                Stream::Stdout => &mut state.stdout,
                Stream::Stderr => &mut state.stderr,
            };
            if lines.len() == KEPT_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
            drop(state);
            output.changed.notify_all();
        }
        output.lock().closed += 1;
        output.changed.notify_all();
    });
}

/// Starts `cmd` with stdin null and its output drained into the returned
/// [`Output`].
///
/// # Panics
/// When the program cannot be started.
fn launch(mut cmd: Command) -> (Child, Arc<Output>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let output = Arc::new(Output::default());
    let stdout: ChildStdout = child.stdout.take().expect("stdout is piped");
    let stderr: ChildStderr = child.stderr.take().expect("stderr is piped");
    drain(stdout, Stream::Stdout, output.clone());
    drain(stderr, Stream::Stderr, output.clone());
    (child, output)
}

/// A running child process that listens on a port: typically a server
/// started with `--port 0`. Created by [`Process::spawn`] or
/// [`Process::start`], which return once the child has printed
/// `LISTENING <addr>`.
///
/// Its stdout and stderr are drained continuously by background threads (the
/// last lines are kept, see [`Process::output`]). Dropping the handle kills
/// the child and reaps it; if the test is panicking, the child's output is
/// printed first, so a failure shows what the server said.
#[derive(Debug)]
pub struct Process {
    /// Short name for messages: the program's file name.
    name: String,
    child: Child,
    addr: SocketAddr,
    output: Arc<Output>,
}

impl Process {
    /// Starts `program` with `args` and extra environment variables `envs`
    /// (added to the test's own environment), and waits up to
    /// [`STARTUP_TIMEOUT`] for its `LISTENING <addr>` line.
    ///
    /// # Panics
    /// When the program cannot be started, exits, or does not announce an
    /// address in time; the message carries its output.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        program: impl AsRef<Path>,
        args: impl IntoIterator<Item = S>,
        envs: &[(&str, &str)],
    ) -> Process {
        let mut cmd = Command::new(program.as_ref());
        cmd.args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Process::start(cmd)
    }

    /// Like [`Process::spawn`], for a fully prepared [`Command`] (working
    /// directory, cleared environment...). Its stdin is set to null and its
    /// stdout and stderr to pipes.
    ///
    /// # Panics
    /// As [`Process::spawn`].
    pub fn start(cmd: Command) -> Process {
        let name = Path::new(cmd.get_program())
            .file_name()
            .map_or_else(|| "child".to_owned(), |n| n.to_string_lossy().into_owned());
        Process::start_named(cmd, &name)
    }

    /// Like [`Process::start`], calling the child `name` in messages (for a
    /// program started through another, such as `ip netns exec`).
    ///
    /// # Panics
    /// As [`Process::spawn`].
    pub fn start_named(cmd: Command, name: &str) -> Process {
        let name = name.to_owned();
        let (mut child, output) = launch(cmd);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let addr = loop {
            {
                let state = output.lock();
                if let Some(addr) = state.listening {
                    break Some(addr);
                }
                let now = Instant::now();
                if now >= deadline {
                    break None;
                }
                // Wake at least every 100 ms to notice an exit even if a
                // grandchild keeps the pipes open.
                let wait = (deadline - now).min(Duration::from_millis(100));
                let _ = output.changed.wait_timeout(state, wait);
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Let the drain threads finish reading what it wrote.
                wait_until(Duration::from_secs(2), || output.lock().closed == 2);
                let state = output.lock();
                if let Some(addr) = state.listening {
                    // It announced and exited at once; the test will notice.
                    break Some(addr);
                }
                panic!(
                    "{name} exited with {status} before printing LISTENING\n{}",
                    describe(&state)
                );
            }
        };
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name} did not print LISTENING within {STARTUP_TIMEOUT:?}\n{}",
                describe(&output.lock())
            );
        };
        Process {
            name,
            child,
            addr,
            output,
        }
    }

    /// Starts a child that does not listen (a client: a feeder, say) and
    /// returns at once; its output is kept and its [`Process::addr`] is
    /// `0.0.0.0:0`. Killed on drop like any other.
    ///
    /// # Panics
    /// When the program cannot be started.
    pub fn start_client(cmd: Command, name: &str) -> Process {
        let (child, output) = launch(cmd);
        Process {
            name: name.to_owned(),
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            output,
        }
    }

    /// The address the child announced.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/`, for HTTP and XML-RPC clients.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The child's process id (for `/proc/<pid>/...` and signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The kept lines of one stream, joined with newlines.
    pub fn output(&self, stream: Stream) -> String {
        let state = self.output.lock();
        let lines = state.lines(stream);
        let mut out = String::new();
        for line in lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Waits up to `timeout` for a line of `stream` for which `matches` is
    /// true (among the kept lines, old ones included), and returns it.
    pub fn wait_for_line(
        &self,
        stream: Stream,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.output.lock();
        loop {
            if let Some(line) = state.lines(stream).iter().find(|l| matches(l)) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if now >= deadline || state.closed == 2 {
                return None;
            }
            state = self
                .output
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Sends `signal` (a name `kill` understands: `TERM`, `INT`, `STOP`...)
    /// to the child with the system's `kill` command.
    ///
    /// # Panics
    /// When `kill` fails, unless the child has already exited.
    pub fn signal(&mut self, signal: &str) {
        if !self.is_running() {
            return;
        }
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(
            status.success() || !self.is_running(),
            "kill -{signal} {} failed: {status}",
            self.pid()
        );
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still
    /// running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_for(timeout, || self.child.try_wait().ok().flatten())
    }

    /// Asks the child to stop with SIGTERM and waits up to `timeout` for it
    /// to exit. `None` if it did not (it is still killed on drop).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        self.wait_exit(timeout)
    }

    /// The child's memory use from `/proc/<pid>/status` (Linux only).
    ///
    /// # Panics
    /// When the file cannot be read or lacks the fields.
    pub fn memory(&self) -> Memory {
        let path = format!("/proc/{}/status", self.pid());
        let status =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no {name} in {path}:\n{status}"))
        };
        Memory {
            rss_bytes: field("VmRSS") * 1024,
            peak_rss_bytes: field("VmHWM") * 1024,
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            // The drain threads see end of file once the child is gone.
            wait_until(Duration::from_secs(2), || self.output.lock().closed == 2);
            eprintln!(
                "--- {} ({}) output ---\n{}",
                self.name,
                self.addr,
                describe(&self.output.lock())
            );
        }
    }
}

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_bytes: u64,
    /// `VmHWM`: the most that was ever resident.
    pub peak_rss_bytes: u64,
}

/// The last lines of both streams, for failure messages.
fn describe(state: &Captured) -> String {
    const SHOWN: usize = 60;
    let tail = |lines: &VecDeque<String>| {
        let skip = lines.len().saturating_sub(SHOWN);
        lines
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "stdout (last {SHOWN} lines):\n{}\nstderr (last {SHOWN} lines):\n{}",
        tail(&state.stdout),
        tail(&state.stderr)
    )
}

// ---------------------------------------------------------------------------
// python3
// ---------------------------------------------------------------------------

/// Runs `python3 -c <script> <args...>` and returns its stdout, waiting at
/// most [`PYTHON_TIMEOUT`]. In the script, `sys.argv[1:]` are `args`.
///
/// # Panics
/// When python3 cannot start, exits non-zero (an `assert` failed, an
/// exception escaped) or runs too long; the message carries its stderr and
/// stdout.
pub fn python(script: &str, args: &[&str]) -> String {
    python_with_timeout(script, args, PYTHON_TIMEOUT)
}

/// [`python`] with an explicit deadline.
///
/// # Panics
/// As [`python`].
pub fn python_with_timeout(script: &str, args: &[&str], timeout: Duration) -> String {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start python3: {e}"));
    let collect = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = collect(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = collect(Box::new(child.stderr.take().expect("stderr is piped")));
    let status = wait_for(timeout, || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => stdout,
        Some(s) => panic!("python3 script failed ({s})\n--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}"),
        None => panic!("python3 script ran over {timeout:?}\n--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}"),
    }
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1
// ---------------------------------------------------------------------------

/// Opens a TCP connection to `addr` with [`IO_TIMEOUT`] on reads and writes.
///
/// # Panics
/// When the connection is refused.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("a positive timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("a positive timeout");
    let _ = stream.set_nodelay(true);
    stream
}

/// One HTTP response as read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked but not decompressed.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when the server said it will close the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// The body as text, lossily.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Largest response head [`read_response`] accepts.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Reads exactly one response from `stream`, and nothing after it, so the
/// next response on a keep-alive connection can be read the same way.
/// Handles `Content-Length`, chunked, and read-until-close bodies (the
/// latter only when the server sent neither).
///
/// # Errors
/// An I/O error (a timeout included), a connection closed before the
/// response was complete (`UnexpectedEof`), or a malformed response
/// (`InvalidData`).
pub fn read_response(stream: &mut impl Read) -> io::Result<RawResponse> {
    let head = read_until_blank_line(stream)?;
    let head = String::from_utf8(head).map_err(|_| invalid_data("non-UTF-8 response head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid_data(&format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut resp = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(resp);
    }
    if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        resp.body = read_chunked(stream)?;
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| invalid_data("bad content-length"))?;
        resp.body = vec![0; len];
        stream.read_exact(&mut resp.body)?;
    } else {
        stream.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

fn invalid_data(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Reads byte by byte up to and including `\r\n\r\n` (a response head is
/// small, and reading no further keeps the stream positioned at the body).
fn read_until_blank_line(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_HEAD_BYTES {
            return Err(invalid_data("response head too long"));
        }
        if stream.read(&mut byte)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed after {} bytes of response head: {:?}",
                    head.len(),
                    String::from_utf8_lossy(&head)
                ),
            ));
        }
        head.push(byte[0]);
    }
    head.truncate(head.len() - 4);
    Ok(head)
}

fn read_line(stream: &mut impl Read) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if line.len() > 1024 {
            return Err(invalid_data("chunk line too long"));
        }
        stream.read_exact(&mut byte)?;
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| invalid_data("non-UTF-8 chunk line"))
}

fn read_chunked(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(stream)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid_data("bad chunk size"))?;
        if size == 0 {
            // Trailers, then the blank line.
            while !read_line(stream)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        stream.read_exact(&mut body[start..])?;
        if !read_line(stream)?.is_empty() {
            return Err(invalid_data("chunk not followed by CRLF"));
        }
    }
}

/// The bytes of an HTTP/1.1 POST of `body` to `path`, with a
/// `Content-Length` and any `extra_headers` (`"Name: value"` each).
pub fn post_request(path: &str, extra_headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in extra_headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `request` (raw bytes) on `stream` and reads one response.
///
/// # Errors
/// As [`read_response`], or a failed write.
pub fn exchange(stream: &mut TcpStream, request: &[u8]) -> io::Result<RawResponse> {
    stream.write_all(request)?;
    read_response(stream)
}

/// POSTs `body` to `path` on a new connection and returns the response.
///
/// # Panics
/// On any I/O error: use [`connect`] and [`exchange`] to see errors.
pub fn http_post(addr: SocketAddr, path: &str, extra_headers: &[&str], body: &[u8]) -> RawResponse {
    let mut stream = connect(addr);
    exchange(&mut stream, &post_request(path, extra_headers, body))
        .unwrap_or_else(|e| panic!("POST {path} to {addr}: {e}"))
}

/// Waits up to `timeout` for the peer to close `stream` (end of file or a
/// reset), discarding anything it sends. Returns how long it took, or
/// `None` if it was still open at the deadline.
pub fn wait_for_close(stream: &mut TcpStream, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        stream
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .expect("a positive timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
}

// ---------------------------------------------------------------------------
// Blocking XML-RPC calls
// ---------------------------------------------------------------------------

/// One multi-threaded runtime for every [`Rpc`] of the test binary; test
/// threads `block_on` it, several at once.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// A blocking XML-RPC client for one URL (pooled keep-alive connections),
/// so test threads can call a server without being async themselves.
///
/// Modules built on this one add their own defaults (a call deadline, a
/// secret) and domain calls in `impl Rpc` blocks of their own.
#[derive(Debug, Clone)]
pub struct Rpc {
    /// The typed public API client; its plain XML-RPC client makes raw calls.
    api: podium::api::Client,
    url: String,
}

impl Rpc {
    /// A client with deadline `timeout` per call (connecting: at most 5 s of
    /// it) that sends `secret`, if any, as the cluster secret.
    pub fn with_config(url: &str, timeout: Duration, secret: Option<&str>) -> Rpc {
        let base = match secret {
            Some(secret) => podium::cluster::member_client_config(
                &podium::secret::Secret::new(secret).expect("a non-empty secret"),
                None,
                timeout,
            ),
            None => ClientConfig {
                timeout,
                ..ClientConfig::default()
            },
        };
        let config = ClientConfig {
            connect_timeout: timeout.min(Duration::from_secs(5)),
            ..base
        };
        Rpc {
            api: podium::api::Client::new(url, config).expect("a valid URL"),
            url: url.to_owned(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The typed client, for calls of the public API.
    pub fn api(&self) -> &podium::api::Client {
        &self.api
    }

    /// Runs a typed call to completion.
    pub fn block_on<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        runtime().block_on(call)
    }

    /// Calls `method`; faults and transport errors come back as errors.
    pub fn call(&self, method: &str, params: &[Value]) -> Result<Value, ClientError> {
        runtime().block_on(self.api.rpc().call(method, params))
    }

    /// Calls `method` and expects a result.
    ///
    /// # Panics
    /// On any error, naming the call.
    pub fn ok(&self, method: &str, params: &[Value]) -> Value {
        self.call(method, params)
            .unwrap_or_else(|e| panic!("{method}{params:?} at {}: {e}", self.url))
    }

    /// Calls `method` and expects a fault, which it returns.
    ///
    /// # Panics
    /// On a result or a transport error.
    pub fn fault(&self, method: &str, params: &[Value]) -> Fault {
        match self.call(method, params) {
            Err(ClientError::Fault(f)) => f,
            Ok(v) => panic!(
                "{method}{params:?} at {}: want a fault, got {v:?}",
                self.url
            ),
            Err(e) => panic!("{method}{params:?} at {}: want a fault, got {e}", self.url),
        }
    }
}
