//! Messages responses: decode an upstream's answer, encode one for a caller.

use super::request::tool_input;
use super::types::*;
use serde_json::value::RawValue;

use crate::chat::{self, FinishReason, Part, Usage, WebSearch, WebSource};
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
        web_search_requests: u
            .server_tool_use
            .and_then(|s| s.web_search_requests)
            .unwrap_or(0),
    }
    .bounded()
}

/// The query of a `web_search` server tool call's `input`.
pub fn search_query(input: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Input {
        query: String,
    }
    serde_json::from_str::<Input>(input).ok().map(|i| i.query)
}

/// A `web_search_tool_result`'s `content`: the pages found, or the error
/// code in their place. Anything else reads as no results.
pub fn search_results(content: Option<&RawValue>) -> (Vec<WebSource>, Option<String>) {
    match content.and_then(|c| serde_json::from_str::<SearchResultsIn>(c.get()).ok()) {
        Some(SearchResultsIn::Results(rs)) => (
            rs.into_iter()
                .filter_map(|r| {
                    Some(WebSource {
                        url: r.url?,
                        title: r.title,
                    })
                })
                .collect(),
            None,
        ),
        Some(SearchResultsIn::Error(e)) => (
            Vec::new(),
            Some(e.error_code.unwrap_or_else(|| "unavailable".into())),
        ),
        None => (Vec::new(), None),
    }
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

/// Reads only the usage of a Messages response body (same-dialect path):
/// one walk finds `usage` and serde reads only that (the whole body where
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
    let r: ResponseIn = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new("", format!("upstream response is not a message: {e}")))?;
    let mut content = Vec::with_capacity(r.content.len());
    for b in r.content {
        match b.kind.as_str() {
            "server_tool_use" if b.name.as_deref() == Some("web_search") => {
                content.push(Part::WebSearch(WebSearch {
                    id: b.id.unwrap_or_default(),
                    queries: b
                        .input
                        .as_deref()
                        .and_then(|i| search_query(i.get()))
                        .into_iter()
                        .collect(),
                    ..WebSearch::default()
                }));
            }
            // The results complete the call they answer, in its place.
            "web_search_tool_result" => {
                let (sources, error) = search_results(b.content.as_deref());
                let id = b.tool_use_id.unwrap_or_default();
                let call = content.iter_mut().rev().find_map(|p| match p {
                    Part::WebSearch(s) if s.id == id => Some(s),
                    _ => None,
                });
                match call {
                    Some(s) => {
                        s.sources = sources;
                        s.error = error;
                    }
                    None => content.push(Part::WebSearch(WebSearch {
                        id,
                        queries: Vec::new(),
                        sources,
                        error,
                    })),
                }
            }
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
            // Other server tools (web fetch, code execution...) only a
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
            // Another provider's search has no faithful Messages form: a
            // `web_search_tool_result` carries Anthropic's own
            // `encrypted_content`, which Messages wants back verbatim next
            // turn, so blocks made up here would break the caller's next
            // call. The answer's text holds what the search was for, and
            // no Messages caller asked for it: its server tools are
            // refused on every other target (an Anthropic upstream's
            // blocks reach it through the relay, untouched).
            (Part::WebSearch(_), _) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The walk finds the same usage serde would (what it leaves to serde,
    /// doubled or escaped keys and broken bodies: `scan`'s tests).
    #[test]
    fn usage_is_peeked_as_serde_reads_it() {
        let bodies = [
            r#"{"id":"m","type":"message","content":[{"type":"text","text":"\"usage\":{}"}],"usage":{"input_tokens":9,"output_tokens":3,"cache_read_input_tokens":4}}"#,
            r#"{"usage":null,"content":[]}"#,
            r#"{"content":[{"type":"tool_use","input":{"usage":{"input_tokens":1}}}]}"#,
        ];
        let walked = |b: &str| peek_usage(b.as_bytes());
        for body in bodies {
            assert_eq!(walked(body), peek_usage_whole(body.as_bytes()), "{body}");
        }
        assert!(walked(bodies[0]).is_some());
    }

    /// The answer of Anthropic's web search tool documentation
    /// (docs.anthropic.com/en/docs/agents-and-tools/tool-use/web-search-tool):
    /// the call and its results are one search, in the call's place, and
    /// the searches are counted for their price.
    #[test]
    fn a_web_search_answer_decodes_to_one_search_and_its_count() {
        let body = br#"{"role":"assistant","content":[{"type":"text","text":"I'll search for when Claude Shannon was born."},{"type":"server_tool_use","id":"srvtoolu_01WYG3ziw53XMcoyKL4XcZmE","name":"web_search","input":{"query":"claude shannon birth date"}},{"type":"web_search_tool_result","tool_use_id":"srvtoolu_01WYG3ziw53XMcoyKL4XcZmE","content":[{"type":"web_search_result","url":"https://en.wikipedia.org/wiki/Claude_Shannon","title":"Claude Shannon - Wikipedia","encrypted_content":"EqgfCioIARgBIiQ3YTAwMjY1Mi1mZjM5LTQ1NGUtODgxNC1kNjNjNTk1ZWI3Y","page_age":"April 30, 2025"}]},{"text":"Based on the search results, ","type":"text"},{"text":"Claude Shannon was born on April 30, 1916, in Petoskey, Michigan","type":"text","citations":[{"type":"web_search_result_location","url":"https://en.wikipedia.org/wiki/Claude_Shannon","title":"Claude Shannon - Wikipedia","encrypted_index":"Eo8BCioIAhgBIiQyYjQ0OWJmZi1lNm","cited_text":"Claude Elwood Shannon (April 30, 1916 - February 24, 2001) was an American mathematician"}]}],"id":"msg_a930390d3a","usage":{"input_tokens":6039,"output_tokens":931,"server_tool_use":{"web_search_requests":1}},"stop_reason":"end_turn"}"#;
        let r = decode_response(body).unwrap();
        assert_eq!(r.content.len(), 4, "{:?}", r.content);
        assert_eq!(
            r.content[1],
            Part::WebSearch(WebSearch {
                id: "srvtoolu_01WYG3ziw53XMcoyKL4XcZmE".into(),
                queries: vec!["claude shannon birth date".into()],
                sources: vec![WebSource {
                    url: "https://en.wikipedia.org/wiki/Claude_Shannon".into(),
                    title: Some("Claude Shannon - Wikipedia".into()),
                }],
                error: None,
            })
        );
        assert!(
            matches!(&r.content[3], Part::Text { text, .. } if text.starts_with("Claude Shannon was born"))
        );
        let u = r.usage.unwrap();
        assert_eq!((u.input_tokens, u.web_search_requests), (6039, 1));
        assert_eq!(peek_usage(body).unwrap().web_search_requests, 1);
    }

    /// A search that failed answers with an error object, not a list.
    #[test]
    fn a_failed_search_keeps_its_error_code() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"server_tool_use","id":"srvtoolu_a93jad","name":"web_search","input":{"query":"x"}},{"type":"web_search_tool_result","tool_use_id":"srvtoolu_a93jad","content":{"type":"web_search_tool_result_error","error_code":"max_uses_exceeded"}},{"type":"text","text":"I could not search."}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":5}}"#;
        let r = decode_response(body).unwrap();
        match &r.content[0] {
            Part::WebSearch(s) => {
                assert_eq!(s.error.as_deref(), Some("max_uses_exceeded"));
                assert!(s.sources.is_empty());
                assert_eq!(s.queries, ["x"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.content.len(), 2);
    }

    /// Another provider's search has no Messages form an Anthropic client
    /// could send back; the text stays.
    #[test]
    fn an_anthropic_caller_gets_the_text_of_another_providers_search() {
        let r = chat::Response {
            id: "m".into(),
            model: "gemini-2.5-flash".into(),
            created: 0,
            content: vec![
                Part::WebSearch(WebSearch {
                    queries: vec!["q".into()],
                    ..WebSearch::default()
                }),
                Part::Text {
                    text: "Spain won.".into(),
                    cache_control: None,
                },
            ],
            finish: Some(FinishReason::Stop),
            stop_sequence: None,
            usage: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&encode_response(&r).unwrap()).unwrap();
        assert_eq!(
            v["content"],
            serde_json::json!([{"type":"text","text":"Spain won."}])
        );
    }
}
