//! The attempts: each target of the plan in turn (backoff before asking a
//! provider again, Retry-After honoured), until one answers or an error
//! must not fail over. Every attempt is in the request's evidence.

use std::sync::Arc;

use tokio::time::Instant;

use super::ctx::{Ctx, ms};
use super::deliver::Served;
use super::run::Held;
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::providers::{self, Inbound};
use crate::routing::health::Readiness;
use crate::routing::{self, Attempt, Target};
use axum::response::Response;

/// Names the caller's built-in tools a target left out.
const DROPPED_TOOLS: http::HeaderName = http::HeaderName::from_static("x-switchyard-dropped-tools");

pub(super) async fn attempts(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    inbound: &Inbound<'_>,
    plan: &routing::Plan,
    held: &mut Held,
) -> Result<Response> {
    let mut last_error: Option<GatewayError> = None;
    let mut tries: Vec<(&str, u32)> = Vec::new();
    for target in &plan.attempts {
        let provider = target.provider.name();
        // Backoff with jitter before trying a provider again.
        let n = match tries.iter_mut().find(|(p, _)| *p == provider) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                tries.push((provider, 1));
                0
            }
        };
        if n > 0 {
            let wait = routing::backoff::delay(n, &mut rand::thread_rng());
            if wait >= ctx.remaining() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        // A provider that said Retry-After during this request is not asked
        // again before then.
        if !held.evidence.attempts.is_empty()
            && matches!(
                gw.health.readiness(provider, &target.key, Instant::now()),
                Readiness::NotUntil(_) | Readiness::Blocked(_)
            )
        {
            continue;
        }
        let started = Instant::now();
        gw.health.begin(provider, &target.key, started);
        let attempt = held.evidence.attempts.len() as u32 + 1;
        // In the evidence while it runs, its outcome still empty: if the
        // request's deadline drops this attempt mid-way, the record still
        // shows where it went (the error path marks it cut).
        held.evidence.attempts.push(Attempt {
            target: target.key.to_string(),
            jurisdiction: target.jurisdiction().map(str::to_owned),
            start_ms: ms(started.saturating_duration_since(ctx.started)),
            duration_ms: 0.0,
            outcome: String::new(),
            error_class: None,
            status: None,
            span_id: crate::telemetry::span_id(),
        });
        let span = held.evidence.attempts.last().map(|a| a.span_id);
        let result = attempt_chat(gw, ctx, inbound, target, attempt, span).await;
        let took = started.elapsed();
        let mut record = |outcome: &str, class: Option<&str>, status| {
            if let Some(a) = held.evidence.attempts.last_mut() {
                a.duration_ms = ms(took);
                a.outcome = outcome.to_owned();
                a.error_class = class.map(str::to_owned);
                a.status = status;
            }
        };
        match result {
            Ok(served) => {
                gw.health
                    .success(provider, &target.key, took, Instant::now());
                record("ok", None, Some(200));
                gw.metrics.attempts(held.evidence.attempts.len());
                return super::deliver::deliver(gw, ctx, target, served, held);
            }
            Err(GatewayError::Upstream(e)) => {
                gw.health.failure(
                    provider,
                    &target.key,
                    e.class,
                    e.retry_after,
                    Instant::now(),
                );
                record("error", Some(e.class.as_str()), Some(e.status));
                tracing::info!(request_id = %ctx.id, trace_id = %ctx.trace, target = %target.key, class = e.class.as_str(), status = e.status, "Attempt failed");
                let retryable = e.class.retryable();
                last_error = Some(GatewayError::Upstream(e));
                if !retryable {
                    break;
                }
            }
            // This target cannot express the request; another may. Nothing
            // was sent: not an attempt.
            Err(GatewayError::Untranslatable(u)) => {
                held.evidence.attempts.pop();
                held.evidence.excluded.push(routing::Excluded {
                    target: target.key.to_string(),
                    jurisdiction: target.jurisdiction().map(str::to_owned),
                    reason: u.to_string(),
                });
                if last_error.is_none() {
                    last_error = Some(GatewayError::Untranslatable(u));
                }
            }
            Err(other) => {
                if matches!(other, GatewayError::DeadlineExceeded(_)) {
                    record("error", Some(other.class()), None);
                } else {
                    held.evidence.attempts.pop();
                }
                last_error = Some(other);
                break;
            }
        }
    }
    gw.metrics.attempts(held.evidence.attempts.len());
    tracing::debug!(request_id = %ctx.id, trace_id = %ctx.trace, evidence = ?held.evidence, "No attempt succeeded");
    Err(last_error.unwrap_or_else(|| {
        GatewayError::DeadlineExceeded(crate::config::fmt_duration(ctx.timeout))
    }))
}

/// One attempt: build the call for the target, send it, and read the
/// answer far enough to know it succeeded (a whole answer, or a stream's
/// first event: until then a failure may still fail over).
async fn attempt_chat(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    inbound: &Inbound<'_>,
    target: &Target,
    attempt: u32,
    span: Option<[u8; 8]>,
) -> Result<Served> {
    let provider = &target.provider;
    let mut call = providers::chat_call(provider, inbound, &target.model)?;
    // The provider may log it: one id ties their records to ours.
    if let Ok(v) = http::HeaderValue::from_str(&ctx.id.to_string()) {
        call.headers.push(("x-switchyard-request-id", v));
    }
    if provider.config.propagate_trace
        && let Some(span) = span
    {
        propagate(ctx, &span, &mut call.headers);
    }
    let resp = send(gw, ctx, provider, &call).await?;
    let mut served = if call.stream {
        super::answer::first_of_stream(gw, ctx, inbound, target, attempt, &call, resp).await?
    } else {
        super::answer::whole(ctx, inbound.echo, target, attempt, &call, resp).await?
    };
    if !call.dropped_tools.is_empty()
        && let Ok(v) = http::HeaderValue::from_str(&call.dropped_tools.join(", "))
    {
        served.response_mut().headers_mut().insert(DROPPED_TOOLS, v);
    }
    Ok(served)
}

/// `traceparent` (the attempt's span as the upstream's parent) and the
/// caller's `tracestate`, for a provider configured to receive them.
pub(crate) fn propagate(
    ctx: &Ctx,
    span: &[u8; 8],
    headers: &mut Vec<(&'static str, http::HeaderValue)>,
) {
    if let Ok(v) = http::HeaderValue::from_str(&ctx.trace.traceparent(span)) {
        headers.push(("traceparent", v));
    }
    if let Some(v) = ctx
        .trace
        .state
        .as_deref()
        .and_then(|s| http::HeaderValue::from_str(s).ok())
    {
        headers.push(("tracestate", v));
    }
}

/// Sends one attempt, bounded by the provider's timeout and the caller's
/// deadline; running out of the latter is the caller's 504, not the
/// provider's fault.
pub(super) async fn send(
    gw: &Gateway,
    ctx: &Ctx,
    provider: &providers::Provider,
    call: &providers::Call,
) -> Result<providers::client::UpstreamResponse> {
    let remaining = ctx.remaining();
    let bounded_by_deadline = remaining < provider.config.timeout;
    let timeout = provider.config.timeout.min(remaining);
    match gw.client.send(provider, call, timeout).await {
        Err(e)
            if bounded_by_deadline
                && e.class == providers::ErrorClass::Timeout
                && e.status == 504 =>
        {
            Err(GatewayError::DeadlineExceeded(crate::config::fmt_duration(
                ctx.timeout,
            )))
        }
        other => Ok(other?),
    }
}
