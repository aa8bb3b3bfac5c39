//! `GET /health` and `GET /models`: the original tool's fields, plus per-upstream and
//! per-instance detail.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::json_response;
use crate::proxy::ProxyBody;
use crate::scheduler::{InstanceView, Snapshot};

pub fn health(app: &App) -> Response<ProxyBody> {
    let snapshot = app.scheduler.snapshot();
    let upstreams = upstreams_detail(app, &snapshot);
    let up = (0..app.catalog.upstreams().len())
        .filter(|&i| app.catalog.is_up(i))
        .count();
    let status = match up {
        0 => "unhealthy",
        n if n < app.catalog.upstreams().len() => "degraded",
        _ => "healthy",
    };

    let body = json!({
        "status": status,
        "availableModels": available(&snapshot),
        "inProgressModels": in_progress(&snapshot),
        "totalRequests": app.metrics.requests.load(Ordering::Relaxed),
        "uptime": app.metrics.started.elapsed().as_secs_f64(),
        "memory": { "rss": super::resident_memory_bytes() },
        "queued": snapshot.total_queued,
        "upstreams": upstreams,
    });
    json_response(StatusCode::OK, &body)
}

pub fn models(app: &App) -> Response<ProxyBody> {
    let snapshot = app.scheduler.snapshot();
    let mut load: BTreeMap<&str, u32> = BTreeMap::new();
    for instance in snapshot.instances.iter().filter(|i| i.listed) {
        *load.entry(&instance.id).or_default() += instance.in_flight;
    }
    let free: Vec<&str> = load
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();

    let body = json!({
        "availableModels": available(&snapshot),
        "inProgressModels": in_progress(&snapshot),
        "freeModels": free,
        "modelLoad": load,
        "models": models_detail(&snapshot),
        "instances": snapshot.instances.iter().filter(|i| i.listed).map(|i| instance_detail(app, i)).collect::<Vec<_>>(),
        "upstreams": upstreams_detail(app, &snapshot),
        "queued": snapshot.total_queued,
    });
    json_response(StatusCode::OK, &body)
}

/// Instance ids in rotation, each once (the same id may be loaded on several upstreams).
fn available(snapshot: &Snapshot) -> Vec<&str> {
    let mut ids: Vec<&str> = snapshot
        .instances
        .iter()
        .filter(|i| i.in_rotation)
        .map(|i| i.id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// One entry per request in flight, naming its instance, as the original tool listed them.
fn in_progress(snapshot: &Snapshot) -> Vec<&str> {
    snapshot
        .instances
        .iter()
        .flat_map(|i| std::iter::repeat_n(i.id.as_str(), i.in_flight as usize))
        .collect()
}

fn models_detail(snapshot: &Snapshot) -> Vec<Value> {
    let mut models: BTreeMap<&str, (u32, u32, u64, usize, &InstanceView)> = BTreeMap::new();
    for instance in snapshot.instances.iter().filter(|i| i.listed) {
        let entry = models
            .entry(&instance.model)
            .or_insert((0, 0, 0, 0, instance));
        entry.0 += instance.slots;
        entry.1 += instance.in_flight;
        entry.2 += instance.served;
        entry.3 += 1;
    }
    models
        .into_iter()
        .map(|(model, (slots, in_flight, served, count, first))| {
            json!({
                "id": model,
                "type": first.kind,
                "instances": count,
                "slots": slots,
                "inFlight": in_flight,
                "queued": snapshot.queued.get(model).copied().unwrap_or(0),
                "served": served,
            })
        })
        .collect()
}

fn instance_detail(app: &App, instance: &InstanceView) -> Value {
    let state = if instance.in_rotation {
        "up"
    } else if instance.listed {
        "suspended"
    } else {
        "down"
    };
    json!({
        "id": instance.id,
        "model": instance.model,
        "upstream": app.catalog.upstream(instance.upstream).name,
        "type": instance.kind,
        "state": state,
        "slots": instance.slots,
        "inFlight": instance.in_flight,
        "served": instance.served,
    })
}

fn upstreams_detail(app: &App, snapshot: &Snapshot) -> Vec<Value> {
    app.catalog
        .upstreams()
        .iter()
        .enumerate()
        .map(|(index, upstream)| {
            let status = app.catalog.status(index);
            let instances: Vec<Value> = snapshot
                .instances
                .iter()
                .filter(|i| i.upstream == index && (i.listed || i.in_flight > 0))
                .map(|i| instance_detail(app, i))
                .collect();
            json!({
                "name": upstream.name,
                "url": upstream.url,
                "state": status.state,
                "listing": status.listing,
                "lastError": status.last_error,
                "lastCheck": status.last_check,
                "failures": status.failures,
                "instances": instances,
            })
        })
        .collect()
}
