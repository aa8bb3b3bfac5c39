//! Upstream responses in each HTTP/1.1 framing: lmlb relays the body whole, reuses a connection
//! only when the upstream allows it, and fails a response that the upstream cut short.
//!
//! The upstream here is a raw TCP server that writes canned bytes, so that the framing is exactly
//! what each test names. The request's `x-framing` header picks the response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::Method;
use http_body_util::BodyExt;
use lmlb::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{PATIENCE, client, request, start_lmlb};

const MODEL: &str = "raw-model";

const LISTING: &str = r#"{"object":"list","data":[{"id":"raw-model","object":"model"}]}"#;

/// A raw upstream that serves the model listing, and chat responses in canned framings.
struct RawUpstream {
    addr: SocketAddr,
    /// Connections whose first request was a chat request.
    chat_connections: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let chat_connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&chat_connections);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&counter)));
            }
        });
        RawUpstream {
            addr,
            chat_connections,
        }
    }

    fn chat_connections(&self) -> usize {
        self.chat_connections.load(Ordering::SeqCst)
    }
}

/// Serves requests on one connection until the client closes it or a response ends it.
async fn serve(mut stream: TcpStream, chat_connections: Arc<AtomicUsize>) {
    let mut first = true;
    while let Some(head) = read_request(&mut stream).await {
        let is_chat = head.starts_with("POST /v1/chat/completions");
        if first && is_chat {
            chat_connections.fetch_add(1, Ordering::SeqCst);
        }
        first = false;

        let framing = header(&head, "x-framing").unwrap_or_default();
        let (response, close) = if is_chat {
            chat_response(&framing)
        } else if head.starts_with("GET /v1/models") {
            (with_length("200 OK", LISTING), false)
        } else {
            (
                with_length("404 Not Found", r#"{"error":"not found"}"#),
                false,
            )
        };
        if stream.write_all(response.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

/// Returns the response for a chat request and whether the server closes the connection after it.
fn chat_response(framing: &str) -> (String, bool) {
    match framing {
        "close-delimited" => (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: one\n\ndata: two\n\n"
                .to_string(),
            true,
        ),
        "chunked" => (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
             b;note=x\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\nx-checksum: 1\r\n\r\n"
                .to_string(),
            false,
        ),
        "connection-close" => {
            let body = r#"{"ok":true}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            // The server keeps its end open, so only the header keeps lmlb from reusing it.
            (response, false)
        }
        "truncated" => (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"partial\""
                .to_string(),
            true,
        ),
        _ => (with_length("200 OK", r#"{"ok":true}"#), false),
    }
}

fn with_length(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads one request head and its body, and returns `None` when the connection closes first.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = find(&received, b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..read]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_string();
    let length: usize = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
    while received.len() < head_end + length {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..read]);
    }
    Some(head)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// lmlb with one worker, so that every request draws on the same idle upstream connections.
async fn lmlb_for(upstream: &RawUpstream) -> lmlb::Server {
    lmlb_with_workers(upstream, 1).await
}

async fn lmlb_with_workers(upstream: &RawUpstream, workers: usize) -> lmlb::Server {
    let mut config = Config::for_upstreams(&[format!("http://{}", upstream.addr)]).unwrap();
    config.listen.set_port(0);
    config.workers = workers;
    start_lmlb(config).await
}

/// Sends one chat request on a kept-alive client connection and reads the response to its end.
async fn chat_on(client: &mut TcpStream) -> String {
    let body = chat_body();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: lmlb\r\ncontent-type: application/json\r\n\
         x-framing: length\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();

    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received);
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let length: usize = header(head, "content-length").map_or(0, |v| v.parse().unwrap());
            if rest.len() >= length {
                return text.into_owned();
            }
        }
        let read = tokio::time::timeout(PATIENCE, client.read(&mut buffer))
            .await
            .expect("lmlb answers in time")
            .unwrap();
        assert!(read > 0, "lmlb closed the connection mid-response");
        received.extend_from_slice(&buffer[..read]);
    }
}

fn chat_body() -> String {
    serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

async fn chat_with(base: &str, framing: &str) -> crate::common::Reply {
    request(
        Method::POST,
        &format!("{base}/v1/chat/completions"),
        &[("content-type", "application/json"), ("x-framing", framing)],
        chat_body(),
    )
    .await
}

#[tokio::test]
async fn close_delimited_body_relayed_whole() {
    let upstream = RawUpstream::start().await;
    let lmlb = lmlb_for(&upstream).await;

    for _ in 0..2 {
        let reply = chat_with(&lmlb.url(), "close-delimited").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "data: one\n\ndata: two\n\n");
    }
    assert_eq!(
        upstream.chat_connections(),
        2,
        "a closed connection is not reused"
    );
}

#[tokio::test]
async fn chunked_body_relayed_and_reused() {
    let upstream = RawUpstream::start().await;
    let lmlb = lmlb_for(&upstream).await;

    for _ in 0..3 {
        let reply = chat_with(&lmlb.url(), "chunked").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "data: one\n\ndata: two\n\n");
        assert!(
            reply
                .headers
                .get("transfer-encoding")
                .is_none_or(|v| v == "chunked")
        );
    }
    assert_eq!(
        upstream.chat_connections(),
        1,
        "one kept-alive connection carries every request"
    );
}

#[tokio::test]
async fn length_body_reused() {
    let upstream = RawUpstream::start().await;
    let lmlb = lmlb_for(&upstream).await;

    for _ in 0..3 {
        let reply = chat_with(&lmlb.url(), "length").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["ok"], true);
    }
    assert_eq!(upstream.chat_connections(), 1);
}

