//! Requests lmlb rejects itself, with OpenAI error bodies and the right status codes.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tokio::io::AsyncWriteExt;

use crate::common::*;

const ONE: &str = "qwen2.5-7b-instruct,instances=1,parallel=1";

#[tokio::test]
async fn unknown_model_404_names_loaded_models() {
    let (_sim, lmlb) = setup(&[ONE], 0.0).await;
    let reply = chat(&lmlb.url(), "gpt-9", 4).await;
    reply.assert_error(404, "model_not_found");
    let json = reply.json();
    assert_eq!(json["error"]["param"], "model");
    assert_eq!(json["error"]["type"], "invalid_request_error");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("gpt-9") && message.contains(MODEL),
        "{message}"
    );
}

#[tokio::test]
async fn bad_bodies_400() {
    let (sim, lmlb) = setup(&[ONE], 0.0).await;
    let cases = [
        ("{not json", "invalid_request"),
        ("[1,2,3]", "invalid_request"),
        (r#"{"messages":[]}"#, "invalid_request"),
        (r#"{"model":7,"messages":[]}"#, "invalid_request"),
        ("", "invalid_request"),
    ];
    for (body, code) in cases {
        let reply = post(&lmlb.url(), "/v1/chat/completions", body).await;
        reply.assert_error(400, code);
    }
    assert_eq!(
        sim.stats().total_served(),
        0,
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn oversized_body_413() {
    let sim = start_sim(sim_config(&[ONE], 0.0)).await;
    let mut config = lmlb_config(&[&sim]);
    config.max_payload = 1024;
    let lmlb = start_lmlb(config).await;

    let content = "x".repeat(2000);
    let body = chat_body(MODEL, 4, false).replace("Say something", &content);
    post(&lmlb.url(), "/v1/chat/completions", &body)
        .await
        .assert_error(413, "payload_too_large");

    // A chunked body without Content-Length is limited the same way.
    let mut stream = tokio::net::TcpStream::connect(lmlb.addr()).await.unwrap();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..4 {
        let chunk = "y".repeat(500);
        let _ = stream
            .write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
            .await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut raw = RawConnection {
        stream,
        received: Vec::new(),
    };
    raw.read_until("\r\n\r\n").await;
    let text = String::from_utf8_lossy(&raw.received).to_string();
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");

    let fits = chat(&lmlb.url(), MODEL, 4).await;
    assert_eq!(fits.status, 200);
}

#[tokio::test]
async fn api_key_required_when_configured() {
    let sim = start_sim(sim_config(&[ONE], 0.0)).await;
    let mut config = lmlb_config(&[&sim]);
    config.api_keys = vec![lmlb::config::Secret::new("sk-local")];
    let lmlb = start_lmlb(config).await;
    let url = format!("{}/v1/chat/completions", lmlb.url());
    let body = chat_body(MODEL, 4, false);

    let missing = request(Method::POST, &url, &[], body.clone()).await;
    missing.assert_error(401, "invalid_api_key");
    let wrong = request(
        Method::POST,
        &url,
        &[("authorization", "Bearer nope")],
        body.clone(),
    )
    .await;
    wrong.assert_error(401, "invalid_api_key");
    let listing = get(&lmlb.url(), "/v1/models").await;
    listing.assert_error(401, "invalid_api_key");

    let right = request(
        Method::POST,
        &url,
        &[("authorization", "Bearer sk-local")],
        body.clone(),
    )
    .await;
    assert_eq!(right.status, 200, "{}", right.text());
    let anthropic_style = request(Method::POST, &url, &[("x-api-key", "sk-local")], body).await;
    assert_eq!(anthropic_style.status, 200);

    let health = get(&lmlb.url(), "/health").await;
    assert_eq!(health.status, 200, "the liveness check stays public");
    assert_eq!(sim.stats().total_served(), 2);
}

#[tokio::test]
async fn full_queue_503_with_retry_after() {
    let sim = start_sim(sim_config(&[ONE], 50.0)).await;
    let mut config = lmlb_config(&[&sim]);
    config.queue.max_size = 1;
    let lmlb = start_lmlb(config).await;
    let url = lmlb.url();

    let running = tokio::spawn({
        let url = url.clone();
        async move { chat(&url, MODEL, 25).await }
    });
    sim_until(&sim, "the first request runs", |s| s.total_active() == 1).await;
    let waiting = tokio::spawn({
        let url = url.clone();
        async move { chat(&url, MODEL, 1).await }
    });
    eventually("one request waits", || async { lmlb_queued(&lmlb) == 1 }).await;

    let rejected = chat(&url, MODEL, 1).await;
    rejected.assert_error(503, "queue_full");
    assert!(rejected.header("retry-after").parse::<u32>().is_ok());

    assert_eq!(running.await.unwrap().status, 200);
    assert_eq!(
        waiting.await.unwrap().status,
        200,
        "the queued request is not lost"
    );
}

#[tokio::test]
async fn queue_timeout_503() {
    let sim = start_sim(sim_config(&[ONE], 50.0)).await;
    let mut config = lmlb_config(&[&sim]);
    config.queue.timeout = Duration::from_millis(100);
    let lmlb = start_lmlb(config).await;

    let running = tokio::spawn({
        let url = lmlb.url();
        async move { chat(&url, MODEL, 25).await }
    });
    sim_until(&sim, "the first request runs", |s| s.total_active() == 1).await;

    let timed_out = chat(&lmlb.url(), MODEL, 1).await;
    timed_out.assert_error(503, "queue_timeout");
    assert!(timed_out.headers.contains_key("retry-after"));
    assert_eq!(
        lmlb_queued(&lmlb),
        0,
        "the timed-out request left the queue"
    );

    assert_eq!(running.await.unwrap().status, 200);
    eventually("slots are free", || async { lmlb_in_flight(&lmlb) == 0 }).await;
}

#[tokio::test]
async fn upstream_error_status_passes_through() {
    let (sim, lmlb) = setup(&[ONE], 0.0).await;
    sim.set_faults(lmstudio_sim::Faults {
        fail_next: 1,
        ..Default::default()
    });
    let failed = chat(&lmlb.url(), MODEL, 4).await;
    assert_eq!(
        failed.status, 500,
        "the upstream's own error reaches the client"
    );
    assert_eq!(failed.header("x-lmlb-instance"), MODEL);
    eventually("the slot is free", || async { lmlb_in_flight(&lmlb) == 0 }).await;
    assert_eq!(chat(&lmlb.url(), MODEL, 4).await.status, 200);
}

#[tokio::test]
async fn payload_error_leaves_no_slot() {
    let (_sim, lmlb) = setup(&[ONE], 0.0).await;
    let reply = request(
        Method::POST,
        &format!("{}/v1/chat/completions", lmlb.url()),
        &[],
        Bytes::from_static(b"{"),
    )
    .await;
    reply.assert_error(400, "invalid_request");
    assert_eq!(lmlb_in_flight(&lmlb), 0);
}
