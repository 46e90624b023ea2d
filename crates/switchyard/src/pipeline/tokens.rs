//! Token counts without a model call: Gemini's `:countTokens` and the
//! Responses API's `/v1/responses/input_tokens`. The provider counts where
//! it can in the caller's own dialect (a Gemini provider for the one, a
//! native Responses provider for the other); any other target's count is
//! estimated here, and the answer says which
//! (`x-switchyard-token-count: provider | estimated`). Not a model call: no
//! record, no budget; the key's model scope and jurisdictions apply, and a
//! stored conversation (`previous_response_id`) is counted whole.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderValue;
use http::request::Parts;

use super::answer::read_body;
use super::attempts::send;
use super::ctx::{Ctx, caller};
use crate::chat::{self, Part, ToolResultPart};
use crate::config::ProviderKind;
use crate::dialect::Dialect;
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::policy;
use crate::providers::{self, encode_path_segment};
use crate::routing::{self, Target};
use crate::wire::{self, Fields};

const HOW: http::HeaderName = http::HeaderName::from_static("x-switchyard-token-count");

/// What an image counts as (Gemini's own figure for one image).
const IMAGE_TOKENS: u64 = 258;

/// `:countTokens` for `model` (a Gemini caller).
pub async fn count_tokens(gw: &Arc<Gateway>, model: &str, parts: &Parts, body: Bytes) -> Response {
    let mut ctx = Ctx::new(gw, Dialect::Gemini);
    match gemini(gw, &mut ctx, model, parts, body).await {
        Ok(resp) => resp,
        Err(e) => ctx.error(e),
    }
}

/// `POST /v1/responses/input_tokens`.
pub async fn input_tokens(gw: &Arc<Gateway>, parts: &Parts, body: Bytes) -> Response {
    let mut ctx = Ctx::new(gw, Dialect::Responses);
    match responses(gw, &mut ctx, parts, body).await {
        Ok(resp) => resp,
        Err(e) => ctx.error(e),
    }
}

/// The target that would serve `model` for this caller first.
fn first_target(gw: &Gateway, parts: &Parts, model: &str) -> Result<Target> {
    let caller = caller(parts)?;
    let constraints = policy::constraints(&caller, &parts.headers, model)?;
    let plan = routing::plan(gw, model, &constraints)?;
    plan.attempts
        .into_iter()
        .next()
        .ok_or_else(|| GatewayError::Internal("a plan without targets".into()))
}

/// Sends a count to the provider and hands its answer back.
async fn ask(
    gw: &Gateway,
    ctx: &Ctx,
    target: &Target,
    url: String,
    body: Bytes,
    dialect: Dialect,
) -> Result<Response> {
    let call = providers::Call {
        url,
        body,
        stream: false,
        dialect,
        headers: Vec::new(),
        passthrough: true,
        dropped_tools: Vec::new(),
    };
    let answer = read_body(
        &target.provider,
        send(gw, ctx, &target.provider, &call).await?,
    )
    .await?;
    Ok(finish(ctx, answer.into_response(), "provider"))
}

fn finish(ctx: &Ctx, mut resp: Response, how: &'static str) -> Response {
    let h = resp.headers_mut();
    h.insert(HOW, HeaderValue::from_static(how));
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    ctx.stamp(h);
    resp
}

async fn gemini(
    gw: &Arc<Gateway>,
    ctx: &mut Ctx,
    model: &str,
    parts: &Parts,
    body: Bytes,
) -> Result<Response> {
    ctx.apply_headers(&parts.headers)?;
    let fields = Fields::parse(&body)?;
    // `{contents}`, or `{generateContentRequest: {model, contents, ...}}`.
    let inner = fields
        .get("generateContentRequest")
        .map(|g| g.get().as_bytes())
        .unwrap_or(&body);
    let (request, _) = wire::gemini::decode_request(inner, model, false)?;
    let target = first_target(gw, parts, model)?;
    if target.provider.kind() != ProviderKind::Gemini {
        let total = estimate(&request);
        let r = axum::Json(serde_json::json!({ "totalTokens": total })).into_response();
        return Ok(finish(ctx, r, "estimated"));
    }
    let upstream_body = match fields.get("generateContentRequest") {
        None => body.clone(),
        Some(_) => {
            let mut v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| GatewayError::Internal(e.to_string()))?;
            v["generateContentRequest"]["model"] = format!("models/{}", target.model).into();
            Bytes::from(wire::to_vec(&v))
        }
    };
    let url = format!(
        "{}/models/{}:countTokens",
        target.provider.config.base_url,
        encode_path_segment(&target.model)
    );
    ask(gw, ctx, &target, url, upstream_body, Dialect::Gemini).await
}

