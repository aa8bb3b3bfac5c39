//! Overhead: what each proxy costs per request when the backend costs nothing.
//!
//! The simulator runs in instant mode with one instance of 64 slots, so that
//! no request waits for a slot anywhere. Each target gets the same closed loop
//! of 64 keep-alive connections sending small non-streaming chat requests.
//! Direct, lmlb and nginx take 40 turns of one second (see [`super::turns`]);
//! LiteLLM, far slower, runs alone afterwards for as long as all of one
//! target's turns.

use std::time::Duration;

use crate::charts::{self, Bars, Panel};
use crate::error::BenchError;
use crate::histogram::millis;
use crate::loadgen::http::{CHAT_PATH, chat_body};
use crate::peers::litellm::{self, Deployment};
use crate::peers::nginx::{self, Balance};
use crate::report::{Measurement, Record, Table, cell};
use crate::targets::{MODEL, Simulator, SimulatorConfig, Target, start_lmlb, start_simulator};

use super::turns::{self, Load, Schedule, Turns};
use super::{Context, start_peer};

const SCENARIO: &str = "overhead";
const CONNECTIONS: usize = 64;
const MAX_TOKENS: u32 = 16;
/// LiteLLM worker processes: one per core, like nginx's workers and lmlb's
/// runtime threads.
const LITELLM_WORKERS: usize = 2;

fn schedule(quick: bool) -> Schedule {
    if quick {
        Schedule {
            warmup: Duration::from_millis(300),
            turn: Duration::from_millis(500),
            turns: 2,
        }
    } else {
        Schedule {
            warmup: Duration::from_secs(2),
            turn: Duration::from_secs(1),
            turns: 40,
        }
    }
}

/// Returns LiteLLM's schedule: one turn as long as all of another target's,
/// because its requests outlast a short turn.
fn single_turn(schedule: Schedule) -> Schedule {
    Schedule {
        turn: schedule.turn * schedule.turns as u32,
        turns: 1,
        ..schedule
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

    let mut targets = vec![
        Target::direct(&simulator),
        start_lmlb(workspace, &[&simulator]).await?,
    ];
    let nginx = start_nginx(context, &simulator).await;
    let nginx_skipped = match nginx {
        Ok(target) => {
            targets.push(target);
            None
        }
        Err(skipped) => Some(skipped),
    };

    let schedule = schedule(context.quick);
    let label = format!("{SCENARIO} (turns)");
    let results = turns::take_turns(&label, targets, &[&simulator], &load(), schedule).await;
    let mut records: Vec<Record> = results.into_iter().map(to_record).collect();
    records.extend(nginx_skipped);
    records.push(measure_litellm(context, &simulator, single_turn(schedule)).await);

    print_table(&records);
    draw_chart(context, &records)?;
    Ok(records)
}

fn load() -> Load {
    Load {
        path: CHAT_PATH,
        body: chat_body(MODEL, MAX_TOKENS, false),
        connections: CONNECTIONS,
    }
}

async fn start_nginx(context: &Context, simulator: &Simulator) -> Result<Target, Record> {
    let name = Balance::RoundRobin.target_name();
    let upstreams = [simulator.addr];
    let start = nginx::start(&context.workspace, &upstreams, Balance::RoundRobin);
    start_peer(SCENARIO, name, nginx::unavailable(), start)
        .await
        .map_err(|reason| Record::skipped(SCENARIO, name, reason))
}

async fn measure_litellm(context: &Context, simulator: &Simulator, schedule: Schedule) -> Record {
    let workspace = &context.workspace;
    let deployment = Deployment {
        instance: MODEL.to_owned(),
        simulator: simulator.addr,
    };
    let deployments = [deployment];
    let start = litellm::start(workspace, &deployments, LITELLM_WORKERS);
    let target = match start_peer(SCENARIO, "litellm", litellm::unavailable(workspace), start).await
    {
        Ok(target) => target,
        Err(reason) => return Record::skipped(SCENARIO, "litellm", reason),
    };
    let label = format!("{SCENARIO} litellm");
    let mut results =
        turns::take_turns(&label, vec![target], &[simulator], &load(), schedule).await;
    to_record(results.remove(0))
}

/// Converts one target's results into its record, and prints its errors.
fn to_record(turns: Turns) -> Record {
    let report = &turns.report;
    for sample in &report.error_samples {
        eprintln!("{SCENARIO} {}: error: {sample}", turns.target);
    }

    let mut measurement = Measurement {
        scenario: SCENARIO,
        target: turns.target.clone(),
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
    };
    measurement.set_usage(turns.proxy);
    measurement.set("simulator_cpu_percent", turns.simulator_cpu_percent);
    measurement.set("bench_cpu_percent", turns.bench_cpu_percent);
    measurement.set("turns_requests_per_sec", turns.rates);
    Record::Measured(measurement)
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
        "req/s per turn",
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
                turns_cell(m),
            ]),
            Record::Skipped(s) => table.note(s.target.clone(), format!("skipped: {}", s.skipped)),
        }
    }
    println!("\nOverhead: instant simulator, {CONNECTIONS} connections, closed loop\n");
    print!("{}", table.render());
}

/// Formats the slowest and the fastest turn, to show how much the machine
/// drifted.
fn turns_cell(m: &Measurement) -> String {
    let rates: Vec<f64> = m
        .extra
        .get("turns_requests_per_sec")
        .and_then(|v| v.as_array())
        .map(|values| values.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    let slowest = rates.iter().copied().reduce(f64::min);
    let fastest = rates.iter().copied().reduce(f64::max);
    match (slowest, fastest) {
        (Some(slowest), Some(fastest)) if rates.len() > 1 => {
            format!("{slowest:.0} to {fastest:.0}")
        }
        _ => "-".to_owned(),
    }
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
