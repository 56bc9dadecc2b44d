//! The async driver of the election and the time service: it ticks the pure
//! [`Bully`] state, carries its messages over XML-RPC, runs Berkeley rounds
//! while this member coordinates, and answers `cluster.status`.
//!
//! Internal methods (cluster secret required): `election.message(from, kind,
//! term)`, `clock.read()`, `clock.adjust(delta_us)`. Public: `cluster.status`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::berkeley::{self, Reading};
use super::bully::{Bully, BullyConfig, Message, Note, Output, Reply, Verdict};
use super::vclock::SharedClock;
use crate::clock::ClusterClock;
use crate::rpc::fault::{self, Fault};
use crate::rpc::{CallContext, Client, ClientConfig, Methods, Params, Value};
use crate::secret::Secret;

/// Default heartbeat interval, milliseconds.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 500;
/// Default heartbeat timeout, milliseconds.
pub const DEFAULT_HEARTBEAT_TIMEOUT_MS: u64 = 1500;
/// Default Berkeley round interval, milliseconds.
pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 5000;
/// Clock readings further than this from the median are left out of the
/// average (their owners are still corrected).
const MAX_DEVIATION_US: i64 = 1_000_000;
/// Readings with a longer round trip are too uncertain to use.
const MAX_READING_RTT_US: i64 = 200_000;
/// How often the state machine is ticked.
const TICK_MS: u64 = 25;

/// Membership and timings of one member.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    pub uid: u32,
    /// Every other member: uid → URL.
    pub peers: BTreeMap<u32, String>,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub sync_interval: Duration,
    pub secret: Secret,
    pub clock: ClusterClock,
    pub vclock: SharedClock,
}

