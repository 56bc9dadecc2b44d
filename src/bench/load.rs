//! Closed-loop load (`reads`, `writes`, `mix`): N simulated connections,
//! each sending its next request as soon as the previous reply is in, for a
//! warm-up and then a measured window.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::samples::{Samples, Sorted};
use super::{ensure, BenchError, Target};
use crate::api::{self, Call};
use crate::rpc::codec::{self, EncodeError, Limits};
use crate::rpc::{ClientError, Value};
use crate::secret::Secret;

/// The default roster's teams and medals (DESIGN.md).
const TEAMS: [&str; 5] = ["Gaul", "Rome", "Carthage", "Greece", "Persia"];
const MEDALS: [&str; 3] = ["gold", "silver", "bronze"];
/// The events `set_score` writes go to.
const SCORE_EVENTS: [&str; 2] = ["Stone Curling", "Stone Skating"];
/// Pause after a failed request, so a dead server is not spun on.
const ERROR_PAUSE_MS: u64 = 10;
/// Longest a load run may last, warm-up included, whatever the flags say.
const MAX_DURATION_SECS: f64 = 600.0;
/// Most simulated connections.
const MAX_CONNECTIONS: usize = 10_000;
/// How far into a reply `<fault>` is looked for: `<methodResponse>` puts it
/// first, so a large value is never scanned.
const FAULT_PEEK_BYTES: usize = 160;

/// The flags of a closed-loop run.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadConfig {
    /// Server URL (loopback only), e.g. http://127.0.0.1:8001/.
    #[arg(long)]
    pub url: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Measured time, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub duration_secs: f64,
    /// Unmeasured time first, seconds (connections, caches and CPU warm up).
    #[arg(long, default_value_t = 1.0)]
    pub warmup_secs: f64,
    /// Most requests per connection, warm-up included.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_requests: u64,
}

impl LoadConfig {
    fn validate(&self) -> Result<(), BenchError> {
        ensure((1..=MAX_CONNECTIONS).contains(&self.connections), || {
            format!("--connections must be 1 to {MAX_CONNECTIONS}")
        })?;
        ensure(
            self.duration_secs > 0.0 && self.duration_secs + self.warmup_secs <= MAX_DURATION_SECS,
            || {
                format!("--duration-secs must be positive and, with the warm-up, at most {MAX_DURATION_SECS}")
            },
        )?;
        ensure(self.warmup_secs >= 0.0, || {
            "--warmup-secs must not be negative".into()
        })
    }
}

/// Which write a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteKind {
    /// increment_medal_tally(random team, random medal, password).
    Medal,
    /// set_score(event, a new text, password).
    Score,
}

/// Which requests a run sends, and their bodies, encoded once where they
/// do not change: the loop then spends no time encoding.
#[derive(Clone)]
pub(crate) struct RequestMix {
    write_percent: u32,
    kind: WriteKind,
    /// `increment_medal_tally` for every (team, medal), when writing medals.
    medal_bodies: Arc<[Bytes]>,
    password: Option<Secret>,
}

impl fmt::Debug for RequestMix {
    // The bodies hold the password: show only how many there are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestMix")
            .field("write_percent", &self.write_percent)
            .field("kind", &self.kind)
            .field("medal_bodies", &self.medal_bodies.len())
            .field("password", &self.password)
            .finish()
    }
}

impl RequestMix {
    /// `write_percent` of the requests are writes of `kind`; the rest are
    /// reads. Writes need `password`.
    ///
    /// # Errors
    /// A percentage over 100, writes without a password, or a password XML
    /// cannot carry.
    pub(crate) fn new(
        write_percent: u32,
        kind: WriteKind,
        password: Option<Secret>,
    ) -> Result<RequestMix, BenchError> {
        ensure(write_percent <= 100, || {
            "--write-percent must be 0 to 100".into()
        })?;
        let mut medal_bodies = Vec::new();
        if write_percent > 0 {
            let pw = password.as_ref().ok_or(BenchError::NoPassword)?.expose();
            match kind {
                WriteKind::Medal => {
                    for team in TEAMS {
                        for medal in MEDALS {
                            medal_bodies.push(encode(&api::IncrementMedalTally {
                                team: team.into(),
                                medal: medal.into(),
                                password: pw.to_string(),
                            })?);
                        }
                    }
                }
                // Score bodies differ per request; this one only checks
                // that the password encodes.
                WriteKind::Score => {
                    score_body(&pw, SCORE_EVENTS[0], 0, 0)?;
                }
            }
        }
        Ok(RequestMix {
            write_percent,
            kind,
            medal_bodies: medal_bodies.into(),
            password,
        })
    }

