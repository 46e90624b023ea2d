//! Responses requests: decode what a caller sent into the canonical model,
//! and rewrite a caller's own bytes for a native Responses upstream.

use serde_json::value::RawValue;

use super::types::*;
use super::{compaction, reasoning};
use crate::chat::{
    self, BuiltinTool, DocSource, Document, Image, Message, Part, ResponseFormat, Role, SystemPart,
    Tool, ToolChoice, ToolOrigin, ToolResultPart,
};
use crate::wire::{DecodeError, Fields, TextOrList, field, is_neutral, opt_field};

/// Fields that describe the client or ask for a presentation detail, not
/// for a different answer: accepted whatever the target, and forwarded
/// only on the native path. README lists them as the deliberate exceptions
/// to "refused, never dropped".
const HINTS: &[&str] = &[
    "store",
    "include",
    "metadata",
    "previous_response_id",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "safety_identifier",
    "client_metadata",
    "service_tier",
    "truncation",
    "max_tool_calls",
];

/// Decodes a `/v1/responses` body. The returned [`Fields`] borrow the body
/// so a native call can forward it with [`rewrite_request`].
pub fn decode_request(body: &[u8]) -> Result<(chat::Request, Fields<'_>), DecodeError> {
    let fields = Fields::parse(body)?;
    let mut req = chat::Request::default();
    let mut saw_model = false;
    let mut input = None;
    for (key, raw) in &fields.0 {
        let raw: &RawValue = raw;
        match key.as_ref() {
            "model" => {
                req.model = field("model", raw)?;
                saw_model = true;
            }
            "input" => input = Some(raw),
            "instructions" => {
                if let Some(text) = opt_field::<String>("instructions", raw)? {
                    req.system.push(SystemPart {
                        text,
                        cache_control: None,
                    });
                }
            }
            "tools" => {
                if let Some(tools) = opt_field::<Vec<ToolIn>>("tools", raw)? {
                    decode_tools(tools, "tools", &mut req)?;
                }
            }
            "tool_choice" => {
                if let Some(tc) = opt_field::<ToolChoiceIn>("tool_choice", raw)? {
                    decode_tool_choice(tc, &mut req)?;
                }
            }
            "parallel_tool_calls" => req.parallel_tool_calls = opt_field(key, raw)?,
            "text" => {
                if let Some(t) = opt_field::<TextConfigIn>("text", raw)? {
                    decode_text(t, &mut req)?;
                }
            }
            "reasoning" => {
                if let Some(r) = opt_field::<ReasoningIn>("reasoning", raw)? {
                    // `summary`, `context` and `mode` say how reasoning is
                    // shown or kept, not what is answered.
                    let _ = (r.summary, r.generate_summary, r.context, r.mode);
                    req.reasoning_effort = r.effort;
                    for k in r.unknown.0 {
                        req.unknown_fields.push(format!("reasoning.{k}"));
                    }
                }
            }
            "max_output_tokens" => req.max_tokens = opt_field(key, raw)?,
            "temperature" => req.temperature = opt_field(key, raw)?,
            "top_p" => req.top_p = opt_field(key, raw)?,
            "user" => req.user = opt_field(key, raw)?,
            "stream" => req.stream = opt_field(key, raw)?.unwrap_or(false),
            "stream_options" => {
                if let Some(so) = opt_field::<StreamOptionsIn>("stream_options", raw)? {
                    for k in so.keys.0 {
                        if k != "include_obfuscation" {
                            req.unknown_fields.push(format!("stream_options.{k}"));
                        }
                    }
                }
            }
            "background" | "top_logprobs" => {
                if !is_neutral(raw) {
                    req.unknown_fields.push(key.to_string());
                }
            }
            hint if HINTS.contains(&hint) => {}
            other => {
                if !is_neutral(raw) {
                    req.unknown_fields.push(other.to_owned());
                }
            }
        }
    }
    crate::wire::check_model(saw_model.then_some(req.model.as_str()))?;
    let Some(input) = input else {
        return Err(DecodeError::missing("input"));
    };
    match field::<TextOrList<ItemIn>>("input", input)? {
        TextOrList::Text(t) => req
            .messages
            .push(Message::new(Role::User, vec![text(t)], 0)),
        TextOrList::List(items) => decode_items(items, &mut req)?,
    }
    if req.messages.is_empty() {
        return Err(DecodeError::new(
            "input",
            "`input` must hold at least one message or item",
        ));
    }
    // Usage always arrives at the end of a Responses stream.
    req.include_usage = req.stream;
    Ok((req, fields))
}

