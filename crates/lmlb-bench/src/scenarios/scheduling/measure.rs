//! Latency and wasted idle time of the ideal and of each replayed target.
//!
//! A real target's instance is taken as busy from `finish - (service +
//! overhead)` to `finish`, where `finish` is the arrival of `data: [DONE]`,
//! `service` the request's modelled service time and `overhead` the
//! simulator's measured cost per request ([`super::calibrate`]). The simulator
//! paces tokens on a fixed schedule from the first one, so the end of a stream
//! pins its start better than the first token does, which a proxy may hold
//! back. Gaps that a proxy leaves between one request's end and the next
//! one's start show up as idle time while a request waited
//! ([`crate::timeline::idle_while_waiting`]).

use std::time::Duration;

use crate::des::simulate_fifo;
use crate::histogram::{mean, millis, percentile};
use crate::loadgen::http::chat_body;
use crate::loadgen::replay::{self, ReplayReport, TimedRequest};
use crate::progress::Progress;
use crate::report::Measurement;
use crate::targets::{MODEL, Simulator, Target};
use crate::timeline::{Span, idle_while_waiting};
use crate::trace::{ServiceModel, Trace};

use super::super::Monitors;
use super::deploy::Deployment;
use super::{INSTANCES, SCENARIO};

/// Warm-up requests per slot.
const WARM_UP_ROUNDS: usize = 2;

/// Computes an ideal: one FIFO queue feeding every slot, simulated exactly,
/// with every service time longer by `overhead`.
pub fn ideal(name: &str, load: f64, trace: &Trace, overhead: Duration) -> Measurement {
    let requests: Vec<(Duration, Duration)> = trace
        .requests
        .iter()
        .map(|r| (r.arrival, r.service + overhead))
        .collect();
    let spans: Vec<Span> = simulate_fifo(&requests, INSTANCES)
        .iter()
        .map(|placement| placement.span)
        .collect();
    let mut measurement = summarize(name, load, &spans, 0);
    measurement.set("per_request_overhead_ms", millis(overhead));
    measurement
}

/// Replays `trace` through the deployment's target and measures it.
pub async fn replay(
    deployment: &Deployment,
    load: f64,
    trace: &Trace,
    service: ServiceModel,
    overhead: Duration,
) -> Measurement {
    let target = &deployment.target;
    let requests: Vec<TimedRequest> = trace
        .requests
        .iter()
        .map(|r| TimedRequest {
            arrival: r.arrival,
            body: chat_body(MODEL, r.max_tokens, true),
        })
        .collect();

    let served_before = served(deployment).await;
    let label = format!("{SCENARIO} {} {:.0}%", target.name, load * 100.0);
    let progress = Progress::start(&label, requests.len() as u64);
    let simulators: Vec<&Simulator> = deployment.simulators.iter().collect();
    let monitors = Monitors::start(target, &simulators);
    let report = replay::run(target.addr, &requests, &progress).await;
    drop(progress);
    let served_after = served(deployment).await;

    let (spans, errors) = to_spans(&report, trace, overhead, &target.name);
    let mut measurement = summarize(&target.name, load, &spans, errors);
    monitors.finish(&mut measurement);
    measurement.set(
        "generation_excess_ms",
        generation_excess_ms(&report, trace, service),
    );
    if let (Some(before), Some(after)) = (served_before, served_after) {
        let per_instance: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        measurement.set("served_per_instance", per_instance);
    }
    measurement
}

/// Sends a few short streams through every slot before measuring: a proxy's
/// first requests can pay for lazy start-up work (LiteLLM imports modules on
/// its first request). Failures here show up again in the measured run.
pub async fn warm_up(target: &Target) {
    let requests: Vec<TimedRequest> = (0..INSTANCES * WARM_UP_ROUNDS)
        .map(|_| TimedRequest {
            arrival: Duration::ZERO,
            body: chat_body(MODEL, 2, true),
        })
        .collect();
    let progress = Progress::start("warm-up", requests.len() as u64);
    replay::run(target.addr, &requests, &progress).await;
}

/// Converts outcomes to spans and counts the failed requests, which the
/// statistics leave out.
fn to_spans(
    report: &ReplayReport,
    trace: &Trace,
    overhead: Duration,
    target: &str,
) -> (Vec<Span>, u64) {
    let mut spans = Vec::with_capacity(report.outcomes.len());
    let mut errors = 0;
    for (outcome, request) in report.outcomes.iter().zip(&trace.requests) {
        let timing = match outcome {
            Ok(timing) => timing,
            Err(error) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("{SCENARIO} {target}: error: {error}");
                }
                continue;
            }
        };
        let since_start =
            |instant: std::time::Instant| instant.saturating_duration_since(report.started);
        let arrival = since_start(timing.sent);
        let finish = since_start(timing.finished);
        let start = finish.saturating_sub(request.service + overhead);
        spans.push(Span {
            arrival,
            start: start.clamp(arrival, finish),
            finish,
        });
    }
    (spans, errors)
}

/// Returns the mean of (first token to `[DONE]`) minus the model's time for
/// the tokens after the first. It is negative when the first token reaches the
/// client late compared with the later ones, as when a proxy holds it back.
fn generation_excess_ms(report: &ReplayReport, trace: &Trace, service: ServiceModel) -> f64 {
    let excess: Vec<f64> = report
        .outcomes
        .iter()
        .zip(&trace.requests)
        .filter_map(|(outcome, request)| {
            let timing = outcome.as_ref().ok()?;
            let measured = timing.finished - timing.first_token?;
            let modelled = request.service.saturating_sub(service.ttft);
            Some(millis(measured) - millis(modelled))
        })
        .collect();
    if excess.is_empty() {
        return 0.0;
    }
    excess.iter().sum::<f64>() / excess.len() as f64
}

