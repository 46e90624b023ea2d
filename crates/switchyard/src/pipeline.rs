//! The journey of one request, start to finish, as plain calls in order:
//! authenticate, decode, plan, then for each target build the call, send
//! it, and translate the answer, failing over only while nothing has
//! reached the caller.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;
use uuid::Uuid;

use crate::chat::{self, Dialect, Usage};
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::providers::{self, Inbound, UpstreamError};
use crate::routing::health::Readiness;
use crate::routing::{self, Attempt, Constraints, Evidence, Target};
use crate::stream::{Buffer, Live, StreamOutcome, Translator};
use crate::wire;

/// Upstream non-stream bodies larger than this are refused.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-switchyard-request-id");
pub const PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
pub const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
pub const CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");

/// Per-request state, passed along by reference.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub id: Uuid,
    /// The dialect the caller speaks (and gets errors in).
    pub dialect: Dialect,
    pub started: Instant,
    /// When the whole call, every attempt included, must be done.
    pub deadline: Instant,
    pub timeout: Duration,
}

impl Ctx {
    pub fn new(gw: &Gateway, dialect: Dialect) -> Ctx {
        let started = Instant::now();
        let timeout = gw.config.server.request_timeout;
        Ctx {
            id: Uuid::now_v7(),
            dialect,
            started,
            deadline: started + timeout,
            timeout,
        }
    }

    /// Applies `x-switchyard-request-timeout` (milliseconds), which may only
    /// shorten the configured deadline.
    pub fn apply_headers(&mut self, headers: &HeaderMap) -> Result<()> {
        if let Some(v) = headers.get("x-switchyard-request-timeout") {
            let ms = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .ok_or_else(|| GatewayError::BadHeader {
                    header: "x-switchyard-request-timeout",
                    message: "expected a whole number of milliseconds greater than zero".into(),
                })?;
            let t = Duration::from_millis(ms);
            if t < self.timeout {
                self.timeout = t;
                self.deadline = self.started + t;
            }
        }
        Ok(())
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// An error response in the caller's dialect, carrying the request id.
    pub fn error(&self, e: GatewayError) -> Response {
        let mut resp = e.into_response_in(self.dialect);
        self.stamp(resp.headers_mut());
        resp
    }

    pub fn stamp(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.id.to_string()) {
            headers.insert(REQUEST_ID, v);
        }
    }
}

/// `POST /v1/chat/completions` and `POST /v1/messages`.
pub async fn chat(gw: Arc<Gateway>, dialect: Dialect, parts: Parts, body: Bytes) -> Response {
    let mut ctx = Ctx::new(&gw, dialect);
    let result = async {
        ctx.apply_headers(&parts.headers)?;
        let _caller = crate::auth::authenticate(&gw, &parts.headers).await?;
        let ctx = ctx.clone();
        match tokio::time::timeout_at(ctx.deadline, chat_attempts(&gw, &ctx, &parts, &body)).await {
            Ok(r) => r,
            Err(_) => Err(GatewayError::DeadlineExceeded(crate::config::fmt_duration(
                ctx.timeout,
            ))),
        }
    }
    .await;
    match result {
        Ok(resp) => resp,
        Err(e) => {
            tracing::info!(request_id = %ctx.id, status = e.status().as_u16(), error = e.class(), "Request failed");
            ctx.error(e)
        }
    }
}

