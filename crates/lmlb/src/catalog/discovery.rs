//! Reading an upstream's loaded instances from its model listings.
//!
//! Three listings are tried, richest first: LM Studio 0.4's `/api/v1/models` (instance ids and
//! `parallel`), LM Studio's `/api/v0/models` (entries with `state: loaded`), and the OpenAI
//! `/v1/models` that any compatible server has (every id is one loaded instance of one slot).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde::Serialize;
use serde_json::Value;

use crate::client::HttpClient;
use crate::config::UpstreamConfig;
use crate::model::ModelKind;
use crate::scheduler::InstanceSpec;

/// Bound on one listing request unless configured otherwise; a slower upstream counts as down.
pub const DEFAULT_LISTING_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest listing body accepted.
pub const LISTING_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The model listing an upstream returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Listing {
    #[serde(rename = "lmstudio-v1")]
    LmStudioV1,
    #[serde(rename = "lmstudio-v0")]
    LmStudioV0,
    #[serde(rename = "openai")]
    OpenAi,
}

impl Listing {
    const ALL: [Listing; 3] = [Listing::LmStudioV1, Listing::LmStudioV0, Listing::OpenAi];

    pub fn as_str(self) -> &'static str {
        match self {
            Listing::LmStudioV1 => "lmstudio-v1",
            Listing::LmStudioV0 => "lmstudio-v0",
            Listing::OpenAi => "openai",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Listing::LmStudioV1 => "/api/v1/models",
            Listing::LmStudioV0 => "/api/v0/models",
            Listing::OpenAi => "/v1/models",
        }
    }

    fn parse(self, json: &Value) -> Option<Vec<InstanceSpec>> {
        match self {
            Listing::LmStudioV1 => parse_v1(json),
            Listing::LmStudioV0 => parse_v0(json),
            Listing::OpenAi => parse_openai(json),
        }
    }
}

/// The reason an upstream counts as down.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("authentication failed (HTTP {0}); check the upstream's api_token")]
    Unauthorized(u16),
    #[error("no model listing found (tried /api/v1/models, /api/v0/models and /v1/models)")]
    NoListing,
}

/// Reads the upstream's loaded instances, trying `preferred` (the listing that worked last) first.
pub async fn discover(
    client: &HttpClient,
    upstream: &UpstreamConfig,
    preferred: Option<Listing>,
    timeout: Duration,
) -> Result<(Listing, Vec<InstanceSpec>), DiscoveryError> {
    let order = preferred
        .into_iter()
        .chain(Listing::ALL.into_iter().filter(|l| Some(*l) != preferred));
    for listing in order {
        let Some(json) = fetch_json(client, upstream, listing.path(), timeout).await? else {
            continue;
        };
        if let Some(instances) = listing.parse(&json) {
            return Ok((listing, instances));
        }
    }
    Err(DiscoveryError::NoListing)
}

