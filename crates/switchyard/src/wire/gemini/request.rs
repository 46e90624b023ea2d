//! Canonical request → `generateContent` body.

use serde::Serialize;
use serde_json::value::RawValue;

use super::split_signature;
use crate::chat::{
    self, DocKind, DocSource, Document, Image, Part, ResponseFormat, Role, ToolChoice,
    ToolResultPart, Untranslatable,
};

const TARGET: &str = "a Gemini provider";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestOut<'a> {
    contents: Vec<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolsOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfigOut<'a>>,
    #[serde(skip_serializing_if = "GenerationConfigOut::is_empty")]
    generation_config: GenerationConfigOut<'a>,
}

#[derive(Serialize)]
struct SystemOut<'a> {
    parts: Vec<TextOut<'a>>,
}

#[derive(Serialize)]
struct TextOut<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct ContentOut<'a> {
    role: &'static str,
    parts: Vec<PartOut<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PartOut<'a> {
    Text {
        text: &'a str,
    },
    InlineData {
        #[serde(rename = "inlineData")]
        inline_data: InlineDataOut<'a>,
    },
    FileData {
        #[serde(rename = "fileData")]
        file_data: FileDataOut<'a>,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: FunctionCallOut<'a>,
        #[serde(rename = "thoughtSignature", skip_serializing_if = "Option::is_none")]
        thought_signature: Option<String>,
    },
    FunctionResponse {
        #[serde(rename = "functionResponse")]
        function_response: FunctionResponseOut<'a>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InlineDataOut<'a> {
    mime_type: &'a str,
    data: std::borrow::Cow<'a, str>,
}

/// A file Gemini fetches itself: since January 2026, any public (or
/// signed) https URL, on Gemini 3 models.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileDataOut<'a> {
    mime_type: &'a str,
    file_uri: &'a str,
}

#[derive(Serialize)]
struct FunctionCallOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    args: Box<RawValue>,
}

#[derive(Serialize)]
struct FunctionResponseOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    response: serde_json::Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolsOut<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    function_declarations: Vec<FunctionDeclOut<'a>>,
    /// Grounding with Google Search; it takes no options the canonical
    /// model has.
    #[serde(skip_serializing_if = "Option::is_none")]
    google_search: Option<Empty>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfigOut<'a> {
    function_calling_config: FunctionCallingConfigOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfigOut<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<[&'a str; 1]>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfigOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfigOut>,
}

impl GenerationConfigOut<'_> {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.top_k.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_none()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.response_mime_type.is_none()
            && self.thinking_config.is_none()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfigOut {
    thinking_budget: u32,
    include_thoughts: bool,
}

