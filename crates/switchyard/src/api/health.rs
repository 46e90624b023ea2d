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
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz"];

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
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
