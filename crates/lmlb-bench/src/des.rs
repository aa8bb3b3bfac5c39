//! The ideal scheduler for the scheduling scenario: one FIFO queue feeding `c`
//! identical servers, computed exactly by a discrete-event simulation.
//!
//! In arrival order, each request takes the server that frees first, at the later
//! of its arrival and that server's free time (the Kiefer-Wolfowitz recursion).
//! No server idles while a request waits, and requests start in arrival order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::timeline::Span;

/// The server and time span of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub span: Span,
    /// Index of the server in `0..servers`. Ties go to the lowest index.
    pub server: usize,
}

/// Simulates `requests` (pairs of arrival and service time, sorted by arrival)
/// on `servers` servers behind one FIFO queue.
///
/// # Panics
/// If `servers` is 0 or the arrivals are not sorted.
pub fn simulate_fifo(requests: &[(Duration, Duration)], servers: usize) -> Vec<Placement> {
    assert!(servers > 0, "the simulation needs at least one server");
    assert!(
        requests.windows(2).all(|w| w[0].0 <= w[1].0),
        "requests must be sorted by arrival"
    );

    let mut free_at: BinaryHeap<Reverse<(Duration, usize)>> = (0..servers)
        .map(|id| Reverse((Duration::ZERO, id)))
        .collect();

    requests
        .iter()
        .map(|&(arrival, service)| {
            let Reverse((free, server)) = free_at.pop().expect("one entry per server");
            let start = arrival.max(free);
            let finish = start + service;
            free_at.push(Reverse((finish, server)));
            Placement {
                span: Span {
                    arrival,
                    start,
                    finish,
                },
                server,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::timeline::idle_while_waiting;

    fn s(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn placement(arrival: u64, start: u64, finish: u64, server: usize) -> Placement {
        Placement {
            span: Span {
                arrival: s(arrival),
                start: s(start),
                finish: s(finish),
            },
            server,
        }
    }

    #[test]
    fn two_servers_hand_checked() {
        // Arrivals 0, 0, 0, 1 with services 4, 2, 3, 1 on two servers: the third
        // request waits for server 1 at t=2, the fourth for server 0 at t=4.
        let requests = [(s(0), s(4)), (s(0), s(2)), (s(0), s(3)), (s(1), s(1))];
        let expected = vec![
            placement(0, 0, 4, 0),
            placement(0, 0, 2, 1),
            placement(0, 2, 5, 1),
            placement(1, 4, 5, 0),
        ];
        assert_eq!(simulate_fifo(&requests, 2), expected);
    }

    #[test]
    fn three_servers_hand_checked() {
        // Services 10, 1, 1 at t=0 fill all servers. The request at t=2 finds
        // servers 1 and 2 free since t=1 and takes server 1 (lowest index).
        // The first request at t=3 takes server 2, and the second waits until
        // server 1 frees at t=7.
        let requests = [
            (s(0), s(10)),
            (s(0), s(1)),
            (s(0), s(1)),
            (s(2), s(5)),
            (s(3), s(5)),
            (s(3), s(1)),
        ];
        let expected = vec![
            placement(0, 0, 10, 0),
            placement(0, 0, 1, 1),
            placement(0, 0, 1, 2),
            placement(2, 2, 7, 1),
            placement(3, 3, 8, 2),
            placement(3, 7, 8, 1),
        ];
        assert_eq!(simulate_fifo(&requests, 3), expected);
    }

    #[test]
    fn one_server_follows_lindley_recursion() {
        let mut rng = SplitMix64::new(5);
        let mut clock = 0.0;
        let requests: Vec<(Duration, Duration)> = (0..1000)
            .map(|_| {
                clock += rng.exponential(1.0);
                let service = rng.exponential(1.1);
                (
                    Duration::from_secs_f64(clock),
                    Duration::from_secs_f64(service),
                )
            })
            .collect();

        let placements = simulate_fifo(&requests, 1);

        let mut previous_finish = Duration::ZERO;
        for (p, &(arrival, service)) in placements.iter().zip(&requests) {
            assert_eq!(p.span.start, arrival.max(previous_finish));
            assert_eq!(p.span.finish, p.span.start + service);
            previous_finish = p.span.finish;
        }
    }

    #[test]
    fn starts_follow_arrival_order() {
        let mut rng = SplitMix64::new(6);
        let mut clock = 0.0;
        let requests: Vec<(Duration, Duration)> = (0..2000)
            .map(|_| {
                clock += rng.exponential(3.0);
                (
                    Duration::from_secs_f64(clock),
                    Duration::from_secs_f64(rng.log_normal(-1.0, 1.2)),
                )
            })
            .collect();

        let placements = simulate_fifo(&requests, 3);

        assert!(
            placements
                .windows(2)
                .all(|w| w[0].span.start <= w[1].span.start)
        );
    }

    #[test]
    fn no_server_idles_while_a_request_waits() {
        let mut rng = SplitMix64::new(8);
        let mut clock = 0.0;
        let requests: Vec<(Duration, Duration)> = (0..2000)
            .map(|_| {
                clock += rng.exponential(5.0);
                (
                    Duration::from_secs_f64(clock),
                    Duration::from_secs_f64(rng.log_normal(-1.0, 1.2)),
                )
            })
            .collect();

        let placements = simulate_fifo(&requests, 3);
        let spans: Vec<Span> = placements.iter().map(|p| p.span).collect();

        assert_eq!(idle_while_waiting(&spans, 3), Duration::ZERO);
    }

    #[test]
    fn server_runs_one_request_at_a_time() {
        let mut rng = SplitMix64::new(9);
        let mut clock = 0.0;
        let requests: Vec<(Duration, Duration)> = (0..500)
            .map(|_| {
                clock += rng.exponential(4.0);
                (
                    Duration::from_secs_f64(clock),
                    Duration::from_secs_f64(rng.exponential(1.5)),
                )
            })
            .collect();

        let placements = simulate_fifo(&requests, 3);

        for server in 0..3 {
            let mut spans: Vec<Span> = placements
                .iter()
                .filter(|p| p.server == server)
                .map(|p| p.span)
                .collect();
            spans.sort_by_key(|span| span.start);
            assert!(spans.windows(2).all(|w| w[0].finish <= w[1].start));
        }
    }

    #[test]
    fn empty_trace_gives_no_placements() {
        assert!(simulate_fifo(&[], 3).is_empty());
    }
}
