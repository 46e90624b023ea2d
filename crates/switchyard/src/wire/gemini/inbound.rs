//! A Gemini caller's `generateContent` body → canonical request, and the
//! same body forwarded to a Gemini upstream.
//!
//! The model and whether to stream come from the URL
//! (`/v1beta/models/{model}:streamGenerateContent?alt=sse`), not the body.
//! The google-genai SDKs mix camelCase and snake_case in one body, so every
//! member is read under both spellings; errors and refused fields are named
//! in camelCase, as Gemini documents them.

mod config;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use self::config::{
    GenerationConfigIn, ToolConfigIn, ToolIn, decode_generation_config, decode_tool_config,
    decode_tools,
};
use super::{Thought, id_with_signature, normalize_signature, read_thought_signature};
use crate::chat::{
    self, DocKind, DocSource, Document, Image, Message, Origin, Part, Role, SystemPart,
    ToolResultPart,
};
use crate::wire::{DecodeError, Fields, UnknownKeys, field, is_neutral, opt_field};

/// Decodes a `generateContent` / `streamGenerateContent` body. `model` is
/// the one the URL names; `stream` is whether the method streams. The
/// returned [`Fields`] borrow the body for the same-dialect fast path
/// ([`rewrite_request`]) and the cache key.
pub fn decode_request<'b>(
    body: &'b [u8],
    model: &str,
    stream: bool,
) -> Result<(chat::Request, Fields<'b>), DecodeError> {
    crate::wire::check_model(Some(model))?;
    let fields = Fields::parse(body)?;
    let mut req = chat::Request {
        model: model.to_owned(),
        stream,
        // Gemini streams always carry usage; its callers expect to see it.
        include_usage: stream,
        ..chat::Request::default()
    };
    let mut contents = None;
    let mut tool_config = None;
    let mut seen: Vec<&'static str> = Vec::new();
    for (key, raw) in &fields.0 {
        let raw: &RawValue = raw;
        let name = match key.as_ref() {
            "contents" => "contents",
            "systemInstruction" | "system_instruction" => "systemInstruction",
            "tools" => "tools",
            "toolConfig" | "tool_config" => "toolConfig",
            "generationConfig" | "generation_config" => "generationConfig",
            // The URL names the model; a body `model` says nothing more.
            "model" => continue,
            // safetySettings, cachedContent, labels...: a Gemini upstream
            // gets them on the same-dialect path, other targets refuse them.
            other => {
                if !is_neutral(raw) {
                    req.unknown_fields.push(other.to_owned());
                }
                continue;
            }
        };
        if seen.contains(&name) {
            return Err(DecodeError::new(
                name,
                format!("`{name}` is given twice (camelCase and snake_case)"),
            ));
        }
        seen.push(name);
        match name {
            "contents" => contents = Some(field::<Vec<ContentIn>>(name, raw)?),
            "systemInstruction" => {
                if let Some(s) = opt_field::<ContentIn>(name, raw)? {
                    decode_system(s, &mut req);
                }
            }
            "tools" => {
                if let Some(tools) = opt_field::<Vec<ToolIn>>(name, raw)? {
                    decode_tools(tools, &mut req)?;
                }
            }
            "toolConfig" => tool_config = opt_field::<ToolConfigIn>(name, raw)?,
            _ => {
                if let Some(g) = opt_field::<GenerationConfigIn>(name, raw)? {
                    decode_generation_config(g, &mut req)?;
                }
            }
        }
    }
    let Some(contents) = contents else {
        return Err(DecodeError::missing("contents"));
    };
    if contents.is_empty() {
        return Err(DecodeError::new("contents", "`contents` must not be empty"));
    }
    decode_contents(contents, &mut req)?;
    if let Some(tc) = tool_config {
        decode_tool_config(tc, &mut req)?;
    }
    Ok((req, fields))
}

/// The same-dialect fast path: the caller's own members, verbatim, less a
/// body `model` (the upstream's model goes in the URL, and a body `model`
/// would name the gateway's route, not the upstream's model). A body
/// without one can be forwarded as it came.
pub fn rewrite_request(fields: &Fields<'_>) -> Vec<u8> {
    let len: usize = fields
        .0
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum();
    let mut out = Vec::with_capacity(len + 2);
    out.push(b'{');
    let mut first = true;
    for (key, raw) in &fields.0 {
        if key == "model" {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, key.as_ref());
        out.push(b':');
        out.extend_from_slice(raw.get().as_bytes());
    }
    out.push(b'}');
    out
}

