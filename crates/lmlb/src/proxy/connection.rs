//! Connections to upstreams, driven by the task of the request that uses them.
//!
//! A pooled HTTP client usually runs each connection in a task of its own, so every request hands
//! its head, response and body across tasks. Here the request's task polls the connection itself
//! while it waits for the response and while it streams the body, and gives the connection back to
//! a per-upstream list of idle connections when the body ends.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::client::CONNECT_TIMEOUT;
use crate::config::UpstreamConfig;

/// Idle connections kept per upstream; more are closed when they finish.
const MAX_IDLE_PER_UPSTREAM: usize = 512;

/// Idle connections older than this are closed when another connection is returned, since the
/// upstream has likely closed its end by then.
const MAX_IDLE_AGE: Duration = Duration::from_secs(60);

type Io = TokioIo<TcpStream>;

/// One HTTP/1.1 connection to an upstream: the handle that sends requests and the state machine
/// that performs the I/O, which the holder of the connection must poll.
pub struct UpstreamConnection {
    sender: SendRequest<Full<Bytes>>,
    driver: Connection<Io, Full<Bytes>>,
    closed: bool,
}

impl UpstreamConnection {
    /// Performs pending I/O; returns whether the connection has closed.
    pub fn poll_drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed && Pin::new(&mut self.driver).poll(cx).is_ready() {
            self.closed = true;
        }
        self.closed
    }

    /// Polls `future` while driving the connection, until the future completes.
    async fn drive<F: Future>(&mut self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        poll_fn(|cx| {
            self.poll_drive(cx);
            future.as_mut().poll(cx)
        })
        .await
    }
}

/// Idle connections, one list per upstream in configuration order.
pub struct ConnectionPool {
    /// Per upstream, `host:port` to connect to.
    authorities: Vec<String>,
    /// Per upstream, oldest first, each with the moment it became idle.
    idle: Vec<Mutex<Vec<(Instant, UpstreamConnection)>>>,
}

impl ConnectionPool {
    pub fn new(upstreams: &[UpstreamConfig]) -> ConnectionPool {
        ConnectionPool {
            authorities: upstreams
                .iter()
                .map(|upstream| upstream.authority().to_string())
                .collect(),
            idle: upstreams.iter().map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// Takes the most recently used idle connection, the one most likely still open.
    fn take(&self, upstream: usize) -> Option<UpstreamConnection> {
        let mut idle = self.idle[upstream]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        idle.pop().map(|(_, connection)| connection)
    }

    /// Keeps a connection whose exchange ended cleanly for the next request.
    pub fn put(&self, upstream: usize, connection: UpstreamConnection) {
        if connection.closed {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle[upstream]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        idle.retain(|(since, _)| now.duration_since(*since) < MAX_IDLE_AGE);
        if idle.len() < MAX_IDLE_PER_UPSTREAM {
            idle.push((now, connection));
        }
    }

    /// [`ConnectionPool::send`] as a future that owns its arguments, so it can outlive its caller.
    pub async fn send_owned(
        self: Arc<Self>,
        upstream: usize,
        request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, UpstreamConnection), String> {
        self.send(upstream, request).await
    }

    /// Sends `request` to an upstream and waits for the response head, driving the connection
    /// meanwhile. An idle connection that turns out closed is replaced by a new one without
    /// counting as a failure.
    pub async fn send(
        &self,
        upstream: usize,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, UpstreamConnection), String> {
        loop {
            let (mut connection, reused) = match self.take(upstream) {
                Some(connection) => (connection, true),
                None => (connect(&self.authorities[upstream]).await?, false),
            };

            let ready = poll_ready(&mut connection).await;
            if !ready {
                if reused {
                    continue;
                }
                return Err("the connection closed before the request was sent".to_string());
            }

            let response = connection.sender.try_send_request(request);
            match connection.drive(response).await {
                Ok(response) => return Ok((response, connection)),
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(error.into_error().to_string()),
                },
            }
        }
    }
}

/// Waits until the connection can take a request; `false` when it has closed.
async fn poll_ready(connection: &mut UpstreamConnection) -> bool {
    poll_fn(|cx| {
        let closed = connection.poll_drive(cx);
        match connection.sender.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(true),
            Poll::Ready(Err(_)) => Poll::Ready(false),
            Poll::Pending if closed => Poll::Ready(false),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

async fn connect(authority: &str) -> Result<UpstreamConnection, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority))
        .await
        .map_err(|_| {
            format!(
                "connecting to {authority} timed out after {}s",
                CONNECT_TIMEOUT.as_secs()
            )
        })?
        .map_err(|error| format!("failed to connect to {authority}: {error}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, driver) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP handshake with {authority} failed: {error}"))?;
    Ok(UpstreamConnection {
        sender,
        driver,
        closed: false,
    })
}

/// A connection in use by one response body, returned to its pool when the body ends cleanly.
pub struct PooledConnection {
    pool: Arc<ConnectionPool>,
    upstream: usize,
    connection: UpstreamConnection,
}

impl PooledConnection {
    pub fn new(
        pool: Arc<ConnectionPool>,
        upstream: usize,
        connection: UpstreamConnection,
    ) -> PooledConnection {
        PooledConnection {
            pool,
            upstream,
            connection,
        }
    }

    pub fn poll_drive(&mut self, cx: &mut Context<'_>) -> bool {
        self.connection.poll_drive(cx)
    }

    /// Gives the connection back for reuse; dropping it instead closes it.
    pub fn release(self) {
        self.pool.put(self.upstream, self.connection);
    }
}