/// Encodes a canonical request as a `generateContent` body (the model is in
/// the URL, not the body).
pub fn encode_request(req: &chat::Request) -> Result<Vec<u8>, Untranslatable> {
    if let Some(f) = req.unknown_fields.first() {
        return Err(Untranslatable::new(
            f.clone(),
            TARGET,
            "the field has no equivalent there",
        ));
    }
    let google_search = google_search(req)?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(Untranslatable::new(
            "n",
            TARGET,
            "the gateway asks Gemini for one candidate",
        ));
    }
    // `user` only describes the caller (an end-user id for abuse
    // tracking); generateContent has none, and it is no reason to refuse
    // (DESIGN §1a, README's list of deliberate exceptions).
    if req.parallel_tool_calls == Some(false) {
        return Err(Untranslatable::new(
            "parallel_tool_calls",
            TARGET,
            "generateContent cannot forbid parallel function calls",
        ));
    }
    let system_instruction = (!req.system.is_empty()).then(|| SystemOut {
        parts: req
            .system
            .iter()
            .map(|s| TextOut { text: &s.text })
            .collect(),
    });
    let contents = encode_contents(req)?;
    let strict = req.tools.iter().any(|t| t.strict == Some(true));
    let mut tools = Vec::with_capacity(2);
    if !req.tools.is_empty() {
        tools.push(ToolsOut {
            function_declarations: req
                .tools
                .iter()
                .map(|t| FunctionDeclOut {
                    name: &t.name,
                    description: t.description.as_deref(),
                    parameters_json_schema: t.parameters.as_deref(),
                })
                .collect(),
            google_search: None,
        });
    }
    // Models before Gemini 3 refuse Google Search beside function
    // declarations; that depends on the model, so it is Gemini's 400 to
    // give, not the gateway's.
    if google_search {
        tools.push(ToolsOut {
            function_declarations: Vec::new(),
            google_search: Some(Empty {}),
        });
    }
    let tool_config = match &req.tool_choice {
        None if strict => Some(("VALIDATED", None)),
        None => None,
        // Strict tools are validated with constrained decoding (VALIDATED),
        // Gemini's counterpart of OpenAI's `strict` and Anthropic's.
        Some(ToolChoice::Auto) => Some((if strict { "VALIDATED" } else { "AUTO" }, None)),
        Some(ToolChoice::None) => Some(("NONE", None)),
        Some(ToolChoice::Required) => Some(("ANY", None)),
        Some(ToolChoice::Named(n)) => Some(("ANY", Some([n.as_str()]))),
    }
    .map(|(mode, names)| ToolConfigOut {
        function_calling_config: FunctionCallingConfigOut {
            mode,
            allowed_function_names: names,
        },
    });
    let (response_mime_type, response_json_schema) = match &req.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            (Some("application/json"), Some(&**schema))
        }
    };
    let thinking_budget = match (&req.thinking, req.reasoning_effort.as_deref()) {
        (Some(t), _) => Some(t.budget_tokens),
        // The budgets Google's own OpenAI-compatible endpoint uses.
        (None, Some("low")) => Some(1024),
        (None, Some("medium")) => Some(8192),
        (None, Some("high")) => Some(24576),
        (None, Some(other)) => {
            return Err(Untranslatable::new(
                "reasoning_effort",
                TARGET,
                format!("effort `{other}` has no thinking budget; use low, medium or high"),
            ));
        }
        (None, None) => None,
    };
    let out = RequestOut {
        contents,
        system_instruction,
        tools,
        tool_config,
        generation_config: GenerationConfigOut {
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k,
            max_output_tokens: req.max_tokens,
            stop_sequences: (!req.stop.is_empty()).then_some(req.stop.as_slice()),
            seed: req.seed,
            presence_penalty: req.presence_penalty,
            frequency_penalty: req.frequency_penalty,
            response_mime_type,
            response_json_schema,
            thinking_config: thinking_budget.map(|b| ThinkingConfigOut {
                thinking_budget: b,
                include_thoughts: true,
            }),
        },
    };
    Ok(crate::wire::to_vec(&out))
}

/// Whether the caller's built-in tools ask for Google Search: a web search
/// becomes grounding with Google Search, which has no domain filter and no
/// location; those, and any other built-in tool, are refused by name.
fn google_search(req: &chat::Request) -> Result<bool, Untranslatable> {
    let mut any = false;
    for b in &req.builtin_tools {
        let ws = b.live_web_search(TARGET)?;
        if !ws.allowed_domains.is_empty() {
            return Err(Untranslatable::new(
                format!("{}.filters.allowed_domains", b.path),
                TARGET,
                "Google Search grounding cannot be limited to domains",
            ));
        }
        if ws.user_location.is_some() {
            return Err(Untranslatable::new(
                format!("{}.user_location", b.path),
                TARGET,
                "Google Search grounding takes no user location",
            ));
        }
        any = true;
    }
    Ok(any)
}

