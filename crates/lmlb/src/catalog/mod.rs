//! The upstream catalog: which upstreams are up and which instances each has loaded.
//!
//! One task per upstream reads its model listing at start and every refresh interval, feeds the
//! instances to the scheduler, and backs off while the upstream is down. A failed connection
//! during a request wakes the task for an immediate check.

mod discovery;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{Notify, watch};

use discovery::DiscoveryError;
pub use discovery::{DEFAULT_LISTING_TIMEOUT, LISTING_MAX_BYTES, Listing};

use crate::client::HttpClient;
use crate::config::UpstreamConfig;
use crate::scheduler::{Changes, Scheduler};

/// First retry delay after an upstream goes down; it doubles up to [`max_backoff`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamState {
    /// Not checked yet.
    Unknown,
    Up,
    Down,
}

/// The catalog's view of one upstream.
#[derive(Clone, Debug, Serialize)]
pub struct UpstreamStatus {
    pub state: UpstreamState,
    /// The listing the upstream returned last.
    pub listing: Option<Listing>,
    pub last_error: Option<String>,
    /// Seconds since the Unix epoch of the last check.
    pub last_check: Option<u64>,
    /// Failed checks in a row.
    pub failures: u32,
}

pub struct Catalog {
    upstreams: Vec<UpstreamConfig>,
    status: Vec<Mutex<UpstreamStatus>>,
    wake: Vec<Notify>,
    scheduler: Arc<Scheduler>,
    client: HttpClient,
    refresh_interval: Duration,
    listing_timeout: Duration,
}

impl Catalog {
    pub fn new(
        upstreams: Vec<UpstreamConfig>,
        scheduler: Arc<Scheduler>,
        client: HttpClient,
        refresh_interval: Duration,
        listing_timeout: Duration,
    ) -> Arc<Catalog> {
        let status = upstreams
            .iter()
            .map(|_| {
                Mutex::new(UpstreamStatus {
                    state: UpstreamState::Unknown,
                    listing: None,
                    last_error: None,
                    last_check: None,
                    failures: 0,
                })
            })
            .collect();
        let wake = upstreams.iter().map(|_| Notify::new()).collect();
        Arc::new(Catalog {
            upstreams,
            status,
            wake,
            scheduler,
            client,
            refresh_interval,
            listing_timeout,
        })
    }

    pub fn upstreams(&self) -> &[UpstreamConfig] {
        &self.upstreams
    }

    pub fn upstream(&self, index: usize) -> &UpstreamConfig {
        &self.upstreams[index]
    }

    pub fn status(&self, index: usize) -> UpstreamStatus {
        self.status[index]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn is_up(&self, index: usize) -> bool {
        self.status(index).state == UpstreamState::Up
    }

    /// Returns the indices of the upstreams that passed their last check.
    pub fn up_upstreams(&self) -> Vec<usize> {
        (0..self.upstreams.len())
            .filter(|&i| self.is_up(i))
            .collect()
    }

    /// Asks for an immediate check of an upstream, after a request failed to reach it.
    pub fn check_now(&self, index: usize) {
        self.wake[index].notify_one();
    }

    /// Checks every upstream once, concurrently; used at start-up so the first requests find
    /// the instances that are already loaded.
    pub async fn check_all(self: &Arc<Self>) {
        let checks: Vec<_> = (0..self.upstreams.len())
            .map(|index| {
                let catalog = Arc::clone(self);
                tokio::spawn(async move { catalog.check(index).await })
            })
            .collect();
        for check in checks {
            let _ = check.await;
        }
    }

    /// Starts one polling task per upstream; they stop when `shutdown` becomes true.
    pub fn spawn_pollers(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        for index in 0..self.upstreams.len() {
            let catalog = Arc::clone(self);
            let shutdown = shutdown.clone();
            tokio::spawn(async move { catalog.poll(index, shutdown).await });
        }
    }

    async fn poll(self: Arc<Self>, index: usize, mut shutdown: watch::Receiver<bool>) {
        loop {
            let delay = self.next_delay(index);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.wake[index].notified() => {}
                _ = crate::server::stopped(&mut shutdown) => return,
            }
            self.check(index).await;
        }
    }

