//! The scheduler: which instance serves a request, and who waits for which slot.
//!
//! Pure bookkeeping under one short-held mutex, with no I/O: the catalog tells it which instances
//! exist, the proxy asks it for slots, and slot guards give them back. A freed slot goes straight
//! to the oldest queued request that can use it, so no instance idles while a request it could
//! serve is waiting.

mod grant;
mod instance;
mod names;
mod queue;
mod target;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::oneshot;

pub use grant::{QueueClosed, SlotGuard, Ticket};
pub use target::Target;

use crate::config::QueueLimits;
use crate::model::{KindClass, ModelKind, model_of};
use instance::Instance;
use names::ByName;
use queue::{Queues, Waiter};
use target::QueueKey;

/// An instance as an upstream lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSpec {
    pub id: String,
    pub kind: ModelKind,
    /// Requests it runs at once, when the upstream reports it (LM Studio 0.4's `parallel`).
    pub parallel: Option<u32>,
}

/// Settings fixed at start-up.
#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    pub queue: QueueLimits,
    /// Per-model queue limits, overriding `queue`.
    pub model_queues: HashMap<String, QueueLimits>,
    /// Per-model slots per instance, overriding what upstreams report.
    pub model_slots: HashMap<String, u32>,
}

/// The outcome of asking for a slot.
pub enum Acquire {
    Granted(SlotGuard),
    Queued(Ticket),
    /// The target's queue already contains `max` requests.
    QueueFull {
        max: usize,
    },
    /// Every instance of the target is on an upstream that is down.
    Unavailable,
}

/// The mapping of a requested name onto loaded instances.
#[derive(Debug, PartialEq)]
pub enum Resolution {
    Found(Target),
    /// Nothing matches; `loaded` lists the models in rotation, for the error message.
    Unknown {
        loaded: Vec<String>,
    },
}

/// Instances that appeared or disappeared in one catalog update.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub resized: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.resized.is_empty()
    }
}

pub struct Scheduler {
    settings: SchedulerSettings,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Every instance ever listed. Entries are never removed, so a guard's index stays valid;
    /// an instance that disappears is only marked unlisted.
    instances: Vec<Instance>,
    positions: HashMap<(usize, Arc<str>), usize>,
    by_model: ByName<Vec<usize>>,
    queues: Queues,
    /// Start of the next scan, so ties between equally loaded instances rotate.
    cursor: usize,
}

impl Scheduler {
    pub fn new(settings: SchedulerSettings) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            settings,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters consistent (every update is one step),
        // so a poisoned mutex is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Maps a requested name to a target: a model first, then an exact instance id, then (when
    /// `fallback` is given) any instance of that class.
    pub fn resolve(&self, name: &str, fallback: Option<KindClass>) -> Resolution {
        let state = self.lock();
        if let Some((model, _)) = state.by_model.get_key_value(name) {
            return Resolution::Found(Target::Model(Arc::clone(model)));
        }
        if let Some(instance) = state.instances.iter().find(|i| &*i.id == name && i.listed) {
            return Resolution::Found(Target::Instance(Arc::clone(&instance.id)));
        }
        if let Some(class) = fallback
            && state
                .instances
                .iter()
                .any(|i| i.kind.class() == class && i.listed)
        {
            return Resolution::Found(Target::AnyOf(class));
        }
        Resolution::Unknown {
            loaded: state.loaded_models(),
        }
    }

    /// Claims a slot on the least loaded instance of `target`, or a place in its queue.
    pub fn acquire(self: &Arc<Self>, target: &Target) -> Acquire {
        let mut guard = self.lock();
        let state = &mut *guard;

        let candidates = candidates(&state.by_model, &state.instances, target);
        if let Some(index) = pick_least_loaded(&state.instances, &mut state.cursor, &candidates) {
            state.instances[index].in_flight += 1;
            return Acquire::Granted(self.guard(state, index));
        }
        if !candidates.iter().any(|&i| state.instances[i].listed) {
            return Acquire::Unavailable;
        }

        let key = queue_key(target);
        let max = self.queue_limits(&key).max_size;
        if state.queues.len(&key) >= max {
            return Acquire::QueueFull { max };
        }
        let (sender, receiver) = oneshot::channel();
        let seq = state.queues.push(key.clone(), target.clone(), sender);
        Acquire::Queued(Ticket {
            scheduler: Arc::clone(self),
            key,
            seq,
            receiver,
        })
    }

    /// Queue limits that apply to a target's queue.
    pub fn limits_for(&self, target: &Target) -> QueueLimits {
        self.queue_limits(&queue_key(target))
    }

