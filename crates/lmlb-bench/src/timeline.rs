//! Request timelines (arrival, start of service, finish) and the idle time that
//! a scheduler wasted: instance time left idle while a request waited.

use std::time::Duration;

/// One request's timeline, all times from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// When the client sent the request.
    pub arrival: Duration,
    /// When an instance began to serve it.
    pub start: Duration,
    /// When its last byte reached the client.
    pub finish: Duration,
}

impl Span {
    pub fn latency(&self) -> Duration {
        self.finish.saturating_sub(self.arrival)
    }

    pub fn wait(&self) -> Duration {
        self.start.saturating_sub(self.arrival)
    }
}

/// Sums, over time, the number of idle instances that could have served a
/// waiting request: the integral of `min(idle instances, waiting requests)`.
///
/// A request waits from `arrival` to `start` and occupies an instance from `start`
/// to `finish`. When measured spans overlap more than `servers` at once (start
/// times are estimates), the idle count is taken as zero.
pub fn idle_while_waiting(spans: &[Span], servers: usize) -> Duration {
    let events = sorted_events(spans);

    let mut waiting: i64 = 0;
    let mut busy: i64 = 0;
    let mut total = Duration::ZERO;
    let mut previous = Duration::ZERO;
    for (time, waiting_delta, busy_delta) in events {
        let idle = (servers as i64 - busy).max(0);
        let wasted = idle.min(waiting).max(0) as u32;
        total += (time - previous) * wasted;

        waiting += waiting_delta;
        busy += busy_delta;
        previous = time;
    }
    total
}

/// Returns (time, change in waiting requests, change in busy instances), sorted
/// by time. Changes at the same time are summed in the sweep before any interval
/// is measured, so their order does not matter.
fn sorted_events(spans: &[Span]) -> Vec<(Duration, i64, i64)> {
    let mut events = Vec::with_capacity(spans.len() * 3);
    for span in spans {
        let start = span.start.max(span.arrival);
        let finish = span.finish.max(start);
        events.push((span.arrival, 1, 0));
        events.push((start, -1, 1));
        events.push((finish, 0, -1));
    }
    events.sort_by_key(|&(time, _, _)| time);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(arrival: u64, start: u64, finish: u64) -> Span {
        let s = Duration::from_secs;
        Span {
            arrival: s(arrival),
            start: s(start),
            finish: s(finish),
        }
    }

    #[test]
    fn waiting_beside_an_idle_instance_counts() {
        // Two instances, and the second request waits 0..5 while one is idle.
        let spans = [span(0, 0, 10), span(0, 5, 8)];
        assert_eq!(idle_while_waiting(&spans, 2), Duration::from_secs(5));
    }

    #[test]
    fn waiting_while_all_busy_is_free() {
        // One instance, busy 0..4, and the second request waits 1..4 for it.
        let spans = [span(0, 0, 4), span(1, 4, 6)];
        assert_eq!(idle_while_waiting(&spans, 1), Duration::ZERO);
    }

    #[test]
    fn count_limited_by_idle_instances() {
        // Three instances with one busy 0..10. Three requests wait 0..2 but only two
        // instances are idle, so 2 instance-seconds are wasted per second.
        let spans = [span(0, 0, 10), span(0, 2, 3), span(0, 2, 3), span(0, 2, 3)];
        assert_eq!(idle_while_waiting(&spans, 3), Duration::from_secs(4));
    }

    #[test]
    fn count_limited_by_waiting_requests() {
        // Three idle instances and one request waiting 1..4: 3 seconds wasted.
        let spans = [span(1, 4, 5)];
        assert_eq!(idle_while_waiting(&spans, 3), Duration::from_secs(3));
    }

    #[test]
    fn overlap_beyond_servers_counts_no_idle() {
        // Estimated spans may overlap more than the instance count.
        let spans = [span(0, 0, 5), span(0, 0, 5), span(0, 1, 5)];
        assert_eq!(idle_while_waiting(&spans, 2), Duration::ZERO);
    }

    #[test]
    fn start_before_arrival_is_clamped() {
        let spans = [span(3, 1, 5)];
        assert_eq!(idle_while_waiting(&spans, 1), Duration::ZERO);
    }

    #[test]
    fn latency_and_wait() {
        let s = span(2, 5, 9);
        assert_eq!(s.latency(), Duration::from_secs(7));
        assert_eq!(s.wait(), Duration::from_secs(3));
    }

    #[test]
    fn no_spans_no_idle_time() {
        assert_eq!(idle_while_waiting(&[], 3), Duration::ZERO);
    }
}
