//! Dispatches each request to lmlb's own endpoints, the balancer or the pass-through.

use http::{Method, Response};

use crate::api;
use crate::app::App;
use crate::cors;
use crate::error::ApiError;
use crate::proxy::{self, Endpoint, Peer, ProxyBody};
use crate::request::ClientRequest;

/// Returns the response to `request`. The connection adds the CORS headers to every response, so
/// only the preflight is handled here.
pub async fn route(app: &App, request: ClientRequest, peer: &Peer) -> Response<ProxyBody> {
    let preflight =
        request.method() == Method::OPTIONS && request.has_header("access-control-request-method");
    if app.config.cors && preflight {
        return cors::preflight(&request);
    }

    dispatch(app, request, peer).await
}

async fn dispatch(app: &App, request: ClientRequest, peer: &Peer) -> Response<ProxyBody> {
    let method = request.method();
    let path = request.path();

    if app.requires_key() && !is_public(method, path) && !has_valid_key(app, &request) {
        return proxy::reject(app, ApiError::Unauthorized);
    }

    if *method == Method::GET {
        match path {
            "/health" => return api::health(app),
            "/models" => return api::models(app),
            "/metrics" => return api::metrics(app),
            "/dashboard" | "/dashboard/" => return api::dashboard(),
            "/v1/models" => return api::openai_models(app),
            "/api/v0/models" => return api::v0_models(app).await,
            _ if path.starts_with("/api/v0/models/") => {
                let path = path.to_string();
                return Box::pin(api::v0_model(app, &path)).await;
            }
            _ => {}
        }
    }

    if *method == Method::POST
        && let Some(endpoint) = Endpoint::from_path(path)
    {
        return proxy::balanced(app, request, endpoint, peer).await;
    }
    Box::pin(proxy::passthrough(app, request, peer)).await
}

/// Paths served without lmlb's API key: the liveness check and the dashboard page (which sends
/// the key from its address for the data it loads).
fn is_public(method: &Method, path: &str) -> bool {
    *method == Method::GET && matches!(path, "/health" | "/dashboard" | "/dashboard/")
}

/// Accepts `Authorization: Bearer KEY`, or `x-api-key: KEY` as Anthropic clients send it.
fn has_valid_key(app: &App, request: &ClientRequest) -> bool {
    let bearer = request
        .header_str("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let api_key = request.header_str("x-api-key");

    [bearer, api_key].into_iter().flatten().any(|offered| {
        app.config
            .api_keys
            .iter()
            .any(|key| constant_time_eq(key.expose(), offered))
    })
}

/// Compares keys without stopping at the first differing byte.
fn constant_time_eq(expected: &str, offered: &str) -> bool {
    let (a, b) = (expected.as_bytes(), offered.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
