//! Streams pass through unchanged and as they arrive; request bodies change only in `model`.

use http::Method;
use http_body_util::BodyExt;

use crate::common::*;

const ONE: &str = "qwen2.5-7b-instruct,instances=1,parallel=1";

fn recording_sim(tokens_per_second: f64) -> lmstudio_sim::SimConfig {
    let mut config = sim_config(&[ONE], tokens_per_second);
    config.record = true;
    config
}

#[tokio::test]
async fn stream_is_byte_for_byte() {
    let sim = start_sim(recording_sim(0.0)).await;
    let lmlb = start_lmlb(lmlb_config(&[&sim])).await;

    let body = r#"{"model":"qwen2.5-7b-instruct","stream":true,"max_tokens":12,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi"}]}"#;
    let reply = post(&lmlb.url(), "/v1/chat/completions", body).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .starts_with("text/event-stream")
    );
    assert!(
        reply.text().ends_with("data: [DONE]\n\n"),
        "{}",
        reply.text()
    );

    let exchange = sim
        .recorded()
        .into_iter()
        .last()
        .expect("the simulator recorded the exchange");
    assert_eq!(
        reply.body, exchange.response_body,
        "lmlb changed the stream"
    );
}

#[tokio::test]
async fn tokens_arrive_as_generated() {
    let (sim, lmlb) = setup(&[ONE], 20.0).await;
    let url = format!("{}/v1/chat/completions", lmlb.url());
    let response = send(
        Method::POST,
        &url,
        &[("content-type", "application/json")],
        chat_body(MODEL, 6, true),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();

    // At 20 tokens per second, 6 tokens take about 300 ms; the first data frame must reach the
    // client while the simulator is still generating, which a buffering proxy cannot do.
    let first = tokio::time::timeout(PATIENCE, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(first.data_ref().unwrap()).contains("data: "));
    let stats = sim.stats();
    assert_eq!(
        stats.total_active(),
        1,
        "generation still running when the first frame arrived"
    );
    assert_eq!(stats.total_served(), 0);

    let mut frames = 1;
    while let Some(frame) = tokio::time::timeout(PATIENCE, body.frame()).await.unwrap() {
        frame.unwrap();
        frames += 1;
    }
    assert!(frames >= 3, "the stream arrived in {frames} frames");
}

#[tokio::test]
async fn request_body_changes_only_model() {
    let sim = start_sim(recording_sim(0.0)).await;
    let mut config = lmlb_config(&[&sim]);
    config.aliases.insert("fast".to_string(), MODEL.to_string());
    let lmlb = start_lmlb(config).await;

    let body = "{\n  \"temperature\": 0.70,\n  \"model\" : \"fast\",\n  \"max_tokens\":3, \"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \\\"model\\\"\"}],\"x\":1e2}";
    let reply = request(
        Method::POST,
        &format!("{}/v1/chat/completions?trace=1", lmlb.url()),
        &[
            ("content-type", "application/json"),
            ("x-custom", "kept"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "dropped"),
        ],
        body.to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let exchange = sim.recorded().into_iter().last().unwrap();
    let expected = body.replace(
        "\"model\" : \"fast\"",
        "\"model\" : \"qwen2.5-7b-instruct\"",
    );
    assert_eq!(String::from_utf8_lossy(&exchange.body), expected);
    assert_eq!(exchange.query.as_deref(), Some("trace=1"));
    let header = |name: &str| {
        exchange
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-custom").as_deref(), Some("kept"));
    let sim_host = sim.url().trim_start_matches("http://").to_string();
    assert_eq!(header("host"), Some(sim_host), "Host names the upstream");
    assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        header("x-hop"),
        None,
        "headers named by Connection stay on their hop"
    );
    assert_eq!(
        header("content-length").as_deref(),
        Some(expected.len().to_string().as_str())
    );
}

#[tokio::test]
async fn rewritten_model_names_instance() {
    let mut config = sim_config(&["qwen2.5-7b-instruct,instances=2"], 0.0);
    config.record = true;
    let sim = start_sim(config).await;
    let lmlb = start_lmlb(lmlb_config(&[&sim])).await;

    let pinned = chat(&lmlb.url(), "qwen2.5-7b-instruct:2", 2).await;
    assert_eq!(pinned.status, 200);
    let exchange = sim.recorded().into_iter().last().unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&exchange.body).unwrap();
    assert_eq!(sent["model"], "qwen2.5-7b-instruct:2");
    assert_eq!(exchange.instance.as_deref(), Some("qwen2.5-7b-instruct:2"));
}

#[tokio::test]
async fn other_apis_balanced() {
    let (sim, lmlb) = setup(&[ONE, "nomic-embed,type=embeddings"], 0.0).await;
    let cases = [
        (
            "/v1/completions",
            r#"{"model":"qwen2.5-7b-instruct","prompt":"Hi","max_tokens":3}"#,
            MODEL,
        ),
        (
            "/v1/embeddings",
            r#"{"model":"nomic-embed","input":["a","b"]}"#,
            "nomic-embed",
        ),
        (
            "/v1/responses",
            r#"{"model":"qwen2.5-7b-instruct","input":"Hi","max_output_tokens":3}"#,
            MODEL,
        ),
        (
            "/v1/messages",
            r#"{"model":"qwen2.5-7b-instruct","max_tokens":3,"messages":[{"role":"user","content":"Hi"}]}"#,
            MODEL,
        ),
        (
            "/api/v0/chat/completions",
            r#"{"model":"qwen2.5-7b-instruct","max_tokens":3,"messages":[{"role":"user","content":"Hi"}]}"#,
            MODEL,
        ),
        (
            "/api/v0/completions",
            r#"{"model":"qwen2.5-7b-instruct","prompt":"Hi","max_tokens":3}"#,
            MODEL,
        ),
        (
            "/api/v0/embeddings",
            r#"{"model":"nomic-embed","input":"a"}"#,
            "nomic-embed",
        ),
    ];
    for (path, body, instance) in cases {
        let reply = post(&lmlb.url(), path, body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(reply.header("x-lmlb-instance"), instance, "{path}");
    }
    assert_eq!(sim.stats().total_served(), cases.len() as u64);
}

#[tokio::test]
async fn broken_stream_not_passed_off_complete() {
    let (sim, lmlb) = setup(&[ONE], 200.0).await;
    sim.set_faults(lmstudio_sim::Faults {
        close_next: 1,
        close_after_tokens: Some(3),
        ..Default::default()
    });
    let result = stream_to_end(&lmlb, 20).await;
    assert!(
        result.is_err(),
        "the client sees the stream break, not a clean end"
    );
    eventually("the slot is free", || async { lmlb_in_flight(&lmlb) == 0 }).await;
}

/// Streams a chat completion through lmlb and collects its body; `Err` when the stream broke off.
async fn stream_to_end(
    lmlb: &lmlb::Server,
    max_tokens: u32,
) -> Result<http_body_util::Collected<bytes::Bytes>, hyper::Error> {
    let url = format!("{}/v1/chat/completions", lmlb.url());
    let body = chat_body(MODEL, max_tokens, true);
    let response = send(
        Method::POST,
        &url,
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(response.status(), 200);
    tokio::time::timeout(PATIENCE, response.into_body().collect())
        .await
        .unwrap()
}

fn with_request_timeout(sim: &lmstudio_sim::Simulator, millis: u64) -> lmlb::Config {
    let mut config = lmlb_config(&[sim]);
    config.request_timeout = std::time::Duration::from_millis(millis);
    config
}

#[tokio::test]
async fn steady_stream_outlives_idle_timeout() {
    // Tokens every 50 ms for about 0.6 s, with a 250 ms idle timeout: the stream as a whole
    // takes longer than the timeout, but no single gap does.
    let sim = start_sim(sim_config(&[ONE], 20.0)).await;
    let lmlb = start_lmlb(with_request_timeout(&sim, 250)).await;
    let reply = post(
        &lmlb.url(),
        "/v1/chat/completions",
        &chat_body(MODEL, 12, true),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.text().ends_with("data: [DONE]\n\n"),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn silent_stream_broken_off() {
    // Two tokens per second: the gap after the first token exceeds the 150 ms idle timeout.
    let sim = start_sim(sim_config(&[ONE], 2.0)).await;
    let lmlb = start_lmlb(with_request_timeout(&sim, 150)).await;
    let result = stream_to_end(&lmlb, 20).await;
    assert!(result.is_err(), "the client sees the stream break off");
    eventually("the slot is free", || async { lmlb_in_flight(&lmlb) == 0 }).await;
    sim_until(&sim, "the upstream stops generating", |s| {
        s.total_active() == 0
    })
    .await;
}

#[tokio::test]
async fn slow_headers_504() {
    let sim = start_sim(sim_config(&[ONE], 0.0)).await;
    sim.set_faults(lmstudio_sim::Faults {
        header_delay_ms: 1000,
        ..Default::default()
    });
    let lmlb = start_lmlb(with_request_timeout(&sim, 100)).await;
    let reply = chat(&lmlb.url(), MODEL, 2).await;
    reply.assert_error(504, "upstream_timeout");
    eventually("the slot is free", || async { lmlb_in_flight(&lmlb) == 0 }).await;
}
