//! `podium-frontend`: serves the public API from a coherent cache, checks
//! the feeder password, forwards writes to the db, and pushes changes to
//! subscribed tablets.
//!
//! One change-feed follower (`feed`) drives both cache coherence and push:
//! in `push` mode it keeps a long poll open on the db, in `pull` mode it asks
//! every `pull_interval`.

mod cache;
mod feed;
mod push;

use std::collections::HashSet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::clock::ClusterClock;
use crate::db::wire::{DbClient, WriteReply};
use crate::election::vclock::SharedClock;
use crate::rpc::fault::{self, Fault};
use crate::rpc::{CallContext, Client, ClientConfig, Methods, Params, ServerConfig, Value};
use crate::scoreboard::{self, check_score, score_key, tally_key, Medal, Roster};
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use cache::{Cache, Cached, TABLE_KEY};
use push::PushHub;

/// Default ports, as the old ObelixServers.
pub const DEFAULT_PORTS: [u16; 2] = [8002, 8003];
/// Default pull interval, milliseconds.
pub const DEFAULT_PULL_INTERVAL_MS: u64 = 1_000;
/// Default cache TTL, the last safety net behind the feed, seconds.
pub const DEFAULT_CACHE_TTL_SECS: u64 = 60;
/// Default deadline of a call to the db, milliseconds.
pub const DEFAULT_DB_TIMEOUT_MS: u64 = 2_000;
/// Failed password attempts a peer may make in a burst...
const PASSWORD_BURST: f64 = 5.0;
/// ...and how many more it earns per second.
const PASSWORD_REFILL_PER_SEC: f64 = 0.5;
/// Peers tracked for password rate limiting at most.
const MAX_TRACKED_PEERS: usize = 10_000;

/// How the cache learns about changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheMode {
    /// Ask the change feed every `pull_interval`.
    Pull,
    /// Keep a long poll open on the change feed.
    Push,
}

/// Everything a front-end needs.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    /// The db's URL.
    pub db_url: String,
    pub cluster_secret: Secret,
    pub feeder_password: Secret,
    pub cache_mode: CacheMode,
    pub pull_interval: Duration,
    pub cache_ttl: Duration,
    pub cache_capacity: u64,
    pub db_timeout: Duration,
    pub server: ServerConfig,
    pub clock: ClusterClock,
    /// This process's vector clock, piggybacked on every call to the db.
    pub vclock: SharedClock,
}

