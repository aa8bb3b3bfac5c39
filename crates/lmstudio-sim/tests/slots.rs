//! Slots, queues, routing of `model` names, and the stats that show them.

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;

const QWEN: &str = "qwen2.5-7b-instruct";

#[tokio::test]
async fn one_slot_runs_one_and_queues_the_rest() {
    let sim = start(config_with_models(&["m,instances=1,parallel=1"])).await;
    let holder = hold_slot(&sim, "m").await;
    let waiting: Vec<_> = (0..2)
        .map(|i| spawn_post(&sim, "/v1/chat/completions", chat("m", &format!("q{i}"), 1)))
        .collect();

    let stats = wait_for(&sim, "two queued", |s| s.total_queued() == 2).await;
    let m = stats.instance("m").unwrap();
    assert_eq!(m.active, 1);
    assert_eq!(m.queued, 2);
    assert_eq!(m.max_active, 1);

    holder.disconnect();
    for request in waiting {
        let reply = within("queued request", request).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
    }
    let stats = wait_for(&sim, "all served", |s| s.total_served() == 3).await;
    let m = stats.instance("m").unwrap();
    assert_eq!((m.active, m.queued, m.max_active), (0, 0, 1));
}

#[tokio::test]
async fn parallel_slots_run_together() {
    let sim = start(config_with_models(&["m,parallel=2"])).await;
    let _first = hold_slot(&sim, "m").await;
    let _second = hold_slot(&sim, "m").await;
    let third = spawn_post(&sim, "/v1/chat/completions", chat("m", "third", 1));

    let stats = wait_for(&sim, "one queued", |s| s.total_queued() == 1).await;
    let m = stats.instance("m").unwrap();
    assert_eq!(m.active, 2);
    assert_eq!(m.max_active, 2);
    third.abort();
}

#[tokio::test]
async fn queue_is_first_in_first_out() {
    let sim = start(config_with_models(&["m"])).await;
    let holder = hold_slot(&sim, "m").await;

    let first = tokio::spawn({
        let sim = sim.clone();
        async move {
            EventStream::open(
                &sim,
                "/v1/chat/completions",
                &chat_stream("m", "a", 100_000),
            )
            .await
        }
    });
    wait_for(&sim, "first queued", |s| s.total_queued() == 1).await;
    let second = tokio::spawn({
        let sim = sim.clone();
        async move {
            EventStream::open(
                &sim,
                "/v1/chat/completions",
                &chat_stream("m", "b", 100_000),
            )
            .await
        }
    });
    wait_for(&sim, "second queued", |s| s.total_queued() == 2).await;

    holder.disconnect();
    let first = within("first gets the slot", first).await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    let stats = sim.stats();
    assert_eq!(stats.total_queued(), 1, "the second still waits");
    assert!(!second.is_finished());
    first.disconnect();
    let second = within("second gets the slot", second).await.unwrap();
    assert_eq!(second.status, StatusCode::OK);
}

#[tokio::test]
async fn bare_id_goes_to_oldest_instance() {
    let sim = start(fast_config()).await;
    for i in 0..3 {
        let reply = post(
            &sim,
            "/v1/chat/completions",
            &chat(QWEN, &format!("p{i}"), 1),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["model"], QWEN);
    }
    let stats = sim.stats();
    assert_eq!(stats.instance(QWEN).unwrap().served, 3);
    assert_eq!(stats.instance(&format!("{QWEN}:2")).unwrap().served, 0);
    assert_eq!(stats.instance(&format!("{QWEN}:3")).unwrap().served, 0);
}

#[tokio::test]
async fn bare_id_waits_on_oldest() {
    let sim = start(fast_config()).await;
    let _holder = hold_slot(&sim, QWEN).await;
    let waiting = spawn_post(&sim, "/v1/chat/completions", chat(QWEN, "wait", 1));

    let stats = wait_for(&sim, "queued on the oldest", |s| s.total_queued() == 1).await;
    assert_eq!(stats.instance(QWEN).unwrap().queued, 1);
    assert_eq!(stats.instance(&format!("{QWEN}:2")).unwrap().active, 0);
    waiting.abort();
}

#[tokio::test]
async fn instance_suffix_pins_the_instance() {
    let sim = start(fast_config()).await;
    let id = format!("{QWEN}:3");
    let reply = post(&sim, "/v1/chat/completions", &chat(&id, "pin", 2)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["model"], id.as_str());
    assert_eq!(body["system_fingerprint"], id.as_str());

    let stats = sim.stats();
    assert_eq!(stats.instance(&id).unwrap().served, 1);
    assert_eq!(stats.instance(&id).unwrap().tokens, 2);
    assert_eq!(stats.instance(QWEN).unwrap().served, 0);
}

#[tokio::test]
async fn raising_parallel_starts_queued_requests() {
    let sim = start(config_with_models(&["m"])).await;
    let _holder = hold_slot(&sim, "m").await;
    let waiting = tokio::spawn({
        let sim = sim.clone();
        async move {
            EventStream::open(
                &sim,
                "/v1/chat/completions",
                &chat_stream("m", "w", 100_000),
            )
            .await
        }
    });
    wait_for(&sim, "one queued", |s| s.total_queued() == 1).await;

    assert!(sim.set_parallel("m", 2));
    let stats = wait_for(&sim, "both running", |s| s.total_active() == 2).await;
    assert_eq!(stats.instance("m").unwrap().queued, 0);
    let waiting = within("queued stream starts", waiting).await.unwrap();
    assert_eq!(waiting.status, StatusCode::OK);

    let models = get(&sim, "/api/v1/models").await.json();
    assert_eq!(
        models["models"][0]["loaded_instances"][0]["config"]["parallel"],
        2
    );
    assert!(!sim.set_parallel("nope", 2));
}

#[tokio::test]
async fn unloading_fails_queued_requests() {
    let sim = start(config_with_models(&["m", "n"])).await;
    let _holder = hold_slot(&sim, "m").await;
    let waiting = spawn_post(&sim, "/v1/chat/completions", chat("m", "w", 1));
    wait_for(&sim, "one queued", |s| s.total_queued() == 1).await;

    assert!(sim.unload("m"));
    let reply = within("queued request fails", waiting).await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["error"].as_str().unwrap().contains("unloaded"));
    assert!(sim.stats().instance("m").is_none());
}

#[tokio::test]
async fn stats_count_and_reset() {
    let sim = start(fast_config()).await;
    post(&sim, "/v1/chat/completions", &chat(QWEN, "one", 3)).await;
    post(
        &sim,
        "/v1/completions",
        &json!({"model": QWEN, "prompt": "two", "max_tokens": 2}),
    )
    .await;

    let stats = get(&sim, "/sim/stats").await.json();
    let first = &stats["instances"][0];
    assert_eq!(first["id"], QWEN);
    assert_eq!(first["served"], 2);
    assert_eq!(first["tokens"], 5);
    assert_eq!(first["max_active"], 1);
    assert_eq!(first["active"], 0);
    assert_eq!(first["queued"], 0);
    assert_eq!(sim.stats().total_served(), 2);

    let reply = post(&sim, "/sim/reset", &json!({})).await;
    assert_eq!(reply.status, StatusCode::OK);
    let stats = sim.stats();
    assert_eq!(stats.total_served(), 0);
    assert_eq!(stats.instance(QWEN).unwrap().tokens, 0);
    assert_eq!(stats.instance(QWEN).unwrap().max_active, 0);

    post(&sim, "/v1/chat/completions", &chat(QWEN, "three", 1)).await;
    sim.reset();
    assert_eq!(sim.stats().total_served(), 0);
}
