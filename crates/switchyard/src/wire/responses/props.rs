//! Property tests of the Responses dialect, against the canonical model:
//! - any conversation the dialect can express decodes to what it said
//!   (a test-side encoder renders a canonical request as a body);
//! - any canonical answer encodes to a Response whose `output` reads
//!   back as that answer (sealed reasoning included);
//! - a stream of canonical events, cut anywhere, is a well-formed
//!   Responses stream (OpenAI's order, `sequence_number` without a gap,
//!   one terminal event last) whose terminal Response holds what the
//!   events said, and stays one when relayed and cut again.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

use super::echo::Echo;
use super::reasoning;
use super::request::freeform_schema;
use super::types::CustomFormatIn;
use super::{Relay, StreamEncoder, decode_request, encode_response};
use crate::chat::{
    self, DocSource, Document, Event, FinishReason, Image, Message, Origin, Part, RawJson,
    ResponseFormat, Role, SystemPart, Tool, ToolChoice, ToolOrigin, ToolResultPart, Usage,
};
use crate::wire::sse;

const PROVIDER: &str = "anthropic";
const ERROR_BODY: &[u8] =
    br#"{"error":{"message":"x","type":"server_error","param":null,"code":"broken_stream"}}"#;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

fn text(t: &str) -> Part {
    Part::Text {
        text: t.to_owned(),
        cache_control: None,
    }
}

fn raw(v: &Value) -> RawJson {
    RawJson(crate::wire::to_raw(v))
}

fn flat(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}__{name}"),
        None => name.to_owned(),
    }
}

// Generators.

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 ]{0,12}",
        1 => "[a-z\"\\\\\n\t é€😀<>&{}:,]{0,10}",
    ]
}

fn arb_arguments() -> impl Strategy<Value = String> {
    proptest::collection::btree_map(
        "[a-z]{1,4}",
        prop_oneof![
            any::<i32>().prop_map(Value::from),
            arb_text().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ],
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()).to_string())
}

fn arb_image() -> impl Strategy<Value = Image> {
    prop_oneof![
        "[a-z]{1,6}".prop_map(|n| Image::Url(format!("https://img.example/{n}.png"))),
        "[A-Za-z0-9+/]{4,12}".prop_map(|data| Image::Base64 {
            media_type: "image/png".into(),
            data,
        }),
    ]
}

/// A file as an `input_file` can give it: inline as a data URL with its
/// name, or by URL, named or not.
fn arb_document() -> impl Strategy<Value = Document> {
    prop_oneof![
        (
            prop_oneof![
                Just("application/pdf"),
                Just("text/plain"),
                Just("text/csv")
            ],
            "[A-Za-z0-9+/]{4,12}",
            "[a-z]{1,6}\\.(pdf|txt|csv)",
        )
            .prop_map(|(media_type, data, name)| Document {
                source: DocSource::Base64(data),
                media_type: Some(media_type.into()),
                filename: Some(name),
            }),
        ("[a-z]{1,6}", proptest::option::of("[a-z]{1,6}\\.pdf")).prop_map(|(n, name)| {
            Document {
                source: DocSource::Url(format!("https://files.example/{n}.pdf")),
                media_type: None,
                filename: name,
            }
        }),
    ]
}

/// One tool as the Responses dialect can define it: a function or a
/// freeform tool, maybe inside a namespace, in canonical form.
fn arb_tool() -> impl Strategy<Value = Tool> {
    (
        proptest::option::of("[a-z]{1,4}"),
        "[a-z]{1,6}",
        any::<bool>(),
        proptest::option::of(arb_text()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(("lark|regex", "[a-z :|\"\n]{1,16}")),
        proptest::option::of(proptest::collection::vec("[a-z]{1,5}", 0..3)),
    )
        .prop_map(
            |(namespace, name, freeform, description, strict, grammar, keys)| {
                let parameters = if freeform {
                    let format = grammar.map(|(syntax, definition)| CustomFormatIn {
                        kind: "grammar".into(),
                        syntax: Some(syntax),
                        definition: Some(definition),
                    });
                    Some(freeform_schema(format.as_ref()))
                } else {
                    keys.map(|keys| {
                        let props: serde_json::Map<String, Value> = keys
                            .iter()
                            .map(|k| (k.clone(), json!({"type": "string"})))
                            .collect();
                        raw(&json!({"type": "object", "properties": props, "required": keys}))
                    })
                };
                Tool {
                    name: flat(namespace.as_deref(), &name),
                    description,
                    parameters,
                    strict: if freeform { None } else { strict },
                    cache_control: None,
                    origin: ToolOrigin {
                        name: namespace.is_some().then_some(name),
                        namespace,
                        freeform,
                    },
                }
            },
        )
}

/// Tools with distinct flat names (the dialect refuses two of a name).
fn arb_tools() -> impl Strategy<Value = Vec<Tool>> {
    proptest::collection::vec(arb_tool(), 0..5).prop_map(|ts| {
        let mut out: Vec<Tool> = Vec::new();
        for t in ts {
            if !out.iter().any(|o| o.name == t.name) {
                out.push(t);
            }
        }
        out
    })
}

/// A tool call before it is resolved against the tools: `defined` picks a
/// defined tool, else `name` is used (and still resolved, should it name
/// one); a freeform tool gets `input`, any other `arguments`.
#[derive(Debug, Clone)]
struct CallSpec {
    defined: bool,
    pick: Index,
    name: String,
    id: String,
    arguments: String,
    input: String,
}

fn arb_call() -> impl Strategy<Value = CallSpec> {
    (
        any::<bool>(),
        any::<Index>(),
        "[a-z]{1,6}",
        "[a-zA-Z0-9_.:-]{1,10}",
        arb_arguments(),
        arb_text(),
    )
        .prop_map(|(defined, pick, name, id, arguments, input)| CallSpec {
            defined,
            pick,
            name,
            id,
            arguments,
            input,
        })
}

impl CallSpec {
    /// The canonical call: flat name, and arguments in the one-argument
    /// form for a freeform tool.
    fn resolve(&self, tools: &[Tool]) -> Part {
        let tool = if self.defined && !tools.is_empty() {
            Some(&tools[self.pick.index(tools.len())])
        } else {
            tools.iter().find(|t| t.name == self.name)
        };
        let name = tool.map_or_else(|| self.name.clone(), |t| t.name.clone());
        let arguments = if tool.is_some_and(|t| t.origin.freeform) {
            json!({ "input": self.input }).to_string()
        } else {
            self.arguments.clone()
        };
        Part::ToolCall {
            id: self.id.clone(),
            name,
            arguments,
        }
    }
}

fn arb_provider() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("anthropic"), Just("google")]
}