async fn chat_attempts(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    parts: &Parts,
    body: &Bytes,
) -> Result<Response> {
    let (request, fields) = match ctx.dialect {
        Dialect::Anthropic => wire::anthropic::decode_request(body)?,
        _ => wire::openai::decode_request(body)?,
    };
    let constraints = constraints(&parts.headers, None)?;
    let plan = routing::plan(gw, &request.model, &constraints)?;
    let inbound = Inbound {
        dialect: ctx.dialect,
        request: &request,
        fields: &fields,
        anthropic_version: parts.headers.get("anthropic-version"),
        anthropic_beta: parts.headers.get("anthropic-beta"),
    };
    let mut evidence = Evidence {
        route: plan.route.clone(),
        attempts: Vec::with_capacity(plan.attempts.len()),
        excluded: plan.excluded.clone(),
    };
    let mut last_error: Option<GatewayError> = None;
    let mut tries: Vec<(&str, u32)> = Vec::new();
    for target in &plan.attempts {
        let provider = target.provider.name();
        // Backoff with jitter before trying a provider again.
        let n = match tries.iter_mut().find(|(p, _)| *p == provider) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                tries.push((provider, 1));
                0
            }
        };
        if n > 0 {
            let wait = routing::backoff::delay(n, &mut rand::thread_rng());
            if wait >= ctx.remaining() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        // A provider that said Retry-After during this request is not asked
        // again before then.
        if !evidence.attempts.is_empty()
            && let Readiness::NotUntil(_) =
                gw.health.readiness(provider, &target.key, Instant::now())
        {
            continue;
        }
        let started = Instant::now();
        gw.health.begin(provider, &target.key, started);
        let attempt = evidence.attempts.len() as u32 + 1;
        let result = attempt_chat(gw, ctx, &inbound, target, attempt).await;
        let took = started.elapsed();
        let mut record = |outcome, class: Option<&'static str>, status| {
            evidence.attempts.push(Attempt {
                target: target.key.to_string(),
                jurisdiction: target.jurisdiction().map(str::to_owned),
                start_ms: ms(started.saturating_duration_since(ctx.started)),
                duration_ms: ms(took),
                outcome,
                error_class: class,
                status,
            })
        };
        match result {
            Ok(mut resp) => {
                gw.health
                    .success(provider, &target.key, took, Instant::now());
                record("ok", None, Some(resp.status().as_u16()));
                resp.extensions_mut().insert(evidence);
                return Ok(resp);
            }
            Err(GatewayError::Upstream(e)) => {
                gw.health.failure(
                    provider,
                    &target.key,
                    e.class,
                    e.retry_after,
                    Instant::now(),
                );
                record("error", Some(e.class.as_str()), Some(e.status));
                tracing::info!(request_id = %ctx.id, target = %target.key, class = e.class.as_str(), status = e.status, "Attempt failed");
                let retryable = e.class.retryable();
                last_error = Some(GatewayError::Upstream(e));
                if !retryable {
                    break;
                }
            }
            // This target cannot express the request; another may.
            Err(GatewayError::Untranslatable(u)) => {
                evidence.excluded.push(routing::Excluded {
                    target: target.key.to_string(),
                    jurisdiction: target.jurisdiction().map(str::to_owned),
                    reason: u.to_string(),
                });
                if last_error.is_none() {
                    last_error = Some(GatewayError::Untranslatable(u));
                }
            }
            Err(other) => return Err(other),
        }
    }
    tracing::debug!(request_id = %ctx.id, evidence = ?evidence, "No attempt succeeded");
    Err(last_error.unwrap_or_else(|| {
        GatewayError::DeadlineExceeded(crate::config::fmt_duration(ctx.timeout))
    }))
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// What the request's headers (and, with keys, the caller's key) allow:
/// jurisdictions and an attempt cap.
pub fn constraints(
    headers: &HeaderMap,
    key_jurisdictions: Option<&[String]>,
) -> Result<Constraints> {
    let header = match headers.get("x-switchyard-jurisdiction") {
        None => None,
        Some(v) => {
            let list = v
                .to_str()
                .map(routing::parse_jurisdictions)
                .unwrap_or_default();
            if list.is_empty() {
                return Err(GatewayError::BadHeader {
                    header: "x-switchyard-jurisdiction",
                    message: "expected a comma-separated list such as `eu` or `eu,us`".into(),
                });
            }
            Some(list)
        }
    };
    let max_attempts = match headers.get("x-switchyard-max-attempts") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| GatewayError::BadHeader {
                    header: "x-switchyard-max-attempts",
                    message: "expected a whole number of at least 1".into(),
                })?,
        ),
    };
    Ok(Constraints {
        jurisdictions: routing::intersect(header, key_jurisdictions),
        max_attempts,
    })
}

