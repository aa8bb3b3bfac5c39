//! Response bodies: lmlb's own (a single buffer) and upstream streams that hold a slot.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep};

use super::connection::ResponseReader;
use super::http1::HeaderLines;
use crate::scheduler::SlotGuard;
use crate::telemetry::{Outcome, RequestRecord};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response lmlb sends.
pub struct ProxyBody {
    kind: Kind,
    /// The upstream's header lines for a relayed response, written after the response's own
    /// headers. They are kept as bytes because they pass through unchanged.
    header_lines: HeaderLines,
}

enum Kind {
    Full(Option<Bytes>),
    Upstream(Box<UpstreamBody>),
}

impl ProxyBody {
    pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
        ProxyBody {
            kind: Kind::Full(Some(bytes.into())),
            header_lines: HeaderLines::default(),
        }
    }

    /// Relays an upstream's body, with the upstream's header lines that pass on to the client.
    pub fn upstream(body: UpstreamBody, header_lines: HeaderLines) -> ProxyBody {
        ProxyBody {
            kind: Kind::Upstream(Box::new(body)),
            header_lines,
        }
    }

    pub fn header_lines(&self) -> &HeaderLines {
        &self.header_lines
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(body) => Pin::new(&mut **body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(body) => body.finished,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream(body) => body.size_hint(),
        }
    }
}

/// The action taken when the client goes away before the upstream body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnClientGone {
    /// Close the upstream connection at once, so LM Studio stops generating (streams).
    Close,
    /// Read the rest and discard it, keeping the slot until the upstream is done; LM Studio
    /// finishes a non-streaming request whether or not anyone reads it.
    Drain,
}

/// An upstream response body passed through frame by frame, as it arrives. It keeps the slot
/// until the upstream finishes, and fails the client's response (instead of ending it cleanly)
/// when the upstream breaks off or stays silent longer than the idle timeout.
pub struct UpstreamBody {
    /// Reads the body off its connection, which goes back to the pool at a clean end. Taken by
    /// the drain task when the client leaves early.
    reader: Option<ResponseReader>,
    guard: Option<SlotGuard>,
    idle_timeout: Duration,
    /// Armed only when the upstream has nothing ready, so a body that arrives at once costs no
    /// timer.
    timer: Option<Pin<Box<Sleep>>>,
    /// When the idle timeout expires, counted from the last frame.
    deadline: Instant,
    on_client_gone: OnClientGone,
    finished: bool,
    record: Option<RequestRecord>,
}

/// The upstream sent nothing for longer than the request timeout.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing for {0:?}")]
struct IdleTimeout(Duration);

impl UpstreamBody {
    pub fn new(
        reader: ResponseReader,
        guard: Option<SlotGuard>,
        idle_timeout: Duration,
        on_client_gone: OnClientGone,
        record: Option<RequestRecord>,
    ) -> UpstreamBody {
        let finished = reader.is_end();
        let mut body = UpstreamBody {
            reader: Some(reader),
            guard,
            idle_timeout,
            timer: None,
            deadline: Instant::now() + idle_timeout,
            on_client_gone,
            finished: false,
            record,
        };
        if finished {
            body.finish(Outcome::Complete);
        }
        body
    }

    /// Frees the slot and records the outcome, once.
    fn finish(&mut self, outcome: Outcome) {
        self.finished = true;
        self.guard = None;
        if let Some(mut reader) = self.reader.take() {
            reader.release();
        }
        if let Some(record) = self.record.take() {
            record.finish(outcome);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(reader) = this.reader.as_mut().filter(|_| !this.finished) else {
            return Poll::Ready(None);
        };
        match reader.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                this.deadline = Instant::now() + this.idle_timeout;
                if reader.is_end() {
                    this.finish(Outcome::Complete);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(error))) => {
                this.finish(Outcome::UpstreamBroke);
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => {
                this.finish(Outcome::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                // The timer keeps the deadline it was armed with, which frames since then have
                // only pushed later; when it fires early it is re-armed, so a stream resets it
                // at most once per timeout period instead of once per frame.
                loop {
                    ready!(timer.as_mut().poll(cx));
                    if Instant::now() >= this.deadline {
                        break;
                    }
                    timer.as_mut().reset(this.deadline);
                }
                this.finish(Outcome::UpstreamTimeout);
                Poll::Ready(Some(Err(Box::new(IdleTimeout(this.idle_timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        match self.reader.as_ref().and_then(ResponseReader::remaining) {
            Some(remaining) => SizeHint::with_exact(remaining),
            None => SizeHint::default(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some(record) = self.record.take() {
            record.finish(Outcome::ClientGone);
        }
        let drain = self.on_client_gone == OnClientGone::Drain && self.guard.is_some();
        let runtime = tokio::runtime::Handle::try_current();
        let (true, Ok(runtime)) = (drain, runtime) else {
            // Dropping the connection closes it, which stops a streaming generation.
            return;
        };

        // The rest of the body is read by a task of its own, which frees the slot (and returns
        // the connection) when the upstream is done.
        let mut rest = UpstreamBody {
            reader: self.reader.take(),
            guard: self.guard.take(),
            idle_timeout: self.idle_timeout,
            timer: None,
            deadline: self.deadline,
            on_client_gone: OnClientGone::Close,
            finished: false,
            record: None,
        };
        runtime.spawn(async move { while let Some(Ok(_)) = rest.frame().await {} });
    }
}
