//! One exchange with an upstream: build the request, send it, wait for the response head.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::ResponseFuture;

use super::body::OnClientGone;
use super::body::UpstreamBody;
use super::headers;
use crate::client::HttpClient;
use crate::config::UpstreamConfig;
use crate::scheduler::SlotGuard;

/// Why no response head came back.
pub enum Failure {
    /// Refused, reset or closed before the response head; safe to try another instance.
    Unreachable {
        error: String,
        guard: Option<SlotGuard>,
    },
    /// No response head within the request timeout.
    Timeout,
}

/// Builds the upstream request from the client's request head and the (rewritten) body.
pub fn build_request(
    parts: &Parts,
    body: Bytes,
    client_ip: IpAddr,
    upstream: &UpstreamConfig,
    strip_client_auth: bool,
) -> Result<Request<Full<Bytes>>, String> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri: Uri = format!("{}{path_and_query}", upstream.url)
        .parse()
        .map_err(|e| format!("invalid upstream URI: {e}"))?;

    let mut headers = parts.headers.clone();
    headers::prepare_request(
        &mut headers,
        client_ip,
        upstream,
        strip_client_auth,
        body.len(),
    );

    let mut request = Request::new(Full::new(body));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Sends a request and waits up to `timeout` for the response head.
///
/// With `finish_if_dropped`, a caller that goes away (the client disconnected) before the response
/// head arrived leaves the exchange running in a task of its own, which reads the answer to its end
/// before freeing the slot, because LM Studio finishes a non-streaming request whether or not
/// anyone reads it. Otherwise dropping the caller closes the upstream connection, which stops a
/// streaming generation.
pub async fn exchange(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    guard: Option<SlotGuard>,
    timeout: Duration,
    finish_if_dropped: bool,
) -> Result<(Response<Incoming>, Option<SlotGuard>), Failure> {
    let mut pending = Pending {
        future: Some(client.request(request)),
        guard,
        timeout,
        finish_if_dropped,
    };
    let future = pending.future.as_mut().expect("set above");
    let outcome = tokio::time::timeout(timeout, future).await;
    pending.future = None;
    let mut guard = pending.guard.take();

    match outcome {
        Ok(Ok(response)) => {
            if let Some(guard) = guard.as_mut() {
                guard.mark_forwarded();
            }
            Ok((response, guard))
        }
        Ok(Err(error)) => Err(Failure::Unreachable {
            error: super::describe_client_error(&error),
            guard,
        }),
        Err(_) => Err(Failure::Timeout),
    }
}

/// An exchange waiting for its response head, with what it needs to finish alone.
struct Pending {
    future: Option<ResponseFuture>,
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
            if let Ok(Ok(response)) = tokio::time::timeout(timeout, future).await {
                let body = UpstreamBody::new(
                    response.into_body(),
                    guard,
                    timeout,
                    OnClientGone::Drain,
                    None,
                );
                drop(body);
            }
        });
    }
}
