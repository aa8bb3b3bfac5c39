//! The three benchmark scenarios and what they share: run options, and peers
//! that are skipped with a reason when they cannot start.

pub mod overhead;
pub mod scheduling;
pub mod streaming;

use std::future::Future;
use std::path::PathBuf;

use crate::error::BenchError;
use crate::targets::Target;
use crate::workspace::Workspace;

#[derive(Debug, Clone)]
pub struct Context {
    pub workspace: Workspace,
    /// Shorter runs for smoke tests; the numbers are not for comparison.
    pub quick: bool,
    pub seed: u64,
    /// Folder for SVG charts; `None` draws none.
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
