//! Clients that go away: while queued, while streaming, and during a non-streaming request.

use std::sync::atomic::Ordering;

use crate::common::*;

const ONE: &str = "qwen2.5-7b-instruct,instances=1,parallel=1";

#[tokio::test]
async fn disconnect_while_queued_leaves_queue() {
    let (sim, lmlb) = setup(&[ONE], 100.0).await;
    let running = tokio::spawn({
        let url = lmlb.url();
        async move { chat(&url, MODEL, 30).await }
    });
    sim_until(&sim, "the first request runs", |s| s.total_active() == 1).await;

    let queued = RawConnection::post(
        lmlb.addr(),
        "/v1/chat/completions",
        &chat_body(MODEL, 5, false),
    )
    .await;
    eventually("the second request waits", || async {
        lmlb_queued(&lmlb) == 1
    })
    .await;
    drop(queued);
    eventually("the dropped request left the queue", || async {
        lmlb_queued(&lmlb) == 0
    })
    .await;

    assert_eq!(running.await.unwrap().status, 200);
    eventually("nothing in flight", || async { lmlb_in_flight(&lmlb) == 0 }).await;
    let stats = sim.stats();
    assert_eq!(
        stats.total_served(),
        1,
        "the abandoned request never reached the upstream"
    );

    // Every request ends in exactly one outcome, the abandoned one included.
    let metrics = &lmlb.app().metrics;
    assert_eq!(metrics.requests.load(Ordering::Relaxed), 2);
    assert_eq!(metrics.completed.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.client_gone.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn disconnect_while_streaming_frees_slot() {
    let (sim, lmlb) = setup(&[ONE], 20.0).await;
    let mut stream = RawConnection::post(
        lmlb.addr(),
        "/v1/chat/completions",
        &chat_body(MODEL, 200, true),
    )
    .await;
    stream.read_until("data: ").await;
    assert_eq!(lmlb_in_flight(&lmlb), 1);
    drop(stream);

    // The simulator sees the upstream connection close and stops generating.
    sim_until(&sim, "the upstream stops generating", |s| {
        s.total_active() == 0
    })
    .await;
    eventually("lmlb frees the slot", || async {
        lmlb_in_flight(&lmlb) == 0
    })
    .await;
    let models = get(&lmlb.url(), "/models").await.json();
    assert_eq!(models["inProgressModels"].as_array().unwrap().len(), 0);
    assert!(
        sim.stats().instance(MODEL).unwrap().tokens < 200,
        "generation stopped early"
    );

    let next = chat(&lmlb.url(), MODEL, 3).await;
    assert_eq!(next.status, 200);
}

#[tokio::test]
async fn non_streaming_disconnect_holds_slot_until_done() {
    let (sim, lmlb) = setup(&[ONE], 100.0).await;
    let abandoned = RawConnection::post(
        lmlb.addr(),
        "/v1/chat/completions",
        &chat_body(MODEL, 40, false),
    )
    .await;
    sim_until(&sim, "the request runs", |s| s.total_active() == 1).await;
    drop(abandoned);

    // The instance keeps generating, so the next request must wait in lmlb rather than be sent
    // to a busy instance.
    let next = tokio::spawn({
        let url = lmlb.url();
        async move { chat(&url, MODEL, 2).await }
    });
    eventually("the next request waits in lmlb", || async {
        lmlb_queued(&lmlb) == 1
    })
    .await;
    assert_eq!(
        sim.stats().total_queued(),
        0,
        "nothing was sent to the busy instance"
    );
    assert_eq!(
        sim.stats().total_served(),
        0,
        "the abandoned generation is still running"
    );

    let reply = next.await.unwrap();
    assert_eq!(reply.status, 200);
    let stats = sim.stats();
    assert_eq!(stats.total_served(), 2);
    assert_eq!(stats.instance(MODEL).unwrap().max_active, 1);
    eventually("nothing in flight", || async { lmlb_in_flight(&lmlb) == 0 }).await;
}
