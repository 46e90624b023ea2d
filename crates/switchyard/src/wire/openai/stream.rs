//! Chat Completions streams: upstream chunks to canonical events, canonical
//! events to chunks, and the same-dialect relay that forwards chunks as they
//! came while reading usage from them.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::response::{decode_finish, decode_usage, encode_finish, encode_usage};
use super::types::*;
use crate::chat::{Event, FinishReason, Usage};
use crate::wire::template::{Holes, Template};
use crate::wire::{StreamError, sse};

mod walk;
use walk::{FastPeek, plain_content_chunk, reads_nothing};

/// Reads an OpenAI-dialect upstream stream into canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    /// A refusal was streamed: the `stop` that ends it says so.
    refused: bool,
    /// Upstream tool-call index → ours, in order of first appearance.
    tool_index: Vec<u32>,
    /// Calls from a server that sends no `index`: a chunk with an `id`
    /// opens the next one, a chunk without continues the last.
    unindexed: u32,
    /// The last plain text chunk, for the next (see [`Template`]).
    template: Template,
    pub done: bool,
}

/// Where calls without an upstream `index` are numbered from.
const UNINDEXED: u32 = 1 << 30;

impl StreamDecoder {
    pub fn decode(&mut self, ev: &sse::Event, out: &mut Vec<Event>) -> Result<(), StreamError> {
        let data = &ev.data[..];
        if data == b"[DONE]" {
            self.done = true;
            return Ok(());
        }
        // Most of an answer: chunks of plain text once the answer has
        // started, each like the one before but for its strings, or else
        // read by a walk of its bytes (which makes it the next template).
        if self.started
            && let Some(content) = self
                .template
                .text_of(data, Holes::Values, plain_content_chunk)
        {
            if let Some(t) = content.filter(|t| !t.is_empty()) {
                out.push(Event::TextDelta(t.to_owned()));
            }
            return Ok(());
        }
        let chunk: ChunkIn =
            serde_json::from_slice(data).map_err(|e| StreamError::Malformed(e.to_string()))?;
        if let Some(err) = chunk.error {
            return Err(upstream_error(&err));
        }
        // Azure opens with a chunk of its prompt filter's results: no id, no
        // choices. The answer starts with the next.
        if !self.started
            && chunk.choices.is_empty()
            && chunk.usage.is_none()
            && chunk.id.as_deref().is_none_or(str::is_empty)
        {
            return Ok(());
        }
        if !self.started {
            self.started = true;
            out.push(Event::Start {
                id: chunk.id.unwrap_or_default(),
                model: chunk.model.unwrap_or_default(),
                created: chunk.created.unwrap_or(0),
            });
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            let delta = choice.delta.unwrap_or_default();
            if let Some(r) = delta.reasoning_content.filter(|s| !s.is_empty()) {
                out.push(Event::ThinkingDelta(r));
            }
            if let Some(t) = delta.content.filter(|s| !s.is_empty()) {
                out.push(Event::TextDelta(t));
            }
            if let Some(t) = delta.refusal.filter(|s| !s.is_empty()) {
                self.refused = true;
                out.push(Event::TextDelta(t));
            }
            for tc in delta.tool_calls.unwrap_or_default() {
                let upstream = match tc.index {
                    Some(i) => i,
                    None => {
                        if tc.id.is_some() || self.unindexed == 0 {
                            self.unindexed += 1;
                        }
                        UNINDEXED + self.unindexed
                    }
                };
                let (name, args) = match tc.function {
                    Some(f) => (f.name, f.arguments),
                    None => (None, None),
                };
                let ours = match self.tool_index.iter().position(|&u| u == upstream) {
                    Some(i) => i as u32,
                    None => {
                        let i = self.tool_index.len() as u32;
                        self.tool_index.push(upstream);
                        out.push(Event::ToolCallStart {
                            index: i,
                            id: tc.id.unwrap_or_else(|| format!("call_{i}")),
                            name: name.unwrap_or_default(),
                        });
                        i
                    }
                };
                if let Some(a) = args.filter(|a| !a.is_empty()) {
                    out.push(Event::ToolCallDelta {
                        index: ours,
                        arguments: a,
                    });
                }
            }
            if let Some(f) = choice.finish_reason {
                let reason = match decode_finish(&f) {
                    FinishReason::Stop if self.refused => FinishReason::Refusal,
                    r => super::response::finish_with_calls(r, !self.tool_index.is_empty()),
                };
                out.push(Event::Finish {
                    reason,
                    stop_sequence: None,
                });
            }
        }
        if let Some(u) = chunk.usage.or(chunk.x_groq.and_then(|g| g.usage)) {
            out.push(Event::Usage(decode_usage(&u)));
        }
        Ok(())
    }
}

