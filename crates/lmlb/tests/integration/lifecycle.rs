//! Graceful shutdown.

use http::Method;
use http_body_util::BodyExt;

use crate::common::*;

#[tokio::test]
async fn shutdown_lets_stream_finish() {
    let (sim, lmlb) = setup(&["qwen2.5-7b-instruct,instances=1"], 40.0).await;
    let addr = lmlb.addr();
    let url = format!("{}/v1/chat/completions", lmlb.url());
    let response = send(
        Method::POST,
        &url,
        &[("content-type", "application/json")],
        chat_body(MODEL, 12, true),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());

    let shutdown = tokio::spawn(lmlb.shutdown());
    // New connections are refused once the listener is closed.
    eventually("the listener closes", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;

    let rest = body
        .collect()
        .await
        .expect("the stream finishes cleanly")
        .to_bytes();
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
    shutdown.await.unwrap();
    assert_eq!(sim.stats().total_served(), 1);
}

#[tokio::test]
async fn shutdown_timeout_rejects_queued_request() {
    let sim = start_sim(sim_config(&["qwen2.5-7b-instruct,instances=1"], 5.0)).await;
    let mut config = lmlb_config(&[&sim]);
    config.shutdown_timeout = std::time::Duration::from_millis(200);
    let lmlb = start_lmlb(config).await;
    let url = format!("{}/v1/chat/completions", lmlb.url());

    // A slow stream takes the only slot, so the next request waits in the queue.
    let stream = send(
        Method::POST,
        &url,
        &[("content-type", "application/json")],
        chat_body(MODEL, 100, true),
    )
    .await;
    assert_eq!(stream.status(), 200);
    let base = lmlb.url();
    let queued = tokio::spawn(async move { chat(&base, MODEL, 4).await });
    eventually("the second request is queued", || async {
        lmlb_queued(&lmlb) == 1
    })
    .await;

    lmlb.shutdown().await;

    // NOTE: without the grace before the workers stop, the 503 races their shutdown, so this
    // test may pass even when that grace is removed.
    let reply = queued.await.unwrap();
    reply.assert_error(503, "shutting_down");
    drop(stream);
}