/// A part of an assistant turn in a request.
#[derive(Debug, Clone)]
enum AssistantPart {
    Text(String),
    Call(CallSpec),
    /// Reasoning the gateway sealed: its canonical form is wrapped.
    Thinking(&'static str, String, String),
    Redacted(&'static str, String),
}

fn arb_assistant_part() -> impl Strategy<Value = AssistantPart> {
    prop_oneof![
        3 => arb_text().prop_map(AssistantPart::Text),
        3 => arb_call().prop_map(AssistantPart::Call),
        1 => (arb_provider(), arb_text(), "[A-Za-z0-9+/=]{1,16}")
            .prop_map(|(p, t, s)| AssistantPart::Thinking(p, t, s)),
        1 => (arb_provider(), "[A-Za-z0-9+/=]{1,16}")
            .prop_map(|(p, d)| AssistantPart::Redacted(p, d)),
    ]
}

fn arb_result_part() -> impl Strategy<Value = ToolResultPart> {
    prop_oneof![
        4 => arb_text().prop_map(ToolResultPart::Text),
        1 => arb_image().prop_map(ToolResultPart::Image),
        1 => arb_document().prop_map(ToolResultPart::Document),
    ]
}

#[derive(Debug, Clone)]
enum Turn {
    User(Vec<Part>),
    System(String),
    /// The turn's parts, then results for its first calls, in order.
    Assistant {
        parts: Vec<AssistantPart>,
        results: Vec<Vec<ToolResultPart>>,
    },
}

fn arb_turn() -> impl Strategy<Value = Turn> {
    prop_oneof![
        3 => proptest::collection::vec(
            prop_oneof![
                4 => arb_text().prop_map(|t| text(&t)),
                1 => arb_image().prop_map(Part::Image),
                1 => arb_document().prop_map(Part::Document),
            ],
            1..4,
        )
        .prop_map(Turn::User),
        1 => arb_text().prop_map(Turn::System),
        3 => (
            proptest::collection::vec(arb_assistant_part(), 1..5),
            proptest::collection::vec(proptest::collection::vec(arb_result_part(), 0..3), 0..4),
        )
            .prop_map(|(parts, results)| Turn::Assistant { parts, results }),
    ]
}

/// Hundredths: serde_json reads some longer decimals one unit in the last
/// place off (it is built without `float_roundtrip`).
fn arb_hundredths(range: std::ops::Range<i32>) -> impl Strategy<Value = f64> {
    range.prop_map(|n| f64::from(n) / 100.0)
}

fn wrapped(provider: &str, inner: &str) -> String {
    format!("sy1:{provider}:{inner}")
}

fn build_request(
    tools: Vec<Tool>,
    system: Vec<String>,
    turns: Vec<Turn>,
    req: chat::Request,
) -> chat::Request {
    let mut req = chat::Request {
        system: system
            .into_iter()
            .map(|text| SystemPart {
                text,
                cache_control: None,
            })
            .collect(),
        ..req
    };
    for turn in turns {
        match turn {
            Turn::User(parts) => req.messages.push(Message::new(Role::User, parts, 0)),
            Turn::System(t) => {
                // Before the first turn, a system message is an instruction.
                if req.messages.is_empty() {
                    req.system.push(SystemPart {
                        text: t,
                        cache_control: None,
                    });
                } else {
                    req.messages
                        .push(Message::new(Role::System, vec![text(&t)], 0));
                }
            }
            Turn::Assistant { parts, results } => {
                let parts: Vec<Part> = parts
                    .into_iter()
                    .map(|p| match p {
                        AssistantPart::Text(t) => text(&t),
                        AssistantPart::Call(c) => c.resolve(&tools),
                        AssistantPart::Thinking(p, t, s) => Part::Thinking {
                            text: t,
                            signature: Some(wrapped(p, &s)),
                        },
                        AssistantPart::Redacted(p, d) => Part::RedactedThinking {
                            data: wrapped(p, &d),
                        },
                    })
                    .collect();
                let ids: Vec<String> = parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::ToolCall { id, .. } => Some(id.clone()),
                        _ => None,
                    })
                    .collect();
                // Items of one assistant turn in a row are one turn.
                match req.messages.last_mut() {
                    Some(m) if m.role == Role::Assistant => m.parts.extend(parts),
                    _ => req.messages.push(Message::new(Role::Assistant, parts, 0)),
                }
                for (id, content) in ids.into_iter().zip(results) {
                    req.messages.push(Message::new(
                        Role::Tool,
                        vec![Part::ToolResult {
                            tool_call_id: id,
                            content,
                            is_error: false,
                        }],
                        0,
                    ));
                }
            }
        }
    }
    if req.messages.is_empty() {
        req.messages
            .push(Message::new(Role::User, vec![text("hi")], 0));
    }
    req.tools = tools;
    req
}

fn arb_request() -> impl Strategy<Value = chat::Request> {
    let settings = (
        proptest::option::of(arb_hundredths(0..200)),
        proptest::option::of(arb_hundredths(0..100)),
        proptest::option::of(1..100_000u32),
        proptest::option::of("[a-z0-9]{1,8}"),
        proptest::option::of(any::<bool>()),
        proptest::option::of(prop_oneof![
            Just("low".to_owned()),
            Just("medium".to_owned()),
            Just("high".to_owned())
        ]),
        any::<bool>(),
        0..5u8,
        any::<Index>(),
        (0..4u8, proptest::option::of(any::<bool>())),
    );
    let shape = (
        arb_tools(),
        proptest::collection::vec(arb_text(), 0..3),
        proptest::collection::vec(arb_turn(), 1..7),
    );
    (settings, shape).prop_map(
        |(
            (temperature, top_p, max_tokens, user, parallel, effort, stream, choice, pick, format),
            (tools, system, turns),
        )| {
            let tool_choice = match choice {
                0 => None,
                1 => Some(ToolChoice::Auto),
                2 => Some(ToolChoice::None),
                3 => Some(ToolChoice::Required),
                _ if tools.is_empty() => None,
                _ => Some(ToolChoice::Named(
                    tools[pick.index(tools.len())].name.clone(),
                )),
            };
            let response_format = match format.0 {
                0 => None,
                1 => Some(ResponseFormat::Text),
                2 => Some(ResponseFormat::JsonObject),
                _ => Some(ResponseFormat::JsonSchema {
                    name: "answer".into(),
                    schema: raw(
                        &json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
                    ),
                    strict: format.1,
                }),
            };
            let base = chat::Request {
                model: "openai/gpt-test".into(),
                temperature,
                top_p,
                max_tokens,
                user,
                parallel_tool_calls: parallel,
                reasoning_effort: effort,
                stream,
                include_usage: stream,
                tool_choice,
                response_format,
                ..chat::Request::default()
            };
            build_request(tools, system, turns, base)
        },
    )
}

