//! `ConverseStream` events → canonical events.
//!
//! Each eventstream frame carries one event, named by its `:event-type`
//! header, with the event's members as its JSON payload (no wrapper
//! naming it again). The caller hands each frame over as an
//! [`sse::Event`]: `event` is the header, `data` the payload. An answer
//! runs `messageStart`, then per content block `contentBlockStart` (tool
//! calls only), `contentBlockDelta`s and `contentBlockStop`, then
//! `messageStop` with the stop reason, and last `metadata` with the usage.
//! Every payload carries a `p` member of random letters (padding against
//! length side channels), which is ignored like any member not read.

use serde::Deserialize;

use super::response::{ResponseFieldsIn, UsageIn, decode_stop, decode_usage};
use crate::chat::Event;
use crate::wire::{StreamError, sse};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStartIn {
    #[serde(default)]
    content_block_index: u32,
    #[serde(default)]
    start: Option<StartIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartIn {
    #[serde(default)]
    tool_use: Option<ToolUseStartIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStartIn {
    #[serde(default)]
    tool_use_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDeltaIn {
    #[serde(default)]
    content_block_index: u32,
    #[serde(default)]
    delta: Option<DeltaIn>,
}

/// A delta: a union, one member set.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaIn {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUseDeltaIn>,
    #[serde(default)]
    reasoning_content: Option<ReasoningDeltaIn>,
}

#[derive(Deserialize)]
struct ToolUseDeltaIn {
    /// A fragment of the input's JSON text.
    #[serde(default)]
    input: Option<String>,
}

#[derive(Deserialize)]
struct ReasoningDeltaIn {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    signature: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStopIn {
    #[serde(default)]
    content_block_index: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStopIn {
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    additional_model_response_fields: Option<ResponseFieldsIn>,
}

#[derive(Deserialize)]
struct MetadataIn {
    #[serde(default)]
    usage: Option<UsageIn>,
}

/// One tool-use content block: Bedrock's block index, our dense tool-call
/// index, and whether any input fragment came.
#[derive(Debug)]
struct ToolBlock {
    block: u32,
    index: u32,
    got_input: bool,
}

/// Reads a `ConverseStream` answer into canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    tools: Vec<ToolBlock>,
    /// The answer is complete: `metadata`, the last event of every
    /// answer, has come. The body ends after it.
    pub done: bool,
}

impl StreamDecoder {
    /// Decodes one frame's event into `out`. Event types this decoder does
    /// not know are skipped, as are members of known ones it does not read
    /// (citations, images, guardrail traces).
    pub fn decode(&mut self, ev: &sse::Event, out: &mut Vec<Event>) -> Result<(), StreamError> {
        let Some(kind) = ev.name() else {
            return Ok(());
        };
        match kind {
            "messageStart" => self.start(out),
            "contentBlockStart" => {
                let e: BlockStartIn = parse(kind, &ev.data)?;
                self.start(out);
                if let Some(t) = e.start.and_then(|s| s.tool_use) {
                    let index = self.tools.len() as u32;
                    self.tools.push(ToolBlock {
                        block: e.content_block_index,
                        index,
                        got_input: false,
                    });
                    out.push(Event::ToolCallStart {
                        index,
                        id: t.tool_use_id.unwrap_or_default(),
                        name: t.name.unwrap_or_default(),
                    });
                }
            }
            "contentBlockDelta" => {
                let e: BlockDeltaIn = parse(kind, &ev.data)?;
                self.start(out);
                if let Some(d) = e.delta {
                    self.delta(e.content_block_index, d, out);
                }
            }
            // A tool called with no arguments may stream no input at all:
            // its arguments are the empty object, as in a whole answer.
            "contentBlockStop" => {
                let e: BlockStopIn = parse(kind, &ev.data)?;
                if let Some(t) = self.tool(e.content_block_index)
                    && !t.got_input
                {
                    t.got_input = true;
                    let index = t.index;
                    out.push(Event::ToolCallDelta {
                        index,
                        arguments: "{}".into(),
                    });
                }
            }
            "messageStop" => {
                let e: MessageStopIn = parse(kind, &ev.data)?;
                self.start(out);
                if let Some(r) = e.stop_reason {
                    out.push(Event::Finish {
                        reason: decode_stop(&r),
                        stop_sequence: e
                            .additional_model_response_fields
                            .and_then(|f| f.stop_sequence),
                    });
                }
            }
            "metadata" => {
                let e: MetadataIn = parse(kind, &ev.data)?;
                self.start(out);
                if let Some(u) = &e.usage {
                    out.push(Event::Usage(decode_usage(u)));
                }
                self.done = true;
            }
            _ => {}
        }
        Ok(())
    }

    /// `Start` opens the canonical stream, once, whatever event comes
    /// first. Converse gives no id or model: both stay empty, for the
    /// caller to fill.
    fn start(&mut self, out: &mut Vec<Event>) {
        if !self.started {
            self.started = true;
            out.push(Event::Start {
                id: String::new(),
                model: String::new(),
                created: 0,
            });
        }
    }

    fn tool(&mut self, block: u32) -> Option<&mut ToolBlock> {
        self.tools.iter_mut().find(|t| t.block == block)
    }

    fn delta(&mut self, block: u32, d: DeltaIn, out: &mut Vec<Event>) {
        if let Some(t) = d.text.filter(|t| !t.is_empty()) {
            out.push(Event::TextDelta(t));
        }
        if let Some(fragment) = d.tool_use.and_then(|t| t.input).filter(|i| !i.is_empty())
            // Input for a block that never started as a tool call has no
            // call to belong to.
            && let Some(t) = self.tool(block)
        {
            t.got_input = true;
            let index = t.index;
            out.push(Event::ToolCallDelta {
                index,
                arguments: fragment,
            });
        }
        // Redacted reasoning (`redactedContent`) has no canonical stream
        // event; like the Anthropic decoder's redacted_thinking blocks, it
        // is not passed on.
        if let Some(r) = d.reasoning_content {
            if let Some(t) = r.text.filter(|t| !t.is_empty()) {
                out.push(Event::ThinkingDelta(t));
            }
            if let Some(s) = r.signature.filter(|s| !s.is_empty()) {
                out.push(Event::SignatureDelta(s));
            }
        }
    }
}

fn parse<'a, T: Deserialize<'a>>(kind: &str, data: &'a [u8]) -> Result<T, StreamError> {
    serde_json::from_slice(data).map_err(|e| StreamError::Malformed(format!("`{kind}` event: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{FinishReason, Usage};

    fn frame(kind: &str, data: &str) -> sse::Event {
        sse::Event {
            event: Some(bytes::Bytes::copy_from_slice(kind.as_bytes())),
            data: data.as_bytes().to_vec().into(),
            id: None,
        }
    }

    fn decode_all(frames: &[(&str, &str)]) -> (StreamDecoder, Vec<Event>) {
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for (kind, data) in frames {
            d.decode(&frame(kind, data), &mut out).unwrap();
        }
        (d, out)
    }

    /// A ConverseStream answer of Claude with extended thinking: reasoning
    /// and its signature, text, one tool call whose input streams in
    /// fragments, the stop, then the usage. Every payload carries the `p`
    /// padding.
    #[test]
    fn a_stream_with_reasoning_text_and_a_tool_call_decodes_in_order() {
        let (d, out) = decode_all(&[
            (
                "messageStart",
                r#"{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN","role":"assistant"}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"The user wants "}},"p":"abcd"}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"the weather."}},"p":"abcdefg"}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"ErUBCkYIBBgCIkDx"}},"p":"ab"}"#,
            ),
            (
                "contentBlockStop",
                r#"{"contentBlockIndex":0,"p":"abcdefghij"}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":1,"delta":{"text":"Let me check."},"p":"abc"}"#,
            ),
            (
                "contentBlockStop",
                r#"{"contentBlockIndex":1,"p":"abcdefghij"}"#,
            ),
            (
                "contentBlockStart",
                r#"{"contentBlockIndex":2,"p":"abcdef","start":{"toolUse":{"name":"get_weather","toolUseId":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"}}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":""}},"p":"abcdefghijklmnopq"}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{\"city\": "}},"p":"abcdefghijklmnopq"}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"\"Paris\"}"}},"p":"abcdefghijklmnopq"}"#,
            ),
            (
                "contentBlockStop",
                r#"{"contentBlockIndex":2,"p":"abcdefghijklmnop"}"#,
            ),
            (
                "messageStop",
                r#"{"p":"abcdefghijklmnopqrstu","stopReason":"tool_use"}"#,
            ),
            (
                "metadata",
                r#"{"metrics":{"latencyMs":2110},"p":"abcdefgh","usage":{"cacheReadInputTokens":1000,"cacheWriteInputTokens":0,"inputTokens":412,"outputTokens":96,"totalTokens":1508}}"#,
            ),
        ]);
        assert_eq!(
            out,
            [
                Event::Start {
                    id: String::new(),
                    model: String::new(),
                    created: 0
                },
                Event::ThinkingDelta("The user wants ".into()),
                Event::ThinkingDelta("the weather.".into()),
                Event::SignatureDelta("ErUBCkYIBBgCIkDx".into()),
                Event::TextDelta("Let me check.".into()),
                Event::ToolCallStart {
                    index: 0,
                    id: "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q".into(),
                    name: "get_weather".into()
                },
                Event::ToolCallDelta {
                    index: 0,
                    arguments: "{\"city\": ".into()
                },
                Event::ToolCallDelta {
                    index: 0,
                    arguments: "\"Paris\"}".into()
                },
                Event::Finish {
                    reason: FinishReason::ToolCalls,
                    stop_sequence: None
                },
                Event::Usage(Usage {
                    input_tokens: 1412,
                    output_tokens: 96,
                    cached_input_tokens: 1000,
                    cache_write_tokens: 0,
                    reasoning_tokens: 0,
                    web_search_requests: 0,
                }),
            ]
        );
        assert!(d.done);
    }

    /// Tool calls are numbered densely from 0 whatever their block
    /// indexes; a call without input gets the empty object.
    #[test]
    fn parallel_calls_get_dense_indexes_and_empty_input_is_an_object() {
        let (_, out) = decode_all(&[
            ("messageStart", r#"{"role":"assistant"}"#),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"text":"Two lookups."}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
            (
                "contentBlockStart",
                r#"{"contentBlockIndex":1,"start":{"toolUse":{"name":"now","toolUseId":"tooluse_a"}}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":1}"#),
            (
                "contentBlockStart",
                r#"{"contentBlockIndex":2,"start":{"toolUse":{"name":"get_weather","toolUseId":"tooluse_b"}}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{\"city\":\"Oslo\"}"}}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":2}"#),
            ("messageStop", r#"{"stopReason":"tool_use"}"#),
        ]);
        let calls: Vec<(u32, &str)> = out
            .iter()
            .filter_map(|e| match e {
                Event::ToolCallStart { index, name, .. } => Some((*index, name.as_str())),
                Event::ToolCallDelta { index, arguments } => Some((*index, arguments.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            calls,
            [
                (0, "now"),
                (0, "{}"),
                (1, "get_weather"),
                (1, r#"{"city":"Oslo"}"#)
            ]
        );
    }

    #[test]
    fn the_stop_sequence_and_a_content_filter_reach_the_finish() {
        let (d, out) = decode_all(&[
            ("messageStart", r#"{"role":"assistant"}"#),
            (
                "messageStop",
                r#"{"stopReason":"stop_sequence","additionalModelResponseFields":{"stop_sequence":"END"}}"#,
            ),
        ]);
        assert_eq!(
            out[1],
            Event::Finish {
                reason: FinishReason::StopSequence,
                stop_sequence: Some("END".into())
            }
        );
        assert!(!d.done, "the usage is still to come");
        let (_, out) = decode_all(&[("messageStop", r#"{"stopReason":"guardrail_intervened"}"#)]);
        assert!(matches!(out[0], Event::Start { .. }), "Start comes first");
        assert_eq!(
            out[1],
            Event::Finish {
                reason: FinishReason::ContentFilter,
                stop_sequence: None
            }
        );
    }

    #[test]
    fn unknown_events_and_members_are_skipped() {
        let (d, out) = decode_all(&[
            ("messageStart", r#"{"role":"assistant"}"#),
            ("someFutureEvent", "not even json"),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"citation":{"title":"doc"}}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"redactedContent":"RW5j"}}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"text":"hi"},"newMember":[1,2]}"#,
            ),
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1], Event::TextDelta("hi".into()));
        assert!(!d.done);
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        let unnamed = sse::Event {
            event: None,
            data: b"{}".to_vec().into(),
            id: None,
        };
        d.decode(&unnamed, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn malformed_payloads_are_stream_errors() {
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for (kind, data) in [
            ("contentBlockDelta", "{not json"),
            ("messageStop", r#"{"stopReason":7}"#),
            ("metadata", r#"{"usage":{"inputTokens":-1}}"#),
            ("contentBlockStart", "17"),
        ] {
            match d.decode(&frame(kind, data), &mut out) {
                Err(StreamError::Malformed(m)) => assert!(m.contains(kind), "{m}"),
                other => panic!("{kind}: {other:?}"),
            }
        }
    }
}
