//! One exchange with an upstream: build the request, send it, wait for the response head.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::body::{OnClientGone, UpstreamBody};
use super::connection::{ConnectionPool, ResponseReader, SendFailure};
use super::headers::{self, Peer, UpstreamHeaders};
use super::http1::{self, Outgoing, ResponseHead};
use crate::request::ClientRequest;
use crate::scheduler::SlotGuard;

/// The reason no response head came back.
pub enum Failure {
    /// Refused, reset or closed before the response head; safe to try another instance.
    Unreachable {
        error: String,
        guard: Option<SlotGuard>,
    },
    /// No response head within the request timeout.
    Timeout,
}

/// Builds the upstream request from the client's request head and the (rewritten) body, given
/// as pieces to join.
pub fn build_request(
    client: &ClientRequest,
    body: &[&[u8]],
    peer: &Peer,
    upstream: &UpstreamHeaders,
    strip_client_auth: bool,
) -> Result<Outgoing, String> {
    if upstream.host.is_none() {
        return Err("invalid upstream address: not a valid Host header".to_string());
    }
    // The target is in origin form, as a server expects it, and the upstream's address goes in
    // `Host`.
    let body_len = body.iter().map(|piece| piece.len()).sum();
    let capacity = 256 + body_len + client.head_len();
    let mut bytes = http1::start_request(client.method(), client.target(), capacity);
    headers::write_request_headers(
        &mut bytes,
        client,
        peer,
        upstream,
        strip_client_auth,
        body_len,
    );
    http1::finish_request(&mut bytes, body);
    Ok(Outgoing {
        method: client.method().clone(),
        bytes,
    })
}

/// The result of a successful exchange: the response head, the slot, and the reader of the
/// body, which owns the connection.
pub type Exchanged = (ResponseHead, Option<SlotGuard>, ResponseReader);

/// Sends a request and waits up to `timeout` for the response head.
///
/// With `finish_if_dropped`, a caller that goes away (the client disconnected) before the response
/// head arrived leaves the exchange running in a task of its own, which reads the response to its
/// end before freeing the slot, because LM Studio finishes a non-streaming request whether or not
/// anyone reads it. Otherwise dropping the caller closes the upstream connection, which stops a
/// streaming generation.
pub async fn exchange(
    pool: &Arc<ConnectionPool>,
    upstream: usize,
    request: Outgoing,
    guard: Option<SlotGuard>,
    timeout: Duration,
    finish_if_dropped: bool,
) -> Result<Exchanged, Failure> {
    let deadline = Instant::now() + timeout;
    let send = Arc::clone(pool).send(upstream, request, deadline);
    let mut pending = Pending {
        future: Some(Box::pin(send)),
        guard,
        timeout,
        finish_if_dropped,
    };
    let future = pending.future.as_mut().expect("set above");
    let outcome = future.await;
    pending.future = None;
    let mut guard = pending.guard.take();

    match outcome {
        Ok((head, reader)) => {
            if let Some(guard) = guard.as_mut() {
                guard.mark_forwarded();
            }
            Ok((head, guard, reader))
        }
        Err(SendFailure::Unreachable(error)) => Err(Failure::Unreachable { error, guard }),
        Err(SendFailure::TimedOut) => Err(Failure::Timeout),
    }
}

type SendFuture =
    Pin<Box<dyn Future<Output = Result<(ResponseHead, ResponseReader), SendFailure>> + Send>>;

/// An exchange waiting for its response head, with what it needs to finish alone.
struct Pending {
    future: Option<SendFuture>,
    guard: Option<SlotGuard>,
    timeout: Duration,
    finish_if_dropped: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(future) = self.future.take().filter(|_| self.finish_if_dropped) else {
            return;
        };
        let guard = self.guard.take();
        let timeout = self.timeout;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            // The exchange ends by the request timeout, which it carries.
            if let Ok((_, reader)) = future.await {
                let body = UpstreamBody::new(reader, guard, timeout, OnClientGone::Drain, None);
                drop(body);
            }
        });
    }
}
