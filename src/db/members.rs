//! The db's view of the front-ends that follow its change feed: which are
//! alive (a member is, while it polls), which of them push (a numbered
//! view of owners), and what each last reported of its deliveries.
//!
//! Liveness needs no heartbeat of its own: members poll the feed at least
//! every `poll_ms` (a push-mode long poll is held at most
//! [`MEMBER_WAIT_MS`]), so a member is alive while a poll of its is open or
//! its last one ended less than `poll_ms` plus [`GRACE_MS`] ago. A member
//! killed mid-poll is seen gone within [`MEMBER_WAIT_MS`] + [`GRACE_MS`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::info;

use crate::push::ownership::{Report, Views};
use crate::push::report::{FeedMode, MemberReport, Progress, View};

/// Longest the db holds a member's poll open, milliseconds: how long a
/// member killed mid-poll still looks alive.
pub(crate) const MEMBER_WAIT_MS: i64 = 750;
/// Slack after a member's `poll_ms` before it counts as gone, milliseconds.
const GRACE_MS: u64 = 300;
/// After the db starts, how long it waits for every member to poll before
/// it publishes a view, milliseconds: a view of whoever polled first would
/// move tablets for nothing.
const STARTUP_GRACE_MS: u64 = 1_500;
/// Views kept for new owners to look back through.
const KEPT_VIEWS: usize = 64;
/// How often liveness is looked at, milliseconds.
pub(crate) const SWEEP_MS: u64 = 50;

#[derive(Debug)]
struct Member {
    mode: FeedMode,
    poll_ms: u64,
    /// Polls open now.
    open: u32,
    /// When its last poll ended (or began, while one is open).
    last_seen: Instant,
    report: Report,
    /// The cluster endpoints it knows of (its own first), with its address
    /// as the db sees it in place of an unspecified one.
    endpoints: Vec<SocketAddr>,
}

#[derive(Debug)]
struct Inner {
    members: BTreeMap<u32, Member>,
    view: Option<View>,
    views: Views,
}

/// Every member, shared by the feed's handlers and the sweeper. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub(crate) struct Members {
    inner: Arc<Mutex<Inner>>,
    started: Instant,
    /// The current view's number; long polls wake when it moves.
    changed: Arc<watch::Sender<u64>>,
}

/// Marks a member's poll open until dropped.
#[derive(Debug)]
pub(crate) struct OpenPoll {
    members: Members,
    uid: u32,
}

impl Drop for OpenPoll {
    fn drop(&mut self) {
        let mut inner = self.members.lock();
        if let Some(m) = inner.members.get_mut(&self.uid) {
            m.open = m.open.saturating_sub(1);
            m.last_seen = Instant::now();
        }
    }
}

