//! Request counters, latency histograms and the optional one-line-per-request log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Upper bounds, in seconds, of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// A Prometheus-style cumulative histogram over [`LATENCY_BUCKETS`].
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket, the total count and the sum in seconds.
    pub fn read(&self) -> (Vec<u64>, u64, f64) {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|bucket| {
                running += bucket.load(Ordering::Relaxed);
                running
            })
            .collect();
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, count, sum)
    }
}

/// Process-wide counters, read by `/health`, `/models` and `/metrics`.
pub struct Metrics {
    pub started: Instant,
    /// Requests received on balanced endpoints.
    pub requests: AtomicU64,
    pub completed: AtomicU64,
    pub client_gone: AtomicU64,
    pub upstream_errors: AtomicU64,
    /// Requests rejected by lmlb with an error, by reason.
    pub rejected_invalid: AtomicU64,
    pub rejected_unknown_model: AtomicU64,
    pub rejected_queue_full: AtomicU64,
    pub rejected_queue_timeout: AtomicU64,
    pub rejected_other: AtomicU64,
    /// Requests sent to another instance after a failed connection.
    pub retries: AtomicU64,
    pub queue_wait: Histogram,
    pub duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            requests: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            client_gone: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            rejected_invalid: AtomicU64::new(0),
            rejected_unknown_model: AtomicU64::new(0),
            rejected_queue_full: AtomicU64::new(0),
            rejected_queue_timeout: AtomicU64::new(0),
            rejected_other: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            queue_wait: Histogram::default(),
            duration: Histogram::default(),
        }
    }
}

impl Metrics {
    pub fn count_rejection(&self, code: &str) {
        let counter = match code {
            "invalid_request" | "payload_too_large" | "header_too_large" | "invalid_api_key" => {
                &self.rejected_invalid
            }
            "model_not_found" => &self.rejected_unknown_model,
            "queue_full" => &self.rejected_queue_full,
            "queue_timeout" => &self.rejected_queue_timeout,
            _ => &self.rejected_other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The way a forwarded request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Complete,
    /// The client left before the body ended.
    ClientGone,
    /// The upstream closed or reset the connection mid-body.
    UpstreamBroke,
    UpstreamTimeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::ClientGone => "client_gone",
            Outcome::UpstreamBroke => "upstream_broke",
            Outcome::UpstreamTimeout => "upstream_timeout",
        }
    }
}

/// One forwarded request, finished when its response body ends.
pub struct RequestRecord {
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    pub queue_wait: Duration,
    /// The request log's fields, built only when the request log is on.
    pub log: Option<Box<RequestLine>>,
}

/// The fields of one request's line in the request log.
pub struct RequestLine {
    pub id: u64,
    pub method: String,
    pub path: String,
    pub model: String,
    pub instance: String,
    pub upstream: String,
    pub status: u16,
}

impl RequestRecord {
    pub fn finish(self, outcome: Outcome) {
        let elapsed = self.started.elapsed();
        self.metrics.duration.observe(elapsed);
        let counter = match outcome {
            Outcome::Complete => &self.metrics.completed,
            Outcome::ClientGone => &self.metrics.client_gone,
            Outcome::UpstreamBroke | Outcome::UpstreamTimeout => &self.metrics.upstream_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);

        if let Some(line) = self.log {
            tracing::info!(
                request_id = line.id,
                method = %line.method,
                path = %line.path,
                model = %line.model,
                instance = %line.instance,
                upstream = %line.upstream,
                status = line.status,
                queue_wait_ms = self.queue_wait.as_millis() as u64,
                duration_ms = elapsed.as_millis() as u64,
                outcome = outcome.as_str(),
                "request"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_millis(40));
        histogram.observe(Duration::from_secs(500));
        let (buckets, count, sum) = histogram.read();
        assert_eq!(buckets[0], 0);
        assert_eq!(buckets[1], 1);
        assert_eq!(buckets[4], 2);
        assert_eq!(*buckets.last().unwrap(), 2, "500 s is above every bucket");
        assert_eq!(count, 3);
        assert!((sum - 500.043).abs() < 1e-6);
    }
}
