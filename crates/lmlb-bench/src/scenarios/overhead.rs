//! Overhead: what each proxy costs per request when the backend costs nothing.
//!
//! The simulator runs in instant mode with one instance of 64 slots, so that
//! no request waits for a slot anywhere. Each target gets the same closed loop
//! of 64 keep-alive connections sending small non-streaming chat requests.

use std::time::Duration;

use crate::charts::{self, Bars, Panel};
use crate::error::BenchError;
use crate::histogram::{median_index, millis};
use crate::loadgen::closed_loop::{self, ClosedLoad, ClosedReport};
use crate::loadgen::http::{CHAT_PATH, chat_body};
use crate::peers::litellm::{self, Deployment};
use crate::peers::nginx::{self, Balance};
use crate::progress::Progress;
use crate::report::{Measurement, Record, Table, cell};
use crate::targets::{MODEL, Simulator, SimulatorConfig, Target, start_lmlb, start_simulator};

use super::{Context, Monitors, start_peer};

const SCENARIO: &str = "overhead";
const CONNECTIONS: usize = 64;
const MAX_TOKENS: u32 = 16;
/// LiteLLM worker processes: one per core, like nginx's workers and lmlb's
/// runtime threads.
const LITELLM_WORKERS: usize = 2;

fn timing(quick: bool) -> (Duration, Duration) {
    if quick {
        (Duration::from_millis(500), Duration::from_secs(2))
    } else {
        (Duration::from_secs(2), Duration::from_secs(10))
    }
}

pub async fn run(context: &Context) -> Result<Vec<Record>, BenchError> {
    let workspace = &context.workspace;
    let simulator_config = SimulatorConfig {
        models: vec![format!("{MODEL},instances=1,parallel={CONNECTIONS}")],
        tokens_per_second: 0.0,
        ttft: Duration::ZERO,
        stamp_tokens: false,
    };
    let simulator = start_simulator(workspace, "sim-overhead", &simulator_config).await?;

    let mut direct = Vec::new();
    let mut lmlb = Vec::new();
    let mut nginx = Vec::new();
    for _ in 0..round_count(context.quick) {
        direct.push(measure(context, Target::direct(&simulator), &simulator).await);
        let target = start_lmlb(workspace, &[&simulator]).await?;
        lmlb.push(measure(context, target, &simulator).await);
        nginx.push(measure_nginx(context, &simulator).await);
    }
    let mut records: Vec<Record> = [direct, lmlb, nginx]
        .into_iter()
        .map(median_round)
        .collect();
    records.push(measure_litellm(context, &simulator).await);

    print_table(&records);
    draw_chart(context, &records)?;
    Ok(records)
}

/// Rounds of direct, lmlb and nginx, taken in turn so that a burst of other
/// work on the machine slows one round of each target rather than one target.
/// LiteLLM, far slower than the others, runs once.
fn round_count(quick: bool) -> usize {
    if quick { 1 } else { 3 }
}

async fn measure_nginx(context: &Context, simulator: &Simulator) -> Record {
    let name = Balance::RoundRobin.target_name();
    let upstreams = [simulator.addr];
    let start = nginx::start(&context.workspace, &upstreams, Balance::RoundRobin);
    match start_peer(SCENARIO, name, nginx::unavailable(), start).await {
        Ok(target) => measure(context, target, simulator).await,
        Err(reason) => Record::skipped(SCENARIO, name, reason),
    }
}

/// Returns the round with the median throughput, and stores every round's
/// throughput in `rounds_requests_per_sec`. A skipped round skips the target.
fn median_round(rounds: Vec<Record>) -> Record {
    let mut measured = Vec::new();
    for record in rounds {
        match record {
            Record::Measured(m) => measured.push(m),
            skipped @ Record::Skipped(_) => return skipped,
        }
    }
    let throughputs: Vec<f64> = measured.iter().map(|m| m.requests_per_sec).collect();
    let mut median = measured.swap_remove(median_index(&throughputs));
    median.set("rounds_requests_per_sec", throughputs);
    Record::Measured(median)
}

