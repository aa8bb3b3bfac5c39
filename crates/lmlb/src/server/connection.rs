//! One client connection: reads each request, hands it to the router, writes the response.
//!
//! Requests are served one at a time, in order. Bodies are read whole before routing, as every
//! handler needs the whole body anyway (the balancer to read `model`, the pass-through to send a
//! length upstream). The connection watches the client while a handler waits (in a queue, or for
//! the upstream's first byte) and while a response streams. When the client goes away, the
//! handler or the body is dropped at once, so the slot is freed or the generation stops.

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Response, Version};
use http_body::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::request::{HeadError, RequestHead, parse_request_head};
use super::response::{BodyFraming, CONTINUE, LAST_CHUNK, chunk_end, chunk_start, write_head};
use crate::app::App;
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::proxy::http1::{BodyDecoder, Decoded, Framing};
use crate::proxy::{self, Peer, ProxyBody};
use crate::router;

/// Time a client has to send a complete request head, counted from the end of the previous
/// response. An idle keep-alive connection is closed when it runs out.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Size of the read buffer. A request's head and body are split off it without a copy.
const READ_BUFFER: usize = 8 * 1024;

/// Bytes of the next requests held while one is served; past this the client waits.
const MAX_PIPELINED: usize = 64 * 1024;

/// Whether the connection can serve another request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    Continue,
    Close,
}

/// The reason a wait for a request head ended without one.
enum Idle {
    Closed,
    TimedOut,
    ShuttingDown,
}

/// A client connection and its buffers.
struct Connection {
    stream: TcpStream,
    /// Bytes read from the client and not yet used.
    buf: BytesMut,
    /// The response head (and small bodies) before they are written.
    out: Vec<u8>,
    /// The head timeout.
    head_timer: Deadline,
    /// Whether every response carries the CORS headers that allow any origin.
    cors: bool,
}

/// Serves requests on `stream` until the client closes it, an error ends it, or shutdown.
/// The listener waits at shutdown until every connection has dropped its `_alive` sender.
pub async fn serve(
    stream: TcpStream,
    app: Arc<App>,
    peer: Peer,
    shutdown: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) {
    // One wait for shutdown serves the whole connection, instead of a new one per request.
    let mut watcher = shutdown.clone();
    let mut stopping = Stopping {
        signal: pin!(super::stopped(&mut watcher)),
        seen: false,
    };
    let mut connection = Connection {
        stream,
        buf: BytesMut::with_capacity(READ_BUFFER),
        out: Vec::with_capacity(1024),
        head_timer: Deadline::default(),
        cors: app.config.cors,
    };
    loop {
        let next = match connection.read_head(&mut stopping).await {
            Ok(Ok(head)) => connection.exchange(&app, &peer, head).await,
            Ok(Err(Idle::TimedOut)) => {
                tracing::debug!(client = %peer.addr, "no request head within the timeout");
                Next::Close
            }
            Ok(Err(Idle::Closed | Idle::ShuttingDown)) => Next::Close,
            Err(error) => connection.reject_head(&app, error).await,
        };
        if next == Next::Close || *shutdown.borrow() {
            let _ = connection.stream.shutdown().await;
            return;
        }
    }
}

impl Connection {
    /// Serves one request whose head has been read.
    async fn exchange(&mut self, app: &App, peer: &Peer, head: RequestHead) -> Next {
        let RequestHead {
            mut request,
            framing,
            keep_alive,
            expects_continue,
        } = head;
        let limit = app.config.max_payload;
        if matches!(framing, Framing::Length(length) if length > limit as u64) {
            return self.reject(app, ApiError::PayloadTooLarge { limit }).await;
        }
        let hold_back = expects_continue && framing != Framing::Length(0) && self.buf.is_empty();
        if hold_back && self.stream.write_all(CONTINUE).await.is_err() {
            return Next::Close;
        }

        match self.read_body(framing, limit).await {
            Ok(body) => request.set_body(body),
            Err(BodyError::Closed) => return Next::Close,
            Err(BodyError::Refused(error)) => return self.reject(app, error).await,
        }
        let method = request.method().clone();
        let version = request.version();

        let Some(response) = self
            .unless_client_leaves(router::route(app, request, peer))
            .await
        else {
            return Next::Close;
        };
        match self.respond(response, &method, version, keep_alive).await {
            Ok(true) => Next::Continue,
            Ok(false) | Err(_) => Next::Close,
        }
    }

