//! Every injected fault, stopping and resuming the listener, and recordings.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use lmstudio_sim::{Faults, SimConfig};
use serde_json::json;

const QWEN: &str = "qwen2.5-7b-instruct";

#[tokio::test]
async fn fail_next_returns_500() {
    let sim = start(fast_config()).await;
    sim.set_faults(Faults {
        fail_next: 2,
        ..Faults::default()
    });

    assert_eq!(
        get(&sim, "/v1/models").await.status,
        StatusCode::OK,
        "listings are not affected"
    );
    for _ in 0..2 {
        let reply = post(&sim, "/v1/chat/completions", &chat(QWEN, "x", 1)).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("fail_next")
        );
    }
    let reply = post(&sim, "/v1/chat/completions", &chat(QWEN, "x", 1)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(sim.faults(), Faults::default());
    assert_eq!(
        sim.stats().total_served(),
        1,
        "failed requests take no slot"
    );
}

#[tokio::test]
async fn faults_over_http() {
    let sim = start(fast_config()).await;
    let set = post(
        &sim,
        "/sim/faults",
        &json!({"fail_next": 1, "header_delay_ms": 0}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(sim.faults().fail_next, 1);
    assert_eq!(get(&sim, "/sim/faults").await.json()["fail_next"], 1);

    let typo = post(&sim, "/sim/faults", &json!({"fail_nxt": 1})).await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST);
    assert_eq!(sim.faults().fail_next, 1, "an invalid body changes nothing");

    let reply = post(
        &sim,
        "/v1/embeddings",
        &json!({"model": "text-embedding-nomic-embed-text-v1.5", "input": "x"}),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "embeddings are inference requests"
    );
    assert_eq!(get(&sim, "/sim/faults").await.json()["fail_next"], 0);
}

#[tokio::test]
async fn command_line_faults_apply_from_start() {
    let sim = start(SimConfig {
        faults: Faults {
            fail_next: 1,
            ..Faults::default()
        },
        ..fast_config()
    })
    .await;
    let reply = post(&sim, "/api/v1/chat", &json!({"model": QWEN, "input": "x"})).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.json()["error"]["type"], "internal_error");
}