/// A Gemini caller's own name for a canonical request field, for errors
/// that encoders raise in canonical names (`top_k`, `messages[2].content[0]`).
/// Fields the decoder already named the Gemini way pass unchanged.
pub fn field_name(canonical: &str) -> String {
    let mapped = match canonical {
        "max_tokens" => "generationConfig.maxOutputTokens",
        "temperature" => "generationConfig.temperature",
        "top_p" => "generationConfig.topP",
        "top_k" => "generationConfig.topK",
        "stop" => "generationConfig.stopSequences",
        "seed" => "generationConfig.seed",
        "n" => "generationConfig.candidateCount",
        "presence_penalty" => "generationConfig.presencePenalty",
        "frequency_penalty" => "generationConfig.frequencyPenalty",
        "response_format" => "generationConfig.responseMimeType",
        "thinking" => "generationConfig.thinkingConfig.thinkingBudget",
        "reasoning_effort" => "generationConfig.thinkingConfig.thinkingLevel",
        "tool_choice" => "toolConfig.functionCallingConfig",
        "system" => "systemInstruction",
        "messages" => "contents",
        other => {
            return match other.strip_prefix("messages[") {
                Some(rest) => format!("contents[{}", rest.replacen(".content[", ".parts[", 1)),
                None => other.to_owned(),
            };
        }
    };
    mapped.to_owned()
}

// ---------------------------------------------------------------- types

