//! `GET /v1/streams/{request_id}`: re-attach to a stream. Replays from
//! after `Last-Event-ID` (or from the start) and follows live to the end,
//! in the stream's own dialect, with the same terminal event. Only the
//! caller that made the stream may read it; for anyone else, and for an
//! unknown or expired id, the answer is the same 404.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderMap, HeaderValue};

use crate::auth::Caller;
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::{self, Ctx};

pub(super) async fn resume(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let owner = caller.key_id().unwrap_or("anonymous");
    let Some(kept) = gw.streams.get(&id, owner) else {
        return resume_shared(&gw, &id, owner, &headers).await;
    };
    let ctx = Ctx::new(&gw, kept.dialect);
    let from = match first_event(&headers) {
        Ok(n) => n,
        Err(e) => return ctx.error(e),
    };
    if let crate::stream::buffer::Read::Gone = kept.buffer.read_from(from) {
        return ctx.error(GatewayError::Gone(crate::stream::buffer::OUTGROWN.into()));
    }
    let mut resp = pipeline::sse_response(kept.buffer, from);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(pipeline::REQUEST_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&kept.provider) {
        h.insert(pipeline::PROVIDER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&kept.model) {
        h.insert(pipeline::MODEL, v);
    }
    resp
}

/// The sequence number to replay from: the one after `Last-Event-ID`, or
/// the start.
fn first_event(headers: &HeaderMap) -> Result<u64, GatewayError> {
    match headers.get("last-event-id") {
        None => Ok(0),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|n| n.saturating_add(1))
            .ok_or(GatewayError::BadHeader {
                header: "last-event-id",
                message: "expected the id of an event of this stream".into(),
            }),
    }
}

/// No stream to name a dialect: the caller's headers say it.
fn not_found(gw: &Gateway, headers: &HeaderMap) -> Response {
    Ctx::new(gw, super::caller_dialect(headers)).error(GatewayError::NotFound(
        "no stream with that id (unknown, expired, or not yours)".into(),
    ))
}

/// A stream another replica generated, read from its Redis mirror.
async fn resume_shared(gw: &Gateway, id: &str, owner: &str, headers: &HeaderMap) -> Response {
    let Some(conn) = &gw.redis else {
        return not_found(gw, headers);
    };
    let Some(meta) = crate::stream::shared::meta(conn, id)
        .await
        .filter(|m| m.owner == owner)
    else {
        return not_found(gw, headers);
    };
    let dialect = Dialect::parse(&meta.dialect);
    let ctx = Ctx::new(gw, dialect);
    if meta.overflowed {
        return ctx.error(GatewayError::Gone(crate::stream::buffer::OUTGROWN.into()));
    }
    let from = match first_event(headers) {
        Ok(n) => n,
        Err(e) => return ctx.error(e),
    };
    let body = axum::body::Body::from_stream(crate::stream::shared::follow(
        conn.clone(),
        id.to_owned(),
        from,
    ));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    for (name, value) in [
        (pipeline::REQUEST_ID, id),
        (pipeline::PROVIDER, &meta.provider),
        (pipeline::MODEL, &meta.model),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    resp
}
