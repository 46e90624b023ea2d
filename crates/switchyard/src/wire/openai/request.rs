//! Chat Completions requests: decode what a caller sent, encode what an
//! OpenAI-dialect upstream receives, and rewrite a caller's own bytes for the
//! same-dialect fast path.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::types::*;
use crate::chat::{
    self, DocSource, Document, Image, Message, Part, ResponseFormat, Role, SystemPart, Tool,
    ToolChoice, ToolResultPart, Untranslatable,
};
use crate::wire::{DecodeError, Fields, TextOrList, field, is_neutral, opt_field};

const TARGET: &str = "an OpenAI-dialect provider";

/// Decodes a `/v1/chat/completions` body. The returned [`Fields`] borrow the
/// body so a same-dialect call can forward it with [`rewrite_request`].
pub fn decode_request(body: &[u8]) -> Result<(chat::Request, Fields<'_>), DecodeError> {
    let fields = Fields::parse(body)?;
    let mut req = chat::Request::default();
    let mut saw_model = false;
    let mut saw_messages = false;
    let mut max_tokens = None;
    let mut max_completion_tokens = None;
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
            "tools" => {
                if let Some(tools) = opt_field::<Vec<ToolIn>>("tools", raw)? {
                    decode_tools(tools, &mut req)?;
                }
            }
            "tool_choice" => {
                if let Some(tc) = opt_field::<ToolChoiceIn>("tool_choice", raw)? {
                    req.tool_choice = Some(decode_tool_choice(tc)?);
                }
            }
            "parallel_tool_calls" => req.parallel_tool_calls = opt_field(key, raw)?,
            "response_format" => {
                if let Some(rf) = opt_field::<ResponseFormatIn>("response_format", raw)? {
                    req.response_format = Some(decode_response_format(rf)?);
                }
            }
            "max_tokens" => max_tokens = opt_field(key, raw)?,
            "max_completion_tokens" => max_completion_tokens = opt_field(key, raw)?,
            "temperature" => req.temperature = opt_field(key, raw)?,
            "top_p" => req.top_p = opt_field(key, raw)?,
            "stop" => {
                req.stop = match opt_field::<StopIn>("stop", raw)? {
                    None => Vec::new(),
                    Some(StopIn::One(s)) => vec![s],
                    Some(StopIn::Many(v)) => v,
                }
            }
            "seed" => req.seed = opt_field(key, raw)?,
            "n" => req.n = opt_field(key, raw)?,
            "presence_penalty" => req.presence_penalty = opt_field(key, raw)?,
            "frequency_penalty" => req.frequency_penalty = opt_field(key, raw)?,
            "user" => req.user = opt_field(key, raw)?,
            "reasoning_effort" => req.reasoning_effort = opt_field(key, raw)?,
            "stream" => req.stream = opt_field(key, raw)?.unwrap_or(false),
            "stream_options" => {
                if let Some(so) = opt_field::<StreamOptionsIn>("stream_options", raw)? {
                    req.include_usage = so.include_usage.unwrap_or(false);
                    // `include_obfuscation` only pads chunks; nothing to carry.
                    for k in so.unknown.0 {
                        if k != "include_obfuscation" {
                            req.unknown_fields.push(format!("stream_options.{k}"));
                        }
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
    if req.messages.is_empty() && req.system.is_empty() {
        return Err(DecodeError::new("messages", "`messages` must not be empty"));
    }
    req.max_tokens = max_completion_tokens.or(max_tokens);
    if !req.stream {
        req.include_usage = false;
    }
    Ok((req, fields))
}

fn decode_messages(msgs: Vec<MessageIn>, req: &mut chat::Request) -> Result<(), DecodeError> {
    for (i, m) in msgs.into_iter().enumerate() {
        let at = |f: &str| format!("messages[{i}].{f}");
        for k in &m.unknown.0 {
            req.unknown_fields.push(at(k));
        }
        if m.name.is_some() {
            req.unknown_fields.push(at("name"));
        }
        match m.role.as_str() {
            "system" | "developer" => {
                let text = text_only(m.content, &at("content"), &mut req.unknown_fields)?;
                if req.messages.is_empty() {
                    req.system.push(SystemPart {
                        text,
                        cache_control: None,
                    });
                } else {
                    req.messages.push(Message::new(
                        Role::System,
                        vec![Part::Text {
                            text,
                            cache_control: None,
                        }],
                        i,
                    ));
                }
            }
            "user" => {
                let Some(content) = m.content else {
                    return Err(DecodeError::missing(&at("content")));
                };
                let parts = user_parts(content, i, &mut req.unknown_fields)?;
                req.messages.push(Message::new(Role::User, parts, i));
            }
            "assistant" => {
                let mut parts = Vec::new();
                if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
                    parts.push(Part::Thinking {
                        text: r,
                        signature: None,
                    });
                }
                match m.content {
                    None => {}
                    Some(TextOrList::Text(t)) if t.is_empty() => {}
                    Some(TextOrList::Text(t)) => parts.push(text_part(t)),
                    Some(TextOrList::List(ps)) => {
                        for (j, p) in ps.into_iter().enumerate() {
                            match (p.kind.as_str(), p.text, p.refusal) {
                                ("text", Some(t), _) => parts.push(text_part(t)),
                                ("refusal", _, Some(r)) => parts.push(text_part(r)),
                                (kind, _, _) => {
                                    return Err(DecodeError::new(
                                        format!("messages[{i}].content[{j}].type"),
                                        format!(
                                            "assistant content parts must be text or refusal, not `{kind}`"
                                        ),
                                    ));
                                }
                            }
                        }
                    }
                }
                if let Some(r) = m.refusal {
                    parts.push(text_part(r));
                }
                for (j, tc) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    if let Some(kind) = tc.kind.as_deref()
                        && kind != "function"
                    {
                        req.unknown_fields
                            .push(format!("messages[{i}].tool_calls[{j}].type"));
                    }
                    parts.push(Part::ToolCall {
                        id: tc.id,
                        name: tc.function.name,
                        arguments: tc.function.arguments,
                    });
                }
                req.messages.push(Message::new(Role::Assistant, parts, i));
            }
            "tool" => {
                let Some(id) = m.tool_call_id else {
                    return Err(DecodeError::missing(&at("tool_call_id")));
                };
                let text = text_only(m.content, &at("content"), &mut req.unknown_fields)?;
                req.messages.push(Message::new(
                    Role::Tool,
                    vec![Part::ToolResult {
                        tool_call_id: id,
                        content: vec![ToolResultPart::Text(text)],
                        is_error: false,
                    }],
                    i,
                ));
            }
            other => {
                return Err(DecodeError::new(
                    at("role"),
                    format!(
                        "unsupported role `{other}`: expected system, developer, user, assistant or tool"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn text_part(text: String) -> Part {
    Part::Text {
        text,
        cache_control: None,
    }
}

/// Content that may only hold text (system, developer and tool messages).
fn text_only(
    content: Option<ContentIn>,
    path: &str,
    unknown: &mut Vec<String>,
) -> Result<String, DecodeError> {
    match content {
        None => Err(DecodeError::missing(path)),
        Some(TextOrList::Text(t)) => Ok(t),
        Some(TextOrList::List(ps)) => {
            let mut out = String::new();
            for (j, p) in ps.into_iter().enumerate() {
                for k in p.unknown.0 {
                    unknown.push(format!("{path}[{j}].{k}"));
                }
                match (p.kind.as_str(), p.text) {
                    ("text", Some(t)) => out.push_str(&t),
                    (kind, _) => {
                        return Err(DecodeError::new(
                            format!("{path}[{j}].type"),
                            format!("this message's content parts must be text, not `{kind}`"),
                        ));
                    }
                }
            }
            Ok(out)
        }
    }
}

fn user_parts(
    content: ContentIn,
    i: usize,
    unknown: &mut Vec<String>,
) -> Result<Vec<Part>, DecodeError> {
    match content {
        TextOrList::Text(t) => Ok(vec![text_part(t)]),
        TextOrList::List(ps) => {
            let mut parts = Vec::with_capacity(ps.len());
            for (j, p) in ps.into_iter().enumerate() {
                let at = format!("messages[{i}].content[{j}]");
                for k in p.unknown.0 {
                    unknown.push(format!("{at}.{k}"));
                }
                match p.kind.as_str() {
                    "text" => {
                        let Some(t) = p.text else {
                            return Err(DecodeError::missing(&format!("{at}.text")));
                        };
                        parts.push(text_part(t));
                    }
                    "image_url" => {
                        let Some(img) = p.image_url else {
                            return Err(DecodeError::missing(&format!("{at}.image_url")));
                        };
                        if img.detail.as_deref().is_some_and(|d| d != "auto") {
                            unknown.push(format!("{at}.image_url.detail"));
                        }
                        parts.push(Part::Image(Image::from_url(&img.url)));
                    }
                    "file" => {
                        let Some(f) = p.file else {
                            return Err(DecodeError::missing(&format!("{at}.file")));
                        };
                        if let Some(doc) = decode_file(f, &format!("{at}.file"), unknown)? {
                            parts.push(Part::Document(doc));
                        }
                    }
                    other => {
                        // input_audio and whatever comes next: a
                        // same-dialect call forwards them, others refuse.
                        unknown.push(format!("{at}.{other}"));
                    }
                }
            }
            Ok(parts)
        }
    }
}

/// A `file` part's `file` (`at` names it): inline data as a document. A
/// `file_id` names a file stored at OpenAI, which only OpenAI can read: it
/// is noted as unknown (forwarded same-dialect, refused elsewhere).
fn decode_file(
    f: FileIn,
    at: &str,
    unknown: &mut Vec<String>,
) -> Result<Option<Document>, DecodeError> {
    for k in f.unknown.0 {
        unknown.push(format!("{at}.{k}"));
    }
    if f.file_id.is_some() {
        unknown.push(format!("{at}.file_id"));
        return Ok(None);
    }
    let Some(data) = f.file_data else {
        return Err(DecodeError::missing(&format!("{at}.file_data")));
    };
    Document::from_file_data(&data, f.filename)
        .map(Some)
        .ok_or_else(|| {
            DecodeError::new(
                format!("{at}.file_data"),
                "a `data:` URL in `file_data` must be base64 (`data:<media type>;base64,...`)",
            )
        })
}

fn decode_tools(tools: Vec<ToolIn>, req: &mut chat::Request) -> Result<(), DecodeError> {
    for (i, t) in tools.into_iter().enumerate() {
        for k in t.unknown.0 {
            req.unknown_fields.push(format!("tools[{i}].{k}"));
        }
        if t.kind != "function" {
            req.unknown_fields.push(format!("tools[{i}].type"));
            continue;
        }
        let Some(f) = t.function else {
            return Err(DecodeError::missing(&format!("tools[{i}].function")));
        };
        for k in f.unknown.0 {
            req.unknown_fields.push(format!("tools[{i}].function.{k}"));
        }
        req.tools.push(Tool {
            name: f.name,
            description: f.description,
            parameters: f.parameters,
            strict: f.strict,
            cache_control: None,
            origin: Default::default(),
        });
    }
    Ok(())
}

fn decode_tool_choice(tc: ToolChoiceIn) -> Result<ToolChoice, DecodeError> {
    match tc {
        ToolChoiceIn::Mode(m) => match m.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(DecodeError::new(
                "tool_choice",
                format!(
                    "unknown tool_choice `{other}`: expected auto, none, required or a named function"
                ),
            )),
        },
        ToolChoiceIn::Named(n) if n.kind == "function" => Ok(ToolChoice::Named(n.function.name)),
        ToolChoiceIn::Named(n) => Err(DecodeError::new(
            "tool_choice.type",
            format!("unknown tool_choice type `{}`", n.kind),
        )),
    }
}

fn decode_response_format(rf: ResponseFormatIn) -> Result<ResponseFormat, DecodeError> {
    match rf.kind.as_str() {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let Some(js) = rf.json_schema else {
                return Err(DecodeError::missing("response_format.json_schema"));
            };
            let schema = js.schema.unwrap_or_else(|| {
                chat::RawJson(crate::wire::to_raw(&serde_json::json!({"type": "object"})))
            });
            let _ = js.description;
            Ok(ResponseFormat::JsonSchema {
                name: js.name,
                schema,
                strict: js.strict,
            })
        }
        other => Err(DecodeError::new(
            "response_format.type",
            format!(
                "unknown response_format type `{other}`: expected text, json_object or json_schema"
            ),
        )),
    }
}

/// How the OpenAI-dialect upstream spells the output limit: OpenAI itself
/// wants `max_completion_tokens` (reasoning models refuse `max_tokens`);
/// compatible servers mostly know only `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    MaxCompletionTokens,
    MaxTokens,
}

/// Encodes a canonical request for an OpenAI-dialect upstream (the
/// cross-dialect path: a request that arrived in another dialect).
pub fn encode_request(
    req: &chat::Request,
    upstream_model: &str,
    max_field: MaxTokensField,
) -> Result<Vec<u8>, Untranslatable> {
    if let Some(f) = req.unknown_fields.first() {
        return Err(Untranslatable::new(
            f.clone(),
            TARGET,
            "the field has no equivalent there",
        ));
    }
    // OpenAI's `web_search_options` exists only on its search models, and
    // compatible servers have nothing like it: a web search, like every
    // other built-in tool, is refused by name.
    if let Some(b) = req.builtin_tools.first() {
        let mut refused = b.no_equivalent(TARGET);
        if b.web_search.is_some() {
            refused.reason = "Chat Completions has no web search tool (OpenAI's `web_search_options` is for its search models only); an operator may drop it: [responses] drop_unsupported_tools".into();
        }
        return Err(refused);
    }
    if req.top_k.is_some() {
        return Err(Untranslatable::new(
            "top_k",
            TARGET,
            "Chat Completions has no top_k",
        ));
    }
    if let Some(effort) = req.reasoning_effort.as_deref()
        && !matches!(
            effort,
            "none" | "minimal" | "low" | "medium" | "high" | "xhigh"
        )
    {
        return Err(Untranslatable::new(
            "reasoning_effort",
            TARGET,
            format!(
                "effort `{effort}` has no equivalent; use none, minimal, low, medium, high or xhigh"
            ),
        ));
    }
    if req.thinking.is_some() {
        return Err(Untranslatable::new(
            "thinking",
            TARGET,
            "Chat Completions has no thinking budget; use reasoning_effort with an OpenAI-dialect client",
        ));
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        let content = if req.system.len() == 1 {
            ContentOut::Text(Cow::Borrowed(&req.system[0].text))
        } else {
            ContentOut::Parts(
                req.system
                    .iter()
                    .map(|s| PartOut::Text { text: &s.text })
                    .collect(),
            )
        };
        messages.push(MessageOut {
            role: "system",
            content: Some(content),
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
    }
    for m in &req.messages {
        encode_message(m, &mut messages)?;
    }
    let tools = if req.tools.is_empty() {
        None
    } else {
        Some(
            req.tools
                .iter()
                .map(|t| ToolOut {
                    kind: "function",
                    function: FunctionDefOut {
                        name: &t.name,
                        description: t.description.as_deref(),
                        parameters: t.parameters.as_deref(),
                        strict: t.strict,
                    },
                })
                .collect(),
        )
    };
    let tool_choice = req.tool_choice.as_ref().map(|tc| match tc {
        ToolChoice::Auto => serde_json::json!("auto"),
        ToolChoice::None => serde_json::json!("none"),
        ToolChoice::Required => serde_json::json!("required"),
        ToolChoice::Named(n) => serde_json::json!({"type": "function", "function": {"name": n}}),
    });
    let response_format = req.response_format.as_ref().map(|rf| match rf {
        ResponseFormat::Text => ResponseFormatOut::Text,
        ResponseFormat::JsonObject => ResponseFormatOut::JsonObject,
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => ResponseFormatOut::JsonSchema {
            json_schema: JsonSchemaOut {
                name,
                schema: &schema.0,
                strict: *strict,
            },
        },
    });
    let out = RequestOut {
        model: upstream_model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls,
        response_format,
        max_completion_tokens: req
            .max_tokens
            .filter(|_| max_field == MaxTokensField::MaxCompletionTokens),
        max_tokens: req
            .max_tokens
            .filter(|_| max_field == MaxTokensField::MaxTokens),
        temperature: req.temperature,
        top_p: req.top_p,
        stop: (!req.stop.is_empty()).then_some(req.stop.as_slice()),
        seed: req.seed,
        n: req.n,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        user: req.user.as_deref(),
        reasoning_effort: req.reasoning_effort.as_deref(),
        stream: req.stream,
        stream_options: req.stream.then_some(StreamOptionsOut {
            include_usage: true,
        }),
    };
    Ok(crate::wire::to_vec(&out))
}

fn encode_message<'a>(m: &'a Message, out: &mut Vec<MessageOut<'a>>) -> Result<(), Untranslatable> {
    match m.role {
        Role::System | Role::User => {
            let mut parts = Vec::with_capacity(m.parts.len());
            for (j, p) in m.parts.iter().enumerate() {
                match p {
                    Part::Text { text, .. } => parts.push(PartOut::Text { text }),
                    Part::Image(img) => {
                        if m.role == Role::System {
                            return Err(Untranslatable::new(
                                m.part_path(j),
                                TARGET,
                                "system messages hold text only",
                            ));
                        }
                        parts.push(PartOut::ImageUrl {
                            image_url: ImageUrlOut { url: img.to_url() },
                        })
                    }
                    Part::Document(doc) => {
                        if m.role == Role::System {
                            return Err(Untranslatable::new(
                                m.part_path(j),
                                TARGET,
                                "system messages hold text only",
                            ));
                        }
                        parts.push(PartOut::File {
                            file: file_out(doc, || m.part_path(j))?,
                        });
                    }
                    _ => {
                        return Err(Untranslatable::new(
                            m.part_path(j),
                            TARGET,
                            "this block cannot appear in a user turn there",
                        ));
                    }
                }
            }
            let content = match parts.as_slice() {
                [PartOut::Text { text }] => ContentOut::Text(Cow::Borrowed(text)),
                _ => ContentOut::Parts(parts),
            };
            out.push(MessageOut {
                role: if m.role == Role::System {
                    "system"
                } else {
                    "user"
                },
                content: Some(content),
                tool_calls: Vec::new(),
                tool_call_id: None,
            });
        }
        Role::Assistant => {
            let mut texts: Vec<&str> = Vec::new();
            let mut tool_calls = Vec::new();
            for p in &m.parts {
                match p {
                    Part::Text { text, .. } => texts.push(text),
                    Part::ToolCall {
                        id,
                        name,
                        arguments,
                    } => tool_calls.push(ToolCallOut {
                        // A Gemini thought signature means nothing here, and
                        // OpenAI bounds the length of ids.
                        id: crate::wire::gemini::split_signature(id).0,
                        kind: "function",
                        function: FunctionCallOut { name, arguments },
                    }),
                    // Earlier reasoning is the previous model's own, signed by
                    // its provider; Chat Completions takes no reasoning input.
                    Part::Thinking { .. } | Part::RedactedThinking { .. } => {}
                    // No decoder puts a provider's search into a request.
                    Part::WebSearch(_) => {}
                    Part::Image(_) | Part::Document(_) | Part::ToolResult { .. } => {
                        return Err(Untranslatable::new(
                            format!("{}.content", m.path()),
                            TARGET,
                            "assistant turns hold text and tool calls only",
                        ));
                    }
                }
            }
            // A turn of reasoning only (cut off by max_tokens, say) has
            // nothing Chat Completions can take, and an assistant message
            // with neither content nor tool calls is refused.
            if texts.is_empty() && tool_calls.is_empty() {
                return Ok(());
            }
            let content = match texts.as_slice() {
                [] => None,
                [one] => Some(ContentOut::Text(Cow::Borrowed(one))),
                many => Some(ContentOut::Text(Cow::Owned(many.concat()))),
            };
            out.push(MessageOut {
                role: "assistant",
                content,
                tool_calls,
                tool_call_id: None,
            });
        }
        Role::Tool => {
            for (j, p) in m.parts.iter().enumerate() {
                let Part::ToolResult {
                    tool_call_id,
                    content,
                    is_error,
                } = p
                else {
                    return Err(Untranslatable::new(
                        m.part_path(j),
                        TARGET,
                        "tool turns hold tool results only",
                    ));
                };
                let mut text = String::new();
                if *is_error {
                    // Chat Completions has no error flag on tool results; the
                    // model reads the flag as words instead (documented).
                    text.push_str("Error: ");
                }
                for part in content {
                    match part {
                        ToolResultPart::Text(t) => text.push_str(t),
                        ToolResultPart::Image(_) => {
                            return Err(Untranslatable::new(
                                format!("{}.content", m.part_path(j)),
                                TARGET,
                                "tool results there hold text only, not images",
                            ));
                        }
                        ToolResultPart::Document(_) => {
                            return Err(Untranslatable::new(
                                format!("{}.content", m.part_path(j)),
                                TARGET,
                                "tool results there hold text only, not files",
                            ));
                        }
                    }
                }
                out.push(MessageOut {
                    role: "tool",
                    content: Some(ContentOut::Text(Cow::Owned(text))),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(crate::wire::gemini::split_signature(tool_call_id).0),
                });
            }
        }
    }
    Ok(())
}

/// A document as a Chat Completions `file`: inline, as a `data:` URL, with
/// a name (OpenAI refuses inline files without one; a document that came
/// without gets one made from its media type, `document.pdf`). `at` names
/// the part for refusals.
fn file_out(doc: &Document, at: impl Fn() -> String) -> Result<FileOut<'_>, Untranslatable> {
    if let DocSource::Url(_) = doc.source {
        return Err(Untranslatable::new(
            at(),
            TARGET,
            "Chat Completions takes files inline (`file_data`) or by OpenAI file id, not by URL",
        ));
    }
    let Some(file_data) = doc.data_url() else {
        return Err(Untranslatable::new(
            at(),
            TARGET,
            "the file's media type is unknown (no `data:` URL, no known extension in its name), and Chat Completions takes files as `data:` URLs",
        ));
    };
    Ok(FileOut {
        filename: doc.name_or_default(),
        file_data,
    })
}

/// The same-dialect fast path: the caller's own top-level fields, verbatim,
/// with `model` set to the upstream's name for it and, on streams,
/// `stream_options.include_usage` forced on so usage can be recorded.
pub fn rewrite_request(fields: &Fields<'_>, upstream_model: &str, stream: bool) -> Vec<u8> {
    let len: usize = fields
        .0
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum();
    let mut out = Vec::with_capacity(len + upstream_model.len() + 48);
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    let mut wrote_options = false;
    for (key, raw) in &fields.0 {
        sep(&mut out);
        write_key(&mut out, key);
        match key.as_ref() {
            "model" => write_json_str(&mut out, upstream_model),
            "stream_options" if stream => {
                let mut opts: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(raw.get()).unwrap_or_default();
                opts.insert("include_usage".into(), serde_json::Value::Bool(true));
                out.extend_from_slice(&crate::wire::to_vec(&opts));
                wrote_options = true;
            }
            _ => out.extend_from_slice(raw.get().as_bytes()),
        }
    }
    if stream && !wrote_options {
        sep(&mut out);
        out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
    }
    out.push(b'}');
    out
}

fn write_key(out: &mut Vec<u8>, key: &str) {
    write_json_str(out, key);
    out.push(b':');
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(content: &str) -> Result<chat::Request, DecodeError> {
        let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":{content}}}]}}"#);
        decode_request(body.as_bytes()).map(|(r, _)| r)
    }

    fn encoded(req: &chat::Request) -> serde_json::Value {
        serde_json::from_slice(&encode_request(req, "m", MaxTokensField::MaxTokens).unwrap())
            .unwrap()
    }

    /// The `file` part OpenAI documents (file inputs guide, Chat
    /// Completions): `file_data` as a data URL beside `filename`.
    #[test]
    fn a_file_part_decodes_to_a_document_and_back() {
        let r = user(
            r#"[{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0x"}},{"type":"text","text":"sum up"}]"#,
        )
        .unwrap();
        assert!(r.unknown_fields.is_empty(), "{:?}", r.unknown_fields);
        assert_eq!(
            r.messages[0].parts[0],
            Part::Document(Document {
                source: DocSource::Base64("JVBERi0x".into()),
                media_type: Some("application/pdf".into()),
                filename: Some("a.pdf".into()),
            })
        );
        assert_eq!(
            encoded(&r)["messages"][0]["content"][0],
            serde_json::json!({"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}})
        );
    }

    #[test]
    fn a_stored_file_stays_with_openai_and_a_bad_file_is_named() {
        let r = user(r#"[{"type":"file","file":{"file_id":"file-abc"}}]"#).unwrap();
        assert_eq!(r.unknown_fields, ["messages[0].content[0].file.file_id"]);
        assert!(r.messages[0].parts.is_empty());
        let e = user(r#"[{"type":"file","file":{"filename":"a.pdf"}}]"#).unwrap_err();
        assert_eq!(e.field, "messages[0].content[0].file.file_data");
        let e = user(r#"[{"type":"file","file":{"file_data":"data:text/plain,hi"}}]"#).unwrap_err();
        assert_eq!(e.field, "messages[0].content[0].file.file_data");
        let e = user(r#"[{"type":"file"}]"#).unwrap_err();
        assert_eq!(e.field, "messages[0].content[0].file");
    }

    fn with_document(doc: Document) -> chat::Request {
        chat::Request {
            model: "m".into(),
            messages: vec![Message::new(Role::User, vec![Part::Document(doc)], 0)],
            ..Default::default()
        }
    }

    #[test]
    fn documents_go_inline_with_a_name_or_are_refused_by_name() {
        // Text given as text (an Anthropic `text` source) is a text/plain
        // file, named after its type: OpenAI refuses inline files unnamed.
        let r = with_document(Document {
            source: DocSource::Text("hello".into()),
            media_type: Some("text/plain".into()),
            filename: None,
        });
        assert_eq!(
            encoded(&r)["messages"][0]["content"][0]["file"],
            serde_json::json!({"filename": "document.txt", "file_data": "data:text/plain;base64,aGVsbG8="})
        );
        let refused = |doc: Document| {
            encode_request(&with_document(doc), "m", MaxTokensField::MaxTokens).unwrap_err()
        };
        let e = refused(Document {
            source: DocSource::Url("https://x.example/a.pdf".into()),
            media_type: None,
            filename: None,
        });
        assert_eq!(e.field, "messages[0].content[0]");
        assert!(e.reason.contains("not by URL"), "{}", e.reason);
        let e = refused(Document {
            source: DocSource::Base64("AAAA".into()),
            media_type: None,
            filename: Some("blob".into()),
        });
        assert!(e.reason.contains("media type is unknown"), "{}", e.reason);
    }

    #[test]
    fn documents_in_tool_results_and_system_turns_are_refused() {
        let doc = Document {
            source: DocSource::Base64("AAAA".into()),
            media_type: Some("application/pdf".into()),
            filename: None,
        };
        let mut r = with_document(doc.clone());
        r.messages[0].role = Role::System;
        let e = encode_request(&r, "m", MaxTokensField::MaxTokens).unwrap_err();
        assert_eq!(e.field, "messages[0].content[0]");
        r.messages = vec![Message::new(
            Role::Tool,
            vec![Part::ToolResult {
                tool_call_id: "c".into(),
                content: vec![ToolResultPart::Document(doc)],
                is_error: false,
            }],
            2,
        )];
        let e = encode_request(&r, "m", MaxTokensField::MaxTokens).unwrap_err();
        assert_eq!(e.field, "messages[2].content[0].content");
        assert!(e.reason.contains("not files"), "{}", e.reason);
    }

    /// A Chat Completions server has no search of its own to map a web
    /// search to; the refusal says so, and how to serve the call anyway.
    #[test]
    fn a_web_search_is_refused_by_name_and_why() {
        let (req, _) = crate::wire::responses::decode_request(
            br#"{"model":"m","input":"news","tools":[{"type":"web_search"}]}"#,
        )
        .unwrap();
        let e = encode_request(&req, "m", MaxTokensField::MaxTokens).unwrap_err();
        assert_eq!(e.field, "tools[0]");
        assert!(e.reason.contains("no web search tool"), "{}", e.reason);
        assert!(e.reason.contains("drop_unsupported_tools"), "{}", e.reason);
    }
}
