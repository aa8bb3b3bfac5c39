//! Open-loop replay of a timed trace: each request is sent at its own arrival
//! time on its own connection, whether or not earlier ones have finished.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::http::ClientError;
use super::stream::{StreamTiming, stream_once};
use crate::progress::Progress;

#[derive(Debug, Clone)]
pub struct TimedRequest {
    /// Send time from the start of the replay.
    pub arrival: Duration,
    /// A streaming chat request body.
    pub body: Bytes,
}

#[derive(Debug)]
pub struct ReplayReport {
    /// When the replay started, the zero of every arrival time.
    pub started: Instant,
    /// One outcome per request, in trace order.
    pub outcomes: Vec<Result<StreamTiming, ClientError>>,
}

/// Replays `requests` against `addr` as streams and waits for all of them.
pub async fn run(addr: SocketAddr, requests: &[TimedRequest], progress: &Progress) -> ReplayReport {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, request) in requests.iter().enumerate() {
        let send_at = started + request.arrival;
        let body = request.body.clone();
        tasks.spawn(async move {
            tokio::time::sleep_until(send_at.into()).await;
            (index, stream_once(addr, body).await)
        });
    }

    let mut outcomes: Vec<Option<Result<StreamTiming, ClientError>>> =
        (0..requests.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, outcome) = joined.expect("replay tasks do not panic");
        outcomes[index] = Some(outcome);
        progress.advance(1);
    }

    ReplayReport {
        started,
        outcomes: outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every task reported"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::http::chat_body;
    use crate::loadgen::test_server::TestServer;

    #[tokio::test]
    async fn requests_leave_at_their_arrival_times() {
        let server = TestServer::start(Duration::from_millis(2)).await;
        let requests: Vec<TimedRequest> = [0u64, 30, 60, 60]
            .iter()
            .map(|&ms| TimedRequest {
                arrival: Duration::from_millis(ms),
                body: chat_body("m", 3, true),
            })
            .collect();

        let report = run(server.addr(), &requests, &Progress::hidden()).await;

        assert_eq!(report.outcomes.len(), 4);
        for (request, outcome) in requests.iter().zip(&report.outcomes) {
            let timing = outcome.as_ref().expect("the stream completes");
            let sent = timing.sent - report.started;
            assert!(
                sent >= request.arrival,
                "sent at {sent:?}, due at {:?}",
                request.arrival
            );
            assert!(
                sent < request.arrival + Duration::from_millis(40),
                "sent at {sent:?}, due at {:?}",
                request.arrival
            );
            assert_eq!(timing.tokens, 3);
        }
    }
}
