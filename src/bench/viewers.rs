//! Simulated browsers for the `sse` scenario: each holds one `GET /events`
//! on a raw socket (a hyper client would add a task and its buffers per
//! viewer, which at 10,000 viewers is this process's whole budget), reads
//! the chunked body, and notes the id and arrival time of every change.
//! A stream that ends is reopened with `Last-Event-ID`, as a browser does,
//! so lost and repeated changes are counted across reconnections too.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::web::sse::Reader;

/// Reconnections one viewer makes at most.
const MAX_RECONNECTS: usize = 20;
/// Pause before a reconnection (a browser waits its `retry:`).
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);
/// Longest response head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Read buffer per viewer.
const READ_BYTES: usize = 4096;

/// What all viewers share: who is connected, and how many have each
/// version.
#[derive(Debug, Default)]
pub(crate) struct Board {
    /// Viewers that have had their first snapshot or replay.
    pub(crate) ready: AtomicUsize,
    /// Viewers whose stream was refused or broke, before reconnecting.
    pub(crate) broken: AtomicUsize,
    /// Changes received, by version (repeats included).
    counts: Mutex<HashMap<i64, usize>>,
    /// The version being waited for, and how many viewers must have it
    /// before `changed` is woken: waking the writer at each of 10,000
    /// arrivals would cost this process more than the arrivals.
    awaited: AtomicI64,
    awaited_count: AtomicUsize,
    /// Woken when the awaited version has reached its count, and at every
    /// ready or broken viewer.
    pub(crate) changed: Notify,
}

impl Board {
    /// How many viewers have version `v` (repeats counted).
    pub(crate) fn count(&self, v: i64) -> usize {
        self.lock().get(&v).copied().unwrap_or(0)
    }

    /// Wake `changed` once `n` viewers have version `v`.
    pub(crate) fn await_version(&self, v: i64, n: usize) {
        self.awaited_count.store(n, Ordering::Release);
        self.awaited.store(v, Ordering::Release);
    }

    fn arrived(&self, v: i64) {
        let count = {
            let mut counts = self.lock();
            let count = counts.entry(v).or_insert(0);
            *count += 1;
            *count
        };
        if self.awaited.load(Ordering::Acquire) == v
            && count >= self.awaited_count.load(Ordering::Acquire)
        {
            self.changed.notify_waiters();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What one viewer saw.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// Every change event: its version and when it arrived.
    pub(crate) changes: Vec<(i64, Instant)>,
    pub(crate) reconnects: usize,
    /// Snapshots received (one per stream that could not resume).
    pub(crate) snapshots: usize,
}

/// Where viewers connect, and from which local addresses.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
    /// Local addresses to spread viewers over (none: the system's choice).
    pub(crate) sources: Vec<IpAddr>,
}

impl Dial {
    async fn connect(&self, n: usize) -> std::io::Result<TcpStream> {
        let Some(source) = self.sources.get(n % self.sources.len().max(1)) else {
            return TcpStream::connect(self.addr).await;
        };
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(*source, 0))?;
        socket.connect(self.addr).await
    }
}

/// Viewer `n`: follows the stream until `stop`, reconnecting as a
/// browser would.
pub(crate) async fn view(n: usize, dial: Dial, board: &Board, stop: CancellationToken) -> Log {
    let mut log = Log::default();
    let mut last: Option<i64> = None;
    let mut first = true;
    loop {
        let outcome = tokio::select! {
            r = follow(n, &dial, last, board, &mut log, &mut first) => r,
            _ = stop.cancelled() => return log,
        };
        if let Some(v) = log.changes.last().map(|(v, _)| *v) {
            last = Some(last.map_or(v, |l| l.max(v)));
        }
        let _ = outcome;
        board.broken.fetch_add(1, Ordering::Relaxed);
        board.changed.notify_waiters();
        if log.reconnects >= MAX_RECONNECTS {
            return log;
        }
        log.reconnects += 1;
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
            _ = stop.cancelled() => return log,
        }
    }
}

