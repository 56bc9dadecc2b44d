//! The front-ends behind the balancer: their health, the random choice
//! among the healthy ones, and the forward with its retries.
//!
//! Health comes from a background probe (`podium.health` every interval)
//! and from failed forwards, never from probing on every request (the old
//! balancer opened two extra connections per call).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tracing::{debug, info, warn};

use super::peek::reply_fault_code;
use super::BalancerConfig;
use crate::api::faults;
use crate::api::HEALTH_METHOD;
use crate::cluster::{self, member_client_config};
use crate::rpc::Fault;
use crate::rpc::{CallContext, Client, ClientConfig, ClientError, Value};

/// Idle connections kept to each front-end: enough for a busy balancer's
/// concurrent forwards, so a burst does not reconnect.
const POOL_MAX_IDLE: usize = 256;
/// An attempt with less time left than this is not started.
const MIN_ATTEMPT: Duration = Duration::from_millis(20);

struct Backend {
    url: String,
    client: Client,
    probe: Client,
    healthy: AtomicBool,
    /// It has passed a probe: until then, failing one is a front-end still
    /// starting (said at info), not one lost (a warning).
    was_ready: AtomicBool,
}

impl Backend {
    fn set_healthy(&self, healthy: bool, why: &str) {
        let was_ready = if healthy {
            self.was_ready.swap(true, Ordering::AcqRel)
        } else {
            self.was_ready.load(Ordering::Acquire)
        };
        if self.healthy.swap(healthy, Ordering::AcqRel) != healthy {
            match (healthy, was_ready) {
                (true, _) => info!(url = %self.url, "front-end healthy"),
                (false, true) => warn!(url = %self.url, why, "front-end ejected"),
                (false, false) => info!(url = %self.url, why, "front-end not ready yet"),
            }
        }
    }
}

/// Every front-end the balancer forwards to. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Frontends {
    backends: Arc<Vec<Backend>>,
    /// One attempt at one front-end.
    forward_timeout: Duration,
    /// Every attempt of one call together.
    call_deadline: Duration,
}

impl std::fmt::Debug for Frontends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.backends.iter().map(|b| &b.url))
            .finish()
    }
}

/// Picks one of `candidates` (indices) at random, skipping `tried`.
pub fn choose(candidates: &[usize], tried: &[usize], rng: &mut impl Rng) -> Option<usize> {
    let open: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|c| !tried.contains(c))
        .collect();
    if open.is_empty() {
        None
    } else {
        Some(open[rng.gen_range(0..open.len())])
    }
}

