//! The async driver of the election and the time service: it ticks the pure
//! [`Bully`] state, carries its messages over a [`Transport`] (XML-RPC in
//! production), runs Berkeley rounds while this member coordinates, as the
//! pure [`timesync`] rules allow, and answers `cluster.status`.
//!
//! Internal methods (cluster secret required): `election.message(from, kind,
//! term)`, `clock.read()`, `clock.adjust(delta_us, term)` (wire forms in
//! [`super::transport`]). Public: `cluster.status`.
//!
//! Time is tokio's ([`tokio::time::Instant`]), so tests drive the driver on
//! a paused clock. Every task the driver starts is owned by the node's
//! [`Tasks`] and ends when [`Node::run`] does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::berkeley::Reading;
use super::bully::{Bully, Message, Note, Output, Reply, Role};
use super::config::{BullyConfig, ConfigError, ElectionConfig};
use super::timesync::{self, Adjustment, Refusal, SyncSchedule};
use super::transport::{self, RpcTransport, Transport};
use crate::clock::ClusterClock;
use crate::rpc::{ClientConfig, Fault, Methods, Value};
use crate::shutdown::{Shutdown, Tasks};

mod methods;

/// How often the state machine is ticked.
const TICK_MS: u64 = 25;
/// How long [`Node::run`] waits, once stopped, for its tasks to end. They
/// are dropped at the stop (a message or a round has nothing to finish),
/// so this is only a bound.
const STOP_GRACE_MS: u64 = 1_000;

#[derive(Debug, Clone, Default)]
struct PeerHealth {
    last_ok: Option<Instant>,
    last_error: Option<String>,
}

/// One member of the election group. Cheap to share as `Arc<Node>`.
///
/// `T` is how it reaches the others: [`RpcTransport`] unless a test says
/// otherwise.
pub struct Node<T = RpcTransport> {
    cfg: ElectionConfig,
    bully: Mutex<Bully>,
    transport: T,
    health: Mutex<BTreeMap<u32, PeerHealth>>,
    /// The zero of the election's millisecond clock.
    started: Instant,
    /// Owns every message send and Berkeley round; stopped when `run` ends.
    /// (Without `run`, sends a handler starts still end: every call has a
    /// deadline.)
    tasks: Tasks,
}

impl<T> std::fmt::Debug for Node<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("uid", &self.cfg.uid).finish()
    }
}

/// The deadline of one call to a peer: half a heartbeat interval, kept
/// between 50 and 300 ms. The election's answer timeout is this plus 50 ms,
/// so a candidate waits out a call to a silent higher uid.
fn call_timeout(cfg: &ElectionConfig) -> Duration {
    (cfg.heartbeat_interval / 2).clamp(Duration::from_millis(50), Duration::from_millis(300))
}

impl Node {
    /// A member that reaches its peers over XML-RPC.
    ///
    /// # Errors
    /// Invalid configuration or a peer URL.
    pub fn new(cfg: ElectionConfig) -> Result<Arc<Node>, ConfigError> {
        cfg.validate()?;
        let timeout = call_timeout(&cfg);
        let client = ClientConfig {
            connect_timeout: timeout,
            pool_max_idle: 4,
            ..crate::cluster::member_client_config(&cfg.secret, Some(cfg.vclock.clone()), timeout)
        };
        let transport = RpcTransport::new(cfg.uid, &cfg.peers, &client)?;
        Node::with_transport(cfg, transport)
    }
}

