//! lmlb's own endpoints and the merged listings.

use http::Method;

use crate::common::*;

const SPECS: [&str; 3] = [
    "qwen2.5-7b-instruct,instances=2,parallel=2",
    "nomic-embed,type=embeddings",
    "idle-model,state=not-loaded",
];

#[tokio::test]
async fn health_keeps_original_fields() {
    let (_sim, lmlb) = setup(&SPECS, 0.0).await;
    chat(&lmlb.url(), MODEL, 2).await;
    let health = get(&lmlb.url(), "/health").await;
    assert_eq!(health.status, 200);
    let json = health.json();
    assert_eq!(json["status"], "healthy");
    assert_eq!(
        json["availableModels"],
        serde_json::json!(["nomic-embed", MODEL, format!("{MODEL}:2")])
    );
    assert_eq!(json["inProgressModels"], serde_json::json!([]));
    assert_eq!(json["totalRequests"], 1);
    assert!(json["uptime"].as_f64().unwrap() >= 0.0);
    assert!(json["memory"]["rss"].as_u64().unwrap() > 0);
    let upstream = &json["upstreams"][0];
    assert_eq!(upstream["state"], "up");
    assert_eq!(upstream["listing"], "lmstudio-v1");
    assert_eq!(upstream["instances"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn models_shows_load_per_instance() {
    let (sim, lmlb) = setup(&SPECS, 50.0).await;
    let running = tokio::spawn({
        let url = lmlb.url();
        async move { chat(&url, &format!("{MODEL}:2"), 20).await }
    });
    sim_until(&sim, "the request runs", |s| s.total_active() == 1).await;

    let json = get(&lmlb.url(), "/models").await.json();
    assert_eq!(
        json["inProgressModels"],
        serde_json::json!([format!("{MODEL}:2")])
    );
    assert_eq!(json["modelLoad"][format!("{MODEL}:2")], 1);
    assert_eq!(json["modelLoad"][MODEL], 0);
    let free: Vec<&str> = json["freeModels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(free, ["nomic-embed", MODEL]);
    let model = json["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == MODEL)
        .unwrap();
    assert_eq!(model["instances"], 2);
    assert_eq!(model["slots"], 4, "two instances with parallel 2");
    assert_eq!(model["inFlight"], 1);

    assert_eq!(running.await.unwrap().status, 200);
    let after = get(&lmlb.url(), "/models").await.json();
    assert_eq!(after["inProgressModels"], serde_json::json!([]));
    let instance = after["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == format!("{MODEL}:2"))
        .unwrap();
    assert_eq!(instance["served"], 1);
}

#[tokio::test]
async fn v1_models_lists_each_model_once() {
    let first = start_sim(sim_config(&SPECS, 0.0)).await;
    let second = start_sim(sim_config(&["qwen2.5-7b-instruct"], 0.0)).await;
    let lmlb = start_lmlb(lmlb_config(&[&first, &second])).await;

    let json = get(&lmlb.url(), "/v1/models").await.json();
    assert_eq!(json["object"], "list");
    let data = json["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["nomic-embed", MODEL],
        "not-loaded models are left out"
    );
    let qwen = &data[1];
    assert_eq!(qwen["object"], "model");
    assert_eq!(
        qwen["instances"],
        serde_json::json!([MODEL, format!("{MODEL}:2")])
    );
}

#[tokio::test]
async fn v0_models_merged_across_upstreams() {
    let first = start_sim(sim_config(&["alpha", "shared,state=not-loaded"], 0.0)).await;
    let second = start_sim(sim_config(&["beta", "shared"], 0.0)).await;
    let lmlb = start_lmlb(lmlb_config(&[&first, &second])).await;

    let json = get(&lmlb.url(), "/api/v0/models").await.json();
    let data = json["data"].as_array().unwrap();
    let mut ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["alpha", "beta", "shared"]);
    let shared = data.iter().find(|m| m["id"] == "shared").unwrap();
    assert_eq!(
        shared["state"], "loaded",
        "loaded on one upstream counts as loaded"
    );

    let one = get(&lmlb.url(), "/api/v0/models/beta").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], "beta");
}

#[tokio::test]
async fn other_paths_pass_through() {
    let (_sim, lmlb) = setup(&SPECS, 0.0).await;
    let greeting = get(&lmlb.url(), "/lmstudio-greeting").await;
    assert_eq!(greeting.status, 200);
    assert_eq!(greeting.json()["lmstudio"], true);
    assert!(greeting.headers.contains_key("x-lmlb-upstream"));

    let native = get(&lmlb.url(), "/api/v1/models").await;
    assert!(native.json()["models"].is_array());

    let unexpected = request(
        Method::DELETE,
        &format!("{}/v1/nothing", lmlb.url()),
        &[],
        "",
    )
    .await;
    assert_eq!(
        unexpected.status, 200,
        "LM Studio's own answer to an unknown path"
    );
    assert!(
        unexpected.json()["error"]
            .as_str()
            .unwrap()
            .contains("Unexpected endpoint")
    );
}

#[tokio::test]
async fn metrics_in_prometheus_format() {
    let (_sim, lmlb) = setup(&SPECS, 0.0).await;
    chat(&lmlb.url(), MODEL, 2).await;
    chat(&lmlb.url(), "missing", 2).await;
    let metrics = get(&lmlb.url(), "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").starts_with("text/plain"));
    let text = metrics.text();
    for expected in [
        "lmlb_requests_total 2",
        "lmlb_rejected_total{reason=\"model_not_found\"} 1",
        "lmlb_responses_total{outcome=\"complete\"} 1",
        "lmlb_request_duration_seconds_count 1",
        "lmlb_queue_wait_seconds_count 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.contains(&format!(
        "lmlb_upstream_up{{upstream=\"{}\"}} 1",
        lmlb.app().config.upstreams[0].name
    )));
    assert!(text.contains("lmlb_instance_slots{"));
}

#[tokio::test]
async fn dashboard_served() {
    let (_sim, lmlb) = setup(&SPECS, 0.0).await;
    let page = get(&lmlb.url(), "/dashboard").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.text().contains("fetch(\"/models\""));
}
