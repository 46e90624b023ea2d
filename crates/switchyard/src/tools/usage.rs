//! Tool calls in the request log, beside model calls: one record per call
//! (HTTP tool or MCP tool), with the key, its tags and the caller's
//! `x-switchyard-metadata`, the tool as the model, no tokens and no cost.
//! So `GET /admin/v1/usage?group_by=tag:team` counts a team's tool calls
//! with its model calls, and the key's log mode applies (in mode `none`
//! the caller's tags are not kept; bodies are never kept here: the audit
//! chain and the approval hold what a tool call carried).

use http::HeaderMap;

use crate::auth::Caller;
use crate::gateway::Gateway;
use crate::log_store::{Begin, End};

/// One finished tool call.
pub struct ToolUse<'a> {
    pub request_id: &'a str,
    pub caller: &'a Caller,
    pub headers: &'a HeaderMap,
    /// `tool` (HTTP tools) or `mcp`.
    pub via: &'static str,
    /// The tool as the caller named it (`github`, `jira__create_issue`).
    pub name: &'a str,
    /// The tool or MCP server it went to.
    pub target: &'a str,
    pub started_ms: i64,
    pub latency_ms: f64,
    pub status: u16,
    pub error_class: Option<&'a str>,
}

pub fn record(gw: &Gateway, u: ToolUse<'_>) {
    let log_mode = crate::policy::log_mode(gw, u.caller, u.headers).unwrap_or(gw.config.logs.mode);
    let metadata = crate::pipeline::metadata(u.headers, u.caller, log_mode).unwrap_or_else(|_| {
        u.caller
            .key
            .as_ref()
            .map(|k| k.metadata.clone())
            .unwrap_or_default()
    });
    let begin = Begin {
        id: u.request_id.to_owned(),
        time_ms: u.started_ms,
        instance: gw.recorder.instance.clone(),
        key_id: u.caller.key_id().map(str::to_owned),
        route: None,
        requested_model: u.name.to_owned(),
        dialect: u.via.to_owned(),
        stream: false,
        log_mode,
        est_input_tokens: 0,
        metadata,
        request_body: None,
        hold_usd: None,
        trace_id: None,
    };
    // The call has happened: a full spool cannot refuse it any more, and
    // best-effort mode counts what it drops.
    match gw.recorder.begin(&begin) {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(request_id = u.request_id, error = %e, "A tool call could not be recorded");
            return;
        }
    }
    gw.recorder.end(End {
        id: u.request_id.to_owned(),
        time_ms: u.started_ms + u.latency_ms as i64,
        provider: Some(u.target.to_owned()),
        model: Some(u.name.to_owned()),
        status: u.status,
        error_class: u.error_class.map(str::to_owned),
        latency_ms: u.latency_ms,
        cost_usd: Some(0.0),
        cache: "BYPASS".into(),
        ..End::default()
    });
}