// The test side's Responses encoder: a canonical request as a body.

fn json_of(raw: &RawJson) -> Value {
    serde_json::from_str(raw.get()).expect("a schema is JSON")
}

/// A freeform tool's `format`, read back out of the schema the dialect
/// gives it: the grammar is in the description of `input`.
fn format_of(tool: &Tool) -> Value {
    let description = tool
        .parameters
        .as_ref()
        .map(json_of)
        .and_then(|p| {
            p["properties"]["input"]["description"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    match description.split_once(" grammar:\n") {
        Some((head, definition)) => json!({
            "type": "grammar",
            "syntax": head.rsplit(' ').next().unwrap_or_default(),
            "definition": definition,
        }),
        None => json!({"type": "text"}),
    }
}

fn render_tool(t: &Tool) -> Value {
    let name = t.origin.name.clone().unwrap_or_else(|| t.name.clone());
    let mut v = if t.origin.freeform {
        json!({"type": "custom", "name": name, "format": format_of(t)})
    } else {
        let mut v = json!({"type": "function", "name": name});
        if let Some(p) = &t.parameters {
            v["parameters"] = json_of(p);
        }
        if let Some(s) = t.strict {
            v["strict"] = s.into();
        }
        v
    };
    if let Some(d) = &t.description {
        v["description"] = d.clone().into();
    }
    v
}

/// `tools`: each run of tools of one namespace goes in one `namespace`.
fn render_tools(tools: &[Tool]) -> Value {
    let mut out: Vec<Value> = Vec::new();
    let mut run: Option<&str> = None;
    for t in tools {
        match t.origin.namespace.as_deref() {
            None => {
                run = None;
                out.push(render_tool(t));
            }
            Some(ns) => {
                if run != Some(ns) {
                    out.push(json!({"type": "namespace", "name": ns, "description": "a group", "tools": []}));
                    run = Some(ns);
                }
                let last = out.last_mut().expect("just pushed");
                last["tools"]
                    .as_array_mut()
                    .expect("a list")
                    .push(render_tool(t));
            }
        }
    }
    Value::Array(out)
}

fn image_url(img: &Image) -> Value {
    json!({"type": "input_image", "image_url": img.to_url(), "detail": "auto"})
}

fn input_file(doc: &Document) -> Value {
    let mut v = match &doc.source {
        DocSource::Base64(_) => json!({"type": "input_file", "file_data": doc.data_url()}),
        DocSource::Url(url) => json!({"type": "input_file", "file_url": url}),
        DocSource::Text(_) => panic!("no input_file gives text as text: {doc:?}"),
    };
    if let Some(name) = &doc.filename {
        v["filename"] = name.clone().into();
    }
    v
}

fn render_content(parts: &[Part]) -> Value {
    if let [Part::Text { text, .. }] = parts {
        return text.clone().into();
    }
    parts
        .iter()
        .map(|p| match p {
            Part::Text { text, .. } => json!({"type": "input_text", "text": text}),
            Part::Image(img) => image_url(img),
            Part::Document(doc) => input_file(doc),
            other => panic!("not user content: {other:?}"),
        })
        .collect()
}

fn render_result(content: &[ToolResultPart]) -> Value {
    if let [ToolResultPart::Text(t)] = content {
        return t.clone().into();
    }
    content
        .iter()
        .map(|p| match p {
            ToolResultPart::Text(t) => json!({"type": "input_text", "text": t}),
            ToolResultPart::Image(img) => image_url(img),
            ToolResultPart::Document(doc) => input_file(doc),
        })
        .collect()
}

/// Seals a wrapped canonical reasoning part again, as the gateway handed
/// it out.
fn render_reasoning(part: &Part) -> Value {
    let unwrap = |v: &str| -> (String, String) {
        let rest = v.strip_prefix("sy1:").expect("wrapped");
        let (p, inner) = rest.split_once(':').expect("wrapped");
        (p.to_owned(), inner.to_owned())
    };
    let (provider, inner, summary) = match part {
        Part::Thinking {
            text,
            signature: Some(s),
        } => {
            let (p, sig) = unwrap(s);
            (
                p,
                Part::Thinking {
                    text: text.clone(),
                    signature: Some(sig),
                },
                vec![json!({"type": "summary_text", "text": text})],
            )
        }
        Part::RedactedThinking { data } => {
            let (p, d) = unwrap(data);
            (p, Part::RedactedThinking { data: d }, vec![])
        }
        other => panic!("not sealed reasoning: {other:?}"),
    };
    json!({
        "type": "reasoning",
        "id": "rs_1",
        "summary": summary,
        "encrypted_content": reasoning::seal(&provider, &inner).expect("sealable"),
    })
}

fn render_request(req: &chat::Request) -> Vec<u8> {
    let tool_of = |name: &str| req.tools.iter().find(|t| t.name == name);
    let mut body = json!({"model": req.model});
    if let Some(first) = req.system.first() {
        body["instructions"] = first.text.clone().into();
    }
    let mut input: Vec<Value> = req
        .system
        .iter()
        .skip(1)
        .map(|s| json!({"type": "message", "role": "developer", "content": s.text}))
        .collect();
    let mut freeform_calls: Vec<String> = Vec::new();
    for m in &req.messages {
        match m.role {
            Role::User => input.push(json!({"role": "user", "content": render_content(&m.parts)})),
            Role::System => {
                input.push(json!({"type": "message", "role": "system", "content": render_content(&m.parts)}));
            }
            Role::Assistant => {
                let mut texts: Vec<Value> = Vec::new();
                let flush = |texts: &mut Vec<Value>, input: &mut Vec<Value>| {
                    if !texts.is_empty() {
                        input.push(json!({
                            "type": "message", "id": "msg_1", "status": "completed",
                            "role": "assistant", "content": std::mem::take(texts),
                        }));
                    }
                };
                for p in &m.parts {
                    match p {
                        Part::Text { text, .. } => texts
                            .push(json!({"type": "output_text", "text": text, "annotations": []})),
                        Part::ToolCall {
                            id,
                            name,
                            arguments,
                        } => {
                            flush(&mut texts, &mut input);
                            let tool = tool_of(name);
                            let own = tool
                                .and_then(|t| t.origin.name.clone())
                                .unwrap_or_else(|| name.clone());
                            let mut item = if tool.is_some_and(|t| t.origin.freeform) {
                                freeform_calls.push(id.clone());
                                let v: Value = serde_json::from_str(arguments).expect("JSON");
                                json!({"type": "custom_tool_call", "call_id": id, "name": own, "input": v["input"]})
                            } else {
                                json!({"type": "function_call", "id": "fc_1", "call_id": id, "name": own, "arguments": arguments, "status": "completed"})
                            };
                            if let Some(ns) = tool.and_then(|t| t.origin.namespace.as_deref()) {
                                item["namespace"] = ns.into();
                            }
                            input.push(item);
                        }
                        Part::Thinking { .. } | Part::RedactedThinking { .. } => {
                            flush(&mut texts, &mut input);
                            input.push(render_reasoning(p));
                        }
                        other => panic!("not assistant content: {other:?}"),
                    }
                }
                flush(&mut texts, &mut input);
            }
            Role::Tool => {
                let [
                    Part::ToolResult {
                        tool_call_id,
                        content,
                        is_error: false,
                    },
                ] = m.parts.as_slice()
                else {
                    panic!("not a tool result: {m:?}");
                };
                let kind = if freeform_calls.contains(tool_call_id) {
                    "custom_tool_call_output"
                } else {
                    "function_call_output"
                };
                input.push(json!({"type": kind, "call_id": tool_call_id, "output": render_result(content)}));
            }
        }
    }
    body["input"] = Value::Array(input);
    if !req.tools.is_empty() {
        body["tools"] = render_tools(&req.tools);
    }
    if let Some(tc) = &req.tool_choice {
        body["tool_choice"] = match tc {
            ToolChoice::Auto => "auto".into(),
            ToolChoice::None => "none".into(),
            ToolChoice::Required => "required".into(),
            ToolChoice::Named(n) => json!({"type": "function", "name": n}),
        };
    }
    if let Some(p) = req.parallel_tool_calls {
        body["parallel_tool_calls"] = p.into();
    }
    if let Some(f) = &req.response_format {
        body["text"] = json!({"format": match f {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { name, schema, strict } => {
                let mut v = json!({"type": "json_schema", "name": name, "schema": json_of(schema)});
                if let Some(s) = strict {
                    v["strict"] = (*s).into();
                }
                v
            }
        }});
    }
    if let Some(e) = &req.reasoning_effort {
        body["reasoning"] = json!({"effort": e});
    }
    if let Some(n) = req.max_tokens {
        body["max_output_tokens"] = n.into();
    }
    if let Some(t) = req.temperature {
        body["temperature"] = t.into();
    }
    if let Some(t) = req.top_p {
        body["top_p"] = t.into();
    }
    if let Some(u) = &req.user {
        body["user"] = u.clone().into();
    }
    body["stream"] = req.stream.into();
    serde_json::to_vec(&body).expect("JSON")
}

fn without_origins(r: &chat::Request) -> chat::Request {
    let mut r = r.clone();
    for m in &mut r.messages {
        m.origin = Origin::default();
    }
    r
}

/// The echo of a request defining `tools`, under the id `id`.
fn echo_for(tools: &[Tool], id: &str) -> Echo {
    let body = serde_json::to_vec(&json!({
        "model": "openai/gpt-test",
        "input": "hi",
        "tools": render_tools(tools),
    }))
    .expect("JSON");
    let (req, fields) = decode_request(&body).expect("the tools decode");
    Echo::new(id.to_owned(), &fields, &req, false)
}

// The test side's reader of a Response's `output`.

/// `output` as canonical parts: text, calls by their flat names (a
/// freeform call in its one-argument form) and reasoning opened and
/// unwrapped for `provider`.
fn read_output(output: &Value, provider: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    for item in output.as_array().expect("output is a list") {
        let s = |k: &str| item[k].as_str().unwrap_or_else(|| panic!("{k} in {item}"));
        match s("type") {
            "message" => {
                for c in item["content"].as_array().expect("content") {
                    let t = c["text"].as_str().or(c["refusal"].as_str()).expect("text");
                    parts.push(text(t));
                }
            }
            "function_call" => parts.push(Part::ToolCall {
                id: s("call_id").to_owned(),
                name: flat(item["namespace"].as_str(), s("name")),
                arguments: s("arguments").to_owned(),
            }),
            "custom_tool_call" => parts.push(Part::ToolCall {
                id: s("call_id").to_owned(),
                name: flat(item["namespace"].as_str(), s("name")),
                arguments: json!({"input": s("input")}).to_string(),
            }),
            "reasoning" => match item["encrypted_content"].as_str() {
                Some(blob) => parts.push(reasoning::open(blob).expect("a sealed blob opens")),
                None => parts.push(Part::Thinking {
                    text: item["summary"]
                        .as_array()
                        .expect("summary")
                        .iter()
                        .map(|p| p["text"].as_str().expect("summary text"))
                        .collect(),
                    signature: None,
                }),
            },
            other => panic!("unexpected output item {other}"),
        }
    }
    let req = chat::Request {
        messages: vec![Message::new(Role::Assistant, parts, 0)],
        ..chat::Request::default()
    };
    reasoning::for_provider(&req, provider)
        .messages
        .first()
        .map(|m| m.parts.clone())
        .unwrap_or_default()
}

/// Text parts next to each other as one (a Response has one message for
/// a stretch of text).
fn merged_text(parts: &[Part]) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    for p in parts {
        match (out.last_mut(), p) {
            (Some(Part::Text { text: a, .. }), Part::Text { text: b, .. }) => a.push_str(b),
            _ => out.push(p.clone()),
        }
    }
    out
}

fn arb_finish() -> impl Strategy<Value = FinishReason> {
    prop_oneof![
        Just(FinishReason::Stop),
        Just(FinishReason::Length),
        Just(FinishReason::ToolCalls),
        Just(FinishReason::ContentFilter),
        Just(FinishReason::StopSequence),
        Just(FinishReason::PauseTurn),
        Just(FinishReason::Refusal),
    ]
}

fn arb_usage() -> impl Strategy<Value = Usage> {
    (0..10_000u64, 0..10_000u64, 0..100u64, 0..100u64, 0..100u64).prop_map(|(i, o, c, w, r)| {
        Usage {
            input_tokens: i,
            output_tokens: o,
            cached_input_tokens: c,
            cache_write_tokens: w,
            reasoning_tokens: r,
            web_search_requests: 0,
        }
    })
}

/// A part of a canonical answer.
#[derive(Debug, Clone)]
enum AnswerPart {
    Text(String),
    Call(CallSpec),
    Thinking(String, Option<String>),
    Redacted(String),
}

fn arb_answer_part() -> impl Strategy<Value = AnswerPart> {
    prop_oneof![
        3 => arb_text().prop_map(AnswerPart::Text),
        3 => arb_call().prop_map(AnswerPart::Call),
        2 => (arb_text(), proptest::option::of("[A-Za-z0-9+/=]{1,16}"))
            .prop_map(|(t, s)| AnswerPart::Thinking(t, s)),
        1 => "[A-Za-z0-9+/=]{1,16}".prop_map(AnswerPart::Redacted),
    ]
}

fn arb_answer() -> impl Strategy<Value = (Vec<Tool>, chat::Response)> {
    (
        arb_tools(),
        proptest::collection::vec(arb_answer_part(), 0..7),
        proptest::option::of(arb_finish()),
        proptest::option::of(arb_usage()),
    )
        .prop_map(|(tools, parts, finish, usage)| {
            let content = parts
                .into_iter()
                .map(|p| match p {
                    AnswerPart::Text(t) => text(&t),
                    AnswerPart::Call(c) => c.resolve(&tools),
                    AnswerPart::Thinking(text, signature) => Part::Thinking { text, signature },
                    AnswerPart::Redacted(data) => Part::RedactedThinking { data },
                })
                .collect();
            let r = chat::Response {
                id: "msg_upstream".into(),
                model: "claude-test".into(),
                created: 1_700_000_000,
                content,
                finish,
                stop_sequence: None,
                usage,
            };
            (tools, r)
        })
}

// Streams.

/// One stretch of a generated stream.
#[derive(Debug, Clone)]
enum Block {
    Text(Vec<String>),
    Thinking(Vec<String>, Option<String>),
    Call(CallSpec, Vec<Index>),
    Usage(Usage),
}

fn arb_block() -> impl Strategy<Value = Block> {
    prop_oneof![
        3 => proptest::collection::vec(arb_text(), 1..4).prop_map(Block::Text),
        2 => (
            proptest::collection::vec(arb_text(), 0..3),
            proptest::option::of("[A-Za-z0-9+/=]{1,16}"),
        )
            .prop_map(|(d, s)| Block::Thinking(d, s)),
        3 => (arb_call(), proptest::collection::vec(any::<Index>(), 0..4))
            .prop_map(|(c, cuts)| Block::Call(c, cuts)),
        1 => arb_usage().prop_map(Block::Usage),
    ]
}

/// `s` in pieces, cut at the given character positions.
fn pieces(s: &str, cuts: &[Index]) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(chars.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for a in at {
        out.push(chars[last..a].iter().collect());
        last = a;
    }
    out.push(chars[last..].iter().collect());
    out
}

fn events_of(
    tools: &[Tool],
    blocks: &[Block],
    finish: Option<FinishReason>,
    last_usage: Option<Usage>,
) -> Vec<Event> {
    let mut events = vec![Event::Start {
        id: "msg_upstream".into(),
        model: "claude-test".into(),
        created: 1_700_000_000,
    }];
    let mut calls = 0;
    for b in blocks {
        match b {
            Block::Text(ds) => events.extend(ds.iter().cloned().map(Event::TextDelta)),
            Block::Thinking(ds, sig) => {
                events.extend(ds.iter().cloned().map(Event::ThinkingDelta));
                events.extend(sig.iter().cloned().map(Event::SignatureDelta));
            }
            Block::Call(c, cuts) => {
                let Part::ToolCall {
                    id,
                    name,
                    arguments,
                } = c.resolve(tools)
                else {
                    unreachable!()
                };
                events.push(Event::ToolCallStart {
                    index: calls,
                    id,
                    name,
                });
                events.extend(pieces(&arguments, cuts).into_iter().map(|arguments| {
                    Event::ToolCallDelta {
                        index: calls,
                        arguments,
                    }
                }));
                calls += 1;
            }
            Block::Usage(u) => events.push(Event::Usage(*u)),
        }
    }
    if let Some(reason) = finish {
        events.push(Event::Finish {
            reason,
            stop_sequence: None,
        });
    }
    events.extend(last_usage.map(Event::Usage));
    events
}

/// What canonical events say, as the parts of an answer: text runs,
/// reasoning (a signature ends its block), calls with their arguments. A
/// freeform call whose arguments are not (yet) the one-argument form goes
/// back as the text it is.
fn content_of(events: &[Event], tools: &[Tool]) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    let mut calls: Vec<(u32, usize)> = Vec::new();
    for ev in events {
        match (ev, parts.last_mut()) {
            (Event::TextDelta(t), Some(Part::Text { text, .. })) => text.push_str(t),
            (Event::TextDelta(t), _) => parts.push(text(t)),
            (
                Event::ThinkingDelta(t),
                Some(Part::Thinking {
                    text,
                    signature: None,
                }),
            ) => text.push_str(t),
            (Event::ThinkingDelta(t), _) => parts.push(Part::Thinking {
                text: t.clone(),
                signature: None,
            }),
            (
                Event::SignatureDelta(s),
                Some(Part::Thinking {
                    signature: signature @ None,
                    ..
                }),
            ) => *signature = Some(s.clone()),
            (Event::SignatureDelta(s), _) => parts.push(Part::Thinking {
                text: String::new(),
                signature: Some(s.clone()),
            }),
            (Event::ToolCallStart { index, id, name }, _) => {
                calls.push((*index, parts.len()));
                parts.push(Part::ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                });
            }
            (Event::ToolCallDelta { index, arguments }, _) => {
                if let Some(&(_, at)) = calls.iter().rev().find(|(i, _)| i == index)
                    && at + 1 == parts.len()
                    && let Some(Part::ToolCall { arguments: a, .. }) = parts.get_mut(at)
                {
                    a.push_str(arguments);
                }
            }
            // Not generated: searches have their own unit tests.
            (
                Event::Start { .. } | Event::Usage(_) | Event::Finish { .. } | Event::WebSearch(_),
                _,
            ) => {}
        }
    }
    for p in &mut parts {
        if let Part::ToolCall {
            name, arguments, ..
        } = p
            && tools.iter().any(|t| t.name == *name && t.origin.freeform)
        {
            #[derive(serde::Deserialize)]
            struct Input {
                input: String,
            }
            let input = serde_json::from_str::<Input>(arguments)
                .map_or_else(|_| arguments.clone(), |i| i.input);
            *arguments = json!({ "input": input }).to_string();
        }
    }
    parts
}

