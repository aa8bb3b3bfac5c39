//! `GET /metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderValue, Response, header};

use crate::app::App;
use crate::proxy::ProxyBody;
use crate::telemetry::{Histogram, LATENCY_BUCKETS};

pub fn metrics(app: &App) -> Response<ProxyBody> {
    let mut out = String::with_capacity(4096);
    write_counters(app, &mut out);
    write_instances(app, &mut out);
    write_upstreams(app, &mut out);
    write_histogram(
        &mut out,
        "lmlb_queue_wait_seconds",
        "Time requests waited for a slot.",
        &app.metrics.queue_wait,
    );
    write_histogram(
        &mut out,
        "lmlb_request_duration_seconds",
        "Time from receiving a request to the end of its response body.",
        &app.metrics.duration,
    );

    let mut response = Response::new(ProxyBody::full(Bytes::from(out)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn write_counters(app: &App, out: &mut String) {
    let m = &app.metrics;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP lmlb_requests_total Requests received on balanced endpoints."
    );
    let _ = writeln!(out, "# TYPE lmlb_requests_total counter");
    let _ = writeln!(out, "lmlb_requests_total {}", load(&m.requests));

    let _ = writeln!(
        out,
        "# HELP lmlb_responses_total Forwarded responses by how they ended."
    );
    let _ = writeln!(out, "# TYPE lmlb_responses_total counter");
    for (outcome, counter) in [
        ("complete", &m.completed),
        ("client_gone", &m.client_gone),
        ("upstream_error", &m.upstream_errors),
    ] {
        let _ = writeln!(
            out,
            "lmlb_responses_total{{outcome=\"{outcome}\"}} {}",
            load(counter)
        );
    }

    let _ = writeln!(
        out,
        "# HELP lmlb_rejected_total Requests answered by lmlb with an error."
    );
    let _ = writeln!(out, "# TYPE lmlb_rejected_total counter");
    let reasons = [
        ("invalid", &m.rejected_invalid),
        ("model_not_found", &m.rejected_unknown_model),
        ("queue_full", &m.rejected_queue_full),
        ("queue_timeout", &m.rejected_queue_timeout),
        ("other", &m.rejected_other),
    ];
    for (reason, counter) in reasons {
        let _ = writeln!(
            out,
            "lmlb_rejected_total{{reason=\"{reason}\"}} {}",
            load(counter)
        );
    }

    let _ = writeln!(
        out,
        "# HELP lmlb_retries_total Requests moved to another instance after a failed connection."
    );
    let _ = writeln!(out, "# TYPE lmlb_retries_total counter");
    let _ = writeln!(out, "lmlb_retries_total {}", load(&m.retries));

    let _ = writeln!(
        out,
        "# HELP lmlb_resident_memory_bytes Resident memory of the lmlb process."
    );
    let _ = writeln!(out, "# TYPE lmlb_resident_memory_bytes gauge");
    let _ = writeln!(
        out,
        "lmlb_resident_memory_bytes {}",
        super::resident_memory_bytes()
    );
}

fn write_instances(app: &App, out: &mut String) {
    let snapshot = app.scheduler.snapshot();
    let gauges: [(&str, &str, &str); 3] = [
        (
            "lmlb_instance_slots",
            "gauge",
            "Requests the instance runs at once.",
        ),
        (
            "lmlb_instance_in_flight",
            "gauge",
            "Requests running on the instance.",
        ),
        (
            "lmlb_instance_served_total",
            "counter",
            "Requests the instance finished.",
        ),
    ];
    for (name, kind, help) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for instance in snapshot
            .instances
            .iter()
            .filter(|i| i.listed || i.in_flight > 0)
        {
            let value = match name {
                "lmlb_instance_slots" => u64::from(instance.slots),
                "lmlb_instance_in_flight" => u64::from(instance.in_flight),
                _ => instance.served,
            };
            let upstream = escape(&app.catalog.upstream(instance.upstream).name);
            let _ = writeln!(
                out,
                "{name}{{upstream=\"{upstream}\",instance=\"{}\",model=\"{}\"}} {value}",
                escape(&instance.id),
                escape(&instance.model)
            );
        }
    }

    let _ = writeln!(
        out,
        "# HELP lmlb_queue_depth Requests waiting for a slot, per model."
    );
    let _ = writeln!(out, "# TYPE lmlb_queue_depth gauge");
    // Every loaded model gets a series, 0 when nothing waits.
    let mut depths: std::collections::BTreeMap<&str, usize> = snapshot
        .instances
        .iter()
        .filter(|i| i.listed)
        .map(|i| (i.model.as_str(), 0))
        .collect();
    for (model, depth) in &snapshot.queued {
        depths.insert(model, *depth);
    }
    for (model, depth) in depths {
        let _ = writeln!(
            out,
            "lmlb_queue_depth{{model=\"{}\"}} {depth}",
            escape(model)
        );
    }
}

fn write_upstreams(app: &App, out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP lmlb_upstream_up Whether the upstream answered its last check."
    );
    let _ = writeln!(out, "# TYPE lmlb_upstream_up gauge");
    for (index, upstream) in app.catalog.upstreams().iter().enumerate() {
        let up = u8::from(app.catalog.is_up(index));
        let _ = writeln!(
            out,
            "lmlb_upstream_up{{upstream=\"{}\"}} {up}",
            escape(&upstream.name)
        );
    }
}

fn write_histogram(out: &mut String, name: &str, help: &str, histogram: &Histogram) {
    let (buckets, count, sum) = histogram.read();
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (bound, cumulative) in LATENCY_BUCKETS.iter().zip(buckets) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {count}");
}

/// Escapes a Prometheus label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