async fn attempt_chat(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    inbound: &Inbound<'_>,
    target: &Target,
    attempt: u32,
) -> Result<Response> {
    let provider = &target.provider;
    let call = providers::chat_call(provider, inbound, &target.model)?;
    let resp = send(gw, ctx, provider, &call).await?;
    if call.stream {
        let translator = Translator::new(
            ctx.dialect,
            call.dialect,
            inbound.request.include_usage,
            default_id(ctx),
            target.model.clone(),
            unix_now(),
        );
        let mut live = Live::new(provider.clone(), resp, translator);
        let first_timeout = provider.config.first_chunk_timeout.min(ctx.remaining());
        let first = live.first_output(first_timeout).await?;
        let buffer = Buffer::new();
        buffer.push(first);
        let follower = buffer.clone().follow(0);
        gw.spawn(pump(gw.clone(), ctx.clone(), target.clone(), live, buffer));
        let mut resp = Response::new(Body::from_stream(follower));
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        served_headers(ctx, h, target, attempt);
        return Ok(resp);
    }
    let upstream_body = read_body(provider, resp).await?;
    let (out, usage) =
        translate_response(ctx, call.dialect, call.passthrough, upstream_body, target)?;
    log_finished(ctx, target, 200, usage.as_ref());
    let mut resp = Response::new(Body::from(out));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    served_headers(ctx, h, target, attempt);
    Ok(resp)
}

/// Sends one attempt, bounded by the provider's timeout and the caller's
/// deadline; running out of the latter is the caller's 504, not the
/// provider's fault.
async fn send(
    gw: &Gateway,
    ctx: &Ctx,
    provider: &providers::Provider,
    call: &providers::Call,
) -> Result<reqwest::Response> {
    let remaining = ctx.remaining();
    let bounded_by_deadline = remaining < provider.config.timeout;
    let timeout = provider.config.timeout.min(remaining);
    match gw.client.send(provider, call, timeout).await {
        Err(e)
            if bounded_by_deadline
                && e.class == providers::ErrorClass::Timeout
                && e.status == 504 =>
        {
            Err(GatewayError::DeadlineExceeded(crate::config::fmt_duration(
                ctx.timeout,
            )))
        }
        other => Ok(other?),
    }
}

/// Reads the rest of a stream into its buffer, in a tracked task: the
/// caller may go away, the generation (and its record) still completes.
async fn pump(gw: Arc<Gateway>, ctx: Ctx, target: Target, mut live: Live, buffer: Arc<Buffer>) {
    let dialect = ctx.dialect;
    let render = move |e: &UpstreamError| GatewayError::Upstream(e.clone()).body(dialect);
    let continue_on_disconnect = gw.config.streams.continue_on_disconnect;
    loop {
        if !continue_on_disconnect && buffer.followers() == 0 {
            tracing::info!(request_id = %ctx.id, "Client went away; cancelling the upstream stream");
            break;
        }
        match live.next_output(ctx.deadline, &render).await {
            Some(chunk) => buffer.push(chunk),
            None => break,
        }
    }
    buffer.close();
    let status = match &live.outcome {
        Some(StreamOutcome::Complete) => 200,
        Some(StreamOutcome::Failed(e)) => e.status,
        None => 499,
    };
    log_finished(&ctx, &target, status, live.translator.usage().as_ref());
}

fn log_finished(ctx: &Ctx, target: &Target, status: u16, usage: Option<&Usage>) {
    tracing::info!(
        request_id = %ctx.id,
        provider = target.provider.name(),
        model = %target.model,
        status,
        input_tokens = usage.map(|u| u.input_tokens),
        output_tokens = usage.map(|u| u.output_tokens),
        latency_ms = ctx.started.elapsed().as_millis() as u64,
        "Request finished"
    );
}

