//! Chat Completions responses: decode an upstream's answer, encode one for a
//! caller, and read usage.

use super::types::*;
use crate::chat::{self, FinishReason, Part, Usage};
use crate::wire::{DecodeError, TextOrList};

pub fn decode_usage(u: &UsageIn) -> Usage {
    Usage {
        input_tokens: u.prompt_tokens,
        output_tokens: u.completion_tokens,
        cached_input_tokens: u
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
        cache_write_tokens: 0,
        reasoning_tokens: u
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
        // Chat Completions usage counts no searches (`web_search_options`
        // is billed by the call, unreported).
        web_search_requests: 0,
    }
    .bounded()
}

/// `stop` after tool calls means the turn ended to call them.
pub fn finish_with_calls(reason: FinishReason, called: bool) -> FinishReason {
    if reason == FinishReason::Stop && called {
        FinishReason::ToolCalls
    } else {
        reason
    }
}

pub fn encode_usage(u: &Usage) -> UsageOut {
    UsageOut {
        prompt_tokens: u.input_tokens,
        completion_tokens: u.output_tokens,
        total_tokens: u.total(),
        prompt_tokens_details: CachedOut {
            cached_tokens: u.cached_input_tokens,
        },
        completion_tokens_details: ReasoningOut {
            reasoning_tokens: u.reasoning_tokens,
        },
    }
}

pub fn decode_finish(reason: &str) -> FinishReason {
    match reason {
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

pub fn encode_finish(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::StopSequence | FinishReason::PauseTurn => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter | FinishReason::Refusal => "content_filter",
    }
}

/// Reads only the usage of an OpenAI-dialect response body: the
/// same-dialect path forwards the body untouched and needs nothing else.
/// One walk finds `usage` and serde reads only that (the whole body where
/// the walk declines).
pub fn peek_usage(body: &[u8]) -> Option<Usage> {
    match crate::wire::scan::decoded_member::<UsageIn>(body, "usage") {
        Some(usage) => usage.as_ref().map(decode_usage),
        None => peek_usage_whole(body),
    }
}

/// [`peek_usage`] by serde over the whole body.
fn peek_usage_whole(body: &[u8]) -> Option<Usage> {
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
    let r: ResponseIn = serde_json::from_slice(body).map_err(|e| {
        DecodeError::new(
            "",
            format!("upstream response is not a chat completion: {e}"),
        )
    })?;
    let Some(choice) = r.choices.into_iter().next() else {
        return Err(DecodeError::new(
            "choices",
            "upstream response has no choices",
        ));
    };
    let mut content = Vec::new();
    let msg = choice.message;
    if let Some(r) = msg.reasoning_content.filter(|r| !r.is_empty()) {
        content.push(Part::Thinking {
            text: r,
            signature: None,
        });
    }
    match msg.content {
        Some(TextOrList::Text(t)) if !t.is_empty() => content.push(Part::Text {
            text: t,
            cache_control: None,
        }),
        Some(TextOrList::List(ps)) => {
            for p in ps {
                if let Some(t) = p.text {
                    content.push(Part::Text {
                        text: t,
                        cache_control: None,
                    });
                }
            }
        }
        _ => {}
    }
    let refused = msg.refusal.is_some();
    if let Some(r) = msg.refusal {
        content.push(Part::Text {
            text: r,
            cache_control: None,
        });
    }
    for tc in msg.tool_calls.unwrap_or_default() {
        content.push(Part::ToolCall {
            id: tc.id,
            name: tc.function.name,
            arguments: tc.function.arguments,
        });
    }
    // A refusal arrives with finish_reason "stop"; say what it was. So do
    // tool calls forced by tool_choice (OpenAI, and several compatible
    // servers): the turn ended to call them.
    let called = content.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let finish = match choice.finish_reason.as_deref() {
        _ if refused => Some(FinishReason::Refusal),
        Some(f) => Some(finish_with_calls(decode_finish(f), called)),
        None => None,
    };
    Ok(chat::Response {
        id: r.id.unwrap_or_default(),
        model: r.model.unwrap_or_default(),
        created: r.created.unwrap_or(0),
        content,
        finish,
        stop_sequence: None,
        usage: r.usage.as_ref().map(decode_usage),
    })
}

pub fn encode_response(r: &chat::Response) -> Vec<u8> {
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    for p in &r.content {
        match p {
            Part::Text { text: t, .. } => text.get_or_insert_with(String::new).push_str(t),
            Part::Thinking { text: t, .. } => reasoning.get_or_insert_with(String::new).push_str(t),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => tool_calls.push(ToolCallOut {
                id,
                kind: "function",
                function: FunctionCallOut { name, arguments },
            }),
            // A search the provider ran is its own step towards the answer,
            // and Chat Completions has no item for it: the answer's text,
            // which is what the search was for, is all there. Nothing the
            // caller asked for is dropped here: no Chat Completions request
            // can ask for a search (`web_search_options` is refused), so
            // this only leaves out how another dialect's provider worked.
            Part::WebSearch(_) => {}
            Part::RedactedThinking { .. }
            | Part::Image(_)
            | Part::Document(_)
            | Part::ToolResult { .. } => {}
        }
    }
    let out = ResponseOut {
        id: &r.id,
        object: "chat.completion",
        created: r.created,
        model: &r.model,
        choices: [ChoiceOut {
            index: 0,
            message: ResponseMessageOut {
                role: "assistant",
                content: text,
                refusal: None,
                tool_calls,
                reasoning_content: reasoning,
            },
            finish_reason: r.finish.as_ref().map(encode_finish),
            logprobs: None,
        }],
        usage: r.usage.as_ref().map(encode_usage),
    };
    crate::wire::to_vec(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The walk finds the same usage serde would (what it leaves to serde,
    /// doubled or escaped keys and broken bodies: `scan`'s tests).
    #[test]
    fn usage_is_peeked_as_serde_reads_it() {
        let bodies = [
            r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"usage: {\"x\":1}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4}}}"#,
            r#"{"usage":null,"choices":[]}"#,
            r#"{"choices":[{"message":{"usage":{"prompt_tokens":1}}}]}"#,
        ];
        let walked = |b: &str| peek_usage(b.as_bytes());
        for body in bodies {
            assert_eq!(walked(body), peek_usage_whole(body.as_bytes()), "{body}");
        }
        assert!(walked(bodies[0]).is_some());
    }

    /// A provider's search is its own step: a Chat Completions caller
    /// gets the answer's text, whole.
    #[test]
    fn a_search_leaves_the_text_whole() {
        let text = |t: &str| Part::Text {
            text: t.into(),
            cache_control: None,
        };
        let r = chat::Response {
            id: "x".into(),
            model: "m".into(),
            created: 1,
            content: vec![
                text("Let me look. "),
                Part::WebSearch(chat::WebSearch::default()),
                text("Spain won."),
            ],
            finish: Some(FinishReason::Stop),
            stop_sequence: None,
            usage: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&encode_response(&r)).unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Let me look. Spain won."
        );
    }

    #[test]
    fn peeks_usage_without_the_rest() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":1}}}"#;
        assert_eq!(
            peek_usage(body),
            Some(Usage {
                input_tokens: 9,
                output_tokens: 3,
                cached_input_tokens: 4,
                cache_write_tokens: 0,
                reasoning_tokens: 1,
                web_search_requests: 0,
            })
        );
        assert_eq!(peek_usage(b"{}"), None);
    }
}
