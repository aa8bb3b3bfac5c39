//! Reading an inference request body: the fields the simulator acts on.

use serde::Deserialize;
use serde_json::Value;

use super::Api;
use super::errors::RequestError;
use crate::text::{Prompt, PromptBuilder};

/// The parts of a request body that decide routing, generation and framing.
pub(crate) struct InferenceRequest {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    /// The API's token limit field, if set.
    pub max_tokens: Option<i64>,
    pub prompt: Prompt,
    /// Texts to embed, one vector each; empty for other APIs.
    pub inputs: Vec<String>,
}

/// Fields of every supported API; serde skips the rest.
#[derive(Deserialize)]
struct RawRequest {
    model: Option<String>,
    stream: Option<bool>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    max_output_tokens: Option<i64>,
    stream_options: Option<StreamOptions>,
    messages: Option<Value>,
    prompt: Option<Value>,
    input: Option<Value>,
    system: Option<Value>,
    instructions: Option<Value>,
    system_prompt: Option<Value>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Parses a body for `api`. `keep_hashes` keeps the prompt's token hashes for the prompt
/// cache model.
pub(crate) fn parse(
    api: Api,
    body: &[u8],
    keep_hashes: bool,
) -> Result<InferenceRequest, RequestError> {
    let raw: RawRequest = serde_json::from_slice(body)
        .map_err(|error| RequestError::InvalidJson(error.to_string()))?;
    // NOTE: LM Studio's documentation does not say what a request without `model` gets;
    // the simulator rejects it rather than guess a model.
    let Some(model) = raw.model.clone() else {
        return Err(RequestError::MissingField("model"));
    };
    let (field, content) = main_field(api, &raw);
    let Some(content) = content else {
        return Err(RequestError::MissingField(field));
    };

    let mut prompt = PromptBuilder::new(keep_hashes);
    if let Some(preamble) = preamble(api, &raw) {
        prompt.add_value(preamble);
    }
    prompt.add_value(content);

    Ok(InferenceRequest {
        model,
        stream: raw.stream.unwrap_or(false) && api != Api::Embeddings,
        include_usage: raw.stream_options.as_ref().is_some_and(|o| o.include_usage),
        max_tokens: max_tokens(api, &raw),
        prompt: prompt.finish(),
        inputs: if api == Api::Embeddings {
            embedding_inputs(content)
        } else {
            Vec::new()
        },
    })
}

/// Returns the name and value of the required field that contains the prompt.
fn main_field(api: Api, raw: &RawRequest) -> (&'static str, Option<&Value>) {
    match api {
        Api::ChatCompletions | Api::Messages => ("messages", raw.messages.as_ref()),
        Api::Completions => ("prompt", raw.prompt.as_ref()),
        Api::Embeddings | Api::Responses | Api::NativeChat => ("input", raw.input.as_ref()),
    }
}

/// Returns the optional system text that comes before the prompt.
fn preamble(api: Api, raw: &RawRequest) -> Option<&Value> {
    match api {
        Api::Messages => raw.system.as_ref(),
        Api::Responses => raw.instructions.as_ref(),
        Api::NativeChat => raw.system_prompt.as_ref(),
        Api::ChatCompletions | Api::Completions | Api::Embeddings => None,
    }
}

fn max_tokens(api: Api, raw: &RawRequest) -> Option<i64> {
    match api {
        Api::ChatCompletions => raw.max_completion_tokens.or(raw.max_tokens),
        Api::Completions | Api::Messages => raw.max_tokens,
        Api::Responses | Api::NativeChat => raw.max_output_tokens,
        Api::Embeddings => None,
    }
}

/// Splits `input` into texts: a string, an array of strings, or token arrays (whose numbers
/// are joined into one text each).
fn embedding_inputs(input: &Value) -> Vec<String> {
    match input {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) if items.iter().all(Value::is_number) => vec![join_tokens(items)],
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text.clone(),
                Value::Array(tokens) => join_tokens(tokens),
                other => other.to_string(),
            })
            .collect(),
        other => vec![other.to_string()],
    }
}

fn join_tokens(tokens: &[Value]) -> String {
    let words: Vec<String> = tokens.iter().map(Value::to_string).collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_request_fields() {
        let body =
            br#"{"model":"m","stream":true,"max_tokens":5,"stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":"one two three"}]}"#;
        let request = parse(Api::ChatCompletions, body, false).unwrap();
        assert_eq!(request.model, "m");
        assert!(request.stream);
        assert!(request.include_usage);
        assert_eq!(request.max_tokens, Some(5));
        assert_eq!(request.prompt.tokens, 3);
    }

    #[test]
    fn max_completion_tokens_wins() {
        let body = br#"{"model":"m","max_tokens":5,"max_completion_tokens":7,"messages":[]}"#;
        let request = parse(Api::ChatCompletions, body, false).unwrap();
        assert_eq!(request.max_tokens, Some(7));
    }

    #[test]
    fn missing_fields() {
        let error = parse(Api::ChatCompletions, br#"{"messages":[]}"#, false)
            .err()
            .unwrap();
        assert!(matches!(error, RequestError::MissingField("model")));
        let error = parse(Api::Completions, br#"{"model":"m"}"#, false)
            .err()
            .unwrap();
        assert!(matches!(error, RequestError::MissingField("prompt")));
        let error = parse(Api::Embeddings, b"{", false).err().unwrap();
        assert!(matches!(error, RequestError::InvalidJson(_)));
    }

    #[test]
    fn embedding_input_forms() {
        let one = parse(Api::Embeddings, br#"{"model":"e","input":"a b"}"#, false).unwrap();
        assert_eq!(one.inputs, ["a b"]);
        let many = parse(
            Api::Embeddings,
            br#"{"model":"e","input":["a","b c"]}"#,
            false,
        )
        .unwrap();
        assert_eq!(many.inputs, ["a", "b c"]);
        assert_eq!(many.prompt.tokens, 3);
        let tokens = parse(Api::Embeddings, br#"{"model":"e","input":[1,2]}"#, false).unwrap();
        assert_eq!(tokens.inputs, ["1 2"]);
    }
}
