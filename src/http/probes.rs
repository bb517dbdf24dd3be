//! Health-check probes and metrics: `/health` (liveness), `/ready` (consumers consuming and not
//! draining before a shutdown; the Consul watcher's state shown alongside) and `/metrics`
//! (Prometheus). No authentication, no
//! CORS.

use actix_web::{web, HttpResponse};
use pushgate_actors::readiness::ConsumerKind;
use serde_json::{json, Map, Value};

use crate::http::error::method_not_allowed;
use crate::http::AppState;

/// Mount the probe routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, handler) in [
        ("/health", web::get().to(health)),
        ("/ready", web::get().to(ready)),
        ("/metrics", web::get().to(metrics)),
    ] {
        cfg.service(
            web::resource(path)
                .route(handler)
                .default_service(web::to(method_not_allowed)),
        );
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let r = &state.readiness;
    let consumers: Map<String, Value> = ConsumerKind::ALL
        .iter()
        .map(|k| {
            let s = if r.consuming(*k) {
                "consuming"
            } else {
                "stopped"
            };
            (k.name().to_owned(), Value::from(s))
        })
        .collect();
    let ready = r.is_ready();
    let mut components = json!({ "amqp": r.amqp().name(), "consumers": consumers });
    // Shown when Consul is watched; never part of being ready (docs/socketio.md).
    if let Some(consul) = r.consul().name() {
        components["consul"] = Value::from(consul);
    }
    // Cluster mode: the cluster's log, read live only once this node caught up (docs/cluster.md).
    if let Some(log) = r.cluster_log().name() {
        components["log"] = Value::from(log);
    }
    let status = match (ready, r.is_draining()) {
        (true, _) => "ready",
        (false, true) => "draining",
        (false, false) => "not_ready",
    };
    let body = json!({
        "status": status,
        "components": components,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