fn text(text: String) -> Part {
    Part::Text {
        text,
        cache_control: None,
    }
}

/// Appends `part` to the assistant turn in progress, or starts one: a
/// reasoning item, the message and the calls after it are one turn (the
/// turn's errors name its first item).
fn assistant(req: &mut chat::Request, part: Part, i: usize) {
    match req.messages.last_mut() {
        Some(m) if m.role == Role::Assistant => m.parts.push(part),
        _ => req
            .messages
            .push(Message::new(Role::Assistant, vec![part], i)),
    }
}

fn decode_items(items: Vec<ItemIn>, req: &mut chat::Request) -> Result<(), DecodeError> {
    for (i, item) in items.into_iter().enumerate() {
        let at = |f: &str| format!("input[{i}].{f}");
        let kind = item.kind.as_deref().unwrap_or("message");
        if kind == "web_search_call" {
            // A search a provider ran in an earlier turn is its own step:
            // the answer text that used it is in this history already, and
            // no other provider can take it as input (Anthropic replays a
            // search only with the encrypted results it made, which a
            // Responses client never holds). The native path forwards it.
            continue;
        }
        let unknown_ok: &[&str] = &["id", "status", "phase", "caller", "async", "created_by"];
        for k in &item.unknown.0 {
            if !unknown_ok.contains(&k.as_str()) {
                req.unknown_fields.push(at(k));
            }
        }
        match kind {
            "message" => decode_message(item, i, req)?,
            "function_call" | "custom_tool_call" => {
                let call_id = item
                    .call_id
                    .ok_or_else(|| DecodeError::missing(&at("call_id")))?;
                let name = item.name.ok_or_else(|| DecodeError::missing(&at("name")))?;
                let name = flat_name(item.namespace.as_deref(), &name);
                let arguments = if kind == "function_call" {
                    item.arguments.unwrap_or_default()
                } else {
                    let input = item
                        .input
                        .ok_or_else(|| DecodeError::missing(&at("input")))?;
                    serde_json::json!({ "input": input }).to_string()
                };
                assistant(
                    req,
                    Part::ToolCall {
                        id: call_id,
                        name,
                        arguments,
                    },
                    i,
                );
            }
            "function_call_output" | "custom_tool_call_output" => {
                let call_id = item
                    .call_id
                    .ok_or_else(|| DecodeError::missing(&at("call_id")))?;
                let Some(output) = item.output else {
                    return Err(DecodeError::missing(&at("output")));
                };
                let content = tool_output(output, &at("output"), &mut req.unknown_fields)?;
                req.messages.push(Message::new(
                    Role::Tool,
                    vec![Part::ToolResult {
                        tool_call_id: call_id,
                        content,
                        is_error: false,
                    }],
                    i,
                ));
            }
            "reasoning" => {
                // Only reasoning the gateway sealed can go to another
                // provider; OpenAI's own blob is for OpenAI (the native
                // path forwards it) and a summary alone is nothing to send.
                if let Some(part) = item.encrypted_content.as_deref().and_then(reasoning::open) {
                    assistant(req, part, i);
                }
            }
            "additional_tools" => {
                if let Some(tools) = item.tools {
                    decode_tools(tools, &at("tools"), req)?;
                }
            }
            "compaction" => match item.encrypted_content.as_deref().and_then(compaction::open) {
                // A summary the gateway made: what the model is told.
                Some(summary) => req.messages.push(Message::new(
                    Role::User,
                    vec![text(compaction::as_message_text(&summary))],
                    i,
                )),
                // OpenAI's own: only OpenAI can read it.
                None => req
                    .unknown_fields
                    .push(format!("input[{i}].type=compaction")),
            },
            "item_reference" => {
                return Err(DecodeError::new(
                    format!("input[{i}]"),
                    "an item_reference needs a stored response of this key holding that item",
                ));
            }
            other => {
                // compaction, hosted-tool calls and whatever comes next:
                // the native path forwards them, other targets refuse.
                req.unknown_fields.push(format!("input[{i}].type={other}"));
            }
        }
    }
    Ok(())
}

