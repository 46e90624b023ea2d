//! Canonical request → `Converse` / `ConverseStream` body. The two
//! operations take the same body; the model id and the operation are in
//! the URL.
//!
//! Choices made where Converse has no direct equivalent:
//! - `tool_choice: none`: Converse has no such choice, so the tools are
//!   left out and the model cannot call any. Bedrock refuses a
//!   conversation holding tool calls or results without a `toolConfig`,
//!   so there `none` is refused by name rather than turned into `auto`.
//! - `top_k` and a thinking budget go in `additionalModelRequestFields`
//!   under the names Anthropic models take (`top_k`, `thinking: {type:
//!   "enabled", budget_tokens}`), the ones Bedrock documents for Converse.
//!   The encoder does not know the model; another family that names them
//!   otherwise answers Bedrock's own 400.
//! - `reasoning_effort` is `outputConfig.effort`; a JSON schema response
//!   format is `outputConfig.textFormat` (Converse's structured output,
//!   which takes the schema as a JSON string). Schemaless JSON mode has no
//!   equivalent and is refused.
//! - `user` goes in `requestMetadata` (key `user`), the key-value pairs
//!   Bedrock's invocation logs are filtered by, when it fits their
//!   character set; otherwise it is dropped, as for Gemini: it describes
//!   the caller and is no reason to refuse.
//! - Reasoning goes back only with the signature its provider gave it
//!   (`reasoningContent.reasoningText`); unsigned reasoning came from
//!   another provider, which Bedrock cannot verify, and is left out, as
//!   for Anthropic. Redacted reasoning goes back as `redactedContent`.
//! - An Anthropic `cache_control` on a system part, a text part or a tool
//!   becomes a `cachePoint` block right after it (its `ttl` kept when it is
//!   one Bedrock takes: `5m`, `1h`).
//! - When stop sequences are set, the request asks for
//!   `/stop_sequence` among the additional response fields: Anthropic
//!   models report there which one matched (Converse itself does not, and
//!   ignores a pointer the model's answer lacks).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::chat::{
    self, DocKind, Document, Image, Part, RawJson, ResponseFormat, Role, ToolChoice,
    ToolResultPart, Untranslatable,
};

#[cfg(test)]
mod tests;

