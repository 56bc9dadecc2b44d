//! The stream hub: one per process that serves `/events` (each front-end,
//! and the balancer, which fans one upstream stream out to its viewers).
//! A source feeds it (the front-end's change feed, or the balancer's
//! upstream stream); it keeps the board, a bounded ring of the latest
//! changes, and one bounded queue per viewer.
//!
//! - **Encoded once.** Each change becomes its SSE event once; a batch is
//!   one shared chunk that every viewer's queue holds a reference to. The
//!   snapshot is encoded once per version, however many viewers connect.
//! - **Exact resumption.** A viewer that comes back with `Last-Event-ID: X`
//!   gets exactly the changes after X from the ring, when the ring still
//!   reaches back to X; otherwise (too old, or from another history) a new
//!   snapshot. One whose X is ahead of this hub (it came from a source that
//!   was further along) gets only what comes after X, or, if the hub has
//!   not caught up within [`AHEAD_WAIT`], a snapshot.
//! - **Slow viewers leave.** A viewer's queue holds [`HubConfig::queue_chunks`]
//!   chunks; one that is full when the next chunk comes is closed at once
//!   (its browser reconnects and resumes), so it never slows the others or
//!   holds memory beyond its queue.
//! - **Never stale.** When the source is lost, viewers are either ended
//!   (front-ends: the browser reconnects through the balancer to a healthy
//!   one) or told `status {"live":false}` and kept until it is back
//!   (the balancer, which switches source itself); see [`WhenLost`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tracing::debug;

use super::board::Board;
use super::sse;
use super::wire::{ChangeEvent, Status};
use crate::rpc::route::Closer;
use crate::shutdown::Shutdown;

/// Default of [`HubConfig::queue_chunks`].
pub const DEFAULT_QUEUE_CHUNKS: usize = 64;
/// Default of [`HubConfig::ring_changes`].
pub const DEFAULT_RING_CHANGES: usize = 4096;
/// Default of [`HubConfig::ring_bytes`]: 4 MiB.
pub const DEFAULT_RING_BYTES: usize = 4 << 20;
/// Default of [`HubConfig::retry_ms`].
pub const DEFAULT_RETRY_MS: u64 = 1_000;
/// How often every viewer gets a comment, so that proxies and browsers
/// keep an idle stream open and a dead one is noticed.
pub const KEEPALIVE_SECS: u64 = 15;
/// How long a viewer ahead of the hub waits for it to catch up before it
/// is sent the hub's snapshot instead.
pub const AHEAD_WAIT: Duration = Duration::from_secs(3);
/// How long a viewer that comes before the hub's first board (a server
/// just started, its board on its way from the db or from upstream) waits
/// for it before it is refused.
pub const FIRST_BOARD_WAIT: Duration = Duration::from_secs(5);
/// How often the hub looks at its viewers for the two above.
const TICK: Duration = Duration::from_secs(1);

/// What viewers are told when the source is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenLost {
    /// End every stream, and refuse new ones until the source is back: a
    /// front-end's viewers reconnect (through the balancer) elsewhere.
    EndStreams,
    /// Keep the streams, tell them `status {"live":false}`, and carry on
    /// where they are once the source is back: the balancer's viewers,
    /// whose source it replaces itself.
    Tell,
}

/// How a hub behaves.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Chunks (a batch of changes each) queued per viewer before it is
    /// dropped as too slow. Default 64: far more than a viewer falls
    /// behind while its socket's buffers absorb a burst, and each chunk is
    /// shared, so a full queue costs 64 references.
    pub queue_chunks: usize,
    /// Latest changes kept for viewers that resume. Default 4096.
    pub ring_changes: usize,
    /// Bytes of encoded changes kept, at most. Default 4 MiB.
    pub ring_bytes: usize,
    /// The browser's reconnection delay (`retry:`), ms. Default 1 s.
    pub retry_ms: u64,
    pub when_lost: WhenLost,
}

impl HubConfig {
    /// The defaults, with `when_lost`.
    pub fn new(when_lost: WhenLost) -> HubConfig {
        HubConfig {
            queue_chunks: DEFAULT_QUEUE_CHUNKS,
            ring_changes: DEFAULT_RING_CHANGES,
            ring_bytes: DEFAULT_RING_BYTES,
            retry_ms: DEFAULT_RETRY_MS,
            when_lost,
        }
    }
}

