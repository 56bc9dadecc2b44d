//! What a front-end is told at start, with its defaults and the rules
//! between fields.

use std::time::Duration;

use crate::cache::CacheMode;
use crate::clock::ClusterClock;
use crate::election::vclock::SharedClock;
use crate::rpc::{Client, ClientConfig, ServerConfig};
use crate::secret::Secret;

/// Default ports, as the old ObelixServers.
pub const DEFAULT_PORTS: [u16; 2] = [8002, 8003];
/// Default of [`FrontendConfig::pull_interval`], milliseconds.
pub const DEFAULT_PULL_INTERVAL_MS: u64 = 1_000;
/// Default of [`FrontendConfig::cache_ttl`], seconds.
pub const DEFAULT_CACHE_TTL_SECS: u64 = 60;
/// Default of [`FrontendConfig::cache_capacity`], entries.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// Default of [`FrontendConfig::db_timeout`], milliseconds.
pub const DEFAULT_DB_TIMEOUT_MS: u64 = 2_000;

/// Everything a front-end needs.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    /// This front-end's uid in the election group; also who pushes, in the
    /// db's views of push owners.
    pub uid: u32,
    /// The db's URL. No default: the binary builds it from `--db` or the
    /// old `--dbhost`.
    pub db_url: String,
    /// Every cluster member's URL (the db, the election peers): push
    /// callbacks may never name them.
    pub cluster_urls: Vec<String>,
    /// Ranges push callbacks may point into even when they are not the
    /// subscriber's own address (`--push-allow`). Default none.
    pub push_allow: Vec<ipnet::IpNet>,
    /// Sent on every call to the db; believed from the balancer.
    pub cluster_secret: Secret,
    /// What feeders must give to write.
    pub feeder_password: Secret,
    /// How the cache learns of changes. Default push.
    pub cache_mode: CacheMode,
    /// Pause between change-feed polls in pull mode; bounds staleness there.
    /// Default 1 s; at least 10 ms.
    pub pull_interval: Duration,
    /// Longest a cached value lives whatever the feed says: the last safety
    /// net. Default 60 s; at least the pull interval.
    pub cache_ttl: Duration,
    /// Most entries cached. Default 10,000 (the roster is far smaller).
    pub cache_capacity: u64,
    /// Deadline of a call to the db. Default 2 s; at least 50 ms.
    pub db_timeout: Duration,
    /// Limits of the public server.
    pub server: ServerConfig,
    /// Timestamps and the health probe's clock come from it.
    pub clock: ClusterClock,
    /// This process's vector clock, piggybacked on every call to the db.
    pub vclock: SharedClock,
}

/// A configuration rule broken.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("pull interval must be at least 10 ms")]
    PullInterval,
    #[error("cache TTL must be at least the pull interval")]
    CacheTtl,
    #[error("db timeout must be at least 50 ms")]
    DbTimeout,
    #[error("db URL {url:?}: {reason}")]
    DbUrl { url: String, reason: String },
}

impl FrontendConfig {
    /// Checks the rules between fields.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.pull_interval < Duration::from_millis(10) {
            return Err(ConfigError::PullInterval);
        }
        if self.cache_ttl < self.pull_interval {
            return Err(ConfigError::CacheTtl);
        }
        if self.db_timeout < Duration::from_millis(50) {
            return Err(ConfigError::DbTimeout);
        }
        Client::new(&self.db_url, ClientConfig::default()).map_err(|e| ConfigError::DbUrl {
            url: self.db_url.clone(),
            reason: e.to_string(),
        })?;
        Ok(())
    }
}