const TARGET: &str = "a Bedrock provider";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestOut<'a> {
    messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<SystemOut<'a>>,
    inference_config: InferenceConfigOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfigOut<'a>>,
    #[serde(skip_serializing_if = "AdditionalFieldsOut::is_empty")]
    additional_model_request_fields: AdditionalFieldsOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_model_response_field_paths: Option<[&'static str; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfigOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_metadata: Option<MetadataOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum SystemOut<'a> {
    Text(&'a str),
    CachePoint(CachePointOut),
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Vec<BlockOut<'a>>,
}

/// A content block: a union, serialised as `{"<member>": value}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum BlockOut<'a> {
    Text(&'a str),
    Image(ImageOut<'a>),
    Document(DocumentOut<'a>),
    ToolUse(ToolUseOut<'a>),
    ToolResult(ToolResultOut<'a>),
    ReasoningContent(ReasoningOut<'a>),
    CachePoint(CachePointOut),
}

#[derive(Serialize)]
struct ImageOut<'a> {
    format: &'static str,
    source: BytesOut<'a>,
}

/// `source.bytes`: a blob, base64 in JSON.
#[derive(Serialize)]
struct BytesOut<'a> {
    bytes: Cow<'a, str>,
}

#[derive(Serialize)]
struct DocumentOut<'a> {
    format: &'static str,
    name: String,
    source: BytesOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseOut<'a> {
    tool_use_id: Cow<'a, str>,
    name: &'a str,
    input: Box<RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolResultOut<'a> {
    tool_use_id: Cow<'a, str>,
    content: Vec<ToolResultBlockOut<'a>>,
    /// `error` for a failed call; left out otherwise (success is the
    /// default, and only some models take the field at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum ToolResultBlockOut<'a> {
    Text(&'a str),
    Image(ImageOut<'a>),
    Document(DocumentOut<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum ReasoningOut<'a> {
    ReasoningText { text: &'a str, signature: &'a str },
    RedactedContent(&'a str),
}

#[derive(Serialize)]
struct CachePointOut {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfigOut<'a> {
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfigOut<'a> {
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum ToolOut<'a> {
    ToolSpec(ToolSpecOut<'a>),
    CachePoint(CachePointOut),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpecOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: SchemaOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
struct SchemaOut<'a> {
    json: &'a RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum ToolChoiceOut<'a> {
    Auto(Empty),
    Any(Empty),
    Tool { name: &'a str },
}

#[derive(Serialize)]
struct Empty {}

/// What Converse has no field for, in the names Anthropic models take.
#[derive(Serialize)]
struct AdditionalFieldsOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<ThinkingOut>,
}

impl AdditionalFieldsOut {
    fn is_empty(&self) -> bool {
        self.top_k.is_none() && self.thinking.is_none()
    }
}

#[derive(Serialize)]
struct ThinkingOut {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutputConfigOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text_format: Option<TextFormatOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effort: Option<&'a str>,
}

#[derive(Serialize)]
struct TextFormatOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    structure: StructureOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StructureOut<'a> {
    json_schema: JsonSchemaOut<'a>,
}

#[derive(Serialize)]
struct JsonSchemaOut<'a> {
    /// The schema as JSON text: Converse takes a string here.
    schema: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct MetadataOut<'a> {
    user: &'a str,
}

/// Encodes a canonical request as a `Converse` / `ConverseStream` body.
/// `default_max_tokens` fills `maxTokens` when the caller set none (some
/// models need it, and their defaults are small).
pub fn encode_request(
    req: &chat::Request,
    default_max_tokens: u32,
) -> Result<Vec<u8>, Untranslatable> {
    refuse_what_converse_lacks(req)?;
    let out = RequestOut {
        messages: encode_messages(req)?,
        system: encode_system(&req.system),
        inference_config: InferenceConfigOut {
            max_tokens: req.max_tokens.unwrap_or(default_max_tokens),
            temperature: req.temperature,
            top_p: req.top_p,
            stop_sequences: &req.stop,
        },
        tool_config: tool_config(req)?,
        additional_model_request_fields: AdditionalFieldsOut {
            top_k: req.top_k,
            thinking: req.thinking.map(|t| ThinkingOut {
                kind: "enabled",
                budget_tokens: t.budget_tokens,
            }),
        },
        additional_model_response_field_paths: (!req.stop.is_empty()).then_some(["/stop_sequence"]),
        output_config: output_config(req)?,
        request_metadata: req
            .user
            .as_deref()
            .filter(|u| fits_metadata(u))
            .map(|user| MetadataOut { user }),
    };
    Ok(crate::wire::to_vec(&out))
}

/// The request-wide fields Converse has no place for, refused by name.
fn refuse_what_converse_lacks(req: &chat::Request) -> Result<(), Untranslatable> {
    let refuse = |field: &str, reason: &str| Err(Untranslatable::new(field, TARGET, reason));
    if let Some(f) = req.unknown_fields.first() {
        return refuse(f, "the field has no equivalent there");
    }
    // Bedrock's system tools are model-specific (Nova grounding...); no
    // caller's built-in tool maps onto one.
    if let Some(b) = req.builtin_tools.first() {
        return Err(b.no_equivalent(TARGET));
    }
    if req.n.is_some_and(|n| n != 1) {
        return refuse("n", "Converse returns one answer per call");
    }
    if req.seed.is_some() {
        return refuse("seed", "Converse has no seed");
    }
    if req.presence_penalty.is_some_and(|p| p != 0.0) {
        return refuse("presence_penalty", "Converse has no presence penalty");
    }
    if req.frequency_penalty.is_some_and(|p| p != 0.0) {
        return refuse("frequency_penalty", "Converse has no frequency penalty");
    }
    if req.temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return refuse("temperature", "Converse takes a temperature from 0 to 1");
    }
    if req.stop.iter().any(|s| s.is_empty()) {
        return refuse("stop", "Converse refuses empty stop sequences");
    }
    if req.parallel_tool_calls == Some(false) {
        return refuse(
            "parallel_tool_calls",
            "Converse cannot forbid parallel tool calls",
        );
    }
    if matches!(req.response_format, Some(ResponseFormat::JsonObject)) {
        return refuse(
            "response_format",
            "Converse has no schemaless JSON mode; send a json_schema response_format",
        );
    }
    Ok(())
}

/// Efforts Converse's `outputConfig.effort` documents.
const EFFORTS: &[&str] = &["low", "medium", "high", "xhigh", "max"];

fn output_config(req: &chat::Request) -> Result<Option<OutputConfigOut<'_>>, Untranslatable> {
    let effort = match req.reasoning_effort.as_deref() {
        Some(e) if !EFFORTS.contains(&e) => {
            return Err(Untranslatable::new(
                "reasoning_effort",
                TARGET,
                format!("effort `{e}` has no equivalent; use low, medium, high, xhigh or max"),
            ));
        }
        e => e,
    };
    let text_format = match &req.response_format {
        Some(ResponseFormat::JsonSchema { name, schema, .. }) => Some(TextFormatOut {
            kind: "json_schema",
            structure: StructureOut {
                json_schema: JsonSchemaOut {
                    schema: schema.get(),
                    name: Some(name.as_str()).filter(|n| !n.is_empty()),
                },
            },
        }),
        // JsonObject was refused; text is the default.
        _ => None,
    };
    Ok(
        (effort.is_some() || text_format.is_some()).then_some(OutputConfigOut {
            text_format,
            effort,
        }),
    )
}

/// `requestMetadata` values: at most 256 of these characters.
fn fits_metadata(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b' ' | b'\t'
                        | b'\n'
                        | b'\r'
                        | 0x0b
                        | 0x0c
                        | b':'
                        | b'_'
                        | b'@'
                        | b'$'
                        | b'#'
                        | b'='
                        | b'/'
                        | b'+'
                        | b','
                        | b'-'
                        | b'.'
                )
        })
}

/// System text, each part followed by a cache point when it carried a
/// `cache_control`. Blank text is left out: Converse refuses it.
fn encode_system(parts: &[chat::SystemPart]) -> Vec<SystemOut<'_>> {
    let mut out = Vec::with_capacity(parts.len());
    for s in parts.iter().filter(|s| !is_blank(&s.text)) {
        out.push(SystemOut::Text(&s.text));
        if let Some(cc) = &s.cache_control {
            out.push(SystemOut::CachePoint(cache_point(cc)));
        }
    }
    out
}

fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// An Anthropic `cache_control` as a cache point. Converse's one type is
/// `default`; a `ttl` Bedrock does not take is left to that default.
fn cache_point(cc: &RawJson) -> CachePointOut {
    #[derive(Deserialize)]
    struct CacheControlIn {
        #[serde(default)]
        ttl: Option<String>,
    }
    let ttl = serde_json::from_str::<CacheControlIn>(cc.get())
        .ok()
        .and_then(|c| c.ttl)
        .and_then(|t| match t.as_str() {
            "5m" => Some("5m"),
            "1h" => Some("1h"),
            _ => None,
        });
    CachePointOut {
        kind: "default",
        ttl,
    }
}

fn tool_config(req: &chat::Request) -> Result<Option<ToolConfigOut<'_>>, Untranslatable> {
    let tool_choice = match &req.tool_choice {
        Some(ToolChoice::None) if holds_tool_blocks(req) => {
            return Err(Untranslatable::new(
                "tool_choice",
                TARGET,
                "Converse has no `none` tool choice: the gateway leaves the tools out instead, but a conversation holding tool calls or results must declare its tools",
            ));
        }
        Some(ToolChoice::None) => return Ok(None),
        None => None,
        Some(ToolChoice::Auto) => Some(ToolChoiceOut::Auto(Empty {})),
        Some(ToolChoice::Required) => Some(ToolChoiceOut::Any(Empty {})),
        Some(ToolChoice::Named(name)) => Some(ToolChoiceOut::Tool { name }),
    };
    // `tools` must hold one tool at least.
    if req.tools.is_empty() {
        return Ok(None);
    }
    let mut tools = Vec::with_capacity(req.tools.len());
    for t in &req.tools {
        tools.push(ToolOut::ToolSpec(ToolSpecOut {
            name: &t.name,
            description: t.description.as_deref().filter(|d| !d.is_empty()),
            input_schema: SchemaOut {
                json: t.parameters.as_deref().unwrap_or(empty_schema()),
            },
            strict: t.strict,
        }));
        if let Some(cc) = &t.cache_control {
            tools.push(ToolOut::CachePoint(cache_point(cc)));
        }
    }
    Ok(Some(ToolConfigOut { tools, tool_choice }))
}

fn holds_tool_blocks(req: &chat::Request) -> bool {
    req.messages
        .iter()
        .flat_map(|m| &m.parts)
        .any(|p| matches!(p, Part::ToolCall { .. } | Part::ToolResult { .. }))
}

fn empty_schema() -> &'static RawValue {
    static EMPTY: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| {
        crate::wire::to_raw(&serde_json::json!({"type": "object", "properties": {}}))
    })
}

