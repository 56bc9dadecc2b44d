//! Several [`FeedListener`]s behind one follower: a front-end's push hub
//! and its scoreboard stream both follow the same feed, in the order given.

use std::sync::Arc;

use super::FeedListener;
use crate::db::wire::ChangeBatch;
use crate::push::report::MemberReport;

/// Hands every call on to each listener in turn; the report is the first
/// listener's that has one.
pub(crate) struct Listeners(pub(crate) Vec<Arc<dyn FeedListener>>);

impl FeedListener for Listeners {
    fn restarted(&self, position: i64) {
        self.0.iter().for_each(|l| l.restarted(position));
    }

    fn batch(&self, batch: &ChangeBatch) {
        self.0.iter().for_each(|l| l.batch(batch));
    }

    fn lost(&self) {
        self.0.iter().for_each(|l| l.lost());
    }

    fn report(&self) -> Option<MemberReport> {
        self.0.iter().find_map(|l| l.report())
    }
}