    fn queue_limits(&self, key: &QueueKey) -> QueueLimits {
        match key {
            QueueKey::Model(model) => self
                .settings
                .model_queues
                .get(&**model)
                .copied()
                .unwrap_or(self.settings.queue),
            QueueKey::Class(_) => self.settings.queue,
        }
    }

    fn guard(self: &Arc<Self>, state: &State, index: usize) -> SlotGuard {
        let instance = &state.instances[index];
        SlotGuard {
            scheduler: Arc::clone(self),
            index,
            upstream: instance.upstream,
            instance: Arc::clone(&instance.id),
            forwarded: false,
        }
    }

    /// Frees one slot of instance `index` and hands it on to a waiter if one can use it.
    fn release(self: &Arc<Self>, index: usize, forwarded: bool) {
        let handoff = {
            let mut state = self.lock();
            let instance = &mut state.instances[index];
            instance.in_flight = instance.in_flight.saturating_sub(1);
            if forwarded {
                instance.served += 1;
            }
            self.next_handoff(&mut state, index)
        };
        // Sent outside the lock: a failed send drops the guard, which releases again.
        if let Some((waiter, guard)) = handoff {
            let _ = waiter.sender.send(guard);
        }
    }

    /// Claims a slot of `index` for the oldest eligible waiter, if the instance has one free.
    fn next_handoff(
        self: &Arc<Self>,
        state: &mut State,
        index: usize,
    ) -> Option<(Waiter, SlotGuard)> {
        if !state.instances[index].has_free_slot() {
            return None;
        }
        let waiter = state.queues.pop_for(&state.instances[index])?;
        state.instances[index].in_flight += 1;
        Some((waiter, self.guard(state, index)))
    }

    /// Removes a waiter that gave up.
    fn cancel(&self, key: &QueueKey, seq: u64) {
        self.lock().queues.remove(key, seq);
    }

    /// Replaces the instances listed by `upstream` and serves queued requests with any new slots.
    pub fn sync_upstream(self: &Arc<Self>, upstream: usize, listed: &[InstanceSpec]) -> Changes {
        let mut changes = Changes::default();
        let handoffs = {
            let mut state = self.lock();
            for spec in listed {
                let slots = self.slots_for(spec);
                state.upsert(upstream, spec, slots, &mut changes);
            }
            for instance in state
                .instances
                .iter_mut()
                .filter(|i| i.upstream == upstream)
            {
                instance.suspended = false;
                if instance.listed && !listed.iter().any(|spec| *spec.id == *instance.id) {
                    instance.listed = false;
                    changes.removed.push(instance.id.to_string());
                }
            }
            self.drain(&mut state)
        };
        send_all(handoffs);
        changes
    }

    fn slots_for(&self, spec: &InstanceSpec) -> u32 {
        let configured = self.settings.model_slots.get(model_of(&spec.id)).copied();
        configured.or(spec.parallel).unwrap_or(1).max(1)
    }

    /// Takes every instance of a down upstream out of rotation; returns their ids.
    pub fn set_upstream_down(&self, upstream: usize) -> Vec<String> {
        let mut state = self.lock();
        let mut removed = Vec::new();
        for instance in state
            .instances
            .iter_mut()
            .filter(|i| i.upstream == upstream && i.listed)
        {
            instance.listed = false;
            removed.push(instance.id.to_string());
        }
        removed
    }

    /// Requests in flight on an upstream's instances.
    pub fn in_flight_on(&self, upstream: usize) -> u32 {
        let state = self.lock();
        state
            .instances
            .iter()
            .filter(|i| i.upstream == upstream)
            .map(|i| i.in_flight)
            .sum()
    }

    /// Stops new work for `upstream` until its next successful check, after a failed connection.
    pub fn suspend_upstream(&self, upstream: usize) {
        let mut state = self.lock();
        for instance in state
            .instances
            .iter_mut()
            .filter(|i| i.upstream == upstream)
        {
            instance.suspended = true;
        }
    }

    /// Hands every free slot to eligible waiters, oldest first.
    fn drain(self: &Arc<Self>, state: &mut State) -> Vec<(Waiter, SlotGuard)> {
        let mut handoffs = Vec::new();
        for index in 0..state.instances.len() {
            while let Some(handoff) = self.next_handoff(state, index) {
                handoffs.push(handoff);
            }
        }
        handoffs
    }

    /// Empties every queue at shutdown; the waiting requests see their queue closed.
    pub fn close_queues(&self) {
        let waiters = self.lock().queues.clear();
        drop(waiters);
    }

