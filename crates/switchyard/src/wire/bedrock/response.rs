//! Converse answers → canonical, Bedrock's error body, and the usage of a
//! whole answer.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::chat::{self, FinishReason, Part, Usage};
use crate::wire::DecodeError;

/// A `Converse` answer: `output.message` holds the assistant turn. It has
/// no id and no model name (the model is the one in the URL); the caller
/// knows both.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseIn {
    output: OutputIn,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    additional_model_response_fields: Option<ResponseFieldsIn>,
}

#[derive(Debug, Deserialize)]
struct OutputIn {
    #[serde(default)]
    message: Option<MessageIn>,
}

#[derive(Debug, Deserialize)]
struct MessageIn {
    #[serde(default)]
    content: Vec<BlockIn>,
}

/// A content block: a union, one member set.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockIn {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUseIn>,
    #[serde(default)]
    reasoning_content: Option<ReasoningIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseIn {
    #[serde(default)]
    tool_use_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReasoningIn {
    #[serde(default)]
    reasoning_text: Option<ReasoningTextIn>,
    /// A blob: base64 in JSON. Kept as that text, which is what goes back.
    #[serde(default)]
    redacted_content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReasoningTextIn {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    signature: Option<String>,
}

/// The fields the request asked for by JSON pointer
/// (`additionalModelResponseFieldPaths`): only the stop sequence that
/// matched, which Anthropic models report and Converse does not.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ResponseFieldsIn {
    #[serde(default)]
    pub(super) stop_sequence: Option<String>,
}

/// `TokenUsage`. `inputTokens` excludes cache reads and writes, as
/// Anthropic's `input_tokens` does.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageIn {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_write_input_tokens: Option<u64>,
}

/// The canonical input count includes cached and cache-written tokens,
/// each counted once, so each is priced once at its own rate.
/// (`totalTokens` is not read: it is the sum of the others.)
pub(super) fn decode_usage(u: &UsageIn) -> Usage {
    let cached = u.cache_read_input_tokens.unwrap_or(0);
    let written = u.cache_write_input_tokens.unwrap_or(0);
    Usage {
        input_tokens: u
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cached)
            .saturating_add(written),
        output_tokens: u.output_tokens.unwrap_or(0),
        cached_input_tokens: cached,
        cache_write_tokens: written,
        // Converse reports reasoning inside outputTokens, not apart.
        reasoning_tokens: 0,
        web_search_requests: 0,
    }
    .bounded()
}

