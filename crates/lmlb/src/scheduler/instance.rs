//! One loaded model instance on one upstream, as the scheduler tracks it.

use std::sync::Arc;

use crate::model::ModelKind;

#[derive(Debug)]
pub(super) struct Instance {
    pub upstream: usize,
    pub id: Arc<str>,
    pub model: Arc<str>,
    pub kind: ModelKind,
    /// Requests the instance runs at once: the override, else the reported `parallel`, else 1.
    pub slots: u32,
    pub in_flight: u32,
    pub served: u64,
    /// Listed by its upstream at the last successful check.
    pub listed: bool,
    /// Taken out of rotation after a connection failure, until the upstream's next check.
    pub suspended: bool,
}

impl Instance {
    /// Returns whether the instance takes new work now.
    pub fn in_rotation(&self) -> bool {
        self.listed && !self.suspended
    }

    pub fn has_free_slot(&self) -> bool {
        self.in_rotation() && self.in_flight < self.slots
    }

    /// Returns whether `self` is less loaded than `other`, comparing in-flight / slots without division.
    pub fn less_loaded_than(&self, other: &Instance) -> bool {
        u64::from(self.in_flight) * u64::from(other.slots)
            < u64::from(other.in_flight) * u64::from(self.slots)
    }
}