fn upstream_error(raw: &RawValue) -> StreamError {
    let err: Option<ErrorIn> = serde_json::from_str(raw.get()).ok();
    let (kind, message, code) = match err {
        Some(e) => (e.kind, e.message, e.code),
        None => (None, None, None),
    };
    let status = code
        .as_ref()
        .and_then(|c| c.as_u64())
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(match kind.as_deref() {
            Some("rate_limit_exceeded" | "rate_limit_error") => 429,
            Some("overloaded_error") => 529,
            Some("invalid_request_error") => 400,
            _ => 500,
        });
    StreamError::Upstream {
        status,
        kind: kind.or_else(|| code.and_then(|c| c.as_str().map(str::to_owned))),
        message: message.unwrap_or_else(|| "the upstream reported an error in its stream".into()),
    }
}

/// Writes canonical events as Chat Completions chunks.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    usage: Option<Usage>,
    /// Whether the `role` chunk is out. It waits for the answer itself: an
    /// upstream error right after the start then reaches the caller as
    /// nothing at all, and the route can fail over.
    begun: bool,
    /// Every chunk's bytes up to its `choices` (id, object, created,
    /// model), encoded once; empty until the first chunk, and again when
    /// the upstream's `Start` renames the answer.
    head: Vec<u8>,
    /// The chunk being written, kept for its allocation.
    scratch: Vec<u8>,
}

