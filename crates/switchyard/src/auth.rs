//! Credentials → [`Caller`]: who is asking.
//!
//! A layer in front of every data-plane route except those in
//! `api/health.rs`. With `require_keys = true`, a request needs a valid
//! Switchyard key (`Authorization: Bearer` or `x-api-key`); every way of
//! failing that gets the same 401, in the caller's dialect, saying nothing
//! about why and echoing nothing. With `require_keys = false` (loopback
//! only) a request without a Switchyard key is served as the anonymous
//! caller; SDKs insist on sending *some* key, so a value that is not shaped
//! like ours is ignored, but one that is must be valid.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;

use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::keys::{KeyRecord, SECRET_PREFIX};
use crate::pipeline::Ctx;

/// Who a request comes from.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The key presented; `None` for the anonymous caller.
    pub key: Option<Arc<KeyRecord>>,
}

impl Caller {
    pub fn anonymous() -> Caller {
        Caller { key: None }
    }

    pub fn key_id(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.id.as_str())
    }

    /// The cache and stream-buffer namespace: the key's, or the anonymous one.
    pub fn namespace(&self) -> &str {
        self.key
            .as_ref()
            .map(|k| k.namespace())
            .unwrap_or("anonymous")
    }
}

/// The key a request presents: `Authorization: Bearer <key>`,
/// `x-api-key: <key>` (Anthropic SDKs send either, depending on version),
/// or `x-goog-api-key: <key>` (Google's SDKs).
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim());
        }
    }
    ["x-api-key", "x-goog-api-key"].iter().find_map(|h| {
        headers
            .get(*h)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    })
}

/// Whether a path is the Gemini API's (`/v1beta/...`, `/v1/models/...:`).
pub fn is_gemini_path(path: &str) -> bool {
    path.starts_with("/v1beta/") || (path.starts_with("/v1/models/") && path.contains(':'))
}

/// A key in the query (`?key=`), as Google's API takes it: read on the
/// Gemini API's paths only (a passthrough query goes upstream as it came).
fn query_key(path: &str, query: Option<&str>) -> Option<String> {
    if !is_gemini_path(path) {
        return None;
    }
    query?.split('&').find_map(|kv| {
        let v = kv.strip_prefix("key=")?;
        let bytes = v.as_bytes();
        // Our keys are base62 after their prefix: nothing to unescape.
        (!bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'))
        .then(|| v.to_owned())
    })
}

pub async fn authenticate(gw: &Gateway, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    let presented = presented_key(headers);
    match presented {
        Some(secret) if secret.starts_with(SECRET_PREFIX) => {
            match gw.keys.authenticate(secret).await {
                Some(key) => Ok(Caller { key: Some(key) }),
                None => Err(GatewayError::Unauthorized),
            }
        }
        _ if gw.config.auth.require_keys => Err(GatewayError::Unauthorized),
        _ => Ok(Caller::anonymous()),
    }
}

/// The dialect a path's errors are written in.
pub fn dialect_of_path(gw: &Gateway, path: &str) -> Dialect {
    if path.starts_with("/v1/messages") {
        return Dialect::Anthropic;
    }
    if is_gemini_path(path) {
        return Dialect::Gemini;
    }
    if path.starts_with("/v1/responses") {
        return Dialect::Responses;
    }
    if let Some(rest) = path.strip_prefix("/passthrough/") {
        let provider = rest.split('/').next().unwrap_or("");
        if gw.providers.get(provider).map(|p| p.dialect()) == Some(Dialect::Anthropic) {
            return Dialect::Anthropic;
        }
    }
    Dialect::OpenAi
}

/// The auth layer: puts the [`Caller`] in the request's extensions, or
/// answers 401.
pub async fn layer(State(gw): State<Arc<Gateway>>, mut req: Request, next: Next) -> Response {
    if presented_key(req.headers()).is_none()
        && let Some(k) = query_key(req.uri().path(), req.uri().query())
        && let Ok(v) = http::HeaderValue::from_str(&k)
    {
        req.headers_mut().insert("x-goog-api-key", v);
    }
    match authenticate(&gw, req.headers()).await {
        Ok(caller) => {
            // A key's own bound on requests in flight, held until the
            // answer's body is done.
            let place = match &caller.key {
                Some(k) => match gw.inflight.admit_key(k).await {
                    Ok(p) => p,
                    Err(e) => {
                        return Ctx::new(&gw, dialect_of_path(&gw, req.uri().path())).error(e);
                    }
                },
                None => None,
            };
            req.extensions_mut().insert(caller);
            crate::inflight::hold(next.run(req).await, place)
        }
        Err(e) => Ctx::new(&gw, dialect_of_path(&gw, req.uri().path())).error(e),
    }
}
