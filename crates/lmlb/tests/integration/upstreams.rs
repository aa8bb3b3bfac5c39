//! Upstreams that are down at start, come up later, or die while serving.

use crate::common::*;

#[tokio::test]
async fn upstream_down_at_start_picked_up_later() {
    let sim = start_sim(sim_config(&["late-model,instances=2"], 0.0)).await;
    sim.stop_accepting().await;
    let lmlb = start_lmlb(lmlb_config(&[&sim])).await;

    let health = get(&lmlb.url(), "/health").await.json();
    assert_eq!(health["upstreams"][0]["state"], "down");
    assert_eq!(health["status"], "unhealthy");
    // The model may be on the upstream once it is up, so the response is a 503, which clients
    // retry, and it names the upstream.
    let rejected = chat(&lmlb.url(), "late-model", 3).await;
    rejected.assert_error(503, "upstream_unavailable");
    assert_eq!(rejected.header("retry-after"), "5");
    let message = rejected.error_message();
    assert!(message.contains("\"late-model\""), "{message}");
    assert!(message.contains(&sim.url()), "{message}");

    sim.resume_accepting().await.unwrap();
    eventually("lmlb sees the upstream", || async {
        get(&lmlb.url(), "/health").await.json()["upstreams"][0]["state"] == "up"
    })
    .await;
    let reply = chat(&lmlb.url(), "late-model", 3).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let models = get(&lmlb.url(), "/models").await.json();
    assert_eq!(
        models["availableModels"],
        serde_json::json!(["late-model", "late-model:2"])
    );
}

#[tokio::test]
async fn dead_upstream_leaves_rotation() {
    let first = start_sim(sim_config(&["shared-model"], 0.0)).await;
    let second = start_sim(sim_config(&["shared-model"], 0.0)).await;
    let lmlb = start_lmlb(lmlb_config(&[&first, &second])).await;

    second.stop_accepting().await;
    // Every request succeeds: one that picks the dead upstream is moved to the live one.
    for _ in 0..6 {
        let reply = chat(&lmlb.url(), "shared-model", 2).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-lmlb-upstream"), first.url());
    }
    eventually("lmlb marks the upstream down", || async {
        get(&lmlb.url(), "/health").await.json()["upstreams"][1]["state"] == "down"
    })
    .await;
    let health = get(&lmlb.url(), "/health").await.json();
    assert_eq!(health["status"], "degraded");
    assert_eq!(first.stats().total_served(), 6);
}

#[tokio::test]
async fn only_upstream_down_gives_503() {
    let sim = start_sim(sim_config(&["solo-model"], 0.0)).await;
    let lmlb = start_lmlb(lmlb_config(&[&sim])).await;
    sim.stop_accepting().await;
    eventually("lmlb marks the upstream down", || async {
        get(&lmlb.url(), "/health").await.json()["upstreams"][0]["state"] == "down"
    })
    .await;
    let reply = chat(&lmlb.url(), "solo-model", 2).await;
    reply.assert_error(503, "upstream_unavailable");
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(lmlb_in_flight(&lmlb), 0);
}

#[tokio::test]
async fn loaded_instance_joins_rotation() {
    let (sim, lmlb) = setup(&["grow-model"], 0.0).await;
    let id = sim.load("grow-model").unwrap();
    assert_eq!(id, "grow-model:2");
    eventually("lmlb lists the new instance", || async {
        lmlb.app()
            .scheduler
            .snapshot()
            .instances
            .iter()
            .any(|i| i.id == "grow-model:2" && i.in_rotation)
    })
    .await;
    let pinned = chat(&lmlb.url(), "grow-model:2", 2).await;
    assert_eq!(pinned.status, 200);

    assert!(sim.unload("grow-model:2"));
    eventually("lmlb drops the unloaded instance", || async {
        !lmlb
            .app()
            .scheduler
            .snapshot()
            .instances
            .iter()
            .any(|i| i.id == "grow-model:2" && i.listed)
    })
    .await;
}

