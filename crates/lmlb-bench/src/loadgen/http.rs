//! A minimal HTTP/1.1 client on hyper's connection API: one TCP connection per
//! [`Connection`], requests sent one after another (keep-alive).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The path every scenario sends chat requests to.
pub const CHAT_PATH: &str = "/v1/chat/completions";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("failed to connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    #[error("unexpected status {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("stream ended without `data: [DONE]` after {tokens} tokens")]
    Truncated { tokens: u32 },
}

pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Opens a connection with `TCP_NODELAY`, as HTTP clients do, and drives it
    /// on a spawned task.
    pub async fn open(addr: SocketAddr) -> Result<Self, ClientError> {
        let connect_error = |source| ClientError::Connect { addr, source };
        let stream = TcpStream::connect(addr).await.map_err(connect_error)?;
        stream.set_nodelay(true).map_err(connect_error)?;

        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends with an error when the peer closes it, and
            // the next request on it reports that error.
            let _ = connection.await;
        });
        Ok(Self { sender })
    }

    /// Sends a request and returns the response once its headers arrive. A
    /// status other than 200 becomes [`ClientError::Status`] with the body.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, ClientError> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            let body = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(ClientError::Status { status, body });
        }
        Ok(response)
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// Returns a small OpenAI chat request body.
pub fn chat_body(model: &str, max_tokens: u32, stream: bool) -> Bytes {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Write a short greeting."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    });
    Bytes::from(body.to_string())
}

pub fn post_json(addr: SocketAddr, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, addr.to_string())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("the method, path and headers are valid")
}

pub fn get(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("the method, path and headers are valid")
}

/// Fetches `path` on a new connection and parses the body as JSON. Errors are
/// strings because readiness probes only show them.
pub async fn get_json(addr: SocketAddr, path: &str) -> Result<serde_json::Value, String> {
    let mut connection = Connection::open(addr).await.map_err(|e| e.to_string())?;
    let response = connection
        .send(get(addr, path))
        .await
        .map_err(|e| e.to_string())?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("invalid JSON from {path}: {e}"))
}

/// Sends one POST on a new connection and returns the whole body.
#[cfg(test)]
pub async fn post_once(addr: SocketAddr, path: &str, body: Bytes) -> Result<Bytes, ClientError> {
    let mut connection = Connection::open(addr).await?;
    let response = connection.send(post_json(addr, path, body)).await?;
    Ok(response.into_body().collect().await?.to_bytes())
}
