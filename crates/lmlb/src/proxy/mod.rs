//! The proxy: forwards requests to upstreams and streams their responses back.
//!
//! Balanced requests take a slot from the scheduler, get their `model` rewritten to the granted
//! instance, and keep the slot until the upstream's response ends. Other requests go unchanged to
//! a healthy upstream.

mod body;
mod connection;
mod endpoint;
mod forward;
mod headers;
pub(crate) mod http1;
pub mod rewrite;
mod scan;

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Response;
use tracing::Instrument;

pub use body::{BoxError, OnClientGone, ProxyBody, UpstreamBody};
pub use connection::ConnectionPool;
pub use endpoint::Endpoint;
pub use headers::{Peer, UpstreamHeaders};

use crate::app::App;
use crate::catalog::UpstreamState;
use crate::config::UnknownModel;
use crate::error::ApiError;
use crate::request::ClientRequest;
use crate::scheduler::{Acquire, Resolution, SlotGuard, Target};
use crate::telemetry::{Metrics, RequestLine, RequestRecord};
use forward::Failure;
use http1::ResponseHead;
use rewrite::RequestFields;

/// Describes a client error with its cause chain, as hyper's top-level message alone is vague.
pub fn describe_client_error(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Handles a request to a balanced endpoint.
pub async fn balanced(
    app: &App,
    request: ClientRequest,
    endpoint: Endpoint,
    peer: &Peer,
) -> Response<ProxyBody> {
    let id = app.next_request_id();
    let span = tracing::info_span!(
        "request",
        id,
        model = tracing::field::Empty,
        instance = tracing::field::Empty
    );
    let started = Instant::now();
    app.metrics
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    // The request log needs these after the request has been taken apart.
    let line = app
        .config
        .request_log
        .then(|| (request.method().clone(), request.path().to_string()));
    let mut unanswered = Unanswered {
        metrics: &app.metrics,
        answered: false,
    };
    let result = balance(app, request, endpoint, peer, id, started)
        .instrument(span)
        .await;
    unanswered.answered = true;
    result.unwrap_or_else(|error| {
        if let Some((method, path)) = line {
            tracing::info!(
                request_id = id,
                %method,
                %path,
                status = error.status().as_u16(),
                code = error.code(),
                duration_ms = started.elapsed().as_millis() as u64,
                "request rejected"
            );
        }
        reject(app, error)
    })
}

/// Counts a balanced request whose handler is dropped before it returns a response: the client
/// closed the connection while the request waited in a queue or for the upstream's response head.
struct Unanswered<'a> {
    metrics: &'a Metrics,
    answered: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.metrics
                .client_gone
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Builds the response for lmlb's own error and counts it.
pub fn reject(app: &App, error: ApiError) -> Response<ProxyBody> {
    app.metrics.count_rejection(error.code());
    tracing::debug!(%error, "request rejected");
    error.into_response()
}

async fn balance(
    app: &App,
    request: ClientRequest,
    endpoint: Endpoint,
    peer: &Peer,
    id: u64,
    started: Instant,
) -> Result<Response<ProxyBody>, ApiError> {
    let body = request.body();
    let fields = rewrite::inspect(body)?;
    tracing::Span::current().record("model", &*fields.model);

    let target = route(app, &fields.model, endpoint)?;
    let (mut guard, mut waited) = wait_for_slot(app, &target).await?;

    for attempt in 0..2 {
        let upstream_index = guard.upstream();
        tracing::Span::current().record("instance", &**guard.instance());
        let rewritten = rewrite::replace_model(body, &fields.model_span, guard.instance());
        let outgoing = forward::build_request(
            &request,
            &rewritten.pieces(),
            peer,
            &app.upstream_headers[upstream_index],
            app.requires_key(),
        )
        .map_err(ApiError::UpstreamUnavailable)?;
        let instance = Arc::clone(guard.instance());

        // A non-streaming exchange finishes even if its client leaves, so the slot stays taken
        // while the instance is still generating.
        let finish_if_dropped = !fields.stream;
        match forward::exchange(
            &app.connections,
            upstream_index,
            outgoing,
            Some(guard),
            app.config.request_timeout,
            finish_if_dropped,
        )
        .await
        {
            Ok((response, guard, reader)) => {
                let record = record(
                    app,
                    &request,
                    &fields,
                    &instance,
                    upstream_index,
                    waited,
                    id,
                    started,
                    response.status.as_u16(),
                );
                return Ok(upstream_response(
                    app,
                    (response, guard, reader),
                    fields.stream,
                    record,
                    &instance,
                    upstream_index,
                ));
            }
            Err(Failure::Timeout) => {
                return Err(ApiError::UpstreamTimeout {
                    timeout_ms: app.config.request_timeout.as_millis(),
                });
            }
            Err(Failure::Unreachable {
                error,
                guard: failed,
            }) => {
                on_unreachable(app, upstream_index, failed, &error);
                if attempt == 1 {
                    return Err(ApiError::UpstreamUnavailable(format!(
                        "could not reach upstream {}: {error}",
                        app.catalog.upstream(upstream_index).name
                    )));
                }
                app.metrics
                    .retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let wait_started = Instant::now();
                let (next, _) = wait_for_slot(app, &target).await?;
                waited += wait_started.elapsed();
                guard = next;
            }
        }
    }
    unreachable!("the loop returns on its second attempt")
}

/// Takes a failed upstream out of rotation (before its slot is freed, so the slot does not go
/// straight back to it) and triggers an immediate check by the catalog.
fn on_unreachable(app: &App, upstream: usize, guard: Option<SlotGuard>, error: &str) {
    tracing::warn!(upstream = %app.catalog.upstream(upstream).name, %error, "upstream unreachable; trying another instance");
    app.scheduler.suspend_upstream(upstream);
    drop(guard);
    app.catalog.check_now(upstream);
}

#[allow(clippy::too_many_arguments)]
fn record(
    app: &App,
    request: &ClientRequest,
    fields: &RequestFields<'_>,
    instance: &str,
    upstream: usize,
    queue_wait: Duration,
    id: u64,
    started: Instant,
    status: u16,
) -> RequestRecord {
    app.metrics.queue_wait.observe(queue_wait);
    let log = app.config.request_log.then(|| {
        Box::new(RequestLine {
            id,
            method: request.method().to_string(),
            path: request.path().to_string(),
            model: fields.model.to_string(),
            instance: instance.to_string(),
            upstream: app.catalog.upstream(upstream).name.clone(),
            status,
        })
    });
    RequestRecord {
        metrics: app.metrics.clone(),
        started,
        queue_wait,
        log,
    }
}

fn upstream_response(
    app: &App,
    (head, guard, reader): forward::Exchanged,
    stream: bool,
    record: RequestRecord,
    instance: &str,
    upstream: usize,
) -> Response<ProxyBody> {
    let on_client_gone = if stream {
        OnClientGone::Close
    } else {
        OnClientGone::Drain
    };
    let body = UpstreamBody::new(
        reader,
        guard,
        app.config.request_timeout,
        on_client_gone,
        Some(record),
    );
    relay(app, head, Some(instance), upstream, body)
}

/// Builds the client's response from the upstream's status and header lines, lmlb's own
/// `x-lmlb-*` lines, and the body.
fn relay(
    app: &App,
    head: ResponseHead,
    instance: Option<&str>,
    upstream: usize,
    body: UpstreamBody,
) -> Response<ProxyBody> {
    let mut lines = head.lines;
    headers::mark_response(&mut lines, instance, &app.upstream_headers[upstream]);
    let mut response = Response::new(ProxyBody::upstream(body, lines));
    *response.status_mut() = head.status;
    response
}

/// Maps the requested name to a target: an alias first, then a model, then an instance id.
fn route(app: &App, requested: &str, endpoint: Endpoint) -> Result<Target, ApiError> {
    let name = app
        .config
        .aliases
        .get(requested)
        .map_or(requested, String::as_str);
    let fallback = (app.config.unknown_model == UnknownModel::Any).then(|| endpoint.class());
    match app.scheduler.resolve(name, fallback) {
        Resolution::Found(target) => Ok(target),
        Resolution::Unknown { loaded } => Err(unknown_model(app, requested, &loaded)),
    }
}

/// Builds the error for a name that no up upstream has. With no upstream up (LM Studio not
/// started yet) the model may still appear, so the error is a 503, which clients retry.
/// Otherwise it is a 404 that names the upstreams that are down.
fn unknown_model(app: &App, requested: &str, loaded: &[String]) -> ApiError {
    let down: Vec<String> = (0..app.catalog.upstreams().len())
        .filter_map(|index| {
            let status = app.catalog.status(index);
            if status.state == UpstreamState::Up {
                return None;
            }
            let name = &app.catalog.upstream(index).name;
            let error = status.last_error.as_deref().unwrap_or("not checked yet");
            Some(format!("{name} ({error})"))
        })
        .collect();

    if down.len() == app.catalog.upstreams().len() {
        return ApiError::UpstreamUnavailable(format!(
            "cannot serve model \"{requested}\" because no upstream is up. Upstreams: {}. lmlb \
             keeps checking them and serves the model once one answers.",
            down.join(", ")
        ));
    }

    let loaded = if loaded.is_empty() {
        "none".to_string()
    } else {
        loaded.join(", ")
    };
    let down = if down.is_empty() {
        String::new()
    } else {
        format!(
            ". Upstreams that are down were not searched: {}",
            down.join(", ")
        )
    };
    ApiError::ModelNotFound {
        requested: requested.to_string(),
        loaded,
        down,
    }
}

/// Claims a slot for `target`, waiting in its queue up to the queue timeout.
async fn wait_for_slot(app: &App, target: &Target) -> Result<(SlotGuard, Duration), ApiError> {
    let mut ticket = match app.scheduler.acquire(target) {
        Acquire::Granted(guard) => return Ok((guard, Duration::ZERO)),
        Acquire::Queued(ticket) => ticket,
        Acquire::QueueFull { max } => {
            return Err(ApiError::QueueFull {
                model: target.label(),
                max,
            });
        }
        Acquire::Unavailable => {
            return Err(ApiError::UpstreamUnavailable(format!(
                "every upstream serving \"{}\" is down",
                target.label()
            )));
        }
    };

    let started = Instant::now();
    let timeout = app.scheduler.limits_for(target).timeout;
    match tokio::time::timeout(timeout, ticket.granted()).await {
        Ok(Ok(guard)) => Ok((guard, started.elapsed())),
        Ok(Err(_closed)) => Err(ApiError::ShuttingDown),
        Err(_elapsed) => Err(ApiError::QueueTimeout {
            model: target.label(),
            waited_ms: timeout.as_millis(),
        }),
    }
}

/// Forwards a request that is not balanced to a healthy upstream, unchanged.
pub async fn passthrough(app: &App, request: ClientRequest, peer: &Peer) -> Response<ProxyBody> {
    let mut last_error = "no upstream is configured".to_string();
    for index in app.passthrough_order().into_iter().take(2) {
        let upstream = app.catalog.upstream(index);
        let outgoing = match forward::build_request(
            &request,
            &[request.body()],
            peer,
            &app.upstream_headers[index],
            app.requires_key(),
        ) {
            Ok(outgoing) => outgoing,
            Err(error) => return reject(app, ApiError::UpstreamUnavailable(error)),
        };
        match forward::exchange(
            &app.connections,
            index,
            outgoing,
            None,
            app.config.request_timeout,
            false,
        )
        .await
        {
            Ok((head, _, reader)) => {
                let body = UpstreamBody::new(
                    reader,
                    None,
                    app.config.request_timeout,
                    OnClientGone::Close,
                    None,
                );
                return relay(app, head, None, index, body);
            }
            Err(Failure::Timeout) => {
                return reject(
                    app,
                    ApiError::UpstreamTimeout {
                        timeout_ms: app.config.request_timeout.as_millis(),
                    },
                );
            }
            Err(Failure::Unreachable { error, .. }) => {
                app.catalog.check_now(index);
                last_error = format!("could not reach upstream {}: {error}", upstream.name);
            }
        }
    }
    reject(app, ApiError::UpstreamUnavailable(last_error))
}
