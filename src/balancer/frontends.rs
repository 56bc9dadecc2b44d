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

use super::BalancerConfig;
use crate::api::faults;
use crate::api::HEALTH_METHOD;
use crate::cluster::{self, member_client_config};
use crate::rpc::Fault;
use crate::rpc::{CallContext, Client, ClientConfig, ClientError, Value};

/// Idle connections kept to each front-end: enough for a busy balancer's
/// concurrent forwards, so a burst does not reconnect.
const POOL_MAX_IDLE: usize = 256;

struct Backend {
    url: String,
    client: Client,
    probe: Client,
    healthy: AtomicBool,
}

impl Backend {
    fn set_healthy(&self, healthy: bool, why: &str) {
        if self.healthy.swap(healthy, Ordering::AcqRel) != healthy {
            if healthy {
                info!(url = %self.url, "front-end healthy");
            } else {
                warn!(url = %self.url, why, "front-end ejected");
            }
        }
    }
}

/// Every front-end the balancer forwards to. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Frontends {
    backends: Arc<Vec<Backend>>,
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
                })
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        Ok(Frontends {
            backends: Arc::new(backends),
        })
    }

    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let healthy: Vec<usize> = (0..self.backends.len())
            .filter(|i| self.backends[*i].healthy.load(Ordering::Acquire))
            .collect();
        choose(&healthy, tried, &mut rand::thread_rng())
    }

    /// Forwards the encoded call and returns the front-end's reply as it
    /// came: the front-end parses the call, and it is a trusted cluster
    /// member, so its reply is relayed without being decoded again.
    ///
    /// # Errors
    /// `UNAVAILABLE` when no front-end could answer.
    pub(crate) async fn forward(
        &self,
        body: Bytes,
        ctx: &CallContext,
        is_write: bool,
    ) -> Result<Bytes, Fault> {
        let request_id = is_write.then(|| cluster::request_id(ctx, None, "lb"));
        let headers =
            cluster::forward_headers(ctx.peer.map(|p| p.ip()), request_id.as_deref(), ctx.local);
        let mut tried = Vec::with_capacity(self.backends.len());
        let mut last_error = None;
        while let Some(i) = self.pick(&tried) {
            tried.push(i);
            let backend = &self.backends[i];
            match backend.client.call_raw_with(body.clone(), &headers).await {
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    let why = e.to_string();
                    let retry = matches!(
                        e,
                        ClientError::Connect(_)
                            | ClientError::Timeout(_)
                            | ClientError::Transport(_)
                            | ClientError::Status(_)
                    );
                    debug!(url = %backend.url, error = %why, retry, "forward failed");
                    if matches!(e, ClientError::Connect(_) | ClientError::Timeout(_)) {
                        backend.set_healthy(false, &why);
                    }
                    last_error = Some(why);
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(Fault::new(
            faults::UNAVAILABLE,
            match last_error {
                Some(e) => format!("no front-end could answer: {e}"),
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
}
