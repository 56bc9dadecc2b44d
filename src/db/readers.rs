//! Reads of the update log, off the writer's thread: a few threads, each
//! owning a [`LogReader`] (a connection of its own), take reads from one
//! bounded queue. A long read (a page of a busy key's history, a feed that
//! reaches back past memory) then costs the writes nothing but CPU.
//!
//! History pages hold at most one thread at a time: a flood of them waits
//! for that one, and a front-end's feed, which must answer within its
//! deadline, always finds the other thread free.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use super::unavailable;
use crate::rpc::Fault;
use crate::store::{Change, LogReader, Store, StoreError};

/// Reader threads: two, so that one long read does not queue the feed of a
/// front-end behind it, and not more, since the machine has few cores and
/// the writer needs one.
pub(crate) const READER_THREADS: usize = 2;
/// Threads that history pages may hold at once.
const HISTORY_THREADS: usize = READER_THREADS - 1;
/// Reads queued at most; a full queue makes the caller wait (each read is
/// held by a connection, which the server bounds). A few per thread.
const QUEUE_DEPTH: usize = 64;

/// One read of the log.
enum Read {
    ChangesAfter {
        after: i64,
        limit: usize,
    },
    History {
        key: String,
        before: Option<i64>,
        limit: usize,
    },
}

/// A read, where to send its result, and the history place it holds till
/// it is done (released when the job is dropped, even if its caller left).
type Job = (
    Read,
    oneshot::Sender<Result<Vec<Change>, StoreError>>,
    Option<OwnedSemaphorePermit>,
);

/// The handle the db's methods read the log through. Cheap to clone; the
/// threads end when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Readers {
    queue: mpsc::Sender<Job>,
    history_places: Arc<Semaphore>,
}

impl Readers {
    /// Starts [`READER_THREADS`] threads, each with a reader of `store`.
    ///
    /// # Errors
    /// A reader's connection could not be opened.
    pub(crate) fn start(store: &dyn Store) -> Result<Readers, StoreError> {
        let (queue, rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..READER_THREADS {
            let reader = store.reader()?;
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("podium-db-reader-{i}"))
                .spawn(move || serve(reader, &rx))
                .map_err(|e| StoreError::Corrupt(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(Readers {
            queue,
            history_places: Arc::new(Semaphore::new(HISTORY_THREADS)),
        })
    }

    /// Up to `limit` changes after version `after`, oldest first.
    ///
    /// # Errors
    /// `UNAVAILABLE` when the log cannot be read.
    pub(crate) async fn changes_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Change>, Fault> {
        self.read(Read::ChangesAfter { after, limit }, None).await
    }

    /// The newest `limit` changes of `key` below version `before`, oldest
    /// first.
    ///
    /// # Errors
    /// `UNAVAILABLE` when the log cannot be read.
    pub(crate) async fn history(
        &self,
        key: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Change>, Fault> {
        let key = key.to_owned();
        let place = self
            .history_places
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| unavailable("the log readers stopped"))?;
        self.read(Read::History { key, before, limit }, Some(place))
            .await
    }

    async fn read(
        &self,
        read: Read,
        place: Option<OwnedSemaphorePermit>,
    ) -> Result<Vec<Change>, Fault> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send((read, tx, place))
            .await
            .map_err(|_| unavailable("the log readers stopped"))?;
        rx.await
            .map_err(|_| unavailable("a log reader stopped"))?
            .map_err(|e| unavailable(format!("reading the log: {e}")))
    }
}

/// One reader thread: takes reads until every handle is gone.
fn serve(mut reader: Box<dyn LogReader>, rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // The lock is held while waiting, so one idle thread waits and the
        // others wait for it; it is let go before the read runs.
        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).blocking_recv();
        let Some((read, reply, _place)) = job else {
            return;
        };
        let result = match read {
            Read::ChangesAfter { after, limit } => reader.changes_after(after, limit),
            Read::History { key, before, limit } => reader.history(&key, before, limit),
        };
        if let Err(e) = &result {
            warn!(error = %e, "a read of the log failed");
        }
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future as _;

    use super::*;
    use crate::scoreboard::{Medal, Roster};
    use crate::store::{SqliteStore, StartupCheck, WriteOp, WriteRequest};

    #[tokio::test]
    async fn reads_see_what_the_writer_committed_and_page_by_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(
            &dir.path().join("s.db"),
            &Roster::default_roster(),
            StartupCheck::Full,
        )
        .unwrap();
        let readers = Readers::start(&store).unwrap();
        let gold = |i: usize| WriteRequest {
            op: WriteOp::IncrementMedal {
                team: ["Gaul", "Rome"][i % 2].into(),
                medal: Medal::Gold,
            },
            request_id: None,
            timestamp: 1000.0 + i as f64,
            vclock: vec![],
        };
        let batch: Vec<WriteRequest> = (0..10).map(gold).collect();
        store.commit(&batch).unwrap();
        let all = readers.changes_after(0, 100).await.unwrap();
        assert_eq!(all.len(), 10);
        let versions = |c: &[Change]| c.iter().map(|c| c.version).collect::<Vec<_>>();
        let newest = readers.history("tally:gaul", None, 2).await.unwrap();
        assert_eq!(versions(&newest), [7, 9]);
        let older = readers.history("tally:gaul", Some(7), 10).await.unwrap();
        assert_eq!(versions(&older), [1, 3, 5]);
        assert!(readers
            .history("tally:gaul", Some(1), 10)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn history_holds_one_reader_at_most_and_the_feed_never_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(
            &dir.path().join("s.db"),
            &Roster::default_roster(),
            StartupCheck::Full,
        )
        .unwrap();
        let readers = Readers::start(&store).unwrap();
        let gold = WriteRequest {
            op: WriteOp::IncrementMedal {
                team: "Gaul".into(),
                medal: Medal::Gold,
            },
            request_id: None,
            timestamp: 1000.0,
            vclock: vec![],
        };
        store.commit(&[gold]).unwrap();
        // As if a history page were being read.
        let held = readers.history_places.clone().try_acquire_owned().unwrap();
        let mut page = std::pin::pin!(readers.history("tally:gaul", None, 10));
        let waiting =
            std::future::poll_fn(|cx| std::task::Poll::Ready(page.as_mut().poll(cx).is_pending()))
                .await;
        assert!(waiting, "a second history page waits for the place");
        assert_eq!(readers.changes_after(0, 100).await.unwrap().len(), 1);
        drop(held);
        assert_eq!(page.await.unwrap().len(), 1);
    }
}
