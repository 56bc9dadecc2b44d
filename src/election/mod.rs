//! Coordination: the Bully election with terms, the Berkeley time service
//! and vector clocks. The algorithms and their rules are pure state
//! ([`bully`], [`berkeley`], [`timesync`], [`vclock`]); [`driver`] owns the
//! timers and tasks, and reaches the other members through a
//! [`transport::Transport`]. The pure pieces are tested together on one
//! simulated network (`sim`, tests only).

pub mod berkeley;
pub mod bully;
pub mod config;
pub mod driver;
#[cfg(test)]
pub(crate) mod memory;
#[cfg(test)]
pub(crate) mod sim;
pub mod timesync;
pub mod transport;
pub mod vclock;
