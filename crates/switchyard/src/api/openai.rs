//! OpenAI-dialect surface: `/v1/chat/completions`, `/v1/embeddings`,
//! `/v1/models`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Request};
use serde::Serialize;

use super::read_request;
use crate::dialect::Dialect;
use crate::gateway::Gateway;
use crate::pipeline::{self, Ctx};

pub(super) async fn chat_completions(
    State(gw): State<Arc<Gateway>>,
    req: Request<Body>,
) -> Response {
    match read_request(&gw, req, Dialect::OpenAi).await {
        Ok((parts, body)) => pipeline::chat(gw, Dialect::OpenAi, parts, body).await,
        Err(resp) => resp,
    }
}

pub(super) async fn embeddings(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response {
    match read_request(&gw, req, Dialect::OpenAi).await {
        Ok((parts, body)) => pipeline::embeddings(gw, Dialect::OpenAi, parts, body).await,
        Err(resp) => resp,
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelEntry<'a>>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: String,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

#[derive(Serialize)]
struct AnthropicModelList {
    data: Vec<AnthropicModel>,
    has_more: bool,
    first_id: Option<String>,
    last_id: Option<String>,
}

#[derive(Serialize)]
struct AnthropicModel {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    display_name: String,
    created_at: &'static str,
}

/// Every `provider/model` a provider lists in `models`, and every route
/// name, with who serves it.
pub(super) fn model_ids(gw: &Gateway) -> Vec<(String, &str)> {
    let mut ids: Vec<(String, &str)> = Vec::new();
    for p in &gw.providers.list {
        for m in &p.config.models {
            ids.push((format!("{}/{m}", p.name()), p.name()));
        }
    }
    for r in &gw.config.routes {
        ids.push((r.name.clone(), "switchyard"));
    }
    ids
}

/// Every routable `provider/model` a provider lists in `models`, and every
/// route name. An Anthropic SDK (it sends `anthropic-version`) gets
/// Anthropic's list shape; a Gemini SDK (a Gemini key header or `key=`)
/// Gemini's.
pub(super) async fn models(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    uri: http::Uri,
) -> Response {
    if super::gemini::has_gemini_key(&headers, uri.query()) {
        return super::gemini::list(State(gw)).await;
    }
    let ctx = Ctx::new(&gw, super::caller_dialect(&headers));
    let anthropic = ctx.dialect == Dialect::Anthropic;
    if let Err(e) = crate::auth::authenticate(&gw, &headers).await {
        return ctx.error(e);
    }
    let ids = model_ids(&gw);
    let mut resp = if anthropic {
        let data: Vec<AnthropicModel> = ids
            .iter()
            .map(|(id, _)| AnthropicModel {
                kind: "model",
                id: id.clone(),
                display_name: id.clone(),
                created_at: "1970-01-01T00:00:00Z",
            })
            .collect();
        axum::Json(AnthropicModelList {
            first_id: data.first().map(|m| m.id.clone()),
            last_id: data.last().map(|m| m.id.clone()),
            data,
            has_more: false,
        })
        .into_response()
    } else {
        axum::Json(ModelList {
            object: "list",
            data: ids
                .into_iter()
                .map(|(id, owner)| ModelEntry {
                    id,
                    object: "model",
                    created: 0,
                    owned_by: owner,
                })
                .collect(),
        })
        .into_response()
    };
    ctx.stamp(resp.headers_mut());
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}