impl ElectionConfig {
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), String> {
        if self.peers.contains_key(&self.uid) {
            return Err(format!("uid {} is listed as its own peer", self.uid));
        }
        if self.uid > 1000 || self.peers.keys().any(|u| *u > 1000) {
            return Err("uids must be at most 1000".into());
        }
        if self.heartbeat_interval < Duration::from_millis(20) {
            return Err("heartbeat interval must be at least 20 ms".into());
        }
        if self.heartbeat_timeout < self.heartbeat_interval * 2 {
            return Err("heartbeat timeout must be at least two heartbeat intervals".into());
        }
        if self.sync_interval < Duration::from_millis(100) {
            return Err("sync interval must be at least 100 ms".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
struct PeerHealth {
    last_ok: Option<Instant>,
    last_error: Option<String>,
}

/// One member of the election group. Cheap to share as `Arc<Node>`.
pub struct Node {
    cfg: ElectionConfig,
    bully: Mutex<Bully>,
    peers: BTreeMap<u32, (String, Client)>,
    health: Mutex<BTreeMap<u32, PeerHealth>>,
    started: Instant,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("uid", &self.cfg.uid).finish()
    }
}

impl Node {
    /// # Errors
    /// Invalid configuration or a peer URL.
    pub fn new(cfg: ElectionConfig) -> Result<Arc<Node>, String> {
        cfg.validate()?;
        let call_timeout = (cfg.heartbeat_interval / 2)
            .clamp(Duration::from_millis(50), Duration::from_millis(300));
        let mut peers = BTreeMap::new();
        for (uid, url) in &cfg.peers {
            let client = Client::new(
                url,
                ClientConfig {
                    timeout: call_timeout,
                    connect_timeout: call_timeout,
                    secret: Some(cfg.secret.expose()),
                    vclock: Some(cfg.vclock.clone()),
                    accept_gzip: false,
                    pool_max_idle: 4,
                    ..ClientConfig::default()
                },
            )
            .map_err(|e| format!("peer {uid}: {e}"))?;
            peers.insert(*uid, (url.clone(), client));
        }
        let mut bully_cfg = BullyConfig::new(cfg.uid, cfg.peers.keys().copied().collect());
        bully_cfg.heartbeat_interval_ms = cfg.heartbeat_interval.as_millis() as u64;
        bully_cfg.heartbeat_timeout_ms = cfg.heartbeat_timeout.as_millis() as u64;
        bully_cfg.answer_timeout_ms = (call_timeout.as_millis() as u64) + 50;
        bully_cfg.announce_timeout_ms = bully_cfg.heartbeat_timeout_ms;
        Ok(Arc::new(Node {
            bully: Mutex::new(Bully::new(bully_cfg)),
            peers,
            health: Mutex::default(),
            started: Instant::now(),
            cfg,
        }))
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn bully(&self) -> std::sync::MutexGuard<'_, Bully> {
        self.bully.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while this member is the coordinator (and time server).
    pub fn is_coordinator(&self) -> bool {
        self.bully().is_coordinator()
    }

    /// Logs notes and sends messages; replies feed back into the state.
    fn execute(self: &Arc<Self>, out: Output) {
        for note in out.notes {
            match note {
                Note::ElectionStarted { term, reason } => {
                    info!(uid = self.cfg.uid, term, reason, "election started")
                }
                Note::Elected { term } => info!(
                    uid = self.cfg.uid,
                    term, "won the election: now coordinator and time server"
                ),
                Note::Following { coordinator, term } => info!(
                    uid = self.cfg.uid,
                    coordinator, term, "following a new coordinator"
                ),
                Note::SteppedDown { term } => info!(
                    uid = self.cfg.uid,
                    term, "stepped down: a newer term exists"
                ),
            }
        }
        for send in out.sends {
            let node = self.clone();
            tokio::spawn(async move {
                let Some((_, client)) = node.peers.get(&send.to) else {
                    return;
                };
                let (kind, term) = match send.message {
                    Message::Election { term } => ("election", term),
                    Message::Coordinator { term } => ("coordinator", term),
                    Message::Heartbeat { term } => ("heartbeat", term),
                };
                let params = [
                    Value::Int(node.cfg.uid.into()),
                    Value::from(kind),
                    Value::Int(term as i64),
                ];
                match client.call("election.message", &params).await {
                    Ok(v) => {
                        node.saw(send.to, None);
                        match reply_from_value(&v) {
                            Some(reply) => {
                                let more = node.bully().on_reply(
                                    node.now_ms(),
                                    send.to,
                                    send.message,
                                    reply,
                                );
                                node.execute(more);
                            }
                            None => warn!(peer = send.to, "malformed election reply"),
                        }
                    }
                    Err(e) => {
                        debug!(peer = send.to, kind, error = %e, "election message not delivered");
                        node.saw(send.to, Some(e.to_string()));
                    }
                }
            });
        }
    }

    fn saw(&self, peer: u32, error: Option<String>) {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let h = health.entry(peer).or_default();
        match error {
            None => {
                h.last_ok = Some(Instant::now());
                h.last_error = None;
            }
            Some(e) => h.last_error = Some(e),
        }
    }

    /// Ticks the election and runs Berkeley rounds until `stop` is true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(Duration::from_millis(TICK_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_sync = Instant::now() + self.cfg.sync_interval;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let out = self.bully().tick(self.now_ms());
            self.execute(out);
            if Instant::now() >= next_sync {
                next_sync = Instant::now() + self.cfg.sync_interval;
                if self.is_coordinator() {
                    let node = self.clone();
                    tokio::spawn(async move { node.berkeley_round().await });
                }
            }
        }
    }

    /// One Berkeley round: read every clock, average, send adjustments.
    async fn berkeley_round(self: Arc<Self>) {
        let clock = &self.cfg.clock;
        let mut readings = vec![Reading {
            uid: self.cfg.uid,
            offset_us: 0,
            rtt_us: 0,
        }];
        let mut reads = tokio::task::JoinSet::new();
        for (uid, (_, client)) in &self.peers {
            let (uid, client, clock) = (*uid, client.clone(), clock.clone());
            reads.spawn(async move {
                let sent = clock.now_us();
                let answer = client.call("clock.read", &[]).await;
                let received = clock.now_us();
                match answer {
                    Ok(Value::Struct(s)) => s
                        .get("time_us")
                        .and_then(Value::as_i64)
                        .map(|member| Reading::from_exchange(uid, sent, member, received)),
                    _ => None,
                }
            });
        }
        while let Some(r) = reads.join_next().await {
            if let Ok(Some(reading)) = r {
                readings.push(reading);
            }
        }
        let round = berkeley::round(&readings, MAX_DEVIATION_US, MAX_READING_RTT_US);
        // Only the coordinator of the current term may move clocks; members
        // refuse adjustments from an older term (a resumed ex-coordinator).
        let term = {
            let b = self.bully();
            if !b.is_coordinator() {
                return;
            }
            b.term()
        };
        if !round.outliers.is_empty() {
            info!(outliers = ?round.outliers, "clock readings left out of the average");
        }
        for (uid, delta_us) in round.adjustments {
            if uid == self.cfg.uid {
                apply_adjustment(clock, delta_us);
            } else if let Some((_, client)) = self.peers.get(&uid) {
                let params = [Value::Int(delta_us), Value::Int(term as i64)];
                if let Err(e) = client.call("clock.adjust", &params).await {
                    debug!(peer = uid, error = %e, "clock adjustment not delivered");
                }
            }
        }
    }

    /// `cluster.status`: this member's view.
    pub fn status(&self) -> Value {
        let (role, coordinator, term) = {
            let b = self.bully();
            (b.role(), b.coordinator(), b.term())
        };
        let health = self
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let alive_within = self.cfg.heartbeat_timeout * 2;
        let peers = self
            .peers
            .iter()
            .map(|(uid, (url, _))| {
                let h = health.get(uid).cloned().unwrap_or_default();
                let age = h.last_ok.map(|t| t.elapsed());
                Value::structure([
                    ("uid", Value::Int((*uid).into())),
                    ("url", Value::from(url.as_str())),
                    (
                        "healthy",
                        Value::Bool(age.is_some_and(|a| a <= alive_within)),
                    ),
                    (
                        "last_seen_ms",
                        Value::Int(age.map_or(-1, |a| a.as_millis() as i64)),
                    ),
                    ("last_error", Value::from(h.last_error.unwrap_or_default())),
                ])
            })
            .collect();
        let vclock = self.cfg.vclock.snapshot();
        Value::structure([
            ("uid", Value::Int(self.cfg.uid.into())),
            (
                "role",
                Value::from(if role == super::bully::Role::Coordinator {
                    "coordinator"
                } else {
                    "member"
                }),
            ),
            ("state", Value::from(role.as_str())),
            ("coordinator", Value::Int(coordinator.map_or(-1, i64::from))),
            ("term", Value::Int(term as i64)),
            (
                "offset_ms",
                Value::Double(self.cfg.clock.offset_us() as f64 / 1000.0),
            ),
            (
                "target_offset_ms",
                Value::Double(self.cfg.clock.target_offset_us() as f64 / 1000.0),
            ),
            ("clock_us", Value::Int(self.cfg.clock.now_us())),
            (
                "vector_clock",
                Value::Array(vclock.as_slice().iter().map(|c| Value::Int(*c)).collect()),
            ),
            ("peers", Value::Array(peers)),
        ])
    }

    /// Adds `election.message`, `clock.read`, `clock.adjust` (internal) and
    /// `cluster.status` (public) to `methods`.
    pub fn add_methods(self: &Arc<Self>, methods: &mut Methods) {
        let node = self.clone();
        internal(
            methods,
            &node,
            "election.message",
            &["struct", "int", "string", "int"],
            "Bully election message: (from_uid, \"election\"|\"coordinator\"|\"heartbeat\", term).",
            |node, p| async move {
                p.expect_count(3, 3)?;
                let from = u32::try_from(p.arg::<i64>(0, "from")?)
                    .map_err(|_| Fault::invalid_params("argument 1 (from) must be a uid"))?;
                if !node.peers.contains_key(&from) {
                    return Err(Fault::invalid_params(format!("uid {from} is not a peer")));
                }
                let term = u64::try_from(p.arg::<i64>(2, "term")?)
                    .map_err(|_| Fault::invalid_params("argument 3 (term) must not be negative"))?;
                let message = match p.arg::<&str>(1, "kind")? {
                    "election" => Message::Election { term },
                    "coordinator" => Message::Coordinator { term },
                    "heartbeat" => Message::Heartbeat { term },
                    other => {
                        return Err(Fault::invalid_params(format!(
                            "unknown message kind {:?}",
                            crate::scoreboard::clip(other)
                        )))
                    }
                };
                node.saw(from, None);
                let (reply, out) = node.bully().on_message(node.now_ms(), from, message);
                node.execute(out);
                Ok(reply_to_value(&reply))
            },
        );
        internal(
            methods,
            &node,
            "clock.read",
            &["struct"],
            "This member's cluster clock, microseconds since the epoch.",
            |node, p| async move {
                p.expect_count(0, 0)?;
                Ok(Value::structure([(
                    "time_us",
                    Value::Int(node.cfg.clock.now_us()),
                )]))
            },
        );
        internal(
            methods,
            &node,
            "clock.adjust",
            &["boolean", "int", "int"],
            "Slews this member's cluster clock by delta_us, on behalf of the coordinator of term.",
            |node, p| async move {
                p.expect_count(1, 2)?;
                let delta: i64 = p.arg(0, "delta_us")?;
                let term = p.opt_arg::<i64>(1, "term")?.unwrap_or(0);
                let current = node.bully().term() as i64;
                if term < current {
                    return Err(Fault::new(
                        fault::UNAUTHORIZED,
                        format!("adjustment from term {term}, but the current term is {current}"),
                    ));
                }
                if delta.abs() > 3_600_000_000 {
                    return Err(Fault::new(
                        fault::INVALID_VALUE,
                        "adjustment over an hour refused",
                    ));
                }
                apply_adjustment(&node.cfg.clock, delta);
                Ok(Value::Bool(true))
            },
        );
        methods.add("cluster.status", &["struct"],
            "This member's view of the cluster: {uid, role, coordinator, term, offset_ms, vector_clock, peers}.",
            move |p, _| {
                let node = node.clone();
                async move {
                    p.expect_count(0, 0)?;
                    Ok(node.status())
                }
            });
    }
}

/// Applies a Berkeley adjustment; tiny ones are not worth a log line.
fn apply_adjustment(clock: &ClusterClock, delta_us: i64) {
    clock.adjust_us(delta_us);
    if delta_us.abs() >= 1000 {
        info!(
            delta_ms = delta_us as f64 / 1000.0,
            target_offset_ms = clock.target_offset_us() as f64 / 1000.0,
            "clock adjustment applied (slewing)"
        );
    } else {
        debug!(delta_us, "clock adjustment applied");
    }
}

fn internal<F, Fut>(
    methods: &mut Methods,
    node: &Arc<Node>,
    name: &str,
    signature: &[&'static str],
    help: &'static str,
    f: F,
) where
    F: Fn(Arc<Node>, Params) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Value, Fault>> + Send + 'static,
{
    let node = node.clone();
    let f = Arc::new(f);
    methods.add(name, signature, help, move |p, ctx: CallContext| {
        let node = node.clone();
        let f = f.clone();
        async move {
            node.cfg.secret.admit(&ctx)?;
            f(node, p).await
        }
    });
}

/// The wire form of an `election.message` reply:
/// `{term: int, coordinator: int (-1: none known), verdict: string}`, the
/// verdict one of [`Verdict::as_str`]'s names.
fn reply_to_value(reply: &Reply) -> Value {
    Value::structure([
        ("term", Value::Int(reply.term as i64)),
        (
            "coordinator",
            Value::Int(reply.coordinator.map_or(-1, i64::from)),
        ),
        ("verdict", Value::from(reply.verdict.as_str())),
    ])
}

/// The reply [`reply_to_value`] wrote, or `None` when `v` is not one.
fn reply_from_value(v: &Value) -> Option<Reply> {
    let s = v.as_struct()?;
    Some(Reply {
        term: u64::try_from(s.get("term")?.as_i64()?).ok()?,
        coordinator: u32::try_from(s.get("coordinator")?.as_i64()?).ok(),
        verdict: Verdict::from_name(s.get("verdict")?.as_str()?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Property: every verdict survives the wire, with and without a known
    /// coordinator; a reply without a known verdict is malformed.
    #[test]
    fn election_replies_round_trip_on_the_wire() {
        use Verdict::*;
        for verdict in [
            Answer,
            NoAnswer,
            Accept,
            Refuse,
            Coordinating,
            NotCoordinating,
        ] {
            for coordinator in [None, Some(3)] {
                let reply = Reply {
                    term: 7,
                    coordinator,
                    verdict,
                };
                assert_eq!(reply_from_value(&reply_to_value(&reply)), Some(reply));
            }
        }
        let unknown = Value::structure([
            ("term", Value::Int(1)),
            ("coordinator", Value::Int(-1)),
            ("verdict", Value::from("ok")),
        ]);
        assert_eq!(reply_from_value(&unknown), None);
    }
}
