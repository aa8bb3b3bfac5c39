//! One loaded instance of a model: its slots, its FIFO queue and its counters.
//!
//! A request runs in a slot. When all `parallel` slots are busy it waits in the instance's
//! queue, and each released slot goes to the head of the queue. A [`SlotGuard`] releases its
//! slot when dropped, whatever ended the request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::config::ModelKind;
use crate::stats::{Changes, InstanceStats};

pub(crate) struct Instance {
    pub id: Arc<str>,
    pub model: Arc<str>,
    pub kind: ModelKind,
    pub context_length: u32,
    state: Mutex<SlotState>,
    tokens: AtomicU64,
    changes: Arc<Changes>,
}

struct SlotState {
    parallel: u32,
    /// At least `parallel` entries, and more after `parallel` was lowered while slots were
    /// busy. `active < parallel` decides whether a request may start.
    slots: Vec<Slot>,
    active: u32,
    queue: VecDeque<Waiter>,
    next_waiter: u64,
    served: u64,
    max_active: u32,
    unloaded: bool,
}

#[derive(Default)]
struct Slot {
    busy: bool,
    /// Word hashes of the last prompt run in this slot: a model of the prompt cache.
    cached_prompt: Arc<[u64]>,
}

struct Waiter {
    id: u64,
    prompt: Option<Arc<[u64]>>,
    grant: oneshot::Sender<Grant>,
}

struct Grant {
    slot: usize,
    cached_tokens: u32,
}

/// The instance was unloaded while the request waited for a slot.
#[derive(Debug)]
pub(crate) struct Unloaded;

impl Instance {
    pub fn new(
        id: Arc<str>,
        model: Arc<str>,
        kind: ModelKind,
        parallel: u32,
        context_length: u32,
        changes: Arc<Changes>,
    ) -> Self {
        let slots = (0..parallel).map(|_| Slot::default()).collect();
        Self {
            id,
            model,
            kind,
            context_length,
            state: Mutex::new(SlotState {
                parallel,
                slots,
                active: 0,
                queue: VecDeque::new(),
                next_waiter: 0,
                served: 0,
                max_active: 0,
                unloaded: false,
            }),
            tokens: AtomicU64::new(0),
            changes,
        }
    }

    pub fn parallel(&self) -> u32 {
        self.lock().parallel
    }

    /// Takes a free slot now, or returns `Ok(None)` when the request would have to wait.
    ///
    /// `prompt` contains the prompt's word hashes when prompt processing is simulated.
    pub fn try_acquire(
        self: &Arc<Self>,
        prompt: Option<&Arc<[u64]>>,
    ) -> Result<Option<SlotGuard>, Unloaded> {
        let mut state = self.lock();
        if state.unloaded {
            return Err(Unloaded);
        }
        if !state.queue.is_empty() || state.active >= state.parallel {
            return Ok(None);
        }
        let grant = state.grant(prompt);
        drop(state);
        self.changes.changed();
        Ok(Some(SlotGuard::new(self, grant)))
    }

    /// Takes a slot, waiting in the queue behind earlier requests. Dropping the future while
    /// it waits leaves the queue at once.
    pub async fn acquire(
        self: &Arc<Self>,
        prompt: Option<Arc<[u64]>>,
    ) -> Result<SlotGuard, Unloaded> {
        if let Some(guard) = self.try_acquire(prompt.as_ref())? {
            return Ok(guard);
        }
        let mut waiting = self.enqueue(prompt)?;
        let received = (&mut waiting.grant).await;
        waiting.done = true;
        match received {
            Ok(grant) => Ok(SlotGuard::new(self, grant)),
            Err(_) => Err(Unloaded),
        }
    }

    fn enqueue(self: &Arc<Self>, prompt: Option<Arc<[u64]>>) -> Result<QueuedRequest, Unloaded> {
        let mut state = self.lock();
        if state.unloaded {
            return Err(Unloaded);
        }
        let (sender, receiver) = oneshot::channel();
        let id = state.next_waiter;
        state.next_waiter += 1;
        state.queue.push_back(Waiter {
            id,
            prompt,
            grant: sender,
        });
        // A slot may have freed between `try_acquire` and here.
        state.dispatch();
        drop(state);
        self.changes.changed();
        Ok(QueuedRequest {
            instance: Arc::clone(self),
            id,
            grant: receiver,
            done: false,
        })
    }

