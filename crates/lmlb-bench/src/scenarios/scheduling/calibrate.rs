//! The simulator's own cost per request, measured so that the comparison can
//! tell it apart from the balancer's.
//!
//! The simulator's timers fire on tokio's millisecond clock, and each request
//! needs a connection and parsing, so a request sent straight to an idle
//! instance finishes a little later than the service model predicts. Requests
//! sent one at a time straight to a simulator give the median of (latency -
//! modelled service time), which a perfect balancer could not avoid either.

use std::time::Duration;

use crate::error::BenchError;
use crate::histogram::percentile;
use crate::loadgen::http::chat_body;
use crate::loadgen::stream::stream_once;
use crate::targets::MODEL;
use crate::trace::ServiceModel;

use super::super::Context;
use super::deploy::start_sim;

const REQUESTS: usize = 30;
/// `max_tokens` of the calibration requests, in turn, spanning the trace's
/// usual lengths.
const LENGTHS: [u32; 5] = [1, 8, 40, 120, 300];

/// Returns the median time by which a request to an idle simulator instance
/// exceeds the service model.
pub async fn per_request_overhead(
    context: &Context,
    service: ServiceModel,
) -> Result<Duration, BenchError> {
    let simulator = start_sim(context, "sim-calibration", 1, service).await?;

    let mut excess = Vec::with_capacity(REQUESTS);
    for index in 0..REQUESTS {
        let tokens = LENGTHS[index % LENGTHS.len()];
        let timing = stream_once(simulator.addr, chat_body(MODEL, tokens, true))
            .await
            .map_err(|source| BenchError::Request {
                context: "calibration request to the simulator failed".to_owned(),
                source,
            })?;
        let latency = timing.finished - timing.sent;
        excess.push(latency.saturating_sub(service.service_time(tokens)));
    }

    excess.sort();
    Ok(percentile(&excess, 0.5).unwrap_or_default())
}
