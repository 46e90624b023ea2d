//! Messages requests: decode what a caller sent, encode what an Anthropic
//! upstream receives, and rewrite a caller's own bytes for the same-dialect
//! fast path.

use serde_json::value::RawValue;

use super::types::*;
use crate::chat::{
    self, DocKind, DocSource, Document, Image, Message, Origin, Part, ResponseFormat, Role,
    SystemPart, Thinking, Tool, ToolChoice, ToolResultPart, Untranslatable,
};
use crate::wire::{DecodeError, Fields, TextOrList, field, is_neutral, opt_field};

const TARGET: &str = "an Anthropic provider";

/// Decodes a `/v1/messages` body.
pub fn decode_request(body: &[u8]) -> Result<(chat::Request, Fields<'_>), DecodeError> {
    let fields = Fields::parse(body)?;
    let mut req = chat::Request::default();
    let mut saw_model = false;
    let mut saw_messages = false;
    let mut disable_parallel = None;
    for (key, raw) in &fields.0 {
        let raw: &RawValue = raw;
        match key.as_ref() {
            "model" => {
                req.model = field("model", raw)?;
                saw_model = true;
            }
            "messages" => {
                let msgs: Vec<MessageIn> = field("messages", raw)?;
                decode_messages(msgs, &mut req)?;
                saw_messages = true;
            }
            "system" => match opt_field::<SystemIn>("system", raw)? {
                None => {}
                Some(TextOrList::Text(t)) => req.system.push(SystemPart {
                    text: t,
                    cache_control: None,
                }),
                Some(TextOrList::List(blocks)) => {
                    for (i, b) in blocks.into_iter().enumerate() {
                        let at = format!("system[{i}]");
                        note_unknown(&b, &at, &mut req.unknown_fields);
                        match (b.kind.as_str(), b.text) {
                            ("text", Some(text)) => req.system.push(SystemPart {
                                text,
                                cache_control: b.cache_control,
                            }),
                            (kind, _) => {
                                return Err(DecodeError::new(
                                    format!("{at}.type"),
                                    format!("system blocks must be text, not `{kind}`"),
                                ));
                            }
                        }
                    }
                }
            },
            "max_tokens" => req.max_tokens = opt_field(key, raw)?,
            "temperature" => req.temperature = opt_field(key, raw)?,
            "top_p" => req.top_p = opt_field(key, raw)?,
            "top_k" => req.top_k = opt_field(key, raw)?,
            "stop_sequences" => req.stop = opt_field(key, raw)?.unwrap_or_default(),
            "stream" => req.stream = opt_field(key, raw)?.unwrap_or(false),
            "metadata" => {
                if let Some(m) = opt_field::<MetadataIn>("metadata", raw)? {
                    req.user = m.user_id;
                    for k in m.unknown.0 {
                        req.unknown_fields.push(format!("metadata.{k}"));
                    }
                }
            }
            "tools" => {
                for (i, t) in opt_field::<Vec<ToolIn>>("tools", raw)?
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                {
                    for k in t.unknown.0 {
                        req.unknown_fields.push(format!("tools[{i}].{k}"));
                    }
                    match t.kind.as_deref() {
                        None | Some("custom") => {}
                        // Server tools (web search, code execution, bash...)
                        // exist only at Anthropic.
                        Some(_) => {
                            req.unknown_fields.push(format!("tools[{i}].type"));
                            continue;
                        }
                    }
                    req.tools.push(Tool {
                        name: t.name,
                        description: t.description,
                        parameters: t.input_schema,
                        strict: t.strict,
                        cache_control: t.cache_control,
                        origin: Default::default(),
                    });
                }
            }
            "tool_choice" => {
                if let Some(tc) = opt_field::<ToolChoiceIn>("tool_choice", raw)? {
                    disable_parallel = tc.disable_parallel_tool_use;
                    req.tool_choice = Some(match tc.kind.as_str() {
                        "auto" => ToolChoice::Auto,
                        "any" => ToolChoice::Required,
                        "none" => ToolChoice::None,
                        "tool" => match tc.name {
                            Some(n) => ToolChoice::Named(n),
                            None => return Err(DecodeError::missing("tool_choice.name")),
                        },
                        other => {
                            return Err(DecodeError::new(
                                "tool_choice.type",
                                format!(
                                    "unknown tool_choice type `{other}`: expected auto, any, tool or none"
                                ),
                            ));
                        }
                    });
                }
            }
            "thinking" => {
                if let Some(t) = opt_field::<ThinkingIn>("thinking", raw)? {
                    match t.kind.as_str() {
                        "enabled" => {
                            let Some(budget_tokens) = t.budget_tokens else {
                                return Err(DecodeError::missing("thinking.budget_tokens"));
                            };
                            req.thinking = Some(Thinking { budget_tokens });
                        }
                        "disabled" => {}
                        _ => req.unknown_fields.push("thinking.type".into()),
                    }
                }
            }
            "output_config" => {
                if let Some(oc) = opt_field::<OutputConfigIn>("output_config", raw)? {
                    for k in oc.unknown.0 {
                        req.unknown_fields.push(format!("output_config.{k}"));
                    }
                    req.reasoning_effort = oc.effort;
                    if let Some(f) = oc.format {
                        if f.kind != "json_schema" {
                            return Err(DecodeError::new(
                                "output_config.format.type",
                                format!("unknown output format `{}`: expected json_schema", f.kind),
                            ));
                        }
                        let Some(schema) = f.schema else {
                            return Err(DecodeError::missing("output_config.format.schema"));
                        };
                        req.response_format = Some(ResponseFormat::JsonSchema {
                            name: "response".into(),
                            schema,
                            strict: Some(true),
                        });
                    }
                }
            }
            other => {
                if !is_neutral(raw) {
                    req.unknown_fields.push(other.to_owned());
                }
            }
        }
    }
    crate::wire::check_model(saw_model.then_some(req.model.as_str()))?;
    if !saw_messages {
        return Err(DecodeError::missing("messages"));
    }
    if req.messages.is_empty() {
        return Err(DecodeError::new("messages", "`messages` must not be empty"));
    }
    if disable_parallel == Some(true) {
        req.parallel_tool_calls = Some(false);
    }
    // Anthropic streams always carry usage; its callers expect to see it.
    req.include_usage = req.stream;
    Ok((req, fields))
}

