//! Closed-loop load: each connection sends its next request as soon as the
//! previous response has fully arrived. The connections stay open between
//! runs, so that targets can take turns on the same keep-alive connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;

use super::http::{ClientError, Connection, post_json};
use crate::histogram::LatencyHistogram;

/// Pause before reconnecting after an error, so a dead target is not spun on.
const ERROR_BACKOFF: Duration = Duration::from_millis(20);
/// Error messages kept per report.
const ERROR_SAMPLES: usize = 5;

#[derive(Debug, Default)]
pub struct ClosedReport {
    /// Latency of the requests that finished in the measured window.
    pub latency: LatencyHistogram,
    pub completed: u64,
    pub errors: u64,
    pub window: Duration,
    pub error_samples: Vec<String>,
}

impl ClosedReport {
    pub fn requests_per_sec(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64()
    }

    /// Adds the requests of `other`, measured in a window that did not overlap
    /// this one's.
    pub fn append(&mut self, other: ClosedReport) {
        self.window += other.window;
        self.merge(other);
    }

    /// Adds the requests of `other`, measured in the same window.
    fn merge(&mut self, other: ClosedReport) {
        self.latency.merge(&other.latency);
        self.completed += other.completed;
        self.errors += other.errors;
        for sample in other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.push(sample);
            }
        }
    }
}

/// Keep-alive connections to one target, each sending the same request in a
/// closed loop whenever [`ClosedLoop::run_for`] runs.
pub struct ClosedLoop {
    request: Request,
    connections: Vec<Option<Connection>>,
}

/// The request that every connection sends.
#[derive(Clone)]
struct Request {
    addr: SocketAddr,
    path: &'static str,
    body: Bytes,
}

impl ClosedLoop {
    /// Prepares `connections` connections, which open on the first run.
    pub fn new(addr: SocketAddr, path: &'static str, body: Bytes, connections: usize) -> Self {
        Self {
            request: Request { addr, path, body },
            connections: (0..connections).map(|_| None).collect(),
        }
    }

    /// Runs every connection for `duration` and returns the requests that
    /// finished within it. Requests still in flight at the end finish before
    /// this returns, uncounted.
    pub async fn run_for(&mut self, duration: Duration) -> ClosedReport {
        let end = Instant::now() + duration;
        let mut tasks = tokio::task::JoinSet::new();
        for connection in self.connections.drain(..) {
            let request = self.request.clone();
            tasks.spawn(async move { run_connection(connection, &request, end).await });
        }

        let mut report = ClosedReport {
            window: duration,
            ..ClosedReport::default()
        };
        while let Some(joined) = tasks.join_next().await {
            let (connection, connection_report) = joined.expect("load tasks do not panic");
            self.connections.push(connection);
            report.merge(connection_report);
        }
        report
    }
}

async fn run_connection(
    mut connection: Option<Connection>,
    request: &Request,
    end: Instant,
) -> (Option<Connection>, ClosedReport) {
    let mut report = ClosedReport::default();
    while Instant::now() < end {
        let sent = Instant::now();
        let result = send_one(&mut connection, request).await;
        let finished = Instant::now();
        let counted = finished < end;

        match result {
            Ok(()) if counted => {
                report.completed += 1;
                report.latency.record(finished - sent);
            }
            Ok(()) => {}
            Err(error) => {
                connection = None;
                if counted {
                    report.errors += 1;
                    if report.error_samples.len() < ERROR_SAMPLES {
                        report.error_samples.push(error.to_string());
                    }
                }
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    (connection, report)
}

async fn send_one(
    connection: &mut Option<Connection>,
    request: &Request,
) -> Result<(), ClientError> {
    if connection.as_ref().is_none_or(Connection::is_closed) {
        *connection = Some(Connection::open(request.addr).await?);
    }
    let open = connection.as_mut().expect("opened above");
    let message = post_json(request.addr, request.path, request.body.clone());
    let response = open.send(message).await?;
    response.into_body().collect().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::http::{CHAT_PATH, chat_body};
    use crate::loadgen::test_server::TestServer;

    #[tokio::test]
    async fn counts_requests_in_the_window() {
        let server = TestServer::start(Duration::ZERO).await;
        let mut load = ClosedLoop::new(server.addr(), CHAT_PATH, chat_body("m", 4, false), 4);

        let report = load.run_for(Duration::from_millis(300)).await;

        assert_eq!(report.errors, 0, "{:?}", report.error_samples);
        assert!(report.completed > 10, "only {} requests", report.completed);
        assert_eq!(report.latency.count(), report.completed);
        assert_eq!(report.window, Duration::from_millis(300));
        assert_eq!(server.connections(), 4);
    }

    #[tokio::test]
    async fn later_runs_reuse_the_connections() {
        let server = TestServer::start(Duration::ZERO).await;
        let mut load = ClosedLoop::new(server.addr(), CHAT_PATH, chat_body("m", 4, false), 3);

        let mut report = load.run_for(Duration::from_millis(100)).await;
        let first = report.completed;
        report.append(load.run_for(Duration::from_millis(200)).await);

        assert!(
            first > 0 && report.completed > first,
            "{first} then {}",
            report.completed
        );
        assert_eq!(report.window, Duration::from_millis(300));
        assert_eq!(report.errors, 0, "{:?}", report.error_samples);
        assert_eq!(server.connections(), 3);
    }

    #[tokio::test]
    async fn counts_error_statuses() {
        let server = TestServer::start(Duration::ZERO).await;
        let mut load = ClosedLoop::new(server.addr(), "/fail", chat_body("m", 4, false), 2);

        let report = load.run_for(Duration::from_millis(200)).await;

        assert_eq!(report.completed, 0);
        assert!(report.errors > 0);
        assert!(
            report.error_samples[0].contains("500"),
            "{:?}",
            report.error_samples
        );
    }

    #[tokio::test]
    async fn dead_target_gives_errors_not_a_hang() {
        let addr = crate::process::loopback(crate::process::free_port().unwrap());
        let mut load = ClosedLoop::new(addr, CHAT_PATH, chat_body("m", 4, false), 2);

        let report = load.run_for(Duration::from_millis(100)).await;

        assert_eq!(report.completed, 0);
        assert!(report.errors > 0);
    }
}