/// Why a viewer was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("the scoreboard is not known yet")]
    NoBoard,
    #[error("this server has lost its source of changes")]
    Lost,
}

/// A hub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: HubConfig,
    state: Mutex<State>,
    /// Woken at every [`Hub::reset`], for viewers waiting for a board.
    reset: Notify,
}

#[derive(Debug)]
struct State {
    board: Option<Board>,
    live: bool,
    /// A viewer that has seen everything up to X can be resumed from the
    /// ring when `resumable_from <= X <= board.version`.
    resumable_from: i64,
    /// Encoded changes, oldest first, with their versions.
    ring: VecDeque<(i64, Bytes)>,
    ring_bytes: usize,
    /// The snapshot event of the board at its version, once encoded.
    snapshot: Option<Bytes>,
    viewers: Vec<Viewer>,
    ticks: u64,
    /// Viewers closed for being too slow, since start.
    dropped_slow: u64,
}

#[derive(Debug)]
struct Viewer {
    tx: mpsc::Sender<Bytes>,
    closer: Closer,
    /// Everything up to this version is in its queue or was sent.
    through: i64,
    /// Since when it has been ahead of the hub.
    ahead_since: Option<Instant>,
}

/// What a hub knows of itself, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubStats {
    pub viewers: usize,
    pub live: bool,
    pub version: Option<i64>,
    pub ring: usize,
    pub dropped_slow: u64,
}

