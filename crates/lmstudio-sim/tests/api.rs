//! Responses and errors of LM Studio's endpoints, model management, auth and just-in-time
//! loading.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use lmstudio_sim::SimConfig;
use serde_json::json;

const QWEN: &str = "qwen2.5-7b-instruct";
const NOMIC: &str = "text-embedding-nomic-embed-text-v1.5";
const LLAMA: &str = "llama-3.2-1b-instruct";

#[tokio::test]
async fn chat_completion_shape() {
    let sim = start(fast_config()).await;
    let reply = post(
        &sim,
        "/v1/chat/completions",
        &chat(QWEN, "how are you today", 4),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );

    let body = reply.json();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], QWEN);
    assert_eq!(body["stats"], json!({}));
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(choice["message"]["role"], "assistant");
    let text = choice["message"]["content"].as_str().unwrap();
    assert_eq!(text.split_whitespace().count(), 4);
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8})
    );
}

#[tokio::test]
async fn generation_is_deterministic() {
    let sim = start(fast_config()).await;
    let text = |body: serde_json::Value| {
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = text(
        post(&sim, "/v1/chat/completions", &chat(QWEN, "same prompt", 2))
            .await
            .json(),
    );
    let again = text(
        post(
            &sim,
            "/v1/chat/completions",
            &chat(&format!("{QWEN}:2"), "same prompt", 2),
        )
        .await
        .json(),
    );
    let other = text(
        post(&sim, "/v1/chat/completions", &chat(QWEN, "other prompt", 2))
            .await
            .json(),
    );
    assert_eq!(first, again);
    assert_ne!(first, other);
}

#[tokio::test]
async fn max_completion_tokens_and_default_limit() {
    let sim = start(SimConfig {
        tokens_per_second: 0.0,
        ..fast_config()
    })
    .await;
    let body = json!({"model": QWEN, "messages": [], "max_completion_tokens": 3});
    let reply = post(&sim, "/v1/chat/completions", &body).await.json();
    assert_eq!(reply["usage"]["completion_tokens"], 3);

    let body = json!({"model": QWEN, "messages": [{"role": "user", "content": "x"}]});
    let reply = post(&sim, "/v1/chat/completions", &body).await.json();
    assert_eq!(reply["usage"]["completion_tokens"], 32);
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn other_api_families_respond() {
    let sim = start(fast_config()).await;
    let completion = post(
        &sim,
        "/api/v0/completions",
        &json!({"model": QWEN, "prompt": "a b", "max_tokens": 2}),
    )
    .await
    .json();
    assert_eq!(completion["object"], "text_completion");
    assert_eq!(completion["usage"]["completion_tokens"], 2);
    assert_eq!(
        completion["stats"]["stop_reason"],
        "maxPredictedTokensReached"
    );

    let response = post(
        &sim,
        "/v1/responses",
        &json!({"model": QWEN, "input": "hi"}),
    )
    .await
    .json();
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(response["usage"]["output_tokens"], 32);

    let message = post(
        &sim,
        "/v1/messages",
        &json!({"model": QWEN, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["stop_reason"], "max_tokens");
    assert_eq!(message["usage"]["output_tokens"], 3);

    let native = post(
        &sim,
        "/api/v1/chat",
        &json!({"model": QWEN, "input": "hi", "max_output_tokens": 2}),
    )
    .await
    .json();
    assert_eq!(native["model_instance_id"], QWEN);
    assert_eq!(native["output"][0]["type"], "message");
    assert_eq!(native["stats"]["total_output_tokens"], 2);
    assert!(native["response_id"].as_str().unwrap().starts_with("resp_"));
}

#[tokio::test]
async fn embeddings_are_fixed_size_and_deterministic() {
    let sim = start(fast_config()).await;
    let body = json!({"model": NOMIC, "input": ["first text", "second"]});
    let reply = post(&sim, "/v1/embeddings", &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = reply.json();
    assert_eq!(reply["object"], "list");
    assert_eq!(reply["model"], NOMIC);
    assert_eq!(reply["usage"]["prompt_tokens"], 3);
    let data = reply["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 768);

    let single = post(
        &sim,
        "/api/v0/embeddings",
        &json!({"model": NOMIC, "input": "first text"}),
    )
    .await
    .json();
    assert_eq!(single["data"][0]["embedding"], data[0]["embedding"]);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
}

#[tokio::test]
async fn unknown_and_unloaded_models_are_rejected() {
    let sim = start(fast_config()).await;
    for model in ["no-such-model", LLAMA, &format!("{QWEN}:9")] {
        let reply = post(&sim, "/v1/chat/completions", &chat(model, "hi", 1)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{model}");
        let error = &reply.json()["error"];
        assert_eq!(error["code"], "model_not_found", "{model}");
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], "model");
        assert!(error["message"].as_str().unwrap().contains(model));
    }

    let anthropic = post(
        &sim,
        "/v1/messages",
        &json!({"model": "nope", "max_tokens": 1, "messages": []}),
    )
    .await;
    assert_eq!(anthropic.status, StatusCode::BAD_REQUEST);
    assert_eq!(anthropic.json()["type"], "error");
    assert_eq!(anthropic.json()["error"]["type"], "not_found_error");

    let native = post(
        &sim,
        "/api/v1/chat",
        &json!({"model": "nope", "input": "x"}),
    )
    .await
    .json();
    assert_eq!(native["error"]["type"], "model_not_found");
}

#[tokio::test]
async fn no_models_loaded_error() {
    let sim = start(config_with_models(&["m,state=not-loaded"])).await;
    let reply = post(&sim, "/v1/chat/completions", &chat("m", "hi", 1)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("No models loaded")
    );
}

#[tokio::test]
async fn wrong_model_type_is_rejected() {
    let sim = start(fast_config()).await;
    let reply = post(&sim, "/v1/chat/completions", &chat(NOMIC, "hi", 1)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("embeddings")
    );

    let reply = post(
        &sim,
        "/v1/embeddings",
        &json!({"model": QWEN, "input": "hi"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["error"].as_str().unwrap().contains("type llm"));
    assert_eq!(sim.stats().total_served(), 0);
}

#[tokio::test]
async fn invalid_bodies_are_rejected() {
    let sim = start(fast_config()).await;
    let cases: [(&str, Bytes, &str); 4] = [
        (
            "/v1/chat/completions",
            Bytes::from_static(b"{not json"),
            "Invalid JSON",
        ),
        (
            "/v1/chat/completions",
            Bytes::from_static(br#"{"messages":[]}"#),
            "'model' field is required",
        ),
        (
            "/v1/chat/completions",
            Bytes::from_static(br#"{"model":"m"}"#),
            "'messages' field is required",
        ),
        (
            "/v1/completions",
            Bytes::from_static(br#"{"model":"m"}"#),
            "'prompt' field is required",
        ),
    ];
    for (path, body, expected) in cases {
        let reply = send(&sim, request(Method::POST, path, body, &[])).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{expected}");
        let message = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(
            message.contains(expected),
            "{message:?} should contain {expected:?}"
        );
    }
}

#[tokio::test]
async fn unexpected_endpoint_is_200_error() {
    let sim = start(fast_config()).await;
    let cases = [
        (Method::POST, "/v1/foo", "POST /v1/foo"),
        (
            Method::GET,
            "/v1/chat/completions",
            "GET /v1/chat/completions",
        ),
        (Method::DELETE, "/v1/models", "DELETE /v1/models"),
        (Method::GET, "/sim/nothing", "GET /sim/nothing"),
    ];
    for (method, path, shown) in cases {
        let reply = send(&sim, request(method, path, Bytes::new(), &[])).await;
        assert_eq!(reply.status, StatusCode::OK, "{shown}");
        let expected = format!("Unexpected endpoint or method. ({shown})");
        assert_eq!(reply.json(), json!({"error": expected}));
    }
}

#[tokio::test]
async fn model_listings() {
    let sim = start(fast_config()).await;
    let openai = get(&sim, "/v1/models").await.json();
    assert_eq!(openai["object"], "list");
    let ids: Vec<&str> = openai["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            QWEN,
            "qwen2.5-7b-instruct:2",
            "qwen2.5-7b-instruct:3",
            NOMIC
        ]
    );
    assert_eq!(openai["data"][0]["owned_by"], "organization_owner");

    let v0 = get(&sim, "/api/v0/models").await.json();
    let entries = v0["data"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    for entry in &entries[..3] {
        assert_eq!(entry["state"], "loaded");
        assert_eq!(entry["type"], "llm");
        assert_eq!(entry["loaded_context_length"], 4096);
    }
    assert_eq!(entries[3]["type"], "embeddings");
    assert_eq!(entries[4]["id"], LLAMA);
    assert_eq!(entries[4]["state"], "not-loaded");
    assert!(entries[4].get("loaded_context_length").is_none());

    let one = get(&sim, "/api/v0/models/qwen2.5-7b-instruct:2")
        .await
        .json();
    assert_eq!(one["id"], "qwen2.5-7b-instruct:2");
    assert_eq!(one["arch"], "qwen2");
    let missing = get(&sim, "/api/v0/models/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let v1 = get(&sim, "/api/v1/models").await.json();
    let models = v1["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    assert_eq!(models[0]["key"], QWEN);
    assert_eq!(
        models[0]["loaded_instances"][2]["id"],
        "qwen2.5-7b-instruct:3"
    );
    assert_eq!(
        models[0]["loaded_instances"][2]["config"],
        json!({"context_length": 4096, "parallel": 1})
    );
    assert_eq!(models[1]["type"], "embedding");
    assert_eq!(models[2]["loaded_instances"], json!([]));

    let greeting = get(&sim, "/lmstudio-greeting").await.json();
    assert_eq!(greeting["lmstudio"], true);
}

#[tokio::test]
async fn openai_list_shows_unloaded_models_with_jit() {
    let sim = start(SimConfig {
        jit: true,
        ..fast_config()
    })
    .await;
    let openai = get(&sim, "/v1/models").await.json();
    let ids: Vec<&str> = openai["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&LLAMA), "{ids:?}");
}

#[tokio::test]
async fn load_and_unload_over_http() {
    let sim = start(fast_config()).await;
    let body = json!({"model": QWEN, "config": {"context_length": 8192, "parallel": 4}});
    let loaded = post(&sim, "/api/v1/models/load", &body).await;
    assert_eq!(loaded.status, StatusCode::OK);
    let loaded = loaded.json();
    assert_eq!(loaded["instance_id"], "qwen2.5-7b-instruct:4");
    assert_eq!(loaded["model_instance_id"], "qwen2.5-7b-instruct:4");
    assert_eq!(loaded["status"], "loaded");
    assert_eq!(loaded["type"], "llm");

    let v1 = get(&sim, "/api/v1/models").await.json();
    let instance = &v1["models"][0]["loaded_instances"][3];
    assert_eq!(
        instance["config"],
        json!({"context_length": 8192, "parallel": 4})
    );

    let unloaded = post(
        &sim,
        "/api/v1/models/unload",
        &json!({"instance_id": "qwen2.5-7b-instruct:2"}),
    )
    .await;
    assert_eq!(unloaded.status, StatusCode::OK);
    assert_eq!(
        unloaded.json(),
        json!({"instance_id": "qwen2.5-7b-instruct:2"})
    );
    assert!(sim.stats().instance("qwen2.5-7b-instruct:2").is_none());
    let gone = post(
        &sim,
        "/v1/chat/completions",
        &chat("qwen2.5-7b-instruct:2", "x", 1),
    )
    .await;
    assert_eq!(gone.status, StatusCode::BAD_REQUEST);

    let again = post(&sim, "/api/v1/models/load", &json!({"model": QWEN}))
        .await
        .json();
    assert_eq!(
        again["instance_id"], "qwen2.5-7b-instruct:2",
        "the lowest free id is reused"
    );

    let missing = post(
        &sim,
        "/api/v1/models/unload",
        &json!({"instance_id": "nope"}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let missing = post(&sim, "/api/v1/models/load", &json!({"model": "nope"})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let invalid = post(&sim, "/api/v1/models/load", &json!({"modle": QWEN})).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn library_load_unload() {
    let sim = start(fast_config()).await;
    assert_eq!(sim.load(LLAMA).unwrap(), LLAMA);
    assert_eq!(sim.load(LLAMA).unwrap(), "llama-3.2-1b-instruct:2");
    assert!(sim.load("nope").unwrap_err().contains("nope"));
    let reply = post(&sim, "/v1/chat/completions", &chat(LLAMA, "hi", 1)).await;
    assert_eq!(reply.json()["model"], LLAMA);
    assert!(sim.unload(LLAMA));
    assert!(!sim.unload(LLAMA));
    let reply = post(&sim, "/v1/chat/completions", &chat(LLAMA, "hi", 1)).await;
    assert_eq!(
        reply.json()["model"],
        "llama-3.2-1b-instruct:2",
        "bare id goes to the remaining instance"
    );
}

#[tokio::test]
async fn jit_loads_after_load_time() {
    let sim = start(SimConfig {
        jit: true,
        load_time: Duration::from_millis(100),
        ..fast_config()
    })
    .await;
    let started = tokio::time::Instant::now();
    let reply = post(&sim, "/v1/chat/completions", &chat(LLAMA, "wake up", 1)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["model"], LLAMA);
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(sim.stats().instance(LLAMA).unwrap().served, 1);

    let wrong = post(
        &sim,
        "/v1/embeddings",
        &json!({"model": LLAMA, "input": "x"}),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn jit_racing_requests_load_twice() {
    let sim = start(SimConfig {
        jit: true,
        load_time: Duration::from_millis(500),
        ..fast_config()
    })
    .await;
    let (one, two) = (chat(LLAMA, "one", 1), chat(LLAMA, "two", 1));
    let (first, second) = tokio::join!(
        post(&sim, "/v1/chat/completions", &one),
        post(&sim, "/v1/chat/completions", &two),
    );
    let mut models = [
        first.json()["model"].clone(),
        second.json()["model"].clone(),
    ];
    models.sort_by_key(|model| model.to_string());
    assert_eq!(models, [json!(LLAMA), json!("llama-3.2-1b-instruct:2")]);

    let third = post(&sim, "/v1/chat/completions", &chat(LLAMA, "three", 1)).await;
    assert_eq!(third.json()["model"], LLAMA, "loaded now, so no third load");
    let stats = sim.stats();
    assert_eq!(stats.instance(LLAMA).unwrap().served, 2);
    assert_eq!(stats.instance("llama-3.2-1b-instruct:2").unwrap().served, 1);
}

#[tokio::test]
async fn api_token_is_required() {
    const TOKEN: &str = "sk-lm-test:secret";
    let sim = start(SimConfig {
        api_token: Some(TOKEN.into()),
        ..fast_config()
    })
    .await;
    let body = chat(QWEN, "hi", 1).to_string();
    let bearer = format!("Bearer {TOKEN}");

    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, StatusCode);
    let cases: [Case; 6] = [
        ("/v1/chat/completions", vec![], StatusCode::UNAUTHORIZED),
        (
            "/v1/chat/completions",
            vec![("authorization", "Bearer wrong")],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/v1/chat/completions",
            vec![("authorization", &bearer)],
            StatusCode::OK,
        ),
        (
            "/v1/chat/completions",
            vec![("x-api-key", TOKEN)],
            StatusCode::UNAUTHORIZED,
        ),
        ("/v1/messages", vec![("x-api-key", TOKEN)], StatusCode::OK),
        (
            "/v1/messages",
            vec![("authorization", &bearer)],
            StatusCode::OK,
        ),
    ];
    for (path, headers, expected) in cases {
        let reply = send(&sim, request(Method::POST, path, body.clone(), &headers)).await;
        assert_eq!(reply.status, expected, "{path} with {headers:?}");
        if expected == StatusCode::UNAUTHORIZED {
            let error = &reply.json()["error"];
            assert_eq!(error["code"], "invalid_api_key");
            assert_eq!(error["type"], "invalid_request");
            assert!(error["message"].is_string());
        }
    }

    assert_eq!(
        get(&sim, "/v1/models").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&sim, "/api/v1/models").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&sim, "/sim/stats").await.status, StatusCode::OK);
    let models = send(
        &sim,
        request(
            Method::GET,
            "/v1/models",
            Bytes::new(),
            &[("authorization", &bearer)],
        ),
    )
    .await;
    assert_eq!(models.status, StatusCode::OK);
}