fn decode_message(item: ItemIn, i: usize, req: &mut chat::Request) -> Result<(), DecodeError> {
    let at = |f: &str| format!("input[{i}].{f}");
    let role = item.role.ok_or_else(|| DecodeError::missing(&at("role")))?;
    let content = item
        .content
        .ok_or_else(|| DecodeError::missing(&at("content")))?;
    let parts = content_parts(content, &at("content"), &mut req.unknown_fields)?;
    match role.as_str() {
        "system" | "developer" => {
            let mut joined = String::new();
            for (j, p) in parts.into_iter().enumerate() {
                match p {
                    Part::Text { text, .. } => joined.push_str(&text),
                    // A file there is for OpenAI to take or refuse: the
                    // native path forwards it, other targets refuse it.
                    Part::Document(_) => {
                        req.unknown_fields.push(format!("input[{i}].content[{j}]"))
                    }
                    _ => {
                        return Err(DecodeError::new(
                            format!("input[{i}].content[{j}]"),
                            "system and developer messages may hold only text",
                        ));
                    }
                }
            }
            if req.messages.is_empty() {
                req.system.push(SystemPart {
                    text: joined,
                    cache_control: None,
                });
            } else {
                req.messages
                    .push(Message::new(Role::System, vec![text(joined)], i));
            }
        }
        "user" => req.messages.push(Message::new(Role::User, parts, i)),
        "assistant" => {
            for (j, p) in parts.into_iter().enumerate() {
                match p {
                    // Answers hold no files; one in an assistant message is
                    // OpenAI's to judge (the native path forwards it).
                    Part::Document(_) => {
                        req.unknown_fields.push(format!("input[{i}].content[{j}]"))
                    }
                    p => assistant(req, p, i),
                }
            }
        }
        other => {
            return Err(DecodeError::new(
                at("role"),
                format!(
                    "unsupported role `{other}`: expected user, assistant, system or developer"
                ),
            ));
        }
    }
    Ok(())
}

/// A message's content parts as canonical parts.
fn content_parts(
    content: TextOrList<PartIn>,
    path: &str,
    unknown: &mut Vec<String>,
) -> Result<Vec<Part>, DecodeError> {
    let ps = match content {
        TextOrList::Text(t) => return Ok(vec![text(t)]),
        TextOrList::List(ps) => ps,
    };
    let mut parts = Vec::with_capacity(ps.len());
    for (j, p) in ps.into_iter().enumerate() {
        let at = format!("{path}[{j}]");
        for k in &p.unknown.0 {
            if k != "annotations" && k != "logprobs" && k != "prompt_cache_breakpoint" {
                unknown.push(format!("{at}.{k}"));
            }
        }
        match p.kind.as_str() {
            "input_text" | "output_text" | "text" => {
                let t = p
                    .text
                    .ok_or_else(|| DecodeError::missing(&format!("{at}.text")))?;
                parts.push(text(t));
            }
            "refusal" => {
                let r = p
                    .refusal
                    .ok_or_else(|| DecodeError::missing(&format!("{at}.refusal")))?;
                parts.push(text(r));
            }
            "input_image" => {
                if p.detail.as_deref().is_some_and(|d| d != "auto") {
                    unknown.push(format!("{at}.detail"));
                }
                match (p.image_url, p.file_id) {
                    (Some(url), _) => parts.push(Part::Image(Image::from_url(&url))),
                    // A file id names a file stored at OpenAI: only the
                    // native path can use it.
                    (None, Some(_)) => unknown.push(format!("{at}.file_id")),
                    (None, None) => {
                        return Err(DecodeError::missing(&format!("{at}.image_url")));
                    }
                }
            }
            "input_file" => {
                if p.detail.as_deref().is_some_and(|d| d != "auto") {
                    unknown.push(format!("{at}.detail"));
                }
                if let Some(doc) = input_file(p, &at, unknown)? {
                    parts.push(Part::Document(doc));
                }
            }
            other => unknown.push(format!("{at}.type={other}")),
        }
    }
    Ok(parts)
}