impl<T: Transport> Node<T> {
    /// A member that reaches its peers through `transport`.
    ///
    /// # Errors
    /// Invalid configuration.
    pub fn with_transport(cfg: ElectionConfig, transport: T) -> Result<Arc<Node<T>>, ConfigError> {
        cfg.validate()?;
        let mut bully_cfg = BullyConfig::new(cfg.uid, cfg.peers.keys().copied().collect());
        bully_cfg.heartbeat_interval_ms = cfg.heartbeat_interval.as_millis() as u64;
        bully_cfg.heartbeat_timeout_ms = cfg.heartbeat_timeout.as_millis() as u64;
        bully_cfg.answer_timeout_ms = (call_timeout(&cfg).as_millis() as u64) + 50;
        bully_cfg.announce_timeout_ms = bully_cfg.heartbeat_timeout_ms;
        Ok(Arc::new(Node {
            bully: Mutex::new(Bully::new(bully_cfg)),
            transport,
            health: Mutex::default(),
            started: Instant::now(),
            tasks: Tasks::new(Shutdown::new()),
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
            if !self.cfg.peers.contains_key(&send.to) {
                continue;
            }
            let node = self.clone();
            self.tasks.spawn_until_shutdown(async move {
                match node.transport.send(send.to, send.message).await {
                    Ok(reply) => {
                        node.saw(send.to, None);
                        let more =
                            node.bully()
                                .on_reply(node.now_ms(), send.to, send.message, reply);
                        node.execute(more);
                    }
                    Err(e) => {
                        debug!(peer = send.to, message = ?send.message, error = %e, "election message not delivered");
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

    /// Ticks the election and runs Berkeley rounds until `shutdown` is
    /// triggered; then stops every task the node started (message sends,
    /// rounds) and returns once they have ended.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let mut ticker = tokio::time::interval(Duration::from_millis(TICK_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut schedule =
            SyncSchedule::new(self.now_ms(), self.cfg.sync_interval.as_millis() as u64);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.triggered() => break,
                _ = ticker.tick() => {}
            }
            let out = self.bully().tick(self.now_ms());
            self.execute(out);
            if schedule.poll(self.now_ms(), self.is_coordinator()) {
                let node = self.clone();
                self.tasks
                    .spawn_until_shutdown(async move { node.berkeley_round().await });
            }
        }
        if !self.tasks.stop(Duration::from_millis(STOP_GRACE_MS)).await {
            warn!(
                uid = self.cfg.uid,
                "election tasks still running after the stop"
            );
        }
    }

    /// One Berkeley round: read every clock, then, if the rules allow (this
    /// member still coordinates), move its own clock and send adjustments.
    async fn berkeley_round(self: Arc<Self>) {
        let clock = &self.cfg.clock;
        let mut readings = vec![Reading {
            uid: self.cfg.uid,
            offset_us: 0,
            rtt_us: 0,
        }];
        // The reads run at once; the set is this round's, and aborts them
        // when the round is dropped.
        let mut reads = tokio::task::JoinSet::new();
        for &uid in self.cfg.peers.keys() {
            let node = self.clone();
            reads.spawn(async move {
                let sent = node.cfg.clock.now_us();
                let answer = node.transport.read_clock(uid).await;
                let received = node.cfg.clock.now_us();
                answer
                    .ok()
                    .map(|member| Reading::from_exchange(uid, sent, member, received))
            });
        }
        while let Some(r) = reads.join_next().await {
            if let Ok(Some(reading)) = r {
                readings.push(reading);
            }
        }
        let plan = {
            let b = self.bully();
            timesync::plan_round(self.cfg.uid, b.coordinating_term(), &readings)
        };
        let Some(plan) = plan else {
            debug!(uid = self.cfg.uid, "no longer coordinator: round dropped");
            return;
        };
        if !plan.outliers.is_empty() {
            info!(outliers = ?plan.outliers, "clock readings left out of the average");
        }
        if let Some(delta_us) = plan.own_delta_us {
            apply_adjustment(clock, delta_us);
        }
        for (uid, adjustment) in plan.adjustments {
            if let Err(e) = self.transport.adjust_clock(uid, adjustment).await {
                debug!(peer = uid, error = %e, "clock adjustment not delivered");
            }
        }
    }

    /// An election message from peer `from`: the reply, after acting on it.
    pub(crate) fn receive(self: &Arc<Self>, from: u32, message: Message) -> Reply {
        self.saw(from, None);
        let (reply, out) = self.bully().on_message(self.now_ms(), from, message);
        self.execute(out);
        reply
    }

    /// This member's cluster clock, as `clock.read` answers it.
    pub(crate) fn read_clock(&self) -> i64 {
        self.cfg.clock.now_us()
    }

    /// An adjustment from the time server, applied if the rules allow.
    ///
    /// # Errors
    /// The refusal; the clock is then left alone.
    pub(crate) fn receive_adjustment(&self, adjustment: Adjustment) -> Result<(), Refusal> {
        let current = self.bully().term();
        timesync::check_adjustment(current, adjustment)?;
        apply_adjustment(&self.cfg.clock, adjustment.delta_us);
        Ok(())
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

#[cfg(test)]
mod tests {
    //! The driver on tokio's paused clock, over the in-memory transport of
    //! [`crate::election::memory`]: its ticker, deadlines and tasks run for
    //! real, and time only moves when every task waits, so the timings
    //! asserted here are exact up to a tick.
    use super::*;
    use crate::election::bully::Verdict;
    use crate::election::config::{
        DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS, DEFAULT_SYNC_INTERVAL_MS,
    };
    use crate::election::memory::{MemoryNet, MemoryTransport, LATENCY};
    use crate::election::vclock::SharedClock;
    use crate::secret::Secret;

    const TICK: Duration = Duration::from_millis(TICK_MS);

    /// A group of driver nodes, each running, on one [`MemoryNet`].
    #[derive(Debug)]
    struct Group {
        net: MemoryNet,
        nodes: BTreeMap<u32, Arc<Node<MemoryTransport>>>,
        stops: BTreeMap<u32, Shutdown>,
        runs: Tasks,
    }

    impl Group {
        /// Members `skews_ms` (uid → how far its local clock is off), with
        /// the default timings and a Berkeley round every `sync_ms`.
        fn start(skews_ms: &[(u32, i64)], sync_ms: u64) -> Group {
            let net = MemoryNet::default();
            let runs = Tasks::new(Shutdown::new());
            let mut group = Group {
                net: net.clone(),
                nodes: BTreeMap::new(),
                stops: BTreeMap::new(),
                runs: runs.clone(),
            };
            for &(uid, skew_ms) in skews_ms {
                let cfg = ElectionConfig {
                    uid,
                    peers: skews_ms
                        .iter()
                        .filter(|(p, _)| *p != uid)
                        .map(|(p, _)| (*p, format!("memory://{p}")))
                        .collect(),
                    heartbeat_interval: Duration::from_millis(DEFAULT_HEARTBEAT_INTERVAL_MS),
                    heartbeat_timeout: Duration::from_millis(DEFAULT_HEARTBEAT_TIMEOUT_MS),
                    sync_interval: Duration::from_millis(sync_ms),
                    secret: Secret::new("driver-test-secret").expect("not empty"),
                    clock: ClusterClock::with_skew_ms(skew_ms),
                    vclock: SharedClock::new(uid as usize),
                };
                let node = net.add(cfg);
                let stop = Shutdown::new();
                runs.spawn(node.clone().run(stop.clone()));
                group.nodes.insert(uid, node);
                group.stops.insert(uid, stop);
            }
            group
        }

        fn node(&self, uid: u32) -> &Node<MemoryTransport> {
            &self.nodes[&uid]
        }

        /// Kills `uid`: calls to it fail from now on, and its driver stops.
        fn kill(&self, uid: u32) {
            self.net.kill(uid);
            self.stops[&uid].trigger();
        }

        /// `(coordinator, term)` when every one of `uids` names the same
        /// coordinator in the same term, and that coordinator is one of them
        /// and says it coordinates.
        fn agreement(&self, uids: &[u32]) -> Option<(u32, u64)> {
            let views: Vec<(Option<u32>, u64)> = uids
                .iter()
                .map(|u| {
                    let b = self.node(*u).bully();
                    (b.coordinator(), b.term())
                })
                .collect();
            let (coordinator, term) = views[0];
            let coordinator = coordinator?;
            let agreed = views.iter().all(|v| *v == (Some(coordinator), term))
                && uids.contains(&coordinator)
                && self.node(coordinator).is_coordinator();
            agreed.then_some((coordinator, term))
        }

        /// How far apart the members' clocks will be once the adjustments
        /// they were given are slewed in: local skew plus target offset,
        /// microseconds.
        fn target_spread_us(&self, skews_ms: &[(u32, i64)]) -> i64 {
            let targets: Vec<i64> = skews_ms
                .iter()
                .map(|(u, skew_ms)| skew_ms * 1000 + self.node(*u).cfg.clock.target_offset_us())
                .collect();
            targets.iter().max().unwrap_or(&0) - targets.iter().min().unwrap_or(&0)
        }

        /// Stops every driver and waits for them to return.
        async fn stop(&self) {
            for stop in self.stops.values() {
                stop.trigger();
            }
            assert!(
                self.runs.stop(Duration::from_secs(5)).await,
                "a driver did not return"
            );
        }
    }

    /// Waits, on the paused clock, until `done` holds or `deadline` passes;
    /// returns how long it took.
    async fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() <= deadline {
            if done() {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        None
    }

    /// The answer timeout the driver gives the election.
    fn answer_timeout(node: &Node<MemoryTransport>) -> Duration {
        Duration::from_millis(node.bully().config().answer_timeout_ms)
    }

    /// Property: three members started together elect the highest uid, and
    /// every one of them names it in one term, within a heartbeat timeout.
    #[tokio::test(start_paused = true)]
    async fn three_members_elect_the_highest_uid() {
        let group = Group::start(&[(0, 0), (1, 0), (2, 0)], DEFAULT_SYNC_INTERVAL_MS);
        let took = wait_until(Duration::from_millis(DEFAULT_HEARTBEAT_TIMEOUT_MS), || {
            group.agreement(&[0, 1, 2]).is_some_and(|(c, _)| c == 2)
        })
        .await;
        assert!(took.is_some(), "no agreement on uid 2");
        group.stop().await;
    }

    /// Property: when the coordinator dies, the highest live uid coordinates
    /// a newer term, with every live member following it, no later than a
    /// heartbeat timeout (silence before members give up) plus an answer
    /// timeout (the candidate waits for the dead uid) after the death, give
    /// or take a tick for each and the latency of the last heartbeat and
    /// the announcement; and no sooner than a heartbeat timeout less one
    /// interval (members do not give up on a live coordinator early).
    #[tokio::test(start_paused = true)]
    async fn a_killed_coordinator_is_replaced_within_the_timeouts() {
        let group = Group::start(&[(0, 0), (1, 0), (2, 0)], DEFAULT_SYNC_INTERVAL_MS);
        assert!(wait_until(Duration::from_secs(2), || group
            .agreement(&[0, 1, 2])
            .is_some())
        .await
        .is_some());
        // A few heartbeats of steady state.
        tokio::time::sleep(Duration::from_millis(3 * DEFAULT_HEARTBEAT_INTERVAL_MS + 7)).await;
        let (_, old_term) = group.agreement(&[0, 1, 2]).expect("still agreed");

        group.kill(2);
        let heartbeat_timeout = Duration::from_millis(DEFAULT_HEARTBEAT_TIMEOUT_MS);
        let bound = heartbeat_timeout + answer_timeout(group.node(1)) + 2 * TICK + 2 * LATENCY;
        let took = wait_until(bound, || {
            group
                .agreement(&[0, 1])
                .is_some_and(|(c, t)| c == 1 && t > old_term)
        })
        .await
        .unwrap_or_else(|| panic!("no new coordinator within {bound:?}"));
        let earliest = heartbeat_timeout - Duration::from_millis(DEFAULT_HEARTBEAT_INTERVAL_MS);
        assert!(
            took >= earliest,
            "replaced after {took:?}, before {earliest:?}"
        );
        group.stop().await;
    }

    /// How closely the driver tests want clocks to agree, microseconds.
    /// The paused clock does not stop the cluster clocks (they read the
    /// system's), so a reading is off by the real time its call took: tiny
    /// in memory, but a loaded machine may stall a thread for a few ms.
    const CLOCK_BOUND_US: i64 = 25_000;

    /// Property: the coordinator's first Berkeley round, at the first sync
    /// slot, brings clocks 3.5 s apart (-2 s, 0, +1.5 s) together: each
    /// member's local skew plus the offset it was told to slew to agree
    /// within [`CLOCK_BOUND_US`], and later rounds keep them there.
    #[tokio::test(start_paused = true)]
    async fn a_berkeley_round_corrects_skews() {
        let skews = [(0, -2_000), (1, 0), (2, 1_500)];
        let sync = Duration::from_millis(1_000);
        let group = Group::start(&skews, sync.as_millis() as u64);
        assert_eq!(group.target_spread_us(&skews), 3_500_000);
        let took = wait_until(sync + 2 * TICK, || {
            group.target_spread_us(&skews) < CLOCK_BOUND_US
        })
        .await;
        assert!(
            took.is_some(),
            "spread {} us",
            group.target_spread_us(&skews)
        );
        tokio::time::sleep(3 * sync).await;
        assert!(group.target_spread_us(&skews) < CLOCK_BOUND_US);
        group.stop().await;
    }

    /// Property: the driver applies the time-sync rules to what it is sent:
    /// an adjustment of an older term than its own, or of over an hour, is
    /// refused and leaves its clock alone; one of its term is applied.
    #[tokio::test(start_paused = true)]
    async fn a_member_refuses_stale_and_huge_adjustments() {
        let group = Group::start(&[(0, 0), (1, 0), (2, 0)], DEFAULT_SYNC_INTERVAL_MS);
        let (_, term) = wait_until(Duration::from_secs(2), || {
            group.agreement(&[0, 1, 2]).is_some()
        })
        .await
        .and_then(|_| group.agreement(&[0, 1, 2]))
        .expect("agreement");
        assert!(term > 0);
        let member = group.node(0);
        let target = member.cfg.clock.target_offset_us();
        let stale = Adjustment {
            delta_us: 5_000,
            term: term - 1,
        };
        assert!(matches!(
            member.receive_adjustment(stale),
            Err(Refusal::StaleTerm { .. })
        ));
        let huge = Adjustment {
            delta_us: timesync::MAX_ADJUSTMENT_US + 1,
            term,
        };
        assert!(matches!(
            member.receive_adjustment(huge),
            Err(Refusal::TooLarge { .. })
        ));
        assert_eq!(member.cfg.clock.target_offset_us(), target);
        assert_eq!(
            member.receive_adjustment(Adjustment {
                delta_us: 5_000,
                term
            }),
            Ok(())
        );
        assert_eq!(member.cfg.clock.target_offset_us(), target + 5_000);
        group.stop().await;
    }

    /// Property: `run` returns once its shutdown is triggered, and leaves no
    /// task behind: not its sends and rounds, nor the sends of a message
    /// handled after the stop (they end at once).
    #[tokio::test(start_paused = true)]
    async fn a_stopped_driver_leaves_no_task_behind() {
        let group = Group::start(&[(0, 0), (1, 0), (2, 0)], 100);
        assert!(wait_until(Duration::from_secs(2), || group
            .agreement(&[0, 1, 2])
            .is_some())
        .await
        .is_some());
        group.stop().await;
        for node in group.nodes.values() {
            assert!(
                node.tasks.is_empty(),
                "uid {}: {:?}",
                node.cfg.uid,
                node.tasks
            );
        }
        // A late message: uid 1 now runs an election, whose sends are
        // spawned on the stopped tasks and end at their first poll, before
        // any time passes (a send would wait out its latency).
        let late = group.node(1);
        let term = late.bully().term();
        let reply = group.nodes[&1].receive(0, Message::Election { term: term + 10 });
        assert_eq!(reply.verdict, Verdict::Answer);
        assert_eq!(late.bully().role(), Role::Candidate);
        let now = Instant::now();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(late.tasks.is_empty(), "{:?}", late.tasks);
        assert_eq!(Instant::now(), now);
    }
}
