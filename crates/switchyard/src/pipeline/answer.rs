//! An upstream's answer read and put in the caller's dialect: a whole body
//! (bounded, translated unless the dialects match), or a stream read up to
//! its first event for the caller.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;

use super::ctx::{Ctx, served_headers, unix_now};
use super::deliver::Served;
use crate::chat::{self, Usage};
use crate::dialect::{Dialect, Echo, Start};
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::providers::{self, Inbound, UpstreamError};
use crate::routing::Target;
use crate::stream::{Buffer, Live, Translator};

/// Upstream non-stream bodies larger than this are refused.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// A whole answer, read and translated.
pub(super) async fn whole(
    ctx: &Ctx,
    echo: &Echo,
    target: &Target,
    attempt: u32,
    call: &providers::Call,
    resp: providers::client::UpstreamResponse,
) -> Result<Served> {
    let upstream_body = read_body(&target.provider, resp).await?;
    let (out, usage) = translate_response(
        ctx,
        echo,
        call.dialect,
        call.passthrough,
        upstream_body,
        target,
    )?;
    let body = out.clone();
    let mut response = Response::new(Body::from(out));
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    served_headers(ctx, h, target, attempt);
    Ok(Served::Whole {
        response,
        usage,
        body,
    })
}

/// A stream, read until its first event for the caller is in a fresh
/// buffer; the response follows that buffer.
pub(super) async fn first_of_stream(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    inbound: &Inbound<'_>,
    target: &Target,
    attempt: u32,
    call: &providers::Call,
    resp: providers::client::UpstreamResponse,
) -> Result<Served> {
    let provider = &target.provider;
    let translator = Translator::new(
        ctx.dialect,
        call.dialect,
        Start {
            id: ctx.dialect.answer_id(&ctx.id),
            model: target.model.clone(),
            created: unix_now(),
            include_usage: inbound.request.include_usage,
            echo: inbound.echo,
            provider: provider.name(),
        },
    );
    let mut live = Live::new(provider.clone(), resp, translator);
    live.sse_ids(ctx.dialect.sse_ids());
    let first_timeout = provider.config.first_chunk_timeout.min(ctx.remaining());
    let first = live.first_output(first_timeout).await?;
    let buffer = Buffer::new(gw.config.streams.max_buffer_bytes as usize);
    buffer.push(first);
    let mut response = super::pump::sse_response(buffer.clone(), 0);
    served_headers(ctx, response.headers_mut(), target, attempt);
    Ok(Served::Stream {
        response,
        live: Box::new(live),
        buffer,
    })
}

/// Reads a 2xx upstream body, bounded.
pub async fn read_body(
    provider: &providers::Provider,
    resp: providers::client::UpstreamResponse,
) -> Result<Bytes> {
    use http_body_util::BodyExt;
    let length = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|n| n > MAX_UPSTREAM_BODY) {
        return Err(too_large(provider));
    }
    let mut body = resp.into_body();
    // One chunk (the usual case for a JSON answer) is passed on as it is.
    let mut first: Option<Bytes> = None;
    let mut out = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(c) = frame.into_data() else { continue };
                let have = first.as_ref().map_or(0, Bytes::len) + out.len();
                if have + c.len() > MAX_UPSTREAM_BODY {
                    return Err(too_large(provider));
                }
                match first.take() {
                    None if out.is_empty() => first = Some(c),
                    None => out.extend_from_slice(&c),
                    Some(f) => {
                        out.reserve(length.unwrap_or(f.len() + c.len()));
                        out.extend_from_slice(&f);
                        out.extend_from_slice(&c);
                    }
                }
            }
            None => return Ok(first.unwrap_or_else(|| out.freeze())),
            Some(Err(e)) => {
                return Err(UpstreamError::broken_stream(provider.name(), &e.to_string()).into());
            }
        }
    }
}

fn too_large(provider: &providers::Provider) -> GatewayError {
    UpstreamError::protocol(provider.name(), "the answer is larger than 64 MiB").into()
}

/// A complete upstream answer in the caller's dialect, and its usage.
fn translate_response(
    ctx: &Ctx,
    echo: &Echo,
    upstream: Dialect,
    passthrough: bool,
    body: Bytes,
    target: &Target,
) -> Result<(Bytes, Option<Usage>)> {
    let name = target.provider.name();
    if passthrough {
        let usage = upstream.peek_usage(&body);
        return Ok((echo.correct(body), usage));
    }
    let mut r: chat::Response = upstream
        .decode_response(&body)
        .map_err(|e| UpstreamError::protocol(name, &e.message))?;
    if r.id.is_empty() {
        r.id = ctx.dialect.answer_id(&ctx.id);
    }
    if r.model.is_empty() {
        r.model = target.model.clone();
    }
    if r.created == 0 {
        r.created = unix_now();
    }
    let usage = r.usage;
    let out = ctx
        .dialect
        .encode_response(&r, echo, name)
        .map_err(|e| UpstreamError::protocol(name, &e.message))?;
    Ok((Bytes::from(out), usage))
}
