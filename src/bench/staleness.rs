//! Cross-front-end staleness (`staleness`): write a new score through
//! front-end A, then poll front-end B until it serves it; the time from the
//! write's acknowledgement until that fresh read.

use std::fmt;
use std::time::{Duration, Instant};

use super::samples::{Samples, Sorted};
use super::{ensure, BenchError, Target, DEFAULT_EVENT};
use crate::rpc::ClientError;
use crate::secret::Secret;

/// Most measured samples.
const MAX_SAMPLES: usize = 100_000;
/// Most unmeasured samples.
const MAX_WARMUP_SAMPLES: usize = 1_000;

/// The flags of a staleness run.
#[derive(Debug, Clone, clap::Args)]
pub struct StalenessConfig {
    /// Front-end the writes go through.
    #[arg(long)]
    pub write_url: String,
    /// Front-end polled for the new value (push mode, for the target).
    #[arg(long)]
    pub read_url: String,
    /// Measured samples.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Unmeasured samples first.
    #[arg(long, default_value_t = 5)]
    pub warmup_samples: usize,
    /// The event written and read.
    #[arg(long, default_value = DEFAULT_EVENT)]
    pub event: String,
    /// How long one sample may wait for the fresh value before it counts as lost, ms.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
}

impl StalenessConfig {
    fn validate(&self) -> Result<(), BenchError> {
        ensure((1..=MAX_SAMPLES).contains(&self.samples), || {
            format!("--samples must be 1 to {MAX_SAMPLES}")
        })?;
        ensure(self.warmup_samples <= MAX_WARMUP_SAMPLES, || {
            format!("--warmup-samples must be at most {MAX_WARMUP_SAMPLES}")
        })
    }
}

/// Runs a staleness measurement.
pub(crate) async fn run(
    label: String,
    config: &StalenessConfig,
    password: &Secret,
) -> Result<StalenessReport, BenchError> {
    config.validate()?;
    let write_to = Target::check(&config.write_url).await?;
    let read_from = Target::check(&config.read_url).await?;
    let writer = write_to.connection()?;
    let reader = read_from.connection()?;
    let read = || async {
        reader
            .get_score(&config.event, 0)
            .await
            .map_err(|source| failed("reading through", &read_from, source))
    };
    let pw = password.expose();
    let nonce = format!("st{:08x}x", rand::random::<u32>());
    let timeout = Duration::from_millis(config.timeout_ms);
    let mut fresh = Samples::default();
    let (mut lost, mut first_poll, mut polls_total) = (0usize, 0usize, 0u64);
    let started = Instant::now();
    for i in 0..config.warmup_samples + config.samples {
        // B must hold the current value in its cache, or the first read
        // after the write would be a miss served fresh by the db.
        read().await?;
        let token = format!("{nonce}{i}y");
        writer
            .set_score_text(&config.event, &token, &pw)
            .await
            .map_err(|source| failed("writing through", &write_to, source))?;
        let ack = Instant::now();
        let mut polls = 0u64;
        let seen = loop {
            polls += 1;
            let score = read().await?;
            let at = Instant::now();
            if score.contains(&token) {
                break Some(at);
            }
            if at - ack > timeout {
                break None;
            }
        };
        if i < config.warmup_samples {
            continue;
        }
        polls_total += polls;
        match seen {
            Some(at) => {
                if polls == 1 {
                    first_poll += 1;
                }
                fresh.record(at - ack);
            }
            None => lost += 1,
        }
    }
    Ok(StalenessReport {
        label,
        write_url: config.write_url.clone(),
        read_url: config.read_url.clone(),
        samples: config.samples,
        timeout_ms: config.timeout_ms,
        secs: started.elapsed().as_secs_f64(),
        fresh: fresh.sorted(),
        lost,
        first_poll,
        polls_total,
    })
}

fn failed(what: &str, target: &Target, source: ClientError) -> BenchError {
    BenchError::Call {
        what: format!("{what} {}", target.url()),
        source,
    }
}

/// What a staleness run measured.
#[derive(Debug)]
pub struct StalenessReport {
    label: String,
    write_url: String,
    read_url: String,
    samples: usize,
    timeout_ms: u64,
    /// The whole run, warm-up included.
    secs: f64,
    /// Acknowledgement to the first read that served the new value.
    fresh: Sorted,
    /// Samples never fresh within the timeout.
    lost: usize,
    /// Samples fresh on the first read after the acknowledgement.
    first_poll: usize,
    /// Reads after the acknowledgements, over the measured samples.
    polls_total: u64,
}

impl fmt::Display for StalenessReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "staleness: write through {}, read through {}: {} samples in {:.2} s",
            self.write_url, self.read_url, self.samples, self.secs
        )?;
        writeln!(f, "  ack -> fresh read: {}", self.fresh.summary())?;
        writeln!(
            f,
            "  {} fresh on the first poll, {:.1} polls per sample, {} never fresh within {} ms",
            self.first_poll,
            self.polls_total as f64 / self.samples as f64,
            self.lost,
            self.timeout_ms
        )?;
        writeln!(
            f,
            "RESULT kind=staleness label={} samples={} p50_ms={:.4} p99_ms={:.4} max_ms={:.4} lost={} first_poll={}",
            self.label,
            self.samples,
            self.fresh.percentile_ms(50.0),
            self.fresh.percentile_ms(99.0),
            self.fresh.percentile_ms(100.0),
            self.lost,
            self.first_poll,
        )
    }
}