fn note_unknown(b: &BlockIn, at: &str, unknown: &mut Vec<String>) {
    for k in &b.unknown.0 {
        unknown.push(format!("{at}.{k}"));
    }
    if b.citations
        .as_deref()
        .is_some_and(|c| !is_neutral(c) && !citations_off(c))
    {
        unknown.push(format!("{at}.citations"));
    }
}

/// A document's `citations: {"enabled": false}`: the default, nothing to carry.
fn citations_off(raw: &RawValue) -> bool {
    serde_json::from_str::<serde_json::Value>(raw.get())
        .is_ok_and(|v| v == serde_json::json!({"enabled": false}))
}

fn decode_messages(msgs: Vec<MessageIn>, req: &mut chat::Request) -> Result<(), DecodeError> {
    for (i, m) in msgs.into_iter().enumerate() {
        for k in &m.unknown.0 {
            req.unknown_fields.push(format!("messages[{i}].{k}"));
        }
        let role = match m.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(DecodeError::new(
                    format!("messages[{i}].role"),
                    format!("unsupported role `{other}`: expected user or assistant"),
                ));
            }
        };
        let blocks = match m.content {
            TextOrList::Text(t) => {
                req.messages.push(Message::new(
                    role,
                    vec![Part::Text {
                        text: t,
                        cache_control: None,
                    }],
                    i,
                ));
                continue;
            }
            TextOrList::List(b) => b,
        };
        // Parts gathered for the current message, with each one's index in
        // the caller's content list.
        let mut parts = Vec::with_capacity(blocks.len());
        let mut origins = Vec::with_capacity(blocks.len());
        for (j, b) in blocks.into_iter().enumerate() {
            let at = format!("messages[{i}].content[{j}]");
            note_unknown(&b, &at, &mut req.unknown_fields);
            let part = match (role, b.kind.as_str()) {
                (_, "text") => {
                    let Some(text) = b.text else {
                        return Err(DecodeError::missing(&format!("{at}.text")));
                    };
                    Part::Text {
                        text,
                        cache_control: b.cache_control,
                    }
                }
                (Role::User, "image") => {
                    match decode_image(b.source, &at, &mut req.unknown_fields)? {
                        Some(img) => Part::Image(img),
                        None => continue,
                    }
                }
                (Role::User, "document") => {
                    match decode_document(b.source, &at, &mut req.unknown_fields)? {
                        Some(doc) => Part::Document(doc),
                        None => continue,
                    }
                }
                (Role::User, "tool_result") => {
                    let Some(tool_call_id) = b.tool_use_id else {
                        return Err(DecodeError::missing(&format!("{at}.tool_use_id")));
                    };
                    let content = decode_tool_result(b.content, &at, &mut req.unknown_fields)?;
                    // Results leave the user turn as their own Tool message,
                    // keeping their place in the conversation.
                    flush(req, role, i, &mut parts, &mut origins);
                    req.messages.push(Message {
                        role: Role::Tool,
                        parts: vec![Part::ToolResult {
                            tool_call_id,
                            content,
                            is_error: b.is_error.unwrap_or(false),
                        }],
                        origin: Origin {
                            message: i,
                            parts: vec![j],
                        },
                    });
                    continue;
                }
                (Role::Assistant, "tool_use") => {
                    let (Some(id), Some(name)) = (b.id, b.name) else {
                        return Err(DecodeError::missing(&format!("{at}.id")));
                    };
                    let arguments = b
                        .input
                        .map(|r| r.get().to_owned())
                        .unwrap_or_else(|| "{}".into());
                    Part::ToolCall {
                        id,
                        name,
                        arguments,
                    }
                }
                (Role::Assistant, "thinking") => Part::Thinking {
                    text: b.thinking.unwrap_or_default(),
                    // An empty signature is no signature: nothing can verify it.
                    signature: b.signature.filter(|s| !s.is_empty()),
                },
                (Role::Assistant, "redacted_thinking") => Part::RedactedThinking {
                    data: b.data.unwrap_or_default(),
                },
                (_, other) => {
                    // search results, server tool blocks...: a same-dialect
                    // call forwards them, others refuse.
                    req.unknown_fields.push(format!("{at} (type {other})"));
                    continue;
                }
            };
            parts.push(part);
            origins.push(j);
        }
        flush(req, role, i, &mut parts, &mut origins);
    }
    Ok(())
}

