//! The feeder password's gate: a constant-time check, and a token bucket of
//! failed attempts per client address, so guessing is slow.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::api::faults;
use crate::rpc::Fault;
use crate::secret::Secret;

/// Failed password attempts a client may make in a burst...
const PASSWORD_BURST: f64 = 5.0;
/// ...and how many more it earns per second.
const PASSWORD_REFILL_PER_SEC: f64 = 0.5;
/// Clients tracked at most.
const MAX_TRACKED_PEERS: usize = 10_000;

/// A token bucket of failed password attempts.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Checks feeder passwords, refusing clients that failed too often.
#[derive(Debug)]
pub(crate) struct PasswordGate {
    password: Secret,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl PasswordGate {
    pub(crate) fn new(password: Secret) -> Self {
        PasswordGate {
            password,
            buckets: Mutex::default(),
        }
    }

    /// Admits `given` from `client`.
    ///
    /// # Errors
    /// `RATE_LIMITED` for a client that failed too often lately (the
    /// password is then not even compared), `UNAUTHORIZED` for a wrong one.
    pub(crate) fn check(&self, given: &str, client: Option<IpAddr>) -> Result<(), Fault> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = client.map(|ip| {
            let b = buckets.get(&ip).copied().unwrap_or(Bucket {
                tokens: PASSWORD_BURST,
                at: now,
            });
            let refill = now.duration_since(b.at).as_secs_f64() * PASSWORD_REFILL_PER_SEC;
            (ip, (b.tokens + refill).min(PASSWORD_BURST))
        });
        if let Some((_, tokens)) = bucket {
            if tokens < 1.0 {
                let wait = Duration::from_secs_f64((1.0 - tokens) / PASSWORD_REFILL_PER_SEC);
                return Err(faults::rate_limited(
                    "too many failed password attempts",
                    wait,
                ));
            }
        }
        if self.password.matches(given) {
            return Ok(());
        }
        warn!(peer = ?client, "wrong feeder password");
        if let Some((ip, tokens)) = bucket {
            if buckets.len() >= MAX_TRACKED_PEERS {
                buckets.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(60));
            }
            if buckets.len() < MAX_TRACKED_PEERS {
                buckets.insert(
                    ip,
                    Bucket {
                        tokens: tokens - 1.0,
                        at: now,
                    },
                );
            }
        }
        Err(faults::unauthorized("wrong password"))
    }
}
