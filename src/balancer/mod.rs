//! `podium-balancer`: the one public address. Each call goes to a front-end
//! chosen at random among the healthy ones.
//!
//! - `frontends`: the front-ends, their health (a
//!   background probe, and failed forwards), the random choice, and the
//!   forward with its retries;
//! - `relay`: the balancer's handler, which passes a call in
//!   the plain spelling every client sends on as its bytes (reading only its
//!   method name, with [`peek_method_name`]) and parses anything else;
//! - `web`: the scoreboard page, relayed from a front-end, and its events,
//!   fanned out from one upstream stream to every viewer.
//!
//! A call whose forward fails to connect, breaks or times out is retried on
//! another front-end; writes too, because every write carries a request id
//! (added here when the client gave none), so the db applies a retried write
//! once. Only the public methods are forwarded, so internal ones never are.

mod frontends;
mod peek;
mod relay;
mod web;

use std::time::Duration;

use tokio::net::TcpListener;
use tracing::info;

use crate::rpc::{Client, ClientConfig, ServerConfig};
use crate::secret::Secret;
use crate::shutdown::{Shutdown, Tasks};
use crate::web::{Hub as WebHub, HubConfig as WebHubConfig, WhenLost};
use frontends::Frontends;

pub use frontends::choose;
pub use peek::peek_method_name;

/// Default port, as the old PygmyDotCom.
pub const DEFAULT_PORT: u16 = 8001;
/// Default of [`BalancerConfig::probe_interval`], milliseconds.
pub const DEFAULT_PROBE_INTERVAL_MS: u64 = 250;
/// Default of [`BalancerConfig::forward_timeout`], milliseconds: longer
/// than the most a front-end takes to answer, its deadline on the db (2 s
/// by default) after the password's guess penalty (1 s, only while
/// guesses are spread over many addresses), so that a slow db makes the
/// front-end answer (with a fault that says what it knows) before the
/// balancer gives up on it.
pub const DEFAULT_FORWARD_TIMEOUT_MS: u64 = 3_500;
/// Default of [`BalancerConfig::call_deadline`], milliseconds: room for a
/// second attempt, and shorter than a client's own deadline (5 s for
/// Podium's clients), so a client hears why before it gives up.
pub const DEFAULT_CALL_DEADLINE_MS: u64 = 4_500;

/// Everything the balancer needs.
#[derive(Debug, Clone)]
pub struct BalancerConfig {
    /// Front-end URLs; at least one. No default: the binary builds them
    /// from `--frontend` or the old `--xhost`/`--yhost`.
    pub frontends: Vec<String>,
    /// How often every front-end's health is probed. Default 250 ms.
    pub probe_interval: Duration,
    /// How long a probe may take before the front-end counts as down.
    /// Default: the probe interval; at most four of them.
    pub probe_timeout: Duration,
    /// How long one attempt at a front-end may take before the call is
    /// tried elsewhere. Default 3.5 s.
    pub forward_timeout: Duration,
    /// How long all attempts of one call may take together. Default 4.5 s.
    pub call_deadline: Duration,
    /// Sent with forwards so front-ends believe the client address passed
    /// on. Without it, front-ends see every client as the balancer.
    pub cluster_secret: Option<Secret>,
    /// Limits of the public server.
    pub server: ServerConfig,
}

/// A configuration rule broken.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("at least one front-end is needed")]
    NoFrontends,
    #[error("probe timeout must not exceed four probe intervals")]
    ProbeTimeout,
    #[error("the forward timeout must be positive and at most the call deadline")]
    ForwardTimeout,
    #[error("front-end {url:?}: {reason}")]
    FrontendUrl { url: String, reason: String },
}

impl BalancerConfig {
    /// Checks the rules between fields.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.frontends.is_empty() {
            return Err(ConfigError::NoFrontends);
        }
        if self.probe_timeout > self.probe_interval.max(Duration::from_millis(10)) * 4 {
            return Err(ConfigError::ProbeTimeout);
        }
        if self.forward_timeout.is_zero() || self.forward_timeout > self.call_deadline {
            return Err(ConfigError::ForwardTimeout);
        }
        for url in &self.frontends {
            Client::new(url, ClientConfig::default()).map_err(|e| ConfigError::FrontendUrl {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// Serves the balancer on `listener` until `shutdown` is triggered.
///
/// # Errors
/// Invalid configuration, or accepting failed for good.
pub async fn run(
    listener: TcpListener,
    config: BalancerConfig,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let frontends = Frontends::new(&config)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let tasks = Tasks::new(shutdown.clone());
    tasks.spawn_until_shutdown(frontends.clone().probe_loop(config.probe_interval));
    // Keeps its viewers while it finds another front-end to follow.
    let hub = WebHub::new(WebHubConfig::new(WhenLost::Tell));
    tasks.spawn(hub.clone().run(shutdown.clone()));
    tasks.spawn(web::follow(
        frontends.clone(),
        hub.clone(),
        shutdown.clone(),
    ));
    info!(frontends = ?config.frontends, "balancer starting");
    let result = crate::rpc::serve_with_routes(
        listener,
        relay::Relay::new(frontends.clone()),
        web::WebRoutes::new(frontends, hub),
        config.server,
        shutdown.triggered(),
    )
    .await;
    tasks.stop(Duration::from_secs(1)).await;
    result
}