impl FrontendConfig {
    /// Checks cross-field rules.
    ///
    /// # Errors
    /// A description of the first rule broken.
    pub fn validate(&self) -> Result<(), String> {
        if self.pull_interval < Duration::from_millis(10) {
            return Err("pull interval must be at least 10 ms".into());
        }
        if self.cache_ttl < self.pull_interval {
            return Err("cache TTL must be at least the pull interval".into());
        }
        if self.db_timeout < Duration::from_millis(50) {
            return Err("db timeout must be at least 50 ms".into());
        }
        Client::new(&self.db_url, ClientConfig::default()).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Shared state of a running front-end.
pub(crate) struct Frontend {
    db: DbClient,
    cache: Cache,
    push: PushHub,
    /// The roster, once the db has told us; `None` until then.
    roster: watch::Receiver<Option<Arc<Roster>>>,
    password: Secret,
    limiter: Mutex<std::collections::HashMap<IpAddr, Bucket>>,
    clock: ClusterClock,
}

/// A token bucket of failed password attempts.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Serves the front-end on `listener` until `shutdown`.
///
/// # Errors
/// Invalid configuration, or accepting failed for good.
pub async fn run(
    listener: TcpListener,
    config: FrontendConfig,
    extra: impl FnOnce(&mut Methods),
    shutdown: Shutdown,
) -> std::io::Result<()> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let client_config = |timeout| {
        crate::cluster::member_client_config(
            &config.cluster_secret,
            Some(config.vclock.clone()),
            timeout,
        )
    };
    let db = DbClient::new(
        Client::new(&config.db_url, client_config(config.db_timeout)).map_err(io_err)?,
    );
    let feed_client = DbClient::new(
        Client::new(
            &config.db_url,
            client_config(Duration::from_millis(feed::LONG_POLL_MS as u64) + config.db_timeout),
        )
        .map_err(io_err)?,
    );
    let (roster_tx, roster_rx) = watch::channel(None);
    let fe = Arc::new(Frontend {
        db,
        cache: Cache::new(config.cache_capacity, config.cache_ttl),
        push: PushHub::new()?,
        roster: roster_rx,
        password: config.feeder_password.clone(),
        limiter: Mutex::default(),
        clock: config.clock.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let follower = tokio::spawn(feed::follow(
        feed_client,
        fe.cache.clone(),
        fe.push.clone(),
        roster_tx,
        config.cache_mode,
        config.pull_interval,
        stop_rx,
    ));
    info!(mode = ?config.cache_mode, db = %config.db_url, "front-end starting");
    let mut methods = public_methods(fe);
    extra(&mut methods);
    let envelope = crate::cluster::Envelope::new(
        methods,
        Some(config.cluster_secret.clone()),
        Some(config.vclock.clone()),
    );
    let result = crate::rpc::serve(listener, envelope, config.server, shutdown.triggered()).await;
    let _ = stop_tx.send(true);
    let _ = follower.await;
    result
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
}

impl Frontend {
    fn roster(&self) -> Result<Arc<Roster>, Fault> {
        self.roster
            .borrow()
            .clone()
            .ok_or_else(|| Fault::new(fault::UNAVAILABLE, "the db has not been reached yet"))
    }

    /// Checks the feeder password, refusing peers that failed too often.
    fn check_password(&self, given: &str, ctx: &CallContext) -> Result<(), Fault> {
        // The balancer passes the client's address on; the envelope believes
        // it only from a caller holding the cluster secret.
        let peer = crate::cluster::caller(ctx).client_ip;
        let now = Instant::now();
        let mut limiter = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = peer.map(|ip| {
            let b = limiter.get(&ip).copied().unwrap_or(Bucket {
                tokens: PASSWORD_BURST,
                at: now,
            });
            let refill = now.duration_since(b.at).as_secs_f64() * PASSWORD_REFILL_PER_SEC;
            (ip, (b.tokens + refill).min(PASSWORD_BURST))
        });
        if let Some((_, tokens)) = bucket {
            if tokens < 1.0 {
                return Err(Fault::new(
                    fault::RATE_LIMITED,
                    "too many failed password attempts; wait and retry",
                ));
            }
        }
        if self.password.matches(given) {
            return Ok(());
        }
        warn!(peer = ?peer, "wrong feeder password");
        if let Some((ip, tokens)) = bucket {
            if limiter.len() >= MAX_TRACKED_PEERS {
                limiter.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(60));
            }
            if limiter.len() < MAX_TRACKED_PEERS {
                limiter.insert(
                    ip,
                    Bucket {
                        tokens: tokens - 1.0,
                        at: now,
                    },
                );
            }
        }
        Err(Fault::new(fault::UNAUTHORIZED, "wrong password"))
    }

    async fn tally(&self, team: &str) -> Result<scoreboard::Tally, Fault> {
        let team = self.roster()?.team(team)?.to_owned();
        let key = tally_key(&team);
        match self
            .cache
            .get_or_fetch(&key, || async {
                self.db.tally(&team).await.map(Cached::Tally)
            })
            .await?
        {
            Cached::Tally(t) => Ok(t),
            _ => Err(Fault::internal("cache holds a non-tally under a tally key")),
        }
    }

    async fn score(&self, event: &str) -> Result<scoreboard::Score, Fault> {
        let event = self.roster()?.event(event)?.to_owned();
        let key = score_key(&event);
        match self
            .cache
            .get_or_fetch(&key, || async {
                self.db.score(&event).await.map(Cached::Score)
            })
            .await?
        {
            Cached::Score(s) => Ok(s),
            _ => Err(Fault::internal("cache holds a non-score under a score key")),
        }
    }

    /// The medal table, ranked once when fetched, not on every hit.
    async fn medal_table(&self) -> Result<Arc<Vec<scoreboard::Tally>>, Fault> {
        let fetch = || async {
            let mut table = self.db.tallies().await?;
            scoreboard::rank(&mut table);
            Ok(Cached::Table(Arc::new(table)))
        };
        match self.cache.get_or_fetch(TABLE_KEY, fetch).await? {
            Cached::Table(t) => Ok(t),
            _ => Err(Fault::internal(
                "cache holds a non-table under the table key",
            )),
        }
    }

    /// The request id of a write: the caller's (argument or header), or a new one.
    fn request_id(ctx: &CallContext, given: Option<&str>) -> String {
        crate::cluster::request_id(ctx, given, "fe")
    }

    async fn increment_medal(
        &self,
        team: &str,
        medal: &str,
        password: &str,
        request_id: Option<&str>,
        ctx: &CallContext,
    ) -> Result<WriteReply, Fault> {
        self.check_password(password, ctx)?;
        let team = self.roster()?.team(team)?.to_owned();
        let medal = Medal::parse(medal)?;
        let rid = Self::request_id(ctx, request_id);
        let reply = self.db.increment_medal(&team, medal, &rid).await?;
        // Read-your-writes through this front-end, before we answer.
        self.cache.apply_change(&reply.change.entry).await;
        Ok(reply)
    }

    async fn set_score(
        &self,
        event: &str,
        score: &str,
        password: &str,
        request_id: Option<&str>,
        ctx: &CallContext,
    ) -> Result<WriteReply, Fault> {
        self.check_password(password, ctx)?;
        let event = self.roster()?.event(event)?.to_owned();
        check_score(score)?;
        let rid = Self::request_id(ctx, request_id);
        let reply = self.db.set_score(&event, score, &rid).await?;
        self.cache.apply_change(&reply.change.entry).await;
        Ok(reply)
    }

    /// Resolves followed names against the roster, lower-cased.
    fn follow_sets(
        &self,
        events: &[Value],
        teams: &[Value],
    ) -> Result<(HashSet<String>, HashSet<String>), Fault> {
        let roster = self.roster()?;
        let names = |list: &[Value], what: &str| -> Result<Vec<String>, Fault> {
            list.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Fault::invalid_params(format!("{what} must be strings")))
                })
                .collect()
        };
        let events = names(events, "events")?
            .iter()
            .map(|e| roster.event(e).map(str::to_lowercase))
            .collect::<Result<_, _>>()?;
        let teams = names(teams, "teams")?
            .iter()
            .map(|t| roster.team(t).map(str::to_lowercase))
            .collect::<Result<_, _>>()?;
        Ok((events, teams))
    }
}

