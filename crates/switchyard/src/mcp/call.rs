//! One `tools/call` through `/mcp`, in order: the key may use the tool;
//! the tool is one the upstream lists, not withheld by its pin; its class;
//! the key's rate limit; a write's approval ([`super::hold`]); the call
//! upstream (credential added by the connection, never the agent's); the
//! answer with upstream `_meta` dropped and tool credentials scrubbed; and
//! the call in the audit chain and the request log.
//!
//! Tool failures are results with `isError: true` (the agent reads them);
//! JSON-RPC errors are for what the protocol itself refuses (an unknown
//! tool, a request state that does not open).

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ResultType,
};
use rmcp::service::{RequestContext, RoleServer};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::handler;
use super::hold::{self, Held, Verdict};
use super::pins::Pin;
use super::upstream::UpstreamError;
use crate::auth::Caller;
use crate::gateway::Gateway;

/// What the audit chain keeps of an MCP tool call.
#[derive(serde::Serialize, Default)]
struct Record {
    request_id: String,
    via: &'static str,
    key_id: Option<String>,
    tags: serde_json::Map<String, serde_json::Value>,
    tool: String,
    protocol: Option<String>,
    class: &'static str,
    reason: &'static str,
    decision: &'static str,
    approval_id: Option<String>,
    /// SHA-256 of the canonical `{"arguments", "name"}`.
    body_digest: String,
    /// `ok`, `tool_error` (the tool said `isError`), or empty when it did
    /// not run.
    outcome: &'static str,
    /// As for HTTP calls: 200 when the tool ran, else what stopped it.
    status: u16,
    error: Option<String>,
    latency_ms: f64,
}

/// The SHA-256 and canonical text of a call: its name and arguments, with
/// object keys in order, so the same call always has the same digest.
pub fn digest(name: &str, arguments: &Option<rmcp::model::JsonObject>) -> (String, String) {
    let args = arguments
        .as_ref()
        .map(|a| super::pins::sorted(&serde_json::Value::Object(a.clone())))
        .unwrap_or(serde_json::Value::Null);
    let text = serde_json::to_string(&args).unwrap_or_default();
    let canon = serde_json::json!({"arguments": args, "name": name}).to_string();
    (crate::keys::hex(&Sha256::digest(canon.as_bytes())), text)
}

fn tool_error(text: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(text.into())]).into()
}

pub async fn call(
    gw: Arc<Gateway>,
    request: CallToolRequestParams,
    ctx: RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    let caller = handler::caller(&ctx)?;
    let headers = handler::parts(&ctx)?.headers.clone();
    // In a task of its own: an approved write that has begun runs to its
    // end, and is audited, even if the agent hangs up.
    let tasks = gw.tasks.clone();
    crate::gateway::own_task(&tasks, move |left| async move {
        let started_ms = crate::clock::unix_ms();
        let started = tokio::time::Instant::now();
        let mut rec = Record {
            request_id: crate::clock::request_id().to_string(),
            via: "mcp",
            key_id: caller.key_id().map(str::to_owned),
            tags: caller
                .key
                .as_ref()
                .map(|k| k.metadata.clone())
                .unwrap_or_default(),
            tool: request.name.to_string(),
            protocol: ctx.protocol_version().map(|v| v.as_str().to_owned()),
            ..Record::default()
        };
        let out = run(&gw, &caller, &headers, &request, &ctx, &left, &mut rec).await;
        rec.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if rec.status == 0 {
            rec.status = if out.is_ok() { 200 } else { 400 };
        }
        if let Err(e) = gw.audit.append(&gw.storage, "tool_call", &rec).await {
            tracing::error!(error = %e, request_id = %rec.request_id, "An MCP tool call could not be audited");
        }
        let server = super::split(&rec.tool).map_or("", |(s, _)| s);
        crate::tools::usage::record(
            &gw,
            crate::tools::usage::ToolUse {
                request_id: &rec.request_id,
                caller: &caller,
                headers: &headers,
                via: "mcp",
                name: &rec.tool,
                target: server,
                started_ms,
                latency_ms: rec.latency_ms,
                status: rec.status,
                error_class: (rec.status >= 400 || rec.outcome == "tool_error")
                    .then_some(if rec.outcome == "tool_error" {
                        "tool_error"
                    } else {
                        rec.decision
                    }),
            },
        );
        out
    })
    .await
    .unwrap_or_else(|| {
        Err(ErrorData::internal_error(
            "the call's task ended without an answer",
            None,
        ))
    })
}

