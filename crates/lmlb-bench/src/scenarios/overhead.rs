//! Overhead: what each proxy costs per request when the backend costs nothing.
//!
//! The simulator runs in instant mode with one instance of 64 slots, so that
//! no request waits for a slot anywhere. Each target gets the same closed loop
//! of 64 keep-alive connections sending small non-streaming chat requests.

use std::time::Duration;

use crate::charts::{self, Bars, Panel};
use crate::error::BenchError;
use crate::histogram::millis;
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
    };
    let simulator = start_simulator(workspace, "sim-overhead", &simulator_config).await?;

    let mut records = Vec::new();
    records.push(measure(context, Target::direct(&simulator), &simulator).await);
    let lmlb = start_lmlb(workspace, &[&simulator]).await?;
    records.push(measure(context, lmlb, &simulator).await);

    let nginx = start_peer(
        SCENARIO,
        Balance::RoundRobin.target_name(),
        nginx::unavailable(),
        nginx::start(workspace, &[simulator.addr], Balance::RoundRobin),
    )
    .await;
    records.push(match nginx {
        Ok(target) => measure(context, target, &simulator).await,
        Err(reason) => Record::skipped(SCENARIO, Balance::RoundRobin.target_name(), reason),
    });

    let deployment = Deployment {
        instance: MODEL.to_owned(),
        simulator: simulator.addr,
    };
    let litellm = start_peer(
        SCENARIO,
        "litellm",
        litellm::unavailable(workspace),
        litellm::start(workspace, &[deployment], LITELLM_WORKERS),
    )
    .await;
    records.push(match litellm {
        Ok(target) => measure(context, target, &simulator).await,
        Err(reason) => Record::skipped(SCENARIO, "litellm", reason),
    });

    print_table(&records);
    draw_chart(context, &records)?;
    Ok(records)
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
        "target", "req/s", "p50 ms", "p99 ms", "errors", "RSS MB", "CPU %",
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
            ]),
            Record::Skipped(s) => {
                table.row(vec![s.target.clone(), format!("skipped: {}", s.skipped)])
            }
        }
    }
    println!("\nOverhead: instant simulator, {CONNECTIONS} connections, closed loop\n");
    print!("{}", table.render());
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