/// Adds a method whose handler gets the front-end.
fn add<F, Fut>(m: &mut Methods, fe: &Arc<Frontend>, name: &str, f: F)
where
    F: Fn(Arc<Frontend>, Params, CallContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, Fault>> + Send + 'static,
{
    let spec = crate::api::spec(name);
    let fe = fe.clone();
    let f = Arc::new(f);
    m.add(name, spec.signature, spec.help, move |p, ctx| {
        let fe = fe.clone();
        let f = f.clone();
        async move { f(fe, p, ctx).await }
    });
}

fn lease_from(secs: Option<i64>) -> Duration {
    let secs = secs
        .unwrap_or(push::LEGACY_LEASE_SECS)
        .clamp(push::MIN_LEASE_SECS, push::MAX_LEASE_SECS);
    Duration::from_secs(secs as u64)
}

/// The public API of DESIGN.md.
pub(crate) fn public_methods(fe: Arc<Frontend>) -> Methods {
    let mut m = Methods::new();
    // The old system's methods, with its text formats.
    add(&mut m, &fe, "get_medal_tally", |fe, p, _| async move {
        p.expect_count(1, 2)?;
        Ok(Value::from(fe.tally(p.arg(0, "team")?).await?.to_text()))
    });
    add(&mut m, &fe, "get_score", |fe, p, _| async move {
        p.expect_count(1, 2)?;
        Ok(Value::from(fe.score(p.arg(0, "event")?).await?.to_text()))
    });
    add(
        &mut m,
        &fe,
        "increment_medal_tally",
        |fe, p, ctx| async move {
            p.expect_count(3, 3)?;
            let reply = fe
                .increment_medal(
                    p.arg(0, "team")?,
                    p.arg(1, "medal")?,
                    p.arg(2, "password")?,
                    None,
                    &ctx,
                )
                .await?;
            Ok(Value::from(match &reply.change.entry {
                crate::store::Entry::Tally(t) => format!(
                    "Medal tally of {} updated: {} gold, {} silver, {} bronze\n",
                    t.team, t.gold, t.silver, t.bronze
                ),
                _ => "Medal tally updated\n".to_owned(),
            }))
        },
    );
    add(&mut m, &fe, "set_score", |fe, p, ctx| async move {
        p.expect_count(3, 3)?;
        let event: &str = p.arg(0, "event")?;
        let reply = fe
            .set_score(event, p.arg(1, "score")?, p.arg(2, "password")?, None, &ctx)
            .await?;
        let name = match &reply.change.entry {
            crate::store::Entry::Score(s) => s.event.clone(),
            _ => event.to_owned(),
        };
        Ok(Value::from(format!("Score of {name} updated\n")))
    });
    add(&mut m, &fe, "register_client", |fe, p, _| async move {
        p.expect_count(3, 3)?;
        let address: &[Value] = p.arg(0, "address")?;
        let url = match address {
            [Value::String(host), Value::Int(port)] if (1..=65535).contains(port) => {
                format!("http://{}/", host_port(host, *port))
            }
            _ => {
                return Err(Fault::invalid_params(
                    "argument 1 (address) must be [host, port]",
                ))
            }
        };
        let (events, teams) = fe.follow_sets(p.arg(1, "events")?, p.arg(2, "teams")?)?;
        fe.push.subscribe(&url, events, teams, lease_from(None))?;
        Ok(Value::from(format!("Registered {url}\n")))
    });

    // Structured methods for new clients.
    add(&mut m, &fe, "scoreboard.roster", |fe, p, _| async move {
        p.expect_count(0, 0)?;
        Ok(fe.roster()?.to_value())
    });
    add(&mut m, &fe, "scoreboard.tally", |fe, p, _| async move {
        p.expect_count(1, 1)?;
        Ok(fe.tally(p.arg(0, "team")?).await?.to_value())
    });
    add(
        &mut m,
        &fe,
        "scoreboard.medal_table",
        |fe, p, _| async move {
            p.expect_count(0, 0)?;
            let table = fe.medal_table().await?;
            let mut rows = Vec::with_capacity(table.len());
            let mut rank = 0;
            let mut prev = None;
            for (i, t) in table.iter().enumerate() {
                let counts = (t.gold, t.silver, t.bronze);
                if prev != Some(counts) {
                    rank = i as i64 + 1;
                    prev = Some(counts);
                }
                let mut row = t.to_value();
                if let Value::Struct(s) = &mut row {
                    s.insert("rank".into(), Value::Int(rank));
                }
                rows.push(row);
            }
            Ok(Value::Array(rows))
        },
    );
    add(&mut m, &fe, "scoreboard.score", |fe, p, _| async move {
        p.expect_count(1, 1)?;
        Ok(fe.score(p.arg(0, "event")?).await?.to_value())
    });
    add(
        &mut m,
        &fe,
        "scoreboard.increment_medal",
        |fe, p, ctx| async move {
            p.expect_count(3, 4)?;
            let reply = fe
                .increment_medal(
                    p.arg(0, "team")?,
                    p.arg(1, "medal")?,
                    p.arg(2, "password")?,
                    p.opt_arg(3, "request_id")?,
                    &ctx,
                )
                .await?;
            Ok(write_result(&reply, "tally"))
        },
    );
    add(
        &mut m,
        &fe,
        "scoreboard.set_score",
        |fe, p, ctx| async move {
            p.expect_count(3, 4)?;
            let reply = fe
                .set_score(
                    p.arg(0, "event")?,
                    p.arg(1, "score")?,
                    p.arg(2, "password")?,
                    p.opt_arg(3, "request_id")?,
                    &ctx,
                )
                .await?;
            Ok(write_result(&reply, "score"))
        },
    );
    add(&mut m, &fe, "scoreboard.subscribe", |fe, p, _| async move {
        p.expect_count(3, 4)?;
        let url: &str = p.arg(0, "callback_url")?;
        let (events, teams) = fe.follow_sets(p.arg(1, "events")?, p.arg(2, "teams")?)?;
        let lease = lease_from(p.opt_arg(3, "lease_seconds")?);
        fe.push.subscribe(url, events, teams, lease)?;
        Ok(Value::structure([
            ("callback_url", Value::from(url)),
            ("lease_seconds", Value::Int(lease.as_secs() as i64)),
        ]))
    });
    add(
        &mut m,
        &fe,
        "scoreboard.unsubscribe",
        |fe, p, _| async move {
            p.expect_count(1, 1)?;
            Ok(Value::Bool(fe.push.unsubscribe(p.arg(0, "callback_url")?)))
        },
    );
    add(&mut m, &fe, "scoreboard.history", |fe, p, _| async move {
        p.expect_count(2, 2)?;
        let kind: &str = p.arg(0, "kind")?;
        let name: &str = p.arg(1, "name")?;
        let roster = fe.roster()?;
        let key = match kind {
            "tally" => tally_key(roster.team(name)?),
            "score" => score_key(roster.event(name)?),
            _ => {
                return Err(Fault::invalid_params(
                    "argument 1 (kind) must be \"tally\" or \"score\"",
                ))
            }
        };
        let changes = fe.db.history(&key, 1000).await?;
        Ok(Value::Array(changes.iter().map(|c| c.to_value()).collect()))
    });
    m.add(
        crate::api::HEALTH_METHOD,
        &["struct"],
        "Readiness of this front-end: {ok, cached, subscribers, clock}.",
        move |p, _| {
            let fe = fe.clone();
            async move {
                p.expect_count(0, 0)?;
                Ok(Value::structure([
                    ("ok", Value::Bool(fe.roster.borrow().is_some())),
                    ("cached", Value::Int(fe.cache.len() as i64)),
                    ("subscribers", Value::Int(fe.push.len() as i64)),
                    ("clock", Value::Double(fe.clock.now_secs())),
                ]))
            }
        },
    );
    m
}

fn write_result(reply: &WriteReply, what: &str) -> Value {
    let entry = match &reply.change.entry {
        crate::store::Entry::Tally(t) => t.to_value(),
        crate::store::Entry::Score(s) => s.to_value(),
    };
    Value::structure([
        ("version", Value::Int(reply.change.version)),
        (what, entry),
        ("duplicate", Value::Bool(reply.duplicate)),
    ])
}

/// `host:port`, bracketing IPv6 literals.
fn host_port(host: &str, port: i64) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
