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
use crate::chat::Dialect;
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
        let ctx = Ctx::new(&gw, Dialect::OpenAi);
        return ctx.error(GatewayError::NotFound(
            "no stream with that id (unknown, expired, or not yours)".into(),
        ));
    };
    let ctx = Ctx::new(&gw, kept.dialect);
    let from = match headers.get("last-event-id") {
        None => 0,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) => n + 1,
            None => {
                return ctx.error(GatewayError::BadHeader {
                    header: "last-event-id",
                    message: "expected the id of an event of this stream".into(),
                });
            }
        },
    };
    if let crate::stream::buffer::Read::Gone = kept.buffer.read_from(from) {
        return ctx.error(GatewayError::Gone(
            "this stream outgrew its resume buffer (streams.max_buffer_bytes); the events asked for are gone".into(),
        ));
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
