//! The attacking side of `attack`: the sockets of each attack, started
//! together and stopped together, and what they saw.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderValue;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{AttackConfig, AttackKind};
use crate::bench::load::is_fault;
use crate::bench::{BenchError, Target};

/// Deadline of an attacker's connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The body a `bodies` attacker declares: the default body limit less one.
const HELD_BODY_BYTES: usize = (1 << 20) - 1;
/// What a `bodies` attacker keeps back, so the body never completes.
const HELD_BACK_BYTES: usize = 64 << 10;
/// Longest the attack's tasks get to stop once told.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// What the attacking side saw.
#[derive(Debug, Default)]
pub(super) struct AttackStats {
    pub(super) connects: AtomicU64,
    /// Connections the server closed (shed, timed out, refused).
    pub(super) closed: AtomicU64,
    /// Multicall: requests answered, and their bytes both ways.
    pub(super) replies: AtomicU64,
    pub(super) faults: AtomicU64,
    pub(super) sent_bytes: AtomicU64,
    pub(super) reply_bytes: AtomicU64,
}

impl AttackStats {
    fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A running attack: its tasks, stopped with [`Attack::stop`] (or dropped).
#[derive(Debug)]
pub(super) struct Attack {
    stop: CancellationToken,
    tasks: JoinSet<()>,
    pub(super) stats: Arc<AttackStats>,
}

impl Attack {
    pub(super) fn start(
        config: &AttackConfig,
        addr: SocketAddr,
        target: &Target,
    ) -> Result<Attack, BenchError> {
        let stop = CancellationToken::new();
        let stats = Arc::new(AttackStats::default());
        let mut tasks = JoinSet::new();
        let body = match config.kind {
            AttackKind::Multicall => Some(multicall_body(config.calls)),
            _ => None,
        };
        for _ in 0..config.attackers() {
            let (stop, stats) = (stop.clone(), stats.clone());
            match config.kind {
                AttackKind::Slowloris => tasks.spawn(slowloris(addr, stop, stats)),
                AttackKind::Bodies => tasks.spawn(held_body(addr, stop, stats)),
                AttackKind::Multicall => {
                    let client = target.connection()?;
                    let body = body.clone().unwrap_or_default();
                    tasks.spawn(multicall(client, body, stop, stats))
                }
            };
        }
        Ok(Attack { stop, tasks, stats })
    }

    pub(super) async fn stop(mut self) {
        self.stop.cancel();
        let all = async { while self.tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(STOP_WAIT, all).await;
    }
}

/// One slowloris socket until `stop`.
async fn slowloris(addr: SocketAddr, stop: CancellationToken, stats: Arc<AttackStats>) {
    const HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let connect = tokio::net::TcpStream::connect(addr);
        let Ok(Ok(mut stream)) = tokio::time::timeout(CONNECT_TIMEOUT, connect).await else {
            continue;
        };
        AttackStats::count(&stats.connects, 1);
        let mut sent = 0;
        let mut buf = [0u8; 512];
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    let byte = HEAD.get(sent).copied().unwrap_or(b'a');
                    if stream.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                read = stream.read(&mut buf) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        break;
                    }
                }
            }
        }
        AttackStats::count(&stats.closed, 1);
    }
}

/// One held body until `stop`.
async fn held_body(addr: SocketAddr, stop: CancellationToken, stats: Arc<AttackStats>) {
    static BODY: OnceLock<Vec<u8>> = OnceLock::new();
    let body = BODY.get_or_init(|| vec![b'a'; HELD_BODY_BYTES - HELD_BACK_BYTES]);
    let head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n\
         Content-Length: {HELD_BODY_BYTES}\r\n\r\n"
    );
    loop {
        let connect = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(mut stream)) = tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            AttackStats::count(&stats.connects, 1);
            let hold = async {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body).await?;
                let mut buf = [0u8; 512];
                while stream.read(&mut buf).await? > 0 {}
                Ok::<_, std::io::Error>(())
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = hold => {}
            }
            AttackStats::count(&stats.closed, 1);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// A gzipped `system.multicall` of `calls` × `scoreboard.medal_table`.
pub(super) fn multicall_body(calls: usize) -> Bytes {
    const ENTRY: &str = "<value><struct><member><name>methodName</name>\
        <value>scoreboard.medal_table</value></member><member><name>params</name>\
        <value><array><data/></array></value></member></struct></value>";
    let xml = format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>system.multicall</methodName>\
         <params><param><value><array><data>{}</data></array></value></param></params>\
         </methodCall>",
        ENTRY.repeat(calls)
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(xml.as_bytes())
        .expect("writing to a Vec cannot fail");
    Bytes::from(gz.finish().expect("writing to a Vec cannot fail"))
}

/// One multicall connection until `stop`: posts `body` (gzipped), without
/// asking for a gzipped reply, and counts what comes back.
async fn multicall(
    client: crate::api::Client,
    body: Bytes,
    stop: CancellationToken,
    stats: Arc<AttackStats>,
) {
    let gzip = [("content-encoding", HeaderValue::from_static("gzip"))];
    loop {
        let call = client.rpc().call_raw_with(body.clone(), &gzip);
        let reply = tokio::select! {
            _ = stop.cancelled() => return,
            reply = call => reply,
        };
        AttackStats::count(&stats.sent_bytes, body.len() as u64);
        match reply {
            Ok(reply) => {
                AttackStats::count(&stats.replies, 1);
                AttackStats::count(&stats.reply_bytes, reply.len() as u64);
                if is_fault(&reply) {
                    AttackStats::count(&stats.faults, 1);
                }
            }
            Err(_) => {
                AttackStats::count(&stats.closed, 1);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}