    /// Returns the refresh interval while up, and a doubling backoff while down.
    fn next_delay(&self, index: usize) -> Duration {
        let failures = self.status(index).failures;
        if failures == 0 {
            return self.refresh_interval;
        }
        let first = FIRST_BACKOFF.min(self.refresh_interval);
        let exponent = failures.saturating_sub(1).min(16);
        (first * 2u32.pow(exponent)).min(max_backoff(self.refresh_interval))
    }

    /// Reads one upstream's listing and applies it.
    pub async fn check(&self, index: usize) {
        let upstream = &self.upstreams[index];
        let preferred = self.status(index).listing;
        let started = Instant::now();
        let result =
            discovery::discover(&self.client, upstream, preferred, self.listing_timeout).await;

        match result {
            Ok((listing, instances)) => {
                let changes = self.scheduler.sync_upstream(index, &instances);
                self.mark_up(index, listing, &changes);
                tracing::debug!(upstream = %upstream.name, elapsed_ms = started.elapsed().as_millis() as u64, "checked upstream");
            }
            Err(error @ DiscoveryError::Timeout(_)) if self.scheduler.in_flight_on(index) > 0 => {
                // Some servers (llama.cpp's Python server among them) return their listing only
                // between generations; a slow listing from an upstream that is serving lmlb's own
                // requests is busy, not down.
                let error = format!("{error}, while requests were running; the upstream stays up");
                tracing::debug!(upstream = %upstream.name, %error, "model listing timed out");
                let mut status = self.status[index].lock().unwrap_or_else(|p| p.into_inner());
                status.last_error = Some(error);
                status.last_check = Some(unix_seconds());
            }
            Err(error) => {
                let removed = self.scheduler.set_upstream_down(index);
                self.mark_down(index, error.to_string(), &removed);
            }
        }
    }

    fn mark_up(&self, index: usize, listing: Listing, changes: &Changes) {
        let name = &self.upstreams[index].name;
        let previous = {
            let mut status = self.status[index].lock().unwrap_or_else(|p| p.into_inner());
            let previous = status.state;
            status.state = UpstreamState::Up;
            status.listing = Some(listing);
            status.last_error = None;
            status.last_check = Some(unix_seconds());
            status.failures = 0;
            previous
        };

        if previous != UpstreamState::Up {
            tracing::info!(upstream = %name, listing = listing.as_str(), "upstream is up");
        }
        if !changes.added.is_empty() {
            tracing::info!(upstream = %name, instances = ?changes.added, "instances appeared");
        }
        if !changes.removed.is_empty() {
            tracing::info!(upstream = %name, instances = ?changes.removed, "instances disappeared");
        }
        if !changes.resized.is_empty() {
            tracing::info!(upstream = %name, instances = ?changes.resized, "instance slot counts changed");
        }
    }

    fn mark_down(&self, index: usize, error: String, removed: &[String]) {
        let name = &self.upstreams[index].name;
        let previous = {
            let mut status = self.status[index].lock().unwrap_or_else(|p| p.into_inner());
            let previous = status.state;
            status.state = UpstreamState::Down;
            status.last_error = Some(error.clone());
            status.last_check = Some(unix_seconds());
            status.failures = status.failures.saturating_add(1);
            previous
        };

        if previous != UpstreamState::Down {
            tracing::warn!(upstream = %name, %error, "upstream is down");
        } else {
            tracing::debug!(upstream = %name, %error, "upstream still down");
        }
        if !removed.is_empty() {
            tracing::info!(upstream = %name, instances = ?removed, "instances left rotation");
        }
    }
}

/// Maximum delay between checks of a down upstream.
fn max_backoff(refresh_interval: Duration) -> Duration {
    refresh_interval * 3
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
