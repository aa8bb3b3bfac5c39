//! Error responses in the shapes LM Studio uses, mapped in one place.
//!
//! LM Studio's status codes and wording vary by version. The simulator follows the forms
//! documented for 0.3 and 0.4: a plain string `error` for most request problems, OpenAI's
//! error object for unknown models and LM Studio 0.4's object on `/api/v1/chat`.
//!
//! NOTE: the error shape of LM Studio's `/v1/messages` is not documented; the simulator
//! uses Anthropic's envelope there, which Anthropic clients expect.

use http::{Response, StatusCode};
use serde::Serialize;

use super::Api;
use crate::body::{SimBody, json_value};
use crate::config::ModelKind;

/// Reason an inference request failed before or instead of generation.
#[derive(Debug)]
pub(crate) enum RequestError {
    InvalidJson(String),
    MissingField(&'static str),
    UnknownModel(String),
    NoModelsLoaded,
    WrongModelType { model: String, kind: ModelKind },
    Unloaded(String),
    SimulatedFailure,
    ServerStopped,
}

impl RequestError {
    pub fn into_response(self, api: Api) -> Response<SimBody> {
        let status = self.status();
        let message = self.message(api);
        match api {
            Api::Messages => anthropic(status, self.anthropic_type(), &message),
            Api::NativeChat => native(status, self.native_type(), &message, self.param()),
            _ => match self {
                RequestError::UnknownModel(_) => openai(
                    status,
                    &message,
                    "invalid_request_error",
                    Some("model"),
                    Some("model_not_found"),
                ),
                _ => plain(status, &message),
            },
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            RequestError::SimulatedFailure | RequestError::ServerStopped => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self, api: Api) -> String {
        match self {
            RequestError::InvalidJson(detail) => format!("Invalid JSON in request body: {detail}"),
            RequestError::MissingField(field) => format!("'{field}' field is required"),
            RequestError::UnknownModel(name) => format!(
                "Invalid model identifier \"{name}\". Please specify a valid downloaded model or loaded model instance."
            ),
            RequestError::NoModelsLoaded => {
                "No models loaded. Please load a model in the developer page or use the `lms load` command.".into()
            }
            RequestError::WrongModelType { model, kind } => format!(
                "Model \"{model}\" is of type {kind} and cannot serve {}.",
                api.description()
            ),
            RequestError::Unloaded(instance) => {
                format!("Model instance \"{instance}\" was unloaded before the request started.")
            }
            RequestError::SimulatedFailure => {
                "Simulated failure: the fail_next fault of lmstudio-sim is set.".into()
            }
            RequestError::ServerStopped => "The server stopped before the request finished.".into(),
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            RequestError::MissingField(field) => Some(field),
            RequestError::UnknownModel(_) | RequestError::WrongModelType { .. } => Some("model"),
            _ => None,
        }
    }

    fn anthropic_type(&self) -> &'static str {
        match self {
            RequestError::UnknownModel(_) => "not_found_error",
            RequestError::SimulatedFailure | RequestError::ServerStopped => "api_error",
            _ => "invalid_request_error",
        }
    }

    fn native_type(&self) -> &'static str {
        match self {
            RequestError::UnknownModel(_) | RequestError::NoModelsLoaded => "model_not_found",
            RequestError::SimulatedFailure | RequestError::ServerStopped => "internal_error",
            _ => "invalid_request",
        }
    }
}

/// `{"error":"MESSAGE"}`.
pub(crate) fn plain(status: StatusCode, message: &str) -> Response<SimBody> {
    #[derive(Serialize)]
    struct Plain<'a> {
        error: &'a str,
    }
    json_value(status, &Plain { error: message })
}

/// OpenAI's `{"error":{"message","type","param","code"}}`.
pub(crate) fn openai(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response<SimBody> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        error: Detail<'a>,
    }
    #[derive(Serialize)]
    struct Detail<'a> {
        message: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        param: Option<&'a str>,
        code: Option<&'a str>,
    }
    let error = Detail {
        message,
        kind,
        param,
        code,
    };
    json_value(status, &Envelope { error })
}

/// LM Studio 0.4's `{"error":{"type","message","param"?}}`, also used for `invalid_api_key`.
fn native(status: StatusCode, kind: &str, message: &str, param: Option<&str>) -> Response<SimBody> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        error: Detail<'a>,
    }
    #[derive(Serialize)]
    struct Detail<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        param: Option<&'a str>,
    }
    let error = Detail {
        kind,
        message,
        param,
    };
    json_value(status, &Envelope { error })
}

/// Anthropic's `{"type":"error","error":{"type","message"}}`.
fn anthropic(status: StatusCode, kind: &str, message: &str) -> Response<SimBody> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        #[serde(rename = "type")]
        envelope: &'static str,
        error: Detail<'a>,
    }
    #[derive(Serialize)]
    struct Detail<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        message: &'a str,
    }
    let error = Detail { kind, message };
    json_value(
        status,
        &Envelope {
            envelope: "error",
            error,
        },
    )
}

/// 401 `{"error":{"type":"invalid_request","code":"invalid_api_key","message"}}`.
pub(crate) fn invalid_api_key() -> Response<SimBody> {
    #[derive(Serialize)]
    struct Envelope {
        error: Detail,
    }
    #[derive(Serialize)]
    struct Detail {
        #[serde(rename = "type")]
        kind: &'static str,
        code: &'static str,
        message: &'static str,
    }
    let error = Detail {
        kind: "invalid_request",
        code: "invalid_api_key",
        message: "Missing or invalid API token. Send it as `Authorization: Bearer <token>`.",
    };
    json_value(StatusCode::UNAUTHORIZED, &Envelope { error })
}

/// Returns LM Studio's response to any unknown path or method: 200 with an error string.
pub(crate) fn unexpected_endpoint(method: &http::Method, path: &str) -> Response<SimBody> {
    plain(
        StatusCode::OK,
        &format!("Unexpected endpoint or method. ({method} {path})"),
    )
}
