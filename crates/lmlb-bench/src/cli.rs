//! Command-line options.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Benchmarks lmlb against the simulator directly, nginx and LiteLLM. Every
/// component runs as a child process on 127.0.0.1 and stops when the bench ends.
#[derive(Debug, Parser)]
#[command(name = "lmlb-bench", version)]
pub struct Cli {
    /// The scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,

    /// Run short versions of each scenario, as a smoke test whose numbers are
    /// not for comparison.
    #[arg(long)]
    pub quick: bool,

    /// Write all results to FILE as a JSON array, one object per target (and
    /// per load in the scheduling scenario).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write SVG charts into DIR (created if missing).
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,

    /// Seed of the scheduling trace.
    #[arg(long, default_value_t = 20_240_501)]
    pub seed: u64,

    /// Use the existing release binaries of lmlb and lmstudio-sim instead of
    /// running `cargo build --release -p lmstudio-sim -p lmlb` first.
    #[arg(long)]
    pub no_build: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Requests per second and latency with an instant simulator.
    Overhead,
    /// Added time to first token and inter-token delay over 500 streams.
    Streaming,
    /// Latency against the ideal FIFO queue at 50, 70 and 90 % load.
    Scheduling,
    /// All three, in that order.
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scenario_and_flags() {
        let cli =
            Cli::try_parse_from(["lmlb-bench", "scheduling", "--quick", "--json", "out.json"])
                .unwrap();
        assert_eq!(cli.scenario, Scenario::Scheduling);
        assert!(cli.quick);
        assert_eq!(cli.json, Some(PathBuf::from("out.json")));
        assert!(!cli.no_build);
    }

    #[test]
    fn rejects_unknown_scenario() {
        assert!(Cli::try_parse_from(["lmlb-bench", "latency"]).is_err());
    }
}
