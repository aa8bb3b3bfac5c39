//! One exchange with an upstream: build the request, send it, wait for the response head.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::sync::oneshot;

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
/// With `detach`, the exchange runs in its own task: if the caller goes away (the client
/// disconnected) the task still waits for the answer and reads it to the end before freeing the
/// slot, because LM Studio finishes a non-streaming request whether or not anyone reads it.
pub async fn exchange(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    guard: Option<SlotGuard>,
    timeout: Duration,
    detach: bool,
) -> Result<(Response<Incoming>, Option<SlotGuard>), Failure> {
    if !detach {
        return send(client, request, guard, timeout).await;
    }

    let (sender, receiver) = oneshot::channel();
    let client = client.clone();
    tokio::spawn(async move {
        let result = send(&client, request, guard, timeout).await;
        if let Err(Ok((response, guard))) = sender.send(result) {
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
    receiver.await.unwrap_or_else(|_| {
        Err(Failure::Unreachable {
            error: "the upstream exchange task ended unexpectedly".to_string(),
            guard: None,
        })
    })
}

async fn send(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    mut guard: Option<SlotGuard>,
    timeout: Duration,
) -> Result<(Response<Incoming>, Option<SlotGuard>), Failure> {
    match tokio::time::timeout(timeout, client.request(request)).await {
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
