//! Credentialed tools, for the operator: held writes to approve or deny
//! (`/admin/v1/approvals`), the audit trail (`/admin/v1/tool-calls`) and
//! its verification (`/admin/v1/audit/verify`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use super::admin_error;
use super::views::{List, Page};
use crate::approvals::{DecideError, State as ApprovalState};
use crate::gateway::Gateway;

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

fn bad(message: &str) -> Response {
    admin_error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

fn failed(e: anyhow::Error) -> Response {
    tracing::error!(error = %e, "The approval or audit store failed");
    admin_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        &format!("the store failed: {e}"),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApprovalsQuery {
    state: Option<String>,
    limit: Option<i64>,
}

/// `GET /admin/v1/approvals?state=pending`.
pub(super) async fn approvals(
    State(gw): State<Arc<Gateway>>,
    q: QueryResult<ApprovalsQuery>,
) -> Response {
    let Ok(Query(q)) = q else {
        return bad("expected state=pending|approved|denied|expired|executed and limit=1..500");
    };
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => match ApprovalState::parse(s) {
            Some(st) => Some(st),
            None => return bad("`state`: expected pending, approved, denied, expired or executed"),
        },
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    match gw.approvals.list(&gw.storage, state, limit).await {
        Ok(list) => axum::Json(List { data: list }).into_response(),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ApprovalDecision")]
pub(crate) struct Decision {
    #[schemars(extend("enum" = ["approve", "deny"]))]
    decision: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /admin/v1/approvals/{id}` `{"decision": "approve"|"deny", "reason"}`.
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
                "expected {{\"decision\": \"approve\"|\"deny\", \"reason\"}}: {e}"
            ));
        }
    };
    let approve = match d.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return bad("`decision`: expected approve or deny"),
    };
    if d.reason.as_ref().is_some_and(|r| r.len() > 2000) {
        return bad("`reason`: at most 2000 bytes");
    }
    let by = super::decided_by(&headers);
    match gw
        .approvals
        .decide(&gw.storage, &id, approve, by, d.reason.as_deref())
        .await
    {
        Ok(Ok(a)) => {
            let record = serde_json::json!({
                "approval_id": a.id, "decision": a.state.as_str(), "by": by, "reason": a.reason,
                "tool": a.tool, "key_id": a.key_id,
            });
            if let Err(e) = crate::audit::append(&gw.storage, "approval_decided", &record).await {
                return failed(e);
            }
            axum::Json(a).into_response()
        }
        Ok(Err(DecideError::NotFound)) => admin_error(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "no approval request with that id",
        ),
        Ok(Err(e @ DecideError::Closed(_))) => {
            admin_error(StatusCode::CONFLICT, "conflict", &e.to_string())
        }
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    kind: Option<String>,
    cursor: Option<i64>,
    limit: Option<i64>,
}

/// `GET /admin/v1/tool-calls`: the audit trail, newest first.
pub(super) async fn tool_calls(
    State(gw): State<Arc<Gateway>>,
    q: QueryResult<AuditQuery>,
) -> Response {
    let Ok(Query(q)) = q else {
        return bad(
            "expected kind=tool_call|approval_requested|approval_decided|mcp_change_decided, cursor and limit=1..500",
        );
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    match crate::audit::list(&gw.storage, q.kind.as_deref(), q.cursor, limit).await {
        Ok(list) => {
            let next = (list.len() as i64 == limit)
                .then(|| list.last().map(|r| r.seq))
                .flatten();
            axum::Json(Page {
                data: list,
                next_cursor: next,
            })
            .into_response()
        }
        Err(e) => failed(e),
    }
}

/// `GET /admin/v1/audit/verify`: the chain re-walked from its start.
pub(super) async fn verify(State(gw): State<Arc<Gateway>>) -> Response {
    match crate::audit::verify(&gw.storage).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => failed(e),
    }
}
