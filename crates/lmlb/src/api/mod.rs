//! lmlb's own endpoints: status (`/health`, `/models`), merged model listings, Prometheus
//! metrics and the dashboard.

mod dashboard;
mod listing;
mod metrics;
mod status;

pub use dashboard::dashboard;
pub use listing::{openai_models, v0_model, v0_models};
pub use metrics::metrics;
pub use status::{health, models};

/// Resident memory of this process in bytes, from `/proc/self/status` (0 where unavailable).
pub fn resident_memory_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}
