//! Errors that lmlb itself returns, in OpenAI's error format.
//!
//! Every error a client can see from lmlb (not from an upstream) is an [`ApiError`]; it maps to a
//! status code and to the body `{"error":{"message","type","param","code"}}` in one place.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::proxy::ProxyBody;

/// An error returned by lmlb before or instead of an upstream's response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, not an object, or lacks a string `model`.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<&'static str>,
    },

    /// No alias, model or instance on an up upstream has this name. `down` is empty or a
    /// sentence, after the loaded models, that names the upstreams that are down.
    #[error("model \"{requested}\" not found; loaded models: {loaded}{down}")]
    ModelNotFound {
        requested: String,
        loaded: String,
        down: String,
    },

    /// The request body is larger than the configured maximum payload size.
    #[error("request body exceeds the maximum payload size of {limit} bytes")]
    PayloadTooLarge { limit: usize },

    /// The request head is larger than lmlb reads, or has too many headers.
    #[error("the request head exceeds 64 KiB or 100 header lines")]
    HeadTooLarge,

    /// The bearer key is missing or not one of the configured keys.
    #[error("invalid or missing API key; send it as \"Authorization: Bearer KEY\"")]
    Unauthorized,

    /// The model's queue contains its maximum number of waiting requests.
    #[error(
        "the queue for \"{model}\" is full: it holds its maximum of {max} waiting requests; retry later"
    )]
    QueueFull { model: String, max: usize },

    /// The request waited longer than the queue timeout for a free slot.
    #[error("no instance of model \"{model}\" became free within {waited_ms} ms; retry later")]
    QueueTimeout { model: String, waited_ms: u128 },

    /// No upstream could be reached for a request that needs one.
    #[error("{0}")]
    UpstreamUnavailable(String),

    /// The upstream sent nothing within the request timeout.
    #[error("the upstream did not respond within {timeout_ms} ms")]
    UpstreamTimeout { timeout_ms: u128 },

    /// lmlb is shutting down and takes no new requests.
    #[error("lmlb is shutting down")]
    ShuttingDown,
}

/// Seconds suggested to clients in `Retry-After` when a queue is full or timed out.
const RETRY_AFTER_SECONDS: &str = "5";

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: None,
        }
    }

    pub fn invalid_model(message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: Some("model"),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::ModelNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::QueueFull { .. }
            | ApiError::QueueTimeout { .. }
            | ApiError::UpstreamUnavailable(_)
            | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// OpenAI's `type` field.
    fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest { .. }
            | ApiError::ModelNotFound { .. }
            | ApiError::PayloadTooLarge { .. }
            | ApiError::HeadTooLarge => "invalid_request_error",
            ApiError::Unauthorized => "authentication_error",
            ApiError::QueueFull { .. } | ApiError::QueueTimeout { .. } => "rate_limit_error",
            ApiError::UpstreamUnavailable(_)
            | ApiError::UpstreamTimeout { .. }
            | ApiError::ShuttingDown => "server_error",
        }
    }

    /// OpenAI's `code` field, stable for clients to match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest { .. } => "invalid_request",
            ApiError::ModelNotFound { .. } => "model_not_found",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::HeadTooLarge => "header_too_large",
            ApiError::Unauthorized => "invalid_api_key",
            ApiError::QueueFull { .. } => "queue_full",
            ApiError::QueueTimeout { .. } => "queue_timeout",
            ApiError::UpstreamUnavailable(_) => "upstream_unavailable",
            ApiError::UpstreamTimeout { .. } => "upstream_timeout",
            ApiError::ShuttingDown => "shutting_down",
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            ApiError::InvalidRequest { param, .. } => *param,
            ApiError::ModelNotFound { .. } => Some("model"),
            _ => None,
        }
    }

    /// Builds the JSON error response.
    pub fn into_response(self) -> Response<ProxyBody> {
        let body = json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "param": self.param(),
                "code": self.code(),
            }
        });
        let mut response = json_response(self.status(), &body);

        let retry = matches!(
            self,
            ApiError::QueueFull { .. }
                | ApiError::QueueTimeout { .. }
                | ApiError::UpstreamUnavailable(_)
                | ApiError::ShuttingDown
        );
        if retry {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

/// Builds a JSON response from a serializable value.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ProxyBody> {
    let bytes = Bytes::from(serde_json::to_vec(value).expect("a JSON value always serializes"));
    let mut response = Response::new(ProxyBody::full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
