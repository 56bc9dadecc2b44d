//! Push as one cluster: subscriptions are cluster state (writes to the db,
//! in its update log, so every front-end knows every one), exactly one live
//! front-end pushes to a given tablet, and another takes over, from where
//! the first stopped, when it dies.
//!
//! - [`callback_url`]: which callbacks a subscription may name;
//! - [`ownership`]: who pushes to which tablet, and where a new owner
//!   resumes (pure);
//! - [`report`]: what members and the db tell each other about it;
//! - [`Hub`]: a front-end's side: every subscription, the recent changes,
//!   and a delivery worker (`worker`) per tablet it owns; `pushable`: a
//!   change encoded once for every tablet that follows it.

pub mod callback_url;
mod hub;
pub mod ownership;
mod pushable;
pub mod report;
mod worker;

pub use hub::{Hub, HubConfig};