    /// Changes the number of slots. Busy slots above the new number finish their request first.
    pub fn set_parallel(&self, parallel: u32) {
        let mut state = self.lock();
        state.parallel = parallel;
        while state.slots.len() < parallel as usize {
            state.slots.push(Slot::default());
        }
        state.trim_slots();
        state.dispatch();
        drop(state);
        self.changes.changed();
    }

    /// Marks the instance unloaded: waiting requests fail, running ones finish.
    pub fn unload(&self) {
        let mut state = self.lock();
        state.unloaded = true;
        state.queue.clear();
        drop(state);
        self.changes.changed();
    }

    /// Counts completion tokens generated by a request of this instance.
    pub fn add_tokens(&self, count: u64) {
        self.tokens.fetch_add(count, Ordering::Relaxed);
        self.changes.changed();
    }

    pub fn stats(&self) -> InstanceStats {
        let state = self.lock();
        InstanceStats {
            id: self.id.to_string(),
            served: state.served,
            active: state.active,
            queued: state.queue.len() as u32,
            max_active: state.max_active,
            tokens: self.tokens.load(Ordering::Relaxed),
        }
    }

    /// Zeroes `served`, `tokens` and `max_active` (which restarts from the current `active`).
    pub fn reset(&self) {
        let mut state = self.lock();
        state.served = 0;
        state.max_active = state.active;
        self.tokens.store(0, Ordering::Relaxed);
    }

    /// Frees a slot; `served` counts the request, `tokens` adds its completion tokens.
    fn release(&self, slot: usize, served: bool, tokens: u64) {
        if tokens > 0 {
            self.tokens.fetch_add(tokens, Ordering::Relaxed);
        }
        let mut state = self.lock();
        state.slots[slot].busy = false;
        state.active -= 1;
        if served {
            state.served += 1;
        }
        state.trim_slots();
        state.dispatch();
        drop(state);
        self.changes.changed();
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SlotState {
    /// Marks the best free slot busy: the one whose cached prompt shares the longest prefix
    /// with `prompt`, else the first free one. The caller checked that a slot is free.
    fn grant(&mut self, prompt: Option<&Arc<[u64]>>) -> Grant {
        let mut best = None;
        let mut best_cached = 0;
        for (index, slot) in self.slots.iter().enumerate() {
            if slot.busy {
                continue;
            }
            let cached = prompt.map_or(0, |prompt| shared_prefix(&slot.cached_prompt, prompt));
            if best.is_none() || cached > best_cached {
                best = Some(index);
                best_cached = cached;
            }
        }
        let slot = best.unwrap_or_else(|| {
            self.slots.push(Slot::default());
            self.slots.len() - 1
        });

        self.slots[slot].busy = true;
        if let Some(prompt) = prompt {
            self.slots[slot].cached_prompt = Arc::clone(prompt);
        }
        self.active += 1;
        self.max_active = self.max_active.max(self.active);
        Grant {
            slot,
            cached_tokens: best_cached as u32,
        }
    }

    /// Hands free slots to the head of the queue, skipping waiters that went away.
    fn dispatch(&mut self) {
        while self.active < self.parallel {
            let Some(waiter) = self.queue.pop_front() else {
                return;
            };
            let grant = self.grant(waiter.prompt.as_ref());
            if let Err(grant) = waiter.grant.send(grant) {
                self.slots[grant.slot].busy = false;
                self.active -= 1;
            }
        }
    }

    /// Drops free slots above `parallel` from the end. Slots are only removed from the end
    /// because guards refer to their slot by index.
    fn trim_slots(&mut self) {
        while self.slots.len() > self.parallel as usize
            && self.slots.last().is_some_and(|slot| !slot.busy)
        {
            self.slots.pop();
        }
    }
}

fn shared_prefix(cached: &[u64], prompt: &[u64]) -> usize {
    cached
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count()
}

/// A request's place in the queue. Dropping it before the grant arrives removes the request
/// from the queue, or releases a slot granted in the meantime.
struct QueuedRequest {
    instance: Arc<Instance>,
    id: u64,
    grant: oneshot::Receiver<Grant>,
    done: bool,
}

impl Drop for QueuedRequest {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.instance.lock();
        let before = state.queue.len();
        state.queue.retain(|waiter| waiter.id != self.id);
        let left_queue = state.queue.len() != before;
        drop(state);

        if left_queue {
            self.instance.changes.changed();
        } else if let Ok(grant) = self.grant.try_recv() {
            self.instance.release(grant.slot, false, 0);
        }
    }
}

/// A busy slot. Dropping it frees the slot, counts the request as served and hands the slot
/// to the next waiting request.
pub(crate) struct SlotGuard {
    instance: Arc<Instance>,
    slot: usize,
    cached_tokens: u32,
    /// Tokens to count when the slot is freed.
    tokens: u64,
}

impl SlotGuard {
    fn new(instance: &Arc<Instance>, grant: Grant) -> Self {
        Self {
            instance: Arc::clone(instance),
            slot: grant.slot,
            cached_tokens: grant.cached_tokens,
            tokens: 0,
        }
    }