/// An `input_file` part (`at` names it): inline data (a `data:` URL) or a
/// URL the provider fetches, with the caller's file name. A `file_id`
/// names a file stored at OpenAI: only the native path can use it.
fn input_file(
    p: PartIn,
    at: &str,
    unknown: &mut Vec<String>,
) -> Result<Option<Document>, DecodeError> {
    match (p.file_id, p.file_data, p.file_url) {
        (Some(_), _, _) => {
            unknown.push(format!("{at}.file_id"));
            Ok(None)
        }
        (None, Some(data), url) => {
            // Both: the native path lets OpenAI say which it reads.
            if url.is_some() {
                unknown.push(format!("{at}.file_url"));
            }
            Document::from_file_data(&data, p.filename)
            .map(Some)
            .ok_or_else(|| {
                DecodeError::new(
                    format!("{at}.file_data"),
                    "a `data:` URL in `file_data` must be base64 (`data:<media type>;base64,...`)",
                )
            })
        }
        (None, None, Some(url)) => Ok(Some(Document {
            source: DocSource::Url(url),
            media_type: None,
            filename: p.filename,
        })),
        (None, None, None) => Err(DecodeError::new(
            at,
            format!("`{at}` needs one of file_data, file_url or file_id"),
        )),
    }
}

/// A tool output: a string, or a list of text, image and file parts.
fn tool_output(
    output: TextOrList<PartIn>,
    path: &str,
    unknown: &mut Vec<String>,
) -> Result<Vec<ToolResultPart>, DecodeError> {
    Ok(content_parts(output, path, unknown)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Text { text, .. } => Some(ToolResultPart::Text(text)),
            Part::Image(img) => Some(ToolResultPart::Image(img)),
            Part::Document(doc) => Some(ToolResultPart::Document(doc)),
            _ => None,
        })
        .collect())
}

/// The name a tool inside a namespace goes by in a flat tool list.
pub fn flat_name(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}__{name}"),
        _ => name.to_owned(),
    }
}

/// The schema a freeform tool is sent with: one string, `input`.
pub(super) fn freeform_schema(format: Option<&CustomFormatIn>) -> chat::RawJson {
    let mut description = "The tool's whole input, as raw text (not JSON).".to_owned();
    if let Some(f) = format
        && f.kind == "grammar"
        && let Some(def) = &f.definition
    {
        description = format!(
            "The tool's whole input, as raw text (not JSON), following this {} grammar:\n{def}",
            f.syntax.as_deref().unwrap_or("lark")
        );
    }
    chat::RawJson(crate::wire::to_raw(&serde_json::json!({
        "type": "object",
        "properties": {"input": {"type": "string", "description": description}},
        "required": ["input"],
        "additionalProperties": false,
    })))
}

fn decode_tools(
    tools: Vec<ToolIn>,
    path: &str,
    req: &mut chat::Request,
) -> Result<(), DecodeError> {
    for (i, t) in tools.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        decode_tool(t, &at, None, req)?;
    }
    Ok(())
}

