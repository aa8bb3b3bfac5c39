//! Streams of every API family, and what a client disconnect does to a slot.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use lmstudio_sim::SimConfig;
use serde_json::{Value, json};

const QWEN: &str = "qwen2.5-7b-instruct";

/// Returns the `data:` JSON of every event before `[DONE]`, and whether `[DONE]` came last.
fn chunks(events: &[Event]) -> (Vec<Value>, bool) {
    let done = events.last().is_some_and(|event| event.data == "[DONE]");
    let data = events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(Event::json)
        .collect();
    (data, done)
}

#[tokio::test]
async fn chat_stream_has_lm_studio_frames() {
    let sim = start(fast_config()).await;
    let mut body = chat_stream(QWEN, "tell me", 3);
    body["stream_options"] = json!({"include_usage": true});
    let mut stream = EventStream::open(&sim, "/v1/chat/completions", &body).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.headers["content-type"], "text/event-stream");

    let events = stream.collect().await;
    let (data, done) = chunks(&events);
    assert!(done, "ends with data: [DONE]");
    assert_eq!(data.len(), 6, "role, 3 tokens, finish, usage: {data:?}");

    let id = data[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for chunk in &data {
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], QWEN);
        assert_eq!(chunk["system_fingerprint"], QWEN);
        assert!(chunk["created"].is_u64());
    }

    let role = &data[0]["choices"][0];
    assert_eq!(role["delta"]["role"], "assistant");
    assert_eq!(role["finish_reason"], Value::Null);

    let text: String = data[1..4]
        .iter()
        .map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text.split_whitespace().count(), 3);

    let finish = &data[4]["choices"][0];
    assert_eq!(finish["delta"], json!({}));
    assert_eq!(finish["finish_reason"], "length");

    assert_eq!(data[5]["choices"], json!([]));
    assert_eq!(data[5]["usage"]["completion_tokens"], 3);
    assert_eq!(data[5]["usage"]["prompt_tokens"], 2);
    assert_eq!(data[5]["usage"]["total_tokens"], 5);

    let full = post(&sim, "/v1/chat/completions", &chat(QWEN, "tell me", 3))
        .await
        .json();
    assert_eq!(
        full["choices"][0]["message"]["content"],
        text.as_str(),
        "same text either way"
    );
}