/// Pushes the parts gathered so far as one message of `role`.
fn flush(
    req: &mut chat::Request,
    role: Role,
    i: usize,
    parts: &mut Vec<Part>,
    origins: &mut Vec<usize>,
) {
    if !parts.is_empty() {
        req.messages.push(Message {
            role,
            parts: std::mem::take(parts),
            origin: Origin {
                message: i,
                parts: std::mem::take(origins),
            },
        });
    }
}

/// An image block's source. Sources other than base64 and URL (Files API
/// `file` ids...) pass through same-dialect and are refused elsewhere.
fn decode_image(
    source: Option<SourceIn>,
    at: &str,
    unknown: &mut Vec<String>,
) -> Result<Option<Image>, DecodeError> {
    let Some(s) = source else {
        return Err(DecodeError::missing(&format!("{at}.source")));
    };
    match s.kind.as_str() {
        "base64" => match (s.media_type, s.data) {
            (Some(media_type), Some(data)) => Ok(Some(Image::Base64 { media_type, data })),
            _ => Err(DecodeError::missing(&format!("{at}.source.data"))),
        },
        "url" => match s.url {
            Some(url) => Ok(Some(Image::Url(url))),
            None => Err(DecodeError::missing(&format!("{at}.source.url"))),
        },
        _ => {
            unknown.push(format!("{at}.source.type"));
            Ok(None)
        }
    }
}

/// A document block's source: a base64 PDF, a PDF by URL (the only type
/// Anthropic fetches by URL), or plain text. Files API (`file`) and
/// custom-content (`content`) sources pass through same-dialect and are
/// refused elsewhere; so are the block's `title` and `context`, which
/// [`note_unknown`] names with its other unknown members.
fn decode_document(
    source: Option<SourceIn>,
    at: &str,
    unknown: &mut Vec<String>,
) -> Result<Option<Document>, DecodeError> {
    let Some(s) = source else {
        return Err(DecodeError::missing(&format!("{at}.source")));
    };
    let (source, media_type) = match s.kind.as_str() {
        "base64" => match (s.media_type, s.data) {
            (Some(media_type), Some(data)) => (DocSource::Base64(data), media_type),
            _ => return Err(DecodeError::missing(&format!("{at}.source.data"))),
        },
        "url" => match s.url {
            Some(url) => (DocSource::Url(url), "application/pdf".to_owned()),
            None => return Err(DecodeError::missing(&format!("{at}.source.url"))),
        },
        "text" => match s.data {
            Some(text) => (
                DocSource::Text(text),
                s.media_type.unwrap_or_else(|| "text/plain".into()),
            ),
            None => return Err(DecodeError::missing(&format!("{at}.source.data"))),
        },
        _ => {
            unknown.push(format!("{at}.source.type"));
            return Ok(None);
        }
    };
    Ok(Some(Document {
        source,
        media_type: Some(media_type),
        filename: None,
    }))
}

fn decode_tool_result(
    content: Option<ContentIn>,
    at: &str,
    unknown: &mut Vec<String>,
) -> Result<Vec<ToolResultPart>, DecodeError> {
    match content {
        None => Ok(Vec::new()),
        Some(TextOrList::Text(t)) => Ok(vec![ToolResultPart::Text(t)]),
        Some(TextOrList::List(blocks)) => {
            let mut out = Vec::with_capacity(blocks.len());
            for (k, b) in blocks.into_iter().enumerate() {
                let at = format!("{at}.content[{k}]");
                note_unknown(&b, &at, unknown);
                match b.kind.as_str() {
                    "text" => out.push(ToolResultPart::Text(b.text.unwrap_or_default())),
                    "image" => {
                        if let Some(img) = decode_image(b.source, &at, unknown)? {
                            out.push(ToolResultPart::Image(img));
                        }
                    }
                    "document" => {
                        if let Some(doc) = decode_document(b.source, &at, unknown)? {
                            out.push(ToolResultPart::Document(doc));
                        }
                    }
                    other => unknown.push(format!("{at} (type {other})")),
                }
            }
            Ok(out)
        }
    }
}

