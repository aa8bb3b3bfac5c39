//! A small seeded pseudo-random number generator, so that a trace is the same on
//! every machine and every run.

use std::f64::consts::TAU;

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", 2014): 64 bits of state, statistically good enough to draw
/// benchmark traces, and fixed for all time unlike a library's default generator.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Draws a uniform value in (0, 1]. Zero is excluded so that `ln` stays finite.
    pub fn next_unit(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        ((self.next_u64() >> 11) + 1) as f64 * SCALE
    }

    /// Draws from the exponential distribution with the given rate (mean `1 / rate`).
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -self.next_unit().ln() / rate
    }

    /// Draws from the standard normal distribution (Box-Muller transform).
    pub fn standard_normal(&mut self) -> f64 {
        let radius = (-2.0 * self.next_unit().ln()).sqrt();
        radius * (TAU * self.next_unit()).cos()
    }

    /// Draws from the log-normal distribution whose logarithm has mean `mu` and
    /// standard deviation `sigma`.
    pub fn log_normal(&mut self, mu: f64, sigma: f64) -> f64 {
        (mu + sigma * self.standard_normal()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(values: &[f64]) -> f64 {
        values.iter().sum::<f64>() / values.len() as f64
    }

    #[test]
    fn splitmix_matches_reference_output() {
        // First outputs of the reference C implementation for seed 0.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn unit_values_stay_in_open_closed_interval() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..100_000 {
            let x = rng.next_unit();
            assert!(x > 0.0, "{x} is not above 0");
            assert!(x <= 1.0, "{x} is above 1");
        }
    }

    #[test]
    fn exponential_mean_is_inverse_rate() {
        let mut rng = SplitMix64::new(1);
        let draws: Vec<f64> = (0..200_000).map(|_| rng.exponential(4.0)).collect();
        let m = mean(&draws);
        assert!((m - 0.25).abs() < 0.005, "mean {m}, expected 0.25");
    }

    #[test]
    fn normal_has_zero_mean_unit_variance() {
        let mut rng = SplitMix64::new(2);
        let draws: Vec<f64> = (0..200_000).map(|_| rng.standard_normal()).collect();
        let m = mean(&draws);
        let variance = draws.iter().map(|x| (x - m).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(m.abs() < 0.01, "mean {m}, expected 0");
        assert!(
            (variance - 1.0).abs() < 0.02,
            "variance {variance}, expected 1"
        );
    }

    #[test]
    fn log_normal_median_is_exp_mu() {
        let mut rng = SplitMix64::new(3);
        let mut draws: Vec<f64> = (0..100_001).map(|_| rng.log_normal(3.0, 1.0)).collect();
        draws.sort_by(f64::total_cmp);
        let median = draws[draws.len() / 2];
        let expected = 3.0f64.exp();
        assert!(
            (median / expected - 1.0).abs() < 0.02,
            "median {median}, expected {expected}"
        );
    }
}
