//! What a fan-out run measured, computed from the arrival times, and its
//! report.

use std::fmt;
use std::time::{Duration, Instant};

use super::Arrivals;
use crate::bench::samples::{Samples, Sorted};

/// The latencies of the measured writes (those after the warm-up).
#[derive(Debug, Default)]
pub(super) struct Measured {
    /// Send to acknowledgement of each write.
    pub(super) write_ack: Samples,
    /// Acknowledgement to push, per (write, subscriber) pair that arrived; a
    /// push before the acknowledgement counts as 0.
    pub(super) pairs: Samples,
    /// Acknowledgement to the last subscriber's push, per write that
    /// reached every subscriber.
    pub(super) last: Samples,
    /// Send to push, per pair that arrived.
    pub(super) from_send: Samples,
    /// Pairs whose push never came within the timeout.
    pub(super) missing: usize,
    /// Pairs whose push came before the write's acknowledgement.
    pub(super) before_ack: usize,
}

/// The pushes of the writes acknowledged after a kill.
#[derive(Debug)]
pub(super) struct AfterKill {
    /// Writes acknowledged after it.
    pub(super) writes: usize,
    /// Acknowledgement to push, per pair of those writes that arrived.
    pub(super) pairs: Sorted,
    /// Kill to push, for the first of those writes to reach each
    /// subscriber: the worst is the takeover time.
    pub(super) first: Sorted,
}

impl Measured {
    /// The pushes of writes acknowledged after `killed_at`.
    pub(super) fn after(arrivals: &Arrivals, acks: &[Instant], killed_at: Instant) -> AfterKill {
        let m = arrivals.subscribers;
        let times = arrivals.times.lock().unwrap_or_else(|p| p.into_inner());
        let mut pairs = Samples::default();
        let mut first: Vec<Option<Duration>> = vec![None; m];
        let mut writes = 0;
        for (w, ack) in acks.iter().enumerate().filter(|(_, a)| **a >= killed_at) {
            writes += 1;
            for (sub, at) in times[w * m..(w + 1) * m].iter().enumerate() {
                if let Some(at) = at {
                    pairs.record(at.saturating_duration_since(*ack));
                    if first[sub].is_none() {
                        first[sub] = Some(at.saturating_duration_since(killed_at));
                    }
                }
            }
        }
        let mut firsts = Samples::default();
        for d in first.into_iter().flatten() {
            firsts.record(d);
        }
        AfterKill {
            writes,
            pairs: pairs.sorted(),
            first: firsts.sorted(),
        }
    }

    pub(super) fn of(
        arrivals: &Arrivals,
        sends: &[Instant],
        acks: &[Instant],
        warmup: usize,
    ) -> Measured {
        let m = arrivals.subscribers;
        let times = arrivals.times.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Measured::default();
        for (w, (sent, ack)) in sends.iter().zip(acks).enumerate().skip(warmup) {
            out.write_ack.record(*ack - *sent);
            let mut slowest = Duration::ZERO;
            let mut complete = true;
            for at in &times[w * m..(w + 1) * m] {
                let Some(at) = at else {
                    out.missing += 1;
                    complete = false;
                    continue;
                };
                if at < ack {
                    out.before_ack += 1;
                }
                let d = at.saturating_duration_since(*ack);
                slowest = slowest.max(d);
                out.pairs.record(d);
                out.from_send.record(at.saturating_duration_since(*sent));
            }
            if complete {
                out.last.record(slowest);
            }
        }
        out
    }
}

/// What a fan-out run measured.
#[derive(Debug)]
pub struct FanoutReport {
    pub(super) label: String,
    /// The front-end the subscribers registered with.
    pub(super) url: String,
    pub(super) subscribers: usize,
    pub(super) writes: usize,
    pub(super) warmup_writes: usize,
    pub(super) timeout_ms: u64,
    /// How long subscribing took.
    pub(super) setup: Duration,
    /// How long the writes took, warm-up included.
    pub(super) run_secs: f64,
    pub(super) write_ack: Sorted,
    pub(super) pairs: Sorted,
    pub(super) last: Sorted,
    pub(super) from_send: Sorted,
    pub(super) missing: usize,
    pub(super) before_ack: usize,
    /// Pushes that were not for this run's writes.
    pub(super) unrelated: usize,
    /// Pushes that came again after the first.
    pub(super) repeated: usize,
    /// With a kill: the pushes of the writes after it.
    pub(super) after_kill: Option<AfterKill>,
    pub(super) unsubscribe_failures: usize,
}

impl fmt::Display for FanoutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.subscribers;
        writeln!(
            f,
            "fanout: {m} subscribers registered with {} in {:.0} ms",
            self.url,
            self.setup.as_secs_f64() * 1e3
        )?;
        writeln!(
            f,
            "fanout: {} measured writes (after {} warm-up) to {m} subscribers in {:.2} s",
            self.writes, self.warmup_writes, self.run_secs
        )?;
        writeln!(f, "  write ack latency:      {}", self.write_ack.summary())?;
        writeln!(f, "  ack -> push, all pairs: {}", self.pairs.summary())?;
        writeln!(f, "  ack -> last subscriber: {}", self.last.summary())?;
        writeln!(f, "  sent -> push, all pairs: {}", self.from_send.summary())?;
        writeln!(
            f,
            "  {} of {} pushes arrived, {} missing (>{} ms), {} repeated, {} before the ack (counted as 0), {} unrelated",
            self.pairs.len(),
            self.writes * m,
            self.missing,
            self.timeout_ms,
            self.repeated,
            self.before_ack,
            self.unrelated
        )?;
        if let Some(k) = &self.after_kill {
            writeln!(
                f,
                "  after the kill: {} writes; ack -> push {}; kill -> first push per subscriber: {}",
                k.writes,
                k.pairs.summary(),
                k.first.summary()
            )?;
        }
        if self.unsubscribe_failures > 0 {
            writeln!(
                f,
                "  {} unsubscribe calls failed",
                self.unsubscribe_failures
            )?;
        }
        writeln!(
            f,
            "RESULT kind=fanout label={} subscribers={m} writes={} p50_ms={:.4} p99_ms={:.4} max_ms={:.4} last_p50_ms={:.4} last_p99_ms={:.4} send_p50_ms={:.4} send_p99_ms={:.4} ack_p50_ms={:.4} received={} missing={} before_ack={} repeated={} takeover_ms={:.1}",
            self.label,
            self.writes,
            self.pairs.percentile_ms(50.0),
            self.pairs.percentile_ms(99.0),
            self.pairs.percentile_ms(100.0),
            self.last.percentile_ms(50.0),
            self.last.percentile_ms(99.0),
            self.from_send.percentile_ms(50.0),
            self.from_send.percentile_ms(99.0),
            self.write_ack.percentile_ms(50.0),
            self.pairs.len(),
            self.missing,
            self.before_ack,
            self.repeated,
            self.after_kill
                .as_ref()
                .map_or(0.0, |k| k.first.percentile_ms(100.0)),
        )
    }
}