/// Reads every simulator's served counts, in simulator then instance order.
async fn served(deployment: &Deployment) -> Option<Vec<u64>> {
    let mut counts = Vec::new();
    for simulator in &deployment.simulators {
        match simulator.served().await {
            Ok(instances) => counts.extend(instances.into_iter().map(|(_, served)| served)),
            Err(error) => {
                eprintln!("{SCENARIO}: failed to read the simulator's stats: {error}");
                return None;
            }
        }
    }
    Some(counts)
}

/// Builds the measurement from spans: exact (not histogram) percentiles, as
/// the ideal's are exact too.
pub fn summarize(target: &str, load: f64, spans: &[Span], errors: u64) -> Measurement {
    let mut latencies: Vec<Duration> = spans.iter().map(Span::latency).collect();
    latencies.sort();
    let waits: Vec<Duration> = spans.iter().map(Span::wait).collect();
    let first = spans.iter().map(|s| s.arrival).min().unwrap_or_default();
    let last = spans.iter().map(|s| s.finish).max().unwrap_or_default();
    let span_seconds = (last - first).as_secs_f64().max(1e-9);
    let ms = |value: Option<Duration>| value.map_or(0.0, millis);

    let mut measurement = Measurement {
        scenario: SCENARIO,
        target: target.to_owned(),
        load_percent: Some((load * 100.0).round()),
        requests: spans.len() as u64,
        requests_per_sec: spans.len() as f64 / span_seconds,
        mean_ms: ms(mean(&latencies)),
        p50_ms: ms(percentile(&latencies, 0.5)),
        p99_ms: ms(percentile(&latencies, 0.99)),
        errors,
        rss_mb: None,
        cpu_percent: None,
        extra: Default::default(),
    };
    measurement.set("mean_wait_ms", ms(mean(&waits)));
    let idle = idle_while_waiting(spans, INSTANCES);
    measurement.set("idle_while_waiting_s", idle.as_secs_f64());
    measurement
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{TraceSpec, generate};

    fn trace(load: f64) -> Trace {
        generate(&TraceSpec {
            seed: 1,
            requests: 3000,
            load,
            servers: INSTANCES,
            lengths: super::super::LENGTHS,
            service: super::super::service_model(false),
        })
    }

    #[test]
    fn ideal_never_idles_while_requests_wait() {
        let m = ideal("ideal", 0.9, &trace(0.9), Duration::ZERO);
        assert_eq!(m.number("idle_while_waiting_s"), Some(0.0));
        assert_eq!(m.requests, 3000);
    }

    #[test]
    fn ideal_latency_grows_with_load() {
        let low = ideal("ideal", 0.5, &trace(0.5), Duration::ZERO);
        let high = ideal("ideal", 0.9, &trace(0.9), Duration::ZERO);
        assert!(
            high.mean_ms > low.mean_ms,
            "{} vs {}",
            high.mean_ms,
            low.mean_ms
        );
        assert!(
            high.p99_ms > low.p99_ms,
            "{} vs {}",
            high.p99_ms,
            low.p99_ms
        );
    }

    #[test]
    fn ideal_at_low_load_is_near_service_time() {
        // At 10 % load almost no request waits, so the mean latency is close
        // to the mean service time.
        let trace = trace(0.1);
        let service: f64 = trace
            .requests
            .iter()
            .map(|r| millis(r.service))
            .sum::<f64>()
            / 3000.0;
        let m = ideal("ideal", 0.1, &trace, Duration::ZERO);
        assert!(
            m.mean_ms / service < 1.02,
            "mean {} ms, service {service} ms",
            m.mean_ms
        );
    }

    #[test]
    fn calibrated_ideal_is_slower() {
        let trace = trace(0.9);
        let exact = ideal("ideal", 0.9, &trace, Duration::ZERO);
        let calibrated = ideal("ideal-calibrated", 0.9, &trace, Duration::from_millis(2));
        assert!(calibrated.mean_ms > exact.mean_ms + 2.0);
        assert_eq!(calibrated.number("per_request_overhead_ms"), Some(2.0));
        assert_eq!(calibrated.number("idle_while_waiting_s"), Some(0.0));
    }

    #[test]
    fn summarize_counts_waits_and_errors() {
        let s = Duration::from_secs;
        let spans = [
            Span {
                arrival: s(0),
                start: s(0),
                finish: s(2),
            },
            Span {
                arrival: s(0),
                start: s(1),
                finish: s(4),
            },
        ];
        let m = summarize("x", 0.5, &spans, 3);
        assert_eq!(m.requests, 2);
        assert_eq!(m.errors, 3);
        assert_eq!(m.mean_ms, 3000.0);
        assert_eq!(m.p99_ms, 4000.0);
        assert_eq!(m.number("mean_wait_ms"), Some(500.0));
        // Two idle instances while the second request waited 1 s: 1 s wasted.
        assert_eq!(m.number("idle_while_waiting_s"), Some(1.0));
        assert_eq!(m.load_percent, Some(50.0));
    }
}
