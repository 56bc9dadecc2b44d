//! How a member of the election group is configured: the driver's
//! [`ElectionConfig`] (membership, timings, secret, clocks) and the pure
//! core's [`BullyConfig`] (the same timings, in milliseconds).

use std::collections::BTreeMap;
use std::time::Duration;

use super::vclock::SharedClock;
use crate::clock::ClusterClock;
use crate::secret::Secret;

/// Default heartbeat interval, milliseconds.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 500;
/// Default heartbeat timeout, milliseconds.
pub const DEFAULT_HEARTBEAT_TIMEOUT_MS: u64 = 1500;
/// Default Berkeley round interval, milliseconds.
pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 5000;
/// The highest uid a member may have: vector clocks hold one entry per uid,
/// at most [`MAX_ENTRIES`](super::vclock::MAX_ENTRIES).
pub const MAX_UID: u32 = super::vclock::MAX_ENTRIES as u32 - 1;

/// Membership and timings of one member.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// This member's uid; the highest live uid coordinates. At most 63.
    pub uid: u32,
    /// Every other member: uid → URL. No default: from `--peer` or the old
    /// host flags.
    pub peers: BTreeMap<u32, String>,
    /// Members heartbeat the coordinator this often, and it re-announces
    /// itself as often. Default 500 ms; at least 20 ms.
    pub heartbeat_interval: Duration,
    /// A coordinator silent this long is presumed dead. Default 1.5 s; at
    /// least two heartbeat intervals.
    pub heartbeat_timeout: Duration,
    /// How often the coordinator runs a Berkeley round. Default 5 s; at
    /// least 100 ms.
    pub sync_interval: Duration,
    /// Sent on every election message; required of every caller.
    pub secret: Secret,
    /// The clock Berkeley rounds read and adjust.
    pub clock: ClusterClock,
    /// This process's vector clock, piggybacked on every message.
    pub vclock: SharedClock,
}

/// A configuration rule broken.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("uid {0} is listed as its own peer")]
    OwnPeer(u32),
    #[error("uids must be at most {MAX_UID}")]
    UidTooLarge,
    #[error("heartbeat interval must be at least 20 ms")]
    HeartbeatInterval,
    #[error("heartbeat timeout must be at least two heartbeat intervals")]
    HeartbeatTimeout,
    #[error("sync interval must be at least 100 ms")]
    SyncInterval,
    #[error("peer {uid}: {reason}")]
    PeerUrl { uid: u32, reason: String },
}

impl ElectionConfig {
    /// Checks the rules between fields.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.peers.contains_key(&self.uid) {
            return Err(ConfigError::OwnPeer(self.uid));
        }
        if self.uid > MAX_UID || self.peers.keys().any(|u| *u > MAX_UID) {
            return Err(ConfigError::UidTooLarge);
        }
        if self.heartbeat_interval < Duration::from_millis(20) {
            return Err(ConfigError::HeartbeatInterval);
        }
        if self.heartbeat_timeout < self.heartbeat_interval * 2 {
            return Err(ConfigError::HeartbeatTimeout);
        }
        if self.sync_interval < Duration::from_millis(100) {
            return Err(ConfigError::SyncInterval);
        }
        Ok(())
    }
}

/// Timings of the election, milliseconds.
#[derive(Debug, Clone)]
pub struct BullyConfig {
    pub uid: u32,
    /// Every other member's uid.
    pub peers: Vec<u32>,
    /// Members heartbeat the coordinator this often; the coordinator
    /// re-announces itself as often. Default 500.
    pub heartbeat_interval_ms: u64,
    /// A coordinator not heard from for this long is presumed dead.
    /// Default 1500.
    pub heartbeat_timeout_ms: u64,
    /// How long a candidate waits for an answer from a higher uid.
    /// Default 300.
    pub answer_timeout_ms: u64,
    /// How long a candidate that was answered waits for the announcement
    /// before starting over. Default 1000.
    pub announce_timeout_ms: u64,
}

impl BullyConfig {
    /// The defaults of DESIGN.md for `uid` among `peers`.
    pub fn new(uid: u32, peers: Vec<u32>) -> Self {
        BullyConfig {
            uid,
            peers,
            heartbeat_interval_ms: 500,
            heartbeat_timeout_ms: 1500,
            answer_timeout_ms: 300,
            announce_timeout_ms: 1000,
        }
    }
}
