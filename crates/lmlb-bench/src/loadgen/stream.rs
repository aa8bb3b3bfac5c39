//! Concurrent SSE streams with the arrival time of every token.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::http::{CHAT_PATH, ClientError, Connection, post_json};
use super::sse::{SseEvent, SseParser};
use crate::histogram::LatencyHistogram;
use crate::progress::Progress;

/// Token arrival times of one stream.
#[derive(Debug, Clone)]
pub struct StreamTiming {
    pub sent: Instant,
    /// Arrival of the first event that carried text, or `None` if none did.
    pub first_token: Option<Instant>,
    /// Arrival of `data: [DONE]`.
    pub finished: Instant,
    /// Time between consecutive tokens. Tokens that arrive in one read share an
    /// arrival time, so their gap is zero, as a client would see it.
    pub gaps: Vec<Duration>,
    /// Times from the simulator's send to the arrival here, one per token that carries the send
    /// time. Both ends read the system clock.
    pub transits: Vec<Duration>,
    pub tokens: u32,
}

/// Reads a streaming response to its end, timestamping each token when the
/// frame carrying it arrives.
pub async fn read_stream(
    response: Response<Incoming>,
    sent: Instant,
) -> Result<StreamTiming, ClientError> {
    let mut body = response.into_body();
    let mut parser = SseParser::default();
    let mut first_token = None;
    let mut previous_token: Option<Instant> = None;
    let mut gaps = Vec::new();
    let mut transits = Vec::new();
    let mut tokens = 0;

    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let now = Instant::now();
        let now_us = unix_micros();
        for event in parser.feed(&data) {
            match event {
                SseEvent::Token(sent_us) => {
                    if let Some(sent_us) = sent_us {
                        transits.push(Duration::from_micros(now_us.saturating_sub(sent_us)));
                    }
                    tokens += 1;
                    first_token.get_or_insert(now);
                    if let Some(previous) = previous_token {
                        gaps.push(now - previous);
                    }
                    previous_token = Some(now);
                }
                SseEvent::Done => {
                    return Ok(StreamTiming {
                        sent,
                        first_token,
                        finished: now,
                        gaps,
                        transits,
                        tokens,
                    });
                }
                SseEvent::Other => {}
            }
        }
    }
    Err(ClientError::Truncated { tokens })
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// Opens a connection, sends one streaming request and reads it to the end.
pub async fn stream_once(addr: SocketAddr, body: Bytes) -> Result<StreamTiming, ClientError> {
    let mut connection = Connection::open(addr).await?;
    let sent = Instant::now();
    let response = connection.send(post_json(addr, CHAT_PATH, body)).await?;
    read_stream(response, sent).await
}

#[derive(Debug, Clone)]
pub struct StreamLoad {
    pub addr: SocketAddr,
    pub streams: usize,
    /// Stream starts are spread evenly over this time, as clients arrive.
    pub ramp: Duration,
    /// A streaming chat request body.
    pub body: Bytes,
}

#[derive(Debug, Default)]
pub struct StreamReport {
    pub time_to_first_token: LatencyHistogram,
    pub inter_token: LatencyHistogram,
    /// From the simulator writing a token to its arrival, for tokens that carry the time.
    pub transit: LatencyHistogram,
    /// From sending the request to `data: [DONE]`.
    pub total: LatencyHistogram,
    pub completed: u64,
    pub errors: u64,
    pub tokens: u64,
    pub elapsed: Duration,
    /// The first few errors, for the log.
    pub error_samples: Vec<String>,
}

/// Runs `load.streams` streams at once and merges their timings.
pub async fn run(load: &StreamLoad, progress: &Progress) -> StreamReport {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..load.streams {
        let delay = load.ramp.mul_f64(index as f64 / load.streams.max(1) as f64);
        let (addr, body) = (load.addr, load.body.clone());
        tasks.spawn(async move {
            tokio::time::sleep_until((started + delay).into()).await;
            stream_once(addr, body).await
        });
    }

    let mut report = StreamReport::default();
    while let Some(joined) = tasks.join_next().await {
        let result = joined.expect("stream tasks do not panic");
        report.add(result);
        progress.advance(1);
    }
    report.elapsed = started.elapsed();
    report
}

impl StreamReport {
    fn add(&mut self, result: Result<StreamTiming, ClientError>) {
        let timing = match result {
            Ok(timing) => timing,
            Err(error) => {
                self.errors += 1;
                if self.error_samples.len() < 5 {
                    self.error_samples.push(error.to_string());
                }
                return;
            }
        };
        self.completed += 1;
        self.tokens += u64::from(timing.tokens);
        if let Some(first) = timing.first_token {
            self.time_to_first_token.record(first - timing.sent);
        }
        for gap in &timing.gaps {
            self.inter_token.record(*gap);
        }
        for transit in &timing.transits {
            self.transit.record(*transit);
        }
        self.total.record(timing.finished - timing.sent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::http::chat_body;
    use crate::loadgen::test_server::TestServer;

    #[tokio::test]
    async fn streams_report_tokens_and_gaps() {
        let server = TestServer::start(Duration::from_millis(5)).await;
        let load = StreamLoad {
            addr: server.addr(),
            streams: 20,
            ramp: Duration::from_millis(50),
            body: chat_body("m", 8, true),
        };

        let report = run(&load, &Progress::hidden()).await;

        assert_eq!(report.errors, 0, "{:?}", report.error_samples);
        assert_eq!(report.completed, 20);
        assert_eq!(report.tokens, 20 * 8);
        assert_eq!(report.inter_token.count(), 20 * 7);
        assert!(report.inter_token.quantile(0.5) >= Duration::from_millis(4));
        assert!(report.time_to_first_token.quantile(0.5) >= Duration::from_millis(4));
    }

    #[tokio::test]
    async fn truncated_stream_is_an_error() {
        let server = TestServer::start(Duration::ZERO).await;
        let body = chat_body("truncate", 4, true);

        let result = stream_once(server.addr(), body).await;

        assert!(
            matches!(result, Err(ClientError::Truncated { tokens: 4 })),
            "{result:?}"
        );
    }
}
