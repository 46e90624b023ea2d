//! `GatewayError`: every way a request can fail, and the one place that
//! knows the HTTP status and the error body in the caller's dialect.
//!
//! Rendering has no side effects: logging happens where the request ends.
//! Messages never hold a credential, a key secret, or an upstream body.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use crate::chat::Untranslatable;
use crate::dialect::{Dialect, ErrorParts};
use crate::providers::UpstreamError;
use crate::wire::DecodeError;

pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    BadRequest(#[from] DecodeError),
    #[error("{0}")]
    Untranslatable(#[from] Untranslatable),
    /// A header the gateway reads has a value it cannot use.
    #[error("invalid header `{header}`: {message}")]
    BadHeader {
        header: &'static str,
        message: String,
    },
    #[error("{message}")]
    UnknownModel { model: String, message: String },
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("invalid or missing API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// Jurisdiction rules left no target: fail closed, with the evidence.
    #[error("no provider may serve this request: allowed jurisdictions [{}]; excluded: {}", allowed.join(", "), crate::routing::describe_excluded(excluded))]
    NoCompliantProvider {
        allowed: Vec<String>,
        excluded: Vec<crate::routing::Excluded>,
    },
    #[error("{0}")]
    NotFound(String),
    /// A request names something stored that is not there (or not the
    /// caller's): `previous_response_id`, an `item_reference`.
    #[error("{message}")]
    MissingReference {
        param: String,
        code: &'static str,
        message: String,
    },
    #[error("{0}")]
    Gone(String),
    /// An `Idempotency-Key` reused with another body.
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_s: u64,
        headers: crate::limits::RateHeaders,
    },
    #[error("{0}")]
    BudgetExceeded(String),
    /// A held write's answer: denied, timed out, already used...
    #[error("{message}")]
    Approval {
        status: u16,
        code: &'static str,
        message: String,
    },
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("the request did not finish within its deadline of {0}")]
    DeadlineExceeded(String),
    /// The caller went away before the answer (and
    /// `streams.continue_on_disconnect` is off): nobody reads this one.
    #[error("the caller closed the connection before the answer")]
    ClientGone,
    #[error("{0}")]
    Unavailable(String),
    /// The process is at `max_concurrent` and no room came within
    /// `queue_timeout_ms`.
    #[error("{} at its limit of {limit} calls in flight; retry shortly", if *per_key { "this key is" } else { "the gateway is" })]
    Overloaded { limit: u32, per_key: bool },
    /// The request's body did not arrive within the request's deadline.
    #[error("the request body did not arrive within {0}")]
    RequestTimeout(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadRequest(_)
            | GatewayError::Untranslatable(_)
            | GatewayError::BadHeader { .. } => StatusCode::BAD_REQUEST,
            GatewayError::UnknownModel { .. }
            | GatewayError::NotFound(_)
            | GatewayError::MissingReference { .. } => StatusCode::NOT_FOUND,
            GatewayError::Gone(_) => StatusCode::GONE,
            GatewayError::Conflict(_) => StatusCode::UNPROCESSABLE_ENTITY,
            GatewayError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::Unauthorized => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden(_) | GatewayError::NoCompliantProvider { .. } => {
                StatusCode::FORBIDDEN
            }
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::BudgetExceeded(_) => StatusCode::PAYMENT_REQUIRED,
            GatewayError::Approval { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::FORBIDDEN)
            }
            GatewayError::Upstream(e) => {
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            GatewayError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            // nginx's "client closed request"; only ever recorded.
            GatewayError::ClientGone => {
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
            }
            GatewayError::Unavailable(_) | GatewayError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The field at fault, for OpenAI's `param`.
    fn param(&self) -> Option<&str> {
        match self {
            GatewayError::BadRequest(e) if !e.field.is_empty() => Some(&e.field),
            GatewayError::Untranslatable(e) => Some(&e.field),
            GatewayError::BadHeader { header, .. } => Some(header),
            GatewayError::UnknownModel { .. } => Some("model"),
            GatewayError::MissingReference { param, .. } => Some(param),
            _ => None,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            GatewayError::BadRequest(_) => "invalid_request",
            GatewayError::Untranslatable(_) => "untranslatable_field",
            GatewayError::BadHeader { .. } => "invalid_header",
            GatewayError::UnknownModel { .. } => "model_not_found",
            GatewayError::PayloadTooLarge { .. } => "request_too_large",
            GatewayError::Unauthorized => "invalid_api_key",
            GatewayError::Forbidden(_) => "forbidden",
            GatewayError::NoCompliantProvider { .. } => "no_compliant_provider",
            GatewayError::NotFound(_) => "not_found",
            GatewayError::MissingReference { code, .. } => code,
            GatewayError::Gone(_) => "stream_gone",
            GatewayError::Conflict(_) => "idempotency_key_reused",
            GatewayError::RateLimited { .. } => "rate_limit_exceeded",
            GatewayError::BudgetExceeded(_) => "budget_exceeded",
            GatewayError::Approval { code, .. } => code,
            GatewayError::Upstream(e) => e.class.as_str(),
            GatewayError::DeadlineExceeded(_) => "deadline_exceeded",
            GatewayError::ClientGone => "client_gone",
            GatewayError::Unavailable(_) => "unavailable",
            GatewayError::Overloaded { .. } => "overloaded",
            GatewayError::RequestTimeout(_) => "request_timeout",
            GatewayError::Internal(_) => "internal_error",
        }
    }

    /// A short label for logs and metrics.
    pub fn class(&self) -> &str {
        match self {
            GatewayError::Upstream(e) => e.class.as_str(),
            other => other.code(),
        }
    }

    /// The error body in `dialect`.
    pub fn body(&self, dialect: Dialect) -> Vec<u8> {
        let message = self.to_string();
        dialect.error_body(&ErrorParts {
            status: self.status().as_u16(),
            message: &message,
            code: self.code(),
            param: self.param(),
            overloaded: matches!(self, GatewayError::Overloaded { .. })
                || matches!(self, GatewayError::Upstream(e)
                    if e.class == crate::providers::ErrorClass::Overloaded),
        })
    }

    /// The full HTTP response in `dialect`.
    pub fn into_response_in(self, dialect: Dialect) -> Response {
        let status = self.status();
        let retry_after = match &self {
            GatewayError::Upstream(e) => e.retry_after,
            GatewayError::RateLimited { retry_after_s, .. } => {
                Some(std::time::Duration::from_secs(*retry_after_s))
            }
            GatewayError::Overloaded { .. } => Some(std::time::Duration::from_secs(1)),
            _ => None,
        };
        let rate = match &self {
            GatewayError::RateLimited { headers, .. } => Some(*headers),
            _ => None,
        };
        let mut resp = (
            status,
            [(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            Bytes::from(self.body(dialect)),
        )
            .into_response();
        if let Some(after) = retry_after {
            let secs = after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        if let Some(h) = rate {
            crate::limits::write_headers(resp.headers_mut(), &h);
        }
        if status == StatusCode::UNAUTHORIZED && dialect == Dialect::OpenAi {
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_render_in_the_callers_dialect() {
        let e = GatewayError::BadRequest(DecodeError::new("messages[0].role", "bad role"));
        let v: serde_json::Value = serde_json::from_slice(&e.body(Dialect::OpenAi)).unwrap();
        assert_eq!(v["error"]["param"], "messages[0].role");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let v: serde_json::Value = serde_json::from_slice(&e.body(Dialect::Anthropic)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["message"], "`messages[0].role`: bad role");
    }
}
