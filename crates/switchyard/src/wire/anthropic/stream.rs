//! Messages streams: upstream events to canonical events, canonical events
//! to the full Messages event sequence, and the same-dialect relay.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::response::{decode_stop, decode_usage, search_query, search_results};
use super::types::*;
use crate::chat::{Event, FinishReason, Usage, WebSearch};
use crate::wire::template::{Holes, Template};
use crate::wire::{StreamError, sse};

mod encode;
pub use encode::StreamEncoder;

#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    message: Option<MessageStartIn>,
    #[serde(default)]
    content_block: Option<BlockStartIn>,
    #[serde(default)]
    delta: Option<DeltaIn>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

/// The text of a `content_block_delta` event whose delta is a `text_delta`,
/// found by walking the event's bytes: `None` for every other event, and
/// for one with anything the walk does not vouch for (a member besides
/// `type`, `index` and `delta`, a member twice, an index that is not a
/// plain number, a text with escapes), which serde then decodes.
fn plain_text_delta(data: &[u8]) -> Option<&str> {
    fn once<'a>(slot: &mut Option<&'a [u8]>, raw: &'a [u8]) -> Option<()> {
        slot.replace(raw).is_none().then_some(())
    }
    use crate::wire::scan::{Walker, plain_str};
    let (mut kind, mut index, mut delta_kind, mut text) = (None, None, None, None);
    let mut deltas = 0;
    let mut w = Walker::new(data);
    w.object(|k, w| match k {
        b"type" => once(&mut kind, w.raw()?),
        b"index" => once(&mut index, w.raw()?),
        b"delta" => {
            deltas += 1;
            w.object(|k, w| match k {
                b"type" => once(&mut delta_kind, w.raw()?),
                b"text" => once(&mut text, w.raw()?),
                _ => None,
            })
        }
        _ => None,
    })?;
    let plain_index = index.is_none_or(|i| crate::wire::scan::plain_uint(i, 9));
    (w.at_end()
        && deltas == 1
        && plain_index
        && kind? == br#""content_block_delta""#
        && delta_kind? == br#""text_delta""#)
        .then_some(())?;
    plain_str(text?)
}

#[derive(Deserialize)]
struct MessageStartIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct BlockStartIn {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    input: Option<Box<RawValue>>,
    #[serde(default)]
    tool_use_id: Option<String>,
    #[serde(default)]
    content: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct DeltaIn {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
}

/// The status an Anthropic error type stands for.
pub fn status_for_error_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

fn upstream_error(raw: &RawValue) -> StreamError {
    let e: Option<ErrorIn> = serde_json::from_str(raw.get()).ok();
    let (kind, message) = e.map(|e| (e.kind, e.message)).unwrap_or((None, None));
    StreamError::Upstream {
        status: status_for_error_type(kind.as_deref().unwrap_or("")),
        kind,
        message: message.unwrap_or_else(|| "the upstream reported an error in its stream".into()),
    }
}

/// Reads an Anthropic upstream stream into canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// Content-block index → (tool-call index, whether any argument
    /// fragment came), for tool_use blocks.
    tool_blocks: Vec<(u32, u32, bool)>,
    /// Web searches called and not yet answered: the search streams its
    /// query as a server_tool_use block, and its results arrive whole in a
    /// later web_search_tool_result block; the canonical event waits for
    /// them.
    searches: Vec<PendingSearch>,
    usage: UsageIn,
    /// The last text delta, for the next (see [`Template`]).
    template: Template,
    pub done: bool,
}

#[derive(Debug)]
struct PendingSearch {
    block: u32,
    search: WebSearch,
    /// The call's input JSON, as streamed so far.
    input: String,
}

/// The event names of Anthropic's streams.
const KNOWN_EVENTS: [&str; 8] = [
    "message_start",
    "message_delta",
    "message_stop",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "ping",
    "error",
];

