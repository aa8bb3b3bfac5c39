//! Counters per instance, as `GET /sim/stats` returns them, and the change signal that
//! [`crate::Simulator::wait_for`] waits on.

use serde::Serialize;
use tokio::sync::Notify;

/// A snapshot of every loaded instance's counters, in model order and then load order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub instances: Vec<InstanceStats>,
}

/// Counters of one instance.
///
/// `served`, `max_active` and `tokens` count since start or the last reset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InstanceStats {
    /// Instance id: `model`, `model:2`, ...
    pub id: String,
    /// Requests that got a slot and released it: generation ended, or a streaming client
    /// disconnected, or the server stopped.
    pub served: u64,
    /// Requests holding a slot now.
    pub active: u32,
    /// Requests waiting for a slot on this instance now.
    pub queued: u32,
    /// Maximum of `active` seen at once.
    pub max_active: u32,
    /// Completion tokens generated. Streams count each token as it is sent; non-streaming
    /// requests add theirs when generation ends.
    pub tokens: u64,
}

impl Stats {
    /// Returns the counters of the instance with this id.
    pub fn instance(&self, id: &str) -> Option<&InstanceStats> {
        self.instances.iter().find(|instance| instance.id == id)
    }

    pub fn total_active(&self) -> u32 {
        self.instances.iter().map(|instance| instance.active).sum()
    }

    pub fn total_queued(&self) -> u32 {
        self.instances.iter().map(|instance| instance.queued).sum()
    }

    pub fn total_served(&self) -> u64 {
        self.instances.iter().map(|instance| instance.served).sum()
    }
}

/// Wakes every waiter after each change of the stats, so waiters re-check their predicate.
#[derive(Default)]
pub(crate) struct Changes {
    notify: Notify,
}

impl Changes {
    pub fn changed(&self) {
        self.notify.notify_waiters();
    }

    /// Waits until `pred` holds for `snapshot()`, checking now and after every change.
    pub async fn wait_for(
        &self,
        snapshot: impl Fn() -> Stats,
        pred: impl Fn(&Stats) -> bool,
    ) -> Stats {
        loop {
            // Register before checking, so a change between the check and the wait is not lost.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let stats = snapshot();
            if pred(&stats) {
                return stats;
            }
            notified.await;
        }
    }
}
