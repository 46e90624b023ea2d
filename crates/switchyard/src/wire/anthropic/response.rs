//! Messages responses: decode an upstream's answer, encode one for a caller.

use super::request::tool_input;
use super::types::*;
use crate::chat::{self, FinishReason, Part, Usage};
use crate::wire::DecodeError;

/// Anthropic counts cache reads and writes apart from `input_tokens`; the
/// canonical input count includes them.
pub fn decode_usage(u: &UsageIn) -> Usage {
    let cached = u.cache_read_input_tokens.unwrap_or(0);
    let written = u.cache_creation_input_tokens.unwrap_or(0);
    Usage {
        input_tokens: u
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cached)
            .saturating_add(written),
        output_tokens: u.output_tokens.unwrap_or(0),
        cached_input_tokens: cached,
        cache_write_tokens: written,
        reasoning_tokens: 0,
    }
    .bounded()
}

pub fn encode_usage(u: &Usage) -> UsageOut {
    UsageOut {
        input_tokens: u
            .input_tokens
            .saturating_sub(u.cached_input_tokens)
            .saturating_sub(u.cache_write_tokens),
        output_tokens: u.output_tokens,
        cache_creation_input_tokens: u.cache_write_tokens,
        cache_read_input_tokens: u.cached_input_tokens,
    }
}

pub fn decode_stop(reason: &str) -> FinishReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "stop_sequence" => FinishReason::StopSequence,
        "tool_use" => FinishReason::ToolCalls,
        "pause_turn" => FinishReason::PauseTurn,
        "refusal" => FinishReason::Refusal,
        _ => FinishReason::Stop,
    }
}

pub fn encode_stop(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::StopSequence => "stop_sequence",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::PauseTurn => "pause_turn",
        FinishReason::ContentFilter | FinishReason::Refusal => "refusal",
    }
}

/// Reads only the usage of a Messages response body (same-dialect path).
pub fn peek_usage(body: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(default)]
        usage: Option<UsageIn>,
    }
    serde_json::from_slice::<Peek>(body)
        .ok()?
        .usage
        .as_ref()
        .map(decode_usage)
}

pub fn decode_response(body: &[u8]) -> Result<chat::Response, DecodeError> {
    let r: ResponseIn = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new("", format!("upstream response is not a message: {e}")))?;
    let mut content = Vec::with_capacity(r.content.len());
    for b in r.content {
        match b.kind.as_str() {
            "text" => content.push(Part::Text {
                text: b.text.unwrap_or_default(),
                cache_control: None,
            }),
            "tool_use" => content.push(Part::ToolCall {
                id: b.id.unwrap_or_default(),
                name: b.name.unwrap_or_default(),
                arguments: b
                    .input
                    .map(|r| r.get().to_owned())
                    .unwrap_or_else(|| "{}".into()),
            }),
            "thinking" => content.push(Part::Thinking {
                text: b.thinking.unwrap_or_default(),
                signature: b.signature,
            }),
            "redacted_thinking" => content.push(Part::RedactedThinking {
                data: b.data.unwrap_or_default(),
            }),
            // Server-tool blocks only answer server tools, which only a
            // same-dialect call can request; that path forwards the body.
            _ => {}
        }
    }
    Ok(chat::Response {
        id: r.id.unwrap_or_default(),
        model: r.model.unwrap_or_default(),
        created: 0,
        content,
        finish: r.stop_reason.as_deref().map(decode_stop),
        stop_sequence: r.stop_sequence,
        usage: r.usage.as_ref().map(decode_usage),
    })
}

/// Encodes a canonical answer for an Anthropic-dialect caller. Fails only
/// when the upstream produced tool arguments that are not a JSON object,
/// which a Messages `tool_use.input` cannot carry.
pub fn encode_response(r: &chat::Response) -> Result<Vec<u8>, DecodeError> {
    let inputs: Vec<Option<Box<serde_json::value::RawValue>>> = r
        .content
        .iter()
        .map(|p| match p {
            Part::ToolCall { arguments, .. } => tool_input(arguments).map(Some).ok_or_else(|| {
                DecodeError::new(
                    "tool_calls",
                    "the upstream returned tool-call arguments that are not a JSON object",
                )
            }),
            _ => Ok(None),
        })
        .collect::<Result<_, _>>()?;
    let mut content = Vec::with_capacity(r.content.len());
    for (p, input) in r.content.iter().zip(&inputs) {
        match (p, input) {
            (Part::Text { text, .. }, _) => content.push(ResponseBlockOut::Text { text }),
            (Part::ToolCall { id, name, .. }, Some(input)) => {
                content.push(ResponseBlockOut::ToolUse { id, name, input })
            }
            (Part::Thinking { text, signature }, _) => content.push(ResponseBlockOut::Thinking {
                thinking: text,
                signature: signature.as_deref().unwrap_or(""),
            }),
            (Part::RedactedThinking { data }, _) => {
                content.push(ResponseBlockOut::RedactedThinking { data })
            }
            _ => {}
        }
    }
    let out = ResponseOut {
        id: &r.id,
        kind: "message",
        role: "assistant",
        model: &r.model,
        content,
        stop_reason: r.finish.as_ref().map(encode_stop),
        stop_sequence: r.stop_sequence.as_deref(),
        usage: encode_usage(&r.usage.unwrap_or_default()),
    };
    Ok(crate::wire::to_vec(&out))
}