fn decode_tool(
    t: ToolIn,
    at: &str,
    namespace: Option<&str>,
    req: &mut chat::Request,
) -> Result<(), DecodeError> {
    let known: &[&str] = &["defer_loading", "allowed_callers", "async", "output_schema"];
    match t.kind.as_str() {
        "function" | "custom" => {
            for k in t.rest.keys() {
                if !known.contains(&k.as_str()) {
                    req.unknown_fields.push(format!("{at}.{k}"));
                }
            }
            let name = t
                .name
                .ok_or_else(|| DecodeError::missing(&format!("{at}.name")))?;
            let freeform = t.kind == "custom";
            let flat = flat_name(namespace, &name);
            if req.tools.iter().any(|x| x.name == flat) {
                return Err(DecodeError::new(
                    format!("{at}.name"),
                    format!("two tools are named `{flat}`"),
                ));
            }
            req.tools.push(Tool {
                origin: ToolOrigin {
                    namespace: namespace.map(str::to_owned),
                    name: (flat != name).then_some(name),
                    freeform,
                },
                name: flat,
                description: t.description,
                parameters: if freeform {
                    Some(freeform_schema(t.format.as_ref()))
                } else {
                    t.parameters
                },
                strict: if freeform { None } else { t.strict },
                cache_control: None,
            });
        }
        "namespace" => {
            let ns = t
                .name
                .ok_or_else(|| DecodeError::missing(&format!("{at}.name")))?;
            for (j, inner) in t.tools.unwrap_or_default().into_iter().enumerate() {
                decode_tool(inner, &format!("{at}.tools[{j}]"), Some(&ns), req)?;
            }
        }
        kind => {
            let web_search = if WEB_SEARCH.contains(&kind) {
                Some(decode_web_search(&t.rest, at, &mut req.unknown_fields)?)
            } else {
                None
            };
            let mut definition = t.rest;
            if let Some(n) = t.name {
                definition.insert("name".into(), n.into());
            }
            definition.insert("type".into(), kind.into());
            req.builtin_tools.push(BuiltinTool {
                kind: kind.to_owned(),
                path: at.to_owned(),
                definition: chat::RawJson(crate::wire::to_raw(&definition)),
                web_search,
            });
        }
    }
    Ok(())
}

/// The built-in tools that are a web search, by `type`.
const WEB_SEARCH: &[&str] = &[
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
];

/// A web search tool's options. What the canonical model has no place for
/// goes to `unknown` (forwarded natively, refused elsewhere), as for any
/// other tool.
fn decode_web_search(
    rest: &serde_json::Map<String, serde_json::Value>,
    at: &str,
    unknown: &mut Vec<String>,
) -> Result<chat::WebSearchTool, DecodeError> {
    use serde_json::Value;
    let mut ws = chat::WebSearchTool::default();
    let string = |v: &Value, path: &str| -> Result<Option<String>, DecodeError> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(DecodeError::new(path, format!("`{path}` must be a string"))),
        }
    };
    for (k, v) in rest {
        let path = format!("{at}.{k}");
        match (k.as_str(), v) {
            (_, Value::Null) => {}
            ("external_web_access", Value::Bool(live)) => ws.live = *live,
            ("search_context_size", v) => ws.context_size = string(v, &path)?,
            // Text is what every provider's search reads; images only
            // OpenAI's.
            ("search_content_types", Value::Array(types))
                if types.iter().all(|t| t.as_str() == Some("text")) => {}
            ("filters", Value::Object(f)) => {
                for (fk, fv) in f {
                    let fpath = format!("{path}.{fk}");
                    match (fk.as_str(), fv) {
                        (_, Value::Null) => {}
                        ("allowed_domains", Value::Array(domains)) => {
                            for (i, d) in domains.iter().enumerate() {
                                let dpath = format!("{fpath}[{i}]");
                                ws.allowed_domains.extend(string(d, &dpath)?);
                            }
                        }
                        _ => unknown.push(fpath),
                    }
                }
            }
            ("user_location", Value::Object(l)) => {
                let mut loc = chat::UserLocation::default();
                for (lk, lv) in l {
                    let lpath = format!("{path}.{lk}");
                    match lk.as_str() {
                        "type" => {
                            if string(lv, &lpath)?.is_some_and(|t| t != "approximate") {
                                unknown.push(lpath);
                            }
                        }
                        "city" => loc.city = string(lv, &lpath)?,
                        "region" => loc.region = string(lv, &lpath)?,
                        "country" => loc.country = string(lv, &lpath)?,
                        "timezone" => loc.timezone = string(lv, &lpath)?,
                        _ => unknown.push(lpath),
                    }
                }
                ws.user_location = (!loc.is_empty()).then_some(loc);
            }
            _ => unknown.push(path),
        }
    }
    Ok(ws)
}

