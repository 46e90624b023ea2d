//! Responses streams: canonical events written as OpenAI's stream events
//! (the translated path), and a native upstream's events relayed.
//!
//! Every event is `event: <type>` + `data: {..., "sequence_number": n}`,
//! `n` rising from 0 with one SSE event per Responses event (so an SSE id
//! is a sequence number, and `starting_after` is `Last-Event-ID`). The
//! order is OpenAI's: `response.created`, `response.in_progress`, then per
//! output item `output_item.added`, its parts and deltas, their `done`s and
//! `output_item.done`, and exactly one terminal event:
//! `response.completed`, `response.incomplete` or, after an `error` event,
//! `response.failed`. A native upstream's events are relayed (`relay.rs`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::echo::Echo;
use super::response::{self, ContentOut, ItemOut, Object, status_of};
use crate::chat::{Event, FinishReason, Part, Usage, WebSearch};
use crate::wire::sse;

/// The output item being streamed.
#[derive(Debug)]
enum Open {
    Message {
        id: String,
        text: String,
    },
    Reasoning {
        id: String,
        text: String,
        signature: String,
    },
    Call {
        id: String,
        index: u32,
        call_id: String,
        name: String,
        arguments: String,
        freeform: bool,
    },
}

/// Canonical events → Responses events, for one response.
#[derive(Debug)]
pub struct StreamEncoder {
    echo: Arc<Echo>,
    /// Who serves: sealed reasoning names it.
    provider: String,
    model: String,
    created: u64,
    seq: u64,
    started: bool,
    open: Option<Open>,
    /// Finished output items, rendered.
    output: Vec<String>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    /// The terminal Response object, once written.
    terminal: Option<String>,
}

impl StreamEncoder {
    pub fn new(echo: Arc<Echo>, provider: String, model: String, created: u64) -> StreamEncoder {
        StreamEncoder {
            echo,
            provider,
            model,
            created,
            seq: 0,
            started: false,
            open: None,
            output: Vec::new(),
            usage: None,
            finish: None,
            terminal: None,
        }
    }

    /// The terminal Response object, once the stream has ended.
    pub fn terminal(&self) -> Option<&str> {
        self.terminal.as_deref()
    }

