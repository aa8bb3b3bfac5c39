//! A minimal HTTP/1.1 client over hyper for the integration tests, with SSE parsing.
//!
//! Each request uses its own connection, so a test can disconnect one request by
//! closing its connection.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use lmstudio_sim::{SimConfig, Simulator, Stats};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Upper bound for anything a test waits for; only reached when the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The default models with fast timing: no time to first token and 50 ms per token, so
/// a request with `max_tokens: 1` finishes at once and a long one keeps its slot busy.
pub fn fast_config() -> SimConfig {
    SimConfig {
        tokens_per_second: 20.0,
        ttft: Duration::ZERO,
        load_time: Duration::from_millis(50),
        ..SimConfig::default()
    }
}

pub fn config_with_models(specs: &[&str]) -> SimConfig {
    SimConfig {
        models: SimConfig::with_models(specs).models,
        ..fast_config()
    }
}

pub async fn start(config: SimConfig) -> Simulator {
    lmstudio_sim::start(config).await.expect("simulator starts")
}

/// Waits until `pred` holds for the stats; panics after [`WAIT`].
pub async fn wait_for(sim: &Simulator, what: &str, pred: impl Fn(&Stats) -> bool) -> Stats {
    match tokio::time::timeout(WAIT, sim.wait_for(pred)).await {
        Ok(stats) => stats,
        Err(_) => panic!("timed out waiting for {what}; stats: {:?}", sim.stats()),
    }
}

/// Runs a future with the [`WAIT`] timeout.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// One HTTP/1.1 connection; dropping or closing it closes the socket.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender, driver })
    }

    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> hyper::Result<http::Response<Incoming>> {
        self.sender.send_request(request).await
    }

    /// Closes the socket at once, like a client that went away.
    pub fn close(self) {
        self.driver.abort();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub fn request(
    method: Method,
    path: &str,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(body.into())).expect("valid request")
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn send(sim: &Simulator, request: Request<Full<Bytes>>) -> Reply {
    let mut connection = Connection::open(sim.addr()).await.expect("connect");
    let response = connection.send(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("complete body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn post(sim: &Simulator, path: &str, body: &Value) -> Reply {
    send(sim, request(Method::POST, path, body.to_string(), &[])).await
}

pub async fn get(sim: &Simulator, path: &str) -> Reply {
    send(sim, request(Method::GET, path, Bytes::new(), &[])).await
}

/// Returns a chat completion body with a one-message prompt.
pub fn chat(model: &str, prompt: &str, max_tokens: u32) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
    })
}

pub fn chat_stream(model: &str, prompt: &str, max_tokens: u32) -> Value {
    let mut body = chat(model, prompt, max_tokens);
    body["stream"] = Value::Bool(true);
    body
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|error| panic!("event data is not JSON ({error}): {}", self.data))
    }
}

/// A streaming response read event by event; keeps its connection open.
pub struct EventStream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    buffer: Vec<u8>,
    /// Every body byte received so far.
    pub received: Vec<u8>,
    connection: Connection,
}

impl EventStream {
    pub async fn open(sim: &Simulator, path: &str, body: &Value) -> Self {
        let mut connection = Connection::open(sim.addr()).await.expect("connect");
        let request = request(Method::POST, path, body.to_string(), &[]);
        let response = connection.send(request).await.expect("response head");
        let (parts, body) = response.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            body,
            buffer: Vec::new(),
            received: Vec::new(),
            connection,
        }
    }

    /// Returns the next event, `Ok(None)` at the end of the body, or the error that ended
    /// the body early.
    pub async fn next_event(&mut self) -> Result<Option<Event>, hyper::Error> {
        loop {
            if let Some(end) = find(&self.buffer, b"\n\n") {
                let raw: Vec<u8> = self.buffer.drain(..end + 2).collect();
                return Ok(Some(parse_event(&raw[..end])));
            }
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            if let Ok(data) = frame?.into_data() {
                self.received.extend_from_slice(&data);
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    /// Reads every event up to the end of the body; panics if it ends with an error.
    pub async fn collect(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(event) = within("next event", self.next_event())
            .await
            .expect("stream ends cleanly")
        {
            events.push(event);
        }
        events
    }

    pub fn disconnect(self) {
        self.connection.close();
    }
}

fn parse_event(raw: &[u8]) -> Event {
    let text = String::from_utf8_lossy(raw);
    let mut name = None;
    let mut data = Vec::new();
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("event: ") {
            name = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("data: ") {
            data.push(value);
        }
    }
    Event {
        name,
        data: data.join("\n"),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Opens a stream of many tokens on `model` and reads its first event, so the request
/// keeps a slot busy until the stream is disconnected.
pub async fn hold_slot(sim: &Simulator, model: &str) -> EventStream {
    let mut stream = EventStream::open(
        sim,
        "/v1/chat/completions",
        &chat_stream(model, "hold", 100_000),
    )
    .await;
    assert_eq!(stream.status, StatusCode::OK);
    within("first event", stream.next_event())
        .await
        .expect("first event")
        .expect("an event");
    stream
}

/// Spawns a request on its own connection, so it can wait in a queue.
pub fn spawn_post(sim: &Simulator, path: &'static str, body: Value) -> JoinHandle<Reply> {
    let sim = sim.clone();
    tokio::spawn(async move { post(&sim, path, &body).await })
}