async fn responses(
    gw: &Arc<Gateway>,
    ctx: &mut Ctx,
    parts: &Parts,
    body: Bytes,
) -> Result<Response> {
    ctx.apply_headers(&parts.headers)?;
    let caller = caller(parts)?;
    // The stored conversation it continues, counted whole.
    let turn = super::conversation::begin(gw, ctx, &caller, parts, &body).await?;
    let body = turn.and_then(|t| t.expanded).unwrap_or(body);
    let (request, fields) = wire::responses::decode_request(&body)?;
    let target = first_target(gw, parts, &request.model)?;
    if target.provider.config.responses {
        let url = format!("{}/responses/input_tokens", target.provider.config.base_url);
        let upstream = Bytes::from(wire::responses::rewrite_request(&fields, &target.model));
        return ask(gw, ctx, &target, url, upstream, Dialect::Responses).await;
    }
    let n = estimate(&request);
    let r = axum::Json(serde_json::json!({"object": "response.input_tokens", "input_tokens": n}))
        .into_response();
    Ok(finish(ctx, r, "estimated"))
}

/// About four bytes of text (or of a document) a token, an image at
/// Gemini's figure: an estimate for providers that cannot count for us.
fn estimate(req: &chat::Request) -> u64 {
    let mut bytes = 0usize;
    let mut images = 0u64;
    for s in &req.system {
        bytes += s.text.len();
    }
    for t in &req.tools {
        bytes += t.name.len()
            + t.description.as_ref().map_or(0, String::len)
            + t.parameters.as_ref().map_or(0, |p| p.get().len());
    }
    for m in &req.messages {
        for p in &m.parts {
            match p {
                Part::Text { text, .. } | Part::Thinking { text, .. } => bytes += text.len(),
                Part::Image(_) => images += 1,
                Part::Document(doc) => bytes += document_bytes(doc),
                Part::ToolCall {
                    name, arguments, ..
                } => bytes += name.len() + arguments.len(),
                Part::ToolResult { content, .. } => {
                    for c in content {
                        match c {
                            ToolResultPart::Text(t) => bytes += t.len(),
                            ToolResultPart::Image(_) => images += 1,
                            ToolResultPart::Document(doc) => bytes += document_bytes(doc),
                        }
                    }
                }
                Part::RedactedThinking { .. } | Part::WebSearch(_) => {}
            }
        }
    }
    (bytes as u64).div_ceil(4) + images * IMAGE_TOKENS
}

/// A document counts as its bytes (and its name's), like text: rough for
/// a PDF, whose pages the provider reads as text and images, but of the
/// right size. A URL's file is not fetched to be counted: it counts as
/// its address.
fn document_bytes(doc: &chat::Document) -> usize {
    let source = match &doc.source {
        chat::DocSource::Url(url) => url.len(),
        _ => doc.size(),
    };
    source + doc.filename.as_ref().map_or(0, String::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_count_text_and_images() {
        let body = br#"{"contents":[{"role":"user","parts":[{"text":"12345678"},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}}]}]}"#;
        let (req, _) = wire::gemini::decode_request(body, "m", false).unwrap();
        assert_eq!(estimate(&req), 2 + IMAGE_TOKENS);
    }

    /// A document counts as its bytes, not as its base64.
    #[test]
    fn estimates_count_a_documents_bytes() {
        // 16 characters of base64 are 12 bytes; with "a.pdf" 17, 5 tokens.
        let body = br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,AAAAAAAAAAAAAAAA"}]}]}"#;
        let (req, _) = wire::responses::decode_request(body).unwrap();
        assert_eq!(estimate(&req), 5);
    }
}
