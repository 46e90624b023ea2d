//! A write through `/mcp` that needs approval: an approval request (the
//! tool, its arguments, a digest of both, the key and its tags), decided
//! by a person (admin API, dashboard) or, where the operator set
//! `client_approval` for the server and the client declared elicitation,
//! by the client's own answer:
//!
//! * up to 2025-11-25, a form elicitation sent on the call's stream while
//!   the call waits, raced against a person's decision;
//! * on 2026-07-28, an input-required result whose `requestState` is
//!   sealed to the key, the tool and the arguments ([`super::seal`]); the
//!   client's retry carries the answer, and the approval's claim makes the
//!   state good for one run.
//!
//! Otherwise the call waits for a person, up to the server's
//! `approval_timeout_s`, sending a progress notification first when the
//! client gave a progress token (so its stream opens and keep-alives flow).
//! Approved, it runs once, with the arguments that were approved.

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
    InputRequest, InputRequests, InputRequiredResult, InputResponses, ProgressNotificationParam,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::upstream::Upstream;
use crate::approvals::{Approval, ClaimError, State};
use crate::auth::Caller;
use crate::config::tools::Approval as Policy;
use crate::gateway::Gateway;

/// The key the gateway's question has in `inputRequests`.
pub const INPUT_KEY: &str = "switchyard_approval";

/// The most of the arguments a question shows.
const MAX_SHOWN: usize = 2000;

/// One held call.
pub struct Held<'a> {
    pub gw: &'a Arc<Gateway>,
    pub ctx: &'a RequestContext<RoleServer>,
    pub caller: &'a Caller,
    pub up: &'a Upstream,
    /// The tool's gateway name.
    pub name: &'a str,
    /// The arguments as canonical JSON (what the digest is over).
    pub arguments: &'a str,
    pub digest: &'a str,
    pub request_id: &'a str,
    pub tags: &'a serde_json::Map<String, serde_json::Value>,
    pub show_arguments: bool,
    pub request_state: Option<&'a str>,
    pub input_responses: Option<&'a InputResponses>,
    /// Cancelled when the caller has gone.
    pub left: &'a CancellationToken,
}

/// What becomes of the call.
pub enum Verdict {
    /// Run it (approved and claimed, or no approval needed).
    Go {
        approval_id: Option<String>,
        decision: &'static str,
    },
    /// Ask the client (2026-07-28): this result, then its retry.
    Ask {
        result: InputRequiredResult,
        approval_id: String,
    },
    /// It does not run: a tool error with `text`.
    Stop {
        decision: &'static str,
        status: u16,
        text: String,
        approval_id: Option<String>,
    },
}

fn stop(decision: &'static str, status: u16, text: String, id: Option<String>) -> Verdict {
    Verdict::Stop {
        decision,
        status,
        text,
        approval_id: id,
    }
}

/// Whether the request is on the session-less 2026-07-28 protocol.
pub fn is_modern(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v.as_str() >= rmcp::model::ProtocolVersion::V_2026_07_28.as_str())
}

fn schema() -> ElicitationSchema {
    serde_json::from_value(json!({
        "type": "object",
        "properties": {
            "approve": {"type": "boolean", "title": "Approve",
                        "description": "Run this call once, with exactly these arguments"},
            "reason": {"type": "string", "title": "Reason"}
        },
        "required": ["approve"]
    }))
    .expect("a valid elicitation schema")
}

fn question(h: &Held<'_>) -> ElicitRequestParams {
    let mut args = h.arguments.to_owned();
    if args.len() > MAX_SHOWN {
        let mut cut = MAX_SHOWN;
        while !args.is_char_boundary(cut) {
            cut -= 1;
        }
        args.truncate(cut);
        args.push('…');
    }
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: format!(
            "Switchyard holds a write for approval: {} with arguments {args}. Approve it?",
            h.name
        ),
        requested_schema: schema(),
    }
}

