//! A successful attempt handed to the caller: a whole answer priced,
//! cached, resolved for idempotent retries and recorded; a stream
//! registered for resumes and handed to its pump, which records it when it
//! ends.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;

use super::ctx::{CACHE, COST, Ctx};
use super::finish::{Finished, cost, finish};
use super::pump::{Carried, pump};
use super::run::Held;
use crate::chat::Usage;
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::routing::Target;
use crate::stream::registry::{IdemClaim, Kept, Outcome, StoredAnswer};
use crate::stream::{Buffer, Live};

/// What a successful attempt produced.
pub(super) enum Served {
    /// A complete answer, already in the caller's dialect.
    Whole {
        response: Response,
        usage: Option<Usage>,
        body: Bytes,
    },
    /// A stream whose first bytes are in `buffer`; `live` reads the rest.
    Stream {
        response: Response,
        live: Box<Live>,
        buffer: Arc<Buffer>,
    },
}

impl Served {
    pub(super) fn response_mut(&mut self) -> &mut Response {
        match self {
            Served::Whole { response, .. } | Served::Stream { response, .. } => response,
        }
    }
}

/// Takes what the request held (permit, record, evidence, cache slot,
/// idempotency claim) and hands it to the answer's end.
pub(super) fn deliver(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    target: &Target,
    served: Served,
    held: &mut Held,
) -> Result<Response> {
    let permit = held
        .permit
        .take()
        .ok_or_else(|| GatewayError::Internal("permit used twice".into()))?;
    let carried = Carried {
        journal: std::mem::take(&mut held.journal),
        permit,
        evidence: std::mem::take(&mut held.evidence),
        slot: held.cache.take(),
        idem: None,
        turn: held.turn.take(),
    };
    let claim = held.claim.take();
    Ok(match served {
        Served::Whole {
            response,
            usage,
            body,
        } => whole(gw, ctx, target, response, usage, body, carried, claim),
        Served::Stream {
            response,
            live,
            buffer,
        } => stream(gw, ctx, target, response, live, buffer, carried, claim),
    })
}

#[allow(clippy::too_many_arguments)]
fn whole(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    target: &Target,
    mut response: Response,
    usage: Option<Usage>,
    body: Bytes,
    carried: Carried,
    claim: Option<IdemClaim>,
) -> Response {
    let cache_status = if carried.slot.is_some() {
        "MISS"
    } else {
        "BYPASS"
    };
    let cost = cost(gw, target, usage.as_ref());
    if let Some(c) = cost
        && let Ok(v) = HeaderValue::from_str(&format!("{c:.8}"))
    {
        response.headers_mut().insert(COST, v);
    }
    response
        .headers_mut()
        .insert(CACHE, HeaderValue::from_static(cache_status));
    if let Some(slot) = carried.slot {
        super::cached::store(gw, slot, target, body.clone(), usage, cost);
    }
    if let Some(t) = carried.turn {
        let requested = carried
            .journal
            .begin()
            .map_or("", |b| b.requested_model.as_str());
        t.finish(gw, ctx, requested, target, std::str::from_utf8(&body).ok());
    }
    if let Some(c) = claim {
        c.resolve(Outcome::Whole(Arc::new(StoredAnswer {
            body: body.clone(),
            content_type: "application/json",
            provider: target.provider.name().to_owned(),
            model: target.model.clone(),
            request_id: ctx.id.to_string(),
        })));
    }
    finish(
        gw,
        ctx,
        carried.journal,
        carried.permit,
        Finished {
            target,
            status: 200,
            error_class: None,
            usage,
            cost,
            ttft: None,
            evidence: carried.evidence,
            body: Some(body),
            cache: cache_status,
            streamed: false,
        },
    );
    response
}

#[allow(clippy::too_many_arguments)]
fn stream(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    target: &Target,
    mut response: Response,
    live: Box<Live>,
    buffer: Arc<Buffer>,
    mut carried: Carried,
    claim: Option<IdemClaim>,
) -> Response {
    let cache_status = if carried.slot.is_some() {
        "MISS"
    } else {
        "BYPASS"
    };
    response
        .headers_mut()
        .insert(CACHE, HeaderValue::from_static(cache_status));
    let ttft = ctx.started.elapsed();
    // Registered before the response goes out, so a retry or a resume
    // finds it at once.
    gw.streams.keep(
        &ctx.id.to_string(),
        Kept {
            buffer: buffer.clone(),
            owner: carried
                .permit
                .caller
                .key_id()
                .unwrap_or("anonymous")
                .to_owned(),
            dialect: ctx.dialect,
            provider: target.provider.name().to_owned(),
            model: target.model.clone(),
            ended: None,
            idempotent: claim.is_some(),
        },
    );
    if let Some(IdemClaim::Shared(c)) = &claim {
        carried.idem = Some(c.redis_key());
    }
    if let Some(c) = claim {
        c.resolve(Outcome::Stream(ctx.id.to_string()));
    }
    gw.spawn(pump(
        gw.clone(),
        ctx.clone(),
        target.clone(),
        live,
        buffer,
        Box::new(carried),
        ttft,
    ));
    response
}
