//! The server half of the change feed: "changes after V", answered from the
//! in-memory run of recent changes when it reaches back far enough and from
//! the update log otherwise, optionally held open until there is one (the
//! long poll push-mode front-ends keep open).

use std::time::Duration;

use super::members::MEMBER_WAIT_MS;
use super::wire::{ChangeBatch, MAX_CHANGES_PER_REPLY};
use super::Db;
use crate::push::report::MemberReport;
use crate::rpc::Fault;

/// Changes after `after`, held up to `wait_ms` for one. A poll from a
/// member (with its report) keeps it alive in the db's eyes while it is
/// open, is held at most [`MEMBER_WAIT_MS`], and also wakes when the view
/// of push owners changes.
pub(super) async fn changes(
    db: &Db,
    after: i64,
    wait_ms: i64,
    member: Option<(MemberReport, Option<std::net::SocketAddr>)>,
) -> Result<ChangeBatch, Fault> {
    let _open = member.map(|(report, peer)| db.members.poll(report, peer));
    let wait_ms = if _open.is_some() {
        wait_ms.min(MEMBER_WAIT_MS)
    } else {
        wait_ms
    };
    if wait_ms > 0 {
        let mut latest = db.state.latest_tx.subscribe();
        let mut view = db.members.watch();
        view.mark_unchanged();
        let wait = Duration::from_millis(wait_ms.unsigned_abs());
        tokio::select! {
            _ = tokio::time::timeout(wait, latest.wait_for(|latest| *latest != after)) => {}
            _ = view.changed() => {}
            _ = db.shutdown.triggered() => {}
        }
    }
    let view = db.members.view();
    let epoch = db.state.epoch.clone();
    let from_memory = {
        let inner = db.state.read();
        let latest = inner.latest;
        if after > latest || after < 0 {
            return Ok(ChangeBatch {
                epoch,
                latest,
                changes: Vec::new(),
                reset: true,
                view,
            });
        }
        match inner.recent.front() {
            _ if after == latest => Some((latest, Vec::new())),
            Some(first) if first.version <= after + 1 => {
                let skip = (after + 1 - first.version) as usize;
                let changes = inner
                    .recent
                    .iter()
                    .skip(skip)
                    .take(MAX_CHANGES_PER_REPLY)
                    .cloned()
                    .collect();
                Some((latest, changes))
            }
            _ => None,
        }
    };
    let (latest, changes) = match from_memory {
        Some(found) => found,
        None => {
            // From the log, on a reader: it may see a commit the state has
            // not applied yet, which the batch must not show before its
            // `latest` does.
            let latest = db.state.read().latest;
            let mut changes = db
                .readers
                .changes_after(after, MAX_CHANGES_PER_REPLY)
                .await?;
            changes.retain(|c| c.version <= latest);
            (latest, changes)
        }
    };
    Ok(ChangeBatch {
        epoch,
        latest,
        changes,
        reset: false,
        view,
    })
}
