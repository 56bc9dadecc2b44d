//! What the db's readers see: the current value of every key (the whole
//! state is roster-sized, so it lives in memory) and a contiguous run of the
//! newest changes for the feed. The writer applies each committed batch here
//! before anyone hears "done".

use std::collections::{HashMap, VecDeque};
use std::sync::RwLock;

use tokio::sync::watch;

use crate::scoreboard::subscription::Subscription;
use crate::scoreboard::{Roster, Score, Tally};
use crate::store::{Change, Entry, Snapshot};

/// Changes kept in memory for the feed; older ones are read from the log.
pub(crate) const RECENT_CHANGES: usize = 4096;

/// What readers see: current values and the recent change log.
pub(crate) struct State {
    /// Identifies this run of the db; it changes when the db restarts.
    pub(crate) epoch: String,
    inner: RwLock<Inner>,
    /// The latest version applied: long polls wait on it.
    pub(crate) latest_tx: watch::Sender<i64>,
}

pub(crate) struct Inner {
    /// The roster, which roster changes extend.
    pub(crate) roster: Roster,
    pub(crate) tallies: HashMap<String, Tally>,
    pub(crate) scores: HashMap<String, Score>,
    /// Every push subscription by URL, with the version of the change that
    /// made or last renewed it.
    pub(crate) subscriptions: HashMap<String, (Subscription, i64)>,
    /// A contiguous run of the newest changes, ending at `latest`.
    pub(crate) recent: VecDeque<Change>,
    pub(crate) latest: i64,
}

impl State {
    /// The state loaded at start: the store's snapshot and its newest
    /// changes (at most [`RECENT_CHANGES`], ending at the snapshot's latest).
    pub(crate) fn new(snapshot: Snapshot, recent: Vec<Change>, epoch: String) -> State {
        let (latest_tx, _) = watch::channel(snapshot.latest_version);
        State {
            epoch,
            inner: RwLock::new(Inner {
                roster: snapshot.roster,
                tallies: snapshot
                    .tallies
                    .into_iter()
                    .map(|t| (t.team.to_lowercase(), t))
                    .collect(),
                scores: snapshot
                    .scores
                    .into_iter()
                    .map(|s| (s.event.to_lowercase(), s))
                    .collect(),
                subscriptions: snapshot
                    .subscriptions
                    .into_iter()
                    .map(|(s, version)| (s.url.clone(), (s, version)))
                    .collect(),
                recent: recent.into(),
                latest: snapshot.latest_version,
            }),
            latest_tx,
        }
    }

    /// Makes committed changes visible to readers and wakes long polls.
    pub(crate) fn apply<'a>(&self, changes: impl Iterator<Item = &'a Change>) {
        let latest = {
            let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
            for change in changes {
                match &change.entry {
                    Entry::Tally(t) => {
                        inner.tallies.insert(t.team.to_lowercase(), t.clone());
                    }
                    Entry::Score(s) => {
                        inner.scores.insert(s.event.to_lowercase(), s.clone());
                    }
                    Entry::TeamAdded(name) => {
                        inner.roster.teams.push(name.clone());
                        inner.tallies.insert(
                            name.to_lowercase(),
                            Tally {
                                team: name.clone(),
                                gold: 0,
                                silver: 0,
                                bronze: 0,
                                version: change.version,
                                updated: change.timestamp,
                            },
                        );
                    }
                    Entry::Subscribed(s) => {
                        inner
                            .subscriptions
                            .insert(s.url.clone(), (s.clone(), change.version));
                    }
                    Entry::Unsubscribed { url, .. } => {
                        inner.subscriptions.remove(url);
                    }
                    Entry::EventAdded(name) => {
                        inner.roster.events.push(name.clone());
                        inner.scores.insert(
                            name.to_lowercase(),
                            Score {
                                event: name.clone(),
                                score: String::new(),
                                version: change.version,
                                updated: change.timestamp,
                            },
                        );
                    }
                }
                if inner.recent.len() == RECENT_CHANGES {
                    inner.recent.pop_front();
                }
                inner.latest = inner.latest.max(change.version);
                inner.recent.push_back(change.clone());
            }
            inner.latest
        };
        self.latest_tx.send_replace(latest);
    }

    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
}