#[tokio::test]
async fn workers_reuse_own_upstream_connections() {
    let upstream = RawUpstream::start().await;
    let lmlb = lmlb_with_workers(&upstream, 2).await;

    // Two client connections open at once go to different workers.
    let mut first = TcpStream::connect(lmlb.addr()).await.unwrap();
    let mut second = TcpStream::connect(lmlb.addr()).await.unwrap();
    for _ in 0..3 {
        for client in [&mut first, &mut second] {
            let reply = chat_on(client).await;
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
            assert!(reply.ends_with(r#"{"ok":true}"#), "{reply}");
        }
    }

    assert_eq!(
        upstream.chat_connections(),
        2,
        "one upstream connection per worker carries that worker's requests"
    );
}

#[tokio::test]
async fn connection_close_header_respected() {
    let upstream = RawUpstream::start().await;
    let lmlb = lmlb_for(&upstream).await;

    for _ in 0..2 {
        let reply = chat_with(&lmlb.url(), "connection-close").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["ok"], true);
    }
    assert_eq!(upstream.chat_connections(), 2);
}

#[tokio::test]
async fn truncated_body_fails_the_response() {
    let upstream = RawUpstream::start().await;
    let lmlb = lmlb_for(&upstream).await;

    let request = http::Request::post(format!("{}/v1/chat/completions", lmlb.url()))
        .header("content-type", "application/json")
        .header("x-framing", "truncated")
        .body(http_body_util::Full::new(bytes::Bytes::from(chat_body())))
        .unwrap();
    // lmlb sends the head with the first bytes of the body, so the client sees the break either
    // in the head or in the body, never a clean end.
    let outcome = tokio::time::timeout(PATIENCE, async {
        let response = client().request(request).await.map_err(|_| ())?;
        response.into_body().collect().await.map_err(|_| ())
    })
    .await
    .expect("the exchange ends");
    assert!(
        outcome.is_err(),
        "a body cut short is not passed off as whole"
    );

    let next = chat_with(&lmlb.url(), "length").await;
    assert_eq!(next.status, 200, "the upstream stays in rotation");
}
