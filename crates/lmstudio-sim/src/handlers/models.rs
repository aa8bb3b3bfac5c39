//! Model listings, model loading and unloading, and the greeting.
//!
//! LM Studio lists each loaded copy of a model as its own entry (`id`, `id:2`, ...). The
//! metadata (publisher, architecture, quantization, sizes) is made up from the model id,
//! since the simulator has no model files.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors;
use super::read_json;
use crate::body::{SimBody, json_value};
use crate::config::ModelKind;
use crate::handle::Shared;
use crate::instance::Instance;
use crate::registry::{LoadOptions, Model};

/// Made-up facts about a model file.
pub(crate) struct Facts {
    pub publisher: &'static str,
    pub arch: &'static str,
    pub quantization: &'static str,
    pub bits_per_weight: f64,
    pub max_context_length: u32,
    /// Parameter count such as "7B", when the id names one.
    pub params: Option<String>,
    pub size_bytes: u64,
}

pub(crate) fn facts(key: &str, kind: ModelKind) -> Facts {
    let lower = key.to_ascii_lowercase();
    let arch = [
        ("qwen", "qwen2"),
        ("llama", "llama"),
        ("gemma", "gemma3"),
        ("mistral", "mistral"),
        ("phi", "phi3"),
        ("nomic", "nomic-bert"),
    ]
    .iter()
    .find(|(needle, _)| lower.contains(needle))
    .map_or(
        if kind == ModelKind::Embeddings {
            "bert"
        } else {
            "llama"
        },
        |(_, arch)| arch,
    );

    let embeddings = kind == ModelKind::Embeddings;
    let (quantization, bits_per_weight) = if embeddings {
        ("Q4_0", 4.5)
    } else {
        ("Q4_K_M", 4.8)
    };
    let params = lower.split(['-', '_']).find_map(parameter_count);
    let billions = params.as_deref().map_or(0.5, parse_billions);
    Facts {
        publisher: if embeddings {
            "nomic-ai"
        } else {
            "lmstudio-community"
        },
        arch,
        quantization,
        bits_per_weight,
        max_context_length: if embeddings { 2048 } else { 32768 },
        size_bytes: (billions * 1e9 * bits_per_weight / 8.0) as u64,
        params,
    }
}

/// Reads a parameter count such as `7b`, `0.5b` or `270m` into "7B", "0.5B", "270M".
fn parameter_count(part: &str) -> Option<String> {
    let (number, unit) = part.split_at(part.len().checked_sub(1)?);
    let valid = matches!(unit, "b" | "m") && number.parse::<f64>().is_ok();
    valid.then(|| part.to_ascii_uppercase())
}

fn parse_billions(params: &str) -> f64 {
    let (number, unit) = params.split_at(params.len() - 1);
    let value: f64 = number.parse().unwrap_or(0.5);
    if unit == "M" { value / 1000.0 } else { value }
}

pub(crate) fn greeting() -> Response<SimBody> {
    json_value(StatusCode::OK, &json!({"lmstudio": true}))
}

/// `GET /v1/models`: every loaded instance and, with just-in-time loading on, every model
/// that has none.
pub(crate) fn openai_list(shared: &Shared) -> Response<SimBody> {
    let entry = |id: &str| json!({"id": id, "object": "model", "owned_by": "organization_owner"});
    let data: Vec<Value> = shared.registry.with_models(|models| {
        let mut data = Vec::new();
        for model in models {
            data.extend(model.instances.iter().map(|instance| entry(&instance.id)));
            if model.instances.is_empty() && shared.config.jit {
                data.push(entry(&model.key));
            }
        }
        data
    });
    json_value(StatusCode::OK, &json!({"object": "list", "data": data}))
}

/// `GET /api/v0/models`: one entry per loaded instance and one `not-loaded` entry for
/// each model without instances.
pub(crate) fn v0_list(shared: &Shared) -> Response<SimBody> {
    let data: Vec<Value> = shared.registry.with_models(|models| {
        let mut data = Vec::new();
        for model in models {
            data.extend(
                model
                    .instances
                    .iter()
                    .map(|i| v0_entry(model, &i.id, Some(i))),
            );
            if model.instances.is_empty() {
                data.push(v0_entry(model, &model.key, None));
            }
        }
        data
    });
    json_value(StatusCode::OK, &json!({"object": "list", "data": data}))
}

/// `GET /api/v0/models/{id}`: an instance by id, or a model by key (its oldest instance
/// when loaded).
pub(crate) fn v0_model(shared: &Shared, id: &str) -> Response<SimBody> {
    let found = shared.registry.with_models(|models| {
        models.iter().find_map(|model| {
            if let Some(instance) = model.instances.iter().find(|i| &*i.id == id) {
                return Some(v0_entry(model, &instance.id, Some(instance)));
            }
            (&*model.key == id).then(|| match model.instances.first() {
                Some(oldest) => v0_entry(model, &oldest.id, Some(oldest)),
                None => v0_entry(model, &model.key, None),
            })
        })
    });
    match found {
        Some(entry) => json_value(StatusCode::OK, &entry),
        None => errors::openai(
            StatusCode::NOT_FOUND,
            &format!("Model \"{id}\" not found."),
            "invalid_request_error",
            Some("model"),
            Some("model_not_found"),
        ),
    }
}