/// One written event, parsed.
#[derive(Debug)]
struct Ev {
    id: Option<String>,
    name: Option<String>,
    data: Value,
}

fn parse_sse(bytes: &[u8]) -> Vec<Ev> {
    let mut p = sse::Parser::new(1 << 24);
    let mut out = Vec::new();
    p.feed(bytes, &mut out).expect("within the limit");
    p.finish(&mut out);
    out.into_iter()
        .map(|e| Ev {
            name: e.name().map(str::to_owned),
            id: e.id,
            data: serde_json::from_slice(&e.data).expect("every event is JSON"),
        })
        .collect()
}

const TERMINAL: &[&str] = &[
    "response.completed",
    "response.incomplete",
    "response.failed",
];

fn kind(e: &Ev) -> &str {
    e.data["type"].as_str().unwrap_or("")
}

/// What every Responses stream the gateway writes keeps, relayed or not:
/// events named by their type, numbered 0, 1, 2... (the SSE id too), the
/// gateway's response id on every Response object, exactly one terminal
/// event and it last, `response.failed` right after an `error` event
/// holding an error object. Returns the terminal Response.
fn check_numbering(evs: &[Ev], response_id: &str) -> Result<Value, TestCaseError> {
    prop_assert!(evs.len() >= 2, "a stream has events: {:?}", evs);
    for (i, e) in evs.iter().enumerate() {
        prop_assert_eq!(
            e.name.as_deref(),
            Some(kind(e)),
            "event {} names its type",
            i
        );
        prop_assert_eq!(
            e.data["sequence_number"].as_u64(),
            Some(i as u64),
            "event {} ({}) numbered in order",
            i,
            kind(e)
        );
        let i_str = i.to_string();
        prop_assert_eq!(
            e.id.as_deref(),
            Some(i_str.as_str()),
            "SSE id of event {}",
            i
        );
        if let Some(r) = e.data.get("response") {
            prop_assert_eq!(
                r["id"].as_str(),
                Some(response_id),
                "event {} response id",
                i
            );
        }
    }
    let terminals: Vec<usize> = evs
        .iter()
        .enumerate()
        .filter(|(_, e)| TERMINAL.contains(&kind(e)))
        .map(|(i, _)| i)
        .collect();
    prop_assert_eq!(&terminals, &vec![evs.len() - 1], "one terminal event, last");
    let last = &evs[evs.len() - 1];
    let response = last.data["response"].clone();
    let status = response["status"].as_str().unwrap_or("");
    match kind(last) {
        "response.failed" => {
            prop_assert_eq!(status, "failed");
            let error = &evs[evs.len() - 2];
            prop_assert_eq!(
                kind(error),
                "error",
                "response.failed follows an error event"
            );
            prop_assert!(error.data["error"].is_object(), "a nested error object");
            prop_assert_eq!(&response["error"], &error.data["error"]);
        }
        "response.incomplete" => {
            prop_assert_eq!(status, "incomplete");
            prop_assert!(response["incomplete_details"]["reason"].is_string());
        }
        _ => {
            prop_assert_eq!(status, "completed");
            prop_assert!(response["error"].is_null());
        }
    }
    Ok(response)
}

