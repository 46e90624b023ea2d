//! Canonical events written as the Messages event sequence, for an
//! Anthropic caller of any upstream.

use serde::Serialize;

use crate::chat::{Event, FinishReason, Usage};
use crate::wire::anthropic::response::{encode_stop, encode_usage};
use crate::wire::anthropic::types::UsageOut;
use crate::wire::sse;

#[derive(Serialize)]
struct MessageStartOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: StartMessageOut<'a>,
}

#[derive(Serialize)]
struct StartMessageOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: UsageOut,
}

#[derive(Serialize)]
struct BlockStartOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: BlockStartBody<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStartBody<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Empty,
    },
}

#[derive(Serialize)]
struct Empty {}

/// What [`StreamEncoder::delta`] writes, as serde would (its tests hold
/// the two to the same bytes).
#[cfg(test)]
#[derive(Serialize)]
struct BlockDeltaOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: DeltaBody<'a>,
}

#[derive(Clone, Copy, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)] // Anthropic's own names.
enum DeltaBody<'a> {
    TextDelta { text: &'a str },
    ThinkingDelta { thinking: &'a str },
    SignatureDelta { signature: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct BlockStopOut {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct MessageDeltaOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: MessageDeltaBody<'a>,
    usage: UsageOut,
}

#[derive(Serialize)]
struct MessageDeltaBody<'a> {
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    Tool,
}

/// Writes canonical events as the Messages event sequence.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    started: bool,
    usage: Usage,
    /// Open content blocks: (block index, kind); a block closes when the
    /// next one starts, as Anthropic's own streams do. (An upstream that
    /// interleaves argument deltas of parallel calls still gets each delta
    /// delivered under its block's index.)
    open: Vec<(u32, BlockKind)>,
    next_block: u32,
    /// Tool-call index → block index.
    tool_blocks: Vec<u32>,
    finish: Option<(FinishReason, Option<String>)>,
    /// The event being written, kept for its allocation.
    scratch: Vec<u8>,
}

impl StreamEncoder {
    pub fn new(id: String, model: String) -> StreamEncoder {
        StreamEncoder {
            id,
            model,
            started: false,
            usage: Usage::default(),
            open: Vec::new(),
            next_block: 0,
            tool_blocks: Vec::new(),
            finish: None,
            scratch: Vec::new(),
        }
    }

    /// `message_start` waits for the first content so that usage the upstream
    /// sent with its first chunk (Gemini) is already in it.
    fn ensure_started(&mut self, w: &mut sse::Writer) {
        if self.started {
            return;
        }
        self.started = true;
        let start = MessageStartOut {
            kind: "message_start",
            message: StartMessageOut {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: [],
                stop_reason: None,
                stop_sequence: None,
                usage: encode_usage(&self.usage),
            },
        };
        w.event(Some("message_start"), &crate::wire::to_vec(&start));
    }

    fn close(&mut self, w: &mut sse::Writer) {
        for (index, _) in self.open.drain(..) {
            let stop = BlockStopOut {
                kind: "content_block_stop",
                index,
            };
            w.event(Some("content_block_stop"), &crate::wire::to_vec(&stop));
        }
    }

    /// The block that continuous text or thinking goes into, opened if needed.
    fn flowing_block(&mut self, kind: BlockKind, w: &mut sse::Writer) -> u32 {
        if let Some(&(index, k)) = self.open.last()
            && k == kind
        {
            return index;
        }
        self.close(w);
        let index = self.next_block;
        self.next_block += 1;
        let body = match kind {
            BlockKind::Thinking => BlockStartBody::Thinking {
                thinking: "",
                signature: "",
            },
            _ => BlockStartBody::Text { text: "" },
        };
        let start = BlockStartOut {
            kind: "content_block_start",
            index,
            content_block: body,
        };
        w.event(Some("content_block_start"), &crate::wire::to_vec(&start));
        self.open.push((index, kind));
        index
    }

    /// A `content_block_delta`: the bytes serde writes for
    /// [`BlockDeltaOut`], put together here with only the string escaped
    /// by serde, in a buffer the stream keeps (one of these per token).
    fn delta(&mut self, w: &mut sse::Writer, index: u32, delta: DeltaBody<'_>) {
        let (kind, field, text) = match delta {
            DeltaBody::TextDelta { text } => ("text_delta", "text", text),
            DeltaBody::ThinkingDelta { thinking } => ("thinking_delta", "thinking", thinking),
            DeltaBody::SignatureDelta { signature } => ("signature_delta", "signature", signature),
            DeltaBody::InputJsonDelta { partial_json } => {
                ("input_json_delta", "partial_json", partial_json)
            }
        };
        let out = &mut self.scratch;
        out.clear();
        out.extend_from_slice(br#"{"type":"content_block_delta","index":"#);
        out.extend_from_slice(sse::digits(index.into()).as_bytes());
        out.extend_from_slice(br#","delta":{"type":""#);
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(br#"",""#);
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(br#"":"#);
        // A `&str` always serializes.
        let _ = serde_json::to_writer(&mut *out, text);
        out.extend_from_slice(b"}}");
        w.event(Some("content_block_delta"), out);
        // A long delta (a tool's whole arguments at once) is not kept for
        // the rest of the stream.
        if out.capacity() > 64 * 1024 {
            *out = Vec::new();
        }
    }

    pub fn encode(&mut self, ev: &Event, w: &mut sse::Writer) {
        match ev {
            Event::Start { id, model, .. } => {
                if !id.is_empty() {
                    self.id.clone_from(id);
                }
                if !model.is_empty() {
                    self.model.clone_from(model);
                }
            }
            Event::Usage(u) => self.usage = *u,
            Event::TextDelta(t) => {
                self.ensure_started(w);
                let index = self.flowing_block(BlockKind::Text, w);
                self.delta(w, index, DeltaBody::TextDelta { text: t });
            }
            Event::ThinkingDelta(t) => {
                self.ensure_started(w);
                let index = self.flowing_block(BlockKind::Thinking, w);
                self.delta(w, index, DeltaBody::ThinkingDelta { thinking: t });
            }
            Event::SignatureDelta(s) => {
                self.ensure_started(w);
                let index = self.flowing_block(BlockKind::Thinking, w);
                self.delta(w, index, DeltaBody::SignatureDelta { signature: s });
            }
            Event::ToolCallStart { index: _, id, name } => {
                self.ensure_started(w);
                self.close(w);
                let index = self.next_block;
                self.next_block += 1;
                let start = BlockStartOut {
                    kind: "content_block_start",
                    index,
                    content_block: BlockStartBody::ToolUse {
                        id,
                        name,
                        input: Empty {},
                    },
                };
                w.event(Some("content_block_start"), &crate::wire::to_vec(&start));
                self.open.push((index, BlockKind::Tool));
                self.tool_blocks.push(index);
            }
            Event::ToolCallDelta { index, arguments } => {
                if let Some(&block) = self.tool_blocks.get(*index as usize) {
                    self.delta(
                        w,
                        block,
                        DeltaBody::InputJsonDelta {
                            partial_json: arguments,
                        },
                    );
                }
            }
            Event::Finish {
                reason,
                stop_sequence,
            } => {
                self.finish = Some((reason.clone(), stop_sequence.clone()));
            }
            // Left out, as in a whole answer (`response::encode_response`).
            Event::WebSearch(_) => {}
        }
    }

    /// The upstream ended normally: close blocks, `message_delta` with the
    /// stop reason and final usage, `message_stop`.
    pub fn finish(&mut self, w: &mut sse::Writer) {
        self.ensure_started(w);
        self.close(w);
        let (reason, seq) = match &self.finish {
            Some((r, s)) => (Some(encode_stop(r)), s.as_deref()),
            None => (Some("end_turn"), None),
        };
        let d = MessageDeltaOut {
            kind: "message_delta",
            delta: MessageDeltaBody {
                stop_reason: reason,
                stop_sequence: seq,
            },
            usage: encode_usage(&self.usage),
        };
        w.event(Some("message_delta"), &crate::wire::to_vec(&d));
        w.event(Some("message_stop"), br#"{"type":"message_stop"}"#);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of delta, with what a JSON string must escape, is
    /// written byte for byte as serde writes [`BlockDeltaOut`].
    #[test]
    fn a_delta_is_what_serde_writes() {
        let texts = [
            "",
            "plain",
            "quote \" and backslash \\",
            "line\nbreak\ttab\r\u{1}\u{1f}\u{7f}",
            "non-ASCII: é, 漢字, 🦀, \u{2028}",
            "</script>",
        ];
        let mut enc = StreamEncoder::new("m".into(), "m".into());
        for text in texts {
            for (index, delta) in [
                (0, DeltaBody::TextDelta { text }),
                (7, DeltaBody::ThinkingDelta { thinking: text }),
                (12, DeltaBody::SignatureDelta { signature: text }),
                (
                    4_000_000_000,
                    DeltaBody::InputJsonDelta { partial_json: text },
                ),
            ] {
                let mut w = sse::Writer::new(0);
                w.ids = false;
                enc.delta(&mut w, index, delta);
                let want = crate::wire::to_vec(&BlockDeltaOut {
                    kind: "content_block_delta",
                    index,
                    delta,
                });
                let mut expected = b"event: content_block_delta\ndata: ".to_vec();
                expected.extend_from_slice(&want);
                expected.extend_from_slice(b"\n\n");
                assert_eq!(
                    String::from_utf8_lossy(&w.take()),
                    String::from_utf8_lossy(&expected)
                );
            }
        }
    }

    #[test]
    fn encoder_writes_a_complete_sequence() {
        let mut enc = StreamEncoder::new("msg_x".into(), "m".into());
        let mut w = sse::Writer::new(0);
        for e in [
            Event::Start {
                id: "c1".into(),
                model: "gpt".into(),
                created: 1,
            },
            Event::TextDelta("Hel".into()),
            Event::TextDelta("lo".into()),
            Event::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "f".into(),
            },
            Event::ToolCallDelta {
                index: 0,
                arguments: "{}".into(),
            },
            Event::Finish {
                reason: FinishReason::ToolCalls,
                stop_sequence: None,
            },
            Event::Usage(Usage {
                input_tokens: 7,
                output_tokens: 3,
                ..Usage::default()
            }),
        ] {
            enc.encode(&e, &mut w);
        }
        enc.finish(&mut w);
        let bytes = w.take();
        let mut p = sse::Parser::new(0);
        let mut evs = Vec::new();
        p.feed(&bytes, &mut evs).unwrap();
        let names: Vec<_> = evs.iter().map(|e| e.name().unwrap().to_owned()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let delta = evs[8].data_str();
        assert!(delta.contains(r#""stop_reason":"tool_use""#), "{delta}");
        assert!(delta.contains(r#""input_tokens":7"#), "{delta}");
        assert!(delta.contains(r#""output_tokens":3"#), "{delta}");
        // Every event carries an id, numbered from 0.
        assert_eq!(evs[9].id.as_deref(), Some("9"));
    }
}
