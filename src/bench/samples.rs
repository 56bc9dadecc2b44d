//! Latency samples, kept exactly (no histogram buckets), and their
//! nearest-rank percentiles: every percentile reported is a latency that
//! was actually measured.

use std::time::Duration;

/// Latencies in nanoseconds, in the order they were measured.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples(Vec<u64>);

impl Samples {
    /// Adds one latency (over 584 years saturates).
    pub(crate) fn record(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds all of `other`'s.
    pub(crate) fn merge(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }

    /// Sorts them, for percentiles.
    pub(crate) fn sorted(mut self) -> Sorted {
        self.0.sort_unstable();
        Sorted(self.0)
    }
}

/// Samples in ascending order: what percentiles are read from.
#[derive(Debug, Default)]
pub(crate) struct Sorted(Vec<u64>);

impl Sorted {
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The nearest-rank `p`th percentile (0 to 100) in milliseconds: the
    /// smallest sample with at least `p`% of them at or below it. 100 is
    /// the maximum. NaN when there are none.
    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.0.len()) - 1;
        self.0[i] as f64 / 1e6
    }

    /// One line: p50, p90, p99, max and the count.
    pub(crate) fn summary(&self) -> String {
        format!(
            "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (n={})",
            self.percentile_ms(50.0),
            self.percentile_ms(90.0),
            self.percentile_ms(99.0),
            self.percentile_ms(100.0),
            self.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: impl IntoIterator<Item = u64>) -> Samples {
        let mut s = Samples::default();
        for v in values {
            s.record(Duration::from_millis(v));
        }
        s
    }

    #[test]
    fn percentiles_are_nearest_rank_samples() {
        // 1..=100 ms in reverse: the rank, not the arrival order, counts.
        let s = ms((1..=100).rev()).sorted();
        assert_eq!(s.len(), 100);
        assert_eq!(s.percentile_ms(50.0), 50.0);
        assert_eq!(s.percentile_ms(90.0), 90.0);
        assert_eq!(s.percentile_ms(99.0), 99.0);
        assert_eq!(s.percentile_ms(99.5), 100.0);
        assert_eq!(s.percentile_ms(100.0), 100.0);
        assert_eq!(s.percentile_ms(0.0), 1.0);
        // Few samples: p99 of 10 is the largest, p50 of 4 the second.
        assert_eq!(ms(1..=10).sorted().percentile_ms(99.0), 10.0);
        assert_eq!(ms([4, 1, 3, 2]).sorted().percentile_ms(50.0), 2.0);
    }

    #[test]
    fn nothing_measured_is_nan_not_zero() {
        let s = Samples::default().sorted();
        assert!(s.is_empty());
        assert!(s.percentile_ms(50.0).is_nan());
        assert_eq!(
            s.summary(),
            "p50 NaN ms  p90 NaN ms  p99 NaN ms  max NaN ms  (n=0)"
        );
    }

    #[test]
    fn merged_samples_keep_every_value_and_summary_reads_them() {
        let mut a = ms([3]);
        a.merge(&ms([1, 2]));
        let mut exact = Samples::default();
        exact.record(Duration::from_micros(1_500));
        a.merge(&exact);
        let s = a.sorted();
        assert_eq!(s.percentile_ms(25.0), 1.0);
        assert_eq!(s.percentile_ms(50.0), 1.5);
        assert_eq!(
            s.summary(),
            "p50 1.500 ms  p90 3.000 ms  p99 3.000 ms  max 3.000 ms  (n=4)"
        );
    }
}