    /// Sends the error response for a head that could not be read, then closes.
    async fn reject_head(&mut self, app: &App, error: HeadError) -> Next {
        let error = match error {
            HeadError::TooLarge => ApiError::HeadTooLarge,
            HeadError::Malformed(reason) => ApiError::invalid(reason),
        };
        self.reject(app, error).await
    }

    /// Sends lmlb's error response and closes: the rest of the request is left unread.
    async fn reject(&mut self, app: &App, error: ApiError) -> Next {
        let response = proxy::reject(app, error);
        let _ = self
            .respond(response, &Method::GET, Version::HTTP_11, false)
            .await;
        Next::Close
    }

    /// Waits for a complete request head, or for the client to leave, the head timeout, or
    /// shutdown while no request has begun.
    async fn read_head<F: Future<Output = ()>>(
        &mut self,
        stopping: &mut Stopping<'_, F>,
    ) -> Result<Result<RequestHead, Idle>, HeadError> {
        let deadline = Instant::now() + HEAD_TIMEOUT;
        loop {
            if let Some(head) = parse_request_head(&mut self.buf)? {
                return Ok(Ok(head));
            }
            let idle = self.buf.is_empty();
            if idle && stopping.seen {
                return Ok(Err(Idle::ShuttingDown));
            }

            let waited = poll_fn(|cx| {
                if let Poll::Ready(read) = poll_read(&mut self.stream, &mut self.buf, cx) {
                    return Poll::Ready(match read {
                        Ok(0) | Err(_) => Err(Idle::Closed),
                        Ok(_) => Ok(()),
                    });
                }
                if idle && stopping.poll(cx).is_ready() {
                    return Poll::Ready(Err(Idle::ShuttingDown));
                }
                ready!(self.head_timer.poll_until(deadline, cx));
                Poll::Ready(Err(Idle::TimedOut))
            })
            .await;
            if let Err(idle) = waited {
                return Ok(Err(idle));
            }
        }
    }

    /// Reads the whole request body, of at most `limit` bytes.
    async fn read_body(&mut self, framing: Framing, limit: usize) -> Result<Bytes, BodyError> {
        if let Framing::Length(length) = framing {
            return self.read_sized_body(length as usize).await;
        }

        let mut decoder = BodyDecoder::new(framing);
        let mut body = BytesMut::new();
        loop {
            let decoded = decoder.decode(&mut self.buf).map_err(|error| {
                BodyError::Refused(ApiError::invalid(format!(
                    "the request's chunked body is malformed: {}",
                    error.0
                )))
            })?;
            match decoded {
                Decoded::Data(data) if body.len() + data.len() > limit => {
                    return Err(BodyError::Refused(ApiError::PayloadTooLarge { limit }));
                }
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::End => return Ok(body.freeze()),
                Decoded::NeedMore => self.read_more().await?,
            }
        }
    }

    /// Reads a body of `length` bytes; one that arrived with its head is not copied.
    async fn read_sized_body(&mut self, length: usize) -> Result<Bytes, BodyError> {
        if self.buf.len() < length {
            self.buf.reserve(length - self.buf.len());
        }
        while self.buf.len() < length {
            self.read_more().await?;
        }
        Ok(self.buf.split_to(length).freeze())
    }

    async fn read_more(&mut self) -> Result<(), BodyError> {
        match poll_fn(|cx| poll_read(&mut self.stream, &mut self.buf, cx)).await {
            Ok(0) | Err(_) => Err(BodyError::Closed),
            Ok(_) => Ok(()),
        }
    }

