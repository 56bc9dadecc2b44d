//! The cluster clock: this machine's clock plus an offset agreed with the
//! time server. It never runs backwards, whatever the local clock or the
//! offset do.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
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

#[derive(Debug, Default)]
struct Inner {
    /// Added to the local clock, in microseconds.
    offset_us: AtomicI64,
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

    /// Current offset from the local clock, microseconds.
    pub fn offset_us(&self) -> i64 {
        self.inner.offset_us.load(Ordering::Relaxed)
    }

    /// Sets the offset. Readings stay monotonic: after a backward adjustment
    /// the clock holds still until real time catches up.
    pub fn set_offset_us(&self, offset: i64) {
        self.inner.offset_us.store(offset, Ordering::Relaxed);
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
    fn never_runs_backwards() {
        let c = ClusterClock::new();
        let a = c.now_us();
        c.set_offset_us(-10_000_000);
        let b = c.now_us();
        assert!(b >= a);
        c.set_offset_us(0);
        assert!(c.now_us() >= b);
        let skewed = ClusterClock::with_skew_ms(2000);
        assert!(skewed.local_us() - local_micros() > 1_900_000);
    }
}
