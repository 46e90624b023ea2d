//! `streamGenerateContent?alt=sse` → canonical events, and the same-dialect
//! relay. Each event is a whole `GenerateContentResponse` holding the next
//! slice of text (or whole function calls) and the cumulative usage so far.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::response::{
    GroundingIn, PromptFeedbackIn, ResponseIn, UsageIn, decode_finish, decode_usage, tool_call,
};
use crate::chat::{Event, FinishReason, Usage};
use crate::wire::{StreamError, sse};

#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    calls: usize,
    /// The latest grounding reported: sent as one search with the finish,
    /// whichever chunks carried it (whole or growing).
    grounding: Option<GroundingIn>,
}

impl StreamDecoder {
    pub fn decode(&mut self, ev: &sse::Event, out: &mut Vec<Event>) -> Result<(), StreamError> {
        let r: ResponseIn =
            serde_json::from_slice(&ev.data).map_err(|e| StreamError::Malformed(e.to_string()))?;
        if let Some(raw) = r.error {
            return Err(upstream_error(&raw));
        }
        if !self.started {
            self.started = true;
            out.push(Event::Start {
                id: r.response_id.clone().unwrap_or_default(),
                model: r.model_version.clone().unwrap_or_default(),
                created: 0,
            });
        }
        if let Some(u) = &r.usage_metadata {
            out.push(Event::Usage(decode_usage(u)));
        }
        // A blocked prompt has no candidates, only the reason: the answer
        // is a content filter, not a stream cut short.
        if r.candidates.is_empty()
            && r.prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
        {
            out.push(Event::Finish {
                reason: FinishReason::ContentFilter,
                stop_sequence: None,
            });
        }
        if let Some(c) = r.candidates.into_iter().next() {
            if c.grounding_metadata.is_some() {
                self.grounding = c.grounding_metadata;
            }
            for p in c.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(fc) = p.function_call {
                    let (id, name, arguments) = tool_call(
                        fc,
                        p.thought_signature.as_deref(),
                        self.calls,
                        r.response_id.as_deref(),
                    );
                    let index = self.calls as u32;
                    self.calls += 1;
                    out.push(Event::ToolCallStart { index, id, name });
                    out.push(Event::ToolCallDelta { index, arguments });
                } else if let Some(text) = p.text.filter(|t| !t.is_empty()) {
                    out.push(if p.thought == Some(true) {
                        Event::ThinkingDelta(text)
                    } else {
                        Event::TextDelta(text)
                    });
                }
            }
            if let Some(f) = c.finish_reason {
                if let Some(search) = self.grounding.take().and_then(GroundingIn::search) {
                    out.push(Event::WebSearch(search));
                }
                out.push(Event::Finish {
                    reason: decode_finish(&f, self.calls > 0),
                    stop_sequence: None,
                });
            }
        }
        Ok(())
    }
}

/// An `{"error":{…}}` chunk as the stream error it reports.
fn upstream_error(raw: &RawValue) -> StreamError {
    let (kind, message, _) = super::decode_error(format!("{{\"error\":{}}}", raw.get()).as_bytes())
        .unwrap_or((None, None, None));
    let status = match kind.as_deref() {
        Some("RESOURCE_EXHAUSTED") => 429,
        Some("UNAVAILABLE") => 503,
        Some("DEADLINE_EXCEEDED") => 504,
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION") => 400,
        _ => 500,
    };
    StreamError::Upstream {
        status,
        kind,
        message: message.unwrap_or_else(|| "the upstream reported an error in its stream".into()),
    }
}