/// One stream, until it ends. `last` goes out as `Last-Event-ID`.
async fn follow(
    n: usize,
    dial: &Dial,
    last: Option<i64>,
    board: &Board,
    log: &mut Log,
    first: &mut bool,
) -> std::io::Result<()> {
    let mut stream = dial.connect(n).await?;
    let _ = stream.set_nodelay(true);
    let resume = last.map_or(String::new(), |v| format!("Last-Event-ID: {v}\r\n"));
    let request = format!(
        "GET /events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n{resume}\r\n",
        dial.host
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; READ_BYTES];
    let mut head = Vec::new();
    let body_start = loop {
        let got = stream.read(&mut buf).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..got]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    };
    let status_ok = head.starts_with(b"HTTP/1.1 200");
    if !status_ok {
        return Err(std::io::Error::other("the stream was refused"));
    }
    let mut chunks = Dechunk::default();
    let mut reader = Reader::new();
    let mut feed = |data: &[u8], log: &mut Log| -> std::io::Result<()> {
        let mut failed = None;
        chunks.feed(data, |payload| {
            let fed = reader.feed(payload, |event| {
                let id = event.id.as_deref().and_then(|s| s.parse::<i64>().ok());
                match (event.name.as_str(), id) {
                    ("change", Some(v)) => {
                        log.changes.push((v, Instant::now()));
                        board.arrived(v);
                    }
                    ("snapshot", _) => log.snapshots += 1,
                    _ => {}
                }
            });
            if fed.is_err() {
                failed = Some(std::io::Error::from(std::io::ErrorKind::InvalidData));
            }
        })?;
        failed.map_or(Ok(()), Err)
    };
    // A viewer is ready once its first snapshot is in.
    let ready = |log: &Log, first: &mut bool| {
        if *first && log.snapshots > 0 {
            *first = false;
            board.ready.fetch_add(1, Ordering::Relaxed);
            board.changed.notify_waiters();
        }
    };
    // The head's read may hold the start of the body.
    let rest = head.split_off(body_start);
    feed(&rest, log)?;
    ready(log, first);
    loop {
        let got = stream.read(&mut buf).await?;
        if got == 0 {
            return Ok(());
        }
        feed(&buf[..got], log)?;
        ready(log, first);
    }
}

/// Takes a chunked body apart: the payload of each chunk, as it comes.
#[derive(Debug, Default)]
struct Dechunk {
    /// Bytes of the current chunk's payload still to come.
    left: usize,
    /// The size line being read.
    line: Vec<u8>,
    /// CRLF bytes after a payload still to skip.
    skip: usize,
    done: bool,
}

impl Dechunk {
    fn feed(&mut self, mut data: &[u8], mut payload: impl FnMut(&[u8])) -> std::io::Result<()> {
        let bad = || std::io::Error::from(std::io::ErrorKind::InvalidData);
        while !data.is_empty() && !self.done {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
            } else if self.left > 0 {
                let n = self.left.min(data.len());
                payload(&data[..n]);
                self.left -= n;
                data = &data[n..];
                if self.left == 0 {
                    self.skip = 2;
                }
            } else {
                let Some(end) = data.iter().position(|b| *b == b'\n') else {
                    self.line.extend_from_slice(data);
                    if self.line.len() > 64 {
                        return Err(bad());
                    }
                    return Ok(());
                };
                self.line.extend_from_slice(&data[..end]);
                data = &data[end + 1..];
                let line = std::mem::take(&mut self.line);
                let text = std::str::from_utf8(&line).map_err(|_| bad())?;
                let size = text.trim().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size, 16).map_err(|_| bad())?;
                if size == 0 {
                    self.done = true;
                }
                self.left = size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_apart_wherever_they_are_cut() {
        let wire = b"5\r\nhello\r\n7;x=1\r\n, world\r\n0\r\n\r\n";
        for cut in 0..wire.len() {
            let mut d = Dechunk::default();
            let mut out = Vec::new();
            let (a, b) = wire.split_at(cut);
            d.feed(a, |p| out.extend_from_slice(p)).unwrap();
            d.feed(b, |p| out.extend_from_slice(p)).unwrap();
            assert_eq!(out, b"hello, world", "cut at {cut}");
            assert!(d.done);
        }
    }
}