fn served_headers(ctx: &Ctx, h: &mut HeaderMap, target: &Target, attempts: u32) {
    ctx.stamp(h);
    if let Ok(v) = HeaderValue::from_str(target.provider.name()) {
        h.insert(PROVIDER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&target.model) {
        h.insert(MODEL, v);
    }
    h.insert(ATTEMPTS, HeaderValue::from(attempts));
    h.insert(CACHE, HeaderValue::from_static("BYPASS"));
}

fn default_id(ctx: &Ctx) -> String {
    match ctx.dialect {
        Dialect::Anthropic => format!("msg_{}", ctx.id.simple()),
        _ => format!("chatcmpl-{}", ctx.id.simple()),
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads a 2xx upstream body, bounded.
pub async fn read_body(
    provider: &providers::Provider,
    mut resp: reqwest::Response,
) -> Result<Bytes> {
    let mut out = bytes::BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() + c.len() > MAX_UPSTREAM_BODY {
                    return Err(UpstreamError::protocol(
                        provider.name(),
                        "the answer is larger than 64 MiB",
                    )
                    .into());
                }
                if out.is_empty() && resp.content_length().is_none() {
                    out.reserve(c.len());
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out.freeze()),
            Err(e) => {
                return Err(UpstreamError::broken_stream(provider.name(), &e.to_string()).into());
            }
        }
    }
}

/// A complete upstream answer in the caller's dialect, and its usage.
fn translate_response(
    ctx: &Ctx,
    upstream: Dialect,
    passthrough: bool,
    body: Bytes,
    target: &Target,
) -> Result<(Bytes, Option<Usage>)> {
    let name = target.provider.name();
    if passthrough {
        let usage = match upstream {
            Dialect::Anthropic => wire::anthropic::response::peek_usage(&body),
            _ => wire::openai::response::peek_usage(&body),
        };
        return Ok((body, usage));
    }
    let decoded = match upstream {
        Dialect::OpenAi => wire::openai::decode_response(&body),
        Dialect::Anthropic => wire::anthropic::decode_response(&body),
        Dialect::Gemini => wire::gemini::decode_response(&body),
    };
    let mut r: chat::Response = decoded.map_err(|e| UpstreamError::protocol(name, &e.message))?;
    if r.id.is_empty() {
        r.id = default_id(ctx);
    }
    if r.model.is_empty() {
        r.model = target.model.clone();
    }
    if r.created == 0 {
        r.created = unix_now();
    }
    let usage = r.usage;
    let out = match ctx.dialect {
        Dialect::Anthropic => wire::anthropic::encode_response(&r)
            .map_err(|e| UpstreamError::protocol(name, &e.message))?,
        _ => wire::openai::encode_response(&r),
    };
    Ok((Bytes::from(out), usage))
}

/// `POST /v1/embeddings`.
pub async fn embeddings(gw: Arc<Gateway>, parts: Parts, body: Bytes) -> Response {
    let mut ctx = Ctx::new(&gw, Dialect::OpenAi);
    let result = async {
        ctx.apply_headers(&parts.headers)?;
        let _caller = crate::auth::authenticate(&gw, &parts.headers).await?;
        let (req, fields) = wire::openai::embeddings::decode_embeddings_request(&body)?;
        let plan = routing::plan(&gw, &req.model, &constraints(&parts.headers, None)?)?;
        let target = &plan.attempts[0];
        let provider = &target.provider;
        let call = providers::embeddings_call(provider, &req, &fields, &target.model)?;
        let resp = send(&gw, &ctx, provider, &call).await?;
        let upstream_body = read_body(provider, resp).await?;
        let out = if call.passthrough {
            upstream_body
        } else {
            let vectors = wire::gemini::decode_embeddings(&upstream_body).ok_or_else(|| {
                UpstreamError::protocol(provider.name(), "not a batchEmbedContents answer")
            })?;
            // Gemini reports no token counts: estimate about 4 bytes a token.
            let estimate = (req.input.byte_len() as u64).div_ceil(4);
            Bytes::from(wire::openai::embeddings::encode_embeddings_response(
                vectors,
                &target.model,
                req.base64,
                estimate,
            ))
        };
        let mut resp = Response::new(Body::from(out));
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        served_headers(&ctx, h, target, 1);
        Ok::<_, GatewayError>(resp)
    }
    .await;
    result.unwrap_or_else(|e| ctx.error(e))
}
