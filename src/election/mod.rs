//! Coordination: the Bully election with terms, the Berkeley time service
//! and vector clocks. The three algorithms are pure state ([`bully`],
//! [`berkeley`], [`vclock`]); [`driver`] owns the timers and the RPCs.

pub mod berkeley;
pub mod bully;
pub mod driver;
pub mod vclock;
