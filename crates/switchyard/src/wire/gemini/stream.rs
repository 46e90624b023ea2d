//! `streamGenerateContent?alt=sse` → canonical events. Each event is a whole
//! `GenerateContentResponse` holding the next slice of text (or whole
//! function calls) and the cumulative usage so far.

use super::response::{ResponseIn, decode_finish, decode_usage, tool_call};
use crate::chat::{Event, FinishReason};
use crate::wire::{StreamError, sse};

#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    calls: usize,
}

impl StreamDecoder {
    pub fn decode(&mut self, ev: &sse::Event, out: &mut Vec<Event>) -> Result<(), StreamError> {
        let r: ResponseIn =
            serde_json::from_slice(&ev.data).map_err(|e| StreamError::Malformed(e.to_string()))?;
        if let Some(raw) = r.error {
            let (kind, message, _) =
                super::decode_error(format!("{{\"error\":{}}}", raw.get()).as_bytes())
                    .unwrap_or((None, None, None));
            let status = match kind.as_deref() {
                Some("RESOURCE_EXHAUSTED") => 429,
                Some("UNAVAILABLE") => 503,
                Some("DEADLINE_EXCEEDED") => 504,
                Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION") => 400,
                _ => 500,
            };
            return Err(StreamError::Upstream {
                status,
                kind,
                message: message
                    .unwrap_or_else(|| "the upstream reported an error in its stream".into()),
            });
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
                out.push(Event::Finish {
                    reason: decode_finish(&f, self.calls > 0),
                    stop_sequence: None,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blocked prompt streams no candidates, only the reason: the answer
    /// ends as a content filter, not as a broken stream.
    #[test]
    fn a_blocked_prompt_ends_as_a_content_filter() {
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        let ev = sse::Event {
            event: None,
            data: br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7},"modelVersion":"gemini-x","responseId":"r1"}"#.to_vec(),
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