/// The conversation as Converse takes it: user and assistant turns,
/// strictly alternating, starting with the user. Tool results are
/// `toolResult` blocks in a user turn; consecutive turns of one role merge,
/// so the results of parallel calls (and any user text after them) form
/// one user turn, results first.
fn encode_messages(req: &chat::Request) -> Result<Vec<MessageOut<'_>>, Untranslatable> {
    let mut names = DocNames::default();
    let mut out: Vec<MessageOut<'_>> = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let role = match m.role {
            Role::System => {
                return Err(Untranslatable::new(
                    format!("{}.role", m.path()),
                    TARGET,
                    "system text must come before the conversation; Converse has no system turns",
                ));
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        let mut blocks = Vec::with_capacity(m.parts.len());
        for (j, p) in m.parts.iter().enumerate() {
            encode_part(m, j, p, &mut names, &mut blocks)?;
        }
        // Converse refuses a turn without content.
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            None if role == "assistant" => {
                return Err(Untranslatable::new(
                    format!("{}.role", m.path()),
                    TARGET,
                    "a Converse conversation must start with a user turn",
                ));
            }
            _ => out.push(MessageOut {
                role,
                content: blocks,
            }),
        }
    }
    // Results answer the turn before; Anthropic models, the ones most
    // used through Converse, want them before anything else in the turn.
    // The sort is stable: the other blocks keep their order.
    for m in out.iter_mut().filter(|m| m.role == "user") {
        m.content
            .sort_by_key(|b| !matches!(b, BlockOut::ToolResult(_)));
    }
    Ok(out)
}

