//! `podium-balancer`: the one public address. Each call goes to a front-end
//! chosen at random among the healthy ones.
//!
//! Health comes from a background probe and from failed forwards, never
//! from probing on every request. A call whose forward fails to connect,
//! breaks or times out is retried on another front-end; writes too, because
//! every write carries a request id (added here when the client gave none),
//! so the db applies a retried write once. Only the public methods are in the
//! table, so internal ones are never forwarded.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderValue;
use rand::Rng;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::api::{MethodSpec, HEALTH_METHOD, PUBLIC_METHODS};
use crate::rpc::fault::{self, Fault};
use crate::rpc::server::REQUEST_ID_HEADER;
use crate::rpc::{CallContext, Client, ClientConfig, ClientError, Methods, ServerConfig, Value};
use crate::secret::Secret;

/// Default port, as the old PygmyDotCom.
pub const DEFAULT_PORT: u16 = 8001;
/// Default probe interval, milliseconds.
pub const DEFAULT_PROBE_INTERVAL_MS: u64 = 250;
/// Default forward deadline, milliseconds.
pub const DEFAULT_FORWARD_TIMEOUT_MS: u64 = 1_000;

/// Everything the balancer needs.
#[derive(Debug, Clone)]
pub struct BalancerConfig {
    /// Front-end URLs.
    pub frontends: Vec<String>,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub forward_timeout: Duration,
    /// Sent with forwards so front-ends trust the client address we pass on.
    pub cluster_secret: Option<Secret>,
    pub server: ServerConfig,
}

impl BalancerConfig {
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), String> {
        if self.frontends.is_empty() {
            return Err("at least one front-end is needed".into());
        }
        if self.probe_timeout > self.probe_interval.max(Duration::from_millis(10)) * 4 {
            return Err("probe timeout must not exceed four probe intervals".into());
        }
        for url in &self.frontends {
            Client::new(url, ClientConfig::default()).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

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

struct Balancer {
    backends: Vec<Backend>,
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

impl Balancer {
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let healthy: Vec<usize> = (0..self.backends.len())
            .filter(|i| self.backends[*i].healthy.load(Ordering::Acquire))
            .collect();
        choose(&healthy, tried, &mut rand::thread_rng())
    }

    /// Forwards the encoded call and returns the front-end's reply as it
    /// came: the front-end parses the call, and it is a trusted cluster
    /// member, so its reply is relayed without being decoded again.
    async fn forward(&self, body: Bytes, ctx: CallContext, is_write: bool) -> Result<Bytes, Fault> {
        let mut headers: Vec<(&'static str, HeaderValue)> = Vec::with_capacity(2);
        let request_id = match &ctx.request_id {
            Some(id) => Some(id.to_string()),
            None if is_write => Some(format!("lb-{:032x}", rand::random::<u128>())),
            None => None,
        };
        if let Some(id) = request_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            headers.push((REQUEST_ID_HEADER, id));
        }
        if let Some(ip) = ctx.peer.map(|p| p.ip()) {
            if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
                headers.push(("x-forwarded-for", v));
            }
        }
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
            fault::UNAVAILABLE,
            match last_error {
                Some(e) => format!("no front-end could answer: {e}"),
                None => "no front-end is healthy".to_owned(),
            },
        ))
    }
}

/// Probes every front-end every interval until the balancer stops.
async fn probe_loop(bal: Arc<Balancer>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let mut probes = tokio::task::JoinSet::new();
        for i in 0..bal.backends.len() {
            let bal = bal.clone();
            probes.spawn(async move {
                let b = &bal.backends[i];
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

/// Serves the balancer on `listener` until `shutdown`.
///
/// # Errors
/// Invalid configuration, or accepting failed for good.
pub async fn run(
    listener: TcpListener,
    config: BalancerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let secret = config.cluster_secret.as_ref().map(Secret::expose);
    let backends = config
        .frontends
        .iter()
        .map(|url| {
            let client = |timeout| {
                Client::new(
                    url,
                    ClientConfig {
                        timeout,
                        connect_timeout: timeout.min(Duration::from_millis(500)),
                        secret: secret.clone(),
                        accept_gzip: false,
                        pool_max_idle: 256,
                        ..ClientConfig::default()
                    },
                )
            };
            Ok(Backend {
                url: url.clone(),
                client: client(config.forward_timeout)?,
                probe: client(config.probe_timeout)?,
                // Optimistic until the first probe says otherwise, so the
                // balancer serves from its first moment.
                healthy: AtomicBool::new(true),
            })
        })
        .collect::<Result<Vec<_>, ClientError>>()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let bal = Arc::new(Balancer { backends });
    let prober = tokio::spawn(probe_loop(bal.clone(), config.probe_interval));
    info!(frontends = ?config.frontends, "balancer starting");
    let mut methods = Methods::new();
    for &MethodSpec {
        name,
        signature,
        help,
        is_write,
    } in PUBLIC_METHODS
    {
        let bal = bal.clone();
        methods.add_relay(name, signature, help, move |body, ctx| {
            let bal = bal.clone();
            async move { bal.forward(body, ctx, is_write).await }
        });
    }
    let result = crate::rpc::serve(listener, methods, config.server, shutdown).await;
    prober.abort();
    result
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

    #[test]
    fn every_front_end_method_is_forwarded_and_nothing_else() {
        let names: Vec<&str> = PUBLIC_METHODS.iter().map(|m| m.name).collect();
        assert!(names
            .iter()
            .all(|n| !n.starts_with("db.") && !n.starts_with("election.")));
        assert!(names.contains(&"get_medal_tally") && names.contains(&"scoreboard.medal_table"));
    }
}