/// A tool id as Messages accepts it (`^[a-zA-Z0-9_-]+$`): as it is when
/// it fits (a Gemini thought signature packed in taken out: it means
/// nothing here), else a stand-in made from it, the same for a call and
/// its result, so ids other clients make (`fc.1`, `call:7`) round-trip.
fn tool_id(id: &str) -> std::borrow::Cow<'_, str> {
    use sha2::Digest;
    let id = crate::wire::gemini::split_signature(id).0;
    let fits = !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if fits {
        return std::borrow::Cow::Borrowed(id);
    }
    let digest = sha2::Sha256::digest(id.as_bytes());
    std::borrow::Cow::Owned(format!("toolu_sy{}", &crate::keys::hex(&digest)[..32]))
}

/// Encodes a canonical request for an Anthropic upstream (the cross-dialect
/// path). `default_max_tokens` fills the required `max_tokens`.
pub fn encode_request(
    req: &chat::Request,
    upstream_model: &str,
    default_max_tokens: u32,
) -> Result<Vec<u8>, Untranslatable> {
    if let Some(f) = req.unknown_fields.first() {
        return Err(Untranslatable::new(
            f.clone(),
            TARGET,
            "the field has no equivalent there",
        ));
    }
    let web_search = web_search_tool(req)?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(Untranslatable::new(
            "n",
            TARGET,
            "Messages returns one answer per call",
        ));
    }
    if req.seed.is_some() {
        return Err(Untranslatable::new("seed", TARGET, "Messages has no seed"));
    }
    if req.presence_penalty.is_some_and(|p| p != 0.0) {
        return Err(Untranslatable::new(
            "presence_penalty",
            TARGET,
            "Messages has no presence penalty",
        ));
    }
    if req.temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err(Untranslatable::new(
            "temperature",
            TARGET,
            "Messages takes a temperature from 0 to 1",
        ));
    }
    if req.stop.iter().any(|s| s.trim().is_empty()) {
        return Err(Untranslatable::new(
            "stop",
            TARGET,
            "Messages refuses stop sequences made only of whitespace",
        ));
    }
    if req.frequency_penalty.is_some_and(|p| p != 0.0) {
        return Err(Untranslatable::new(
            "frequency_penalty",
            TARGET,
            "Messages has no frequency penalty",
        ));
    }
    let mut output_config = None;
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            return Err(Untranslatable::new(
                "response_format",
                TARGET,
                "Messages has no schemaless JSON mode; send a json_schema response_format",
            ));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            output_config = Some(OutputConfigOut {
                format: Some(OutputFormatOut {
                    kind: "json_schema",
                    schema,
                }),
                effort: None,
            });
        }
    }
    if let Some(effort) = req.reasoning_effort.as_deref() {
        if !matches!(effort, "low" | "medium" | "high") {
            return Err(Untranslatable::new(
                "reasoning_effort",
                TARGET,
                format!("effort `{effort}` has no equivalent; use low, medium or high"),
            ));
        }
        output_config.get_or_insert(OutputConfigOut {
            format: None,
            effort: None,
        });
        if let Some(oc) = output_config.as_mut() {
            oc.effort = Some(effort);
        }
    }

    let system = req
        .system
        .iter()
        .map(|s| TextBlockOut {
            kind: "text",
            text: &s.text,
            cache_control: s.cache_control.as_deref(),
        })
        .collect();
    let messages = encode_messages(req)?;
    let mut tools = Vec::with_capacity(req.tools.len() + 1);
    for t in &req.tools {
        tools.push(AnyToolOut::Custom(ToolOut {
            name: &t.name,
            description: t.description.as_deref(),
            input_schema: t.parameters.as_deref().unwrap_or(empty_schema()),
            strict: t.strict,
            cache_control: t.cache_control.as_deref(),
        }));
    }
    tools.extend(web_search.map(AnyToolOut::WebSearch));
    let disable_parallel = (req.parallel_tool_calls == Some(false)).then_some(true);
    let tool_choice = match &req.tool_choice {
        None if disable_parallel.is_some() && !req.tools.is_empty() => Some(ToolChoiceOut {
            kind: "auto",
            name: None,
            disable_parallel_tool_use: disable_parallel,
        }),
        None => None,
        Some(ToolChoice::Auto) => Some(ToolChoiceOut {
            kind: "auto",
            name: None,
            disable_parallel_tool_use: disable_parallel,
        }),
        Some(ToolChoice::Required) => Some(ToolChoiceOut {
            kind: "any",
            name: None,
            disable_parallel_tool_use: disable_parallel,
        }),
        Some(ToolChoice::None) => Some(ToolChoiceOut {
            kind: "none",
            name: None,
            disable_parallel_tool_use: None,
        }),
        Some(ToolChoice::Named(n)) => Some(ToolChoiceOut {
            kind: "tool",
            name: Some(n),
            disable_parallel_tool_use: disable_parallel,
        }),
    };
    let out = RequestOut {
        model: upstream_model,
        max_tokens: req.max_tokens.unwrap_or(default_max_tokens),
        system,
        messages,
        tools,
        tool_choice,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        stop_sequences: (!req.stop.is_empty()).then_some(req.stop.as_slice()),
        metadata: req.user.as_deref().map(|user_id| MetadataOut { user_id }),
        thinking: req.thinking.map(|t| ThinkingOut {
            kind: "enabled",
            budget_tokens: t.budget_tokens,
        }),
        output_config,
        stream: req.stream,
    };
    Ok(crate::wire::to_vec(&out))
}

