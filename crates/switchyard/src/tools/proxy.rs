//! One call through `ANY /tools/{tool}/{rest}`, in order: the key may use
//! the tool; the destination is fixed and checked; the call is classified
//! from the bytes that will be sent; the key's rate limit counts it; a
//! write waits for its approval (or gets `202` at once with `Prefer:
//! respond-async`, and is repeated with `x-switchyard-approval`), and an
//! approved write runs once, with the body that was approved; the
//! credential is added by the client; the answer streams back with the
//! tool credentials scrubbed from it; and each step is in the audit chain.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::classify::{self, Class};
use super::{Tool, path};
use crate::approvals::{Approval, ClaimError, State};
use crate::auth::Caller;
use crate::config::tools::Approval as Policy;
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::Ctx;

/// Request headers that never go to a tool: the caller's own credentials,
/// hop-by-hop headers, the gateway's own.
const DROPPED_IN: &[&str] = &[
    "host",
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
    "proxy-authorization",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "prefer",
];

/// Response headers that never come back.
const DROPPED_OUT: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "set-cookie",
    "content-length",
];

/// The most of a body an approver is shown.
const MAX_SHOWN: usize = 64 * 1024;

/// A tool call as it arrived.
pub struct Incoming {
    pub tool: String,
    /// The path after `/tools/{tool}/`, as sent.
    pub rest: String,
    pub query: Option<String>,
    pub method: Method,
    pub parts: Parts,
    pub body: Bytes,
}

/// What the audit chain keeps of a tool call.
#[derive(serde::Serialize, Default)]
struct CallRecord {
    request_id: String,
    via: &'static str,
    key_id: Option<String>,
    tags: serde_json::Map<String, serde_json::Value>,
    tool: String,
    method: String,
    path: String,
    class: &'static str,
    reason: &'static str,
    decision: &'static str,
    approval_id: Option<String>,
    body_digest: String,
    status: u16,
    error: Option<String>,
    latency_ms: f64,
}

fn err(status: u16, code: &'static str, message: impl Into<String>) -> GatewayError {
    GatewayError::Approval {
        status,
        code,
        message: message.into(),
    }
}

fn digest(body: &[u8]) -> String {
    crate::keys::hex(&Sha256::digest(body))
}

pub async fn call(gw: Arc<Gateway>, inc: Incoming) -> Response {
    let ctx = Ctx::new(&gw, Dialect::OpenAi);
    let started = tokio::time::Instant::now();
    let started_ms = crate::clock::unix_ms();
    let caller = inc
        .parts
        .extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or_default();
    let mut rec = CallRecord {
        request_id: ctx.id.to_string(),
        via: "http",
        key_id: caller.key_id().map(str::to_owned),
        tags: caller
            .key
            .as_ref()
            .map(|k| k.metadata.clone())
            .unwrap_or_default(),
        tool: inc.tool.clone(),
        method: inc.method.to_string(),
        path: format!("/{}", inc.rest),
        body_digest: digest(&inc.body),
        ..CallRecord::default()
    };
    let result = run(&gw, &ctx, &caller, &inc, &mut rec).await;
    rec.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut resp = match result {
        Ok(r) => r,
        Err(GatewayError::Approval {
            status: 202,
            message: id,
            ..
        }) => {
            rec.status = 202;
            accepted(&ctx, &id)
        }
        Err(e) => {
            rec.status = e.status().as_u16();
            rec.error = Some(e.to_string());
            ctx.error(e)
        }
    };
    if rec.status == 0 {
        rec.status = resp.status().as_u16();
    }
    if let Err(e) = gw.audit.append(&gw.storage, "tool_call", &rec).await {
        tracing::error!(error = %e, request_id = %ctx.id, trace_id = %ctx.trace, "A tool call could not be audited");
    }
    crate::tools::usage::record(
        &gw,
        crate::tools::usage::ToolUse {
            request_id: &rec.request_id,
            caller: &caller,
            headers: &inc.parts.headers,
            via: "tool",
            name: &inc.tool,
            target: &inc.tool,
            started_ms,
            latency_ms: rec.latency_ms,
            status: rec.status,
            error_class: (rec.status >= 400).then_some(rec.decision),
        },
    );
    ctx.stamp(resp.headers_mut());
    resp
}

