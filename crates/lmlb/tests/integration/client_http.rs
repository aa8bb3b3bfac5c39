//! lmlb's HTTP/1.1 server as clients meet it, over raw sockets: keep-alive and pipelining,
//! chunked request bodies, `Expect: 100-continue`, HTTP/1.0, HEAD, and refused heads.

use std::net::SocketAddr;
use std::time::Duration;

use lmlb::Server;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{MODEL, PATIENCE, chat_body, lmlb_in_flight, setup};

/// One response as read off the wire.
struct Wire {
    status: u16,
    /// Header lines, names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A client connection that reads responses one at a time, keeping any bytes past the last.
struct Client {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            pending: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one more chunk of bytes; `false` when the server closed the connection.
    async fn fill(&mut self) -> bool {
        let mut buffer = [0u8; 8192];
        let read = tokio::time::timeout(PATIENCE, self.stream.read(&mut buffer))
            .await
            .expect("the server answers in time")
            .unwrap_or(0);
        self.pending.extend_from_slice(&buffer[..read]);
        read > 0
    }

    /// Reads one response framed by `Content-Length` or chunked encoding (or none, for `HEAD`).
    async fn response(&mut self, head_request: bool) -> Wire {
        let end = loop {
            if let Some(end) = find(&self.pending, b"\r\n\r\n") {
                break end + 4;
            }
            assert!(self.fill().await, "closed before a response head");
        };
        let head = String::from_utf8(self.pending.drain(..end).collect()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|line| !line.is_empty())
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.to_ascii_lowercase(), value.trim().to_string())
            })
            .collect();
        let mut wire = Wire {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request {
            return wire;
        }
        if let Some(length) = wire.header("content-length") {
            let length: usize = length.parse().unwrap();
            while self.pending.len() < length {
                assert!(self.fill().await, "closed within the body");
            }
            wire.body = self.pending.drain(..length).collect();
        } else if wire.header("transfer-encoding") == Some("chunked") {
            wire.body = self.chunked_body().await;
        }
        wire
    }

    async fn chunked_body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.pending, b"\r\n") {
                    break end;
                }
                assert!(self.fill().await, "closed within a chunked body");
            };
            let size_line = String::from_utf8(self.pending[..line_end].to_vec()).unwrap();
            let size = usize::from_str_radix(size_line.trim(), 16).unwrap();
            while self.pending.len() < line_end + 2 + size + 2 {
                assert!(self.fill().await, "closed within a chunk");
            }
            body.extend_from_slice(&self.pending[line_end + 2..line_end + 2 + size]);
            self.pending.drain(..line_end + 2 + size + 2);
            if size == 0 {
                return body;
            }
        }
    }

    /// Returns whether the server closes the connection without sending anything more.
    async fn closed(&mut self) -> bool {
        !self.fill().await && self.pending.is_empty()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn post(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: lmlb\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn lmlb() -> (lmstudio_sim::Simulator, Server) {
    setup(&[&format!("{MODEL},instances=1,parallel=4")], 1000.0).await
}

#[tokio::test]
async fn pipelined_requests_answered_in_order() {
    let (_sim, lmlb) = lmlb().await;
    let mut client = Client::connect(lmlb.addr()).await;

    let mut batch = post("/v1/chat/completions", &chat_body(MODEL, 3, false), "");
    batch.push_str("GET /health HTTP/1.1\r\nHost: lmlb\r\n\r\n");
    batch.push_str(&post(
        "/v1/chat/completions",
        &chat_body(MODEL, 5, false),
        "",
    ));
    client.send(batch.as_bytes()).await;

    let first = client.response(false).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["usage"]["completion_tokens"], 3);
    assert_eq!(first.header("x-lmlb-instance"), Some(MODEL));
    assert!(first.header("date").is_some());
    let health = client.response(false).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "healthy");
    let third = client.response(false).await;
    assert_eq!(third.json()["usage"]["completion_tokens"], 5);

    // The connection stays open for another request.
    client
        .send(b"GET /health HTTP/1.1\r\nHost: lmlb\r\n\r\n")
        .await;
    assert_eq!(client.response(false).await.status, 200);
}

