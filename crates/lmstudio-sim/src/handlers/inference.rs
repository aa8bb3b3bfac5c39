//! The path every inference request takes: read the body, check the token, apply faults,
//! route to an instance, take a slot, generate, and respond in the API family's shape.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::errors::{self, RequestError};
use super::request::{self, InferenceRequest};
use super::{Api, Endpoint, anthropic, authorized, embeddings, native, openai, responses};
use crate::body::{ServedBy, SimBody, json_response, sse_response};
use crate::clock;
use crate::config::ModelKind;
use crate::faults::EarlyFault;
use crate::generation::{Generated, Plan, generate};
use crate::handle::Shared;
use crate::instance::Instance;
use crate::registry::{LoadOptions, Resolved};
use crate::stream::{EventEncoder, StreamSetup, TokenStream};
use crate::text::{new_id, unix_time};

/// Fields that every response to one request repeats: its id, time and instance.
pub(crate) struct Reply {
    pub id: String,
    pub created: u64,
    /// The instance id, which LM Studio reports as `model` and `system_fingerprint`.
    pub model: Arc<str>,
    pub model_key: Arc<str>,
    pub kind: ModelKind,
    pub context_length: u32,
    pub v0: bool,
    pub include_usage: bool,
    pub prompt_tokens: u32,
}

impl Reply {
    fn new(instance: &Instance, endpoint: Endpoint, request: &InferenceRequest) -> Self {
        let prefix = match endpoint.api {
            Api::ChatCompletions => "chatcmpl-",
            Api::Completions => "cmpl-",
            Api::Responses | Api::NativeChat => "resp_",
            Api::Messages => "msg_",
            Api::Embeddings => "embd-",
        };
        Self {
            id: new_id(prefix),
            created: unix_time(),
            model: Arc::clone(&instance.id),
            model_key: Arc::clone(&instance.model),
            kind: instance.kind,
            context_length: instance.context_length,
            v0: endpoint.v0,
            include_usage: request.include_usage,
            prompt_tokens: request.prompt.tokens,
        }
    }
}

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    endpoint: Endpoint,
    request: Request<Incoming>,
) -> Response<SimBody> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let message = format!("Failed to read the request body: {error}");
            return errors::plain(StatusCode::BAD_REQUEST, &message);
        }
    };

    let mut response = respond(shared, endpoint, &parts.headers, &body).await;

    if let Some(recorder) = &shared.recorder {
        let instance = response
            .extensions()
            .get::<ServedBy>()
            .map(|served| &*served.0);
        let entry = recorder.record(&parts, &body, instance, response.status().as_u16());
        response.body_mut().record_into(entry);
    }
    response
}

