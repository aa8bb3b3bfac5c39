//! Connections to upstreams, read and written by the task of the request that uses them.
//!
//! A pooled HTTP client usually runs each connection in a task of its own, so every request hands
//! its head, response and body across tasks through channels. Here the request's task writes the
//! request and reads the response itself (framing in `http1`), and gives the connection back to a
//! per-upstream list of idle connections when the body has been read to its end.

use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::http1::{self, BodyDecoder, Decoded, Outgoing, ResponseHead};
use crate::client::CONNECT_TIMEOUT;
use crate::config::UpstreamConfig;
use crate::deadline::Deadline;
use crate::server::workers;

/// Idle connections kept per upstream; more are closed when they finish.
const MAX_IDLE_PER_UPSTREAM: usize = 512;

/// Idle connections older than this are closed when another connection is returned, since the
/// upstream has likely closed its end by then.
const MAX_IDLE_AGE: Duration = Duration::from_secs(60);

/// Size of a connection's read buffer. Response heads and bodies are split off it without a copy,
/// so one buffer serves several small responses before a new one is allocated.
const READ_BUFFER: usize = 8 * 1024;

/// Free space below which the read buffer is replaced before the next read.
const MIN_READ: usize = 1024;

/// One HTTP/1.1 connection to an upstream and the bytes read from it but not yet used.
pub struct UpstreamConnection {
    stream: TcpStream,
    buf: BytesMut,
    /// The request timeout, reused by every request on the connection.
    timer: Deadline,
}

impl UpstreamConnection {
    /// Checks, without a system call in the usual case, that an idle connection is still open: an
    /// idle connection becomes readable only when the upstream closed it or sent stray bytes.
    fn is_reusable(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Writes a request and reads until its response head is complete, or until `deadline`.
    async fn exchange(
        &mut self,
        encoded: &[u8],
        method: &Method,
        deadline: Instant,
    ) -> Result<ResponseHead, SendError> {
        let write = pin!(self.stream.write_all(encoded));
        let written = until(write, &mut self.timer, deadline).await;
        written.ok_or(SendError::TimedOut)?.map_err(|error| {
            SendError::BeforeResponse(format!("failed to send the request: {error}"))
        })?;
        loop {
            match http1::parse_response_head(&mut self.buf, method) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(error) => return Err(SendError::Invalid(error.to_string())),
            }
            let read = std::future::poll_fn(|cx| {
                if let Poll::Ready(read) = self.poll_read(cx) {
                    return Poll::Ready(Some(read));
                }
                ready!(self.timer.poll_until(deadline, cx));
                Poll::Ready(None)
            })
            .await;
            let Some(read) = read else {
                return Err(SendError::TimedOut);
            };
            match read {
                Ok(0) if self.buf.is_empty() => {
                    return Err(SendError::BeforeResponse(
                        "the upstream closed the connection without a response".to_string(),
                    ));
                }
                Ok(0) => {
                    return Err(SendError::Invalid(
                        "the upstream closed the connection within the response head".to_string(),
                    ));
                }
                Ok(_) => {}
                Err(error) if self.buf.is_empty() => {
                    return Err(SendError::BeforeResponse(format!(
                        "failed to read the response: {error}"
                    )));
                }
                Err(error) => {
                    return Err(SendError::Invalid(format!(
                        "failed to read the response: {error}"
                    )));
                }
            }
        }
    }

    /// Reads what the socket has into the buffer; `Ok(0)` at the end of the stream.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            self.buf.reserve(READ_BUFFER);
        }
        // Through `AsyncRead` rather than `try_read_buf`: a read that leaves the buffer partly
        // empty then marks the socket drained, so `is_reusable` needs no system call later.
        // Dropping the future when it is pending loses nothing, as it has read nothing yet.
        std::pin::pin!(self.stream.read_buf(&mut self.buf)).poll(cx)
    }
}

/// Runs `future` until `deadline`; `None` when the deadline came first.
async fn until<F: Future>(
    mut future: Pin<&mut F>,
    timer: &mut Deadline,
    deadline: Instant,
) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        ready!(timer.poll_until(deadline, cx));
        Poll::Ready(None)
    })
    .await
}

/// The reason no response head came back on a connection.
enum SendError {
    /// Nothing of a response arrived: the request may be sent again on another connection.
    BeforeResponse(String),
    /// The upstream replied with something that is not a valid response.
    Invalid(String),
    /// No response head before the deadline.
    TimedOut,
}

/// The reason [`ConnectionPool::send`] returned no response head.
pub enum SendFailure {
    /// The upstream could not be reached, or its reply was not a valid response.
    Unreachable(String),
    /// No response head before the deadline.
    TimedOut,
}

/// Idle connections of one worker (see [`crate::server::workers`]) to one upstream, oldest first,
/// each with the moment it became idle.
type IdleList = Mutex<Vec<(Instant, UpstreamConnection)>>;

/// Idle connections, one list per worker and upstream. A connection is registered with the
/// event loop of the worker that opened it, so only that worker's requests reuse it.
pub struct ConnectionPool {
    /// Per upstream, `host:port` to connect to.
    authorities: Vec<String>,
    /// Per worker, one list per upstream in configuration order.
    idle: Vec<Vec<IdleList>>,
}

