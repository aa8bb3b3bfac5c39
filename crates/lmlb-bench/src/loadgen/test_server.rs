//! A tiny OpenAI-shaped server for the load generator's tests: chat responses
//! after a fixed delay, streams of `max_tokens` tokens one delay apart, and
//! errors on request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type Body = Either<Full<Bytes>, Channel<Bytes>>;

/// Serves on 127.0.0.1 port 0 until dropped.
pub struct TestServer {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    acceptor: JoinHandle<()>,
}

impl TestServer {
    /// Starts a server whose responses and tokens each take `delay`.
    /// Requests for the model `truncate` stream without `data: [DONE]`, and the
    /// path `/fail` returns 500.
    pub async fn start(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connections);
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let service = service_fn(move |request| handle(request, delay));
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self {
            addr,
            connections,
            acceptor,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns how many TCP connections the server accepted.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn handle(request: Request<Incoming>, delay: Duration) -> Result<Response<Body>, Infallible> {
    if request.uri().path() == "/fail" {
        let body = Either::Left(Full::new(Bytes::from_static(b"{\"error\":\"failed\"}")));
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return Ok(response);
    }

    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let tokens = json["max_tokens"].as_u64().unwrap_or(16);
    let model = json["model"].as_str().unwrap_or_default().to_owned();

    if json["stream"].as_bool() == Some(true) {
        return Ok(Response::new(Either::Right(stream_tokens(
            tokens,
            delay,
            model == "truncate",
        ))));
    }
    tokio::time::sleep(delay).await;
    let answer = serde_json::json!({"choices": [{"message": {"content": "hi"}}]});
    Ok(Response::new(Either::Left(Full::new(Bytes::from(
        answer.to_string(),
    )))))
}

fn stream_tokens(tokens: u64, delay: Duration, truncate: bool) -> Channel<Bytes> {
    let (mut sender, body) = Channel::new(4);
    tokio::spawn(async move {
        for _ in 0..tokens {
            tokio::time::sleep(delay).await;
            let event = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n";
            if sender
                .send(Frame::data(Bytes::from_static(event.as_bytes())))
                .await
                .is_err()
            {
                return;
            }
        }
        if !truncate {
            let _ = sender
                .send_data(Bytes::from_static(b"data: [DONE]\n\n"))
                .await;
        }
    });
    body
}
