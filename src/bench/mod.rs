//! The load generator behind `podium-bench`, for Podium or for any XML-RPC
//! server that serves the same public methods (the Python baseline, say).
//!
//! One [`Scenario`] per subcommand:
//! - `reads`, `writes`, `mix` ([`LoadConfig`]): N simulated connections in a
//!   closed loop of `get_medal_tally`, durable writes, or both;
//! - `fanout` ([`FanoutConfig`]): M callback servers subscribe, then K
//!   writes; the time from each write's acknowledgement to each push;
//! - `staleness` ([`StalenessConfig`]): write through front-end A, poll
//!   front-end B until it serves the new value;
//! - `sse` ([`SseConfig`]): N simulated browsers follow `/events`, then M
//!   writes; ack-to-receipt latency, lost and repeated changes, and the
//!   servers' memory per viewer;
//! - `attack` ([`AttackConfig`]): a legitimate client's latency while
//!   slowloris sockets, held bodies or amplifying multicalls hit the
//!   target, and the servers' memory during and after.
//!
//! Each simulated connection is one [`api::Client`] that keeps exactly one
//! keep-alive HTTP/1.1 connection, driven by a plain request/response loop
//! (no pipelining), so numbers for different servers compare. Latencies are
//! kept exactly and percentiles are nearest-rank. Every loop is bounded in
//! time and count, and only loopback addresses are accepted (`Target`).
//! Each run's [`Report`] ends with one `RESULT key=value...` line, which
//! `scripts/bench.sh` reads.

mod attack;
mod fanout;
mod load;
mod samples;
mod sse;
mod staleness;
mod tablets;
mod viewers;

use std::fmt;
use std::time::Duration;

use crate::api;
use crate::rpc::codec::EncodeError;
use crate::rpc::{ClientConfig, ClientError};
use crate::secret::Secret;

pub use attack::{AttackConfig, AttackKind, AttackReport};
pub use fanout::{FanoutConfig, FanoutReport};
pub use load::{LoadConfig, LoadReport, WriteKind};
pub use sse::{SseConfig, SseReport};
pub use staleness::{StalenessConfig, StalenessReport};

/// The event written and followed unless a flag says otherwise.
pub const DEFAULT_EVENT: &str = "Stone Curling";
/// Deadline of one request, connecting included; a slower one counts as an error.
const REQUEST_TIMEOUT_MS: u64 = 5_000;

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag outside its range; the message names it.
    #[error("{0}")]
    Invalid(String),
    #[error("invalid URL {0:?}")]
    Url(String),
    #[error("{0}: only http:// URLs are supported")]
    NotHttp(String),
    #[error("resolving {host}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{0} has no address")]
    NoAddress(String),
    #[error("{0}: the benchmark only drives loopback addresses")]
    NotLoopback(String),
    /// The scenario writes, and was given no feeder password.
    #[error("writes need the feeder password")]
    NoPassword,
    #[error("cannot encode the calls: {0}")]
    Encode(#[from] EncodeError),
    #[error("binding a callback port: {0}")]
    Bind(std::io::Error),
    /// A set-up or measured call failed where the run cannot go on without it.
    #[error("{what}")]
    Call { what: String, source: ClientError },
    #[error("{failed} of {total} subscriptions failed, first: {first}")]
    Subscribe {
        failed: usize,
        total: usize,
        first: String,
    },
    #[error("a connection task panicked")]
    Panicked,
    /// A load run in which not one request succeeded (the server is not
    /// there, or not ready: `scripts/bench.sh` waits on this).
    #[error("no request succeeded")]
    NoSuccess,
}

