//! The endpoints whose requests lmlb balances by their `model` field.

use crate::model::KindClass;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Messages,
    NativeChat,
}

impl Endpoint {
    /// Recognizes a balanced `POST` path, in its OpenAI (`/v1`) or LM Studio (`/api/v0`, `/api/v1`)
    /// spelling.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let endpoint = match path {
            "/v1/chat/completions" | "/api/v0/chat/completions" => Endpoint::ChatCompletions,
            "/v1/completions" | "/api/v0/completions" => Endpoint::Completions,
            "/v1/embeddings" | "/api/v0/embeddings" => Endpoint::Embeddings,
            "/v1/responses" => Endpoint::Responses,
            "/v1/messages" => Endpoint::Messages,
            "/api/v1/chat" => Endpoint::NativeChat,
            _ => return None,
        };
        Some(endpoint)
    }

    /// The kind of model the endpoint needs, for `--unknown-model any`.
    pub fn class(self) -> KindClass {
        match self {
            Endpoint::Embeddings => KindClass::Embedding,
            _ => KindClass::Generative,
        }
    }
}