#[tokio::test]
async fn chunked_request_body_read_whole() {
    let (_sim, lmlb) = lmlb().await;
    let mut client = Client::connect(lmlb.addr()).await;
    let body = chat_body(MODEL, 4, false);
    let (first, rest) = body.split_at(10);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: lmlb\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\nX-Trailer: 1\r\n\r\n",
        first.len(),
        rest.len()
    );
    client.send(request.as_bytes()).await;

    let response = client.response(false).await;
    assert_eq!(
        response.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.json()["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn streamed_response_chunked_and_complete() {
    let (_sim, lmlb) = lmlb().await;
    let mut client = Client::connect(lmlb.addr()).await;
    client
        .send(post("/v1/chat/completions", &chat_body(MODEL, 6, true), "").as_bytes())
        .await;

    let response = client.response(false).await;
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    let text = String::from_utf8(response.body).unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(text.matches("data: {").count() >= 6, "{text}");
}

#[tokio::test]
async fn expect_continue_gets_interim_response() {
    let (_sim, lmlb) = lmlb().await;
    let mut client = Client::connect(lmlb.addr()).await;
    let body = chat_body(MODEL, 2, false);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: lmlb\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.send(head.as_bytes()).await;

    let interim = client.response(true).await;
    assert_eq!(interim.status, 100);
    client.send(body.as_bytes()).await;
    assert_eq!(client.response(false).await.status, 200);
}

#[tokio::test]
async fn oversized_body_rejected_before_sending() {
    let (_sim, lmlb) = lmlb().await;
    let mut client = Client::connect(lmlb.addr()).await;
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: lmlb\r\nExpect: 100-continue\r\nContent-Length: 999999999999\r\n\r\n";
    client.send(head.as_bytes()).await;

    let response = client.response(false).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["error"]["code"], "payload_too_large");
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.closed().await);
}

#[tokio::test]
async fn http10_clients_get_their_connection_semantics() {
    let (_sim, lmlb) = lmlb().await;

    let mut client = Client::connect(lmlb.addr()).await;
    client.send(b"GET /health HTTP/1.0\r\n\r\n").await;
    let response = client.response(false).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.closed().await);

    // Without a known length, an HTTP/1.0 stream ends when the connection does.
    let mut client = Client::connect(lmlb.addr()).await;
    let body = chat_body(MODEL, 3, true);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    client.send(request.as_bytes()).await;
    let response = client.response(true).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("transfer-encoding"), None);
    assert_eq!(response.header("connection"), Some("close"));
    while client.fill().await {}
    let text = String::from_utf8(client.pending.clone()).unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[tokio::test]
async fn head_requests_get_headers_only() {
    let (_sim, lmlb) = lmlb().await;
    let mut client = Client::connect(lmlb.addr()).await;
    client
        .send(b"HEAD /health HTTP/1.1\r\nHost: lmlb\r\n\r\n")
        .await;
    let response = client.response(true).await;
    // /health serves GET only, so HEAD goes through to the upstream like any other request.
    assert!(response.status < 500, "status {}", response.status);

    // Nothing follows the head: the next response starts right after it.
    client
        .send(b"GET /health HTTP/1.1\r\nHost: lmlb\r\n\r\n")
        .await;
    let next = client.response(false).await;
    assert_eq!(next.status, 200);
    assert_eq!(next.json()["status"], "healthy");
}

#[tokio::test]
async fn malformed_heads_get_error_and_close() {
    let (_sim, lmlb) = lmlb().await;
    let cases: [(&[u8], u16); 4] = [
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: nine\r\n\r\n",
            400,
        ),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
    ];
    for (request, status) in cases {
        let mut client = Client::connect(lmlb.addr()).await;
        client.send(request).await;
        let response = client.response(false).await;
        let request_text = String::from_utf8_lossy(request);
        assert_eq!(response.status, status, "{request_text}");
        assert_eq!(
            response.json()["error"]["type"],
            "invalid_request_error",
            "{request_text}"
        );
        assert!(client.closed().await, "{request_text}");
    }

    let mut client = Client::connect(lmlb.addr()).await;
    let huge = format!(
        "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    client.send(huge.as_bytes()).await;
    let response = client.response(false).await;
    assert_eq!(response.status, 431);
    assert_eq!(response.json()["error"]["code"], "header_too_large");
}

#[tokio::test]
async fn client_leaving_mid_body_takes_no_slot() {
    let (_sim, lmlb) = lmlb().await;
    let mut client = Client::connect(lmlb.addr()).await;
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: lmlb\r\nContent-Length: 500\r\n\r\n{\"model\":";
    client.send(head.as_bytes()).await;
    drop(client);

    // The server stays healthy and serves the next client.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut next = Client::connect(lmlb.addr()).await;
    next.send(post("/v1/chat/completions", &chat_body(MODEL, 2, false), "").as_bytes())
        .await;
    assert_eq!(next.response(false).await.status, 200);
    assert_eq!(lmlb_in_flight(&lmlb), 0);
}