#[tokio::test]
async fn upstream_token_sent_to_lm_studio() {
    let mut sim_settings = sim_config(&["guarded-model"], 0.0);
    sim_settings.api_token = Some("sk-lm-test:secret".to_string());
    let sim = start_sim(sim_settings).await;

    let without = start_lmlb(lmlb_config(&[&sim])).await;
    let health = get(&without.url(), "/health").await.json();
    assert_eq!(health["upstreams"][0]["state"], "down");
    assert!(
        health["upstreams"][0]["lastError"]
            .as_str()
            .unwrap()
            .contains("authentication failed"),
        "{health}"
    );

    let mut config = lmlb_config(&[&sim]);
    config.upstreams[0].api_token = Some(lmlb::config::Secret::new("sk-lm-test:secret"));
    let with = start_lmlb(config).await;
    let reply = chat(&with.url(), "guarded-model", 2).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn closed_idle_connection_replaced_quietly() {
    let (sim, lmlb) = setup(&["restart-model"], 0.0).await;
    assert_eq!(chat(&lmlb.url(), "restart-model", 2).await.status, 200);

    // The restart closes the connection lmlb keeps idle for the next request.
    sim.stop_accepting().await;
    sim.resume_accepting().await.unwrap();

    let reply = chat(&lmlb.url(), "restart-model", 2).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let retries = lmlb
        .app()
        .metrics
        .retries
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        retries, 0,
        "a stale idle connection is not an upstream failure"
    );
}

#[tokio::test]
async fn slow_listing_while_busy_keeps_upstream() {
    let sim = start_sim(sim_config(&["busy-model"], 20.0)).await;
    let mut config = lmlb_config(&[&sim]);
    config.listing_timeout = std::time::Duration::from_millis(100);
    let lmlb = start_lmlb(config).await;

    let running = tokio::spawn({
        let url = lmlb.url();
        async move { chat(&url, "busy-model", 40).await }
    });
    sim_until(&sim, "the request runs", |s| s.total_active() == 1).await;

    // Like llama.cpp's Python server, the upstream now returns listings late.
    sim.set_faults(lmstudio_sim::Faults {
        listing_delay_ms: 400,
        ..Default::default()
    });
    eventually("a listing times out while the request runs", || async {
        let health = get(&lmlb.url(), "/health").await.json();
        health["upstreams"][0]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("while requests were running"))
    })
    .await;
    let health = get(&lmlb.url(), "/health").await.json();
    assert_eq!(health["upstreams"][0]["state"], "up");

    // A request arriving now waits for the busy instance instead of failing.
    let queued = chat(&lmlb.url(), "busy-model", 2).await;
    assert_eq!(queued.status, 200, "{}", queued.text());
    assert_eq!(running.await.unwrap().status, 200);

    // With nothing running, a listing that times out counts as the upstream being down.
    eventually("the idle upstream is marked down", || async {
        get(&lmlb.url(), "/health").await.json()["upstreams"][0]["state"] == "down"
    })
    .await;
}

#[tokio::test]
async fn unknown_model_names_down_upstreams() {
    let up = start_sim(sim_config(&["here-model"], 0.0)).await;
    let down = start_sim(sim_config(&["there-model"], 0.0)).await;
    down.stop_accepting().await;
    let lmlb = start_lmlb(lmlb_config(&[&up, &down])).await;

    // The model may be on the upstream that is down, so the 404 reports that it was not searched.
    let rejected = chat(&lmlb.url(), "there-model", 3).await;
    rejected.assert_error(404, "model_not_found");
    let message = rejected.error_message();
    assert!(message.contains("loaded models: here-model."), "{message}");
    assert!(message.contains("were not searched"), "{message}");
    assert!(message.contains(&down.url()), "{message}");
    assert!(!message.contains(&up.url()), "{message}");

    let reply = chat(&lmlb.url(), "here-model", 3).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}
