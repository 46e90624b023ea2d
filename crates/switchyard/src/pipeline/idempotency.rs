//! `Idempotency-Key`: the first request with a key and body claims it; a
//! retry with the same key and body attaches to the first one's answer or
//! live stream (on any replica, through Redis) instead of generating again;
//! the same key with another body is refused.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::HeaderValue;
use http::request::Parts;

use super::ctx::{Ctx, MODEL, PROVIDER, REQUEST_ID};
use super::run::Held;
use crate::auth::Caller;
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::policy;

/// Claims the request's `Idempotency-Key`, if it has one. `Ok(Some)`: the
/// answer of the request that holds it (this one attached to it);
/// `Ok(None)`: go ahead (claimed, or no key).
pub(super) async fn claim(
    gw: &Gateway,
    ctx: &Ctx,
    parts: &Parts,
    caller: &Caller,
    body: &[u8],
    held: &mut Held,
) -> Result<Option<Response>> {
    let Some(key) = parts.headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| GatewayError::BadHeader {
            header: "idempotency-key",
            message: "expected 1 to 255 visible ASCII characters".into(),
        })?;
    let owner = caller.key_id().unwrap_or("anonymous").to_owned();
    let hash = crate::stream::registry::body_hash(body);
    // Shared through Redis when there is one, unless the request keeps
    // nothing (log mode none): its stream never leaves this process.
    let shared = gw.redis.clone().filter(|_| {
        policy::log_mode(gw, caller, &parts.headers)
            .is_ok_and(|m| m != crate::config::LogMode::None)
    });
    if let Some(conn) = shared {
        return claim_shared(gw, ctx, &conn, &owner, key, &hash, held).await;
    }
    loop {
        use crate::stream::registry::Lookup;
        match gw
            .streams
            .idempotent(&owner, key, hash, &ctx.id.to_string())
        {
            Lookup::Claimed(c) => {
                held.claim = Some(crate::stream::registry::IdemClaim::Local(c));
                return Ok(None);
            }
            Lookup::Mismatch => {
                return Err(GatewayError::Conflict(
                    "this Idempotency-Key was already used with a different request body".into(),
                ));
            }
            Lookup::Attach(first, mut rx) => {
                // Wait for the first request's answer; if it failed, its
                // claim is gone and this request runs instead.
                let settled = rx
                    .wait_for(|o| !matches!(o, crate::stream::registry::Outcome::Running))
                    .await
                    .map(|o| o.clone());
                if let Ok(outcome) = settled {
                    return attach(gw, &owner, &first, outcome).map(Some);
                }
            }
        }
    }
}

/// Claims an idempotency key in Redis, or attaches to the request (on any
/// replica) that holds it. `Ok(None)`: claimed, go ahead.
async fn claim_shared(
    gw: &Gateway,
    ctx: &Ctx,
    conn: &crate::kv::Kv,
    owner: &str,
    key: &str,
    hash: &[u8; 32],
    held: &mut Held,
) -> Result<Option<Response>> {
    use crate::stream::shared::{self, Claimed};
    let hash = crate::keys::hex(hash);
    let id = ctx.id.to_string();
    let ttl = ctx.timeout + gw.config.streams.retain;
    let unavailable = |e: redis::RedisError| {
        GatewayError::Unavailable(format!("the idempotency store is unavailable: {e}"))
    };
    loop {
        match shared::claim(conn, owner, key, &hash, &id, ttl)
            .await
            .map_err(unavailable)?
        {
            Claimed::Mine => {
                held.claim = Some(crate::stream::registry::IdemClaim::Shared(
                    shared::SharedClaim::new(
                        conn.clone(),
                        gw.tasks.clone(),
                        owner,
                        key,
                        &id,
                        gw.config.streams.retain,
                    ),
                ));
                return Ok(None);
            }
            Claimed::Mismatch => {
                return Err(GatewayError::Conflict(
                    "this Idempotency-Key was already used with a different request body".into(),
                ));
            }
            Claimed::Theirs(first) => {
                // The first request is running somewhere: wait for its
                // stream's mirror or its answer.
                if let Some(meta) = shared::meta(conn, &first).await
                    && meta.owner == owner
                {
                    if meta.overflowed {
                        return Err(GatewayError::Gone(crate::stream::buffer::OUTGROWN.into()));
                    }
                    let mut r = Response::new(Body::from_stream(shared::follow(
                        conn.clone(),
                        first.clone(),
                        0,
                    )));
                    let h = r.headers_mut();
                    h.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("text/event-stream"),
                    );
                    for (name, value) in [
                        (REQUEST_ID, &first),
                        (PROVIDER, &meta.provider),
                        (MODEL, &meta.model),
                    ] {
                        if let Ok(v) = HeaderValue::from_str(value) {
                            h.insert(name, v);
                        }
                    }
                    h.insert(
                        "x-switchyard-idempotent-replay",
                        HeaderValue::from_static("true"),
                    );
                    return Ok(Some(r));
                }
                if let Some((body, provider, model)) = shared::answer(conn, &first).await {
                    let answer = crate::stream::registry::StoredAnswer {
                        body,
                        content_type: "application/json",
                        provider,
                        model,
                        request_id: first.clone(),
                    };
                    return attach(
                        gw,
                        owner,
                        &first,
                        crate::stream::registry::Outcome::Whole(Arc::new(answer)),
                    )
                    .map(Some);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Hands a retry the first request's answer: its stream, replayed from the
/// start and followed live, or its complete answer again. Nothing is sent
/// upstream and nothing is billed.
fn attach(
    gw: &Gateway,
    owner: &str,
    first: &str,
    outcome: crate::stream::registry::Outcome,
) -> Result<Response> {
    use crate::stream::registry::Outcome;
    let mut resp = match outcome {
        Outcome::Stream(id) => {
            let kept = gw.streams.get(&id, owner).ok_or_else(|| {
                GatewayError::NotFound("the first request's stream has expired".into())
            })?;
            if let crate::stream::buffer::Read::Gone = kept.buffer.read_from(0) {
                return Err(GatewayError::Gone(crate::stream::buffer::OUTGROWN.into()));
            }
            let mut r = super::pump::sse_response(kept.buffer, 0);
            if let Ok(v) = HeaderValue::from_str(&kept.provider) {
                r.headers_mut().insert(PROVIDER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&kept.model) {
                r.headers_mut().insert(MODEL, v);
            }
            r
        }
        Outcome::Whole(a) => {
            let mut r = Response::new(Body::from(a.body.clone()));
            let h = r.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            );
            if let Ok(v) = HeaderValue::from_str(&a.provider) {
                h.insert(PROVIDER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&a.model) {
                h.insert(MODEL, v);
            }
            r
        }
        Outcome::Running => {
            return Err(GatewayError::Internal(
                "an idempotent request never settled".into(),
            ));
        }
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(first) {
        h.insert(REQUEST_ID, v);
    }
    h.insert(
        "x-switchyard-idempotent-replay",
        HeaderValue::from_static("true"),
    );
    Ok(resp)
}
