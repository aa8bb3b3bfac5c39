//! Model listings merged across upstreams: `GET /v1/models`, `GET /api/v0/models` and
//! `GET /api/v0/models/{id}`.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};

use crate::app::App;
use crate::catalog::LISTING_MAX_BYTES;
use crate::error::{ApiError, json_response};
use crate::proxy::ProxyBody;

/// Builds the OpenAI model list: each model once, with the ids of its loaded instances, then aliases.
pub fn openai_models(app: &App) -> Response<ProxyBody> {
    let snapshot = app.scheduler.snapshot();
    let mut models: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for instance in snapshot.instances.iter().filter(|i| i.listed) {
        let ids = models.entry(&instance.model).or_default();
        if !ids.contains(&instance.id.as_str()) {
            ids.push(&instance.id);
        }
    }

    let mut data: Vec<Value> = models
        .iter()
        .map(|(model, instances)| {
            json!({"id": model, "object": "model", "owned_by": "organization_owner", "instances": instances})
        })
        .collect();
    for (alias, target) in &app.config.aliases {
        data.push(json!({"id": alias, "object": "model", "owned_by": "lmlb", "alias_of": target}));
    }
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

/// LM Studio's rich listing from every upstream that is up, each id once; an id loaded on any
/// upstream shows as loaded.
pub async fn v0_models(app: &App) -> Response<ProxyBody> {
    let answers = fetch_from_up(app, "/api/v0/models").await;
    if answers.is_empty() {
        return ApiError::UpstreamUnavailable(
            "no upstream returned /api/v0/models; check that an upstream is up".to_string(),
        )
        .into_response();
    }

    let mut merged: Vec<Value> = Vec::new();
    for (_, body) in answers.iter().filter(|(status, _)| status.is_success()) {
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            continue;
        };
        let Some(entries) = json.get("data").and_then(Value::as_array) else {
            continue;
        };
        for entry in entries {
            merge_entry(&mut merged, entry);
        }
    }
    json_response(StatusCode::OK, &json!({"object": "list", "data": merged}))
}

fn merge_entry(merged: &mut Vec<Value>, entry: &Value) {
    let id = entry.get("id");
    match merged.iter_mut().find(|existing| existing.get("id") == id) {
        Some(existing) => {
            let loaded = entry.get("state").and_then(Value::as_str) == Some("loaded");
            if loaded {
                *existing = entry.clone();
            }
        }
        None => merged.push(entry.clone()),
    }
}

/// Returns one model's LM Studio entry, from the first upstream that lists it.
pub async fn v0_model(app: &App, path: &str) -> Response<ProxyBody> {
    let answers = fetch_from_up(app, path).await;
    let found = answers.iter().find(|(status, _)| status.is_success());
    let (status, body) = match found.or(answers.first()) {
        Some(answer) => answer.clone(),
        None => {
            return ApiError::UpstreamUnavailable(format!(
                "no upstream returned {path}; check that an upstream is up"
            ))
            .into_response();
        }
    };
    let mut response = Response::new(ProxyBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// GETs `path` from every upstream that is up, concurrently; failed upstreams are left out.
async fn fetch_from_up(app: &App, path: &str) -> Vec<(StatusCode, Bytes)> {
    let requests = app.catalog.up_upstreams().into_iter().map(|index| {
        let upstream = app.catalog.upstream(index).clone();
        let client = app.client.clone();
        let timeout = app.config.listing_timeout;
        let uri = format!("{}{path}", upstream.url);
        tokio::spawn(async move {
            let mut request = Request::builder().method(Method::GET).uri(uri);
            if let Some(token) = &upstream.api_token {
                request =
                    request.header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
            }
            let request = request.body(Full::new(Bytes::new())).ok()?;
            let exchange = async {
                let response = client.request(request).await.ok()?;
                let status = response.status();
                let body = Limited::new(response.into_body(), LISTING_MAX_BYTES)
                    .collect()
                    .await
                    .ok()?;
                Some((status, body.to_bytes()))
            };
            tokio::time::timeout(timeout, exchange).await.ok().flatten()
        })
    });
    let tasks: Vec<_> = requests.collect();

    let mut answers = Vec::new();
    for task in tasks {
        if let Ok(Some(answer)) = task.await {
            answers.push(answer);
        }
    }
    answers
}