impl StreamDecoder {
    pub fn decode(&mut self, ev: &sse::Event, out: &mut Vec<Event>) -> Result<(), StreamError> {
        // Events of names Anthropic does not send (Vertex's `vertex_event`)
        // carry nothing of the answer; their data need not even be its JSON.
        if ev.event.is_some() && !ev.name().is_some_and(|n| KNOWN_EVENTS.contains(&n)) {
            return Ok(());
        }
        // Most of a stream: text deltas, each like the one before but for
        // its text, or else read by a walk of its bytes (which makes it
        // the next template).
        let walk = |data| plain_text_delta(data).map(Some);
        if let Some(Some(text)) = self.template.text_of(&ev.data, Holes::Marked, walk) {
            out.push(Event::TextDelta(text.to_owned()));
            return Ok(());
        }
        let e: EventIn =
            serde_json::from_slice(&ev.data).map_err(|e| StreamError::Malformed(e.to_string()))?;
        match e.kind.as_ref() {
            "message_start" => {
                let m = e.message.ok_or_else(|| {
                    StreamError::Malformed("message_start without message".into())
                })?;
                out.push(Event::Start {
                    id: m.id.unwrap_or_default(),
                    model: m.model.unwrap_or_default(),
                    created: 0,
                });
                if let Some(u) = m.usage {
                    self.usage = u;
                    out.push(Event::Usage(decode_usage(&self.usage)));
                }
            }
            "content_block_start" => {
                let b = e.content_block.ok_or_else(|| {
                    StreamError::Malformed("content_block_start without content_block".into())
                })?;
                match b.kind.as_str() {
                    "server_tool_use" if b.name.as_deref() == Some("web_search") => {
                        // The input usually streams in deltas; a whole one
                        // (`{}` while it streams) counts as their start.
                        let input = b
                            .input
                            .map(|i| i.get().to_owned())
                            .filter(|i| i != "{}")
                            .unwrap_or_default();
                        self.searches.push(PendingSearch {
                            block: e.index.unwrap_or(0),
                            search: WebSearch {
                                id: b.id.unwrap_or_default(),
                                ..WebSearch::default()
                            },
                            input,
                        });
                    }
                    "web_search_tool_result" => {
                        let id = b.tool_use_id.unwrap_or_default();
                        let mut search = match self.searches.iter().position(|p| p.search.id == id)
                        {
                            Some(i) => finished(self.searches.remove(i)),
                            None => WebSearch {
                                id,
                                ..WebSearch::default()
                            },
                        };
                        (search.sources, search.error) = search_results(b.content.as_deref());
                        out.push(Event::WebSearch(search));
                    }
                    "tool_use" => {
                        let tool = self.tool_blocks.len() as u32;
                        self.tool_blocks.push((e.index.unwrap_or(0), tool, false));
                        out.push(Event::ToolCallStart {
                            index: tool,
                            id: b.id.unwrap_or_default(),
                            name: b.name.unwrap_or_default(),
                        });
                    }
                    "text" => {
                        if let Some(t) = b.text.filter(|t| !t.is_empty()) {
                            out.push(Event::TextDelta(t));
                        }
                    }
                    "thinking" => {
                        if let Some(t) = b.thinking.filter(|t| !t.is_empty()) {
                            out.push(Event::ThinkingDelta(t));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let Some(d) = e.delta else { return Ok(()) };
                match d.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(t) = d.text {
                            out.push(Event::TextDelta(t));
                        }
                    }
                    Some("input_json_delta") => {
                        let block = e.index.unwrap_or(0);
                        if let Some(p) = self.searches.iter_mut().find(|p| p.block == block) {
                            p.input.push_str(d.partial_json.as_deref().unwrap_or(""));
                        } else if let Some((_, tool, got)) =
                            self.tool_blocks.iter_mut().find(|(b, _, _)| *b == block)
                            && let Some(p) = d.partial_json.filter(|p| !p.is_empty())
                        {
                            *got = true;
                            out.push(Event::ToolCallDelta {
                                index: *tool,
                                arguments: p,
                            });
                        }
                    }
                    Some("thinking_delta") => {
                        if let Some(t) = d.thinking {
                            out.push(Event::ThinkingDelta(t));
                        }
                    }
                    Some("signature_delta") => {
                        if let Some(s) = d.signature {
                            out.push(Event::SignatureDelta(s));
                        }
                    }
                    _ => {}
                }
            }
            // A tool called with no arguments streams none (or only ""):
            // its arguments are the empty object, as in a whole answer.
            "content_block_stop" => {
                let block = e.index.unwrap_or(0);
                if let Some((_, tool, got)) =
                    self.tool_blocks.iter_mut().find(|(b, _, _)| *b == block)
                    && !*got
                {
                    *got = true;
                    out.push(Event::ToolCallDelta {
                        index: *tool,
                        arguments: "{}".into(),
                    });
                }
            }
            "message_delta" => {
                // A search never answered (the turn paused or stopped
                // first) is still a search the provider made.
                for p in std::mem::take(&mut self.searches) {
                    out.push(Event::WebSearch(finished(p)));
                }
                if let Some(u) = e.usage {
                    // Cumulative: each field present replaces the last.
                    let cur = &mut self.usage;
                    cur.server_tool_use = u.server_tool_use.or(cur.server_tool_use);
                    cur.output_tokens = u.output_tokens.or(cur.output_tokens);
                    cur.input_tokens = u.input_tokens.or(cur.input_tokens);
                    cur.cache_read_input_tokens =
                        u.cache_read_input_tokens.or(cur.cache_read_input_tokens);
                    cur.cache_creation_input_tokens = u
                        .cache_creation_input_tokens
                        .or(cur.cache_creation_input_tokens);
                    out.push(Event::Usage(decode_usage(cur)));
                }
                if let Some(d) = e.delta
                    && let Some(r) = d.stop_reason
                {
                    out.push(Event::Finish {
                        reason: decode_stop(&r),
                        stop_sequence: d.stop_sequence,
                    });
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                return Err(match e.error {
                    Some(raw) => upstream_error(raw),
                    None => StreamError::Upstream {
                        status: 500,
                        kind: None,
                        message: "the upstream reported an error in its stream".into(),
                    },
                });
            }
            // ping, content_block_stop, and event types yet to come.
            _ => {}
        }
        Ok(())
    }
}

/// A pending search with its query read from the streamed input.
fn finished(p: PendingSearch) -> WebSearch {
    let mut s = p.search;
    s.queries = search_query(&p.input).into_iter().collect();
    s
}

/// Writes the terminal `event: error` of a stream that failed after its
/// first byte.
pub fn write_error(w: &mut sse::Writer, body: &[u8]) {
    w.event(Some("error"), body);
}

/// Forwards an Anthropic upstream stream to an Anthropic caller event by
/// event, reading usage and the stop reason on the way.
#[derive(Debug, Default)]
pub struct Relay {
    usage: UsageIn,
    pub saw_usage: bool,
    pub finish: Option<FinishReason>,
    pub done: bool,
    pub first_id: Option<(String, String)>,
    /// `message_start` and `ping`, held back until the answer itself
    /// begins: an error right after them (Anthropic's overloaded 529 often
    /// comes so) then reaches the caller as nothing at all, and the route
    /// can fail over.
    held: Vec<(Option<String>, bytes::Bytes)>,
    begun: bool,
}

impl Relay {
    pub fn usage(&self) -> Option<Usage> {
        self.saw_usage.then(|| decode_usage(&self.usage))
    }

    pub fn relay(&mut self, ev: &sse::Event, w: &mut sse::Writer) -> Result<(), StreamError> {
        // Only a few event types carry what we record; deltas pass unparsed.
        let name = ev.name().unwrap_or("");
        match name {
            "message_start" | "message_delta" | "error" | "message_stop" | "" => {
                let mut d = StreamDecoder {
                    usage: self.usage,
                    ..StreamDecoder::default()
                };
                let mut out = Vec::new();
                d.decode(ev, &mut out)?;
                self.usage = d.usage;
                self.done |= d.done;
                for e in out {
                    match e {
                        Event::Usage(_) => self.saw_usage = true,
                        Event::Finish { reason, .. } => self.finish = Some(reason),
                        Event::Start { id, model, .. } => self.first_id = Some((id, model)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if !self.begun {
            if matches!(name, "message_start" | "ping") {
                self.held
                    .push((ev.name().map(str::to_owned), ev.data.clone()));
                return Ok(());
            }
            self.begun = true;
            for (name, data) in self.held.drain(..) {
                w.event(name.as_deref(), &data);
            }
        }
        w.event(ev.name(), &ev.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