/// One output item as its events built it.
#[derive(Debug, Default)]
struct Track {
    added: Value,
    done: Option<Value>,
    part_added: bool,
    text: String,
    text_done: Option<String>,
    arguments: String,
    arguments_done: Option<String>,
    input: String,
    input_done: Option<String>,
    summary_added: bool,
    summary: String,
    summary_done: Option<String>,
}

/// Everything the openai-python stream helper and strict clients rely on
/// of a whole stream: the lifecycle events first, an item added before
/// its events and done exactly once (one item at a time), a content part
/// before its deltas, deltas that add up to the item's final text and
/// `done`s that agree, and a terminal Response whose `output` is the
/// items done. Returns the terminal Response.
fn check_stream(evs: &[Ev], response_id: &str) -> Result<Value, TestCaseError> {
    let response = check_numbering(evs, response_id)?;
    prop_assert!(evs.len() >= 3);
    prop_assert_eq!(kind(&evs[0]), "response.created");
    prop_assert_eq!(kind(&evs[1]), "response.in_progress");
    prop_assert_eq!(
        evs[0].data["response"]["status"].as_str(),
        Some("in_progress")
    );
    let mut items: Vec<Track> = Vec::new();
    for (i, e) in evs.iter().enumerate().skip(2) {
        let k = kind(e);
        if TERMINAL.contains(&k) || k == "error" {
            continue;
        }
        let n = e.data["output_index"]
            .as_u64()
            .ok_or_else(|| TestCaseError::fail(format!("event {i} ({k}) has no output_index")))?
            as usize;
        if k == "response.output_item.added" {
            prop_assert_eq!(n, items.len(), "items are added in order");
            prop_assert!(
                items.iter().all(|t| t.done.is_some()),
                "one item at a time: event {}",
                i
            );
            items.push(Track {
                added: e.data["item"].clone(),
                ..Track::default()
            });
            continue;
        }
        prop_assert!(
            n < items.len(),
            "event {} ({}) before its item was added",
            i,
            k
        );
        let t = &mut items[n];
        prop_assert!(
            t.done.is_none(),
            "event {} ({}) after its item was done",
            i,
            k
        );
        if let Some(id) = e.data.get("item_id") {
            prop_assert_eq!(id, &t.added["id"], "event {} names its item", i);
        }
        let s = |key: &str| e.data[key].as_str().map(str::to_owned);
        match k {
            "response.output_item.done" => {
                let item = e.data["item"].clone();
                prop_assert_eq!(&item["id"], &t.added["id"]);
                prop_assert_eq!(&item["type"], &t.added["type"]);
                t.done = Some(item);
            }
            "response.content_part.added" => t.part_added = true,
            "response.output_text.delta" => {
                prop_assert!(t.part_added, "content_part.added before text deltas");
                t.text.push_str(&s("delta").unwrap_or_default());
            }
            "response.output_text.done" => t.text_done = s("text"),
            "response.content_part.done" => {
                prop_assert_eq!(e.data["part"]["text"].as_str(), Some(t.text.as_str()));
            }
            "response.function_call_arguments.delta" => {
                t.arguments.push_str(&s("delta").unwrap_or_default());
            }
            "response.function_call_arguments.done" => t.arguments_done = s("arguments"),
            "response.custom_tool_call_input.delta" => {
                t.input.push_str(&s("delta").unwrap_or_default());
            }
            "response.custom_tool_call_input.done" => t.input_done = s("input"),
            "response.reasoning_summary_part.added" => t.summary_added = true,
            "response.reasoning_summary_text.delta" => {
                prop_assert!(t.summary_added, "summary part added before its deltas");
                t.summary.push_str(&s("delta").unwrap_or_default());
            }
            "response.reasoning_summary_text.done" => t.summary_done = s("text"),
            "response.reasoning_summary_part.done" => {
                prop_assert_eq!(e.data["part"]["text"].as_str(), Some(t.summary.as_str()));
            }
            other => prop_assert!(false, "unexpected event type {}", other),
        }
    }
    let mut done_items = Vec::new();
    for (n, t) in items.iter().enumerate() {
        let Some(item) = &t.done else {
            return Err(TestCaseError::fail(format!("item {n} was never done")));
        };
        match item["type"].as_str().unwrap_or("") {
            "message" => {
                let c = &item["content"][0];
                prop_assert!(t.part_added);
                let final_text = c["text"].as_str().or(c["refusal"].as_str());
                prop_assert_eq!(
                    final_text,
                    Some(t.text.as_str()),
                    "deltas add up to the text"
                );
                prop_assert_eq!(t.text_done.as_deref(), Some(t.text.as_str()));
            }
            "function_call" => {
                prop_assert_eq!(item["arguments"].as_str(), Some(t.arguments.as_str()));
                prop_assert_eq!(t.arguments_done.as_deref(), Some(t.arguments.as_str()));
            }
            "custom_tool_call" => {
                prop_assert_eq!(item["input"].as_str(), Some(t.input.as_str()));
                prop_assert_eq!(t.input_done.as_deref(), Some(t.input.as_str()));
            }
            "reasoning" => {
                let summary: String = item["summary"]
                    .as_array()
                    .map(|s| s.iter().filter_map(|p| p["text"].as_str()).collect())
                    .unwrap_or_default();
                prop_assert_eq!(&summary, &t.summary, "deltas add up to the summary");
                prop_assert_eq!(t.summary_done.as_deref(), Some(t.summary.as_str()));
            }
            other => prop_assert!(false, "unexpected item type {}", other),
        }
        done_items.push(item.clone());
    }
    prop_assert_eq!(
        &response["output"],
        &Value::Array(done_items),
        "the terminal output is the items done"
    );
    Ok(response)
}