    /// Writes one event: its `type` and `sequence_number` spliced into the
    /// object `body` (rendered without braces).
    fn emit(&mut self, w: &mut sse::Writer, kind: &str, body: &str) {
        let mut data = String::with_capacity(body.len() + kind.len() + 48);
        data.push_str(r#"{"type":""#);
        data.push_str(kind);
        data.push('"');
        if !body.is_empty() {
            data.push(',');
            data.push_str(body);
        }
        data.push_str(&format!(r#","sequence_number":{}}}"#, self.seq));
        self.seq += 1;
        w.event(Some(kind), data.as_bytes());
    }

    fn object(&self, status: &str, error: Option<&str>, incomplete: Option<&str>) -> String {
        let done = status != "in_progress";
        response::render(
            &self.echo,
            &Object {
                status,
                model: &self.model,
                created_at: self.created,
                completed_at: (status == "completed").then(crate::clock::unix_s),
                error,
                incomplete,
                output: &if done {
                    self.output.join(",")
                } else {
                    String::new()
                },
                usage: if done { self.usage.as_ref() } else { None },
            },
        )
    }

    /// `response.created` and `response.in_progress`, held back until the
    /// answer itself begins, so a failure before it can still fail over.
    fn start(&mut self, w: &mut sse::Writer) {
        if self.started {
            return;
        }
        self.started = true;
        let o = self.object("in_progress", None, None);
        self.emit(w, "response.created", &format!(r#""response":{o}"#));
        self.emit(w, "response.in_progress", &format!(r#""response":{o}"#));
    }

    fn index(&self) -> usize {
        self.output.len()
    }

    pub fn encode(&mut self, ev: &Event, w: &mut sse::Writer) {
        match ev {
            Event::Start { model, created, .. } => {
                if !model.is_empty() {
                    self.model = model.clone();
                }
                if *created != 0 {
                    self.created = *created;
                }
            }
            Event::TextDelta(t) => {
                if !matches!(self.open, Some(Open::Message { .. })) {
                    self.close(w, "completed");
                    self.start(w);
                    let id = self.echo.item_id("msg", self.index());
                    let n = self.index();
                    self.emit(
                        w,
                        "response.output_item.added",
                        &format!(
                            r#""output_index":{n},"item":{{"id":"{id}","type":"message","status":"in_progress","content":[],"role":"assistant"}}"#
                        ),
                    );
                    self.emit(
                        w,
                        "response.content_part.added",
                        &format!(
                            r#""item_id":"{id}","output_index":{n},"content_index":0,"part":{{"type":"output_text","annotations":[],"logprobs":[],"text":""}}"#
                        ),
                    );
                    self.open = Some(Open::Message {
                        id,
                        text: String::new(),
                    });
                }
                let n = self.index();
                if let Some(Open::Message { id, text }) = &mut self.open {
                    text.push_str(t);
                    let body = format!(
                        r#""item_id":"{id}","output_index":{n},"content_index":0,"delta":{},"logprobs":[]"#,
                        json(t)
                    );
                    self.emit(w, "response.output_text.delta", &body);
                }
            }
            Event::ThinkingDelta(t) => {
                self.open_reasoning(w);
                let n = self.index();
                if let Some(Open::Reasoning { id, text, .. }) = &mut self.open {
                    text.push_str(t);
                    let body = format!(
                        r#""item_id":"{id}","output_index":{n},"summary_index":0,"delta":{}"#,
                        json(t)
                    );
                    self.emit(w, "response.reasoning_summary_text.delta", &body);
                }
            }
            Event::SignatureDelta(s) => {
                self.open_reasoning(w);
                if let Some(Open::Reasoning { signature, .. }) = &mut self.open {
                    signature.push_str(s);
                }
            }
            Event::ToolCallStart { index, id, name } => {
                self.close(w, "completed");
                self.start(w);
                let freeform = self.echo.tool(name).is_some_and(|t| t.freeform);
                let n = self.index();
                let item_id = self.echo.item_id(if freeform { "ctc" } else { "fc" }, n);
                let item =
                    response::call_item(&self.echo, item_id.clone(), "in_progress", id, name, "");
                let item = to_string(&item);
                self.emit(
                    w,
                    "response.output_item.added",
                    &format!(r#""output_index":{n},"item":{item}"#),
                );
                self.open = Some(Open::Call {
                    id: item_id,
                    index: *index,
                    call_id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                    freeform,
                });
            }
            Event::ToolCallDelta { index, arguments } => {
                let n = self.index();
                if let Some(Open::Call {
                    id,
                    index: open,
                    arguments: args,
                    freeform,
                    ..
                }) = &mut self.open
                    && *open == *index
                {
                    args.push_str(arguments);
                    // A freeform tool's input is known only whole.
                    if !*freeform {
                        let body = format!(
                            r#""item_id":"{id}","output_index":{n},"delta":{}"#,
                            json(arguments)
                        );
                        self.emit(w, "response.function_call_arguments.delta", &body);
                    }
                }
            }
            Event::WebSearch(search) => self.web_search(search, w),
            Event::Usage(u) => self.usage = Some(*u),
            Event::Finish { reason, .. } => self.finish = Some(reason.clone()),
        }
    }

    /// A search the provider ran, as OpenAI streams its own: the item
    /// added, `in_progress`, `searching`, `completed` (not for a failed
    /// search: OpenAI has no event for that, the item's status says it),
    /// and the item done with its action. The search is whole when it
    /// arrives, so its events come together.
    fn web_search(&mut self, search: &WebSearch, w: &mut sse::Writer) {
        self.close(w, "completed");
        self.start(w);
        let n = self.index();
        let id = self.echo.item_id("ws", n);
        self.emit(
            w,
            "response.output_item.added",
            &format!(
                r#""output_index":{n},"item":{{"id":"{id}","type":"web_search_call","status":"in_progress"}}"#
            ),
        );
        let at = format!(r#""output_index":{n},"item_id":"{id}""#);
        self.emit(w, "response.web_search_call.in_progress", &at);
        self.emit(w, "response.web_search_call.searching", &at);
        if search.error.is_none() {
            self.emit(w, "response.web_search_call.completed", &at);
        }
        let item = to_string(&response::web_search_item(id, search));
        self.emit(
            w,
            "response.output_item.done",
            &format!(r#""output_index":{n},"item":{item}"#),
        );
        self.output.push(item);
    }

    /// The reasoning item thinking goes into, opened if needed. A
    /// signature ends its block (Anthropic sends each block's whole, last):
    /// what follows one is the next block, an item of its own.
    fn open_reasoning(&mut self, w: &mut sse::Writer) {
        if matches!(&self.open, Some(Open::Reasoning { signature, .. }) if signature.is_empty()) {
            return;
        }
        self.close(w, "completed");
        self.start(w);
        let n = self.index();
        let id = self.echo.item_id("rs", n);
        self.emit(
            w,
            "response.output_item.added",
            &format!(
                r#""output_index":{n},"item":{{"id":"{id}","type":"reasoning","summary":[]}}"#
            ),
        );
        self.emit(
            w,
            "response.reasoning_summary_part.added",
            &format!(
                r#""item_id":"{id}","output_index":{n},"summary_index":0,"part":{{"type":"summary_text","text":""}}"#
            ),
        );
        self.open = Some(Open::Reasoning {
            id,
            text: String::new(),
            signature: String::new(),
        });
    }

    /// Finishes the open item with its `done` events.
    fn close(&mut self, w: &mut sse::Writer, status: &'static str) {
        let Some(open) = self.open.take() else { return };
        let n = self.index();
        let item = match open {
            Open::Message { id, text } => {
                let t = json(&text);
                self.emit(
                    w,
                    "response.output_text.done",
                    &format!(r#""item_id":"{id}","output_index":{n},"content_index":0,"text":{t},"logprobs":[]"#),
                );
                self.emit(
                    w,
                    "response.content_part.done",
                    &format!(
                        r#""item_id":"{id}","output_index":{n},"content_index":0,"part":{{"type":"output_text","annotations":[],"logprobs":[],"text":{t}}}"#
                    ),
                );
                let content = if self.finish == Some(FinishReason::Refusal) {
                    ContentOut::Refusal {
                        refusal: text.into(),
                    }
                } else {
                    ContentOut::OutputText {
                        annotations: [],
                        logprobs: [],
                        text: text.into(),
                    }
                };
                to_string(&ItemOut::Message {
                    id,
                    status,
                    content: vec![content],
                    role: "assistant",
                })
            }
            Open::Reasoning {
                id,
                text,
                signature,
            } => {
                let t = json(&text);
                self.emit(
                    w,
                    "response.reasoning_summary_text.done",
                    &format!(r#""item_id":"{id}","output_index":{n},"summary_index":0,"text":{t}"#),
                );
                self.emit(
                    w,
                    "response.reasoning_summary_part.done",
                    &format!(
                        r#""item_id":"{id}","output_index":{n},"summary_index":0,"part":{{"type":"summary_text","text":{t}}}"#
                    ),
                );
                let part = Part::Thinking {
                    text,
                    signature: (!signature.is_empty()).then_some(signature),
                };
                to_string(&response::reasoning_item(id, &self.provider, &part))
            }
            Open::Call {
                id,
                call_id,
                name,
                arguments,
                freeform,
                ..
            } => {
                let item = response::call_item(
                    &self.echo,
                    id.clone(),
                    status,
                    &call_id,
                    &name,
                    &arguments,
                );
                if freeform {
                    if let ItemOut::CustomToolCall { input, .. } = &item {
                        let input = json(input);
                        self.emit(
                            w,
                            "response.custom_tool_call_input.delta",
                            &format!(r#""item_id":"{id}","output_index":{n},"delta":{input}"#),
                        );
                        self.emit(
                            w,
                            "response.custom_tool_call_input.done",
                            &format!(r#""item_id":"{id}","output_index":{n},"input":{input}"#),
                        );
                    }
                } else {
                    self.emit(
                        w,
                        "response.function_call_arguments.done",
                        &format!(
                            r#""item_id":"{id}","output_index":{n},"arguments":{}"#,
                            json(&arguments)
                        ),
                    );
                }
                to_string(&item)
            }
        };
        self.emit(
            w,
            "response.output_item.done",
            &format!(r#""output_index":{n},"item":{item}"#),
        );
        self.output.push(item);
    }

    /// The upstream's answer is complete: the open item's `done`s and the
    /// terminal event.
    pub fn finish(&mut self, w: &mut sse::Writer) {
        self.start(w);
        let (status, incomplete) = status_of(self.finish.as_ref());
        self.close(
            w,
            if status == "incomplete" {
                "incomplete"
            } else {
                "completed"
            },
        );
        let o = self.object(status, None, incomplete);
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(w, kind, &format!(r#""response":{o}"#));
        self.terminal = Some(o);
    }

    /// The stream failed after it began: an `error` event, then
    /// `response.failed`. `body` is the error in OpenAI's shape
    /// (`{"error":{...}}`).
    pub fn fail(&mut self, w: &mut sse::Writer, body: &[u8]) {
        self.start(w);
        self.close(w, "incomplete");
        let error = error_of(body);
        self.emit(w, "error", &format!(r#""error":{error}"#));
        let o = self.object("failed", Some(&error), None);
        self.emit(w, "response.failed", &format!(r#""response":{o}"#));
        self.terminal = Some(o);
    }
}

/// The `error` object of an OpenAI-shaped error body.
pub(super) fn error_of(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        error: &'a RawValue,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.error.get().to_owned())
        .unwrap_or_else(|_| {
            r#"{"type":"server_error","code":"server_error","message":"the stream failed"}"#
                .to_owned()
        })
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn to_string<T: serde::Serialize>(v: &T) -> String {
    String::from_utf8(crate::wire::to_vec(v)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat;

    fn echo() -> Arc<Echo> {
        let body = br#"{"model":"m","input":"hi"}"#;
        let (req, fields) = super::super::decode_request(body).unwrap();
        Arc::new(Echo::new("resp_t".into(), &fields, &req, false))
    }

    /// Anthropic ends each thinking block with its signature: two blocks in
    /// a row are two reasoning items, each sealed with its own signature
    /// (one item of both texts and `s1s2` would be refused next turn).
    #[test]
    fn a_signature_ends_its_reasoning_item() {
        let mut enc = StreamEncoder::new(echo(), "anthropic".into(), "m".into(), 1);
        let mut w = sse::Writer::new(0);
        for ev in [
            Event::ThinkingDelta("a".into()),
            Event::SignatureDelta("s1".into()),
            Event::ThinkingDelta("b".into()),
            Event::SignatureDelta("s2".into()),
            Event::SignatureDelta("s3".into()),
            Event::TextDelta("x".into()),
        ] {
            enc.encode(&ev, &mut w);
        }
        enc.finish(&mut w);
        let terminal: serde_json::Value = serde_json::from_str(enc.terminal().unwrap()).unwrap();
        let opened: Vec<chat::Part> = terminal["output"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["encrypted_content"].as_str())
            .map(|blob| super::super::reasoning::open(blob).unwrap())
            .collect();
        let thinking = |text: &str, sig: &str| chat::Part::Thinking {
            text: text.into(),
            signature: Some(format!("sy1:anthropic:{sig}")),
        };
        assert_eq!(
            opened,
            [thinking("a", "s1"), thinking("b", "s2"), thinking("", "s3")]
        );
    }

    use crate::wire::responses::response::tests::{echo as plain_echo, search};

    fn events(w: &mut sse::Writer) -> Vec<(String, serde_json::Value)> {
        let mut p = sse::Parser::new(0);
        let mut out = Vec::new();
        p.feed(&w.take(), &mut out).unwrap();
        out.iter()
            .map(|e| {
                (
                    e.name().unwrap_or_default().to_owned(),
                    serde_json::from_slice(&e.data).unwrap(),
                )
            })
            .collect()
    }

    /// A search streams as OpenAI streams its own: added, in_progress,
    /// searching, completed, done, between the items around it, with the
    /// sequence numbers rising by one.
    #[test]
    fn a_search_streams_its_item_and_events_in_order() {
        let mut e = StreamEncoder::new(
            Arc::new(plain_echo()),
            "anthropic".into(),
            "claude-x".into(),
            1,
        );
        let mut w = sse::Writer::new(0);
        for ev in [
            Event::TextDelta("Let me look.".into()),
            Event::WebSearch(search(None)),
            Event::WebSearch(search(Some("too_many_requests"))),
            Event::TextDelta("Spain won.".into()),
            Event::Finish {
                reason: FinishReason::Stop,
                stop_sequence: None,
            },
        ] {
            e.encode(&ev, &mut w);
        }
        e.finish(&mut w);
        let evs = events(&mut w);
        for (n, (_, data)) in evs.iter().enumerate() {
            assert_eq!(data["sequence_number"], n as u64, "{data}");
        }
        let names: Vec<&str> = evs.iter().map(|(k, _)| k.as_str()).collect();
        let first = names
            .iter()
            .position(|n| *n == "response.web_search_call.in_progress")
            .unwrap();
        assert_eq!(
            names[first - 2..first + 9],
            [
                "response.output_item.done",
                "response.output_item.added",
                "response.web_search_call.in_progress",
                "response.web_search_call.searching",
                "response.web_search_call.completed",
                "response.output_item.done",
                "response.output_item.added",
                "response.web_search_call.in_progress",
                "response.web_search_call.searching",
                "response.output_item.done",
                "response.output_item.added",
            ]
        );
        let (_, added) = &evs[first - 1];
        assert_eq!(
            added["item"],
            serde_json::json!({"id": "ws_x01", "type": "web_search_call", "status": "in_progress"})
        );
        assert_eq!(evs[first].1["item_id"], "ws_x01");
        assert_eq!(evs[first].1["output_index"], 1);
        let (_, done) = &evs[first + 3];
        assert_eq!(done["item"]["action"]["query"], "euro 2024 winner");
        assert_eq!(evs[first + 7].1["item"]["status"], "failed");
        // One done per added, and the terminal object holds every item.
        let count = |k: &str| names.iter().filter(|n| **n == k).count();
        assert_eq!(count("response.output_item.added"), 4);
        assert_eq!(count("response.output_item.done"), 4);
        let (last, terminal) = evs.last().unwrap();
        assert_eq!(last, "response.completed");
        let types: Vec<&str> = terminal["response"]["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["message", "web_search_call", "web_search_call", "message"]
        );
    }
}
