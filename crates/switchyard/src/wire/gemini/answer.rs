//! What a Gemini caller receives: a `GenerateContentResponse`, the same
//! shape chunk by chunk on `alt=sse` streams, and Gemini's error body.
//!
//! The google-genai SDKs' chat sessions keep a turn in the history they
//! send next only if every chunk has a candidate with content (no empty
//! `parts`, no empty non-thought text: the JS SDK's rule) and some chunk
//! has a `finishReason`. So the stream encoder holds the latest content
//! back until the next arrives, and the last one goes out with the finish
//! reason, as Gemini's own last chunk does.
//!
//! Thoughts are sent whenever the upstream gives them, whatever the
//! caller's `includeThoughts`: the canonical request has no place for it
//! (the SDKs' `text` leaves thought parts out).

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

use super::{redacted_signature, split_signature, thought_signature};
use crate::chat::{self, Event, FinishReason, Part, Usage};
use crate::wire::anthropic::request::tool_input;
use crate::wire::{DecodeError, sse};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    candidates: [CandidateOut<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_metadata: Option<UsageOut>,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CandidateOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    grounding_metadata: Option<GroundingOut>,
}

/// The searches another provider ran, as Gemini reports its own Google
/// Search grounding: the queries, and the pages as grounding chunks.
/// (Which sentence each page supports, `groundingSupports`, is not known.)
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct GroundingOut {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    web_search_queries: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    grounding_chunks: Vec<ChunkOut>,
}

#[derive(Serialize, Debug)]
struct ChunkOut {
    web: WebOut,
}

#[derive(Serialize, Debug)]
struct WebOut {
    uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
}

fn grounding<'a>(searches: impl IntoIterator<Item = &'a chat::WebSearch>) -> Option<GroundingOut> {
    let mut g = GroundingOut {
        web_search_queries: Vec::new(),
        grounding_chunks: Vec::new(),
    };
    let mut any = false;
    for s in searches {
        any = true;
        g.web_search_queries.extend(s.queries.iter().cloned());
        g.grounding_chunks
            .extend(s.sources.iter().map(|src| ChunkOut {
                web: WebOut {
                    uri: src.url.clone(),
                    title: src.title.clone(),
                },
            }));
    }
    any.then_some(g)
}

#[derive(Serialize)]
struct ContentOut<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    parts: &'a [PartOut<'a>],
    role: &'static str,
}

#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct PartOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<FunctionCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<String>,
}

#[derive(Serialize, Debug)]
struct FunctionCallOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Cow<'a, str>>,
    name: Cow<'a, str>,
    args: Box<RawValue>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct UsageOut {
    prompt_token_count: u64,
    candidates_token_count: u64,
    total_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_content_token_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thoughts_token_count: Option<u64>,
}

/// Canonical output counts reasoning; `candidatesTokenCount` does not, and
/// `thoughtsTokenCount` says how many there were. Prompt counts include
/// cached tokens on both sides.
fn encode_usage(u: &Usage) -> UsageOut {
    let some = |n: u64| (n > 0).then_some(n);
    UsageOut {
        prompt_token_count: u.input_tokens,
        candidates_token_count: u.output_tokens.saturating_sub(u.reasoning_tokens),
        total_token_count: u.total(),
        cached_content_token_count: some(u.cached_input_tokens),
        thoughts_token_count: some(u.reasoning_tokens),
    }
}

/// Gemini's `finishReason`. A refusal is `SAFETY`: Anthropic's `refusal`
/// means its safety classifiers stopped the answer, OpenAI's that the model
/// declined on policy grounds; `SAFETY` is how Gemini says the same, where
/// `OTHER` would hide why the answer ended.
pub fn encode_finish(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::ToolCalls | FinishReason::StopSequence => "STOP",
        FinishReason::Length => "MAX_TOKENS",
        FinishReason::ContentFilter | FinishReason::Refusal => "SAFETY",
        FinishReason::PauseTurn => "OTHER",
    }
}