/// The client's answer: approve, or deny with a reason.
fn answer_of(r: &ElicitResult) -> Result<(), String> {
    match r.action {
        ElicitationAction::Accept => {
            let c = r.content.as_ref();
            if c.and_then(|c| c.get("approve")).and_then(|v| v.as_bool()) == Some(true) {
                Ok(())
            } else {
                Err(c
                    .and_then(|c| c.get("reason"))
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .map_or_else(|| "not approved by the MCP client".into(), str::to_owned))
            }
        }
        ElicitationAction::Decline => Err("declined by the MCP client".into()),
        ElicitationAction::Cancel => Err("cancelled by the MCP client".into()),
        _ => Err("not approved by the MCP client".into()),
    }
}

fn unavailable(e: anyhow::Error) -> ErrorData {
    ErrorData::internal_error(format!("the approval store is unavailable: {e}"), None)
}

/// What the call needs before it may run.
pub async fn decide(h: &Held<'_>) -> Result<Verdict, ErrorData> {
    let config = &h.up.config;
    match config.approval {
        Policy::None => {
            return Ok(Verdict::Go {
                approval_id: None,
                decision: "allowed",
            });
        }
        Policy::Deny => {
            return Ok(stop(
                "denied",
                403,
                format!(
                    "approval_denied: writes to MCP server `{}` are denied by configuration",
                    config.name
                ),
                None,
            ));
        }
        Policy::Required => {}
    }
    let gw = h.gw;
    let store = &gw.storage;
    let modern = is_modern(h.ctx);
    let elicits = h
        .ctx
        .client_capabilities()
        .is_some_and(|c| c.elicitation.is_some());
    let client_decides = config.client_approval && elicits;
    let bound = format!(
        "{}|{}|{}",
        h.caller.key_id().unwrap_or("-"),
        h.name,
        h.digest
    );
    let id = match h.request_state {
        Some(state) => {
            let id = gw
                .mcp
                .sealer
                .open(state, &bound, crate::clock::unix_ms())
                .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
            if client_decides {
                let answer = h
                    .input_responses
                    .and_then(|r| r.get(INPUT_KEY))
                    .and_then(|v| serde_json::from_value::<ElicitResult>(v.clone()).ok());
                match answer {
                    Some(a) => record_client_answer(h, &id, answer_of(&a)).await?,
                    None => {
                        // The answer is missing: ask again, if still open.
                        let pending = gw
                            .approvals
                            .get(store, &id)
                            .await
                            .map_err(unavailable)?
                            .is_some_and(|a| a.state == State::Pending);
                        if pending {
                            return Ok(ask(h, id, state.to_owned()));
                        }
                    }
                }
            }
            id
        }
        None => {
            let a = new_approval(h);
            gw.approvals.create(store, &a).await.map_err(unavailable)?;
            if let Err(e) = crate::audit::append(store, "approval_requested", &a).await {
                tracing::error!(error = %e, "An approval request could not be audited");
            }
            if modern && client_decides {
                let state = gw.mcp.sealer.seal(&a.id, a.expires_ms, &bound);
                return Ok(ask(h, a.id, state));
            }
            a.id
        }
    };
    wait(h, &id, !modern && client_decides).await?;
    Ok(
        match gw
            .approvals
            .claim(store, &id, h.digest)
            .await
            .map_err(unavailable)?
        {
            Ok(_) => Verdict::Go {
                approval_id: Some(id),
                decision: "approved",
            },
            Err(e) => {
                let (status, code, decision) = match &e {
                    ClaimError::Pending => (408, "approval_timeout", "expired"),
                    ClaimError::Denied(_) => (403, "approval_denied", "denied"),
                    ClaimError::Expired => (408, "approval_timeout", "expired"),
                    ClaimError::Used => (409, "approval_used", "refused"),
                    ClaimError::Mismatch => (409, "approval_body_mismatch", "refused"),
                    ClaimError::NotFound => (404, "approval_not_found", "refused"),
                };
                let text = match e {
                    ClaimError::Denied(Some(reason)) => {
                        format!("{code}: the call was denied ({id}): {reason}")
                    }
                    other => format!("{code}: {other} ({id})"),
                };
                stop(decision, status, text, Some(id))
            }
        },
    )
}

