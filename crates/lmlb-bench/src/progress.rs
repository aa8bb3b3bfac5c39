//! A one-line progress bar on stderr, drawn only when stderr is a terminal so
//! that CI logs stay clean.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

const REDRAW_INTERVAL: Duration = Duration::from_millis(200);
const BAR_WIDTH: usize = 30;

/// Counts finished units of work out of a known total.
#[derive(Debug)]
pub struct Progress {
    done: Arc<AtomicU64>,
    total: u64,
    drawer: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts a bar labelled `label` for `total` units.
    pub fn start(label: &str, total: u64) -> Self {
        let done = Arc::new(AtomicU64::new(0));
        let drawer = std::io::stderr().is_terminal().then(|| {
            let done = Arc::clone(&done);
            let label = label.to_owned();
            tokio::spawn(async move {
                let started = Instant::now();
                loop {
                    draw(
                        &label,
                        done.load(Ordering::Relaxed),
                        total,
                        started.elapsed(),
                    );
                    tokio::time::sleep(REDRAW_INTERVAL).await;
                }
            })
        });
        Self {
            done,
            total,
            drawer,
        }
    }

    /// Returns a progress counter that draws nothing, for tests.
    #[cfg(test)]
    pub fn hidden() -> Self {
        Self {
            done: Arc::new(AtomicU64::new(0)),
            total: 0,
            drawer: None,
        }
    }

    pub fn advance(&self, units: u64) {
        self.done.fetch_add(units, Ordering::Relaxed);
    }

    /// Fills the bar over `duration`, for loads that run for a fixed time. The
    /// returned task runs until it is aborted.
    pub fn track_time(&self, duration: Duration) -> JoinHandle<()> {
        let done = Arc::clone(&self.done);
        let total = self.total;
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                let fraction = (started.elapsed().as_secs_f64() / duration.as_secs_f64()).min(1.0);
                done.store((fraction * total as f64) as u64, Ordering::Relaxed);
                tokio::time::sleep(REDRAW_INTERVAL).await;
            }
        })
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(drawer) = self.drawer.take() {
            drawer.abort();
            // Clear the line so the next output starts on a clean one.
            eprint!("\r\x1b[2K");
        }
    }
}

fn draw(label: &str, done: u64, total: u64, elapsed: Duration) {
    let fraction = if total == 0 {
        0.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let filled = (fraction * BAR_WIDTH as f64).round() as usize;
    let bar = format!("{}{}", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled));
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "\r\x1b[2K{label} [{bar}] {done}/{total} {:.0}s",
        elapsed.as_secs_f64()
    );
    let _ = stderr.flush();
}