impl StreamEncoder {
    /// `id` and `model` name the answer until the upstream's `Start` says
    /// otherwise; `include_usage` is whether the caller asked for usage.
    pub fn new(id: String, model: String, created: u64, include_usage: bool) -> StreamEncoder {
        StreamEncoder {
            id,
            model,
            created,
            include_usage,
            usage: None,
            begun: false,
            head: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn begin(&mut self, w: &mut sse::Writer) {
        if !self.begun {
            self.begun = true;
            let delta = DeltaOut {
                role: Some("assistant"),
                content: Some(""),
                ..DeltaOut::default()
            };
            self.chunk(w, delta, None);
        }
    }

    /// One chunk with one choice: the bytes serde writes for [`ChunkOut`],
    /// with the part every chunk of the stream shares encoded once, and
    /// only the delta through serde.
    fn chunk(&mut self, w: &mut sse::Writer, delta: DeltaOut<'_>, finish: Option<&FinishReason>) {
        if self.head.is_empty() {
            self.head = chunk_head(&self.id, self.created, &self.model);
        }
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        out.extend_from_slice(&self.head);
        out.extend_from_slice(br#"{"index":0,"delta":"#);
        out.extend_from_slice(&crate::wire::to_vec(&delta));
        out.extend_from_slice(br#","finish_reason":"#);
        match finish {
            Some(f) => out.extend_from_slice(&crate::wire::to_vec(encode_finish(f))),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","logprobs":null}]"#);
        if self.include_usage {
            out.extend_from_slice(br#","usage":null"#);
        }
        out.push(b'}');
        w.event(None, &out);
        self.scratch = out;
    }

    pub fn encode(&mut self, ev: &Event, w: &mut sse::Writer) {
        if !matches!(
            ev,
            Event::Start { .. } | Event::Usage(_) | Event::SignatureDelta(_) | Event::WebSearch(_)
        ) {
            self.begin(w);
        }
        match ev {
            Event::Start { id, model, created } => {
                self.head.clear();
                if !id.is_empty() {
                    self.id.clone_from(id);
                }
                if !model.is_empty() {
                    self.model.clone_from(model);
                }
                if *created != 0 {
                    self.created = *created;
                }
            }
            Event::TextDelta(t) => self.chunk(
                w,
                DeltaOut {
                    content: Some(t),
                    ..DeltaOut::default()
                },
                None,
            ),
            Event::ThinkingDelta(t) => self.chunk(
                w,
                DeltaOut {
                    reasoning_content: Some(t),
                    ..DeltaOut::default()
                },
                None,
            ),
            // Signatures only mean something to the provider that made them.
            Event::SignatureDelta(_) => {}
            Event::ToolCallStart { index, id, name } => self.chunk(
                w,
                DeltaOut {
                    tool_calls: vec![ToolCallDeltaOut {
                        index: *index,
                        id: Some(id),
                        kind: Some("function"),
                        function: FunctionDeltaOut {
                            name: Some(name),
                            arguments: "",
                        },
                    }],
                    ..DeltaOut::default()
                },
                None,
            ),
            Event::ToolCallDelta { index, arguments } => self.chunk(
                w,
                DeltaOut {
                    tool_calls: vec![ToolCallDeltaOut {
                        index: *index,
                        id: None,
                        kind: None,
                        function: FunctionDeltaOut {
                            name: None,
                            arguments,
                        },
                    }],
                    ..DeltaOut::default()
                },
                None,
            ),
            // Chat Completions has no place for a step the provider took
            // on its own; see `response::encode_response`.
            Event::WebSearch(_) => {}
            Event::Usage(u) => self.usage = Some(*u),
            Event::Finish { reason, .. } => self.chunk(w, DeltaOut::default(), Some(reason)),
        }
    }

    /// The upstream ended normally: the usage chunk if asked for, then `[DONE]`.
    pub fn finish(&mut self, w: &mut sse::Writer) {
        self.begin(w);
        if self.include_usage
            && let Some(u) = &self.usage
        {
            let c = ChunkOut {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: Vec::new(),
                usage: Some(Some(encode_usage(u))),
            };
            w.event(None, &crate::wire::to_vec(&c));
        }
        w.event(None, b"[DONE]");
    }
}

/// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[`
/// as serde writes [`ChunkOut`]'s first members.
fn chunk_head(id: &str, created: u64, model: &str) -> Vec<u8> {
    let mut head = Vec::with_capacity(id.len() + model.len() + 80);
    head.extend_from_slice(br#"{"id":"#);
    head.extend_from_slice(&crate::wire::to_vec(id));
    head.extend_from_slice(br#","object":"chat.completion.chunk","created":"#);
    head.extend_from_slice(created.to_string().as_bytes());
    head.extend_from_slice(br#","model":"#);
    head.extend_from_slice(&crate::wire::to_vec(model));
    head.extend_from_slice(br#","choices":["#);
    head
}

/// Writes the terminal error chunk of a stream that failed after its first
/// byte. No `[DONE]` follows: the error is the end.
pub fn write_error(w: &mut sse::Writer, body: &[u8]) {
    w.event(None, body);
}

/// Forwards an OpenAI-dialect upstream stream to an OpenAI-dialect caller
/// chunk by chunk, reading usage and finish on the way. Only the usage chunk
/// the gateway asked for on its own account is held back.
#[derive(Debug, Default)]
pub struct Relay {
    include_usage: bool,
    pub usage: Option<Usage>,
    pub finish: Option<FinishReason>,
    pub done: bool,
    pub first_id: Option<(String, String)>,
    /// The last chunk relayed unread, for the next (see [`Template`]).
    template: Template,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    choices: Vec<PeekChoice>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    x_groq: Option<GroqIn>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct PeekChoice {
    #[serde(default)]
    finish_reason: Option<String>,
}

impl Relay {
    pub fn new(include_usage: bool) -> Relay {
        Relay {
            include_usage,
            ..Relay::default()
        }
    }

    pub fn relay(&mut self, ev: &sse::Event, w: &mut sse::Writer) -> Result<(), StreamError> {
        if ev.data[..] == *b"[DONE]" {
            self.done = true;
            w.event(None, b"[DONE]");
            return Ok(());
        }
        // Most chunks of an answer: text, with no finish reason or usage
        // yet, after the first (which gives the id).
        if self.first_id.is_some() && self.reads_nothing(&ev.data) {
            w.event(None, &ev.data);
            return Ok(());
        }
        if let Some(p) = FastPeek::of(&ev.data, self.first_id.is_none()) {
            // Azure's opening prompt-filter chunk has an empty id.
            if self.first_id.is_none() && p.id.is_some_and(|id| !id.is_empty()) {
                self.first_id = Some((
                    p.id.unwrap_or_default().to_owned(),
                    p.model.unwrap_or_default().to_owned(),
                ));
            }
            if let Some(f) = p.finish {
                self.finish = Some(decode_finish(f));
            }
            let malformed = |e: serde_json::Error| StreamError::Malformed(e.to_string());
            let usage = match (p.usage, p.groq) {
                (Some(raw), _) => Some(serde_json::from_slice::<UsageIn>(raw).map_err(malformed)?),
                (None, Some(raw)) => {
                    serde_json::from_slice::<GroqIn>(raw)
                        .map_err(malformed)?
                        .usage
                }
                (None, None) => None,
            };
            if let Some(u) = &usage {
                self.usage = Some(decode_usage(u));
            }
            if p.choices == 0 && usage.is_some() && !self.include_usage {
                return Ok(());
            }
            w.event(None, &ev.data);
            return Ok(());
        }
        self.relay_decoded(ev, w)
    }

    /// Whether `data` has nothing to read: it is the last chunk relayed
    /// unread but for its strings, or [`reads_nothing`] finds so (and it
    /// becomes the template for the next).
    fn reads_nothing(&mut self, data: &[u8]) -> bool {
        if self.template.fill(data).is_some() {
            return true;
        }
        if !reads_nothing(data) {
            return false;
        }
        self.template.set(data, None, Holes::Values);
        true
    }

    /// [`Relay::relay`] for chunks the walk left to serde.
    fn relay_decoded(&mut self, ev: &sse::Event, w: &mut sse::Writer) -> Result<(), StreamError> {
        let peek: Peek =
            serde_json::from_slice(&ev.data).map_err(|e| StreamError::Malformed(e.to_string()))?;
        if let Some(err) = peek.error {
            return Err(upstream_error(err));
        }
        if self.first_id.is_none() && peek.id.as_deref().is_some_and(|id| !id.is_empty()) {
            self.first_id = Some((
                peek.id.as_deref().unwrap_or_default().to_owned(),
                peek.model.as_deref().unwrap_or_default().to_owned(),
            ));
        }
        if let Some(f) = peek
            .choices
            .first()
            .and_then(|c| c.finish_reason.as_deref())
        {
            self.finish = Some(decode_finish(f));
        }
        let usage = peek.usage.or(peek.x_groq.and_then(|g| g.usage));
        if let Some(u) = &usage {
            self.usage = Some(decode_usage(u));
        }
        if peek.choices.is_empty() && usage.is_some() && !self.include_usage {
            return Ok(());
        }
        w.event(None, &ev.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