fn bad_arguments(name: &str) -> String {
    format!(
        "the upstream returned arguments for tool call `{name}` that are not a JSON object, which a Gemini functionCall cannot carry"
    )
}

/// One function call as a part: the plain id, and a thought signature
/// (from a Gemini upstream) split back out of the id.
fn call_part<'a>(
    id: &str,
    name: Cow<'a, str>,
    arguments: &str,
) -> Result<PartOut<'a>, DecodeError> {
    let args = tool_input(arguments)
        .ok_or_else(|| DecodeError::new("tool_calls", bad_arguments(&name)))?;
    let (plain, signature) = split_signature(id);
    Ok(PartOut {
        function_call: Some(FunctionCallOut {
            id: (!plain.is_empty()).then(|| Cow::Owned(plain.to_owned())),
            name,
            args,
        }),
        thought_signature: signature,
        ..PartOut::default()
    })
}

fn thought_part<'a>(text: &'a str, signature: Option<&str>) -> PartOut<'a> {
    PartOut {
        text: Some(Cow::Borrowed(text)),
        thought: Some(true),
        thought_signature: signature.map(thought_signature),
        ..PartOut::default()
    }
}

/// Encodes a canonical answer for a Gemini caller. Fails only when the
/// upstream produced tool arguments that are not a JSON object, which
/// `functionCall.args` cannot carry.
pub fn encode_response(r: &chat::Response) -> Result<Vec<u8>, DecodeError> {
    let mut parts = Vec::with_capacity(r.content.len());
    for p in &r.content {
        match p {
            // An empty text part makes the SDKs drop the turn from a chat.
            Part::Text { text, .. } if text.is_empty() => {}
            Part::Text { text, .. } => parts.push(PartOut {
                text: Some(Cow::Borrowed(text)),
                ..PartOut::default()
            }),
            Part::Thinking { text, signature } => {
                if !text.is_empty() || signature.is_some() {
                    parts.push(thought_part(text, signature.as_deref()));
                }
            }
            Part::RedactedThinking { data } => parts.push(PartOut {
                text: Some(Cow::Borrowed("")),
                thought: Some(true),
                thought_signature: Some(redacted_signature(data)),
                ..PartOut::default()
            }),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => parts.push(call_part(id, Cow::Borrowed(name), arguments)?),
            // Said in `groundingMetadata` below.
            Part::WebSearch(_) => {}
            // An answer holds none of these.
            Part::Image(_) | Part::Document(_) | Part::ToolResult { .. } => {}
        }
    }
    let out = ResponseOut {
        candidates: [CandidateOut {
            content: Some(ContentOut {
                parts: &parts,
                role: "model",
            }),
            finish_reason: r.finish.as_ref().map(encode_finish),
            index: 0,
            grounding_metadata: grounding(r.content.iter().filter_map(|p| match p {
                Part::WebSearch(s) => Some(s),
                _ => None,
            })),
        }],
        usage_metadata: r.usage.as_ref().map(encode_usage),
        model_version: &r.model,
        response_id: &r.id,
    };
    Ok(crate::wire::to_vec(&out))
}

/// A tool call being streamed, sent whole once it is complete.
#[derive(Debug)]
struct CallBuf {
    index: u32,
    id: String,
    name: String,
    arguments: String,
}

/// Writes canonical events as `alt=sse` chunks: `data: <GenerateContentResponse>`
/// per chunk, no event names, no terminal marker. Each chunk carries only
/// its new parts and the usage so far; the last carries the finish reason.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    usage: Option<Usage>,
    /// The latest parts, not yet written: they wait for the next content
    /// (or the end), so that the last chunk has both content and the
    /// finish reason.
    held: Vec<PartOut<'static>>,
    /// Tool calls being assembled. They go out together, each whole, when
    /// anything other than a tool-call event (or usage) arrives, or at the
    /// end: parallel calls whose argument deltas interleave stay whole.
    calls: Vec<CallBuf>,
    finish: Option<FinishReason>,
    /// Searches the provider ran: Gemini reports its own on the last chunk,
    /// so these go out there.
    searches: Vec<chat::WebSearch>,
    /// A tool call came with arguments no `functionCall` can hold: the
    /// stream was ended with an error chunk.
    failed: bool,
}