/// GETs a path; `Ok(None)` when the upstream responded but not with a usable JSON document.
async fn fetch_json(
    client: &HttpClient,
    upstream: &UpstreamConfig,
    path: &str,
    timeout: Duration,
) -> Result<Option<Value>, DiscoveryError> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(format!("{}{path}", upstream.url))
        .header(header::ACCEPT, "application/json");
    if let Some(token) = &upstream.api_token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .map_err(|e| DiscoveryError::Connect(e.to_string()))?;

    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| DiscoveryError::Connect(crate::proxy::describe_client_error(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), LISTING_MAX_BYTES)
            .collect()
            .await;
        Ok::<_, DiscoveryError>((status, body.ok().map(|b| b.to_bytes())))
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| DiscoveryError::Timeout(timeout))??;

    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(DiscoveryError::Unauthorized(status.as_u16()));
    }
    if !status.is_success() {
        return Ok(None);
    }
    Ok(body.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// `{"models":[{"type","key","loaded_instances":[{"id","config":{"parallel"}}]}]}`
fn parse_v1(json: &Value) -> Option<Vec<InstanceSpec>> {
    let models = json.get("models")?.as_array()?;
    let mut instances = Vec::new();
    for model in models {
        let kind = kind_of(
            model,
            model.get("key").and_then(Value::as_str).unwrap_or(""),
        );
        let Some(loaded) = model.get("loaded_instances").and_then(Value::as_array) else {
            continue;
        };
        for instance in loaded {
            let Some(id) = instance.get("id").and_then(Value::as_str) else {
                continue;
            };
            let parallel = instance
                .pointer("/config/parallel")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .filter(|&p| p > 0);
            instances.push(InstanceSpec {
                id: id.to_string(),
                kind,
                parallel,
            });
        }
    }
    Some(instances)
}

/// `{"data":[{"id","type","state":"loaded"}]}`; entries without `state` mean this is not LM
/// Studio's listing.
fn parse_v0(json: &Value) -> Option<Vec<InstanceSpec>> {
    let data = json.get("data")?.as_array()?;
    if data.iter().any(|entry| entry.get("state").is_none()) {
        return None;
    }
    let instances = data
        .iter()
        .filter(|entry| entry.get("state").and_then(Value::as_str) == Some("loaded"))
        .filter_map(|entry| {
            let id = entry.get("id")?.as_str()?;
            Some(InstanceSpec {
                id: id.to_string(),
                kind: kind_of(entry, id),
                parallel: None,
            })
        })
        .collect();
    Some(instances)
}

/// `{"data":[{"id"}]}`: every listed id is one loaded instance.
fn parse_openai(json: &Value) -> Option<Vec<InstanceSpec>> {
    let data = json.get("data")?.as_array()?;
    let instances = data
        .iter()
        .filter_map(|entry| {
            let id = entry.get("id")?.as_str()?;
            Some(InstanceSpec {
                id: id.to_string(),
                kind: ModelKind::guess_from_id(id),
                parallel: None,
            })
        })
        .collect();
    Some(instances)
}

fn kind_of(entry: &Value, id: &str) -> ModelKind {
    entry
        .get("type")
        .and_then(Value::as_str)
        .and_then(ModelKind::from_lmstudio)
        .unwrap_or_else(|| ModelKind::guess_from_id(id))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn v1_reads_instances_and_parallel() {
        let json = json!({"models": [
            {"type": "llm", "key": "qwen", "loaded_instances": [
                {"id": "qwen", "config": {"context_length": 8192, "parallel": 4}},
                {"id": "qwen:2", "config": {"context_length": 8192}}
            ]},
            {"type": "embedding", "key": "nomic", "loaded_instances": [{"id": "nomic", "config": {}}]},
            {"type": "llm", "key": "idle", "loaded_instances": []}
        ]});
        let instances = parse_v1(&json).unwrap();
        assert_eq!(instances.len(), 3);
        assert_eq!(instances[0].parallel, Some(4));
        assert_eq!(instances[1].id, "qwen:2");
        assert_eq!(instances[1].parallel, None);
        assert_eq!(instances[2].kind, ModelKind::Embeddings);
    }

    #[test]
    fn v0_keeps_loaded_entries() {
        let json = json!({"object": "list", "data": [
            {"id": "qwen", "type": "llm", "state": "loaded"},
            {"id": "qwen:2", "type": "vlm", "state": "loaded"},
            {"id": "other", "type": "llm", "state": "not-loaded"}
        ]});
        let instances = parse_v0(&json).unwrap();
        let ids: Vec<_> = instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["qwen", "qwen:2"]);
        assert_eq!(instances[1].kind, ModelKind::Vlm);
    }

    #[test]
    fn v0_rejects_plain_openai_listing() {
        let json = json!({"data": [{"id": "qwen", "object": "model"}]});
        assert!(parse_v0(&json).is_none());
        assert_eq!(parse_openai(&json).unwrap()[0].id, "qwen");
    }

    #[test]
    fn lmstudio_error_body_is_not_a_listing() {
        let json = json!({"error": "Unexpected endpoint or method. (GET /api/v1/models)"});
        assert!(parse_v1(&json).is_none());
        assert!(parse_v0(&json).is_none());
        assert!(parse_openai(&json).is_none());
    }
}