fn ask(h: &Held<'_>, id: String, state: String) -> Verdict {
    let mut requests = InputRequests::new();
    requests.insert(
        INPUT_KEY.into(),
        InputRequest::Elicitation(ElicitRequest::new(question(h))),
    );
    Verdict::Ask {
        result: InputRequiredResult::new(Some(requests), Some(state)),
        approval_id: id,
    }
}

/// The client's answer decides the approval (unless a person already has).
async fn record_client_answer(
    h: &Held<'_>,
    id: &str,
    answer: Result<(), String>,
) -> Result<(), ErrorData> {
    let by = "mcp-client";
    let (approve, reason) = match &answer {
        Ok(()) => (true, None),
        Err(r) => (false, Some(r.as_str())),
    };
    let decided =
        h.gw.approvals
            .decide(&h.gw.storage, id, approve, by, reason)
            .await
            .map_err(unavailable)?;
    if let Ok(a) = decided {
        let record = json!({
            "approval_id": a.id, "decision": a.state.as_str(), "by": by, "reason": a.reason,
            "tool": a.tool, "key_id": a.key_id,
        });
        if let Err(e) = crate::audit::append(&h.gw.storage, "approval_decided", &record).await {
            tracing::error!(error = %e, "An approval decision could not be audited");
        }
    }
    Ok(())
}

/// Waits for the decision (a person's, or, when `elicit`, the client's
/// answer to a form elicitation, whichever comes first), until the
/// deadline, the caller leaving, or shutdown; a request still pending
/// then is expired, so it can never run later.
async fn wait(h: &Held<'_>, id: &str, elicit: bool) -> Result<(), ErrorData> {
    let gw = h.gw;
    let store = &gw.storage;
    let deadline = tokio::time::Instant::now() + h.up.config.approval_timeout;
    if let Some(token) = h.ctx.meta.get_progress_token() {
        let note = ProgressNotificationParam::new(token, 0.0)
            .with_message(format!("held for approval ({id})"));
        let _ = h.ctx.peer.notify_progress(note).await;
    }
    let person = gw.approvals.wait(store, id, deadline);
    let client = async {
        if !elicit {
            return std::future::pending().await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match h
            .ctx
            .peer
            .create_elicitation_with_timeout(question(h), Some(left))
            .await
        {
            Ok(r) => Some(answer_of(&r)),
            // No answer (the client could not ask, or gave up): a person
            // may still decide.
            Err(e) => {
                tracing::debug!(error = %e, "An MCP client's elicitation failed");
                None
            }
        }
    };
    tokio::select! {
        r = person => { r.map_err(unavailable)?; }
        Some(answer) = client => {
            record_client_answer(h, id, answer).await?;
        }
        () = h.left.cancelled() => {}
        () = gw.stopping.cancelled() => {}
    }
    let state = gw
        .approvals
        .get(store, id)
        .await
        .map_err(unavailable)?
        .map_or(State::Expired, |a| a.state);
    if state == State::Pending {
        crate::approvals::store::expire(store, id)
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

fn new_approval(h: &Held<'_>) -> Approval {
    let now = crate::clock::unix_ms();
    Approval {
        id: format!("apr_{}", uuid::Uuid::now_v7().simple()),
        created_ms: now,
        expires_ms: now + h.up.config.approval_timeout.as_millis() as i64,
        state: State::Pending,
        kind: "mcp".into(),
        tool: h.name.to_owned(),
        method: Some("tools/call".into()),
        path: None,
        arguments: h.show_arguments.then(|| h.arguments.to_owned()),
        body_digest: h.digest.to_owned(),
        key_id: h.caller.key_id().map(str::to_owned),
        tags: h.tags.clone(),
        request_id: h.request_id.to_owned(),
        decided_ms: None,
        decided_by: None,
        reason: None,
        executed_ms: None,
    }
}
