//! A change as tablets are pushed it: encoded once, in both styles, however
//! many tablets follow it.

use bytes::Bytes;
use tracing::warn;

use crate::api::callback::Callback;
use crate::scoreboard::subscription::Style;
use crate::store::Change;

/// A change a tablet may be pushed, encoded for both styles of subscriber.
#[derive(Debug)]
pub(crate) struct Pushable {
    pub(crate) version: i64,
    pub(crate) key: String,
    old: Bytes,
    new: Bytes,
}

impl Pushable {
    /// The pushable form of `change`, if tablets are pushed it.
    pub(crate) fn of(change: &Change) -> Option<Pushable> {
        let callback = Callback::of_change(change)?;
        let encode = |c: &Callback| match c.encode() {
            Ok(body) => Some(Bytes::from(body)),
            Err(e) => {
                warn!(version = change.version, error = %e, "cannot encode a push");
                None
            }
        };
        Some(Pushable {
            version: change.version,
            key: change.entry.key(),
            old: encode(&callback)?,
            new: encode(&callback.with_version(change.version))?,
        })
    }

    pub(crate) fn body(&self, style: Style) -> Bytes {
        match style {
            Style::Old => self.old.clone(),
            Style::New => self.new.clone(),
        }
    }
}