/// Outcome of offering `chunk` to a viewer: whether to keep it.
fn offer(viewer: &Viewer, chunk: Bytes, dropped_slow: &mut u64) -> bool {
    match viewer.tx.try_send(chunk) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            debug!("a viewer fell a whole queue behind: closed");
            *dropped_slow += 1;
            viewer.closer.close();
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

impl State {
    /// The snapshot event of the board now, encoded once per version.
    fn snapshot(&mut self) -> Option<Bytes> {
        let board = self.board.as_ref()?;
        if self.snapshot.is_none() {
            let json = serde_json::to_string(&board.to_snapshot())
                .expect("strings and numbers always encode");
            self.snapshot = Some(sse::event("snapshot", Some(board.version()), &json));
        }
        self.snapshot.clone()
    }

    /// The ring's changes after `after`, as one chunk.
    fn replay(&self, after: i64) -> Bytes {
        let mut out = BytesMut::new();
        for (_, event) in self.ring.iter().filter(|(v, _)| *v > after) {
            out.extend_from_slice(event);
        }
        out.freeze()
    }

    fn send_all(&mut self, chunk: &Bytes) {
        let mut dropped = self.dropped_slow;
        self.viewers
            .retain(|v| offer(v, chunk.clone(), &mut dropped));
        self.dropped_slow = dropped;
    }
}

fn status(live: bool) -> Bytes {
    let json = serde_json::to_string(&Status { live }).expect("a bool always encodes");
    sse::event("status", None, &json)
}

impl Hub {
    pub fn new(config: HubConfig) -> Hub {
        Hub {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State {
                    board: None,
                    live: false,
                    resumable_from: i64::MAX,
                    ring: VecDeque::new(),
                    ring_bytes: 0,
                    snapshot: None,
                    viewers: Vec::new(),
                    ticks: 0,
                    dropped_slow: 0,
                }),
                reset: Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; the state stays consistent.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new truth from the source (a start, a restarted db, a source too
    /// far behind to resume): the board is replaced, the ring emptied, and
    /// every viewer sent the new snapshot. The hub is live.
    pub fn reset(&self, board: Board) {
        let mut state = self.lock();
        let version = board.version();
        state.board = Some(board);
        state.ring.clear();
        state.ring_bytes = 0;
        state.snapshot = None;
        // A viewer at exactly `version` may come from another history
        // (another run of the db): only newer ones resume.
        state.resumable_from = version.saturating_add(1);
        state.live = true;
        self.shared.reset.notify_waiters();
        let Some(snapshot) = state.snapshot() else {
            return;
        };
        let mut chunk = BytesMut::from(&snapshot[..]);
        chunk.extend_from_slice(&status(true));
        let chunk = chunk.freeze();
        state.send_all(&chunk);
        for v in &mut state.viewers {
            v.through = version;
            v.ahead_since = None;
        }
    }

    /// Changes from the source, oldest first, after which the source is at
    /// `through` (at least the last change's version: changes viewers are
    /// not shown may follow). Ignored before the first [`Hub::reset`].
    pub fn publish(&self, changes: &[ChangeEvent], through: i64) {
        let config = &self.shared.config;
        let mut state = self.lock();
        let Some(board) = state.board.as_mut() else {
            return;
        };
        let before = board.version();
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            if change.version <= board.version() {
                continue;
            }
            board.apply(change);
            let json = serde_json::to_string(change).expect("strings and numbers always encode");
            events.push((
                change.version,
                sse::event("change", Some(change.version), &json),
            ));
        }
        board.advance(through);
        let version = board.version();
        if version != before {
            state.snapshot = None;
        }
        let Some(first_new) = events.first().map(|(v, _)| *v) else {
            // Nothing viewers are shown: they are at the new version too.
            for viewer in &mut state.viewers {
                viewer.through = viewer.through.max(version);
                if viewer.through == version {
                    viewer.ahead_since = None;
                }
            }
            return;
        };
        let mut chunk = BytesMut::new();
        for (v, event) in events {
            chunk.extend_from_slice(&event);
            state.ring_bytes += event.len();
            state.ring.push_back((v, event));
        }
        while state.ring.len() > config.ring_changes.max(1)
            || (state.ring_bytes > config.ring_bytes && state.ring.len() > 1)
        {
            if let Some((v, event)) = state.ring.pop_front() {
                state.ring_bytes -= event.len();
                // A viewer at v-1 needed v: v itself is the oldest resumable.
                state.resumable_from = state.resumable_from.max(v);
            }
        }
        let chunk = chunk.freeze();
        let State {
            viewers,
            ring,
            dropped_slow,
            ..
        } = &mut *state;
        viewers.retain_mut(|viewer| {
            let keep = if viewer.through >= version {
                true
            } else if viewer.through < first_new {
                offer(viewer, chunk.clone(), dropped_slow)
            } else {
                // Ahead of part of this batch: only what it has not seen.
                let mut own = BytesMut::new();
                for (_, event) in ring.iter().filter(|(v, _)| *v > viewer.through) {
                    own.extend_from_slice(event);
                }
                own.is_empty() || offer(viewer, own.freeze(), dropped_slow)
            };
            viewer.through = viewer.through.max(version);
            if viewer.through == version {
                viewer.ahead_since = None;
            }
            keep
        });
    }

    /// The source is lost: see [`WhenLost`].
    pub fn lost(&self) {
        let mut state = self.lock();
        if !state.live {
            return;
        }
        state.live = false;
        match self.shared.config.when_lost {
            WhenLost::EndStreams => {
                // Dropping the senders ends each stream once its queue is
                // sent: what is queued was true when it was queued.
                state.viewers.clear();
            }
            WhenLost::Tell => state.send_all(&status(false)),
        }
    }

    /// The source is back where it was (no reset needed).
    pub fn resume(&self) {
        let mut state = self.lock();
        if state.live || state.board.is_none() {
            return;
        }
        state.live = true;
        if self.shared.config.when_lost == WhenLost::Tell {
            state.send_all(&status(true));
        }
    }

    /// The version the hub is at, once it has a board: where a source
    /// resumes from.
    pub fn version(&self) -> Option<i64> {
        self.lock().board.as_ref().map(Board::version)
    }

    /// A new viewer, that has seen everything up to `last_id` if given.
    /// Its stream starts with `retry:`, then what it lacks (a snapshot, or
    /// the changes after `last_id`), then whatever comes; `closer` is
    /// called if it falls a queue behind.
    ///
    /// # Errors
    /// [`NotReady`] before the first board, and, for a hub that ends its
    /// streams when lost, while its source is lost.
    pub fn subscribe(&self, last_id: Option<i64>, closer: Closer) -> Result<Stream, NotReady> {
        let config = &self.shared.config;
        let mut state = self.lock();
        let Some(version) = state.board.as_ref().map(Board::version) else {
            return Err(NotReady::NoBoard);
        };
        if !state.live && config.when_lost == WhenLost::EndStreams {
            return Err(NotReady::Lost);
        }
        let mut first = BytesMut::from(&sse::retry(config.retry_ms)[..]);
        let mut through = version;
        let mut ahead_since = None;
        match last_id {
            Some(x) if x > version => {
                through = x;
                ahead_since = Some(Instant::now());
            }
            Some(x) if x >= state.resumable_from => first.extend_from_slice(&state.replay(x)),
            _ => {
                let snapshot = state.snapshot().expect("the board is known");
                first.extend_from_slice(&snapshot);
            }
        }
        // Always said, so a page that lost its stream (and shows itself
        // reconnecting) is told it is live again even when it missed
        // nothing and no change comes for a while.
        first.extend_from_slice(&status(state.live));
        let (tx, rx) = mpsc::channel(config.queue_chunks.max(1));
        state.viewers.push(Viewer {
            tx,
            closer,
            through,
            ahead_since,
        });
        Ok(Stream {
            first: Some(first.freeze()),
            rx,
        })
    }

    /// [`Hub::subscribe`], but a viewer that comes before the first board
    /// waits for it, up to `wait`, instead of being refused at once: a
    /// server that has just started is about to have one. A hub whose
    /// source is lost refuses at once (the viewer has somewhere else to go).
    ///
    /// # Errors
    /// As [`Hub::subscribe`]; [`NotReady::NoBoard`] once `wait` is over.
    pub async fn subscribe_or_wait(
        &self,
        last_id: Option<i64>,
        closer: Closer,
        wait: Duration,
    ) -> Result<Stream, NotReady> {
        let deadline = Instant::now() + wait;
        loop {
            // Registered before looking, so a reset in between still wakes.
            let reset = self.shared.reset.notified();
            tokio::pin!(reset);
            reset.as_mut().enable();
            match self.subscribe(last_id, closer.clone()) {
                Err(NotReady::NoBoard) if !closer.is_closed() => {
                    if tokio::time::timeout_at(deadline, reset).await.is_err() {
                        return self.subscribe(last_id, closer);
                    }
                }
                other => return other,
            }
        }
    }

    /// Keep-alives and viewers left ahead: every [`TICK`].
    fn tick(&self) {
        let mut state = self.lock();
        state.ticks += 1;
        if state.ticks % KEEPALIVE_SECS == 0 {
            state.send_all(&sse::comment("keep-alive"));
        }
        let Some(version) = state.board.as_ref().map(Board::version) else {
            return;
        };
        let late: Vec<usize> = (0..state.viewers.len())
            .filter(|i| {
                state.viewers[*i]
                    .ahead_since
                    .is_some_and(|t| t.elapsed() >= AHEAD_WAIT)
            })
            .collect();
        if late.is_empty() {
            return;
        }
        let Some(snapshot) = state.snapshot() else {
            return;
        };
        let mut dropped = state.dropped_slow;
        for i in late.into_iter().rev() {
            let viewer = &mut state.viewers[i];
            viewer.ahead_since = None;
            viewer.through = version;
            if !offer(viewer, snapshot.clone(), &mut dropped) {
                state.viewers.swap_remove(i);
            }
        }
        state.dropped_slow = dropped;
    }

    /// Runs the hub's timer until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => self.tick(),
                _ = shutdown.triggered() => return,
            }
        }
    }

    pub fn stats(&self) -> HubStats {
        let state = self.lock();
        HubStats {
            viewers: state.viewers.len(),
            live: state.live,
            version: state.board.as_ref().map(Board::version),
            ring: state.ring.len(),
            dropped_slow: state.dropped_slow,
        }
    }
}

/// One viewer's stream, as a response body: its first chunk, then its
/// queue until the hub drops it.
#[derive(Debug)]
pub struct Stream {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Bytes>,
}

impl Body for Stream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

#[cfg(test)]
mod tests;