    /// The read bodies of one connection: `get_medal_tally` of each team,
    /// with the connection's index as the old `client_id`.
    pub(crate) fn read_bodies(client_id: usize) -> Vec<Bytes> {
        TEAMS
            .iter()
            .map(|team| {
                encode(&api::GetMedalTally {
                    team: (*team).into(),
                    client_id: Some(Value::Int(client_id as i64)),
                })
                .expect("a team name and an int always encode")
            })
            .collect()
    }

    /// The next request of connection `conn` (its `seq`th): its body, and
    /// whether it is a write.
    fn next(
        &self,
        rng: &mut impl Rng,
        reads: &[Bytes],
        conn: usize,
        seq: u64,
    ) -> Result<(Bytes, bool), EncodeError> {
        let is_write = self.write_percent > 0 && rng.gen_range(0..100) < self.write_percent;
        if !is_write {
            return Ok((reads[rng.gen_range(0..reads.len())].clone(), false));
        }
        match self.kind {
            WriteKind::Medal => {
                let i = rng.gen_range(0..self.medal_bodies.len());
                Ok((self.medal_bodies[i].clone(), true))
            }
            WriteKind::Score => {
                let pw = self.password.as_ref().map(Secret::expose);
                let event = SCORE_EVENTS[rng.gen_range(0..SCORE_EVENTS.len())];
                let body = score_body(pw.as_deref().unwrap_or_default(), event, conn, seq)?;
                Ok((body, true))
            }
        }
    }
}

/// `set_score` of `event`, with a text no other request of the run writes.
fn score_body(password: &str, event: &str, conn: usize, seq: u64) -> Result<Bytes, EncodeError> {
    encode(&api::SetScore {
        event: event.into(),
        score: format!("bench c{conn} n{seq}"),
        password: password.into(),
    })
}

/// A call's request body.
fn encode<C: Call>(call: &C) -> Result<Bytes, EncodeError> {
    codec::write_call(C::METHOD.name(), &call.to_params()).map(Bytes::from)
}

/// True when an XML-RPC reply body is a fault; a peek, not a parse.
pub(crate) fn is_fault(reply: &[u8]) -> bool {
    let head = &reply[..reply.len().min(FAULT_PEEK_BYTES)];
    head.windows(7).any(|w| w == b"<fault>")
}

/// The fault's text, for the first-error line.
fn fault_text(reply: &[u8]) -> String {
    match codec::parse_response(reply, Limits::default()) {
        Ok(Err(fault)) => format!("fault {}: {}", fault.code, fault.message),
        _ => "fault (undecodable)".to_owned(),
    }
}

/// What one connection measured inside the window.
#[derive(Debug, Default)]
struct Measured {
    reads: Samples,
    writes: Samples,
    errors: u64,
    first_error: Option<String>,
}

impl Measured {
    fn note_error(&mut self, what: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }
}

/// When a connection sends, once every connection has passed the barrier.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Unmeasured time first.
    warmup: Duration,
    /// Measured time after it.
    duration: Duration,
    /// Most requests per connection, warm-up included.
    max_requests: u64,
}