    /// Frees the slot and counts `tokens` generated, with a single stats change.
    pub fn finish(mut self, tokens: u64) {
        self.tokens = tokens;
    }

    pub fn instance(&self) -> &Arc<Instance> {
        &self.instance
    }

    /// Prompt tokens this slot had cached from its previous request.
    pub fn cached_tokens(&self) -> u32 {
        self.cached_tokens
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.instance.release(self.slot, true, self.tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(parallel: u32) -> Arc<Instance> {
        Arc::new(Instance::new(
            "m".into(),
            "m".into(),
            ModelKind::Llm,
            parallel,
            4096,
            Arc::default(),
        ))
    }

    #[tokio::test]
    async fn queue_is_fifo() {
        let instance = instance(1);
        let first = instance.acquire(None).await.unwrap();
        let second = tokio::spawn({
            let instance = Arc::clone(&instance);
            async move { instance.acquire(None).await.map(|_| 2) }
        });
        while instance.stats().queued < 1 {
            tokio::task::yield_now().await;
        }
        let third = tokio::spawn({
            let instance = Arc::clone(&instance);
            async move { instance.acquire(None).await.map(|_| 3) }
        });
        while instance.stats().queued < 2 {
            tokio::task::yield_now().await;
        }
        drop(first);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert_eq!(third.await.unwrap().unwrap(), 3);
        let stats = instance.stats();
        assert_eq!(stats.served, 3);
        assert_eq!(stats.max_active, 1);
        assert_eq!(stats.active, 0);
    }

    #[tokio::test]
    async fn dropped_waiter_leaves_queue() {
        let instance = instance(1);
        let _busy = instance.acquire(None).await.unwrap();
        let mut waiting = Box::pin(instance.acquire(None));
        assert!(futures_poll_once(waiting.as_mut()).is_none());
        assert_eq!(instance.stats().queued, 1);
        drop(waiting);
        assert_eq!(instance.stats().queued, 0);
    }

    #[test]
    fn prefix_cache_picks_matching_slot() {
        let instance = instance(2);
        let a: Arc<[u64]> = Arc::from(vec![1, 2, 3]);
        let b: Arc<[u64]> = Arc::from(vec![7, 8, 9]);
        let first = instance.try_acquire(Some(&a)).unwrap().unwrap();
        let second = instance.try_acquire(Some(&b)).unwrap().unwrap();
        let (slot_a, slot_b) = (first.slot, second.slot);
        drop(first);
        drop(second);

        let again: Arc<[u64]> = Arc::from(vec![7, 8, 10]);
        let guard = instance.try_acquire(Some(&again)).unwrap().unwrap();
        assert_eq!(guard.slot, slot_b);
        assert_ne!(guard.slot, slot_a);
        assert_eq!(guard.cached_tokens(), 2);
    }

    #[test]
    fn lowering_parallel_waits_for_busy_slots() {
        let instance = instance(2);
        let first = instance.try_acquire(None).unwrap().unwrap();
        let second = instance.try_acquire(None).unwrap().unwrap();
        instance.set_parallel(1);
        drop(first);
        assert!(instance.try_acquire(None).unwrap().is_none());
        drop(second);
        assert!(instance.try_acquire(None).unwrap().is_some());
    }

    fn futures_poll_once<F: std::future::Future>(
        future: std::pin::Pin<&mut F>,
    ) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        match future.poll(&mut context) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        }
    }
}
