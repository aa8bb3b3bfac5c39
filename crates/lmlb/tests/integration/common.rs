//! Shared set-up: simulators, an lmlb in front of them, and a small HTTP client.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lmlb::{Config, Server};
use lmstudio_sim::{SimConfig, Simulator};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on every wait in these tests; reached only when something is broken.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub const MODEL: &str = "qwen2.5-7b-instruct";

/// Builds a simulator configuration whose generation takes `tokens / tokens_per_second`, with no first-token delay.
pub fn sim_config(specs: &[&str], tokens_per_second: f64) -> SimConfig {
    let mut config = SimConfig::with_models(specs);
    config.tokens_per_second = tokens_per_second;
    config.ttft = Duration::ZERO;
    config
}

pub async fn start_sim(config: SimConfig) -> Simulator {
    lmstudio_sim::start(config).await.expect("simulator starts")
}

/// lmlb's configuration for tests: port 0, quick refresh, everything else default.
pub fn lmlb_config(upstreams: &[&Simulator]) -> Config {
    let urls: Vec<String> = upstreams.iter().map(|sim| sim.url()).collect();
    let mut config = Config::for_upstreams(&urls).expect("valid upstream URLs");
    config.listen.set_port(0);
    config.refresh_interval = Duration::from_millis(100);
    config
}

pub async fn start_lmlb(config: Config) -> Server {
    Server::start(config).await.expect("lmlb starts")
}

/// Starts one simulator with the given models and an lmlb in front of it.
pub async fn setup(specs: &[&str], tokens_per_second: f64) -> (Simulator, Server) {
    let sim = start_sim(sim_config(specs, tokens_per_second)).await;
    let lmlb = start_lmlb(lmlb_config(&[&sim])).await;
    (sim, lmlb)
}

pub fn chat_body(model: &str, max_tokens: u32, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say something"}],
    })
    .to_string()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("missing header {name}"))
            .to_str()
            .unwrap()
    }

    /// Returns the `message` of an OpenAI error body.
    pub fn error_message(&self) -> String {
        let json = self.json();
        json["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {json}"))
            .to_string()
    }

    /// Asserts an OpenAI error body with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        let json = self.json();
        assert_eq!(json["error"]["code"], code, "body: {json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(json["error"]["type"].is_string());
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let response = send(method, url, headers, body).await;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("complete response body")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Sends a request and returns the response with its body still streaming.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> http::Response<Incoming> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(body.into())).unwrap();
    client()
        .request(request)
        .await
        .expect("request reaches the server")
}

pub async fn post(base: &str, path: &str, body: &str) -> Reply {
    request(
        Method::POST,
        &format!("{base}{path}"),
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

pub async fn get(base: &str, path: &str) -> Reply {
    request(Method::GET, &format!("{base}{path}"), &[], Bytes::new()).await
}

pub async fn chat(base: &str, model: &str, max_tokens: u32) -> Reply {
    post(
        base,
        "/v1/chat/completions",
        &chat_body(model, max_tokens, false),
    )
    .await
}

/// Polls `condition` until it holds, failing the test after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Requests in flight in lmlb, over all instances.
pub fn lmlb_in_flight(server: &Server) -> u32 {
    server
        .app()
        .scheduler
        .snapshot()
        .instances
        .iter()
        .map(|i| i.in_flight)
        .sum()
}

pub fn lmlb_queued(server: &Server) -> usize {
    server.app().scheduler.snapshot().total_queued
}

/// Waits for the simulator's stats to satisfy `condition`.
pub async fn sim_until(
    sim: &Simulator,
    what: &str,
    condition: impl Fn(&lmstudio_sim::Stats) -> bool,
) -> lmstudio_sim::Stats {
    tokio::time::timeout(PATIENCE, sim.wait_for(condition))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}; stats: {:?}", sim.stats()))
}

/// A raw HTTP/1.1 client connection, for tests that drop the connection midway.
pub struct RawConnection {
    pub stream: TcpStream,
    pub received: Vec<u8>,
}

impl RawConnection {
    pub async fn post(addr: SocketAddr, path: &str, body: &str) -> RawConnection {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        RawConnection {
            stream,
            received: Vec::new(),
        }
    }

    /// Reads until the received bytes contain `needle`.
    pub async fn read_until(&mut self, needle: &str) {
        let mut buffer = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !String::from_utf8_lossy(&self.received).contains(needle) {
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut buffer))
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}"))
                .unwrap();
            assert!(read > 0, "connection closed before {needle:?} arrived");
            self.received.extend_from_slice(&buffer[..read]);
        }
    }
}
