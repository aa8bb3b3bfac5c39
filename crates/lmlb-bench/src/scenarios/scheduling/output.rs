//! The scheduling scenario's table, ratios to the ideal and chart.

use crate::charts::{self, Lines, Panel};
use std::time::Duration;

use crate::error::BenchError;
use crate::histogram::millis;
use crate::report::{Measurement, Record, Table, cell};
use crate::trace::{Trace, offered_load};

use super::super::Context;
use super::{CALIBRATED_IDEAL, IDEAL, INSTANCES, LOADS};

/// Adds to every measured target its latency over each ideal's at the same
/// load (1.05 = 5 % slower): `mean_vs_ideal` and `p99_vs_ideal` against the
/// exact ideal, `mean_vs_calibrated` and `p99_vs_calibrated` against the one
/// that includes the simulator's cost per request.
pub fn add_ratios(records: &mut [Record]) {
    for (ideal, suffix) in [(IDEAL, "ideal"), (CALIBRATED_IDEAL, "calibrated")] {
        let references: Vec<(Option<f64>, f64, f64)> = records
            .iter()
            .filter_map(Record::measured)
            .filter(|m| m.target == ideal)
            .map(|m| (m.load_percent, m.mean_ms, m.p99_ms))
            .collect();
        for record in records.iter_mut() {
            let Record::Measured(m) = record else {
                continue;
            };
            let reference = references
                .iter()
                .find(|(load, _, _)| *load == m.load_percent);
            let Some(&(_, mean, p99)) = reference else {
                continue;
            };
            m.set(&format!("mean_vs_{suffix}"), m.mean_ms / mean);
            m.set(&format!("p99_vs_{suffix}"), m.p99_ms / p99);
        }
    }
}

pub fn print_table(records: &[Record], traces: &[(f64, Trace)], overhead: Duration) {
    let mut table = Table::new(&[
        "target",
        "load %",
        "done",
        "errors",
        "mean ms",
        "p99 ms",
        "mean/ideal",
        "p99/ideal",
        "mean/cal",
        "p99/cal",
        "mean wait ms",
        "idle while waiting s",
        "served per instance",
    ]);
    for record in records {
        match record {
            Record::Measured(m) => table.row(row(m)),
            Record::Skipped(s) => table.note(s.target.clone(), format!("skipped: {}", s.skipped)),
        }
    }

    println!(
        "\nScheduling: {INSTANCES} instances x 1 slot, log-normal max_tokens, Poisson arrivals\n"
    );
    for (load, trace) in traces {
        println!(
            "  {:.0} % load: {} requests at {:.2}/s, capacity {:.2}/s, offered load of this trace {:.1} %",
            load * 100.0,
            trace.requests.len(),
            trace.arrival_rate,
            trace.capacity,
            offered_load(trace, INSTANCES) * 100.0
        );
    }
    println!(
        "  simulator's cost per request over the service model: {:.2} ms (median of direct requests; \"cal\" = ideal-calibrated)",
        millis(overhead)
    );
    println!();
    print!("{}", table.render());
}

fn row(m: &Measurement) -> Vec<String> {
    let served = m
        .extra
        .get("served_per_instance")
        .and_then(|v| v.as_array())
        .map(|counts| {
            let counts: Vec<String> = counts.iter().map(|c| c.to_string()).collect();
            counts.join("/")
        })
        .unwrap_or_else(|| "-".to_owned());
    vec![
        m.target.clone(),
        cell(m.load_percent, 0),
        m.requests.to_string(),
        m.errors.to_string(),
        format!("{:.1}", m.mean_ms),
        format!("{:.1}", m.p99_ms),
        cell(m.number("mean_vs_ideal"), 3),
        cell(m.number("p99_vs_ideal"), 3),
        cell(m.number("mean_vs_calibrated"), 3),
        cell(m.number("p99_vs_calibrated"), 3),
        cell(m.number("mean_wait_ms"), 1),
        cell(m.number("idle_while_waiting_s"), 2),
        served,
    ]
}

/// Draws mean and p99 latency against load, one line per target.
pub fn draw_chart(context: &Context, records: &[Record]) -> Result<(), BenchError> {
    let Some(path) = context.chart_path("scheduling.svg") else {
        return Ok(());
    };
    let measured: Vec<&Measurement> = records.iter().filter_map(Record::measured).collect();
    let mean = lines(&measured, |m| m.mean_ms);
    let p99 = lines(&measured, |m| m.p99_ms);
    charts::line_panels(
        &path,
        "offered load (% of capacity)",
        &[
            Panel {
                title: "Mean latency",
                y_label: "ms",
                data: mean,
            },
            Panel {
                title: "p99 latency",
                y_label: "ms",
                data: p99,
            },
        ],
    )
}

fn lines(measured: &[&Measurement], value: impl Fn(&Measurement) -> f64) -> Lines {
    let mut targets: Vec<&str> = Vec::new();
    for m in measured {
        if !targets.contains(&m.target.as_str()) {
            targets.push(&m.target);
        }
    }
    targets
        .iter()
        .map(|&target| {
            let points = LOADS
                .iter()
                .filter_map(|load| {
                    let load = (load * 100.0).round();
                    let m = measured
                        .iter()
                        .find(|m| m.target == target && m.load_percent == Some(load))?;
                    Some((load, value(m)))
                })
                .collect();
            (target.to_owned(), points)
        })
        .collect()
}
