//! Latency statistics: an HDR histogram in microseconds, and exact percentiles
//! of a sorted sample.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency the histogram tracks. Longer values are clamped to it.
const MAX_MICROS: u64 = 3_600 * 1_000_000;

/// Latencies recorded with 3 significant digits (at most 0.1 % error) from 1 µs
/// to one hour.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    inner: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        let inner =
            Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("the bounds are valid constants");
        Self { inner }
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS);
        self.inner.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.inner
            .add(&other.inner)
            .expect("histograms with the same bounds always merge");
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.inner.len()
    }

    pub fn mean(&self) -> Duration {
        Duration::from_secs_f64(self.inner.mean() / 1e6)
    }

    /// Returns the latency at quantile `q` (0.5 for the median, 0.99 for p99), or
    /// zero when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.inner.value_at_quantile(q))
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.inner.max())
    }
}

/// Returns the nearest-rank percentile of `sorted`: the smallest value with at
/// least `q * n` values at or below it. Returns `None` for an empty sample.
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[index])
}

/// Returns the arithmetic mean, or `None` for an empty sample.
pub fn mean(values: &[Duration]) -> Option<Duration> {
    let count = u32::try_from(values.len()).ok().filter(|&n| n > 0)?;
    Some(values.iter().sum::<Duration>() / count)
}

/// Returns the index of the median of `values` (the lower one of the middle
/// two for an even count), or 0 for an empty slice.
pub fn median_index(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

/// Converts to milliseconds as a float, the unit of every table and JSON field.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn histogram_quantiles_of_uniform_values() {
        let mut h = LatencyHistogram::new();
        for n in 1..=1000 {
            h.record(ms(n));
        }
        assert_eq!(h.count(), 1000);
        let p50 = millis(h.quantile(0.5));
        let p99 = millis(h.quantile(0.99));
        assert!((p50 - 500.0).abs() <= 0.5, "p50 {p50} ms, expected 500");
        assert!((p99 - 990.0).abs() <= 1.0, "p99 {p99} ms, expected 990");
        assert!((millis(h.mean()) - 500.5).abs() <= 0.5);
    }

    #[test]
    fn histogram_keeps_microseconds() {
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_micros(250));
        assert_eq!(h.quantile(0.5), Duration::from_micros(250));
    }

    #[test]
    fn histogram_clamps_out_of_range_values() {
        let mut h = LatencyHistogram::new();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(10_000));
        assert_eq!(h.count(), 2);
        assert!(h.max() >= Duration::from_secs(3_599));
    }

    #[test]
    fn histogram_merge_adds_counts() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record(ms(1));
        b.record(ms(3));
        b.record(ms(3));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert!(a.quantile(1.0) >= ms(3));
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let h = LatencyHistogram::new();
        assert_eq!(h.count(), 0);
        assert_eq!(h.quantile(0.99), Duration::ZERO);
    }

    #[test]
    fn percentile_nearest_rank() {
        let sorted: Vec<Duration> = (1..=10).map(ms).collect();
        assert_eq!(percentile(&sorted, 0.5), Some(ms(5)));
        assert_eq!(percentile(&sorted, 0.9), Some(ms(9)));
        assert_eq!(percentile(&sorted, 0.99), Some(ms(10)));
        assert_eq!(percentile(&sorted, 0.0), Some(ms(1)));
        assert_eq!(percentile(&sorted, 1.0), Some(ms(10)));
    }

    #[test]
    fn percentile_of_one_value() {
        assert_eq!(percentile(&[ms(7)], 0.99), Some(ms(7)));
    }

    #[test]
    fn percentile_of_nothing() {
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn median_index_of_values() {
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), 2);
        assert_eq!(median_index(&[5.0]), 0);
        assert_eq!(median_index(&[4.0, 1.0, 3.0, 2.0]), 3);
        assert_eq!(median_index(&[]), 0);
    }

    #[test]
    fn mean_of_values() {
        assert_eq!(mean(&[ms(1), ms(2), ms(6)]), Some(ms(3)));
        assert_eq!(mean(&[]), None);
    }
}
