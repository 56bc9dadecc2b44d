//! The guess limiter's flags (see [`crate::guesses`]), shared by the
//! binaries that check a secret: the db and the front-ends.

use crate::guesses::GuessLimits;

/// How often a secret may be guessed; the defaults suit any deployment, and
/// tests shrink them to see the limits work.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Guessing secrets")]
pub struct GuessArgs {
    /// Wrong guesses of the feeder password or cluster secret one client
    /// address (an IPv6 /64) may make in a burst.
    #[arg(long, default_value_t = GuessLimits::default().burst)]
    pub guess_burst: f64,
    /// Wrong guesses one address earns back per second.
    #[arg(long, default_value_t = GuessLimits::default().refill_per_sec)]
    pub guess_refill_per_sec: f64,
    /// Wrong guesses all addresses together may make in a burst; past it,
    /// an address that guessed lately is refused, and a new one waits
    /// --guess-penalty-ms before its guess is compared.
    #[arg(long, default_value_t = GuessLimits::default().global_burst)]
    pub guess_global_burst: f64,
    /// Wrong guesses all addresses together earn back per second.
    #[arg(long, default_value_t = GuessLimits::default().global_refill_per_sec)]
    pub guess_global_refill_per_sec: f64,
    /// Client addresses tracked at most (the one unused longest is dropped).
    #[arg(long, default_value_t = GuessLimits::default().tracked)]
    pub guess_tracked: usize,
    /// Milliseconds a new address waits before its guess is compared while
    /// all addresses together are over their burst.
    #[arg(long, default_value_t = 1_000)]
    pub guess_penalty_ms: u64,
}

impl GuessArgs {
    /// Installs the limits for every limiter of this process.
    ///
    /// # Errors
    /// A rate or burst that is not a positive number, or no address tracked.
    pub fn install(&self) -> anyhow::Result<()> {
        let positive = |v: f64, flag: &str| {
            anyhow::ensure!(v.is_finite() && v > 0.0, "{flag} must be a positive number");
            Ok(())
        };
        positive(self.guess_burst, "--guess-burst")?;
        positive(self.guess_refill_per_sec, "--guess-refill-per-sec")?;
        positive(self.guess_global_burst, "--guess-global-burst")?;
        positive(
            self.guess_global_refill_per_sec,
            "--guess-global-refill-per-sec",
        )?;
        anyhow::ensure!(self.guess_tracked > 0, "--guess-tracked must be positive");
        GuessLimits {
            burst: self.guess_burst,
            refill_per_sec: self.guess_refill_per_sec,
            global_burst: self.guess_global_burst,
            global_refill_per_sec: self.guess_global_refill_per_sec,
            tracked: self.guess_tracked,
            penalty: std::time::Duration::from_millis(self.guess_penalty_ms),
            ..GuessLimits::default()
        }
        .install();
        Ok(())
    }
}
