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
use crate::chat::Dialect;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::{self, Ctx};

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
    let mut ctx = Ctx::new(&gw, dialect);
    let query = req.uri().query().map(str::to_owned);
    let method = req.method().clone();
    let (parts, body) = match read_request(&gw, req, dialect).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let result = async {
        ctx.apply_headers(&parts.headers)?;
        let _caller = crate::auth::authenticate(&gw, &parts.headers).await?;
        let Some(p) = gw.providers.get(&provider) else {
            return Err(GatewayError::NotFound(format!(
                "no provider named `{provider}`"
            )));
        };
        check_rest(&rest)?;
        let c = pipeline::constraints(&parts.headers, None)?;
        if !crate::routing::permits(c.jurisdictions.as_deref(), p) {
            return Err(GatewayError::NoCompliantProvider {
                allowed: c.jurisdictions.unwrap_or_default(),
                excluded: vec![format!(
                    "{} ({})",
                    p.name(),
                    p.config.jurisdiction.as_deref().unwrap_or("unspecified")
                )],
            });
        }
        let mut url = format!("{}/{}", p.config.base_url, rest);
        if let Some(q) = &query {
            url.push('?');
            url.push_str(q);
        }
        let mut headers = HeaderMap::new();
        for name in FORWARDED {
            if let Some(v) = parts.headers.get(*name) {
                headers.insert(HeaderName::from_static(name), v.clone());
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
        Ok(resp)
    }
    .await;
    result.unwrap_or_else(|e| ctx.error(e))
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