#[tokio::test]
async fn chat_stream_without_usage_or_limit() {
    let sim = start(SimConfig {
        tokens_per_second: 0.0,
        ..fast_config()
    })
    .await;
    let body =
        json!({"model": QWEN, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let events = EventStream::open(&sim, "/v1/chat/completions", &body)
        .await
        .collect()
        .await;
    let (data, done) = chunks(&events);
    assert!(done);
    assert_eq!(data.len(), 1 + 32 + 1, "default of 32 tokens");
    assert_eq!(data.last().unwrap()["choices"][0]["finish_reason"], "stop");
    assert!(data.iter().all(|chunk| chunk.get("usage").is_none()));
}

#[tokio::test]
async fn completions_stream() {
    let sim = start(fast_config()).await;
    let body = json!({"model": QWEN, "prompt": "once upon", "max_tokens": 2, "stream": true,
        "stream_options": {"include_usage": true}});
    let events = EventStream::open(&sim, "/v1/completions", &body)
        .await
        .collect()
        .await;
    let (data, done) = chunks(&events);
    assert!(done);
    assert_eq!(data.len(), 4, "2 tokens, finish, usage: {data:?}");
    assert_eq!(data[0]["object"], "text_completion");
    assert!(data[0]["id"].as_str().unwrap().starts_with("cmpl-"));
    assert!(
        data[0]["choices"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with(' ')
    );
    assert_eq!(data[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(data[3]["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn responses_stream_events() {
    let sim = start(fast_config()).await;
    let body =
        json!({"model": QWEN, "input": "hello there", "max_output_tokens": 2, "stream": true});
    let events = EventStream::open(&sim, "/v1/responses", &body)
        .await
        .collect()
        .await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",
        ]
    );
    for (index, event) in events.iter().enumerate() {
        let data = event.json();
        assert_eq!(data["type"], event.name.as_deref().unwrap());
        assert_eq!(data["sequence_number"], index);
    }
    let deltas: String = events[4..6]
        .iter()
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect();
    let last = events.last().unwrap().json();
    assert_eq!(
        last["response"]["output"][0]["content"][0]["text"],
        deltas.as_str()
    );
    assert_eq!(last["response"]["usage"]["output_tokens"], 2);
    assert_eq!(last["response"]["model"], QWEN);
}

#[tokio::test]
async fn anthropic_stream_events() {
    let sim = start(fast_config()).await;
    let body = json!({"model": QWEN, "max_tokens": 2, "stream": true, "system": "be nice",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi you"}]}]});
    let events = EventStream::open(&sim, "/v1/messages", &body)
        .await
        .collect()
        .await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for event in &events {
        assert_eq!(event.json()["type"], event.name.as_deref().unwrap());
    }
    assert_eq!(events[0].json()["message"]["usage"]["input_tokens"], 4);
    assert_eq!(events[3].json()["delta"]["type"], "text_delta");
    let delta = events[6].json();
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn native_chat_stream_events() {
    let sim = start(fast_config()).await;
    let body = json!({"model": QWEN, "input": "hi", "max_output_tokens": 2, "stream": true});
    let events = EventStream::open(&sim, "/api/v1/chat", &body)
        .await
        .collect()
        .await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(names.first(), Some(&"chat.start"));
    assert_eq!(names.last(), Some(&"chat.end"));
    assert_eq!(
        names
            .iter()
            .filter(|name| **name == "message.delta")
            .count(),
        2
    );
    let result = &events.last().unwrap().json()["result"];
    assert_eq!(result["model_instance_id"], QWEN);
    assert_eq!(result["stats"]["total_output_tokens"], 2);
}

#[tokio::test]
async fn stream_disconnect_frees_slot_at_once() {
    let sim = start(config_with_models(&["m"])).await;
    let stream = hold_slot(&sim, "m").await;
    assert_eq!(sim.stats().total_active(), 1);

    stream.disconnect();
    let stats = wait_for(&sim, "slot freed", |s| s.total_active() == 0).await;
    let m = stats.instance("m").unwrap();
    assert_eq!(m.served, 1);
    assert!(
        m.tokens < 100,
        "generation stopped early, {} tokens",
        m.tokens
    );
}

#[tokio::test]
async fn queued_stream_disconnect_leaves_queue() {
    let sim = start(config_with_models(&["m"])).await;
    let _holder = hold_slot(&sim, "m").await;
    let queued = tokio::spawn({
        let sim = sim.clone();
        async move { EventStream::open(&sim, "/v1/chat/completions", &chat_stream("m", "q", 5)).await }
    });
    wait_for(&sim, "one queued", |s| s.total_queued() == 1).await;

    queued.abort();
    let stats = wait_for(&sim, "queue empty", |s| s.total_queued() == 0).await;
    assert_eq!(stats.total_active(), 1);
}

#[tokio::test]
async fn non_streaming_disconnect_keeps_slot_until_the_end() {
    // 20 tokens at 20 per second keep the slot busy for about a second.
    const TOKENS: u32 = 20;
    let sim = start(config_with_models(&["m"])).await;
    let mut connection = Connection::open(sim.addr()).await.unwrap();
    let body = chat("m", "long answer", TOKENS).to_string();
    let pending = tokio::spawn(async move {
        let _ = connection
            .send(request(
                http::Method::POST,
                "/v1/chat/completions",
                body,
                &[],
            ))
            .await;
    });
    wait_for(&sim, "request running", |s| s.total_active() == 1).await;

    pending.abort();
    let next = tokio::spawn({
        let sim = sim.clone();
        async move { post(&sim, "/v1/chat/completions", &chat("m", "next", 1)).await }
    });
    let stats = wait_for(&sim, "next request queued", |s| s.total_queued() == 1).await;
    assert_eq!(stats.total_active(), 1, "the abandoned request still runs");

    let reply = within("next request", next).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let stats = sim.stats();
    let m = stats.instance("m").unwrap();
    assert_eq!(m.served, 2);
    assert_eq!(
        m.tokens,
        u64::from(TOKENS) + 1,
        "the abandoned request generated every token"
    );
}

#[tokio::test]
async fn tokens_are_paced() {
    let sim = start(SimConfig {
        tokens_per_second: 100.0,
        ttft: Duration::from_millis(50),
        ..fast_config()
    })
    .await;
    let started = tokio::time::Instant::now();
    let reply = post(&sim, "/api/v0/chat/completions", &chat(QWEN, "pace", 11)).await;
    let elapsed = started.elapsed();
    // 50 ms to the first token and 10 intervals of 10 ms: at least 150 ms.
    assert!(elapsed >= Duration::from_millis(150), "took {elapsed:?}");

    let body = reply.json();
    let stats = &body["stats"];
    assert_eq!(stats["time_to_first_token"], 0.05);
    assert_eq!(stats["generation_time"], 0.1);
    assert_eq!(stats["stop_reason"], "maxPredictedTokensReached");
    assert_eq!(body["model_info"]["context_length"], 4096);
    assert_eq!(body["runtime"]["supported_formats"], json!(["gguf"]));
}

#[tokio::test]
async fn prompt_cache_shortens_first_token() {
    let sim = start(SimConfig {
        models: SimConfig::with_models(&["m"]).models,
        prefill_tokens_per_second: 1000.0,
        tokens_per_second: 0.0,
        ttft: Duration::ZERO,
        ..SimConfig::default()
    })
    .await;
    let prompt = vec!["word"; 100].join(" ");
    let first = post(&sim, "/api/v0/chat/completions", &chat("m", &prompt, 1))
        .await
        .json();
    assert_eq!(
        first["stats"]["time_to_first_token"], 0.1,
        "100 new tokens at 1000/s"
    );

    let longer = format!("{prompt} {}", vec!["more"; 50].join(" "));
    let second = post(&sim, "/api/v0/chat/completions", &chat("m", &longer, 1))
        .await
        .json();
    assert_eq!(
        second["stats"]["time_to_first_token"], 0.05,
        "only the 50 new tokens"
    );
    assert_eq!(second["usage"]["prompt_tokens"], 150);
}

#[tokio::test]
async fn stamped_tokens_carry_send_time() {
    let sim = start(SimConfig {
        stamp_tokens: true,
        ..fast_config()
    })
    .await;
    let before = unix_micros();
    let reply = post(&sim, "/v1/chat/completions", &chat_stream(QWEN, "stamp", 3)).await;
    let after = unix_micros();

    let text = reply.text();
    let stamps: Vec<u128> = text
        .lines()
        .filter_map(|line| line.strip_prefix(": sent_us="))
        .map(|micros| micros.parse().unwrap())
        .collect();
    assert_eq!(stamps.len(), 3, "one stamp per token: {text}");
    assert!(
        stamps.iter().all(|&at| before <= at && at <= after),
        "{stamps:?}"
    );
    assert!(stamps.is_sorted(), "{stamps:?}");
    let content_events = text.matches("\"content\":\"").count();
    assert!(content_events >= 3, "{text}");
}

#[tokio::test]
async fn tokens_are_unstamped_by_default() {
    let sim = start(fast_config()).await;
    let reply = post(&sim, "/v1/chat/completions", &chat_stream(QWEN, "plain", 3)).await;
    assert!(!reply.text().contains(": sent_us="), "{}", reply.text());
}

fn unix_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
}