impl Frontends {
    /// Clients for every front-end of `config`.
    ///
    /// # Errors
    /// A front-end URL that is not a valid client URL.
    pub(crate) fn new(config: &BalancerConfig) -> Result<Frontends, ClientError> {
        let client = |url: &str, timeout: Duration| {
            let base = match &config.cluster_secret {
                Some(secret) => member_client_config(secret, None, timeout),
                None => ClientConfig {
                    timeout,
                    accept_gzip: false,
                    ..ClientConfig::default()
                },
            };
            Client::new(
                url,
                ClientConfig {
                    connect_timeout: timeout.min(Duration::from_millis(500)),
                    pool_max_idle: POOL_MAX_IDLE,
                    ..base
                },
            )
        };
        let backends = config
            .frontends
            .iter()
            .map(|url| {
                Ok(Backend {
                    url: url.clone(),
                    client: client(url, config.forward_timeout)?,
                    probe: client(url, config.probe_timeout)?,
                    // Optimistic until the first probe says otherwise, so
                    // the balancer serves from its first moment.
                    healthy: AtomicBool::new(true),
                    was_ready: AtomicBool::new(false),
                })
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        Ok(Frontends {
            backends: Arc::new(backends),
            forward_timeout: config.forward_timeout,
            call_deadline: config.call_deadline,
        })
    }

    /// A healthy front-end not tried yet; when none is healthy, any not
    /// tried: each then answers for itself (a front-end cut off from the
    /// db refuses at once, and says why), rather than the balancer
    /// refusing on the word of a probe that may be a moment old.
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let healthy: Vec<usize> = (0..self.backends.len())
            .filter(|i| self.backends[*i].healthy.load(Ordering::Acquire))
            .collect();
        let mut rng = rand::thread_rng();
        choose(&healthy, tried, &mut rng).or_else(|| {
            let all: Vec<usize> = (0..self.backends.len()).collect();
            healthy
                .is_empty()
                .then(|| choose(&all, tried, &mut rng))
                .flatten()
        })
    }

    /// Forwards the encoded call and returns the front-end's reply as it
    /// came: the front-end parses the call, and it is a trusted cluster
    /// member, so its reply is relayed without being decoded again.
    ///
    /// Another front-end is tried when one cannot be reached, does not
    /// answer within the forward timeout, or answers `UNAVAILABLE` (it is
    /// cut off from the db, say) or, for a write, `OUTCOME_UNKNOWN`, all
    /// within the call deadline. A write carries one request id through
    /// every attempt, so trying it again cannot apply it twice.
    ///
    /// # Errors
    /// `UNAVAILABLE` when no front-end could answer; `OUTCOME_UNKNOWN`,
    /// naming the request id, for a write that one of them may have
    /// applied.
    pub(crate) async fn forward(
        &self,
        body: Bytes,
        ctx: &CallContext,
        is_write: bool,
    ) -> Result<Bytes, Fault> {
        let deadline = tokio::time::Instant::now() + self.call_deadline;
        let request_id = is_write.then(|| cluster::request_id(ctx, None, "lb"));
        let headers =
            cluster::forward_headers(ctx.peer.map(|p| p.ip()), request_id.as_deref(), ctx.local);
        let mut tried = Vec::with_capacity(self.backends.len());
        let mut last_error = None;
        // A front-end's own UNAVAILABLE fault, relayed if no other answers.
        let mut unavailable = None;
        // Some attempt may have applied the write...
        let mut maybe_applied = false;
        // ...and a front-end's own word on it, naming the request id it
        // used (the call's own, if it carried one).
        let mut unconfirmed = None;
        while let Some(i) = self.pick(&tried) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left < MIN_ATTEMPT {
                break;
            }
            tried.push(i);
            let backend = &self.backends[i];
            let attempt = backend.client.call_raw_with(body.clone(), &headers);
            let allowed = left.min(self.forward_timeout);
            // An attempt cut short by the call's deadline says nothing about
            // the front-end's health.
            let full_attempt = allowed == self.forward_timeout;
            let result = match tokio::time::timeout(allowed, attempt).await {
                Ok(result) => result,
                Err(_) => Err(ClientError::Timeout(allowed)),
            };
            let code = result.as_ref().ok().and_then(|r| reply_fault_code(r));
            match result {
                Ok(reply) if code == Some(faults::UNAVAILABLE) => {
                    debug!(url = %backend.url, "front-end unavailable; trying another");
                    unavailable = Some(reply);
                }
                Ok(reply) if is_write && code == Some(faults::OUTCOME_UNKNOWN) => {
                    debug!(url = %backend.url, "write unconfirmed; trying another");
                    maybe_applied = true;
                    unconfirmed.get_or_insert(reply);
                }
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    let why = e.to_string();
                    let retry = matches!(
                        e,
                        ClientError::Connect(_)
                            | ClientError::Refused(_)
                            | ClientError::Tls(_)
                            | ClientError::Timeout(_)
                            | ClientError::Transport(_)
                            | ClientError::Status(_)
                    );
                    maybe_applied |= is_write && !e.is_connect();
                    debug!(url = %backend.url, error = %why, retry, "forward failed");
                    if e.is_connect() || (e.is_timeout() && full_attempt) {
                        backend.set_healthy(false, &why);
                    }
                    last_error = Some(why);
                    if !retry {
                        break;
                    }
                }
            }
        }
        if maybe_applied {
            if let Some(reply) = unconfirmed {
                return Ok(reply);
            }
            let id = request_id.as_deref().unwrap_or("?");
            return Err(faults::outcome_unknown(
                "no front-end confirmed it",
                &format!("{id} (or its own, if the call carried one)"),
            ));
        }
        if let Some(reply) = unavailable {
            return Ok(reply);
        }
        Err(Fault::new(
            faults::UNAVAILABLE,
            match last_error {
                Some(e) => format!("no front-end could answer (the call reached none): {e}"),
                None => "no front-end is healthy".to_owned(),
            },
        ))
    }

    /// Probes every front-end every `interval`, forever (the caller stops it).
    pub(crate) async fn probe_loop(self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            // The set owns the probes: dropping it (at shutdown) aborts them.
            let mut probes = tokio::task::JoinSet::new();
            for i in 0..self.backends.len() {
                let frontends = self.clone();
                probes.spawn(async move {
                    let b = &frontends.backends[i];
                    match b.probe.call(HEALTH_METHOD, &[]).await {
                        Ok(Value::Struct(s)) if s.get("ok") == Some(&Value::Bool(true)) => {
                            b.set_healthy(true, "")
                        }
                        Ok(_) => b.set_healthy(false, "not ready"),
                        Err(e) => b.set_healthy(false, &e.to_string()),
                    }
                });
            }
            while probes.join_next().await.is_some() {}
        }
    }
}

