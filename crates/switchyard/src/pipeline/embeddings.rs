//! `POST /v1/embeddings`: policy and failover as for chat; no streams.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;
use http::request::Parts;

use super::answer::read_body;
use super::attempts::send;
use super::ctx::{COST, Ctx, caller, estimate_tokens, ms, served_headers};
use super::finish::cost;
use super::options::metadata;
use super::run::in_own_task;
use crate::chat::Usage;
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::log_store::{Begin, End, Journal};
use crate::policy;
use crate::providers::{self, EmbedAnswer, UpstreamError};
use crate::routing;
use crate::wire;
use crate::wire::Fields;
use crate::wire::openai::embeddings::EmbeddingsRequest;

/// `POST /v1/embeddings` (OpenAI), `:embedContent` and
/// `:batchEmbedContents` (Gemini): policy and failover as for chat; no
/// streams. In its own task like [`super::chat`], always run to the end
/// (one short call).
pub async fn embeddings(gw: Arc<Gateway>, dialect: Dialect, parts: Parts, body: Bytes) -> Response {
    let task_gw = gw.clone();
    in_own_task(&gw, dialect, move |_| {
        embeddings_here(task_gw, dialect, parts, body)
    })
    .await
}

/// What a caller asked to embed, in its dialect: the request, its own
/// fields, and the Gemini method it called (batch or one).
fn decode<'b>(
    dialect: Dialect,
    parts: &Parts,
    body: &'b [u8],
) -> Result<(EmbeddingsRequest, Fields<'b>, String), GatewayError> {
    let envelope = parts.extensions.get::<crate::dialect::Envelope>();
    match (dialect, envelope) {
        (Dialect::Gemini, Some(e)) => {
            let (r, fields) = if e.method == "batchEmbedContents" {
                wire::gemini::embeddings::decode_batch_embed_request(body, &e.model)?
            } else {
                wire::gemini::embeddings::decode_embed_request(body, &e.model)?
            };
            let req = EmbeddingsRequest {
                model: e.model.clone(),
                input: wire::openai::embeddings::EmbeddingInput::Texts(r.texts),
                base64: false,
                dimensions: r.dimensions,
                unknown_fields: r.unknown_fields,
            };
            Ok((req, fields, e.method.clone()))
        }
        _ => {
            let (req, fields) = wire::openai::embeddings::decode_embeddings_request(body)?;
            Ok((req, fields, String::new()))
        }
    }
}

/// The upstream's answer in the caller's dialect, its input tokens
/// (reported, or estimated at about 4 bytes a token where the upstream
/// reports none), and whether they were reported.
fn answer(
    dialect: Dialect,
    method: &str,
    req: &EmbeddingsRequest,
    shape: EmbedAnswer,
    upstream_body: Bytes,
    target: &crate::routing::Target,
) -> Result<(Bytes, Option<u64>, bool), GatewayError> {
    let estimate = (req.input.byte_len() as u64).div_ceil(4);
    let not_an_answer = || -> GatewayError {
        UpstreamError::protocol(target.provider.name(), "not an embeddings answer").into()
    };
    match (dialect, shape) {
        // OpenAI to OpenAI, Gemini to Gemini: as it came.
        (Dialect::OpenAi, EmbedAnswer::OpenAi) => {
            let tokens = wire::openai::embeddings::peek_embedding_tokens(&upstream_body);
            return Ok((upstream_body, tokens, true));
        }
        (Dialect::Gemini, EmbedAnswer::GeminiNative) => {
            return Ok((upstream_body, Some(estimate), false));
        }
        _ => {}
    }
    let (vectors, reported) = match shape {
        EmbedAnswer::OpenAi => (
            wire::openai::embeddings::decode_vectors(&upstream_body),
            wire::openai::embeddings::peek_embedding_tokens(&upstream_body),
        ),
        EmbedAnswer::GeminiNative | EmbedAnswer::GeminiBatch => {
            (wire::gemini::decode_embeddings(&upstream_body), None)
        }
        EmbedAnswer::VertexPredict => wire::gemini::embeddings::decode_predict(&upstream_body)
            .map_or((None, None), |(v, t)| (Some(v), t)),
        EmbedAnswer::Bedrock => wire::bedrock::embeddings::decode_response(&upstream_body)
            .map_or((None, None), |(v, t)| (Some(v), t)),
    };
    let vectors = vectors.ok_or_else(not_an_answer)?;
    let tokens = reported.unwrap_or(estimate);
    let out = match dialect {
        Dialect::Gemini if method == "batchEmbedContents" => {
            wire::gemini::embeddings::encode_batch_embed_response(&vectors)
        }
        Dialect::Gemini => {
            let first = vectors.first().ok_or_else(not_an_answer)?;
            wire::gemini::embeddings::encode_embed_response(first)
        }
        _ => wire::openai::embeddings::encode_embeddings_response(
            vectors,
            &target.model,
            req.base64,
            tokens,
        ),
    };
    Ok((Bytes::from(out), Some(tokens), reported.is_some()))
}