async fn respond(
    shared: &Arc<Shared>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response<SimBody> {
    let api = endpoint.api;
    if !authorized(shared, headers, api == Api::Messages) {
        return errors::invalid_api_key();
    }
    if let Some(delay) = shared.faults.header_delay() {
        tokio::time::sleep(delay).await;
    }
    match shared.faults.take_early() {
        Some(EarlyFault::Fail) => return RequestError::SimulatedFailure.into_response(api),
        Some(EarlyFault::Hang) => return std::future::pending().await,
        None => {}
    }
    match serve(shared, endpoint, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(api),
    }
}

async fn serve(
    shared: &Arc<Shared>,
    endpoint: Endpoint,
    body: &Bytes,
) -> Result<Response<SimBody>, RequestError> {
    let keep_hashes = shared.config.prefill_tokens_per_second > 0.0;
    let request = request::parse(endpoint.api, body, keep_hashes)?;
    let instance = find_instance(shared, endpoint.api, &request.model).await?;
    let served_by = ServedBy(Arc::clone(&instance.id));

    let mut response = if endpoint.api == Api::Embeddings {
        embeddings::respond(shared, instance, request).await?
    } else if request.stream {
        stream(shared, endpoint, instance, request).await?
    } else {
        complete(shared, endpoint, instance, request).await?
    };
    response.extensions_mut().insert(served_by);
    Ok(response)
}

/// Routes `name` to an instance, loading one just in time when enabled.
async fn find_instance(
    shared: &Shared,
    api: Api,
    name: &str,
) -> Result<Arc<Instance>, RequestError> {
    match shared.registry.resolve(name) {
        Resolved::Instance(instance) => {
            check_model_type(api, &instance.model, instance.kind)?;
            Ok(instance)
        }
        Resolved::NotLoaded { key, kind } if shared.config.jit => {
            check_model_type(api, &key, kind)?;
            load_just_in_time(shared, &key).await
        }
        Resolved::NotLoaded { .. } | Resolved::Unknown => {
            if shared.registry.any_loaded() {
                Err(RequestError::UnknownModel(name.to_owned()))
            } else {
                Err(RequestError::NoModelsLoaded)
            }
        }
    }
}

fn check_model_type(api: Api, model: &str, kind: ModelKind) -> Result<(), RequestError> {
    let fits = match api {
        Api::Embeddings => kind == ModelKind::Embeddings,
        _ => kind.generates_text(),
    };
    if fits {
        return Ok(());
    }
    Err(RequestError::WrongModelType {
        model: model.to_owned(),
        kind,
    })
}

/// Loads a new instance after the load time. Two requests that race here load two
/// instances, as LM Studio does.
async fn load_just_in_time(shared: &Shared, key: &str) -> Result<Arc<Instance>, RequestError> {
    tokio::time::sleep(shared.config.load_time).await;
    let instance = shared
        .registry
        .load(key, LoadOptions::default())
        .map_err(|_| RequestError::UnknownModel(key.to_owned()))?;
    tracing::info!(instance = %instance.id, "loaded just in time");
    Ok(instance)
}

/// Runs a generation to its end in a slot and returns the result.
///
/// Outside instant mode the generation runs in its own task, so it keeps its slot until it
/// ends even when the client disconnects and this future is dropped, as LM Studio does for
/// non-streaming requests. That holds for a request still waiting in the queue too.
pub(crate) async fn run_to_end(
    shared: &Arc<Shared>,
    instance: Arc<Instance>,
    plan: Plan,
) -> Result<Generated, RequestError> {
    let unloaded = |instance: &Instance| RequestError::Unloaded(instance.id.to_string());
    if shared.instant {
        if let Some(slot) = instance
            .try_acquire(None)
            .map_err(|_| unloaded(&instance))?
        {
            return Ok(generate(slot, &plan, &shared.timing).await);
        }
    }

    let timing = shared.timing;
    let mut down = shared.down.subscribe();
    let task = tokio::spawn(async move {
        let work = async {
            let hashes = plan.prompt.token_hashes.clone();
            let slot = instance
                .acquire(hashes)
                .await
                .map_err(|_| unloaded(&instance))?;
            Ok(generate(slot, &plan, &timing).await)
        };
        tokio::select! {
            result = work => result,
            _ = down.changed() => Err(RequestError::ServerStopped),
        }
    });
    task.await.unwrap_or(Err(RequestError::ServerStopped))
}

async fn complete(
    shared: &Arc<Shared>,
    endpoint: Endpoint,
    instance: Arc<Instance>,
    request: InferenceRequest,
) -> Result<Response<SimBody>, RequestError> {
    let reply = Reply::new(&instance, endpoint, &request);
    let plan = Plan::new(request.prompt, request.max_tokens, instance.context_length);
    let generated = run_to_end(shared, Arc::clone(&instance), plan).await?;

    let mut body = match endpoint.api {
        Api::ChatCompletions => openai::chat_json(&reply, &generated),
        Api::Completions => openai::completion_json(&reply, &generated),
        Api::Responses => responses::json(&reply, &generated),
        Api::Messages => anthropic::json(&reply, &generated),
        Api::NativeChat => native::json(&reply, &generated),
        Api::Embeddings => unreachable!("embeddings have their own handler"),
    };
    if shared.faults.take_malformed() {
        body.truncate(body.len() / 2);
    }
    Ok(json_response(StatusCode::OK, body))
}

/// Takes a slot, waits for the first token and returns the streaming response. Dropping
/// this future (the client left) frees the queue place or the slot at once.
async fn stream(
    shared: &Arc<Shared>,
    endpoint: Endpoint,
    instance: Arc<Instance>,
    request: InferenceRequest,
) -> Result<Response<SimBody>, RequestError> {
    let reply = Reply::new(&instance, endpoint, &request);
    let plan = Plan::new(request.prompt, request.max_tokens, instance.context_length);
    let hashes = plan.prompt.token_hashes.clone();
    let slot = instance
        .acquire(hashes)
        .await
        .map_err(|_| RequestError::Unloaded(instance.id.to_string()))?;

    let uncached = plan.prompt.tokens.saturating_sub(slot.cached_tokens());
    let time_to_first_token = shared.timing.first_token_delay(uncached);
    let first_token_at = Instant::now() + time_to_first_token;
    if !time_to_first_token.is_zero() {
        clock::sleep_until(first_token_at).await;
    }

    let stream = TokenStream::new(StreamSetup {
        encoder: encoder(endpoint.api, reply),
        slot,
        plan,
        first_token_at,
        time_to_first_token,
        interval: shared.timing.token_interval(),
        faults: shared.faults.take_stream(),
        stamp: shared.timing.stamp_tokens,
    });
    Ok(sse_response(stream))
}

fn encoder(api: Api, reply: Reply) -> Box<dyn EventEncoder> {
    match api {
        Api::ChatCompletions => Box::new(openai::ChatEncoder::new(reply)),
        Api::Completions => Box::new(openai::CompletionEncoder::new(reply)),
        Api::Responses => Box::new(responses::Encoder::new(reply)),
        Api::Messages => Box::new(anthropic::Encoder::new(reply)),
        Api::NativeChat => Box::new(native::Encoder::new(reply)),
        Api::Embeddings => unreachable!("embeddings do not stream"),
    }
}