#[derive(Deserialize)]
struct ContentIn {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    parts: Vec<PartIn>,
    #[serde(flatten)]
    unknown: UnknownKeys,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartIn {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default, alias = "thought_signature")]
    thought_signature: Option<String>,
    #[serde(default, alias = "inline_data")]
    inline_data: Option<BlobIn>,
    #[serde(default, alias = "file_data")]
    file_data: Option<FileDataIn>,
    #[serde(default, alias = "function_call")]
    function_call: Option<FunctionCallIn>,
    #[serde(default, alias = "function_response")]
    function_response: Option<FunctionResponseIn>,
    /// executableCode, codeExecutionResult, videoMetadata...
    #[serde(flatten)]
    unknown: UnknownKeys,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlobIn {
    #[serde(alias = "mime_type")]
    mime_type: String,
    data: String,
    #[serde(flatten)]
    unknown: UnknownKeys,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileDataIn {
    #[serde(default, alias = "mime_type")]
    mime_type: Option<String>,
    #[serde(alias = "file_uri")]
    file_uri: String,
}

#[derive(Deserialize)]
struct FunctionCallIn {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Option<Box<RawValue>>,
    #[serde(flatten)]
    unknown: UnknownKeys,
}

#[derive(Deserialize)]
struct FunctionResponseIn {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    response: Option<Value>,
    /// parts (multimodal results), willContinue, scheduling...
    #[serde(flatten)]
    unknown: UnknownKeys,
}

// ---------------------------------------------------------------- contents

fn note(unknown: &UnknownKeys, at: &str, out: &mut Vec<String>) {
    for k in &unknown.0 {
        out.push(format!("{at}.{k}"));
    }
}

/// A tool call seen in the conversation, for matching results to it.
struct Call {
    /// The `contents` index of the model turn that made it.
    turn: usize,
    /// The canonical id (a thought signature packed in).
    id: String,
    /// The id as the caller wrote it, or the one made up for it.
    plain: String,
    name: String,
    answered: bool,
}

fn decode_contents(contents: Vec<ContentIn>, req: &mut chat::Request) -> Result<(), DecodeError> {
    let mut calls: Vec<Call> = Vec::new();
    let mut previous_was_model = false;
    for (i, c) in contents.into_iter().enumerate() {
        let at = format!("contents[{i}]");
        note(&c.unknown, &at, &mut req.unknown_fields);
        let model = match c.role.as_deref() {
            None | Some("" | "user") => false,
            Some("model") => true,
            Some(other) => {
                return Err(DecodeError::new(
                    format!("{at}.role"),
                    format!("unsupported role `{other}`: expected user or model"),
                ));
            }
        };
        if c.parts.is_empty() {
            return Err(DecodeError::new(
                format!("{at}.parts"),
                format!("`{at}.parts` must not be empty"),
            ));
        }
        if model {
            model_turn(i, c.parts, previous_was_model, req, &mut calls)?;
        } else {
            user_turn(i, c.parts, req, &mut calls)?;
        }
        previous_was_model = model;
    }
    Ok(())
}

/// What one part holds, after checking it holds one thing.
enum Data {
    Text(String),
    Thought(String),
    Inline(BlobIn),
    File(FileDataIn),
    Call(FunctionCallIn),
    Response(FunctionResponseIn),
    /// Nothing the canonical model knows (only unknown members, or only a
    /// signature).
    Nothing,
}

fn part_data(p: PartIn, at: &str, unknown: &mut Vec<String>) -> Result<Data, DecodeError> {
    note(&p.unknown, at, unknown);
    let count = [
        p.text.is_some(),
        p.inline_data.is_some(),
        p.file_data.is_some(),
        p.function_call.is_some(),
        p.function_response.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if count > 1 {
        return Err(DecodeError::new(
            at,
            format!(
                "`{at}` must hold one of text, inlineData, fileData, functionCall or functionResponse, not several"
            ),
        ));
    }
    let thought = p.thought == Some(true);
    Ok(if let Some(b) = p.inline_data {
        Data::Inline(b)
    } else if let Some(f) = p.file_data {
        Data::File(f)
    } else if let Some(fc) = p.function_call {
        Data::Call(fc)
    } else if let Some(fr) = p.function_response {
        Data::Response(fr)
    } else if thought {
        Data::Thought(p.text.unwrap_or_default())
    } else if let Some(t) = p.text {
        Data::Text(t)
    } else if p.unknown.0.is_empty() && p.thought_signature.is_none() {
        return Err(DecodeError::new(
            at,
            format!(
                "`{at}` is empty: a part holds text, inlineData, fileData, functionCall or functionResponse"
            ),
        ));
    } else {
        Data::Nothing
    })
}

/// A model turn. Consecutive model turns are one assistant message: the
/// SDKs' chat sessions keep each streamed chunk as a turn of its own.
fn model_turn(
    i: usize,
    parts: Vec<PartIn>,
    continues: bool,
    req: &mut chat::Request,
    calls: &mut Vec<Call>,
) -> Result<(), DecodeError> {
    let mut msg = match req.messages.pop() {
        Some(m) if continues && m.role == Role::Assistant => m,
        other => {
            req.messages.extend(other);
            Message {
                role: Role::Assistant,
                parts: Vec::new(),
                origin: Origin {
                    message: i,
                    parts: Vec::new(),
                },
            }
        }
    };
    for (j, p) in parts.into_iter().enumerate() {
        let at = format!("contents[{i}].parts[{j}]");
        let signature = p.thought_signature.clone();
        let part = match part_data(p, &at, &mut req.unknown_fields)? {
            // A signature on a text part is Gemini's own state: meaningless
            // to any other provider, and a Gemini upstream gets the caller's
            // body as it came.
            Data::Text(text) => Part::Text {
                text,
                cache_control: None,
            },
            Data::Thought(text) => {
                let part = thinking(text, signature.as_deref(), &at)?;
                // Streamed thoughts come back as one part per chunk, the
                // signature on the last: they are one block of reasoning.
                if let Part::Thinking { text, signature } = &part
                    && let Some(Part::Thinking {
                        text: prev,
                        signature: prev_signature,
                    }) = msg.parts.last_mut()
                    && prev_signature.is_none()
                {
                    prev.push_str(text);
                    prev_signature.clone_from(signature);
                    continue;
                }
                part
            }
            Data::Call(fc) => {
                note(
                    &fc.unknown,
                    &format!("{at}.functionCall"),
                    &mut req.unknown_fields,
                );
                let plain = fc
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| format!("call_{i}_{j}"));
                let id = match signature.as_deref() {
                    Some(s) => {
                        let s = normalize_signature(s).ok_or_else(|| not_base64(&at))?;
                        id_with_signature(&plain, &s)
                    }
                    None => plain.clone(),
                };
                calls.push(Call {
                    turn: i,
                    id: id.clone(),
                    plain,
                    name: fc.name.clone(),
                    answered: false,
                });
                Part::ToolCall {
                    id,
                    name: fc.name,
                    arguments: fc
                        .args
                        .map(|a| a.get().to_owned())
                        .unwrap_or_else(|| "{}".into()),
                }
            }
            // Images an image-generation model made: the canonical model
            // has no place for them in an answer.
            Data::Inline(_) => {
                req.unknown_fields.push(format!("{at}.inlineData"));
                continue;
            }
            Data::File(_) => {
                req.unknown_fields.push(format!("{at}.fileData"));
                continue;
            }
            Data::Response(_) => {
                return Err(DecodeError::new(
                    format!("{at}.functionResponse"),
                    "function responses belong in user turns, not model turns",
                ));
            }
            Data::Nothing => continue,
        };
        msg.parts.push(part);
        msg.origin.parts.push(j);
    }
    if !msg.parts.is_empty() {
        req.messages.push(msg);
    }
    Ok(())
}

fn not_base64(at: &str) -> DecodeError {
    let path = format!("{at}.thoughtSignature");
    DecodeError::new(path.clone(), format!("`{path}` must be base64"))
}

/// A thought part: its signature is the gateway's own packing of another
/// provider's reasoning state, or Gemini's (dropped: only Gemini can read
/// it, and a Gemini upstream gets the caller's body as it came).
fn thinking(text: String, signature: Option<&str>, at: &str) -> Result<Part, DecodeError> {
    let thought = match signature {
        None => Thought::Foreign,
        Some(s) => read_thought_signature(s).ok_or_else(|| not_base64(at))?,
    };
    Ok(match thought {
        Thought::Signed(s) => Part::Thinking {
            text,
            signature: Some(s),
        },
        Thought::Redacted(data) => Part::RedactedThinking { data },
        Thought::Foreign => Part::Thinking {
            text,
            signature: None,
        },
    })
}

fn user_turn(
    i: usize,
    parts: Vec<PartIn>,
    req: &mut chat::Request,
    calls: &mut [Call],
) -> Result<(), DecodeError> {
    let mut gathered = Vec::with_capacity(parts.len());
    let mut origins = Vec::with_capacity(parts.len());
    for (j, p) in parts.into_iter().enumerate() {
        let at = format!("contents[{i}].parts[{j}]");
        let part = match part_data(p, &at, &mut req.unknown_fields)? {
            Data::Text(text) => Part::Text {
                text,
                cache_control: None,
            },
            Data::Thought(_) => {
                req.unknown_fields.push(format!("{at}.thought"));
                continue;
            }
            Data::Inline(b) => {
                note(
                    &b.unknown,
                    &format!("{at}.inlineData"),
                    &mut req.unknown_fields,
                );
                if b.mime_type.starts_with("image/") {
                    Part::Image(Image::Base64 {
                        media_type: b.mime_type,
                        data: b.data,
                    })
                } else if DocKind::of(&b.mime_type) != DocKind::Other {
                    Part::Document(Document {
                        source: DocSource::Base64(b.data),
                        media_type: Some(b.mime_type),
                        filename: None,
                    })
                } else {
                    // Audio, video...: no canonical part holds them.
                    req.unknown_fields.push(format!("{at}.inlineData"));
                    continue;
                }
            }
            Data::File(f) => match public_file(f) {
                Some(part) => part,
                None => {
                    req.unknown_fields.push(format!("{at}.fileData"));
                    continue;
                }
            },
            Data::Response(fr) => {
                note(
                    &fr.unknown,
                    &format!("{at}.functionResponse"),
                    &mut req.unknown_fields,
                );
                let tool_call_id = result_id(calls, fr.id, &fr.name, i, j);
                let (content, is_error) = result_content(fr.response);
                // Results leave the user turn as their own Tool message,
                // keeping their place in the conversation.
                flush(req, i, &mut gathered, &mut origins);
                req.messages.push(Message {
                    role: Role::Tool,
                    parts: vec![Part::ToolResult {
                        tool_call_id,
                        content,
                        is_error,
                    }],
                    origin: Origin {
                        message: i,
                        parts: vec![j],
                    },
                });
                continue;
            }
            Data::Call(_) => {
                return Err(DecodeError::new(
                    format!("{at}.functionCall"),
                    "function calls belong in model turns, not user turns",
                ));
            }
            Data::Nothing => continue,
        };
        gathered.push(part);
        origins.push(j);
    }
    flush(req, i, &mut gathered, &mut origins);
    Ok(())
}

fn flush(req: &mut chat::Request, i: usize, parts: &mut Vec<Part>, origins: &mut Vec<usize>) {
    if !parts.is_empty() {
        req.messages.push(Message {
            role: Role::User,
            parts: std::mem::take(parts),
            origin: Origin {
                message: i,
                parts: std::mem::take(origins),
            },
        });
    }
}

/// A `fileData` part another provider can fetch: an image or a document
/// (PDF, text) at a public http(s) URL. Files API and Cloud Storage URIs
/// need Google's credentials, and audio or video has no canonical part.
fn public_file(f: FileDataIn) -> Option<Part> {
    let uri = f.file_uri.as_str();
    let public = (uri.starts_with("https://") || uri.starts_with("http://"))
        && !uri.contains("generativelanguage.googleapis.com")
        && !uri.contains("storage.googleapis.com");
    let mime_type = f.mime_type.filter(|_| public)?;
    if mime_type.starts_with("image/") {
        Some(Part::Image(Image::Url(f.file_uri)))
    } else if DocKind::of(&mime_type) != DocKind::Other {
        Some(Part::Document(Document {
            source: DocSource::Url(f.file_uri),
            media_type: Some(mime_type),
            filename: None,
        }))
    } else {
        None
    }
}

/// The call a `functionResponse` answers: by id when it has one, else by
/// name, the earliest unanswered call of that name in the latest model turn
/// that has one (Gemini answers parallel calls in order). A result that
/// matches no call gets an id of its own, stable for its position.
fn result_id(calls: &mut [Call], id: Option<String>, name: &str, i: usize, j: usize) -> String {
    let found = match id.filter(|id| !id.is_empty()) {
        Some(id) => match calls.iter().rposition(|c| c.plain == id) {
            Some(k) => k,
            None => return id,
        },
        None => {
            let open = |c: &&Call| !c.answered && c.name == name;
            let Some(turn) = calls.iter().filter(open).map(|c| c.turn).max() else {
                return format!("call_{i}_{j}");
            };
            match calls.iter().position(|c| c.turn == turn && open(&c)) {
                Some(k) => k,
                None => return format!("call_{i}_{j}"),
            }
        }
    };
    calls[found].answered = true;
    calls[found].id.clone()
}

/// A `functionResponse.response` as a tool result. Gemini documents
/// `output` for the result and `error` for a failure; any other object is
/// the result as a whole (JSON text).
fn result_content(response: Option<Value>) -> (Vec<ToolResultPart>, bool) {
    let text = |v: Value| match v {
        Value::String(s) => s,
        other => other.to_string(),
    };
    match response {
        None => (Vec::new(), false),
        Some(Value::Object(mut m)) if m.len() == 1 => {
            if let Some(v) = m.remove("output") {
                (vec![ToolResultPart::Text(text(v))], false)
            } else if let Some(v) = m.remove("error") {
                (vec![ToolResultPart::Text(text(v))], true)
            } else {
                (
                    vec![ToolResultPart::Text(Value::Object(m).to_string())],
                    false,
                )
            }
        }
        Some(v) => (vec![ToolResultPart::Text(v.to_string())], false),
    }
}

// ---------------------------------------------------------------- systemInstruction

/// `systemInstruction`: its role is whatever the caller wrote (the Python
/// SDK sends `user`); its parts are text.
fn decode_system(s: ContentIn, req: &mut chat::Request) {
    note(&s.unknown, "systemInstruction", &mut req.unknown_fields);
    for (j, p) in s.parts.into_iter().enumerate() {
        let at = format!("systemInstruction.parts[{j}]");
        note(&p.unknown, &at, &mut req.unknown_fields);
        match p.text {
            Some(text) if p.thought != Some(true) => req.system.push(SystemPart {
                text,
                cache_control: None,
            }),
            _ => {
                let kind = if p.inline_data.is_some() {
                    "inlineData"
                } else if p.file_data.is_some() {
                    "fileData"
                } else if p.function_call.is_some() {
                    "functionCall"
                } else if p.function_response.is_some() {
                    "functionResponse"
                } else if p.thought == Some(true) {
                    "thought"
                } else {
                    continue;
                };
                req.unknown_fields.push(format!("{at}.{kind}"));
            }
        }
    }
}

#[cfg(test)]
mod tests;
