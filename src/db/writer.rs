//! The single writer: one thread owns the store, takes writes over a
//! bounded channel, and commits whatever has queued up together in one
//! transaction (group commit: one fsync for many writes). Before each
//! batch it stamps the writes, in version order, never earlier than the
//! last ([`Stamper`]), and checks that the store's file is still the one it
//! opened ([`FileGuard`]); reads of the log are not its business
//! (`readers`).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::stamp::{Lag, Stamper};
use super::state::State;
use crate::store::{Committed, FileGuard, Store, StoreError, WriteRequest};

/// Writes queued at most; a full queue makes writers wait (backpressure)
/// rather than grow memory. Large enough to fill several group commits.
pub(crate) const QUEUE_DEPTH: usize = 4096;
/// Most writes in one transaction; bounds the latency of the first one.
const MAX_BATCH: usize = 512;

/// A write and where its outcome goes.
pub(crate) type Job = (WriteRequest, oneshot::Sender<Result<Committed, StoreError>>);

/// Runs the writer on its own thread until every sender is dropped.
/// `last_timestamp` is the newest in the log: no write is stamped earlier.
pub(crate) fn spawn(
    mut store: Box<dyn Store>,
    state: Arc<State>,
    last_timestamp: f64,
) -> (mpsc::Sender<Job>, std::thread::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
    let guard = store.file_guard();
    let handle = std::thread::Builder::new()
        .name("podium-db-writer".into())
        .spawn(move || {
            let mut stamper = Stamper::new(last_timestamp);
            let mut writes = Vec::with_capacity(MAX_BATCH);
            let mut replies = Vec::with_capacity(MAX_BATCH);
            while let Some(job) = rx.blocking_recv() {
                let mut next = Some(job);
                while let Some((mut w, reply)) = next.take() {
                    stamp(&mut stamper, &mut w);
                    writes.push(w);
                    replies.push(reply);
                    if writes.len() < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                match guard.as_deref().map(FileGuard::check) {
                    Some(Err(why)) => refuse_batch(&why, &mut writes, &mut replies),
                    _ => commit_batch(store.as_mut(), &state, &mut writes, &mut replies),
                }
            }
        })
        .expect("spawning the writer thread");
    (tx, handle)
}

/// Raises `w`'s timestamp to the floor, saying so when the clock falls
/// far behind it or catches up.
fn stamp(stamper: &mut Stamper, w: &mut WriteRequest) {
    let (stamp, lag) = stamper.stamp(w.timestamp);
    match lag {
        Some(Lag::FellBehind { behind_secs }) => warn!(
            behind_secs,
            "the cluster clock is behind the newest update's timestamp: updates are stamped \
             with that one until the clock catches up"
        ),
        Some(Lag::CaughtUp) => info!("the cluster clock caught up with the update timestamps"),
        None => {}
    }
    w.timestamp = stamp;
}

type Reply = oneshot::Sender<Result<Committed, StoreError>>;

/// Answers every write of the batch with `why`, writing nothing.
fn refuse_batch(why: &str, writes: &mut Vec<WriteRequest>, replies: &mut Vec<Reply>) {
    for reply in replies.drain(..) {
        let _ = reply.send(Err(StoreError::Detached(why.to_owned())));
    }
    writes.clear();
}

fn commit_batch(
    store: &mut dyn Store,
    state: &State,
    writes: &mut Vec<WriteRequest>,
    replies: &mut Vec<Reply>,
) {
    match store.commit(writes) {
        Ok(done) => {
            // Readers must see the new values before any writer hears "done".
            state.apply(done.iter().filter(|c| !c.duplicate).map(|c| &c.change));
            for (reply, committed) in replies.drain(..).zip(done) {
                let _ = reply.send(Ok(committed));
            }
        }
        Err(e) if writes.len() > 1 => {
            // One bad write must not fail its neighbours: retry one by one.
            warn!(error = %e, n = writes.len(), "group commit failed; retrying writes singly");
            for (w, reply) in writes.drain(..).zip(replies.drain(..)) {
                let result = store.commit(std::slice::from_ref(&w));
                let _ = reply.send(single_result(result, state));
            }
        }
        Err(e) => {
            let reply = replies.pop().expect("one reply per write");
            let _ = reply.send(single_result(Err(e), state));
        }
    }
    writes.clear();
    replies.clear();
}

fn single_result(
    result: Result<Vec<Committed>, StoreError>,
    state: &State,
) -> Result<Committed, StoreError> {
    match result {
        Ok(mut done) => {
            let committed = done
                .pop()
                .ok_or_else(|| StoreError::Corrupt("the store returned no outcome".into()))?;
            if !committed.duplicate {
                state.apply(std::iter::once(&committed.change));
            }
            Ok(committed)
        }
        Err(e) => {
            if !matches!(e, StoreError::Unknown { .. } | StoreError::Refused(_)) {
                error!(error = %e, "write failed");
            }
            Err(e)
        }
    }
}
