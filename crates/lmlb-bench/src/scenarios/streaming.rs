//! Streaming: what lmlb adds to each token of many concurrent streams.
//!
//! 500 streams at 20 tokens per second, started evenly over one second, first
//! straight to the simulator and then through lmlb. The added delay is the
//! difference between the two runs' percentiles: tokens of separate runs
//! cannot be paired one by one.

use std::time::Duration;

use crate::error::BenchError;
use crate::histogram::{median_index, millis};
use crate::loadgen::http::chat_body;
use crate::loadgen::stream::{self, StreamLoad, StreamReport};
use crate::progress::Progress;
use crate::report::{Measurement, Record, Table, cell};
use crate::targets::{MODEL, Simulator, SimulatorConfig, Target, start_lmlb, start_simulator};

use super::{Context, Monitors};

const SCENARIO: &str = "streaming";
const STREAMS: usize = 500;
const TOKENS_PER_SECOND: f64 = 20.0;
const TTFT: Duration = Duration::from_millis(50);
const RAMP: Duration = Duration::from_secs(1);
/// Slots in the simulator: more than the streams, so that none waits.
const SLOTS: usize = 512;

fn tokens_per_stream(quick: bool) -> u32 {
    // At 20 tokens per second, 100 tokens take 5 s and 30 take 1.5 s.
    if quick { 30 } else { 100 }
}

pub async fn run(context: &Context) -> Result<Vec<Record>, BenchError> {
    let workspace = &context.workspace;
    let simulator_config = SimulatorConfig {
        models: vec![format!("{MODEL},instances=1,parallel={SLOTS}")],
        tokens_per_second: TOKENS_PER_SECOND,
        ttft: TTFT,
        stamp_tokens: true,
    };
    let simulator = start_simulator(workspace, "sim-streaming", &simulator_config).await?;

    let mut pairs = Vec::new();
    for _ in 0..round_count(context.quick) {
        let direct = measure(context, Target::direct(&simulator), &simulator).await;
        let target = start_lmlb(workspace, &[&simulator]).await?;
        let mut lmlb = measure(context, target, &simulator).await;
        add_differences(&direct, &mut lmlb);
        pairs.push((direct, lmlb));
    }

    let (direct, lmlb) = median_pair(pairs);
    let records = vec![Record::Measured(direct), Record::Measured(lmlb)];
    print_table(&records);
    Ok(records)
}

/// Rounds of direct and lmlb, taken in turn so that a burst of other work on
/// the machine slows one round rather than one target.
fn round_count(quick: bool) -> usize {
    if quick { 1 } else { 5 }
}

/// Returns the round whose added inter-token delay at p99 is the median, and
/// stores every round's added delays at p99 in `rounds_added_itl_p99_ms` and
/// `rounds_added_transit_p99_ms`.
fn median_pair(mut pairs: Vec<(Measurement, Measurement)>) -> (Measurement, Measurement) {
    let rounds = |key: &str| -> Vec<f64> {
        pairs
            .iter()
            .map(|(_, lmlb)| lmlb.number(key).unwrap_or(f64::NAN))
            .collect()
    };
    let added_itl = rounds("added_itl_p99_ms");
    let added_transit = rounds("added_transit_p99_ms");
    let (direct, mut lmlb) = pairs.swap_remove(median_index(&added_itl));
    lmlb.set("rounds_added_itl_p99_ms", added_itl);
    lmlb.set("rounds_added_transit_p99_ms", added_transit);
    (direct, lmlb)
}

async fn measure(context: &Context, target: Target, simulator: &Simulator) -> Measurement {
    let load = StreamLoad {
        addr: target.addr,
        streams: STREAMS,
        ramp: RAMP,
        body: chat_body(MODEL, tokens_per_stream(context.quick), true),
    };

    let progress = Progress::start(&format!("{SCENARIO} {}", target.name), STREAMS as u64);
    let monitors = Monitors::start(&target, &[simulator]);
    let report = stream::run(&load, &progress).await;
    let mut measurement = to_measurement(&target.name, &report);
    monitors.finish(&mut measurement);
    drop(progress);

    for sample in &report.error_samples {
        eprintln!("{SCENARIO} {}: error: {sample}", target.name);
    }
    measurement
}

fn to_measurement(target: &str, report: &StreamReport) -> Measurement {
    let mut m = Measurement {
        scenario: SCENARIO,
        target: target.to_owned(),
        load_percent: None,
        requests: report.completed,
        requests_per_sec: report.completed as f64 / report.elapsed.as_secs_f64(),
        mean_ms: millis(report.total.mean()),
        p50_ms: millis(report.total.quantile(0.5)),
        p99_ms: millis(report.total.quantile(0.99)),
        errors: report.errors,
        rss_mb: None,
        cpu_percent: None,
        extra: Default::default(),
    };
    m.set("streams", STREAMS as u64);
    m.set("tokens", report.tokens);
    m.set(
        "ttft_p50_ms",
        millis(report.time_to_first_token.quantile(0.5)),
    );
    m.set(
        "ttft_p99_ms",
        millis(report.time_to_first_token.quantile(0.99)),
    );
    m.set("itl_p50_ms", millis(report.inter_token.quantile(0.5)));
    m.set("itl_p99_ms", millis(report.inter_token.quantile(0.99)));
    m.set("itl_max_ms", millis(report.inter_token.max()));
    m.set("transit_p50_ms", millis(report.transit.quantile(0.5)));
    m.set("transit_p99_ms", millis(report.transit.quantile(0.99)));
    m
}

/// Adds `added_*` fields to `proxied`: its percentile minus the direct one.
fn add_differences(direct: &Measurement, proxied: &mut Measurement) {
    let keys = [
        "ttft_p50_ms",
        "ttft_p99_ms",
        "itl_p50_ms",
        "itl_p99_ms",
        "transit_p50_ms",
        "transit_p99_ms",
    ];
    for key in keys {
        if let (Some(base), Some(value)) = (direct.number(key), proxied.number(key)) {
            proxied.set(&format!("added_{key}"), value - base);
        }
    }
}

fn print_table(records: &[Record]) {
    let mut table = Table::new(&[
        "target",
        "streams ok",
        "errors",
        "TTFT p50",
        "TTFT p99",
        "ITL p50",
        "ITL p99",
        "+ITL p50",
        "+ITL p99",
        "token p50",
        "token p99",
        "+token p99",
        "RSS MB",
        "CPU %",
    ]);
    for m in records.iter().filter_map(Record::measured) {
        table.row(vec![
            m.target.clone(),
            m.requests.to_string(),
            m.errors.to_string(),
            cell(m.number("ttft_p50_ms"), 2),
            cell(m.number("ttft_p99_ms"), 2),
            cell(m.number("itl_p50_ms"), 2),
            cell(m.number("itl_p99_ms"), 2),
            cell(m.number("added_itl_p50_ms"), 3),
            cell(m.number("added_itl_p99_ms"), 3),
            cell(m.number("transit_p50_ms"), 3),
            cell(m.number("transit_p99_ms"), 3),
            cell(m.number("added_transit_p99_ms"), 3),
            cell(m.rss_mb, 1),
            cell(m.cpu_percent, 0),
        ]);
    }
    println!(
        "\nStreaming: {STREAMS} streams at {TOKENS_PER_SECOND} tokens/s (times in ms; + = added over direct;\ntoken = from the simulator writing a token to its arrival)\n"
    );
    print!("{}", table.render());
}
