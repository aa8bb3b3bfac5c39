//! Spreading requests over instances, queueing, pinning and aliases.

use std::collections::HashMap;

use futures_like::join_all;

use crate::common::*;

/// Minimal `join_all` so the tests need no futures crate.
mod futures_like {
    pub async fn join_all<F: std::future::Future + Send + 'static>(
        futures: Vec<F>,
    ) -> Vec<F::Output>
    where
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut outputs = Vec::with_capacity(handles.len());
        for handle in handles {
            outputs.push(handle.await.expect("task completes"));
        }
        outputs
    }
}

const THREE: &str = "qwen2.5-7b-instruct,instances=3,parallel=1";

#[tokio::test]
async fn nine_requests_spread_three_each() {
    let (sim, lmlb) = setup(&[THREE], 400.0).await;
    let url = lmlb.url();

    let requests = (0..9).map(|_| {
        let url = url.clone();
        async move { chat(&url, MODEL, 20).await }
    });
    let replies = join_all(requests.collect()).await;

    let mut by_instance: HashMap<String, usize> = HashMap::new();
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text());
        let instance = reply.header("x-lmlb-instance").to_string();
        assert_eq!(
            reply.json()["model"],
            instance,
            "the answer comes from the granted instance"
        );
        *by_instance.entry(instance).or_default() += 1;
    }
    assert_eq!(by_instance.len(), 3);
    assert!(by_instance.values().all(|&n| n == 3), "{by_instance:?}");

    let stats = sim.stats();
    for id in [
        MODEL.to_string(),
        format!("{MODEL}:2"),
        format!("{MODEL}:3"),
    ] {
        let instance = stats.instance(&id).unwrap();
        assert_eq!(instance.served, 3, "{id}");
        assert_eq!(instance.max_active, 1, "{id} never ran two at once");
    }
    assert_eq!(lmlb_in_flight(&lmlb), 0);
}

#[tokio::test]
async fn second_wave_waits_in_lmlb_not_upstream() {
    let (sim, lmlb) = setup(&[THREE], 100.0).await;
    let url = lmlb.url();

    let requests: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            async move { chat(&url, MODEL, 30).await }
        })
        .collect();
    let all = tokio::spawn(join_all(requests));

    // Three run and three wait in lmlb's queue; the simulator never queues anything.
    sim_until(&sim, "three requests run", |s| s.total_active() == 3).await;
    eventually("three requests wait in lmlb", || async {
        lmlb_queued(&lmlb) == 3
    })
    .await;
    assert_eq!(sim.stats().total_queued(), 0);

    let replies = all.await.unwrap();
    assert!(replies.iter().all(|r| r.status == 200));
    let stats = sim.stats();
    for instance in &stats.instances {
        if instance.id.starts_with(MODEL) {
            assert_eq!(instance.served, 2, "{}", instance.id);
            assert_eq!(instance.max_active, 1, "{}", instance.id);
        }
    }
}

#[tokio::test]
async fn instance_id_pins() {
    let (sim, lmlb) = setup(&[THREE], 0.0).await;
    for _ in 0..5 {
        let reply = chat(&lmlb.url(), &format!("{MODEL}:2"), 4).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-lmlb-instance"), format!("{MODEL}:2"));
    }
    assert_eq!(
        sim.stats().instance(&format!("{MODEL}:2")).unwrap().served,
        5
    );
    assert_eq!(sim.stats().instance(MODEL).unwrap().served, 0);
}

#[tokio::test]
async fn alias_routes_to_model() {
    let sim = start_sim(sim_config(&[THREE], 0.0)).await;
    let mut config = lmlb_config(&[&sim]);
    config
        .aliases
        .insert("gpt-4o-mini".to_string(), MODEL.to_string());
    let lmlb = start_lmlb(config).await;

    let reply = chat(&lmlb.url(), "gpt-4o-mini", 4).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.header("x-lmlb-instance").starts_with(MODEL));

    let listing = get(&lmlb.url(), "/v1/models").await.json();
    let ids: Vec<&str> = listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"gpt-4o-mini"), "{ids:?}");
}

#[tokio::test]
async fn two_upstreams_share_one_model() {
    let first = start_sim(sim_config(&["shared-model,instances=1"], 200.0)).await;
    let second = start_sim(sim_config(&["shared-model,instances=1"], 200.0)).await;
    let lmlb = start_lmlb(lmlb_config(&[&first, &second])).await;
    let url = lmlb.url();

    let requests: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            async move { chat(&url, "shared-model", 10).await }
        })
        .collect();
    let replies = join_all(requests).await;

    let mut upstreams: HashMap<String, usize> = HashMap::new();
    for reply in &replies {
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-lmlb-instance"), "shared-model");
        *upstreams
            .entry(reply.header("x-lmlb-upstream").to_string())
            .or_default() += 1;
    }
    assert_eq!(upstreams.get(&first.url()), Some(&2), "{upstreams:?}");
    assert_eq!(upstreams.get(&second.url()), Some(&2), "{upstreams:?}");
    assert_eq!(first.stats().total_served(), 2);
    assert_eq!(second.stats().total_served(), 2);
}

#[tokio::test]
async fn parallel_slots_from_upstream() {
    let (sim, lmlb) = setup(&["wide-model,instances=1,parallel=4"], 100.0).await;
    let url = lmlb.url();
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            async move { chat(&url, "wide-model", 20).await }
        })
        .collect();
    let all = tokio::spawn(join_all(requests));

    sim_until(&sim, "four run at once", |s| s.total_active() == 4).await;
    eventually("two wait in lmlb", || async { lmlb_queued(&lmlb) == 2 }).await;
    assert!(all.await.unwrap().iter().all(|r| r.status == 200));
    assert_eq!(sim.stats().instance("wide-model").unwrap().max_active, 4);
}

#[tokio::test]
async fn unknown_model_any_uses_loaded_model() {
    let sim = start_sim(sim_config(&[THREE, "nomic-embed,type=embeddings"], 0.0)).await;
    let mut config = lmlb_config(&[&sim]);
    config.unknown_model = lmlb::config::UnknownModel::Any;
    let lmlb = start_lmlb(config).await;

    let reply = chat(&lmlb.url(), "gpt-4", 4).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.header("x-lmlb-instance").starts_with(MODEL));

    let embedding = post(
        &lmlb.url(),
        "/v1/embeddings",
        r#"{"model":"text-embedding-3-small","input":"hi"}"#,
    )
    .await;
    assert_eq!(embedding.status, 200, "{}", embedding.text());
    assert_eq!(embedding.header("x-lmlb-instance"), "nomic-embed");
}
