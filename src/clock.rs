//! The cluster clock: this machine's clock plus an offset agreed with the
//! time server. Adjustments are slewed, not stepped: the offset moves toward
//! its target at most [`SLEW_RATE`] seconds per second, so the clock never
//! jumps and, as the rate is below 1, never runs backwards.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch by the local clock.
pub fn local_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A shared, monotonic cluster clock. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ClusterClock {
    inner: Arc<Inner>,
}

/// How fast the offset may change: half a second per second, so a 2 s
/// correction takes 4 s and the clock still advances at half speed or more.
pub const SLEW_RATE: f64 = 0.5;

/// An offset on its way from `base_us` (at local time `since_us`) to `target_us`.
#[derive(Debug, Default, Clone, Copy)]
struct Slew {
    base_us: i64,
    target_us: i64,
    since_us: i64,
}

impl Slew {
    fn offset_at(&self, local_us: i64) -> i64 {
        let room = ((local_us - self.since_us).max(0) as f64 * SLEW_RATE) as i64;
        self.base_us + (self.target_us - self.base_us).clamp(-room, room)
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Added to the local clock, in microseconds, slewing toward its target.
    slew: Mutex<Slew>,
    /// The last reading handed out; readings never go below it.
    last_us: AtomicI64,
    /// Test-only skew of the "local" clock, in microseconds.
    skew_us: AtomicI64,
}

impl ClusterClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock whose local time is skewed by `skew_ms` (tests of clock sync).
    pub fn with_skew_ms(skew_ms: i64) -> Self {
        let c = Self::default();
        c.inner.skew_us.store(skew_ms * 1000, Ordering::Relaxed);
        c
    }

    /// The local clock as this process sees it (skew included), microseconds.
    pub fn local_us(&self) -> i64 {
        local_micros() + self.inner.skew_us.load(Ordering::Relaxed)
    }

    fn slew(&self) -> std::sync::MutexGuard<'_, Slew> {
        self.inner.slew.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Current offset from the local clock, microseconds.
    pub fn offset_us(&self) -> i64 {
        self.slew().offset_at(self.local_us())
    }

    /// The offset the clock is slewing toward, microseconds.
    pub fn target_offset_us(&self) -> i64 {
        self.slew().target_us
    }

    /// Moves the clock by `delta_us` (from where it is now), gradually.
    pub fn adjust_us(&self, delta_us: i64) {
        let local = self.local_us();
        let mut slew = self.slew();
        let current = slew.offset_at(local);
        *slew = Slew {
            base_us: current,
            target_us: current.saturating_add(delta_us),
            since_us: local,
        };
    }

    /// Cluster time now, microseconds since the epoch; never less than any
    /// earlier reading.
    pub fn now_us(&self) -> i64 {
        let candidate = self.local_us() + self.offset_us();
        let prev = self.inner.last_us.fetch_max(candidate, Ordering::AcqRel);
        prev.max(candidate)
    }

    /// Cluster time now, seconds since the epoch.
    pub fn now_secs(&self) -> f64 {
        self.now_us() as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustments_slew_and_never_run_backwards() {
        let slew = Slew {
            base_us: 0,
            target_us: -2_000_000,
            since_us: 1_000_000,
        };
        assert_eq!(slew.offset_at(1_000_000), 0);
        assert_eq!(slew.offset_at(2_000_000), -500_000);
        assert_eq!(slew.offset_at(6_000_000), -2_000_000);
        assert_eq!(slew.offset_at(60_000_000), -2_000_000);
        // Local time + offset keeps advancing while slewing backwards.
        let mut last = i64::MIN;
        for t in (1_000_000..6_000_000).step_by(1_000) {
            let cluster = t + slew.offset_at(t);
            assert!(cluster >= last);
            last = cluster;
        }
        let c = ClusterClock::new();
        let a = c.now_us();
        c.adjust_us(-10_000_000);
        assert!(c.now_us() >= a);
        assert_eq!(c.target_offset_us(), -10_000_000);
        let skewed = ClusterClock::with_skew_ms(2000);
        assert!(skewed.local_us() - local_micros() > 1_900_000);
    }
}