impl StreamEncoder {
    /// `id` and `model` name the answer (`responseId`, `modelVersion`)
    /// until the upstream's `Start` says otherwise.
    pub fn new(id: String, model: String) -> StreamEncoder {
        StreamEncoder {
            id,
            model,
            usage: None,
            held: Vec::new(),
            calls: Vec::new(),
            finish: None,
            searches: Vec::new(),
            failed: false,
        }
    }

    pub fn encode(&mut self, ev: &Event, w: &mut sse::Writer) {
        if self.failed {
            return;
        }
        match ev {
            Event::Start { id, model, .. } => {
                if !id.is_empty() {
                    self.id.clone_from(id);
                }
                if !model.is_empty() {
                    self.model.clone_from(model);
                }
            }
            Event::Usage(u) => self.usage = Some(*u),
            Event::TextDelta(t) => {
                self.close_calls(w);
                if !t.is_empty() {
                    self.hold(
                        w,
                        vec![PartOut {
                            text: Some(Cow::Owned(t.clone())),
                            ..PartOut::default()
                        }],
                    );
                }
            }
            Event::ThinkingDelta(t) => {
                self.close_calls(w);
                if !t.is_empty() {
                    self.hold(w, vec![thought_part(t, None).into_owned()]);
                }
            }
            Event::SignatureDelta(s) => {
                self.close_calls(w);
                // The signature closes the thinking just streamed: on its
                // last part when that is still held, else on a part of its
                // own (the caller's next request joins them up again).
                match self.held.last_mut() {
                    Some(p) if p.thought == Some(true) && p.thought_signature.is_none() => {
                        p.thought_signature = Some(thought_signature(s));
                    }
                    _ => self.hold(w, vec![thought_part("", Some(s)).into_owned()]),
                }
            }
            Event::ToolCallStart { index, id, name } => self.calls.push(CallBuf {
                index: *index,
                id: id.clone(),
                name: name.clone(),
                arguments: String::new(),
            }),
            // Every upstream streams a call's arguments before any text
            // that follows it; a fragment for a call already sent would
            // have nowhere to go.
            Event::ToolCallDelta { index, arguments } => {
                if let Some(c) = self.calls.iter_mut().rev().find(|c| c.index == *index) {
                    c.arguments.push_str(arguments);
                }
            }
            Event::Finish { reason, .. } => {
                self.close_calls(w);
                self.finish = Some(reason.clone());
            }
            Event::WebSearch(s) => self.searches.push(s.clone()),
        }
    }

    /// The upstream ended normally: the held parts go out with the finish
    /// reason (`STOP` if the upstream gave none) and the final usage.
    pub fn finish(&mut self, w: &mut sse::Writer) {
        self.close_calls(w);
        if self.failed {
            return;
        }
        self.write(w, true);
    }

    fn hold(&mut self, w: &mut sse::Writer, parts: Vec<PartOut<'static>>) {
        if !self.held.is_empty() {
            self.write(w, false);
        }
        self.held = parts;
    }

    fn close_calls(&mut self, w: &mut sse::Writer) {
        if self.calls.is_empty() || self.failed {
            return;
        }
        let calls = std::mem::take(&mut self.calls);
        let mut parts = Vec::with_capacity(calls.len());
        for c in calls {
            match call_part(&c.id, Cow::Owned(c.name.clone()), &c.arguments) {
                Ok(p) => parts.push(p.into_owned()),
                Err(_) => {
                    if !self.held.is_empty() {
                        self.write(w, false);
                    }
                    write_error(w, &encode_error(502, &bad_arguments(&c.name)));
                    self.failed = true;
                    return;
                }
            }
        }
        self.hold(w, parts);
    }

