//! The three benchmark scenarios and what they share: run options, and peers
//! that are skipped with a reason when they cannot start.

pub mod overhead;
pub mod scheduling;
pub mod streaming;
pub mod turns;

use std::future::Future;
use std::path::PathBuf;

use crate::error::BenchError;
use crate::report::Measurement;
use crate::targets::{Simulator, Target};
use crate::usage::UsageMonitor;
use crate::workspace::Workspace;

#[derive(Debug, Clone)]
pub struct Context {
    pub workspace: Workspace,
    /// Shorter runs for smoke tests, whose numbers are not for comparison.
    pub quick: bool,
    pub seed: u64,
    /// Folder for SVG charts, or `None` to draw none.
    pub charts: Option<PathBuf>,
}

impl Context {
    pub fn chart_path(&self, name: &str) -> Option<PathBuf> {
        self.charts.as_ref().map(|dir| dir.join(name))
    }
}

/// Starts a peer, or returns why it is skipped: a peer that is not installed
/// or fails to start does not stop the run.
pub async fn start_peer<F>(
    scenario: &'static str,
    target: &str,
    unavailable: Option<String>,
    start: F,
) -> Result<Target, String>
where
    F: Future<Output = Result<Target, BenchError>>,
{
    let result = match unavailable {
        Some(reason) => Err(reason),
        None => start.await.map_err(|error| error.to_string()),
    };
    if let Err(reason) = &result {
        eprintln!("{scenario}: skipping {target}: {reason}");
    }
    result
}

/// CPU and memory during one measurement of the processes that share the
/// machine: the proxy (with its child processes), the simulators, and the
/// bench's own load generator.
#[derive(Debug)]
pub struct Monitors {
    proxy: Option<UsageMonitor>,
    simulators: Vec<UsageMonitor>,
    bench: UsageMonitor,
}

impl Monitors {
    pub fn start(target: &Target, simulators: &[&Simulator]) -> Self {
        Self {
            proxy: target.monitored.map(UsageMonitor::start),
            simulators: simulators
                .iter()
                .map(|s| UsageMonitor::start(s.pid()))
                .collect(),
            bench: UsageMonitor::start_single(std::process::id()),
        }
    }

    /// Stops sampling and stores the results: the proxy's as `rss_mb` and
    /// `cpu_percent`, the others as `simulator_cpu_percent` and
    /// `bench_cpu_percent`.
    pub fn finish(self, measurement: &mut Measurement) {
        measurement.set_usage(self.proxy.map(UsageMonitor::finish));
        let simulator_cpu: f64 = self
            .simulators
            .into_iter()
            .map(|monitor| monitor.finish().cpu_percent)
            .sum();
        measurement.set("simulator_cpu_percent", simulator_cpu);
        measurement.set("bench_cpu_percent", self.bench.finish().cpu_percent);
    }
}
