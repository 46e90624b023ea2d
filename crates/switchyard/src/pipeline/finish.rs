//! The end of a served call, whole or streamed: its record closed with
//! usage and cost, its permit settled at what it really cost, its metrics
//! and trace.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::ctx::{Ctx, ms};
use crate::chat::Usage;
use crate::gateway::Gateway;
use crate::log_store::{End, Journal};
use crate::policy::{self, Permit};
use crate::routing::{Evidence, Target};

/// How a served request ended.
pub(super) struct Finished<'a> {
    pub target: &'a Target,
    pub status: u16,
    pub error_class: Option<String>,
    pub usage: Option<Usage>,
    pub cost: Option<f64>,
    pub ttft: Option<Duration>,
    pub evidence: Evidence,
    /// What the caller got, kept only in log mode `full`.
    pub body: Option<Bytes>,
    pub cache: &'static str,
    /// A stream whose first events reached the caller: generation began,
    /// whatever ended it.
    pub streamed: bool,
}

/// Closes a served request: its record, its permit, its metrics.
pub(super) fn finish(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    mut journal: Journal,
    permit: Permit,
    f: Finished<'_>,
) {
    let latency = ctx.started.elapsed();
    log_finished(ctx, f.target, f.status, f.usage.as_ref());
    gw.metrics.request(
        Some(f.target.provider.name()),
        Some(&f.target.model),
        f.status,
        f.cache,
        latency,
        f.ttft,
    );
    if let Some(u) = &f.usage {
        gw.metrics
            .tokens(f.target.provider.name(), &f.target.model, u, f.cost);
    }
    gw.metrics.genai(&crate::metrics::GenAi {
        operation: "chat",
        provider: crate::telemetry::genai_system(f.target.provider.kind()),
        model: &f.target.model,
        duration: latency,
        first_chunk: f.ttft.filter(|_| f.streamed),
        usage: f.usage.as_ref(),
        error: f.error_class.as_deref().filter(|_| f.status >= 400),
    });
    let full = journal
        .begin()
        .is_some_and(|b| b.log_mode == crate::config::LogMode::Full);
    if gw.tracer.enabled() {
        let requested = journal
            .begin()
            .map(|b| b.requested_model.as_str())
            .unwrap_or("");
        super::trace::trace(
            gw,
            ctx,
            requested,
            Some(f.target),
            f.status,
            f.usage.as_ref(),
            &f.evidence,
        );
    }
    // Generation happened if the answer succeeded, usage was reported, or
    // a stream got going (a stream cut short still cost what it used).
    let generated = f.status < 400 || f.usage.is_some() || f.streamed;
    // Nothing said what it cost (no usage reported: a stream cut before its
    // last chunk, a server that never reports it): a budget keeps the whole
    // hold, since it never under-counts, and the record says so.
    let estimated = generated && f.usage.is_none() && f.cost.is_none();
    let cost = if estimated {
        permit.reservation.as_ref().map(|r| r.amount_usd)
    } else {
        f.cost
    };
    journal.close(
        &gw.recorder,
        End {
            provider: Some(f.target.provider.name().to_owned()),
            model: Some(f.target.model.clone()),
            status: f.status,
            error_class: f.error_class,
            latency_ms: ms(latency),
            ttft_ms: f.ttft.map(ms),
            input_tokens: f.usage.map(|u| u.input_tokens),
            output_tokens: f.usage.map(|u| u.output_tokens),
            cached_tokens: f.usage.map(|u| u.cached_input_tokens),
            reasoning_tokens: f.usage.map(|u| u.reasoning_tokens),
            usage_source: if estimated && cost.is_some() {
                Some("estimated".to_owned())
            } else {
                f.usage.map(|_| "reported".to_owned())
            },
            cost_usd: cost,
            saved_usd: None,
            price_version: Some(gw.prices.version.clone()),
            cache: f.cache.into(),
            attempts: f.evidence.attempts,
            excluded: f.evidence.excluded,
            response_body: if full {
                f.body.map(|b| String::from_utf8_lossy(&b).into_owned())
            } else {
                None
            },
            ..End::default()
        },
    );
    policy::settle(gw, permit, f.usage.map(|u| u.total()), cost, generated);
}

/// What `usage` cost at `target`'s price; `None` when either is unknown.
pub fn cost(gw: &Gateway, target: &Target, usage: Option<&Usage>) -> Option<f64> {
    let p = gw.prices.for_provider(&target.provider, &target.model)?;
    usage.map(|u| p.cost(u))
}

/// One line per request at debug level: every request has its record in
/// the database already, and a line per request at `info` costs the hot
/// path a formatted write to stderr.
fn log_finished(ctx: &Ctx, target: &Target, status: u16, usage: Option<&Usage>) {
    tracing::debug!(
        request_id = %ctx.id, trace_id = %ctx.trace,
        provider = target.provider.name(),
        model = %target.model,
        status,
        input_tokens = usage.map(|u| u.input_tokens),
        output_tokens = usage.map(|u| u.output_tokens),
        latency_ms = ctx.started.elapsed().as_millis() as u64,
        "Request finished"
    );
}