    fn write(&mut self, w: &mut sse::Writer, last: bool) {
        let parts = std::mem::take(&mut self.held);
        let finish = if last {
            Some(encode_finish(
                self.finish.as_ref().unwrap_or(&FinishReason::Stop),
            ))
        } else {
            None
        };
        let out = ResponseOut {
            candidates: [CandidateOut {
                // A blocked or empty answer has no content, as at Gemini.
                content: (!parts.is_empty()).then_some(ContentOut {
                    parts: &parts,
                    role: "model",
                }),
                finish_reason: finish,
                index: 0,
                grounding_metadata: if last {
                    grounding(&self.searches)
                } else {
                    None
                },
            }],
            usage_metadata: self.usage.as_ref().map(encode_usage),
            model_version: &self.model,
            response_id: &self.id,
        };
        w.event(None, &crate::wire::to_vec(&out));
    }
}

impl PartOut<'_> {
    fn into_owned(self) -> PartOut<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        PartOut {
            text: self.text.map(own),
            thought: self.thought,
            function_call: self.function_call.map(|f| FunctionCallOut {
                id: f.id.map(own),
                name: own(f.name),
                args: f.args,
            }),
            thought_signature: self.thought_signature,
        }
    }
}

/// Writes the terminal error of a stream that failed after its first byte.
/// Gemini has no error event: the error is one more `data:` chunk holding
/// `{"error":{…}}` (rendered by [`encode_error`]), which the google-genai
/// SDKs raise on; nothing follows it.
pub fn write_error(w: &mut sse::Writer, body: &[u8]) {
    w.event(None, body);
}

/// The error body (its schema is in the OpenAPI document).
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "GeminiError")]
pub struct ErrorEnvelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "GeminiErrorBody")]
struct ErrorBody<'a> {
    code: u16,
    message: &'a str,
    status: &'static str,
}

/// Gemini's error body: `{"error":{"code","message","status"}}`, `code`
/// the HTTP status and `status` its google.rpc name.
pub fn encode_error(status: u16, message: &str) -> Vec<u8> {
    crate::wire::to_vec(&ErrorEnvelope {
        error: ErrorBody {
            code: status,
            message,
            status: status_name(status),
        },
    })
}