    /// Returns a consistent copy of every instance and queue, for status endpoints and metrics.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        let instances = state
            .instances
            .iter()
            .map(|i| InstanceView {
                upstream: i.upstream,
                id: i.id.to_string(),
                model: i.model.to_string(),
                kind: i.kind,
                slots: i.slots,
                in_flight: i.in_flight,
                served: i.served,
                listed: i.listed,
                in_rotation: i.in_rotation(),
            })
            .collect();
        let mut queued = BTreeMap::new();
        for (key, length) in state.queues.lengths() {
            let label = match key {
                QueueKey::Model(model) => model.to_string(),
                QueueKey::Class(class) => Target::AnyOf(*class).label(),
            };
            queued.insert(label, length);
        }
        Snapshot {
            instances,
            queued,
            total_queued: state.queues.total(),
        }
    }
}

fn send_all(handoffs: Vec<(Waiter, SlotGuard)>) {
    for (waiter, guard) in handoffs {
        let _ = waiter.sender.send(guard);
    }
}

fn queue_key(target: &Target) -> QueueKey {
    match target {
        Target::Model(model) => QueueKey::Model(Arc::clone(model)),
        Target::Instance(id) => QueueKey::Model(Arc::from(model_of(id))),
        Target::AnyOf(class) => QueueKey::Class(*class),
    }
}

impl State {
    fn upsert(&mut self, upstream: usize, spec: &InstanceSpec, slots: u32, changes: &mut Changes) {
        let key = (upstream, Arc::<str>::from(spec.id.as_str()));
        if let Some(&index) = self.positions.get(&key) {
            let instance = &mut self.instances[index];
            if !instance.listed {
                changes.added.push(spec.id.clone());
            } else if instance.slots != slots {
                changes.resized.push(spec.id.clone());
            }
            instance.listed = true;
            instance.slots = slots;
            instance.kind = spec.kind;
            return;
        }

        let model: Arc<str> = Arc::from(model_of(&spec.id));
        let index = self.instances.len();
        self.instances.push(Instance {
            upstream,
            id: Arc::clone(&key.1),
            model: Arc::clone(&model),
            kind: spec.kind,
            slots,
            in_flight: 0,
            served: 0,
            listed: true,
            suspended: false,
        });
        self.positions.insert(key, index);
        self.by_model.entry(model).or_default().push(index);
        changes.added.push(spec.id.clone());
    }

    /// Models with at least one listed instance, sorted, for error messages.
    fn loaded_models(&self) -> Vec<String> {
        let mut models: Vec<String> = self
            .by_model
            .iter()
            .filter(|(_, indices)| indices.iter().any(|&i| self.instances[i].listed))
            .map(|(model, _)| model.to_string())
            .collect();
        models.sort();
        models
    }
}

/// Indices of the instances a target may use, listed or not. A model's list is borrowed, not
/// copied, as it is looked up for every request.
fn candidates<'a>(
    by_model: &'a ByName<Vec<usize>>,
    instances: &[Instance],
    target: &Target,
) -> Cow<'a, [usize]> {
    match target {
        Target::Model(model) => Cow::Borrowed(by_model.get(model).map_or(&[][..], Vec::as_slice)),
        Target::Instance(id) => by_model
            .get(model_of(id))
            .map_or_else(Vec::new, |indices| {
                indices
                    .iter()
                    .copied()
                    .filter(|&i| *instances[i].id == **id)
                    .collect()
            })
            .into(),
        Target::AnyOf(class) => (0..instances.len())
            .filter(|&i| instances[i].kind.class() == *class)
            .collect::<Vec<_>>()
            .into(),
    }
}

/// Returns the candidate with a free slot and the lowest in-flight / slots. Ties go to the first
/// one found from a rotating start (`cursor`), so equal instances take turns.
fn pick_least_loaded(
    instances: &[Instance],
    cursor: &mut usize,
    candidates: &[usize],
) -> Option<usize> {
    let count = candidates.len();
    if count == 0 {
        return None;
    }
    let start = *cursor % count;
    *cursor = cursor.wrapping_add(1);

    let mut best: Option<usize> = None;
    for offset in 0..count {
        let index = candidates[(start + offset) % count];
        let instance = &instances[index];
        if !instance.has_free_slot() {
            continue;
        }
        match best {
            Some(current) if !instance.less_loaded_than(&instances[current]) => {}
            _ => best = Some(index),
        }
    }
    best
}

/// A copy of the scheduler's state at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub instances: Vec<InstanceView>,
    /// Waiting requests per model (or per class for `--unknown-model any`).
    pub queued: BTreeMap<String, usize>,
    pub total_queued: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct InstanceView {
    pub upstream: usize,
    pub id: String,
    pub model: String,
    pub kind: ModelKind,
    pub slots: u32,
    pub in_flight: u32,
    pub served: u64,
    pub listed: bool,
    pub in_rotation: bool,
}

#[cfg(test)]
mod tests;
