//! Anthropic's error body: `{"type":"error","error":{"type","message"}}`.

use serde::Serialize;

use super::types::ErrorEnvelopeIn;

/// The error body (its schema is in the OpenAPI document).
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "AnthropicError")]
pub struct Envelope<'a> {
    #[serde(rename = "type")]
    #[schemars(extend("const" = "error"))]
    kind: &'static str,
    error: Body<'a>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "AnthropicErrorBody")]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

pub fn encode_error(kind: &str, message: &str) -> Vec<u8> {
    crate::wire::to_vec(&Envelope {
        kind: "error",
        error: Body { kind, message },
    })
}

/// The Anthropic error type for an HTTP status.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 | 405 | 409 | 415 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The upstream's own error type and message, when the body is Anthropic's
/// error shape.
pub fn decode_error(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let e: ErrorEnvelopeIn = serde_json::from_slice(body).ok()?;
    Some((e.error.kind, e.error.message))
}