fn usage_of(v: &Value) -> Option<Usage> {
    if v.is_null() {
        return None;
    }
    let n = |x: &Value| x.as_u64().unwrap_or(u64::MAX);
    Some(Usage {
        input_tokens: n(&v["input_tokens"]),
        output_tokens: n(&v["output_tokens"]),
        cached_input_tokens: n(&v["input_tokens_details"]["cached_tokens"]),
        cache_write_tokens: n(&v["input_tokens_details"]["cache_write_tokens"]),
        reasoning_tokens: n(&v["output_tokens_details"]["reasoning_tokens"]),
        web_search_requests: 0,
    })
}

/// Runs the encoder over `events`, cut before `cut`: the rest finished,
/// or failed when it was cut short. Returns what it wrote and its
/// terminal object.
fn encode_stream(echo: &Arc<Echo>, events: &[Event], cut: usize) -> (Vec<u8>, Option<String>) {
    let mut enc = StreamEncoder::new(
        echo.clone(),
        PROVIDER.into(),
        "fallback-model".into(),
        1_600_000_000,
    );
    let mut w = sse::Writer::new(0);
    for ev in &events[..cut] {
        enc.encode(ev, &mut w);
    }
    if cut == events.len() {
        enc.finish(&mut w);
    } else {
        enc.fail(&mut w, ERROR_BODY);
    }
    (w.take().to_vec(), enc.terminal().map(str::to_owned))
}

