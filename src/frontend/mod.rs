//! `podium-frontend`: serves the public API from a coherent cache, checks
//! the feeder password, forwards writes to the db, and pushes changes to
//! subscribed tablets.
//!
//! - `config`: what it is told at start, and `flags`: the command line
//!   that tells it;
//! - `handlers`: the public API bound to what follows, one `match`;
//! - `reads`, `writes`: the read path (the cache) and the write path (the
//!   db, with request ids);
//! - `password`: the feeder password's gate;
//! - `subscriptions`: push subscriptions as callers make them (the push
//!   itself is [`crate::push`]);
//! - `web`: the scoreboard page's event stream, fed by the change feed
//!   (the page and the stream are [`crate::web`]).
//!
//! One change-feed follower ([`crate::cache`]) drives cache coherence,
//! push and the page's stream.

mod config;
pub mod flags;
mod handlers;
mod password;
mod reads;
mod subscriptions;
mod web;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::cache::{
    Cache, CacheMode as Mode, FeedListener, Follower, FollowerConfig, Freshness, Listeners,
    FEED_SLACK, LONG_POLL_MS,
};
use crate::clock::ClusterClock;
use crate::cluster::{member_client_config, Envelope};
use crate::db::wire::{ChangeBatch, DbClient};
use crate::push::callback_url::CallbackRules;
use crate::push::report::{FeedMode, MemberReport};
use crate::push::{Hub, HubConfig};
use crate::rpc::{Client, Methods};
use crate::scoreboard::Roster;
use crate::shutdown::{Shutdown, Tasks};
use crate::web::routes::PageRoutes;
use crate::web::{Hub as WebHub, HubConfig as WebHubConfig, WhenLost};
use password::PasswordGate;

pub use crate::cache::CacheMode;
pub use config::{
    ConfigError, FrontendConfig, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL_SECS,
    DEFAULT_DB_TIMEOUT_MS, DEFAULT_PORTS, DEFAULT_PULL_INTERVAL_MS,
};

/// How long the front-end's own tasks (the feed follower, push workers)
/// get to finish after the server has stopped.
const TASKS_GRACE: Duration = Duration::from_secs(2);

/// Shared state of a running front-end.
pub(crate) struct Frontend {
    db: DbClient,
    cache: Cache,
    /// Whether the cache may be served: a silent feed stops hits.
    freshness: Arc<Freshness>,
    push: Hub,
    /// What a push callback may name.
    callback_rules: CallbackRules,
    /// The roster, once the db has told us; `None` until then. The feed
    /// follower keeps it current, and a roster write made here extends it
    /// at once.
    roster_tx: Arc<watch::Sender<Option<Arc<Roster>>>>,
    password: PasswordGate,
    clock: ClusterClock,
}

/// Serves the front-end on `listener` until `shutdown` is triggered.
/// `extra` adds methods of the process's own (the election's).
///
/// # Errors
/// Invalid configuration, or accepting failed for good.
pub async fn run(
    listener: TcpListener,
    config: FrontendConfig,
    extra: impl FnOnce(&mut Methods),
    shutdown: Shutdown,
) -> std::io::Result<()> {
    config.validate().map_err(invalid)?;
    let db_client = |timeout| {
        let member =
            member_client_config(&config.cluster_secret, Some(config.vclock.clone()), timeout);
        Client::new(&config.db_url, member)
            .map(DbClient::new)
            .map_err(invalid)
    };
    let db = db_client(config.db_timeout)?;
    // A long poll may be held LONG_POLL_MS, and then still needs its reply;
    // the follower's own deadline (FEED_SLACK past the hold) ends it first.
    let feed = db_client(Duration::from_millis(LONG_POLL_MS.unsigned_abs()) + FEED_SLACK * 2)?;
    let tasks = Tasks::new(shutdown.clone());
    let cache = Cache::new(config.cache_capacity, config.cache_ttl);
    let (mode, poll_ms) = match config.cache_mode {
        Mode::Push => (FeedMode::Push, PUSH_MODE_POLL_GAP_MS),
        Mode::Pull => (
            FeedMode::Pull,
            u64::try_from(config.pull_interval.as_millis()).unwrap_or(u64::MAX)
                + PUSH_MODE_POLL_GAP_MS,
        ),
    };
    let push = Hub::start(
        &tasks,
        HubConfig {
            uid: config.uid,
            mode,
            poll_ms,
            db: db.clone(),
            clock: config.clock.clone(),
            endpoint: listener.local_addr().ok(),
        },
    )?;
    let roster_tx = Arc::new(watch::channel(None).0);
    // Ends its viewers' streams when the feed is lost: their browsers
    // reconnect (through the balancer) to a front-end that has it.
    let web = WebHub::new(WebHubConfig::new(WhenLost::EndStreams));
    tasks.spawn(web.clone().run(shutdown.clone()));
    let web_feed = web::WebFeed::new(web.clone(), db.clone(), roster_tx.clone(), tasks.clone());
    let listeners: Vec<Arc<dyn FeedListener>> = vec![Arc::new(push.clone()), Arc::new(web_feed)];
    let follower_config = FollowerConfig {
        mode: config.cache_mode,
        pull_interval: config.pull_interval,
    };
    let freshness = Arc::new(Freshness::new(follower_config.max_silence()));
    let follower = Follower::new(
        feed,
        cache.clone(),
        roster_tx.clone(),
        Arc::new(Listeners(listeners)),
        freshness.clone(),
        follower_config,
    );
    tasks.spawn(follower.run(shutdown.clone()));
    info!(mode = ?config.cache_mode, db = %config.db_url, "front-end starting");
    let mut members = crate::push::callback_url::resolve_endpoints(&config.cluster_urls).await;
    members.extend(listener.local_addr().ok());
    let fe = Arc::new(Frontend {
        db,
        cache,
        freshness,
        push,
        callback_rules: CallbackRules {
            allow: config.push_allow.clone(),
            members,
        },
        roster_tx,
        password: PasswordGate::new(config.feeder_password.clone()),
        clock: config.clock.clone(),
    });
    let mut methods = handlers::methods(fe);
    extra(&mut methods);
    let envelope = Envelope::new(
        methods,
        Some(config.cluster_secret.clone()),
        Some(config.vclock.clone()),
    );
    let result = crate::rpc::serve_with_routes(
        listener,
        envelope,
        PageRoutes::new(web),
        config.server,
        shutdown.triggered(),
    )
    .await;
    tasks.stop(TASKS_GRACE).await;
    result
}

/// The longest gap between two feed polls of a push-mode member (one
/// ends, the next begins at once: this is slack for a busy machine), ms.
const PUSH_MODE_POLL_GAP_MS: u64 = 200;

impl FeedListener for Hub {
    fn restarted(&self, position: i64) {
        Hub::restarted(self, position);
    }

    fn batch(&self, batch: &ChangeBatch) {
        Hub::batch(self, batch);
    }

    fn lost(&self) {
        self.feed_lost();
    }

    fn report(&self) -> Option<MemberReport> {
        Some(Hub::report(self))
    }
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
}