/// The caller's built-in tools as Messages server tools: a web search
/// becomes Anthropic's web search tool; any other is refused by name.
fn web_search_tool(req: &chat::Request) -> Result<Option<WebSearchToolOut<'_>>, Untranslatable> {
    let mut out = None;
    for b in &req.builtin_tools {
        let ws = b.live_web_search(TARGET)?;
        if out.is_some() {
            return Err(Untranslatable::new(
                b.path.clone(),
                TARGET,
                "Messages takes one web search tool per request",
            ));
        }
        // Messages refuses two tools of one name.
        if req.tools.iter().any(|t| t.name == "web_search") {
            return Err(Untranslatable::new(
                b.path.clone(),
                TARGET,
                "a function tool is named `web_search` too, the name Anthropic's search tool takes",
            ));
        }
        out = Some(WebSearchToolOut {
            kind: "web_search_20250305",
            name: "web_search",
            allowed_domains: &ws.allowed_domains,
            user_location: ws.user_location.as_ref().map(|l| UserLocationOut {
                kind: "approximate",
                city: l.city.as_deref(),
                region: l.region.as_deref(),
                country: l.country.as_deref(),
                timezone: l.timezone.as_deref(),
            }),
        });
    }
    Ok(out)
}

fn empty_schema() -> &'static RawValue {
    static EMPTY: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| {
        crate::wire::to_raw(&serde_json::json!({"type": "object", "properties": {}}))
    })
}

fn encode_messages(req: &chat::Request) -> Result<Vec<MessageOut<'_>>, Untranslatable> {
    let mut out: Vec<MessageOut<'_>> = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let role = match m.role {
            Role::System => {
                return Err(Untranslatable::new(
                    format!("{}.role", m.path()),
                    TARGET,
                    "system text must come before the conversation; Messages has no system turns",
                ));
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        let mut blocks = Vec::with_capacity(m.parts.len());
        for (j, p) in m.parts.iter().enumerate() {
            match p {
                Part::Text {
                    text,
                    cache_control,
                } => {
                    // Empty text blocks are refused by Messages.
                    if !text.is_empty() {
                        blocks.push(BlockOut::Text {
                            text,
                            cache_control: cache_control.as_deref(),
                        });
                    }
                }
                Part::Image(img) => blocks.push(BlockOut::Image {
                    source: image_source(img),
                }),
                Part::Document(doc) => blocks.push(document_block(doc, || m.part_path(j))?),
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                } => blocks.push(BlockOut::ToolUse {
                    id: tool_id(id),
                    name,
                    input: tool_input(arguments).ok_or_else(|| {
                        Untranslatable::new(
                            m.part_path(j),
                            TARGET,
                            "tool call arguments must be a JSON object",
                        )
                    })?,
                }),
                Part::ToolResult {
                    tool_call_id,
                    content,
                    is_error,
                } => {
                    let mut out = Vec::with_capacity(content.len());
                    for c in content {
                        match c {
                            // Empty text blocks are refused; an empty
                            // result is simply a result without content.
                            ToolResultPart::Text(t) if t.is_empty() => {}
                            ToolResultPart::Text(t) => out.push(BlockOut::Text {
                                text: t,
                                cache_control: None,
                            }),
                            ToolResultPart::Image(img) => out.push(BlockOut::Image {
                                source: image_source(img),
                            }),
                            ToolResultPart::Document(doc) => out.push(document_block(doc, || {
                                format!("{}.content", m.part_path(j))
                            })?),
                        }
                    }
                    blocks.push(BlockOut::ToolResult {
                        tool_use_id: tool_id(tool_call_id),
                        content: out,
                        is_error: *is_error,
                    });
                }
                // Unsigned reasoning came from another provider; Messages
                // rejects thinking blocks without a signature.
                Part::Thinking { text, signature } => {
                    if let Some(sig) = signature {
                        blocks.push(BlockOut::Thinking {
                            thinking: text,
                            signature: sig,
                        });
                    }
                }
                Part::RedactedThinking { data } => blocks.push(BlockOut::RedactedThinking { data }),
                // No decoder puts a provider's search into a request.
                Part::WebSearch(_) => {}
            }
        }
        if blocks.is_empty() {
            continue;
        }
        // Consecutive turns of one role merge: tool results and the user
        // text after them form one user turn, results first.
        match out.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => out.push(MessageOut {
                role,
                content: blocks,
            }),
        }
    }
    Ok(out)
}

