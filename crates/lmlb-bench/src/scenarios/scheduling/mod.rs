//! Scheduling: how close each balancer comes to one FIFO queue feeding every
//! slot, on the same trace of requests of widely varying length.
//!
//! Three instances of one slot each, log-normal `max_tokens`, and Poisson
//! arrivals at 50, 70 and 90 % of capacity. The ideal is the exact discrete-event
//! simulation of the trace ([`crate::des`]). Every real target replays the
//! trace as streaming requests, each sent at its arrival time.

mod calibrate;
mod deploy;
mod measure;
mod output;

use std::time::Duration;

use crate::error::BenchError;
use crate::report::Record;
use crate::trace::{self, LengthDistribution, ServiceModel, Trace, TraceSpec};

use super::Context;
use deploy::Kind;

const SCENARIO: &str = "scheduling";
/// One FIFO queue feeding every slot, with the service model's times.
const IDEAL: &str = "ideal";
/// The same, with every service time longer by the simulator's measured cost
/// per request: what a perfect balancer would achieve on this simulator.
const CALIBRATED_IDEAL: &str = "ideal-calibrated";
const INSTANCES: usize = 3;
const LOADS: [f64; 3] = [0.5, 0.7, 0.9];

/// `max_tokens`: median 40, log-normal with sigma 1.0 (p99 about 10x the
/// median), at most 1000.
const LENGTHS: LengthDistribution = LengthDistribution {
    median_tokens: 40.0,
    sigma: 1.0,
    max_tokens: 1000,
};

/// The simulator's timing. The full run's mean service time is about 140 ms,
/// so 800 requests per load take about a minute. `--quick` generates four
/// times faster and sends fewer requests, as a smoke test.
fn service_model(quick: bool) -> ServiceModel {
    if quick {
        ServiceModel {
            ttft: Duration::from_millis(5),
            tokens_per_second: 2000.0,
        }
    } else {
        ServiceModel {
            ttft: Duration::from_millis(10),
            tokens_per_second: 500.0,
        }
    }
}

fn requests_per_load(quick: bool) -> usize {
    if quick { 40 } else { 800 }
}

pub async fn run(context: &Context) -> Result<Vec<Record>, BenchError> {
    let traces = generate_traces(context);
    let service = service_model(context.quick);
    let overhead = calibrate::per_request_overhead(context, service).await?;

    let mut records = Vec::new();
    for (load, trace) in &traces {
        records.push(Record::Measured(measure::ideal(
            IDEAL,
            *load,
            trace,
            Duration::ZERO,
        )));
    }
    for (load, trace) in &traces {
        let ideal = measure::ideal(CALIBRATED_IDEAL, *load, trace, overhead);
        records.push(Record::Measured(ideal));
    }
    for kind in Kind::ALL {
        records.extend(run_target(context, kind, &traces, overhead).await?);
    }

    output::add_ratios(&mut records);
    output::print_table(&records, &traces, overhead);
    output::draw_chart(context, &records)?;
    Ok(records)
}

fn generate_traces(context: &Context) -> Vec<(f64, Trace)> {
    LOADS
        .iter()
        .map(|&load| {
            let spec = TraceSpec {
                seed: context.seed,
                requests: requests_per_load(context.quick),
                load,
                servers: INSTANCES,
                lengths: LENGTHS,
                service: service_model(context.quick),
            };
            (load, trace::generate(&spec))
        })
        .collect()
}

/// Starts one target and replays every trace through it, or returns skipped
/// records when a peer cannot start.
async fn run_target(
    context: &Context,
    kind: Kind,
    traces: &[(f64, Trace)],
    overhead: Duration,
) -> Result<Vec<Record>, BenchError> {
    let service = service_model(context.quick);
    let deployment = match deploy::start(context, kind, service).await? {
        Ok(deployment) => deployment,
        Err(reason) => {
            return Ok(vec![Record::skipped(SCENARIO, kind.name(), reason)]);
        }
    };

    measure::warm_up(&deployment.target).await;
    let mut records = Vec::new();
    for (load, trace) in traces {
        let measurement = measure::replay(&deployment, *load, trace, service, overhead).await;
        records.push(Record::Measured(measurement));
    }
    Ok(records)
}