#[allow(clippy::too_many_arguments)]
async fn run(
    gw: &Arc<Gateway>,
    caller: &Caller,
    headers: &http::HeaderMap,
    request: &CallToolRequestParams,
    ctx: &RequestContext<RoleServer>,
    left: &CancellationToken,
    rec: &mut Record,
) -> Result<CallToolResponse, ErrorData> {
    let name = request.name.as_ref();
    let unknown = || ErrorData::invalid_params(format!("no tool named `{name}`"), None);
    let (server, tool) = super::split(name).ok_or_else(unknown)?;
    if !handler::allowed(caller, name) {
        rec.decision = "refused";
        rec.status = 403;
        return Err(ErrorData::invalid_params(
            format!("this key may not use tool `{name}`"),
            None,
        ));
    }
    let up = gw.mcp.servers.get(server).ok_or_else(unknown)?.clone();
    if let Err(e) =
        crate::tools::jurisdiction_allows(headers, caller, name, up.config.jurisdiction.as_deref())
    {
        rec.decision = "refused";
        rec.status = 403;
        return Ok(tool_error(format!("jurisdiction_refused: {e}")));
    }
    let mut listed = None;
    for force in [false, true] {
        match up.tools(&gw.storage, force).await {
            Ok(l) => {
                listed = l.iter().find(|l| l.tool.name == tool).cloned();
                if listed.is_some() {
                    break;
                }
            }
            Err(e) => return Ok(unreachable(rec, e)),
        }
    }
    let listed = listed.ok_or_else(unknown)?;
    if let Pin::Withheld { change_id } = &listed.pin {
        rec.decision = "withheld";
        rec.status = 409;
        return Ok(tool_error(format!(
            "tool_withheld: the definition of `{name}` changed after it was first seen; \
             it is withheld until an operator accepts the change ({change_id})"
        )));
    }
    rec.class = listed.class.as_str();
    rec.reason = listed.class.reason();
    let (digest, arguments) = digest(name, &request.arguments);
    rec.body_digest = digest.clone();
    // Tool calls count against the key's rate limits, like model calls.
    let admission = match gw.limiter.admit_tool_call(caller.key.as_deref()).await {
        Ok(a) => a,
        Err(l) => {
            rec.decision = "rate_limited";
            rec.status = 429;
            return Ok(tool_error(format!(
                "rate_limited: {} per minute for this key; retry after {}s",
                l.which, l.retry_after_s
            )));
        }
    };
    let verdict = if listed.class.is_write() {
        let log_mode = crate::policy::log_mode(gw, caller, headers).unwrap_or(gw.config.logs.mode);
        hold::decide(&Held {
            gw,
            ctx,
            caller,
            up: &up,
            name,
            arguments: &arguments,
            digest: &digest,
            request_id: &rec.request_id,
            tags: &rec.tags,
            show_arguments: log_mode != crate::config::LogMode::None,
            request_state: request.request_state.as_deref(),
            input_responses: request.input_responses.as_ref(),
            left,
        })
        .await
    } else {
        Ok(Verdict::Go {
            approval_id: None,
            decision: "allowed",
        })
    };
    if let Some(a) = admission {
        gw.limiter.settle(&a, 0).await;
    }
    match verdict? {
        Verdict::Go {
            approval_id,
            decision,
        } => {
            rec.decision = decision;
            rec.approval_id = approval_id;
        }
        Verdict::Ask {
            result,
            approval_id,
        } => {
            rec.decision = "asked";
            rec.status = 202;
            rec.approval_id = Some(approval_id);
            return Ok(CallToolResponse::InputRequired(result));
        }
        Verdict::Stop {
            decision,
            status,
            text,
            approval_id,
        } => {
            rec.decision = decision;
            rec.status = status;
            rec.approval_id = approval_id;
            return Ok(tool_error(text));
        }
    }
    match up.call(tool, request.arguments.clone()).await {
        Ok(CallToolResponse::Complete(mut r)) => {
            rec.status = 200;
            rec.outcome = if r.is_error == Some(true) {
                "tool_error"
            } else {
                "ok"
            };
            // The upstream's own `_meta` (its server info and the like) is
            // not ours to pass on.
            r.meta = None;
            r.result_type.get_or_insert(ResultType::COMPLETE);
            Ok(scrubbed(gw, r).into())
        }
        Ok(_) => {
            rec.status = 502;
            rec.error = Some("the upstream asked for input".into());
            Ok(tool_error(
                "tool_unsupported: the upstream tool asked the client for input (or began a task), \
                 which the gateway does not relay",
            ))
        }
        Err(e) => Ok(unreachable(rec, e)),
    }
}

