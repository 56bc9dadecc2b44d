//! Podium's own fault codes, beside XML-RPC's (`rpc::fault`): small positive
//! numbers, listed here so every server and client agrees. The README's
//! fault table is this list.

use std::time::Duration;

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
/// A write whose outcome is not known: the db did not confirm it in time,
/// and it may or may not have been applied. The message names its request
/// id; retried with that id, it is applied exactly once.
pub const OUTCOME_UNKNOWN: i32 = 8;

/// An `UNAVAILABLE` fault.
pub fn unavailable(message: impl Into<String>) -> Fault {
    Fault::new(UNAVAILABLE, message)
}

/// An `OUTCOME_UNKNOWN` fault for the write with `request_id`, saying why.
pub fn outcome_unknown(why: impl std::fmt::Display, request_id: &str) -> Fault {
    Fault::new(
        OUTCOME_UNKNOWN,
        format!(
            "{why}: the write may or may not have been applied; retry it with request id \
             {request_id} to apply it exactly once"
        ),
    )
}

/// An `UNAUTHORIZED` fault.
pub fn unauthorized(message: impl Into<String>) -> Fault {
    Fault::new(UNAUTHORIZED, message)
}

/// An `INVALID_VALUE` fault.
pub fn invalid_value(message: impl Into<String>) -> Fault {
    Fault::new(INVALID_VALUE, message)
}

/// A `RATE_LIMITED` fault that says how long to wait: its message ends in
/// `retry in N.N s`, which [`retry_after`] reads back.
pub fn rate_limited(what: &str, wait: Duration) -> Fault {
    Fault::new(
        RATE_LIMITED,
        format!("{what}; retry in {:.1} s", wait.as_secs_f64()),
    )
}

/// How long a `RATE_LIMITED` fault asks the caller to wait, if it says.
pub fn retry_after(fault: &Fault) -> Option<Duration> {
    if fault.code != RATE_LIMITED {
        return None;
    }
    let (_, tail) = fault.message.rsplit_once("retry in ")?;
    let secs: f64 = tail.strip_suffix(" s")?.trim().parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_says_how_long_to_wait() {
        let f = rate_limited(
            "too many failed password attempts",
            Duration::from_millis(2_500),
        );
        assert_eq!(f.code, RATE_LIMITED);
        assert_eq!(
            f.message,
            "too many failed password attempts; retry in 2.5 s"
        );
        assert_eq!(retry_after(&f), Some(Duration::from_millis(2_500)));
        assert_eq!(retry_after(&unavailable("retry in 3 s")), None);
        assert_eq!(retry_after(&Fault::new(RATE_LIMITED, "slow down")), None);
    }
}
