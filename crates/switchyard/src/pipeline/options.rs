//! What a caller asks of the gateway in its request headers: tags, caching,
//! jurisdictions and an attempt cap. Each is checked here, and a bad value
//! is a 400 naming the header.

use std::time::Duration;

use http::HeaderMap;

use crate::auth::Caller;
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::routing::{self, Constraints};

/// `x-switchyard-metadata`: a JSON object of at most 16 string, number or
/// boolean tags, merged over the key's defaults (the request wins). In log
/// mode `none` only the key's own tags are kept.
pub fn metadata(
    headers: &HeaderMap,
    caller: &Caller,
    mode: crate::config::LogMode,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut tags = caller
        .key
        .as_ref()
        .map(|k| k.metadata.clone())
        .unwrap_or_default();
    let Some(v) = headers.get("x-switchyard-metadata") else {
        return Ok(tags);
    };
    let bad = |message: String| GatewayError::BadHeader {
        header: "x-switchyard-metadata",
        message,
    };
    let text = v.to_str().map_err(|_| bad("expected UTF-8 JSON".into()))?;
    let asked: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| bad(format!("expected a JSON object of tags: {e}")))?;
    crate::keys::manage::check_tags(&asked)
        .map_err(|(field, msg)| bad(format!("`{field}`: {msg}")))?;
    if mode == crate::config::LogMode::None {
        return Ok(tags);
    }
    for (k, v) in asked {
        tags.insert(k, v);
    }
    if tags.len() > 16 {
        return Err(bad(format!(
            "with the key's default tags there would be {} tags; at most 16",
            tags.len()
        )));
    }
    Ok(tags)
}

/// How long this request's answer may be cached: `x-switchyard-cache-ttl`,
/// else the key's default, else the configured default; `0` is off, and
/// `x-switchyard-skip-cache: true` neither reads nor writes.
pub(super) fn cache_ttl(gw: &Gateway, caller: &Caller, headers: &HeaderMap) -> Result<Duration> {
    if let Some(v) = headers.get("x-switchyard-skip-cache") {
        match v.to_str().map(str::trim) {
            Ok("true") => return Ok(Duration::ZERO),
            Ok("false") => {}
            _ => {
                return Err(GatewayError::BadHeader {
                    header: "x-switchyard-skip-cache",
                    message: "expected true or false".into(),
                });
            }
        }
    }
    if let Some(v) = headers.get("x-switchyard-cache-ttl") {
        let secs = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| *s <= crate::cache::MAX_TTL_S)
            .ok_or_else(|| GatewayError::BadHeader {
                header: "x-switchyard-cache-ttl",
                message: format!(
                    "expected whole seconds from 0 (off) to {}",
                    crate::cache::MAX_TTL_S
                ),
            })?;
        return Ok(Duration::from_secs(secs));
    }
    if let Some(s) = caller.key.as_ref().and_then(|k| k.cache_ttl_s) {
        return Ok(Duration::from_secs(s));
    }
    Ok(gw.config.cache.default_ttl)
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
