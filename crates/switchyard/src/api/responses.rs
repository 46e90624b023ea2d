//! The Responses API surface: `POST /v1/responses` (served by any
//! provider), and the stored responses of the caller's own key:
//! `GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`,
//! and `GET /v1/responses/{id}?stream=true&starting_after=N`, which
//! replays a response's stream while the gateway still buffers it.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request};
use serde::Deserialize;

use super::read_request;
use crate::auth::Caller;
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::{self, Ctx};

pub(super) async fn create(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response {
    match read_request(&gw, req, Dialect::Responses).await {
        Ok((parts, body)) => pipeline::chat(gw, Dialect::Responses, parts, body).await,
        Err(resp) => resp,
    }
}

/// `POST /v1/responses/compact`.
pub(super) async fn compact(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response {
    match read_request(&gw, req, Dialect::Responses).await {
        Ok((parts, body)) => pipeline::compact(gw, parts, body).await,
        Err(resp) => resp,
    }
}

/// `POST /v1/responses/input_tokens`.
pub(super) async fn input_tokens(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response {
    match read_request(&gw, req, Dialect::Responses).await {
        Ok((parts, body)) => pipeline::input_tokens(&gw, &parts, body).await,
        Err(resp) => resp,
    }
}

fn owner(caller: &Caller) -> &str {
    caller.key_id().unwrap_or("anonymous")
}

fn not_found(ctx: &Ctx, id: &str) -> Response {
    ctx.error(GatewayError::NotFound(format!(
        "Response with id '{id}' not found (never stored, deleted, expired, or not this key's)"
    )))
}

fn unavailable(ctx: &Ctx, e: anyhow::Error) -> Response {
    ctx.error(GatewayError::Unavailable(format!(
        "the response store is unavailable: {e}"
    )))
}

fn json(ctx: &Ctx, body: String) -> Response {
    let mut resp = (
        [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    ctx.stamp(resp.headers_mut());
    resp
}

#[derive(Deserialize)]
pub(super) struct RetrieveQuery {
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    starting_after: Option<u64>,
}

/// `GET /v1/responses/{id}`: the stored Response; with `stream=true`, its
/// events after `starting_after` (all of them without it), while the
/// gateway buffers the stream.
pub(super) async fn retrieve(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<RetrieveQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let ctx = Ctx::new(&gw, Dialect::Responses);
    let Ok(Query(q)) = query else {
        return ctx.error(GatewayError::BadRequest(crate::wire::DecodeError::new(
            "stream",
            "expected stream=true|false and starting_after=<sequence number>",
        )));
    };
    let owner = owner(&caller);
    if q.stream == Some(true) {
        return replay(&gw, &ctx, owner, &id, q.starting_after).await;
    }
    match crate::conversations::find(&gw, owner, &id).await {
        Ok(Some(r)) => json(&ctx, r.response.clone()),
        Ok(None) => not_found(&ctx, &id),
        Err(e) => unavailable(&ctx, e),
    }
}

/// The request a response's stream was buffered under: every response id
/// the gateway hands out is its request's (`resp_` + the request id), a
/// native upstream's included.
fn request_of(id: &str) -> Option<String> {
    let simple = id.strip_prefix("resp_")?;
    uuid::Uuid::parse_str(simple).ok().map(|u| u.to_string())
}

async fn replay(
    gw: &Gateway,
    ctx: &Ctx,
    owner: &str,
    id: &str,
    starting_after: Option<u64>,
) -> Response {
    let kept = match request_of(id) {
        Some(request_id) => gw.streams.get(&request_id, owner),
        None => None,
    };
    let Some(kept) = kept.filter(|k| k.dialect == Dialect::Responses) else {
        return ctx.error(GatewayError::NotFound(format!(
            "no buffered stream for response '{id}' (not a streamed response of this key, or its buffer has expired)"
        )));
    };
    // SSE ids are sequence numbers: the next event is the one after.
    let from = starting_after.map_or(0, |n| n.saturating_add(1));
    if let crate::stream::buffer::Read::Gone = kept.buffer.read_from(from) {
        return ctx.error(GatewayError::Gone(crate::stream::buffer::OUTGROWN.into()));
    }
    let mut resp = pipeline::sse_response(kept.buffer, from);
    ctx.stamp(resp.headers_mut());
    resp
}

/// `DELETE /v1/responses/{id}`.
pub(super) async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let ctx = Ctx::new(&gw, Dialect::Responses);
    match crate::conversations::delete(&gw, owner(&caller), &id).await {
        Ok(true) => json(
            &ctx,
            serde_json::json!({"id": id, "object": "response", "deleted": true}).to_string(),
        ),
        Ok(false) => not_found(&ctx, &id),
        Err(e) => unavailable(&ctx, e),
    }
}

#[derive(Deserialize)]
pub(super) struct ItemsQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    order: Option<String>,
}

/// `GET /v1/responses/{id}/input_items`: the response's own input items,
/// newest first unless `order=asc`, `limit` (1 to 100, 20 by default) at a
/// time after the item `after`.
pub(super) async fn input_items(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ItemsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let ctx = Ctx::new(&gw, Dialect::Responses);
    let Ok(Query(q)) = query else {
        return ctx.error(GatewayError::BadRequest(crate::wire::DecodeError::new(
            "limit",
            "expected after=<item id>, limit=1..100 and order=asc|desc",
        )));
    };
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return ctx.error(GatewayError::BadRequest(crate::wire::DecodeError::new(
            "limit",
            "`limit` must be from 1 to 100",
        )));
    }
    let asc = match q.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => {
            return ctx.error(GatewayError::BadRequest(crate::wire::DecodeError::new(
                "order",
                "`order` must be asc or desc",
            )));
        }
    };
    let r = match crate::conversations::find(&gw, owner(&caller), &id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(&ctx, &id),
        Err(e) => return unavailable(&ctx, e),
    };
    let mut items: Vec<&serde_json::value::RawValue> = r.input.iter().map(|b| &**b).collect();
    if !asc {
        items.reverse();
    }
    let start = match &q.after {
        None => 0,
        Some(after) => match items
            .iter()
            .position(|i| crate::conversations::item_id(i).as_deref() == Some(after))
        {
            Some(p) => p + 1,
            None => {
                return ctx.error(GatewayError::BadRequest(crate::wire::DecodeError::new(
                    "after",
                    format!("no input item '{after}' in this response"),
                )));
            }
        },
    };
    let page: Vec<&serde_json::value::RawValue> =
        items.iter().skip(start).take(limit).copied().collect();
    let has_more = start + page.len() < items.len();
    let first = page.first().and_then(|i| crate::conversations::item_id(i));
    let last = page.last().and_then(|i| crate::conversations::item_id(i));
    json(
        &ctx,
        serde_json::json!({
            "object": "list",
            "data": page,
            "first_id": first,
            "last_id": last,
            "has_more": has_more,
        })
        .to_string(),
    )
}