/// What to measure: the subcommands of `podium-bench`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Scenario {
    /// Cached reads: each connection loops get_medal_tally on random teams.
    Reads(LoadConfig),
    /// Durable writes: each connection loops increment_medal_tally or set_score.
    Writes {
        #[command(flatten)]
        load: LoadConfig,
        /// Which write to send.
        #[arg(long, value_enum, default_value_t = WriteKind::Medal)]
        kind: WriteKind,
    },
    /// Reads and writes mixed at random.
    Mix {
        #[command(flatten)]
        load: LoadConfig,
        /// Percentage of requests that are writes (0 to 100).
        #[arg(long, default_value_t = 10)]
        write_percent: u32,
        /// Which write to send.
        #[arg(long, value_enum, default_value_t = WriteKind::Medal)]
        kind: WriteKind,
    },
    /// Push fan-out: M callback servers subscribe, then K writes; latency
    /// from each write's acknowledgement to each subscriber's push.
    Fanout(FanoutConfig),
    /// Cross-front-end staleness: write through A, poll B until it serves
    /// the new value; latency from the acknowledgement to the fresh read.
    Staleness(StalenessConfig),
    /// Server-sent events: N simulated browsers follow /events, then M
    /// writes; latency from each write's acknowledgement to each viewer,
    /// lost and repeated changes, and each --pid's memory per viewer.
    Sse(SseConfig),
    /// A legitimate client's latency while an attack (slowloris, held
    /// bodies, multicall amplification) hits the target, and each --pid's
    /// memory during and after.
    Attack(AttackConfig),
}

impl Scenario {
    /// True when the scenario sends writes, which need the feeder password.
    pub fn writes(&self) -> bool {
        match self {
            Scenario::Reads(_) | Scenario::Attack(_) => false,
            Scenario::Mix { write_percent, .. } => *write_percent > 0,
            Scenario::Writes { .. }
            | Scenario::Fanout(_)
            | Scenario::Staleness(_)
            | Scenario::Sse(_) => true,
        }
    }

    /// Runs the scenario; `label` tags its `RESULT` line, and `password`
    /// is needed when [`Scenario::writes`].
    ///
    /// # Errors
    /// A flag out of range, a target that is not loopback, no password for
    /// writes, or a set-up step that failed. Failed measured requests are
    /// counted in the report instead.
    pub async fn run(self, label: &str, password: Option<Secret>) -> Result<Report, BenchError> {
        let password = || password.clone().ok_or(BenchError::NoPassword);
        let label = label.to_owned();
        Ok(match self {
            Scenario::Reads(load) => {
                let mix = load::RequestMix::new(0, WriteKind::Medal, None)?;
                Report::Load(load::run("reads", label, &load, mix).await?)
            }
            Scenario::Writes { load, kind } => {
                let mix = load::RequestMix::new(100, kind, Some(password()?))?;
                Report::Load(load::run("writes", label, &load, mix).await?)
            }
            Scenario::Mix {
                load,
                write_percent,
                kind,
            } => {
                let password = (write_percent > 0).then(password).transpose()?;
                let mix = load::RequestMix::new(write_percent, kind, password)?;
                Report::Load(load::run("mix", label, &load, mix).await?)
            }
            Scenario::Fanout(config) => {
                Report::Fanout(fanout::run(label, &config, &password()?).await?)
            }
            Scenario::Staleness(config) => {
                Report::Staleness(staleness::run(label, &config, &password()?).await?)
            }
            Scenario::Sse(config) => Report::Sse(sse::run(label, &config, &password()?).await?),
            Scenario::Attack(config) => Report::Attack(attack::run(label, &config).await?),
        })
    }
}

/// What a run measured. `Display` prints the human summary, then the
/// `RESULT` line.
#[derive(Debug)]
pub enum Report {
    Load(LoadReport),
    Fanout(FanoutReport),
    Staleness(StalenessReport),
    Sse(SseReport),
    Attack(AttackReport),
}

impl Report {
    /// Whether the run counts as a success, once its summary is shown.
    ///
    /// # Errors
    /// [`BenchError::NoSuccess`] for a load or attack run in which no
    /// request succeeded.
    pub fn check(&self) -> Result<(), BenchError> {
        match self {
            Report::Load(load) if load.ok() == 0 => Err(BenchError::NoSuccess),
            Report::Attack(attack) if attack.ok() == 0 => Err(BenchError::NoSuccess),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::Load(r) => r.fmt(f),
            Report::Fanout(r) => r.fmt(f),
            Report::Staleness(r) => r.fmt(f),
            Report::Sse(r) => r.fmt(f),
            Report::Attack(r) => r.fmt(f),
        }
    }
}