#[tokio::test]
async fn close_after_tokens_cuts_the_connection() {
    let sim = start(fast_config()).await;
    sim.set_faults(Faults {
        close_after_tokens: Some(2),
        close_next: 1,
        ..Faults::default()
    });

    let mut stream =
        EventStream::open(&sim, "/v1/chat/completions", &chat_stream(QWEN, "x", 10)).await;
    let mut contents = 0;
    let ending = loop {
        match within("next event", stream.next_event()).await {
            Ok(Some(event)) => {
                assert_ne!(event.data, "[DONE]");
                if event.json()["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
                {
                    contents += 1;
                }
            }
            other => break other,
        }
    };
    assert!(
        ending.is_err(),
        "the body ends with an error, not cleanly: {ending:?}"
    );
    assert_eq!(contents, 2);
    let stats = wait_for(&sim, "slot freed", |s| s.total_active() == 0).await;
    assert_eq!(stats.instance(QWEN).unwrap().tokens, 2);

    let events = EventStream::open(&sim, "/v1/chat/completions", &chat_stream(QWEN, "x", 3))
        .await
        .collect()
        .await;
    assert_eq!(
        events.last().unwrap().data,
        "[DONE]",
        "only one stream was cut"
    );
}

#[tokio::test]
async fn close_limit_above_tokens_skips_finish() {
    let sim = start(fast_config()).await;
    sim.set_faults(Faults {
        close_after_tokens: Some(10),
        close_next: 1,
        ..Faults::default()
    });

    let mut stream =
        EventStream::open(&sim, "/v1/chat/completions", &chat_stream(QWEN, "x", 3)).await;
    let mut events = Vec::new();
    let ending = loop {
        match within("next event", stream.next_event()).await {
            Ok(Some(event)) => events.push(event.json()),
            other => break other,
        }
    };
    assert!(ending.is_err(), "the body ends with an error: {ending:?}");
    assert_eq!(events.len(), 4, "role and 3 tokens: {events:?}");
    assert!(
        events
            .iter()
            .all(|chunk| chunk["choices"][0]["finish_reason"].is_null())
    );
}

#[tokio::test]
async fn close_fault_ignores_non_streaming_requests() {
    let sim = start(fast_config()).await;
    sim.set_faults(Faults {
        close_next: 1,
        ..Faults::default()
    });
    let reply = post(&sim, "/v1/chat/completions", &chat(QWEN, "x", 2)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(sim.faults().close_next, 1);
}

#[tokio::test]
async fn hang_takes_no_slot() {
    let sim = start(fast_config()).await;
    sim.set_faults(Faults {
        hang_next: 1,
        ..Faults::default()
    });

    let mut hung = spawn_post(&sim, "/v1/chat/completions", chat(QWEN, "x", 1));
    wait_for(&sim, "the hang fault used", |_| sim.faults().hang_next == 0).await;
    let stats = sim.stats();
    assert_eq!(
        stats.total_active() + stats.total_queued(),
        0,
        "it holds no slot"
    );

    let reply = post(&sim, "/v1/chat/completions", &chat(QWEN, "y", 1)).await;
    assert_eq!(reply.status, StatusCode::OK, "other requests get responses");
    let response = tokio::time::timeout(Duration::from_millis(200), &mut hung).await;
    assert!(
        response.is_err(),
        "the hung request got no response: {response:?}"
    );
    hung.abort();
}

#[tokio::test]
async fn malformed_json_response() {
    let sim = start(fast_config()).await;
    sim.set_faults(Faults {
        malformed_json_next: 1,
        ..Faults::default()
    });

    let stream = EventStream::open(&sim, "/v1/chat/completions", &chat_stream(QWEN, "x", 1)).await;
    drop(stream);
    let reply = post(&sim, "/v1/chat/completions", &chat(QWEN, "x", 2)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        serde_json::from_slice::<serde_json::Value>(&reply.body).is_err(),
        "{}",
        reply.text()
    );
    assert!(reply.text().starts_with("{\"id\":\"chatcmpl-"));

    let reply = post(&sim, "/v1/chat/completions", &chat(QWEN, "x", 2)).await;
    reply.json();
}

#[tokio::test]
async fn broken_sse_frame_then_stream_goes_on() {
    let sim = start(fast_config()).await;
    sim.set_faults(Faults {
        broken_sse_next: 1,
        ..Faults::default()
    });

    let mut stream =
        EventStream::open(&sim, "/v1/chat/completions", &chat_stream(QWEN, "x", 3)).await;
    let events = stream.collect().await;
    let broken: Vec<_> = events
        .iter()
        .filter(|e| {
            e.data != "[DONE]" && serde_json::from_str::<serde_json::Value>(&e.data).is_err()
        })
        .collect();
    assert_eq!(broken.len(), 1, "{events:?}");
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert_eq!(
        events.len(),
        1 + 1 + 3 + 1 + 1,
        "role, broken, tokens, finish, done"
    );
    assert!(events[2].data.starts_with("{\"id\":\"chatcmpl-"));
}

#[tokio::test]
async fn header_delay_delays_response() {
    let sim = start(fast_config()).await;
    sim.set_faults(Faults {
        header_delay_ms: 300,
        ..Faults::default()
    });

    let started = tokio::time::Instant::now();
    let reply = post(&sim, "/v1/chat/completions", &chat(QWEN, "x", 1)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        sim.faults().header_delay_ms,
        300,
        "the delay is not used up"
    );

    // A delay longer than the test's timeout shows that listings skip it.
    sim.set_faults(Faults {
        header_delay_ms: 3_600_000,
        ..Faults::default()
    });
    let listing = within("listing without delay", get(&sim, "/v1/models")).await;
    assert_eq!(listing.status, StatusCode::OK);
}

#[tokio::test]
async fn stop_and_resume_accepting() {
    let sim = start(config_with_models(&["m"])).await;
    let addr = sim.addr();
    let mut holder = hold_slot(&sim, "m").await;

    sim.stop_accepting().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "connections are refused"
    );
    let ending = within("held stream ends", async {
        loop {
            match holder.next_event().await {
                Ok(Some(_)) => continue,
                other => break other,
            }
        }
    })
    .await;
    assert!(ending.is_err(), "the open stream was cut: {ending:?}");
    wait_for(&sim, "slot freed", |s| s.total_active() == 0).await;

    sim.resume_accepting().await.unwrap();
    assert_eq!(sim.addr(), addr);
    let reply = post(&sim, "/v1/chat/completions", &chat("m", "x", 1)).await;
    assert_eq!(reply.status, StatusCode::OK);
    sim.resume_accepting().await.unwrap();
}

#[tokio::test]
async fn stop_accepting_ends_non_streaming_generation() {
    let sim = start(config_with_models(&["m"])).await;
    let pending = spawn_post(&sim, "/v1/chat/completions", chat("m", "long", 100_000));
    wait_for(&sim, "running", |s| s.total_active() == 1).await;

    sim.stop_accepting().await;
    wait_for(&sim, "slot freed", |s| s.total_active() == 0).await;
    assert!(
        within("client sees the end", pending).await.is_err(),
        "the connection was closed"
    );
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let sim = start(fast_config()).await;
    let addr = sim.addr();
    sim.clone().shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn recordings_keep_requests_and_responses() {
    let sim = start(SimConfig {
        record: true,
        ..fast_config()
    })
    .await;
    let body = Bytes::from_static(
        b"{ \"model\" : \"qwen2.5-7b-instruct:2\", \"messages\": [], \"max_tokens\": 2 }",
    );
    let request = request(
        Method::POST,
        "/v1/chat/completions?trace=1",
        body.clone(),
        &[("x-custom", "Value")],
    );
    let reply = send(&sim, request).await;

    let mut stream =
        EventStream::open(&sim, "/v1/chat/completions", &chat_stream(QWEN, "s", 2)).await;
    stream.collect().await;
    get(&sim, "/v1/models").await;

    let recorded = sim.recorded();
    assert_eq!(recorded.len(), 2, "listings are not recorded");
    let first = &recorded[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.query.as_deref(), Some("trace=1"));
    assert!(
        first
            .headers
            .contains(&("x-custom".to_owned(), "Value".to_owned()))
    );
    assert_eq!(first.body, body);
    assert_eq!(first.instance.as_deref(), Some("qwen2.5-7b-instruct:2"));
    assert_eq!(first.status, 200);
    assert_eq!(first.response_body, reply.body);

    let second = &recorded[1];
    assert_eq!(second.instance.as_deref(), Some(QWEN));
    assert_eq!(&second.response_body[..], &stream.received[..]);

    sim.reset();
    assert!(sim.recorded().is_empty());
}

#[tokio::test]
async fn recordings_are_off_by_default_and_capped() {
    let sim = start(fast_config()).await;
    post(&sim, "/v1/chat/completions", &chat(QWEN, "x", 1)).await;
    assert!(sim.recorded().is_empty());

    let sim = start(SimConfig {
        record: true,
        ..fast_config()
    })
    .await;
    for i in 0..70 {
        post(
            &sim,
            "/v1/chat/completions",
            &chat("unknown", &format!("{i}"), 1),
        )
        .await;
    }
    let recorded = sim.recorded();
    assert_eq!(recorded.len(), 64);
    assert_eq!(recorded[0].status, 400);
    assert_eq!(recorded[0].instance, None);
    assert!(
        String::from_utf8_lossy(&recorded[0].body).contains("\"6\""),
        "oldest kept is the 7th"
    );
}
