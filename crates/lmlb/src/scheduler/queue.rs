//! FIFO queues of requests waiting for a slot.

use std::collections::{HashMap, VecDeque};

use tokio::sync::oneshot;

use super::grant::SlotGuard;
use super::instance::Instance;
use super::target::{QueueKey, Target};

pub(super) struct Waiter {
    /// Arrival order across all queues, so the oldest eligible waiter wins.
    pub seq: u64,
    pub target: Target,
    pub sender: oneshot::Sender<SlotGuard>,
}

impl Waiter {
    pub fn can_use(&self, instance: &Instance) -> bool {
        match &self.target {
            Target::Model(model) => *instance.model == **model,
            Target::Instance(id) => *instance.id == **id,
            Target::AnyOf(class) => instance.kind.class() == *class,
        }
    }
}

#[derive(Default)]
pub(super) struct Queues {
    queues: HashMap<QueueKey, VecDeque<Waiter>>,
    next_seq: u64,
}

impl Queues {
    pub fn len(&self, key: &QueueKey) -> usize {
        self.queues.get(key).map_or(0, VecDeque::len)
    }

    pub fn total(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    pub fn push(
        &mut self,
        key: QueueKey,
        target: Target,
        sender: oneshot::Sender<SlotGuard>,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queues.entry(key).or_default().push_back(Waiter {
            seq,
            target,
            sender,
        });
        seq
    }

    /// Removes a waiter that gave up; returns whether it was still queued.
    pub fn remove(&mut self, key: &QueueKey, seq: u64) -> bool {
        let Some(queue) = self.queues.get_mut(key) else {
            return false;
        };
        let Some(position) = queue.iter().position(|waiter| waiter.seq == seq) else {
            return false;
        };
        queue.remove(position);
        if queue.is_empty() {
            self.queues.remove(key);
        }
        true
    }

    /// Takes the oldest waiter, from the instance's model queue or its class queue, that can run
    /// on `instance`. Waiters pinned to another instance are skipped but keep their place.
    pub fn pop_for(&mut self, instance: &Instance) -> Option<Waiter> {
        let model_key = QueueKey::Model(instance.model.clone());
        let class_key = QueueKey::Class(instance.kind.class());

        let model_pick = self.find_eligible(&model_key, instance);
        let class_pick = self.find_eligible(&class_key, instance);
        let (key, position) = match (model_pick, class_pick) {
            (Some(m), Some(c)) if m.1 < c.1 => (model_key, m.0),
            (Some(_), Some(c)) => (class_key, c.0),
            (Some(m), None) => (model_key, m.0),
            (None, Some(c)) => (class_key, c.0),
            (None, None) => return None,
        };

        let queue = self.queues.get_mut(&key)?;
        let waiter = queue.remove(position);
        if queue.is_empty() {
            self.queues.remove(&key);
        }
        waiter
    }

    /// Position and sequence number of the first waiter in `key`'s queue that can use `instance`.
    fn find_eligible(&self, key: &QueueKey, instance: &Instance) -> Option<(usize, u64)> {
        let queue = self.queues.get(key)?;
        queue
            .iter()
            .enumerate()
            .find(|(_, waiter)| waiter.can_use(instance))
            .map(|(position, waiter)| (position, waiter.seq))
    }

    /// Queue lengths by key, for status endpoints.
    pub fn lengths(&self) -> impl Iterator<Item = (&QueueKey, usize)> {
        self.queues.iter().map(|(key, queue)| (key, queue.len()))
    }

    /// Removes every waiter; their receivers see the channel close.
    pub fn clear(&mut self) -> Vec<Waiter> {
        self.queues.drain().flat_map(|(_, queue)| queue).collect()
    }
}