fn image_source(img: &Image) -> ImageSourceOut<'_> {
    match img {
        Image::Url(url) => ImageSourceOut::Url { url },
        Image::Base64 { media_type, data } => ImageSourceOut::Base64 { media_type, data },
    }
}

/// A document as a Messages `document` block: Anthropic reads PDFs (base64
/// or by URL) and plain text. Text given in base64 (an OpenAI `text/*`
/// file) goes as text, which is what it is; any other type is refused by
/// name. A URL of no known type goes as a PDF URL: Anthropic fetches it and
/// refuses it if it is not one. The file name becomes the block's `title`,
/// the label Messages shows the model beside the document.
fn document_block(doc: &Document, at: impl Fn() -> String) -> Result<BlockOut<'_>, Untranslatable> {
    let title = doc.filename.as_deref().filter(|n| !n.is_empty());
    let refuse = |reason: String| Err(Untranslatable::new(at(), TARGET, reason));
    let media_type = || doc.media_type().unwrap_or_default();
    let source = match (&doc.source, doc.kind()) {
        (DocSource::Text(text), _) => DocSourceOut::Text {
            media_type: "text/plain",
            data: std::borrow::Cow::Borrowed(text),
        },
        (DocSource::Url(url), Some(DocKind::Pdf) | None) => DocSourceOut::Url { url },
        (DocSource::Url(_), Some(_)) => {
            return refuse(format!(
                "Messages fetches only PDFs by URL, and this is `{}`; send it inline",
                media_type()
            ));
        }
        (DocSource::Base64(data), Some(DocKind::Pdf)) => DocSourceOut::Base64 {
            media_type: "application/pdf",
            data,
        },
        (DocSource::Base64(_), Some(DocKind::Text)) => match doc.text() {
            Some(text) => DocSourceOut::Text {
                media_type: "text/plain",
                data: text,
            },
            None => return refuse("the text document is not UTF-8 text in base64".into()),
        },
        (DocSource::Base64(_), Some(DocKind::Other)) => {
            return refuse(format!(
                "Messages reads PDF and plain-text documents, not `{}`",
                media_type()
            ));
        }
        (DocSource::Base64(_), None) => {
            return refuse(
                "the document's media type is unknown (no `data:` URL, no known extension in its name); Messages reads PDF and plain text".into(),
            );
        }
    };
    Ok(BlockOut::Document { source, title })
}

/// Tool-call arguments (JSON text) as a tool_use `input` object.
pub fn tool_input(arguments: &str) -> Option<Box<RawValue>> {
    if arguments.trim().is_empty() {
        return RawValue::from_string("{}".to_owned()).ok();
    }
    let raw: Box<RawValue> = serde_json::from_str(arguments).ok()?;
    raw.get().trim_start().starts_with('{').then_some(raw)
}