fn encode_contents(req: &chat::Request) -> Result<Vec<ContentOut<'_>>, Untranslatable> {
    let mut out: Vec<ContentOut<'_>> = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role {
            Role::System => {
                return Err(Untranslatable::new(
                    format!("{}.role", m.path()),
                    TARGET,
                    "system text must come before the conversation; Gemini has no system turns",
                ));
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "model",
        };
        let mut parts = Vec::with_capacity(m.parts.len());
        for (j, p) in m.parts.iter().enumerate() {
            let at = || m.part_path(j);
            match p {
                Part::Text { text, .. } => parts.push(PartOut::Text { text }),
                Part::Image(img) => parts.push(inline_image(img, at)?),
                Part::Document(doc) => parts.push(document_part(doc, at)?),
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    let (plain, signature) = split_signature(id);
                    let args = crate::wire::anthropic::request::tool_input(arguments).ok_or_else(
                        || {
                            Untranslatable::new(
                                format!("{}.arguments", at()),
                                TARGET,
                                "tool call arguments must be a JSON object",
                            )
                        },
                    )?;
                    parts.push(PartOut::FunctionCall {
                        function_call: FunctionCallOut {
                            id: gemini_id(plain),
                            name,
                            args,
                        },
                        thought_signature: signature,
                    });
                }
                Part::ToolResult {
                    tool_call_id,
                    content,
                    is_error,
                } => {
                    let Some(name) = call_name(req, i, tool_call_id) else {
                        return Err(Untranslatable::new(
                            format!("{}.tool_call_id", m.path()),
                            TARGET,
                            format!(
                                "no earlier tool call has id `{tool_call_id}`; Gemini matches results to calls by name"
                            ),
                        ));
                    };
                    let mut text = String::new();
                    for c in content {
                        match c {
                            ToolResultPart::Text(t) => text.push_str(t),
                            ToolResultPart::Image(_) => {
                                return Err(Untranslatable::new(
                                    format!("{}.content", at()),
                                    TARGET,
                                    "function responses there hold text only, not images",
                                ));
                            }
                            ToolResultPart::Document(_) => {
                                return Err(Untranslatable::new(
                                    format!("{}.content", at()),
                                    TARGET,
                                    "function responses there hold text only, not files",
                                ));
                            }
                        }
                    }
                    let key = if *is_error { "error" } else { "output" };
                    let (plain, _) = split_signature(tool_call_id);
                    parts.push(PartOut::FunctionResponse {
                        function_response: FunctionResponseOut {
                            id: gemini_id(plain),
                            name,
                            response: serde_json::json!({ key: text }),
                        },
                    });
                }
                // Gemini does not take earlier thoughts back as input; what
                // it needs (the signature) travels in the tool-call id.
                Part::Thinking { .. } | Part::RedactedThinking { .. } => {}
                // No decoder puts a provider's search into a request.
                Part::WebSearch(_) => {}
            }
        }
        if parts.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => out.push(ContentOut { role, parts }),
        }
    }
    Ok(out)
}

/// Ids we made up (`call_<n>`) mean nothing to Gemini; its own ids go back.
fn gemini_id(id: &str) -> Option<&str> {
    (!id.is_empty() && !id.starts_with("call_")).then_some(id)
}

/// The name of the tool call `id` answers, from the turns before message `i`.
fn call_name<'a>(req: &'a chat::Request, i: usize, id: &str) -> Option<&'a str> {
    req.messages[..i].iter().rev().find_map(|m| {
        m.parts.iter().find_map(|p| match p {
            Part::ToolCall { id: cid, name, .. } if cid == id => Some(name.as_str()),
            _ => None,
        })
    })
}

fn inline_image<'a>(
    img: &'a Image,
    at: impl Fn() -> String,
) -> Result<PartOut<'a>, Untranslatable> {
    match img {
        Image::Base64 { media_type, data } => Ok(PartOut::InlineData {
            inline_data: InlineDataOut {
                mime_type: media_type,
                data: std::borrow::Cow::Borrowed(data),
            },
        }),
        Image::Url(_) => Err(Untranslatable::new(
            at(),
            TARGET,
            "Gemini takes images inline as base64 (a data: URL), not by https URL",
        )),
    }
}

