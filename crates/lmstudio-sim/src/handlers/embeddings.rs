//! Embeddings (`/v1/embeddings`, `/api/v0/embeddings`): one deterministic unit vector of
//! 768 floats per input text. The request holds a slot for the time to first token.

use std::sync::Arc;

use http::{Response, StatusCode};
use serde::Serialize;

use super::errors::RequestError;
use super::inference::run_to_end;
use super::request::InferenceRequest;
use crate::body::{SimBody, json_response};
use crate::generation::Plan;
use crate::handle::Shared;
use crate::instance::Instance;
use crate::sse;
use crate::text::embedding;

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    embedding: Vec<f32>,
    index: usize,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u32,
    total_tokens: u32,
}

pub(crate) async fn respond(
    shared: &Arc<Shared>,
    instance: Arc<Instance>,
    request: InferenceRequest,
) -> Result<Response<SimBody>, RequestError> {
    let prompt_tokens = request.prompt.tokens;
    run_to_end(
        shared,
        Arc::clone(&instance),
        Plan::embeddings(request.prompt),
    )
    .await?;

    let data = request
        .inputs
        .iter()
        .enumerate()
        .map(|(index, input)| Embedding {
            object: "embedding",
            embedding: embedding(input),
            index,
        })
        .collect();
    let list = EmbeddingList {
        object: "list",
        data,
        model: &instance.id,
        usage: Usage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    };
    let mut body = Vec::with_capacity(16 * 1024);
    sse::write_json(&mut body, &list);
    if shared.faults.take_malformed() {
        body.truncate(body.len() / 2);
    }
    Ok(json_response(StatusCode::OK, body))
}
