//! Injected faults: what they do and how requests consume them.
//!
//! Faults apply to inference requests only: POSTs to the chat, completions, embeddings,
//! responses, messages and `/api/v1/chat` endpoints. Model listings, model management and
//! `/sim/*` never see them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::Changes;

/// Faults to inject, also the JSON body of `POST /sim/faults` (which replaces all of them) and
/// of `GET /sim/faults`. Counters go down by one for each request they hit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// The next N inference requests get 500 with `{"error":"..."}`, before routing.
    pub fail_next: u32,
    /// Tokens a stream hit by `close_next` sends before its connection is closed; none means 0.
    /// When the request sets a lower token limit, the connection closes after the last one and
    /// before the finish chunk.
    pub close_after_tokens: Option<u32>,
    /// The next N successful streaming requests lose their connection after
    /// `close_after_tokens` tokens, without the terminating chunk of the chunked body.
    pub close_next: u32,
    /// The next N inference requests are read and get no response until the client
    /// disconnects or the server stops. They take no slot and show neither in the stats nor in
    /// recordings.
    pub hang_next: u32,
    /// The next N successful non-streaming requests get 200 with the first half of their JSON
    /// body only. They use a slot and generate their tokens as usual.
    pub malformed_json_next: u32,
    /// The next N successful streaming requests get, right after their first token, an extra
    /// event that is a copy of the previous one cut in the middle of its JSON, ending in a
    /// blank line. The stream then goes on as usual.
    pub broken_sse_next: u32,
    /// Delay before each inference request is handled (and so before its response headers),
    /// in milliseconds; 0 is off. The request takes no slot while it waits.
    pub header_delay_ms: u64,
    /// Delay before each model listing (`/v1/models`, `/api/v0/models`, `/api/v1/models`) is
    /// returned, in milliseconds; 0 is off. Some OpenAI-compatible servers return listings only
    /// between generations, which this stands in for.
    pub listing_delay_ms: u64,
}

impl Faults {
    fn is_armed(&self) -> bool {
        *self != Faults::default()
    }
}

/// Fault applied to a request before it is routed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EarlyFault {
    Fail,
    Hang,
}

/// Faults that change a successful stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct StreamFaults {
    /// Close the connection after this many tokens.
    pub close_after: Option<u32>,
    pub broken_sse: bool,
}

/// The current faults behind a lock, with a flag that lets requests skip the lock while no
/// fault is set. Every change wakes stats waiters, so tests can wait for a fault to be used.
pub(crate) struct FaultState {
    current: Mutex<Faults>,
    armed: AtomicBool,
    changes: Arc<Changes>,
}

impl FaultState {
    pub fn new(faults: Faults, changes: Arc<Changes>) -> Self {
        let armed = AtomicBool::new(faults.is_armed());
        Self {
            current: Mutex::new(faults),
            armed,
            changes,
        }
    }

    pub fn get(&self) -> Faults {
        self.lock().clone()
    }

    pub fn set(&self, faults: Faults) {
        let mut current = self.lock();
        self.armed.store(faults.is_armed(), Ordering::Release);
        *current = faults;
        drop(current);
        self.changes.changed();
    }

    /// Returns the header delay without consuming anything.
    pub fn header_delay(&self) -> Option<Duration> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let delay = self.lock().header_delay_ms;
        (delay > 0).then(|| Duration::from_millis(delay))
    }

    /// Returns the listing delay without consuming anything.
    pub fn listing_delay(&self) -> Option<Duration> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let delay = self.lock().listing_delay_ms;
        (delay > 0).then(|| Duration::from_millis(delay))
    }

    /// Consumes `fail_next` or, failing that, `hang_next`.
    pub fn take_early(&self) -> Option<EarlyFault> {
        self.update(|faults| {
            if take_one(&mut faults.fail_next) {
                Some(EarlyFault::Fail)
            } else if take_one(&mut faults.hang_next) {
                Some(EarlyFault::Hang)
            } else {
                None
            }
        })
        .flatten()
    }

    /// Consumes the faults of one successful non-streaming response: true means malformed JSON.
    pub fn take_malformed(&self) -> bool {
        self.update(|faults| take_one(&mut faults.malformed_json_next))
            .unwrap_or(false)
    }

    /// Consumes the faults of one successful stream.
    pub fn take_stream(&self) -> StreamFaults {
        self.update(|faults| StreamFaults {
            close_after: take_one(&mut faults.close_next)
                .then(|| faults.close_after_tokens.unwrap_or(0)),
            broken_sse: take_one(&mut faults.broken_sse_next),
        })
        .unwrap_or_default()
    }

    /// Runs `change` under the lock unless no fault is set.
    fn update<T>(&self, change: impl FnOnce(&mut Faults) -> T) -> Option<T> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let mut faults = self.lock();
        let before = faults.clone();
        let result = change(&mut faults);
        self.armed.store(faults.is_armed(), Ordering::Release);
        let changed = *faults != before;
        drop(faults);
        if changed {
            self.changes.changed();
        }
        Some(result)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn take_one(counter: &mut u32) -> bool {
    if *counter == 0 {
        return false;
    }
    *counter -= 1;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_run_down() {
        let state = FaultState::new(
            Faults {
                fail_next: 1,
                hang_next: 1,
                ..Faults::default()
            },
            Arc::default(),
        );
        assert_eq!(state.take_early(), Some(EarlyFault::Fail));
        assert_eq!(state.take_early(), Some(EarlyFault::Hang));
        assert_eq!(state.take_early(), None);
        assert_eq!(state.get(), Faults::default());
    }

    #[test]
    fn close_without_count_closes_at_zero() {
        let state = FaultState::new(
            Faults {
                close_next: 1,
                ..Faults::default()
            },
            Arc::default(),
        );
        assert_eq!(state.take_stream().close_after, Some(0));
        assert_eq!(state.take_stream(), StreamFaults::default());
    }

    #[test]
    fn header_delay_is_not_consumed() {
        let state = FaultState::new(
            Faults {
                header_delay_ms: 5,
                ..Faults::default()
            },
            Arc::default(),
        );
        assert_eq!(state.header_delay(), Some(Duration::from_millis(5)));
        assert_eq!(state.header_delay(), Some(Duration::from_millis(5)));
    }

    #[test]
    fn faults_json_rejects_unknown_fields() {
        let parsed: Result<Faults, _> = serde_json::from_str(r#"{"fail_nxt":1}"#);
        assert!(parsed.is_err());
        let partial: Faults = serde_json::from_str(r#"{"fail_next":2}"#).unwrap();
        assert_eq!(partial.fail_next, 2);
    }
}
