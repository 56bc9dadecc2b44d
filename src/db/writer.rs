//! The single writer: one thread owns the store, takes writes over a
//! bounded channel, and commits whatever has queued up together in one
//! transaction (group commit: one fsync for many writes).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use super::state::State;
use crate::store::{Change, Committed, Store, StoreError, WriteRequest};

/// Writes queued at most; a full queue makes writers wait (backpressure)
/// rather than grow memory. Large enough to fill several group commits.
pub(crate) const QUEUE_DEPTH: usize = 4096;
/// Most writes in one transaction; bounds the latency of the first one.
const MAX_BATCH: usize = 512;

pub(crate) enum Job {
    Write(WriteRequest, oneshot::Sender<Result<Committed, StoreError>>),
    ChangesAfter(i64, usize, oneshot::Sender<Result<Vec<Change>, String>>),
    History(String, usize, oneshot::Sender<Result<Vec<Change>, String>>),
}

/// Runs the writer on its own thread until every sender is dropped.
pub(crate) fn spawn(
    mut store: Box<dyn Store>,
    state: Arc<State>,
) -> (mpsc::Sender<Job>, std::thread::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
    let handle = std::thread::Builder::new()
        .name("podium-db-writer".into())
        .spawn(move || {
            let mut writes = Vec::with_capacity(MAX_BATCH);
            let mut replies = Vec::with_capacity(MAX_BATCH);
            while let Some(job) = rx.blocking_recv() {
                let mut next = Some(job);
                while let Some(job) = next.take() {
                    match job {
                        Job::Write(w, reply) => {
                            writes.push(w);
                            replies.push(reply);
                        }
                        Job::ChangesAfter(after, limit, reply) => {
                            let _ = reply
                                .send(store.changes_after(after, limit).map_err(|e| e.to_string()));
                        }
                        Job::History(key, limit, reply) => {
                            let _ =
                                reply.send(store.history(&key, limit).map_err(|e| e.to_string()));
                        }
                    }
                    if writes.len() < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                if !writes.is_empty() {
                    commit_batch(store.as_mut(), &state, &mut writes, &mut replies);
                }
            }
        })
        .expect("spawning the writer thread");
    (tx, handle)
}

type Reply = oneshot::Sender<Result<Committed, StoreError>>;

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