/// The same-dialect fast path: the caller's own fields with `model` set to
/// the upstream's name for it. Anthropic streams always carry usage.
pub fn rewrite_request(fields: &Fields<'_>, upstream_model: &str) -> Vec<u8> {
    let len: usize = fields
        .0
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum();
    let mut out = Vec::with_capacity(len + upstream_model.len() + 16);
    out.push(b'{');
    for (n, (key, raw)) in fields.0.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, key.as_ref());
        out.push(b':');
        if key == "model" {
            let _ = serde_json::to_writer(&mut out, upstream_model);
        } else {
            out.extend_from_slice(raw.get().as_bytes());
        }
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raw JSON (tool inputs, cache_control) inside content blocks must
    /// survive decoding; serde's untagged buffering would lose it.
    #[test]
    fn tool_ids_anthropic_refuses_get_a_stable_stand_in() {
        assert_eq!(tool_id("call_abc-1"), "call_abc-1");
        let a = tool_id("fc.1:x");
        assert!(a.starts_with("toolu_sy") && a.len() == 40, "{a}");
        assert_eq!(a, tool_id("fc.1:x"));
        assert_ne!(a, tool_id("fc.1:y"));
        assert!(tool_id("").starts_with("toolu_sy"));
    }

    #[test]
    fn raw_values_inside_blocks_decode() {
        let b = br#"{"model":"a/b","max_tokens":5,"tools":[{"name":"n","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":[{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"n","input":{"city":"Paris"}}]}]}"#;
        let (r, _) = decode_request(b).unwrap();
        assert_eq!(
            r.messages[1].parts[0],
            Part::ToolCall {
                id: "t".into(),
                name: "n".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            }
        );
        assert!(r.unknown_fields.is_empty());
        assert_eq!(
            r.tools[0].parameters.as_ref().unwrap().get(),
            r#"{"type":"object"}"#
        );
    }

    #[test]
    fn tool_results_leave_the_user_turn_in_order() {
        let b = br#"{"model":"a/b","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r1"},{"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"r2"}],"is_error":true},{"type":"text","text":"and?"}]}]}"#;
        let (r, _) = decode_request(b).unwrap();
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::Tool, Role::Tool, Role::User]);
        // Encoding back merges them into one user turn, results first.
        let out: serde_json::Value =
            serde_json::from_slice(&encode_request(&r, "m", 10).unwrap()).unwrap();
        let content = out["messages"][0]["content"].as_array().unwrap();
        assert_eq!(out["messages"].as_array().unwrap().len(), 1);
        assert_eq!(content[0]["type"], "tool_result");
        assert_eq!(content[1]["is_error"], true);
        assert_eq!(content[2]["text"], "and?");
    }

    fn responses(tools: &str) -> chat::Request {
        let body = format!(r#"{{"model":"m","input":"news","tools":{tools}}}"#);
        crate::wire::responses::decode_request(body.as_bytes())
            .unwrap()
            .0
    }

    #[test]
    fn a_web_search_becomes_the_web_search_server_tool() {
        let r = responses(
            r#"[{"type":"function","name":"f","parameters":{"type":"object"}},{"type":"web_search","filters":{"allowed_domains":["reuters.com"]},"user_location":{"type":"approximate","city":"London","country":"GB"},"search_context_size":"medium"}]"#,
        );
        let out: serde_json::Value =
            serde_json::from_slice(&encode_request(&r, "m", 10).unwrap()).unwrap();
        assert_eq!(
            out["tools"][1],
            serde_json::json!({
                "type": "web_search_20250305",
                "name": "web_search",
                "allowed_domains": ["reuters.com"],
                "user_location": {"type": "approximate", "city": "London", "country": "GB"},
            })
        );
        assert_eq!(out["tools"][0]["name"], "f");
        let bare = responses(r#"[{"type":"web_search_preview"}]"#);
        let out: serde_json::Value =
            serde_json::from_slice(&encode_request(&bare, "m", 10).unwrap()).unwrap();
        assert_eq!(
            out["tools"],
            serde_json::json!([{"type": "web_search_20250305", "name": "web_search"}])
        );
    }

    #[test]
    fn what_anthropics_search_cannot_do_is_refused_by_name() {
        let refused = |tools: &str| {
            let e = encode_request(&responses(tools), "m", 10).unwrap_err();
            (e.field, e.reason)
        };
        let (field, reason) = refused(r#"[{"type":"web_search","external_web_access":false}]"#);
        assert_eq!(field, "tools[0].external_web_access");
        assert!(reason.contains("cached results only"), "{reason}");
        assert_eq!(
            refused(r#"[{"type":"web_search","search_context_size":"high"}]"#).0,
            "tools[0].search_context_size"
        );
        assert_eq!(
            refused(r#"[{"type":"web_search"},{"type":"web_search_preview"}]"#).0,
            "tools[1]"
        );
        assert_eq!(
            refused(r#"[{"type":"function","name":"web_search"},{"type":"web_search"}]"#).0,
            "tools[1]"
        );
        assert_eq!(
            refused(r#"[{"type":"code_interpreter","container":{"type":"auto"}}]"#).0,
            "tools[0]"
        );
    }

    fn user_blocks(blocks: &str) -> chat::Request {
        let body = format!(
            r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":{blocks}}}]}}"#
        );
        decode_request(body.as_bytes()).unwrap().0
    }

    fn docs(r: &chat::Request) -> Vec<&Document> {
        r.messages
            .iter()
            .flat_map(|m| &m.parts)
            .filter_map(|p| match p {
                Part::Document(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    /// The three document sources of Anthropic's PDF support and
    /// citations pages: base64 PDF, PDF by URL, plain text.
    #[test]
    fn document_blocks_decode_by_source() {
        let r = user_blocks(
            r#"[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}},
                {"type":"document","source":{"type":"url","url":"https://x.example/a.pdf"},"citations":{"enabled":false}},
                {"type":"document","source":{"type":"text","media_type":"text/plain","data":"The grass is green."}},
                {"type":"text","text":"compare"}]"#,
        );
        assert!(r.unknown_fields.is_empty(), "{:?}", r.unknown_fields);
        let pdf = |source| Document {
            source,
            media_type: Some("application/pdf".into()),
            filename: None,
        };
        assert_eq!(
            docs(&r),
            [
                &pdf(DocSource::Base64("JVBE".into())),
                &pdf(DocSource::Url("https://x.example/a.pdf".into())),
                &Document {
                    source: DocSource::Text("The grass is green.".into()),
                    media_type: Some("text/plain".into()),
                    filename: None,
                },
            ]
        );
        // Encoding back gives the same blocks.
        let out: serde_json::Value =
            serde_json::from_slice(&encode_request(&r, "m", 10).unwrap()).unwrap();
        let content = &out["messages"][0]["content"];
        assert_eq!(
            content[0],
            serde_json::json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}})
        );
        assert_eq!(
            content[1],
            serde_json::json!({"type": "document", "source": {"type": "url", "url": "https://x.example/a.pdf"}})
        );
        assert_eq!(
            content[2],
            serde_json::json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "The grass is green."}})
        );
    }

    #[test]
    fn what_a_document_block_says_beyond_the_file_is_named() {
        let r = user_blocks(
            r#"[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"},"title":"T","context":"C","citations":{"enabled":true}},
                {"type":"document","source":{"type":"file","file_id":"file_1"}},
                {"type":"document","source":{"type":"content","content":[{"type":"text","text":"a"}]}}]"#,
        );
        assert_eq!(
            r.unknown_fields,
            [
                "messages[0].content[0].title",
                "messages[0].content[0].context",
                "messages[0].content[0].citations",
                "messages[0].content[1].source.type",
                "messages[0].content[2].source.type",
            ]
        );
        assert_eq!(docs(&r).len(), 1);
    }

    #[test]
    fn a_document_in_a_tool_result_goes_both_ways() {
        let r = user_blocks(
            r#"[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"found"},{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}}]}]"#,
        );
        let Part::ToolResult { content, .. } = &r.messages[0].parts[0] else {
            panic!("{:?}", r.messages)
        };
        assert!(matches!(content[1], ToolResultPart::Document(_)));
        let out: serde_json::Value =
            serde_json::from_slice(&encode_request(&r, "m", 10).unwrap()).unwrap();
        assert_eq!(
            out["messages"][0]["content"][0]["content"][1]["source"]["media_type"],
            "application/pdf"
        );
    }

    fn encode_doc(doc: Document) -> Result<serde_json::Value, Untranslatable> {
        let r = chat::Request {
            model: "m".into(),
            messages: vec![Message::new(Role::User, vec![Part::Document(doc)], 0)],
            ..Default::default()
        };
        encode_request(&r, "m", 10)
            .map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap())
            .map(|v| v["messages"][0]["content"][0].clone())
    }

    /// Anthropic reads PDF and plain text: an OpenAI text file goes as
    /// text, with its name as the title; a .docx is refused, saying why.
    #[test]
    fn other_dialects_documents_become_blocks_or_are_refused_by_name() {
        let block = encode_doc(Document {
            source: DocSource::Base64("aGk=".into()),
            media_type: Some("text/markdown".into()),
            filename: Some("notes.md".into()),
        })
        .unwrap();
        assert_eq!(
            block,
            serde_json::json!({"type": "document", "title": "notes.md", "source": {"type": "text", "media_type": "text/plain", "data": "hi"}})
        );
        // A Responses file_url of unknown type: Anthropic fetches it as a PDF.
        let block = encode_doc(Document {
            source: DocSource::Url("https://x.example/get?id=1".into()),
            media_type: None,
            filename: None,
        })
        .unwrap();
        assert_eq!(block["source"]["type"], "url");
        let e = encode_doc(Document {
            source: DocSource::Base64("UEsDBA==".into()),
            media_type: Some(
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document".into(),
            ),
            filename: Some("c.docx".into()),
        })
        .unwrap_err();
        assert_eq!(e.field, "messages[0].content[0]");
        assert!(e.reason.contains("PDF and plain-text"), "{}", e.reason);
        let e = encode_doc(Document {
            source: DocSource::Url("https://x.example/notes.txt".into()),
            media_type: None,
            filename: None,
        })
        .unwrap_err();
        assert!(e.reason.contains("only PDFs by URL"), "{}", e.reason);
        let e = encode_doc(Document {
            source: DocSource::Base64("/w==".into()),
            media_type: Some("text/plain".into()),
            filename: None,
        })
        .unwrap_err();
        assert!(e.reason.contains("not UTF-8"), "{}", e.reason);
        let e = encode_doc(Document {
            source: DocSource::Base64("AAAA".into()),
            media_type: None,
            filename: None,
        })
        .unwrap_err();
        assert!(e.reason.contains("unknown"), "{}", e.reason);
    }

    #[test]
    fn what_messages_cannot_say_is_refused_by_name() {
        let mut r = chat::Request {
            model: "m".into(),
            seed: Some(7),
            ..Default::default()
        };
        assert_eq!(encode_request(&r, "m", 10).unwrap_err().field, "seed");
        r.seed = None;
        r.response_format = Some(ResponseFormat::JsonObject);
        assert_eq!(
            encode_request(&r, "m", 10).unwrap_err().field,
            "response_format"
        );
        r.response_format = None;
        r.unknown_fields.push("logprobs".into());
        assert_eq!(encode_request(&r, "m", 10).unwrap_err().field, "logprobs");
    }
}
