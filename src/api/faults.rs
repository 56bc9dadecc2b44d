//! Podium's own fault codes, beside XML-RPC's (`rpc::fault`): small positive
//! numbers, listed here so every server and client agrees. The README's
//! fault table is this list.

use crate::rpc::Fault;

/// The feeder password (or the cluster secret) was missing or wrong.
pub const UNAUTHORIZED: i32 = 1;
/// No team by that name.
pub const UNKNOWN_TEAM: i32 = 2;
/// No event by that name.
pub const UNKNOWN_EVENT: i32 = 3;
/// No medal by that name (gold, silver, bronze).
pub const UNKNOWN_MEDAL: i32 = 4;
/// A service this call needs (the db, every front-end) cannot be reached now;
/// retrying later may succeed.
pub const UNAVAILABLE: i32 = 5;
/// Too many failed password attempts from this peer; wait and retry.
pub const RATE_LIMITED: i32 = 6;
/// The value given is not acceptable (an over-long score, say).
pub const INVALID_VALUE: i32 = 7;

/// An `UNAVAILABLE` fault.
pub fn unavailable(message: impl Into<String>) -> Fault {
    Fault::new(UNAVAILABLE, message)
}

/// An `UNAUTHORIZED` fault.
pub fn unauthorized(message: impl Into<String>) -> Fault {
    Fault::new(UNAUTHORIZED, message)
}

/// An `INVALID_VALUE` fault.
pub fn invalid_value(message: impl Into<String>) -> Fault {
    Fault::new(INVALID_VALUE, message)
}
