//! `ANY /passthrough/{provider}/{rest}`: a provider-native request forwarded
//! as-is to that provider's `base_url` + `rest`, with the stored credential.
//!
//! The destination host always comes from configuration: `rest` may not
//! climb out of the base path (`..`, encoded dots, backslashes), and only an
//! allow-list of request headers goes upstream (never the caller's
//! `Authorization`, `x-api-key` or cookies).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderMap, HeaderName, Request};

use super::read_request;
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::log_store::{Begin, End, Journal};
use crate::pipeline::{self, Ctx};
use crate::policy;

/// Request headers that may go upstream.
const FORWARDED: &[&str] = &[
    "content-type",
    "accept",
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
    "idempotency-key",
];

/// Response headers that never come back (hop-by-hop, cookies, lengths the
/// server recomputes).
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "set-cookie",
    "content-length",
];

pub(super) async fn passthrough(
    State(gw): State<Arc<Gateway>>,
    Path((provider, rest)): Path<(String, String)>,
    req: Request<Body>,
) -> Response {
    let dialect = match gw.providers.get(&provider).map(|p| p.dialect()) {
        Some(Dialect::Anthropic) => Dialect::Anthropic,
        _ => Dialect::OpenAi,
    };
    let ctx = Ctx::new(&gw, dialect);
    let query = req.uri().query().map(str::to_owned);
    let method = req.method().clone();
    let (parts, body) = match read_request(&gw, req, dialect).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    // In its own task, like every call (see `pipeline::chat`): a caller
    // that goes away does not leave the record and the permit unsettled.
    let task_gw = gw.clone();
    pipeline::in_own_task(&gw, dialect, move |_| async move {
        let gw = task_gw;
        forward_and_record(&gw, ctx, provider, rest, query, method, parts, body).await
    })
    .await
}

#[allow(clippy::too_many_arguments)]
async fn forward_and_record(
    gw: &Arc<Gateway>,
    mut ctx: Ctx,
    provider: String,
    rest: String,
    query: Option<String>,
    method: http::Method,
    parts: http::request::Parts,
    body: bytes::Bytes,
) -> Response {
    let gw = gw.clone();
    let mut journal = Journal::default();
    let mut permit = None;
    let mut begin = None;
    let result = forward(
        &gw,
        &mut ctx,
        &provider,
        &rest,
        query.as_deref(),
        method,
        &parts,
        body,
        &mut begin,
        &mut journal,
        &mut permit,
    )
    .await;
    let status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.status().as_u16(),
    };
    let end = End {
        provider: gw.providers.get(&provider).map(|p| p.name().to_owned()),
        status,
        error_class: result.as_ref().err().map(|e| e.class().to_owned()),
        latency_ms: ctx.started.elapsed().as_secs_f64() * 1000.0,
        cache: "BYPASS".into(),
        ..End::default()
    };
    match begin {
        // Refused by policy before the call: recorded too.
        Some(b) if !journal.is_open() => journal.refused(&gw.recorder, b, end),
        _ => journal.close(&gw.recorder, end),
    }
    if let Some(p) = permit {
        // The provider's own usage is not read here: what was held for the
        // input settles as it is.
        let input = journal.begin().map(|b| b.est_input_tokens);
        policy::settle(&gw, p, input, None, status < 400);
    }
    result.unwrap_or_else(|e| {
        let rate = match &e {
            GatewayError::RateLimited { headers, .. } => Some(*headers),
            _ => None,
        };
        let mut resp = ctx.error(e);
        if let Some(h) = rate {
            crate::limits::write_headers(resp.headers_mut(), &h);
        }
        resp
    })
}