async fn measure_litellm(context: &Context, simulator: &Simulator) -> Record {
    let workspace = &context.workspace;
    let deployment = Deployment {
        instance: MODEL.to_owned(),
        simulator: simulator.addr,
    };
    let deployments = [deployment];
    let start = litellm::start(workspace, &deployments, LITELLM_WORKERS);
    match start_peer(SCENARIO, "litellm", litellm::unavailable(workspace), start).await {
        Ok(target) => measure(context, target, simulator).await,
        Err(reason) => Record::skipped(SCENARIO, "litellm", reason),
    }
}

/// Runs the closed loop against `target` and stops its processes afterwards.
async fn measure(context: &Context, target: Target, simulator: &Simulator) -> Record {
    let (warmup, duration) = timing(context.quick);
    let load = ClosedLoad {
        addr: target.addr,
        path: CHAT_PATH,
        body: chat_body(MODEL, MAX_TOKENS, false),
        connections: CONNECTIONS,
        warmup,
        duration,
    };

    let progress = Progress::start(&format!("{SCENARIO} {}", target.name), 100);
    let monitors = Monitors::start(&target, &[simulator]);
    let report = closed_loop::run(&load, &progress).await;
    let mut measurement = to_measurement(&target.name, &report);
    monitors.finish(&mut measurement);
    drop(progress);

    for sample in &report.error_samples {
        eprintln!("{SCENARIO} {}: error: {sample}", target.name);
    }
    Record::Measured(measurement)
}

fn to_measurement(target: &str, report: &ClosedReport) -> Measurement {
    Measurement {
        scenario: SCENARIO,
        target: target.to_owned(),
        load_percent: None,
        requests: report.completed,
        requests_per_sec: report.requests_per_sec(),
        mean_ms: millis(report.latency.mean()),
        p50_ms: millis(report.latency.quantile(0.5)),
        p99_ms: millis(report.latency.quantile(0.99)),
        errors: report.errors,
        rss_mb: None,
        cpu_percent: None,
        extra: Default::default(),
    }
}

fn print_table(records: &[Record]) {
    let mut table = Table::new(&[
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "RSS MB",
        "CPU %",
        "req/s per round",
    ]);
    for record in records {
        match record {
            Record::Measured(m) => table.row(vec![
                m.target.clone(),
                format!("{:.0}", m.requests_per_sec),
                format!("{:.3}", m.p50_ms),
                format!("{:.3}", m.p99_ms),
                m.errors.to_string(),
                cell(m.rss_mb, 1),
                cell(m.cpu_percent, 0),
                rounds_cell(m),
            ]),
            Record::Skipped(s) => table.note(s.target.clone(), format!("skipped: {}", s.skipped)),
        }
    }
    println!("\nOverhead: instant simulator, {CONNECTIONS} connections, closed loop\n");
    print!("{}", table.render());
}

fn rounds_cell(m: &Measurement) -> String {
    let Some(values) = m
        .extra
        .get("rounds_requests_per_sec")
        .and_then(|v| v.as_array())
    else {
        return "-".to_owned();
    };
    let values: Vec<String> = values
        .iter()
        .map(|v| format!("{:.0}", v.as_f64().unwrap_or_default()))
        .collect();
    values.join(" / ")
}

fn draw_chart(context: &Context, records: &[Record]) -> Result<(), BenchError> {
    let Some(path) = context.chart_path("overhead.svg") else {
        return Ok(());
    };
    let measured: Vec<&Measurement> = records.iter().filter_map(Record::measured).collect();
    let throughput: Bars = measured
        .iter()
        .map(|m| (m.target.clone(), m.requests_per_sec))
        .collect();
    let memory: Bars = measured
        .iter()
        .filter_map(|m| Some((m.target.clone(), m.rss_mb?)))
        .collect();
    charts::bar_panels(
        &path,
        &[
            Panel {
                title: "Throughput (64 connections)",
                y_label: "requests per second",
                data: throughput,
            },
            Panel {
                title: "Peak memory of the proxy",
                y_label: "RSS (MB)",
                data: memory,
            },
        ],
    )
}
