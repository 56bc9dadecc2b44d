//! The feeder password's gate: a constant-time check behind the guess
//! limiter ([`crate::guesses`]), so guessing is slow however it is spread.

use std::net::IpAddr;

use tracing::warn;

use crate::api::faults;
use crate::guesses::{GuessLimiter, GuessLimits, Refused};
use crate::rpc::Fault;
use crate::secret::Secret;

/// Checks feeder passwords, refusing clients that failed too often.
#[derive(Debug)]
pub(crate) struct PasswordGate {
    password: Secret,
    limiter: GuessLimiter,
}

impl PasswordGate {
    pub(crate) fn new(password: Secret) -> Self {
        PasswordGate {
            password,
            limiter: GuessLimiter::new(GuessLimits::configured()),
        }
    }

    /// Admits `given` from `client`.
    ///
    /// # Errors
    /// `RATE_LIMITED`, saying how long to wait, for a client that failed
    /// too often lately (the password is then not even compared);
    /// `UNAUTHORIZED` for a wrong one.
    pub(crate) async fn check(&self, given: &str, client: Option<IpAddr>) -> Result<(), Fault> {
        match self
            .limiter
            .check(client, || self.password.matches(given))
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                warn!(peer = ?client, "wrong feeder password");
                Err(faults::unauthorized("wrong password"))
            }
            Err(Refused(wait)) => Err(faults::rate_limited(
                "too many failed password attempts",
                wait,
            )),
        }
    }
}
