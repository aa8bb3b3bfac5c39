//! `lmlb-bench`: the load generator and scenario runner that compares lmlb
//! with the simulator reached directly, nginx and LiteLLM.
//!
//! Layout:
//! - [`cli`]: command-line options.
//! - [`scenarios`]: `overhead`, `streaming` and `scheduling`, one module each.
//! - [`loadgen`]: the HTTP client and the closed-loop, streaming and replay loads.
//! - [`targets`]: starting the simulator and lmlb.
//! - [`peers`]: starting nginx and LiteLLM.
//! - [`process`]: child processes that stop on drop.
//! - [`usage`]: memory and CPU of those processes.
//! - [`trace`] and [`rng`]: seeded request traces.
//! - [`des`]: the ideal FIFO scheduler, simulated exactly.
//! - [`timeline`]: idle time while requests waited.
//! - [`goals`]: lmlb's performance goals, checked against the results.
//! - [`histogram`]: latency statistics.
//! - [`report`]: tables and JSON.
//! - [`charts`]: SVG charts.
//! - [`progress`]: the progress bar.
//! - [`workspace`]: locating and building the binaries.
//! - [`error`]: the error type.

#![forbid(unsafe_code)]

mod charts;
mod cli;
mod des;
mod error;
mod goals;
mod histogram;
mod loadgen;
mod peers;
mod process;
mod progress;
mod report;
mod rng;
mod scenarios;
mod targets;
mod timeline;
mod trace;
mod usage;
mod workspace;

use std::process::ExitCode;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

use cli::{Cli, Scenario};
use error::BenchError;
use report::Record;
use scenarios::Context;
use workspace::Workspace;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread, so that the load generator takes at most one core and the
    // processes under test get the rest.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime always builds");

    let result = runtime.block_on(async {
        tokio::select! {
            result = run(&cli) => result,
            _ = stop_signal() => Err(BenchError::Interrupted),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lmlb-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM. Returning drops the running scenario,
/// and with it every child process.
async fn stop_signal() {
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        // Without a SIGTERM handler, Ctrl-C still stops the children.
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

async fn run(cli: &Cli) -> Result<(), BenchError> {
    let workspace = Workspace::locate()?;
    if cli.no_build {
        workspace.check_binaries()?;
    } else {
        workspace.build_binaries()?;
    }
    if let Some(dir) = &cli.charts {
        std::fs::create_dir_all(dir)
            .map_err(|e| BenchError::io(format!("failed to create {}", dir.display()), e))?;
    }
    eprintln!(
        "lmlb-bench: logs and peer configurations in {}",
        workspace.run_dir.display()
    );

    let context = Context {
        workspace,
        quick: cli.quick,
        seed: cli.seed,
        charts: cli.charts.clone(),
    };
    let mut records: Vec<Record> = Vec::new();
    for scenario in selected(cli.scenario) {
        let scenario_records = match scenario {
            Scenario::Overhead => scenarios::overhead::run(&context).await?,
            Scenario::Streaming => scenarios::streaming::run(&context).await?,
            Scenario::Scheduling => scenarios::scheduling::run(&context).await?,
            Scenario::All => unreachable!("`selected` expands `all`"),
        };
        records.extend(scenario_records);
    }

    goals::print(&goals::evaluate(&records), cli.quick);
    if let Some(path) = &cli.json {
        report::write_json(path, &records)?;
    }
    Ok(())
}

fn selected(scenario: Scenario) -> Vec<Scenario> {
    match scenario {
        Scenario::All => vec![
            Scenario::Overhead,
            Scenario::Streaming,
            Scenario::Scheduling,
        ],
        one => vec![one],
    }
}
