//! The front-end's scoreboard stream: its change-feed follower feeds a web
//! [`Hub`], which serves `GET /events`.
//!
//! At every (re)start of following (the front-end's start, a db restart,
//! a feed gap) the board is read afresh from the db: every tally, every
//! event's score. Changes the feed brings meanwhile are held and folded in
//! once the read is done (rows only ever move to newer versions, so a
//! change the read already saw changes nothing), and the hub is reset to
//! that board. Until then, and whenever the feed is lost, the hub ends its
//! streams and refuses new ones: a viewer never gets a number of unknown
//! age, and its browser reconnects (through the balancer) to a front-end
//! that has the feed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::cache::FeedListener;
use crate::db::wire::{ChangeBatch, DbClient};
use crate::push::report::MemberReport;
use crate::rpc::Fault;
use crate::scoreboard::Roster;
use crate::shutdown::Tasks;
use crate::web::wire::{ChangeEvent, EventRow, TeamRow};
use crate::web::{Board, Hub};

/// First pause after a failed read of the board...
const MIN_RETRY: Duration = Duration::from_millis(100);
/// ...doubling up to this.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Feeds the hub from the follower. Cheap to clone.
#[derive(Clone)]
pub(crate) struct WebFeed {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    db: DbClient,
    roster: Arc<watch::Sender<Option<Arc<Roster>>>>,
    tasks: Tasks,
    load: Mutex<Load>,
}

/// Where the read of the board stands.
#[derive(Debug, Default)]
struct Load {
    /// Counts restarts: a read that a newer restart overtook is dropped.
    generation: u64,
    /// The hub has the board of this generation.
    loaded: bool,
    /// The feed's position when following restarted.
    start: i64,
    /// Changes after `start` that came before the read was done.
    pending: Vec<ChangeEvent>,
    /// The feed's position now.
    through: i64,
}

impl WebFeed {
    pub(crate) fn new(
        hub: Hub,
        db: DbClient,
        roster: Arc<watch::Sender<Option<Arc<Roster>>>>,
        tasks: Tasks,
    ) -> WebFeed {
        WebFeed {
            inner: Arc::new(Inner {
                hub,
                db,
                roster,
                tasks,
                load: Mutex::new(Load::default()),
            }),
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Load> {
        self.load.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every team's tally and every event's score, from the db.
    async fn read_board(&self) -> Result<(Vec<TeamRow>, Vec<EventRow>), Fault> {
        let roster = self
            .roster
            .borrow()
            .clone()
            .ok_or_else(|| Fault::internal("no roster yet"))?;
        let teams = self.db.tallies().await?.iter().map(TeamRow::from).collect();
        let mut events = Vec::with_capacity(roster.events.len());
        for event in &roster.events {
            events.push(EventRow::from(&self.db.score(event).await?));
        }
        Ok((teams, events))
    }

    /// Reads the board until it succeeds or a newer restart overtakes it,
    /// then resets the hub to it.
    async fn load(self: Arc<Self>, generation: u64) {
        let mut pause = MIN_RETRY;
        loop {
            if self.lock().generation != generation {
                return;
            }
            match self.read_board().await {
                Ok((teams, events)) => {
                    let mut load = self.lock();
                    if load.generation != generation {
                        return;
                    }
                    let mut board = Board::new(load.start, teams, events);
                    for change in load.pending.drain(..) {
                        board.apply(&change);
                    }
                    board.advance(load.through);
                    load.loaded = true;
                    info!(
                        version = board.version(),
                        "scoreboard stream ready: /events"
                    );
                    self.hub.reset(board);
                    return;
                }
                Err(e) => {
                    warn!(error = %e, retry_in = ?pause, "cannot read the scoreboard for /events");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY);
                }
            }
        }
    }
}

impl FeedListener for WebFeed {
    fn restarted(&self, position: i64) {
        let generation = {
            let mut load = self.inner.lock();
            load.generation += 1;
            load.loaded = false;
            load.start = position;
            load.through = position;
            load.pending.clear();
            load.generation
        };
        // What viewers have may be stale now: end their streams.
        self.inner.hub.lost();
        let inner = self.inner.clone();
        self.inner
            .tasks
            .spawn_until_shutdown(inner.load(generation));
    }

    fn batch(&self, batch: &ChangeBatch) {
        let events: Vec<ChangeEvent> = batch.changes.iter().filter_map(ChangeEvent::of).collect();
        let mut load = self.inner.lock();
        let through = batch
            .changes
            .iter()
            .map(|c| c.version)
            .fold(load.through, i64::max);
        load.through = through;
        if !load.loaded {
            load.pending.extend(events);
            return;
        }
        // Under the load's lock, so batches reach the hub in order.
        self.inner.hub.publish(&events, through);
        // A batch, even an empty one, means the feed is there.
        self.inner.hub.resume();
    }

    fn lost(&self) {
        self.inner.hub.lost();
    }

    fn report(&self) -> Option<MemberReport> {
        None
    }
}