impl Members {
    pub(crate) fn new() -> Members {
        Members {
            inner: Arc::new(Mutex::new(Inner {
                members: BTreeMap::new(),
                view: None,
                views: Views::new(),
            })),
            started: Instant::now(),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A member's poll began: it is alive, and `report` is its latest word.
    /// `peer` is where its poll came from.
    pub(crate) fn poll(&self, report: MemberReport, peer: Option<SocketAddr>) -> OpenPoll {
        let now = Instant::now();
        let mut inner = self.lock();
        let member = inner.members.entry(report.uid).or_insert_with(|| {
            info!(uid = report.uid, "a front-end follows the feed");
            Member {
                mode: report.mode,
                poll_ms: report.poll_ms,
                open: 0,
                last_seen: now,
                report: Report::default(),
                endpoints: Vec::new(),
            }
        });
        member.mode = report.mode;
        member.poll_ms = report.poll_ms;
        member.open += 1;
        member.last_seen = now;
        member.report = report.report;
        // A member bound to every address is reachable at least at the one
        // its poll came from.
        member.endpoints = report
            .endpoints
            .into_iter()
            .map(|e| match peer {
                Some(peer) if e.ip().is_unspecified() => SocketAddr::new(peer.ip(), e.port()),
                _ => e,
            })
            .collect();
        OpenPoll {
            members: self.clone(),
            uid: report.uid,
        }
    }

    /// Every cluster endpoint the members know of.
    pub(crate) fn endpoints(&self) -> Vec<SocketAddr> {
        self.lock()
            .members
            .values()
            .flat_map(|m| m.endpoints.iter().copied())
            .collect()
    }

    /// The view published now; `None` until the start-up grace is over.
    pub(crate) fn view(&self) -> Option<View> {
        self.lock().view.clone()
    }

    /// Changes when the view does.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Everything a new owner needs to resume.
    pub(crate) fn progress(&self) -> Progress {
        let inner = self.lock();
        Progress {
            view: inner.view.as_ref().map(|v| v.number),
            views: inner.views.clone(),
            reports: inner
                .members
                .iter()
                .map(|(uid, m)| (*uid, m.report.clone()))
                .collect(),
        }
    }

    /// Looks at who is alive; a new owner set is a new view. Returns true
    /// when the view changed.
    pub(crate) fn sweep(&self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.started) < Duration::from_millis(STARTUP_GRACE_MS) {
            return false;
        }
        let mut inner = self.lock();
        let alive: Vec<(u32, FeedMode)> = inner
            .members
            .iter()
            .filter(|(_, m)| {
                m.open > 0
                    || now.duration_since(m.last_seen)
                        <= Duration::from_millis(m.poll_ms + GRACE_MS)
            })
            .map(|(uid, m)| (*uid, m.mode))
            .collect();
        // Push-mode members hear of a change within milliseconds; pull-mode
        // ones push only when no push-mode one is alive.
        let pushers: Vec<u32> = alive
            .iter()
            .filter(|(_, mode)| *mode == FeedMode::Push)
            .map(|(uid, _)| *uid)
            .collect();
        let owners = if pushers.is_empty() {
            alive.iter().map(|(uid, _)| *uid).collect()
        } else {
            pushers
        };
        if inner.view.as_ref().is_some_and(|v| v.owners == owners) {
            return false;
        }
        let number = inner.view.as_ref().map_or(1, |v| v.number + 1);
        info!(view = number, ?owners, "push owners changed");
        inner.views.insert(number, owners.clone());
        while inner.views.len() > KEPT_VIEWS {
            inner.views.pop_first();
        }
        inner.view = Some(View { number, owners });
        drop(inner);
        self.changed.send_replace(number);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(uid: u32, mode: FeedMode) -> MemberReport {
        MemberReport {
            uid,
            mode,
            poll_ms: 1_000,
            report: Report::default(),
            endpoints: vec!["0.0.0.0:8002".parse().unwrap()],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn members_are_alive_while_they_poll_and_push_mode_ones_own() {
        let members = Members::new();
        let peer = Some("10.0.0.2:5000".parse().unwrap());
        let one = members.poll(report(1, FeedMode::Pull), peer);
        let two = members.poll(report(2, FeedMode::Push), None);
        assert!(members
            .endpoints()
            .contains(&"10.0.0.2:8002".parse().unwrap()));
        // Nothing is published during the start-up grace.
        assert!(!members.sweep());
        assert_eq!(members.view(), None);
        tokio::time::sleep(Duration::from_millis(STARTUP_GRACE_MS)).await;
        assert!(members.sweep());
        assert_eq!(members.view().unwrap().owners, [2]);
        // Uid 2's poll ends and it never polls again: gone after its
        // poll_ms and the grace; the pull-mode member then pushes.
        drop(two);
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert!(!members.sweep(), "gone too soon");
        tokio::time::sleep(Duration::from_millis(GRACE_MS + 1)).await;
        assert!(members.sweep());
        let view = members.view().unwrap();
        assert_eq!((view.number, view.owners), (2, vec![1]));
        // It comes back: a new view again.
        let _two = members.poll(report(2, FeedMode::Push), None);
        assert!(members.sweep());
        assert_eq!(members.view().unwrap().owners, [2]);
        let progress = members.progress();
        assert_eq!(progress.view, Some(3));
        assert_eq!(progress.views.len(), 3);
        assert_eq!(progress.reports.len(), 2);
        drop(one);
    }
}