/// A document as Gemini takes it: PDF and text, inline (`inlineData`) or
/// by a public https URL it fetches (`fileData`). Gemini has no place for
/// a file's name: the name is not sent (README lists this), the file is.
fn document_part<'a>(
    doc: &'a Document,
    at: impl Fn() -> String,
) -> Result<PartOut<'a>, Untranslatable> {
    let refuse = |reason: String| Err(Untranslatable::new(at(), TARGET, reason));
    let Some(mime_type) = doc.media_type() else {
        return refuse(
            "the document's media type is unknown (no `data:` URL, no known extension in its name or URL), and Gemini needs one".into(),
        );
    };
    if DocKind::of(mime_type) == DocKind::Other {
        return refuse(format!(
            "Gemini reads PDF and text documents, not `{mime_type}`"
        ));
    }
    // Text given as text is a text/plain file to Gemini.
    let mime_type = match doc.source {
        DocSource::Text(_) => "text/plain",
        _ => mime_type,
    };
    match &doc.source {
        DocSource::Url(url) if url.starts_with("https://") => Ok(PartOut::FileData {
            file_data: FileDataOut {
                mime_type,
                file_uri: url,
            },
        }),
        DocSource::Url(_) => refuse("Gemini fetches documents from https URLs only".into()),
        DocSource::Base64(_) | DocSource::Text(_) => Ok(PartOut::InlineData {
            inline_data: InlineDataOut {
                mime_type,
                data: doc.base64().unwrap_or_default(),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_doc(doc: Document) -> Result<serde_json::Value, Untranslatable> {
        let r = chat::Request {
            model: "m".into(),
            messages: vec![chat::Message::new(Role::User, vec![Part::Document(doc)], 0)],
            ..Default::default()
        };
        encode_request(&r)
            .map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap())
            .map(|v| v["contents"][0]["parts"][0].clone())
    }

    /// Gemini's document understanding page: a PDF inline as
    /// `inlineData`; its file input methods page: a public https URL as
    /// `fileData` (Gemini 3 models fetch it).
    #[test]
    fn documents_go_inline_or_by_https_url() {
        let part = encode_doc(Document {
            source: DocSource::Base64("JVBE".into()),
            media_type: Some("application/pdf".into()),
            filename: Some("a.pdf".into()),
        })
        .unwrap();
        assert_eq!(
            part,
            serde_json::json!({"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}})
        );
        let part = encode_doc(Document {
            source: DocSource::Url("https://x.example/a.pdf".into()),
            media_type: None,
            filename: None,
        })
        .unwrap();
        assert_eq!(
            part,
            serde_json::json!({"fileData": {"mimeType": "application/pdf", "fileUri": "https://x.example/a.pdf"}})
        );
        let part = encode_doc(Document {
            source: DocSource::Text("hi".into()),
            media_type: Some("text/plain".into()),
            filename: None,
        })
        .unwrap();
        assert_eq!(
            part,
            serde_json::json!({"inlineData": {"mimeType": "text/plain", "data": "aGk="}})
        );
    }

    #[test]
    fn documents_gemini_cannot_read_are_refused_by_name() {
        let reason = |doc: Document| encode_doc(doc).unwrap_err().reason;
        assert!(
            reason(Document {
                source: DocSource::Base64("UEsDBA==".into()),
                media_type: None,
                filename: Some("sheet.xlsx".into()),
            })
            .contains("PDF and text documents, not `application/vnd.openxmlformats")
        );
        assert!(
            reason(Document {
                source: DocSource::Url("http://x.example/a.pdf".into()),
                media_type: None,
                filename: None,
            })
            .contains("https URLs only")
        );
        assert!(
            reason(Document {
                source: DocSource::Url("https://x.example/get?id=1".into()),
                media_type: None,
                filename: None,
            })
            .contains("media type is unknown")
        );
    }

    fn responses(tools: &str) -> chat::Request {
        let body = format!(r#"{{"model":"m","input":"news","tools":{tools}}}"#);
        crate::wire::responses::decode_request(body.as_bytes())
            .unwrap()
            .0
    }

    #[test]
    fn a_web_search_becomes_google_search_grounding() {
        let r = responses(
            r#"[{"type":"function","name":"f","parameters":{"type":"object"}},{"type":"web_search","search_context_size":"medium","filters":{"allowed_domains":[]}}]"#,
        );
        let out: serde_json::Value = serde_json::from_slice(&encode_request(&r).unwrap()).unwrap();
        assert_eq!(
            out["tools"],
            serde_json::json!([
                {"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]},
                {"googleSearch": {}},
            ])
        );
    }

    #[test]
    fn what_google_search_cannot_do_is_refused_by_name() {
        let refused = |tools: &str| encode_request(&responses(tools)).unwrap_err().field;
        assert_eq!(
            refused(r#"[{"type":"web_search","filters":{"allowed_domains":["a.com"]}}]"#),
            "tools[0].filters.allowed_domains"
        );
        assert_eq!(
            refused(
                r#"[{"type":"web_search","user_location":{"type":"approximate","country":"FR"}}]"#
            ),
            "tools[0].user_location"
        );
        assert_eq!(
            refused(r#"[{"type":"web_search","external_web_access":false}]"#),
            "tools[0].external_web_access"
        );
        assert_eq!(
            refused(r#"[{"type":"web_search_preview","search_context_size":"low"}]"#),
            "tools[0].search_context_size"
        );
        assert_eq!(refused(r#"[{"type":"image_generation"}]"#), "tools[0]");
    }
}
