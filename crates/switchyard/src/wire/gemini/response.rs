//! `GenerateContentResponse` → canonical, and Gemini's error body.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::id_with_signature;
use crate::chat::{self, FinishReason, Part, Usage, WebSearch, WebSource};
use crate::wire::DecodeError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseIn {
    #[serde(default)]
    pub candidates: Vec<CandidateIn>,
    #[serde(default)]
    pub usage_metadata: Option<UsageIn>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub response_id: Option<String>,
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedbackIn>,
    #[serde(default)]
    pub error: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedbackIn {
    #[serde(default)]
    pub block_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateIn {
    #[serde(default)]
    pub content: Option<ContentIn>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub grounding_metadata: Option<GroundingIn>,
}

/// What grounding with Google Search reports: the queries it ran and the
/// pages that ground the answer. (`groundingSupports`, which sentence
/// each page supports, and `searchEntryPoint`, the widget Google asks apps
/// to show, have no canonical place.)
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct GroundingIn {
    #[serde(default)]
    pub web_search_queries: Vec<String>,
    #[serde(default)]
    pub grounding_chunks: Vec<ChunkIn>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct ChunkIn {
    #[serde(default)]
    pub web: Option<WebIn>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct WebIn {
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

impl GroundingIn {
    /// The search this grounding reports; `None` when it reports none
    /// (grounding by other means: retrieval, maps).
    pub fn search(self) -> Option<WebSearch> {
        let sources: Vec<WebSource> = self
            .grounding_chunks
            .into_iter()
            .filter_map(|c| {
                let web = c.web?;
                Some(WebSource {
                    url: web.uri?,
                    title: web.title,
                })
            })
            .collect();
        if self.web_search_queries.is_empty() && sources.is_empty() {
            return None;
        }
        Some(WebSearch {
            id: String::new(),
            queries: self.web_search_queries,
            sources,
            error: None,
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct ContentIn {
    #[serde(default)]
    pub parts: Vec<PartIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartIn {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub thought: Option<bool>,
    #[serde(default)]
    pub function_call: Option<FunctionCallIn>,
    #[serde(default)]
    pub thought_signature: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct FunctionCallIn {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub args: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct UsageIn {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: u64,
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
}

pub fn decode_usage(u: &UsageIn) -> Usage {
    Usage {
        input_tokens: u
            .prompt_token_count
            .saturating_add(u.tool_use_prompt_token_count),
        output_tokens: u
            .candidates_token_count
            .saturating_add(u.thoughts_token_count),
        cached_input_tokens: u.cached_content_token_count,
        cache_write_tokens: 0,
        reasoning_tokens: u.thoughts_token_count,
        // Google bills grounding by the prompt or by the query, past a
        // free daily allowance, and reports neither in usageMetadata.
        web_search_requests: 0,
    }
    .bounded()
}

/// Reads only the usage of a `GenerateContentResponse` body: the
/// same-dialect path forwards the answer as it came.
pub fn peek_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Peek {
        #[serde(default)]
        usage_metadata: Option<UsageIn>,
    }
    serde_json::from_slice::<Peek>(body)
        .ok()?
        .usage_metadata
        .as_ref()
        .map(decode_usage)
}

pub fn decode_finish(reason: &str, called_tools: bool) -> FinishReason {
    match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        _ if called_tools => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// One function-call part as a canonical tool call; `n` numbers calls
/// without a Gemini id.
pub fn tool_call(
    fc: FunctionCallIn,
    signature: Option<&str>,
    n: usize,
    response_id: Option<&str>,
) -> (String, String, String) {
    // Ids we make up carry part of the response id, so calls from different
    // turns of one conversation do not share an id.
    let plain = fc.id.filter(|i| !i.is_empty()).unwrap_or_else(|| {
        let tag: String = response_id
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        if tag.is_empty() {
            format!("call_{n}")
        } else {
            format!("call_{tag}_{n}")
        }
    });
    let id = match signature {
        Some(sig) => id_with_signature(&plain, sig),
        None => plain,
    };
    let args = fc
        .args
        .map(|a| a.get().to_owned())
        .unwrap_or_else(|| "{}".into());
    (id, fc.name, args)
}

pub fn decode_response(body: &[u8]) -> Result<chat::Response, DecodeError> {
    let r: ResponseIn = serde_json::from_slice(body).map_err(|e| {
        DecodeError::new(
            "",
            format!("upstream response is not a GenerateContentResponse: {e}"),
        )
    })?;
    let mut content = Vec::new();
    let mut finish = None;
    let mut calls = 0;
    if let Some(c) = r.candidates.into_iter().next() {
        // The search grounds the whole answer: it came first.
        content.extend(
            c.grounding_metadata
                .and_then(GroundingIn::search)
                .map(Part::WebSearch),
        );
        for p in c.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(fc) = p.function_call {
                let (id, name, arguments) = tool_call(
                    fc,
                    p.thought_signature.as_deref(),
                    calls,
                    r.response_id.as_deref(),
                );
                calls += 1;
                content.push(Part::ToolCall {
                    id,
                    name,
                    arguments,
                });
            } else if let Some(text) = p.text {
                content.push(if p.thought == Some(true) {
                    Part::Thinking {
                        text,
                        signature: None,
                    }
                } else {
                    Part::Text {
                        text,
                        cache_control: None,
                    }
                });
            }
        }
        finish = c
            .finish_reason
            .as_deref()
            .map(|f| decode_finish(f, calls > 0));
    } else if r.prompt_feedback.and_then(|f| f.block_reason).is_some() {
        finish = Some(FinishReason::ContentFilter);
    }
    Ok(chat::Response {
        id: r.response_id.unwrap_or_default(),
        model: r.model_version.unwrap_or_default(),
        created: 0,
        content,
        finish,
        stop_sequence: None,
        usage: r.usage_metadata.as_ref().map(decode_usage),
    })
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelopeIn {
    error: ErrorIn,
}

#[derive(Debug, Deserialize)]
struct ErrorIn {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Vec<DetailIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DetailIn {
    #[serde(rename = "@type", default)]
    kind: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    retry_delay: Option<String>,
}

/// What a Gemini error body says: its most specific code (an ErrorInfo
/// `reason` such as `API_KEY_INVALID`, else the canonical status), the
/// message, and a RetryInfo delay in seconds.
pub fn decode_error(body: &[u8]) -> Option<(Option<String>, Option<String>, Option<f64>)> {
    let e: ErrorEnvelopeIn = serde_json::from_slice(body).ok()?;
    let mut reason = None;
    let mut retry = None;
    for d in e.error.details {
        let kind = d.kind.unwrap_or_default();
        if kind.ends_with("ErrorInfo") {
            reason = d.reason;
        } else if kind.ends_with("RetryInfo") {
            retry = d
                .retry_delay
                .and_then(|s| s.strip_suffix('s').and_then(|n| n.parse::<f64>().ok()));
        }
    }
    Some((reason.or(e.error.status), e.error.message, retry))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts an upstream reports are bounded, in every dialect, so sums
    /// never overflow and never exceed the database's integers.
    #[test]
    fn absurd_usage_counts_are_bounded() {
        use crate::chat::MAX_TOKEN_COUNT;
        let max = u64::MAX;
        let g = decode_usage(&UsageIn {
            prompt_token_count: max,
            candidates_token_count: max,
            thoughts_token_count: max,
            cached_content_token_count: max,
            tool_use_prompt_token_count: max,
        });
        let a = crate::wire::anthropic::response::decode_usage(
            &crate::wire::anthropic::types::UsageIn {
                input_tokens: Some(max),
                output_tokens: Some(max),
                cache_creation_input_tokens: Some(max),
                cache_read_input_tokens: Some(max),
                server_tool_use: None,
            },
        );
        let o: crate::wire::openai::types::UsageIn = serde_json::from_str(&format!(
            r#"{{"prompt_tokens":{max},"completion_tokens":{max},"prompt_tokens_details":{{"cached_tokens":{max}}}}}"#
        ))
        .unwrap();
        for u in [g, a, crate::wire::openai::response::decode_usage(&o)] {
            assert_eq!(u.input_tokens, MAX_TOKEN_COUNT, "{u:?}");
            assert_eq!(u.output_tokens, MAX_TOKEN_COUNT, "{u:?}");
            assert!(u.cached_input_tokens <= MAX_TOKEN_COUNT);
            assert_eq!(u.total(), 2 * MAX_TOKEN_COUNT);
        }
    }

    #[test]
    fn thoughts_count_as_output_and_calls_set_the_finish() {
        let body = br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"plan","thought":true},{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"AQID"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":83,"candidatesTokenCount":14,"totalTokenCount":201,"thoughtsTokenCount":104},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#;
        let r = decode_response(body).unwrap();
        assert_eq!(r.finish, Some(FinishReason::ToolCalls));
        let u = r.usage.unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.reasoning_tokens),
            (83, 118, 104)
        );
        assert_eq!(u.total(), 201);
        match &r.content[1] {
            Part::ToolCall {
                id,
                name,
                arguments,
            } => {
                assert_eq!(name, "get_weather");
                assert_eq!(arguments, r#"{"city":"Paris"}"#);
                assert_eq!(
                    super::super::split_signature(id),
                    ("call_r1_0", Some("AQID".into())),
                    "made-up ids carry the response id"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// A passthrough answer's usage is read from Gemini's own shape, not
    /// OpenAI's.
    #[test]
    fn usage_is_peeked_from_a_whole_answer() {
        let body = br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":6,"totalTokenCount":20,"thoughtsTokenCount":6,"cachedContentTokenCount":4},"modelVersion":"gemini-2.5-flash","responseId":"r"}"#;
        let u = peek_usage(body).unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.reasoning_tokens
            ),
            (8, 12, 4, 6)
        );
        assert_eq!(crate::wire::openai::response::peek_usage(body), None);
        assert_eq!(peek_usage(br#"{"candidates":[]}"#), None);
    }

    /// The grounded answer of Gemini's Google Search documentation
    /// (ai.google.dev/gemini-api/docs/google-search): its queries and web
    /// chunks are one search, before the text it grounds.
    #[test]
    fn a_grounded_answer_decodes_to_a_search_then_its_text() {
        let body = br#"{"candidates":[{"content":{"parts":[{"text":"Spain won Euro 2024, defeating England 2-1 in the final. This victory marks Spain's record fourth European Championship title."}],"role":"model"},"finishReason":"STOP","groundingMetadata":{"webSearchQueries":["UEFA Euro 2024 winner","who won euro 2024"],"searchEntryPoint":{"renderedContent":"<!-- HTML and CSS for the search widget -->"},"groundingChunks":[{"web":{"uri":"https://vertexaisearch.cloud.google.com/grounding-api-redirect/a","title":"aljazeera.com"}},{"web":{"uri":"https://vertexaisearch.cloud.google.com/grounding-api-redirect/b","title":"uefa.com"}}],"groundingSupports":[{"segment":{"startIndex":0,"endIndex":85,"text":"Spain won Euro 2024, defeatin..."},"groundingChunkIndices":[0]}]}}],"modelVersion":"gemini-2.5-flash"}"#;
        let r = decode_response(body).unwrap();
        assert_eq!(r.content.len(), 2);
        match &r.content[0] {
            Part::WebSearch(s) => {
                assert_eq!(s.queries, ["UEFA Euro 2024 winner", "who won euro 2024"]);
                assert_eq!(s.sources.len(), 2);
                assert_eq!(s.sources[1].title.as_deref(), Some("uefa.com"));
                assert_eq!(s.error, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&r.content[1], Part::Text { text, .. } if text.starts_with("Spain won")));
        assert_eq!(r.finish, Some(FinishReason::Stop));
        // Grounding by other means reports no web search.
        let other = br#"{"candidates":[{"content":{"parts":[{"text":"x"}],"role":"model"},"finishReason":"STOP","groundingMetadata":{"groundingChunks":[{"retrievedContext":{"uri":"gs://b/f","title":"f"}}]}}]}"#;
        assert_eq!(decode_response(other).unwrap().content.len(), 1);
    }

    #[test]
    fn errors_give_reason_and_retry_delay() {
        let body = br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"58s"}]}}"#;
        assert_eq!(
            decode_error(body),
            Some((
                Some("RESOURCE_EXHAUSTED".into()),
                Some("Quota exceeded".into()),
                Some(58.0)
            ))
        );
        let body = br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#;
        assert_eq!(
            decode_error(body).unwrap().0.as_deref(),
            Some("API_KEY_INVALID")
        );
    }
}