/// What [`Relay`] reads of a chunk: everything but the text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Peek<'a> {
    #[serde(default)]
    candidates: Vec<PeekCandidate>,
    #[serde(default)]
    usage_metadata: Option<UsageIn>,
    #[serde(default, borrow)]
    model_version: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    response_id: Option<Cow<'a, str>>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedbackIn>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PeekCandidate {
    #[serde(default)]
    content: Option<PeekContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct PeekContent {
    #[serde(default)]
    parts: Vec<PeekPart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PeekPart {
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

/// Forwards a Gemini upstream's stream to a Gemini caller chunk by chunk,
/// unchanged, reading usage (cumulative: the last wins) and the finish
/// reason on the way. An error chunk is not forwarded: it is returned, and
/// the caller's terminal error is written in its place.
#[derive(Debug, Default)]
pub struct Relay {
    pub usage: Option<Usage>,
    pub finish: Option<FinishReason>,
    /// The first chunk's `responseId` and `modelVersion`.
    pub first_id: Option<(String, String)>,
    /// A function call went by: a `STOP` after it is a tool-call finish.
    called: bool,
}

impl Relay {
    pub fn relay(&mut self, ev: &sse::Event, w: &mut sse::Writer) -> Result<(), StreamError> {
        let p: Peek =
            serde_json::from_slice(&ev.data).map_err(|e| StreamError::Malformed(e.to_string()))?;
        if let Some(raw) = p.error {
            return Err(upstream_error(raw));
        }
        if self.first_id.is_none() {
            self.first_id = Some((
                p.response_id.unwrap_or_default().into_owned(),
                p.model_version.unwrap_or_default().into_owned(),
            ));
        }
        if let Some(u) = &p.usage_metadata {
            self.usage = Some(decode_usage(u));
        }
        if let Some(c) = p.candidates.into_iter().next() {
            self.called |= c
                .content
                .is_some_and(|c| c.parts.iter().any(|p| p.function_call.is_some()));
            if let Some(f) = c.finish_reason {
                self.finish = Some(decode_finish(&f, self.called));
            }
        } else if p.prompt_feedback.is_some_and(|f| f.block_reason.is_some()) {
            self.finish = Some(FinishReason::ContentFilter);
        }
        w.event(None, &ev.data);
        Ok(())
    }

    /// Whether the answer is complete: Gemini has no terminal marker, the
    /// finish reason is the only sign.
    pub fn done(&self) -> bool {
        self.finish.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(d: &str) -> sse::Event {
        sse::Event {
            event: None,
            data: d.as_bytes().to_vec().into(),
            id: None,
        }
    }

    /// A gemini-2.5-flash stream ending in a function call: passed on byte
    /// for byte, usage and the finish read on the way.
    #[test]
    fn the_relay_forwards_chunks_and_reads_usage_and_finish() {
        let chunks = [
            r#"{"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello from "}]}, "index": 0}], "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}, "modelVersion": "gemini-2.5-flash", "responseId": "6eb0c59b5b454da9ba5589"}"#,
            r#"{"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "AQID"}]}, "index": 0, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 6, "totalTokenCount": 30, "thoughtsTokenCount": 16, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]}, "modelVersion": "gemini-2.5-flash", "responseId": "6eb0c59b5b454da9ba5589"}"#,
        ];
        let mut r = Relay::default();
        let mut w = sse::Writer::new(0);
        r.relay(&data(chunks[0]), &mut w).unwrap();
        assert!(!r.done());
        r.relay(&data(chunks[1]), &mut w).unwrap();
        assert!(r.done());
        assert_eq!(r.finish, Some(FinishReason::ToolCalls));
        let u = r.usage.unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.reasoning_tokens),
            (8, 22, 16)
        );
        assert_eq!(
            r.first_id,
            Some(("6eb0c59b5b454da9ba5589".into(), "gemini-2.5-flash".into()))
        );
        let mut p = sse::Parser::new(0);
        let mut out = Vec::new();
        p.feed(&w.take(), &mut out).unwrap();
        let sent: Vec<&str> = out.iter().map(sse::Event::data_str).collect();
        assert_eq!(sent, chunks);
    }

    #[test]
    fn the_relay_returns_errors_and_sees_blocked_prompts() {
        let mut r = Relay::default();
        let mut w = sse::Writer::new(0);
        let e = r
            .relay(
                &data(r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#),
                &mut w,
            )
            .unwrap_err();
        assert_eq!(
            e,
            StreamError::Upstream {
                status: 429,
                kind: Some("RESOURCE_EXHAUSTED".into()),
                message: "Quota exceeded".into()
            }
        );
        assert!(w.buf.is_empty(), "the caller's own error goes in its place");
        assert!(matches!(
            r.relay(&data("{not json"), &mut w),
            Err(StreamError::Malformed(_))
        ));
        r.relay(
            &data(r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7},"modelVersion":"gemini-x","responseId":"r1"}"#),
            &mut w,
        )
        .unwrap();
        assert_eq!(r.finish, Some(FinishReason::ContentFilter));
        assert!(r.done());
    }

    /// Gemini reports grounding on its last chunks; the search goes out
    /// once, just before the finish, however many chunks repeated it.
    #[test]
    fn grounding_becomes_one_search_before_the_finish() {
        let chunks = [
            r#"{"candidates":[{"content":{"parts":[{"text":"Spain won Euro 2024"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":", beating England."}],"role":"model"},"index":0,"groundingMetadata":{"webSearchQueries":["who won euro 2024"],"groundingChunks":[{"web":{"uri":"https://vertexaisearch.cloud.google.com/grounding-api-redirect/a","title":"uefa.com"}}]}}],"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"STOP","index":0,"groundingMetadata":{"webSearchQueries":["who won euro 2024"],"groundingChunks":[{"web":{"uri":"https://vertexaisearch.cloud.google.com/grounding-api-redirect/a","title":"uefa.com"}}]}}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":12,"totalTokenCount":21},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
        ];
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for c in chunks {
            d.decode(&data(c), &mut out).unwrap();
        }
        let kinds: Vec<&str> = out
            .iter()
            .map(|e| match e {
                Event::Start { .. } => "start",
                Event::Usage(_) => "usage",
                Event::TextDelta(_) => "text",
                Event::WebSearch(_) => "search",
                Event::Finish { .. } => "finish",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "start", "usage", "text", "text", "usage", "search", "finish"
            ]
        );
    }

    /// A blocked prompt streams no candidates, only the reason: the answer
    /// ends as a content filter, not as a broken stream.
    #[test]
    fn a_blocked_prompt_ends_as_a_content_filter() {
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        let ev = sse::Event {
            event: None,
            data: br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7},"modelVersion":"gemini-x","responseId":"r1"}"#.to_vec().into(),
            id: None,
        };
        d.decode(&ev, &mut out).unwrap();
        assert!(
            out.iter().any(|e| matches!(
                e,
                Event::Finish {
                    reason: FinishReason::ContentFilter,
                    ..
                }
            )),
            "{out:?}"
        );
    }
}