/// The google.rpc status name Gemini gives an HTTP status.
///
/// 402 (a key's budget spent) is `RESOURCE_EXHAUSTED`: it is what Gemini
/// itself answers when prepaid credit runs out, and google.rpc's meaning
/// ("some resource has been exhausted, perhaps a per-user quota") fits a
/// budget; `FAILED_PRECONDITION` is for a system in the wrong state. The
/// SDKs retry by HTTP status (408, 429, 5xx), never 402, so the name does
/// not make them retry. 413 has no name of its own: Gemini answers an
/// oversized request `INVALID_ARGUMENT`. 502 and 529 (an upstream failed
/// or is overloaded) are `UNAVAILABLE`, as gRPC maps 502.
pub fn status_name(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHENTICATED",
        402 => "RESOURCE_EXHAUSTED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 | 529 => "UNAVAILABLE",
        400..=499 => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::gemini::{Thought, id_with_signature, read_thought_signature};

    fn usage() -> Usage {
        Usage {
            input_tokens: 83,
            output_tokens: 118,
            cached_input_tokens: 40,
            cache_write_tokens: 0,
            reasoning_tokens: 104,
            web_search_requests: 0,
        }
    }

    fn search() -> chat::WebSearch {
        chat::WebSearch {
            id: "srvtoolu_1".into(),
            queries: vec!["who won euro 2024".into()],
            sources: vec![chat::WebSource {
                url: "https://uefa.com".into(),
                title: Some("UEFA".into()),
            }],
            error: None,
        }
    }

    /// Another provider's search reads as Gemini reports its own: the
    /// queries and the pages in `groundingMetadata`, which the decoder
    /// reads back as the same search.
    #[test]
    fn a_search_is_grounding_metadata() {
        let r = chat::Response {
            id: "r".into(),
            model: "claude-x".into(),
            created: 0,
            content: vec![
                Part::WebSearch(search()),
                Part::Text {
                    text: "Spain.".into(),
                    cache_control: None,
                },
            ],
            finish: Some(FinishReason::Stop),
            stop_sequence: None,
            usage: None,
        };
        let out = encode_response(&r).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["candidates"][0]["groundingMetadata"],
            serde_json::json!({
                "webSearchQueries": ["who won euro 2024"],
                "groundingChunks": [{"web": {"uri": "https://uefa.com", "title": "UEFA"}}],
            })
        );
        let back = crate::wire::gemini::decode_response(&out).unwrap();
        let mut want = search();
        want.id = String::new();
        assert_eq!(back.content[0], Part::WebSearch(want));

        // Streamed: on the last chunk, with the finish.
        let mut e = StreamEncoder::new("r".into(), "m".into());
        let mut w = sse::Writer::new(0);
        e.encode(&Event::WebSearch(search()), &mut w);
        e.encode(&Event::TextDelta("Spain.".into()), &mut w);
        e.finish(&mut w);
        let mut p = sse::Parser::new(0);
        let mut evs = Vec::new();
        p.feed(&w.take(), &mut evs).unwrap();
        let chunks: Vec<serde_json::Value> = evs
            .iter()
            .map(|e| serde_json::from_slice(&e.data).unwrap())
            .collect();
        let last = &chunks.last().unwrap()["candidates"][0];
        assert_eq!(last["finishReason"], "STOP");
        assert_eq!(
            last["groundingMetadata"]["webSearchQueries"][0],
            "who won euro 2024"
        );
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|c| c["candidates"][0].get("groundingMetadata").is_none())
        );
    }

    #[test]
    fn an_answer_encodes_as_gemini_writes_it() {
        let r = chat::Response {
            id: "resp-1".into(),
            model: "claude-x".into(),
            created: 0,
            content: vec![
                Part::Thinking {
                    text: "plan".into(),
                    signature: Some("c2ln".into()),
                },
                Part::Text {
                    text: String::new(),
                    cache_control: None,
                },
                Part::Text {
                    text: "Checking.".into(),
                    cache_control: None,
                },
                Part::ToolCall {
                    id: "toolu_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                },
                Part::ToolCall {
                    id: id_with_signature("call_r1_1", "AQID"),
                    name: "now".into(),
                    arguments: String::new(),
                },
            ],
            finish: Some(FinishReason::ToolCalls),
            stop_sequence: None,
            usage: Some(usage()),
        };
        let out = String::from_utf8(encode_response(&r).unwrap()).unwrap();
        let signed = thought_signature("c2ln");
        assert_eq!(
            out,
            format!(
                r#"{{"candidates":[{{"content":{{"parts":[{{"text":"plan","thought":true,"thoughtSignature":"{signed}"}},{{"text":"Checking."}},{{"functionCall":{{"id":"toolu_1","name":"get_weather","args":{{"city":"Paris"}}}}}},{{"functionCall":{{"id":"call_r1_1","name":"now","args":{{}}}},"thoughtSignature":"AQID"}}],"role":"model"}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":83,"candidatesTokenCount":14,"totalTokenCount":201,"cachedContentTokenCount":40,"thoughtsTokenCount":104}},"modelVersion":"claude-x","responseId":"resp-1"}}"#
            )
        );
        // What the existing upstream decoder reads back is what went in.
        let back = crate::wire::gemini::decode_response(out.as_bytes()).unwrap();
        assert_eq!(back.usage, Some(usage()));
        assert_eq!(back.finish, Some(FinishReason::ToolCalls));
        assert_eq!(
            read_thought_signature(&signed),
            Some(Thought::Signed("c2ln".into()))
        );
    }

    #[test]
    fn finish_reasons_and_empty_answers() {
        let answer = |finish, content| chat::Response {
            id: "r".into(),
            model: "m".into(),
            created: 0,
            content,
            finish,
            stop_sequence: None,
            usage: None,
        };
        for (reason, name) in [
            (FinishReason::Stop, "STOP"),
            (FinishReason::StopSequence, "STOP"),
            (FinishReason::Length, "MAX_TOKENS"),
            (FinishReason::ContentFilter, "SAFETY"),
            (FinishReason::Refusal, "SAFETY"),
            (FinishReason::PauseTurn, "OTHER"),
        ] {
            let out = encode_response(&answer(Some(reason), Vec::new())).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!(
                    r#"{{"candidates":[{{"content":{{"role":"model"}},"finishReason":"{name}","index":0}}],"modelVersion":"m","responseId":"r"}}"#
                )
            );
        }
        let redacted = encode_response(&answer(
            None,
            vec![Part::RedactedThinking { data: "x".into() }],
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&redacted).unwrap();
        let part = &v["candidates"][0]["content"]["parts"][0];
        assert_eq!(part["thought"], true);
        assert_eq!(part["text"], "");
        assert_eq!(
            read_thought_signature(part["thoughtSignature"].as_str().unwrap()),
            Some(Thought::Redacted("x".into()))
        );
        let bad = answer(
            None,
            vec![Part::ToolCall {
                id: "t".into(),
                name: "f".into(),
                arguments: "[1]".into(),
            }],
        );
        assert_eq!(encode_response(&bad).unwrap_err().field, "tool_calls");
    }

    fn chunks(w: &mut sse::Writer) -> Vec<String> {
        let bytes = w.take();
        let mut p = sse::Parser::new(0);
        let mut evs = Vec::new();
        p.feed(&bytes, &mut evs).unwrap();
        assert!(evs.iter().all(|e| e.event.is_none()), "no event names");
        evs.iter().map(|e| e.data_str().to_owned()).collect()
    }

    /// Text deltas, then a tool call streamed in pieces, then the finish
    /// and the usage after it (as OpenAI sends it).
    #[test]
    fn the_stream_encoder_writes_gemini_chunks() {
        let mut enc = StreamEncoder::new("req-x".into(), "route".into());
        let mut w = sse::Writer::new(0);
        let early = Usage {
            input_tokens: 5,
            ..Usage::default()
        };
        for e in [
            Event::Start {
                id: "chatcmpl-1".into(),
                model: "gpt-x".into(),
                created: 1,
            },
            Event::Usage(early),
            Event::TextDelta("Hel".into()),
            Event::TextDelta(String::new()),
            Event::TextDelta("lo".into()),
            Event::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "f".into(),
            },
            Event::ToolCallDelta {
                index: 0,
                arguments: r#"{"a""#.into(),
            },
            Event::ToolCallStart {
                index: 1,
                id: "call_2".into(),
                name: "g".into(),
            },
            Event::ToolCallDelta {
                index: 0,
                arguments: ":1}".into(),
            },
            Event::Finish {
                reason: FinishReason::ToolCalls,
                stop_sequence: None,
            },
            Event::Usage(Usage {
                input_tokens: 5,
                output_tokens: 7,
                ..Usage::default()
            }),
        ] {
            enc.encode(&e, &mut w);
        }
        enc.finish(&mut w);
        let tail = r#""modelVersion":"gpt-x","responseId":"chatcmpl-1"}"#;
        let early = r#""usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":0,"totalTokenCount":5},"#;
        assert_eq!(
            chunks(&mut w),
            [
                format!(
                    r#"{{"candidates":[{{"content":{{"parts":[{{"text":"Hel"}}],"role":"model"}},"index":0}}],{early}{tail}"#
                ),
                format!(
                    r#"{{"candidates":[{{"content":{{"parts":[{{"text":"lo"}}],"role":"model"}},"index":0}}],{early}{tail}"#
                ),
                format!(
                    r#"{{"candidates":[{{"content":{{"parts":[{{"functionCall":{{"id":"call_1","name":"f","args":{{"a":1}}}}}},{{"functionCall":{{"id":"call_2","name":"g","args":{{}}}}}}],"role":"model"}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":5,"candidatesTokenCount":7,"totalTokenCount":12}},{tail}"#
                ),
            ]
        );
    }

    /// What google-genai's upstream decoder makes of our stream is the
    /// stream we encoded.
    #[test]
    fn a_streamed_answer_decodes_back() {
        let events = vec![
            Event::Usage(Usage {
                input_tokens: 9,
                ..Usage::default()
            }),
            Event::ThinkingDelta("hm".into()),
            Event::SignatureDelta("c2ln".into()),
            Event::TextDelta("Hi".into()),
            Event::Finish {
                reason: FinishReason::Length,
                stop_sequence: None,
            },
        ];
        let mut enc = StreamEncoder::new("r".into(), "m".into());
        let mut w = sse::Writer::new(0);
        for e in &events {
            enc.encode(e, &mut w);
        }
        enc.finish(&mut w);
        let out = chunks(&mut w);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out[0].contains(&format!(
                r#""thought":true,"thoughtSignature":"{}""#,
                thought_signature("c2ln")
            )),
            "the signature rides on the held thought: {}",
            out[0]
        );
        let mut d = crate::wire::gemini::StreamDecoder::default();
        let mut back = Vec::new();
        for c in &out {
            let ev = sse::Event {
                data: c.clone().into_bytes().into(),
                ..sse::Event::default()
            };
            d.decode(&ev, &mut back).unwrap();
        }
        assert!(back.contains(&Event::ThinkingDelta("hm".into())));
        assert!(back.contains(&Event::TextDelta("Hi".into())));
        assert_eq!(
            back.last(),
            Some(&Event::Finish {
                reason: FinishReason::Length,
                stop_sequence: None
            })
        );
    }

    #[test]
    fn an_empty_stream_still_finishes_and_bad_arguments_end_it() {
        let mut enc = StreamEncoder::new("r".into(), "m".into());
        let mut w = sse::Writer::new(0);
        enc.encode(
            &Event::Finish {
                reason: FinishReason::ContentFilter,
                stop_sequence: None,
            },
            &mut w,
        );
        enc.finish(&mut w);
        assert_eq!(
            chunks(&mut w),
            [
                r#"{"candidates":[{"finishReason":"SAFETY","index":0}],"modelVersion":"m","responseId":"r"}"#
            ]
        );

        let mut enc = StreamEncoder::new("r".into(), "m".into());
        for e in [
            Event::TextDelta("a".into()),
            Event::ToolCallStart {
                index: 0,
                id: "t".into(),
                name: "f".into(),
            },
            Event::ToolCallDelta {
                index: 0,
                arguments: "{not json".into(),
            },
            Event::TextDelta("b".into()),
        ] {
            enc.encode(&e, &mut w);
        }
        enc.finish(&mut w);
        let out = chunks(&mut w);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].contains(r#""text":"a""#));
        assert!(
            out[1].starts_with(r#"{"error":{"code":502,"#) && out[1].contains("`f`"),
            "{}",
            out[1]
        );
    }

    #[test]
    fn errors_have_gemini_status_names() {
        assert_eq!(
            String::from_utf8(encode_error(429, "slow down")).unwrap(),
            r#"{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}"#
        );
        for (code, name) in [
            (400, "INVALID_ARGUMENT"),
            (401, "UNAUTHENTICATED"),
            (402, "RESOURCE_EXHAUSTED"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
            (409, "ABORTED"),
            (413, "INVALID_ARGUMENT"),
            (422, "INVALID_ARGUMENT"),
            (499, "CANCELLED"),
            (500, "INTERNAL"),
            (502, "UNAVAILABLE"),
            (503, "UNAVAILABLE"),
            (504, "DEADLINE_EXCEEDED"),
            (529, "UNAVAILABLE"),
        ] {
            assert_eq!(status_name(code), name, "{code}");
        }
        // The upstream decoder reads the body back.
        let (kind, message, _) =
            crate::wire::gemini::decode_error(&encode_error(503, "busy")).unwrap();
        assert_eq!(
            (kind.as_deref(), message.as_deref()),
            (Some("UNAVAILABLE"), Some("busy"))
        );
    }
}