/// Drives one simulated connection: opens it, waits for the others at the
/// barrier, then loops until the window ends or `max_requests` were sent.
async fn drive(
    client: api::Client,
    index: usize,
    mix: RequestMix,
    barrier: Arc<Barrier>,
    window: Window,
) -> Measured {
    let mut measured = Measured::default();
    let reads = RequestMix::read_bodies(index);
    // A client connects on its first call: make that one read, unmeasured,
    // before the clock starts.
    if let Err(e) = client.send_encoded(reads[0].clone()).await {
        measured.note_error(|| e.to_string());
    }
    let mut rng = rand::rngs::StdRng::from_entropy();
    barrier.wait().await;
    let measure_from = Instant::now() + window.warmup;
    let end = measure_from + window.duration;
    for seq in 0..window.max_requests {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let (result, is_write) = match mix.next(&mut rng, &reads, index, seq) {
            Ok((body, is_write)) => (client.send_encoded(body).await, is_write),
            Err(e) => (Err(ClientError::Encode(e)), true),
        };
        let done = Instant::now();
        let ok = match &result {
            Ok(reply) if is_fault(reply) => {
                measured.note_error(|| fault_text(reply));
                false
            }
            Ok(_) => true,
            Err(e) => {
                measured.note_error(|| e.to_string());
                false
            }
        };
        if sent >= measure_from && done <= end {
            if !ok {
                measured.errors += 1;
            } else if is_write {
                measured.writes.record(done - sent);
            } else {
                measured.reads.record(done - sent);
            }
        }
        if !ok {
            tokio::time::sleep(Duration::from_millis(ERROR_PAUSE_MS)).await;
        }
    }
    measured
}

/// Runs `config.connections` connections sending `mix`; `what` names the
/// run in its report.
pub(crate) async fn run(
    what: &'static str,
    label: String,
    config: &LoadConfig,
    mix: RequestMix,
) -> Result<LoadReport, BenchError> {
    config.validate()?;
    let target = Target::check(&config.url).await?;
    let window = Window {
        warmup: Duration::from_secs_f64(config.warmup_secs),
        duration: Duration::from_secs_f64(config.duration_secs),
        max_requests: config.max_requests,
    };
    let barrier = Arc::new(Barrier::new(config.connections + 1));
    let mut tasks = JoinSet::new();
    for index in 0..config.connections {
        let client = target.connection()?;
        let (mix, barrier) = (mix.clone(), barrier.clone());
        tasks.spawn(drive(client, index, mix, barrier, window));
    }
    barrier.wait().await;
    let mut total = Measured::default();
    while let Some(joined) = tasks.join_next().await {
        let measured = joined.map_err(|_| BenchError::Panicked)?;
        total.reads.merge(&measured.reads);
        total.writes.merge(&measured.writes);
        total.errors += measured.errors;
        if let Some(e) = measured.first_error {
            total.note_error(|| e);
        }
    }
    let mut all = total.reads.clone();
    all.merge(&total.writes);
    Ok(LoadReport {
        what,
        label,
        url: config.url.clone(),
        connections: config.connections,
        duration: window.duration,
        warmup: window.warmup,
        reads: total.reads.sorted(),
        writes: total.writes.sorted(),
        all: all.sorted(),
        errors: total.errors,
        first_error: total.first_error,
    })
}

/// What a closed-loop run measured.
#[derive(Debug)]
pub struct LoadReport {
    /// `reads`, `writes` or `mix`.
    what: &'static str,
    label: String,
    url: String,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    reads: Sorted,
    writes: Sorted,
    /// Reads and writes together.
    all: Sorted,
    /// Failed requests inside the window.
    errors: u64,
    /// The first failure of the run, warm-up included.
    first_error: Option<String>,
}