/// Appends part `j` of `m` as Converse blocks (none, one, or a block and
/// its cache point).
fn encode_part<'a>(
    m: &'a chat::Message,
    j: usize,
    p: &'a Part,
    names: &mut DocNames,
    blocks: &mut Vec<BlockOut<'a>>,
) -> Result<(), Untranslatable> {
    let at = || m.part_path(j);
    match p {
        Part::Text {
            text,
            cache_control,
        } => {
            // Converse refuses blank text blocks.
            if !is_blank(text) {
                blocks.push(BlockOut::Text(text));
                if let Some(cc) = cache_control {
                    blocks.push(BlockOut::CachePoint(cache_point(cc)));
                }
            }
        }
        Part::Image(img) => blocks.push(BlockOut::Image(image(img, at)?)),
        Part::Document(doc) => blocks.push(BlockOut::Document(document(doc, names, at)?)),
        Part::ToolCall {
            id,
            name,
            arguments,
        } => {
            let input =
                crate::wire::anthropic::request::tool_input(arguments).ok_or_else(|| {
                    Untranslatable::new(
                        format!("{}.arguments", at()),
                        TARGET,
                        "tool call arguments must be a JSON object",
                    )
                })?;
            blocks.push(BlockOut::ToolUse(ToolUseOut {
                tool_use_id: tool_use_id(id),
                name,
                input,
            }));
        }
        Part::ToolResult {
            tool_call_id,
            content,
            is_error,
        } => {
            let mut out = Vec::with_capacity(content.len());
            for c in content {
                let at = || format!("{}.content", at());
                match c {
                    // An empty result is a result without content.
                    ToolResultPart::Text(t) if t.is_empty() => {}
                    ToolResultPart::Text(t) => out.push(ToolResultBlockOut::Text(t)),
                    ToolResultPart::Image(img) => {
                        out.push(ToolResultBlockOut::Image(image(img, at)?))
                    }
                    ToolResultPart::Document(doc) => {
                        out.push(ToolResultBlockOut::Document(document(doc, names, at)?))
                    }
                }
            }
            blocks.push(BlockOut::ToolResult(ToolResultOut {
                tool_use_id: tool_use_id(tool_call_id),
                content: out,
                status: is_error.then_some("error"),
            }));
        }
        Part::Thinking {
            text,
            signature: Some(signature),
        } => blocks.push(BlockOut::ReasoningContent(ReasoningOut::ReasoningText {
            text,
            signature,
        })),
        // Unsigned: another provider's reasoning (see the module doc).
        Part::Thinking {
            signature: None, ..
        } => {}
        Part::RedactedThinking { data } => blocks.push(BlockOut::ReasoningContent(
            ReasoningOut::RedactedContent(data),
        )),
        // No decoder puts a provider's search into a request.
        Part::WebSearch(_) => {}
    }
    Ok(())
}

/// A tool-use id as Converse accepts it (`[a-zA-Z0-9_.:-]+`, at most 64
/// characters): as it is when it fits (a Gemini thought signature packed
/// in taken out: it means nothing here), else a stand-in made from it, the
/// same for a call and its result.
fn tool_use_id(id: &str) -> Cow<'_, str> {
    use sha2::Digest;
    let id = crate::wire::gemini::split_signature(id).0;
    let fits = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if fits {
        return Cow::Borrowed(id);
    }
    let digest = sha2::Sha256::digest(id.as_bytes());
    Cow::Owned(format!("tooluse_sy{}", &crate::keys::hex(&digest)[..32]))
}