fn decode_tool_choice(tc: ToolChoiceIn, req: &mut chat::Request) -> Result<(), DecodeError> {
    req.tool_choice = Some(match tc {
        ToolChoiceIn::Mode(m) => match m.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(DecodeError::new(
                    "tool_choice",
                    format!(
                        "unknown tool_choice `{other}`: expected auto, none, required or an object"
                    ),
                ));
            }
        },
        ToolChoiceIn::Object(o) => match o.kind.as_str() {
            "function" | "custom" => {
                let name = o
                    .name
                    .ok_or_else(|| DecodeError::missing("tool_choice.name"))?;
                ToolChoice::Named(name)
            }
            "allowed_tools" => {
                // Only the allowed tools are offered; the mode says
                // whether one must be called.
                let allowed: Vec<String> = o
                    .tools
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|t| {
                        t.name
                            .filter(|_| t.kind == "function" || t.kind == "custom")
                    })
                    .collect();
                req.tools.retain(|t| {
                    allowed
                        .iter()
                        .any(|a| *a == t.name || t.origin.name.as_deref() == Some(a))
                });
                match o.mode.as_deref() {
                    Some("required") => ToolChoice::Required,
                    _ => ToolChoice::Auto,
                }
            }
            other => {
                req.unknown_fields.push(format!("tool_choice.type={other}"));
                return Ok(());
            }
        },
    });
    Ok(())
}

fn decode_text(t: TextConfigIn, req: &mut chat::Request) -> Result<(), DecodeError> {
    // `verbosity` asks for a longer or shorter answer in OpenAI's models'
    // own terms; other targets take the default (README lists this).
    let _ = t.verbosity;
    for k in t.unknown.0 {
        req.unknown_fields.push(format!("text.{k}"));
    }
    let Some(f) = t.format else { return Ok(()) };
    req.response_format = Some(match f.kind.as_str() {
        "text" => ResponseFormat::Text,
        "json_object" => ResponseFormat::JsonObject,
        "json_schema" => ResponseFormat::JsonSchema {
            name: f
                .name
                .ok_or_else(|| DecodeError::missing("text.format.name"))?,
            schema: f
                .schema
                .ok_or_else(|| DecodeError::missing("text.format.schema"))?,
            strict: f.strict,
        },
        other => {
            return Err(DecodeError::new(
                "text.format.type",
                format!(
                    "unknown text.format type `{other}`: expected text, json_object or json_schema"
                ),
            ));
        }
    });
    let _ = f.description;
    Ok(())
}