/// A Converse `stopReason` in canonical terms.
///
/// - `guardrail_intervened` and `content_filtered`: content was blocked,
///   a content filter in every caller's dialect.
/// - `model_context_window_exceeded`: the answer was cut for length, as
///   Anthropic's reason of the same name.
/// - `malformed_model_output` and `malformed_tool_use`: the model produced
///   something Bedrock could not parse; the answer ends there with what it
///   has, which callers read as a plain stop (they have no closer reason).
pub(super) fn decode_stop(reason: &str) -> FinishReason {
    match reason {
        "tool_use" => FinishReason::ToolCalls,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "stop_sequence" => FinishReason::StopSequence,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// Decodes a `Converse` answer. `id` and `model` stay empty: Converse
/// gives neither, and the caller fills them from what it sent.
pub fn decode_response(body: &[u8]) -> Result<chat::Response, DecodeError> {
    let r: ResponseIn = serde_json::from_slice(body).map_err(|e| {
        DecodeError::new(
            "",
            format!("upstream response is not a Converse answer: {e}"),
        )
    })?;
    let blocks = r.output.message.map(|m| m.content).unwrap_or_default();
    let mut content = Vec::with_capacity(blocks.len());
    for b in blocks {
        content.extend(decode_block(b));
    }
    Ok(chat::Response {
        id: String::new(),
        model: String::new(),
        created: 0,
        content,
        finish: r.stop_reason.as_deref().map(decode_stop),
        stop_sequence: r
            .additional_model_response_fields
            .and_then(|f| f.stop_sequence),
        usage: r.usage.as_ref().map(decode_usage),
    })
}

/// One content block as a canonical part; `None` for blocks the canonical
/// model has no place for in an answer (citations, images, ...).
fn decode_block(b: BlockIn) -> Option<Part> {
    if let Some(t) = b.tool_use {
        return Some(Part::ToolCall {
            id: t.tool_use_id.unwrap_or_default(),
            name: t.name.unwrap_or_default(),
            arguments: t
                .input
                .map(|i| i.get().to_owned())
                .unwrap_or_else(|| "{}".into()),
        });
    }
    if let Some(r) = b.reasoning_content {
        if let Some(data) = r.redacted_content {
            return Some(Part::RedactedThinking { data });
        }
        let t = r.reasoning_text?;
        return Some(Part::Thinking {
            text: t.text.unwrap_or_default(),
            // An empty signature is no signature: nothing can verify it.
            signature: t.signature.filter(|s| !s.is_empty()),
        });
    }
    b.text.map(|text| Part::Text {
        text,
        cache_control: None,
    })
}

/// Reads only the usage of a whole `Converse` answer.
pub fn peek_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
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

/// The message of a Bedrock error body, `{"message": "..."}` (some
/// services and exceptions spell it `Message`). The error's code is not in
/// the body but in the `x-amzn-ErrorType` header, which the caller reads;
/// so the code here is always `None`.
pub fn decode_error(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    #[derive(Deserialize)]
    struct ErrorIn {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "Message")]
        message_upper: Option<String>,
    }
    let e: ErrorIn = serde_json::from_slice(body).ok()?;
    let message = e.message.or(e.message_upper)?;
    Some((None, Some(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Converse answer as the API reference describes it (Claude with
    /// extended thinking calling a tool): reasoning with its signature,
    /// text, then the call, in the model's order.
    #[test]
    fn an_answer_with_reasoning_and_a_tool_call_decodes_in_order() {
        let body = br#"{
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "The user wants the weather.", "signature": "ErUBCkYIBBgCIkDx"}}},
                {"text": "Let me check."},
                {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather", "input": {"city": "Paris"}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 412, "outputTokens": 96, "totalTokens": 508},
            "metrics": {"latencyMs": 2110}
        }"#;
        let r = decode_response(body).unwrap();
        assert_eq!(
            r.content,
            [
                Part::Thinking {
                    text: "The user wants the weather.".into(),
                    signature: Some("ErUBCkYIBBgCIkDx".into()),
                },
                Part::Text {
                    text: "Let me check.".into(),
                    cache_control: None,
                },
                Part::ToolCall {
                    id: "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city": "Paris"}"#.into(),
                },
            ]
        );
        assert_eq!(r.finish, Some(FinishReason::ToolCalls));
        assert_eq!((r.id.as_str(), r.model.as_str()), ("", ""));
        let u = r.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (412, 96));
    }

    #[test]
    fn redacted_reasoning_keeps_its_bytes_as_sent() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[{"reasoningContent":{"redactedContent":"RW5jcnlwdGVk"}},{"text":"Done."}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3},"metrics":{"latencyMs":1}}"#;
        let r = decode_response(body).unwrap();
        assert_eq!(
            r.content[0],
            Part::RedactedThinking {
                data: "RW5jcnlwdGVk".into()
            }
        );
        assert_eq!(r.finish, Some(FinishReason::Stop));
    }

    /// Bedrock's prompt caching page: `inputTokens` excludes what was read
    /// from and written to the cache. Canonical input counts each once.
    #[test]
    fn cached_input_is_counted_once() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"ok"}]}},"stopReason":"end_turn","usage":{"inputTokens":20,"outputTokens":10,"totalTokens":1530,"cacheReadInputTokens":1000,"cacheWriteInputTokens":500},"metrics":{"latencyMs":1}}"#;
        let want = Usage {
            input_tokens: 1520,
            output_tokens: 10,
            cached_input_tokens: 1000,
            cache_write_tokens: 500,
            reasoning_tokens: 0,
            web_search_requests: 0,
        };
        assert_eq!(decode_response(body).unwrap().usage, Some(want));
        assert_eq!(peek_usage(body), Some(want));
        assert_eq!(want.total(), 1530, "the total Bedrock reports");
        assert_eq!(peek_usage(br#"{"output":{}}"#), None);
        assert_eq!(peek_usage(b"not json"), None);
    }

    #[test]
    fn stop_reasons_map_to_canonical_finishes() {
        for (reason, want) in [
            ("end_turn", FinishReason::Stop),
            ("tool_use", FinishReason::ToolCalls),
            ("max_tokens", FinishReason::Length),
            ("stop_sequence", FinishReason::StopSequence),
            ("guardrail_intervened", FinishReason::ContentFilter),
            ("content_filtered", FinishReason::ContentFilter),
            ("malformed_model_output", FinishReason::Stop),
            ("malformed_tool_use", FinishReason::Stop),
            ("model_context_window_exceeded", FinishReason::Length),
            ("a_reason_yet_to_come", FinishReason::Stop),
        ] {
            assert_eq!(decode_stop(reason), want, "{reason}");
        }
    }

    /// The stop sequence that matched comes back in
    /// `additionalModelResponseFields` when the request asked for it.
    #[test]
    fn the_matched_stop_sequence_is_read_from_the_additional_fields() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"1, 2"}]}},"stopReason":"stop_sequence","additionalModelResponseFields":{"stop_sequence":", 3"},"usage":{"inputTokens":5,"outputTokens":4,"totalTokens":9},"metrics":{"latencyMs":1}}"#;
        let r = decode_response(body).unwrap();
        assert_eq!(r.finish, Some(FinishReason::StopSequence));
        assert_eq!(r.stop_sequence.as_deref(), Some(", 3"));
    }

    #[test]
    fn what_is_not_an_answer_is_a_decode_error() {
        for body in [&b"{not json"[..], b"[]", br#"{"message":"boom"}"#] {
            let e = decode_response(body).unwrap_err();
            assert!(e.message.contains("not a Converse answer"), "{}", e.message);
        }
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            decode_error(
                br#"{"message":"The security token included in the request is invalid."}"#
            ),
            Some((
                None,
                Some("The security token included in the request is invalid.".into())
            ))
        );
        assert_eq!(
            decode_error(br#"{"Message":"User is not authorized"}"#),
            Some((None, Some("User is not authorized".into())))
        );
        assert_eq!(decode_error(br#"{"error":"x"}"#), None);
        assert_eq!(decode_error(b"<html>"), None);
    }
}