fn v0_entry(model: &Model, id: &str, instance: Option<&Arc<Instance>>) -> Value {
    let facts = facts(&model.key, model.kind);
    let mut entry = json!({
        "id": id,
        "object": "model",
        "type": model.kind.as_str(),
        "publisher": facts.publisher,
        "arch": facts.arch,
        "compatibility_type": "gguf",
        "quantization": facts.quantization,
        "state": if instance.is_some() { "loaded" } else { "not-loaded" },
        "max_context_length": facts.max_context_length,
    });
    if let Some(instance) = instance {
        entry["loaded_context_length"] = json!(instance.context_length);
    }
    if model.kind.generates_text() {
        entry["capabilities"] = json!(["tool_use"]);
    }
    entry
}

/// `GET /api/v1/models`: every model with its loaded instances and their `parallel`.
pub(crate) fn v1_list(shared: &Shared) -> Response<SimBody> {
    let models: Vec<Value> = shared
        .registry
        .with_models(|models| models.iter().map(v1_entry).collect());
    json_value(StatusCode::OK, &json!({"models": models}))
}

fn v1_entry(model: &Model) -> Value {
    let facts = facts(&model.key, model.kind);
    let instances: Vec<Value> = model
        .instances
        .iter()
        .map(|instance| {
            json!({
                "id": &*instance.id,
                "config": {"context_length": instance.context_length, "parallel": instance.parallel()},
            })
        })
        .collect();
    let mut entry = json!({
        "type": v1_type(model.kind),
        "publisher": facts.publisher,
        "key": &*model.key,
        "display_name": &*model.key,
        "quantization": {"name": facts.quantization, "bits_per_weight": facts.bits_per_weight},
        "size_bytes": facts.size_bytes,
        "params_string": facts.params,
        "loaded_instances": instances,
        "max_context_length": facts.max_context_length,
        "format": "gguf",
    });
    if model.kind.generates_text() {
        entry["architecture"] = json!(facts.arch);
        entry["capabilities"] = json!({
            "vision": model.kind == ModelKind::Vlm,
            "trained_for_tool_use": true,
        });
    }
    entry
}

fn v1_type(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Embeddings => "embedding",
        ModelKind::Llm | ModelKind::Vlm => "llm",
    }
}

#[derive(Deserialize)]
struct LoadRequest {
    model: String,
    #[serde(default)]
    config: LoadConfig,
    context_length: Option<u32>,
    parallel: Option<u32>,
}

#[derive(Deserialize, Default)]
struct LoadConfig {
    context_length: Option<u32>,
    parallel: Option<u32>,
}

/// `POST /api/v1/models/load`: loads a new instance after the load time. `context_length`
/// and `parallel` may be given at the top level or under `config`.
pub(crate) async fn load(shared: &Shared, request: Request<Incoming>) -> Response<SimBody> {
    let load: LoadRequest = match read_json(request).await {
        Ok(load) => load,
        Err(response) => return response,
    };
    let options = LoadOptions {
        context_length: load.config.context_length.or(load.context_length),
        parallel: load.config.parallel.or(load.parallel),
    };
    if options.parallel == Some(0) {
        return errors::plain(StatusCode::BAD_REQUEST, "'parallel' must be at least 1");
    }

    tokio::time::sleep(shared.config.load_time).await;
    let instance = match shared.registry.load(&load.model, options) {
        Ok(instance) => instance,
        Err(_) => return model_not_found(&load.model),
    };
    tracing::info!(instance = %instance.id, "loaded");
    let config =
        json!({"context_length": instance.context_length, "parallel": instance.parallel()});
    let loaded = json!({
        "type": v1_type(instance.kind),
        "instance_id": &*instance.id,
        "model_instance_id": &*instance.id,
        "config": config,
        "load_time_seconds": shared.config.load_time.as_secs_f64(),
        "status": "loaded",
    });
    json_value(StatusCode::OK, &loaded)
}

#[derive(Deserialize)]
struct UnloadRequest {
    instance_id: String,
}

/// `POST /api/v1/models/unload`.
pub(crate) async fn unload(shared: &Shared, request: Request<Incoming>) -> Response<SimBody> {
    let unload: UnloadRequest = match read_json(request).await {
        Ok(unload) => unload,
        Err(response) => return response,
    };
    if !shared.registry.unload(&unload.instance_id) {
        return model_not_found(&unload.instance_id);
    }
    tracing::info!(instance = %unload.instance_id, "unloaded");
    json_value(StatusCode::OK, &json!({"instance_id": unload.instance_id}))
}

fn model_not_found(name: &str) -> Response<SimBody> {
    let error = json!({"error": {
        "type": "model_not_found",
        "message": format!("Model \"{name}\" not found."),
    }});
    json_value(StatusCode::NOT_FOUND, &error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_from_id() {
        let qwen = facts("qwen2.5-7b-instruct", ModelKind::Llm);
        assert_eq!(qwen.arch, "qwen2");
        assert_eq!(qwen.params.as_deref(), Some("7B"));
        assert!(qwen.size_bytes > 4_000_000_000);
        let small = facts("gemma-3-270m-it", ModelKind::Llm);
        assert_eq!(small.params.as_deref(), Some("270M"));
        let nomic = facts(
            "text-embedding-nomic-embed-text-v1.5",
            ModelKind::Embeddings,
        );
        assert_eq!(nomic.arch, "nomic-bert");
        assert_eq!(nomic.params, None);
    }
}