async fn run(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    caller: &Caller,
    inc: &Incoming,
    rec: &mut CallRecord,
) -> Result<Response, GatewayError> {
    if let Some(k) = &caller.key
        && !k.allows_tool(&inc.tool)
    {
        rec.decision = "refused";
        return Err(GatewayError::Forbidden(format!(
            "this key may not use tool `{}`",
            inc.tool
        )));
    }
    let Some(tool) = gw.tools.get(&inc.tool).cloned() else {
        rec.decision = "refused";
        return Err(GatewayError::NotFound(format!(
            "no tool named `{}`",
            inc.tool
        )));
    };
    super::jurisdiction_allows(
        &inc.parts.headers,
        caller,
        &inc.tool,
        tool.config.jurisdiction.as_deref(),
    )
    .inspect_err(|_| rec.decision = "refused")?;
    let url =
        path::destination(&tool.config.base_url, &inc.rest, inc.query.as_deref()).map_err(|e| {
            rec.decision = "refused";
            GatewayError::BadRequest(crate::wire::DecodeError::new("path", e.to_string()))
        })?;
    let class = classify::classify(
        &tool.config,
        &classify::Call {
            method: inc.method.as_str(),
            path: &rec.path,
            query: inc.query.as_deref(),
            headers: &inc.parts.headers,
            body: &inc.body,
        },
    );
    rec.class = class.as_str();
    rec.reason = class.reason();
    // Tool calls count against the key's rate limits, like model calls.
    let admission = match gw.limiter.admit_tool_call(caller.key.as_deref()).await {
        Ok(a) => a,
        Err(l) => {
            rec.decision = "rate_limited";
            return Err(GatewayError::RateLimited {
                message: format!("rate limit reached: {} per minute for this key", l.which),
                retry_after_s: l.retry_after_s,
                headers: l.headers,
            });
        }
    };
    let outcome = decide(gw, ctx, caller, inc, &tool, &class, rec).await;
    if let Some(a) = admission {
        gw.limiter.settle(&a, 0).await;
    }
    outcome?;
    execute(gw, inc, &tool, url).await
}

/// Whether the call may go: `Ok` for a read, a write that needs no
/// approval, or an approved write now claimed; an error otherwise (a
/// `202` for one left to decide).
async fn decide(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    caller: &Caller,
    inc: &Incoming,
    tool: &Tool,
    class: &Class,
    rec: &mut CallRecord,
) -> Result<(), GatewayError> {
    if !class.is_write() {
        rec.decision = "allowed";
        return Ok(());
    }
    match tool.config.approval {
        Policy::None => {
            rec.decision = "allowed";
            return Ok(());
        }
        Policy::Deny => {
            rec.decision = "denied";
            return Err(err(
                403,
                "approval_denied",
                format!(
                    "writes to tool `{}` are denied by configuration",
                    tool.config.name
                ),
            ));
        }
        Policy::Required => {}
    }
    let store = &gw.storage;
    let asked_async = inc.parts.headers.get_all("prefer").iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("respond-async"))
    });
    // A repeat that names its approval.
    let id = match inc.parts.headers.get("x-switchyard-approval") {
        Some(v) => {
            let id = v.to_str().unwrap_or("").to_owned();
            let a = gw.approvals.get(store, &id).await.map_err(unavailable)?;
            let same = a.as_ref().is_some_and(|a| {
                a.key_id.as_deref() == caller.key_id()
                    && a.tool == inc.tool
                    && a.method.as_deref() == Some(inc.method.as_str())
                    && a.path.as_deref() == Some(rec.path.as_str())
            });
            if !same {
                rec.decision = "refused";
                return Err(err(
                    404,
                    "approval_not_found",
                    "no approval request with that id for this call",
                ));
            }
            id
        }
        None => {
            let a = new_approval(gw, ctx, caller, inc, tool, rec);
            gw.approvals.create(store, &a).await.map_err(unavailable)?;
            if let Err(e) = crate::audit::append(store, "approval_requested", &a).await {
                tracing::error!(error = %e, "An approval request could not be audited");
            }
            a.id
        }
    };
    rec.approval_id = Some(id.clone());
    if asked_async {
        let state = gw
            .approvals
            .get(store, &id)
            .await
            .map_err(unavailable)?
            .map_or(State::Expired, |a| a.state);
        if state == State::Pending {
            rec.decision = "held";
            return Err(GatewayError::Approval {
                status: 202,
                code: "approval_pending",
                message: id,
            });
        }
    } else {
        let deadline = tokio::time::Instant::now() + tool.config.approval_timeout;
        if gw
            .approvals
            .wait(store, &id, deadline)
            .await
            .map_err(unavailable)?
            == State::Pending
        {
            crate::approvals::store::expire(store, &id).await.ok();
        }
    }
    match gw
        .approvals
        .claim(store, &id, &rec.body_digest)
        .await
        .map_err(unavailable)?
    {
        Ok(_) => {
            rec.decision = "approved";
            Ok(())
        }
        Err(e) => {
            let (status, code, decision) = match &e {
                ClaimError::Pending => (202, "approval_pending", "held"),
                ClaimError::Denied(_) => (403, "approval_denied", "denied"),
                ClaimError::Expired => (408, "approval_timeout", "expired"),
                ClaimError::Used => (409, "approval_used", "refused"),
                ClaimError::Mismatch => (409, "approval_body_mismatch", "refused"),
                ClaimError::NotFound => (404, "approval_not_found", "refused"),
            };
            rec.decision = decision;
            let message = match e {
                ClaimError::Pending => id,
                ClaimError::Denied(Some(reason)) => format!("the request was denied: {reason}"),
                other => other.to_string(),
            };
            Err(err(status, code, message))
        }
    }
}

fn unavailable(e: anyhow::Error) -> GatewayError {
    GatewayError::Unavailable(format!("the approval store is unavailable: {e}"))
}