/// A server URL whose every address is on loopback: the only place the
/// benchmark sends load to, so that it can never flood someone else's server.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    url: String,
    /// The first address the host resolved to, for raw sockets.
    addr: std::net::SocketAddr,
}

impl Target {
    /// Checks `url`: `http://`, with a host that resolves to loopback
    /// addresses only.
    ///
    /// # Errors
    /// As the checks say: [`BenchError::Url`], [`BenchError::NotHttp`],
    /// [`BenchError::Resolve`], [`BenchError::NoAddress`],
    /// [`BenchError::NotLoopback`].
    pub(crate) async fn check(url: &str) -> Result<Target, BenchError> {
        let uri: hyper::Uri = url.parse().map_err(|_| BenchError::Url(url.to_owned()))?;
        if uri.scheme_str() != Some("http") {
            return Err(BenchError::NotHttp(url.to_owned()));
        }
        let host = uri.host().ok_or_else(|| BenchError::Url(url.to_owned()))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let addrs: Vec<_> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|source| BenchError::Resolve {
                host: host.to_owned(),
                source,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(BenchError::NoAddress(host.to_owned()));
        }
        // Every address, not just the first: the client connects by name
        // and may try any of them.
        if !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(BenchError::NotLoopback(url.to_owned()));
        }
        Ok(Target {
            url: url.to_owned(),
            addr: addrs[0],
        })
    }

    /// Where the URL's host resolved first (a loopback address).
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The URL as given.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// One simulated connection: a client that keeps exactly one
    /// keep-alive connection, reopened after an error.
    pub(crate) fn connection(&self) -> Result<api::Client, BenchError> {
        self.client(1)
    }

    /// A client keeping up to `max_idle` connections, for calls made
    /// `max_idle` at a time. Requests are as plain as the old clients'
    /// (no gzip asked for), and connecting has the whole request deadline.
    pub(crate) fn client(&self, max_idle: usize) -> Result<api::Client, BenchError> {
        let config = ClientConfig {
            timeout: Duration::from_millis(REQUEST_TIMEOUT_MS),
            connect_timeout: Duration::from_millis(REQUEST_TIMEOUT_MS),
            pool_max_idle: max_idle,
            accept_gzip: false,
            ..ClientConfig::default()
        };
        api::Client::new(&self.url, config).map_err(|_| BenchError::Url(self.url.clone()))
    }
}

/// Checks a flag against its range: `Err(Invalid(what))` when `ok` is false.
fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), BenchError> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::Invalid(what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_plain_http_to_loopback_is_a_target() {
        for url in ["http://127.0.0.1:8001/", "http://[::1]:8001/RPC2"] {
            assert!(Target::check(url).await.is_ok(), "{url}");
        }
        assert!(matches!(
            Target::check("http://10.1.2.3:8001/").await,
            Err(BenchError::NotLoopback(_))
        ));
        for url in ["https://127.0.0.1/", "127.0.0.1:8001"] {
            assert!(
                matches!(Target::check(url).await, Err(BenchError::NotHttp(_))),
                "{url}"
            );
        }
        assert!(matches!(
            Target::check("not a url").await,
            Err(BenchError::Url(_))
        ));
    }

    #[test]
    fn only_scenarios_that_write_need_the_password() {
        let load = LoadConfig {
            url: "http://127.0.0.1:1/".into(),
            connections: 1,
            duration_secs: 1.0,
            warmup_secs: 0.0,
            max_requests: 1,
        };
        assert!(!Scenario::Reads(load.clone()).writes());
        let mix = |write_percent| Scenario::Mix {
            load: load.clone(),
            write_percent,
            kind: WriteKind::Medal,
        };
        assert!(!mix(0).writes());
        assert!(mix(1).writes());
    }
}