/// What the web relay (`balancer::web`) needs of the front-ends: it picks
/// one as the others do, and calls it outside the XML-RPC forward.
impl Frontends {
    /// A healthy front-end at random, not one of `tried`.
    pub(crate) fn pick_healthy(&self, tried: &[usize]) -> Option<usize> {
        self.pick(tried)
    }

    /// Whether front-end `i` is healthy now.
    /// Front-end `i` has passed a health probe since the balancer started.
    pub(crate) fn was_ready(&self, i: usize) -> bool {
        self.backends
            .get(i)
            .is_some_and(|b| b.was_ready.load(Ordering::Acquire))
    }

    pub(crate) fn is_healthy(&self, i: usize) -> bool {
        self.backends
            .get(i)
            .is_some_and(|b| b.healthy.load(Ordering::Acquire))
    }

    /// Front-end `i`'s URL and client (its call timeout bounds the wait
    /// for a reply's head).
    pub(crate) fn backend(&self, i: usize) -> Option<(&str, &Client)> {
        self.backends.get(i).map(|b| (b.url.as_str(), &b.client))
    }

    /// Front-end `i` could not be reached.
    pub(crate) fn eject(&self, i: usize, why: &str) {
        if let Some(b) = self.backends.get(i) {
            b.set_healthy(false, why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn choice_is_random_among_untried_candidates() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[choose(&[0, 1, 2], &[], &mut rng).unwrap()] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "{seen:?}");
        assert_eq!(choose(&[0, 1], &[0], &mut rng), Some(1));
        assert_eq!(choose(&[0, 1], &[0, 1], &mut rng), None);
        assert_eq!(choose(&[], &[], &mut rng), None);
    }

    /// A listener for a front-end that will never answer, and its URL.
    async fn silent_frontend() -> (String, tokio::net::TcpListener) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        (
            format!("http://{}/", listener.local_addr().unwrap()),
            listener,
        )
    }

    #[tokio::test]
    async fn an_attempt_cut_short_by_the_call_deadline_does_not_eject() {
        let (a, la) = silent_frontend().await;
        let (b, lb) = silent_frontend().await;
        // Accept and hold every connection, answering nothing.
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                tokio::select! {
                    Ok((s, _)) = la.accept() => held.push(s),
                    Ok((s, _)) = lb.accept() => held.push(s),
                }
            }
        });
        let forward_timeout = Duration::from_millis(300);
        let frontends = Frontends::new(&BalancerConfig {
            frontends: vec![a, b],
            probe_interval: Duration::from_millis(250),
            probe_timeout: Duration::from_millis(250),
            forward_timeout,
            // Room for one full attempt and a second cut short.
            call_deadline: forward_timeout * 3 / 2,
            cluster_secret: None,
            server: crate::rpc::ServerConfig::default(),
        })
        .unwrap();
        let body =
            Bytes::from_static(b"<methodCall><methodName>get_score</methodName></methodCall>");
        let ctx = CallContext::new(None, Default::default());
        let fault = frontends.forward(body, &ctx, false).await.unwrap_err();
        assert_eq!(fault.code, faults::UNAVAILABLE, "{fault:?}");
        let healthy = (0..2).filter(|i| frontends.is_healthy(*i)).count();
        assert_eq!(
            healthy, 1,
            "only the front-end given a whole attempt is ejected"
        );
        holder.abort();
    }
}
