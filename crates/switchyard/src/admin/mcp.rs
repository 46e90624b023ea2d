//! The MCP gateway's tool pins, for the operator: tools whose definition
//! changed after the gateway first saw them, withheld until accepted
//! (`/admin/v1/mcp/changes`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use super::admin_error;
use super::views::List;
use crate::gateway::Gateway;
use crate::mcp::pins;

fn bad(message: &str) -> Response {
    admin_error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

fn failed(e: anyhow::Error) -> Response {
    tracing::error!(error = %e, "The MCP pin store failed");
    admin_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        &format!("the store failed: {e}"),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangesQuery {
    state: Option<String>,
}

/// `GET /admin/v1/mcp/changes?state=pending|accepted|rejected`.
pub(super) async fn changes(
    State(gw): State<Arc<Gateway>>,
    q: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return bad("expected state=pending|accepted|rejected");
    };
    if let Some(s) = q.state.as_deref()
        && !matches!(s, "pending" | "accepted" | "rejected")
    {
        return bad("`state`: expected pending, accepted or rejected");
    }
    match pins::changes(&gw.storage, q.state.as_deref()).await {
        Ok(list) => axum::Json(List { data: list }).into_response(),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "McpDecision")]
pub(crate) struct Decision {
    #[schemars(extend("enum" = ["accept", "reject"]))]
    decision: String,
}

/// `POST /admin/v1/mcp/changes/{id}` `{"decision": "accept"|"reject"}`.
pub(super) async fn decide(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    let d: Decision = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            return bad(&format!(
                "expected {{\"decision\": \"accept\"|\"reject\"}}: {e}"
            ));
        }
    };
    let accept = match d.decision.as_str() {
        "accept" => true,
        "reject" => false,
        _ => return bad("`decision`: expected accept or reject"),
    };
    let by = super::decided_by(&headers);
    match pins::decide(&gw.storage, &id, accept, by).await {
        Ok(true) => {}
        Ok(false) => {
            return admin_error(
                StatusCode::NOT_FOUND,
                "not_found_error",
                "no pending change with that id",
            );
        }
        Err(e) => return failed(e),
    }
    let change = match pins::changes(&gw.storage, None).await {
        Ok(all) => all.into_iter().find(|c| c.id == id),
        Err(e) => return failed(e),
    };
    let record = serde_json::json!({
        "change_id": id, "decision": if accept { "accepted" } else { "rejected" }, "by": by,
        "server": change.as_ref().map(|c| &c.server), "tool": change.as_ref().map(|c| &c.tool),
        "new_digest": change.as_ref().map(|c| &c.new_digest),
    });
    if let Err(e) = crate::audit::append(&gw.storage, "mcp_change_decided", &record).await {
        return failed(e);
    }
    // The lists are read again at once, with the pin as decided.
    for up in gw.mcp.servers.iter() {
        up.forget_list();
    }
    axum::Json(change).into_response()
}