/// Policy, record and the forwarded call. A passthrough call is held to the
/// same key rules as any other: the key's model globs (against
/// `provider/<model>` when the body names a model, else `provider/`, which
/// only a glob covering the whole provider matches), its jurisdictions
/// (with the request's header), its rate limits and log mode, and it leaves
/// a record. A key with a budget may not use it: a provider-native call
/// cannot be priced before it is made.
#[allow(clippy::too_many_arguments)]
async fn forward(
    gw: &Arc<Gateway>,
    ctx: &mut Ctx,
    provider: &str,
    rest: &str,
    query: Option<&str>,
    method: http::Method,
    parts: &http::request::Parts,
    body: bytes::Bytes,
    pending: &mut Option<Begin>,
    journal: &mut Journal,
    permit: &mut Option<crate::policy::Permit>,
) -> Result<Response, GatewayError> {
    ctx.apply_headers(&parts.headers)?;
    let caller = pipeline::caller(parts)?;
    let Some(p) = gw.providers.get(provider) else {
        return Err(GatewayError::NotFound(format!(
            "no provider named `{provider}`"
        )));
    };
    check_rest(rest)?;
    if caller.key.as_ref().is_some_and(|k| k.budget_usd.is_some()) {
        return Err(GatewayError::Forbidden(
            "a key with a budget may not use /passthrough: a provider-native call cannot be priced before it is made".into(),
        ));
    }
    let scope = format!("{}/{}", p.name(), body_model(&body).unwrap_or(""));
    let est_input_tokens = (body.len() as u64).div_ceil(3);
    *pending = Some(Begin {
        id: ctx.id.to_string(),
        time_ms: crate::clock::unix_ms(),
        instance: gw.recorder.instance.clone(),
        key_id: caller.key_id().map(str::to_owned),
        route: None,
        requested_model: scope.clone(),
        dialect: "passthrough".into(),
        stream: false,
        log_mode: gw.config.logs.mode,
        est_input_tokens,
        metadata: Default::default(),
        request_body: None,
        hold_usd: None,
        trace_id: Some(ctx.trace.trace_hex()),
    });
    let c = policy::constraints(&caller, &parts.headers, &scope)?;
    if !crate::routing::permits(c.jurisdictions.as_deref(), p) {
        let jurisdiction = p.config.jurisdiction.clone();
        return Err(GatewayError::NoCompliantProvider {
            allowed: c.jurisdictions.unwrap_or_default(),
            excluded: vec![crate::routing::Excluded {
                target: p.name().to_owned(),
                reason: format!(
                    "jurisdiction {} is not in the allowed set",
                    jurisdiction.as_deref().unwrap_or("unspecified")
                ),
                jurisdiction,
            }],
        });
    }
    let log_mode = policy::log_mode(gw, &caller, &parts.headers)?;
    let metadata = pipeline::metadata(&parts.headers, &caller, log_mode)?;
    if let Some(b) = pending.as_mut() {
        b.log_mode = log_mode;
        b.metadata = metadata;
    }
    let plan = crate::routing::Plan {
        route: None,
        primary: Arc::from(scope.as_str()),
        attempts: Vec::new(),
        excluded: Vec::new(),
        cache_fallback: false,
    };
    let hold_ms = ctx.timeout.as_millis() as i64 + 60_000;
    let admitted = policy::admit(
        gw,
        caller.clone(),
        log_mode,
        &plan,
        est_input_tokens,
        Some(0),
        hold_ms,
    )
    .await?;
    let rate = admitted.rate_headers();
    *permit = Some(admitted);
    let Some(begin) = pending.take() else {
        return Err(GatewayError::Internal("the record was lost".into()));
    };
    journal
        .open(&gw.recorder, begin)
        .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
    let mut url = format!("{}/{}", p.config.base_url, rest);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    let mut headers = HeaderMap::new();
    for name in FORWARDED {
        if let Some(v) = parts.headers.get(*name) {
            headers.insert(HeaderName::from_static(name), v.clone());
        }
    }
    if p.config.propagate_trace {
        let mut trace = Vec::new();
        pipeline::propagate_trace(ctx, &ctx.trace.span_id, &mut trace);
        for (k, v) in trace {
            headers.insert(HeaderName::from_static(k), v);
        }
    }
    let timeout = p.config.timeout.min(ctx.remaining());
    let upstream = gw
        .client
        .forward(p, method, &url, headers, body, timeout)
        .await?;
    let status = upstream.status();
    let mut out_headers = HeaderMap::new();
    for (k, v) in upstream.headers() {
        if !DROPPED.contains(&k.as_str()) {
            out_headers.append(k.clone(), v.clone());
        }
    }
    let (_, upstream_body) = upstream.into_parts();
    let mut resp = Response::new(Body::new(upstream_body));
    *resp.status_mut() = status;
    *resp.headers_mut() = out_headers;
    ctx.stamp(resp.headers_mut());
    if let Ok(v) = http::HeaderValue::from_str(p.name()) {
        resp.headers_mut().insert(pipeline::PROVIDER, v);
    }
    if let Some(h) = rate {
        crate::limits::write_headers(resp.headers_mut(), &h);
    }
    Ok(resp)
}

/// The top-level `model` of a JSON body, if it has one.
fn body_model(body: &[u8]) -> Option<&str> {
    let mut model = None;
    let mut w = crate::wire::scan::Walker::new(body);
    w.object(|k, w| {
        if k == b"model" {
            model = crate::wire::scan::plain_str(w.raw()?);
            Some(())
        } else {
            w.skip()
        }
    })?;
    model
}

/// Refuses a path that could leave the provider's base path.
fn check_rest(rest: &str) -> Result<(), GatewayError> {
    let lower = rest.to_ascii_lowercase();
    let bad = rest.split('/').any(|seg| seg == ".." || seg == ".")
        || lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || rest.contains('\\')
        || rest.starts_with('/')
        || rest.contains("//");
    if bad {
        return Err(GatewayError::BadRequest(crate::wire::DecodeError::new(
            "path",
            "the passthrough path may not contain `.` or `..` segments, empty segments, encoded slashes or dots, or backslashes",
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_climb_out() {
        assert!(check_rest("chat/completions").is_ok());
        assert!(check_rest("models/gemini-2.5-pro:generateContent").is_ok());
        for bad in [
            "../x",
            "a/../../b",
            "%2e%2e/x",
            "a%2Fb",
            "a\\b",
            "/etc",
            "a//b",
            "./a",
        ] {
            assert!(check_rest(bad).is_err(), "{bad}");
        }
    }
}
