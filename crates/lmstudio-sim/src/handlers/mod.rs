//! Request routing by method and path, and the API token check.

mod anthropic;
mod embeddings;
mod errors;
mod inference;
mod models;
mod native;
mod openai;
mod request;
mod responses;
mod sim;

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, Request, Response};
use hyper::body::Incoming;

use crate::body::SimBody;
use crate::handle::Shared;

/// An inference API family: one request body shape and one response shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    /// Anthropic's Messages API.
    Messages,
    /// LM Studio 0.4's `/api/v1/chat`.
    NativeChat,
}

impl Api {
    /// Names what the API produces, for error messages.
    fn description(self) -> &'static str {
        match self {
            Api::ChatCompletions => "chat completions",
            Api::Completions => "text completions",
            Api::Embeddings => "embeddings",
            Api::Responses => "responses",
            Api::Messages => "messages",
            Api::NativeChat => "chats",
        }
    }
}

/// An inference endpoint: its API family and whether it is under `/api/v0`, whose responses
/// carry extra `stats`, `model_info` and `runtime` fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Endpoint {
    pub api: Api,
    pub v0: bool,
}

/// Returns the inference endpoint at this method and path, if it is one.
fn inference_endpoint(method: &Method, path: &str) -> Option<Endpoint> {
    if method != Method::POST {
        return None;
    }
    let (api, v0) = match path {
        "/v1/chat/completions" => (Api::ChatCompletions, false),
        "/v1/completions" => (Api::Completions, false),
        "/v1/embeddings" => (Api::Embeddings, false),
        "/v1/responses" => (Api::Responses, false),
        "/v1/messages" => (Api::Messages, false),
        "/api/v0/chat/completions" => (Api::ChatCompletions, true),
        "/api/v0/completions" => (Api::Completions, true),
        "/api/v0/embeddings" => (Api::Embeddings, true),
        "/api/v1/chat" => (Api::NativeChat, false),
        _ => return None,
    };
    Some(Endpoint { api, v0 })
}

/// Every other endpoint.
enum Route<'a> {
    Sim,
    Greeting,
    OpenAiModels,
    V0Models,
    V0Model(&'a str),
    V1Models,
    Load,
    Unload,
    Unexpected,
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    if path.starts_with("/sim/") {
        return Route::Sim;
    }
    match (method, path) {
        (&Method::GET, "/lmstudio-greeting") => Route::Greeting,
        (&Method::GET, "/v1/models") => Route::OpenAiModels,
        (&Method::GET, "/api/v0/models") => Route::V0Models,
        (&Method::GET, "/api/v1/models") => Route::V1Models,
        (&Method::POST, "/api/v1/models/load") => Route::Load,
        (&Method::POST, "/api/v1/models/unload") => Route::Unload,
        (&Method::GET, _) => match path.strip_prefix("/api/v0/models/") {
            Some(id) if !id.is_empty() => Route::V0Model(id),
            _ => Route::Unexpected,
        },
        _ => Route::Unexpected,
    }
}

/// Routes one request to its handler and returns the response.
pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<SimBody> {
    if let Some(endpoint) = inference_endpoint(request.method(), request.uri().path()) {
        return inference::handle(&shared, endpoint, request).await;
    }
    let path = request.uri().path().to_owned();
    let route = route(request.method(), &path);
    if let Route::Sim = route {
        return sim::handle(&shared, request).await;
    }

    // NOTE: the greeting needs no token, so clients can detect the server before they
    // authenticate. LM Studio's documentation does not say whether it checks the token there.
    let open = matches!(route, Route::Greeting);
    if !open && !authorized(&shared, request.headers(), false) {
        return errors::invalid_api_key();
    }
    let listing = matches!(
        route,
        Route::OpenAiModels | Route::V0Models | Route::V0Model(_) | Route::V1Models
    );
    if listing && let Some(delay) = shared.faults.listing_delay() {
        tokio::time::sleep(delay).await;
    }
    match route {
        Route::Greeting => models::greeting(),
        Route::OpenAiModels => models::openai_list(&shared),
        Route::V0Models => models::v0_list(&shared),
        Route::V0Model(id) => models::v0_model(&shared, id),
        Route::V1Models => models::v1_list(&shared),
        Route::Load => models::load(&shared, request).await,
        Route::Unload => models::unload(&shared, request).await,
        Route::Unexpected | Route::Sim => errors::unexpected_endpoint(request.method(), &path),
    }
}

/// Checks `Authorization: Bearer TOKEN` (or `x-api-key: TOKEN` where Anthropic's API
/// allows it) when the simulator has an API token.
pub(crate) fn authorized(shared: &Shared, headers: &HeaderMap, accepts_x_api_key: bool) -> bool {
    let Some(token) = &shared.config.api_token else {
        return true;
    };
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(scheme, value)| scheme.eq_ignore_ascii_case("bearer") && value == token);
    let api_key = accepts_x_api_key
        && headers
            .get("x-api-key")
            .is_some_and(|value| value.as_bytes() == token.as_bytes());
    bearer || api_key
}

/// Reads a JSON request body, or returns the 400 answer for an unreadable or invalid one.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, Response<SimBody>> {
    use http_body_util::BodyExt;

    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let message = format!("Failed to read the request body: {error}");
            return Err(errors::plain(http::StatusCode::BAD_REQUEST, &message));
        }
    };
    serde_json::from_slice(&body).map_err(|error| {
        let message = format!("Invalid JSON in request body: {error}");
        errors::plain(http::StatusCode::BAD_REQUEST, &message)
    })
}
