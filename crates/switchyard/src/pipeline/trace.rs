//! The call as OpenTelemetry spans (GenAI conventions): one for the
//! request, a child for each attempt.

use std::time::Duration;

use super::ctx::Ctx;
use crate::chat::Usage;
use crate::gateway::Gateway;
use crate::routing::{Evidence, Target};

/// One span for the request and one per attempt, GenAI conventions.
pub(super) fn trace(
    gw: &Gateway,
    ctx: &Ctx,
    requested_model: &str,
    served: Option<&Target>,
    status: u16,
    usage: Option<&Usage>,
    evidence: &Evidence,
) {
    use crate::telemetry::{Span, genai_system};
    use serde_json::json;
    let trace = ctx.trace.trace_id;
    let root = ctx.trace.span_id;
    let mut attrs = vec![
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.request.model", json!(requested_model)),
        ("http.response.status_code", json!(status)),
        ("switchyard.request_id", json!(ctx.id.to_string())),
        ("switchyard.attempts", json!(evidence.attempts.len())),
    ];
    if let Some(t) = served {
        attrs.push((
            "gen_ai.provider.name",
            json!(genai_system(t.provider.kind())),
        ));
        attrs.push(("gen_ai.system", json!(genai_system(t.provider.kind()))));
        attrs.push(("gen_ai.response.model", json!(t.model)));
    }
    if let Some(u) = usage {
        attrs.push(("gen_ai.usage.input_tokens", json!(u.input_tokens)));
        attrs.push(("gen_ai.usage.output_tokens", json!(u.output_tokens)));
    }
    if let Some(r) = &evidence.route {
        attrs.push(("switchyard.route", json!(r)));
    }
    gw.tracer.record(Span {
        trace_id: trace,
        span_id: root,
        parent: ctx.trace.parent,
        name: format!("chat {requested_model}"),
        kind: 2,
        start: ctx.wall,
        end: ctx.wall + ctx.started.elapsed(),
        attributes: attrs,
        error: status >= 400,
    });
    for a in &evidence.attempts {
        let (provider, model) = a.target.split_once('/').unwrap_or((&a.target, ""));
        let kind = gw
            .providers
            .get(provider)
            .map(|p| genai_system(p.kind()))
            .unwrap_or("unknown");
        let start = ctx.wall + Duration::from_secs_f64(a.start_ms / 1000.0);
        let mut attrs = vec![
            ("gen_ai.operation.name", json!("chat")),
            ("gen_ai.provider.name", json!(kind)),
            ("gen_ai.system", json!(kind)),
            ("gen_ai.request.model", json!(model)),
            ("switchyard.target", json!(a.target)),
            ("switchyard.outcome", json!(a.outcome)),
        ];
        if let Some(j) = &a.jurisdiction {
            attrs.push(("switchyard.jurisdiction", json!(j)));
        }
        if let Some(s) = a.status {
            attrs.push(("http.response.status_code", json!(s)));
        }
        if let Some(c) = &a.error_class {
            attrs.push(("error.type", json!(c)));
        }
        gw.tracer.record(Span {
            trace_id: trace,
            span_id: a.span_id,
            parent: Some(root),
            name: format!("chat {model}"),
            kind: 3,
            start,
            end: start + Duration::from_secs_f64(a.duration_ms / 1000.0),
            attributes: attrs,
            error: a.outcome != "ok",
        });
    }
}