fn unreachable(rec: &mut Record, e: UpstreamError) -> CallToolResponse {
    rec.status = 502;
    if rec.decision.is_empty() {
        rec.decision = "failed";
    }
    rec.error = Some(e.to_string());
    tool_error(format!("tool_unreachable: {e}"))
}

/// The result with every tool credential replaced, in every string in it.
fn scrubbed(gw: &Gateway, r: CallToolResult) -> CallToolResult {
    let mut secrets = gw.tools.secrets();
    secrets.extend(gw.mcp.secrets());
    let Ok(mut value) = serde_json::to_value(&r) else {
        return r;
    };
    if !scrub(&mut value, &secrets) {
        return r;
    }
    serde_json::from_value(value).unwrap_or_else(|_| {
        CallToolResult::error(vec![ContentBlock::text(
            "the tool's answer held a credential and was withheld",
        )])
    })
}

/// Replaces each secret in every string (keys included); whether any was.
fn scrub(v: &mut serde_json::Value, secrets: &[String]) -> bool {
    use serde_json::Value;
    let clean = |s: &mut String| {
        let mut hit = false;
        for secret in secrets {
            if s.contains(secret.as_str()) {
                *s = s.replace(secret.as_str(), "[redacted]");
                hit = true;
            }
        }
        hit
    };
    match v {
        Value::String(s) => clean(s),
        Value::Array(a) => a.iter_mut().fold(false, |hit, x| scrub(x, secrets) | hit),
        Value::Object(m) => {
            let mut hit = false;
            let entries = std::mem::take(m);
            for (mut k, mut x) in entries {
                hit |= clean(&mut k);
                hit |= scrub(&mut x, secrets);
                m.insert(k, x);
            }
            hit
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_in_every_string() {
        let mut v = serde_json::json!({
            "content": [{"type": "text", "text": "token tok_canary_123456 here"}],
            "structuredContent": {"tok_canary_123456": ["a tok_canary_123456", 3]}
        });
        assert!(scrub(&mut v, &["tok_canary_123456".into()]));
        let text = v.to_string();
        assert!(!text.contains("tok_canary_123456"), "{text}");
        assert_eq!(text.matches("[redacted]").count(), 3);
        let mut clean = serde_json::json!({"a": "nothing"});
        assert!(!scrub(&mut clean, &["tok_canary_123456".into()]));
    }

    #[test]
    fn the_same_call_has_the_same_digest_whatever_the_key_order() {
        let a: rmcp::model::JsonObject =
            serde_json::from_str(r#"{"b": 1, "a": {"y": 2, "x": 1}}"#).unwrap();
        let b: rmcp::model::JsonObject =
            serde_json::from_str(r#"{"a": {"x": 1, "y": 2}, "b": 1}"#).unwrap();
        assert_eq!(
            digest("s__t", &Some(a.clone())).0,
            digest("s__t", &Some(b)).0
        );
        assert_ne!(
            digest("s__t", &Some(a.clone())).0,
            digest("s__u", &Some(a.clone())).0
        );
        assert_ne!(digest("s__t", &Some(a)).0, digest("s__t", &None).0);
    }
}