fn arb_stream() -> impl Strategy<Value = (Vec<Tool>, Vec<Event>, Index)> {
    (
        arb_tools(),
        proptest::collection::vec(arb_block(), 0..7),
        proptest::option::weighted(0.9, arb_finish()),
        proptest::option::of(arb_usage()),
        any::<Index>(),
    )
        .prop_map(|(tools, blocks, finish, usage, cut)| {
            let events = events_of(&tools, &blocks, finish, usage);
            (tools, events, cut)
        })
}

proptest! {
    #![proptest_config(config())]

    /// A canonical conversation, written as a Responses request, decodes
    /// to itself.
    #[test]
    fn any_expressible_conversation_decodes_to_itself(req in arb_request()) {
        let body = render_request(&req);
        let decoded = decode_request(&body);
        prop_assert!(decoded.is_ok(), "{:?}\n{}", decoded.err(), String::from_utf8_lossy(&body));
        let (back, _) = decoded.unwrap();
        prop_assert!(back.unknown_fields.is_empty(), "{:?}", back.unknown_fields);
        prop_assert_eq!(without_origins(&back), without_origins(&req), "{}", String::from_utf8_lossy(&body));
    }

    /// A canonical answer, encoded as a Response, reads back as itself:
    /// text, calls in the caller's terms turned back to flat names, and
    /// reasoning opened from its sealed state.
    #[test]
    fn any_answer_reads_back_from_its_response((tools, r) in arb_answer()) {
        let echo = echo_for(&tools, "resp_props");
        let body = encode_response(&r, &echo, PROVIDER, 1_700_000_100);
        let v: Value = serde_json::from_slice(&body).expect("a Response is JSON");
        prop_assert_eq!(v["id"].as_str(), Some("resp_props"));
        prop_assert_eq!(v["object"].as_str(), Some("response"));
        let (status, reason) = match r.finish {
            Some(FinishReason::Length) => ("incomplete", Some("max_output_tokens")),
            Some(FinishReason::ContentFilter) => ("incomplete", Some("content_filter")),
            _ => ("completed", None),
        };
        prop_assert_eq!(v["status"].as_str(), Some(status));
        prop_assert_eq!(v["incomplete_details"]["reason"].as_str(), reason);
        prop_assert_eq!(usage_of(&v["usage"]), r.usage);
        prop_assert_eq!(super::peek_usage(&body), r.usage);
        let ids: Vec<&str> = v["output"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        prop_assert_eq!(unique.len(), ids.len(), "item ids are unique: {:?}", ids);
        prop_assert_eq!(read_output(&v["output"], PROVIDER), merged_text(&r.content));
    }

    /// The encoder's stream, cut anywhere (finished at the end, failed
    /// before it), is a well-formed Responses stream whose terminal
    /// Response holds what the events before the cut said.
    #[test]
    fn the_stream_is_well_formed_wherever_it_is_cut((tools, events, cut) in arb_stream()) {
        let cut = cut.index(events.len() + 1);
        let echo = Arc::new(echo_for(&tools, "resp_props"));
        let (bytes, terminal) = encode_stream(&echo, &events, cut);
        let evs = parse_sse(&bytes);
        let response = check_stream(&evs, "resp_props")?;
        let terminal: Value = serde_json::from_str(terminal.as_deref().expect("a terminal object")).unwrap();
        prop_assert_eq!(&terminal, &response, "the encoder keeps the terminal object it wrote");
        let last = kind(&evs[evs.len() - 1]);
        if cut < events.len() {
            prop_assert_eq!(last, "response.failed");
            let expected: Value = serde_json::from_slice(ERROR_BODY).unwrap();
            prop_assert_eq!(&response["error"], &expected["error"]);
        } else {
            let finish = events.iter().rev().find_map(|e| match e {
                Event::Finish { reason, .. } => Some(reason.clone()),
                _ => None,
            });
            let expected = match finish {
                Some(FinishReason::Length | FinishReason::ContentFilter) => "response.incomplete",
                _ => "response.completed",
            };
            prop_assert_eq!(last, expected);
        }
        let usage = events[..cut].iter().rev().find_map(|e| match e {
            Event::Usage(u) => Some(*u),
            _ => None,
        });
        prop_assert_eq!(usage_of(&response["usage"]), usage);
        prop_assert_eq!(
            read_output(&response["output"], PROVIDER),
            content_of(&events[..cut], &tools),
            "the terminal output holds what the events said"
        );
    }

    /// A native stream relayed (the encoder's own, finished or failed
    /// upstream), cut anywhere again and failed by the relay: still
    /// numbered without a gap, one terminal event last, the gateway's id
    /// on every Response object; relayed whole it is as well-formed as
    /// the upstream's.
    #[test]
    fn a_relayed_stream_stays_well_formed_wherever_it_is_cut(
        (tools, events, cut) in arb_stream(),
        upstream_fails in proptest::bool::weighted(0.3),
        relay_cut in any::<Index>(),
    ) {
        let upstream_cut = if upstream_fails { cut.index(events.len() + 1) } else { events.len() };
        let upstream_echo = Arc::new(echo_for(&tools, "resp_upstream"));
        let (upstream_bytes, _) = encode_stream(&upstream_echo, &events, upstream_cut);
        let mut p = sse::Parser::new(1 << 24);
        let mut upstream = Vec::new();
        p.feed(&upstream_bytes, &mut upstream).unwrap();
        p.finish(&mut upstream);
        let relay_cut = relay_cut.index(upstream.len() + 1);

        let mut relay = Relay::new(Some(Arc::new(echo_for(&tools, "resp_gateway"))));
        let mut w = sse::Writer::new(0);
        for ev in &upstream[..relay_cut] {
            if let Err(e) = relay.relay(ev, &mut w) {
                // Only before the answer began, when it can still fail
                // over: nothing has reached the caller.
                prop_assert!(w.buf.is_empty(), "an error after events were written: {:?}", e);
                let d = ev.data_str();
                prop_assert!(
                    d.contains(r#""type":"error""#) || d.contains(r#""type":"response.failed""#),
                    "refused {}",
                    d
                );
                return Ok(());
            }
        }
        let whole = relay_cut == upstream.len();
        if whole {
            prop_assert!(relay.done, "a relayed terminal event ends the stream");
        } else {
            prop_assert!(!relay.done);
            relay.fail(&mut w, ERROR_BODY);
        }
        let evs = parse_sse(&w.take());
        let response = check_numbering(&evs, "resp_gateway")?;
        let terminal: Value = serde_json::from_str(relay.terminal.as_deref().expect("a terminal object")).unwrap();
        prop_assert_eq!(&terminal, &response, "the relay keeps the terminal object it wrote");
        if whole {
            check_stream(&evs, "resp_gateway")?;
            prop_assert_eq!(evs.len(), upstream.len());
            for (mine, theirs) in evs.iter().zip(&upstream) {
                if mine.data.get("response").is_none() {
                    let theirs: Value = serde_json::from_slice(&theirs.data).unwrap();
                    prop_assert_eq!(&mine.data, &theirs, "events pass as they came");
                }
            }
            if !upstream_fails {
                let usage = events.iter().rev().find_map(|e| match e {
                    Event::Usage(u) => Some(*u),
                    _ => None,
                });
                prop_assert_eq!(relay.usage, usage);
            }
        }
    }
}
