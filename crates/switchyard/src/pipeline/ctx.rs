//! What every stage of a call carries: the request's id, its caller's
//! dialect, its clock and deadline; the response headers the gateway adds.

use std::time::Duration;

use axum::response::Response;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;
use uuid::Uuid;

use crate::auth::Caller;
use crate::dialect::Dialect;
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::routing::Target;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-switchyard-request-id");
pub const PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
pub const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
pub const CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");
pub const COST: HeaderName = HeaderName::from_static("x-switchyard-cost-usd");

/// Per-request state, passed along by reference.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub id: Uuid,
    /// The dialect the caller speaks (and gets errors in).
    pub dialect: Dialect,
    pub started: Instant,
    /// The wall-clock time it started, for records and traces.
    pub wall: std::time::SystemTime,
    /// When the whole call, every attempt included, must be done.
    pub deadline: Instant,
    pub timeout: Duration,
    /// The trace it belongs to: the caller's `traceparent`, else a new one.
    pub trace: crate::telemetry::TraceContext,
}

impl Ctx {
    pub fn new(gw: &Gateway, dialect: Dialect) -> Ctx {
        let started = Instant::now();
        let timeout = gw.config.server.request_timeout;
        Ctx {
            id: crate::clock::request_id(),
            dialect,
            started,
            wall: std::time::SystemTime::now(),
            deadline: started + timeout,
            timeout,
            trace: crate::telemetry::TraceContext::fresh(),
        }
    }

    /// Applies `x-switchyard-request-timeout` (milliseconds), which may only
    /// shorten the configured deadline, and the caller's trace context.
    pub fn apply_headers(&mut self, headers: &HeaderMap) -> Result<()> {
        if headers.contains_key("traceparent") {
            self.trace = crate::telemetry::TraceContext::from_headers(headers);
        }
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

    /// How long a budget hold outlives the request's deadline before it
    /// counts as abandoned.
    pub(super) fn hold_ms(&self) -> i64 {
        self.timeout.as_millis() as i64 + 60_000
    }
}

/// Who is calling, taken from the extensions the auth layer filled.
pub(crate) fn caller(parts: &Parts) -> Result<Caller> {
    parts
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or(GatewayError::Unauthorized)
}

/// The headers of an answer a target served on attempt `attempts`.
pub(super) fn served_headers(ctx: &Ctx, h: &mut HeaderMap, target: &Target, attempts: u32) {
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

/// Input tokens, estimated from the body's size for holds made before the
/// provider has counted: 3 bytes a token, on the high side on purpose.
pub(super) fn estimate_tokens(body: &[u8]) -> u64 {
    (body.len() as u64).div_ceil(3)
}

/// Milliseconds, to the microsecond, as records keep them.
pub(super) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

pub fn unix_now() -> u64 {
    crate::clock::unix_s()
}
