//! From the caller's bytes to a call the gateway may make: decode in the
//! caller's dialect, the idempotency claim, policy (log mode, tags,
//! caching, jurisdictions, model scope, rate limits, budget), the plan of
//! targets, and the record opened before anything goes upstream.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;

use super::cached::CacheSlot;
use super::ctx::{Ctx, caller, estimate_tokens, ms};
use super::options::{cache_ttl, metadata};
use super::run::Held;
use crate::auth::Caller;
use crate::chat;
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::log_store::{Begin, End};
use crate::policy;
use crate::providers::Inbound;
use crate::routing::{self, Evidence, Plan};
use crate::wire::Fields;

/// Decode, claim, admit and record; then a cached answer or the attempts.
pub(super) async fn prepare(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    parts: &Parts,
    body: &Bytes,
    held: &mut Held,
) -> Result<Response> {
    let caller = caller(parts)?;
    let mut turn = super::conversation::begin(gw, ctx, &caller, parts, body).await?;
    let expanded = turn.as_mut().and_then(|t| t.expanded.take());
    let body = expanded.as_ref().unwrap_or(body);
    let envelope = parts.extensions.get::<crate::dialect::Envelope>();
    let (request, fields) = ctx.dialect.decode_request(body, envelope)?;
    if let Some(resp) = super::idempotency::claim(gw, ctx, parts, &caller, body, held).await? {
        return Ok(resp);
    }
    let mut begin = Begin {
        id: ctx.id.to_string(),
        time_ms: crate::clock::unix_ms(),
        instance: gw.recorder.instance.clone(),
        key_id: caller.key_id().map(str::to_owned),
        route: None,
        requested_model: request.model.clone(),
        dialect: ctx.dialect.as_str().to_owned(),
        stream: request.stream,
        log_mode: gw.config.logs.mode,
        est_input_tokens: estimate_tokens(body),
        metadata: Default::default(),
        request_body: None,
        hold_usd: None,
        trace_id: Some(ctx.trace.trace_hex()),
    };
    let admitted = match admit(gw, ctx, parts, caller, &request, &fields, &mut begin, held).await {
        Ok(a) => a,
        Err(e) => return Err(refuse(gw, ctx, held, begin, e)),
    };
    if admitted.log_mode == crate::config::LogMode::Full {
        begin.request_body = Some(String::from_utf8_lossy(body).into_owned());
    }
    // Recorded before any upstream call: a call that cannot be recorded is
    // not made, and none is made faster than records are written.
    gw.recorder.keep_pace().await;
    held.journal
        .open(&gw.recorder, begin)
        .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
    let mut plan = admitted.plan;
    if let Some(t) = &turn {
        t.prefer_previous(&request.model, &mut plan);
    }
    held.evidence = Evidence {
        route: plan.route.clone(),
        attempts: Vec::with_capacity(plan.attempts.len()),
        excluded: plan.excluded.clone(),
    };
    if let Some(slot) = admitted.cache {
        if let Some(hit) = gw.cache.get(&slot.id, crate::clock::unix_ms()).await {
            return Ok(super::cached::serve_hit(gw, ctx, held, hit));
        }
        held.cache = Some(slot);
    }
    let echo = ctx.dialect.echo(
        &ctx.id,
        &fields,
        &request,
        turn.as_ref().is_some_and(|t| t.store),
    );
    held.turn = turn;
    let inbound = Inbound {
        dialect: ctx.dialect,
        request: &request,
        fields: &fields,
        anthropic_version: parts.headers.get("anthropic-version"),
        anthropic_beta: parts.headers.get("anthropic-beta"),
        echo: &echo,
        drop_tools: &gw.config.responses.drop_unsupported_tools,
    };
    super::attempts::attempts(gw, ctx, &inbound, &plan, held).await
}

/// What policy granted: the plan, the log mode, and where the answer may
/// be cached. The permit itself is in [`Held`].
struct Admitted {
    plan: Plan,
    log_mode: crate::config::LogMode,
    cache: Option<CacheSlot>,
}

/// Policy, in order: log mode, tags, caching, the plan (model scope and
/// jurisdictions), then rate limits and the budget hold. Fills in `begin`
/// with what it learns, so a refusal is recorded with it.
#[allow(clippy::too_many_arguments)]
async fn admit(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    parts: &Parts,
    caller: Caller,
    request: &chat::Request,
    fields: &Fields<'_>,
    begin: &mut Begin,
    held: &mut Held,
) -> Result<Admitted> {
    let log_mode = policy::log_mode(gw, &caller, &parts.headers)?;
    begin.log_mode = log_mode;
    begin.metadata = metadata(&parts.headers, &caller, log_mode)?;
    let ttl = cache_ttl(gw, &caller, &parts.headers)?;
    let custom_key = parts
        .headers
        .get("x-switchyard-cache-key")
        .and_then(|v| v.to_str().ok());
    let cache_id = (!ttl.is_zero()).then(|| {
        crate::cache::key(
            caller.namespace(),
            ctx.dialect,
            request.stream,
            fields,
            custom_key,
        )
    });
    let namespace = caller.namespace().to_owned();
    let plan = policy::constraints(&caller, &parts.headers, &request.model)
        .and_then(|c| routing::plan(gw, &request.model, &c))?;
    begin.route = plan.route.clone();
    let permit = match policy::admit(
        gw,
        caller,
        log_mode,
        &plan,
        begin.est_input_tokens,
        request.max_tokens,
        ctx.hold_ms(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            if let GatewayError::RateLimited { headers, .. } = &e {
                held.rate = Some(*headers);
            }
            return Err(e);
        }
    };
    held.rate = permit.rate_headers();
    begin.hold_usd = permit.reservation.as_ref().map(|r| r.amount_usd);
    held.permit = Some(permit);
    let cache = cache_id.map(|id| CacheSlot {
        id,
        namespace,
        ttl,
        primary: plan.primary.clone(),
        fallback_ok: plan.cache_fallback,
        requested_model: request.model.clone(),
        stream: request.stream,
        dialect: ctx.dialect,
    });
    Ok(Admitted {
        plan,
        log_mode,
        cache,
    })
}

/// Records a request policy refused, with what was known: one that failed
/// closed on jurisdiction keeps what was excluded and why.
fn refuse(gw: &Gateway, ctx: &Ctx, held: &mut Held, begin: Begin, e: GatewayError) -> GatewayError {
    let excluded = match &e {
        GatewayError::NoCompliantProvider { excluded, .. } => excluded.clone(),
        _ => Vec::new(),
    };
    held.journal.refused(
        &gw.recorder,
        begin,
        End {
            status: e.status().as_u16(),
            error_class: Some(e.class().to_owned()),
            latency_ms: ms(ctx.started.elapsed()),
            cache: "BYPASS".into(),
            excluded,
            ..End::default()
        },
    );
    e
}