/// The caller's body for a native Responses upstream: `model` replaced,
/// and reasoning the gateway sealed for another provider taken out of
/// `input` (OpenAI would refuse it as `invalid_encrypted_content`); every
/// other member forwarded as it came.
pub fn rewrite_request(fields: &Fields<'_>, upstream_model: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        fields
            .0
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>()
            + 16,
    );
    out.push(b'{');
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, key: &str, value: &[u8]| {
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, key).expect("a string serialises");
        out.push(b':');
        out.extend_from_slice(value);
    };
    for (k, v) in &fields.0 {
        match k.as_ref() {
            // The gateway keeps conversations itself and has put this one
            // into `input`; the id is its own, unknown upstream.
            "previous_response_id" => {}
            "model" => {
                let m = serde_json::to_vec(upstream_model).expect("a string serialises");
                member(&mut out, "model", &m);
            }
            "input"
                if v.get().contains(reasoning::PREFIX) || v.get().contains(compaction::PREFIX) =>
            {
                member(&mut out, "input", &without_gateway_state(v));
            }
            key => member(&mut out, key, v.get().as_bytes()),
        }
    }
    out.push(b'}');
    out
}

/// `input` without the reasoning items the gateway sealed, and with its
/// compaction summaries as the user messages they stand for.
fn without_gateway_state(input: &RawValue) -> Vec<u8> {
    let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(input.get()) else {
        return input.get().as_bytes().to_vec();
    };
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(rename = "type", default)]
        kind: Option<&'a str>,
        #[serde(default)]
        encrypted_content: Option<std::borrow::Cow<'a, str>>,
    }
    let mut kept: Vec<Box<RawValue>> = Vec::with_capacity(items.len());
    for it in items {
        let Ok(p) = serde_json::from_str::<Peek>(it.get()) else {
            kept.push(crate::wire::own(it));
            continue;
        };
        let blob = p.encrypted_content.as_deref().unwrap_or("");
        match p.kind {
            Some("reasoning") if blob.starts_with(reasoning::PREFIX) => {}
            Some("compaction") => match compaction::open(blob) {
                Some(summary) => kept.push(crate::wire::to_raw(&serde_json::json!({
                    "type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": compaction::as_message_text(&summary)}],
                }))),
                None => kept.push(crate::wire::own(it)),
            },
            _ => kept.push(crate::wire::own(it)),
        }
    }
    crate::wire::to_vec(&kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(items: &str) -> Result<chat::Request, DecodeError> {
        let body = format!(r#"{{"model":"m","input":{items}}}"#);
        decode_request(body.as_bytes()).map(|(r, _)| r)
    }

    /// OpenAI's file inputs guide: `input_file` with `file_data` as a data
    /// URL and a `filename`, or with a `file_url`; `file_id` for a file
    /// stored at OpenAI.
    #[test]
    fn input_files_decode_to_documents() {
        let r = input(
            r#"[{"role":"user","content":[
                {"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,JVBE"},
                {"type":"input_file","file_url":"https://x.example/b.pdf"},
                {"type":"input_file","file_id":"file-1"},
                {"type":"input_text","text":"compare"}]}]"#,
        )
        .unwrap();
        assert_eq!(r.unknown_fields, ["input[0].content[2].file_id"]);
        assert_eq!(
            r.messages[0].parts[..2],
            [
                Part::Document(Document {
                    source: DocSource::Base64("JVBE".into()),
                    media_type: Some("application/pdf".into()),
                    filename: Some("a.pdf".into()),
                }),
                Part::Document(Document {
                    source: DocSource::Url("https://x.example/b.pdf".into()),
                    media_type: None,
                    filename: None,
                }),
            ]
        );
    }

    #[test]
    fn a_bad_input_file_is_named() {
        let e = input(r#"[{"role":"user","content":[{"type":"input_file","filename":"a"}]}]"#)
            .unwrap_err();
        assert_eq!(e.field, "input[0].content[0]");
        let e = input(
            r#"[{"role":"user","content":[{"type":"input_file","file_data":"data:application/pdf,x"}]}]"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "input[0].content[0].file_data");
        let r = input(
            r#"[{"role":"user","content":[{"type":"input_file","file_data":"data:text/plain;base64,aGk=","file_url":"https://x.example/a","detail":"high"}]}]"#,
        )
        .unwrap();
        assert_eq!(
            r.unknown_fields,
            ["input[0].content[0].detail", "input[0].content[0].file_url"]
        );
    }

    /// A file in a developer or assistant message decodes (the native path
    /// forwards it for OpenAI to judge) and is refused by any other target.
    #[test]
    fn a_file_outside_a_user_turn_is_named() {
        let r = input(
            r#"[{"role":"developer","content":[{"type":"input_text","text":"rules"},{"type":"input_file","file_url":"https://x.example/r.pdf"}]},
                {"role":"assistant","content":[{"type":"input_file","file_url":"https://x.example/a.pdf"}]},
                {"role":"user","content":"hi"}]"#,
        )
        .unwrap();
        assert_eq!(
            r.unknown_fields,
            ["input[0].content[1]", "input[1].content[0]"]
        );
        assert_eq!(r.system[0].text, "rules");
    }

    #[test]
    fn a_file_in_a_tool_output_is_a_document_result() {
        let r = input(
            r#"[{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
                {"type":"function_call_output","call_id":"c1","output":[{"type":"input_text","text":"here"},{"type":"input_file","filename":"r.pdf","file_data":"data:application/pdf;base64,JVBE"}]}]"#,
        )
        .unwrap();
        let Part::ToolResult { content, .. } = &r.messages[1].parts[0] else {
            panic!("{:?}", r.messages)
        };
        assert!(
            matches!(&content[1], ToolResultPart::Document(d) if d.filename.as_deref() == Some("r.pdf"))
        );
    }

    #[test]
    fn a_web_search_tool_decodes_its_options_and_keeps_its_definition() {
        let body = br#"{"model":"m","input":"news","tools":[{"type":"web_search","filters":{"allowed_domains":["reuters.com"]},"user_location":{"type":"approximate","country":"GB","city":"London","region":null},"search_context_size":"medium","search_content_types":["text"]},{"type":"web_search_preview","external_web_access":false,"frobnicate":1},{"type":"file_search","vector_store_ids":["vs_1"]}]}"#;
        let (req, _) = decode_request(body).unwrap();
        let [ws, preview, file] = &req.builtin_tools[..] else {
            panic!("{:?}", req.builtin_tools)
        };
        assert_eq!(
            ws.web_search,
            Some(chat::WebSearchTool {
                allowed_domains: vec!["reuters.com".into()],
                user_location: Some(chat::UserLocation {
                    city: Some("London".into()),
                    country: Some("GB".into()),
                    ..Default::default()
                }),
                context_size: Some("medium".into()),
                live: true,
            })
        );
        assert!(!preview.web_search.as_ref().unwrap().live);
        assert_eq!(file.web_search, None);
        // The whole definition, for the native path and the record.
        let def: serde_json::Value = serde_json::from_str(file.definition.get()).unwrap();
        assert_eq!(
            def,
            serde_json::json!({"type": "file_search", "vector_store_ids": ["vs_1"]})
        );
        // An option the canonical model has no place for is refused
        // elsewhere by name, like any tool's.
        assert_eq!(req.unknown_fields, ["tools[1].frobnicate"]);
        let bad = br#"{"model":"m","input":"x","tools":[{"type":"web_search","filters":{"allowed_domains":[7]}}]}"#;
        assert_eq!(
            decode_request(bad).unwrap_err().field,
            "tools[0].filters.allowed_domains[0]"
        );
    }

    /// An earlier turn's search is the provider's own step: nothing of it
    /// goes to another provider, and it refuses nothing.
    #[test]
    fn an_earlier_web_search_call_decodes_to_nothing() {
        let body = br#"{"model":"m","input":[{"role":"user","content":"who won euro 2024?"},{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"euro 2024 winner","sources":[{"type":"url","url":"https://uefa.com"}]}},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Spain.","annotations":[]}]},{"role":"user","content":"and 2020?"}]}"#;
        let (req, _) = decode_request(body).unwrap();
        assert!(req.unknown_fields.is_empty(), "{:?}", req.unknown_fields);
        let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
        assert_eq!(req.messages[1].origin.message, 2);
    }
}
