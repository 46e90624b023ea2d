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
        if ev
            .event
            .as_deref()
            .is_some_and(|n| !KNOWN_EVENTS.contains(&n))
        {
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
    held: Vec<(Option<String>, Vec<u8>)>,
    begun: bool,
}

impl Relay {
    pub fn usage(&self) -> Option<Usage> {
        self.saw_usage.then(|| decode_usage(&self.usage))
    }

    pub fn relay(&mut self, ev: &sse::Event, w: &mut sse::Writer) -> Result<(), StreamError> {
        // Only a few event types carry what we record; deltas pass unparsed.
        let name = ev.event.as_deref().unwrap_or("");
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
                self.held.push((ev.event.clone(), ev.data.clone()));
                return Ok(());
            }
            self.begun = true;
            for (name, data) in self.held.drain(..) {
                w.event(name.as_deref(), &data);
            }
        }
        w.event(ev.event.as_deref(), &ev.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_deltas_are_walked_and_everything_else_left_to_serde() {
        fn walked(s: &str) -> Option<&str> {
            plain_text_delta(s.as_bytes())
        }
        assert_eq!(
            walked(
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello ✓"}}"#
            ),
            Some("Hello ✓")
        );
        assert_eq!(
            walked(
                r#" { "delta" : { "text" : "" , "type" : "text_delta" } , "type" : "content_block_delta" } "#
            ),
            Some("")
        );
        for other in [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\nb"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","text":"b"}}"#,
            r#"{"type":"content_block_delta","type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":"0","delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"},"usage":{}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}} x"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"},"delta":{}}"#,
            r#"{"type":"message_stop"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":7}}"#,
            r#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"a"}}"#,
            "{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"a\nb\"}}",
        ] {
            assert_eq!(walked(other), None, "{other}");
        }
        // What the walk declines, serde reads the same way it always did.
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for data in [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"plain"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"esc\"aped"}}"#,
        ] {
            let ev = sse::Event {
                event: Some("content_block_delta".into()),
                data: data.as_bytes().to_vec(),
                id: None,
            };
            d.decode(&ev, &mut out).unwrap();
        }
        let texts = crate::chat::texts(&out);
        assert_eq!(texts, ["plain", "esc\"aped"]);
    }

    fn ev(name: &str, data: &str) -> sse::Event {
        sse::Event {
            event: Some(name.into()),
            data: data.as_bytes().to_vec(),
            id: None,
        }
    }

    /// The streamed search of Anthropic's web search tool documentation:
    /// the query streams as a server_tool_use block, the results arrive
    /// whole; one canonical search comes out when they do, and the count
    /// in the cumulative usage is kept.
    #[test]
    fn a_streamed_search_becomes_one_event_with_its_results() {
        let events = [
            ev(
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_abc123","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":10,"output_tokens":1}}}"#,
            ),
            ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_xyz789","name":"web_search"}}"#,
            ),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"latest quantum "}}"#,
            ),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"computing breakthroughs 2025\"}"}}"#,
            ),
            ev(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_xyz789","content":[{"type":"web_search_result","title":"Quantum Computing Breakthroughs in 2025","url":"https://example.com"}]}}"#,
            ),
            ev(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            ev(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":20,"server_tool_use":{"web_search_requests":1}}}"#,
            ),
        ];
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for e in &events {
            d.decode(e, &mut out).unwrap();
        }
        let searches: Vec<&WebSearch> = out
            .iter()
            .filter_map(|e| match e {
                Event::WebSearch(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(
            searches,
            [&WebSearch {
                id: "srvtoolu_xyz789".into(),
                queries: vec!["latest quantum computing breakthroughs 2025".into()],
                sources: vec![crate::chat::WebSource {
                    url: "https://example.com".into(),
                    title: Some("Quantum Computing Breakthroughs in 2025".into()),
                }],
                error: None,
            }]
        );
        assert!(
            !out.iter()
                .any(|e| matches!(e, Event::ToolCallStart { .. } | Event::ToolCallDelta { .. })),
            "a server tool is no tool call of the caller's: {out:?}"
        );
        let last = out
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Usage(u) => Some(*u),
                _ => None,
            })
            .unwrap();
        assert_eq!((last.output_tokens, last.web_search_requests), (20, 1));

        // A search the turn left unanswered still comes out, without results.
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for e in &events[..5] {
            d.decode(e, &mut out).unwrap();
        }
        d.decode(
            &ev(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"pause_turn"},"usage":{"output_tokens":3}}"#,
            ),
            &mut out,
        )
        .unwrap();
        assert!(out.iter().any(
            |e| matches!(e, Event::WebSearch(s) if s.sources.is_empty() && s.queries.len() == 1)
        ));
    }

    #[test]
    fn decodes_the_documented_tool_use_sequence() {
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for (n, data) in [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":20}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ] {
            d.decode(&ev(n, data), &mut out).unwrap();
        }
        assert!(d.done);
        let last_usage = out
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Usage(u) => Some(*u),
                _ => None,
            })
            .unwrap();
        assert_eq!(last_usage.input_tokens, 15);
        assert_eq!(last_usage.cached_input_tokens, 5);
        assert_eq!(last_usage.output_tokens, 20);
        assert!(out.contains(&Event::ToolCallDelta {
            index: 0,
            arguments: "{\"a\":1}".into()
        }));
        assert!(out.contains(&Event::Finish {
            reason: FinishReason::ToolCalls,
            stop_sequence: None
        }));
    }

    #[test]
    fn a_tool_called_without_arguments_gets_the_empty_object() {
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for (name, data) in [
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"now","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_2","name":"f","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
        ] {
            d.decode(&ev(name, data), &mut out).unwrap();
        }
        let args: Vec<(u32, String)> = out
            .into_iter()
            .filter_map(|e| match e {
                Event::ToolCallDelta { index, arguments } => Some((index, arguments)),
                _ => None,
            })
            .collect();
        assert_eq!(args, [(0, "{}".to_owned()), (1, r#"{"a":1}"#.to_owned())]);
    }

    #[test]
    fn overloaded_error_event_is_529() {
        let mut d = StreamDecoder::default();
        let e = d
            .decode(
                &ev(
                    "error",
                    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                ),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(matches!(e, StreamError::Upstream { status: 529, .. }));
    }

    proptest::proptest! {
        /// A delta that fills the template of a text delta the walk
        /// vouched for is one it vouches for too, with the same text.
        #[test]
        fn a_template_fill_is_what_the_walk_finds(
            text in "[a-z :{}\",\\\\\né]{0,6}",
            mutation in crate::wire::template::mutation(),
        ) {
            let delta = |text: &str| {
                format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#)
            };
            let base = delta("Hello");
            let t = Template::of(base.as_bytes(), base.find("Hello"), Holes::Marked).unwrap();
            let c = crate::wire::template::mutated(delta(&text), mutation);
            if let Some(Ok(text)) = t.fill(&c).map(std::str::from_utf8) {
                proptest::prop_assert_eq!(plain_text_delta(&c), Some(text));
            }
        }
    }

    /// Text deltas after the first are known by their bytes; the events
    /// are those serde would give, and other events still are read.
    #[test]
    fn text_deltas_like_the_last_decode_alike() {
        let delta = |text: &str| {
            format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#
            )
        };
        let thinking = r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#;
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for data in [
            delta("Hello"),
            delta(" wor"),
            delta(r#"ld \"x\""#),
            delta(""),
            thinking.to_owned(),
            delta("!"),
        ] {
            d.decode(&ev("content_block_delta", &data), &mut out)
                .unwrap();
        }
        assert_eq!(
            out,
            [
                Event::TextDelta("Hello".into()),
                Event::TextDelta(" wor".into()),
                Event::TextDelta("ld \"x\"".into()),
                Event::TextDelta("".into()),
                Event::ThinkingDelta("hm".into()),
                Event::TextDelta("!".into()),
            ]
        );
        // The last text delta is the template the next fills.
        assert_eq!(d.template.fill(delta("?").as_bytes()), Some(&b"?"[..]));
    }
}
