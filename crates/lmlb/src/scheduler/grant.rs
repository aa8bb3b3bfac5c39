//! Slot guards and queue tickets: the two things the scheduler hands out.

use std::fmt;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::Scheduler;
use super::target::QueueKey;

/// A claimed slot on one instance. Dropping it frees the slot and, in the same step, hands it to
/// the oldest queued request that can use it; so the slot is freed on every path (completion,
/// error, timeout, client disconnect, panic).
pub struct SlotGuard {
    pub(super) scheduler: Arc<Scheduler>,
    pub(super) index: usize,
    pub(super) upstream: usize,
    pub(super) instance: Arc<str>,
    pub(super) forwarded: bool,
}

impl SlotGuard {
    /// Index of the upstream, in configuration order.
    pub fn upstream(&self) -> usize {
        self.upstream
    }

    /// Id of the instance (`qwen:2`), as written into the forwarded body.
    pub fn instance(&self) -> &Arc<str> {
        &self.instance
    }

    /// Records that the request was sent to the instance, so the slot's release counts it as served.
    pub fn mark_forwarded(&mut self) {
        self.forwarded = true;
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.scheduler.release(self.index, self.forwarded);
    }
}

impl fmt::Debug for SlotGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotGuard")
            .field("upstream", &self.upstream)
            .field("instance", &self.instance)
            .finish()
    }
}

/// A place in a queue. Awaiting [`Ticket::granted`] yields the slot; dropping the ticket leaves
/// the queue at once (a slot already handed over is freed again with the ticket).
pub struct Ticket {
    pub(super) scheduler: Arc<Scheduler>,
    pub(super) key: QueueKey,
    pub(super) seq: u64,
    pub(super) receiver: oneshot::Receiver<SlotGuard>,
}

/// The queue was dropped: lmlb is shutting down.
#[derive(Debug)]
pub struct QueueClosed;

impl Ticket {
    pub async fn granted(&mut self) -> Result<SlotGuard, QueueClosed> {
        (&mut self.receiver).await.map_err(|_| QueueClosed)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.scheduler.cancel(&self.key, self.seq);
    }
}
