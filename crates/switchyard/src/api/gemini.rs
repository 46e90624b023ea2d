//! The Gemini API surface, as the google-genai SDKs call it (under
//! `/v1beta` and `/v1`): `models/{model}:generateContent`,
//! `:streamGenerateContent` (SSE with `alt=sse`, else one streamed JSON
//! array), `:countTokens`, `:embedContent`, `:batchEmbedContents`, and the
//! model list. `{model}` may hold `/` (`openai/gpt-5`): the method is what
//! follows the last `:`. Served by any provider.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Request};

use super::read_request;
use crate::dialect::{Dialect, Envelope};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::{self, Ctx};

/// `POST .../models/{model}:{method}`.
pub(super) async fn call(
    State(gw): State<Arc<Gateway>>,
    Path(rest): Path<String>,
    req: Request<Body>,
) -> Response {
    let ctx = Ctx::new(&gw, Dialect::Gemini);
    let Some((model, method)) = rest.rsplit_once(':') else {
        return ctx.error(GatewayError::NotFound(format!(
            "no method in `models/{rest}`: expected models/{{model}}:generateContent (or another method)"
        )));
    };
    let model = model.strip_prefix("models/").unwrap_or(model).to_owned();
    let method = method.to_owned();
    let sse = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
    let (mut parts, body) = match read_request(&gw, req, Dialect::Gemini).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let envelope = Envelope {
        model,
        stream: method == "streamGenerateContent",
        method: method.clone(),
    };
    match method.as_str() {
        "generateContent" | "streamGenerateContent" => {
            parts.extensions.insert(envelope);
            let resp = pipeline::chat(gw, Dialect::Gemini, parts, body).await;
            if method == "streamGenerateContent" && !sse {
                as_json_array(resp)
            } else {
                resp
            }
        }
        "embedContent" | "batchEmbedContents" => {
            parts.extensions.insert(envelope);
            pipeline::embeddings(gw, Dialect::Gemini, parts, body).await
        }
        "countTokens" => pipeline::count_tokens(&gw, &envelope.model, &parts, body).await,
        other => ctx.error(GatewayError::NotFound(format!(
            "unknown method `{other}`: expected generateContent, streamGenerateContent, countTokens, embedContent or batchEmbedContents"
        ))),
    }
}

/// A stream without `alt=sse`: the same chunks as one JSON array, written
/// as they come (`[`, the chunks with commas between them, `]`).
fn as_json_array(resp: Response) -> Response {
    let is_sse = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !resp.status().is_success() || !is_sse {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let mut parser = crate::wire::sse::Parser::new(64 * 1024 * 1024);
    let opened = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = opened.clone();
    let chunks = body.into_data_stream().map(move |chunk| {
        let bytes = chunk.map_err(std::io::Error::other)?;
        let mut events = Vec::new();
        parser
            .feed_bytes(&bytes, &mut events)
            .map_err(|_| std::io::Error::other("an event too large"))?;
        let mut out = Vec::new();
        for ev in events {
            let first = !seen.swap(true, std::sync::atomic::Ordering::Relaxed);
            out.push(if first { b'[' } else { b',' });
            out.extend_from_slice(&ev.data);
            out.extend_from_slice(b"\r\n");
        }
        Ok::<_, std::io::Error>(Bytes::from(out))
    });
    // An empty stream still reads as an array.
    let closing = futures_util::stream::once(async move {
        Ok(Bytes::from_static(
            if opened.load(std::sync::atomic::Ordering::Relaxed) {
                b"]"
            } else {
                b"[]"
            },
        ))
    });
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from_stream(chunks.chain(closing)))
}

/// A model as Gemini lists it.
fn model_entry(name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": format!("models/{name}"),
        "displayName": name,
        "description": format!("{name}, through Switchyard"),
        "supportedGenerationMethods": [
            "generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"
        ],
    })
}

/// `GET /v1beta/models` (and `GET /v1/models` with a Gemini key): every
/// routable `provider/model` listed in configuration and every route.
pub(super) async fn list(State(gw): State<Arc<Gateway>>) -> Response {
    let ctx = Ctx::new(&gw, Dialect::Gemini);
    let models: Vec<serde_json::Value> = super::openai::model_ids(&gw)
        .iter()
        .map(|(id, _)| model_entry(id))
        .collect();
    let mut resp = axum::Json(serde_json::json!({ "models": models })).into_response();
    ctx.stamp(resp.headers_mut());
    resp
}

/// `GET /v1beta/models/{model}`: one model, by the name it is routed by.
pub(super) async fn get_model(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
) -> Response {
    let ctx = Ctx::new(&gw, Dialect::Gemini);
    let name = name.strip_prefix("models/").unwrap_or(&name);
    if crate::routing::plan(&gw, name, &Default::default()).is_err() {
        return ctx.error(GatewayError::NotFound(format!(
            "model `{name}` is neither a configured route nor a provider/model"
        )));
    }
    let mut resp = axum::Json(model_entry(name)).into_response();
    ctx.stamp(resp.headers_mut());
    resp
}

/// Whether a request that could be either dialect's carries a Gemini key
/// (`x-goog-api-key`, or `key=` in the query).
pub(super) fn has_gemini_key(headers: &HeaderMap, query: Option<&str>) -> bool {
    headers.contains_key("x-goog-api-key")
        || query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("key=")))
}