fn new_approval(
    gw: &Gateway,
    ctx: &Ctx,
    caller: &Caller,
    inc: &Incoming,
    tool: &Tool,
    rec: &CallRecord,
) -> Approval {
    let now = crate::clock::unix_ms();
    let logs_nothing = caller
        .key
        .as_ref()
        .and_then(|k| k.log)
        .unwrap_or(gw.config.logs.mode)
        == crate::config::LogMode::None;
    let shown = (!logs_nothing && !inc.body.is_empty()).then(|| {
        let cut = &inc.body[..inc.body.len().min(MAX_SHOWN)];
        String::from_utf8_lossy(cut).into_owned()
    });
    Approval {
        id: format!("apr_{}", uuid::Uuid::now_v7().simple()),
        created_ms: now,
        expires_ms: now + tool.config.approval_timeout.as_millis() as i64,
        state: State::Pending,
        kind: "http".into(),
        tool: inc.tool.clone(),
        method: Some(inc.method.to_string()),
        path: Some(rec.path.clone()),
        arguments: shown,
        body_digest: rec.body_digest.clone(),
        key_id: caller.key_id().map(str::to_owned),
        tags: rec.tags.clone(),
        request_id: ctx.id.to_string(),
        decided_ms: None,
        decided_by: None,
        reason: None,
        executed_ms: None,
    }
}

/// Sends the call and streams the answer back, every tool credential
/// scrubbed from it.
async fn execute(
    gw: &Arc<Gateway>,
    inc: &Incoming,
    tool: &Tool,
    url: String,
) -> Result<Response, GatewayError> {
    let mut headers = HeaderMap::new();
    for (k, v) in &inc.parts.headers {
        let name = k.as_str();
        if DROPPED_IN.contains(&name)
            || name.starts_with("x-switchyard-")
            || name.starts_with("proxy-")
            || tool.auth.as_ref().is_some_and(|(h, _)| h == k)
        {
            continue;
        }
        headers.append(k.clone(), v.clone());
    }
    let resp = gw
        .client
        .tool(
            tool,
            inc.method.clone(),
            &url,
            headers,
            inc.body.clone(),
            tool.config.timeout,
        )
        .await
        .map_err(|e| {
            err(
                502,
                "tool_unreachable",
                format!("tool `{}` did not answer: {e}", tool.config.name),
            )
        })?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::from_stream(scrub(
        http_body_util::BodyDataStream::new(body),
        gw.tools.secrets(),
    )));
    *out.status_mut() = parts.status;
    for (k, v) in &parts.headers {
        if !DROPPED_OUT.contains(&k.as_str()) {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// A body stream with every secret replaced, across chunk boundaries (the
/// last `longest - 1` bytes wait for the next chunk).
fn scrub<S, E>(
    body: S,
    secrets: Vec<String>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    let longest = secrets.iter().map(String::len).max().unwrap_or(0);
    let state = (Vec::<u8>::new(), false);
    futures_util::stream::unfold(
        (Box::pin(body), state),
        move |(mut body, (mut carry, done))| {
            let secrets = secrets.clone();
            async move {
                if done {
                    return None;
                }
                let next = body.next().await;
                let last = next.is_none();
                match next {
                    Some(Err(e)) => {
                        return Some((
                            Err(std::io::Error::other(e.to_string())),
                            (body, (Vec::new(), true)),
                        ));
                    }
                    Some(Ok(chunk)) => carry.extend_from_slice(&chunk),
                    None => {}
                }
                for s in &secrets {
                    replace_all(&mut carry, s.as_bytes(), b"[redacted]");
                }
                let keep = if last {
                    0
                } else {
                    longest.saturating_sub(1).min(carry.len())
                };
                let out: Vec<u8> = carry.drain(..carry.len() - keep).collect();
                Some((Ok(Bytes::from(out)), (body, (carry, last))))
            }
        },
    )
}

fn replace_all(buf: &mut Vec<u8>, needle: &[u8], with: &[u8]) {
    if needle.is_empty() || buf.len() < needle.len() {
        return;
    }
    let mut out = Vec::with_capacity(buf.len());
    let mut i = 0;
    while i < buf.len() {
        if buf[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(buf[i]);
            i += 1;
        }
    }
    *buf = out;
}

/// `202` with the approval's id and where to ask about it.
pub fn accepted(ctx: &Ctx, id: &str) -> Response {
    let mut r = (
        http::StatusCode::ACCEPTED,
        [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({"approval_id": id, "status_url": format!("/v1/tool-approvals/{id}")}).to_string(),
    )
        .into_response();
    ctx.stamp(r.headers_mut());
    r.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("2"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_are_scrubbed_across_chunk_boundaries() {
        let secret = "ghp_canarysecret0123456789".to_owned();
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"token=ghp_canary")),
            Ok(Bytes::from_static(b"secret0123456789 and ")),
            Ok(Bytes::from_static(b"ghp_canarysecret0123456789!")),
        ];
        let out: Vec<u8> = scrub(futures_util::stream::iter(chunks), vec![secret.clone()])
            .map(|c| c.unwrap())
            .collect::<Vec<_>>()
            .await
            .concat();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "token=[redacted] and [redacted]!");
    }
}
