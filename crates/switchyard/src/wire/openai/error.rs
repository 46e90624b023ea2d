//! OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.

use serde::Serialize;

use super::types::ErrorEnvelopeIn;

/// The error body (its schema is in the OpenAPI document).
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "OpenAiError")]
pub struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "OpenAiErrorBody")]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

pub fn encode_error(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Vec<u8> {
    crate::wire::to_vec(&Envelope {
        error: Body {
            message,
            kind,
            param,
            code,
        },
    })
}

/// The upstream's own error type (or code) and message, when the body is
/// OpenAI's error shape.
pub fn decode_error(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let e: ErrorEnvelopeIn = serde_json::from_slice(body).ok()?;
    let code = e.error.code.and_then(|c| c.as_str().map(str::to_owned));
    // `code` is the more specific of the two (`insufficient_quota` under
    // type `insufficient_quota`, `invalid_api_key` under
    // `invalid_request_error`).
    Some((code.or(e.error.kind), e.error.message))
}