impl ConnectionPool {
    pub fn new(upstreams: &[UpstreamConfig], workers: usize) -> ConnectionPool {
        ConnectionPool {
            authorities: upstreams
                .iter()
                .map(|upstream| upstream.authority().to_string())
                .collect(),
            idle: (0..workers.max(1))
                .map(|_| upstreams.iter().map(|_| Mutex::new(Vec::new())).collect())
                .collect(),
        }
    }

    /// Returns the calling worker's idle list for `upstream`.
    fn idle(&self, upstream: usize) -> &IdleList {
        let worker = workers::current() % self.idle.len();
        &self.idle[worker][upstream]
    }

    /// Takes the most recently used idle connection, the one most likely still open.
    fn take(&self, upstream: usize) -> Option<UpstreamConnection> {
        let mut idle = self
            .idle(upstream)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        idle.pop().map(|(_, connection)| connection)
    }

    /// Keeps a connection whose exchange ended cleanly for the next request.
    fn put(&self, upstream: usize, connection: UpstreamConnection) {
        let now = Instant::now();
        let mut idle = self
            .idle(upstream)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        idle.retain(|(since, _)| now.duration_since(*since) < MAX_IDLE_AGE);
        if idle.len() < MAX_IDLE_PER_UPSTREAM {
            idle.push((now, connection));
        }
    }

    /// Sends `request` to an upstream and waits for the response head. A reused connection that
    /// fails before any of the response arrives (the upstream closed it while idle) is replaced
    /// by a new one without counting as a failure.
    pub async fn send(
        self: Arc<Self>,
        upstream: usize,
        request: Outgoing,
        deadline: Instant,
    ) -> Result<(ResponseHead, ResponseReader), SendFailure> {
        let (encoded, method) = (&request.bytes, &request.method);
        loop {
            let (mut connection, reused) = match self.take(upstream) {
                Some(connection) if connection.is_reusable() => (connection, true),
                Some(_) => continue,
                None => {
                    let connection = connect(&self.authorities[upstream]).await;
                    (connection.map_err(SendFailure::Unreachable)?, false)
                }
            };

            match connection.exchange(encoded, method, deadline).await {
                Ok(head) => {
                    let reader = ResponseReader {
                        decoder: BodyDecoder::new(head.framing),
                        keep_alive: head.keep_alive,
                        connection: Some(connection),
                        pool: Arc::clone(&self),
                        upstream,
                    };
                    return Ok((head, reader));
                }
                Err(SendError::BeforeResponse(_)) if reused => continue,
                Err(SendError::BeforeResponse(error) | SendError::Invalid(error)) => {
                    return Err(SendFailure::Unreachable(error));
                }
                Err(SendError::TimedOut) => return Err(SendFailure::TimedOut),
            }
        }
    }
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
    Ok(UpstreamConnection {
        stream,
        buf: BytesMut::with_capacity(READ_BUFFER),
        timer: Deadline::default(),
    })
}

/// The reader of one response body off its connection. It gives the connection back to the
/// pool when the body has ended cleanly and the connection can carry another request.
pub struct ResponseReader {
    decoder: BodyDecoder,
    keep_alive: bool,
    /// `None` once the body has ended or failed.
    connection: Option<UpstreamConnection>,
    pool: Arc<ConnectionPool>,
    upstream: usize,
}

impl ResponseReader {
    /// Returns the next piece of the body, `None` at its end.
    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            let Some(connection) = self.connection.as_mut() else {
                return Poll::Ready(None);
            };
            match self.decoder.decode(&mut connection.buf) {
                Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(Decoded::End) => {
                    self.release();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(error) => return Poll::Ready(Some(Err(self.fail(error.to_string())))),
            }

            match ready!(connection.poll_read(cx)) {
                Ok(0) => match self.decoder.at_eof() {
                    Ok(()) => {
                        self.connection = None;
                        return Poll::Ready(None);
                    }
                    Err(error) => return Poll::Ready(Some(Err(self.fail(error.to_string())))),
                },
                Ok(_) => {}
                Err(error) => return Poll::Ready(Some(Err(self.fail(error.to_string())))),
            }
        }
    }

    /// Returns whether the body has been read to its end.
    pub fn is_end(&self) -> bool {
        self.decoder.is_done()
    }

    /// Bytes of body still to come, when the upstream sent a length.
    pub fn remaining(&self) -> Option<u64> {
        self.decoder.remaining()
    }

    /// Gives the connection back once the body has ended, and does nothing before that.
    pub fn release(&mut self) {
        if !self.decoder.is_done() {
            return;
        }
        let Some(connection) = self.connection.take() else {
            return;
        };
        // Bytes past the body's end mean the upstream and lmlb disagree on the framing.
        if self.keep_alive && connection.buf.is_empty() {
            self.pool.put(self.upstream, connection);
        }
    }

    fn fail(&mut self, error: String) -> io::Error {
        self.connection = None;
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}