async fn embeddings_here(
    gw: Arc<Gateway>,
    dialect: Dialect,
    parts: Parts,
    body: Bytes,
) -> Response {
    let mut ctx = Ctx::new(&gw, dialect);
    let mut rate = None;
    let mut journal = Journal::default();
    let result = async {
        ctx.apply_headers(&parts.headers)?;
        let caller = caller(&parts)?;
        let (req, fields, method) = decode(dialect, &parts, &body)?;
        let constraints = policy::constraints(&caller, &parts.headers, &req.model)?;
        let log_mode = policy::log_mode(&gw, &caller, &parts.headers)?;
        let plan = routing::plan(&gw, &req.model, &constraints)?;
        let metadata = metadata(&parts.headers, &caller, log_mode)?;
        let begin = Begin {
            id: ctx.id.to_string(),
            time_ms: crate::clock::unix_ms(),
            instance: gw.recorder.instance.clone(),
            key_id: caller.key_id().map(str::to_owned),
            route: plan.route.clone(),
            requested_model: req.model.clone(),
            dialect: format!("{}-embeddings", dialect.as_str()),
            stream: false,
            log_mode,
            est_input_tokens: estimate_tokens(&body),
            metadata,
            request_body: (log_mode == crate::config::LogMode::Full)
                .then(|| String::from_utf8_lossy(&body).into_owned()),
            hold_usd: None,
            trace_id: Some(ctx.trace.trace_hex()),
        };
        let permit = policy::admit(
            &gw,
            caller,
            log_mode,
            &plan,
            estimate_tokens(&body),
            Some(0),
            ctx.hold_ms(),
        )
        .await?;
        rate = permit.rate_headers();
        let mut begin = begin;
        begin.hold_usd = permit.reservation.as_ref().map(|r| r.amount_usd);
        if let Err(e) = journal.open(&gw.recorder, begin) {
            policy::settle(&gw, permit, None, None, false);
            return Err(GatewayError::Unavailable(e.to_string()));
        }
        let mut last = None;
        for (n, target) in plan.attempts.iter().enumerate() {
            let provider = &target.provider;
            let caller = (dialect, &fields, method.as_str());
            let (mut call, shape) =
                match providers::embeddings_call(provider, &req, caller, &target.model) {
                    Ok(c) => c,
                    Err(u) => {
                        policy::settle(&gw, permit, None, None, false);
                        return Err(u.into());
                    }
                };
            if provider.config.propagate_trace {
                super::attempts::propagate(&ctx, &ctx.trace.span_id, &mut call.headers);
            }
            let sent = match send(&gw, &ctx, provider, &call).await {
                Ok(resp) => read_body(provider, resp).await,
                Err(e) => Err(e),
            };
            let upstream_body = match sent {
                Ok(b) => b,
                Err(GatewayError::Upstream(e)) if e.class.retryable() => {
                    last = Some(GatewayError::Upstream(e));
                    continue;
                }
                Err(e) => {
                    policy::settle(&gw, permit, None, None, false);
                    return Err(e);
                }
            };
            let (out, tokens, reported) =
                match answer(dialect, &method, &req, shape, upstream_body, target) {
                    Ok(x) => x,
                    Err(e) => {
                        policy::settle(&gw, permit, None, None, false);
                        return Err(e);
                    }
                };
            let usage = tokens.map(|t| Usage {
                input_tokens: t,
                ..Usage::default()
            });
            let cost = cost(&gw, target, usage.as_ref());
            policy::settle(&gw, permit, tokens, cost, true);
            gw.metrics.request(
                Some(provider.name()),
                Some(&target.model),
                200,
                "BYPASS",
                ctx.started.elapsed(),
                None,
            );
            gw.metrics.genai(&crate::metrics::GenAi {
                operation: "embeddings",
                provider: crate::telemetry::genai_system(provider.kind()),
                model: &target.model,
                duration: ctx.started.elapsed(),
                first_chunk: None,
                usage: usage.as_ref(),
                error: None,
            });
            journal.close(
                &gw.recorder,
                End {
                    provider: Some(provider.name().to_owned()),
                    model: Some(target.model.clone()),
                    status: 200,
                    latency_ms: ms(ctx.started.elapsed()),
                    input_tokens: tokens,
                    output_tokens: tokens.map(|_| 0),
                    usage_source: tokens
                        .map(|_| if reported { "reported" } else { "estimated" }.to_owned()),
                    cost_usd: cost,
                    price_version: Some(gw.prices.version.clone()),
                    cache: "BYPASS".into(),
                    ..End::default()
                },
            );
            let mut resp = Response::new(Body::from(out));
            let h = resp.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            served_headers(&ctx, h, target, n as u32 + 1);
            if let Some(c) = cost
                && let Ok(v) = HeaderValue::from_str(&format!("{c:.8}"))
            {
                h.insert(COST, v);
            }
            return Ok::<_, GatewayError>(resp);
        }
        policy::settle(&gw, permit, None, None, false);
        Err(last.unwrap_or_else(|| GatewayError::Internal("no embeddings target".into())))
    }
    .await;
    let mut resp = result.unwrap_or_else(|e| {
        journal.close(
            &gw.recorder,
            End {
                status: e.status().as_u16(),
                error_class: Some(e.class().to_owned()),
                latency_ms: ms(ctx.started.elapsed()),
                cache: "BYPASS".into(),
                ..End::default()
            },
        );
        ctx.error(e)
    });
    if let Some(h) = rate {
        crate::limits::write_headers(resp.headers_mut(), &h);
    }
    resp
}
