//! Closed-loop load: each connection sends its next request as soon as the
//! previous response has fully arrived.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;

use super::http::{ClientError, Connection, post_json};
use crate::histogram::LatencyHistogram;
use crate::progress::Progress;

/// Pause before reconnecting after an error, so a dead target is not spun on.
const ERROR_BACKOFF: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub struct ClosedLoad {
    pub addr: SocketAddr,
    pub path: &'static str,
    pub body: Bytes,
    pub connections: usize,
    /// Requests that finish during warm-up are not counted.
    pub warmup: Duration,
    /// Measured time after the warm-up.
    pub duration: Duration,
}

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

    fn merge(&mut self, other: ClosedReport) {
        self.latency.merge(&other.latency);
        self.completed += other.completed;
        self.errors += other.errors;
        for sample in other.error_samples {
            if self.error_samples.len() < 5 {
                self.error_samples.push(sample);
            }
        }
    }
}

/// Runs the load and returns the merged report of all connections.
pub async fn run(load: &ClosedLoad, progress: &Progress) -> ClosedReport {
    let started = Instant::now();
    let window_start = started + load.warmup;
    let end = window_start + load.duration;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..load.connections {
        let load = load.clone();
        tasks.spawn(async move { run_connection(&load, window_start, end).await });
    }
    let ticker = progress.track_time(load.warmup + load.duration);

    let mut report = ClosedReport {
        window: load.duration,
        ..ClosedReport::default()
    };
    while let Some(joined) = tasks.join_next().await {
        report.merge(joined.expect("load tasks do not panic"));
    }
    ticker.abort();
    report
}

async fn run_connection(load: &ClosedLoad, window_start: Instant, end: Instant) -> ClosedReport {
    let mut report = ClosedReport::default();
    let mut connection: Option<Connection> = None;

    while Instant::now() < end {
        let sent = Instant::now();
        let result = send_one(&mut connection, load).await;
        let finished = Instant::now();
        let counted = finished >= window_start && finished < end;

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
                    if report.error_samples.len() < 5 {
                        report.error_samples.push(error.to_string());
                    }
                }
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    report
}

async fn send_one(
    connection: &mut Option<Connection>,
    load: &ClosedLoad,
) -> Result<(), ClientError> {
    if connection.as_ref().is_none_or(Connection::is_closed) {
        *connection = Some(Connection::open(load.addr).await?);
    }
    let open = connection.as_mut().expect("opened above");
    let request = post_json(load.addr, load.path, load.body.clone());
    let response = open.send(request).await?;
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
        let load = ClosedLoad {
            addr: server.addr(),
            path: CHAT_PATH,
            body: chat_body("m", 4, false),
            connections: 4,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(300),
        };

        let report = run(&load, &Progress::hidden()).await;

        assert_eq!(report.errors, 0, "{:?}", report.error_samples);
        assert!(report.completed > 10, "only {} requests", report.completed);
        assert_eq!(report.latency.count(), report.completed);
        // Keep-alive: four connections for all requests (warm-up included).
        assert_eq!(server.connections(), 4);
    }

    #[tokio::test]
    async fn counts_error_statuses() {
        let server = TestServer::start(Duration::ZERO).await;
        let load = ClosedLoad {
            addr: server.addr(),
            path: "/fail",
            body: chat_body("m", 4, false),
            connections: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(200),
        };

        let report = run(&load, &Progress::hidden()).await;

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
        let load = ClosedLoad {
            addr,
            path: CHAT_PATH,
            body: chat_body("m", 4, false),
            connections: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(100),
        };

        let report = run(&load, &Progress::hidden()).await;

        assert_eq!(report.completed, 0);
        assert!(report.errors > 0);
    }
}
