//! The answer cache at both ends of a call: a hit answered without going
//! upstream, and a fresh answer stored for the next caller.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;

use super::ctx::{ATTEMPTS, CACHE, COST, Ctx, MODEL, PROVIDER, ms};
use super::run::Held;
use crate::chat::Usage;
use crate::dialect::Dialect;
use crate::gateway::Gateway;
use crate::log_store::End;
use crate::policy;
use crate::routing::Target;

/// A cache entry to fill with this request's answer.
#[derive(Debug, Clone)]
pub(super) struct CacheSlot {
    pub id: String,
    pub namespace: String,
    pub ttl: Duration,
    /// Only the route's first target's answers are stored, unless the route
    /// allows fallback answers too.
    pub primary: Arc<str>,
    pub fallback_ok: bool,
    pub requested_model: String,
    pub stream: bool,
    pub dialect: Dialect,
}

/// Answers from the cache: no upstream call, no cost; the record says what
/// the original call cost (saved).
pub(super) fn serve_hit(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    held: &mut Held,
    hit: crate::cache::Entry,
) -> Response {
    let meta = hit.meta;
    let hit_body = hit.body;
    let mut resp = Response::new(Body::from(hit_body.clone()));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(if meta.stream {
            "text/event-stream"
        } else {
            "application/json"
        }),
    );
    ctx.stamp(h);
    if let Ok(v) = HeaderValue::from_str(&meta.provider) {
        h.insert(PROVIDER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&meta.model) {
        h.insert(MODEL, v);
    }
    h.insert(ATTEMPTS, HeaderValue::from(0));
    h.insert(CACHE, HeaderValue::from_static("HIT"));
    if !meta.stream {
        h.insert(COST, HeaderValue::from_static("0"));
    }
    let latency = ctx.started.elapsed();
    gw.metrics.request(
        Some(&meta.provider),
        Some(&meta.model),
        200,
        "HIT",
        latency,
        None,
    );
    held.journal.close(
        &gw.recorder,
        End {
            provider: Some(meta.provider.clone()),
            model: Some(meta.model.clone()),
            status: 200,
            latency_ms: ms(latency),
            cost_usd: Some(0.0),
            saved_usd: meta.cost_usd,
            price_version: Some(gw.prices.version.clone()),
            cache: "HIT".into(),
            ..End::default()
        },
    );
    if let Some(p) = held.permit.take() {
        policy::settle(gw, p, Some(0), Some(0.0), true);
    }
    if let Some(c) = held.claim.take() {
        c.resolve(crate::stream::registry::Outcome::Whole(Arc::new(
            crate::stream::registry::StoredAnswer {
                body: hit_body.clone(),
                content_type: if meta.stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
                provider: meta.provider.clone(),
                model: meta.model.clone(),
                request_id: ctx.id.to_string(),
            },
        )));
    }
    resp
}

/// Stores an answer in the cache, in a tracked task (the response never
/// waits for it). Fallback answers are stored only where the route allows.
pub(super) fn store(
    gw: &Arc<Gateway>,
    slot: CacheSlot,
    target: &Target,
    body: Bytes,
    usage: Option<Usage>,
    cost: Option<f64>,
) {
    if *target.key != *slot.primary && !slot.fallback_ok {
        return;
    }
    let now = crate::clock::unix_ms();
    let entry = crate::cache::Entry {
        meta: crate::cache::EntryMeta {
            id: slot.id.clone(),
            namespace: slot.namespace,
            key_hash: slot.id,
            requested_model: slot.requested_model,
            provider: target.provider.name().to_owned(),
            model: target.model.clone(),
            dialect: slot.dialect.as_str().to_owned(),
            stream: slot.stream,
            size_bytes: body.len() as u64,
            created_at: now,
            expires_at: now + slot.ttl.as_millis() as i64,
            cost_usd: cost,
            input_tokens: usage.map(|u| u.input_tokens),
            output_tokens: usage.map(|u| u.output_tokens),
        },
        body,
    };
    let g = gw.clone();
    gw.spawn(async move { g.cache.put(entry).await });
}
