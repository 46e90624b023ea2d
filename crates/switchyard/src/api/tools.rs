//! `ANY /tools/{tool}/{rest}`: credentialed tool calls (see
//! [`crate::tools::proxy`]), and `GET /v1/tool-approvals/{id}`, where an
//! agent that got `202` asks how its held write stands.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::Request;

use super::read_request;
use crate::auth::Caller;
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::{self, Ctx};
use crate::tools::proxy::{self, Incoming};

pub(super) async fn call(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response {
    // The path as sent: the destination check reads it undecoded.
    let raw = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let method = req.method().clone();
    let after = raw.strip_prefix("/tools/").unwrap_or("");
    let (tool, rest) = after.split_once('/').unwrap_or((after, ""));
    let (tool, rest) = (tool.to_owned(), rest.to_owned());
    let (parts, body) = match read_request(&gw, req, Dialect::OpenAi).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    // In a task of its own: an approved write that has begun runs to its
    // end (and is audited) even if the agent hangs up.
    let task_gw = gw.clone();
    pipeline::in_own_task(&gw, Dialect::OpenAi, move |_| async move {
        proxy::call(
            task_gw,
            Incoming {
                tool,
                rest,
                query,
                method,
                parts,
                body,
            },
        )
        .await
    })
    .await
}

/// `GET /v1/tool-approvals/{id}`: the caller's own held write.
pub(super) async fn approval(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let ctx = Ctx::new(&gw, Dialect::OpenAi);
    match gw.approvals.get(&gw.storage, &id).await {
        Ok(Some(a)) if a.key_id.as_deref() == caller.key_id() => {
            let mut r = axum::Json(serde_json::json!({
                "approval_id": a.id,
                "status": a.state.as_str(),
                "tool": a.tool,
                "method": a.method,
                "path": a.path,
                "reason": a.reason,
                "expires_at_ms": a.expires_ms,
            }))
            .into_response();
            ctx.stamp(r.headers_mut());
            r
        }
        Ok(_) => ctx.error(GatewayError::NotFound(
            "no approval request with that id for this key".into(),
        )),
        Err(e) => ctx.error(GatewayError::Unavailable(format!(
            "the approval store is unavailable: {e}"
        ))),
    }
}