    /// Runs `future` to its end, unless the client closes the connection first.
    async fn unless_client_leaves<F: Future>(&mut self, future: F) -> Option<F::Output> {
        let mut future = pin!(future);
        poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            ready!(self.poll_client_gone(cx));
            Poll::Ready(None)
        })
        .await
    }

    /// Ready when the client has closed the connection. Bytes of a next request are kept.
    fn poll_client_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.buf.len() >= MAX_PIPELINED {
                return Poll::Pending;
            }
            match ready!(poll_read(&mut self.stream, &mut self.buf, cx)) {
                Ok(0) | Err(_) => return Poll::Ready(()),
                Ok(_) => {}
            }
        }
    }

    /// Writes the response; `Ok(true)` when the connection can serve another request.
    async fn respond(
        &mut self,
        response: Response<ProxyBody>,
        method: &Method,
        version: Version,
        keep_alive: bool,
    ) -> io::Result<bool> {
        let (parts, body) = response.into_parts();
        let framing = BodyFraming::choose(method, parts.status, version, &body.size_hint());
        let keep_alive = keep_alive && framing != BodyFraming::UntilClose;
        self.out.clear();
        write_head(
            &mut self.out,
            &parts,
            body.header_lines(),
            framing,
            version,
            keep_alive,
            self.cors,
        );
        drop(parts);

        if framing == BodyFraming::Bodiless {
            self.stream.write_all(&self.out).await?;
            return Ok(keep_alive);
        }
        self.send_body(body, framing).await?;
        Ok(keep_alive)
    }

    /// Writes the body frame by frame after the head in `out`, which goes out with the first
    /// frame when that is ready at once, or alone when it is not.
    async fn send_body(&mut self, body: ProxyBody, framing: BodyFraming) -> io::Result<()> {
        let mut body = pin!(body);
        loop {
            // With the head still unsent, a frame that is ready at once goes out with it.
            let ready_now = if self.out.is_empty() {
                Poll::Pending
            } else {
                poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await
            };
            let frame = match ready_now {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    self.flush_out().await?;
                    let next = poll_fn(|cx| body.as_mut().poll_frame(cx));
                    match self.unless_client_leaves(next).await {
                        Some(frame) => frame,
                        None => return Err(io::ErrorKind::ConnectionAborted.into()),
                    }
                }
            };
            let data = match frame {
                None => break,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_trailers) => continue,
                },
                Some(Err(error)) => {
                    tracing::debug!(%error, "response body failed; closing the connection");
                    return Err(io::Error::other(error));
                }
            };
            let last = body.is_end_stream();
            self.write_data(data, framing, last).await?;
            if last {
                return Ok(());
            }
        }
        if framing == BodyFraming::Chunked {
            self.out.extend_from_slice(LAST_CHUNK);
        }
        self.flush_out().await
    }

    /// Writes one frame of data, with anything waiting in `out` ahead of it.
    async fn write_data(
        &mut self,
        data: Bytes,
        framing: BodyFraming,
        last: bool,
    ) -> io::Result<()> {
        let chunked = framing == BodyFraming::Chunked;
        if chunked {
            chunk_start(data.len(), &mut self.out);
        }
        let after = if chunked { chunk_end(last) } else { b"" };
        write_all_vectored(&mut self.stream, [&self.out, &data, after]).await?;
        self.out.clear();
        Ok(())
    }

    async fn flush_out(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }
}

/// The connection's wait for shutdown, polled only until it has resolved.
struct Stopping<'a, F> {
    signal: Pin<&'a mut F>,
    seen: bool,
}

impl<F: Future<Output = ()>> Stopping<'_, F> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.seen {
            ready!(self.signal.as_mut().poll(cx));
            self.seen = true;
        }
        Poll::Ready(())
    }
}

/// The reason a request body could not be read.
enum BodyError {
    /// The client closed the connection or it failed, so no response can be sent.
    Closed,
    /// The body is malformed or too large, and this error is the response.
    Refused(ApiError),
}

/// Reads what the client sent into `buf`, growing it when little room is left.
fn poll_read(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_BUFFER);
    }
    // Through `AsyncRead`: a read that leaves room in the buffer marks the socket drained, so the
    // next poll needs no system call. Dropping the pending future loses nothing.
    pin!(stream.read_buf(buf)).poll(cx)
}

/// Writes every byte of `parts`, in as few system calls as the socket takes them.
async fn write_all_vectored(stream: &mut TcpStream, parts: [&[u8]; 3]) -> io::Result<()> {
    let mut slices = parts.map(IoSlice::new);
    let mut slices = &mut slices[..];
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let written = stream.write_vectored(slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}
