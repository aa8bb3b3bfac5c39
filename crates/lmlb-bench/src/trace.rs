//! Seeded request traces for the scheduling scenario: Poisson arrivals and
//! heavy-tailed (log-normal) `max_tokens`, with service times from the
//! simulator's timing model.

use std::time::Duration;

use crate::rng::SplitMix64;

/// The simulator's timing model (`lmstudio-sim --ttft-ms --tokens-per-second`):
/// the first token `ttft` after the request gets a slot, then one token every
/// `1 / tokens_per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceModel {
    pub ttft: Duration,
    pub tokens_per_second: f64,
}

impl ServiceModel {
    /// Returns how long one slot is busy generating `max_tokens` tokens:
    /// `ttft + (max_tokens - 1) / tokens_per_second`, since the first token
    /// comes at `ttft` and each later one an interval after the previous.
    pub fn service_time(&self, max_tokens: u32) -> Duration {
        let intervals = f64::from(max_tokens.saturating_sub(1));
        self.ttft + Duration::from_secs_f64(intervals / self.tokens_per_second)
    }
}

/// Log-normal `max_tokens`, rounded and clamped to `1..=max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LengthDistribution {
    pub median_tokens: f64,
    /// Standard deviation of the logarithm. A value of 1.0 or more gives a
    /// heavy tail.
    pub sigma: f64,
    pub max_tokens: u32,
}

impl LengthDistribution {
    fn draw(&self, rng: &mut SplitMix64) -> u32 {
        let tokens = rng.log_normal(self.median_tokens.ln(), self.sigma).round();
        tokens.clamp(1.0, f64::from(self.max_tokens)) as u32
    }
}

/// Parameters of a trace. The same `seed` gives the same `max_tokens` sequence
/// at every `load`, and arrival times that differ only by a time scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceSpec {
    pub seed: u64,
    pub requests: usize,
    /// Offered load as a fraction of capacity (0.9 = 90 %).
    pub load: f64,
    /// Slots that serve the trace (3 instances of 1 slot = 3).
    pub servers: usize,
    pub lengths: LengthDistribution,
    pub service: ServiceModel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRequest {
    /// Send time, from the start of the run.
    pub arrival: Duration,
    pub max_tokens: u32,
    /// Slot time under the service model.
    pub service: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Sorted by arrival.
    pub requests: Vec<TraceRequest>,
    /// Poisson arrival rate in requests per second.
    pub arrival_rate: f64,
    /// Requests per second that the servers complete when always busy, from the
    /// mean service time of this trace.
    pub capacity: f64,
}

/// Generates a trace whose arrival rate is `load * capacity`, where capacity is
/// `servers / mean service time` over this trace's own requests.
pub fn generate(spec: &TraceSpec) -> Trace {
    // Two streams, so that the lengths do not depend on how arrivals are drawn.
    let mut length_rng = SplitMix64::new(spec.seed);
    let mut arrival_rng = SplitMix64::new(spec.seed ^ 0xA5A5_A5A5_A5A5_A5A5);

    let lengths: Vec<u32> = (0..spec.requests)
        .map(|_| spec.lengths.draw(&mut length_rng))
        .collect();
    let services: Vec<Duration> = lengths
        .iter()
        .map(|&tokens| spec.service.service_time(tokens))
        .collect();
    let capacity = capacity(&services, spec.servers);
    let arrival_rate = spec.load * capacity;

    let mut clock = 0.0;
    let requests = lengths
        .iter()
        .zip(&services)
        .map(|(&max_tokens, &service)| {
            clock += arrival_rng.exponential(arrival_rate);
            TraceRequest {
                arrival: Duration::from_secs_f64(clock),
                max_tokens,
                service,
            }
        })
        .collect();

    Trace {
        requests,
        arrival_rate,
        capacity,
    }
}

/// Returns `servers / mean service time` in requests per second.
pub fn capacity(services: &[Duration], servers: usize) -> f64 {
    if services.is_empty() {
        return 0.0;
    }
    let mean = services.iter().map(Duration::as_secs_f64).sum::<f64>() / services.len() as f64;
    servers as f64 / mean
}

/// Returns the load that a trace offered: total service time over the slot time
/// available between time zero and the last arrival.
pub fn offered_load(trace: &Trace, servers: usize) -> f64 {
    let Some(last) = trace.requests.last() else {
        return 0.0;
    };
    let work: f64 = trace.requests.iter().map(|r| r.service.as_secs_f64()).sum();
    work / (servers as f64 * last.arrival.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(load: f64, requests: usize) -> TraceSpec {
        TraceSpec {
            seed: 11,
            requests,
            load,
            servers: 3,
            lengths: LengthDistribution {
                median_tokens: 32.0,
                sigma: 1.0,
                max_tokens: 1024,
            },
            service: ServiceModel {
                ttft: Duration::from_millis(10),
                tokens_per_second: 500.0,
            },
        }
    }

    #[test]
    fn service_time_adds_ttft_and_intervals() {
        let model = ServiceModel {
            ttft: Duration::from_millis(50),
            tokens_per_second: 20.0,
        };
        assert_eq!(model.service_time(10), Duration::from_millis(500));
        assert_eq!(model.service_time(1), Duration::from_millis(50));
        assert_eq!(model.service_time(0), Duration::from_millis(50));
    }

    #[test]
    fn same_seed_same_trace() {
        assert_eq!(generate(&spec(0.7, 500)), generate(&spec(0.7, 500)));
    }

    #[test]
    fn other_seed_other_trace() {
        let mut other = spec(0.7, 500);
        other.seed = 12;
        assert_ne!(generate(&spec(0.7, 500)), generate(&other));
    }

    #[test]
    fn loads_share_lengths_and_scale_arrivals() {
        let half = generate(&spec(0.5, 200));
        let ninety = generate(&spec(0.9, 200));
        for (a, b) in half.requests.iter().zip(&ninety.requests) {
            assert_eq!(a.max_tokens, b.max_tokens);
            let ratio = a.arrival.as_secs_f64() / b.arrival.as_secs_f64();
            assert!(
                (ratio - 1.8).abs() < 1e-6,
                "arrival ratio {ratio}, expected 1.8"
            );
        }
    }

    #[test]
    fn arrivals_are_sorted() {
        let trace = generate(&spec(0.9, 1000));
        assert!(
            trace
                .requests
                .windows(2)
                .all(|w| w[0].arrival <= w[1].arrival)
        );
    }

    #[test]
    fn lengths_stay_within_bounds() {
        let trace = generate(&spec(0.9, 10_000));
        assert!(trace.requests.iter().all(|r| r.max_tokens >= 1));
        assert!(trace.requests.iter().all(|r| r.max_tokens <= 1024));
    }

    #[test]
    fn offered_load_matches_target() {
        for load in [0.5, 0.7, 0.9] {
            let trace = generate(&spec(load, 20_000));
            let offered = offered_load(&trace, 3);
            assert!(
                (offered / load - 1.0).abs() < 0.03,
                "offered load {offered}, expected {load}"
            );
        }
    }

    #[test]
    fn capacity_uses_mean_service_time() {
        let services = [Duration::from_millis(100), Duration::from_millis(300)];
        assert!((capacity(&services, 3) - 15.0).abs() < 1e-9);
        assert_eq!(capacity(&[], 3), 0.0);
    }
}