/// An image as Converse takes it: inline bytes of a format it names.
fn image<'a>(img: &'a Image, at: impl Fn() -> String) -> Result<ImageOut<'a>, Untranslatable> {
    match img {
        Image::Url(_) => Err(Untranslatable::new(
            at(),
            TARGET,
            "Converse takes images inline as base64 (a data: URL), not by URL",
        )),
        Image::Base64 { media_type, data } => match image_format(media_type) {
            Some(format) => Ok(ImageOut {
                format,
                source: BytesOut {
                    bytes: Cow::Borrowed(data),
                },
            }),
            None => Err(Untranslatable::new(
                at(),
                TARGET,
                format!("Converse reads PNG, JPEG, GIF and WebP images, not `{media_type}`"),
            )),
        },
    }
}

fn image_format(media_type: &str) -> Option<&'static str> {
    match essence(media_type).as_str() {
        "image/png" => Some("png"),
        "image/jpeg" | "image/jpg" => Some("jpeg"),
        "image/gif" => Some("gif"),
        "image/webp" => Some("webp"),
        _ => None,
    }
}

/// A media type without its parameters, lower case.
fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A document as Converse takes it: inline bytes, one of its formats, and
/// a name unique in the request.
fn document<'a>(
    doc: &'a Document,
    names: &mut DocNames,
    at: impl Fn() -> String,
) -> Result<DocumentOut<'a>, Untranslatable> {
    let refuse = |reason: String| Err(Untranslatable::new(at(), TARGET, reason));
    let Some(media_type) = doc.media_type() else {
        return refuse(
            "the document's media type is unknown (no `data:` URL, no known extension in its name), and Converse needs its format".into(),
        );
    };
    let Some(format) = document_format(media_type) else {
        return refuse(format!(
            "Converse reads PDF, CSV, Word, Excel, HTML, Markdown and text documents, not `{media_type}`"
        ));
    };
    let Some(bytes) = doc.base64() else {
        return refuse("Converse takes documents inline (or from S3), not by URL".into());
    };
    Ok(DocumentOut {
        format,
        name: names.unique(&doc.name_or_default()),
        source: BytesOut { bytes },
    })
}

/// Converse's document format for a media type. Text it has no format
/// for (JSON, XML, TSV...) goes as `txt`, which is what it is to a model.
fn document_format(media_type: &str) -> Option<&'static str> {
    let format = match essence(media_type).as_str() {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/markdown" => "md",
        _ if DocKind::of(media_type) == DocKind::Text => "txt",
        _ => return None,
    };
    Some(format)
}

/// The longest document name Converse takes.
const MAX_DOC_NAME: usize = 200;

/// Document names given so far in one request: Converse refuses two
/// documents of one name anywhere in a request (history included).
#[derive(Default)]
struct DocNames {
    taken: Vec<String>,
}

impl DocNames {
    /// `name` made fit for Converse, with ` (2)`, ` (3)`... when taken.
    /// The same conversation gives the same names each turn, so a cached
    /// prefix stays the same.
    fn unique(&mut self, name: &str) -> String {
        // Room for the suffix.
        let base = sanitize(name, MAX_DOC_NAME - 8);
        let mut candidate = base.clone();
        let mut n = 1;
        while self
            .taken
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&candidate))
        {
            n += 1;
            candidate = format!("{base} ({n})");
        }
        self.taken.push(candidate.clone());
        candidate
    }
}

/// A document name in the characters Converse allows: ASCII letters and
/// digits, single spaces, hyphens, parentheses and square brackets. The
/// extension goes (the format says the type); any other run of characters
/// becomes one hyphen.
fn sanitize(name: &str, max: usize) -> String {
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) if !stem.trim().is_empty() => stem,
        _ => name,
    };
    let mut out = String::with_capacity(stem.len().min(max));
    let mut replaced = false;
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') {
            out.push(c);
            replaced = false;
        } else if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
            replaced = false;
        } else if !replaced {
            out.push('-');
            replaced = true;
        }
    }
    // Every character pushed is ASCII, so any length is a char boundary.
    out.truncate(max);
    let trimmed = out.trim();
    if trimmed.is_empty() {
        "document".to_owned()
    } else {
        trimmed.to_owned()
    }
}
