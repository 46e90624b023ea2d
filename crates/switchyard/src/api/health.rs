//! The only data-plane routes that need no key: liveness and readiness.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::gateway::Gateway;

/// Paths served without authentication. The router test checks that every
/// other route demands a key.
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Prometheus text: request counters and histograms, plus gauges read now
/// (circuit state, spool depth, dropped records).
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    use std::fmt::Write;
    let mut extra = String::new();
    extra.push_str("# HELP switchyard_circuit_open Whether a provider's circuit is open (1), half-open (0.5) or closed (0).\n# TYPE switchyard_circuit_open gauge\n");
    for s in gw.health.snapshot(tokio::time::Instant::now()) {
        // Providers only: targets would multiply the series.
        if s.key.contains('/') {
            continue;
        }
        let v = match s.circuit {
            "open" => 1.0,
            "half-open" => 0.5,
            _ => 0.0,
        };
        let _ = writeln!(
            extra,
            "switchyard_circuit_open{{provider=\"{}\"}} {v}",
            s.key
        );
    }
    let _ = writeln!(
        extra,
        "# HELP switchyard_spool_bytes Request-log bytes waiting for the database.\n# TYPE switchyard_spool_bytes gauge\nswitchyard_spool_bytes {}",
        gw.recorder.spool.pending()
    );
    let _ = writeln!(
        extra,
        "# HELP switchyard_log_records_dropped_total Records dropped (best-effort mode with a full spool, or a failing disk).\n# TYPE switchyard_log_records_dropped_total counter\nswitchyard_log_records_dropped_total {}",
        gw.recorder.dropped()
    );
    let _ = writeln!(
        extra,
        "# HELP switchyard_detached_streams Streams being generated with no client attached.\n# TYPE switchyard_detached_streams gauge\nswitchyard_detached_streams {}",
        gw.streams.detached()
    );
    // A slow store (or a writer still catching up at start) leaves the
    // budget gauges out of this scrape rather than hold it.
    let standing = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        gw.budget.standing(crate::clock::unix_ms()),
    )
    .await;
    if let Ok(Ok(s)) = standing {
        let _ = writeln!(
            extra,
            "# HELP switchyard_budget_keys Keys with a budget, by the share used in the current period (near: at least {near}).\n# TYPE switchyard_budget_keys gauge\n\
             switchyard_budget_keys{{state=\"ok\"}} {}\nswitchyard_budget_keys{{state=\"near\"}} {}\nswitchyard_budget_keys{{state=\"exhausted\"}} {}",
            s.ok,
            s.near,
            s.exhausted,
            near = crate::budget::NEAR,
        );
        let _ = writeln!(
            extra,
            "# HELP switchyard_budget_used_ratio_max The highest share of its budget any key has spent or holds (1 = all).\n# TYPE switchyard_budget_used_ratio_max gauge\nswitchyard_budget_used_ratio_max {}",
            s.max_ratio
        );
    }
    let _ = writeln!(
        extra,
        "# HELP switchyard_spool_max_bytes The spool's bound ([logs] spool_max_bytes).\n# TYPE switchyard_spool_max_bytes gauge\nswitchyard_spool_max_bytes {}",
        gw.config.logs.spool_max_bytes
    );
    let _ = writeln!(
        extra,
        "# HELP switchyard_requests_paced_total Requests that waited for the log writer to catch up ([logs] backlog_bytes).\n# TYPE switchyard_requests_paced_total counter\nswitchyard_requests_paced_total {}",
        gw.recorder.pace.paced()
    );
    let mut resp = gw.metrics.render(&extra).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Ready when storage answers.
async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let ok = gw.storage.ping().await;
    let body = axum::Json(serde_json::json!({
        "status": if ok { "ready" } else { "unavailable" },
        "storage": gw.storage.backend(),
    }));
    if ok {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}