impl LoadReport {
    /// Requests that succeeded inside the window.
    pub fn ok(&self) -> u64 {
        self.all.len() as u64
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.duration.as_secs_f64();
        let ok = self.ok();
        writeln!(
            f,
            "{}: {} connection(s) to {} for {secs:.1} s (after {:.1} s warm-up)",
            self.what,
            self.connections,
            self.url,
            self.warmup.as_secs_f64()
        )?;
        writeln!(
            f,
            "  {ok} ok, {} errors: {:.0} req/s",
            self.errors,
            ok as f64 / secs
        )?;
        if !self.reads.is_empty() {
            writeln!(
                f,
                "  reads  {:.0}/s  {}",
                self.reads.len() as f64 / secs,
                self.reads.summary()
            )?;
        }
        if !self.writes.is_empty() {
            writeln!(
                f,
                "  writes {:.0}/s  {}",
                self.writes.len() as f64 / secs,
                self.writes.summary()
            )?;
        }
        if let Some(e) = &self.first_error {
            writeln!(f, "  first error: {e}")?;
        }
        writeln!(
            f,
            "RESULT kind={} label={} connections={} rps={:.1} p50_ms={:.4} p99_ms={:.4} max_ms={:.4} ok={ok} errors={} read_rps={:.1} write_rps={:.1} write_p50_ms={:.4} write_p99_ms={:.4}",
            self.what,
            self.label,
            self.connections,
            ok as f64 / secs,
            self.all.percentile_ms(50.0),
            self.all.percentile_ms(99.0),
            self.all.percentile_ms(100.0),
            self.errors,
            self.reads.len() as f64 / secs,
            self.writes.len() as f64 / secs,
            self.writes.percentile_ms(50.0),
            self.writes.percentile_ms(99.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Request;
    use crate::rpc::Params;

    /// The request a body carries, as a front-end reads it.
    fn request(body: &[u8]) -> Request {
        let call = codec::parse_call(body, Limits::default()).unwrap();
        let method = api::Method::from_name(&call.method).unwrap();
        Request::parse(method, &Params::new(call.params)).unwrap()
    }

    fn password() -> Option<Secret> {
        Some(Secret::new("pw").unwrap())
    }

    #[test]
    fn read_bodies_ask_for_every_team_with_the_connection_id() {
        let bodies = RequestMix::read_bodies(7);
        let teams: Vec<_> = bodies
            .iter()
            .map(|b| match request(b) {
                Request::GetMedalTally(r) => {
                    assert_eq!(r.client_id, Some(Value::Int(7)));
                    r.team
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(teams, TEAMS);
    }

    #[test]
    fn medal_writes_are_encoded_once_for_every_team_and_medal() {
        let mix = RequestMix::new(100, WriteKind::Medal, password()).unwrap();
        assert_eq!(mix.medal_bodies.len(), TEAMS.len() * MEDALS.len());
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let reads = RequestMix::read_bodies(0);
        for seq in 0..50 {
            let (body, is_write) = mix.next(&mut rng, &reads, 0, seq).unwrap();
            assert!(is_write);
            assert!(mix.medal_bodies.contains(&body));
            match request(&body) {
                Request::IncrementMedalTally(r) => {
                    assert!(TEAMS.contains(&r.team.as_str()));
                    assert!(MEDALS.contains(&r.medal.as_str()));
                    assert_eq!(r.password, "pw");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(!format!("{mix:?}").contains("pw"), "{mix:?}");
    }

    #[test]
    fn score_writes_carry_a_text_of_their_own() {
        let mix = RequestMix::new(100, WriteKind::Score, password()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let (body, is_write) = mix.next(&mut rng, &[], 3, 41).unwrap();
        assert!(is_write);
        match request(&body) {
            Request::SetScore(r) => {
                assert!(SCORE_EVENTS.contains(&r.event.as_str()));
                assert_eq!(r.score, "bench c3 n41");
                assert_eq!(r.password, "pw");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_mix_follows_the_write_percentage() {
        let reads = RequestMix::read_bodies(0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let writes = |mix: &RequestMix, rng: &mut rand::rngs::StdRng| {
            (0..1000)
                .filter(|seq| mix.next(rng, &reads, 0, *seq).unwrap().1)
                .count()
        };
        let reads_only = RequestMix::new(0, WriteKind::Medal, None).unwrap();
        assert_eq!(writes(&reads_only, &mut rng), 0);
        let mix = RequestMix::new(10, WriteKind::Medal, password()).unwrap();
        assert!((50..150).contains(&writes(&mix, &mut rng)));
        assert!(matches!(
            RequestMix::new(101, WriteKind::Medal, password()),
            Err(BenchError::Invalid(_))
        ));
        assert!(matches!(
            RequestMix::new(10, WriteKind::Score, None),
            Err(BenchError::NoPassword)
        ));
    }

    #[test]
    fn a_fault_is_seen_without_parsing_the_reply() {
        let fault = codec::write_fault(&crate::rpc::Fault::invalid_params("no such team"));
        assert!(is_fault(&fault));
        assert_eq!(fault_text(&fault), "fault -32602: no such team");
        // Text is escaped, so a value cannot pass for a fault.
        let ok = codec::write_response(&Value::from("<fault>")).unwrap();
        assert!(!is_fault(&ok));
        assert!(!is_fault(
            b"<?xml version=\"1.0\"?><methodResponse><params>"
        ));
    }
}
